//! The API tokens page: create (shown once), list, revoke.

use crate::helpers::{hidden_value, link_href, location, TestApp};

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

#[tokio::test]
async fn a_token_form_sent_twice_makes_one_token_and_the_repeat_says_where_it_is() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let csrf = browser.csrf_token("/tokens").await;
    let tokens = || {
        let pool = app.pool.clone();
        async move { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM api_tokens").fetch_one(&pool).await.unwrap() }
    };

    // A first sending that saved nothing (no name) leaves the token to the next.
    let submission = hidden_value(&browser.get("/tokens").await.text().await.unwrap(), "submission");
    let refused = [("csrf_token", csrf.as_str()), ("name", " "), ("expires", "30d"), ("submission", &submission)];
    assert_eq!(browser.post_form("/tokens", &refused).await.status(), 422);

    // A double click: the first answer shows the secret, the second is sent to the list, which says what happened.
    let form = [("csrf_token", csrf.as_str()), ("name", "deploys"), ("expires", "30d"), ("submission", &submission)];
    let (first, second) = tokio::join!(browser.post_form("/tokens", &form), browser.post_form("/tokens", &form));
    let (first, second) = if first.status() == 201 { (first, second) } else { (second, first) };
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (201, 303));
    let secret = secret_of(&first.text().await.unwrap());
    let works =
        reqwest::Client::new().get(format!("{}/api/v1/tokens", app.base)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(works.status(), 200, "the first answer's secret is the token's");
    assert_eq!(tokens().await, 1, "one token made");
    let created = app.audit_actions().await.iter().filter(|a| *a == "token.created").count();
    assert_eq!(created, 1, "and audited once");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(location(&second), format!("/tokens?again={id}"));
    let listed = browser.get(&location(&second)).await;
    assert_eq!(listed.status(), 200);
    let html = listed.text().await.unwrap();
    assert!(html.contains("Token \u{201c}deploys\u{201d} was created; its secret cannot be shown again"), "{html}");
    assert_eq!(html.matches(&format!("/tokens/{id}/revoke")).count(), 2, "revoked from the notice or the list: {html}");
    assert!(!html.contains(&secret), "no secret on the repeat's page");

    // Sent again later (a reload of the answer): the same.
    let reloaded = browser.post_form("/tokens", &form).await;
    assert_eq!((reloaded.status().as_u16(), location(&reloaded)), (303, format!("/tokens?again={id}")));
    assert_eq!(tokens().await, 1);

    // Behind 500 newer tokens, past the list's page, the notice still names it.
    sqlx::query(
        "INSERT INTO api_tokens (user_id, name, token_sha256, prefix, created_at)
         SELECT user_id, 'newer ' || n, sha256(n::text::bytea), 'x', now() + n * interval '1 second'
         FROM api_tokens, generate_series(1, 500) n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let html = browser.get(&format!("/tokens?again={id}")).await.text().await.unwrap();
    assert!(html.contains("Token \u{201c}deploys\u{201d} was created; its secret cannot be shown again"), "{html}");
    sqlx::query("DELETE FROM api_tokens WHERE name LIKE 'newer %'").execute(&app.pool).await.unwrap();

    // The notice names only the viewer's own live tokens: not another user's, not nonsense, not a revoked one.
    let other = app.create_user("other@example.com", None).await;
    let stranger = app.browser();
    assert_eq!(stranger.login(&other.email, &other.password).await.status(), 303);
    let their_csrf = stranger.csrf_token("/tokens").await;
    let theirs =
        stranger.post_form("/tokens", &[("csrf_token", &their_csrf), ("name", "theirs"), ("expires", "30d")]).await;
    assert_eq!(theirs.status(), 201);
    let their_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'theirs'").fetch_one(&app.pool).await.unwrap();
    for query in [format!("again={their_id}"), "again=nonsense".to_owned()] {
        let html = browser.get(&format!("/tokens?{query}")).await.text().await.unwrap();
        assert!(!html.contains("cannot be shown again") && !html.contains("theirs"), "{query}: {html}");
    }
    assert_eq!(browser.post_form(&format!("/tokens/{id}/revoke"), &[("csrf_token", &csrf)]).await.status(), 303);
    let html = browser.get(&format!("/tokens?again={id}")).await.text().await.unwrap();
    assert!(!html.contains("cannot be shown again"), "revoked: {html}");

    // The next page's form has a token of its own: it makes another.
    let next = hidden_value(&browser.get("/tokens").await.text().await.unwrap(), "submission");
    assert_ne!(next, submission);
    let another = [("csrf_token", csrf.as_str()), ("name", "deploys"), ("expires", "30d"), ("submission", &next)];
    assert_eq!(browser.post_form("/tokens", &another).await.status(), 201);
    assert_eq!(tokens().await, 3);
}

/// The secret a token's creation page shows, above the list (whose rows show only prefixes).
fn secret_of(html: &str) -> String {
    let start = html.find("bgt_").expect("the new token is shown");
    let secret: String =
        html[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    assert_eq!(secret.len(), 4 + 43, "{html}");
    secret
}

#[tokio::test]
async fn the_token_list_shows_50_a_page_newest_first() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let user: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users").fetch_one(&app.pool).await.unwrap();
    // 70 live tokens, each a second older than the one before, and a revoked one, which is not listed.
    sqlx::query(
        "INSERT INTO api_tokens (user_id, name, token_sha256, prefix, created_at, revoked_at)
         SELECT $1, 'token ' || n, sha256(n::text::bytea), 'x', now() - make_interval(secs => n),
                CASE WHEN n = 71 THEN now() END
         FROM generate_series(1, 71) n",
    )
    .bind(user)
    .execute(&app.pool)
    .await
    .unwrap();
    let names = |page: &str| page.matches("<td>token ").count();
    let pager = |page: &str| (link_href(page, "First page"), link_href(page, "Next page"));

    let first = browser.get("/tokens").await.text().await.unwrap();
    assert_eq!(names(&first), 50, "{first}");
    assert!(first.find("<td>token 1<").unwrap() < first.find("<td>token 2<").unwrap(), "newest first");
    let (back, next) = pager(&first);
    assert_eq!(back, None);
    let next = next.expect("a second page");
    assert!(next.starts_with("/tokens?cursor="), "{next}");
    let second = browser.get(&next).await.text().await.unwrap();
    assert_eq!(names(&second), 20, "{second}");
    assert!(second.contains("<td>token 70<") && !second.contains("<td>token 1<") && !second.contains("token 71"));
    assert_eq!(pager(&second), (Some("/tokens".to_owned()), None));
    assert_eq!(browser.get("/tokens?cursor=forged").await.status(), 400);

    // Another user's cursor pages only their own tokens: the list is the viewer's, whatever the address.
    let other = app.create_user("other@example.com", None).await;
    let stranger = app.browser();
    assert_eq!(stranger.login(&other.email, &other.password).await.status(), 303);
    let theirs = stranger.get(&next).await.text().await.unwrap();
    assert_eq!(names(&theirs), 0, "{theirs}");
}
