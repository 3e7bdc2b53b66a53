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

#[tokio::test]
async fn an_active_session_outlives_its_idle_timeout() {
    let app = TestApp::spawn_with(&[("BITGATE_SESSION_IDLE", "2s"), ("BITGATE_SESSION_MAX", "1h")]).await;
    let logged_in = std::time::Instant::now();
    let (browser, _) = app.logged_in_admin().await;
    // Every 0.7 s for twice the idle timeout: each view renews the idle clock.
    while logged_in.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(browser.get("/").await.status(), 200, "active, after {:?}", logged_in.elapsed());
    }
}

#[tokio::test]
async fn page_views_within_the_renewal_step_write_no_session() {
    // Idle 30 minutes: the idle clock is renewed at most once a minute.
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let stored = || async {
        sqlx::query_as::<_, (String, time::OffsetDateTime)>(
            "SELECT id, expiry_date FROM tower_sessions.session ORDER BY id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
    };
    assert_eq!(browser.get("/").await.status(), 200);
    let before = stored().await;
    assert!(!before.is_empty());
    for path in ["/", "/stacks", "/users", "/spaces"] {
        assert_eq!(browser.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(stored().await, before, "no page view wrote the session");

    // A message for the next page is still written, shown once, and gone.
    let root = bitgate_core::spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let csrf = browser.csrf_token("/spaces").await;
    let form = [("csrf_token", csrf.as_str()), ("name", "renewals"), ("parent_id", &root.to_string())];
    let created = browser.post_form("/spaces", &form).await;
    assert_eq!(created.status(), 303);
    assert_ne!(stored().await, before, "the message was written");
    let flash = "Space \u{201c}renewals\u{201d} created.";
    assert!(browser.get(&location(&created)).await.text().await.unwrap().contains(flash));
    assert!(!browser.get(&location(&created)).await.text().await.unwrap().contains(flash), "shown once");
}
