//! Bitbucket Cloud's REST API for a repository's webhooks and branches, as
//! a caller that manages its own hook and polls branch heads uses it: the
//! hooks' life, the write-only secret, the `webhook` scope, validation,
//! faults, and branches filtered and paged.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitbucket_simulator::{
    cloud::{Fault, DEMO_KEY, DEMO_PR_COMMIT, DEMO_SECRET},
    DataCenter, Simulator, Transport,
};
use reqwest::{Client, Method};
use serde_json::{json, Value};

const HOOKS: &str = "/2.0/repositories/acme/website/hooks";
const BRANCHES: &str = "/2.0/repositories/acme/website/refs/branches";
const SECRET: &str = "the secret Bitgate holds";

/// A token of the demo consumer's app user, with the consumer's scopes.
async fn app_token(sim: &Simulator) -> String {
    let answer = Client::new()
        .post(format!("{}/site/oauth2/access_token", sim.url))
        .basic_auth(DEMO_KEY, Some(DEMO_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A call with a Bearer token; its status and JSON body (null when none).
async fn call(sim: &Simulator, method: Method, path: &str, access: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = Client::new().request(method, format!("{}{path}", sim.url)).bearer_auth(access);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn hook_body() -> Value {
    json!({"description": "Bitgate", "url": "https://bitgate.example.com/webhooks/bitbucket/cloud/abc",
           "active": true, "events": ["repo:push", "pullrequest:created", "pullrequest:updated"],
           "skip_cert_verification": false, "secret": SECRET})
}

/// Every answer says whether a secret is set and never carries it.
fn no_secret_in(answer: &Value) {
    assert!(!answer.to_string().contains(SECRET), "the secret is write-only: {answer}");
    assert!(answer.get("secret").is_none(), "{answer}");
}

#[tokio::test]
async fn a_hook_is_created_listed_read_updated_and_deleted_and_its_secret_never_shown() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let access = app_token(&sim).await;
    let (status, created) = call(&sim, Method::POST, HOOKS, &access, Some(hook_body())).await;
    assert_eq!(status, 201, "{created}");
    no_secret_in(&created);
    assert_eq!((created["secret_set"].as_bool(), created["type"].as_str()), (Some(true), Some("webhook_subscription")));
    let uid = created["uuid"].as_str().unwrap().to_owned();
    assert!(uid.starts_with('{') && uid.ends_with('}') && uid.len() == 38, "{uid}");
    assert_eq!(created["events"], json!(["pullrequest:created", "pullrequest:updated", "repo:push"]));
    assert_eq!((created["active"].as_bool(), created["skip_cert_verification"].as_bool()), (Some(true), Some(false)));
    assert_eq!(created["subject"]["type"], "repository");
    assert_eq!(created["subject"]["full_name"], "acme/website");
    let encoded = uid.replace('{', "%7B").replace('}', "%7D");
    assert_eq!(
        created["links"]["self"]["href"],
        format!("https://api.bitbucket.org/2.0/repositories/acme/website/hooks/{encoded}")
    );
    assert_eq!(sim.cloud.read().unwrap().hooks[0].secret.as_deref(), Some(SECRET), "kept for the tests");

    let (status, listed) = call(&sim, Method::GET, HOOKS, &access, None).await;
    assert_eq!((status, listed["size"].as_u64(), listed["page"].as_u64()), (200, Some(1), Some(1)));
    assert_eq!(listed["values"][0], created);
    no_secret_in(&listed);
    let one = format!("{HOOKS}/{encoded}");
    let (status, got) = call(&sim, Method::GET, &one, &access, None).await;
    assert_eq!((status, &got), (200, &created));
    let bare = format!("{HOOKS}/{}", uid.trim_matches(['{', '}']));
    assert_eq!(call(&sim, Method::GET, &bare, &access, None).await.0, 200, "without braces too");

    // A PUT without `secret` keeps it; `null` removes it; a new one replaces it.
    let (status, kept) = call(&sim, Method::PUT, &one, &access, Some(json!({"active": false}))).await;
    assert_eq!((status, kept["active"].as_bool(), kept["secret_set"].as_bool()), (200, Some(false), Some(true)));
    assert_eq!(kept["description"], "Bitgate", "what the body leaves out stays");
    assert_eq!(sim.cloud.read().unwrap().hooks[0].secret.as_deref(), Some(SECRET));
    let (_, removed) = call(&sim, Method::PUT, &one, &access, Some(json!({"secret": null}))).await;
    assert_eq!(removed["secret_set"], false);
    assert_eq!(sim.cloud.read().unwrap().hooks[0].secret, None);
    let (_, replaced) = call(&sim, Method::PUT, &one, &access, Some(json!({"secret": "rotated"}))).await;
    no_secret_in(&replaced);
    assert_eq!(replaced["secret_set"], true);
    assert_eq!(sim.cloud.read().unwrap().hooks[0].secret.as_deref(), Some("rotated"));
    let (_, emptied) = call(&sim, Method::PUT, &one, &access, Some(json!({"secret": ""}))).await;
    assert_eq!(emptied["secret_set"], false, "an empty secret removes it too");

    assert_eq!(call(&sim, Method::DELETE, &one, &access, None).await.0, 204);
    let (status, missing) = call(&sim, Method::GET, &one, &access, None).await;
    assert_eq!((status, missing["type"].as_str()), (404, Some("error")));
    assert_eq!(call(&sim, Method::DELETE, &one, &access, None).await.0, 404);
    assert_eq!(call(&sim, Method::PUT, &one, &access, Some(json!({"active": true}))).await.0, 404);
    let (_, empty) = call(&sim, Method::GET, HOOKS, &access, None).await;
    assert_eq!(empty["size"], 0);
}

#[tokio::test]
async fn hooks_need_the_webhook_scope_valid_bodies_and_meet_queued_faults() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let access = app_token(&sim).await;
    let duplicated = json!({"description": "Bitgate", "url": "https://bitgate.example.com/h",
                            "events": ["repo:push", "repo:push"]});
    let refusals = [
        (duplicated, "events"),
        (
            json!({"description": "Bitgate", "url": "https://bitgate.example.com/h", "events": ["repo:refs_changed"]}),
            "events",
        ),
        (json!({"description": "Bitgate", "url": "https://bitgate.example.com/h", "events": []}), "events"),
        (json!({"description": "Bitgate", "url": "not a url", "events": ["repo:push"]}), "url"),
        (json!({"url": "https://bitgate.example.com/h", "events": ["repo:push"]}), "description"),
        (
            json!({"description": "Bitgate", "url": "https://bitgate.example.com/h", "events": ["repo:push"], "secret": "s".repeat(129)}),
            "secret",
        ),
    ];
    for (body, field) in refusals {
        let (status, refused) = call(&sim, Method::POST, HOOKS, &access, Some(body)).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["error"]["fields"][field].is_array(), "{field}: {refused}");
    }
    assert!(sim.cloud.read().unwrap().hooks.is_empty(), "nothing refused is stored");
    let (_, created) = call(&sim, Method::POST, HOOKS, &access, Some(hook_body())).await;
    let one = format!("{HOOKS}/{}", created["uuid"].as_str().unwrap());
    let twice = json!({"events": ["pullrequest:created", "pullrequest:created"]});
    assert_eq!(call(&sim, Method::PUT, &one, &access, Some(twice)).await.0, 400);
    assert_eq!(call(&sim, Method::GET, "/2.0/repositories/acme/nothing-here/hooks", &access, None).await.0, 404);

    // Without the `webhook` scope: Cloud's 403 naming the scopes, on every call.
    sim.configure_cloud(|cloud| cloud.consumers[0].scopes.retain(|s| s != "webhook"));
    let narrow = app_token(&sim).await;
    let (status, lacking) = call(&sim, Method::POST, HOOKS, &narrow, Some(hook_body())).await;
    assert_eq!(status, 403);
    assert_eq!(lacking["error"]["detail"]["required"], json!(["webhook"]));
    for method in [Method::GET, Method::DELETE] {
        assert_eq!(call(&sim, method, &one, &narrow, None).await.0, 403);
    }
    assert_eq!(call(&sim, Method::GET, HOOKS, &narrow, None).await.0, 403);
    assert_eq!(sim.cloud.read().unwrap().hooks.len(), 1, "the refused calls changed nothing");

    // Hook writes are writes under /2.0/repositories/: faulted and logged.
    sim.configure_cloud(|cloud| cloud.faults.push_back(Fault::RateLimited { retry_after_seconds: None }));
    assert_eq!(call(&sim, Method::DELETE, &one, &access, None).await.0, 429);
    assert_eq!(call(&sim, Method::DELETE, &one, &access, None).await.0, 204);
    let calls = sim.cloud.read().unwrap().calls.clone();
    let last: Vec<u16> = calls.iter().rev().take(2).map(|c| c.status).collect();
    assert_eq!(last, [204, 429]);
    assert!(calls.iter().all(|c| c.path.starts_with(HOOKS)));
}

#[tokio::test]
async fn branches_are_listed_with_their_heads_filtered_and_paged() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let access = app_token(&sim).await;
    let (status, all) = call(&sim, Method::GET, BRANCHES, &access, None).await;
    assert_eq!((status, all["size"].as_u64()), (200, Some(2)));
    let names: Vec<&str> = all["values"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["feature/login", "main"]);
    assert_eq!(all["values"][0]["type"], "branch");
    assert_eq!(all["values"][0]["target"]["type"], "commit");
    assert_eq!(all["values"][0]["target"]["hash"], DEMO_PR_COMMIT);

    let (status, main) = call(&sim, Method::GET, &format!("{BRANCHES}?q=name%3D%22main%22"), &access, None).await;
    assert_eq!((status, main["size"].as_u64()), (200, Some(1)));
    assert_eq!(main["values"][0]["target"]["hash"], "141977fedf5cf35aa290ac87d4b5177ac4cd9de1");
    let (_, none) = call(&sim, Method::GET, &format!("{BRANCHES}?q=name%3D%22mai%22"), &access, None).await;
    assert_eq!(none["size"], 0, "= is equality");
    let (_, login) = call(&sim, Method::GET, &format!("{BRANCHES}?q=name%20~%20%22LOGIN%22"), &access, None).await;
    assert_eq!(login["values"][0]["name"], "feature/login");
    assert_eq!(call(&sim, Method::GET, &format!("{BRANCHES}?q=nonsense"), &access, None).await.0, 400);

    // Paged as every Cloud list, `next` keeping the filter.
    sim.configure_cloud(|cloud| {
        let mut extra = cloud.branches[0].clone();
        extra.name = "release/1".into();
        cloud.branches.push(extra);
    });
    let (_, first) = call(&sim, Method::GET, &format!("{BRANCHES}?pagelen=2"), &access, None).await;
    assert_eq!((first["size"].as_u64(), first["values"].as_array().unwrap().len()), (Some(3), 2));
    let next = url::Url::parse(first["next"].as_str().unwrap()).unwrap();
    let (_, second) =
        call(&sim, Method::GET, &format!("{}?{}", next.path(), next.query().unwrap()), &access, None).await;
    assert_eq!((second["page"].as_u64(), second["values"][0]["name"].as_str()), (Some(2), Some("release/1")));
    assert!(second.get("next").is_none());

    sim.configure_cloud(|cloud| cloud.consumers[0].scopes = vec!["account".into(), "webhook".into()]);
    let narrow = app_token(&sim).await;
    let (status, lacking) = call(&sim, Method::GET, BRANCHES, &narrow, None).await;
    assert_eq!((status, lacking["error"]["detail"]["required"].clone()), (403, json!(["repository"])));
    assert_eq!(
        call(&sim, Method::GET, "/2.0/repositories/acme/nothing-here/refs/branches", &access, None).await.0,
        404
    );
}
