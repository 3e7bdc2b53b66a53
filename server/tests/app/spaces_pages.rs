//! The spaces pages: create a space, add and remove members, with the same
//! rules as the API.

use bitgate_core::{spaces, users::Role};

use crate::helpers::{location, TestApp};

#[tokio::test]
async fn an_admin_creates_a_space_and_manages_its_members() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    app.create_user("dev@example.com", None).await;
    let csrf = browser.csrf_token("/spaces").await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id.to_string();

    let refused = browser.post_form("/spaces", &[("csrf_token", &csrf), ("name", " "), ("parent_id", &root)]).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("Enter a name for the space."));

    let created =
        browser.post_form("/spaces", &[("csrf_token", &csrf), ("name", "platform"), ("parent_id", &root)]).await;
    assert_eq!(created.status(), 303);
    let page_path = location(&created);
    assert!(page_path.starts_with("/spaces/"));
    let page = browser.get(&page_path).await.text().await.unwrap();
    assert!(page.contains("Space platform") && page.contains("created."));

    let taken =
        browser.post_form("/spaces", &[("csrf_token", &csrf), ("name", "platform"), ("parent_id", &root)]).await;
    assert_eq!(taken.status(), 409);
    assert!(taken.text().await.unwrap().contains("exists already"));

    let members = format!("{page_path}/members");
    let unknown =
        browser.post_form(&members, &[("csrf_token", &csrf), ("email", "ghost@example.com"), ("role", "read")]).await;
    assert_eq!(unknown.status(), 422);
    assert!(unknown.text().await.unwrap().contains("No enabled user has this email"));
    let added =
        browser.post_form(&members, &[("csrf_token", &csrf), ("email", "dev@example.com"), ("role", "write")]).await;
    assert_eq!(added.status(), 303);
    let page = browser.get(&page_path).await.text().await.unwrap();
    assert!(page.contains("dev@example.com now has the role write here."));

    let dev_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'dev@example.com'").fetch_one(&app.pool).await.unwrap();
    let removed = browser.post_form(&format!("{page_path}/members/{dev_id}/remove"), &[("csrf_token", &csrf)]).await;
    assert_eq!(removed.status(), 303);
    let page = browser.get(&page_path).await.text().await.unwrap();
    assert!(page.contains("The member was removed.") && !page.contains("<td>dev@example.com</td>"));
}

#[tokio::test]
async fn the_pages_refuse_what_roles_do_not_allow() {
    let app = TestApp::spawn().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let team = spaces::create(&app.pool, "team", root, "").await.unwrap().id;
    let hidden = spaces::create(&app.pool, "hidden", root, "").await.unwrap().id;
    let user = app.create_user("reader@example.com", None).await;
    let reader_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users").fetch_one(&app.pool).await.unwrap();
    spaces::set_member(&app.pool, team, reader_id, Role::Read).await.unwrap();
    let browser = app.browser();
    assert_eq!(browser.login(&user.email, &user.password).await.status(), 303);
    let csrf = browser.csrf_token("/spaces").await;

    let listing = browser.get("/spaces").await.text().await.unwrap();
    assert!(listing.contains(">team<") && !listing.contains(">hidden<"));
    assert!(!listing.contains("Create a space"), "readers administer nothing");
    let page = browser.get(&format!("/spaces/{team}")).await;
    assert_eq!(page.status(), 200);
    assert!(!page.text().await.unwrap().contains("Add a member"), "members are for admins");
    assert_eq!(browser.get(&format!("/spaces/{hidden}")).await.status(), 404);
    assert_eq!(browser.get("/spaces/not-a-uuid").await.status(), 404);

    let create = browser
        .post_form("/spaces", &[("csrf_token", &csrf), ("name", "mine"), ("parent_id", &team.to_string())])
        .await;
    assert_eq!(create.status(), 403);
    let hidden_parent = browser
        .post_form("/spaces", &[("csrf_token", &csrf), ("name", "mine"), ("parent_id", &hidden.to_string())])
        .await;
    assert_eq!(hidden_parent.status(), 404);
    let add = browser
        .post_form(
            &format!("/spaces/{team}/members"),
            &[("csrf_token", &csrf), ("email", "reader@example.com"), ("role", "admin")],
        )
        .await;
    assert_eq!(add.status(), 403, "no promoting oneself");
    let role: String = sqlx::query_scalar("SELECT role FROM memberships").fetch_one(&app.pool).await.unwrap();
    assert_eq!(role, "read");
}
