//! Data Center integrations through an incoming OAuth 2.0 application link,
//! against the simulator's provider: the client checked before saving, the
//! approval through the shared callback (Allow, Deny), the checklist with
//! the approving account's token, tokens that stay fresh (the job, two
//! processes at once, a revoked grant), edits that need the secret again,
//! rekey, and secrets that never come back.

use bitbucket_simulator::{
    datacenter::{
        oauth2::{DEMO_OAUTH2_CLIENT_ID, DEMO_OAUTH2_CLIENT_SECRET},
        DEMO_USER,
    },
    Simulator,
};
use bitgate_core::{
    integrations::Provider,
    oauth_tokens::{self, Seen},
    secrets::{Binding, Keyring, Sealed},
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    helpers::{location, Browser, TestApp},
    world::{world_with_bitbucket, World},
};

/// A world whose Data Center's demo link sends browsers back to this Bitgate.
pub(crate) async fn link_world() -> (World, Simulator) {
    let (world, simulator) = world_with_bitbucket().await;
    let callback = format!("{}/oauth/bitbucket/callback", world.app.base);
    simulator.configure(|instance| instance.oauth2_clients[0].redirect_url = Some(callback));
    (world, simulator)
}

fn body(w: &World, simulator: &Simulator, name: &str, secret: &str) -> Value {
    json!({
        "name": name, "provider": "bitbucket_datacenter", "scope": "space", "space_id": w.team,
        "datacenter": {"api_url": simulator.url, "auth": "oauth2",
                       "oauth2": {"client_id": DEMO_OAUTH2_CLIENT_ID, "client_secret": secret}},
    })
}

async fn create(w: &World, simulator: &Simulator, name: &str) -> String {
    let body = body(w, simulator, name, DEMO_OAUTH2_CLIENT_SECRET);
    let (status, created) = w.call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn integration(w: &World, id: &str) -> Value {
    let (status, found) = w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(status, 200);
    found
}

fn has_no_secret(text: &str) {
    for secret in [DEMO_OAUTH2_CLIENT_SECRET, "code_verifier", "refresh_token\":\""] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
}

/// Clicks Connect in `browser`; returns where it went: Bitbucket's consent
/// page, or back to the integration (with the reason on it) when Bitbucket
/// refused the link.
pub(crate) async fn connect(browser: &Browser, id: &str) -> String {
    let csrf = browser.csrf_token(&format!("/integrations/{id}")).await;
    let answer = browser.post_form(&format!("/integrations/{id}/connect"), &[("csrf_token", &csrf)]).await;
    assert_eq!(answer.status(), 303);
    location(&answer)
}

/// The consent page (either kind of link) answered with `decision` (`allow` or `deny`), as the
/// person's browser would post its form: returns the callback address
/// Bitbucket sends the browser to (path and query).
pub(crate) async fn approve(simulator: &Simulator, authorize_url: &str, decision: &str) -> String {
    assert!(authorize_url.starts_with(&simulator.url), "{authorize_url}");
    let page = reqwest::get(authorize_url).await.unwrap().text().await.unwrap();
    assert!(page.contains(">Allow</button>") && page.contains(">Deny</button>"), "{page}");
    let url = url::Url::parse(authorize_url).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("decision".into(), decision.into()));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client.post(format!("{}{}", simulator.url, url.path())).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 302, "{}", answer.text().await.unwrap());
    let target = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    format!("{}?{}", target.path(), target.query().unwrap_or_default())
}

pub(crate) async fn connected(w: &World, simulator: &Simulator, name: &str) -> (String, Browser) {
    let id = create(w, simulator, name).await;
    let admin = w.browser("team admin").await;
    let callback = approve(simulator, &connect(&admin, &id).await, "allow").await;
    assert_eq!(admin.get(&callback).await.status(), 303);
    (id, admin)
}

#[tokio::test]
async fn an_application_link_is_checked_saved_and_connected_by_an_admin_in_bitbucket() {
    let (w, simulator) = link_world().await;

    // A wrong secret is refused before anything is saved, on its field.
    let wrong = body(&w, &simulator, "dc-link", "not-the-secret");
    let (status, refused) = w.call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(wrong)).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["details"][0]["field"], "datacenter.oauth2.client_secret", "{refused}");
    assert!(refused.to_string().contains("client ID or secret"), "{refused}");
    // A token's fields are not an application link's.
    let mut mixed = body(&w, &simulator, "dc-link", DEMO_OAUTH2_CLIENT_SECRET);
    mixed["datacenter"]["access_token"] = json!("BBDC-something");
    let (status, refused) = w.call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(mixed)).await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["code"], "wrong_auth", "{refused}");

    let id = create(&w, &simulator, "dc-link").await;
    let created = integration(&w, &id).await;
    assert_eq!(created["health"]["state"], "pending_authorization");
    assert_eq!(created["datacenter"]["auth"], "oauth2");
    assert_eq!(created["datacenter"]["oauth2"]["client_id"], DEMO_OAUTH2_CLIENT_ID);
    assert!(created["datacenter"]["username"].is_null(), "nobody approved it yet");
    assert!(created["datacenter"].get("access_token_last4").is_none(), "no token's fields");
    has_no_secret(&created.to_string());

    let admin = w.browser("team admin").await;
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains(">Connect</button>"), "a pending link offers Connect");
    assert!(page.contains("an OAuth 2.0 application link"), "the page says how it signs in");
    let (status, pending) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 502, "not usable before it is connected");
    assert!(pending.to_string().contains("not connected"), "{pending}");

    // Connect: Bitbucket's consent page, at the user-facing URL, asking for
    // REPO_ADMIN (Bitgate manages the webhooks by default) with PKCE.
    let authorize = connect(&admin, &id).await;
    let query: std::collections::HashMap<String, String> =
        url::Url::parse(&authorize).unwrap().query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "REPO_ADMIN");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], format!("{}/oauth/bitbucket/callback", w.app.base), "Cloud's callback");
    let callback = approve(&simulator, &authorize, "allow").await;
    let landed = admin.get(&callback).await;
    assert_eq!(landed.status(), 303);
    assert_eq!(location(&landed), format!("/integrations/{id}"));
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains(&format!("Connected: Bitgate acts as {DEMO_USER}")), "the success message");
    has_no_secret(&page);

    let found = integration(&w, &id).await;
    assert_eq!(found["health"]["state"], "connected", "{found}");
    assert_eq!(found["datacenter"]["username"], DEMO_USER);
    assert_eq!(found["datacenter"]["oauth2"]["connected_by"], "team-admin@example.com");
    assert_eq!(found["datacenter"]["oauth2"]["scopes"], json!(["REPO_ADMIN"]));
    has_no_secret(&found.to_string());
    assert!(w.app.audit_actions().await.contains(&"integration.authorized".to_owned()));
    let (status, repositories) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200, "{repositories}");
    // The connection test runs the Data Center checklist with the link's token.
    let (status, tested) =
        w.call(w.token("team admin"), Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["health"]["state"], "connected", "{tested}");
    assert!(tested["checks"].as_array().unwrap().iter().any(|c| c["name"] == "owner" && c["ok"] == true), "{tested}");

    // The same callback again: its state was used.
    let replay = admin.get(&callback).await;
    assert_eq!(replay.status(), 400);
}

#[tokio::test]
async fn deny_ends_on_an_error_page_and_stores_nothing() {
    let (w, simulator) = link_world().await;
    let id = create(&w, &simulator, "dc-link").await;
    let admin = w.browser("team admin").await;
    let denied = approve(&simulator, &connect(&admin, &id).await, "deny").await;
    assert!(denied.contains("error=access_denied"), "{denied}");
    let page = admin.get(&denied).await;
    assert_eq!(page.status(), 400);
    let text = page.text().await.unwrap();
    assert!(text.contains("Access was denied in Bitbucket"), "{text}");
    let found = integration(&w, &id).await;
    assert_eq!(found["health"]["state"], "pending_authorization");
    assert!(found["datacenter"]["username"].is_null());
}

#[tokio::test]
async fn without_managed_webhooks_the_link_asks_for_repository_read_only() {
    let (w, simulator) = link_world().await;
    let mut body = body(&w, &simulator, "dc-read", DEMO_OAUTH2_CLIENT_SECRET);
    body["options"] = json!({"manage_webhooks": false});
    let (status, created) = w.call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let admin = w.browser("team admin").await;
    let authorize = connect(&admin, created["id"].as_str().unwrap()).await;
    assert!(authorize.contains("scope=REPO_READ"), "{authorize}");
}

async fn refresh_token_of(app: &TestApp, id: Uuid) -> String {
    let (key_id, ciphertext): (String, Vec<u8>) =
        sqlx::query_as("SELECT refresh_token_key, refresh_token FROM datacenter_credentials WHERE integration_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let binding = Binding { table: "datacenter_credentials", column: "refresh_token", row: id };
    String::from_utf8(app.services.keyring.open(&Sealed { key_id, ciphertext }, binding).unwrap()).unwrap()
}

async fn expiry_of(app: &TestApp, id: Uuid) -> Option<time::OffsetDateTime> {
    sqlx::query_scalar("SELECT token_expires_at FROM datacenter_credentials WHERE integration_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_are_refreshed_with_the_redirect_uri_and_two_processes_keep_the_chain() {
    let (w, simulator) = link_world().await;
    simulator.configure(|instance| instance.oauth2_access_token_lifetime = std::time::Duration::from_secs(2));
    let (id, admin) = connected(&w, &simulator, "dc-link").await;
    let id = Uuid::parse_str(&id).unwrap();

    // The job refreshes what expires soon (the simulator refuses a refresh
    // without the redirect URL); the spent refresh token is dead.
    let old_refresh = refresh_token_of(&w.app, id).await;
    let before = expiry_of(&w.app, id).await;
    assert_eq!(oauth_tokens::refresh_due(&w.app.services).await.unwrap(), 1);
    assert_ne!(expiry_of(&w.app, id).await, before);
    assert_ne!(refresh_token_of(&w.app, id).await, old_refresh, "the simulator rotates it");
    let reuse = reqwest::Client::new()
        .post(format!("{}/rest/oauth2/latest/token", simulator.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", old_refresh.as_str()),
            ("client_id", DEMO_OAUTH2_CLIENT_ID),
            ("client_secret", DEMO_OAUTH2_CLIENT_SECRET),
            ("redirect_uri", &format!("{}/oauth/bitbucket/callback", w.app.base)),
        ])
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
        oauth_tokens::refresh(&w.app.services, Provider::DataCenter, id, Seen::Expiry(seen)),
        oauth_tokens::refresh(&other, Provider::DataCenter, id, Seen::Expiry(seen)),
    );
    assert_eq!(a.unwrap(), b.unwrap(), "both use the one new access token");
    let (status, repositories) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200, "the chain holds: {repositories}");
    // Expired in Bitbucket before its time: the listing's 401 refreshes it once.
    let refresh_before = refresh_token_of(&w.app, id).await;
    simulator.configure(|instance| instance.expire_oauth2_access_tokens(DEMO_OAUTH2_CLIENT_ID));
    let (status, repositories) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200, "refreshed on the refusal: {repositories}");
    assert_ne!(refresh_token_of(&w.app, id).await, refresh_before, "by a refresh");

    // The grant is revoked in Bitbucket: the chain is broken for good.
    simulator.configure(|instance| instance.revoke_oauth2_grants(DEMO_OAUTH2_CLIENT_ID));
    let seen = expiry_of(&w.app, id).await;
    assert!(oauth_tokens::refresh(&w.app.services, Provider::DataCenter, id, Seen::Expiry(seen)).await.is_err());
    let found = integration(&w, &id.to_string()).await;
    assert_eq!(found["health"]["state"], "error");
    assert!(found["health"]["message"].as_str().unwrap().contains("Reconnect"), "{found}");
    assert!(found["datacenter"]["username"].is_null(), "the dead tokens are gone");
    assert!(w.app.audit_actions().await.contains(&"integration.authorization_lost".to_owned()));
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains(">Reconnect</button>"));
}

#[tokio::test]
async fn an_edit_sends_a_stored_secret_only_where_it_was_given_and_a_new_client_is_approved_again() {
    let (w, simulator) = link_world().await;
    let (id, _) = connected(&w, &simulator, "dc-link").await;
    let path = format!("/api/v1/integrations/{id}");
    let admin = w.token("team admin");

    // Another server with the stored secret: refused before any call.
    let moved = json!({"datacenter": {"api_url": "http://127.0.0.1:9/elsewhere"}});
    let (status, refused) = w.call(admin, Method::PATCH, &path, Some(moved)).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["details"][0]["code"], "secret_required", "{refused}");
    let other_client = json!({"datacenter": {"oauth2": {"client_id": "another-client"}}});
    let (status, refused) = w.call(admin, Method::PATCH, &path, Some(other_client)).await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["field"], "datacenter.oauth2.client_secret");
    let username = json!({"datacenter": {"username": "someone"}});
    let (status, refused) = w.call(admin, Method::PATCH, &path, Some(username)).await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["code"], "wrong_auth", "{refused}");

    // Options alone keep the connection.
    let (status, kept) = w.call(admin, Method::PATCH, &path, Some(json!({"labels": ["prod"]}))).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["health"]["state"], "connected");

    // The secret given again: checked, and the link must be approved anew.
    let again = json!({"datacenter": {"oauth2": {"client_secret": DEMO_OAUTH2_CLIENT_SECRET}}});
    let (status, renewed) = w.call(admin, Method::PATCH, &path, Some(again)).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["health"]["state"], "pending_authorization");
    assert!(renewed["datacenter"]["username"].is_null());

    // Switching to an access token: all of a token's fields, checked.
    let half = json!({"datacenter": {"auth": "access_token", "username": DEMO_USER}});
    let (status, refused) = w.call(admin, Method::PATCH, &path, Some(half)).await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["field"], "datacenter.access_token", "{refused}");
    let token = bitbucket_simulator::datacenter::DEMO_TOKEN;
    let switch = json!({"datacenter": {"auth": "access_token", "username": DEMO_USER, "access_token": token}});
    let (status, switched) = w.call(admin, Method::PATCH, &path, Some(switch)).await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(switched["datacenter"]["auth"], "access_token");
    assert_eq!(switched["health"]["state"], "connected");
    assert!(switched["datacenter"].get("oauth2").is_none(), "the link's fields are gone");
    let (client_id, secret): (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT client_id, client_secret FROM datacenter_credentials WHERE integration_id = $1::uuid")
            .bind(&id)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert!(client_id.is_none() && secret.is_none(), "nothing of the link is kept");
}

#[tokio::test]
async fn rekey_reseals_a_link_s_secret_and_tokens() {
    let (w, simulator) = link_world().await;
    let (id, _) = connected(&w, &simulator, "dc-link").await;
    let id = Uuid::parse_str(&id).unwrap();
    let keys = crate::cloud::keys_of(&w.app);
    let both = Keyring::parse(&format!("{},{keys}", Keyring::generate_entry("next"))).unwrap();
    let counts = bitgate_core::rekey::rekey(&w.app.pool, &both).await.unwrap();
    // The webhook secret, the client secret, the access and refresh tokens.
    assert_eq!((counts.examined, counts.resealed), (4, 4), "{counts:?}");
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(ARRAY[client_secret_key, access_token_key, refresh_token_key]) FROM datacenter_credentials
         WHERE integration_id = $1",
    )
    .bind(id)
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(keys, ["next", "next", "next"]);
}

// The legacy OAuth 1.0a link: Bitgate's key pair, its public key pasted
// into Bitbucket, the three legs, signed calls.

pub(crate) async fn create_legacy(w: &World, simulator: &Simulator, name: &str) -> Value {
    let body = json!({
        "name": name, "provider": "bitbucket_datacenter", "scope": "space", "space_id": w.team,
        "datacenter": {"api_url": simulator.url, "auth": "oauth1"},
    });
    let (status, created) = w.call(w.token("team admin"), Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created
}

fn has_no_private_key(text: &str) {
    assert!(!text.contains("PRIVATE KEY"), "a private key leaked into {text}");
}

#[tokio::test]
async fn a_legacy_link_gets_a_key_pair_and_connects_once_bitbucket_has_its_public_key() {
    let (w, simulator) = link_world().await;
    let created = create_legacy(&w, &simulator, "dc-legacy").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["health"]["state"], "pending_authorization", "{created}");
    assert_eq!(created["datacenter"]["auth"], "oauth1");
    let consumer_key = created["datacenter"]["oauth1"]["consumer_key"].as_str().unwrap().to_owned();
    assert_eq!(consumer_key, "bitgate-dc-legacy", "Bitgate's own, from the name");
    let public_key = created["datacenter"]["oauth1"]["public_key"].as_str().unwrap().to_owned();
    assert!(public_key.starts_with("-----BEGIN PUBLIC KEY-----"), "{public_key}");
    has_no_private_key(&created.to_string());
    // The public key alone, as a file.
    let admin = w.browser("team admin").await;
    let pem = reqwest::Client::new()
        .get(format!("{}/api/v1/integrations/{id}/public-key", w.app.base))
        .bearer_auth(w.token("team admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(pem.status(), 200);
    assert_eq!(pem.headers()["content-type"], "application/x-pem-file");
    assert_eq!(pem.text().await.unwrap(), public_key);
    let (status, _) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/public-key"), None).await;
    assert_eq!(status, 403, "admins only, as the integration's details");
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains("Application link in Bitbucket") && page.contains(&consumer_key), "the steps are shown");
    assert!(page.contains("BEGIN PUBLIC KEY"), "with the public key");
    has_no_private_key(&page);

    // Connect before the link exists: Bitbucket does not know the consumer key.
    assert_eq!(connect(&admin, &id).await, format!("/integrations/{id}"));
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains("has no application link with the consumer key bitgate-dc-legacy"), "{page}");

    // The wrong public key pasted: the test says what to fix.
    let other = bitgate_core::bitbucket::datacenter::oauth1::KeyPair::generate().unwrap();
    simulator.configure(|instance| instance.add_application_link(&consumer_key, "Bitgate", &other.public_pem));
    let (status, tested) =
        w.call(w.token("team admin"), Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!(status, 200, "{tested}");
    let link = tested["checks"].as_array().unwrap().iter().find(|c| c["name"] == "link").cloned().unwrap();
    assert_eq!(link["ok"], false, "{tested}");
    assert!(link["message"].as_str().unwrap().contains("public key"), "{link}");
    assert_eq!(connect(&admin, &id).await, format!("/integrations/{id}"));

    // The right one: Allow, and every later call is signed.
    simulator.configure(|instance| instance.add_application_link(&consumer_key, "Bitgate", &public_key));
    let authorize = connect(&admin, &id).await;
    assert!(authorize.contains("/plugins/servlet/oauth/authorize?oauth_token="), "{authorize}");
    let denied = approve(&simulator, &authorize, "deny").await;
    let page = admin.get(&denied).await;
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("Access was denied in Bitbucket"));

    let callback = approve(&simulator, &connect(&admin, &id).await, "allow").await;
    let landed = admin.get(&callback).await;
    assert_eq!(landed.status(), 303);
    let page = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(page.contains(&format!("Connected: Bitgate acts as {DEMO_USER}")), "the success message");
    let found = integration(&w, &id).await;
    assert_eq!(found["health"]["state"], "connected", "{found}");
    assert_eq!(found["datacenter"]["username"], DEMO_USER);
    assert_eq!(found["datacenter"]["oauth1"]["connected_by"], "team-admin@example.com");
    has_no_private_key(&found.to_string());
    let (status, repositories) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200, "signed calls: {repositories}");
    let (status, tested) =
        w.call(w.token("team admin"), Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!(status, 200);
    assert_eq!(tested["health"]["state"], "connected", "{tested}");

    // A stack's webhook is made in Bitbucket by signed writes too.
    let stack = json!({"name": "legacy", "space_id": w.team, "integration_id": id, "repository": "OPS/my-repo",
                       "branch": "main"});
    let (status, stack) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(stack)).await;
    assert_eq!(status, 201, "{stack}");
    while bitgate_core::maintenance::run_one(&w.app.services).await.unwrap() {}
    let hooks: Vec<String> = simulator.datacenter.read().unwrap().hooks.iter().map(|h| h.name.clone()).collect();
    assert_eq!(hooks, ["Bitgate (dc-legacy)"], "the managed hook, created with the signed link");

    // The same callback again: its state was used.
    assert_eq!(admin.get(&callback).await.status(), 400);
    // Rekey: the private key and the access token too (and the webhook secret).
    let keys = crate::cloud::keys_of(&w.app);
    let both = Keyring::parse(&format!("{},{keys}", Keyring::generate_entry("next"))).unwrap();
    let counts = bitgate_core::rekey::rekey(&w.app.pool, &both).await.unwrap();
    assert_eq!((counts.examined, counts.resealed), (3, 3), "{counts:?}");
}

#[tokio::test]
async fn a_legacy_link_s_consumer_key_is_checked_and_stays_and_its_fields_are_its_own() {
    let (w, simulator) = link_world().await;
    let admin = w.token("team admin");
    let body = |datacenter: Value| {
        json!({"name": "dc-legacy", "provider": "bitbucket_datacenter", "scope": "space", "space_id": w.team,
               "datacenter": datacenter})
    };
    let (status, refused) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body(json!({"api_url": simulator.url, "auth": "oauth1", "oauth1": {"consumer_key": "two words"}}))),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["field"], "datacenter.oauth1.consumer_key", "{refused}");
    let (status, refused) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body(json!({"api_url": simulator.url, "auth": "oauth1", "access_token": "BBDC-x"}))),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["code"], "wrong_auth", "{refused}");
    // Not Bitbucket's OAuth 1.0a provider at that address: refused before saving.
    let (status, refused) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body(json!({"api_url": format!("{}/bitbucket", simulator.url), "auth": "oauth1"}))),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["details"][0]["field"], "datacenter.api_url", "{refused}");

    let (status, created) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body(json!({"api_url": simulator.url, "auth": "oauth1", "oauth1": {"consumer_key": "our-ci"}}))),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["datacenter"]["oauth1"]["consumer_key"], "our-ci");
    let path = format!("/api/v1/integrations/{}", created["id"].as_str().unwrap());
    let change = json!({"datacenter": {"oauth1": {"consumer_key": "another"}}});
    let (status, refused) = w.call(admin, Method::PATCH, &path, Some(change)).await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["code"], "immutable", "{refused}");
    // A token integration switched to a link gets a key pair of its own.
    let token = bitbucket_simulator::datacenter::DEMO_TOKEN;
    let (status, plain) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"name": "dc-plain", "provider": "bitbucket_datacenter", "scope": "space", "space_id": w.team,
                        "datacenter": {"api_url": simulator.url, "username": DEMO_USER, "access_token": token}})),
        )
        .await;
    assert_eq!(status, 201, "{plain}");
    let path = format!("/api/v1/integrations/{}", plain["id"].as_str().unwrap());
    let (status, switched) = w.call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"auth": "oauth1"}}))).await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(switched["health"]["state"], "pending_authorization");
    assert_eq!(switched["datacenter"]["oauth1"]["consumer_key"], "bitgate-dc-plain");
    assert_ne!(switched["datacenter"]["oauth1"]["public_key"], created["datacenter"]["oauth1"]["public_key"]);
    assert!(switched["datacenter"].get("access_token_last4").is_none() && switched["datacenter"]["username"].is_null());
}

/// The `name` line of a connection test's checklist.
fn check_of(tested: &Value, name: &str) -> Value {
    tested["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_legacy_link_s_clock_and_replay_refusals_are_said_and_a_move_forgets_its_token() {
    let (w, simulator) = link_world().await;
    let created = create_legacy(&w, &simulator, "dc-legacy").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let consumer_key = created["datacenter"]["oauth1"]["consumer_key"].as_str().unwrap().to_owned();
    let public_key = created["datacenter"]["oauth1"]["public_key"].as_str().unwrap().to_owned();
    simulator.configure(|instance| instance.add_application_link(&consumer_key, "Bitgate", &public_key));
    let admin = w.browser("team admin").await;
    let callback = approve(&simulator, &connect(&admin, &id).await, "allow").await;
    assert_eq!(admin.get(&callback).await.status(), 303);
    let stack = json!({"name": "legacy", "space_id": w.team, "integration_id": id, "repository": "OPS/my-repo",
                       "branch": "main"});
    let (status, stack) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(stack)).await;
    assert_eq!(status, 201, "{stack}");
    let stack = stack["id"].as_str().unwrap().to_owned();
    while bitgate_core::maintenance::run_one(&w.app.services).await.unwrap() {}
    let test_path = format!("/api/v1/integrations/{id}/test");

    // Bitbucket's clock ten minutes ahead: every signed call is refused,
    // and the checklist and the repository picker say what to fix.
    simulator.configure(|instance| instance.oauth1_clock_offset_seconds = 600);
    let (status, tested) = w.call(w.token("team admin"), Method::POST, &test_path, None).await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["health"]["state"], "error", "{tested}");
    let token = check_of(&tested, "token");
    assert_eq!(token["ok"], false, "{tested}");
    assert!(token["message"].as_str().unwrap().contains("clocks of Bitgate's and Bitbucket's servers"), "{token}");
    let repositories = format!("/api/v1/integrations/{id}/repositories");
    let (status, refused) = w.call(w.token("team writer"), Method::GET, &repositories, None).await;
    assert_eq!(status, 502, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("NTP"), "{refused}");
    simulator.configure(|instance| instance.oauth1_clock_offset_seconds = 0);
    let (_, tested) = w.call(w.token("team admin"), Method::POST, &test_path, None).await;
    assert_eq!(tested["health"]["state"], "connected", "{tested}");

    // A request resent on the way is signed anew and sent again; twice in
    // a row, the checklist says so.
    simulator.configure(|instance| instance.oauth1_replayed_requests = 1);
    let (_, tested) = w.call(w.token("team admin"), Method::POST, &test_path, None).await;
    assert_eq!(tested["health"]["state"], "connected", "{tested}");
    simulator.configure(|instance| instance.oauth1_replayed_requests = 2);
    let (_, tested) = w.call(w.token("team admin"), Method::POST, &test_path, None).await;
    let token = check_of(&tested, "token");
    assert!(token["message"].as_str().unwrap().contains("saw this request before"), "{tested}");
    simulator.configure(|instance| instance.oauth1_replayed_requests = 0);
    let (_, tested) = w.call(w.token("team admin"), Method::POST, &test_path, None).await;
    assert_eq!(tested["health"]["state"], "connected", "{tested}");
    while bitgate_core::maintenance::run_one(&w.app.services).await.unwrap() {}
    // A build status meeting it is signed anew and sent: no retry later,
    // and the integration stays connected.
    simulator.configure(|instance| instance.oauth1_replayed_requests = 1);
    let run = json!({"commit": "823b2230a56056231c9425d63758fa87078a66b4", "kind": "tracked", "state": "failed",
                     "url": "https://ci.example.com/runs/1"});
    let (status, reported) =
        w.call(w.token("team writer"), Method::PUT, &format!("/api/v1/stacks/{stack}/runs/r1"), Some(run)).await;
    assert!(status == 200 || status == 201, "{reported}");
    while bitgate_core::maintenance::run_one(&w.app.services).await.unwrap() {}
    let states: Vec<String> =
        simulator.datacenter.read().unwrap().build_statuses.iter().map(|s| s.state.clone()).collect();
    assert_eq!(states, ["FAILED"]);
    let (_, log) =
        w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations/{id}/outbound"), None).await;
    let statuses = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|call| call["what"].as_str().unwrap().starts_with("build status"));
    let answers: Vec<&Value> = statuses.map(|call| &call["status"]).collect();
    assert_eq!(answers, [&json!(204), &json!(401)], "newest first: the replay, then the one signed anew");
    assert_eq!(integration(&w, &id).await["health"]["state"], "connected");

    // Moved to another Bitbucket: the link is checked there, and the token,
    // the old server's, is forgotten until an admin connects again.
    let other = Simulator::start(bitbucket_simulator::DataCenter::sample(), bitbucket_simulator::Transport::Http)
        .await
        .unwrap();
    let change = json!({"datacenter": {"api_url": other.url}});
    let (status, moved) =
        w.call(w.token("team admin"), Method::PATCH, &format!("/api/v1/integrations/{id}"), Some(change)).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["health"]["state"], "pending_authorization", "{moved}");
    assert!(moved["datacenter"]["username"].is_null(), "{moved}");
    assert!(moved["datacenter"]["oauth1"]["connected_by"].is_null(), "{moved}");
    assert_eq!(moved["datacenter"]["oauth1"]["public_key"], json!(public_key), "the key pair stays");
    let token: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT access_token FROM datacenter_credentials WHERE integration_id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(token, None, "the old server's token is gone");
}
