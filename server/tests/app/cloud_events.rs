//! Bitbucket Cloud's pull-request deliveries name the source's head by its
//! first 12 hex digits; their events reach the feed with all 40 once Cloud
//! has named the commit, or without a commit when it cannot, and never
//! before: a platform never sees a commit it cannot report a run on.

use bitbucket_simulator::{cloud::DEMO_PR_COMMIT, sender};
use bitgate_core::maintenance;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    cloud::{cloud_stack, cloud_world},
    events::{as_after_a_restore, at_least, events},
    webhooks::{post, Endpoint},
    world::World,
};

async fn drain(w: &World) {
    while maintenance::run_one(&w.app.services).await.unwrap() {}
}

/// How many events wait for their commit.
async fn held(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE held").fetch_one(&w.app.pool).await.unwrap()
}

/// `pullrequest:created` for the simulator's pull request 1 into `main`,
/// its source head named by `short`; Bitgate's answer.
async fn opened(e: &Endpoint, short: &str, request_id: &str) -> u16 {
    let mut created = sender::payload("pullrequest:created").unwrap();
    created["pullrequest"]["id"] = json!(1);
    created["pullrequest"]["source"]["branch"]["name"] = json!("feature/login");
    created["pullrequest"]["source"]["commit"]["hash"] = json!(short);
    let body = serde_json::to_vec(&created).unwrap();
    post(&e.url, "pullrequest:created", &body, Some(&e.secret), request_id).await.0
}

async fn outbound(w: &World, integration: &str) -> Vec<Value> {
    let path = format!("/api/v1/integrations/{integration}/outbound");
    let (_, page) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_cloud_pull_request_event_enters_the_feed_with_its_full_commit() {
    let (w, _simulator) = cloud_world().await;
    let (e, stack) = cloud_stack(&w).await;
    // Held events take their place at release: after a restore too.
    as_after_a_restore(&w.app.pool).await;
    let (_, start) = events(&w, "team reader", "").await;

    // A push names its commit in full: its event is readable at once.
    let push = serde_json::to_vec(&sender::payload("repo:push").unwrap()).unwrap();
    assert_eq!(post(&e.url, "repo:push", &push, Some(&e.secret), "push").await.0, 202);
    assert_eq!(opened(&e, &DEMO_PR_COMMIT[..12], "opened").await, 202);
    let (before, cursor) = at_least(&w, "team reader", &start, 1).await;
    assert_eq!(before.len(), 1, "only the push's: {before:?}");
    assert_eq!(before[0]["kind"], "tracked");
    assert_eq!(held(&w).await, 1, "the pull request's waits for its commit");

    drain(&w).await;
    assert_eq!(held(&w).await, 0);
    let (after, _) = at_least(&w, "team reader", &cursor, 1).await;
    assert_eq!(after.len(), 1, "found by a reader already past the push: {after:?}");
    let event = &after[0];
    assert_eq!((event["type"].as_str(), event["kind"].as_str()), (Some("run.requested"), Some("proposed")));
    assert_eq!(event["commit"], DEMO_PR_COMMIT);
    assert_eq!(event["pull_request"]["source_commit"], DEMO_PR_COMMIT);
    assert_eq!(event["pull_request"]["id"], 1);
    let (all, _) = at_least(&w, "team reader", &start, 2).await;
    assert_eq!(all.len(), 2, "each event once: {all:?}");

    // The platform reports a run on the commit the event named.
    let run = json!({"commit": event["commit"], "kind": "proposed", "state": "running", "pull_request_id": 1});
    let (status, answer) =
        w.call(w.token("team writer"), Method::PUT, &format!("/api/v1/stacks/{stack}/runs/r1"), Some(run)).await;
    assert!(status.is_success(), "{answer}");

    // The call is in the outbound log, on the integration's and the stack's.
    let log = outbound(&w, &e.id).await;
    let resolved = log.iter().find(|c| c["what"].as_str().is_some_and(|w| w.starts_with("full id of commit")));
    let resolved = resolved.unwrap_or_else(|| panic!("no resolution in {log:?}"));
    assert_eq!(resolved["path"], format!("/2.0/repositories/acme/website/commit/{}", &DEMO_PR_COMMIT[..12]));
    assert_eq!(resolved["status"], 200);
    assert_eq!(resolved["stack_id"], stack);
}

#[tokio::test]
async fn a_commit_cloud_cannot_name_lets_the_event_in_without_one() {
    let (w, _simulator) = cloud_world().await;
    let (e, _stack) = cloud_stack(&w).await;
    assert_eq!(opened(&e, "0123456789ab", "unknown").await, 202);
    // A retry of the same delivery makes nothing more.
    assert_eq!(opened(&e, "0123456789ab", "unknown").await, 200, "a duplicate");
    assert_eq!(held(&w).await, 1, "one event, held");
    drain(&w).await;
    let (items, _) = at_least(&w, "team reader", "", 1).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["commit"], Value::Null);
    assert_eq!(items[0]["pull_request"]["source_commit"], Value::Null);
    assert_eq!(items[0]["pull_request"]["source_branch"], "feature/login");
    let log = outbound(&w, &e.id).await;
    assert_eq!(log.iter().filter(|c| c["status"] == 404).count(), 1, "asked once, not retried: {log:?}");
}
