//! SPEC.md's permission table, tried on every endpoint and every page with
//! every role from inside and outside the space. Expected statuses are per
//! caller, in the order of `world::CALLERS`: account admin, team admin,
//! team writer, team reader, outsider (admin of a sibling space), nobody
//! (no role at all).

use bitgate_core::{spaces, users::Role};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::world::{world, World, CALLERS};

/// Gives the extra user a role on `team` again, before an attempt to remove it.
async fn make_extra_a_member(w: &World, extra: Uuid) {
    spaces::set_member(&w.app.pool, w.team, extra, Role::Read).await.unwrap();
}

async fn denied_count(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

/// A refused write leaves an audit entry; these expectations count them.
fn refusals(expected: &[u16; 6]) -> i64 {
    expected.iter().filter(|s| matches!(s, 403 | 404)).count() as i64
}

struct ApiAttempt {
    what: &'static str,
    method: Method,
    path: String,
    /// The body for the n-th caller (names are made unique with n).
    body: fn(usize) -> Option<Value>,
    expected: [u16; 6],
    /// A refusal of this write is audited.
    audited: bool,
    /// Re-add the extra member before each caller tries.
    reset_member: bool,
}

#[tokio::test]
async fn every_endpoint_holds_the_permission_table() {
    let w = world().await;
    let (team, other, root) = (w.team, w.other, w.root);
    let extra = w.app.user_id(&w.app.create_user("extra@example.com", None).await.email).await;
    let admin_id = w.app.user_id("account-admin@example.com").await;
    let (spare, _) = bitgate_core::api_tokens::create(&w.app.pool, admin_id, "spare", None).await.unwrap();
    let none = |_| None;
    let attempt = |what, method, path: String, body, expected, audited| ApiAttempt {
        what,
        method,
        path,
        body,
        expected,
        audited,
        reset_member: false,
    };
    let attempts = vec![
        attempt("list spaces", Method::GET, "/api/v1/spaces".into(), none, [200; 6], false),
        attempt(
            "see the space",
            Method::GET,
            format!("/api/v1/spaces/{team}"),
            none,
            [200, 200, 200, 200, 404, 404],
            false,
        ),
        attempt(
            "see the sibling",
            Method::GET,
            format!("/api/v1/spaces/{other}"),
            none,
            [200, 404, 404, 404, 200, 404],
            false,
        ),
        attempt("see root", Method::GET, format!("/api/v1/spaces/{root}"), none, [200, 404, 404, 404, 404, 404], false),
        attempt(
            "change the space",
            Method::PATCH,
            format!("/api/v1/spaces/{team}"),
            |_| Some(json!({"description": "x"})),
            [200, 200, 403, 403, 404, 404],
            true,
        ),
        attempt(
            "create a child space",
            Method::POST,
            "/api/v1/spaces".into(),
            |n| Some(json!({"name": format!("api-child-{n}"), "parent_id": null})),
            [201, 201, 403, 403, 404, 404],
            true,
        ),
        attempt(
            "list members",
            Method::GET,
            format!("/api/v1/spaces/{team}/members"),
            none,
            [200, 200, 403, 403, 404, 404],
            false,
        ),
        attempt(
            "add a member",
            Method::PUT,
            format!("/api/v1/spaces/{team}/members"),
            |_| Some(json!({"email": "extra@example.com", "role": "read"})),
            [200, 200, 403, 403, 404, 404],
            true,
        ),
        ApiAttempt {
            reset_member: true,
            ..attempt(
                "remove a member",
                Method::DELETE,
                format!("/api/v1/spaces/{team}/members/{extra}"),
                none,
                [204, 204, 403, 403, 404, 404],
                true,
            )
        },
        attempt("list users", Method::GET, "/api/v1/users".into(), none, [200, 403, 403, 403, 403, 403], false),
        attempt(
            "see a user",
            Method::GET,
            format!("/api/v1/users/{extra}"),
            none,
            [200, 403, 403, 403, 403, 403],
            false,
        ),
        attempt(
            "create a user",
            Method::POST,
            "/api/v1/users".into(),
            |n| Some(json!({"email": format!("made-{n}@example.com"), "password": "a long enough password"})),
            [201, 403, 403, 403, 403, 403],
            true,
        ),
        attempt(
            "rename a user",
            Method::PATCH,
            format!("/api/v1/users/{extra}"),
            |_| Some(json!({"name": "Extra"})),
            [200, 403, 403, 403, 403, 403],
            true,
        ),
        attempt("read the audit log", Method::GET, "/api/v1/audit".into(), none, [200, 200, 403, 403, 200, 403], false),
        attempt("list own tokens", Method::GET, "/api/v1/tokens".into(), none, [200; 6], false),
        attempt(
            "create a token",
            Method::POST,
            "/api/v1/tokens".into(),
            |n| Some(json!({"name": format!("t{n}")})),
            [201; 6],
            false,
        ),
        attempt(
            "revoke the account admin's token",
            Method::DELETE,
            format!("/api/v1/tokens/{}", spare.id),
            none,
            [204, 404, 404, 404, 404, 404],
            false,
        ),
    ];
    let mut expected_refusals = denied_count(&w).await;
    for attempt in attempts {
        for (n, ((label, token), want)) in w.callers.iter().zip(attempt.expected).enumerate() {
            if attempt.reset_member {
                make_extra_a_member(&w, extra).await;
            }
            let mut body = (attempt.body)(n);
            if let Some(Value::Object(fields)) = body.as_mut() {
                if fields.get("parent_id") == Some(&Value::Null) {
                    fields.insert("parent_id".into(), json!(team));
                }
            }
            let (status, answer) = w.call(token, attempt.method.clone(), &attempt.path, body).await;
            assert_eq!(status.as_u16(), want, "{label} trying to {}: {answer}", attempt.what);
        }
        if attempt.audited {
            expected_refusals += refusals(&attempt.expected);
        }
    }

    // Deleting a child space is administering its parent.
    for ((label, token), want) in w.callers.iter().zip([204u16, 204, 403, 403, 404, 404]) {
        let child =
            spaces::create(&w.app.pool, &format!("doomed-{}", label.replace(' ', "-")), team, "").await.unwrap();
        let (status, _) = w.call(token, Method::DELETE, &format!("/api/v1/spaces/{}", child.id), None).await;
        assert_eq!(status.as_u16(), want, "{label} deleting a child space");
    }
    expected_refusals += refusals(&[204, 204, 403, 403, 404, 404]);
    assert_eq!(denied_count(&w).await, expected_refusals, "every refused write is audited");

    // Lists show only what each caller can see.
    let (_, listing) = w.call(w.token("team reader"), Method::GET, "/api/v1/spaces", None).await;
    let names: Vec<&str> = listing["items"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"team") && !names.contains(&"other") && !names.contains(&"root"), "{names:?}");
    let (_, audit) = w.call(w.token("outsider"), Method::GET, "/api/v1/audit?limit=500", None).await;
    let foreign = audit["items"].as_array().unwrap().iter().filter(|e| e["space_id"] != json!(other)).count();
    assert_eq!(foreign, 0, "a space admin reads only the events of the spaces they administer");
}

#[tokio::test]
async fn every_page_holds_the_permission_table() {
    let w = world().await;
    let (team, other) = (w.team, w.other);
    let extra = w.app.user_id(&w.app.create_user("extra@example.com", None).await.email).await;
    type Form = fn(usize) -> Vec<(&'static str, String)>;
    // (what, method, path, form for the n-th caller, expected, audited, reset member)
    type Attempt = (&'static str, Method, String, Form, [u16; 6], bool, bool);
    let attempts: Vec<Attempt> = vec![
        ("list spaces", Method::GET, "/spaces".into(), |_| vec![], [200; 6], false, false),
        (
            "see the space",
            Method::GET,
            format!("/spaces/{team}"),
            |_| vec![],
            [200, 200, 200, 200, 404, 404],
            false,
            false,
        ),
        (
            "see the sibling",
            Method::GET,
            format!("/spaces/{other}"),
            |_| vec![],
            [200, 404, 404, 404, 200, 404],
            false,
            false,
        ),
        (
            "create a child space",
            Method::POST,
            "/spaces".into(),
            |n| vec![("name", format!("page-child-{n}")), ("parent_id", "team".into())],
            [303, 303, 403, 403, 404, 404],
            true,
            false,
        ),
        (
            "rename the space",
            Method::POST,
            format!("/spaces/{team}"),
            |_| vec![("name", "team".into()), ("description", "ours".into())],
            [303, 303, 403, 403, 404, 404],
            true,
            false,
        ),
        (
            "add a member",
            Method::POST,
            format!("/spaces/{team}/members"),
            |_| vec![("email", "extra@example.com".into()), ("role", "read".into())],
            [303, 303, 403, 403, 404, 404],
            true,
            false,
        ),
        (
            "remove a member",
            Method::POST,
            format!("/spaces/{team}/members/{extra}/remove"),
            |_| vec![],
            [303, 303, 403, 403, 404, 404],
            true,
            true,
        ),
        ("list users", Method::GET, "/users".into(), |_| vec![], [200, 403, 403, 403, 403, 403], false, false),
        (
            "create a user",
            Method::POST,
            "/users".into(),
            |n| vec![("email", format!("page-made-{n}@example.com")), ("password", "a long enough password".into())],
            [303, 403, 403, 403, 403, 403],
            true,
            false,
        ),
        (
            "disable a user",
            Method::POST,
            format!("/users/{extra}/disable"),
            |_| vec![],
            [303, 403, 403, 403, 403, 403],
            true,
            false,
        ),
        (
            "enable a user",
            Method::POST,
            format!("/users/{extra}/enable"),
            |_| vec![],
            [303, 403, 403, 403, 403, 403],
            true,
            false,
        ),
        ("read the audit log", Method::GET, "/audit".into(), |_| vec![], [200, 200, 403, 403, 200, 403], false, false),
        ("list own tokens", Method::GET, "/tokens".into(), |_| vec![], [200; 6], false, false),
        ("read the API reference", Method::GET, "/api/reference".into(), |_| vec![], [200; 6], false, false),
    ];
    let mut browsers = Vec::new();
    for label in CALLERS {
        let browser = w.browser(label).await;
        let csrf = browser.csrf_token("/tokens").await;
        browsers.push((label, browser, csrf));
    }
    let mut expected_refusals = denied_count(&w).await;
    for (what, method, path, form, expected, audited, reset_member) in attempts {
        for (n, ((label, browser, csrf), want)) in browsers.iter().zip(expected).enumerate() {
            if reset_member {
                make_extra_a_member(&w, extra).await;
            }
            let response = if method == Method::GET {
                browser.get(&path).await
            } else {
                let mut fields: Vec<(&str, String)> = form(n);
                for field in fields.iter_mut().filter(|(name, _)| *name == "parent_id") {
                    field.1 = team.to_string();
                }
                fields.push(("csrf_token", csrf.clone()));
                let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                browser.post_form(&path, &fields).await
            };
            assert_eq!(response.status().as_u16(), want, "{label} trying to {what} ({method} {path})");
        }
        if audited {
            expected_refusals += refusals(&expected);
        }
    }
    assert_eq!(denied_count(&w).await, expected_refusals, "every refused write is audited");

    // The navigation offers what each may use.
    let (_, admin, _) = &browsers[0];
    let page = admin.get("/spaces").await.text().await.unwrap();
    assert!(page.contains("href=\"/users\"") && page.contains("href=\"/audit\""));
    let (_, reader, _) = &browsers[3];
    let page = reader.get("/spaces").await.text().await.unwrap();
    assert!(!page.contains("href=\"/users\"") && page.contains("href=\"/api/reference\""));
}
