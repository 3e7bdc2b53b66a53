//! `/api/v1/spaces` and members, and the permission table tried with every
//! role from inside and outside the space.

use bitgate_core::{spaces, users::Role};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestApp;

struct World {
    app: TestApp,
    root: Uuid,
    team: Uuid,
    other: Uuid,
    /// (label, bearer token)
    callers: Vec<(&'static str, String)>,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let team = spaces::create(&app.pool, "team", root, "").await.unwrap().id;
    let other = spaces::create(&app.pool, "other", root, "").await.unwrap().id;
    let mut callers = Vec::new();
    for (label, space, role) in [
        ("account admin", Some(root), Some(Role::Admin)),
        ("team admin", Some(team), Some(Role::Admin)),
        ("team writer", Some(team), Some(Role::Write)),
        ("team reader", Some(team), Some(Role::Read)),
        ("outsider", Some(other), Some(Role::Admin)),
        ("nobody", None, None),
    ] {
        let email = format!("{}@example.com", label.replace(' ', "-"));
        app.create_user(&email, None).await;
        let id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(&email)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if let (Some(space), Some(role)) = (space, role) {
            spaces::set_member(&app.pool, space, id, role).await.unwrap();
        }
        let (_, secret) = bitgate_core::api_tokens::create(&app.pool, id, "test", None).await.unwrap();
        callers.push((label, secret));
    }
    World { app, root, team, other, callers }
}

impl World {
    async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.app.api(token, method, path, body).await
    }

    fn token(&self, label: &str) -> &str {
        &self.callers.iter().find(|(l, _)| *l == label).unwrap().1
    }
}

#[tokio::test]
async fn the_permission_table_holds_for_every_role_inside_and_outside_the_space() {
    let w = world().await;
    let team = w.team;
    // (what, expected status per caller in the order of `world`)
    type Attempt = (&'static str, Method, String, Option<Value>, [u16; 6]);
    let attempts: Vec<Attempt> = vec![
        ("see the space", Method::GET, format!("/api/v1/spaces/{team}"), None, [200, 200, 200, 200, 404, 404]),
        (
            "rename it",
            Method::PATCH,
            format!("/api/v1/spaces/{team}"),
            Some(json!({"description": "x"})),
            [200, 200, 403, 403, 404, 404],
        ),
        ("list members", Method::GET, format!("/api/v1/spaces/{team}/members"), None, [200, 200, 403, 403, 404, 404]),
        (
            "add a member",
            Method::PUT,
            format!("/api/v1/spaces/{team}/members"),
            Some(json!({"email": "team-reader@example.com", "role": "read"})),
            [200, 200, 403, 403, 404, 404],
        ),
        ("see the sibling", Method::GET, format!("/api/v1/spaces/{}", w.other), None, [200, 404, 404, 404, 200, 404]),
        ("see root", Method::GET, format!("/api/v1/spaces/{}", w.root), None, [200, 404, 404, 404, 404, 404]),
    ];
    for (what, method, path, body, expected) in attempts {
        for ((label, token), want) in w.callers.iter().zip(expected) {
            let (status, _) = w.call(token, method.clone(), &path, body.clone()).await;
            assert_eq!(status.as_u16(), want, "{label} trying to {what}");
        }
    }

    // Creating a child space and deleting it, per caller.
    for ((label, token), want) in w.callers.iter().zip([201u16, 201, 403, 403, 404, 404]) {
        let name = format!("child of {label}");
        let (status, body) =
            w.call(token, Method::POST, "/api/v1/spaces", Some(json!({"name": name, "parent_id": team}))).await;
        assert_eq!(status.as_u16(), want, "{label} creating a child space");
        let child = match body["id"].as_str() {
            Some(id) => id.to_owned(),
            None => spaces::create(&w.app.pool, &name, team, "").await.unwrap().id.to_string(),
        };
        let delete_want = if want == 201 { 204 } else { want };
        let (status, _) = w.call(token, Method::DELETE, &format!("/api/v1/spaces/{child}"), None).await;
        assert_eq!(status.as_u16(), delete_want, "{label} deleting a child space");
    }

    // Every refused write left an audit entry; the listing shows only what each can see.
    let denied: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert!(denied >= 12, "{denied}");
    let (_, listing) = w.call(w.token("team reader"), Method::GET, "/api/v1/spaces", None).await;
    let names: Vec<&str> = listing["items"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"team") && !names.contains(&"other") && !names.contains(&"root"), "{names:?}");
    let (_, listing) = w.call(w.token("account admin"), Method::GET, "/api/v1/spaces", None).await;
    assert!(listing["items"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn bad_space_requests_are_refused_clearly_and_change_nothing() {
    let w = world().await;
    let admin = w.token("account admin");
    let count =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM spaces").fetch_one(&w.app.pool).await.unwrap() };
    let before = count().await;

    let (status, body) =
        w.call(admin, Method::POST, "/api/v1/spaces", Some(json!({"name": "team", "parent_id": w.root}))).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(body["error"]["details"][0]["field"], "name");

    let (status, _) =
        w.call(admin, Method::POST, "/api/v1/spaces", Some(json!({"name": "x", "parent_id": Uuid::new_v4()}))).await;
    assert_eq!(status, 404, "an unknown parent");
    let (status, body) = w
        .call(admin, Method::POST, "/api/v1/spaces", Some(json!({"name": "", "parent_id": w.root, "colour": 1})))
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"name") && fields.contains(&"colour"), "{fields:?}");
    let (status, body) =
        w.call(admin, Method::POST, "/api/v1/spaces", Some(json!({"name": "n".repeat(64), "parent_id": w.root}))).await;
    assert_eq!((status.as_u16(), body["error"]["details"][0]["code"].as_str()), (422, Some("too_long")));

    // An outsider learns nothing about validity: an invalid body to a hidden parent is still 404.
    let (status, _) = w
        .call(w.token("outsider"), Method::POST, "/api/v1/spaces", Some(json!({"name": "", "parent_id": w.team})))
        .await;
    assert_eq!(status, 404);

    let (status, _) = w.call(admin, Method::DELETE, &format!("/api/v1/spaces/{}", w.root), None).await;
    assert_eq!(status, 403, "root cannot be deleted");
    spaces::create(&w.app.pool, "grandchild", w.team, "").await.unwrap();
    let (status, body) = w.call(admin, Method::DELETE, &format!("/api/v1/spaces/{}", w.team), None).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["details"][0]["code"], "has_children");
    let (status, _) =
        w.call(admin, Method::PATCH, &format!("/api/v1/spaces/{}", w.root), Some(json!({"name": "top"}))).await;
    assert_eq!(status, 422, "root keeps its name");
    let (status, _) =
        w.call(admin, Method::PATCH, &format!("/api/v1/spaces/{}", w.other), Some(json!({"name": "team"}))).await;
    assert_eq!(status, 409);

    let (status, body) = w
        .call(
            admin,
            Method::PUT,
            &format!("/api/v1/spaces/{}/members", w.team),
            Some(json!({"email": "ghost@example.com", "role": "boss"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 2, "both the unknown user and the bad role");
    assert_eq!(count().await, before + 1, "only the grandchild made above");

    // The account keeps an administrator.
    let admin_id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'account-admin@example.com'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    let (status, _) =
        w.call(admin, Method::DELETE, &format!("/api/v1/spaces/{}/members/{admin_id}", w.root), None).await;
    assert_eq!(status, 409);
    let (status, _) = w
        .call(
            admin,
            Method::PUT,
            &format!("/api/v1/spaces/{}/members", w.root),
            Some(json!({"email": "account-admin@example.com", "role": "read"})),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn members_are_added_changed_and_removed() {
    let w = world().await;
    let admin = w.token("team admin");
    let path = format!("/api/v1/spaces/{}/members", w.team);
    let (status, member) =
        w.call(admin, Method::PUT, &path, Some(json!({"email": "Nobody@Example.com", "role": "write"}))).await;
    assert_eq!(status, 200);
    assert_eq!((member["email"].as_str(), member["role"].as_str()), (Some("nobody@example.com"), Some("write")));
    // The new member now sees the space; the role holds on descendants too.
    let child = spaces::create(&w.app.pool, "team-child", w.team, "").await.unwrap().id;
    let (status, space) = w.call(w.token("nobody"), Method::GET, &format!("/api/v1/spaces/{child}"), None).await;
    assert_eq!((status.as_u16(), space["role"].as_str()), (200, Some("write")));

    let (_, listed) = w.call(admin, Method::GET, &path, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 4);
    let user_id = member["user_id"].as_str().unwrap();
    let (status, _) = w.call(admin, Method::DELETE, &format!("{path}/{user_id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = w.call(admin, Method::DELETE, &format!("{path}/{user_id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = w.call(w.token("nobody"), Method::GET, &format!("/api/v1/spaces/{child}"), None).await;
    assert_eq!(status, 404, "access ends with the membership");
    let actions = w.app.audit_actions().await;
    assert!(actions.contains(&"member.set".to_owned()) && actions.contains(&"member.removed".to_owned()));
}
