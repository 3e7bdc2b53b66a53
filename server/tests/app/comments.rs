//! Pull-request comments on Bitbucket Data Center (the simulator): one
//! comment per (pull request, stack), created at the first failure and
//! edited in place (re-read on 409), cut to fit, silent for a stale commit
//! or a closed pull request, the `pr_comments` option; and outbound work
//! that survives a process dying mid-call without a second comment.

use bitbucket_simulator::{
    datacenter::pull_requests::{Comment, PullRequest},
    sender, Simulator,
};
use bitgate_core::{jobs, maintenance};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    webhooks::{endpoint, post, Endpoint},
    world::{world_with_bitbucket, World},
};

/// The sender's pull request: `feature/thing` into `main`, at this commit.
const PR: i64 = 7;
const HEAD: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const MOVED: &str = "b2c3d4e5f60718293a4b5c6d7e8f90123456789a";

async fn drain(w: &World) {
    while maintenance::run_one(&w.app.services).await.unwrap() {}
}

/// A Data Center world whose stack `web` (on OPS/my-repo, `main`) knows
/// pull request 7 (the simulator's, named by the sender's deliveries) from
/// its `pr:opened` delivery.
async fn world_with_pull_request() -> (World, Simulator, Endpoint, String) {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    assert!(simulator.datacenter.read().unwrap().pull_requests.contains(&PullRequest::of_sender()));
    deliver(&e, "pr:opened", sender::payload("pr:opened").unwrap(), "opened").await;
    (w, simulator, e, stack)
}

async fn deliver(e: &Endpoint, event: &str, body: Value, request_id: &str) {
    let body = serde_json::to_vec(&body).unwrap();
    let (status, answer) = post(&e.url, event, &body, Some(&e.secret), request_id).await;
    assert_eq!(status, 202, "{answer}");
}

async fn report(w: &World, stack: &str, key: &str, state: &str, commit: &str, summary: Option<&str>) -> Value {
    let body = json!({"commit": commit, "kind": "proposed", "state": state, "pull_request_id": PR,
                      "url": format!("https://ci.example.com/runs/{key}"), "title": format!("Plan {key}"),
                      "summary": summary});
    let path = format!("/api/v1/stacks/{stack}/runs/{key}");
    let (status, run) = w.call(w.token("team writer"), Method::PUT, &path, Some(body)).await;
    assert!(status == 200 || status == 201, "{run}");
    run
}

fn comments(simulator: &Simulator) -> Vec<Comment> {
    simulator.datacenter.read().unwrap().comments.iter().filter(|c| c.pull_request_id == PR as u64).cloned().collect()
}

async fn set_pr_comments(w: &World, integration: &str, value: &str) {
    let path = format!("/api/v1/integrations/{integration}");
    let body = json!({"options": {"pr_comments": value}});
    let (status, answer) = w.call(w.token("team admin"), Method::PATCH, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
}

async fn outbound(w: &World, integration: &str) -> Vec<(String, String, i64)> {
    let path = format!("/api/v1/integrations/{integration}/outbound");
    let (status, page) = w.call(w.token("team admin"), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|c| c["what"].as_str().unwrap().starts_with("comment"))
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                c["status"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

async fn run_view(w: &World, stack: &str, key: &str) -> Value {
    let path = format!("/api/v1/stacks/{stack}/runs/{key}");
    w.call(w.token("team reader"), Method::GET, &path, None).await.1
}

#[tokio::test]
async fn one_comment_per_pull_request_and_stack_follows_failures_and_the_fix() {
    let (w, simulator, e, stack) = world_with_pull_request().await;

    // A success first: with `failures` (the default) nothing is posted.
    report(&w, &stack, "p0", "succeeded", HEAD, None).await;
    drain(&w).await;
    assert!(comments(&simulator).is_empty());
    assert_eq!(run_view(&w, &stack, "p0").await["comment"], Value::Null);

    // Three failed runs: one comment, created then edited each time.
    for (n, key) in ["p1", "p2", "p3"].into_iter().enumerate() {
        report(&w, &stack, key, "failed", HEAD, Some(&format!("Error in {key}"))).await;
        drain(&w).await;
        let posted = comments(&simulator);
        assert_eq!(posted.len(), 1, "one comment after {key}: {posted:?}");
        assert_eq!(posted[0].version, n as u64, "edited in place");
        assert!(posted[0].text.starts_with("**Bitgate: web**\n\n❌ Failed: run [Plan "), "{}", posted[0].text);
        assert!(posted[0].text.contains(&format!("(https://ci.example.com/runs/{key}) on commit `a1b2c3d4e5f6`")));
        assert!(posted[0].text.contains(&format!("Error in {key}")), "carries the summary");
    }
    assert_eq!(
        run_view(&w, &stack, "p3").await["comment"],
        json!({"pull_request_id": PR, "sent": "sent", "message": null})
    );

    // A run in progress, then its success: the comment says the failure is fixed.
    report(&w, &stack, "p4", "running", HEAD, None).await;
    drain(&w).await;
    assert!(comments(&simulator)[0].text.contains("⏳ Running"));
    report(&w, &stack, "p4", "succeeded", HEAD, Some("All good")).await;
    drain(&w).await;
    let posted = comments(&simulator);
    assert_eq!(posted.len(), 1);
    assert!(posted[0].text.contains("✅ Succeeded: the earlier failure is fixed"), "{}", posted[0].text);
    let stack_page = format!("{}/stacks/{stack}", w.app.services.config.public_url.as_str().trim_end_matches('/'));
    assert!(posted[0].text.ends_with(&format!("[web]({stack_page}).")), "{}", posted[0].text);

    // The same report again sends nothing.
    let calls = outbound(&w, &e.id).await.len();
    report(&w, &stack, "p4", "succeeded", HEAD, Some("All good")).await;
    drain(&w).await;
    assert_eq!(outbound(&w, &e.id).await.len(), calls);

    let log = outbound(&w, &e.id).await;
    let base = "/rest/api/1.0/projects/OPS/repos/my-repo/pull-requests/7/comments";
    assert_eq!(log[0], ("POST".into(), base.into(), 201), "{log:?}");
    let edits = format!("{base}/{}", posted[0].id);
    assert_eq!(log.len(), 5, "created, then edited by p2, p3 and p4's two states: {log:?}");
    assert!(
        log[1..].iter().all(|(method, path, status)| method == "PUT" && path == &edits && *status == 200),
        "{log:?}"
    );

    // The stack's page shows the comment under its runs.
    let page = w.browser("team reader").await.get(&format!("/stacks/{stack}")).await.text().await.unwrap();
    assert!(page.contains("Comment on pull request #7"), "{page}");
}

#[tokio::test]
async fn an_edit_on_an_old_version_reads_the_comment_again() {
    let (w, simulator, _, stack) = world_with_pull_request().await;
    report(&w, &stack, "p1", "failed", HEAD, None).await;
    drain(&w).await;
    // Someone (or a lost answer) moved the comment's version on.
    {
        let mut instance = simulator.datacenter.write().unwrap();
        let comment = instance.comments.iter_mut().find(|c| c.pull_request_id == PR as u64).unwrap();
        comment.version = 5;
    }
    report(&w, &stack, "p2", "failed", HEAD, Some("Second try")).await;
    drain(&w).await;
    let posted = comments(&simulator);
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].version, 6, "edited on the version read again");
    assert!(posted[0].text.contains("Second try"));
    assert_eq!(run_view(&w, &stack, "p2").await["comment"]["sent"], "sent");
}

#[tokio::test]
async fn a_long_summary_is_cut_with_a_link_to_the_rest() {
    let (w, simulator, _, stack) = world_with_pull_request().await;
    let summary = "Error: resource failed\n".repeat(3_000);
    report(&w, &stack, "p1", "failed", HEAD, Some(&summary)).await;
    drain(&w).await;
    let posted = comments(&simulator);
    assert_eq!(posted.len(), 1, "Data Center took it: {:?}", run_view(&w, &stack, "p1").await["comment"]);
    assert_eq!(posted[0].text.chars().count(), 32_000);
    assert!(posted[0].text.contains("… The summary is cut here: [read it whole](https://ci.example.com/runs/p1)."));
}

#[tokio::test]
async fn nothing_is_posted_for_a_stale_commit_or_a_closed_pull_request() {
    let (w, simulator, e, stack) = world_with_pull_request().await;

    // The source moved on: a failure on the old head says nothing.
    let mut moved = sender::payload("pr:from_ref_updated").unwrap();
    moved["pullRequest"]["fromRef"]["latestCommit"] = json!(MOVED);
    deliver(&e, "pr:from_ref_updated", moved, "moved").await;
    report(&w, &stack, "old", "failed", HEAD, None).await;
    drain(&w).await;
    assert!(comments(&simulator).is_empty());
    assert_eq!(run_view(&w, &stack, "old").await["comment"], Value::Null);

    // A failure on the new head is queued; the pull request merges before
    // it is sent: it is skipped, and says why.
    report(&w, &stack, "new", "failed", MOVED, None).await;
    deliver(&e, "pr:merged", sender::payload("pr:merged").unwrap(), "merged").await;
    drain(&w).await;
    assert!(comments(&simulator).is_empty());
    let comment = run_view(&w, &stack, "new").await["comment"].clone();
    assert_eq!(comment["sent"], "skipped", "{comment}");
    assert_eq!(comment["message"], "Not posted: the pull request is closed.");

    // Once closed, a report makes no comment at all.
    report(&w, &stack, "late", "failed", MOVED, None).await;
    drain(&w).await;
    assert!(comments(&simulator).is_empty());
    let (queued,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs WHERE kind = 'outbound.pr_comment'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn the_option_decides_whether_and_when_a_comment_is_posted() {
    let (w, simulator, e, stack) = world_with_pull_request().await;
    set_pr_comments(&w, &e.id, "off").await;
    report(&w, &stack, "p1", "failed", HEAD, None).await;
    drain(&w).await;
    assert!(comments(&simulator).is_empty(), "off: never");

    set_pr_comments(&w, &e.id, "always").await;
    report(&w, &stack, "p2", "queued", HEAD, None).await;
    drain(&w).await;
    let posted = comments(&simulator);
    assert_eq!(posted.len(), 1, "always: from the first run");
    assert!(posted[0].text.contains("⏳ Queued"), "{}", posted[0].text);
}

#[tokio::test]
async fn a_process_dying_mid_call_loses_nothing_and_posts_no_second_comment() {
    let (w, simulator, _, stack) = world_with_pull_request().await;

    // A build status job taken by a process that died: its lease runs out
    // and another process sends it.
    let body = json!({"commit": HEAD, "kind": "tracked", "state": "running"});
    let (status, _) =
        w.call(w.token("team writer"), Method::PUT, &format!("/api/v1/stacks/{stack}/runs/t1"), Some(body)).await;
    assert_eq!(status, 201);
    let before = simulator.datacenter.read().unwrap().build_statuses.len();
    // Taken as a worker takes it (a lease), by a process that dies at once.
    let taken = sqlx::query(&format!(
        "UPDATE jobs SET attempts = attempts + 1, locked_until = now() + make_interval(secs => {})
         WHERE kind = 'outbound.build_status'",
        jobs::LEASE.as_secs()
    ))
    .execute(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(taken.rows_affected(), 1);
    drain(&w).await;
    assert_eq!(simulator.datacenter.read().unwrap().build_statuses.len(), before, "leased: nobody takes it yet");
    sqlx::query("UPDATE jobs SET locked_until = now() - interval '1 second' WHERE kind = 'outbound.build_status'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    drain(&w).await;
    let statuses = simulator.datacenter.read().unwrap().build_statuses.clone();
    assert_eq!(statuses.len(), before + 1, "sent by the next process, once");
    assert_eq!(statuses.last().unwrap().state, "INPROGRESS");

    // A comment created, and the process died before recording its id.
    report(&w, &stack, "p1", "failed", HEAD, None).await;
    drain(&w).await;
    assert_eq!(comments(&simulator).len(), 1);
    sqlx::query("UPDATE pull_request_comments SET remote_id = NULL, remote_version = NULL")
        .execute(&w.app.pool)
        .await
        .unwrap();
    report(&w, &stack, "p2", "failed", HEAD, Some("Again")).await;
    drain(&w).await;
    let posted = comments(&simulator);
    assert_eq!(posted.len(), 1, "found again, not posted twice: {posted:?}");
    assert!(posted[0].text.contains("Again"), "and edited: {}", posted[0].text);
}

#[tokio::test]
async fn on_cloud_the_status_and_the_comment_go_through_its_api() {
    use bitbucket_simulator::cloud::{DEMO_PR_COMMIT, DEMO_PULL_REQUEST};

    let (w, simulator) = crate::cloud::cloud_world().await;
    let (e, stack) = crate::cloud::cloud_stack(&w).await;
    let id = e.id.clone();
    let (_, tested) =
        w.call(w.token("team admin"), Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    let line = tested["checks"].as_array().unwrap().iter().find(|c| c["name"] == "statuses").cloned();
    assert_eq!(line.map(|l| l["ok"].clone()), Some(json!(true)), "{tested}");
    // Cloud names the source's head by 12 hex digits; the event, and so the platform, has all 40.
    let mut created = sender::payload("pullrequest:created").unwrap();
    created["pullrequest"]["id"] = json!(DEMO_PULL_REQUEST);
    created["pullrequest"]["source"]["branch"]["name"] = json!("feature/login");
    created["pullrequest"]["source"]["commit"]["hash"] = json!(&DEMO_PR_COMMIT[..12]);
    deliver(&e, "pullrequest:created", created, "created").await;

    let report = |key: &'static str, state: &'static str| {
        let body = json!({"commit": DEMO_PR_COMMIT, "kind": "proposed", "state": state,
                          "pull_request_id": DEMO_PULL_REQUEST, "url": format!("https://ci.example.com/runs/{key}")});
        let (w, stack) = (&w, &stack);
        async move {
            let path = format!("/api/v1/stacks/{stack}/runs/{key}");
            let (status, run) = w.call(w.token("team writer"), Method::PUT, &path, Some(body)).await;
            assert!(status == 200 || status == 201, "{run}");
        }
    };
    report("c1", "failed").await;
    drain(&w).await;
    report("c2", "stopped").await;
    drain(&w).await;

    let cloud = simulator.cloud.read().unwrap();
    let statuses: Vec<_> = cloud.statuses.iter().filter(|s| s.commit == DEMO_PR_COMMIT).collect();
    assert_eq!(statuses.len(), 1, "one key, updated: {statuses:?}");
    assert_eq!(statuses[0].state, "STOPPED", "Cloud's word for stopped");
    assert_eq!(statuses[0].refname.as_deref(), Some("feature/login"), "the bare source branch");
    assert!(statuses[0].key.len() <= 40 && statuses[0].key.ends_with("/proposed"), "{}", statuses[0].key);
    let comments: Vec<_> = cloud.comments.iter().filter(|c| c.pull_request == DEMO_PULL_REQUEST).collect();
    assert_eq!(comments.len(), 1, "created at the failure, edited since: {comments:?}");
    assert!(comments[0].raw.starts_with("**Bitgate: site**\n\n⏹ Stopped: run [c2]"), "{}", comments[0].raw);
}

#[tokio::test]
async fn the_simulated_platform_closes_the_loop_from_a_delivery_to_bitbucket() {
    use bitbucket_simulator::platform::Platform;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let (_, head) = w.call(w.token("team writer"), Method::GET, "/api/v1/events", None).await;
    let platform = Platform {
        bitgate_url: w.app.base.clone(),
        token: w.token("team writer").to_owned(),
        stack: Some(stack.clone()),
        after: head["next_cursor"].as_str().map(str::to_owned),
        step: std::time::Duration::from_millis(20),
    };
    let following = tokio::spawn(async move { platform.follow().await });

    let mut opened = sender::payload("pr:opened").unwrap();
    opened["pullRequest"]["title"] = json!("This will fail");
    deliver(&e, "pr:opened", opened, "opened").await;
    // The platform reports queued, running, failed; the workers send.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        drain(&w).await;
        let posted = comments(&simulator);
        if posted.first().is_some_and(|c| c.text.contains("❌ Failed")) {
            assert!(posted[0].text.contains("Demo run of pull request #7"), "{}", posted[0].text);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failed comment yet: {posted:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let statuses = simulator.datacenter.read().unwrap().build_statuses.clone();
    assert!(
        statuses.iter().any(|s| s.commit == HEAD && s.state == "FAILED" && s.key.ends_with("/proposed")),
        "{statuses:?}"
    );
    following.abort();
}

#[tokio::test]
async fn a_pull_request_from_a_fork_gets_its_status_and_comment_in_the_target_repository() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    simulator.configure(|instance| {
        let pr = instance.pull_requests.iter_mut().find(|pr| pr.id == PR as u64).unwrap();
        pr.from_repository_id = 99;
    });
    // The source is a personal fork: another repository, another project.
    let mut opened = sender::payload("pr:opened").unwrap();
    opened["pullRequest"]["fromRef"]["repository"] = json!({"id": 99, "slug": "my-repo", "name": "my-repo",
        "project": {"key": "~JCITIZEN", "type": "PERSONAL"}});
    deliver(&e, "pr:opened", opened, "opened").await;
    report(&w, &stack, "f1", "failed", HEAD, None).await;
    drain(&w).await;

    let statuses = simulator.datacenter.read().unwrap().build_statuses.clone();
    let posted: Vec<_> = statuses.iter().filter(|s| s.commit == HEAD).collect();
    assert_eq!(posted.len(), 1, "{statuses:?}");
    assert_eq!(posted[0].repository_id, Some(1), "the target repository, where the pull request is");
    assert_eq!(posted[0].ref_name.as_deref(), Some("refs/heads/feature/thing"));
    assert_eq!(comments(&simulator).len(), 1);
    assert_eq!(comments(&simulator)[0].repository_id, 1);
}
