//! The Cloud simulator answers as Bitbucket Cloud does: the OAuth consumer
//! flows with their errors, rotating refresh tokens, PKCE, and the REST
//! API's shapes and paging.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bitbucket_simulator::{
    cloud::{
        Consumer, ScopeField, DEMO_APP_USER, DEMO_KEY, DEMO_PERSONAL_WORKSPACE, DEMO_SECRET, DEMO_USER, DEMO_WORKSPACE,
    },
    DataCenter, Simulator, Transport,
};
use reqwest::{redirect::Policy, Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

const CALLBACK: &str = "http://bitgate.test/oauth/bitbucket/callback";

async fn simulator() -> Simulator {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    sim.configure_cloud(|cloud| cloud.consumers[0].callback_url = Some(CALLBACK.into()));
    sim
}

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Clicks Grant or Deny on the authorize page; the callback URL Bitbucket redirects to.
async fn decide(sim: &Simulator, decision: &str, challenge: Option<&str>) -> url::Url {
    let mut query = vec![("client_id", DEMO_KEY), ("response_type", "code"), ("state", "st4te")];
    if let Some(challenge) = challenge {
        query.extend([("code_challenge", challenge), ("code_challenge_method", "S256")]);
    }
    let page = client().get(format!("{}/site/oauth2/authorize", sim.url)).query(&query).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Bitgate is requesting access") && html.contains("Grant access"), "{html}");
    let mut form = vec![("client_id", DEMO_KEY), ("state", "st4te"), ("decision", decision)];
    if let Some(challenge) = challenge {
        form.push(("code_challenge", challenge));
    }
    let answer = client().post(format!("{}/site/oauth2/authorize", sim.url)).form(&form).send().await.unwrap();
    assert!(answer.status().is_redirection());
    url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

async fn token(sim: &Simulator, secret: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let answer = client()
        .post(format!("{}/site/oauth2/access_token", sim.url))
        .basic_auth(DEMO_KEY, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (answer.status(), answer.json().await.unwrap())
}

async fn get(sim: &Simulator, path: &str, access: &str) -> (StatusCode, Value) {
    let answer = client().get(format!("{}{path}", sim.url)).bearer_auth(access).send().await.unwrap();
    (answer.status(), answer.json().await.unwrap())
}

#[tokio::test]
async fn the_authorization_code_grant_checks_pkce_and_spends_each_code_once() {
    let sim = simulator().await;
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefghijklmnop";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let callback = decide(&sim, "grant", Some(&challenge)).await;
    assert!(callback.as_str().starts_with(CALLBACK));
    assert_eq!(param(&callback, "state").as_deref(), Some("st4te"));
    let code = param(&callback, "code").unwrap();

    let (status, body) =
        token(&sim, DEMO_SECRET, &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", "wrong")])
            .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")));
    let callback = decide(&sim, "grant", Some(&challenge)).await;
    let code = param(&callback, "code").unwrap();
    let (status, body) =
        token(&sim, DEMO_SECRET, &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", verifier)])
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["expires_in"].as_u64(), body["token_type"].as_str()), (Some(7200), Some("bearer")));
    assert!(body["scope"].as_str().unwrap().contains("repository"));
    assert!(body["refresh_token"].is_string());
    let (status, user) = get(&sim, "/2.0/user", body["access_token"].as_str().unwrap()).await;
    assert_eq!((status.as_u16(), user["username"].as_str()), (200, Some(DEMO_USER)));

    let (status, again) =
        token(&sim, DEMO_SECRET, &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", verifier)])
            .await;
    assert_eq!((status.as_u16(), again["error"].as_str()), (400, Some("invalid_grant")), "a code is spent once");
    let (status, dummy) = token(&sim, DEMO_SECRET, &[("grant_type", "authorization_code"), ("code", "dummy")]).await;
    assert_eq!(
        (status.as_u16(), dummy["error"].as_str()),
        (400, Some("invalid_grant")),
        "a valid consumer, a bad code"
    );
    let (status, wrong) =
        token(&sim, "not-the-secret", &[("grant_type", "authorization_code"), ("code", "dummy")]).await;
    assert_eq!((status.as_u16(), wrong["error"].as_str()), (401, Some("invalid_client")));

    let denied = decide(&sim, "deny", None).await;
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&denied, "state").as_deref(), Some("st4te"));
    assert!(param(&denied, "code").is_none());
}

#[tokio::test]
async fn refresh_tokens_rotate_and_expired_access_tokens_are_refused() {
    let sim = simulator().await;
    let code = param(&decide(&sim, "grant", None).await, "code").unwrap();
    let (_, first) = token(&sim, DEMO_SECRET, &[("grant_type", "authorization_code"), ("code", &code)]).await;
    let old_refresh = first["refresh_token"].as_str().unwrap().to_owned();
    sim.configure_cloud(|cloud| cloud.expire_access_tokens());
    let (status, expired) = get(&sim, "/2.0/user", first["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    assert!(expired["error"]["message"].as_str().unwrap().contains("expired"));

    let (status, second) =
        token(&sim, DEMO_SECRET, &[("grant_type", "refresh_token"), ("refresh_token", &old_refresh)]).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    let (status, _) = get(&sim, "/2.0/user", second["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let (status, spent) =
        token(&sim, DEMO_SECRET, &[("grant_type", "refresh_token"), ("refresh_token", &old_refresh)]).await;
    assert_eq!((status.as_u16(), spent["error"].as_str()), (400, Some("invalid_grant")), "the old one is spent");

    sim.configure_cloud(|cloud| cloud.expires_in = 2);
    let (_, short) = token(
        &sim,
        DEMO_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", second["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(short["expires_in"], 2, "a test can shorten the expiry");
}

#[tokio::test]
async fn client_credentials_are_for_private_consumers_and_a_callback_is_required() {
    let sim = simulator().await;
    let (status, body) = token(&sim, DEMO_SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "no refresh token for client credentials");
    let (status, user) = get(&sim, "/2.0/user", body["access_token"].as_str().unwrap()).await;
    assert_eq!((status.as_u16(), user["type"].as_str()), (200, Some("app_user")), "the consumer's app user");

    sim.configure_cloud(|cloud| {
        cloud.consumers[0].private = false;
        cloud.consumers.push(Consumer { key: "no-callback".into(), callback_url: None, ..cloud.consumers[0].clone() });
    });
    let (status, body) = token(&sim, DEMO_SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("unauthorized_client")));

    let answer = client()
        .post(format!("{}/site/oauth2/access_token", sim.url))
        .basic_auth("no-callback", Some(DEMO_SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", "dummy")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["error_description"].as_str()),
        (Some("invalid_request"), Some("No callback uri defined for the OAuth client."))
    );
    let page = client()
        .get(format!("{}/site/oauth2/authorize?client_id=no-callback&response_type=code", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("No callback uri defined"));
}

#[tokio::test]
async fn the_rest_api_pages_workspaces_and_repositories_like_cloud() {
    let sim = simulator().await;
    let (_, body) = token(&sim, DEMO_SECRET, &[("grant_type", "client_credentials")]).await;
    let access = body["access_token"].as_str().unwrap();

    let (_, workspaces) = get(&sim, "/2.0/user/workspaces", access).await;
    assert_eq!(workspaces["values"][0]["workspace"]["slug"], DEMO_WORKSPACE);
    let (status, workspace) = get(&sim, &format!("/2.0/workspaces/{DEMO_WORKSPACE}"), access).await;
    assert_eq!((status.as_u16(), workspace["slug"].as_str()), (200, Some(DEMO_WORKSPACE)));
    let (status, missing) = get(&sim, "/2.0/workspaces/nope", access).await;
    assert_eq!((status.as_u16(), missing["type"].as_str()), (404, Some("error")));

    let mut seen = Vec::new();
    let mut next = Some(format!("{}/2.0/repositories/{DEMO_WORKSPACE}?pagelen=10", sim.url));
    while let Some(url) = next {
        let page: Value = client().get(&url).bearer_auth(access).send().await.unwrap().json().await.unwrap();
        assert!(page["values"].as_array().unwrap().len() <= 10);
        seen.extend(page["values"].as_array().unwrap().iter().map(|r| r["uuid"].as_str().unwrap().to_owned()));
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 40);
    assert!(seen[0].starts_with('{') && seen[0].ends_with('}'), "Cloud's braced UUIDs");

    let (_, found) = get(&sim, &format!("/2.0/repositories/{DEMO_WORKSPACE}?q=name%20~%20%22WEBSITE%22"), access).await;
    assert_eq!(found["values"].as_array().unwrap().len(), 1);
    assert_eq!(found["values"][0]["full_name"], format!("{DEMO_WORKSPACE}/website"));
    let (status, one) = get(&sim, &format!("/2.0/repositories/{DEMO_WORKSPACE}/website"), access).await;
    assert_eq!((status.as_u16(), one["slug"].as_str()), (200, Some("website")));
    let (status, _) = get(&sim, &format!("/2.0/repositories/{DEMO_WORKSPACE}/nope"), access).await;
    assert_eq!(status, 404);
    let (status, _) = get(&sim, "/2.0/user", "not-a-token").await;
    assert_eq!(status, 401);
}

/// Pins what Bitbucket Cloud answers since Atlassian's "OAuth 2.0 and API
/// authentication changes for Bitbucket Cloud", enforced from 4 May 2026,
/// so that the simulator cannot drift back to the answers before it.
#[tokio::test]
async fn answers_as_bitbucket_cloud_does_since_may_2026() {
    let sim = simulator().await;

    // Token answers name the granted scopes `scope`, OAuth's field.
    let (status, credentials) = token(&sim, DEMO_SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{credentials}");
    assert_eq!(credentials["scope"], "account repository pullrequest webhook project");
    assert!(credentials.get("scopes").is_none(), "the old name is gone: {credentials}");
    assert_eq!((credentials["token_type"].as_str(), credentials["expires_in"].as_u64()), (Some("bearer"), Some(7200)));
    // Client credentials: no refresh token, and the consumer's app user, not a person.
    assert!(credentials.get("refresh_token").is_none(), "{credentials}");
    let app_token = credentials["access_token"].as_str().unwrap();
    let (status, app_user) = get(&sim, "/2.0/user", app_token).await;
    assert_eq!(status, 200);
    assert_eq!(app_user["type"], "app_user");
    assert_eq!(app_user["display_name"], DEMO_APP_USER);
    assert!(app_user["uuid"].as_str().unwrap().starts_with('{') && app_user["account_id"].is_string(), "{app_user}");
    assert!(app_user.get("username").is_none() && app_user.get("nickname").is_none(), "not a person: {app_user}");

    // It reaches only the workspace that owns the consumer.
    let (status, _) = get(&sim, &format!("/2.0/workspaces/{DEMO_WORKSPACE}"), app_token).await;
    assert_eq!(status, 200);
    let (status, personal) = get(&sim, &format!("/2.0/workspaces/{DEMO_PERSONAL_WORKSPACE}"), app_token).await;
    assert_eq!((status.as_u16(), personal["type"].as_str()), (404, Some("error")), "{personal}");
    let (status, _) = get(&sim, &format!("/2.0/repositories/{DEMO_PERSONAL_WORKSPACE}"), app_token).await;
    assert_eq!(status, 404);
    let (status, _) = get(&sim, &format!("/2.0/repositories/{DEMO_PERSONAL_WORKSPACE}/notes"), app_token).await;
    assert_eq!(status, 404);
    let (_, memberships) = get(&sim, "/2.0/user/workspaces", app_token).await;
    let slugs: Vec<&str> =
        memberships["values"].as_array().unwrap().iter().map(|m| m["workspace"]["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, [DEMO_WORKSPACE]);

    // An approval: `scope` too, a refresh token, and the person who approved,
    // who sees their own workspace.
    let code = param(&decide(&sim, "grant", None).await, "code").unwrap();
    let (status, approved) = token(&sim, DEMO_SECRET, &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!(status, 200, "{approved}");
    assert!(approved["scope"].is_string() && approved.get("scopes").is_none(), "{approved}");
    assert!(approved["refresh_token"].is_string());
    let person_token = approved["access_token"].as_str().unwrap();
    let (_, person) = get(&sim, "/2.0/user", person_token).await;
    assert_eq!((person["type"].as_str(), person["username"].as_str()), (Some("user"), Some(DEMO_USER)));
    let (status, _) = get(&sim, &format!("/2.0/workspaces/{DEMO_PERSONAL_WORKSPACE}"), person_token).await;
    assert_eq!(status, 200);

    // Access tokens only in `Authorization: Bearer`: one in the query string
    // is refused, with or without the header.
    for path in ["/2.0/user", "/2.0/workspaces/acme", "/2.0/repositories/acme"] {
        let in_query = client().get(format!("{}{path}?access_token={person_token}", sim.url)).send().await.unwrap();
        assert_eq!(in_query.status(), 401, "{path}");
        let body: Value = in_query.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("Authorization header"), "{body}");
        let both = client()
            .get(format!("{}{path}?access_token={person_token}", sim.url))
            .bearer_auth(person_token)
            .send()
            .await
            .unwrap();
        assert_eq!(both.status(), 401, "{path}: refused even beside the header");
    }

    // A switch brings back the old field, or leaves both out, for the tests
    // of servers and proxies that answer so.
    sim.configure_cloud(|cloud| cloud.scope_field = ScopeField::Scopes);
    let (_, legacy) = token(&sim, DEMO_SECRET, &[("grant_type", "client_credentials")]).await;
    assert!(legacy["scopes"].is_string() && legacy.get("scope").is_none(), "{legacy}");
    sim.configure_cloud(|cloud| cloud.scope_field = ScopeField::Missing);
    let (_, neither) = token(&sim, DEMO_SECRET, &[("grant_type", "client_credentials")]).await;
    assert!(neither.get("scopes").is_none() && neither.get("scope").is_none(), "{neither}");
}
