//! The one-time setup link that creates the first admin.

use bitgate_core::setup;

use crate::helpers::{location, TestApp};

async fn link(app: &TestApp) -> String {
    let token = setup::issue_if_needed(&app.pool).await.unwrap().expect("no user yet: a link is issued");
    format!("/setup?token={token}")
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    let app = TestApp::spawn().await;
    let link = link(&app).await;
    let token = link.split('=').nth(1).unwrap().to_owned();
    let browser = app.browser();

    let page = browser.get(&link).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    assert!(page.text().await.unwrap().contains("Create administrator"));

    // Bad input: every field's problem at once, nothing created, values kept.
    let refused =
        browser.post_form("/setup", &[("token", &token), ("name", ""), ("email", "ada@"), ("password", "short")]).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("Enter a name."), "{html}");
    assert!(html.contains("Enter an email address such as ada@example.com."));
    assert!(html.contains("Use at least 12 characters."));
    assert!(html.contains("value=\"ada@\""), "the email typed is kept");
    assert!(!html.contains("value=\"short\""), "a password is never echoed");
    assert!(!bitgate_core::users::any_exist(&app.pool).await.unwrap());

    let created = browser
        .post_form(
            "/setup",
            &[("token", &token), ("name", "Ada"), ("email", "Ada@Example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(created.status(), 303);
    assert_eq!(location(&created), "/");
    let home = browser.get("/").await;
    assert_eq!(home.status(), 200, "the new admin is logged in");
    assert!(home.text().await.unwrap().contains("Welcome, Ada."));

    // The account is an admin of root.
    let is_admin: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id JOIN spaces s ON s.id = m.space_id
         WHERE u.email = 'ada@example.com' AND s.name = 'root' AND m.role = 'admin')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(is_admin);
    assert!(app.audit_actions().await.contains(&"user.created".to_owned()));

    // Used twice: refused, in another browser too.
    let again = app.browser().get(&link).await;
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("has been used already"));
    let replay = app
        .browser()
        .post_form(
            "/setup",
            &[("token", &token), ("name", "Eve"), ("email", "eve@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(replay.status(), 410);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(users, 1);
    assert_eq!(setup::issue_if_needed(&app.pool).await.unwrap(), None, "no new link once a user exists");
}

#[tokio::test]
async fn expired_and_unknown_links_are_refused() {
    let app = TestApp::spawn().await;
    let link = link(&app).await;
    sqlx::query("UPDATE setup_tokens SET expires_at = now() - interval '1 second'").execute(&app.pool).await.unwrap();
    let expired = app.browser().get(&link).await;
    assert_eq!(expired.status(), 410);
    assert!(expired.text().await.unwrap().contains("has expired"));

    let token = link.split('=').nth(1).unwrap();
    let post = app
        .browser()
        .post_form(
            "/setup",
            &[("token", token), ("name", "Ada"), ("email", "ada@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(post.status(), 410);
    assert!(!bitgate_core::users::any_exist(&app.pool).await.unwrap());

    let unknown = app.browser().get("/setup?token=forged").await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("not valid"));
}
