//! The periodic housekeeping jobs, and the worker step that runs whatever
//! job is due. Every Bitgate process runs the worker; the job table makes
//! sure each run happens once.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::{cloud_tokens, jobs, oauth_flows, throttle, webhooks, Services};

/// Deletes sessions past their expiry.
pub const DELETE_EXPIRED_SESSIONS: &str = "sessions.delete_expired";
/// Deletes audit events older than `BITGATE_AUDIT_RETENTION`.
pub const AUDIT_RETENTION: &str = "audit.retention";
/// Drops login counters whose window has passed.
pub const FORGET_LOGIN_FAILURES: &str = "login_throttle.forget_expired";
/// Refreshes Bitbucket Cloud tokens that expire soon or sat idle.
pub const REFRESH_CLOUD_TOKENS: &str = "cloud_tokens.refresh_due";
/// Drops OAuth flows whose callback never came.
pub const DELETE_EXPIRED_OAUTH_FLOWS: &str = "oauth_flows.delete_expired";

/// Deletes deliveries past `BITGATE_DELIVERY_RETENTION` or the per-integration cap.
pub const DELIVERY_RETENTION: &str = "webhooks.retention";

/// Each periodic job and how often it runs. Cloud tokens live 2 hours and
/// are refreshed 10 minutes before they expire: a run every minute leaves
/// plenty of room for retries.
pub const PERIODIC: [(&str, Duration); 6] = [
    (DELIVERY_RETENTION, Duration::from_secs(3600)),
    (DELETE_EXPIRED_SESSIONS, Duration::from_secs(600)),
    (AUDIT_RETENTION, Duration::from_secs(3600)),
    (FORGET_LOGIN_FAILURES, Duration::from_secs(900)),
    (REFRESH_CLOUD_TOKENS, Duration::from_secs(60)),
    (DELETE_EXPIRED_OAUTH_FLOWS, Duration::from_secs(900)),
];

/// Makes sure each periodic job is in the table (once, whatever the number
/// of processes starting).
pub async fn schedule_periodic(pool: &PgPool) -> Result<(), sqlx::Error> {
    for (kind, _) in PERIODIC {
        jobs::enqueue(pool, kind, json!({}), Duration::ZERO, Some(kind)).await?;
    }
    Ok(())
}

/// Claims and runs one due job. Returns whether there was one.
pub async fn run_one(services: &Services) -> Result<bool, sqlx::Error> {
    let Some(job) = jobs::claim(&services.pool).await? else { return Ok(false) };
    let outcome = run(services, &job.kind).await;
    match outcome {
        Ok(done) => {
            tracing::debug!(kind = job.kind, done, "job finished");
            match PERIODIC.iter().find(|(kind, _)| *kind == job.kind) {
                Some((_, every)) => jobs::reschedule(&services.pool, &job, *every).await?,
                None => jobs::complete(&services.pool, &job).await?,
            }
        }
        Err(error) => {
            tracing::warn!(kind = job.kind, attempt = job.attempt, %error, "job failed; it will be retried");
            jobs::fail(&services.pool, &job, &error).await?;
        }
    }
    Ok(true)
}

/// Runs a job of a kind; returns how many things it handled.
async fn run(services: &Services, kind: &str) -> Result<u64, String> {
    let pool = &services.pool;
    let result = match kind {
        DELETE_EXPIRED_SESSIONS => sqlx::query!("DELETE FROM tower_sessions.session WHERE expiry_date < now()")
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        AUDIT_RETENTION => sqlx::query!(
            "DELETE FROM audit_events WHERE occurred_at < now() - make_interval(secs => $1)",
            services.config.audit_retention.as_secs_f64()
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected()),
        FORGET_LOGIN_FAILURES => throttle::forget_expired(pool).await,
        REFRESH_CLOUD_TOKENS => cloud_tokens::refresh_due(services).await,
        DELETE_EXPIRED_OAUTH_FLOWS => oauth_flows::delete_expired(pool).await,
        DELIVERY_RETENTION => match pool.acquire().await {
            Ok(mut connection) => {
                webhooks::deliveries::apply_retention(&mut connection, services.config.delivery_retention).await
            }
            Err(error) => Err(error),
        },
        // A job of a newer Bitgate version: left for a process that knows it.
        other => return Err(format!("this Bitgate does not know jobs of kind \"{other}\"")),
    };
    result.map_err(|e| e.to_string())
}
