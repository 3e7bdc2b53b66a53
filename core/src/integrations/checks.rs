//! The connection checks an integration's operations run: of new
//! credentials before anything is stored, and of the stored ones when an
//! admin tests again. A failed check is reported on the field an admin
//! would change, with the whole checklist for the pages.

use time::OffsetDateTime;

use super::{DataCenterAuth, Health, HealthState, Integration, IntegrationId, Provider};
use crate::{
    bitbucket::{
        cloud::{self, Account, Consumer, Endpoints, Mode, Tokens},
        datacenter::{self, oauth1, oauth2},
        Check, Report,
    },
    config::Config,
    oauth_tokens::{self, TokenProblem},
    secret::Secret,
    users::FieldError,
    Services,
};

/// A failed checklist as problems, each on the field `field_of` names.
/// Lines that did not run because an earlier one failed say so; they are
/// not problems of their own.
fn problems(report: &Report, field_of: impl Fn(&Check) -> &'static str) -> Vec<FieldError> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok && !c.message.starts_with("Not checked"))
        .map(|c| FieldError::new(field_of(c), &format!("check_{}", c.name), c.message.clone()))
        .collect()
}

/// A failed Data Center checklist as problems, each on its field.
pub fn datacenter_problems(report: &Report) -> Vec<FieldError> {
    problems(report, |check| match check.name {
        "server" => "datacenter.api_url",
        "owner" => "datacenter.username",
        "client" if check.message.contains("redirect URL") => "datacenter.oauth2.client_id",
        "client" if check.message.contains("client ID or secret") => "datacenter.oauth2.client_secret",
        "client" => "datacenter.api_url",
        "link" if check.message.contains("public key") => "datacenter.oauth1.public_key",
        "link" if check.message.contains("consumer key") => "datacenter.oauth1.consumer_key",
        "link" => "datacenter.api_url",
        _ => "datacenter.access_token",
    })
}

/// A failed Cloud checklist as problems, each on its field.
pub fn cloud_problems(report: &Report) -> Vec<FieldError> {
    problems(report, |check| match check.name {
        "workspace" => "cloud.workspace",
        "token" => "cloud.mode",
        "consumer" if check.message.contains("callback") => "cloud.client_id",
        "consumer" => "cloud.client_secret",
        _ => "cloud.client_id",
    })
}

/// The health of Data Center credentials that passed every check.
pub fn connected(report: &Report) -> Health {
    Health {
        state: HealthState::Connected,
        message: report.checks.first().map(|c| c.message.clone()).unwrap_or_default(),
        checked_at: Some(OffsetDateTime::now_utc()),
    }
}

/// Checks new Data Center credentials: the health to start with and the
/// checklist that passed (which the console shows, so an admin sees what
/// was proven); the checklist when one failed.
pub async fn check_datacenter(
    connection: &datacenter::Connection,
    config: &Config,
) -> Result<(Health, Report), Report> {
    let report = datacenter::check(connection, config).await;
    if report.passed() {
        Ok((connected(&report), report))
    } else {
        Err(report)
    }
}

/// Checks new Cloud credentials the way their mode allows
/// ([`cloud::check_new`]): the health to start with, and the tokens client
/// credentials obtained, and the checklist that passed; the checklist when
/// one failed.
pub async fn check_cloud(
    config: &Config,
    workspace: &str,
    consumer: &Consumer,
    mode: Mode,
) -> Result<(Health, Option<(Tokens, Account)>, Report), Report> {
    let (report, tokens) = cloud::check_new(config, workspace, consumer, mode).await?;
    let health = Health::of_new_cloud(workspace, mode, tokens.as_ref().map(|(_, account)| account));
    Ok((health, tokens, report))
}

/// Why the stored credentials could not even be read for a check.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("the integration has no stored credentials")]
    Missing,
    #[error(transparent)]
    Secret(#[from] super::SecretError),
    #[error("the stored credentials do not parse: {0}")]
    Corrupt(String),
    #[error("Bitgate could not prepare its HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The stored credentials of a Data Center integration, ready for the
/// checks and the REST calls: its access token, or its OAuth 2.0 link's
/// current token (refreshed when about to expire). The inner `Err` says,
/// for the page, why an OAuth 2.0 integration has no usable token.
pub async fn stored_connection(
    services: &Services,
    integration: &Integration,
) -> Result<Result<datacenter::Connection, String>, StoredError> {
    let dc = integration.datacenter.as_ref().ok_or(StoredError::Missing)?;
    let token = match dc.auth {
        DataCenterAuth::AccessToken => super::datacenter_token(&services.pool, &services.keyring, integration.id)
            .await?
            .ok_or(StoredError::Missing)?,
        DataCenterAuth::OAuth2 => {
            match usable(oauth_tokens::access_token(services, Provider::DataCenter, integration.id).await)? {
                Ok(token) => token,
                Err(why) => return Ok(Err(why)),
            }
        }
        DataCenterAuth::OAuth1 => {
            let (consumer, token) = super::datacenter_oauth1(&services.pool, &services.keyring, integration.id)
                .await?
                .ok_or(StoredError::Missing)?;
            let Some(token) = token else { return Ok(Err(NOT_CONNECTED.to_owned())) };
            return Ok(Ok(datacenter::Connection { oauth1: Some(consumer), ..connection_with(dc, token)? }));
        }
    };
    Ok(Ok(connection_with(dc, token)?))
}

const NOT_CONNECTED: &str =
    "The integration is not connected to Bitbucket: an admin must connect it (Connect or Reconnect on its page).";

/// Checks an OAuth 1.0a link's server: before it is saved, that it is
/// Bitbucket's OAuth 1.0a provider (the link itself comes after, with the
/// public key the integration's page shows); `strict` (a stored link
/// waiting to be connected), that the link exists and verifies the signature.
pub async fn check_datacenter_consumer(
    api_url: &url::Url,
    user_facing_url: &str,
    ca: Option<&reqwest::Certificate>,
    consumer: &oauth1::Consumer,
    strict: bool,
    config: &Config,
) -> Result<Health, Report> {
    let fail = |message: String| {
        let mut report = Report { checks: vec![Check::failed("link", message)], version: None };
        report.checks.push(Check::failed("token", "Not checked: fix the line above first."));
        report
    };
    let Ok(user_facing) = url::Url::parse(user_facing_url) else {
        return Err(fail("The user-facing URL is not a URL.".into()));
    };
    let endpoints = oauth1::Endpoints::new(api_url, &user_facing);
    let Ok(http) = datacenter::http_client(ca, config) else {
        return Err(fail("Bitgate could not prepare an HTTP client for this URL.".into()));
    };
    let callback = crate::bitbucket::oauth_callback_url(config);
    let answer = if strict {
        oauth1::request_token(&http, config, &endpoints, consumer, &callback).await.map(|_| ())
    } else {
        oauth1::probe(&http, config, &endpoints, consumer, &callback).await
    };
    match answer {
        Ok(()) => Ok(Health {
            state: HealthState::PendingAuthorization,
            message: "Waiting for the application link: paste the public key shown here into Bitbucket, then click Connect and approve."
                .into(),
            checked_at: Some(OffsetDateTime::now_utc()),
        }),
        Err(refused) => Err(fail(refused.message)),
    }
}

/// A Data Center connection with `token` (a new one after a 401).
pub fn connection_with(
    dc: &super::DataCenterView,
    token: Secret<String>,
) -> Result<datacenter::Connection, StoredError> {
    let api_url = url::Url::parse(&dc.api_url).map_err(|e| StoredError::Corrupt(e.to_string()))?;
    let ca = stored_ca(dc)?;
    Ok(datacenter::Connection { api_url, username: dc.username.clone().unwrap_or_default(), token, ca, oauth1: None })
}

/// The stored CA certificate of a Data Center integration, parsed.
pub fn stored_ca(dc: &super::DataCenterView) -> Result<Option<reqwest::Certificate>, StoredError> {
    dc.ca_certificate.as_deref().map(datacenter::parse_ca_certificate).transpose().map_err(StoredError::Corrupt)
}

/// Checks an OAuth 2.0 application link's client before it is saved (or
/// while it waits for its approval): a token request with a code that
/// cannot exist, which Bitbucket answers `invalid_grant` for a valid client.
pub async fn check_datacenter_client(
    api_url: &url::Url,
    user_facing_url: &str,
    ca: Option<&reqwest::Certificate>,
    client: &oauth2::Client,
    config: &Config,
) -> Result<Health, Report> {
    let fail = |message: String| {
        let mut report = Report { checks: vec![Check::failed("client", message)], version: None };
        report.checks.push(Check::failed("token", "Not checked: fix the line above first."));
        report
    };
    let Ok(user_facing) = url::Url::parse(user_facing_url) else {
        return Err(fail("The user-facing URL is not a URL.".into()));
    };
    let endpoints = oauth2::Endpoints::new(api_url, &user_facing, config);
    let Ok(http) = datacenter::http_client(ca, config) else {
        return Err(fail("Bitgate could not prepare an HTTP client for this URL.".into()));
    };
    match oauth2::check_client(&http, config, &endpoints, client).await {
        Ok(()) => Ok(Health {
            state: HealthState::PendingAuthorization,
            message: "Waiting for an admin to connect it: click Connect and approve in Bitbucket.".into(),
            checked_at: Some(OffsetDateTime::now_utc()),
        }),
        Err(error) => Err(fail(oauth2::message(&error, &endpoints))),
    }
}

/// The first lines of a Data Center OAuth 2.0 checklist while it has no token.
fn client_report() -> Report {
    let check = Check::passed("client", "Bitbucket accepted the application link's client ID and secret.");
    Report { checks: vec![check], version: None }
}

/// The checklist of a consumer that waits for an admin's approval.
fn pending_report() -> Report {
    let check = Check::passed("consumer", "Bitbucket accepted the consumer's key and secret.");
    Report { checks: vec![check], version: None }
}

/// Runs every check with the stored credentials; returns the checklist and
/// the health it gives (`connected`, `error`, or still `pending_authorization`
/// for a Cloud integration that waits for its approval).
pub async fn retest(services: &Services, integration: &Integration) -> Result<(Report, Health), StoredError> {
    let (mut report, mut state) = match integration.provider {
        Provider::DataCenter => {
            let connection = match stored_connection(services, integration).await? {
                Ok(connection) => connection,
                Err(why) => return retest_unconnected_link(services, integration, why).await,
            };
            let mut report = datacenter::check(&connection, &services.config).await;
            if report.passed() {
                let names = stack_repositories(services, integration.id).await?;
                report.checks.push(datacenter::check_statuses(&connection, &services.config, &names).await);
                let managed = integration.options.manage_webhooks;
                report.checks.push(datacenter::check_hooks(&connection, &services.config, &names, managed).await);
            }
            let state = if report.passed() { HealthState::Connected } else { HealthState::Error };
            (report, state)
        }
        Provider::Cloud => retest_cloud(services, integration).await?,
    };
    if integration.provider == Provider::Cloud && state == HealthState::Connected {
        let granted = integration.cloud.as_ref().map(|c| c.scopes.as_slice()).unwrap_or_default();
        report.checks.push(cloud::check_statuses(granted));
        report.checks.push(cloud::check_hooks(granted, integration.options.manage_webhooks));
        if !report.passed() {
            state = HealthState::Error;
        }
    }
    // The line that says what the integration reaches: Data Center's first
    // (the server), Cloud's workspace; or the first failure.
    let message = match report.first_failure() {
        Some(failure) => failure.message.clone(),
        None => match integration.provider {
            Provider::DataCenter => report.checks.first(),
            Provider::Cloud => report.checks.iter().find(|c| c.name == "workspace"),
        }
        .map(|c| c.message.clone())
        .unwrap_or_default(),
    };
    let health = Health { state, message, checked_at: Some(OffsetDateTime::now_utc()) };
    Ok((report, health))
}

/// The checks of a Data Center OAuth 2.0 integration with no usable token:
/// its client, and why there is no token. It still waits if never approved.
async fn retest_unconnected_link(
    services: &Services,
    integration: &Integration,
    why: String,
) -> Result<(Report, Health), StoredError> {
    let dc = integration.datacenter.as_ref().ok_or(StoredError::Missing)?;
    let connection = connection_with(dc, Secret::new(String::new()))?;
    let (api_url, user_facing, ca, config) =
        (&connection.api_url, dc.user_facing_url.as_str(), connection.ca.as_ref(), &services.config);
    let checked = match dc.auth {
        DataCenterAuth::OAuth1 => {
            let (consumer, _) = super::datacenter_oauth1(&services.pool, &services.keyring, integration.id)
                .await?
                .ok_or(StoredError::Missing)?;
            check_datacenter_consumer(api_url, user_facing, ca, &consumer, true, config).await.map(|_| {
                let passed = "Bitbucket's application link knows the consumer key and verified Bitgate's signature.";
                Report { checks: vec![Check::passed("link", passed)], version: None }
            })
        }
        _ => {
            let client = super::datacenter_oauth2_client(&services.pool, &services.keyring, integration.id)
                .await?
                .ok_or(StoredError::Missing)?;
            check_datacenter_client(api_url, user_facing, ca, &client, config).await.map(|_| client_report())
        }
    };
    let (mut report, state) = match checked {
        Ok(mut report) => {
            report.checks.push(Check::failed("token", why));
            let state = match integration.health.state {
                HealthState::PendingAuthorization => HealthState::PendingAuthorization,
                HealthState::Connected | HealthState::Error => HealthState::Error,
            };
            (report, state)
        }
        Err(report) => (report, HealthState::Error),
    };
    if state == HealthState::PendingAuthorization {
        // Not a failure of its own: the approval has not happened yet.
        report.checks.retain(|check| check.name != "token");
    }
    let message = match report.first_failure() {
        Some(failure) => failure.message.clone(),
        None => integration.health.message.clone(),
    };
    Ok((report, Health { state, message, checked_at: Some(OffsetDateTime::now_utc()) }))
}

/// The repositories the integration's stacks use, as `PRJ/slug`.
async fn stack_repositories(services: &Services, id: IntegrationId) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT DISTINCT repository_name FROM stacks WHERE integration_id = $1 ORDER BY repository_name LIMIT 50",
        id
    )
    .fetch_all(&services.pool)
    .await
}

/// The checks of a stored Cloud integration: the consumer, a usable token
/// (refreshed if needed), the scopes, the account, the workspace.
async fn retest_cloud(services: &Services, integration: &Integration) -> Result<(Report, HealthState), StoredError> {
    let config = &services.config;
    let endpoints = Endpoints::from_config(config);
    let http = cloud::http_client(config)?;
    let (consumer, workspace, _) =
        oauth_tokens::consumer(&services.pool, &services.keyring, integration.id).await?.ok_or(StoredError::Missing)?;
    match oauth_tokens::access_token(services, Provider::Cloud, integration.id).await {
        Ok(access) => {
            // A refresh keeps the scopes the integration was granted.
            let scopes = integration.cloud.as_ref().map(|c| c.scopes.clone());
            let tokens = Tokens { access, refresh: None, expires_at: OffsetDateTime::now_utc(), scopes };
            let (report, account) = cloud::check_tokens(&http, config, &endpoints, &tokens, &workspace).await;
            if let Some(account) = account.filter(|_| report.passed()) {
                // Corrects the name stored by an integration connected before Bitbucket's app users.
                oauth_tokens::set_account(&services.pool, integration.id, &account.label()).await?;
            }
            let state = if report.passed() { HealthState::Connected } else { HealthState::Error };
            Ok((report, state))
        }
        Err(TokenProblem::NotConnected(why)) => {
            let mut report = match cloud::check_consumer(&http, config, &endpoints, &consumer).await {
                Ok(()) => pending_report(),
                Err(error) => return Ok((cloud::token_report(&error, &endpoints), HealthState::Error)),
            };
            report.checks.push(Check::failed("token", why));
            cloud::not_run(&mut report, "token");
            // Never approved: it still waits; approved once, its tokens are lost.
            let state = match integration.health.state {
                HealthState::PendingAuthorization => HealthState::PendingAuthorization,
                HealthState::Connected | HealthState::Error => HealthState::Error,
            };
            Ok((report, state))
        }
        Err(TokenProblem::Bitbucket(why)) => {
            let mut report = pending_report();
            report.checks.push(Check::failed("token", why));
            cloud::not_run(&mut report, "token");
            Ok((report, HealthState::Error))
        }
        Err(TokenProblem::Database(e)) => Err(e.into()),
        Err(TokenProblem::Secret(e)) => Err(e.into()),
    }
}

/// An access token for a REST call (refreshed when about to expire), or
/// why there is none in words for the page.
pub async fn cloud_access_token(
    services: &Services,
    id: IntegrationId,
) -> Result<Result<Secret<String>, String>, StoredError> {
    usable(oauth_tokens::access_token(services, Provider::Cloud, id).await)
}

/// A new OAuth access token after Bitbucket refused `refused` with 401.
pub async fn token_after_refusal(
    services: &Services,
    provider: Provider,
    id: IntegrationId,
    refused: Secret<String>,
) -> Result<Result<Secret<String>, String>, StoredError> {
    usable(oauth_tokens::refresh(services, provider, id, oauth_tokens::Seen::Refused(refused)).await)
}

fn usable(answer: Result<Secret<String>, TokenProblem>) -> Result<Result<Secret<String>, String>, StoredError> {
    match answer {
        Ok(token) => Ok(Ok(token)),
        Err(TokenProblem::NotConnected(why) | TokenProblem::Bitbucket(why)) => Ok(Err(why)),
        Err(TokenProblem::Database(e)) => Err(e.into()),
        Err(TokenProblem::Secret(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: &[(&'static str, bool, &str)]) -> Report {
        Report {
            checks: checks
                .iter()
                .map(|(name, ok, message)| Check { name, ok: *ok, message: (*message).into(), warning: false })
                .collect(),
            version: None,
        }
    }

    #[test]
    fn a_failed_check_is_a_problem_of_the_field_to_change_and_lines_not_run_are_not() {
        let failed = report(&[
            ("server", true, "Bitbucket 9.4"),
            ("token", false, "Bitbucket refused the token."),
            ("owner", false, "Not checked: fix the line above first."),
        ]);
        let problems = datacenter_problems(&failed);
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].field.as_str(), problems[0].code.as_str()), ("datacenter.access_token", "check_token"));

        let failed =
            report(&[("consumer", false, "The callback URL does not match."), ("workspace", false, "No access.")]);
        let problems = cloud_problems(&failed);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["cloud.client_id", "cloud.workspace"]);
    }
}
