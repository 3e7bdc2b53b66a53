//! The periodic housekeeping jobs, and the worker step that runs whatever
//! job is due. Every Bitgate process runs the worker; the job table makes
//! sure each run happens once.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use tracing::Instrument;

use crate::{
    config::Config,
    jobs::{self, JobKind},
    managed_hooks, oauth_flows, oauth_tokens, platform, submissions, throttle, webhooks, Services,
};

/// Each periodic job and how often it runs. Cloud tokens live 2 hours and
/// are refreshed 10 minutes before they expire: a run every minute leaves
/// plenty of room for retries. Every repository's hook is reconciled hourly;
/// polling runs every `BITGATE_POLL_INTERVAL` ([`every`] reads it).
pub const PERIODIC: [(JobKind, Duration); 8] = [
    (JobKind::DeliveryRetention, Duration::from_secs(3600)),
    (JobKind::DeleteExpiredSessions, Duration::from_secs(600)),
    (JobKind::AuditRetention, Duration::from_secs(3600)),
    (JobKind::ForgetLoginFailures, Duration::from_secs(900)),
    (JobKind::RefreshOAuthTokens, Duration::from_secs(60)),
    (JobKind::DeleteExpiredOauthFlows, Duration::from_secs(900)),
    (JobKind::ReconcileAllHooks, Duration::from_secs(3600)),
    (JobKind::PollBranchHeads, Duration::from_secs(60)),
];

/// How often a periodic job runs: its entry of [`PERIODIC`], the
/// configured interval for polling.
fn every(kind: JobKind, config: &Config) -> Option<Duration> {
    if kind == JobKind::PollBranchHeads {
        return Some(config.poll_interval);
    }
    PERIODIC.iter().find(|(periodic, _)| *periodic == kind).map(|(_, every)| *every)
}

/// Makes sure each periodic job is in the table (once, whatever the number
/// of processes starting).
pub async fn schedule_periodic(pool: &PgPool) -> Result<(), sqlx::Error> {
    for (kind, _) in PERIODIC {
        jobs::enqueue(pool, kind, json!({}), Duration::ZERO, Some(kind.as_str())).await?;
    }
    Ok(())
}

/// Claims and runs one due job. Returns whether there was one.
pub async fn run_one(services: &Services) -> Result<bool, sqlx::Error> {
    let Some(job) = jobs::claim(&services.pool).await? else { return Ok(false) };
    // Its log lines name the request that queued it, if one did.
    let span = tracing::info_span!("job", kind = job.kind_name(), request_id = job.request_id.as_deref());
    run_claimed(services, job).instrument(span).await
}

async fn run_claimed(services: &Services, job: jobs::Job) -> Result<bool, sqlx::Error> {
    // Outbound jobs end or reschedule themselves, with what they send.
    let outbound = match job.kind {
        Ok(JobKind::SendBuildStatus) => Some(platform::sending::statuses::send_status(services, &job).await),
        Ok(JobKind::SendPullRequestComment) => Some(platform::sending::comments::send_comment(services, &job).await),
        Ok(JobKind::ResolveCommit) => Some(platform::sending::commits::resolve_commit(services, &job).await),
        Ok(JobKind::ReconcileHook) => Some(managed_hooks::reconcile::run_job(services, &job).await),
        _ => None,
    };
    if let Some(sent) = outbound {
        if let Err(error) = sent {
            tracing::warn!(kind = job.kind_name(), %error, "job failed; it will be retried");
            jobs::fail(&services.pool, &job, &error.to_string()).await?;
        }
        return Ok(true);
    }
    let outcome = match &job.kind {
        Ok(kind) => run(services, *kind).await,
        // A job of a newer Bitgate version: left for a process that knows it.
        Err(other) => Err(format!("this Bitgate does not know jobs of kind \"{other}\"")),
    };
    match outcome {
        Ok(done) => {
            tracing::debug!(kind = job.kind_name(), done, "job finished");
            match job.kind.as_ref().ok().and_then(|kind| every(*kind, &services.config)) {
                Some(every) => jobs::reschedule(&services.pool, &job, every).await?,
                None => jobs::complete(&services.pool, &job).await?,
            }
        }
        Err(error) => {
            tracing::warn!(kind = job.kind_name(), attempt = job.attempt, %error, "job failed; it will be retried");
            jobs::fail(&services.pool, &job, &error).await?;
        }
    }
    Ok(true)
}

/// Runs a job of a kind; returns how many things it handled.
async fn run(services: &Services, kind: JobKind) -> Result<u64, String> {
    let pool = &services.pool;
    let result = match kind {
        // Expired sessions, and form claims past their day (submissions.rs): both short-lived login state.
        JobKind::DeleteExpiredSessions => {
            match sqlx::query!("DELETE FROM tower_sessions.session WHERE expiry_date < now()").execute(pool).await {
                Ok(sessions) => submissions::forget_old(pool).await.map(|claims| sessions.rows_affected() + claims),
                Err(error) => Err(error),
            }
        }
        JobKind::AuditRetention => sqlx::query!(
            "DELETE FROM audit_events WHERE occurred_at < now() - make_interval(secs => $1)",
            services.config.audit_retention.as_secs_f64()
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected()),
        JobKind::ForgetLoginFailures => throttle::forget_expired(pool).await,
        JobKind::RefreshOAuthTokens => oauth_tokens::refresh_due(services).await,
        JobKind::DeleteExpiredOauthFlows => oauth_flows::delete_expired(pool).await,
        JobKind::ReconcileAllHooks => managed_hooks::enqueue_all(services).await,
        JobKind::PollBranchHeads => managed_hooks::polling::poll_all(services).await,
        JobKind::SendBuildStatus
        | JobKind::SendPullRequestComment
        | JobKind::ResolveCommit
        | JobKind::ReconcileHook => Ok(0),
        JobKind::DeliveryRetention => match pool.acquire().await {
            Ok(mut connection) => {
                let retention = services.config.delivery_retention;
                match webhooks::deliveries::apply_retention(&mut connection, retention).await {
                    Ok(deliveries) => platform::outbound_log::apply_retention(&mut connection, retention)
                        .await
                        .map(|calls| deliveries + calls),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        },
    };
    result.map_err(|e| e.to_string())
}
