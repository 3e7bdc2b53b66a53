//! `/api/v1/users` (account admins only) and `/api/v1/audit` (scoped by role).

use bitgate_core::{spaces, users::Role};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    contract::checked,
    helpers::{location, Browser, TestApp, PASSWORD},
};

async fn token_for(app: &TestApp, email: &str, membership: Option<(Uuid, Role)>) -> String {
    app.create_user(email, None).await;
    let id: Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1").bind(email).fetch_one(&app.pool).await.unwrap();
    if let Some((space, role)) = membership {
        spaces::set_member(&app.pool, space, id, role).await.unwrap();
    }
    bitgate_core::api_tokens::create(&app.pool, id, "t", None).await.unwrap().1
}

async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.api(token, method, path, body).await
}

#[tokio::test]
async fn account_admins_manage_users_and_disabling_ends_access_at_once() {
    let app = TestApp::spawn().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let admin = token_for(&app, "admin@example.com", Some((root, Role::Admin))).await;
    let reader = token_for(&app, "reader@example.com", Some((root, Role::Read))).await;

    let (status, _) = call(&app, &reader, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, 403, "only account admins manage users");
    let (status, _) = call(&app, &reader, Method::POST, "/api/v1/users", Some(json!({"email": "x"}))).await;
    assert_eq!(status, 403, "authorization before validation");

    let (status, created) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "New@Example.com", "name": "New Person", "password": "a long enough password", "role": "write"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["email"], "new@example.com");
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());
    let (status, body) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "new@example.com", "password": "a long enough password"})),
    )
    .await;
    assert_eq!((status.as_u16(), body["error"]["details"][0]["field"].as_str()), (409, Some("email")));
    let (status, body) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "bad", "password": "short", "role": "boss"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 3);

    // Disable the reader: their token dies at once, and for good.
    let reader_id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'reader@example.com'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (status, body) =
        call(&app, &admin, Method::PATCH, &format!("/api/v1/users/{reader_id}"), Some(json!({"disabled": true}))).await;
    assert_eq!((status.as_u16(), body["disabled"].as_bool()), (200, Some(true)));
    let (status, _) = call(&app, &reader, Method::GET, "/api/v1/spaces", None).await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v1/users/{reader_id}"),
        Some(json!({"disabled": false, "name": "Reader"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&app, &reader, Method::GET, "/api/v1/spaces", None).await;
    assert_eq!(status, 401, "re-enabling revives no token");

    // The last account admin cannot be disabled.
    let admin_id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'admin@example.com'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (status, _) =
        call(&app, &admin, Method::PATCH, &format!("/api/v1/users/{admin_id}"), Some(json!({"disabled": true}))).await;
    assert_eq!(status, 409);
    let (status, _) =
        call(&app, &admin, Method::PATCH, &format!("/api/v1/users/{reader_id}"), Some(json!({"disabled": "yes"})))
            .await;
    assert_eq!(status, 422);
    let (status, _) = call(&app, &admin, Method::GET, &format!("/api/v1/users/{}", Uuid::new_v4()), None).await;
    assert_eq!(status, 404);

    let (_, listed) = call(&app, &admin, Method::GET, "/api/v1/users?limit=2", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert!(listed["next_cursor"].is_string());
    let actions = app.audit_actions().await;
    for action in ["user.created", "user.disabled", "user.enabled"] {
        assert!(actions.contains(&action.to_owned()), "{action}");
    }
}

#[tokio::test]
async fn the_audit_log_is_scoped_filtered_and_free_of_secrets() {
    let app = TestApp::spawn().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let team = spaces::create(&app.pool, "team", root, "").await.unwrap().id;
    let other = spaces::create(&app.pool, "other", root, "").await.unwrap().id;
    let admin = token_for(&app, "admin@example.com", Some((root, Role::Admin))).await;
    let team_admin = token_for(&app, "lead@example.com", Some((team, Role::Admin))).await;
    let writer = token_for(&app, "dev@example.com", Some((team, Role::Write))).await;

    call(&app, &team_admin, Method::POST, "/api/v1/spaces", Some(json!({"name": "team-a", "parent_id": team}))).await;
    call(&app, &admin, Method::POST, "/api/v1/spaces", Some(json!({"name": "other-a", "parent_id": other}))).await;
    let (status, created) = call(&app, &admin, Method::POST, "/api/v1/tokens", Some(json!({"name": "ci"}))).await;
    assert_eq!(status, 201);
    let secret = created["token"].as_str().unwrap().to_owned();

    let (status, _) = call(&app, &writer, Method::GET, "/api/v1/audit", None).await;
    assert_eq!(status, 403);

    let (status, scoped) = call(&app, &team_admin, Method::GET, "/api/v1/audit", None).await;
    assert_eq!(status, 200);
    let labels: Vec<&str> =
        scoped["items"].as_array().unwrap().iter().filter_map(|e| e["target"]["label"].as_str()).collect();
    assert!(labels.contains(&"team-a") && !labels.contains(&"other-a"), "{labels:?}");

    let (_, all) = call(&app, &admin, Method::GET, "/api/v1/audit?action=space.created", None).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["actor"]["kind"], "token");
    let (_, by_actor) = call(&app, &admin, Method::GET, "/api/v1/audit?actor=lead@example.com", None).await;
    assert!(by_actor["items"].as_array().unwrap().iter().all(|e| e["actor"]["label"] == "lead@example.com"));
    let (_, future) = call(&app, &admin, Method::GET, "/api/v1/audit?since=2999-01-01T00:00:00Z", None).await;
    assert!(future["items"].as_array().unwrap().is_empty());
    let (status, _) = call(&app, &admin, Method::GET, "/api/v1/audit?since=yesterday", None).await;
    assert_eq!(status, 400);
    // A NUL character PostgreSQL cannot take is the caller's bad input, not a 500 (Schemathesis found it).
    let (status, refused) = call(&app, &admin, Method::GET, "/api/v1/audit?actor=%00", None).await;
    assert_eq!((status.as_u16(), &refused["error"]["code"]), (400, &serde_json::json!("bad_request")), "{refused}");
    let body = serde_json::json!({"name": "nul-space", "parent_id": root, "description": "a\u{0}b"});
    let (status, refused) = call(&app, &admin, Method::POST, "/api/v1/spaces", Some(body)).await;
    assert_eq!(status.as_u16(), 400, "{refused}");

    let (_, everything) = call(&app, &admin, Method::GET, "/api/v1/audit?limit=500", None).await;
    assert!(!everything.to_string().contains(&secret), "no secret in the audit log");
}

#[tokio::test]
async fn re_enabling_a_user_revives_neither_their_tokens_nor_their_sessions() {
    let app = TestApp::spawn().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let admin = token_for(&app, "admin@example.com", Some((root, Role::Admin))).await;
    let user = app.create_user("ada@example.com", Some(Role::Read)).await;
    let ada = app.user_id(&user.email).await;
    let browser = app.browser();
    assert_eq!(browser.login(&user.email, &user.password).await.status(), 303);
    let made = browser
        .send(
            browser
                .client
                .post(browser.url("/api/v1/tokens"))
                .header("origin", &browser.base)
                .json(&json!({"name": "ci"})),
        )
        .await;
    assert_eq!(made.status(), 201);
    let token = made.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();

    // Neither the token nor the session is used while she is disabled.
    let path = format!("/api/v1/users/{ada}");
    let (status, _) = call(&app, &admin, Method::PATCH, &path, Some(json!({"disabled": true}))).await;
    assert_eq!(status, 200);
    let (status, _) = call(&app, &admin, Method::PATCH, &path, Some(json!({"disabled": false}))).await;
    assert_eq!(status, 200);

    let (status, body) = call(&app, &token, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!((status.as_u16(), &body["error"]["code"]), (401, &json!("unauthenticated")), "the token stays dead");
    let revoked: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT revoked_at FROM api_tokens WHERE user_id = $1")
            .bind(ada)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(revoked.is_some(), "revoked, not merely refused while disabled");
    let revocation: (String, String) =
        sqlx::query_as("SELECT actor_label, target_label FROM audit_events WHERE action = 'token.revoked'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(revocation, ("admin@example.com".to_owned(), "ci".to_owned()), "audited, as done by who disabled her");
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sessions, 0, "her session was deleted");
    let by_session = browser.send(browser.client.get(browser.url("/api/v1/tokens"))).await;
    assert_eq!(by_session.status(), 401, "the session stays dead");
    let page = browser.get("/").await;
    assert!(location(&page).starts_with("/login"), "{}", location(&page));

    // She logs in again and works as before.
    let again = app.browser();
    assert_eq!(again.login(&user.email, &user.password).await.status(), 303);
    assert_eq!(again.get("/").await.status(), 200);
}

/// How an account admin takes another's account-admin rights away.
#[derive(Debug, Clone, Copy)]
enum Removal {
    Disable,
    Demote,
}

/// `by` (a logged-in browser) removes the account admin `whom` (email, id);
/// answers the status and the first problem's code.
async fn remove_admin(app: &TestApp, by: &Browser, removal: Removal, whom: (&str, Uuid)) -> (u16, Value) {
    let (method, path, body) = match removal {
        Removal::Disable => (Method::PATCH, format!("/api/v1/users/{}", whom.1), json!({"disabled": true})),
        Removal::Demote => {
            let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
            (Method::PUT, format!("/api/v1/spaces/{root}/members"), json!({"email": whom.0, "role": "read"}))
        }
    };
    let request = by.client.request(method.clone(), by.url(&path)).header("origin", &by.base).json(&body);
    let (status, body) = checked(method, &path, by.send(request).await).await;
    (status.as_u16(), body["error"]["details"][0]["code"].clone())
}

/// Waits until `count` transactions of this database wait for a table lock
/// or an advisory lock (not a row lock: a request that waits for a row the
/// other one changed has not passed its own checks yet).
async fn until_waiting_on_locks(app: &TestApp, count: i64) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND wait_event_type = 'Lock' AND wait_event IN ('relation', 'advisory')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the two requests never both waited to commit");
}

#[tokio::test]
async fn two_admins_removing_each_other_at_once_leave_the_account_an_admin() {
    let app = TestApp::spawn().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let (a, b) = ("a@example.com", "b@example.com");
    app.create_user(a, Some(Role::Admin)).await;
    app.create_user(b, Some(Role::Admin)).await;
    let (a_id, b_id) = (app.user_id(a).await, app.user_id(b).await);

    let rounds = [
        (Removal::Disable, Removal::Disable),
        (Removal::Demote, Removal::Demote),
        (Removal::Disable, Removal::Demote),
        (Removal::Demote, Removal::Disable),
    ];
    for (a_does, b_does) in rounds {
        // Both are enabled account admins again, freshly logged in (disabling
        // ended a loser's sessions). Browser sessions, not tokens: checking a
        // session writes nothing, so neither request can wait for the other
        // before its own checks.
        sqlx::query("UPDATE users SET disabled_at = NULL").execute(&app.pool).await.unwrap();
        spaces::set_member(&app.pool, root, a_id, Role::Admin).await.unwrap();
        spaces::set_member(&app.pool, root, b_id, Role::Admin).await.unwrap();
        let (a_browser, b_browser) = (app.browser(), app.browser());
        assert_eq!(a_browser.login(a, PASSWORD).await.status(), 303);
        assert_eq!(b_browser.login(b, PASSWORD).await.status(), 303);

        // Holding the audit log keeps each request from committing once it has
        // made its change: both run their checks before either commits, the
        // overlap a real race needs, every round.
        let mut hold = app.pool.begin().await.unwrap();
        sqlx::query("LOCK TABLE audit_events IN EXCLUSIVE MODE").execute(&mut *hold).await.unwrap();
        let release = async {
            until_waiting_on_locks(&app, 2).await;
            hold.commit().await.unwrap();
        };
        let (by_a, by_b, ()) = tokio::join!(
            remove_admin(&app, &a_browser, a_does, (b, b_id)),
            remove_admin(&app, &b_browser, b_does, (a, a_id)),
            release
        );

        let admins: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.space_id = $1 AND m.role = 'admin' AND u.disabled_at IS NULL",
        )
        .bind(root)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(admins, 1, "{a_does:?} against {b_does:?}: {by_a:?} {by_b:?}");
        let mut answers = [by_a, by_b];
        answers.sort_by_key(|(status, _)| *status);
        assert_eq!(answers[0].0, 200, "{a_does:?} against {b_does:?}: {answers:?}");
        assert_eq!(answers[1], (409, json!("last_admin")), "{a_does:?} against {b_does:?}");
    }
}
