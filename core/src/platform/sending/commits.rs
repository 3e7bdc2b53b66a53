//! Resolving a commit Bitbucket Cloud named by its first 12 hex digits (its
//! pull-request payloads do): the job asks Cloud for the full id
//! (`GET /2.0/repositories/{workspace}/{slug}/commit/{id}`) and lets the
//! delivery's held events into the feed with it (migrations: `events.held`).
//! When Cloud cannot name it (the commit is gone, the call cannot succeed,
//! 24 hours passed) they enter without a commit: the platform still learns
//! of the pull request; only a run cannot be asked of a commit nobody can
//! name. Calls go in the outbound log like every other.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{decide, gate, owner_and_slug, unsendable, Decision, Gate, Remote};
use crate::{
    bitbucket::calls::{Answer, Call, CallKind},
    integrations::{Integration, Provider},
    jobs::{self, Job},
    platform::feed,
    Services,
};

/// The first held event of a delivery: what to resolve, and where.
struct Held {
    stack_id: Uuid,
    repository_name: String,
    commit: String,
    at: OffsetDateTime,
}

/// Runs a resolution job to its end (released, again later, or held with
/// its integration's queue).
pub async fn resolve_commit(services: &Services, job: &Job) -> Result<(), sqlx::Error> {
    let pool = &services.pool;
    let id = |name: &str| job.payload[name].as_str().and_then(|s| Uuid::parse_str(s).ok());
    let (Some(delivery), Some(integration)) = (id("delivery"), id("integration")) else {
        return jobs::complete(pool, job).await;
    };
    let held = sqlx::query_as!(
        Held,
        r#"SELECT stack_id, repository_name, commit AS "commit!", at FROM events
           WHERE delivery_id = $1 AND held AND commit IS NOT NULL ORDER BY seq LIMIT 1"#,
        delivery
    )
    .fetch_optional(pool)
    .await?;
    // Released already, or gone with the delivery or the stack.
    let Some(held) = held else { return jobs::complete(pool, job).await };
    // An integration deleted meanwhile ends the job (`gate`): its stacks
    // are detached, and the held events are never read.
    let integration = match gate(pool, job, integration, held.at).await? {
        Gate::Go(integration) => integration,
        Gate::Ended => return Ok(()),
        Gate::GiveUp => return release(services, job, delivery, None).await,
    };
    let answer = ask(services, &integration, &held, job.attempt).await?;
    let full = answer.body.as_ref().and_then(|body| full_id(&body["hash"], &held.commit));
    match decide(pool, &integration, job, answer, "read commits").await? {
        Decision::Done | Decision::Failed(_) => release(services, job, delivery, full).await,
        Decision::Again(wait, note) => jobs::again(pool, job, wait, Some(&note)).await,
    }
}

/// The full id Cloud answered, if it is one and the one asked for.
fn full_id(hash: &serde_json::Value, short: &str) -> Option<String> {
    let hash = hash.as_str()?.to_ascii_lowercase();
    let full = hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    (full && hash.starts_with(&short.to_ascii_lowercase())).then_some(hash)
}

async fn ask(services: &Services, integration: &Integration, held: &Held, attempt: i32) -> Result<Answer, sqlx::Error> {
    if integration.provider != Provider::Cloud {
        return Ok(unsendable("Only Bitbucket Cloud names commits by a prefix.".into()));
    }
    let Some((workspace, slug)) = owner_and_slug(integration.provider, &held.repository_name) else {
        return Ok(unsendable(format!("{} is not a repository name Bitgate can call.", held.repository_name)));
    };
    if held.commit.is_empty() || !held.commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(unsendable(format!("`{}` is not a commit id.", held.commit)));
    }
    let what = format!("full id of commit {}", held.commit);
    let mut remote = match Remote::open(services, integration, Some(held.stack_id), what, attempt).await? {
        Ok(remote) => remote,
        Err(answer) => return Ok(answer),
    };
    let call = Call {
        kind: CallKind::Commit,
        method: "GET",
        path: format!("/2.0/repositories/{workspace}/{slug}/commit/{}", held.commit),
    };
    remote.call(&call, None).await
}

/// Lets the delivery's held events into the feed, with `full` as their
/// commit (and their pull request's source commit), and ends the job, in
/// one transaction. They take this transaction's place in the feed (`tx`,
/// a new `seq`, in their order), which no reader's cursor has passed.
async fn release(services: &Services, job: &Job, delivery: Uuid, full: Option<String>) -> Result<(), sqlx::Error> {
    let mut tx = services.pool.begin().await?;
    sqlx::query!(
        r#"UPDATE events e
           SET held = false, tx = feed_position(), seq = r.seq, commit = $2,
               pull_request = CASE WHEN e.pull_request IS NULL THEN NULL
                                   ELSE jsonb_set(e.pull_request, '{source_commit}', coalesce(to_jsonb($2::text), 'null'))
                              END
           FROM (SELECT id, nextval(pg_get_serial_sequence('events', 'seq')) AS seq
                 FROM (SELECT id FROM events WHERE delivery_id = $1 AND held ORDER BY seq) ordered) r
           WHERE e.id = r.id"#,
        delivery,
        full
    )
    .execute(&mut *tx)
    .await?;
    // Readers of every process are woken when this commits.
    sqlx::query!("SELECT pg_notify($1, '')", feed::CHANNEL).execute(&mut *tx).await?;
    jobs::complete(&mut *tx, job).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::full_id;

    #[test]
    fn only_a_full_id_that_extends_the_short_one_is_taken() {
        let full = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
        assert_eq!(full_id(&json!(full), "a1b2c3d4e5f6").as_deref(), Some(full));
        assert_eq!(full_id(&json!(full.to_uppercase()), "a1b2c3d4e5f6").as_deref(), Some(full), "stored lowercase");
        assert_eq!(full_id(&json!(full), "b2c3d4e5f607"), None, "another commit");
        assert_eq!(full_id(&json!("a1b2c3d4e5f6"), "a1b2c3d4e5f6"), None, "not a full id");
        assert_eq!(full_id(&json!(null), "a1b2c3d4e5f6"), None);
    }
}
