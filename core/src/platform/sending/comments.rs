//! Sending a pull request's comment: the job that creates the comment of a
//! (pull request, stack) or edits it in place to its latest revision.
//!
//! A comment, unlike a status, must never be posted twice. Before a create
//! is sent, the row is marked (and that committed); Bitbucket's id is
//! recorded as soon as the answer comes. A process that dies in between
//! leaves the mark without an id: the next attempt looks for the comment
//! among the pull request's (by its first and last lines, which name the
//! stack) before it posts one. An edit names Data Center's version; on
//! 409 the comment is read again and the edit made on the version read.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{decide, gate, owner_and_slug, unsendable, Decision, Gate, Remote, GAVE_UP};
use crate::{
    bitbucket::{
        calls::Answer,
        pull_request_comments::{self as requests, On},
    },
    integrations::{Integration, Provider},
    jobs::{self, Job},
    platform::{comments::is_ours, pull_requests},
    Services,
};

/// Listing pages read to find a comment whose id was not recorded.
const MAX_PAGES: u64 = 20;

struct Row {
    id: Uuid,
    integration_id: Uuid,
    stack_id: Uuid,
    stack_name: String,
    repository_name: String,
    pull_request_id: i64,
    commit: String,
    body: String,
    revision: i64,
    sent_revision: i64,
    remote_id: Option<i64>,
    remote_version: Option<i64>,
    create_started: bool,
    pending_since: OffsetDateTime,
}

/// How a job attempt ends.
enum Outcome {
    Decided(Decision),
    /// Nothing to post: the pull request closed, or its head moved on.
    Skipped(String),
}

/// Runs a comment job to its end (done, skipped, again later, or held).
pub async fn send_comment(services: &Services, job: &Job) -> Result<(), sqlx::Error> {
    let pool = &services.pool;
    let id = job.payload["comment"].as_str().and_then(|s| Uuid::parse_str(s).ok());
    let row = match id {
        Some(id) => {
            sqlx::query_as!(
                Row,
                r#"SELECT c.id, c.integration_id, c.stack_id, s.name AS stack_name, c.repository_name,
                          c.pull_request_id, c.commit, c.body, c.revision, c.sent_revision, c.remote_id,
                          c.remote_version, c.create_started, c.pending_since
                   FROM pull_request_comments c JOIN stacks s ON s.id = c.stack_id WHERE c.id = $1"#,
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
        Gate::GiveUp => return finish(pool, job, &row, Outcome::Decided(Decision::Failed(GAVE_UP.into()))).await,
    };
    // Checked again when sending: the pull request may have moved on since
    // the report.
    match pull_requests::known(pool, row.stack_id, row.pull_request_id).await? {
        pull_requests::Known::Closed => {
            let skipped = Outcome::Skipped("Not posted: the pull request is closed.".into());
            return finish(pool, job, &row, skipped).await;
        }
        known if !known.current(&row.commit) => {
            let short: String = row.commit.chars().take(12).collect();
            let skipped = Outcome::Skipped(format!("Not posted: {short} is no longer the pull request's head."));
            return finish(pool, job, &row, skipped).await;
        }
        _ => {}
    }
    let answer = deliver(services, &integration, &row, job.attempt).await?;
    let decided = decide(pool, &integration, job, answer, "comment on pull requests").await?;
    finish(pool, job, &row, Outcome::Decided(decided)).await
}

/// Creates the comment, or edits the one Bitbucket has, logging each call.
async fn deliver(
    services: &Services,
    integration: &Integration,
    row: &Row,
    attempt: i32,
) -> Result<Answer, sqlx::Error> {
    let pool = &services.pool;
    let Some((owner, slug)) = owner_and_slug(integration.provider, &row.repository_name) else {
        return Ok(unsendable(format!("{} is not a repository name Bitgate can post to.", row.repository_name)));
    };
    let on = On { owner: &owner, slug: &slug, pull_request: row.pull_request_id };
    let what = format!("comment on pull request #{}", row.pull_request_id);
    let mut remote = match Remote::open(services, integration, Some(row.stack_id), what, attempt).await? {
        Ok(remote) => remote,
        Err(answer) => return Ok(answer),
    };
    let mut known = row.remote_id.map(|id| (id, row.remote_version));
    if known.is_none() && row.create_started {
        // An earlier attempt may have created it and died before recording its id.
        let stack_page =
            format!("{}/stacks/{}", services.config.public_url.as_str().trim_end_matches('/'), row.stack_id);
        match find(&mut remote, integration.provider, on, &row.stack_name, &stack_page).await? {
            Ok(Some(found)) => {
                remember(pool, row.id, found.id, found.version).await?;
                known = Some((found.id, found.version));
            }
            Ok(None) => {}
            Err(answer) => return Ok(answer),
        }
    }
    if let Some((id, version)) = known {
        let answer = edit(&mut remote, integration.provider, on, id, version, &row.body).await?;
        if answer.status != Some(StatusCode::NOT_FOUND) {
            if let Some(edited) = answer.body.as_ref().and_then(requests::remote_of) {
                remember(pool, row.id, edited.id, edited.version).await?;
            }
            return Ok(answer);
        }
        // Deleted in Bitbucket by someone: a new one is posted.
    }
    sqlx::query!("UPDATE pull_request_comments SET create_started = true WHERE id = $1", row.id).execute(pool).await?;
    let (call, body) = match integration.provider {
        Provider::DataCenter => requests::datacenter_create(on, &row.body),
        Provider::Cloud => requests::cloud_create(on, &row.body),
    };
    let answer = remote.call(&call, Some(&body)).await?;
    if let Some(created) = answer.body.as_ref().and_then(requests::remote_of) {
        remember(pool, row.id, created.id, created.version).await?;
    }
    Ok(answer)
}

/// Edits comment `id`; on Data Center with `version`, or with the version
/// read again when Bitbucket says it is out of date (409).
async fn edit(
    remote: &mut Remote<'_>,
    provider: Provider,
    on: On<'_>,
    id: i64,
    version: Option<i64>,
    text: &str,
) -> Result<Answer, sqlx::Error> {
    match provider {
        Provider::Cloud => {
            let (call, body) = requests::cloud_edit(on, id, text);
            remote.call(&call, Some(&body)).await
        }
        Provider::DataCenter => {
            let (call, body) = requests::datacenter_edit(on, id, version.unwrap_or(0), text);
            let answer = remote.call(&call, Some(&body)).await?;
            if answer.status != Some(StatusCode::CONFLICT) {
                return Ok(answer);
            }
            let read = remote.call(&requests::datacenter_read(on, id), None).await?;
            let Some(current) = read.body.as_ref().and_then(requests::remote_of) else { return Ok(read) };
            let (call, body) = requests::datacenter_edit(on, id, current.version.unwrap_or(0), text);
            remote.call(&call, Some(&body)).await
        }
    }
}

/// The stack's comment among the pull request's, if it is there. `Err`:
/// the listing failed, and its answer decides.
async fn find(
    remote: &mut Remote<'_>,
    provider: Provider,
    on: On<'_>,
    stack_name: &str,
    stack_page: &str,
) -> Result<Result<Option<requests::Remote>, Answer>, sqlx::Error> {
    for page in 0..MAX_PAGES {
        let call = match provider {
            Provider::DataCenter => requests::datacenter_activities(on, page * 50),
            Provider::Cloud => requests::cloud_list(on, page + 1),
        };
        let answer = remote.call(&call, None).await?;
        let (comments, more) = match (&answer.status, &answer.body) {
            (Some(status), Some(body)) if status.is_success() => requests::page_of(body),
            (Some(status), None) if status.is_success() => {
                let unreadable = "Bitbucket's list of the pull request's comments could not be read.";
                return Ok(Err(Answer::made_up(None, unreadable.into())));
            }
            _ => return Ok(Err(answer)),
        };
        if let Some(ours) = comments.into_iter().find(|c| is_ours(&c.text, stack_name, stack_page)) {
            return Ok(Ok(Some(ours)));
        }
        if !more {
            break;
        }
    }
    Ok(Ok(None))
}

/// Records Bitbucket's id (and version) of the comment at once: from here
/// on no attempt creates another.
async fn remember(pool: &PgPool, row: Uuid, id: i64, version: Option<i64>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pull_request_comments SET remote_id = $2, remote_version = $3 WHERE id = $1",
        row,
        id,
        version
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the outcome and ends or reschedules the job, under the row
/// lock: a revision stored meanwhile is sent by this job next, at once.
async fn finish(pool: &PgPool, job: &Job, row: &Row, outcome: Outcome) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let latest = sqlx::query_scalar!("SELECT revision FROM pull_request_comments WHERE id = $1 FOR UPDATE", row.id)
        .fetch_optional(&mut *tx)
        .await?;
    let newer = latest.is_some_and(|revision| revision > row.revision);
    let (sent, message) = match outcome {
        Outcome::Decided(Decision::Again(wait, message)) => {
            sqlx::query!("UPDATE pull_request_comments SET message = $2 WHERE id = $1", row.id, message)
                .execute(&mut *tx)
                .await?;
            jobs::again(&mut *tx, job, if newer { Duration::ZERO } else { wait }, Some(&message)).await?;
            return tx.commit().await;
        }
        Outcome::Decided(Decision::Done) => ("sent", None),
        Outcome::Decided(Decision::Failed(message)) => ("failed", Some(message)),
        Outcome::Skipped(message) => ("skipped", Some(message)),
    };
    sqlx::query!(
        r#"UPDATE pull_request_comments
           SET sent_revision = $2, sent = CASE WHEN revision = $2 THEN $3 ELSE 'pending' END, message = $4
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
    tx.commit().await
}
