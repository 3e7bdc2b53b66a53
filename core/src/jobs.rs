//! Background work as rows of the `jobs` table, so that any Bitgate process
//! can take any job and none takes one twice: a job is claimed with
//! `FOR UPDATE SKIP LOCKED` and leased for a while; a process that dies
//! mid-job leaves a lease that expires, and the job runs again elsewhere.
//! Failures are retried with exponential backoff.

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::{telemetry, text_enum::text_enum};

/// Named by the `jobs_queued` trigger (migrations): workers wake on it.
pub const CHANNEL: &str = "bitgate_jobs";

/// How long a claimed job is held before another process may take it.
pub const LEASE: Duration = Duration::from_secs(300);

text_enum! {
    /// What a job does (`jobs.kind`); the periodic ones are in `maintenance`.
    pub enum JobKind {
        /// Deletes sessions past their expiry.
        DeleteExpiredSessions = "sessions.delete_expired",
        /// Deletes audit events older than `BITGATE_AUDIT_RETENTION`.
        AuditRetention = "audit.retention",
        /// Drops login counters whose window has passed.
        ForgetLoginFailures = "login_throttle.forget_expired",
        /// Refreshes Bitbucket Cloud tokens that expire soon or sat idle.
        /// Every OAuth token about to expire, of both products (the kind
        /// keeps the name it was first stored under).
        RefreshOAuthTokens = "cloud_tokens.refresh_due",
        /// Drops OAuth flows whose callback never came.
        DeleteExpiredOauthFlows = "oauth_flows.delete_expired",
        /// Deletes deliveries past `BITGATE_DELIVERY_RETENTION` or the per-integration cap.
        DeliveryRetention = "webhooks.retention",
        /// Sends a build status's latest revision to Bitbucket.
        SendBuildStatus = "outbound.build_status",
        /// Creates or edits a pull request's comment in Bitbucket.
        SendPullRequestComment = "outbound.pr_comment",
        /// Asks Bitbucket Cloud for the full id of a commit its delivery
        /// named by 12 digits, then lets the held events into the feed.
        ResolveCommit = "outbound.resolve_commit",
        /// Brings Bitgate's hook in one repository to what it should be.
        ReconcileHook = "hooks.reconcile",
        /// Reconciles every repository of every integration (hourly).
        ReconcileAllHooks = "hooks.reconcile_all",
        /// Reads the branch heads of the repositories without a working
        /// hook (every `BITGATE_POLL_INTERVAL`).
        PollBranchHeads = "hooks.poll",
    }
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    /// `Err`: a kind this Bitgate does not know (a newer version's), as stored.
    pub kind: Result<JobKind, String>,
    pub payload: Value,
    /// 1 on the first run.
    pub attempt: i32,
    pub max_attempts: i32,
    /// The request that caused it, if one did (its log lines name it).
    pub request_id: Option<String>,
}

impl Job {
    /// The kind as stored, known or not.
    pub fn kind_name(&self) -> &str {
        match &self.kind {
            Ok(kind) => kind.as_str(),
            Err(unknown) => unknown,
        }
    }
}

/// Adds a job; with a `unique_key`, nothing happens when a pending job has
/// that key already (periodic jobs use their kind). Returns whether it was added.
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    kind: JobKind,
    payload: Value,
    delay: Duration,
    unique_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let added = sqlx::query!(
        r#"INSERT INTO jobs (kind, payload, run_at, unique_key, request_id)
           VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)
           ON CONFLICT (unique_key) DO NOTHING"#,
        kind.as_str(),
        payload,
        delay.as_secs_f64(),
        unique_key,
        telemetry::request_id()
    )
    .execute(db)
    .await?;
    Ok(added.rows_affected() == 1)
}

/// Adds the job of a piece of outbound work (`unique_key`: one pending job
/// per thing to send). Its retries are bounded by time, not by a count:
/// its attempts are not limited here.
pub async fn enqueue_outbound(
    db: impl PgExecutor<'_>,
    kind: JobKind,
    payload: Value,
    unique_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO jobs (kind, payload, unique_key, max_attempts, request_id) VALUES ($1, $2, $3, 2147483647, $4)
           ON CONFLICT (unique_key) DO NOTHING"#,
        kind.as_str(),
        payload,
        unique_key,
        telemetry::request_id()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Adds a job that must see every change made before it is asked for:
/// when a job of `unique_key` is pending it is made due now, and when it is
/// running it runs once more after it ends (`rerun`), as what it read may
/// predate the caller's change. Like outbound work, it is retried (with
/// backoff) for as long as it takes: a Bitbucket outage must not leave a
/// repository unreconciled for good.
pub async fn enqueue_rerun(
    db: impl PgExecutor<'_>,
    kind: JobKind,
    payload: Value,
    unique_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO jobs (kind, payload, unique_key, max_attempts, request_id) VALUES ($1, $2, $3, 2147483647, $4)
           ON CONFLICT (unique_key) DO UPDATE
              SET rerun = jobs.rerun OR (jobs.locked_until IS NOT NULL AND jobs.locked_until > now()),
                  run_at = LEAST(jobs.run_at, now())"#,
        kind.as_str(),
        payload,
        unique_key,
        telemetry::request_id()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A job of [`enqueue_rerun`] is done: it goes, unless it was asked for
/// again while it ran; then it is due again at once, its attempts reset.
/// (Under the row's lock: a request for a rerun committed meanwhile is
/// either seen here or finds the job gone and adds a new one.)
pub async fn complete_or_rerun(pool: &PgPool, job: &Job) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rerun =
        sqlx::query_scalar!("SELECT rerun FROM jobs WHERE id = $1 FOR UPDATE", job.id).fetch_optional(&mut *tx).await?;
    if rerun == Some(true) {
        sqlx::query!(
            r#"UPDATE jobs SET rerun = false, locked_until = NULL, run_at = now(), attempts = 0, last_error = NULL
               WHERE id = $1"#,
            job.id
        )
        .execute(&mut *tx)
        .await?;
    } else {
        complete(&mut *tx, job).await?;
    }
    tx.commit().await
}

/// A job runs again after `wait` (its lease released), noting why.
pub async fn again(db: impl PgExecutor<'_>, job: &Job, wait: Duration, note: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE jobs SET locked_until = NULL, run_at = now() + make_interval(secs => $2), last_error = $3
           WHERE id = $1"#,
        job.id,
        wait.as_secs_f64(),
        note
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Outbound jobs of an integration held while it was in error run now.
pub async fn release_outbound(db: impl PgExecutor<'_>, integration: Uuid) -> Result<u64, sqlx::Error> {
    let released = sqlx::query!(
        r#"UPDATE jobs SET run_at = now() WHERE kind LIKE 'outbound.%' AND payload ->> 'integration' = $1::text
             AND run_at > now()"#,
        integration.to_string()
    )
    .execute(db)
    .await?;
    Ok(released.rows_affected())
}

/// Claims the job that is due the longest, if any.
pub async fn claim(pool: &PgPool) -> Result<Option<Job>, sqlx::Error> {
    let row = sqlx::query_as!(
        Claimed,
        r#"UPDATE jobs SET attempts = attempts + 1, locked_until = now() + make_interval(secs => $1)
           WHERE id = (
               SELECT id FROM jobs
               WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now()) AND attempts < max_attempts
               ORDER BY run_at
               LIMIT 1
               FOR UPDATE SKIP LOCKED
           )
           RETURNING id, kind, payload, attempts AS attempt, max_attempts, request_id"#,
        LEASE.as_secs_f64()
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Job::from))
}

/// Claims the due job, among those of `keys`, that is due the longest: a
/// request that does some jobs itself rather than wait for the workers.
pub async fn claim_keyed(pool: &PgPool, keys: &[String]) -> Result<Option<Job>, sqlx::Error> {
    let row = sqlx::query_as!(
        Claimed,
        r#"UPDATE jobs SET attempts = attempts + 1, locked_until = now() + make_interval(secs => $1)
           WHERE id = (
               SELECT id FROM jobs
               WHERE unique_key = ANY($2) AND run_at <= now() AND (locked_until IS NULL OR locked_until < now())
                 AND attempts < max_attempts
               ORDER BY run_at
               LIMIT 1
               FOR UPDATE SKIP LOCKED
           )
           RETURNING id, kind, payload, attempts AS attempt, max_attempts, request_id"#,
        LEASE.as_secs_f64(),
        keys
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Job::from))
}

/// A claimed job's row.
struct Claimed {
    id: Uuid,
    kind: String,
    payload: Value,
    attempt: i32,
    max_attempts: i32,
    request_id: Option<String>,
}

impl From<Claimed> for Job {
    fn from(row: Claimed) -> Self {
        Job {
            id: row.id,
            kind: JobKind::parse(&row.kind).ok_or(row.kind),
            payload: row.payload,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            request_id: row.request_id,
        }
    }
}

/// Whether a job of `keys` is running (claimed and its lease not over).
pub async fn any_running(pool: &PgPool, keys: &[String]) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT FROM jobs WHERE unique_key = ANY($1) AND locked_until > now()) AS "running!""#,
        keys
    )
    .fetch_one(pool)
    .await
}

/// A job is done: it goes.
pub async fn complete(db: impl PgExecutor<'_>, job: &Job) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM jobs WHERE id = $1", job.id).execute(db).await?;
    Ok(())
}

/// A periodic job is done: it runs again after `every`, its attempts reset.
pub async fn reschedule(pool: &PgPool, job: &Job, every: Duration) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE jobs SET run_at = now() + make_interval(secs => $2), attempts = 0, locked_until = NULL, last_error = NULL
           WHERE id = $1"#,
        job.id,
        every.as_secs_f64()
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The wait before retry `attempt + 1`: 10 s, 20 s, 40 s, … capped at an hour.
pub fn backoff(attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(12);
    Duration::from_secs(10u64.saturating_mul(1 << exponent)).min(Duration::from_secs(3600))
}

/// A run failed: it is retried after a backoff, until its attempts run out;
/// then it stays, with its last error, for an operator to see.
pub async fn fail(pool: &PgPool, job: &Job, error: &str) -> Result<(), sqlx::Error> {
    let wait = backoff(job.attempt);
    sqlx::query!(
        r#"UPDATE jobs SET last_error = $2, locked_until = NULL, run_at = now() + make_interval(secs => $3)
           WHERE id = $1"#,
        job.id,
        error,
        wait.as_secs_f64()
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(4), Duration::from_secs(80));
        assert_eq!(backoff(50), Duration::from_secs(3600));
        assert_eq!(backoff(0), Duration::from_secs(10));
    }
}
