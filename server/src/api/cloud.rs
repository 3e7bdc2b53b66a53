//! Bitbucket Cloud in the REST API: the `cloud` part of an integration's
//! body and view, and `POST /api/v1/integrations/{id}/authorize` (the
//! authorization flow the details page's Connect button starts too).

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    Json,
};
use bitgate_core::integrations::operations::{self, parse_id};
use serde::Serialize;
use utoipa::ToSchema;

use super::{caller::Caller, error::ErrorBody, rfc3339};
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
            mode: cloud.mode.as_str().to_owned(),
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
) -> Result<Json<AuthorizeAnswer>, AppError> {
    let authorize_url =
        operations::start_authorization(&state.services, &caller.principal(), parse_id(&raw)?, None).await?;
    Ok(Json(AuthorizeAnswer { authorize_url }))
}
