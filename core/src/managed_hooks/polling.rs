//! Polling (SPEC.md, "Webhooks managed by Bitgate, and polling"): for each
//! repository whose hook does not work (`failing`, `not_permitted`,
//! `not_managed`, `missing`) of an integration that allows polling, its
//! branch heads are read every `BITGATE_POLL_INTERVAL`, one list per
//! repository whatever the number of its stacks, and what moved is routed
//! as the push Bitbucket would have delivered ([`webhooks::polled`]).
//!
//! The first read of a repository only notes its heads. A repository whose
//! hook works again is no longer read and its heads are forgotten, so that
//! polling it again later starts from Bitbucket's heads of then.
//!
//! Bitbucket Cloud allows 1,000 requests an hour per user: one pass reads
//! at most [`cloud_budget`] of an integration's repositories, those read
//! the longest ago first. A 429 pauses the integration's polling for as
//! long as Bitbucket asks (a minute when it does not say).

use std::{collections::HashMap, time::Duration};

use reqwest::StatusCode;
use uuid::Uuid;

use crate::{
    bitbucket::branch_heads::{self, Head},
    integrations::{self, Integration, IntegrationId, Provider},
    platform::sending::{owner_and_slug, Remote},
    webhooks::{
        self,
        events::{Event, RefChange},
    },
    Services,
};

/// Bitbucket Cloud's allowance per user and hour (bitbucket-next.md §4).
pub const CLOUD_REQUESTS_PER_HOUR: u64 = 1000;
/// How long a 429 without `Retry-After` pauses an integration's polling.
const PAUSE: Duration = Duration::from_secs(60);
/// At most this many pages of branches are read per repository.
const MAX_PAGES: usize = 10;

/// How many repositories one Cloud integration can poll at `interval`
/// within Cloud's hourly allowance (one call each; at least one).
pub fn cloud_budget(interval: Duration) -> u64 {
    let passes_per_hour = (3600.0 / interval.as_secs_f64().max(1.0)).max(1.0);
    ((CLOUD_REQUESTS_PER_HOUR as f64 / passes_per_hour).floor() as u64).max(1)
}

/// One pass over every polled repository (the `polled_repositories` view
/// says which); returns how many were read.
pub async fn poll_all(services: &Services) -> Result<u64, sqlx::Error> {
    let pool = &services.pool;
    // Repositories no longer polled forget their heads.
    sqlx::query!(
        r#"DELETE FROM branch_heads b WHERE NOT EXISTS (
               SELECT FROM polled_repositories p
               WHERE p.integration_id = b.integration_id AND p.repository_id = b.repository_id)"#
    )
    .execute(pool)
    .await?;
    let polled = sqlx::query!(
        r#"SELECT p.integration_id AS "integration_id!", p.repository_id AS "repository_id!",
                  p.repository_name AS "repository_name!"
           FROM polled_repositories p JOIN integrations i ON i.id = p.integration_id
           WHERE i.polling_paused_until IS NULL OR i.polling_paused_until <= now()
           ORDER BY p.integration_id,
                    (SELECT min(b.read_at) FROM branch_heads b
                     WHERE b.integration_id = p.integration_id AND b.repository_id = p.repository_id) NULLS FIRST"#
    )
    .fetch_all(pool)
    .await?;
    let mut by_integration: HashMap<Uuid, Vec<(String, String)>> = HashMap::new();
    for row in polled {
        by_integration.entry(row.integration_id).or_default().push((row.repository_id, row.repository_name));
    }
    let mut read = 0;
    for (integration, repositories) in by_integration {
        read += poll_integration(services, integration, repositories).await?;
    }
    Ok(read)
}

/// Reads the repositories of one integration, oldest read first, within
/// Cloud's allowance.
async fn poll_integration(
    services: &Services,
    id: IntegrationId,
    mut repositories: Vec<(String, String)>,
) -> Result<u64, sqlx::Error> {
    let Some(integration) = integrations::find(&services.pool, id).await? else { return Ok(0) };
    if integration.provider == Provider::Cloud {
        let budget = usize::try_from(cloud_budget(services.config.poll_interval)).unwrap_or(usize::MAX);
        repositories.truncate(budget);
    }
    let what = "branch heads (polling)".to_owned();
    let mut remote = match Remote::open(services, &integration, None, what, 1).await? {
        Ok(remote) => remote.quiet(),
        Err(answer) => {
            tracing::warn!(integration = %id, message = ?answer.message, "polling: no credential at hand");
            return Ok(0);
        }
    };
    let mut read = 0;
    for (repository_id, repository_name) in repositories {
        match heads(&mut remote, &integration, &repository_name).await? {
            Read::Heads(heads) => {
                read += 1;
                compare(services, &integration, &repository_id, &repository_name, heads).await?;
            }
            Read::Failed => {}
            Read::Wait(wait) => {
                sqlx::query!(
                    "UPDATE integrations SET polling_paused_until = now() + make_interval(secs => $2) WHERE id = $1",
                    id,
                    wait.as_secs_f64()
                )
                .execute(&services.pool)
                .await?;
                break;
            }
        }
    }
    Ok(read)
}

/// What reading a repository's branches came to.
enum Read {
    Heads(Vec<Head>),
    /// Logged (the outbound log has every failed call); tried next pass.
    Failed,
    /// Bitbucket asked to slow down.
    Wait(Duration),
}

async fn heads(remote: &mut Remote<'_>, integration: &Integration, repository_name: &str) -> Result<Read, sqlx::Error> {
    let provider = integration.provider;
    let Some((owner, slug)) = owner_and_slug(provider, repository_name) else { return Ok(Read::Failed) };
    let mut heads = Vec::new();
    let mut page = None;
    for _ in 0..MAX_PAGES {
        let answer = remote.call(&branch_heads::list(provider, &owner, &slug, page.as_deref()), None).await?;
        if answer.status == Some(StatusCode::TOO_MANY_REQUESTS) {
            return Ok(Read::Wait(answer.retry_after.unwrap_or(PAUSE)));
        }
        let parsed = answer.body.as_ref().and_then(|body| branch_heads::parse_page(provider, body));
        let Some((found, next)) = parsed.filter(|_| answer.status.is_some_and(|s| s.is_success())) else {
            return Ok(Read::Failed);
        };
        heads.extend(found);
        page = next;
        if page.is_none() {
            return Ok(Read::Heads(heads));
        }
    }
    // More pages than read: what was read is not all, and a branch left
    // out would read as deleted.
    Ok(Read::Failed)
}

/// The changes between the heads kept and those read, in the words of a
/// push: a moved head is `updated`, a new branch `created`, a branch gone
/// `deleted`. By branch name, for a stable order.
pub fn changes(kept: &[Head], read: &[Head]) -> Vec<RefChange> {
    let before: HashMap<&str, &str> = kept.iter().map(|h| (h.branch.as_str(), h.commit.as_str())).collect();
    let after: HashMap<&str, &str> = read.iter().map(|h| (h.branch.as_str(), h.commit.as_str())).collect();
    let change = |name: &str, action: &str, commit: Option<&str>| RefChange {
        kind: "branch".into(),
        name: name.to_owned(),
        action: action.to_owned(),
        commit: commit.map(str::to_owned),
    };
    let mut changes: Vec<RefChange> = read
        .iter()
        .filter_map(|head| match before.get(head.branch.as_str()) {
            None => Some(change(&head.branch, "created", Some(&head.commit))),
            Some(commit) if *commit != head.commit => Some(change(&head.branch, "updated", Some(&head.commit))),
            Some(_) => None,
        })
        .collect();
    changes.extend(
        kept.iter().filter(|h| !after.contains_key(h.branch.as_str())).map(|h| change(&h.branch, "deleted", None)),
    );
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    changes
}

/// Compares what was read with what was kept: the first read of a
/// repository notes its heads; a later one routes what moved, then keeps
/// the heads read.
async fn compare(
    services: &Services,
    integration: &Integration,
    repository_id: &str,
    repository_name: &str,
    read: Vec<Head>,
) -> Result<(), sqlx::Error> {
    let pool = &services.pool;
    let rows = sqlx::query!(
        "SELECT branch, commit FROM branch_heads WHERE integration_id = $1 AND repository_id = $2",
        integration.id,
        repository_id
    )
    .fetch_all(pool)
    .await?;
    // A first read has nothing kept; a repository with no branch keeps the
    // empty marker.
    let first_read = rows.is_empty();
    let kept: Vec<Head> = rows
        .into_iter()
        .filter(|row| !row.branch.is_empty())
        .map(|row| Head { branch: row.branch, commit: row.commit })
        .collect();
    if !first_read {
        let refs = changes(&kept, &read);
        if !refs.is_empty() {
            let key = match integration.provider {
                Provider::DataCenter => "repo:refs_changed",
                Provider::Cloud => "repo:push",
            };
            let event = Event {
                key: key.into(),
                repository: webhooks::events::RepositoryRef {
                    id: repository_id.to_owned(),
                    name: repository_name.to_owned(),
                },
                actor: None,
                refs,
                pull_request: None,
            };
            if let Err(error) = webhooks::polled(services, &integration.slug, event).await {
                // Kept as they were: the next pass finds the same change.
                tracing::warn!(%error, repository = repository_name, "polling: a change could not be stored");
                return Ok(());
            }
        }
    }
    // The heads read replace those kept (a repository with no branch keeps
    // a marker, so that its first branch is a change, not a first read).
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "DELETE FROM branch_heads WHERE integration_id = $1 AND repository_id = $2",
        integration.id,
        repository_id
    )
    .execute(&mut *tx)
    .await?;
    let (branches, commits): (Vec<String>, Vec<String>) = if read.is_empty() {
        (vec![String::new()], vec![String::new()])
    } else {
        read.into_iter().map(|h| (h.branch, h.commit)).unzip()
    };
    sqlx::query!(
        r#"INSERT INTO branch_heads (integration_id, repository_id, branch, commit)
           SELECT $1, $2, branch, commit FROM unnest($3::text[], $4::text[]) AS read (branch, commit)"#,
        integration.id,
        repository_id,
        &branches,
        &commits
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(branch: &str, commit: &str) -> Head {
        Head { branch: branch.into(), commit: commit.repeat(40) }
    }

    #[test]
    fn moved_new_and_gone_branches_read_as_a_push_would_say() {
        let kept = [head("main", "a"), head("old", "b"), head("same", "c")];
        let read = [head("main", "d"), head("new", "e"), head("same", "c")];
        let said: Vec<(String, String, Option<String>)> =
            changes(&kept, &read).into_iter().map(|c| (c.name, c.action, c.commit)).collect();
        assert_eq!(
            said,
            [
                ("main".into(), "updated".into(), Some("d".repeat(40))),
                ("new".into(), "created".into(), Some("e".repeat(40))),
                ("old".into(), "deleted".into(), None),
            ]
        );
        assert_eq!(changes(&read, &read), []);
    }

    #[test]
    fn cloud_s_allowance_bounds_the_repositories_of_a_pass() {
        assert_eq!(cloud_budget(Duration::from_secs(60)), 16, "1,000 an hour over 60 passes");
        assert_eq!(cloud_budget(Duration::from_secs(300)), 83);
        assert_eq!(cloud_budget(Duration::from_secs(7200)), 1000, "a pass an hour or less often: all of it");
        assert_eq!(cloud_budget(Duration::from_secs(1)), 1, "at least one");
    }
}
