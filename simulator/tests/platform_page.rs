//! The demo platform's page starts a follower inside the simulator, which
//! reads Bitgate's events feed (here a stand-in for it) and reports runs;
//! in the simulator, a commit whose message says `fail` fails its run.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, put},
    Json, Router,
};
use bitbucket_simulator::{platform_page, DataCenter, Simulator, Transport};
use serde::Deserialize;
use serde_json::{json, Value};

const TOKEN: &str = "bg_demo_token";

/// A stand-in for Bitgate: a feed with one requested run of `commit` on
/// OPS/my-repo's main after the first cursor, and the reports it receives.
#[derive(Clone)]
struct Bitgate {
    commit: String,
    reports: Arc<Mutex<Vec<(String, Value)>>>,
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<String>,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn events(State(bitgate): State<Bitgate>, headers: HeaderMap, Query(query): Query<FeedQuery>) -> Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": "unauthenticated"}}))).into_response();
    }
    match query.after.as_deref().unwrap_or_default() {
        // The feed's end when the follower starts.
        "" => Json(json!({"items": [], "next_cursor": "1.0"})).into_response(),
        "1.0" => Json(json!({"items": [{
            "id": "e1", "type": "run.requested", "kind": "tracked", "stack_id": "s1",
            "repository": {"id": "1", "name": "OPS/my-repo"}, "branch": "main", "commit": bitgate.commit,
            "pull_request": null
        }], "next_cursor": "2.0"}))
        .into_response(),
        _ => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Json(json!({"items": [], "next_cursor": "2.0"})).into_response()
        }
    }
}

async fn report(
    State(bitgate): State<Bitgate>,
    headers: HeaderMap,
    Path((stack, run)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> StatusCode {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED;
    }
    bitgate.reports.lock().unwrap().push((format!("{stack}/{run}"), body));
    StatusCode::OK
}

async fn bitgate(commit: &str) -> (String, Bitgate) {
    let state = Bitgate { commit: commit.to_owned(), reports: Arc::default() };
    let app = Router::new()
        .route("/api/v1/events", get(events))
        .route("/api/v1/stacks/{stack}/runs/{run}", put(report))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

async fn submit(sim: &Simulator, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client.post(format!("{}{path}", sim.url)).form(fields).send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// Waits until `done` holds of the follower's progress (20 s at most).
async fn until(sim: &Simulator, what: &str, done: impl Fn(&bitbucket_simulator::platform::Progress) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let progress = platform_page::progress(&sim.platform);
        if progress.as_ref().is_some_and(&done) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {progress:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_platform_page_follows_bitgate_and_fails_a_run_whose_commit_message_says_so() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let pushed = [("branch", "main"), ("message", "Make it FAIL")];
    submit(&sim, "/projects/OPS/repos/my-repo/push", &pushed).await;
    let commit = sim.datacenter.read().unwrap().branch(1, "main").unwrap().head.clone();
    let (url, bitgate) = bitgate(&commit).await;
    sim.set_bitgate_url(&url);

    let form = reqwest::get(format!("{}{}", sim.url, platform_page::PATH)).await.unwrap().text().await.unwrap();
    assert!(form.contains("not of Bitbucket") && form.contains("Not running"), "{form}");
    assert!(form.contains(&format!("value=\"{url}\"")), "the URL the simulator was started with: {form}");
    let (status, refused) = submit(&sim, platform_page::PATH, &[("bitgate_url", "nowhere"), ("token", "")]).await;
    assert!(status == 400 && refused.contains("Enter Bitgate's address") && refused.contains("Paste an API token"));
    assert!(platform_page::progress(&sim.platform).is_none(), "a refused form starts nothing");

    // A wrong token: the page says Bitgate refused it.
    let (status, _) = submit(&sim, platform_page::PATH, &[("bitgate_url", &url), ("token", "wrong")]).await;
    assert_eq!(status, 303);
    until(&sim, "the refusal", |p| p.last_error.as_ref().is_some_and(|(_, e)| e.contains("refused the token (401)")))
        .await;
    let shown = reqwest::get(format!("{}{}", sim.url, platform_page::PATH)).await.unwrap().text().await.unwrap();
    assert!(shown.contains("Not reaching") && shown.contains("refused the token (401)"), "{shown}");

    // The right one replaces it; the run of the commit saying FAIL fails.
    submit(&sim, platform_page::PATH, &[("bitgate_url", &url), ("token", TOKEN)]).await;
    until(&sim, "following", |p| p.following_since.is_some()).await;
    until(&sim, "the run reported", |p| p.runs_reported == 1).await;
    let reports = bitgate.reports.lock().unwrap().clone();
    let states: Vec<&str> = reports.iter().map(|(_, body)| body["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["queued", "running", "failed"]);
    assert_eq!(reports[0].0, "s1/demo-e1");
    assert_eq!(reports[2].1["commit"].as_str(), Some(commit.as_str()));
    assert!(reports[2].1["summary"].as_str().unwrap().contains("commit message"), "{reports:?}");
    let shown = reqwest::get(format!("{}{}", sim.url, platform_page::PATH)).await.unwrap().text().await.unwrap();
    assert!(shown.contains("Following") && shown.contains("Runs reported: 1."), "{shown}");
}
