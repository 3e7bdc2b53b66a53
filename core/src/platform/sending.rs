//! Durable outbound work (SPEC.md, "Outbound work is durable"): the jobs
//! that take build statuses and pull-request comments to Bitbucket, and
//! the one that asks Cloud for a commit's full id ([`commits`]). What
//! they share lives here: a credential at hand for the integration's
//! Bitbucket, every call logged, and what an answer decides:
//!
//! - 2xx: done. If what to send changed meanwhile, the job runs again at once.
//! - Network errors, 5xx, 408 and 429: again after `Retry-After` or a
//!   backoff, for up to 24 hours from when the latest revision was stored.
//! - 401 and 403: the integration turns `error` saying what its credential
//!   lacks, and its queue is held until a test passes again.
//! - Any other answer (400, 404, …): failed, with Bitbucket's message; not
//!   retried, as the same request would get the same answer.
//!
//! A process that dies mid-call leaves its job leased; the lease expires
//! and another process takes the job.

pub mod comments;
pub mod commits;
pub mod statuses;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use crate::{
    bitbucket::{
        calls::{self, Answer, Call},
        cloud, datacenter, parse_repository_name,
    },
    integrations::{self, checks, DataCenterAuth, HealthState, Integration, Provider},
    jobs::{self, Job},
    secret::Secret,
    Services,
};

/// How long a revision is retried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long a held job waits before it looks again (a passing test releases it at once).
const HELD: Duration = Duration::from_secs(3600);
const HELD_NOTE: &str = "held: the integration is in error; a passing test releases it";
const GAVE_UP: &str = "Not sent: Bitbucket could not be reached for 24 hours.";

/// Whether a job goes on with its row's latest revision.
enum Gate {
    /// Send it, with the integration's credential.
    Go(Box<Integration>),
    /// The job was ended or put off (gone with its integration, or held).
    Ended,
    /// Retried for 24 hours: it fails now.
    GiveUp,
}

/// What every outbound job checks before a call: its integration exists
/// and is not in error (its queue is held then), and the revision has not
/// waited past [`GIVE_UP_AFTER`].
async fn gate(pool: &PgPool, job: &Job, integration: Uuid, pending_since: OffsetDateTime) -> Result<Gate, sqlx::Error> {
    let Some(integration) = integrations::find(pool, integration).await? else {
        jobs::complete(pool, job).await?;
        return Ok(Gate::Ended);
    };
    if integration.health.state == HealthState::Error {
        jobs::again(pool, job, HELD, Some(HELD_NOTE)).await?;
        return Ok(Gate::Ended);
    }
    if OffsetDateTime::now_utc() - pending_since > GIVE_UP_AFTER {
        return Ok(Gate::GiveUp);
    }
    Ok(Gate::Go(Box::new(integration)))
}

/// What an answer decides for the job.
enum Decision {
    Done,
    Failed(String),
    Again(Duration, String),
}

/// The integration's Bitbucket, with a credential: where each call of one
/// job attempt goes, logged as the stack's and the job's. Also the managed
/// hooks' ([`crate::managed_hooks`]).
pub(crate) struct Remote<'a> {
    services: &'a Services,
    integration: &'a Integration,
    stack: Option<Uuid>,
    what: String,
    attempt: i32,
    client: reqwest::Client,
    base: Url,
    token: Secret<String>,
    /// Data Center's OAuth 1.0a consumer, which signs each call with `token`.
    oauth1: Option<datacenter::oauth1::Consumer>,
    /// Successful reads go unlogged (polling's every minute and the hourly
    /// look at every hook would bury the rest); changes and failures are
    /// logged all the same.
    quiet: bool,
}

impl<'a> Remote<'a> {
    /// `Err`: no call can be made; the answer says why (a refused
    /// credential as 401, anything else as unsendable).
    pub(crate) async fn open(
        services: &'a Services,
        integration: &'a Integration,
        stack: Option<Uuid>,
        what: String,
        attempt: i32,
    ) -> Result<Result<Remote<'a>, Answer>, sqlx::Error> {
        let config = &services.config;
        let (client, base, token, oauth1) = match integration.provider {
            Provider::DataCenter => {
                let connection = match checks::stored_connection(services, integration).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(why)) => return Ok(Err(refusal(why))),
                    Err(error) => return Ok(Err(unsendable(error.to_string()))),
                };
                let Ok(client) = datacenter::client_for(&connection, config) else {
                    return Ok(Err(unsendable("The integration's CA certificate cannot be used.".into())));
                };
                (client, connection.api_url, connection.token, connection.oauth1)
            }
            Provider::Cloud => {
                let Ok(client) = cloud::http_client(config) else {
                    return Ok(Err(unsendable("Bitgate could not make an HTTP client.".into())));
                };
                let token = match checks::cloud_access_token(services, integration.id).await {
                    Ok(Ok(token)) => token,
                    Ok(Err(why)) => return Ok(Err(refusal(why))),
                    Err(error) => return Ok(Err(unsendable(error.to_string()))),
                };
                (client, cloud::Endpoints::from_config(config).api, token, None)
            }
        };
        Ok(Ok(Remote { services, integration, stack, what, attempt, client, base, token, oauth1, quiet: false }))
    }

    /// Makes the call and logs it. An OAuth access token refused early
    /// (revoked, expired before its time) is refreshed once and the call
    /// made again; an OAuth 1.0a call refused as a replay (`nonce_used`) is
    /// signed anew and made again once.
    pub(crate) async fn call(&mut self, call: &Call, body: Option<&Value>) -> Result<Answer, sqlx::Error> {
        let answer = self.once(call, body).await?;
        if self.oauth1.is_some() && answer.oauth_problem.as_deref() == Some("nonce_used") {
            // Something between resent the request: this one is signed anew.
            return self.once(call, body).await;
        }
        let oauth = match &self.integration.datacenter {
            Some(dc) => dc.auth == DataCenterAuth::OAuth2,
            None => self.integration.provider == Provider::Cloud,
        };
        if !oauth || answer.status != Some(StatusCode::UNAUTHORIZED) {
            return Ok(answer);
        }
        let (provider, id, refused) = (self.integration.provider, self.integration.id, self.token.clone());
        self.token = match checks::token_after_refusal(self.services, provider, id, refused).await {
            Ok(Ok(token)) => token,
            Ok(Err(why)) => return Ok(refusal(why)),
            Err(error) => return Ok(unsendable(error.to_string())),
        };
        self.once(call, body).await
    }

    /// From now on successful reads (GET) are not logged.
    pub(crate) fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    async fn once(&self, call: &Call, body: Option<&Value>) -> Result<Answer, sqlx::Error> {
        let auth = match &self.oauth1 {
            Some(consumer) => datacenter::Auth::OAuth1(consumer, self.token.expose()),
            None => datacenter::Auth::Bearer(self.token.expose()),
        };
        let answer = calls::send(&self.client, &self.services.config, &self.base, call, auth, body).await;
        let unlogged = self.quiet && call.method == "GET" && answer.status.is_some_and(|s| s.is_success());
        if !unlogged {
            record(&self.services.pool, self.integration.id, self.stack, &self.what, call, &answer, self.attempt)
                .await?;
        }
        Ok(answer)
    }
}

/// What an answer decides; a refusal of the credential turns the
/// integration `error` (`lacks`: what it needs, in the product's words).
async fn decide(
    pool: &PgPool,
    integration: &Integration,
    job: &Job,
    answer: Answer,
    refused_what: &str,
) -> Result<Decision, sqlx::Error> {
    Ok(match answer.status {
        Some(status) if status.is_success() => Decision::Done,
        Some(status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) => {
            let message = match (&answer.oauth_problem, &answer.message) {
                // The link's own refusal, already said as what to fix.
                (Some(_), Some(why)) => format!("{why} Test the integration once fixed."),
                _ => refused(integration, status, answer.message.as_deref(), refused_what),
            };
            integrations::set_health(pool, integration.id, HealthState::Error, &message).await?;
            Decision::Again(HELD, message)
        }
        Some(status)
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT =>
        {
            let wait = answer.retry_after.unwrap_or_else(|| jobs::backoff(job.attempt)).min(GIVE_UP_AFTER);
            Decision::Again(wait, said(status, answer.message.as_deref()))
        }
        Some(status) => Decision::Failed(said(status, answer.message.as_deref())),
        None => Decision::Again(
            jobs::backoff(job.attempt),
            answer.message.unwrap_or_else(|| "Bitbucket could not be reached.".into()),
        ),
    })
}

pub(crate) fn said(status: StatusCode, message: Option<&str>) -> String {
    match message {
        Some(message) => format!("Bitbucket answered {}: {message}", status.as_u16()),
        None => format!("Bitbucket answered {}.", status.as_u16()),
    }
}

/// What the credential lacks, in the words of the product's settings.
fn refused(integration: &Integration, status: StatusCode, message: Option<&str>, what: &str) -> String {
    let lacks = match integration.provider {
        Provider::DataCenter => format!("its token needs Repository read (REPO_READ) on the repository to {what}"),
        Provider::Cloud => {
            format!("its consumer needs the Repositories: Read and Pull requests: Read permissions to {what}")
        }
    };
    let quoted = message.map(|m| format!(" ({m})")).unwrap_or_default();
    format!("Bitbucket refused to {what} with {}{quoted}: {lacks}. Test the integration once fixed.", status.as_u16())
}

/// `PRJ/slug` or `workspace/slug`, checked: neither can change the path.
pub(crate) fn owner_and_slug(provider: Provider, name: &str) -> Option<(String, String)> {
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
    Answer::made_up(Some(StatusCode::BAD_REQUEST), message)
}

/// The credential itself is refused (no token to be had).
fn refusal(message: String) -> Answer {
    Answer::made_up(Some(StatusCode::UNAUTHORIZED), message)
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
    // The path without its query: nothing a query carries belongs in the log.
    let path = call.path.split('?').next().unwrap_or_default();
    sqlx::query!(
        r#"INSERT INTO outbound_calls (integration_id, stack_id, what, method, path, status, ok, message, attempt)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        integration,
        stack,
        what,
        call.method,
        path,
        answer.status.map(|s| i32::from(s.as_u16())),
        answer.status.is_some_and(|s| s.is_success()),
        answer.message,
        attempt
    )
    .execute(pool)
    .await?;
    Ok(())
}
