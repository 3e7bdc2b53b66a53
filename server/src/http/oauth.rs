//! Connecting a Bitbucket Cloud integration in the browser: the Connect
//! button (starts a flow bound to this browser's session and sends it to
//! Bitbucket's approval page) and `/oauth/bitbucket/callback`, where
//! Bitbucket sends the browser back. The callback checks the flow's
//! `state` (one use, 10 minutes, this user and this browser), exchanges the
//! code with the flow's PKCE verifier, checks the account and workspace,
//! stores the tokens sealed, and lands on the integration's page. Every
//! failure ends on an error page (400, 502 for a failed exchange) that says
//! what happened and offers to start again; none stores anything.

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
    bitbucket::cloud::{self, Endpoints},
    cloud_tokens,
    integrations::{
        self,
        operations::{self, parse_id, IntegrationError},
        Integration,
    },
    oauth_flows::{self, FlowRefused},
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

    let config = &state.services.config;
    let endpoints = Endpoints::from_config(config);
    let http = cloud::http_client(config).map_err(AppError::internal)?;
    let (consumer, workspace, _) =
        cloud_tokens::consumer(&state.services.pool, &state.services.keyring, integration.id)
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

    authorized(&state, &user, address, &integration, &tokens, &account, &workspace).await?;
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

/// Stores a new authorization, marks the integration connected, and audits it.
async fn authorized(
    state: &AppState,
    user: &CurrentUser,
    address: Option<std::net::IpAddr>,
    integration: &Integration,
    tokens: &cloud::Tokens,
    account: &cloud::Account,
    workspace: &str,
) -> Result<(), AppError> {
    let mut tx = state.services.pool.begin().await?;
    cloud_tokens::store(
        &mut *tx,
        &state.services.keyring,
        integration.id,
        tokens,
        &account.label(),
        Some(&user.0.email),
    )
    .await?;
    let message = format!("Connected to the workspace {workspace} as {}.", account.label());
    integrations::set_health(&mut *tx, integration.id, integrations::HealthState::Connected, &message).await?;
    let event = Event::new(user.caller(address).actor(), AuditAction::IntegrationAuthorized)
        .target(Target { kind: "integration", id: integration.id.to_string(), label: integration.name.clone() })
        .from_address(address)
        .details(serde_json::json!({"bitbucket_account": account.handle(), "scopes": tokens.scopes}))
        .in_space(integration.space_id);
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(())
}
