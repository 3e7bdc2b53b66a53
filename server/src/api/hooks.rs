//! `/api/v1/integrations/{id}/hooks`: Bitgate's webhook in each repository
//! the integration's stacks use, as last checked, and Repair (every
//! repository reconciled now). Its admins only, as its outbound log.

use axum::{
    extract::{Path, State},
    Json,
};
use bitgate_core::{
    integrations::operations::parse_id,
    managed_hooks::{self, RepositoryHook},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{caller::Caller, error::ErrorBody, rfc3339};
use crate::{error::AppError, state::AppState};

/// One repository and Bitgate's webhook there.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RepositoryHook)]
pub struct RepositoryHookView {
    /// `PROJECT/slug` or `workspace/slug`.
    #[schema(example = "OPS/my-repo")]
    pub repository: String,
    /// `installed`, `missing`, `differs`, `failing`, `not_permitted` or
    /// `not_managed`; null until its first check.
    #[schema(example = "installed")]
    pub state: Option<String>,
    /// What the state means, and what to do.
    pub message: Option<String>,
    #[schema(format = DateTime)]
    pub checked_at: Option<String>,
    /// No working hook: its branch heads are read every
    /// `BITGATE_POLL_INTERVAL` instead.
    pub polled: bool,
}

/// The hooks of an integration.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RepositoryHooks)]
pub struct HooksView {
    /// By repository name.
    pub items: Vec<RepositoryHookView>,
}

fn view(hooks: Vec<RepositoryHook>) -> Json<HooksView> {
    let items = hooks
        .into_iter()
        .map(|hook| RepositoryHookView {
            repository: hook.repository_name,
            state: hook.status.as_ref().map(|s| s.state.as_str().to_owned()),
            message: hook.status.map(|s| s.message),
            checked_at: hook.checked_at.map(rfc3339),
            polled: hook.polled,
        })
        .collect();
    Json(HooksView { items })
}

/// An integration's webhooks in Bitbucket
///
/// One per repository its stacks use (and any it is leaving); admins of its
/// space (account admins for a default).
#[utoipa::path(get, path = "/api/v1/integrations/{id}/hooks", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The repositories and their hooks.", body = HooksView),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn list_hooks(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<HooksView>, AppError> {
    let hooks = managed_hooks::readable(&state.services, &caller.principal(), parse_id(&raw)?).await?;
    Ok(view(hooks))
}

/// Repair an integration's webhooks
///
/// Reconciles every repository now: a missing hook is created, one that
/// differs is updated, one no stack needs is deleted (with Manage webhooks
/// on); then answers the hooks as they are. A repository Bitbucket could
/// not be asked about keeps its state and is retried later.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/hooks/repair", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The repositories and their hooks after the repair.", body = HooksView),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn repair_hooks(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<HooksView>, AppError> {
    let hooks = managed_hooks::repair(&state.services, &caller.principal(), parse_id(&raw)?).await?;
    Ok(view(hooks))
}
