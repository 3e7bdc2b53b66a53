//! Data Center's OAuth 2.0 provider (an "External application" link) answers
//! as Bitbucket's does: the consent page and its redirects, the token
//! endpoint's grants and refusals, PKCE, the refresh that names its
//! redirect URI, and access tokens that the REST API takes, within their
//! scope and lifetime.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bitbucket_simulator::{
    datacenter::{DEMO_OAUTH2_CLIENT_ID, DEMO_OAUTH2_CLIENT_SECRET, DEMO_USER},
    DataCenter, Fault, Simulator, Transport,
};
use reqwest::{redirect::Policy, Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

const CALLBACK: &str = "http://bitgate.test/oauth/bitbucket/callback";
const VERIFIER: &str = "a-verifier-of-enough-length-0123456789-abcdefghijklmnop";

async fn simulator(instance: DataCenter) -> Simulator {
    let sim = Simulator::start(instance, Transport::Http).await.unwrap();
    sim.configure(|dc| dc.oauth2_clients[0].redirect_url = Some(CALLBACK.into()));
    sim
}

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The value of a hidden field of the consent page's form.
fn hidden(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let value = &html[start..start + html[start..].find('"')?];
    Some(value.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
}

/// Opens the consent page with this scope (and a PKCE challenge), checks
/// it, then clicks `button` ("Allow" or "Deny") by posting its form back as
/// a browser would; the URL Bitbucket redirects to.
async fn consent(sim: &Simulator, base: &str, scope: &str, pkce: Option<&str>, button: &str) -> url::Url {
    let mut query = vec![
        ("client_id", DEMO_OAUTH2_CLIENT_ID.to_owned()),
        ("redirect_uri", CALLBACK.to_owned()),
        ("response_type", "code".to_owned()),
        ("state", "st4te".to_owned()),
        ("scope", scope.to_owned()),
    ];
    if let Some(verifier) = pkce {
        query.extend([("code_challenge", challenge(verifier)), ("code_challenge_method", "S256".to_owned())]);
    }
    let page =
        client().get(format!("{}{base}/rest/oauth2/latest/authorize", sim.url)).query(&query).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(">Allow</button>") && html.contains(">Deny</button>"), "{html}");
    assert!(html.contains("Bitgate wants to access") && html.contains(DEMO_USER), "{html}");
    assert!(html.contains(&format!("action=\"{base}/rest/oauth2/latest/authorize\"")), "{html}");
    let mut form: Vec<(String, String)> =
        ["client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"]
            .iter()
            .filter_map(|name| hidden(&html, name).map(|v| (name.to_string(), v)))
            .collect();
    form.push(("decision".into(), button.to_lowercase()));
    let answer =
        client().post(format!("{}{base}/rest/oauth2/latest/authorize", sim.url)).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap()
}

/// A token request with HTTP Basic client authentication and a form body.
async fn token(sim: &Simulator, secret: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let answer = client()
        .post(format!("{}/rest/oauth2/latest/token", sim.url))
        .basic_auth(DEMO_OAUTH2_CLIENT_ID, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (answer.status(), answer.json().await.unwrap())
}

async fn get(sim: &Simulator, path: &str, access: &str) -> reqwest::Response {
    client().get(format!("{}{path}", sim.url)).bearer_auth(access).send().await.unwrap()
}

/// A code for this scope, and the token answer for it (PKCE S256).
async fn grant(sim: &Simulator, scope: &str) -> Value {
    let code = param(&consent(sim, "", scope, Some(VERIFIER), "Allow").await, "code").unwrap();
    let (status, body) = token(
        sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_whole_flow_gives_a_token_the_rest_api_takes_and_refreshes_it() {
    let sim = simulator(DataCenter::sample()).await;
    let callback = consent(&sim, "", "REPO_ADMIN", Some(VERIFIER), "Allow").await;
    assert!(callback.as_str().starts_with(CALLBACK));
    assert_eq!(param(&callback, "state").as_deref(), Some("st4te"));
    let code = param(&callback, "code").unwrap();

    let (status, body) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64(), body["scope"].as_str()),
        (Some("bearer"), Some(3600), Some("REPO_ADMIN"))
    );
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    let projects = get(&sim, "/rest/api/1.0/projects", &access).await;
    assert_eq!(projects.headers()["x-ausername"], DEMO_USER);
    assert_eq!(projects.json::<Value>().await.unwrap()["size"], 3);
    let whoami = get(&sim, "/plugins/servlet/applinks/whoami", &access).await;
    assert_eq!(whoami.text().await.unwrap(), DEMO_USER);

    let (status, refreshed) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("redirect_uri", CALLBACK)],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["scope"], "REPO_ADMIN");
    assert_ne!(refreshed["access_token"].as_str(), Some(access.as_str()));
    assert_ne!(refreshed["refresh_token"].as_str(), Some(refresh.as_str()));
    let new_access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(get(&sim, "/rest/api/1.0/repos", new_access).await.status(), 200);
    assert_eq!(get(&sim, "/rest/api/1.0/repos", &access).await.status(), 200, "the old one lives until it expires");

    let (status, spent) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("redirect_uri", CALLBACK)],
    )
    .await;
    assert_eq!((status.as_u16(), spent["error"].as_str()), (400, Some("invalid_grant")), "the old one is spent");
}

#[tokio::test]
async fn deny_and_the_authorize_page_refusals() {
    let sim = simulator(DataCenter::sample()).await;
    let denied = consent(&sim, "", "REPO_READ", None, "Deny").await;
    assert!(denied.as_str().starts_with(CALLBACK));
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&denied, "state").as_deref(), Some("st4te"));
    assert!(param(&denied, "code").is_none());

    let authorize = format!("{}/rest/oauth2/latest/authorize", sim.url);
    let open = |query: Vec<(&'static str, &'static str)>| {
        let authorize = authorize.clone();
        async move { client().get(authorize).query(&query).send().await.unwrap() }
    };
    // Neither a stranger's redirect URI nor an unknown client is redirected to.
    let base = vec![("client_id", DEMO_OAUTH2_CLIENT_ID), ("response_type", "code"), ("scope", "REPO_READ")];
    for query in [
        [base.clone(), vec![("redirect_uri", "http://evil.test/steal")]].concat(),
        [base.clone(), vec![("redirect_uri", "http://bitgate.test/oauth/bitbucket/callback/x")]].concat(),
        base.clone(),
        vec![("client_id", "nope"), ("redirect_uri", CALLBACK), ("response_type", "code")],
    ] {
        let page = open(query).await;
        assert_eq!(page.status(), 400);
        assert!(page.headers().get("location").is_none());
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    // Other problems go back to the client.
    let implicit = open(vec![
        ("client_id", DEMO_OAUTH2_CLIENT_ID),
        ("redirect_uri", CALLBACK),
        ("response_type", "token"),
        ("state", "s"),
    ])
    .await;
    assert_eq!(implicit.status(), 302);
    let location = url::Url::parse(implicit.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(param(&location, "error").as_deref(), Some("unsupported_response_type"));
    assert_eq!(param(&location, "state").as_deref(), Some("s"));
    let scope = open(vec![
        ("client_id", DEMO_OAUTH2_CLIENT_ID),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("scope", "REPO_READ repository:admin"),
    ])
    .await;
    let location = url::Url::parse(scope.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(param(&location, "error").as_deref(), Some("invalid_scope"));

    // The page names the scope in words, and escapes what it shows.
    sim.configure(|dc| dc.oauth2_clients[0].name = "<Bitgate & co>".into());
    let page = open(vec![
        ("client_id", DEMO_OAUTH2_CLIENT_ID),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("scope", "REPO_READ PROJECT_ADMIN"),
        ("state", "\"><script>"),
    ])
    .await
    .text()
    .await
    .unwrap();
    assert!(page.contains("Repositories: Read") && page.contains("Projects: Admin"), "{page}");
    assert!(page.contains("&lt;Bitgate &amp; co&gt;") && !page.contains("<script>"), "{page}");
}

#[tokio::test]
async fn the_token_endpoint_refuses_as_the_provider_does() {
    let sim = simulator(DataCenter::sample()).await;
    // A valid client with a code never issued: how Bitgate checks an id and secret.
    let dummy = [("grant_type", "authorization_code"), ("code", "dummy-code"), ("redirect_uri", CALLBACK)];
    let (status, body) = token(&sim, DEMO_OAUTH2_CLIENT_SECRET, &dummy).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = token(&sim, "not-the-secret", &dummy).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    // The client in the parameters, in the body or in the query, as Atlassian's examples send them.
    let in_body = client()
        .post(format!("{}/rest/oauth2/latest/token", sim.url))
        .form(
            &[dummy.as_slice(), &[("client_id", DEMO_OAUTH2_CLIENT_ID), ("client_secret", DEMO_OAUTH2_CLIENT_SECRET)]]
                .concat(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(in_body.status(), 400);
    assert_eq!(in_body.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let in_query = client()
        .post(format!("{}/rest/oauth2/latest/token", sim.url))
        .query(&[dummy.as_slice(), &[("client_id", DEMO_OAUTH2_CLIENT_ID), ("client_secret", "wrong")]].concat())
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 401);
    assert_eq!(in_query.json::<Value>().await.unwrap()["error"], "invalid_client");
    let anonymous = client().post(format!("{}/rest/oauth2/latest/token", sim.url)).form(&dummy).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let (status, body) = token(&sim, DEMO_OAUTH2_CLIENT_SECRET, &[("grant_type", "password")]).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("unsupported_grant_type")));
    let (status, body) = token(&sim, DEMO_OAUTH2_CLIENT_SECRET, &[("grant_type", "authorization_code")]).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_request")));

    // PKCE: a wrong verifier spends the code.
    let code = param(&consent(&sim, "", "REPO_READ", Some(VERIFIER), "Allow").await, "code").unwrap();
    let exchange = |code: String, verifier: &'static str| {
        let sim = &sim;
        async move {
            token(
                sim,
                DEMO_OAUTH2_CLIENT_SECRET,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange(code.clone(), "not-the-verifier").await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = exchange(code, VERIFIER).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "spent: {body}");

    // A code is used once.
    let code = param(&consent(&sim, "", "REPO_READ", Some(VERIFIER), "Allow").await, "code").unwrap();
    assert_eq!(exchange(code.clone(), VERIFIER).await.0, 200);
    let (status, body) = exchange(code, VERIFIER).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // Its redirect URI must be named again, exactly.
    let code = param(&consent(&sim, "", "REPO_READ", None, "Allow").await, "code").unwrap();
    let (status, body) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://bitgate.test/other")],
    )
    .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // A code waits 10 seconds at most (a test makes it none).
    sim.configure(|dc| dc.oauth2_code_lifetime = Duration::ZERO);
    let code = param(&consent(&sim, "", "REPO_READ", Some(VERIFIER), "Allow").await, "code").unwrap();
    let (status, body) = exchange(code, VERIFIER).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "expired: {body}");
}

#[tokio::test]
async fn a_refresh_must_name_the_redirect_uri() {
    let sim = simulator(DataCenter::sample()).await;
    let first = grant(&sim, "REPO_READ").await;
    let refresh = first["refresh_token"].as_str().unwrap();
    for form in [
        vec![("grant_type", "refresh_token"), ("refresh_token", refresh)],
        vec![("grant_type", "refresh_token"), ("refresh_token", refresh), ("redirect_uri", "http://bitgate.test/x")],
    ] {
        let (status, body) = token(&sim, DEMO_OAUTH2_CLIENT_SECRET, &form).await;
        assert_eq!(status, 400);
        assert_eq!(body, serde_json::json!({"error": "invalid_grant"}), "bare");
    }
    // Those refusals did not spend it.
    let (status, body) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("redirect_uri", CALLBACK)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", "never-issued"), ("redirect_uri", CALLBACK)],
    )
    .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn access_tokens_expire_are_revoked_and_keep_to_their_scope() {
    let sim = simulator(DataCenter::sample()).await;
    let admin = grant(&sim, "REPO_ADMIN").await;
    let access = admin["access_token"].as_str().unwrap();
    let hooks = "/rest/api/1.0/projects/OPS/repos/my-repo/webhooks";
    assert_eq!(get(&sim, hooks, access).await.status(), 200, "REPO_ADMIN manages webhooks");

    sim.configure(|dc| dc.expire_oauth2_access_tokens(DEMO_OAUTH2_CLIENT_ID));
    let expired = get(&sim, "/rest/api/1.0/projects", access).await;
    assert_eq!(expired.status(), 401);
    let body: Value = expired.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("Authentication failed"), "{body}");
    let (status, refreshed) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", admin["refresh_token"].as_str().unwrap()),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(status, 200, "the refresh token outlives its access token");
    let renewed = refreshed["access_token"].as_str().unwrap();
    assert_eq!(get(&sim, "/rest/api/1.0/projects", renewed).await.status(), 200);

    // A lifetime a test shortens.
    sim.configure(|dc| dc.oauth2_access_token_lifetime = Duration::from_millis(300));
    let short = grant(&sim, "REPO_READ").await;
    assert_eq!(short["expires_in"], 0);
    let short_access = short["access_token"].as_str().unwrap();
    assert_eq!(get(&sim, "/rest/api/1.0/repos", short_access).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(&sim, "/rest/api/1.0/repos", short_access).await.status(), 401);
    sim.configure(|dc| dc.oauth2_access_token_lifetime = Duration::from_secs(3600));

    // REPO_READ reads repositories but may not manage their webhooks.
    let reader = grant(&sim, "REPO_READ").await;
    let read_access = reader["access_token"].as_str().unwrap();
    let repos: Value = get(&sim, "/rest/api/1.0/repos", read_access).await.json().await.unwrap();
    assert_eq!(repos["size"], 25);
    let refused = get(&sim, hooks, read_access).await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["exceptionName"], "com.atlassian.bitbucket.AuthorisationException");
    // PUBLIC_REPOS alone sees nothing private.
    let public = grant(&sim, "PUBLIC_REPOS").await;
    let repos: Value =
        get(&sim, "/rest/api/1.0/repos", public["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(repos["size"], 0);

    // Revoking the grants: access and refresh tokens stop working.
    sim.configure(|dc| dc.revoke_oauth2_grants(DEMO_OAUTH2_CLIENT_ID));
    assert_eq!(get(&sim, "/rest/api/1.0/repos", read_access).await.status(), 401);
    assert_eq!(get(&sim, "/rest/api/1.0/repos", renewed).await.status(), 401);
    let (status, body) = token(
        &sim,
        DEMO_OAUTH2_CLIENT_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", reader["refresh_token"].as_str().unwrap()),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn the_provider_lives_under_the_context_path_and_takes_no_queued_fault() {
    let sim = simulator(DataCenter { context_path: "/bitbucket".into(), ..DataCenter::sample() }).await;
    sim.configure(|dc| dc.faults.push_back(Fault::Unavailable));
    let code = param(&consent(&sim, "/bitbucket", "REPO_READ", Some(VERIFIER), "Allow").await, "code").unwrap();
    let answer = client()
        .post(format!("{}/bitbucket/rest/oauth2/latest/token", sim.url))
        .basic_auth(DEMO_OAUTH2_CLIENT_ID, Some(DEMO_OAUTH2_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(get(&sim, "/bitbucket/rest/api/1.0/repos", access).await.status(), 200);
    let (faults, calls) = {
        let instance = sim.datacenter.read().unwrap();
        (instance.faults.len(), instance.calls.clone())
    };
    assert_eq!(faults, 1, "the fault waits for a REST API write call");
    assert!(calls.is_empty(), "{calls:?}");
    let outside = client().get(format!("{}/rest/oauth2/latest/authorize", sim.url)).send().await.unwrap();
    assert!(outside.text().await.unwrap().contains("Log in - Bitbucket"), "outside the context path");
}
