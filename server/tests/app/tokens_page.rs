//! The API tokens page: create (shown once), list, revoke.

use crate::helpers::{location, TestApp};

#[tokio::test]
async fn a_token_is_created_shown_once_listed_and_revoked_in_the_browser() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let empty = browser.get("/tokens").await;
    assert_eq!(empty.status(), 200);
    assert!(empty.text().await.unwrap().contains("No API tokens"));
    let csrf = browser.csrf_token("/tokens").await;

    let refused = browser.post_form("/tokens", &[("csrf_token", &csrf), ("name", "  "), ("expires", "30d")]).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("Name the token after what uses it"));

    let created =
        browser.post_form("/tokens", &[("csrf_token", &csrf), ("name", "ci pipeline"), ("expires", "30d")]).await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    let start = html.find("bgt_").expect("the new token is shown");
    let secret: String =
        html[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    assert_eq!(secret.len(), 4 + 43);
    assert!(html.contains("will not show it again"));
    let works =
        reqwest::Client::new().get(format!("{}/api/v1/tokens", app.base)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(works.status(), 200);

    let listed = browser.get("/tokens").await.text().await.unwrap();
    assert!(listed.contains("ci pipeline"));
    assert!(!listed.contains(&secret), "shown once only");

    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens").fetch_one(&app.pool).await.unwrap();
    let revoked = browser.post_form(&format!("/tokens/{id}/revoke"), &[("csrf_token", &csrf)]).await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(location(&revoked), "/tokens");
    assert!(browser.get("/tokens").await.text().await.unwrap().contains("is revoked: it no longer works"));
    let dead =
        reqwest::Client::new().get(format!("{}/api/v1/tokens", app.base)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(dead.status(), 401);

    // Revoking again, or what does not exist, is a 404; without the CSRF token, a 403.
    assert_eq!(browser.post_form(&format!("/tokens/{id}/revoke"), &[("csrf_token", &csrf)]).await.status(), 404);
    assert_eq!(browser.post_form("/tokens/nonsense/revoke", &[("csrf_token", &csrf)]).await.status(), 404);
    assert_eq!(browser.post_form("/tokens", &[("name", "x"), ("expires", "never")]).await.status(), 403);
}
