//! `/api/v1/stacks/{id}/runs`: the platform reports runs under its own key
//! (201 first, 200 after), states only move forward, a refused report
//! changes nothing, every field is checked, readers read and writers
//! report, and first reports racing each other create one run.

use bitbucket_simulator::{
    datacenter::{DEMO_TOKEN, DEMO_USER},
    Simulator,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::world::{world_with_bitbucket, World, CALLERS};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// A world with a Data Center integration of `team` and one stack using
/// it, made through the API as a writer would; the stack's id.
async fn with_stack() -> (World, Simulator, String) {
    let (w, sim) = world_with_bitbucket().await;
    let body = json!({
        "name": "team-dc", "provider": "bitbucket_datacenter", "scope": "space", "space_id": w.team,
        "datacenter": {"api_url": sim.url, "username": DEMO_USER, "access_token": DEMO_TOKEN}
    });
    let (status, integration) =
        w.call(w.token("account admin"), Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{integration}");
    let integration = integration["id"].as_str().unwrap().to_owned();
    let writer = w.token("team writer");
    let path = format!("/api/v1/integrations/{integration}/repositories?query=my-repo");
    let (_, found) = w.call(writer, Method::GET, &path, None).await;
    let repository = found["items"][0]["name"].as_str().unwrap().to_owned();
    let body = json!({"name": "web", "space_id": w.team, "integration_id": integration, "repository": repository, "branch": "main"});
    let (status, stack) = w.call(writer, Method::POST, "/api/v1/stacks", Some(body)).await;
    assert_eq!(status, 201, "{stack}");
    let stack = stack["id"].as_str().unwrap().to_owned();
    (w, sim, stack)
}

fn run_path(stack: &str, key: &str) -> String {
    format!("/api/v1/stacks/{stack}/runs/{key}")
}

fn tracked(state: &str) -> Value {
    json!({"commit": SHA, "kind": "tracked", "state": state})
}

/// `base` with the fields of `changes` set.
fn with(mut base: Value, changes: Value) -> Value {
    for (field, value) in changes.as_object().unwrap() {
        base[field] = value.clone();
    }
    base
}

async fn put(w: &World, stack: &str, key: &str, body: Value) -> (StatusCode, Value) {
    w.call(w.token("team writer"), Method::PUT, &run_path(stack, key), Some(body)).await
}

async fn get(w: &World, stack: &str, key: &str) -> Value {
    let (status, run) = w.call(w.token("team reader"), Method::GET, &run_path(stack, key), None).await;
    assert_eq!(status, 200, "{run}");
    run
}

async fn run_count(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM runs").fetch_one(&w.app.pool).await.unwrap()
}

/// The (field, code) of each problem an error answer lists.
fn problems(answer: &Value) -> Vec<(String, String)> {
    answer["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap().to_owned(), d["code"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(f, c)| (f.to_string(), c.to_string())).collect()
}

#[tokio::test]
async fn a_run_is_created_then_moves_forward_and_the_same_report_changes_nothing() {
    let (w, _sim, stack) = with_stack().await;
    let first = json!({
        "commit": SHA.to_uppercase(), "kind": "tracked", "state": "queued",
        "url": "https://ci.example.com/runs/4711", "title": "Plan web"
    });
    let (status, created) = put(&w, &stack, "pipeline-4711", first.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["stack_id"], stack.as_str());
    assert_eq!(created["key"], "pipeline-4711");
    assert_eq!(created["commit"], SHA, "stored lowercase");
    assert_eq!((created["kind"].as_str(), created["state"].as_str()), (Some("tracked"), Some("queued")));
    assert_eq!(created["url"], "https://ci.example.com/runs/4711");
    assert_eq!(created["title"], "Plan web");
    assert_eq!((created["summary"].clone(), created["pull_request_id"].clone()), (Value::Null, Value::Null));
    // Its stack's build status, queued for Bitbucket (the integration's defaults: individual).
    let statuses = created["statuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!((statuses[0]["state"].as_str(), statuses[0]["sent"].as_str()), (Some("INPROGRESS"), Some("pending")));
    assert_eq!(created["created_at"], created["updated_at"]);

    // The same report again: 200, nothing written.
    let (status, again) = put(&w, &stack, "pipeline-4711", first.clone()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, created, "the run as it was, updated_at included");
    assert_eq!(run_count(&w).await, 1);

    // Forward: running, then an end with its summary.
    let (status, running) = put(&w, &stack, "pipeline-4711", with(first.clone(), json!({"state": "running"}))).await;
    assert_eq!((status.as_u16(), running["state"].as_str()), (200, Some("running")), "{running}");
    assert_eq!(running["id"], created["id"], "the same run");
    assert_ne!(running["updated_at"], created["updated_at"]);
    assert_eq!(running["created_at"], created["created_at"]);
    let done = with(first.clone(), json!({"state": "succeeded", "summary": "**2** to add, 0 to change.\n"}));
    let (status, succeeded) = put(&w, &stack, "pipeline-4711", done.clone()).await;
    assert_eq!((status.as_u16(), succeeded["state"].as_str()), (200, Some("succeeded")), "{succeeded}");
    assert_eq!(succeeded["summary"], "**2** to add, 0 to change.\n", "markdown kept as given");
    assert_eq!(get(&w, &stack, "pipeline-4711").await, succeeded);
    let (status, again) = put(&w, &stack, "pipeline-4711", done.clone()).await;
    assert_eq!((status.as_u16(), &again), (200, &succeeded), "the end reported twice changes nothing");

    // An ended run keeps its state but may still get its url, title or
    // summary; a PUT is the whole run, so a field left out is cleared.
    let relinked = with(first.clone(), json!({"state": "succeeded", "url": "https://ci.example.com/runs/4711/log"}));
    let (status, relinked) = put(&w, &stack, "pipeline-4711", relinked).await;
    assert_eq!(status, 200, "{relinked}");
    assert_eq!(relinked["url"], "https://ci.example.com/runs/4711/log");
    assert_eq!((relinked["state"].as_str(), relinked["summary"].clone()), (Some("succeeded"), Value::Null));
    assert_ne!(relinked["updated_at"], succeeded["updated_at"]);

    // Queued may go straight to an end, and running to each of them.
    for (n, end) in ["succeeded", "failed", "stopped"].into_iter().enumerate() {
        let key = format!("direct-{n}");
        let (status, _) = put(&w, &stack, &key, tracked("queued")).await;
        assert_eq!(status, 201);
        let (status, ended) = put(&w, &stack, &key, tracked(end)).await;
        assert_eq!((status.as_u16(), ended["state"].as_str()), (200, Some(end)), "queued to {end}: {ended}");
        let key = format!("ran-{n}");
        put(&w, &stack, &key, tracked("running")).await;
        let (status, ended) = put(&w, &stack, &key, tracked(end)).await;
        assert_eq!((status.as_u16(), ended["state"].as_str()), (200, Some(end)), "running to {end}: {ended}");
    }
    // A first report may say any state: the platform may report late.
    let (status, late) = put(&w, &stack, "late", tracked("failed")).await;
    assert_eq!((status.as_u16(), late["state"].as_str()), (201, Some("failed")));
    // Keys are the platform's: any printable characters, a slash included
    // (percent-encoded in the path), and per stack.
    let (status, slashed) = put(&w, &stack, "gitlab%2Fpipeline%2F9%20%C3%A9", tracked("queued")).await;
    assert_eq!((status.as_u16(), slashed["key"].as_str()), (201, Some("gitlab/pipeline/9 é")), "{slashed}");
    let (status, found) =
        w.call(w.token("team reader"), Method::GET, &run_path(&stack, "gitlab%2Fpipeline%2F9%20%C3%A9"), None).await;
    assert_eq!((status.as_u16(), &found), (200, &slashed));
}

/// Every pair of states where the second is behind the first, or another end.
const BACKWARD: [(&str, &str); 13] = [
    ("running", "queued"),
    ("succeeded", "queued"),
    ("succeeded", "running"),
    ("succeeded", "failed"),
    ("succeeded", "stopped"),
    ("failed", "queued"),
    ("failed", "running"),
    ("failed", "succeeded"),
    ("failed", "stopped"),
    ("stopped", "queued"),
    ("stopped", "running"),
    ("stopped", "succeeded"),
    ("stopped", "failed"),
];

#[tokio::test]
async fn every_step_back_is_refused_with_409_and_changes_nothing() {
    let (w, _sim, stack) = with_stack().await;
    for (from, to) in BACKWARD {
        let key = format!("{from}-to-{to}");
        let (status, stored) = put(&w, &stack, &key, tracked(from)).await;
        assert_eq!(status, 201, "{stored}");
        // Even with a summary that would otherwise be new: nothing at all changes.
        let (status, refused) = put(&w, &stack, &key, with(tracked(to), json!({"summary": "late news"}))).await;
        assert_eq!(status, 409, "{from} to {to}: {refused}");
        assert_eq!(refused["error"]["code"], "conflict");
        assert_eq!(problems(&refused), pairs(&[("state", "backward")]), "{refused}");
        let message = refused["error"]["details"][0]["message"].as_str().unwrap();
        assert!(message.contains(from), "the message says where the run is: {message}");
        assert_eq!(get(&w, &stack, &key).await, stored, "{from} to {to} changed nothing");
    }
    // The same state again after a refusal is still fine.
    let (status, _) = put(&w, &stack, "failed-to-queued", tracked("failed")).await;
    assert_eq!(status, 200);
    assert_eq!(run_count(&w).await, BACKWARD.len() as i64);
}

#[tokio::test]
async fn a_runs_commit_kind_and_pull_request_never_change() {
    let (w, _sim, stack) = with_stack().await;
    let (_, stored) = put(&w, &stack, "t", tracked("running")).await;
    let attempts = [
        (with(tracked("running"), json!({"commit": OTHER_SHA})), vec![("commit", "changed")]),
        (
            with(tracked("running"), json!({"kind": "proposed", "pull_request_id": 7})),
            vec![("kind", "changed"), ("pull_request_id", "changed")],
        ),
        // Everything wrong at once: each is named.
        (
            json!({"commit": OTHER_SHA, "kind": "proposed", "state": "queued", "pull_request_id": 7}),
            vec![("commit", "changed"), ("kind", "changed"), ("pull_request_id", "changed"), ("state", "backward")],
        ),
    ];
    for (body, expected) in attempts {
        let (status, refused) = put(&w, &stack, "t", body.clone()).await;
        assert_eq!((status.as_u16(), problems(&refused)), (409, pairs(&expected)), "{body}: {refused}");
        assert!(refused["error"]["details"][0]["message"].as_str().unwrap().contains("cannot change"));
    }
    assert_eq!(get(&w, &stack, "t").await, stored);
    // The same commit in capitals is the same commit.
    let (status, same) = put(&w, &stack, "t", with(tracked("running"), json!({"commit": SHA.to_uppercase()}))).await;
    assert_eq!((status.as_u16(), &same), (200, &stored));

    let proposed = json!({"commit": SHA, "kind": "proposed", "state": "queued", "pull_request_id": 7});
    let (status, stored) = put(&w, &stack, "p", proposed.clone()).await;
    assert_eq!((status.as_u16(), stored["pull_request_id"].as_i64()), (201, Some(7)), "{stored}");
    let (status, refused) = put(&w, &stack, "p", with(proposed.clone(), json!({"pull_request_id": 8}))).await;
    assert_eq!((status.as_u16(), problems(&refused)), (409, pairs(&[("pull_request_id", "changed")])));
    assert!(refused["error"]["details"][0]["message"].as_str().unwrap().contains("pull request 7"), "{refused}");
    let (status, refused) = put(&w, &stack, "p", with(tracked("running"), json!({"kind": "tracked"}))).await;
    assert_eq!(
        (status.as_u16(), problems(&refused)),
        (409, pairs(&[("kind", "changed"), ("pull_request_id", "changed")]))
    );
    assert_eq!(get(&w, &stack, "p").await, stored, "nothing changed");
    let (status, running) = put(&w, &stack, "p", with(proposed, json!({"state": "running"}))).await;
    assert_eq!((status.as_u16(), running["state"].as_str()), (200, Some("running")));
}

#[tokio::test]
async fn bad_reports_are_refused_field_by_field_and_nothing_is_stored() {
    let (w, _sim, stack) = with_stack().await;
    let long = |n: usize| "x".repeat(n);
    let url_of = |n: usize| format!("https://ci.example.com/{}", "r".repeat(n - 23));
    let proposed = json!({"commit": SHA, "kind": "proposed", "state": "queued", "pull_request_id": 7});

    // At each limit, and just past it.
    let valid = [
        ("commit in capitals", with(tracked("queued"), json!({"commit": SHA.to_uppercase()}))),
        ("url at 450", with(tracked("queued"), json!({"url": url_of(450)}))),
        ("http url", with(tracked("queued"), json!({"url": "http://ci.internal:8080/r/1"}))),
        ("title at 255", with(tracked("queued"), json!({"title": long(255)}))),
        ("summary at 100,000", with(tracked("queued"), json!({"summary": long(100_000)}))),
        (
            "nulls for the optional fields",
            with(tracked("queued"), json!({"url": null, "title": null, "summary": null, "pull_request_id": null})),
        ),
        ("a proposed run with its pull request", proposed.clone()),
    ];
    for (n, (what, body)) in valid.iter().enumerate() {
        let (status, run) = put(&w, &stack, &format!("valid-{n}"), body.clone()).await;
        assert_eq!(status, 201, "{what}: {run}");
    }
    let (status, run) = put(&w, &stack, &"k".repeat(200), tracked("queued")).await;
    assert_eq!((status.as_u16(), run["key"].as_str().map(str::len)), (201, Some(200)), "a key of 200 characters");
    let stored = run_count(&w).await;
    assert_eq!(stored, valid.len() as i64 + 1);
    assert_eq!(get(&w, &stack, "valid-1").await["url"], url_of(450));

    // (what, body, the (field, code) of each problem)
    type Attempt = (&'static str, Value, Vec<(&'static str, &'static str)>);
    let invalid: Vec<Attempt> = vec![
        ("nothing", json!({}), vec![("commit", "required"), ("kind", "required"), ("state", "required")]),
        ("a short commit", with(tracked("queued"), json!({"commit": "0123456"})), vec![("commit", "invalid")]),
        ("39 digits", with(tracked("queued"), json!({"commit": &SHA[..39]})), vec![("commit", "invalid")]),
        ("41 digits", with(tracked("queued"), json!({"commit": format!("{SHA}0")})), vec![("commit", "invalid")]),
        ("not hex", with(tracked("queued"), json!({"commit": SHA.replace('a', "g")})), vec![("commit", "invalid")]),
        ("a number for a commit", with(tracked("queued"), json!({"commit": 123})), vec![("commit", "invalid_type")]),
        ("an unknown kind", with(tracked("queued"), json!({"kind": "nightly"})), vec![("kind", "invalid")]),
        ("an unknown state", with(tracked("queued"), json!({"state": "done"})), vec![("state", "invalid")]),
        ("a state in capitals", with(tracked("queued"), json!({"state": "QUEUED"})), vec![("state", "invalid")]),
        ("a relative url", with(tracked("queued"), json!({"url": "/runs/1"})), vec![("url", "invalid")]),
        ("an ftp url", with(tracked("queued"), json!({"url": "ftp://ci.example.com/1"})), vec![("url", "invalid")]),
        ("a script url", with(tracked("queued"), json!({"url": "javascript:alert(1)"})), vec![("url", "invalid")]),
        (
            "a url with credentials",
            with(tracked("queued"), json!({"url": "https://bot:hunter2@ci.example.com/1"})),
            vec![("url", "invalid")],
        ),
        ("a url of 451", with(tracked("queued"), json!({"url": url_of(451)})), vec![("url", "too_long")]),
        ("a title of 256", with(tracked("queued"), json!({"title": long(256)})), vec![("title", "too_long")]),
        ("a title of two lines", with(tracked("queued"), json!({"title": "one\ntwo"})), vec![("title", "invalid")]),
        (
            "a summary of 100,001",
            with(tracked("queued"), json!({"summary": long(100_001)})),
            vec![("summary", "too_long")],
        ),
        ("a NUL in the summary", with(tracked("queued"), json!({"summary": "a\u{0}b"})), vec![("summary", "invalid")]),
        (
            "a proposed run without its pull request",
            with(tracked("queued"), json!({"kind": "proposed"})),
            vec![("pull_request_id", "required")],
        ),
        (
            "a tracked run with a pull request",
            with(tracked("queued"), json!({"pull_request_id": 7})),
            vec![("pull_request_id", "not_allowed")],
        ),
        ("pull request 0", with(proposed.clone(), json!({"pull_request_id": 0})), vec![("pull_request_id", "invalid")]),
        (
            "pull request -1",
            with(proposed.clone(), json!({"pull_request_id": -1})),
            vec![("pull_request_id", "invalid")],
        ),
        (
            "a pull request as text",
            with(proposed.clone(), json!({"pull_request_id": "7"})),
            vec![("pull_request_id", "invalid_type")],
        ),
        (
            "a fractional pull request",
            with(proposed.clone(), json!({"pull_request_id": 7.5})),
            vec![("pull_request_id", "invalid_type")],
        ),
        (
            "a pull request past 64 bits",
            with(proposed.clone(), json!({"pull_request_id": u64::MAX})),
            vec![("pull_request_id", "invalid_type")],
        ),
        ("an unknown field", with(tracked("queued"), json!({"colour": "red"})), vec![("colour", "unknown_field")]),
        (
            "the read-only fields",
            with(tracked("queued"), json!({"id": "x", "statuses": []})),
            vec![("id", "unknown_field"), ("statuses", "unknown_field")],
        ),
    ];
    for (what, body, expected) in invalid {
        let (status, refused) = put(&w, &stack, "bad", body).await;
        assert_eq!(status, 422, "{what}: {refused}");
        assert_eq!(refused["error"]["code"], "validation_failed");
        let mut got = problems(&refused);
        let mut expected = pairs(&expected);
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{what}");
    }
    // The key is checked like a field.
    let (status, refused) = put(&w, &stack, &"k".repeat(201), tracked("queued")).await;
    assert_eq!((status.as_u16(), problems(&refused)), (422, pairs(&[("key", "too_long")])));
    let (status, refused) = put(&w, &stack, "line%0Abreak", tracked("queued")).await;
    assert_eq!((status.as_u16(), problems(&refused)), (422, pairs(&[("key", "invalid")])));
    // A key that is not UTF-8 is a malformed request, in the API's shape.
    let (status, refused) = put(&w, &stack, "%FF", tracked("queued")).await;
    assert_eq!((status.as_u16(), refused["error"]["code"].as_str()), (400, Some("bad_request")));
    let (status, _) = w.call(w.token("team reader"), Method::GET, &run_path(&stack, "%FF"), None).await;
    assert_eq!(status, 400);
    // Not JSON at all.
    let response = reqwest::Client::new()
        .put(format!("{}{}", w.app.base, run_path(&stack, "bad")))
        .bearer_auth(w.token("team writer"))
        .body("state=queued")
        .send()
        .await
        .unwrap();
    let (status, _) = crate::contract::checked(Method::PUT, &run_path(&stack, "bad"), response).await;
    assert_eq!(status, 415);
    assert_eq!(run_count(&w).await, stored, "nothing was stored");

    // A bad report of an existing run changes nothing either.
    let before = get(&w, &stack, "valid-0").await;
    let (status, _) = put(&w, &stack, "valid-0", with(tracked("running"), json!({"url": "ftp://x"}))).await;
    assert_eq!(status, 422);
    assert_eq!(get(&w, &stack, "valid-0").await, before);
}

#[tokio::test]
async fn readers_read_runs_writers_report_them_and_others_see_nothing() {
    let (w, _sim, stack) = with_stack().await;
    let denied = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
            .fetch_one(&w.app.pool)
            .await
            .unwrap()
    };
    let before = denied().await;
    let expected: [u16; 6] = [201, 201, 201, 403, 404, 404];
    assert_eq!(CALLERS.len(), expected.len());
    for (n, ((label, token), want)) in w.callers.iter().zip(expected).enumerate() {
        let path = run_path(&stack, &format!("by-{n}"));
        let (status, answer) = w.call(token, Method::PUT, &path, Some(tracked("queued"))).await;
        assert_eq!(status.as_u16(), want, "{label} reporting a run: {answer}");
        // Authorization comes first: an invalid report tells a caller who
        // may not report nothing more.
        let (status, answer) = w.call(token, Method::PUT, &path, Some(json!({"state": "nope"}))).await;
        let want = if want == 201 { 422 } else { want };
        assert_eq!(status.as_u16(), want, "{label} reporting an invalid run: {answer}");
    }
    assert_eq!(denied().await - before, 6, "each refused report is audited");
    let (_, reported) = put(&w, &stack, "by-0", tracked("running")).await;
    let reads = [
        (run_path(&stack, "by-0"), [200u16, 200, 200, 200, 404, 404]),
        (format!("/api/v1/stacks/{stack}/runs"), [200, 200, 200, 200, 404, 404]),
    ];
    for (path, expected) in reads {
        for ((label, token), want) in w.callers.iter().zip(expected) {
            let (status, answer) = w.call(token, Method::GET, &path, None).await;
            assert_eq!(status.as_u16(), want, "{label} reading {path}: {answer}");
        }
    }
    let (_, read) = w.call(w.token("team reader"), Method::GET, &run_path(&stack, "by-0"), None).await;
    assert_eq!(read, reported);
    assert_eq!(denied().await - before, 6, "reads refuse without an audit entry, as the stack's own do");

    // What does not exist: another key, another stack, an id that is none.
    let writer = w.token("team writer");
    let (status, _) = w.call(writer, Method::GET, &run_path(&stack, "never-reported"), None).await;
    assert_eq!(status, 404);
    let nowhere = uuid::Uuid::new_v4().to_string();
    for stack in [nowhere.as_str(), "not-a-uuid"] {
        let (status, _) = w.call(writer, Method::PUT, &run_path(stack, "k"), Some(tracked("queued"))).await;
        assert_eq!(status, 404, "{stack}");
        let (status, _) = w.call(writer, Method::GET, &run_path(stack, "k"), None).await;
        assert_eq!(status, 404, "{stack}");
        let (status, _) = w.call(writer, Method::GET, &format!("/api/v1/stacks/{stack}/runs"), None).await;
        assert_eq!(status, 404, "{stack}");
    }
    // Runs go with their stack.
    let (status, _) = w.call(writer, Method::DELETE, &format!("/api/v1/stacks/{stack}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(run_count(&w).await, 0);
    let (status, _) = w.call(writer, Method::PUT, &run_path(&stack, "by-0"), Some(tracked("running"))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_stacks_runs_are_listed_newest_first_page_by_page() {
    let (w, sim, stack) = with_stack().await;
    // A second stack of the same repository, whose runs stay its own.
    let (_, first) = w.call(w.token("team reader"), Method::GET, &format!("/api/v1/stacks/{stack}"), None).await;
    let body = json!({
        "name": "web-2", "space_id": w.team, "integration_id": first["integration_id"],
        "repository": first["repository"]["name"], "branch": "main"
    });
    let (status, second) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(body)).await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    drop(sim);

    let keys: Vec<String> = (0..7).map(|n| format!("run-{n}")).collect();
    for key in &keys {
        let (status, _) = put(&w, &stack, key, tracked("queued")).await;
        assert_eq!(status, 201);
    }
    // The same key on the other stack is another run.
    let (status, elsewhere) = put(&w, &second, "run-0", tracked("failed")).await;
    assert_eq!(status, 201, "{elsewhere}");
    // Updating an old run does not move it up: the order is by creation.
    put(&w, &stack, "run-0", tracked("running")).await;

    let reader = w.token("team reader");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/stacks/{stack}/runs?limit=3&cursor={c}"),
            None => format!("/api/v1/stacks/{stack}/runs?limit=3"),
        };
        let (status, page) = w.call(reader, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for run in page["items"].as_array().unwrap() {
            assert_eq!(run["stack_id"], stack.as_str());
            seen.push(run["key"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = keys.iter().rev().cloned().collect();
    assert_eq!((seen, pages), (newest_first, 3));
    let (_, whole) = w.call(reader, Method::GET, &format!("/api/v1/stacks/{stack}/runs"), None).await;
    assert_eq!((whole["items"].as_array().unwrap().len(), whole["next_cursor"].clone()), (7, Value::Null));
    assert_eq!(whole["items"][6]["state"], "running");
    let (_, theirs) = w.call(reader, Method::GET, &format!("/api/v1/stacks/{second}/runs"), None).await;
    assert_eq!(theirs["items"], json!([elsewhere]));
    for bad in ["?cursor=forged", "?limit=0", "?limit=501", "?limit=x"] {
        let (status, _) = w.call(reader, Method::GET, &format!("/api/v1/stacks/{stack}/runs{bad}"), None).await;
        assert_eq!(status, 400, "{bad}");
    }
}

/// Sends the reports `bodies` of one run all at once; their answers, in order.
async fn at_once(w: &World, path: &str, bodies: Vec<Value>) -> Vec<(StatusCode, Value)> {
    let sends = bodies.into_iter().map(|body| w.call(w.token("team writer"), Method::PUT, path, Some(body)));
    futures::future::join_all(sends).await
}

/// How many reports race for one run: fewer than the server's 16
/// connections, so that they meet in the database rather than queue for it.
const RACERS: usize = 12;

/// How many of the server's connections wait for a lock.
async fn waiting_for_locks(w: &World) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_racing_each_other_are_decided_one_at_a_time() {
    let (w, _sim, stack) = with_stack().await;
    // Timing decides a race: several rounds, so that an implementation
    // without a winner by construction loses one.
    for round in 0..5 {
        // First reports of one key, all at once: one creates, the others find it.
        let key = format!("raced-{round}");
        let path = run_path(&stack, &key);
        let body = with(tracked("queued"), json!({"url": "https://ci.example.com/r/1"}));
        let answers = at_once(&w, &path, vec![body; RACERS]).await;
        let statuses: Vec<u16> = answers.iter().map(|(status, _)| status.as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "round {round}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), RACERS - 1, "round {round}: {statuses:?}");
        let ids: std::collections::HashSet<&str> = answers.iter().map(|(_, run)| run["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1, "one run");

        // Forward reports from queued, lined up behind a lock on the run's
        // row so that they all meet: each must be judged against the run as
        // the one before it left it, or a running decided on a stale queued
        // would overwrite a succeeded stored meanwhile.
        let mut held = w.app.pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM runs WHERE key = $1 FOR UPDATE").bind(&key).execute(&mut *held).await.unwrap();
        let states: Vec<&str> = (0..RACERS).map(|n| if n % 2 == 0 { "running" } else { "succeeded" }).collect();
        let (base, token) = (w.app.base.clone(), w.token("team writer").to_owned());
        let sends: Vec<_> = states
            .iter()
            .map(|state| {
                let (url, token, path, body) = (format!("{base}{path}"), token.clone(), path.clone(), tracked(state));
                tokio::spawn(async move {
                    let response = reqwest::Client::new().put(url).bearer_auth(token).json(&body).send().await.unwrap();
                    crate::contract::checked(Method::PUT, &path, response).await
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while waiting_for_locks(&w).await < RACERS as i64 {
            assert!(std::time::Instant::now() < deadline, "round {round}: the reports never all met");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        held.rollback().await.unwrap();
        let answers: Vec<(StatusCode, Value)> =
            futures::future::join_all(sends).await.into_iter().map(Result::unwrap).collect();
        for ((status, answer), state) in answers.iter().zip(&states) {
            assert!(matches!(status.as_u16(), 200 | 409), "{state}: {status} {answer}");
            if *status == 200 {
                assert_eq!(answer["state"], *state, "the answer shows the state reported");
            } else {
                assert_eq!(*state, "running", "only running can come too late: {answer}");
            }
        }
        assert_eq!(get(&w, &stack, &key).await["state"], "succeeded", "round {round}");
    }
    assert_eq!(run_count(&w).await, 5);
}
