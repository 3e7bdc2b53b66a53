//! Build statuses on Bitbucket Data Center (the simulator): reported runs
//! become statuses in each state's word, under pinned keys, through the
//! current endpoint or the legacy one; sent durably (retries after 503 and
//! 429, a 401 holding the queue until a test passes), never an older state
//! after a newer one; the three `vcs_checks` modes; the outbound log.

use bitbucket_simulator::{datacenter::builds::BuildStatus, Fault, Simulator};
use bitgate_core::maintenance;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    webhooks::endpoint,
    world::{world_with_bitbucket, World},
};

const COMMIT: &str = "823b2230a56056231c9425d63758fa87078a66b4";

/// Runs every job that is due, as the workers would.
async fn drain(w: &World) {
    while maintenance::run_one(&w.app.services).await.unwrap() {}
}

/// Time passes: every job waiting for a retry or held is due.
async fn later(w: &World) {
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind LIKE 'outbound.%'").execute(&w.app.pool).await.unwrap();
}

async fn report(w: &World, stack: &str, key: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/stacks/{stack}/runs/{key}");
    let (status, run) = w.call(w.token("team writer"), Method::PUT, &path, Some(body)).await;
    (status.as_u16(), run)
}

fn run(state: &str) -> Value {
    json!({"commit": COMMIT, "kind": "tracked", "state": state, "url": "https://ci.example.com/runs/1",
           "title": "Deploy web"})
}

fn statuses(simulator: &Simulator) -> Vec<BuildStatus> {
    simulator.datacenter.read().unwrap().build_statuses.clone()
}

fn state_of(simulator: &Simulator, key: &str) -> Option<String> {
    statuses(simulator).into_iter().find(|s| s.key == key).map(|s| s.state)
}

/// The integration's calls that sent build statuses (its hooks' are
/// `hooks.rs`'s).
async fn outbound(w: &World, integration: &str) -> Vec<Value> {
    let path = format!("/api/v1/integrations/{integration}/outbound");
    let (status, page) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{page}");
    let calls = page["items"].as_array().unwrap();
    calls.iter().filter(|c| c["what"].as_str().unwrap().starts_with("build status")).cloned().collect()
}

async fn set_options(w: &World, integration: &str, options: Value) {
    let path = format!("/api/v1/integrations/{integration}");
    let (status, answer) = w.call(w.token("team admin"), Method::PATCH, &path, Some(json!({"options": options}))).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn each_run_state_reaches_data_center_in_its_word_under_a_pinned_key() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let key = format!("bg/{}/tracked", base32(&stack));

    for (state, word) in [("queued", "INPROGRESS"), ("running", "INPROGRESS"), ("succeeded", "SUCCESSFUL")] {
        let (status, answer) = report(&w, &stack, "r1", run(state)).await;
        assert!(status == 200 || status == 201, "{answer}");
        drain(&w).await;
        assert_eq!(state_of(&simulator, &key).as_deref(), Some(word), "{state}");
    }
    let posted = statuses(&simulator).into_iter().find(|s| s.key == key).unwrap();
    assert_eq!(posted.name, "Bitgate: web (tracked)");
    assert_eq!(posted.ref_name.as_deref(), Some("refs/heads/main"));
    assert_eq!(posted.url, "https://ci.example.com/runs/1", "status_details: the run's page");
    assert_eq!(posted.description, "Succeeded: Deploy web");
    assert_eq!((posted.repository_id, posted.commit.as_str()), (Some(1), COMMIT));
    // The run shows its status, sent.
    let (_, shown) =
        w.call(w.token("team reader"), Method::GET, &format!("/api/v1/stacks/{stack}/runs/r1"), None).await;
    assert_eq!(shown["statuses"], json!([{"key": key, "state": "SUCCESSFUL", "sent": "sent", "message": null}]));

    // Failed and stopped (a later run of the stack speaks for it).
    report(&w, &stack, "r2", run("failed")).await;
    drain(&w).await;
    assert_eq!(state_of(&simulator, &key).as_deref(), Some("FAILED"));
    report(&w, &stack, "r3", run("stopped")).await;
    drain(&w).await;
    assert_eq!(state_of(&simulator, &key).as_deref(), Some("CANCELLED"), "Data Center's word for stopped");

    // Without status_details, the link is the stack's page in Bitgate.
    set_options(&w, &e.id, json!({"status_details": false})).await;
    report(&w, &stack, "r4", run("running")).await;
    drain(&w).await;
    let posted = statuses(&simulator).into_iter().find(|s| s.key == key).unwrap();
    assert_eq!(
        posted.url,
        format!("{}/stacks/{stack}", w.app.services.config.public_url.as_str().trim_end_matches('/'))
    );

    // The log has every call (queued then running is one status, sent
    // once), and no secret.
    let log = outbound(&w, &e.id).await;
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(log.iter().all(|c| c["status"] == 204 && c["ok"] == true && c["method"] == "POST"));
    assert!(log[0]["path"].as_str().unwrap().ends_with(&format!("/commits/{COMMIT}/builds")));
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(bitbucket_simulator::datacenter::DEMO_TOKEN));
    let (_, of_stack) =
        w.call(w.token("team reader"), Method::GET, &format!("/api/v1/stacks/{stack}/outbound"), None).await;
    assert_eq!(of_stack["items"].as_array().unwrap().len(), 5);
    let (status, _) =
        w.call(w.token("team reader"), Method::GET, &format!("/api/v1/integrations/{}/outbound", e.id), None).await;
    assert_eq!(status, 403, "the integration's log is its admins'");
}

/// The key's middle: the stack id as 26 base32 characters (what
/// `statuses::individual_key` pins).
fn base32(stack: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let value = uuid::Uuid::parse_str(stack).unwrap().as_u128();
    (0..26).rev().map(|group| ALPHABET[((value >> (group * 5)) & 31) as usize] as char).collect()
}

#[tokio::test]
async fn a_server_without_the_current_endpoint_gets_the_legacy_one() {
    let (w, simulator) = world_with_bitbucket().await;
    simulator.configure(|dc| dc.builds_endpoint = false);
    let (e, stack) = endpoint(&w, &simulator.url).await;
    report(&w, &stack, "r1", run("stopped")).await;
    drain(&w).await;
    let posted = statuses(&simulator);
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].repository_id, None, "the legacy endpoint names no repository");
    assert_eq!(posted[0].state, "FAILED", "the legacy endpoint has no CANCELLED");
    let log = outbound(&w, &e.id).await;
    let answers: Vec<_> = log.iter().rev().map(|c| (c["status"].as_i64(), c["path"].as_str().unwrap())).collect();
    assert_eq!(answers[0].0, Some(404));
    assert_eq!(answers[1], (Some(204), format!("/rest/build-status/1.0/commits/{COMMIT}").as_str()));
}

#[tokio::test]
async fn unavailable_and_rate_limited_answers_are_retried_as_bitbucket_asks() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    drain(&w).await; // the repository's hook first: the faults are for the status
    simulator.configure(|dc| {
        dc.faults.push_back(Fault::Unavailable);
        dc.faults.push_back(Fault::RateLimited { retry_after_seconds: Some(120) });
    });
    report(&w, &stack, "r1", run("succeeded")).await;
    let waits = || async {
        sqlx::query_scalar::<_, f64>(
            "SELECT extract(epoch FROM run_at - now())::float8 FROM jobs WHERE kind = 'outbound.build_status'",
        )
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
    };
    drain(&w).await;
    let wait = waits().await;
    assert!((5.0..=11.0).contains(&wait), "a backoff after 503: {wait}");
    assert!(statuses(&simulator).is_empty());
    later(&w).await;
    drain(&w).await;
    let wait = waits().await;
    assert!((110.0..=121.0).contains(&wait), "Retry-After honoured: {wait}");
    later(&w).await;
    drain(&w).await;
    assert_eq!(state_of(&simulator, &format!("bg/{}/tracked", base32(&stack))).as_deref(), Some("SUCCESSFUL"));
    let log = outbound(&w, &e.id).await;
    let answers: Vec<_> = log.iter().rev().map(|c| (c["status"].as_i64(), c["attempt"].as_i64())).collect();
    assert_eq!(answers, [(Some(503), Some(1)), (Some(429), Some(2)), (Some(204), Some(3))]);
    let (_, failed) = w
        .call(
            w.token("team admin"),
            Method::GET,
            &format!("/api/v1/integrations/{}/outbound?status=failed", e.id),
            None,
        )
        .await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_credential_holds_the_queue_until_a_test_passes() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    simulator.configure(|dc| dc.tokens[0].repository_read = false);
    report(&w, &stack, "r1", run("failed")).await;
    drain(&w).await;
    let (_, integration) =
        w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations/{}", e.id), None).await;
    assert_eq!(integration["health"]["state"], "error", "{integration}");
    assert!(integration["health"]["message"].as_str().unwrap().contains("REPO_READ"), "{integration}");
    // Held: not retried while in error, whatever the time.
    later(&w).await;
    drain(&w).await;
    assert!(statuses(&simulator).is_empty());
    let calls = outbound(&w, &e.id).await.len();
    assert_eq!(calls, 1, "one refused call, then held");
    // Fixed in Bitbucket, tested: the queue goes out.
    simulator.configure(|dc| dc.tokens[0].repository_read = true);
    let (status, tested) =
        w.call(w.token("team admin"), Method::POST, &format!("/api/v1/integrations/{}/test", e.id), None).await;
    assert_eq!((status.as_u16(), tested["health"]["state"].as_str()), (200, Some("connected")), "{tested}");
    drain(&w).await;
    assert_eq!(state_of(&simulator, &format!("bg/{}/tracked", base32(&stack))).as_deref(), Some("FAILED"));
}

#[tokio::test]
async fn only_the_latest_state_is_sent_and_a_late_step_back_never_is() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    // Queued, running and succeeded reported before the job runs: one call, the latest.
    for state in ["queued", "running", "succeeded"] {
        report(&w, &stack, "r1", run(state)).await;
    }
    drain(&w).await;
    assert_eq!(outbound(&w, &e.id).await.len(), 1);
    assert_eq!(state_of(&simulator, &format!("bg/{}/tracked", base32(&stack))).as_deref(), Some("SUCCESSFUL"));
    // A late running: refused, and nothing goes out.
    let (status, _) = report(&w, &stack, "r1", run("running")).await;
    assert_eq!(status, 409);
    // The same report again: nothing either.
    let (status, _) = report(&w, &stack, "r1", run("succeeded")).await;
    assert_eq!(status, 200);
    drain(&w).await;
    assert_eq!(outbound(&w, &e.id).await.len(), 1);
}

#[tokio::test]
async fn vcs_checks_posts_each_stack_the_aggregate_or_both() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, web) = endpoint(&w, &simulator.url).await;
    let mut stacks = vec![web];
    for name in ["api", "db"] {
        let body = json!({"name": name, "space_id": w.team, "integration_id": e.id, "repository": "OPS/my-repo",
                          "branch": "main"});
        let (status, stack) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(body)).await;
        assert_eq!(status, 201, "{stack}");
        stacks.push(stack["id"].as_str().unwrap().to_owned());
    }
    set_options(&w, &e.id, json!({"vcs_checks": "aggregated"})).await;
    report(&w, &stacks[0], "a1", run("succeeded")).await;
    report(&w, &stacks[1], "b1", run("failed")).await;
    report(&w, &stacks[2], "c1", run("running")).await;
    drain(&w).await;
    assert_eq!(statuses(&simulator).len(), 1, "one status for the three stacks");
    assert_eq!(state_of(&simulator, "bitgate/tracked").as_deref(), Some("FAILED"));
    // The failed stack runs again and passes; the last finishes.
    report(&w, &stacks[1], "b2", run("succeeded")).await;
    drain(&w).await;
    assert_eq!(state_of(&simulator, "bitgate/tracked").as_deref(), Some("INPROGRESS"), "one still runs");
    report(&w, &stacks[2], "c1", run("succeeded")).await;
    drain(&w).await;
    assert_eq!(state_of(&simulator, "bitgate/tracked").as_deref(), Some("SUCCESSFUL"));
    let name = statuses(&simulator).into_iter().find(|s| s.key == "bitgate/tracked").unwrap().name;
    assert_eq!(name, "Bitgate: all stacks (tracked)");

    // Individual: one per stack; all: both.
    set_options(&w, &e.id, json!({"vcs_checks": "individual"})).await;
    report(&w, &stacks[0], "a2", run("failed")).await;
    drain(&w).await;
    assert_eq!(state_of(&simulator, &format!("bg/{}/tracked", base32(&stacks[0]))).as_deref(), Some("FAILED"));
    assert_eq!(state_of(&simulator, "bitgate/tracked").as_deref(), Some("SUCCESSFUL"), "left as it was");
    set_options(&w, &e.id, json!({"vcs_checks": "all"})).await;
    report(&w, &stacks[0], "a3", run("succeeded")).await;
    report(&w, &stacks[1], "b3", run("failed")).await;
    drain(&w).await;
    assert_eq!(state_of(&simulator, &format!("bg/{}/tracked", base32(&stacks[0]))).as_deref(), Some("SUCCESSFUL"));
    assert_eq!(state_of(&simulator, &format!("bg/{}/tracked", base32(&stacks[1]))).as_deref(), Some("FAILED"));
    assert_eq!(state_of(&simulator, "bitgate/tracked").as_deref(), Some("FAILED"));
    let (_, shown) =
        w.call(w.token("team reader"), Method::GET, &format!("/api/v1/stacks/{}/runs/b3", stacks[1]), None).await;
    let keys: Vec<_> = shown["statuses"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [format!("bg/{}/tracked", base32(&stacks[1])).as_str(), "bitgate/tracked"]);
}

#[tokio::test]
async fn with_commit_status_off_nothing_is_sent() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    set_options(&w, &e.id, json!({"commit_status": false})).await;
    let (_, shown) = report(&w, &stack, "r1", run("failed")).await;
    assert_eq!(shown["statuses"], json!([]));
    drain(&w).await;
    assert!(statuses(&simulator).is_empty());
    assert!(outbound(&w, &e.id).await.is_empty());
}

#[tokio::test]
async fn the_connection_test_says_whether_statuses_can_be_posted_to_the_stacks_repositories() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let path = format!("/api/v1/integrations/{}/test", e.id);
    let tested = w.call(w.token("team admin"), Method::POST, &path, None).await.1;
    let line = tested["checks"].as_array().unwrap().iter().find(|c| c["name"] == "statuses").cloned();
    assert_eq!(
        line,
        Some(json!({"name": "statuses", "ok": true, "warning": false,
                    "message": "The token can post build statuses to the 1 repository its stacks use."})),
        "{tested}"
    );
    assert_eq!(tested["health"]["state"], "connected");

    // The stack's repository is gone from Bitbucket (or out of the token's reach).
    simulator.datacenter.write().unwrap().repositories.retain(|r| r.slug != "my-repo");
    let tested = w.call(w.token("team admin"), Method::POST, &path, None).await.1;
    let line = tested["checks"].as_array().unwrap().iter().find(|c| c["name"] == "statuses").cloned().unwrap();
    assert_eq!(line["ok"], false, "{tested}");
    assert!(
        line["message"].as_str().unwrap().starts_with("The token cannot read OPS/my-repo (answered 404)"),
        "{line}"
    );
    assert_eq!(tested["health"]["state"], "error");
}

#[tokio::test]
async fn the_outbound_log_is_kept_as_long_as_deliveries() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    for key in ["r1", "r2"] {
        report(&w, &stack, key, json!({"commit": COMMIT, "kind": "tracked", "state": "running", "title": key})).await;
        drain(&w).await;
    }
    assert_eq!(outbound(&w, &e.id).await.len(), 2);
    sqlx::query(
        "UPDATE outbound_calls SET at = now() - interval '31 days'
         WHERE at = (SELECT min(at) FROM outbound_calls WHERE what LIKE 'build status%')",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    maintenance_retention(&w).await;
    assert_eq!(outbound(&w, &e.id).await.len(), 1, "the month-old call is gone, the other kept");
}

/// The retention job, as the scheduler runs it.
async fn maintenance_retention(w: &World) {
    sqlx::query(
        "INSERT INTO jobs (kind, unique_key) VALUES ('webhooks.retention', 'webhooks.retention')
         ON CONFLICT (unique_key) DO UPDATE SET run_at = now(), locked_until = NULL",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    drain(w).await;
}
