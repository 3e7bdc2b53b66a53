//! Bitbucket Cloud integrations against the simulator: the consumer checks
//! before saving, both modes, the authorization flow through the callback
//! (Grant, Deny, every refused `state`), tokens that stay fresh (the job,
//! a 401, two processes at once, a broken chain), and secrets that never
//! come back.

use bitbucket_simulator::{
    cloud::{ScopeField, DEMO_KEY, DEMO_PERSONAL_WORKSPACE, DEMO_SECRET, DEMO_WORKSPACE},
    DataCenter, Simulator, Transport,
};
use bitgate_core::{
    integrations::Provider,
    oauth_tokens::{self, Seen},
    secrets::{Binding, Sealed},
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    helpers::{location, Browser, TestApp},
    world::{world_with, World},
};

/// A world whose Bitbucket Cloud is the simulator, with the demo consumer's
/// callback pointing at this Bitgate.
pub(crate) async fn cloud_world() -> (World, Simulator) {
    let simulator = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let world = world_with(&[
        ("BITGATE_OUTBOUND_DENY", ""),
        ("BITGATE_OUTBOUND_TIMEOUT", "2s"),
        ("BITGATE_BITBUCKET_CLOUD_URL", &simulator.url),
        ("BITGATE_BITBUCKET_CLOUD_API_URL", &simulator.url),
    ])
    .await;
    let callback = format!("{}/oauth/bitbucket/callback", world.app.base);
    simulator.configure_cloud(|cloud| cloud.consumers[0].callback_url = Some(callback));
    (world, simulator)
}

/// What a client-credentials integration acts as since May 2026.
const APP_USER: &str = "Bitgate (the consumer's app user)";

pub(crate) fn body(w: &World, name: &str, mode: &str, secret: &str) -> Value {
    json!({
        "name": name, "provider": "bitbucket_cloud", "scope": "space", "space_id": w.team,
        "cloud": {"workspace": DEMO_WORKSPACE, "client_id": DEMO_KEY, "client_secret": secret, "mode": mode},
    })
}

pub(crate) async fn create(w: &World, name: &str, mode: &str) -> Value {
    let (status, created) = w
        .call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(body(w, name, mode, DEMO_SECRET)))
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// A client-credentials integration `cloud` with a stack `site` on
/// acme/website's `main`, and its webhook endpoint; returns the stack's id.
pub(crate) async fn cloud_stack(w: &World) -> (crate::webhooks::Endpoint, String) {
    let id = create(w, "cloud", "client_credentials").await["id"].as_str().unwrap().to_owned();
    let body = json!({"name": "site", "space_id": w.team, "integration_id": id, "repository": "acme/website",
                      "branch": "main"});
    let (status, stack) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(body)).await;
    assert_eq!(status, 201, "{stack}");
    let (_, webhook) =
        w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations/{id}/webhook"), None).await;
    let endpoint = crate::webhooks::Endpoint {
        id,
        url: webhook["url"].as_str().unwrap().to_owned(),
        secret: webhook["secret"].as_str().unwrap().to_owned(),
    };
    (endpoint, stack["id"].as_str().unwrap().to_owned())
}

fn has_no_secret(text: &str) {
    for secret in [DEMO_SECRET, "cloud-access-", "cloud-refresh-", "code_verifier"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
}

/// Clicks Connect in `browser`; returns where Bitbucket's page is.
pub(crate) async fn connect(browser: &Browser, id: &str) -> String {
    let csrf = browser.csrf_token(&format!("/integrations/{id}")).await;
    let answer = browser.post_form(&format!("/integrations/{id}/connect"), &[("csrf_token", &csrf)]).await;
    assert_eq!(answer.status(), 303);
    location(&answer)
}

/// Bitbucket's approval page, answered with `decision`: returns the
/// callback address Bitbucket sends the browser to (path and query).
pub(crate) async fn approve(simulator: &Simulator, authorize_url: &str, decision: &str) -> String {
    let url = url::Url::parse(authorize_url).unwrap();
    assert!(authorize_url.starts_with(&simulator.url), "{authorize_url}");
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256", "PKCE is used");
    let page = reqwest::get(authorize_url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Grant access"), "{page}");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client
        .post(format!("{}/site/oauth2/authorize", simulator.url))
        .form(&[
            ("client_id", query["client_id"].as_str()),
            ("state", query["state"].as_str()),
            ("code_challenge", query["code_challenge"].as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    let target = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    format!("{}?{}", target.path(), target.query().unwrap_or_default())
}

async fn integration(w: &World, id: &str) -> Value {
    let (status, found) = w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(status, 200);
    found
}

#[tokio::test]
async fn client_credentials_connect_at_once_and_show_what_bitbucket_granted() {
    let (w, _simulator) = cloud_world().await;
    let created = create(&w, "Cloud main", "client_credentials").await;
    assert_eq!(created["health"]["state"], "connected", "{created}");
    assert_eq!(created["cloud"]["workspace"], DEMO_WORKSPACE);
    assert_eq!(created["cloud"]["client_id"], DEMO_KEY);
    assert_eq!(created["cloud"]["mode"], "client_credentials");
    assert_eq!(created["cloud"]["authorized_by"], APP_USER, "client credentials act as no person");
    assert!(created["cloud"]["token_expires_at"].is_string());
    assert!(created["cloud"]["scopes"].as_array().unwrap().contains(&json!("repository")));
    assert!(created.get("datacenter").is_none());
    has_no_secret(&created.to_string());

    // Its repositories, Cloud's pages turned into cursors, and a stack on one.
    let id = created["id"].as_str().unwrap();
    let (status, page) = w
        .call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories?limit=25"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 25);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, second) = w
        .call(
            w.token("team writer"),
            Method::GET,
            &format!("/api/v1/integrations/{id}/repositories?limit=25&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 15);
    assert!(second["next_cursor"].is_null());
    let (_, found) = w
        .call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories?query=webs"), None)
        .await;
    assert_eq!(found["items"][0]["name"], "acme/website", "{found}");
    let uuid = found["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, stack) = w
        .call(
            w.token("team writer"),
            Method::POST,
            "/api/v1/stacks",
            Some(json!({"name": "site", "space_id": w.team, "integration_id": id, "repository": "acme/website", "branch": "main"})),
        )
        .await;
    assert_eq!(status, 201, "{stack}");
    assert_eq!(stack["repository"]["id"], uuid.as_str(), "the stack keeps Cloud's repository UUID");
    let (status, refused) = w
        .call(
            w.token("team writer"),
            Method::POST,
            "/api/v1/stacks",
            Some(json!({"name": "elsewhere", "space_id": w.team, "integration_id": id, "repository": "other/website", "branch": "main"})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("workspace acme only"), "{refused}");

    // The test button runs every check again.
    let (status, test) =
        w.call(w.token("team admin"), Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!(status, 200);
    assert!(test["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{test}");
    assert_eq!(test["health"]["state"], "connected");

    // Nothing secret in the details page either.
    let admin = w.browser("team admin").await;
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains("Acts as") && page.contains(APP_USER), "what the tokens act as");
    assert!(page.contains("reach only the workspace that owns the consumer"));
    assert!(page.contains("repo:push") && page.contains("pullrequest:fulfilled"));
    has_no_secret(&page);

    // Pull-request comments: the default when left out; stored as chosen for a Cloud integration too.
    assert_eq!(created["options"]["pr_comments"], "failures");
    let mut chosen = body(&w, "Cloud quiet", "client_credentials", DEMO_SECRET);
    chosen["options"] = json!({"pr_comments": "off"});
    let (status, quiet) = w.call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(chosen)).await;
    assert_eq!(status, 201, "{quiet}");
    let found = integration(&w, quiet["id"].as_str().unwrap()).await;
    assert_eq!(found["options"]["pr_comments"], "off");

    // The webhook options are a Cloud integration's too: SPEC's defaults, and the same rule.
    let webhook_options = |answer: &Value| {
        let options = &answer["options"];
        [&options["manage_webhooks"], &options["disable_polling"], &options["disable_webhooks"]].map(Value::clone)
    };
    assert_eq!(webhook_options(&created), [json!(true), json!(false), json!(false)]);
    let path = format!("/api/v1/integrations/{}", quiet["id"].as_str().unwrap());
    let admin = w.token("team admin");
    let disable = json!({"options": {"disable_polling": true, "disable_webhooks": true}});
    let (status, edited) = w.call(admin, Method::PATCH, &path, Some(disable)).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(webhook_options(&edited), [json!(false), json!(true), json!(true)], "management turned off");
    let (status, refused) =
        w.call(admin, Method::PATCH, &path, Some(json!({"options": {"manage_webhooks": true}}))).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["details"][0]["field"], "options.manage_webhooks");
    assert_eq!(webhook_options(&integration(&w, quiet["id"].as_str().unwrap()).await), webhook_options(&edited));
}

#[tokio::test]
async fn consumers_bitbucket_refuses_are_explained_and_nothing_is_stored() {
    let (w, simulator) = cloud_world().await;
    let admin = w.token("team admin");
    let details = |answer: &Value| answer["error"]["details"].to_string();

    let (status, wrong) =
        w.call(admin, Method::POST, "/api/v1/integrations", Some(body(&w, "c1", "authorization_code", "nope"))).await;
    assert_eq!(status, 422, "{wrong}");
    assert!(
        details(&wrong).contains("cloud.client_secret")
            && details(&wrong).contains("rejected the consumer key or secret")
    );

    let (status, wrong) =
        w.call(admin, Method::POST, "/api/v1/integrations", Some(body(&w, "c1", "client_credentials", "nope"))).await;
    assert_eq!(status, 422);
    assert!(details(&wrong).contains("check_consumer"), "{wrong}");

    simulator.configure_cloud(|cloud| cloud.consumers[0].private = false);
    let (status, public) = w
        .call(admin, Method::POST, "/api/v1/integrations", Some(body(&w, "c1", "client_credentials", DEMO_SECRET)))
        .await;
    assert_eq!(status, 422);
    assert!(details(&public).contains("This is a private consumer"), "{public}");

    simulator.configure_cloud(|cloud| {
        cloud.consumers[0].private = true;
        cloud.consumers[0].scopes = vec!["account".into()];
    });
    let (status, scopes) = w
        .call(admin, Method::POST, "/api/v1/integrations", Some(body(&w, "c1", "client_credentials", DEMO_SECRET)))
        .await;
    assert_eq!(status, 422);
    assert!(details(&scopes).contains("check_scopes") && details(&scopes).contains("lacks repository"), "{scopes}");

    simulator.configure_cloud(|cloud| cloud.consumers[0].scopes = vec!["account".into(), "repository".into()]);
    let mut elsewhere = body(&w, "c1", "client_credentials", DEMO_SECRET);
    elsewhere["cloud"]["workspace"] = json!("not-ours");
    let (status, workspace) = w.call(admin, Method::POST, "/api/v1/integrations", Some(elsewhere)).await;
    assert_eq!(status, 422);
    assert!(details(&workspace).contains("cloud.workspace") && details(&workspace).contains("not-ours"), "{workspace}");

    simulator.configure_cloud(|cloud| cloud.consumers[0].callback_url = None);
    let (status, no_callback) = w
        .call(admin, Method::POST, "/api/v1/integrations", Some(body(&w, "c1", "authorization_code", DEMO_SECRET)))
        .await;
    assert_eq!(status, 422);
    assert!(details(&no_callback).contains("/oauth/bitbucket/callback"), "the hint names the callback: {no_callback}");

    // Invalid input, refused before Bitbucket is asked.
    let mut bad = body(&w, "c1", "sometimes", DEMO_SECRET);
    bad["cloud"]["workspace"] = json!("Not/A/Workspace");
    bad["datacenter"] = json!({});
    let (status, invalid) = w.call(admin, Method::POST, "/api/v1/integrations", Some(bad)).await;
    assert_eq!(status, 422);
    for field in ["cloud.mode", "cloud.workspace", "datacenter"] {
        assert!(details(&invalid).contains(field), "{field}: {invalid}");
    }
    let (status, missing) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"name": "c1", "provider": "bitbucket_cloud", "scope": "space", "space_id": w.team})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(details(&missing).contains("\"cloud\""), "{missing}");

    let (_, list) = w.call(admin, Method::GET, "/api/v1/integrations", None).await;
    assert_eq!(list["items"], json!([]), "nothing was stored");
}

/// Bitbucket's token answers name the granted scopes `scope` since May 2026
/// and `scopes` before; both are read, in either mode, and an answer that
/// names neither is said in words, not taken for a missing scope.
#[tokio::test]
async fn granted_scopes_are_read_under_either_name_and_an_answer_without_them_is_explained() {
    let (w, simulator) = cloud_world().await;
    let admin = w.token("team admin");
    let details = |answer: &Value| answer["error"]["details"].to_string();

    for (field, name) in [(ScopeField::Scope, "scope"), (ScopeField::Scopes, "scopes")] {
        simulator.configure_cloud(|cloud| cloud.scope_field = field);
        let created = create(&w, &format!("cc {name}"), "client_credentials").await;
        assert_eq!(created["health"]["state"], "connected", "{name}: {created}");
        let scopes = created["cloud"]["scopes"].as_array().unwrap();
        assert!(scopes.contains(&json!("account")) && scopes.contains(&json!("repository")), "{name}: {created}");

        // After Grant, the scope check runs on the tokens of the approval.
        let pending = create(&w, &format!("ac {name}"), "authorization_code").await;
        let id = pending["id"].as_str().unwrap();
        let browser = w.browser("team admin").await;
        let callback = approve(&simulator, &connect(&browser, id).await, "grant").await;
        assert_eq!(browser.get(&callback).await.status(), 303, "{name}");
        let found = integration(&w, id).await;
        assert_eq!(found["health"]["state"], "connected", "{name}: {found}");
        assert!(found["cloud"]["scopes"].as_array().unwrap().contains(&json!("repository")), "{name}");
    }

    simulator.configure_cloud(|cloud| cloud.scope_field = ScopeField::Missing);
    let (status, refused) = w
        .call(admin, Method::POST, "/api/v1/integrations", Some(body(&w, "cc none", "client_credentials", DEMO_SECRET)))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(details(&refused).contains("check_scopes"), "{refused}");
    assert!(details(&refused).contains("did not say which scopes it granted"), "in words: {refused}");
    assert!(!details(&refused).contains("lacks"), "not taken for a missing scope: {refused}");

    let pending = create(&w, "ac none", "authorization_code").await;
    let id = pending["id"].as_str().unwrap();
    let browser = w.browser("team admin").await;
    let callback = approve(&simulator, &connect(&browser, id).await, "grant").await;
    let landed = browser.get(&callback).await;
    assert_eq!(landed.status(), 400);
    let page = landed.text().await.unwrap();
    assert!(page.contains("did not say which scopes it granted") && page.contains("Nothing was stored"), "{page}");
    assert_eq!(integration(&w, id).await["health"]["state"], "pending_authorization");

    // A refresh whose answer names no scopes keeps the ones granted before.
    simulator.configure_cloud(|cloud| cloud.scope_field = ScopeField::Scope);
    let created = create(&w, "cc kept", "client_credentials").await;
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    simulator.configure_cloud(|cloud| cloud.scope_field = ScopeField::Missing);
    let before = expiry_of(&w.app, id).await;
    oauth_tokens::refresh(&w.app.services, Provider::Cloud, id, Seen::Expiry(before)).await.unwrap();
    assert_ne!(expiry_of(&w.app, id).await, before, "refreshed");
    let found = integration(&w, &id.to_string()).await;
    assert_eq!(found["cloud"]["scopes"], created["cloud"]["scopes"], "{found}");
}

/// Client credentials act as the consumer's app user, which reaches only the
/// workspace that owns the consumer; a test shows it, and corrects what an
/// integration connected before May 2026 said it acted as.
#[tokio::test]
async fn client_credentials_act_as_the_consumers_app_user_in_its_own_workspace_only() {
    let (w, _simulator) = cloud_world().await;
    let admin = w.token("team admin");

    let mut personal = body(&w, "cc personal", "client_credentials", DEMO_SECRET);
    personal["cloud"]["workspace"] = json!(DEMO_PERSONAL_WORKSPACE);
    let (status, refused) = w.call(admin, Method::POST, "/api/v1/integrations", Some(personal)).await;
    assert_eq!(status, 422, "{refused}");
    let details = refused["error"]["details"].to_string();
    assert!(details.contains("cloud.workspace") && details.contains("check_workspace"), "{refused}");
    assert!(
        details.contains("The consumer's app user cannot see a workspace")
            && details.contains("reach only the workspace that owns the consumer"),
        "{refused}"
    );

    let created = create(&w, "cc own", "client_credentials").await;
    let id = created["id"].as_str().unwrap();
    let (_, test) = w.call(admin, Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    let lines: Vec<(String, String)> = test["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["message"].as_str().unwrap().to_owned()))
        .collect();
    let user = &lines.iter().find(|(name, _)| name == "user").unwrap().1;
    assert!(user.contains("the consumer's app user \u{201c}Bitgate\u{201d}, not as a person"), "{user}");
    let workspace = &lines.iter().find(|(name, _)| name == "workspace").unwrap().1;
    assert!(workspace.starts_with("The consumer's app user sees the workspace Acme"), "{workspace}");

    // Connected before May 2026, it named the consumer's owner: a test corrects it.
    sqlx::query("UPDATE cloud_credentials SET authorized_by = 'Ada Lovelace (ada)' WHERE integration_id = $1")
        .bind(Uuid::parse_str(id).unwrap())
        .execute(&w.app.pool)
        .await
        .unwrap();
    let (status, test) = w.call(admin, Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!((status.as_u16(), test["health"]["state"].as_str()), (200, Some("connected")), "{test}");
    assert_eq!(integration(&w, id).await["cloud"]["authorized_by"], APP_USER);
}

/// The import keeps the API's rule: a stored consumer secret belongs to its
/// key, so an entry with a new key and no secret is refused, as a PATCH is.
#[tokio::test]
async fn an_imported_new_consumer_key_needs_its_secret_as_through_the_api() {
    let (w, _simulator) = cloud_world().await;
    create(&w, "cloud-main", "client_credentials").await;
    let file = format!(
        "version: 1\nintegrations:\n- {{name: cloud-main, provider: bitbucket_cloud, space: team, \
         cloud: {{workspace: {DEMO_WORKSPACE}, client_id: another-key, mode: client_credentials}}}}\n"
    );
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/integrations/import", w.app.base))
        .bearer_auth(w.token("team admin"))
        .header("content-type", "application/yaml")
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let refused: Value = answer.json().await.unwrap();
    let detail = &refused["error"]["details"][0];
    assert_eq!(detail["field"], "integrations[0] (cloud-main).cloud.client_secret", "{refused}");
    assert_eq!(detail["code"], "secret_required", "the API's code: {refused}");
    assert_eq!(integration_named(&w, "cloud-main").await["cloud"]["client_id"], DEMO_KEY, "nothing was written");
}

async fn integration_named(w: &World, name: &str) -> Value {
    let (_, list) = w.call(w.token("team admin"), Method::GET, "/api/v1/integrations", None).await;
    list["items"].as_array().unwrap().iter().find(|i| i["name"] == name).cloned().unwrap()
}

/// A server that accepts connections and answers `reply` (or never, when `None`).
async fn fake_bitbucket(reply: Option<&'static str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                match reply {
                    Some(reply) => {
                        let _ = socket.write_all(reply.as_bytes()).await;
                    }
                    None => tokio::time::sleep(std::time::Duration::from_secs(30)).await,
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_token_endpoint_that_times_out_or_answers_garbage_gets_a_clear_message() {
    for (reply, expected) in [
        (None, "No answer from 127.0.0.1 within 2 seconds"),
        (Some("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\n\r\n<html>"), "not OAuth's"),
        (Some("HTTP/1.1 302 Found\r\nlocation: http://example.com/\r\ncontent-length: 0\r\n\r\n"), "not OAuth's"),
    ] {
        let fake = fake_bitbucket(reply).await;
        let w = world_with(&[
            ("BITGATE_OUTBOUND_DENY", ""),
            ("BITGATE_OUTBOUND_TIMEOUT", "2s"),
            ("BITGATE_BITBUCKET_CLOUD_URL", &fake),
            ("BITGATE_BITBUCKET_CLOUD_API_URL", &fake),
        ])
        .await;
        let (status, answer) = w
            .call(
                w.token("team admin"),
                Method::POST,
                "/api/v1/integrations",
                Some(body(&w, "c", "client_credentials", "s")),
            )
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer.to_string().contains(expected), "{expected}: {answer}");
        assert!(!answer.to_string().contains("<html>"), "Bitbucket's body is never echoed");
    }
}

#[tokio::test]
async fn an_admin_connects_in_bitbucket_and_lands_back_on_the_integration() {
    let (w, simulator) = cloud_world().await;
    let created = create(&w, "Cloud main", "authorization_code").await;
    assert_eq!(created["health"]["state"], "pending_authorization");
    assert!(created["cloud"]["authorized_by"].is_null());
    let id = created["id"].as_str().unwrap();

    let admin = w.browser("team admin").await;
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains(">Connect</button>"), "a pending integration offers Connect");
    // Not usable yet: the repositories say why.
    let (status, pending) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 502);
    assert!(pending.to_string().contains("not connected"), "{pending}");

    let authorize = connect(&admin, id).await;
    // The flow is bound to a secret of the session that no page shows: not
    // to the CSRF token, which every form carries.
    let csrf = admin.csrf_token("/").await;
    let bindings: Vec<Option<String>> =
        sqlx::query_scalar("SELECT session_binding FROM oauth_flows").fetch_all(&w.app.pool).await.unwrap();
    assert_eq!(bindings.len(), 1);
    assert!(bindings[0].is_some(), "a browser's flow is bound to it");
    assert_ne!(bindings[0].as_deref(), Some(bitgate_core::oauth_flows::session_binding(&csrf).as_str()));
    let callback = approve(&simulator, &authorize, "grant").await;
    let landed = admin.get(&callback).await;
    assert_eq!(landed.status(), 303);
    assert_eq!(location(&landed), format!("/integrations/{id}"));
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains("Connected: Bitgate acts as Ada Lovelace (ada)"), "the success message");
    has_no_secret(&page);

    let found = integration(&w, id).await;
    assert_eq!(found["health"]["state"], "connected");
    assert_eq!(found["cloud"]["authorized_by"], "Ada Lovelace (ada), connected by team-admin@example.com");
    has_no_secret(&found.to_string());
    assert!(w.app.audit_actions().await.contains(&"integration.authorized".to_owned()));
    let (status, repositories) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200, "{repositories}");

    // The same callback again: its state was used.
    let replay = admin.get(&callback).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.unwrap().contains("used already"));

    // A client-credentials integration needs no approval.
    let other = create(&w, "Cloud cc", "client_credentials").await;
    let answer = admin
        .post_form(
            &format!("/integrations/{}/connect", other["id"].as_str().unwrap()),
            &[("csrf_token", &admin.csrf_token("/tokens").await)],
        )
        .await;
    assert_eq!(answer.status(), 303);
    assert!(location(&answer).starts_with("/integrations/"), "back to its page with a message, not to Bitbucket");
}

#[tokio::test]
async fn deny_and_every_refused_state_end_on_an_error_page_and_store_nothing() {
    let (w, simulator) = cloud_world().await;
    let id = create(&w, "Cloud main", "authorization_code").await["id"].as_str().unwrap().to_owned();
    let admin = w.browser("team admin").await;
    let pending = || async { integration(&w, &id).await["health"]["state"].as_str().unwrap().to_owned() };

    // Deny in Bitbucket.
    let denied = approve(&simulator, &connect(&admin, &id).await, "deny").await;
    assert!(denied.contains("error=access_denied"));
    let page = admin.get(&denied).await;
    assert_eq!(page.status(), 400);
    let text = page.text().await.unwrap();
    assert!(text.contains("Access was denied in Bitbucket") && text.contains("Try again"), "{text}");
    assert_eq!(pending().await, "pending_authorization");

    // No state, a made-up state.
    for path in ["/oauth/bitbucket/callback?code=x", "/oauth/bitbucket/callback?code=x&state=made-up"] {
        let answer = admin.get(path).await;
        assert_eq!(answer.status(), 400, "{path}");
    }

    // Another browser (another user), then no session at all: refused, and
    // the flow is left for its own browser, which still finishes it.
    let callback = approve(&simulator, &connect(&admin, &id).await, "grant").await;
    let stranger = w.browser("account admin").await;
    let answer = stranger.get(&callback).await;
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("another user or in another browser"));
    let anonymous = w.app.browser();
    let answer = anonymous.get(&callback).await;
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("no Bitgate session"));
    assert_eq!(pending().await, "pending_authorization");

    // Expired: 10 minutes pass.
    let late = approve(&simulator, &connect(&admin, &id).await, "grant").await;
    sqlx::query("UPDATE oauth_flows SET expires_at = now() - interval '1 second'").execute(&w.app.pool).await.unwrap();
    let answer = admin.get(&late).await;
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("expired"));
    assert_eq!(pending().await, "pending_authorization");

    // A code spent already (Bitbucket refuses the exchange): 502.
    let authorize = connect(&admin, &id).await;
    let callback_again = approve(&simulator, &authorize, "grant").await;
    let code = url::Url::parse(&format!("http://x{callback_again}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let spent = reqwest::Client::new()
        .post(format!("{}/site/oauth2/access_token", simulator.url))
        .basic_auth(DEMO_KEY, Some(DEMO_SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status(), 400, "the simulator checks the verifier");
    let answer = admin.get(&callback_again).await;
    assert_eq!(answer.status(), 502);
    assert!(answer.text().await.unwrap().contains("already used"));
    assert_eq!(pending().await, "pending_authorization");

    // The integration deleted meanwhile.
    let orphan = approve(&simulator, &connect(&admin, &id).await, "grant").await;
    let (status, _) = w.call(w.token("team admin"), Method::DELETE, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(admin.get(&orphan).await.status(), 400);
    let flows: i64 = sqlx::query_scalar("SELECT count(*) FROM oauth_flows").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(flows, 0);
}

#[tokio::test]
async fn automation_gets_the_authorize_url_and_the_same_user_finishes_in_a_browser() {
    let (w, simulator) = cloud_world().await;
    let id = create(&w, "Cloud main", "authorization_code").await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/integrations/{id}/authorize");
    let (status, _) = w.call(w.token("team reader"), Method::POST, &path, None).await;
    assert_eq!(status, 403, "readers see it in lists only");
    let (status, _) = w.call(w.token("outsider"), Method::POST, &path, None).await;
    assert_eq!(status, 404);
    let (status, answer) = w.call(w.token("team admin"), Method::POST, &path, None).await;
    assert_eq!(status, 200);
    let authorize = answer["authorize_url"].as_str().unwrap();

    let callback = approve(&simulator, authorize, "grant").await;
    let stranger = w.browser("account admin").await;
    assert_eq!(stranger.get(&callback).await.status(), 400, "only the token's user may finish it");
    let admin = w.browser("team admin").await;
    assert_eq!(admin.get(&callback).await.status(), 303);
    assert_eq!(integration(&w, &id).await["health"]["state"], "connected");

    // A client-credentials integration needs no approval: 422, saying so.
    let cc = create(&w, "Cloud cc", "client_credentials").await["id"].as_str().unwrap().to_owned();
    let (status, answer) =
        w.call(w.token("team admin"), Method::POST, &format!("/api/v1/integrations/{cc}/authorize"), None).await;
    assert_eq!(status, 422);
    assert!(answer.to_string().contains("client credentials"), "{answer}");
}

#[tokio::test]
async fn the_callback_may_land_on_another_process_sharing_the_database() {
    let (w, simulator) = cloud_world().await;
    let id = create(&w, "Cloud main", "authorization_code").await["id"].as_str().unwrap().to_owned();
    let database_url = w.app.services.config.database_url.clone().unwrap();
    let second = TestApp::spawn_on(
        database_url,
        &[
            ("BITGATE_PUBLIC_URL", &w.app.base),
            ("BITGATE_OUTBOUND_DENY", ""),
            ("BITGATE_BITBUCKET_CLOUD_URL", &simulator.url),
            ("BITGATE_BITBUCKET_CLOUD_API_URL", &simulator.url),
            // Both processes share the development key: the same keyring.
            ("BITGATE_SECRET_KEYS", &keys_of(&w.app)),
        ],
    )
    .await;
    let admin = w.browser("team admin").await;
    let callback = approve(&simulator, &connect(&admin, &id).await, "grant").await;
    let landed = admin.on(&second.base).get(&callback).await;
    assert_eq!(landed.status(), 303);
    assert_eq!(integration(&w, &id).await["health"]["state"], "connected");
}

/// The keyring of a test app, as `BITGATE_SECRET_KEYS` would give it.
pub(crate) fn keys_of(app: &TestApp) -> String {
    let dir = app.services.config.data_dir.clone();
    std::fs::read_to_string(dir.join("secret-keys")).unwrap().trim().to_owned()
}

async fn refresh_token_of(app: &TestApp, id: Uuid) -> String {
    let (key_id, ciphertext): (String, Vec<u8>) =
        sqlx::query_as("SELECT refresh_token_key, refresh_token FROM cloud_credentials WHERE integration_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let binding = Binding { table: "cloud_credentials", column: "refresh_token", row: id };
    String::from_utf8(app.services.keyring.open(&Sealed { key_id, ciphertext }, binding).unwrap()).unwrap()
}

async fn expiry_of(app: &TestApp, id: Uuid) -> Option<time::OffsetDateTime> {
    sqlx::query_scalar("SELECT token_expires_at FROM cloud_credentials WHERE integration_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_stay_fresh_and_a_broken_chain_asks_for_a_reconnect() {
    let (w, simulator) = cloud_world().await;
    simulator.configure_cloud(|cloud| cloud.expires_in = 2);
    let id = create(&w, "Cloud main", "authorization_code").await["id"].as_str().unwrap().to_owned();
    let admin = w.browser("team admin").await;
    let callback = approve(&simulator, &connect(&admin, &id).await, "grant").await;
    assert_eq!(admin.get(&callback).await.status(), 303);
    let id = Uuid::parse_str(&id).unwrap();

    // The job refreshes what expires soon; the spent refresh token is dead.
    let old_refresh = refresh_token_of(&w.app, id).await;
    let before = expiry_of(&w.app, id).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(oauth_tokens::refresh_due(&w.app.services).await.unwrap(), 1);
    assert_ne!(expiry_of(&w.app, id).await, before);
    assert_ne!(refresh_token_of(&w.app, id).await, old_refresh, "Bitbucket rotated it");
    let reuse = reqwest::Client::new()
        .post(format!("{}/site/oauth2/access_token", simulator.url))
        .basic_auth(DEMO_KEY, Some(DEMO_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", old_refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 400);
    assert_eq!(reuse.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Two processes at the same moment: one refreshes, the other finds it done.
    let other_pool = sqlx::PgPool::connect(w.app.services.config.database_url.as_deref().unwrap()).await.unwrap();
    let other = bitgate_core::Services { pool: other_pool, ..w.app.services.clone() };
    let seen = expiry_of(&w.app, id).await;
    let (a, b) = tokio::join!(
        oauth_tokens::refresh(&w.app.services, Provider::Cloud, id, Seen::Expiry(seen)),
        oauth_tokens::refresh(&other, Provider::Cloud, id, Seen::Expiry(seen)),
    );
    assert_eq!(a.unwrap(), b.unwrap(), "both use the one new access token");
    assert_eq!(integration(&w, &id.to_string()).await["health"]["state"], "connected");

    // A 401 from Bitbucket (a token it dropped early) triggers a refresh too.
    simulator.configure_cloud(|cloud| {
        cloud.expires_in = 7200;
        cloud.expire_access_tokens();
    });
    let refreshed =
        oauth_tokens::refresh(&w.app.services, Provider::Cloud, id, Seen::Expiry(expiry_of(&w.app, id).await))
            .await
            .unwrap();
    simulator.configure_cloud(|cloud| cloud.expire_access_tokens());
    let (status, page) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200, "{page}");
    let now_used = oauth_tokens::access_token(&w.app.services, Provider::Cloud, id).await.unwrap();
    assert_ne!(now_used, refreshed, "the 401 replaced the refused token");

    // The consumer's secret changes in Bitbucket: the chain is broken for good.
    simulator.configure_cloud(|cloud| cloud.consumers[0].secret = "rotated-in-bitbucket".into());
    let seen = expiry_of(&w.app, id).await;
    assert!(oauth_tokens::refresh(&w.app.services, Provider::Cloud, id, Seen::Expiry(seen)).await.is_err());
    let found = integration(&w, &id.to_string()).await;
    assert_eq!(found["health"]["state"], "error");
    assert!(found["health"]["message"].as_str().unwrap().contains("Reconnect"), "{found}");
    assert!(found["cloud"]["authorized_by"].is_null(), "the dead tokens are gone");
    assert!(w.app.audit_actions().await.contains(&"integration.authorization_lost".to_owned()));
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains(">Reconnect</button>"));
    let (status, _) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn edited_cloud_credentials_are_checked_first_and_a_new_consumer_needs_a_new_approval() {
    let (w, _simulator) = cloud_world().await;
    let id = create(&w, "Cloud main", "client_credentials").await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/integrations/{id}");
    let admin = w.token("team admin");

    // A wrong secret is refused and changes nothing; a new key needs its secret.
    let (status, refused) =
        w.call(admin, Method::PATCH, &path, Some(json!({"cloud": {"client_secret": "wrong"}, "labels": ["x"]}))).await;
    assert_eq!(status, 422, "{refused}");
    let (status, refused) =
        w.call(admin, Method::PATCH, &path, Some(json!({"cloud": {"client_id": "other-key"}}))).await;
    assert_eq!(status, 422);
    assert!(refused.to_string().contains("needs its secret"), "{refused}");
    let (status, refused) = w.call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"username": "x"}}))).await;
    assert_eq!(status, 422);
    assert!(refused.to_string().contains("wrong_provider"), "{refused}");
    let found = integration(&w, &id).await;
    assert_eq!(found["labels"], json!([]));
    assert_eq!(found["health"]["state"], "connected");

    // Labels alone ask Bitbucket nothing; the stored consumer stays.
    let (status, edited) = w
        .call(admin, Method::PATCH, &path, Some(json!({"labels": ["prod"], "cloud": {"workspace": DEMO_WORKSPACE}})))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["cloud"]["authorized_by"], APP_USER);

    // Another mode: the tokens of the old one go, and it waits for an approval.
    let (status, edited) =
        w.call(admin, Method::PATCH, &path, Some(json!({"cloud": {"mode": "authorization_code"}}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["health"]["state"], "pending_authorization");
    assert!(edited["cloud"]["authorized_by"].is_null() && edited["cloud"]["token_expires_at"].is_null());
    has_no_secret(&edited.to_string());

    // The edit page: the Cloud fields prefilled, the secret never.
    let browser = w.browser("team admin").await;
    let page = browser.get(&format!("/integrations/{id}/edit")).await.text().await.unwrap();
    assert!(
        page.contains("value=\"acme\"")
            && page.contains(DEMO_KEY)
            && page.contains("Leave empty to keep the stored secret")
    );
    has_no_secret(&page);
    assert_eq!(crate::helpers::selected_option(&page, "pr_comments").as_deref(), Some("failures"));
    let csrf = browser.csrf_token("/tokens").await;
    let saved = browser
        .post_form(
            &format!("/integrations/{id}/edit"),
            &[
                ("csrf_token", csrf.as_str()),
                ("provider", "bitbucket_cloud"),
                ("scope", "space"),
                ("space_id", &w.team.to_string()),
                ("workspace", DEMO_WORKSPACE),
                ("client_id", DEMO_KEY),
                ("client_secret", ""),
                ("mode", "client_credentials"),
                ("labels", "prod, eu"),
                ("vcs_checks", "individual"),
                ("pr_comments", "always"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303);
    let found = integration(&w, &id).await;
    assert_eq!(found["health"]["state"], "connected", "client credentials again: a token at once");
    assert_eq!(found["labels"], json!(["prod", "eu"]));
    assert_eq!(found["options"]["pr_comments"], "always");
}
