//! Bitbucket Cloud in the REST API: the `cloud` part of an integration's
//! body, the consumer's checks before anything is saved, the connection
//! checks of a stored integration, and `POST /api/v1/integrations/{id}/authorize`
//! (the authorization flow the details page's Connect button starts too).

use axum::{
    extract::{Path, State},
    Json,
};
use bitgate_core::{
    bitbucket::{
        cloud::{self, Account, Consumer, Endpoints, Mode, Tokens},
        Check, Report,
    },
    cloud_tokens::{self, TokenProblem},
    integrations::{Health, Integration, Provider},
    oauth_flows,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    caller::Caller,
    error::{ApiError, ErrorBody},
    integrations::{administered, CreateFailure},
    json::Fields,
    rfc3339,
};
use crate::state::AppState;

/// The Cloud part of a new integration.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct CloudInput {
    /// The workspace ID, as in `bitbucket.org/{workspace}/`.
    #[schema(example = "acme")]
    workspace: String,
    /// The OAuth consumer's key.
    client_id: String,
    /// The OAuth consumer's secret. Write-only.
    #[schema(format = Password)]
    client_secret: String,
    /// `authorization_code` (default: an admin approves in Bitbucket) or
    /// `client_credentials` (a private consumer; the token is requested at once).
    mode: Option<String>,
}

/// Cloud settings to change; a new consumer, workspace or mode is checked
/// with Bitbucket first, and needs a new approval in `authorization_code` mode.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CloudUpdate {
    workspace: Option<String>,
    client_id: Option<String>,
    /// Write-only; left out, the stored secret stays.
    #[schema(format = Password)]
    client_secret: Option<String>,
    mode: Option<String>,
}

/// Cloud credentials as shown: the consumer's key, never its secret or a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CloudView {
    pub workspace: String,
    pub client_id: String,
    /// `authorization_code` or `client_credentials`.
    pub mode: String,
    /// The Bitbucket account the tokens act as (and, when an admin connected
    /// it, which Bitgate user did); null until connected.
    pub authorized_by: Option<String>,
    #[schema(format = DateTime)]
    pub token_expires_at: Option<String>,
    /// What Bitbucket granted.
    pub scopes: Vec<String>,
}

impl From<&bitgate_core::integrations::CloudView> for CloudView {
    fn from(cloud: &bitgate_core::integrations::CloudView) -> Self {
        let authorized_by = cloud.authorized_by.as_ref().map(|account| match &cloud.authorized_by_label {
            Some(user) => format!("{account}, connected by {user}"),
            None => account.clone(),
        });
        Self {
            workspace: cloud.workspace.clone(),
            client_id: cloud.client_id.clone(),
            mode: cloud.mode.clone(),
            authorized_by,
            token_expires_at: cloud.token_expires_at.map(rfc3339),
            scopes: cloud.scopes.clone(),
        }
    }
}

/// Where to send a browser to approve the integration in Bitbucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeAnswer {
    /// Open it within 10 minutes, in a browser logged in to Bitgate as the
    /// same user; Bitbucket then sends that browser back to Bitgate's callback.
    pub authorize_url: String,
}

/// A new Cloud integration's settings, read and checked for their form.
pub struct CloudSettings {
    pub workspace: String,
    pub consumer: Consumer,
    pub mode: Mode,
}

fn parse_mode(fields: &mut Fields) -> Option<Mode> {
    match fields.optional_string("mode") {
        None => Some(Mode::AuthorizationCode),
        Some(raw) if raw.trim().is_empty() => Some(Mode::AuthorizationCode),
        Some(raw) => Mode::parse(&raw).or_else(|| {
            fields.refuse("mode", "invalid", "Choose authorization_code or client_credentials.");
            None
        }),
    }
}

fn parse_workspace(fields: &mut Fields, raw: String) -> Option<String> {
    cloud::parse_workspace(&raw).map_err(|why| fields.refuse("workspace", "invalid", why)).ok()
}

fn required(fields: &mut Fields, name: &str, message: &str) -> Option<String> {
    let value = fields.required_string(name)?;
    if value.trim().is_empty() {
        fields.refuse(name, "required", message.to_owned());
        None
    } else {
        Some(value.trim().to_owned())
    }
}

/// Reads the `cloud` object of a creation.
pub fn read(cloud: &mut Fields) -> Option<CloudSettings> {
    let workspace = cloud.required_string("workspace").and_then(|raw| parse_workspace(cloud, raw));
    let key = required(cloud, "client_id", "Paste the consumer's Key.");
    let secret = required(cloud, "client_secret", "Paste the consumer's Secret.");
    let mode = parse_mode(cloud);
    Some(CloudSettings { workspace: workspace?, consumer: Consumer { key: key?, secret: secret? }, mode: mode? })
}

/// What a PATCH's `cloud` object changes: the workspace, the consumer
/// (a new key needs its secret; a new secret alone keeps the key) and the mode.
pub struct CloudChanges {
    pub workspace: Option<String>,
    pub key: Option<String>,
    pub secret: Option<String>,
    pub mode: Option<Mode>,
}

pub fn read_changes(cloud: &mut Fields) -> CloudChanges {
    let workspace = cloud.optional_string("workspace").and_then(|raw| parse_workspace(cloud, raw));
    let key = cloud.optional_string("client_id").map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
    let secret = cloud.optional_string("client_secret").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let mode = if cloud.has("mode") { parse_mode(cloud) } else { None };
    CloudChanges { workspace, key, secret, mode }
}

fn endpoints(state: &AppState) -> Endpoints {
    Endpoints::from_config(&state.services.config)
}

fn http_client(state: &AppState) -> Result<cloud::HttpClient, ApiError> {
    cloud::http_client(&state.services.config).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The checklist of a consumer that waits for an admin's approval.
fn pending_report() -> Report {
    let mut report = Report { checks: Vec::new(), version: None };
    report.checks.push(Check {
        name: "consumer",
        ok: true,
        message: "Bitbucket accepted the consumer's key and secret.".into(),
    });
    report
}

/// Checks new Cloud credentials the way the mode allows
/// ([`cloud::check_new`]); a failure carries the checklist.
pub async fn check_new(state: &AppState, settings: &CloudSettings) -> Result<Option<(Tokens, Account)>, CreateFailure> {
    cloud::check_new(&state.services.config, &settings.workspace, &settings.consumer, settings.mode)
        .await
        .map_err(failed)
}

fn failed(report: Report) -> CreateFailure {
    CreateFailure { error: ApiError::Validation(check_errors(&report)), report: Some(report) }
}

/// Failed checks as `details`, each on the field an admin would change.
pub fn check_errors(report: &Report) -> Vec<bitgate_core::users::FieldError> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok && !c.message.starts_with("Not checked"))
        .map(|c| {
            let field = match c.name {
                "workspace" => "cloud.workspace",
                "token" => "cloud.mode",
                "consumer" if c.message.contains("callback") => "cloud.client_id",
                "consumer" => "cloud.client_secret",
                _ => "cloud.client_id",
            };
            bitgate_core::users::FieldError::new(field, &format!("check_{}", c.name), c.message.clone())
        })
        .collect()
}

/// The health a new Cloud integration starts with.
pub fn initial_health(settings: &CloudSettings, account: Option<&Account>) -> Health {
    Health::of_new_cloud(&settings.workspace, settings.mode, account)
}

/// Starts an authorization flow for an integration the caller administers;
/// returns Bitbucket's authorize URL. `session` binds the flow to the
/// starting browser ([`oauth_flows::session_binding`]); `None` for the API.
pub async fn start_authorization(
    state: &AppState,
    caller: &Caller,
    integration: &Integration,
    session: Option<String>,
) -> Result<String, ApiError> {
    if integration.provider != Provider::Cloud {
        return Err(ApiError::Validation(vec![bitgate_core::users::FieldError::new(
            "provider",
            "not_cloud",
            "Only Bitbucket Cloud integrations are authorized in Bitbucket; Data Center ones use an access token.",
        )]));
    }
    let (consumer, _, mode) = cloud_tokens::consumer(&state.services.pool, &state.services.keyring, integration.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    if mode == Mode::ClientCredentials {
        return Err(ApiError::Validation(vec![bitgate_core::users::FieldError::new(
            "cloud.mode",
            "client_credentials",
            "This integration uses client credentials: it needs no approval. Test it to request a new token.",
        )]));
    }
    let url = oauth_flows::start(
        &state.services.pool,
        &state.services.keyring,
        &endpoints(state),
        &consumer,
        integration.id,
        caller.user.id,
        session,
    )
    .await?;
    Ok(url)
}

/// Start the authorization in Bitbucket
///
/// For `authorization_code` integrations: answers the URL of Bitbucket's
/// approval page. Open it within 10 minutes in a browser logged in to
/// Bitgate as the same user; Bitbucket sends that browser back to
/// `/oauth/bitbucket/callback`, which stores the tokens.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/authorize", tag = "integrations",
    params(("id" = uuid::Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The URL to open in the browser.", body = AuthorizeAnswer),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody),
        (status = 422, description = "Not a Cloud integration in authorization_code mode.", body = ErrorBody)))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<AuthorizeAnswer>, ApiError> {
    let integration = administered(&state, &caller, &raw, "integration.authorize").await?;
    let authorize_url = start_authorization(&state, &caller, &integration, None).await?;
    Ok(Json(AuthorizeAnswer { authorize_url }))
}

/// The checks of a stored Cloud integration, and the health they give:
/// the consumer, a usable token (refreshed if needed), the scopes, the
/// account, the workspace. One that waits for approval stays pending.
pub async fn retest(state: &AppState, integration: &Integration) -> Result<(Report, &'static str), ApiError> {
    let config = &state.services.config;
    let endpoints = endpoints(state);
    let http = http_client(state)?;
    let (consumer, workspace, _) =
        cloud_tokens::consumer(&state.services.pool, &state.services.keyring, integration.id)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or(ApiError::NotFound)?;
    match cloud_tokens::access_token(&state.services, integration.id).await {
        Ok(access) => {
            // A refresh keeps the scopes the integration was granted.
            let scopes = integration.cloud.as_ref().map(|c| c.scopes.clone());
            let tokens = Tokens { access, refresh: None, expires_at: time::OffsetDateTime::now_utc(), scopes };
            let (report, account) = cloud::check_tokens(&http, config, &endpoints, &tokens, &workspace).await;
            if let Some(account) = account.filter(|_| report.passed()) {
                cloud_tokens::set_account(&state.services.pool, integration.id, &account.label()).await?;
            }
            let health = if report.passed() { "connected" } else { "error" };
            Ok((report, health))
        }
        Err(TokenProblem::NotConnected(why)) => {
            let mut report = match cloud::check_consumer(&http, config, &endpoints, &consumer).await {
                Ok(()) => pending_report(),
                Err(error) => return Ok((cloud::token_report(&error, &endpoints), "error")),
            };
            report.checks.push(Check { name: "token", ok: false, message: why });
            cloud::not_run(&mut report, "token");
            let health =
                if integration.health.state == "pending_authorization" { "pending_authorization" } else { "error" };
            Ok((report, health))
        }
        Err(TokenProblem::Bitbucket(why)) => {
            let mut report = pending_report();
            report.checks.push(Check { name: "token", ok: false, message: why });
            cloud::not_run(&mut report, "token");
            Ok((report, "error"))
        }
        Err(TokenProblem::Database(e)) => Err(e.into()),
        Err(TokenProblem::Secret(e)) => Err(ApiError::Internal(e.to_string())),
    }
}

/// A token, or why there is none in words for the page; a broken
/// database or key is the caller's error.
fn usable(answer: Result<String, TokenProblem>) -> Result<Result<String, String>, ApiError> {
    match answer {
        Ok(token) => Ok(Ok(token)),
        Err(TokenProblem::NotConnected(why) | TokenProblem::Bitbucket(why)) => Ok(Err(why)),
        Err(TokenProblem::Database(e)) => Err(e.into()),
        Err(TokenProblem::Secret(e)) => Err(ApiError::Internal(e.to_string())),
    }
}

/// An access token for a REST call (refreshed when about to expire).
pub async fn access_token(state: &AppState, integration: &Integration) -> Result<Result<String, String>, ApiError> {
    usable(cloud_tokens::access_token(&state.services, integration.id).await)
}

/// A new access token after Bitbucket refused `refused` with 401.
pub async fn refreshed_token(
    state: &AppState,
    integration: &Integration,
    refused: String,
) -> Result<Result<String, String>, ApiError> {
    usable(cloud_tokens::refresh(&state.services, integration.id, cloud_tokens::Seen::Refused(refused)).await)
}
