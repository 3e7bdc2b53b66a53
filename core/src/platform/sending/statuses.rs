//! Sending a build status: the job that takes a status's latest revision
//! to Bitbucket (Data Center: the current endpoint, then the legacy one on
//! 404), and records what came of it. A resend after a process died
//! mid-call is harmless: Bitbucket keeps one status per key.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{decide, gate, owner_and_slug, unsendable, Decision, Gate, Remote, GAVE_UP};
use crate::{
    bitbucket::{
        build_statuses::{self, Status},
        calls::Answer,
    },
    integrations::{Integration, Provider},
    jobs::{self, Job},
    platform::statuses::{BuildState, Endpoint},
    Services,
};

struct Row {
    id: Uuid,
    integration_id: Uuid,
    stack_id: Option<Uuid>,
    repository_name: String,
    commit: String,
    branch: Option<String>,
    key: String,
    name: String,
    state: BuildState,
    url: String,
    description: String,
    revision: i64,
    sent_revision: i64,
    pending_since: OffsetDateTime,
}

/// Runs a status job to its end (done, again later, or held).
pub async fn send_status(services: &Services, job: &Job) -> Result<(), sqlx::Error> {
    let pool = &services.pool;
    let id = job.payload["status"].as_str().and_then(|s| Uuid::parse_str(s).ok());
    let row = match id {
        Some(id) => {
            sqlx::query_as!(
                Row,
                r#"SELECT id, integration_id, stack_id, repository_name, commit, branch, key, name,
                      state AS "state: BuildState", url, description, revision, sent_revision, pending_since
               FROM commit_statuses WHERE id = $1"#,
                id
            )
            .fetch_optional(pool)
            .await?
        }
        None => None,
    };
    // Gone with its integration or stack, or sent already.
    let Some(row) = row.filter(|r| r.sent_revision < r.revision) else { return jobs::complete(pool, job).await };
    let integration = match gate(pool, job, row.integration_id, row.pending_since).await? {
        Gate::Go(integration) => integration,
        Gate::Ended => return Ok(()),
        Gate::GiveUp => return finish(pool, job, &row, Decision::Failed(GAVE_UP.into())).await,
    };
    let answer = post(services, &integration, &row, job.attempt).await?;
    let decided = decide(pool, &integration, job, answer, "post build statuses").await?;
    finish(pool, job, &row, decided).await
}

/// Records the outcome and ends or reschedules the job, under the status's
/// row lock: a revision stored while the call was under way finds this
/// job still queued (its own enqueue did nothing) and is sent by it next.
async fn finish(pool: &PgPool, job: &Job, row: &Row, decided: Decision) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let latest = sqlx::query_scalar!("SELECT revision FROM commit_statuses WHERE id = $1 FOR UPDATE", row.id)
        .fetch_optional(&mut *tx)
        .await?;
    let newer = latest.is_some_and(|revision| revision > row.revision);
    match decided {
        Decision::Again(wait, message) => {
            sqlx::query!("UPDATE commit_statuses SET message = $2 WHERE id = $1", row.id, message)
                .execute(&mut *tx)
                .await?;
            // A newer revision does not wait for the backoff of an older one.
            jobs::again(&mut *tx, job, if newer { Duration::ZERO } else { wait }, Some(&message)).await?;
        }
        outcome => {
            let (sent, message) = match outcome {
                Decision::Failed(message) => ("failed", Some(message)),
                _ => ("sent", None),
            };
            sqlx::query!(
                r#"UPDATE commit_statuses SET sent_revision = $2, sent = CASE WHEN revision = $2 THEN $3 ELSE 'pending' END,
                          message = $4
                   WHERE id = $1"#,
                row.id,
                row.revision,
                sent,
                message
            )
            .execute(&mut *tx)
            .await?;
            if newer {
                jobs::again(&mut *tx, job, Duration::ZERO, None).await?;
            } else {
                jobs::complete(&mut *tx, job).await?;
            }
        }
    }
    tx.commit().await
}

/// Posts the status (Data Center: the current endpoint, then the legacy
/// one if the server has no current one), logging each call.
async fn post(services: &Services, integration: &Integration, row: &Row, attempt: i32) -> Result<Answer, sqlx::Error> {
    let what = format!("build status {} ({})", row.key, row.state.as_str());
    let status = |endpoint: Endpoint| Status {
        key: &row.key,
        state: row.state.word(integration.provider, endpoint),
        name: &row.name,
        url: &row.url,
        description: &row.description,
        branch: row.branch.as_deref(),
    };
    let Some((owner, slug)) = owner_and_slug(integration.provider, &row.repository_name) else {
        return Ok(unsendable(format!("{} is not a repository name Bitgate can post to.", row.repository_name)));
    };
    let mut remote = match Remote::open(services, integration, row.stack_id, what, attempt).await? {
        Ok(remote) => remote,
        Err(answer) => return Ok(answer),
    };
    match integration.provider {
        Provider::DataCenter => {
            let (call, body) =
                build_statuses::datacenter_current(&owner, &slug, &row.commit, &status(Endpoint::Current));
            let answer = remote.call(&call, Some(&body)).await?;
            if answer.status != Some(StatusCode::NOT_FOUND) {
                return Ok(answer);
            }
            // A server older than the current endpoint.
            let (call, body) = build_statuses::datacenter_legacy(&row.commit, &status(Endpoint::Legacy));
            remote.call(&call, Some(&body)).await
        }
        Provider::Cloud => {
            let (call, body) = build_statuses::cloud(&owner, &slug, &row.commit, &status(Endpoint::Current));
            remote.call(&call, Some(&body)).await
        }
    }
}
