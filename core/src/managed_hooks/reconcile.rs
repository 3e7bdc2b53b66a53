//! Reconciling one repository: Bitgate's hook there is brought to what it
//! should be and what was found is kept, as JBS's reconciler does on every
//! scan (bitbucket-next.md §4):
//!
//! - a stack uses the repository and management is on: a missing hook is
//!   created, one that differs (URL, events, active, name; the secret on
//!   Data Center, where it can be read, and on Cloud when the secret Bitgate
//!   last wrote is not the current one) is updated, and copies of it are
//!   deleted;
//! - no stack uses it any more: Bitgate's hook there is deleted;
//! - management off: the hook is only looked at, never written;
//! - hooks of other names are never touched, and one made by hand that
//!   already delivers to the endpoint is left as it is, with no second one
//!   beside it (every push would come twice).
//!
//! Changes and failures are in the integration's outbound log (successful
//! reads are not: an hourly look at every repository would bury it). A
//! refusal (401, 403) is the repository's state, `not_permitted`, saying
//! what to grant: the integration itself stays usable for everything else.
//! No answer, 5xx or 429: the job runs again later, the state kept.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{enqueue_integration, HookState, HookStatus};
use crate::{
    bitbucket::{
        calls::Answer,
        excerpt,
        repository_hooks::{self, differences, failed_invocation, hook_name, own_hook, Difference, Found, Wanted},
    },
    integrations::{self, Integration, IntegrationId, Provider},
    jobs::{self, Job},
    platform::sending::{owner_and_slug, said, Remote},
    Services,
};

/// How many repositories one request reconciles at once (Repair, rotation,
/// deletion): each lane holds a database connection only between calls.
pub const CONCURRENCY: usize = 8;
/// How long a request waits for the reconciling it started.
const REQUEST_WAIT: Duration = Duration::from_secs(20);
/// How long the reconciling a request started waits for repositories
/// other processes hold.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(60);
/// A reconcile is cut off well within its job's lease ([`jobs::LEASE`]).
const WITHIN_LEASE: Duration = Duration::from_secs(120);
/// At most this many pages of hooks are read (a repository has a handful).
const MAX_PAGES: usize = 10;

/// What a reconcile came to for its job.
#[derive(Debug)]
enum Outcome {
    Done,
    /// Bitbucket could not be asked: again after the wait.
    Again(Duration, String),
}

/// What is kept of a repository after a check.
enum Kept {
    /// Its row, as found and left.
    Hook { status: HookStatus, hook_id: Option<String>, secret_digest: Option<Vec<u8>> },
    /// No stack uses it and no hook of Bitgate's is left: its row goes.
    Nothing,
}

/// Runs a `hooks.reconcile` job.
pub(crate) async fn run_job(services: &Services, job: &Job) -> Result<(), sqlx::Error> {
    run_job_as(services, job, false).await
}

/// Runs a reconcile job; `leaving`: as if no stack used its repository.
/// Bounded well within the job's lease, so that no other process takes
/// the job while this one is still at it.
async fn run_job_as(services: &Services, job: &Job, leaving: bool) -> Result<(), sqlx::Error> {
    let pool = &services.pool;
    let integration = job.payload["integration"].as_str().and_then(|raw| Uuid::parse_str(raw).ok());
    let (Some(integration), Some(repository)) = (integration, job.payload["repository"].as_str()) else {
        return jobs::complete(pool, job).await;
    };
    let reconciled = tokio::time::timeout(
        WITHIN_LEASE,
        reconcile_repository(services, integration, repository, job.attempt, leaving),
    );
    let outcome = match reconciled.await {
        Ok(outcome) => outcome?,
        Err(_) => Outcome::Again(jobs::backoff(job.attempt), "The check took too long; it runs again later.".into()),
    };
    match outcome {
        Outcome::Done => jobs::complete_or_rerun(pool, job).await,
        Outcome::Again(wait, why) => {
            // What the admin sees says the last check failed, and why.
            sqlx::query!(
                r#"UPDATE repository_hooks SET message = $3, checked_at = now()
                   WHERE integration_id = $1 AND repository_id = $2"#,
                integration,
                repository,
                format!("The last check failed ({why}); it runs again later. The state is the one found before.")
            )
            .execute(pool)
            .await?;
            jobs::again(pool, job, wait, Some(&why)).await
        }
    }
}

/// Reconciles every repository of an integration now, for a request:
/// each repository's job is queued, then claimed and run by
/// [`CONCURRENCY`] lanes of this process; one a worker holds already is
/// waited for. The request waits at most [`REQUEST_WAIT`]: the lanes run
/// detached, so what is not done by then goes on after the answer (and a
/// request dropped midway leaves no job half-claimed). A repository
/// Bitbucket could not be asked about is left to its job's retry. Returns
/// how many repositories it had.
pub async fn integration_now(services: &Services, integration: IntegrationId) -> Result<usize, sqlx::Error> {
    reconcile_now(services, integration, false).await
}

async fn reconcile_now(services: &Services, integration: IntegrationId, leaving: bool) -> Result<usize, sqlx::Error> {
    let mut tx = services.pool.begin().await?;
    let keys = enqueue_integration(&mut tx, integration).await?;
    tx.commit().await?;
    let count = keys.len();
    if count == 0 {
        return Ok(0);
    }
    let services = services.clone();
    let work = tokio::spawn(async move {
        let deadline = Instant::now() + WAIT_FOR_OTHERS;
        loop {
            let lanes = join_all((0..CONCURRENCY.min(keys.len())).map(|_| run_keyed(&services, &keys, leaving)));
            for result in lanes.await {
                result?;
            }
            if !jobs::any_running(&services.pool, &keys).await? || Instant::now() > deadline {
                return Ok::<(), sqlx::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    match tokio::time::timeout(REQUEST_WAIT, work).await {
        Ok(Ok(done)) => done?,
        Ok(Err(panicked)) => tracing::error!(error = %panicked, "reconciling hooks failed"),
        Err(_) => tracing::info!(%integration, "hooks still being reconciled after the answer"),
    }
    Ok(count)
}

/// One lane of [`reconcile_now`]: claims and runs jobs of `keys` until
/// none is due.
async fn run_keyed(services: &Services, keys: &[String], leaving: bool) -> Result<(), sqlx::Error> {
    while let Some(job) = jobs::claim_keyed(&services.pool, keys).await? {
        run_job_as(services, &job, leaving).await?;
    }
    Ok(())
}

/// Before an integration is deleted: Bitgate's hook is deleted from each of
/// its repositories (management on), through the repositories' jobs as
/// every reconcile (a worker at the same repository is waited for). A hook
/// Bitbucket could not be asked about in time stays (its endpoint answers
/// 404 from then on). Returns how many of Bitgate's hooks Bitgate knows
/// are left in Bitbucket (management off: all it found).
pub async fn remove_all(services: &Services, integration: &Integration) -> Result<i64, sqlx::Error> {
    if integration.options.manage_webhooks {
        reconcile_now(services, integration.id, true).await?;
    }
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "left!" FROM repository_hooks WHERE integration_id = $1 AND hook_id IS NOT NULL"#,
        integration.id
    )
    .fetch_one(&services.pool)
    .await
}

/// Reconciles one repository of an integration; `leaving`: as if no stack
/// used it any more (the integration is being deleted).
async fn reconcile_repository(
    services: &Services,
    integration_id: IntegrationId,
    repository_id: &str,
    attempt: i32,
    leaving: bool,
) -> Result<Outcome, sqlx::Error> {
    let pool = &services.pool;
    let Some(integration) = integrations::find(pool, integration_id).await? else { return Ok(Outcome::Done) };
    let used = sqlx::query_scalar!(
        r#"SELECT repository_name FROM stacks WHERE integration_id = $1 AND repository_id = $2
           ORDER BY created_at DESC LIMIT 1"#,
        integration_id,
        repository_id
    )
    .fetch_optional(pool)
    .await?;
    let kept = sqlx::query!(
        r#"SELECT repository_name, hook_id, secret_digest FROM repository_hooks
           WHERE integration_id = $1 AND repository_id = $2"#,
        integration_id,
        repository_id
    )
    .fetch_optional(pool)
    .await?;
    let Some(repository_name) = used.clone().or_else(|| kept.as_ref().map(|k| k.repository_name.clone())) else {
        return Ok(Outcome::Done);
    };
    let check = RepositoryCheck {
        services,
        integration: &integration,
        repository_name: &repository_name,
        used: used.is_some() && !leaving,
        hook_id: kept.as_ref().and_then(|k| k.hook_id.clone()),
        secret_digest: kept.and_then(|k| k.secret_digest),
        attempt,
    };
    let (kept, outcome) = match check.run().await? {
        Ok(kept) => (Some(kept), Outcome::Done),
        Err(Unanswered(wait, why)) => (None, Outcome::Again(wait, why)),
    };
    match kept {
        Some(Kept::Hook { status, hook_id, secret_digest }) => {
            sqlx::query!(
                r#"INSERT INTO repository_hooks
                       (integration_id, repository_id, repository_name, state, message, hook_id, secret_digest)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (integration_id, repository_id) DO UPDATE
                      SET repository_name = $3, state = $4, message = $5, hook_id = $6, secret_digest = $7,
                          checked_at = now()"#,
                integration_id,
                repository_id,
                repository_name,
                status.state.as_str(),
                status.message,
                hook_id,
                secret_digest
            )
            .execute(pool)
            .await?;
        }
        Some(Kept::Nothing) => {
            sqlx::query!(
                "DELETE FROM repository_hooks WHERE integration_id = $1 AND repository_id = $2",
                integration_id,
                repository_id
            )
            .execute(pool)
            .await?;
        }
        None => {}
    }
    Ok(outcome)
}

/// Bitbucket gave no usable answer: try again after the wait.
struct Unanswered(Duration, String);

/// One check of one repository, with what is kept of its last.
struct RepositoryCheck<'a> {
    services: &'a Services,
    integration: &'a Integration,
    repository_name: &'a str,
    /// A stack of the integration uses the repository.
    used: bool,
    hook_id: Option<String>,
    secret_digest: Option<Vec<u8>>,
    attempt: i32,
}

/// A call that did not succeed, as the repository's state sees it.
enum Failure {
    /// 401 or 403: the message says what to grant.
    NotPermitted(String),
    /// Any other answer (404, 400), in words.
    Said(String),
    /// No use asking now.
    Unanswered(Unanswered),
}

impl RepositoryCheck<'_> {
    async fn run(&self) -> Result<Result<Kept, Unanswered>, sqlx::Error> {
        let options = &self.integration.options;
        if options.disable_webhooks {
            return Ok(Ok(self.unmanaged()));
        }
        let provider = self.integration.provider;
        let Some((owner, slug)) = owner_and_slug(provider, self.repository_name) else {
            let message = format!("\u{201c}{}\u{201d} is not a repository name Bitbucket knows.", self.repository_name);
            return Ok(Ok(self.kept(HookState::Missing, message, None)));
        };
        let what = format!("webhook of {}", self.repository_name);
        // No credential at hand (a Cloud integration not connected): the
        // state stays as it was, and the job tries again.
        let mut remote = match Remote::open(self.services, self.integration, None, what, self.attempt).await? {
            // An hourly look at every repository would bury the log: only
            // changes and failures are logged.
            Ok(remote) => remote.quiet(),
            Err(answer) => {
                let why = answer.message.unwrap_or_else(|| "Bitgate has no credential for Bitbucket.".into());
                return Ok(Err(Unanswered(jobs::backoff(self.attempt), why)));
            }
        };
        let secret = match integrations::webhook_secret(
            &self.services.pool,
            &self.services.keyring,
            self.integration.id,
        )
        .await
        {
            Ok(Some(secret)) => secret,
            Ok(None) => return Ok(Ok(Kept::Nothing)),
            Err(error) => return Ok(Err(Unanswered(jobs::backoff(self.attempt), error.to_string()))),
        };
        let url = integrations::webhook_url(&self.services.config, &self.integration.slug);
        let wanted = Wanted { provider, name: hook_name(&self.integration.name), url: &url, secret: secret.expose() };
        let digest = Sha256::digest(secret.expose().as_bytes()).to_vec();

        let listed = match self.list(&mut remote, &owner, &slug).await? {
            Ok(listed) => listed,
            Err(answer) => {
                let failure = self.failure(answer);
                return Ok(self.after(failure, HookState::Missing, "Bitgate could not read the repository's hooks"));
            }
        };
        let (ours, duplicates) = own_hook(&wanted.name, self.hook_id.as_deref(), &listed);
        let manage = options.manage_webhooks;

        if !self.used {
            if manage {
                for hook in ours.into_iter().chain(duplicates) {
                    if let Err(failure) = self.delete(&mut remote, &owner, &slug, hook).await? {
                        return Ok(self.after(
                            failure,
                            HookState::Installed,
                            "Bitbucket refused to delete Bitgate's hook",
                        ));
                    }
                }
            }
            return Ok(Ok(Kept::Nothing));
        }
        // A hook made by hand under another name that delivers here: left
        // as it is, and no second one is added (every push would come twice).
        let by_hand = ours.is_none().then(|| delivering_here(&listed, &url)).flatten();
        if let Some(hook) = by_hand {
            return Ok(Ok(self.made_by_hand(&mut remote, &owner, &slug, &wanted, hook).await?));
        }
        if !manage {
            return Ok(Ok(self.looked_at(&mut remote, &owner, &slug, &wanted, ours).await?));
        }
        for hook in duplicates {
            if let Err(failure) = self.delete(&mut remote, &owner, &slug, hook).await? {
                return Ok(self.after(
                    failure,
                    HookState::Installed,
                    "Bitbucket refused to delete a copy of Bitgate's hook",
                ));
            }
        }
        let Some(hook) = ours else {
            let (call, body) = repository_hooks::create(&owner, &slug, &wanted);
            let answer = remote.call(&call, Some(&body)).await?;
            let created_id = answer.body.as_ref().and_then(|body| match provider {
                Provider::DataCenter => body["id"].as_u64().map(|id| id.to_string()),
                Provider::Cloud => body["uuid"].as_str().map(str::to_owned),
            });
            return Ok(match self.answered(answer) {
                Ok(()) => Ok(Kept::Hook {
                    status: status(HookState::Installed, "Created by Bitgate.".into()),
                    hook_id: created_id,
                    secret_digest: Some(digest),
                }),
                Err(failure) => self.after(failure, HookState::Missing, "Bitbucket refused to create Bitgate's hook"),
            });
        };
        let differs = self.differences(&wanted, hook, &digest);
        if differs.is_empty() {
            return Ok(Ok(self.delivering(&mut remote, &owner, &slug, hook, Some(digest)).await?));
        }
        let (call, body) = repository_hooks::update(&owner, &slug, &hook.id, &wanted);
        let answer = remote.call(&call, Some(&body)).await?;
        let answer_status = answer.status;
        Ok(match self.answered(answer) {
            Ok(()) => {
                let found = differs.iter().map(|d| d.in_words()).collect::<Vec<_>>().join("; ");
                Ok(Kept::Hook {
                    status: status(HookState::Installed, format!("Repaired by Bitgate (found: {found}).")),
                    hook_id: Some(hook.id.clone()),
                    secret_digest: Some(digest),
                })
            }
            // Deleted by hand since it was listed: created on the next run.
            Err(Failure::Said(_)) if is_gone(&answer_status) => {
                Err(Unanswered(Duration::ZERO, "the hook was deleted while Bitgate repaired it".into()))
            }
            Err(failure) => self.after(failure, HookState::Differs, "Bitbucket refused to repair Bitgate's hook"),
        })
    }

    /// Every hook of the repository, over its pages.
    async fn list(
        &self,
        remote: &mut Remote<'_>,
        owner: &str,
        slug: &str,
    ) -> Result<Result<Vec<Found>, Answer>, sqlx::Error> {
        let provider = self.integration.provider;
        let mut listed = Vec::new();
        let mut page = None;
        for _ in 0..MAX_PAGES {
            let answer = remote.call(&repository_hooks::list(provider, owner, slug, page.as_deref()), None).await?;
            let parsed = answer.body.as_ref().and_then(|body| repository_hooks::parse_page(provider, body));
            let Some((hooks, next)) = parsed.filter(|_| answer.status.is_some_and(|s| s.is_success())) else {
                return Ok(Err(answer));
            };
            listed.extend(hooks);
            page = next;
            if page.is_none() {
                break;
            }
        }
        Ok(Ok(listed))
    }

    async fn delete(
        &self,
        remote: &mut Remote<'_>,
        owner: &str,
        slug: &str,
        hook: &Found,
    ) -> Result<Result<(), Failure>, sqlx::Error> {
        let answer =
            remote.call(&repository_hooks::delete(self.integration.provider, owner, slug, &hook.id), None).await?;
        // Gone already is as good as deleted.
        if answer.status == Some(StatusCode::NOT_FOUND) {
            return Ok(Ok(()));
        }
        Ok(self.answered(answer))
    }

    /// How `hook` differs from the wanted one; on Cloud, whose answers
    /// never carry the secret, a secret Bitgate did not write last differs.
    fn differences(&self, wanted: &Wanted<'_>, hook: &Found, digest: &[u8]) -> Vec<Difference> {
        let mut differs = differences(wanted, hook);
        // The digest is of what Bitgate wrote into the hook it knows: a hook
        // of its name made again by hand may sign with anything.
        let stale = self.secret_digest.as_deref() != Some(digest) || self.hook_id.as_deref() != Some(hook.id.as_str());
        if self.integration.provider == Provider::Cloud && stale && !differs.contains(&Difference::Secret) {
            differs.push(Difference::Secret);
        }
        differs
    }

    /// Management off: what the hook is, unchanged.
    async fn looked_at(
        &self,
        remote: &mut Remote<'_>,
        owner: &str,
        slug: &str,
        wanted: &Wanted<'_>,
        ours: Option<&Found>,
    ) -> Result<Kept, sqlx::Error> {
        let Some(hook) = ours else {
            let message = "No hook delivers to this integration, and Bitgate does not manage its hooks: \
                           add one by hand with the endpoint URL, the secret and the trigger table's events, \
                           or turn on Manage webhooks.";
            return Ok(self.kept(HookState::Missing, message.into(), None));
        };
        // A hook Bitgate made and someone renamed since is still its own.
        let differs: Vec<Difference> = differences(wanted, hook)
            .into_iter()
            .filter(|d| !(*d == Difference::Name && self.hook_id.as_deref() == Some(hook.id.as_str())))
            .collect();
        if !differs.is_empty() {
            let found = differs.iter().map(|d| d.in_words()).collect::<Vec<_>>().join("; ");
            let message = format!("Not as it should be: {found}. Bitgate does not manage this integration's hooks.");
            return Ok(self.kept(HookState::Differs, message, Some(hook.id.clone())));
        }
        self.delivering(remote, owner, slug, hook, self.secret_digest.clone()).await
    }

    /// A hook of another name that delivers to this integration (made by
    /// hand): never changed, only said how it is.
    async fn made_by_hand(
        &self,
        remote: &mut Remote<'_>,
        owner: &str,
        slug: &str,
        wanted: &Wanted<'_>,
        hook: &Found,
    ) -> Result<Kept, sqlx::Error> {
        let differs: Vec<Difference> =
            differences(wanted, hook).into_iter().filter(|d| *d != Difference::Name).collect();
        let made = format!(
            "The hook \u{201c}{}\u{201d}, made by hand, delivers to this integration: Bitgate leaves it as it is and adds none \
             (delete it to let Bitgate manage this repository's hook)",
            excerpt(&hook.name)
        );
        if !differs.is_empty() {
            let found = differs.iter().map(|d| d.in_words()).collect::<Vec<_>>().join("; ");
            return Ok(self.kept(HookState::Differs, format!("{made}, but {found}."), None));
        }
        let mut kept = self.delivering(remote, owner, slug, hook, self.secret_digest.clone()).await?;
        if let Kept::Hook { status, hook_id, .. } = &mut kept {
            if status.state == HookState::Installed {
                status.message = format!("{made}.");
            }
            // Not Bitgate's: never taken for its own by its id.
            *hook_id = None;
        }
        Ok(kept)
    }

    /// The hook is as it should be: on Data Center, whether its last
    /// delivery passed (an answer that cannot tell counts as passed).
    async fn delivering(
        &self,
        remote: &mut Remote<'_>,
        owner: &str,
        slug: &str,
        hook: &Found,
        secret_digest: Option<Vec<u8>>,
    ) -> Result<Kept, sqlx::Error> {
        let hook_id = Some(hook.id.clone());
        if self.integration.provider == Provider::DataCenter {
            let answer = remote.call(&repository_hooks::latest_invocation(owner, slug, &hook.id), None).await?;
            if let Some(why) = answer.body.as_ref().and_then(failed_invocation) {
                let message = format!("Bitbucket's last delivery to this hook failed: {why}.");
                return Ok(Kept::Hook { status: status(HookState::Failing, message), hook_id, secret_digest });
            }
        }
        Ok(Kept::Hook { status: status(HookState::Installed, "As it should be.".into()), hook_id, secret_digest })
    }

    /// Webhooks are disabled for the integration.
    fn unmanaged(&self) -> Kept {
        if !self.used {
            return Kept::Nothing;
        }
        let message = "Webhooks are disabled for this integration: Bitgate neither uses nor manages them.";
        self.kept(HookState::NotManaged, message.into(), self.hook_id.clone())
    }

    fn kept(&self, state: HookState, message: String, hook_id: Option<String>) -> Kept {
        Kept::Hook { status: status(state, message), hook_id, secret_digest: self.secret_digest.clone() }
    }

    /// A success, or the failure.
    fn answered(&self, answer: Answer) -> Result<(), Failure> {
        if answer.status.is_some_and(|s| s.is_success()) {
            return Ok(());
        }
        Err(self.failure(answer))
    }

    fn failure(&self, answer: Answer) -> Failure {
        match answer.status {
            Some(status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) => {
                Failure::NotPermitted(self.what_to_grant(status))
            }
            Some(StatusCode::NOT_FOUND) => Failure::Said(format!(
                "Bitbucket has no repository {} (404): it was deleted or renamed, or Bitgate's credential cannot see it.",
                self.repository_name
            )),
            Some(status)
                if status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT =>
            {
                let wait = answer.retry_after.unwrap_or_else(|| jobs::backoff(self.attempt));
                Failure::Unanswered(Unanswered(wait, said(status, answer.message.as_deref())))
            }
            Some(status) => Failure::Said(said(status, answer.message.as_deref())),
            None => Failure::Unanswered(Unanswered(
                jobs::backoff(self.attempt),
                answer.message.unwrap_or_else(|| "Bitbucket could not be reached.".into()),
            )),
        }
    }

    /// What a failure leaves of the repository: `not_permitted` for a
    /// refusal, `otherwise` with `context` for any other answer, and
    /// nothing (try again later) for none.
    fn after(&self, failure: Failure, otherwise: HookState, context: &str) -> Result<Kept, Unanswered> {
        match failure {
            Failure::NotPermitted(message) => Ok(self.kept(HookState::NotPermitted, message, self.hook_id.clone())),
            Failure::Said(said) => Ok(self.kept(otherwise, format!("{context}: {said}"), self.hook_id.clone())),
            Failure::Unanswered(unanswered) => Err(unanswered),
        }
    }

    fn what_to_grant(&self, status: StatusCode) -> String {
        let grant = match self.integration.provider {
            Provider::DataCenter => format!(
                "give Bitgate's token Repository admin (REPO_ADMIN) on {}, or turn off Manage webhooks and add the hook by hand",
                self.repository_name
            ),
            Provider::Cloud => "give the OAuth consumer the Webhooks: Read and write permission (scope webhook) \
                                and its user admin rights on the repository, then reconnect"
                .to_owned(),
        };
        // Data Center answers 401 to a missing permission and to a token
        // revoked alike; the connection test tells the two apart.
        let or_revoked = if status == StatusCode::UNAUTHORIZED {
            " If the credential itself was revoked or expired, Test connection says so."
        } else {
            ""
        };
        format!(
            "Bitbucket does not let Bitgate manage this repository's webhooks ({}): {grant}.{or_revoked}",
            status.as_u16()
        )
    }
}

/// A hook of any name that delivers to `url`, this integration's endpoint.
fn delivering_here<'a>(listed: &'a [Found], url: &str) -> Option<&'a Found> {
    listed.iter().find(|hook| hook.url.trim_end_matches('/') == url.trim_end_matches('/'))
}

fn is_gone(status: &Option<StatusCode>) -> bool {
    *status == Some(StatusCode::NOT_FOUND)
}

fn status(state: HookState, message: String) -> HookStatus {
    HookStatus { state, message }
}
