//! Logging in and out.

use crate::helpers::{location, TestApp};

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer_and_no_session() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ada@example.com", None).await;

    let wrong = app.browser();
    let wrong_password = wrong.login(&user.email, "not the password").await;
    let wrong_status = wrong_password.status();
    assert!(wrong_password.headers().get("set-cookie").is_none(), "no session for a failed login");
    let wrong_html = wrong_password.text().await.unwrap();

    let unknown = app.browser();
    let unknown_email = unknown.login("nobody@example.com", "not the password").await;
    assert_eq!(unknown_email.status(), wrong_status);
    assert_eq!(wrong_status, 401);
    assert!(unknown_email.headers().get("set-cookie").is_none());
    let unknown_html = unknown_email.text().await.unwrap();

    let message = "The email or password is incorrect.";
    assert!(wrong_html.contains(message) && unknown_html.contains(message));
    assert!(wrong_html.contains("value=\"ada@example.com\""), "the email is kept");
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sessions, 0);
    let failures = app.audit_actions().await.iter().filter(|a| *a == "auth.login_failed").count();
    assert_eq!(failures, 2);
}

#[tokio::test]
async fn login_sets_a_protected_cookie_and_cycles_the_session_id() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ada@example.com", None).await;
    let browser = app.browser();

    let response = browser.login(&user.email, &user.password).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("bitgate="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    let first = browser.session_cookie().unwrap();

    // Logging in again (say, after a privilege change) gets a new id; a
    // logged-in session's form post carries its CSRF token.
    let token = browser.csrf_token("/").await;
    let again = browser
        .post_form("/login", &[("email", &user.email), ("password", &user.password), ("csrf_token", &token)])
        .await;
    assert_eq!(again.status(), 303);
    let second = browser.session_cookie().unwrap();
    assert_ne!(first, second, "the session id changes at login");
    assert!(app.audit_actions().await.contains(&"auth.login".to_owned()));
}

#[tokio::test]
async fn the_login_returns_to_the_page_asked_for_and_nowhere_else() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ada@example.com", None).await;
    let browser = app.browser();

    let asked = browser.get("/some/page?tab=2").await;
    assert_eq!(asked.status(), 303);
    assert_eq!(location(&asked), "/login?next=%2Fsome%2Fpage%3Ftab%3D2");
    let page = browser.get(&location(&asked)).await;
    assert!(page.text().await.unwrap().contains("value=\"/some/page?tab=2\""));

    let back = browser
        .post_form("/login", &[("email", &user.email), ("password", &user.password), ("next", "/some/page?tab=2")])
        .await;
    assert_eq!(location(&back), "/some/page?tab=2");

    for evil in ["https://evil.example.com/", "//evil.example.com", "/\\evil.example.com"] {
        let browser = app.browser();
        let response =
            browser.post_form("/login", &[("email", &user.email), ("password", &user.password), ("next", evil)]).await;
        assert_eq!(location(&response), "/", "{evil}");
    }
}

#[tokio::test]
async fn logins_are_rate_limited_per_account() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ada@example.com", None).await;
    let browser = app.browser();
    for _ in 0..5 {
        assert_eq!(browser.login(&user.email, "wrong password!").await.status(), 401);
    }
    let limited = browser.login(&user.email, &user.password).await;
    assert_eq!(limited.status(), 429, "even the right password waits");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 15 * 60, "{retry_after}");
    assert!(limited.headers().get("set-cookie").is_none());
    assert!(limited.text().await.unwrap().contains("Too many failed attempts"));

    // Another account from the same address is not locked by this one.
    let other = app.create_user("bob@example.com", None).await;
    assert_eq!(app.browser().login(&other.email, &other.password).await.status(), 303);
}

#[tokio::test]
async fn logins_are_rate_limited_per_address() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ada@example.com", None).await;
    let browser = app.browser();
    for n in 0..20 {
        let email = format!("spray{n}@example.com");
        assert_eq!(browser.login(&email, "guess guess guess").await.status(), 401);
    }
    let limited = browser.login(&user.email, &user.password).await;
    assert_eq!(limited.status(), 429);
}

#[tokio::test]
async fn logout_deletes_the_server_side_session() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let token = browser.csrf_token("/").await;
    let cookie = browser.session_cookie().unwrap();

    let out = browser.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/login?reason=logged_out");
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sessions, 0);

    // Replaying the old cookie gets nothing.
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = replay.get(browser.url("/")).header("cookie", format!("bitgate={cookie}")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login"));
    assert!(app.audit_actions().await.contains(&"auth.logout".to_owned()));
}

#[tokio::test]
async fn a_disabled_user_is_logged_out_at_once_and_cannot_log_in() {
    let app = TestApp::spawn().await;
    let (browser, user) = app.logged_in_admin().await;
    assert_eq!(browser.get("/").await.status(), 200);

    let email = bitgate_core::users::Email::parse(&user.email).unwrap();
    bitgate_core::users::operations::disable_as_operator(&app.pool, &email).await.unwrap();
    let after = browser.get("/").await;
    assert_eq!(after.status(), 303);
    assert!(location(&after).starts_with("/login"));
    let login = app.browser().login(&user.email, &user.password).await;
    assert_eq!(login.status(), 401);
    assert!(login.text().await.unwrap().contains("The email or password is incorrect."));
}

#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_no_more_checks_than_the_account_allows() {
    let app = TestApp::spawn().await;
    let user = app.create_user("ada@example.com", None).await;
    let guesses = (0..50).map(|n| {
        let (browser, email) = (app.browser(), user.email.clone());
        async move {
            let response = browser.login(&email, &format!("wrong password {n}")).await;
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), retry_after)
        }
    });
    let answers = futures::future::join_all(guesses).await;

    let checked = answers.iter().filter(|(status, _)| *status == 401).count();
    assert_eq!(checked, 5, "only the account's 5 attempts reach the password check: {answers:?}");
    let limited: Vec<_> = answers.iter().filter(|(status, _)| *status == 429).collect();
    assert_eq!(limited.len(), 45, "{answers:?}");
    assert!(limited.iter().all(|(_, retry_after)| retry_after.is_some()), "each refusal says when to retry");
    let failures = app.audit_actions().await.iter().filter(|a| *a == "auth.login_failed").count();
    assert_eq!(failures, 5);
    assert_eq!(app.browser().login(&user.email, &user.password).await.status(), 429, "even the right password waits");
}

/// A login from `address`, as told by a trusted proxy.
async fn login_from(app: &TestApp, address: &str, email: &str, password: &str) -> u16 {
    let browser = app.browser();
    let form = [("email", email), ("password", password), ("next", "")];
    let request =
        browser.client.post(browser.url("/login")).header("origin", &browser.base).header("x-forwarded-for", address);
    browser.send(request.form(&form)).await.status().as_u16()
}

#[tokio::test]
async fn an_ipv6_client_is_limited_by_its_64_not_by_each_address() {
    let app = TestApp::spawn_with(&[("BITGATE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let user = app.create_user("ada@example.com", None).await;
    // Twenty addresses of one /64, one guess each: the /64's allowance.
    for n in 1..=20 {
        let status = login_from(&app, &format!("2001:db8:1:2::{n:x}"), &format!("spray{n}@example.com"), "guess").await;
        assert_eq!(status, 401);
    }
    assert_eq!(login_from(&app, "2001:db8:1:2:ffff::1", &user.email, &user.password).await, 429, "the same /64");
    assert_eq!(login_from(&app, "2001:db8:1:3::1", &user.email, &user.password).await, 303, "another /64");
}
