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

/// Posts a file to `/api/v1/integrations/import{query}` as `caller`; the
/// answer is checked against the OpenAPI document.
async fn import(w: &World, caller: &str, query: &str, yaml: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let path = format!("/api/v1/integrations/import{query}");
    let request = reqwest::Client::new()
        .post(format!("{}{path}", w.app.base))
        .bearer_auth(w.token(caller))
        .header("content-type", "application/yaml")
        .body(yaml.to_owned());
    crate::contract::checked(Method::POST, &path, request.send().await.unwrap()).await
}

fn summary(created: &[&str], updated: &[&str], unchanged: &[&str]) -> serde_json::Value {
    json!({"created": created, "updated": updated, "unchanged": unchanged, "to_connect": [], "new_key_pairs": []})
}

/// A summary whose `connect` wait for an admin's approval in Bitbucket.
fn summary_to_connect(created: &[&str], updated: &[&str], connect: &[&str]) -> serde_json::Value {
    json!({"created": created, "updated": updated, "unchanged": [], "to_connect": connect, "new_key_pairs": []})
}

/// `summary` saying that `links` were given a new key pair.
fn with_new_key_pairs(mut summary: serde_json::Value, links: &[&str]) -> serde_json::Value {
    summary["new_key_pairs"] = json!(links);
    summary
}

/// What is stored, as the export shows it, and each integration's webhook secret.
async fn stored(w: &World) -> (String, Vec<(String, String)>) {
    let (_, yaml) = w.call(w.token("account admin"), Method::GET, "/api/v1/integrations/export", None).await;
    let mut secrets = Vec::new();
    let (_, list) = w.call(w.token("account admin"), Method::GET, "/api/v1/integrations", None).await;
    for item in list["items"].as_array().unwrap() {
        let path = format!("/api/v1/integrations/{}/webhook", item["id"].as_str().unwrap());
        let (_, webhook) = w.call(w.token("account admin"), Method::GET, &path, None).await;
        secrets.push((item["name"].as_str().unwrap().to_owned(), webhook["secret"].as_str().unwrap().to_owned()));
    }
    secrets.sort();
    (yaml.as_str().unwrap().to_owned(), secrets)
}

async fn integration_count(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM integrations").fetch_one(&w.app.pool).await.unwrap()
}

#[tokio::test]
async fn a_round_trip_through_the_file_gives_the_same_integrations_webhook_secrets_included() {
    use bitbucket_simulator::cloud::{DEMO_KEY, DEMO_SECRET};
    let (w, simulator) = crate::cloud::cloud_world().await;
    create(&w, "account admin", "dc-default", None, &simulator.url).await;
    create(&w, "team admin", "dc-team", Some(w.team), &simulator.url).await;
    crate::cloud::create(&w, "cloud-team", "client_credentials").await;
    // Pull-request comments and webhook options other than the defaults, so
    // that a file that lost them would show.
    for (name, options) in [
        ("dc-team", json!({"pr_comments": "always", "disable_webhooks": true})),
        ("cloud-team", json!({"pr_comments": "off", "manage_webhooks": false, "disable_polling": true})),
    ] {
        let path = integration_path(&w, name).await;
        let (status, edited) =
            w.call(w.token("account admin"), Method::PATCH, &path, Some(json!({"options": options}))).await;
        assert_eq!(status, 200, "{edited}");
    }
    let (before, secrets) = stored(&w).await;
    // `off` quoted: YAML 1.1 readers would take it for false.
    for choice in ["always", "'off'", "failures"] {
        assert!(before.contains(&format!("    pr_comments: {choice}\n")), "exported: {before}");
    }
    let options_of = |name: &str| {
        let entry = file::parse(&before).unwrap().into_iter().find(|e| e.name == name).unwrap();
        (entry.options.manage_webhooks, entry.options.disable_polling, entry.options.disable_webhooks)
    };
    assert_eq!(
        [options_of("dc-default"), options_of("dc-team"), options_of("cloud-team")],
        [(true, false, false), (false, false, true), (false, true, false)],
        "exported under options, for both providers: {before}"
    );

    // Fill in every placeholder, the webhook secrets included, then delete everything.
    let mut filled = before
        .replace(&format!("<fill in: the HTTP access token of {DEMO_USER}>"), DEMO_TOKEN)
        .replace(&format!("<fill in: the secret of OAuth consumer {DEMO_KEY}>"), DEMO_SECRET);
    for (name, secret) in &secrets {
        let entry = filled.find(&format!("- name: {name}\n")).unwrap();
        let placeholder = filled[entry..].find("webhook_secret: ").unwrap() + entry + "webhook_secret: ".len();
        let end = filled[placeholder..].find('\n').unwrap() + placeholder;
        filled.replace_range(placeholder..end, secret);
    }
    assert!(!filled.lines().any(|l| !l.starts_with('#') && l.contains("<fill in")), "{filled}");
    let (_, list) = w.call(w.token("account admin"), Method::GET, "/api/v1/integrations", None).await;
    for item in list["items"].as_array().unwrap() {
        let path = format!("/api/v1/integrations/{}", item["id"].as_str().unwrap());
        assert_eq!(w.call(w.token("account admin"), Method::DELETE, &path, None).await.0, 204);
    }

    // A dry run says what would happen and writes nothing.
    let (status, answer) = import(&w, "account admin", "?dry_run=true", &filled).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, summary(&["cloud-team", "dc-default", "dc-team"], &[], &[]));
    assert_eq!(integration_count(&w).await, 0, "a dry run writes nothing");

    let (status, answer) = import(&w, "account admin", "", &filled).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, summary(&["cloud-team", "dc-default", "dc-team"], &[], &[]));
    let (after, secrets_after) = stored(&w).await;
    assert_eq!(after, before, "the same integrations");
    assert_eq!(secrets_after, secrets, "the same webhook secrets: Bitbucket's webhooks keep working");
    // A delivery signed with the old secret is accepted.
    let (_, list) =
        w.call(w.token("account admin"), Method::GET, "/api/v1/integrations?provider=bitbucket_datacenter", None).await;
    let slug = list["items"].as_array().unwrap().iter().find(|i| i["name"] == "dc-team").unwrap()["slug"].clone();
    let secret = &secrets.iter().find(|(name, _)| name == "dc-team").unwrap().1;
    let body = br#"{"eventKey":"diagnostics:ping","date":"2026-11-30T10:00:00+0000","test":true}"#;
    let delivery = reqwest::Client::new()
        .post(format!("{}/webhooks/bitbucket/{}", w.app.base, slug.as_str().unwrap()))
        .header("x-event-key", "diagnostics:ping")
        .header("x-request-id", "round-trip-1")
        .header("x-hub-signature", bitgate_core::webhooks::signature::sign(secret.as_bytes(), body))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(delivery.status().is_success(), "{}", delivery.status());

    // Importing again changes nothing, and says so; nothing is audited as changed.
    let changes_before = w.app.audit_actions().await.iter().filter(|a| a.starts_with("integration.")).count();
    let (status, answer) = import(&w, "account admin", "", &filled).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &[], &["cloud-team", "dc-default", "dc-team"])));
    let (status, answer) = import(&w, "account admin", "", &before).await;
    assert_eq!(
        (status.as_u16(), answer),
        (200, summary(&[], &[], &["cloud-team", "dc-default", "dc-team"])),
        "placeholders keep the stored secrets"
    );
    let changes_after = w.app.audit_actions().await.iter().filter(|a| a.starts_with("integration.")).count();
    assert_eq!(changes_after, changes_before);

    // A change updates just that integration.
    let relabelled = filled.replacen("  - prod\n", "  - staging\n", 1);
    assert_ne!(relabelled, filled);
    let (status, answer) = import(&w, "account admin", "", &relabelled).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &["dc-default"], &["cloud-team", "dc-team"])));
    assert!(stored(&w).await.0.contains("staging"));
    let actions = w.app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "integrations.imported").count(), 4, "{actions:?}");

    // The pull-request comments of one entry changed in the file: that integration updated.
    assert_eq!(relabelled.matches("pr_comments: always").count(), 1, "dc-team's alone: {relabelled}");
    let quieter = relabelled.replace("pr_comments: always", "pr_comments: failures");
    let (status, answer) = import(&w, "account admin", "", &quieter).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &["dc-team"], &["cloud-team", "dc-default"])));
    assert_eq!(pr_comments_of(&w, "dc-team").await, "failures");
    // A value that is none of the choices: refused where it is, nothing written.
    let (stored_before, _) = stored(&w).await;
    let wrong = quieter.replace("pr_comments: 'off'", "pr_comments: never");
    let (status, answer) = import(&w, "account admin", "", &wrong).await;
    assert_eq!(status, 422, "{answer}");
    let details = answer["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{answer}");
    assert!(details[0]["field"].as_str().unwrap().ends_with("(cloud-team).options.pr_comments"), "{answer}");
    assert_eq!(details[0]["message"], "must be off, failures or always");
    assert_eq!(stored(&w).await.0, stored_before, "nothing was written");
    assert_eq!(pr_comments_of(&w, "cloud-team").await, "off");

    // A webhook option changed in the file: that integration updated, the others not.
    let polling = in_entry(&quieter, "cloud-team", "disable_polling: true", "disable_polling: false");
    let (status, answer) = import(&w, "account admin", "", &polling).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &["cloud-team"], &["dc-default", "dc-team"])));
    let (_, cloud_team) =
        w.call(w.token("account admin"), Method::GET, &integration_path(&w, "cloud-team").await, None).await;
    assert_eq!(
        (&cloud_team["options"]["manage_webhooks"], &cloud_team["options"]["disable_polling"]),
        (&json!(false), &json!(false))
    );
    // Management asked for where webhooks are disabled: refused as the API refuses it, nothing written.
    let (stored_before, _) = stored(&w).await;
    let managed = in_entry(&polling, "dc-team", "manage_webhooks: false", "manage_webhooks: true");
    let (status, answer) = import(&w, "account admin", "", &managed).await;
    assert_eq!(status, 422, "{answer}");
    let details = answer["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{answer}");
    assert!(details[0]["field"].as_str().unwrap().ends_with("(dc-team).options.manage_webhooks"), "{answer}");
    assert_eq!(details[0]["code"], "webhooks_disabled");
    assert_eq!(stored(&w).await.0, stored_before, "nothing was written");
}

/// `text` with the first `from` after the entry named `name` replaced by `to`.
fn in_entry(text: &str, name: &str, from: &str, to: &str) -> String {
    let entry = text.find(&format!("- name: {name}\n")).unwrap_or_else(|| panic!("no {name} in {text}"));
    let at = entry + text[entry..].find(from).unwrap_or_else(|| panic!("no {from} in {name}: {text}"));
    format!("{}{to}{}", &text[..at], &text[at + from.len()..])
}

async fn pr_comments_of(w: &World, name: &str) -> String {
    let (_, found) = w.call(w.token("account admin"), Method::GET, &integration_path(w, name).await, None).await;
    found["options"]["pr_comments"].as_str().unwrap().to_owned()
}

/// `/api/v1/integrations/{id}` of the integration of this name.
async fn integration_path(w: &World, name: &str) -> String {
    let (_, list) = w.call(w.token("account admin"), Method::GET, "/api/v1/integrations", None).await;
    let item = list["items"].as_array().unwrap().iter().find(|i| i["name"] == name).unwrap();
    format!("/api/v1/integrations/{}", item["id"].as_str().unwrap())
}

#[tokio::test]
async fn every_problem_is_listed_at_once_and_nothing_is_written() {
    let (w, simulator) = world_with_bitbucket().await;
    create(&w, "account admin", "dc-default", None, &simulator.url).await;
    let url = &simulator.url;
    let count = integration_count(&w).await;
    let problems = |answer: &serde_json::Value| -> Vec<(String, String)> {
        assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
        answer["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["field"].as_str().unwrap().to_owned(), d["message"].as_str().unwrap().to_owned()))
            .collect()
    };

    // Invalid YAML: its line and column.
    let (status, answer) = import(&w, "account admin", "", "version: 1\nintegrations: [\n  - name: x\n").await;
    assert_eq!(status, 422);
    assert!(problems(&answer)[0].0.starts_with("line "), "{answer}");

    // Problems of the file itself, all at once: an unknown field, a wrong type, a name twice, two defaults.
    let dc = format!("datacenter: {{api_url: {url}, username: u, access_token: t}}");
    let file = format!(
        "version: 1\nintegrations:\n\
         - {{name: a, provider: bitbucket_datacenter, space: team, colour: red, {dc}}}\n\
         - {{name: b, provider: bitbucket_datacenter, space: team, labels: 3, {dc}}}\n\
         - {{name: c, provider: bitbucket_datacenter, space: team, {dc}}}\n\
         - {{name: C, provider: bitbucket_datacenter, space: team, {dc}}}\n\
         - {{name: d, provider: bitbucket_datacenter, scope: default, {dc}}}\n\
         - {{name: e, provider: bitbucket_datacenter, scope: default, {dc}}}\n"
    );
    let (status, answer) = import(&w, "account admin", "", &file).await;
    assert_eq!(status, 422);
    let found = problems(&answer);
    let places: Vec<&str> = found.iter().map(|(place, _)| place.as_str()).collect();
    assert!(places.contains(&"integrations[0] (a).colour"), "{found:?}");
    assert!(places.contains(&"integrations[1] (b).labels"), "{found:?}");
    assert!(found.iter().any(|(p, m)| p == "integrations[3] (C)" && m.contains("in the file twice")), "{found:?}");
    assert!(found.iter().any(|(p, m)| p == "integrations[5] (e)" && m.contains("second default")), "{found:?}");

    // Problems found against Bitgate and Bitbucket: a space that does not exist, a
    // default that exists, a failing connection check, a token missing for a new
    // one; the valid entry beside them is not written either.
    let file = format!(
        "version: 1\nintegrations:\n\
         - {{name: fine, provider: bitbucket_datacenter, space: team, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n\
         - {{name: lost, provider: bitbucket_datacenter, space: nowhere, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n\
         - {{name: second-default, provider: bitbucket_datacenter, scope: default, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n\
         - {{name: refused, provider: bitbucket_datacenter, space: team, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: wrong-token}}}}\n\
         - {{name: tokenless, provider: bitbucket_datacenter, space: team, datacenter: {{api_url: {url}, username: {DEMO_USER}}}}}\n\
         - {{name: short-secret, provider: bitbucket_datacenter, space: team, webhook_secret: short, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n"
    );
    let (status, answer) = import(&w, "account admin", "", &file).await;
    assert_eq!(status, 422);
    let found = problems(&answer);
    let has = |place: &str, words: &str| found.iter().any(|(p, m)| p == place && m.contains(words));
    assert!(has("integrations[1] (lost).space", "no space is named"), "{found:?}");
    assert!(has("integrations[2] (second-default).scope", "dc-default is the default"), "{found:?}");
    assert!(has("integrations[4] (tokenless).datacenter.access_token", "missing"), "{found:?}");
    assert!(has("integrations[5] (short-secret).webhook_secret", "at least 16"), "{found:?}");
    // A failed check is on the field to change, as the API's is.
    assert!(has("integrations[3] (refused).datacenter.access_token", "token"), "{found:?}");
    assert_eq!(found.len(), 5, "the valid entry has no problem: {found:?}");
    // Alone beside a valid entry, the failing check is the one problem.
    let only_refused = format!(
        "version: 1\nintegrations:\n\
         - {{name: fine, provider: bitbucket_datacenter, space: team, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n\
         - {{name: refused, provider: bitbucket_datacenter, space: team, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: wrong-token}}}}\n"
    );
    let (status, answer) = import(&w, "account admin", "", &only_refused).await;
    assert_eq!(status, 422);
    only_problem(&answer, "integrations[1] (refused).datacenter.access_token", "check_token");
    assert_eq!(integration_count(&w).await, count, "nothing was written");

    // The provider of an existing name cannot change.
    let cloud = "version: 1\nintegrations:\n- {name: dc-default, provider: bitbucket_cloud, scope: default, \
                 cloud: {workspace: acme, client_id: k, client_secret: s}}\n";
    let (status, answer) = import(&w, "account admin", "", cloud).await;
    assert_eq!(status, 422);
    assert!(problems(&answer)[0].1.contains("a provider cannot change"), "{answer}");

    // Bad requests: not YAML, not a boolean, too large.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/integrations/import", w.app.base))
        .bearer_auth(w.token("account admin"))
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(import(&w, "account admin", "?dry_run=perhaps", "version: 1").await.0, 400);
    let huge = format!("version: 1\n# {}\nintegrations: []\n", "x".repeat(1024 * 1024));
    assert_eq!(import(&w, "account admin", "", &huge).await.0, 413);
    assert_eq!(integration_count(&w).await, count, "nothing was written");
}

#[tokio::test]
async fn import_follows_the_permission_table() {
    let (w, simulator) = world_with_bitbucket().await;
    let url = &simulator.url;
    let entry = |name: &str, place: &str| {
        format!(
            "- {{name: {name}, provider: bitbucket_datacenter, {place}datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n"
        )
    };
    let file = |entries: &[String]| format!("version: 1\nintegrations:\n{}", entries.concat());

    // A space admin imports into their space, by name or as the space given for entries naming none.
    let (status, answer) = import(
        &w,
        "team admin",
        &format!("?space_id={}", w.team),
        &file(&[entry("by-name", "space: team, "), entry("unstated", "")]),
    )
    .await;
    assert_eq!((status.as_u16(), answer), (200, summary(&["by-name", "unstated"], &[], &[])));
    let (_, list) =
        w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations?space_id={}", w.team), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");

    // Not into another space, nor a default, nor the root (the default target) they do not administer.
    let (status, answer) = import(
        &w,
        "team admin",
        "",
        &file(&[entry("sibling", "space: other, "), entry("a-default", "scope: default, "), entry("rooted", "")]),
    )
    .await;
    assert_eq!(status, 422);
    let text = answer.to_string();
    assert!(
        text.contains(r#""integrations[0] (sibling).space","message":"no space is named so, or you cannot see it""#),
        "{text}"
    );
    assert!(text.contains("only account admins import default integrations"), "{text}");
    assert!(text.contains(r#""integrations[2] (rooted).space","message":"names no space"#), "{text}");
    // Nor change an integration of another space by naming it.
    create(&w, "account admin", "other-dc", Some(w.other), url).await;
    let (status, answer) = import(&w, "team admin", "", &file(&[entry("other-dc", "space: team, ")])).await;
    assert_eq!(status, 422);
    assert!(answer.to_string().contains("exists where you cannot change it"), "{answer}");

    // Readers and writers administer nothing: 403 before the file is read; outsiders do not see the space.
    assert_eq!(import(&w, "team reader", "", "not: [yaml").await.0, 403);
    assert_eq!(import(&w, "team writer", "", &file(&[entry("w", "space: team, ")])).await.0, 403);
    assert_eq!(import(&w, "outsider", &format!("?space_id={}", w.team), &file(&[])).await.0, 404);
    assert_eq!(import(&w, "team admin", &format!("?space_id={}", w.other), &file(&[])).await.0, 404);
    // Four imports refused at the door, and four entries refused inside the files above.
    let actions = w.app.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "authorization.denied").count(), 8, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "integrations.imported").count(), 1, "{actions:?}");
}

#[tokio::test]
async fn a_cds_file_lands_in_the_space_given_with_its_options() {
    let (w, simulator) = world_with_bitbucket().await;
    let cds = format!(
        "version: v1.0\nname: my_bitbucket_server\ntype: bitbucketserver\ndescription: \"it's the test repository\"\n\
         url: \"{}\"\nauth:\n    user: {DEMO_USER}\n    token: {DEMO_TOKEN}\n\
         options:\n    disableStatus: false\n    disableStatusDetails: true\n    disablePolling: true\n    disableWebHooks: false\n    \
         disableWebHooksCreation: true\n",
        simulator.url
    );
    let (status, answer) = import(&w, "team admin", &format!("?space_id={}", w.team), &cds).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&["my_bitbucket_server"], &[], &[])));
    let (_, list) =
        w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations?space_id={}", w.team), None).await;
    let item = &list["items"][0];
    assert_eq!((item["name"].as_str(), item["scope"].as_str()), (Some("my_bitbucket_server"), Some("space")));
    assert_eq!(item["options"]["commit_status"], true);
    assert_eq!(item["options"]["status_details"], false);
    assert_eq!(item["options"]["pr_comments"], "failures", "CDS has no such option: the default");
    // disablePolling, and disableWebHooksCreation the opposite of manage_webhooks.
    assert_eq!(
        (
            &item["options"]["manage_webhooks"],
            &item["options"]["disable_polling"],
            &item["options"]["disable_webhooks"]
        ),
        (&json!(false), &json!(true), &json!(false))
    );
    assert_eq!(item["description"], "it's the test repository");
    // Exported as Bitgate's options, and shown on the details page in words.
    let (_, yaml) = w.call(w.token("team admin"), Method::GET, "/api/v1/integrations/export", None).await;
    let yaml = yaml.as_str().unwrap();
    for option in ["manage_webhooks: false", "disable_polling: true", "disable_webhooks: false"] {
        assert!(yaml.contains(&format!("    {option}\n")), "{option}: {yaml}");
    }
    let browser = w.browser("team admin").await;
    let html = browser.get(&format!("/integrations/{}", item["id"].as_str().unwrap())).await.text().await.unwrap();
    assert!(html.contains("Disabled: Bitgate never reads branch heads."), "polling: {html}");
    assert!(html.contains("No: set the webhook up in Bitbucket by hand"), "management: {html}");
    assert!(!html.contains("imported from CDS"), "{html}");
    // disableWebHooks keeps management off whatever disableWebHooksCreation says.
    let disabled = cds
        .replace("my_bitbucket_server", "my_other_server")
        .replace("disableWebHooks: false", "disableWebHooks: true")
        .replace("disableWebHooksCreation: true", "disableWebHooksCreation: false");
    let (status, answer) = import(&w, "team admin", &format!("?space_id={}", w.team), &disabled).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&["my_other_server"], &[], &[])));
    let (_, list) =
        w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations?space_id={}", w.team), None).await;
    let other = list["items"].as_array().unwrap().iter().find(|i| i["name"] == "my_other_server").unwrap();
    assert_eq!(
        (&other["options"]["manage_webhooks"], &other["options"]["disable_webhooks"]),
        (&json!(false), &json!(true))
    );
    // The same file again: unchanged.
    let (status, answer) = import(&w, "team admin", &format!("?space_id={}", w.team), &cds).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &[], &["my_bitbucket_server"])));
}

/// A multipart form body, as the import page's forms send it: (content type, body).
fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "bitgate-test-boundary-7MA4YWxk";
    let mut body = String::new();
    for (name, value) in fields {
        let filename = if *name == "file" { "; filename=\"integrations.yaml\"" } else { "" };
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body.into_bytes())
}

/// Posts the import page's form (multipart, as a browser does) with the
/// session's CSRF token in its first field.
async fn post_import_page(browser: &crate::helpers::Browser, fields: &[(&str, &str)], csrf: &str) -> reqwest::Response {
    let fields: Vec<(&str, &str)> = [("csrf_token", csrf)].into_iter().chain(fields.iter().copied()).collect();
    post_multipart(browser, "/integrations/import", &fields).await
}

async fn post_multipart(browser: &crate::helpers::Browser, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let (content_type, body) = multipart(fields);
    let request = browser
        .client
        .post(browser.url(path))
        .header("origin", &browser.base)
        .header("accept", "text/html")
        .header("content-type", content_type)
        .body(body);
    browser.send(request).await
}

#[tokio::test]
async fn the_import_form_keeps_the_csrf_token_out_of_its_url() {
    let (w, _simulator) = world_with_bitbucket().await;
    let browser = w.browser("team admin").await;
    let html = browser.get("/integrations/import").await.text().await.unwrap();
    let csrf = browser.csrf_token("/").await;
    assert!(html.contains(r#"action="/integrations/import""#), "{html}");
    assert!(!html.contains("?csrf_token"), "no token in a URL");
    assert!(html.contains(&format!(r#"name="csrf_token" value="{csrf}""#)), "a field of the form carries it");

    // The token in the query alone, as the form's URL carried it before: refused.
    let file = "version: 1\nintegrations: []\n";
    let in_the_url = post_multipart(
        &browser,
        &format!("/integrations/import?csrf_token={csrf}"),
        &[("step", "preview"), ("file", file)],
    )
    .await;
    assert_eq!(in_the_url.status(), 403);
    // In a field, wherever it stands among the fields: accepted.
    let after_the_file =
        post_multipart(&browser, "/integrations/import", &[("step", "preview"), ("file", file), ("csrf_token", &csrf)])
            .await;
    assert_eq!(after_the_file.status(), 200);
    let wrong = post_import_page(&browser, &[("step", "preview"), ("file", file)], "forged").await;
    assert_eq!(wrong.status(), 403);
}

#[tokio::test]
async fn the_import_page_previews_then_applies_and_the_export_downloads() {
    let (w, simulator) = world_with_bitbucket().await;
    let browser = w.browser("team admin").await;
    let page = browser.get("/integrations/import").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("Import integrations") && html.contains(">team</option>"), "{html}");
    assert!(!html.contains(">other</option>"), "only the spaces they administer");
    let csrf = browser.csrf_token("/").await;
    let file = format!(
        "version: 1\nintegrations:\n- {{name: from-the-browser, provider: bitbucket_datacenter, space: team, \
         datacenter: {{api_url: {}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n",
        simulator.url
    );
    let team = w.team.to_string();

    // Without the session's CSRF token: refused.
    assert_eq!(post_import_page(&browser, &[("step", "preview"), ("file", &file)], "wrong").await.status(), 403);

    // The preview: what would be created; nothing written yet.
    let preview =
        post_import_page(&browser, &[("step", "preview"), ("file", &file), ("text", ""), ("space_id", &team)], &csrf)
            .await;
    assert_eq!(preview.status(), 200);
    let html = preview.text().await.unwrap();
    assert!(html.contains("Will be created") && html.contains("<li>from-the-browser</li>"), "{html}");
    assert!(html.contains("Apply import"), "{html}");
    assert_eq!(integration_count(&w).await, 0);

    // Apply: written, then the list with a flash.
    let applied = post_import_page(&browser, &[("step", "apply"), ("text", &file), ("space_id", &team)], &csrf).await;
    assert_eq!(applied.status(), 303);
    assert_eq!(crate::helpers::location(&applied), "/");
    let home = browser.get("/").await.text().await.unwrap();
    assert!(home.contains("Imported. Created: from-the-browser."), "{home}");
    assert_eq!(integration_count(&w).await, 1);

    // The same file again: nothing to change, no apply button.
    let html = post_import_page(&browser, &[("step", "preview"), ("text", &file), ("space_id", &team)], &csrf)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Nothing to change") && !html.contains("Apply import"), "{html}");

    // Problems: listed with their places, the text kept to fix; nothing written.
    let bad = file.replace("space: team", "space: other").replace("from-the-browser", "second");
    let answer = post_import_page(&browser, &[("step", "preview"), ("text", &bad), ("space_id", &team)], &csrf).await;
    assert_eq!(answer.status(), 422);
    let html = answer.text().await.unwrap();
    assert!(html.contains("Nothing was imported: fix this problem"), "{html}");
    assert!(html.contains("<code>integrations[0] (second).space</code>"), "{html}");
    assert!(html.contains("space: other"), "the text is kept to fix it");
    let empty = post_import_page(&browser, &[("step", "preview"), ("text", "  ")], &csrf).await;
    assert_eq!(empty.status(), 422);
    assert!(empty.text().await.unwrap().contains("Choose a file, or paste its content."));
    assert_eq!(integration_count(&w).await, 1);

    // The export: a YAML download of what they administer.
    let export = browser.get("/integrations/export").await;
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/yaml");
    assert!(export.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let yaml = export.text().await.unwrap();
    assert_eq!(names(&yaml), [("from-the-browser".to_owned(), Scope::Space("team".into()))]);
    assert!(!yaml.contains(DEMO_TOKEN));

    // Readers administer nothing: no import page.
    let reader = w.browser("team reader").await;
    assert_eq!(reader.get("/integrations/import").await.status(), 403);
}

/// The message of a 422's one problem, after checking its field and code.
fn only_problem<'a>(answer: &'a serde_json::Value, field: &str, code: &str) -> &'a str {
    let details = answer["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{answer}");
    assert_eq!((details[0]["field"].as_str(), details[0]["code"].as_str()), (Some(field), Some(code)), "{answer}");
    details[0]["message"].as_str().unwrap()
}

/// What a space admin's import could do before: send the stored token of an
/// integration to a server of theirs by changing its API URL without giving
/// the token again, and move an integration away from the spaces of its
/// stacks. Both are refused as the API refuses them, through the API and
/// the import page alike (the CLI: `cli.rs`), and nothing is written.
#[tokio::test]
async fn the_import_refuses_what_the_api_refuses_a_stored_token_sent_elsewhere_and_stacks_left_outside() {
    let (w, simulator) = world_with_bitbucket().await;
    let attacker = crate::helpers::Listener::start().await;
    create(&w, "team admin", "team-dc", Some(w.team), &simulator.url).await;
    let before = stored(&w).await;
    let entry = |api_url: &str, space: &str| {
        format!(
            "version: 1\nintegrations:\n- {{name: team-dc, provider: bitbucket_datacenter, space: {space}, \
             datacenter: {{api_url: {api_url}, username: {DEMO_USER}}}}}\n"
        )
    };
    let elsewhere = entry(&attacker.url, "team");

    // The API, as a dry run and for real.
    for query in ["?dry_run=true", ""] {
        let (status, answer) = import(&w, "team admin", query, &elsewhere).await;
        assert_eq!(status, 422, "{query}: {answer}");
        let message = only_problem(&answer, "integrations[0] (team-dc).datacenter.access_token", "token_required");
        assert!(message.contains("access token again"), "{answer}");
    }

    // The import page: its preview and its apply.
    let browser = w.browser("team admin").await;
    let csrf = browser.csrf_token("/").await;
    let team = w.team.to_string();
    for step in ["preview", "apply"] {
        let answer =
            post_import_page(&browser, &[("step", step), ("text", &elsewhere), ("space_id", &team)], &csrf).await;
        assert_eq!(answer.status(), 422, "{step}");
        let html = answer.text().await.unwrap();
        assert!(html.contains("<code>integrations[0] (team-dc).datacenter.access_token</code>"), "{step}: {html}");
        assert!(html.contains("access token again"), "{step}: {html}");
    }
    assert_eq!(attacker.connections(), 0, "not even the version probe reached the new URL");
    assert_eq!(stored(&w).await, before, "nothing was written");

    // Nor under a trust root the file chose: a CA certificate of theirs needs the token too.
    let their_ca = bitbucket_simulator::Simulator::start(
        bitbucket_simulator::DataCenter::sample(),
        bitbucket_simulator::Transport::Tls,
    )
    .await
    .unwrap()
    .ca_pem
    .clone()
    .unwrap();
    let trusting = format!(
        "version: 1\nintegrations:\n- name: team-dc\n  provider: bitbucket_datacenter\n  space: team\n  datacenter:\n    \
         api_url: {}\n    username: {DEMO_USER}\n    ca_certificate: |\n      {}\n",
        simulator.url,
        their_ca.trim().replace('\n', "\n      ")
    );
    let (status, answer) = import(&w, "team admin", "", &trusting).await;
    assert_eq!(status, 422, "{answer}");
    let message = only_problem(&answer, "integrations[0] (team-dc).datacenter.access_token", "token_required");
    assert!(message.contains("CA certificate"), "{answer}");
    assert_eq!(stored(&w).await, before, "nothing was written");

    // With the token given, the new URL is checked like any other.
    let with_token = elsewhere
        .replace(&format!("username: {DEMO_USER}"), &format!("username: {DEMO_USER}, access_token: {DEMO_TOKEN}"));
    let (status, _) = import(&w, "team admin", "?dry_run=true", &with_token).await;
    assert_eq!(status, 422, "the attacker's server does not answer as Bitbucket");
    assert!(attacker.connections() > 0, "the token given was sent, as the file's author chose");

    // A stack in `team` could not use it from `other`: refused, saying which.
    let (_, list) = w.call(w.token("team admin"), Method::GET, "/api/v1/integrations", None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, found) = w
        .call(
            w.token("team writer"),
            Method::GET,
            &format!("/api/v1/integrations/{id}/repositories?query=my-repo"),
            None,
        )
        .await;
    let stack = json!({"name": "web", "space_id": w.team, "integration_id": id,
                       "repository": found["items"][0]["name"], "branch": "main"});
    let (status, _) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(stack)).await;
    assert_eq!(status, 201);
    let before = stored(&w).await;
    let moved = entry(&simulator.url, "other");
    let (status, answer) = import(&w, "account admin", "", &moved).await;
    assert_eq!(status, 422, "{answer}");
    let message = only_problem(&answer, "integrations[0] (team-dc).space", "stacks_outside");
    assert!(message.contains("web"), "names the stack: {answer}");
    assert_eq!(stored(&w).await, before, "nothing was written");
    // Up to root, which holds `team`, is fine.
    let (status, answer) = import(&w, "account admin", "", &entry(&simulator.url, "root")).await;
    assert_eq!((status.as_u16(), &answer["updated"]), (200, &json!(["team-dc"])), "{answer}");
}

/// A file of a few KiB whose aliases name aliases (a "billion laughs"), wide
/// or deep, is refused as any invalid file is, at once, the limit named in
/// the one problem listed, and nothing is written.
#[tokio::test]
async fn an_alias_bomb_is_refused_at_once_as_an_invalid_file_and_nothing_is_written() {
    let w = crate::world::world().await;
    let entry = "version: 1\nintegrations:\n- {name: bombed, provider: bitbucket_datacenter, space: team, \
                 datacenter: {api_url: https://bitbucket.example.com, username: u, access_token: t}}\n";
    // A million values in 2 KiB: within what serde_yaml allowed (a hundred alias jumps per event).
    let mut wide = format!("{entry}lol0: &lol0 [{}]\n", ["lol"; 100].join(", "));
    for level in 1..3 {
        wide.push_str(&format!("lol{level}: &lol{level} [{}]\n", vec![format!("*lol{}", level - 1); 100].join(", ")));
    }
    let mut deep = format!("{entry}d0: &d0 [x]\n");
    for level in 1..9 {
        deep.push_str(&format!("d{level}: &d{level} [*d{p}, *d{p}]\n", p = level - 1));
    }
    for level in 9..40 {
        deep.push_str(&format!("d{level}: &d{level} [*d{p}]\n", p = level - 1));
    }
    for (bomb, limit) in [(&wide, "more than 100000 values"), (&deep, "nested more than 16 deep")] {
        let started = std::time::Instant::now();
        let (status, answer) = import(&w, "account admin", "", bomb).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
        let details = answer["error"]["details"].as_array().unwrap();
        assert_eq!(details.len(), 1, "{answer}");
        assert!(details[0]["field"].as_str().unwrap().starts_with("line "), "{answer}");
        assert!(details[0]["message"].as_str().unwrap().contains(limit), "{answer}");
    }
    assert_eq!(integration_count(&w).await, 0, "nothing was written");
}

/// An OAuth 2.0 application link's entry, of Bitgate's own shape, in the team space.
fn linked_file(name: &str, api_url: &str, client_id: &str, secret: Option<&str>) -> String {
    let secret = secret.map(|s| format!(", client_secret: {s}")).unwrap_or_default();
    format!(
        "version: 1\nintegrations:\n- {{name: {name}, provider: bitbucket_datacenter, space: team, \
         datacenter: {{api_url: {api_url}, auth: oauth2, oauth2: {{client_id: {client_id}{secret}}}}}}}\n"
    )
}

/// A Data Center OAuth 2.0 link through the file: its client checked with
/// Bitbucket before it is created `pending_authorization` (the approval is
/// the browser's), exported with a placeholder for its secret and no
/// approving account, and read back as unchanged.
#[tokio::test]
async fn an_oauth2_link_is_imported_checked_and_pending_connect_and_its_secret_never_exported() {
    use bitbucket_simulator::datacenter::{DEMO_OAUTH2_CLIENT_ID as CLIENT_ID, DEMO_OAUTH2_CLIENT_SECRET as SECRET};
    let (w, simulator) = world_with_bitbucket().await;
    let url = &simulator.url;

    // A wrong secret: refused by the check, on the field to change; nothing written.
    for query in ["?dry_run=true", ""] {
        let (status, answer) =
            import(&w, "team admin", query, &linked_file("dc-linked", url, CLIENT_ID, Some("wrong"))).await;
        assert_eq!(status, 422, "{query}: {answer}");
        let message =
            only_problem(&answer, "integrations[0] (dc-linked).datacenter.oauth2.client_secret", "check_client");
        assert!(message.contains("client ID or secret"), "{answer}");
    }
    // No secret: a new integration needs it.
    let (status, answer) = import(&w, "team admin", "", &linked_file("dc-linked", url, CLIENT_ID, None)).await;
    assert_eq!(status, 422, "{answer}");
    let message = only_problem(&answer, "integrations[0] (dc-linked).datacenter.oauth2.client_secret", "invalid");
    assert_eq!(message, "missing: a new integration needs its client secret");
    // A token beside the link: refused, not dropped.
    let with_token = linked_file("dc-linked", url, CLIENT_ID, Some(SECRET))
        .replace("auth: oauth2,", &format!("auth: oauth2, access_token: {DEMO_TOKEN},"));
    let (status, answer) = import(&w, "team admin", "", &with_token).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (dc-linked).datacenter.access_token", "wrong_auth");
    assert_eq!(integration_count(&w).await, 0, "nothing was written");

    // Created, waiting for an admin to connect it.
    let file = linked_file("dc-linked", url, CLIENT_ID, Some(SECRET));
    let (status, answer) = import(&w, "team admin", "?dry_run=true", &file).await;
    assert_eq!((status.as_u16(), answer), (200, summary_to_connect(&["dc-linked"], &[], &["dc-linked"])));
    assert_eq!(integration_count(&w).await, 0, "a dry run writes nothing");
    let (status, answer) = import(&w, "team admin", "", &file).await;
    assert_eq!((status.as_u16(), answer), (200, summary_to_connect(&["dc-linked"], &[], &["dc-linked"])));
    let path = integration_path(&w, "dc-linked").await;
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(found["health"]["state"], "pending_authorization", "{found}");
    assert_eq!(found["datacenter"]["auth"], "oauth2", "{found}");
    assert_eq!(found["datacenter"]["oauth2"]["client_id"], CLIENT_ID, "{found}");
    assert!(found["datacenter"]["username"].is_null(), "no one approved it yet: {found}");

    // Exported: the client id, a placeholder for its secret, no username nor token.
    let (before, _) = stored(&w).await;
    assert!(!before.contains(SECRET), "the client secret is never exported:\n{before}");
    assert!(before.contains("    auth: oauth2\n    oauth2:\n"), "{before}");
    assert!(before.contains(&format!("      client_id: {CLIENT_ID}\n")), "{before}");
    assert!(
        before.contains(&format!(
            "      client_secret: '<fill in: the client secret of application link {CLIENT_ID}>'\n"
        )),
        "{before}"
    );
    assert!(!before.contains("username") && !before.contains("access_token"), "{before}");

    // The export, and the file with the same secret, change nothing.
    let changes_before = w.app.audit_actions().await.iter().filter(|a| a.starts_with("integration.")).count();
    for again in [&before, &file] {
        let (status, answer) = import(&w, "team admin", "", again).await;
        assert_eq!((status.as_u16(), answer), (200, summary(&[], &[], &["dc-linked"])), "{again}");
    }
    let changes_after = w.app.audit_actions().await.iter().filter(|a| a.starts_with("integration.")).count();
    assert_eq!(changes_after, changes_before, "nothing audited as changed");

    // The stored secret goes nowhere else: not to another server, nor for
    // another client, nor under another trust root, without being given again.
    let attacker = crate::helpers::Listener::start().await;
    let ca = bitbucket_simulator::Simulator::start(
        bitbucket_simulator::DataCenter::sample(),
        bitbucket_simulator::Transport::Tls,
    )
    .await
    .unwrap()
    .ca_pem
    .clone()
    .unwrap();
    let trusting = before.replace(
        "    auth: oauth2\n",
        &format!("    auth: oauth2\n    ca_certificate: |\n      {}\n", ca.trim().replace('\n', "\n      ")),
    );
    for (changed, what) in [
        (before.replace(url.as_str(), &attacker.url), "API URL"),
        (before.replace(CLIENT_ID, "another-client"), "client ID"),
        (trusting, "CA certificate"),
    ] {
        assert_ne!(changed, before, "{what}");
        for query in ["?dry_run=true", ""] {
            let (status, answer) = import(&w, "team admin", query, &changed).await;
            assert_eq!(status, 422, "{what}: {answer}");
            only_problem(&answer, "integrations[0] (dc-linked).datacenter.oauth2.client_secret", "secret_required");
        }
    }
    assert_eq!(attacker.connections(), 0, "nothing reached the other server");
    assert_eq!(stored(&w).await.0, before, "nothing was written");

    // A secret given is checked, as a new client's is.
    let wrong = before.replace(&format!("'<fill in: the client secret of application link {CLIENT_ID}>'"), "wrong");
    let (status, answer) = import(&w, "team admin", "", &wrong).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (dc-linked).datacenter.oauth2.client_secret", "check_client");

    // A change that is not the link's (a label) keeps it as it is.
    assert!(!before.contains("labels:"), "{before}");
    let relabelled = before.replace("  options:\n", "  labels:\n  - staging\n  options:\n");
    let (status, answer) = import(&w, "team admin", "", &relabelled).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &["dc-linked"], &[])));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(
        (&found["labels"], &found["datacenter"]["oauth2"]["client_id"]),
        (&json!(["staging"]), &json!(CLIENT_ID))
    );
}

/// Switching how a Data Center integration authenticates through the file:
/// every field of the new way, checked as a creation of that way is.
#[tokio::test]
async fn the_file_switches_a_datacenter_integration_between_a_token_and_an_oauth2_link() {
    use bitbucket_simulator::datacenter::{DEMO_OAUTH2_CLIENT_ID as CLIENT_ID, DEMO_OAUTH2_CLIENT_SECRET as SECRET};
    let (w, simulator) = world_with_bitbucket().await;
    let url = &simulator.url;
    create(&w, "team admin", "team-dc", Some(w.team), url).await;
    let path = integration_path(&w, "team-dc").await;
    let state = |found: &serde_json::Value| {
        (found["datacenter"]["auth"].as_str().map(str::to_owned), found["health"]["state"].as_str().map(str::to_owned))
    };

    // To a link: its secret is required (nothing stored is its).
    let (status, answer) = import(&w, "team admin", "", &linked_file("team-dc", url, CLIENT_ID, None)).await;
    assert_eq!(status, 422, "{answer}");
    let message = only_problem(&answer, "integrations[0] (team-dc).datacenter.oauth2.client_secret", "invalid");
    assert!(message.contains("needs its client secret"), "{answer}");
    let (status, answer) = import(&w, "team admin", "", &linked_file("team-dc", url, CLIENT_ID, Some("wrong"))).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (team-dc).datacenter.oauth2.client_secret", "check_client");
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("access_token".into()), Some("connected".into())), "nothing was written");

    let (status, answer) = import(&w, "team admin", "", &linked_file("team-dc", url, CLIENT_ID, Some(SECRET))).await;
    assert_eq!((status.as_u16(), answer), (200, summary_to_connect(&[], &["team-dc"], &["team-dc"])));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("oauth2".into()), Some("pending_authorization".into())), "{found}");
    assert!(
        found["datacenter"]["username"].is_null() && found["datacenter"]["access_token_last4"].is_null(),
        "{found}"
    );
    let (exported, _) = stored(&w).await;
    assert!(!exported.contains(SECRET) && !exported.contains(DEMO_TOKEN), "{exported}");
    let (status, answer) = import(&w, "team admin", "", &exported).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &[], &["team-dc"])));

    // And back to a token: the token is required, and checked.
    let token_file = |token: &str| {
        format!(
            "version: 1\nintegrations:\n- {{name: team-dc, provider: bitbucket_datacenter, space: team, \
             datacenter: {{api_url: {url}, username: {DEMO_USER}{token}}}}}\n"
        )
    };
    let (status, answer) = import(&w, "team admin", "", &token_file("")).await;
    assert_eq!(status, 422, "{answer}");
    let message = only_problem(&answer, "integrations[0] (team-dc).datacenter.access_token", "invalid");
    assert!(message.contains("needs the token"), "{answer}");
    let (status, answer) = import(&w, "team admin", "", &token_file(", access_token: wrong-token")).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (team-dc).datacenter.access_token", "check_token");
    let (status, answer) = import(&w, "team admin", "", &token_file(&format!(", access_token: {DEMO_TOKEN}"))).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &["team-dc"], &[])));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("access_token".into()), Some("connected".into())), "{found}");
    assert_eq!(found["datacenter"]["username"], DEMO_USER);
    assert!(found["datacenter"]["oauth2"].is_null(), "the link is forgotten: {found}");
    let (exported, _) = stored(&w).await;
    let (status, answer) = import(&w, "team admin", "", &exported).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &[], &["team-dc"])));
}

/// A legacy OAuth 1.0a application link's entry, of Bitgate's own shape, in
/// the team space; `link` is what follows `auth: oauth1` (its `oauth1` mapping).
fn legacy_file(name: &str, api_url: &str, link: &str) -> String {
    format!(
        "version: 1\nintegrations:\n- {{name: {name}, provider: bitbucket_datacenter, space: team, \
         datacenter: {{api_url: {api_url}, auth: oauth1{link}}}}}\n"
    )
}

/// The public key an integration's page shows (`datacenter.oauth1`), and
/// the one stored beside its sealed private key, which must be the same.
async fn public_key(w: &World, path: &str) -> (String, String) {
    let (_, found) = w.call(w.token("team admin"), Method::GET, path, None).await;
    let link = &found["datacenter"]["oauth1"];
    let shown = link["public_key"].as_str().unwrap_or_else(|| panic!("{found}")).to_owned();
    let id = uuid::Uuid::parse_str(found["id"].as_str().unwrap()).unwrap();
    let (stored, private): (String, Vec<u8>) =
        sqlx::query_as("SELECT public_key, private_key FROM datacenter_credentials WHERE integration_id = $1")
            .bind(id)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(stored, shown, "the page shows the stored public key");
    assert!(!String::from_utf8_lossy(&private).contains("PRIVATE KEY"), "the private key is stored sealed");
    (shown, link["consumer_key"].as_str().unwrap().to_owned())
}

/// A Data Center OAuth 1.0a link through the file: Bitgate makes its key
/// pair, checks that the server is Bitbucket's OAuth 1.0a provider, and
/// creates it `pending_authorization` (the public key goes into Bitbucket's
/// link first, then Connect). The export has its consumer key alone, and
/// imported back keeps the key pair.
#[tokio::test]
async fn an_oauth1_link_is_imported_with_a_new_key_pair_pending_connect_and_no_key_exported() {
    let (w, simulator) = world_with_bitbucket().await;
    let url = &simulator.url;

    // A key given, or an account: refused where they are; nothing written.
    let private = "'-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----'";
    let with_key = legacy_file("dc-legacy", url, &format!(", oauth1: {{private_key: {private}}}"));
    let (status, answer) = import(&w, "team admin", "", &with_key).await;
    assert_eq!(status, 422, "{answer}");
    let message = only_problem(&answer, "integrations[0] (dc-legacy).datacenter.oauth1.private_key", "invalid");
    assert!(message.contains("Bitgate makes an OAuth 1.0a link's key pair itself"), "{answer}");
    let as_someone = legacy_file("dc-legacy", url, &format!(", username: {DEMO_USER}"));
    let (status, answer) = import(&w, "team admin", "", &as_someone).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (dc-legacy).datacenter.username", "wrong_auth");
    let spaced = legacy_file("dc-legacy", url, ", oauth1: {consumer_key: 'two words'}");
    let (status, answer) = import(&w, "team admin", "", &spaced).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (dc-legacy).datacenter.oauth1.consumer_key", "invalid");
    // A server that is not Bitbucket's OAuth 1.0a provider (Bitgate itself): refused by the check.
    let (status, answer) = import(&w, "team admin", "", &legacy_file("dc-legacy", &w.app.base, "")).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (dc-legacy).datacenter.api_url", "check_link");
    assert_eq!(integration_count(&w).await, 0, "nothing was written");

    // Created with a key pair of its own, waiting for the link and Connect;
    // a consumer key left out is Bitgate's own, one given is kept.
    let file = format!(
        "{}- {{name: dc-named, provider: bitbucket_datacenter, space: team, \
         datacenter: {{api_url: {url}, auth: oauth1, oauth1: {{consumer_key: ' our-link '}}}}}}\n",
        legacy_file("dc-legacy", url, "")
    );
    let created = with_new_key_pairs(
        summary_to_connect(&["dc-legacy", "dc-named"], &[], &["dc-legacy", "dc-named"]),
        &["dc-legacy", "dc-named"],
    );
    let (status, answer) = import(&w, "team admin", "?dry_run=true", &file).await;
    assert_eq!((status.as_u16(), &answer), (200, &created));
    assert_eq!(integration_count(&w).await, 0, "a dry run writes nothing");
    let (status, answer) = import(&w, "team admin", "", &file).await;
    assert_eq!((status.as_u16(), &answer), (200, &created));
    let path = integration_path(&w, "dc-legacy").await;
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(found["health"]["state"], "pending_authorization", "{found}");
    assert!(found["health"]["message"].as_str().unwrap().contains("public key"), "{found}");
    assert_eq!(found["datacenter"]["auth"], "oauth1", "{found}");
    assert!(found["datacenter"]["username"].is_null() && found["datacenter"]["oauth2"].is_null(), "{found}");
    let (key, consumer_key) = public_key(&w, &path).await;
    assert!(key.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{key}");
    assert_eq!(consumer_key, "bitgate-dc-legacy");
    let named_path = integration_path(&w, "dc-named").await;
    let (named_key, named_consumer_key) = public_key(&w, &named_path).await;
    assert_eq!(named_consumer_key, "our-link", "trimmed, as the API trims it");
    assert_ne!(named_key, key, "a key pair per link");

    // Exported: the consumer key alone, neither half of the key pair.
    let (before, _) = stored(&w).await;
    assert!(before.contains("    auth: oauth1\n"), "{before}");
    assert!(before.contains("    oauth1:\n      consumer_key: bitgate-dc-legacy\n"), "{before}");
    assert!(before.contains("      consumer_key: our-link\n"), "{before}");
    assert!(!before.contains("PRIVATE KEY") && !before.contains("PUBLIC KEY"), "{before}");
    for line in key.lines().chain(named_key.lines()).filter(|line| !line.starts_with("-----")) {
        assert!(!before.contains(line), "no part of a public key: {line}\n{before}");
    }
    assert!(!before.contains("username") && !before.contains("access_token"), "{before}");

    // The export, and the file, change nothing: each link keeps its key pair.
    let changes_before = w.app.audit_actions().await.iter().filter(|a| a.starts_with("integration.")).count();
    for again in [&before, &file] {
        let (status, answer) = import(&w, "team admin", "", again).await;
        assert_eq!((status.as_u16(), answer), (200, summary(&[], &[], &["dc-legacy", "dc-named"])), "{again}");
    }
    let changes_after = w.app.audit_actions().await.iter().filter(|a| a.starts_with("integration.")).count();
    assert_eq!(changes_after, changes_before, "nothing audited as changed");
    assert_eq!(public_key(&w, &path).await, (key.clone(), consumer_key.clone()), "the same key pair");
    assert_eq!(public_key(&w, &named_path).await, (named_key.clone(), named_consumer_key), "the same key pair");

    // The consumer key is the link's in Bitbucket: it does not change.
    let renamed = before.replace("consumer_key: bitgate-dc-legacy", "consumer_key: another-link");
    let (status, answer) = import(&w, "team admin", "", &renamed).await;
    assert_eq!(status, 422, "{answer}");
    let message = only_problem(&answer, "integrations[0] (dc-legacy).datacenter.oauth1.consumer_key", "immutable");
    assert!(message.contains("bitgate-dc-legacy") && message.contains("another-link"), "{message}");
    assert_eq!(stored(&w).await.0, before, "nothing was written");

    // A change that is not the link's (a label) keeps it as it is.
    let relabelled = in_entry(&before, "dc-legacy", "  options:\n", "  labels:\n  - staging\n  options:\n");
    let (status, answer) = import(&w, "team admin", "", &relabelled).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &["dc-legacy"], &["dc-named"])));
    assert_eq!(public_key(&w, &path).await, (key.clone(), consumer_key.clone()));

    // Another server: asked whether it is Bitbucket's provider (the stored
    // consumer signs; no token goes), then connected again. The keys stay.
    let other = bitbucket_simulator::Simulator::start(
        bitbucket_simulator::DataCenter::sample(),
        bitbucket_simulator::Transport::Http,
    )
    .await
    .unwrap();
    let moved = in_entry(&relabelled, "dc-legacy", url.as_str(), &other.url);
    let (status, answer) = import(&w, "team admin", "", &moved).await;
    let moved_summary = json!({"created": [], "updated": ["dc-legacy"], "unchanged": ["dc-named"], "to_connect": ["dc-legacy"],
               "new_key_pairs": []});
    assert_eq!((status.as_u16(), answer), (200, moved_summary));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(
        (&found["datacenter"]["api_url"], &found["health"]["state"]),
        (&json!(other.url.trim_end_matches('/')), &json!("pending_authorization")),
        "{found}"
    );
    assert_eq!(public_key(&w, &path).await, (key, consumer_key));
}

/// Switching a Data Center integration to an OAuth 1.0a link through the
/// file: a new key pair, checked, pending Connect; and back to a token (or
/// on to an OAuth 2.0 link), which forgets the link and its key pair.
#[tokio::test]
async fn the_file_switches_a_datacenter_integration_to_an_oauth1_link_and_back() {
    use bitbucket_simulator::datacenter::{DEMO_OAUTH2_CLIENT_ID as CLIENT_ID, DEMO_OAUTH2_CLIENT_SECRET as SECRET};
    let (w, simulator) = world_with_bitbucket().await;
    let url = &simulator.url;
    create(&w, "team admin", "team-dc", Some(w.team), url).await;
    let path = integration_path(&w, "team-dc").await;
    let state = |found: &serde_json::Value| {
        (found["datacenter"]["auth"].as_str().map(str::to_owned), found["health"]["state"].as_str().map(str::to_owned))
    };

    // Refused by the check: nothing is written.
    let (status, answer) = import(&w, "team admin", "", &legacy_file("team-dc", &w.app.base, "")).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (team-dc).datacenter.api_url", "check_link");
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("access_token".into()), Some("connected".into())), "nothing was written");

    let (status, answer) = import(&w, "team admin", "?dry_run=true", &legacy_file("team-dc", url, "")).await;
    let switched = with_new_key_pairs(summary_to_connect(&[], &["team-dc"], &["team-dc"]), &["team-dc"]);
    assert_eq!((status.as_u16(), answer), (200, switched));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("access_token".into()), Some("connected".into())), "a dry run writes nothing");

    let (status, answer) = import(&w, "team admin", "", &legacy_file("team-dc", url, "")).await;
    let switched = with_new_key_pairs(summary_to_connect(&[], &["team-dc"], &["team-dc"]), &["team-dc"]);
    assert_eq!((status.as_u16(), answer), (200, switched));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("oauth1".into()), Some("pending_authorization".into())), "{found}");
    assert!(
        found["datacenter"]["username"].is_null() && found["datacenter"]["access_token_last4"].is_null(),
        "the token is forgotten: {found}"
    );
    let (key, consumer_key) = public_key(&w, &path).await;
    assert_eq!(consumer_key, "bitgate-team-dc");
    let (exported, _) = stored(&w).await;
    assert!(!exported.contains(DEMO_TOKEN) && !exported.contains("KEY-----"), "{exported}");
    let (status, answer) = import(&w, "team admin", "", &exported).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &[], &["team-dc"])));
    assert_eq!(public_key(&w, &path).await, (key.clone(), consumer_key), "kept");

    // And back to a token: the token is required, and checked; the link is forgotten.
    let token_file = |token: &str| {
        format!(
            "version: 1\nintegrations:\n- {{name: team-dc, provider: bitbucket_datacenter, space: team, \
             datacenter: {{api_url: {url}, username: {DEMO_USER}{token}}}}}\n"
        )
    };
    let (status, answer) = import(&w, "team admin", "", &token_file("")).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (team-dc).datacenter.access_token", "invalid");
    let (status, answer) = import(&w, "team admin", "", &token_file(&format!(", access_token: {DEMO_TOKEN}"))).await;
    assert_eq!((status.as_u16(), answer), (200, summary(&[], &["team-dc"], &[])));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("access_token".into()), Some("connected".into())), "{found}");
    assert!(found["datacenter"]["oauth1"].is_null(), "the link is forgotten: {found}");
    let id = uuid::Uuid::parse_str(found["id"].as_str().unwrap()).unwrap();
    let keys: (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT public_key, private_key FROM datacenter_credentials WHERE integration_id = $1")
            .bind(id)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(keys, (None, None), "its key pair too");

    // To a link again: a new key pair, not the one forgotten; then to an
    // OAuth 2.0 link, which needs its client as a switch from a token does.
    let (status, answer) = import(&w, "team admin", "", &legacy_file("team-dc", url, "")).await;
    let switched = with_new_key_pairs(summary_to_connect(&[], &["team-dc"], &["team-dc"]), &["team-dc"]);
    assert_eq!((status.as_u16(), answer), (200, switched));
    let (again, _) = public_key(&w, &path).await;
    assert_ne!(again, key, "a new key pair");
    let (status, answer) = import(&w, "team admin", "", &linked_file("team-dc", url, CLIENT_ID, None)).await;
    assert_eq!(status, 422, "{answer}");
    only_problem(&answer, "integrations[0] (team-dc).datacenter.oauth2.client_secret", "invalid");
    let (status, answer) = import(&w, "team admin", "", &linked_file("team-dc", url, CLIENT_ID, Some(SECRET))).await;
    assert_eq!((status.as_u16(), answer), (200, summary_to_connect(&[], &["team-dc"], &["team-dc"])));
    let (_, found) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(state(&found), (Some("oauth2".into()), Some("pending_authorization".into())), "{found}");
    assert!(found["datacenter"]["oauth1"].is_null(), "the link is forgotten: {found}");
    let keys: (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT public_key, private_key FROM datacenter_credentials WHERE integration_id = $1")
            .bind(id)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(keys, (None, None), "its key pair too");
}

/// The schema says what the reader says about the ways to authenticate:
/// an entry gives one way's fields, `username` with a token only.
#[test]
fn the_schema_holds_a_datacenter_entry_to_its_way_to_authenticate() {
    let schema = bitgate_core::as_code::schema::schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let file = |datacenter: serde_json::Value| {
        json!({"version": 1, "integrations": [{"name": "n", "provider": "bitbucket_datacenter", "scope": "default",
               "datacenter": datacenter}]})
    };
    let api_url = "https://bitbucket.example.com";
    for valid in [
        json!({"api_url": api_url, "username": "u", "access_token": "t"}),
        json!({"api_url": api_url, "auth": "access_token", "username": "u"}),
        json!({"api_url": api_url, "auth": "oauth2", "oauth2": {"client_id": "c", "client_secret": "s"}}),
        json!({"api_url": api_url, "auth": "oauth2", "oauth2": {"client_id": "c"}}),
        json!({"api_url": api_url, "auth": "oauth1"}),
        json!({"api_url": api_url, "auth": "oauth1", "oauth1": {"consumer_key": "k"}}),
        json!({"api_url": api_url, "auth": "oauth1", "oauth1": {}}),
    ] {
        assert!(validator.is_valid(&file(valid.clone())), "{valid}");
    }
    for invalid in [
        json!({"api_url": api_url, "access_token": "t"}),
        json!({"api_url": api_url, "username": "u", "oauth2": {"client_id": "c"}}),
        json!({"api_url": api_url, "auth": "oauth2"}),
        json!({"api_url": api_url, "auth": "oauth2", "username": "u", "oauth2": {"client_id": "c"}}),
        json!({"api_url": api_url, "auth": "oauth2", "access_token": "t", "oauth2": {"client_id": "c"}}),
        json!({"api_url": api_url, "auth": "oauth2", "oauth2": {"client_secret": "s"}}),
        json!({"api_url": api_url, "auth": "oauth2", "oauth2": {"client_id": "c", "scope": "x"}}),
        json!({"api_url": api_url, "auth": "oauth1", "username": "u"}),
        json!({"api_url": api_url, "auth": "oauth1", "access_token": "t"}),
        json!({"api_url": api_url, "auth": "oauth1", "oauth2": {"client_id": "c"}}),
        json!({"api_url": api_url, "auth": "oauth1", "oauth1": {"private_key": "k"}}),
        json!({"api_url": api_url, "auth": "oauth1", "oauth1": {"public_key": "k"}}),
        json!({"api_url": api_url, "auth": "oauth1", "public_key": "k"}),
        json!({"api_url": api_url, "username": "u", "oauth1": {"consumer_key": "k"}}),
        json!({"api_url": api_url, "auth": "oauth2", "oauth2": {"client_id": "c"}, "oauth1": {}}),
        json!({"api_url": api_url, "auth": "oauth3"}),
    ] {
        assert!(!validator.is_valid(&file(invalid.clone())), "{invalid}");
    }
}
