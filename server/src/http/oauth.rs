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
        datacenter::{self, oauth2},
    },
    integrations::{
        self, checks,
        operations::{self, parse_id, IntegrationError},
        DataCenterView, Integration,
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
        let (tokens, account) = datacenter_tokens(&state, &integration, dc, code, flow.pkce_verifier).await?;
        let host = url::Url::parse(&dc.user_facing_url).ok().and_then(|u| u.host_str().map(str::to_owned));
        let message = format!("Connected to {} as {account}.", host.as_deref().unwrap_or("Bitbucket Data Center"));
        authorized(&state, &user, address, &integration, &tokens, &account, &message).await?;
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
    let tokens = match cloud::exchange_code(&http, config, &endpoints, &consumer, code, flow.pkce_verifier).await {
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
    authorized(&state, &user, address, &integration, &tokens, &account.label(), &message).await?;
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

/// Stores a new authorization, marks the integration connected, audits it,
/// and has the integration's webhooks checked with the new credential.
async fn authorized(
    state: &AppState,
    user: &CurrentUser,
    address: Option<std::net::IpAddr>,
    integration: &Integration,
    tokens: &Tokens,
    account: &str,
    message: &str,
) -> Result<(), AppError> {
    let services = &state.services;
    let mut tx = services.pool.begin().await?;
    let (provider, id) = (integration.provider, integration.id);
    oauth_tokens::store(&mut *tx, &services.keyring, provider, id, tokens, account, Some(&user.0.email)).await?;
    integrations::set_health(&mut *tx, id, integrations::HealthState::Connected, message).await?;
    let event = Event::new(user.caller(address).actor(), AuditAction::IntegrationAuthorized)
        .target(Target { kind: "integration", id: id.to_string(), label: integration.name.clone() })
        .from_address(address)
        .details(serde_json::json!({"bitbucket_account": account, "scopes": tokens.scopes}))
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
