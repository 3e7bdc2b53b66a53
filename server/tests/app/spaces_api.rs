//! `/api/v1/spaces` and members: bad input, members, roles on descendants.
//! (The permission table is tried in `permissions.rs`.)

use bitgate_core::spaces;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::world::world;

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
    let (status, _) = w.call(w.token("team admin"), Method::DELETE, &format!("/api/v1/spaces/{}", w.team), None).await;
    assert_eq!(status, 403, "its admin sees the space, but deleting it is for the admins of root");
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
async fn a_space_admin_cannot_tell_a_disabled_account_from_no_account() {
    let w = world().await;
    let path = format!("/api/v1/spaces/{}/members", w.team);
    let nobody: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'nobody@example.com'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    let (status, _) = w
        .call(
            w.token("account admin"),
            Method::PATCH,
            &format!("/api/v1/users/{nobody}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, 200);

    let add = |email: &'static str| {
        let w = &w;
        let path = &path;
        async move { w.call(w.token("team admin"), Method::PUT, path, Some(json!({"email": email, "role": "read"}))).await }
    };
    let (disabled_status, disabled) = add("nobody@example.com").await;
    let (unknown_status, unknown) = add("no-such-person@example.com").await;
    assert_eq!(disabled_status, 422);
    assert_eq!((unknown_status, &unknown), (disabled_status, &disabled), "the same answer either way");
    assert_eq!(unknown["error"]["details"][0]["code"], "unknown_user");
    let (_, members) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert!(!members.to_string().contains("nobody@example.com"), "no role given");

    // Account admins manage users: they may give a disabled user a role.
    let (status, _) = w
        .call(
            w.token("account admin"),
            Method::PUT,
            &path,
            Some(json!({"email": "nobody@example.com", "role": "read"})),
        )
        .await;
    assert_eq!(status, 200);
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
