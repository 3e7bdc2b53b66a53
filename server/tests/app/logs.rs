//! Secrets never reach the logs. Every log line this test process writes
//! (debug and above, every crate, more than production's `info`) is
//! captured while access tokens, a webhook secret and Bitbucket Cloud's
//! OAuth secrets (consumer secret, code, state, access and refresh tokens),
//! and Data Center's application links' (an OAuth 2.0 client secret and
//! tokens, an OAuth 1.0a private key and token) go through every path that
//! handles them; none may appear in any line.

use std::{
    io::Write,
    sync::{Mutex, OnceLock},
};

use bitbucket_simulator::datacenter::{Token, DEMO_USER};
use reqwest::Method;
use serde_json::json;

use bitgate_core::{
    oauth_tokens::Seen,
    secrets::{Binding, Sealed},
};

use crate::world::world_with_bitbucket;

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of the process, from now on, to [`CAPTURED`].
fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(|| Capture)
            .with_ansi(false)
            .try_init()
            .expect("no other test installs a global subscriber");
    });
}

fn captured() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn access_tokens_and_webhook_secrets_never_appear_in_a_log_line() {
    capture_logs();
    let (w, sim) = world_with_bitbucket().await;
    // Tokens of this test only, so that other tests' lines cannot hide a leak.
    let (token, replacement, wrong) =
        ("BBDC-logcheck-3f9a1c2b7d", "BBDC-logcheck-replacement-8e1d", "BBDC-logcheck-wrong-55c2");
    sim.configure(|dc| {
        for secret in [token, replacement] {
            dc.tokens.push(Token {
                secret: secret.into(),
                owner: DEMO_USER.into(),
                project_read: true,
                repository_read: true,
                repository_admin: false,
            });
        }
    });
    let admin = w.token("account admin");
    let body = |name: &str, token: &str| {
        json!({"name": name, "provider": "bitbucket_datacenter", "scope": "space", "space_id": w.team,
               "datacenter": {"api_url": sim.url, "username": DEMO_USER, "access_token": token}})
    };

    let (status, _) = w.call(admin, Method::POST, "/api/v1/integrations", Some(body("refused", wrong))).await;
    assert_eq!(status, 422);
    let (status, created) = w.call(admin, Method::POST, "/api/v1/integrations", Some(body("logged", token))).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
    let (status, _) = w.call(admin, Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!(status, 200);
    let (status, _) = w.call(admin, Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200);
    let (status, webhook) = w.call(admin, Method::GET, &format!("/api/v1/integrations/{id}/webhook"), None).await;
    assert_eq!(status, 200);
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    let patch = json!({"datacenter": {"access_token": replacement}});
    let (status, _) = w.call(admin, Method::PATCH, &format!("/api/v1/integrations/{id}"), Some(patch)).await;
    assert_eq!(status, 200);
    // Bitbucket refusing the stored token afterwards (logged as a failed check).
    sim.configure(|dc| dc.tokens.clear());
    let (status, _) = w.call(admin, Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!(status, 200);

    let logs = captured();
    assert!(logs.contains(&format!("/api/v1/integrations/{id}/test")), "the requests were logged at all");
    for (what, value) in
        [("token", token), ("new token", replacement), ("refused token", wrong), ("webhook secret", &secret)]
    {
        let leaks: Vec<&str> = logs.lines().filter(|line| line.contains(value)).collect();
        assert!(leaks.is_empty(), "the {what} is in the logs: {leaks:?}");
    }

    // Bitbucket Cloud: the consumer's secret, the code, the state and the
    // tokens, through both modes, the callback, refreshes and a broken chain.
    let (w, simulator) = crate::cloud::cloud_world().await;
    simulator.configure_cloud(|cloud| cloud.expires_in = 1);
    crate::cloud::create(&w, "cloud-cc", "client_credentials").await;
    let id = crate::cloud::create(&w, "cloud-code", "authorization_code").await["id"].as_str().unwrap().to_owned();
    let browser = w.browser("team admin").await;
    let authorize = crate::cloud::connect(&browser, &id).await;
    let callback = crate::cloud::approve(&simulator, &authorize, "grant").await;
    assert_eq!(browser.get(&callback).await.status(), 303);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(bitgate_core::oauth_tokens::refresh_due(&w.app.services).await.unwrap(), 2);
    simulator.configure_cloud(|cloud| cloud.consumers[0].secret = "changed-in-bitbucket".into());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    bitgate_core::oauth_tokens::refresh_due(&w.app.services).await.unwrap();
    let callback = url::Url::parse(&format!("http://x{callback}")).unwrap();
    let query: std::collections::HashMap<String, String> = callback.query_pairs().into_owned().collect();

    let logs = captured();
    assert!(logs.contains("OAuth tokens refreshed"), "the refreshes were logged at all");
    assert!(logs.contains("authorization lost"), "so was the broken chain");
    for (what, value) in [
        ("consumer secret", bitbucket_simulator::cloud::DEMO_SECRET),
        ("access token", "cloud-access-"),
        ("refresh token", "cloud-refresh-"),
        ("authorization code", query["code"].as_str()),
        ("state", query["state"].as_str()),
    ] {
        let leaks: Vec<&str> = logs.lines().filter(|line| line.contains(value)).collect();
        assert!(leaks.is_empty(), "the {what} is in the logs: {leaks:?}");
    }

    // Data Center's application links: an OAuth 2.0 link's secret and
    // tokens, an OAuth 1.0a link's private key and token, through creation,
    // Connect, the callback, signed calls and a refresh.
    use crate::datacenter_oauth::{approve, connect, connected, create_legacy, link_world};
    let (w, simulator) = link_world().await;
    let (linked, _) = connected(&w, &simulator, "dc-link").await;
    let linked = uuid::Uuid::parse_str(&linked).unwrap();
    let seen = sqlx::query_scalar("SELECT token_expires_at FROM datacenter_credentials WHERE integration_id = $1")
        .bind(linked)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    let provider = bitgate_core::integrations::Provider::DataCenter;
    let refreshed = bitgate_core::oauth_tokens::refresh(&w.app.services, provider, linked, Seen::Expiry(seen));
    let access = refreshed.await.unwrap();
    let legacy = create_legacy(&w, &simulator, "dc-legacy").await;
    let id = legacy["id"].as_str().unwrap().to_owned();
    let public_key = legacy["datacenter"]["oauth1"]["public_key"].as_str().unwrap().to_owned();
    simulator.configure(|instance| instance.add_application_link("bitgate-dc-legacy", "Bitgate", &public_key));
    let admin = w.browser("team admin").await;
    let callback = approve(&simulator, &connect(&admin, &id).await, "allow").await;
    assert_eq!(admin.get(&callback).await.status(), 303);
    let (status, _) =
        w.call(w.token("team writer"), Method::GET, &format!("/api/v1/integrations/{id}/repositories"), None).await;
    assert_eq!(status, 200);
    let id = uuid::Uuid::parse_str(&id).unwrap();
    let open = |column: &'static str| {
        let pool = w.app.pool.clone();
        let keyring = w.app.services.keyring.clone();
        async move {
            let query = format!("SELECT {column}_key, {column} FROM datacenter_credentials WHERE integration_id = $1");
            let (key_id, ciphertext): (String, Vec<u8>) =
                sqlx::query_as(&query).bind(id).fetch_one(&pool).await.unwrap();
            let binding = Binding { table: "datacenter_credentials", column, row: id };
            String::from_utf8(keyring.open(&Sealed { key_id, ciphertext }, binding).unwrap()).unwrap()
        }
    };
    let private_key = open("private_key").await;
    let legacy_token = open("access_token").await;
    // A line of the key's base64 body, as a log would carry a piece of it.
    let key_body = private_key.lines().nth(3).unwrap().to_owned();

    let logs = captured();
    for (what, value) in [
        ("link's client secret", bitbucket_simulator::datacenter::DEMO_OAUTH2_CLIENT_SECRET),
        ("link's access token", access.expose().as_str()),
        ("private key", "PRIVATE KEY"),
        ("private key's body", key_body.as_str()),
        ("OAuth 1.0a access token", legacy_token.as_str()),
    ] {
        let leaks: Vec<&str> = logs.lines().filter(|line| line.contains(value)).collect();
        assert!(leaks.is_empty(), "the {what} is in the logs: {leaks:?}");
    }
}
