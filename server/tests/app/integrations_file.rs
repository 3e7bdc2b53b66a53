//! Integrations as code over the API: the export follows the permission
//! table, never carries a secret, and reads back as the integrations file.

use bitbucket_simulator::datacenter::{DEMO_TOKEN, DEMO_USER};
use bitgate_core::as_code::file::{self, Scope};
use reqwest::Method;
use serde_json::json;

use crate::world::{world_with_bitbucket, World};

async fn create(w: &World, caller: &str, name: &str, space: Option<uuid::Uuid>, api_url: &str) {
    let scope = if space.is_some() { "space" } else { "default" };
    let body = json!({
        "name": name, "provider": "bitbucket_datacenter", "scope": scope, "space_id": space,
        "labels": ["prod"], "description": "Our **main** one",
        "datacenter": {"api_url": api_url, "username": DEMO_USER, "access_token": DEMO_TOKEN}
    });
    let (status, created) = w.call(w.token(caller), Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
}

fn names(yaml: &str) -> Vec<(String, Scope)> {
    let entries = file::parse(yaml).unwrap_or_else(|problems| panic!("{problems:?}\n{yaml}"));
    entries.into_iter().map(|e| (e.name, e.scope)).collect()
}

#[tokio::test]
async fn the_export_holds_what_the_caller_administers_and_no_secret() {
    let (w, simulator) = world_with_bitbucket().await;
    create(&w, "account admin", "the-default", None, &simulator.url).await;
    create(&w, "team admin", "team-dc", Some(w.team), &simulator.url).await;
    create(&w, "account admin", "other-dc", Some(w.other), &simulator.url).await;
    let export = |caller: &'static str, query: String| {
        let w = &w;
        async move { w.call(w.token(caller), Method::GET, &format!("/api/v1/integrations/export{query}"), None).await }
    };

    // The account admin: everything, sorted by name, the defaults included.
    let (status, yaml) = export("account admin", String::new()).await;
    assert_eq!(status, 200);
    let yaml = yaml.as_str().unwrap().to_owned();
    assert_eq!(
        names(&yaml),
        [
            ("other-dc".to_owned(), Scope::Space("other".into())),
            ("team-dc".to_owned(), Scope::Space("team".into())),
            ("the-default".to_owned(), Scope::Default),
        ]
    );
    assert!(!yaml.contains(DEMO_TOKEN), "no token is exported");
    let secrets: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM integrations").fetch_all(&w.app.pool).await.unwrap();
    for id in secrets {
        let (_, webhook) =
            w.call(w.token("account admin"), Method::GET, &format!("/api/v1/integrations/{id}/webhook"), None).await;
        assert!(!yaml.contains(webhook["secret"].as_str().unwrap()), "no webhook secret is exported");
    }

    // A space admin: their space's, not the defaults nor a sibling's.
    let (status, yaml) = export("team admin", String::new()).await;
    assert_eq!(status, 200);
    assert_eq!(names(yaml.as_str().unwrap()), [("team-dc".to_owned(), Scope::Space("team".into()))]);
    let (status, yaml) = export("team admin", format!("?space_id={}", w.team)).await;
    assert_eq!((status.as_u16(), names(yaml.as_str().unwrap()).len()), (200, 1));

    // Readers and writers administer nothing; outsiders do not see the space.
    let (status, yaml) = export("team writer", String::new()).await;
    assert_eq!((status.as_u16(), names(yaml.as_str().unwrap())), (200, vec![]));
    assert_eq!(export("team reader", format!("?space_id={}", w.team)).await.0, 403);
    assert_eq!(export("outsider", format!("?space_id={}", w.team)).await.0, 404);
    assert_eq!(export("team admin", "?space_id=nope".into()).await.0, 400);
    assert_eq!(export("team admin", format!("?space_id={}", uuid::Uuid::new_v4())).await.0, 404);
    // (A refusal naming a space that does not exist is recorded without it, not a 500.)
    let body = json!({"name": "x", "provider": "bitbucket_datacenter", "scope": "space", "space_id": uuid::Uuid::new_v4(),
        "datacenter": {"api_url": simulator.url, "username": DEMO_USER, "access_token": DEMO_TOKEN}});
    assert_eq!(w.call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(body)).await.0, 404);

    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/integrations/export", w.app.base))
        .bearer_auth(w.token("team admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let actions = w.app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "integrations.exported").count(), 5, "{actions:?}");
    assert!(actions.contains(&"authorization.denied".to_owned()));
}
