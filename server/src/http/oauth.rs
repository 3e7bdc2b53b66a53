//! Connecting an integration in the browser (a Bitbucket Cloud consumer, a
//! Data Center OAuth 2.0 application link): the Connect button (starts a
//! flow bound to this browser's session and sends it to Bitbucket's
//! approval page) and `/oauth/bitbucket/callback`, where Bitbucket sends
//! the browser back. The callback checks the flow's `state` (one use, 10
//! minutes, this user and this browser), exchanges the code with the flow's
//! PKCE verifier, checks the account (and Cloud's workspace, Data Center's
//! checklist), stores the tokens sealed, and lands on the integration's
//! page. Every failure ends on an error page (400, 502 for a failed
//! exchange) that says what happened and offers to start again; none
//! stores anything.

use crate::error::AppError;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension,
};
use bitgate_app::context::Flash;
use bitgate_core::{
    access::Access,
    audit::{self, AuditAction, Event, Target},
    bitbucket::{
        cloud::{self, Endpoints, Tokens},
        datacenter::{self, oauth1, oauth2},
    },
    integrations::{
        self, checks,
        operations::{self, parse_id, IntegrationError},
        DataCenterAuth, DataCenterView, Integration,
    },
    oauth_flows::{self, FlowRefused},
    oauth_tokens,
    secret::Secret,
};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    session::{push_flash, CurrentUser, SessionAuth},
};
use crate::state::AppState;

/// `POST /integrations/{id}/connect`: Connect (or Reconnect).
pub async fn connect(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&raw)?;
    let auth = SessionAuth::load(&session).await?.ok_or(AppError::Forbidden)?;
    let binding = oauth_flows::session_binding(&auth.oauth_binding_secret);
    let principal = user.caller(address).principal();
    match operations::start_authorization(&state.services, &principal, id, Some(binding)).await {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(IntegrationError::Invalid(details)) => {
            let message = details.into_iter().map(|d| d.message).collect::<Vec<_>>().join(" ");
            push_flash(&session, Flash::error(message)).await?;
            Ok(Redirect::to(&format!("/integrations/{id}")).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// OAuth 1.0a: the request token approved, and the verifier to spend it with.
    oauth_token: Option<String>,
    oauth_verifier: Option<String>,
}

fn refused(code: &'static str, title: &'static str, message: impl Into<String>, retry: Option<String>) -> AppError {
    AppError::Authorization { status: StatusCode::BAD_REQUEST, code, title, message: message.into(), retry }
}

fn integration_page(id: Uuid) -> Option<String> {
    Some(format!("/integrations/{id}"))
}

/// `GET /oauth/bitbucket/callback`.
pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    user: Option<Extension<CurrentUser>>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let signed_in = match user {
        Some(Extension(user)) => SessionAuth::load(&session).await?.map(|auth| (user, auth)),
        None => None,
    };
    let Some((user, auth)) = signed_in else {
        return Err(refused(
            "no_session",
            "Not logged in to Bitgate",
            "Bitbucket sent this browser back, but it has no Bitgate session: the approval must finish in the browser that started it. Log in, open the integration, and click Connect again.",
            Some("/".into()),
        ));
    };

    // The flow: taken (spent) in its own transaction, so that it is used once
    // whatever happens next; a callback from another browser leaves it be.
    let mut tx = state.services.pool.begin().await?;
    let taken = oauth_flows::take(
        &mut tx,
        &state.services.keyring,
        query.state.as_deref(),
        user.0.id,
        &auth.oauth_binding_secret,
    )
    .await;
    let flow = match taken {
        Ok(flow) => flow,
        Err(FlowRefused::Database(e)) => return Err(e.into()),
        Err(FlowRefused::Secret(e)) => return Err(AppError::internal(e)),
        Err(refusal) => {
            let message = match refusal {
                FlowRefused::Missing => "Bitbucket's answer carries no state, so Bitgate cannot tell which connection it belongs to.",
                FlowRefused::Expired => "This connection was started more than 10 minutes ago and has expired.",
                FlowRefused::OtherBrowser => "This connection was started by another user or in another browser: it can only finish where it started.",
                _ => "This answer from Bitbucket does not match a connection in progress: it was used already, or it was not started by Bitgate.",
            };
            return Err(refused(
                "invalid_state",
                "The connection could not finish",
                format!("{message} Nothing was stored. Open the integration and click Connect again."),
                Some("/".into()),
            ));
        }
    };
    tx.commit().await?;

    let Some(integration) = integrations::find(&state.services.pool, flow.integration_id).await? else {
        return Err(refused(
            "integration_gone",
            "The integration is gone",
            "The integration this connection was for was deleted meanwhile. Nothing was stored.",
            Some("/".into()),
        ));
    };
    let access = Access::load(&state.services.pool, user.0.id).await?;
    access.can_administer_integration(integration.space_id)?;
    let retry = integration_page(integration.id);

    if let Some(dc) = integration.datacenter.as_ref().filter(|dc| dc.auth == DataCenterAuth::OAuth1) {
        let (token, account) = oauth1_token(&state, &integration, dc, flow.request_token, &query).await?;
        let message = format!("Connected to {} as {account}.", host_of(dc));
        authorized(&state, &user, address, &integration, Granted::OAuth1(&token), &account, &message).await?;
        let flash = format!("Connected: Bitgate acts as {account} in Bitbucket Data Center.");
        push_flash(&session, Flash::success(flash)).await?;
        return Ok(Redirect::to(&format!("/integrations/{}", integration.id)).into_response());
    }
    let Some(verifier) = flow.pkce_verifier else {
        return Err(refused(
            "invalid_state",
            "The connection could not finish",
            "This answer from Bitbucket does not match a connection in progress. Nothing was stored. Open the integration and click Connect again.",
            Some("/".into()),
        ));
    };

    if let Some(error) = query.error.as_deref() {
        let message = match error {
            "access_denied" => "Access was denied in Bitbucket, so Bitgate got no token. Nothing was stored. Click Connect again and choose Grant access when Bitbucket asks.".to_owned(),
            // Bitbucket's own words are not echoed: the error code is checked against OAuth's list.
            "invalid_request" | "unauthorized_client" | "unsupported_response_type" | "invalid_scope" | "server_error"
            | "temporarily_unavailable" => format!("Bitbucket refused the request ({error}). Nothing was stored. Check the consumer's settings, then connect again."),
            _ => "Bitbucket refused the request. Nothing was stored. Check the consumer's settings, then connect again.".to_owned(),
        };
        let title = if error == "access_denied" { "Access was denied in Bitbucket" } else { "Bitbucket refused" };
        return Err(refused("access_denied", title, message, retry));
    }
    let Some(code) = query.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(refused(
            "missing_code",
            "The connection could not finish",
            "Bitbucket's answer carries no authorization code. Nothing was stored. Connect again.",
            retry,
        ));
    };
    if let Some(dc) = &integration.datacenter {
        let (tokens, account) = datacenter_tokens(&state, &integration, dc, code, verifier).await?;
        let message = format!("Connected to {} as {account}.", host_of(dc));
        authorized(&state, &user, address, &integration, Granted::OAuth2(&tokens), &account, &message).await?;
        let flash = format!("Connected: Bitgate acts as {account} in Bitbucket Data Center.");
        push_flash(&session, Flash::success(flash)).await?;
        return Ok(Redirect::to(&format!("/integrations/{}", integration.id)).into_response());
    }

    let config = &state.services.config;
    let endpoints = Endpoints::from_config(config);
    let http = cloud::http_client(config).map_err(AppError::internal)?;
    let (consumer, workspace, _) =
        oauth_tokens::consumer(&state.services.pool, &state.services.keyring, integration.id)
            .await
            .map_err(AppError::internal)?
            .ok_or(AppError::NotFound)?;
    let tokens = match cloud::exchange_code(&http, config, &endpoints, &consumer, code, verifier).await {
        Ok(tokens) => tokens,
        Err(error) => {
            return Err(AppError::Authorization {
                status: StatusCode::BAD_GATEWAY,
                code: "exchange_failed",
                title: "Bitbucket did not give a token",
                message: format!("{} Nothing was stored.", error.message(&endpoints)),
                retry,
            })
        }
    };
    let (report, account) = cloud::check_tokens(&http, config, &endpoints, &tokens, &workspace).await;
    let Some(account) = account.filter(|_| report.passed()) else {
        let why = report.first_failure().map(|c| c.message.clone()).unwrap_or_default();
        return Err(refused(
            "check_failed",
            "The connection failed a check",
            format!("{why} Nothing was stored."),
            retry,
        ));
    };

    let message = format!("Connected to the workspace {workspace} as {}.", account.label());
    authorized(&state, &user, address, &integration, Granted::OAuth2(&tokens), &account.label(), &message).await?;
    push_flash(
        &session,
        Flash::success(format!(
            "Connected: Bitgate acts as {} in the workspace {workspace}. Now set up the webhook in Bitbucket.",
            account.label()
        )),
    )
    .await?;
    Ok(Redirect::to(&format!("/integrations/{}", integration.id)).into_response())
}

/// Exchanges a Data Center link's code and checks what the token can do,
/// as a new access token is checked; returns the tokens and whose they are.
async fn datacenter_tokens(
    state: &AppState,
    integration: &Integration,
    dc: &DataCenterView,
    code: &str,
    verifier: Secret<String>,
) -> Result<(Tokens, String), AppError> {
    let services = &state.services;
    let config = &services.config;
    let retry = integration_page(integration.id);
    let client = integrations::datacenter_oauth2_client(&services.pool, &services.keyring, integration.id)
        .await
        .map_err(AppError::internal)?
        .ok_or(AppError::NotFound)?;
    let mut connection = checks::connection_with(dc, Secret::new(String::new())).map_err(AppError::internal)?;
    let user_facing = url::Url::parse(&dc.user_facing_url).map_err(AppError::internal)?;
    let endpoints = oauth2::Endpoints::new(&connection.api_url, &user_facing, config);
    let http = datacenter::http_client(connection.ca.as_ref(), config).map_err(AppError::internal)?;
    let tokens = match oauth2::exchange_code(&http, config, &endpoints, &client, code, verifier).await {
        Ok(tokens) => tokens,
        Err(error) => {
            return Err(AppError::Authorization {
                status: StatusCode::BAD_GATEWAY,
                code: "exchange_failed",
                title: "Bitbucket did not give a token",
                message: format!("{} Nothing was stored.", oauth2::message(&error, &endpoints)),
                retry,
            })
        }
    };
    connection.token = tokens.access.clone();
    let check_failed = |why: String| {
        refused("check_failed", "The connection failed a check", format!("{why} Nothing was stored."), retry.clone())
    };
    connection.username = datacenter::account(&connection, config).await.map_err(check_failed)?;
    let report = datacenter::check(&connection, config).await;
    if let Some(failure) = report.first_failure() {
        return Err(check_failed(failure.message.clone()));
    }
    Ok((tokens, connection.username))
}

/// Where a Data Center's people open it, for a message.
fn host_of(dc: &DataCenterView) -> String {
    let host = url::Url::parse(&dc.user_facing_url).ok().and_then(|u| u.host_str().map(str::to_owned));
    host.unwrap_or_else(|| "Bitbucket Data Center".to_owned())
}

/// The last leg of an OAuth 1.0a link: the request token the flow waited
/// for, approved (its verifier), spent for the access token; then the
/// checklist with that token, signed. Returns the token and whose it is.
async fn oauth1_token(
    state: &AppState,
    integration: &Integration,
    dc: &DataCenterView,
    waited_for: Option<String>,
    query: &CallbackQuery,
) -> Result<(Secret<String>, String), AppError> {
    let services = &state.services;
    let config = &services.config;
    let retry = integration_page(integration.id);
    let matches = waited_for.is_some() && waited_for.as_deref() == query.oauth_token.as_deref();
    if !matches {
        return Err(refused(
            "invalid_state",
            "The connection could not finish",
            "This answer from Bitbucket is not for the request token Bitgate asked for. Nothing was stored. Open the integration and click Connect again.",
            retry,
        ));
    }
    // Bitbucket's Deny sends the word `denied` as the verifier.
    let Some(verifier) = query.oauth_verifier.as_deref().map(str::trim).filter(|v| !v.is_empty() && *v != "denied")
    else {
        return Err(refused(
            "access_denied",
            "Access was denied in Bitbucket",
            "Access was denied in Bitbucket, so Bitgate got no token. Nothing was stored. Click Connect again and choose Allow when Bitbucket asks.",
            retry,
        ));
    };
    let (consumer, _) = integrations::datacenter_oauth1(&services.pool, &services.keyring, integration.id)
        .await
        .map_err(AppError::internal)?
        .ok_or(AppError::NotFound)?;
    let mut connection = checks::connection_with(dc, Secret::new(String::new())).map_err(AppError::internal)?;
    let user_facing = url::Url::parse(&dc.user_facing_url).map_err(AppError::internal)?;
    let endpoints = oauth1::Endpoints::new(&connection.api_url, &user_facing);
    let http = datacenter::http_client(connection.ca.as_ref(), config).map_err(AppError::internal)?;
    let request_token = query.oauth_token.as_deref().unwrap_or_default();
    let token = match oauth1::access_token(&http, config, &endpoints, &consumer, request_token, verifier).await {
        Ok(token) => token,
        Err(refusal) => {
            return Err(AppError::Authorization {
                status: StatusCode::BAD_GATEWAY,
                code: "exchange_failed",
                title: "Bitbucket did not give a token",
                message: format!("{} Nothing was stored.", refusal.message),
                retry,
            })
        }
    };
    connection.token = token.clone();
    connection.oauth1 = Some(consumer);
    let check_failed = |why: String| {
        refused("check_failed", "The connection failed a check", format!("{why} Nothing was stored."), retry.clone())
    };
    connection.username = datacenter::account(&connection, config).await.map_err(check_failed)?;
    let report = datacenter::check(&connection, config).await;
    if let Some(failure) = report.first_failure() {
        return Err(check_failed(failure.message.clone()));
    }
    Ok((token, connection.username))
}

/// What an approval gave: OAuth 2.0 tokens, or an OAuth 1.0a access token.
enum Granted<'a> {
    OAuth2(&'a Tokens),
    OAuth1(&'a Secret<String>),
}

/// Stores a new authorization, marks the integration connected, audits it,
/// and has the integration's webhooks checked with the new credential.
async fn authorized(
    state: &AppState,
    user: &CurrentUser,
    address: Option<std::net::IpAddr>,
    integration: &Integration,
    granted: Granted<'_>,
    account: &str,
    message: &str,
) -> Result<(), AppError> {
    let services = &state.services;
    let mut tx = services.pool.begin().await?;
    let (provider, id, by) = (integration.provider, integration.id, Some(user.0.email.as_str()));
    let scopes = match granted {
        Granted::OAuth2(tokens) => {
            oauth_tokens::store(&mut *tx, &services.keyring, provider, id, tokens, account, by).await?;
            tokens.scopes.clone()
        }
        Granted::OAuth1(token) => {
            integrations::store_oauth1_token(&mut *tx, &services.keyring, id, token, account, by).await?;
            None
        }
    };
    integrations::set_health(&mut *tx, id, integrations::HealthState::Connected, message).await?;
    let event = Event::new(user.caller(address).actor(), AuditAction::IntegrationAuthorized)
        .target(Target { kind: "integration", id: id.to_string(), label: integration.name.clone() })
        .from_address(address)
        .details(serde_json::json!({"bitbucket_account": account, "scopes": scopes}))
        .in_space(integration.space_id);
    audit::record(&mut *tx, event).await?;
    // What waited for a credential goes now: held outbound work, and the hooks.
    let hooks = bitgate_core::managed_hooks::enqueue_integration(&mut tx, id).await?;
    let released = bitgate_core::jobs::release_outbound(&mut *tx, id).await?;
    tx.commit().await?;
    if !hooks.is_empty() || released > 0 {
        services.jobs.notify();
    }
    Ok(())
}
