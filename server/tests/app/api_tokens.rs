//! `/api/v1/tokens` and the REST conventions they share: the error shape,
//! Bearer authentication, cursor pagination, JSON body checks.

use bitgate_core::users::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    contract::checked,
    helpers::{Browser, TestApp},
};

/// `POST /api/v1/tokens` from the browser session, checked against the contract.
async fn create_token(browser: &Browser, body: Value) -> (StatusCode, Value) {
    let response = browser
        .send(browser.client.post(browser.url("/api/v1/tokens")).header("origin", &browser.base).json(&body))
        .await;
    checked(Method::POST, "/api/v1/tokens", response).await
}

async fn list(app: &TestApp, secret: &str, path: &str) -> (StatusCode, Value) {
    app.api(secret, Method::GET, path, None).await
}

#[tokio::test]
async fn a_token_is_shown_once_and_acts_for_its_user_until_revoked() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;

    let (status, body) = create_token(&browser, json!({"name": "terraform"})).await;
    assert_eq!(status, 201);
    let secret = body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("bgt_") && secret.len() >= 4 + 43, "{secret}");
    assert_eq!(body["name"], "terraform");
    assert_eq!(body["expires_at"], Value::Null);
    let id = body["id"].as_str().unwrap().to_owned();

    // Stored as SHA-256 only.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_sha256 FROM api_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&secret[4..]));

    let (_, listed) = list(&app, &secret, "/api/v1/tokens").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(listed["items"][0].get("token").is_none(), "the secret is never listed");
    assert!(listed["items"][0]["last_used_at"].is_string(), "use is recorded");
    assert_eq!(listed["next_cursor"], Value::Null);

    // A Bearer call needs no Origin or CSRF token.
    let (status, _) = app.api(&secret, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, error) = list(&app, &secret, "/api/v1/tokens").await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "unauthenticated");
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"token.created".to_owned()) && actions.contains(&"token.revoked".to_owned()));
    let actor: String = sqlx::query_scalar("SELECT actor_kind FROM audit_events WHERE action = 'token.revoked'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(actor, "token");
}

#[tokio::test]
async fn unknown_expired_and_disabled_users_tokens_get_401() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ada@example.com", Some(Role::Read)).await;
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users").fetch_one(&app.pool).await.unwrap();
    let (_, live) = bitgate_core::api_tokens::create(&app.pool, user_id, "live", None).await.unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let (_, expired) = bitgate_core::api_tokens::create(&app.pool, user_id, "old", Some(past)).await.unwrap();

    assert_eq!(list(&app, &live, "/api/v1/tokens").await.0, 200);
    for bad in [expired.as_str(), "bgt_unknown", "not-even-a-token", ""] {
        assert_eq!(list(&app, bad, "/api/v1/tokens").await.0, 401, "{bad:?}");
    }
    let basic = reqwest::Client::new()
        .get(format!("{}/api/v1/tokens", app.base))
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let anonymous = reqwest::Client::new().get(format!("{}/api/v1/tokens", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Disabling the user kills their tokens at once.
    let email = bitgate_core::users::Email::parse(&user.email).unwrap();
    bitgate_core::users::operations::disable_as_operator(&app.pool, &email).await.unwrap();
    assert_eq!(list(&app, &live, "/api/v1/tokens").await.0, 401);
}

#[tokio::test]
async fn bad_bodies_get_400_415_and_422_with_every_problem() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let token = browser.csrf_token("/").await;
    let post = |body: &'static str, content_type: &'static str| {
        browser
            .client
            .post(browser.url("/api/v1/tokens"))
            .header("origin", &browser.base)
            .header("x-csrf-token", &token)
            .header("content-type", content_type)
            .body(body)
    };

    let send = |body: &'static str, content_type: &'static str| {
        let (request, browser) = (post(body, content_type), &browser);
        async move { checked(Method::POST, "/api/v1/tokens", browser.send(request).await).await }
    };
    let (status, malformed) = send("{\"name\": ", "application/json").await;
    assert_eq!((status.as_u16(), &malformed["error"]["code"]), (400, &json!("bad_request")));
    let (status, _) = send("[1]", "application/json").await;
    assert_eq!(status, 400);
    let (status, text) = send("name=x", "text/plain").await;
    assert_eq!((status.as_u16(), &text["error"]["code"]), (415, &json!("unsupported_media_type")));

    let (status, body) = create_token(&browser, json!({"name": "", "expires_at": "yesterday", "scope": "all"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "validation_failed");
    let mut fields: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["expires_at", "name", "scope"]);
    let (_, past) = create_token(&browser, json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(past["error"]["details"][0]["code"], "in_the_past");
    let (_, wrong_type) = create_token(&browser, json!({"name": 7})).await;
    assert_eq!(wrong_type["error"]["details"][0]["code"], "invalid_type");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0, "nothing was created");

    // A session-authenticated write still needs its CSRF token.
    let (status, _) = create_token(&browser, json!({"name": "x"})).await;
    assert_eq!(status, 201, "JSON from our Origin is not a form: a browser cannot send it cross-site");
}

#[tokio::test]
async fn lists_page_with_cursors_and_refuse_forged_ones() {
    let app = TestApp::spawn().await;
    app.create_user("ada@example.com", None).await;
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users").fetch_one(&app.pool).await.unwrap();
    let (_, secret) = bitgate_core::api_tokens::create(&app.pool, user_id, "t0", None).await.unwrap();
    for n in 1..5 {
        bitgate_core::api_tokens::create(&app.pool, user_id, &format!("t{n}"), None).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/tokens?limit=2".to_owned();
    loop {
        let (_, page) = list(&app, &secret, &path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/tokens?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4"], "every item once, across pages");

    // A parameter twice is refused in the API's error shape too (Schemathesis found it answered plain text).
    for bad in [
        "/api/v1/tokens?cursor=forged",
        "/api/v1/tokens?limit=0",
        "/api/v1/tokens?limit=501",
        "/api/v1/tokens?limit=x",
        "/api/v1/tokens?limit=1&limit=2",
    ] {
        let (status, body) = list(&app, &secret, bad).await;
        assert_eq!((status.as_u16(), &body["error"]["code"]), (400, &json!("bad_request")), "{bad}");
    }
}

#[tokio::test]
async fn nobody_revokes_someone_elses_token() {
    let app = TestApp::spawn().await;
    app.create_user("ada@example.com", None).await;
    app.create_user("eve@example.com", None).await;
    let id_of = |email: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM users WHERE email = $1")
                .bind(email)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (adas, _) =
        bitgate_core::api_tokens::create(&app.pool, id_of("ada@example.com").await, "ada", None).await.unwrap();
    let (_, eves) =
        bitgate_core::api_tokens::create(&app.pool, id_of("eve@example.com").await, "eve", None).await.unwrap();
    let (status, _) = app.api(&eves, Method::DELETE, &format!("/api/v1/tokens/{}", adas.id), None).await;
    assert_eq!(status, 404);
    let (status, _) = app.api(&eves, Method::DELETE, "/api/v1/tokens/not-a-uuid", None).await;
    assert_eq!(status, 404);
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(live, 2);
}

#[tokio::test]
async fn a_token_made_with_a_token_expires_no_later_than_its_maker() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let hours_from_now = |hours: i64| {
        let at = time::OffsetDateTime::now_utc() + time::Duration::hours(hours);
        at.format(&time::format_description::well_known::Rfc3339).unwrap()
    };
    let (status, maker) = create_token(&browser, json!({"name": "maker", "expires_at": hours_from_now(24)})).await;
    assert_eq!(status, 201);
    let secret = maker["token"].as_str().unwrap().to_owned();
    let post = |body: Value| app.api(&secret, Method::POST, "/api/v1/tokens", Some(body));

    for (body, asked) in [
        (json!({"name": "forever"}), "no expiry"),
        (json!({"name": "later", "expires_at": hours_from_now(48)}), "a later one"),
    ] {
        let (status, refused) = post(body).await;
        assert_eq!((status.as_u16(), &refused["error"]["code"]), (422, &json!("validation_failed")), "{asked}");
        let details = refused["error"]["details"].as_array().unwrap();
        assert_eq!(details.len(), 1, "{refused}");
        assert_eq!((&details[0]["field"], &details[0]["code"]), (&json!("expires_at"), &json!("outlives_token")));
        assert!(details[0]["message"].as_str().unwrap().contains(maker["expires_at"].as_str().unwrap()), "{refused}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1, "nothing was created");

    let (status, _) = post(json!({"name": "sooner", "expires_at": hours_from_now(1)})).await;
    assert_eq!(status, 201);
    let (status, _) = post(json!({"name": "as long", "expires_at": maker["expires_at"]})).await;
    assert_eq!(status, 201, "up to the maker's own expiry");

    // A token that never expires, and a browser session, make tokens of any lifetime.
    let (status, unlimited) = create_token(&browser, json!({"name": "unlimited"})).await;
    assert_eq!(status, 201);
    let unlimited = unlimited["token"].as_str().unwrap();
    let (status, _) = app.api(unlimited, Method::POST, "/api/v1/tokens", Some(json!({"name": "also unlimited"}))).await;
    assert_eq!(status, 201);
}
