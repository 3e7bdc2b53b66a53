//! The account admin's pages: users, the audit log, space settings, and
//! the API reference.

use bitgate_core::{spaces, users::Role};

use crate::helpers::{hidden_value, link_href, location, TestApp, PASSWORD};

#[tokio::test]
async fn an_account_admin_creates_disables_and_enables_users() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.logged_in_admin().await;
    let csrf = admin.csrf_token("/users").await;
    let users =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap() };
    let before = users().await;

    // Every problem at once, the email kept, the password never echoed.
    let refused = admin
        .post_form("/users", &[("csrf_token", &csrf), ("email", "dev@"), ("name", ""), ("password", "tiny-pw")])
        .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("value=\"dev@\""), "the email is kept");
    assert!(!page.contains("tiny-pw"), "the password is not echoed");
    assert!(page.matches("class=\"field-error\"").count() >= 2, "both fields are explained");
    assert_eq!(users().await, before);

    let created = admin
        .post_form(
            "/users",
            &[
                ("csrf_token", &csrf),
                ("email", "Dev@Example.com"),
                ("name", "Dev"),
                ("password", PASSWORD),
                ("account_admin", "on"),
            ],
        )
        .await;
    assert_eq!(created.status(), 303);
    let page = admin.get("/users").await.text().await.unwrap();
    assert!(page.contains("dev@example.com can now log in."));
    let is_admin: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id JOIN spaces s ON s.id = m.space_id
         WHERE u.email = 'dev@example.com' AND s.parent_id IS NULL AND m.role = 'admin')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(is_admin, "the checkbox made an account admin");

    let taken =
        admin.post_form("/users", &[("csrf_token", &csrf), ("email", "dev@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(taken.status(), 409);
    assert!(taken.text().await.unwrap().contains("exists already"));

    // Disabling ends the user's session at once; enabling lets them back.
    let dev = app.browser();
    assert_eq!(dev.login("dev@example.com", PASSWORD).await.status(), 303);
    assert_eq!(dev.get("/spaces").await.status(), 200);
    let dev_id = app.user_id("dev@example.com").await;
    let disabled = admin.post_form(&format!("/users/{dev_id}/disable"), &[("csrf_token", &csrf)]).await;
    assert_eq!((disabled.status().as_u16(), location(&disabled).as_str()), (303, "/users"));
    let kicked = dev.get("/spaces").await;
    assert_eq!(kicked.status(), 303, "the disabled user's session ended");
    assert!(location(&kicked).starts_with("/login"));
    assert_eq!(dev.login("dev@example.com", PASSWORD).await.status(), 401);
    let enabled = admin.post_form(&format!("/users/{dev_id}/enable"), &[("csrf_token", &csrf)]).await;
    assert_eq!(enabled.status(), 303);
    assert_eq!(dev.login("dev@example.com", PASSWORD).await.status(), 303);

    // Nobody disables the last account admin.
    let admin_id = app.user_id("admin@example.com").await;
    admin.post_form(&format!("/users/{dev_id}/disable"), &[("csrf_token", &csrf)]).await;
    let last = admin.post_form(&format!("/users/{admin_id}/disable"), &[("csrf_token", &csrf)]).await;
    assert_eq!(last.status(), 303);
    assert!(admin.get("/users").await.text().await.unwrap().contains("last enabled account admin"));
    let still: bool = sqlx::query_scalar("SELECT disabled_at IS NULL FROM users WHERE id = $1")
        .bind(admin_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(still);
    assert_eq!(
        admin.post_form(&format!("/users/{}/disable", uuid::Uuid::new_v4()), &[("csrf_token", &csrf)]).await.status(),
        404
    );
    assert_eq!(admin.post_form(&format!("/users/{dev_id}/promote"), &[("csrf_token", &csrf)]).await.status(), 404);

    let actions = app.audit_actions().await;
    for action in ["user.created", "user.disabled", "user.enabled"] {
        assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn the_audit_page_filters_and_pages_and_refuses_bad_filters() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.logged_in_admin().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let team = spaces::create(&app.pool, "team", root, "").await.unwrap().id;
    let lead = app.create_user("lead@example.com", None).await;
    spaces::set_member(&app.pool, team, app.user_id(&lead.email).await, Role::Admin).await.unwrap();
    let csrf = admin.csrf_token("/spaces").await;
    admin
        .post_form("/spaces", &[("csrf_token", &csrf), ("name", "team-child"), ("parent_id", &team.to_string())])
        .await;
    admin.post_form("/spaces", &[("csrf_token", &csrf), ("name", "elsewhere"), ("parent_id", &root.to_string())]).await;

    let page = admin.get("/audit").await.text().await.unwrap();
    assert!(page.contains("space.created") && page.contains("auth.login"), "the admin sees everything");
    let filtered = admin.get("/audit?action=space.created").await.text().await.unwrap();
    assert!(filtered.contains("space team-child") && !filtered.contains("<code>auth.login</code>"));
    let by_actor = admin.get("/audit?actor=nobody%40example.com").await.text().await.unwrap();
    assert!(by_actor.contains("Nothing matches these filters."));
    let future = admin.get("/audit?since=2999-01-01").await.text().await.unwrap();
    assert!(future.contains("Nothing matches these filters."));
    let bad = admin.get("/audit?since=yesterday").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("is not a date"));
    assert_eq!(admin.get("/audit?cursor=forged").await.status(), 400);

    // A space admin reads the events of their spaces only.
    let lead_browser = app.browser();
    assert_eq!(lead_browser.login(&lead.email, &lead.password).await.status(), 303);
    let scoped = lead_browser.get("/audit").await.text().await.unwrap();
    assert!(scoped.contains("space team-child") && !scoped.contains("space elsewhere"), "{scoped}");

    // Older events are one link away.
    for n in 0..70 {
        bitgate_core::audit::record(
            &app.pool,
            bitgate_core::audit::Event::new(
                bitgate_core::audit::Actor::Cli,
                bitgate_core::audit::AuditAction::UserUpdated,
            )
            .details(serde_json::json!({"n": n})),
        )
        .await
        .unwrap();
    }
    let first = admin.get("/audit?action=user.updated").await.text().await.unwrap();
    assert_eq!(first.matches("<code>user.updated</code>").count(), 50);
    let start = first.find("href=\"/audit?").expect("an older page link") + "href=\"".len();
    let older = first[start..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(
        older.starts_with("/audit?action=user.updated&cursor="),
        "the filter kept, the empty ones left out: {older}"
    );
    let second = admin.get(&older).await.text().await.unwrap();
    assert_eq!(second.matches("<code>user.updated</code>").count(), 20);
    assert!(!second.contains("Older events"));
}

#[tokio::test]
async fn a_space_admin_renames_the_space_and_root_keeps_its_name() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.logged_in_admin().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let team = spaces::create(&app.pool, "team", root, "").await.unwrap().id;
    spaces::create(&app.pool, "taken", root, "").await.unwrap();
    let csrf = admin.csrf_token("/spaces").await;
    let path = format!("/spaces/{team}");

    let page = admin.get(&path).await.text().await.unwrap();
    assert!(page.contains("Settings") && page.contains("Audit log of this space"));

    let long = "n".repeat(64);
    let bad = admin.post_form(&path, &[("csrf_token", &csrf), ("name", &long), ("description", "kept")]).await;
    assert_eq!(bad.status(), 422);
    let text = bad.text().await.unwrap();
    assert!(text.contains(&format!("value=\"{long}\"")) && text.contains(">kept</textarea>"), "what was typed is kept");
    assert!(text.contains("Use at most 63 characters."));
    let taken = admin.post_form(&path, &[("csrf_token", &csrf), ("name", "taken"), ("description", "")]).await;
    assert_eq!(taken.status(), 409);
    assert_eq!(spaces::find(&app.pool, team).await.unwrap().unwrap().name, "team", "nothing changed");

    let renamed = admin
        .post_form(&path, &[("csrf_token", &csrf), ("name", "platform"), ("description", "The platform team")])
        .await;
    assert_eq!(renamed.status(), 303);
    let space = spaces::find(&app.pool, team).await.unwrap().unwrap();
    assert_eq!((space.name.as_str(), space.description.as_str()), ("platform", "The platform team"));
    assert!(app.audit_actions().await.contains(&"space.updated".to_owned()));

    // Root's form has no name field, and a posted name is ignored.
    let root_page = admin.get(&format!("/spaces/{root}")).await.text().await.unwrap();
    assert!(root_page.contains("The root space keeps its name."));
    let posted = admin
        .post_form(&format!("/spaces/{root}"), &[("csrf_token", &csrf), ("name", "top"), ("description", "All")])
        .await;
    assert_eq!(posted.status(), 303);
    assert_eq!(spaces::find(&app.pool, root).await.unwrap().unwrap().name, "root");
}

#[tokio::test]
async fn the_api_reference_lists_every_operation_with_nothing_from_elsewhere() {
    let app = TestApp::spawn().await;
    let response = app.browser().get("/api/reference").await;
    assert_eq!(response.status(), 200, "readable without logging in");
    let page = response.text().await.unwrap();
    let document = &crate::contract::contract().document;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let id = item[method]["operationId"].as_str().unwrap();
            assert!(page.contains(&format!("id=\"{id}\"")), "{method} {path} is on the page");
        }
    }
    for schema in document["components"]["schemas"].as_object().unwrap().keys() {
        assert!(page.contains(&format!("id=\"schema-{schema}\"")), "schema {schema} is on the page");
    }
    assert!(page.contains("<strong>Authentication.</strong>"), "the description's markdown is rendered");
    for attribute in ["src=\"http", "href=\"http", "@import"] {
        assert!(!page.contains(attribute), "no asset from elsewhere: {attribute}");
    }
}

/// The links of a page's pager: (First page, Next) addresses.
fn pager(page: &str) -> (Option<String>, Option<String>) {
    (link_href(page, "First page"), link_href(page, "Next page"))
}

#[tokio::test]
async fn the_users_list_shows_50_a_page_newest_first() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.logged_in_admin().await;
    // 69 more, each a second older than the one before: 70 in all with the admin.
    sqlx::query(
        "INSERT INTO users (email, name, password_hash, created_at)
         SELECT 'user' || n || '@example.com', 'User ' || n, 'x', now() - make_interval(secs => n)
         FROM generate_series(1, 69) n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let emails = |page: &str| page.matches("@example.com</td>").count();
    let first = admin.get("/users").await.text().await.unwrap();
    assert_eq!(emails(&first), 50);
    assert!(first.find("user1@example.com").unwrap() < first.find("user2@example.com").unwrap(), "newest first");
    let (back, next) = pager(&first);
    assert_eq!(back, None);
    let second = admin.get(&next.expect("a second page")).await.text().await.unwrap();
    assert_eq!(emails(&second), 20);
    assert!(second.contains("user69@example.com") && !second.contains("user1@example.com"));
    assert_eq!(pager(&second), (Some("/users".to_owned()), None));
    assert_eq!(admin.get("/users?cursor=forged").await.status(), 400);
}

#[tokio::test]
async fn the_space_and_user_forms_sent_twice_create_once() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.logged_in_admin().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id.to_string();
    let csrf = admin.csrf_token("/spaces").await;
    let count = |sql: &'static str| {
        let pool = app.pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };

    // A double click on "Create": both answers lead to the one space made, and a reload of the answer too.
    let submission = hidden_value(&admin.get("/spaces").await.text().await.unwrap(), "submission");
    let form = [("csrf_token", csrf.as_str()), ("name", "twice"), ("parent_id", &root), ("submission", &submission)];
    let (first, second) = tokio::join!(admin.post_form("/spaces", &form), admin.post_form("/spaces", &form));
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (303, 303));
    assert_eq!(location(&first), location(&second));
    let reloaded = admin.post_form("/spaces", &form).await;
    assert_eq!((reloaded.status().as_u16(), location(&reloaded)), (303, location(&first)));
    assert_eq!(count("SELECT count(*) FROM spaces WHERE name = 'twice'").await, 1);

    // Each page renders its own token; a form without one (a page from before them) still creates.
    let next = hidden_value(&admin.get("/spaces").await.text().await.unwrap(), "submission");
    assert_ne!(next, submission);
    let untokened = admin.post_form("/spaces", &[("csrf_token", &csrf), ("name", "plain"), ("parent_id", &root)]).await;
    assert_eq!(untokened.status(), 303);

    // The user form: a first that saved nothing (a short password) lets the repeat do the work.
    let submission = hidden_value(&admin.get("/users").await.text().await.unwrap(), "submission");
    let refused = [("csrf_token", csrf.as_str()), ("email", "twice@example.com"), ("password", "tiny-pw")];
    let mut refused = refused.to_vec();
    refused.push(("submission", &submission));
    assert_eq!(admin.post_form("/users", &refused).await.status(), 422);
    let form = [
        ("csrf_token", csrf.as_str()),
        ("email", "twice@example.com"),
        ("password", PASSWORD),
        ("submission", &submission),
    ];
    let (first, second) = tokio::join!(admin.post_form("/users", &form), admin.post_form("/users", &form));
    assert_eq!((first.status().as_u16(), location(&first)), (303, "/users".to_owned()));
    assert_eq!((second.status().as_u16(), location(&second)), (303, "/users".to_owned()));
    assert_eq!(count("SELECT count(*) FROM users WHERE email = 'twice@example.com'").await, 1);
    let created = app.audit_actions().await.iter().filter(|a| *a == "user.created").count();
    assert_eq!(created, 1, "and audited once");

    // Another user's token claims nothing for them.
    let other = app.create_user("other-admin@example.com", Some(Role::Admin)).await;
    let browser = app.browser();
    assert_eq!(browser.login(&other.email, &other.password).await.status(), 303);
    let other_csrf = browser.csrf_token("/spaces").await;
    let stolen = [("csrf_token", other_csrf.as_str()), ("name", "stolen"), ("parent_id", &root), ("submission", &next)];
    let mine = [("csrf_token", csrf.as_str()), ("name", "mine"), ("parent_id", &root), ("submission", &next)];
    assert_eq!(admin.post_form("/spaces", &mine).await.status(), 303);
    let busy = browser.post_form("/spaces", &stolen).await;
    assert_eq!(busy.status(), 409);
    assert!(busy.text().await.unwrap().contains("This form was sent before"), "the page says what happened");
    assert_eq!(count("SELECT count(*) FROM spaces WHERE name = 'stolen'").await, 0);
}
