//! The Cloud simulator answers as Bitbucket Cloud does: the OAuth consumer
//! flows with their errors, rotating refresh tokens, PKCE, the REST API's
//! shapes and paging, build statuses, pull requests and their comments,
//! and the faults a test queues.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bitbucket_simulator::{
    cloud::{
        Consumer, Fault, PullRequestState, ScopeField, DEMO_APP_USER, DEMO_KEY, DEMO_PERSONAL_WORKSPACE,
        DEMO_PR_COMMIT, DEMO_PULL_REQUEST, DEMO_REPOSITORY, DEMO_SECRET, DEMO_USER, DEMO_WORKSPACE,
    },
    DataCenter, Simulator, Transport,
};
use reqwest::{redirect::Policy, Client, Method, StatusCode};
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

const STATUSES: &str = "/2.0/repositories/acme/website/commit/9f2c4a1b7e3d5f60812a4b6c8d0e2f4a6b8c0d1e/statuses";
const COMMENTS: &str = "/2.0/repositories/acme/website/pullrequests/1/comments";

/// A token acting as the demo consumer's app user (client credentials).
async fn app_token(sim: &Simulator) -> String {
    let (status, body) = token(sim, DEMO_SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A token acting as Ada, who approved the demo consumer.
async fn person_token(sim: &Simulator) -> String {
    let code = param(&decide(sim, "grant", None).await, "code").unwrap();
    let (status, body) = token(sim, DEMO_SECRET, &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Sends a JSON body (or none) with a Bearer token (or none); the answer's
/// status, headers and text.
async fn send(
    sim: &Simulator,
    method: Method,
    path: &str,
    access: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = client().request(method, format!("{}{path}", sim.url));
    if let Some(access) = access {
        request = request.bearer_auth(access);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let (status, headers) = (answer.status(), answer.headers().clone());
    (status, headers, answer.text().await.unwrap())
}

/// Like [`send`], for answers in JSON.
async fn call(sim: &Simulator, method: Method, path: &str, access: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (status, _, text) = send(sim, method, path, Some(access), body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn status_body(key: &str, state: &str) -> Value {
    serde_json::json!({
        "key": key, "state": state, "name": "Bitgate: web (proposed)", "description": "The run failed",
        "url": "https://platform.example/runs/41", "refname": "feature/login",
    })
}

#[tokio::test]
async fn build_statuses_are_validated_as_cloud_validates_them() {
    let sim = simulator().await;
    let access = app_token(&sim).await;
    let build = format!("{STATUSES}/build");
    let post = |body: Value| call(&sim, Method::POST, &build, &access, Some(body));

    let (status, long) = post(status_body(&"k".repeat(41), "FAILED")).await;
    assert_eq!(status, 400);
    assert_eq!(
        long,
        serde_json::json!({"type": "error", "error": {
            "message": "key: Ensure this value has at most 40 characters (it has 41).",
            "fields": {"key": ["Ensure this value has at most 40 characters (it has 41)."]}
        }})
    );
    let (status, created) = post(status_body(&"k".repeat(40), "FAILED")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["key"].as_str().unwrap().len(), created["type"].as_str()), (40, Some("build")));
    assert_eq!((created["state"].as_str(), created["refname"].as_str()), (Some("FAILED"), Some("feature/login")));
    assert_eq!(
        (created["name"].as_str(), created["description"].as_str()),
        (Some("Bitgate: web (proposed)"), Some("The run failed"))
    );
    assert_eq!(created["url"], "https://platform.example/runs/41");
    assert_eq!(created["commit"]["hash"], DEMO_PR_COMMIT);
    assert_eq!(created["creator"]["display_name"], DEMO_APP_USER, "the creating account: {created}");
    let created_on = created["created_on"].as_str().unwrap();
    assert!(created_on.ends_with("+00:00") && created_on.len() == 32, "Cloud's timestamps: {created_on}");
    assert_eq!(created["created_on"], created["updated_on"]);

    for url in [None, Some("")] {
        let mut body = status_body("no-url", "FAILED");
        match url {
            Some(empty) => body["url"] = empty.into(),
            None => drop(body.as_object_mut().unwrap().remove("url")),
        }
        let (status, refused) = post(body).await;
        assert_eq!(status, 400, "url {url:?}");
        assert_eq!(refused["error"]["fields"]["url"][0], "This field is required.", "{refused}");
    }
    for state in ["CANCELLED", "UNKNOWN", "successful", ""] {
        let (status, refused) = post(status_body("bad-state", state)).await;
        assert_eq!(status, 400, "state {state:?}");
        assert!(refused["error"]["fields"]["state"].is_array(), "{refused}");
    }
    for state in ["INPROGRESS", "SUCCESSFUL", "STOPPED"] {
        let (status, _) = post(status_body(&format!("good-{state}"), state)).await;
        assert_eq!(status, 201, "{state}");
    }
    let (status, _) = call(
        &sim,
        Method::POST,
        "/2.0/repositories/acme/website/commit/not-a-commit/statuses/build",
        &access,
        Some(status_body("k", "FAILED")),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &sim,
        Method::POST,
        &format!("/2.0/repositories/acme/nope/commit/{DEMO_PR_COMMIT}/statuses/build"),
        &access,
        Some(status_body("k", "FAILED")),
    )
    .await;
    assert_eq!(status, 404, "a repository the token cannot see");
}

#[tokio::test]
async fn a_status_is_overwritten_only_by_the_account_that_created_it() {
    let sim = simulator().await;
    let (app, person) = (app_token(&sim).await, person_token(&sim).await);
    let post = |access: &str, body: Value| {
        let access = access.to_owned();
        let sim = &sim;
        async move { call(sim, Method::POST, &format!("{STATUSES}/build"), &access, Some(body)).await }
    };
    let one = format!("{STATUSES}/build/bitgate-web-proposed");

    let (_, first) = post(&app, status_body("bitgate-web-proposed", "INPROGRESS")).await;
    let (status, again) = post(&app, status_body("bitgate-web-proposed", "FAILED")).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!((again["state"].as_str(), again["uuid"].as_str()), (Some("FAILED"), first["uuid"].as_str()));
    assert_eq!(again["created_on"], first["created_on"], "overwritten, not created again");

    let (status, refused) = post(&person, status_body("bitgate-web-proposed", "SUCCESSFUL")).await;
    assert_eq!((status.as_u16(), refused["type"].as_str()), (403, Some("error")), "{refused}");
    let (status, _) = call(&sim, Method::PUT, &one, &person, Some(serde_json::json!({"state": "SUCCESSFUL"}))).await;
    assert_eq!(status, 403);
    let (_, unchanged) = call(&sim, Method::GET, &one, &person, None).await;
    assert_eq!(unchanged["state"], "FAILED", "a refusal changes nothing");

    let (status, updated) =
        call(&sim, Method::PUT, &one, &app, Some(serde_json::json!({"state": "SUCCESSFUL", "description": "Passed"})))
            .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["state"].as_str(), updated["description"].as_str()), (Some("SUCCESSFUL"), Some("Passed")));
    assert_eq!(
        (updated["name"].as_str(), updated["refname"].as_str()),
        (Some("Bitgate: web (proposed)"), Some("feature/login"))
    );
    let (status, renamed) = call(&sim, Method::PUT, &one, &app, Some(serde_json::json!({"key": "other"}))).await;
    assert_eq!((status.as_u16(), renamed["error"]["fields"]["key"].is_array()), (400, true), "{renamed}");
    let (status, _) = call(
        &sim,
        Method::PUT,
        &format!("{STATUSES}/build/never-posted"),
        &app,
        Some(serde_json::json!({"state": "FAILED"})),
    )
    .await;
    assert_eq!(status, 404);

    // Ada posts a key of her own; the app user cannot touch it.
    let (status, _) = post(&person, status_body("bitgate/proposed", "FAILED")).await;
    assert_eq!(status, 201);
    let (status, _) = post(&app, status_body("bitgate/proposed", "SUCCESSFUL")).await;
    assert_eq!(status, 403);

    // A repository admin is exempt (the consumer granted repository:admin).
    sim.configure_cloud(|cloud| cloud.consumers[0].scopes.push("repository:admin".into()));
    let admin = app_token(&sim).await;
    let (status, _) = post(&admin, status_body("bitgate/proposed", "SUCCESSFUL")).await;
    assert_eq!(status, 201);

    let (status, got) = call(&sim, Method::GET, &one, &app, None).await;
    assert_eq!((status.as_u16(), got["key"].as_str()), (200, Some("bitgate-web-proposed")));
    let (status, _) = call(&sim, Method::GET, &format!("{STATUSES}/build/nope"), &app, None).await;
    assert_eq!(status, 404);
    let (status, page) = call(&sim, Method::GET, &format!("{STATUSES}?pagelen=1"), &app, None).await;
    assert_eq!((status.as_u16(), page["size"].as_u64()), (200, Some(2)));
    assert_eq!(page["values"].as_array().unwrap().len(), 1);
    assert!(page["next"].as_str().unwrap().contains("page=2"), "{page}");
    let (_, other_commit) =
        call(&sim, Method::GET, &STATUSES.replace(DEMO_PR_COMMIT, &"a".repeat(40)), &app, None).await;
    assert_eq!(other_commit["size"], 0, "statuses belong to their commit");
}

#[tokio::test]
async fn pull_requests_answer_in_clouds_shape_and_missing_ones_are_404() {
    let sim = simulator().await;
    let access = app_token(&sim).await;
    let path = format!("/2.0/repositories/{DEMO_WORKSPACE}/{DEMO_REPOSITORY}/pullrequests/{DEMO_PULL_REQUEST}");
    let (status, pr) = call(&sim, Method::GET, &path, &access, None).await;
    assert_eq!(status, 200, "{pr}");
    assert_eq!((pr["id"].as_u64(), pr["state"].as_str()), (Some(DEMO_PULL_REQUEST), Some("OPEN")));
    assert_eq!(pr["title"], "Add the login page");
    assert_eq!(pr["source"]["branch"]["name"], "feature/login");
    assert_eq!(pr["source"]["commit"]["hash"], &DEMO_PR_COMMIT[..12], "Cloud abbreviates: {pr}");
    assert_eq!(pr["source"]["repository"]["full_name"], "acme/website");
    assert_eq!(pr["destination"]["branch"]["name"], "main");
    assert_eq!(pr["author"]["username"], DEMO_USER);
    assert!(pr["links"]["html"]["href"].as_str().unwrap().ends_with("/acme/website/pull-requests/1"), "{pr}");

    for missing in ["99", "abc"] {
        let (status, body) =
            call(&sim, Method::GET, &format!("/2.0/repositories/acme/website/pullrequests/{missing}"), &access, None)
                .await;
        assert_eq!((status.as_u16(), body["type"].as_str()), (404, Some("error")), "{missing}: {body}");
    }
    let (status, _) = call(&sim, Method::GET, "/2.0/repositories/acme/service-02/pullrequests/1", &access, None).await;
    assert_eq!(status, 404, "pull requests belong to their repository");
    let (status, _) = call(&sim, Method::GET, "/2.0/repositories/ada/notes/pullrequests/1", &access, None).await;
    assert_eq!(status, 404, "the app user does not see Ada's workspace");

    sim.configure_cloud(|cloud| cloud.pull_requests[0].state = PullRequestState::Merged);
    let (_, merged) = call(&sim, Method::GET, &path, &access, None).await;
    assert_eq!(merged["state"], "MERGED");

    sim.configure_cloud(|cloud| cloud.consumers[0].scopes = vec!["account".into(), "repository".into()]);
    let narrow = app_token(&sim).await;
    let (status, lacking) = call(&sim, Method::GET, &path, &narrow, None).await;
    assert_eq!(status, 403);
    assert_eq!(lacking["error"]["message"], "Your credentials lack one or more required privilege scopes.");
    assert_eq!(lacking["error"]["detail"]["required"], serde_json::json!(["pullrequest"]), "{lacking}");
}

#[tokio::test]
async fn comments_are_created_edited_and_deleted_by_their_author_only() {
    let sim = simulator().await;
    let (app, person) = (app_token(&sim).await, person_token(&sim).await);
    let content = |raw: &str| Some(serde_json::json!({"content": {"raw": raw}}));

    let (status, first) = call(&sim, Method::POST, COMMENTS, &app, content("Bitgate: web failed")).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        (first["type"].as_str(), first["content"]["raw"].as_str()),
        (Some("pullrequest_comment"), Some("Bitgate: web failed"))
    );
    assert_eq!(first["user"]["display_name"], DEMO_APP_USER);
    assert!(first["created_on"].is_string() && first["updated_on"].is_string());
    let (_, second) = call(&sim, Method::POST, COMMENTS, &person, content("Looking into it")).await;
    assert!(second["id"].as_u64().unwrap() > first["id"].as_u64().unwrap(), "ids grow");
    let one = format!("{COMMENTS}/{}", first["id"]);

    let (status, edited) = call(&sim, Method::PUT, &one, &app, content("Bitgate: web succeeded")).await;
    assert_eq!((status.as_u16(), edited["content"]["raw"].as_str()), (200, Some("Bitgate: web succeeded")));
    assert_eq!(edited["id"], first["id"], "edited in place");
    let (status, refused) = call(&sim, Method::PUT, &one, &person, content("hijacked")).await;
    assert_eq!((status.as_u16(), refused["type"].as_str()), (403, Some("error")));
    let (status, got) = call(&sim, Method::GET, &one, &person, None).await;
    assert_eq!((status.as_u16(), got["content"]["raw"].as_str()), (200, Some("Bitgate: web succeeded")));

    let (status, page) = call(&sim, Method::GET, &format!("{COMMENTS}?pagelen=1"), &app, None).await;
    assert_eq!((status.as_u16(), page["size"].as_u64()), (200, Some(2)));
    assert_eq!(page["values"][0]["id"], first["id"], "oldest first");
    assert!(page["next"].is_string());

    let (status, headers, text) = send(&sim, Method::POST, COMMENTS, Some(&app), content(&"x".repeat(1_000_001))).await;
    assert_eq!((status.as_u16(), text.as_str()), (400, "<h1>Bad Request (400)</h1>"));
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let (status, _) = call(&sim, Method::POST, COMMENTS, &app, content(&"x".repeat(1_000_000))).await;
    assert_eq!(status, 201, "a million characters are taken");
    let (status, _) = call(&sim, Method::POST, COMMENTS, &app, Some(serde_json::json!({"text": "DC's shape"}))).await;
    assert_eq!(status, 400);

    let (status, _) = call(&sim, Method::DELETE, &one, &person, None).await;
    assert_eq!(status, 403, "not Ada's comment");
    let (status, _, text) = send(&sim, Method::DELETE, &one, Some(&app), None).await;
    assert_eq!((status.as_u16(), text.as_str()), (204, ""));
    let (status, _) = call(&sim, Method::GET, &one, &app, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&sim, Method::DELETE, &one, &app, None).await;
    assert_eq!(status, 404);

    sim.configure_cloud(|cloud| cloud.pull_requests[0].state = PullRequestState::Declined);
    let (status, _) = call(&sim, Method::POST, COMMENTS, &app, content("after the close")).await;
    assert_eq!(status, 201, "a closed pull request still takes comments");
    let (status, _) =
        call(&sim, Method::POST, "/2.0/repositories/acme/website/pullrequests/9/comments", &app, content("x")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn queued_faults_answer_the_next_writes_and_every_write_is_logged() {
    let sim = simulator().await;
    let access = app_token(&sim).await;
    let build = format!("{STATUSES}/build");
    sim.configure_cloud(|cloud| {
        cloud.faults.extend([
            Fault::RateLimited { retry_after_seconds: Some(7) },
            Fault::Unavailable,
            Fault::RateLimited { retry_after_seconds: None },
        ])
    });

    let (status, _) = call(&sim, Method::GET, STATUSES, &access, None).await;
    assert_eq!(status, 200, "reads meet no fault");
    let (status, headers, text) =
        send(&sim, Method::POST, &build, Some(&access), Some(status_body("k", "FAILED"))).await;
    assert_eq!((status.as_u16(), text.as_str()), (429, "Rate limit for this resource has been exceeded"));
    assert_eq!(headers["retry-after"], "7");
    let (status, _, _) = send(&sim, Method::POST, &build, Some(&access), Some(status_body("k", "FAILED"))).await;
    assert_eq!(status, 503);
    let (status, headers, _) =
        send(&sim, Method::POST, COMMENTS, Some(&access), Some(serde_json::json!({"content": {"raw": "x"}}))).await;
    assert_eq!(status, 429);
    assert!(headers.get("retry-after").is_none(), "Cloud may leave Retry-After out");
    let (status, _) = call(&sim, Method::POST, &build, &access, Some(status_body("k", "FAILED"))).await;
    assert_eq!(status, 201, "the queue is spent");

    let calls = sim.cloud.read().unwrap().calls.clone();
    let answered: Vec<(&str, u16)> = calls.iter().map(|c| (c.path.as_str(), c.status)).collect();
    assert_eq!(answered, [(build.as_str(), 429), (build.as_str(), 503), (COMMENTS, 429), (build.as_str(), 201)]);
    assert!(calls.iter().all(|c| c.method == Method::POST));
    assert!(calls.windows(2).all(|pair| pair[0].at <= pair[1].at), "in order of arrival");
}

#[tokio::test]
async fn the_pages_show_a_commits_builds_and_a_pull_requests_comments() {
    let sim = simulator().await;
    let access = app_token(&sim).await;
    let mut body = status_body("bitgate-web-proposed", "FAILED");
    body["description"] = "Failed <quickly>".into();
    let (status, _) = call(&sim, Method::POST, &format!("{STATUSES}/build"), &access, Some(body)).await;
    assert_eq!(status, 201);
    let (status, _) =
        call(&sim, Method::POST, COMMENTS, &access, Some(serde_json::json!({"content": {"raw": "Run 41 failed"}})))
            .await;
    assert_eq!(status, 201);

    let (status, _, commit) =
        send(&sim, Method::GET, &format!("/acme/website/commits/{DEMO_PR_COMMIT}"), None, None).await;
    assert_eq!(status, 200);
    for shown in ["bitgate-web-proposed", "FAILED", "Bitgate: web (proposed)", "Failed &lt;quickly&gt;"] {
        assert!(commit.contains(shown), "{shown} in {commit}");
    }
    assert!(commit.contains("<a href=\"https://platform.example/runs/41\">"), "{commit}");

    let (status, _, pull_request) = send(&sim, Method::GET, "/acme/website/pull-requests/1", None, None).await;
    assert_eq!(status, 200);
    for shown in ["Add the login page", "Run 41 failed", DEMO_APP_USER, "bitgate-web-proposed"] {
        assert!(pull_request.contains(shown), "{shown} in {pull_request}");
    }
    let (status, _, _) = send(&sim, Method::GET, "/acme/website/pull-requests/2", None, None).await;
    assert_eq!(status, 404);
    let (status, _, _) = send(&sim, Method::GET, &format!("/acme/nope/commits/{DEMO_PR_COMMIT}"), None, None).await;
    assert_eq!(status, 404);
    let (status, _, authorize) =
        send(&sim, Method::GET, &format!("/site/oauth2/authorize?client_id={DEMO_KEY}&response_type=code"), None, None)
            .await;
    assert!(status == 200 && authorize.contains("Grant access"), "the OAuth pages still answer");
}

#[tokio::test]
async fn statuses_pull_requests_and_comments_need_a_valid_token() {
    let sim = simulator().await;
    let pull_request = "/2.0/repositories/acme/website/pullrequests/1";
    let requests = [
        (Method::POST, format!("{STATUSES}/build"), Some(status_body("k", "FAILED"))),
        (Method::PUT, format!("{STATUSES}/build/k"), Some(serde_json::json!({"state": "FAILED"}))),
        (Method::GET, format!("{STATUSES}/build/k"), None),
        (Method::GET, STATUSES.to_owned(), None),
        (Method::GET, pull_request.to_owned(), None),
        (Method::POST, COMMENTS.to_owned(), Some(serde_json::json!({"content": {"raw": "x"}}))),
        (Method::GET, COMMENTS.to_owned(), None),
        (Method::PUT, format!("{COMMENTS}/1"), Some(serde_json::json!({"content": {"raw": "x"}}))),
        (Method::DELETE, format!("{COMMENTS}/1"), None),
    ];
    for (method, path, body) in requests {
        for access in [None, Some("not-a-token")] {
            let (status, _, text) = send(&sim, method.clone(), &path, access, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {access:?}");
            let error: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(error["type"], "error");
        }
    }
}
