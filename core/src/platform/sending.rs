//! Sending a build status: the job that takes a status's latest revision
//! to Bitbucket, logs every call, and decides what follows from the answer
//! (SPEC.md, "Outbound work is durable"):
//!
//! - 2xx: sent. If the status changed meanwhile, the job runs again at once.
//! - Network errors, 5xx, 408 and 429: again after `Retry-After` or a
//!   backoff, for up to 24 hours from when the revision was stored.
//! - 401 and 403: the integration turns `error` saying what its credential
//!   lacks, and its queue is held until a test passes again.
//! - Any other answer (400, 404, …): failed, with Bitbucket's message; not
//!   retried, as the same request would get the same answer.
//!
//! A process that dies mid-call leaves its job leased; the lease expires
//! and another process sends the same revision again, which Bitbucket's
//! keys make harmless.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::statuses::{BuildState, Endpoint};
use crate::{
    bitbucket::{
        build_statuses::{self, Answer, Call, Status},
        cloud, datacenter, parse_repository_name,
    },
    integrations::{self, checks, HealthState, Integration, Provider},
    jobs::{self, Job},
    Services,
};

/// How long a revision is retried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long a held job waits before it looks again (a passing test releases it at once).
const HELD: Duration = Duration::from_secs(3600);

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
    let Some(integration) = integrations::find(pool, row.integration_id).await? else {
        return jobs::complete(pool, job).await;
    };
    if integration.health.state == HealthState::Error {
        let note = "held: the integration is in error; a passing test releases it";
        return jobs::again(pool, job, HELD, Some(note)).await;
    }
    if OffsetDateTime::now_utc() - row.pending_since > GIVE_UP_AFTER {
        let message = "Not sent: Bitbucket could not be reached for 24 hours.";
        return finish(pool, job, &row, Finish::Failed(message.into())).await;
    }
    let answer = post(services, &integration, &row, job.attempt).await?;
    let decided = match answer.status {
        Some(status) if status.is_success() => Finish::Sent,
        Some(status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) => {
            let message = refused(&integration, status, answer.message.as_deref());
            integrations::set_health(pool, integration.id, HealthState::Error, &message).await?;
            Finish::Again(HELD, message)
        }
        Some(status)
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT =>
        {
            let wait = answer.retry_after.unwrap_or_else(|| jobs::backoff(job.attempt)).min(GIVE_UP_AFTER);
            Finish::Again(wait, said(status, answer.message.as_deref()))
        }
        Some(status) => Finish::Failed(said(status, answer.message.as_deref())),
        None => Finish::Again(
            jobs::backoff(job.attempt),
            answer.message.unwrap_or_else(|| "Bitbucket could not be reached.".into()),
        ),
    };
    finish(pool, job, &row, decided).await
}

enum Finish {
    Sent,
    Failed(String),
    Again(Duration, String),
}

/// Records the outcome and ends or reschedules the job, under the status's
/// row lock: a revision stored while the call was under way finds this
/// job still queued (its own enqueue did nothing) and is sent by it next.
async fn finish(pool: &PgPool, job: &Job, row: &Row, decided: Finish) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let latest = sqlx::query_scalar!("SELECT revision FROM commit_statuses WHERE id = $1 FOR UPDATE", row.id)
        .fetch_optional(&mut *tx)
        .await?;
    let newer = latest.is_some_and(|revision| revision > row.revision);
    match decided {
        Finish::Again(wait, message) => {
            sqlx::query!("UPDATE commit_statuses SET message = $2 WHERE id = $1", row.id, message)
                .execute(&mut *tx)
                .await?;
            // A newer revision does not wait for the backoff of an older one.
            jobs::again(&mut *tx, job, if newer { Duration::ZERO } else { wait }, Some(&message)).await?;
        }
        outcome => {
            let (sent, message) = match outcome {
                Finish::Failed(message) => ("failed", Some(message)),
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

fn said(status: StatusCode, message: Option<&str>) -> String {
    match message {
        Some(message) => format!("Bitbucket answered {}: {message}", status.as_u16()),
        None => format!("Bitbucket answered {}.", status.as_u16()),
    }
}

/// What the credential lacks, in the words of the product's settings.
fn refused(integration: &Integration, status: StatusCode, message: Option<&str>) -> String {
    let lacks = match integration.provider {
        Provider::DataCenter => "its token needs Repository read (REPO_READ) on the repository to post build statuses",
        Provider::Cloud => "its consumer needs the Repositories: Read permission to post build statuses",
    };
    let quoted = message.map(|m| format!(" ({m})")).unwrap_or_default();
    format!(
        "Bitbucket refused a build status with {}{quoted}: {lacks}. Test the integration once fixed.",
        status.as_u16()
    )
}

/// Posts the status (Data Center: the current endpoint, then the legacy
/// one if the server has no current one), logging each call.
async fn post(services: &Services, integration: &Integration, row: &Row, attempt: i32) -> Result<Answer, sqlx::Error> {
    let what = format!("build status {} ({})", row.key, row.state.as_str());
    let log = |call: Call, answer: Answer| {
        let what = what.clone();
        async move {
            record(&services.pool, integration.id, row.stack_id, &what, &call, &answer, attempt).await?;
            Ok::<_, sqlx::Error>(answer)
        }
    };
    let status = |endpoint: Endpoint| Status {
        key: &row.key,
        state: row.state.word(integration.provider, endpoint),
        name: &row.name,
        url: &row.url,
        description: &row.description,
        branch: row.branch.as_deref(),
    };
    let config = &services.config;
    let Some((owner, slug)) = owner_and_slug(integration.provider, &row.repository_name) else {
        return Ok(unsendable(format!("{} is not a repository name Bitgate can post to.", row.repository_name)));
    };
    match integration.provider {
        Provider::DataCenter => {
            let connection = match checks::stored_connection(services, integration).await {
                Ok(connection) => connection,
                Err(error) => return Ok(unsendable(error.to_string())),
            };
            let Ok(client) = datacenter::client_for(&connection, config) else {
                return Ok(unsendable("The integration's CA certificate cannot be used.".into()));
            };
            let (call, body) =
                build_statuses::datacenter_current(&owner, &slug, &row.commit, &status(Endpoint::Current));
            let answer =
                build_statuses::send(&client, config, &connection.api_url, &call, &connection.token, &body).await;
            let answer = log(call, answer).await?;
            if answer.status != Some(StatusCode::NOT_FOUND) {
                return Ok(answer);
            }
            // A server older than the current endpoint.
            let (call, body) = build_statuses::datacenter_legacy(&row.commit, &status(Endpoint::Legacy));
            let answer =
                build_statuses::send(&client, config, &connection.api_url, &call, &connection.token, &body).await;
            log(call, answer).await
        }
        Provider::Cloud => {
            let Ok(client) = cloud::http_client(config) else {
                return Ok(unsendable("Bitgate could not make an HTTP client.".into()));
            };
            let endpoints = cloud::Endpoints::from_config(config);
            let token = match checks::cloud_access_token(services, integration.id).await {
                Ok(Ok(token)) => token,
                Ok(Err(why)) => return Ok(refusal(why)),
                Err(error) => return Ok(unsendable(error.to_string())),
            };
            let (call, body) = build_statuses::cloud(&owner, &slug, &row.commit, &status(Endpoint::Current));
            let answer = build_statuses::send(&client, config, &endpoints.api, &call, &token, &body).await;
            let answer = log(call.clone(), answer).await?;
            if answer.status != Some(StatusCode::UNAUTHORIZED) {
                return Ok(answer);
            }
            // An access token revoked or expired early: refreshed once.
            let token = match checks::cloud_token_after_refusal(services, integration.id, token).await {
                Ok(Ok(token)) => token,
                Ok(Err(why)) => return Ok(refusal(why)),
                Err(error) => return Ok(unsendable(error.to_string())),
            };
            let answer = build_statuses::send(&client, config, &endpoints.api, &call, &token, &body).await;
            log(call, answer).await
        }
    }
}

/// `PRJ/slug` or `workspace/slug`, checked: neither can change the path.
fn owner_and_slug(provider: Provider, name: &str) -> Option<(String, String)> {
    match provider {
        Provider::DataCenter => parse_repository_name(name).ok(),
        Provider::Cloud => {
            let (workspace, slug) = name.split_once('/')?;
            let workspace = cloud::parse_workspace(&workspace.to_ascii_lowercase()).ok()?;
            let slug_ok = !slug.is_empty()
                && slug != "."
                && slug != ".."
                && slug.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            slug_ok.then(|| (workspace, slug.to_owned()))
        }
    }
}

/// Nothing was sent, and sending again would not help.
fn unsendable(message: String) -> Answer {
    Answer { status: Some(StatusCode::BAD_REQUEST), message: Some(message), retry_after: None }
}

/// The credential itself is refused (no token to be had).
fn refusal(message: String) -> Answer {
    Answer { status: Some(StatusCode::UNAUTHORIZED), message: Some(message), retry_after: None }
}

async fn record(
    pool: &PgPool,
    integration: Uuid,
    stack: Option<Uuid>,
    what: &str,
    call: &Call,
    answer: &Answer,
    attempt: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO outbound_calls (integration_id, stack_id, what, method, path, status, ok, message, attempt)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        integration,
        stack,
        what,
        call.method,
        call.path,
        answer.status.map(|s| i32::from(s.as_u16())),
        answer.status.is_some_and(|s| s.is_success()),
        answer.message,
        attempt
    )
    .execute(pool)
    .await?;
    Ok(())
}
