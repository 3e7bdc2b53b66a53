//! `/api/v1/integrations/{id}/repositories`: the repositories Bitbucket
//! shows to an integration's credentials (`integrations::repositories` in
//! core), to pick one for a stack. Whoever may create a stack in a space
//! that may use the integration may list them: its secrets stay on the
//! server, only names and ids come back.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    Json,
};
use bitgate_core::{
    access::{Access, Denied},
    bitbucket::{CallFailed, Repository},
    integrations::{self, checks::StoredError, operations::IntegrationError, repositories, Integration},
    stacks,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    error::ErrorBody,
    pagination::{decode_offset, encode_offset, Page},
};
use crate::state::AppState;

/// A repository the integration reaches.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryView {
    /// Bitbucket's stable id: what a stack keeps.
    pub id: String,
    /// `PROJECT/slug`: what a stack's `repository` field takes.
    #[schema(example = "PRJ/my-repo")]
    pub name: String,
    /// The project key.
    pub project: String,
    pub slug: String,
    /// The name Bitbucket shows.
    pub display_name: String,
}

impl From<&Repository> for RepositoryView {
    fn from(repository: &Repository) -> Self {
        Self {
            id: repository.id.clone(),
            name: repository.full_name(),
            project: repository.project.clone(),
            slug: repository.slug.clone(),
            display_name: repository.display_name.clone(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepositoriesQuery {
    /// Only repositories whose name contains this (Bitbucket's own search).
    query: Option<String>,
    /// How many, 1 to 100 (default 25).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The integration, when the caller may create stacks in a space that may
/// use it; otherwise the refusal, recorded.
pub async fn usable_for_stacks(state: &AppState, caller: &Caller, raw: &str) -> Result<Integration, AppError> {
    let id = Uuid::parse_str(raw).map_err(|_| AppError::NotFound)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let integration = integrations::find(&state.services.pool, id).await?.ok_or(AppError::NotFound)?;
    // The caller's spaces that may use it; writing to one of them is enough.
    let seeing = stacks::spaces_using(&state.services.pool, integration.space_id, &access.visible_spaces()).await?;
    let why = if seeing.is_empty() && integration.space_id.is_some() {
        Some(Denied::Hidden)
    } else if !seeing.iter().any(|space| access.can_write(*space).is_ok()) {
        Some(Denied::Forbidden)
    } else {
        None
    };
    match why {
        Some(why) => {
            Err(caller.refused(state, "integration", "integration.repositories", integration.space_id, why).await)
        }
        None => Ok(integration),
    }
}

/// List an integration's repositories
///
/// What Bitbucket shows to the integration's credentials, page by page, to
/// pick the repository of a stack. Writers of a space that may use the
/// integration (a default: every space; a space's: it and the spaces below).
#[utoipa::path(get, path = "/api/v1/integrations/{id}/repositories", tag = "integrations", operation_id = "list_repositories",
    params(("id" = Uuid, Path, description = "The integration's id."), RepositoriesQuery),
    responses(
        (status = 200, description = "A page of repositories, in Bitbucket's order.", body = Page<RepositoryView>),
        (status = 403, description = "You cannot create stacks where this integration may be used.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody),
        (status = 502, description = "Bitbucket gave no usable answer; the message says what to check (`bad_gateway`).", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(query): Query<RepositoriesQuery>,
) -> Result<Json<Page<RepositoryView>>, AppError> {
    let integration = usable_for_stacks(&state, &caller, &raw).await?;
    let limit = match query.limit.as_deref() {
        None => 25,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return Err(AppError::BadRequest("limit must be a whole number from 1 to 100.".into())),
        },
    };
    let start = query.cursor.as_deref().filter(|c| !c.is_empty()).map(decode_offset).transpose()?.unwrap_or(0);
    let search = query.query.as_deref().unwrap_or_default();
    if search.chars().count() > 200 {
        return Err(AppError::BadRequest("query is at most 200 characters.".into()));
    }
    let page = repositories::page(&state.services, &integration, search, start, limit)
        .await
        .map_err(stored)?
        .map_err(|CallFailed(why)| AppError::BadGateway(why))?;
    Ok(Json(Page {
        items: page.items.iter().map(RepositoryView::from).collect(),
        next_cursor: page.next_start.map(encode_offset),
    }))
}

/// Stored credentials that could not be read, as the API answers it.
fn stored(error: StoredError) -> AppError {
    AppError::from(IntegrationError::from(error))
}
