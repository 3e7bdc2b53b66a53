//! Idle and absolute session timeouts.

use std::time::Duration;

use crate::helpers::{location, TestApp};

#[tokio::test]
async fn an_idle_session_expires_and_the_login_says_so() {
    let app = TestApp::spawn_with(&[("BITGATE_SESSION_IDLE", "1s"), ("BITGATE_SESSION_MAX", "1h")]).await;
    let (browser, user) = app.logged_in_admin().await;
    assert_eq!(browser.get("/").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let expired = browser.get("/spaces?x=1").await;
    assert_eq!(expired.status(), 303);
    assert_eq!(location(&expired), "/login?next=%2Fspaces%3Fx%3D1&reason=expired");
    let page = browser.get(&location(&expired)).await.text().await.unwrap();
    assert!(page.contains("Your session has expired"));

    let back = browser
        .post_form("/login", &[("email", &user.email), ("password", &user.password), ("next", "/spaces?x=1")])
        .await;
    assert_eq!(location(&back), "/spaces?x=1");
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_even_when_active() {
    let app = TestApp::spawn_with(&[("BITGATE_SESSION_IDLE", "5s"), ("BITGATE_SESSION_MAX", "5s")]).await;
    let logged_in = std::time::Instant::now();
    let (browser, _) = app.logged_in_admin().await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(browser.get("/").await.status(), 200, "active within both limits");
    }
    // Never idle for long, but past the absolute lifetime.
    tokio::time::sleep(Duration::from_millis(5500).saturating_sub(logged_in.elapsed())).await;
    let ended = browser.get("/").await;
    assert_eq!(ended.status(), 303);
    assert!(location(&ended).starts_with("/login"));
}
