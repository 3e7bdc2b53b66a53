//! Data Center's REST API for a repository's webhooks and branches, as a
//! caller that manages its own hook and polls branch heads uses it: the
//! hooks' life, REPO_ADMIN, validation, the deliveries a REST-made hook
//! receives from the repository's page, and what `latest` and the
//! statistics say when they fail.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post, Router};
use bitbucket_simulator::{
    datacenter::{hooks::REFUSED, Token, DEMO_TOKEN, DEMO_USER},
    sender, DataCenter, Fault, Simulator, Transport,
};
use reqwest::Method;
use serde_json::{json, Value};

const HOOKS: &str = "/rest/api/1.0/projects/OPS/repos/my-repo/webhooks";
const PAGE: &str = "/plugins/servlet/webhooks/projects/OPS/repos/my-repo";
const SECRET: &str = "the secret Bitgate holds";

/// A call with a token (or none); its status and JSON body (null when none).
async fn call(sim: &Simulator, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", sim.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn hook_body(url: &str, events: &[&str]) -> Value {
    json!({"name": "Bitgate", "url": url, "active": true, "events": events,
           "configuration": {"secret": SECRET}, "sslVerificationRequired": true})
}

/// A token of `jsmith` that reads every repository but administers none.
fn reader(sim: &Simulator) -> &'static str {
    sim.configure(|dc| {
        dc.tokens.push(Token {
            secret: "BBDC-reader".into(),
            owner: "jsmith".into(),
            project_read: true,
            repository_read: true,
            repository_admin: false,
        })
    });
    "BBDC-reader"
}

type Inbox = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A stand-in for Bitgate's webhook endpoint: records each request, answers 202.
async fn receiver() -> (String, Inbox) {
    async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> axum::http::StatusCode {
        inbox.lock().unwrap().push((headers, body.to_vec()));
        axum::http::StatusCode::ACCEPTED
    }
    let inbox = Inbox::default();
    let app = Router::new().route("/webhooks/bitbucket/dc", post(receive)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/bitbucket/dc", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// Pushes a commit with the repository page's form, as a person does.
async fn push(sim: &Simulator, branch: &str, message: &str) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client
        .post(format!("{}/projects/OPS/repos/my-repo/push", sim.url))
        .form(&[("branch", branch), ("message", message)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
}

#[tokio::test]
async fn a_hook_is_created_listed_read_updated_and_deleted() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let url = "https://bitgate.example.com/webhooks/bitbucket/dc/abc";
    let (status, created) =
        call(&sim, Method::POST, HOOKS, Some(DEMO_TOKEN), Some(hook_body(url, &["repo:refs_changed", "pr:opened"])))
            .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    assert_eq!(
        (created["name"].as_str(), created["url"].as_str(), created["active"].as_bool()),
        (Some("Bitgate"), Some(url), Some(true))
    );
    assert_eq!(created["events"], json!(["repo:refs_changed", "pr:opened"]));
    assert_eq!(created["configuration"]["secret"], SECRET, "Data Center gives the secret back");
    assert_eq!(
        (created["scopeType"].as_str(), created["sslVerificationRequired"].as_bool()),
        (Some("repository"), Some(true))
    );
    assert!(created["createdDate"].as_u64().unwrap() > 0);
    assert_eq!(created["createdDate"], created["updatedDate"]);

    // Listed, filtered by event, and on the repository's webhooks page.
    let (status, listed) = call(&sim, Method::GET, HOOKS, Some(DEMO_TOKEN), None).await;
    assert_eq!((status, listed["size"].as_u64(), listed["isLastPage"].as_bool()), (200, Some(1), Some(true)));
    assert_eq!(listed["values"][0], created);
    let (_, merged) = call(&sim, Method::GET, &format!("{HOOKS}?event=pr:merged"), Some(DEMO_TOKEN), None).await;
    assert_eq!(merged["size"], 0);
    let (_, opened) = call(&sim, Method::GET, &format!("{HOOKS}?event=pr:opened"), Some(DEMO_TOKEN), None).await;
    assert_eq!(opened["size"], 1);
    let page = reqwest::get(format!("{}{PAGE}", sim.url)).await.unwrap().text().await.unwrap();
    assert!(page.contains("Bitgate") && page.contains(url), "{page}");

    let one = format!("{HOOKS}/{id}");
    let (status, got) = call(&sim, Method::GET, &one, Some(DEMO_TOKEN), None).await;
    assert_eq!((status, &got), (200, &created));

    // An update changes what it names and keeps the rest.
    let change = json!({"events": ["repo:refs_changed", "pr:from_ref_updated"], "active": false});
    let (status, updated) = call(&sim, Method::PUT, &one, Some(DEMO_TOKEN), Some(change)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["events"], json!(["repo:refs_changed", "pr:from_ref_updated"]));
    assert_eq!((updated["active"].as_bool(), updated["name"].as_str()), (Some(false), Some("Bitgate")));
    assert_eq!(updated["configuration"]["secret"], SECRET);
    let (_, rotated) =
        call(&sim, Method::PUT, &one, Some(DEMO_TOKEN), Some(json!({"configuration": {"secret": "new"}}))).await;
    assert_eq!(rotated["configuration"]["secret"], "new");
    assert_eq!(sim.datacenter.read().unwrap().hooks[0].secret.as_deref(), Some("new"));

    let (status, _) = call(&sim, Method::DELETE, &one, Some(DEMO_TOKEN), None).await;
    assert_eq!(status, 204);
    let (status, missing) = call(&sim, Method::GET, &one, Some(DEMO_TOKEN), None).await;
    assert_eq!(status, 404);
    assert!(missing["errors"][0]["message"].as_str().unwrap().contains(&id.to_string()), "{missing}");
    assert_eq!(call(&sim, Method::DELETE, &one, Some(DEMO_TOKEN), None).await.0, 404);
    assert_eq!(call(&sim, Method::PUT, &one, Some(DEMO_TOKEN), Some(json!({"active": true}))).await.0, 404);
    let (_, empty) = call(&sim, Method::GET, HOOKS, Some(DEMO_TOKEN), None).await;
    assert_eq!(empty["size"], 0);

    // Every write was a REST call: counted, in order.
    let calls = sim.datacenter.read().unwrap().calls.clone();
    let seen: Vec<(String, u16)> = calls.iter().map(|c| (c.method.to_string(), c.status)).collect();
    let expected = [("POST", 201), ("PUT", 200), ("PUT", 200), ("DELETE", 204), ("DELETE", 404), ("PUT", 404)];
    assert_eq!(seen, expected.map(|(m, s)| (m.to_owned(), s)));
}

#[tokio::test]
async fn managing_hooks_needs_repo_admin_and_valid_bodies() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let reader = reader(&sim);
    let body = hook_body("https://bitgate.example.com/hook", &["repo:refs_changed"]);
    for (method, body) in [(Method::POST, Some(body.clone())), (Method::GET, None)] {
        let (status, refused) = call(&sim, method, HOOKS, Some(reader), body).await;
        assert_eq!(status, 401);
        assert_eq!(refused["errors"][0]["exceptionName"], "com.atlassian.bitbucket.AuthorisationException");
    }
    assert_eq!(call(&sim, Method::POST, HOOKS, None, Some(body.clone())).await.0, 401, "anonymous");
    assert_eq!(call(&sim, Method::POST, HOOKS, Some("BBDC-wrong"), Some(body.clone())).await.0, 401);
    let unknown_repository = HOOKS.replace("my-repo", "no-such-repo");
    assert_eq!(call(&sim, Method::POST, &unknown_repository, Some(DEMO_TOKEN), Some(body)).await.0, 404);

    let refusals = [
        (json!(["pr:opened", "pr:merged", "pr:opened"]), "https://bitgate.example.com/hook", "events"),
        (json!(["repo:push"]), "https://bitgate.example.com/hook", "events"),
        (json!([]), "https://bitgate.example.com/hook", "events"),
        (json!(["pr:opened"]), "bitgate.example.com/hook", "url"),
        (json!(["pr:opened"]), "ftp://bitgate.example.com/hook", "url"),
    ];
    for (events, url, field) in refusals {
        let body = json!({"name": "Bitgate", "url": url, "events": events});
        let (status, refused) = call(&sim, Method::POST, HOOKS, Some(DEMO_TOKEN), Some(body)).await;
        assert_eq!((status, refused["errors"][0]["context"].as_str()), (400, Some(field)), "{refused}");
    }
    let (_, unknown) = call(
        &sim,
        Method::POST,
        HOOKS,
        Some(DEMO_TOKEN),
        Some(json!({"name": "x", "url": "http://h/", "events": ["repo:push"]})),
    )
    .await;
    assert_eq!(unknown["errors"][0]["message"], "repo:push is unknown", "the words go-scm looks for");
    let (status, nameless) =
        call(&sim, Method::POST, HOOKS, Some(DEMO_TOKEN), Some(json!({"url": "ftp://h", "events": []}))).await;
    assert_eq!(status, 400);
    assert_eq!(nameless["errors"].as_array().unwrap().len(), 3, "every problem at once: {nameless}");
    assert!(sim.datacenter.read().unwrap().hooks.is_empty(), "nothing refused is stored");

    // An update is checked as a creation is.
    let (_, created) =
        call(&sim, Method::POST, HOOKS, Some(DEMO_TOKEN), Some(hook_body("http://h/", &["pr:opened"]))).await;
    let one = format!("{HOOKS}/{}", created["id"]);
    let twice = json!({"events": ["repo:refs_changed", "repo:refs_changed"]});
    assert_eq!(call(&sim, Method::PUT, &one, Some(DEMO_TOKEN), Some(twice)).await.0, 400);
    assert_eq!(call(&sim, Method::PUT, &one, Some(reader), Some(json!({"active": false}))).await.0, 401);
    assert_eq!(call(&sim, Method::DELETE, &one, Some(reader), None).await.0, 401);
    let stored = sim.datacenter.read().unwrap().hooks.clone();
    assert_eq!(
        (stored.len(), stored[0].events.as_slice(), stored[0].active),
        (1, ["pr:opened".to_owned()].as_slice(), true)
    );

    // Webhook writes meet the faults a test queues, as every REST write does.
    sim.configure(|dc| dc.faults.push_back(Fault::Unavailable));
    assert_eq!(call(&sim, Method::DELETE, &one, Some(DEMO_TOKEN), None).await.0, 503);
    assert_eq!(call(&sim, Method::DELETE, &one, Some(DEMO_TOKEN), None).await.0, 204);
}

#[tokio::test]
async fn a_hook_made_by_rest_receives_the_pages_pushes_and_reports_failed_deliveries() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let (url, inbox) = receiver().await;
    let (status, created) = call(
        &sim,
        Method::POST,
        HOOKS,
        Some(DEMO_TOKEN),
        Some(hook_body(&url, &["repo:refs_changed", "pr:from_ref_updated"])),
    )
    .await;
    assert_eq!(status, 201);
    let one = format!("{HOOKS}/{}", created["id"]);
    let (status, none) = call(&sim, Method::GET, &format!("{one}/latest"), Some(DEMO_TOKEN), None).await;
    assert_eq!((status, none), (204, Value::Null), "no invocation yet");

    push(&sim, "main", "Works").await;
    let got = std::mem::take(&mut *inbox.lock().unwrap());
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(headers["x-event-key"], "repo:refs_changed");
    assert_eq!(headers["x-hub-signature"].to_str().unwrap(), sender::sign(SECRET, body));

    let (status, latest) = call(&sim, Method::GET, &format!("{one}/latest"), Some(DEMO_TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(latest["event"], "repo:refs_changed");
    assert_eq!(latest["result"], json!({"outcome": "SUCCESS", "description": "202"}));
    assert_eq!(latest["request"], json!({"method": "POST", "url": url}));
    let (start, finish) = (latest["start"].as_u64().unwrap(), latest["finish"].as_u64().unwrap());
    assert_eq!(finish - start, latest["duration"].as_u64().unwrap());

    // The receiver is down: Bitbucket records the failure and sends nothing.
    sim.configure(|dc| dc.failing_hook_repositories.push(1));
    push(&sim, "main", "Works again").await;
    assert!(inbox.lock().unwrap().is_empty(), "nothing is sent to a failing repository's hooks");
    let (_, latest) = call(&sim, Method::GET, &format!("{one}/latest"), Some(DEMO_TOKEN), None).await;
    assert_eq!(latest["result"], json!({"outcome": "ERROR", "description": REFUSED}));
    let (_, success) = call(&sim, Method::GET, &format!("{one}/latest?outcome=SUCCESS"), Some(DEMO_TOKEN), None).await;
    assert_eq!(success["result"]["outcome"], "SUCCESS", "the last success is still there");

    let (status, statistics) = call(&sim, Method::GET, &format!("{one}/statistics"), Some(DEMO_TOKEN), None).await;
    assert_eq!(status, 200);
    let counts = &statistics["counts"];
    assert_eq!(
        (counts["successes"].as_u64(), counts["failures"].as_u64(), counts["errors"].as_u64()),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(statistics["lastError"]["result"]["description"], REFUSED);
    assert_eq!(statistics["lastSuccess"]["result"]["outcome"], "SUCCESS");
    assert!(statistics.get("lastFailure").is_none(), "no answer with an error status yet");
    let (_, summary) = call(&sim, Method::GET, &format!("{one}/statistics/summary"), Some(DEMO_TOKEN), None).await;
    assert_eq!(summary["repo:refs_changed"]["counts"]["errors"], 1);
    assert_eq!(summary["pr:from_ref_updated"]["counts"]["successes"], 0);
    let (_, listed) = call(&sim, Method::GET, &format!("{HOOKS}?statistics=true"), Some(DEMO_TOKEN), None).await;
    assert_eq!(listed["values"][0]["statistics"]["counts"]["errors"], 1);
    let (_, plain) = call(&sim, Method::GET, HOOKS, Some(DEMO_TOKEN), None).await;
    assert!(plain["values"][0].get("statistics").is_none());
    let page = reqwest::get(format!("{}{PAGE}", sim.url)).await.unwrap().text().await.unwrap();
    assert!(page.contains(REFUSED), "the webhooks page shows it too: {page}");

    // Diagnostics need REPO_ADMIN too, and a hook of this repository.
    let reader = reader(&sim);
    assert_eq!(call(&sim, Method::GET, &format!("{one}/latest"), Some(reader), None).await.0, 401);
    assert_eq!(call(&sim, Method::GET, &format!("{HOOKS}/999/statistics"), Some(DEMO_TOKEN), None).await.0, 404);
}

#[tokio::test]
async fn branches_are_listed_with_their_heads_filtered_and_paged() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let branches = "/rest/api/1.0/projects/OPS/repos/my-repo/branches";
    let (status, all) = call(&sim, Method::GET, branches, Some(DEMO_TOKEN), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = all["values"].as_array().unwrap().iter().map(|b| b["displayId"].as_str().unwrap()).collect();
    assert_eq!(names, ["main", "feature", "feature/thing"], "the default branch first");
    assert_eq!(
        all["values"][0],
        json!({"id": "refs/heads/main", "displayId": "main", "type": "BRANCH",
               "latestCommit": "823b2230a56056231c9425d63758fa87078a66b4",
               "latestChangeset": "823b2230a56056231c9425d63758fa87078a66b4", "isDefault": true})
    );
    assert_eq!(all["values"][1]["isDefault"], false);

    let (_, filtered) = call(&sim, Method::GET, &format!("{branches}?filterText=THING"), Some(DEMO_TOKEN), None).await;
    assert_eq!(
        (filtered["size"].as_u64(), filtered["values"][0]["displayId"].as_str()),
        (Some(1), Some("feature/thing"))
    );
    let (_, first) = call(&sim, Method::GET, &format!("{branches}?limit=2"), Some(DEMO_TOKEN), None).await;
    assert_eq!(
        (first["size"].as_u64(), first["isLastPage"].as_bool(), first["nextPageStart"].as_u64()),
        (Some(2), Some(false), Some(2))
    );
    let (_, rest) = call(&sim, Method::GET, &format!("{branches}?limit=2&start=2"), Some(DEMO_TOKEN), None).await;
    assert_eq!((rest["size"].as_u64(), rest["isLastPage"].as_bool()), (Some(1), Some(true)));

    // A push moves the head a poller sees.
    push(&sim, "main", "Moved").await;
    let head = sim.datacenter.read().unwrap().branch(1, "main").unwrap().head.clone();
    let (_, main) = call(&sim, Method::GET, &format!("{branches}?filterText=main"), Some(DEMO_TOKEN), None).await;
    assert_eq!(main["values"][0]["latestCommit"].as_str(), Some(head.as_str()));

    sim.configure(|dc| {
        dc.tokens.push(Token {
            secret: "BBDC-no-repos".into(),
            owner: DEMO_USER.into(),
            project_read: true,
            repository_read: false,
            repository_admin: false,
        })
    });
    assert_eq!(call(&sim, Method::GET, branches, Some("BBDC-no-repos"), None).await.0, 401, "REPO_READ");
    let missing = branches.replace("my-repo", "no-such-repo");
    assert_eq!(call(&sim, Method::GET, &missing, Some(DEMO_TOKEN), None).await.0, 404);
}
