//! The job table: claimed once across workers, leased, retried with backoff,
//! periodic housekeeping rescheduled.

use std::{collections::HashSet, time::Duration};

use bitgate_core::{
    jobs::{self, JobKind},
    maintenance,
};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn concurrent_workers_never_take_the_same_job() {
    let app = TestApp::spawn().await;
    for n in 0..40 {
        jobs::enqueue(&app.pool, JobKind::AuditRetention, json!({"n": n}), Duration::ZERO, None).await.unwrap();
    }
    let worker = |pool: sqlx::PgPool| async move {
        let mut taken = Vec::new();
        while let Some(job) = jobs::claim(&pool).await.unwrap() {
            taken.push(job.id);
        }
        taken
    };
    let (a, b, c) = tokio::join!(worker(app.pool.clone()), worker(app.pool.clone()), worker(app.pool.clone()));
    let all: Vec<_> = a.into_iter().chain(b).chain(c).collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40);
    assert_eq!(unique.len(), 40, "no job was taken twice");
    // Leased: nothing is claimable until the leases run out.
    assert!(jobs::claim(&app.pool).await.unwrap().is_none());
}

#[tokio::test]
async fn unique_keys_keep_one_pending_job() {
    let app = TestApp::spawn().await;
    let kind = JobKind::AuditRetention;
    assert!(jobs::enqueue(&app.pool, kind, json!({}), Duration::ZERO, Some("k")).await.unwrap());
    assert!(!jobs::enqueue(&app.pool, kind, json!({}), Duration::ZERO, Some("k")).await.unwrap());
    maintenance::schedule_periodic(&app.pool).await.unwrap();
    maintenance::schedule_periodic(&app.pool).await.unwrap();
    let periodic: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE unique_key <> 'k'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(periodic as usize, maintenance::PERIODIC.len());
}

#[tokio::test]
async fn a_job_asked_for_again_while_it_runs_runs_once_more() {
    let app = TestApp::spawn().await;
    let kind = JobKind::ReconcileHook;
    let keys = ["hooks:a".to_owned()];
    jobs::enqueue_rerun(&app.pool, kind, json!({}), &keys[0]).await.unwrap();
    // Asked for again while pending: still one job.
    jobs::enqueue_rerun(&app.pool, kind, json!({}), &keys[0]).await.unwrap();
    let job = jobs::claim_keyed(&app.pool, &keys).await.unwrap().unwrap();
    assert!(jobs::claim_keyed(&app.pool, &keys).await.unwrap().is_none(), "one job, leased");
    assert!(jobs::any_running(&app.pool, &keys).await.unwrap());
    assert!(jobs::claim_keyed(&app.pool, &["other".to_owned()]).await.unwrap().is_none());

    // Asked for while it runs: when it ends it is due again at once...
    jobs::enqueue_rerun(&app.pool, kind, json!({}), &keys[0]).await.unwrap();
    jobs::complete_or_rerun(&app.pool, &job).await.unwrap();
    assert!(!jobs::any_running(&app.pool, &keys).await.unwrap());
    let again = jobs::claim_keyed(&app.pool, &keys).await.unwrap().expect("due again");
    assert_eq!((again.id, again.attempt), (job.id, 1), "the same job, its attempts reset");
    // ...and, not asked for again, it goes.
    jobs::complete_or_rerun(&app.pool, &again).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE unique_key = 'hooks:a'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn housekeeping_deletes_what_is_due_and_comes_back() {
    let app = TestApp::spawn_with(&[("BITGATE_AUDIT_RETENTION", "1d")]).await;
    sqlx::query("INSERT INTO tower_sessions.session (id, data, expiry_date) VALUES ('old', '\\x00', now() - interval '1 minute'), ('live', '\\x00', now() + interval '1 hour')")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO audit_events (actor_kind, actor_label, action, occurred_at) VALUES ('cli', 'cli', 'old.event', now() - interval '2 days'), ('cli', 'cli', 'new.event', now())")
        .execute(&app.pool)
        .await
        .unwrap();
    maintenance::schedule_periodic(&app.pool).await.unwrap();
    let mut runs = 0;
    while maintenance::run_one(&app.services).await.unwrap() {
        runs += 1;
    }
    assert_eq!(runs, maintenance::PERIODIC.len());
    let sessions: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tower_sessions.session").fetch_all(&app.pool).await.unwrap();
    assert_eq!(sessions, ["live"]);
    assert_eq!(app.audit_actions().await, ["new.event"]);
    let future: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE run_at > now() AND attempts = 0 AND locked_until IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(future as usize, maintenance::PERIODIC.len(), "each periodic job waits for its next run");
}

#[tokio::test]
async fn a_failing_job_is_retried_later_with_its_error_kept() {
    let app = TestApp::spawn().await;
    // A kind this Bitgate does not know is claimed and fails, kept for a newer version.
    sqlx::query("INSERT INTO jobs (kind) VALUES ('from.a.newer.version')").execute(&app.pool).await.unwrap();
    assert!(maintenance::run_one(&app.services).await.unwrap());
    let (attempts, error, wait): (i32, String, f64) =
        sqlx::query_as("SELECT attempts, last_error, extract(epoch FROM run_at - now())::float8 FROM jobs")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.contains("does not know jobs of kind"), "{error}");
    assert!(wait > 5.0 && wait <= 10.0, "backs off before the next attempt: {wait}");
    assert!(!maintenance::run_one(&app.services).await.unwrap(), "not due yet");
}

/// Whether `channel` is notified within a moment of `write`.
async fn notifies(app: &TestApp, channel: &str, write: &str) -> bool {
    let mut listener = sqlx::postgres::PgListener::connect_with(&app.pool).await.unwrap();
    listener.listen(channel).await.unwrap();
    sqlx::query(write).execute(&app.pool).await.unwrap();
    tokio::time::timeout(Duration::from_millis(500), listener.recv()).await.is_ok()
}

#[tokio::test]
async fn workers_are_woken_only_when_jobs_were_inserted() {
    let app = TestApp::spawn().await;
    // A statement inserting no row (as a batch of deliveries queuing no
    // job does) wakes nobody: every job worker of every process would
    // look for a job after each delivery.
    let none = "INSERT INTO jobs (kind, payload) SELECT 'audit.retention', '{}' WHERE false";
    assert!(!notifies(&app, jobs::CHANNEL, none).await);
    let one = "INSERT INTO jobs (kind, payload) VALUES ('audit.retention', '{}')";
    assert!(notifies(&app, jobs::CHANNEL, one).await);
}
