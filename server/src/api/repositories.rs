//! `/api/v1/integrations/{id}/repositories`: the repositories Bitbucket
//! shows to an integration's credentials, to pick one for a stack; and the
//! lookup of one repository that creating or re-attaching a stack needs.
//! Whoever may create a stack in a space that may use the integration may
//! list them: its secrets stay on the server, only names and ids come back.

use axum::{
    extract::{Path, State},
    Json,
};
use bitgate_core::{
    access::{Access, Denied},
    bitbucket::{
        cloud::{self as bitbucket_cloud, ApiCallError},
        datacenter, parse_repository_name, CallFailed, Repository, RepositoryPage, RepositorySearch,
    },
    integrations::{self, checks, operations::IntegrationError, Integration, Provider},
    stacks,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    error::{ApiError, ErrorBody},
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
pub async fn usable_for_stacks(state: &AppState, caller: &Caller, raw: &str) -> Result<Integration, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let integration = integrations::find(&state.services.pool, id).await?.ok_or(ApiError::NotFound)?;
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
) -> Result<Json<Page<RepositoryView>>, ApiError> {
    let integration = usable_for_stacks(&state, &caller, &raw).await?;
    let limit = match query.limit.as_deref() {
        None => 25,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return Err(ApiError::BadRequest("limit must be a whole number from 1 to 100.".into())),
        },
    };
    let start = query.cursor.as_deref().filter(|c| !c.is_empty()).map(decode_offset).transpose()?.unwrap_or(0);
    let search = query.query.as_deref().unwrap_or_default();
    if search.chars().count() > 200 {
        return Err(ApiError::BadRequest("query is at most 200 characters.".into()));
    }
    let page =
        page(&state, &integration, search, start, limit).await?.map_err(|CallFailed(why)| ApiError::BadGateway(why))?;
    Ok(Json(Page {
        items: page.items.iter().map(RepositoryView::from).collect(),
        next_cursor: page.next_start.map(encode_offset),
    }))
}

/// One page of the repositories Bitbucket shows the integration's
/// credentials (the API's listing and the new-stack page); `Ok(Err)` when
/// Bitbucket gave no usable answer, saying why in words an admin can act on.
pub async fn page(
    state: &AppState,
    integration: &Integration,
    search: &str,
    start: u64,
    limit: u32,
) -> Result<Result<RepositoryPage, CallFailed>, ApiError> {
    let wanted = RepositorySearch { name: search, start, limit };
    match integration.provider {
        Provider::DataCenter => {
            let connection = checks::stored_connection(&state.services, integration).await.map_err(stored)?;
            Ok(datacenter::repositories(&connection, &state.services.config, wanted).await)
        }
        Provider::Cloud => {
            let workspace = cloud_workspace(integration)?;
            let (http, endpoints) = cloud_client(state)?;
            let config = &state.services.config;
            with_cloud_token(state, integration, |token| {
                let (http, endpoints, workspace) = (http.clone(), endpoints.clone(), workspace.clone());
                async move {
                    bitbucket_cloud::repositories(&http, config, &endpoints, &token, &workspace, wanted).await
                }
            })
            .await
        }
    }
}

/// Stored credentials that could not be read, as the API answers it.
fn stored(error: checks::StoredError) -> ApiError {
    ApiError::from(IntegrationError::from(error))
}

fn cloud_workspace(integration: &Integration) -> Result<String, ApiError> {
    integration
        .cloud
        .as_ref()
        .map(|c| c.workspace.clone())
        .ok_or_else(|| ApiError::Internal("a Cloud integration without credentials".into()))
}

fn cloud_client(state: &AppState) -> Result<(bitbucket_cloud::HttpClient, bitbucket_cloud::Endpoints), ApiError> {
    let config = &state.services.config;
    let http = bitbucket_cloud::http_client(config).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((http, bitbucket_cloud::Endpoints::from_config(config)))
}

/// Makes a Cloud REST call with the integration's access token; when
/// Bitbucket answers 401, refreshes the token once and tries again.
async fn with_cloud_token<T, F, Fut>(
    state: &AppState,
    integration: &Integration,
    call: F,
) -> Result<Result<T, CallFailed>, ApiError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiCallError>>,
{
    let token = match checks::cloud_access_token(&state.services, integration.id).await.map_err(stored)? {
        Ok(token) => token,
        Err(why) => return Ok(Err(CallFailed(why))),
    };
    match call(token.clone()).await {
        Ok(answer) => return Ok(Ok(answer)),
        Err(ApiCallError::Failed(failed)) => return Ok(Err(failed)),
        Err(ApiCallError::Unauthorized) => {}
    }
    let token = match checks::cloud_token_after_refusal(&state.services, integration.id, token).await.map_err(stored)? {
        Ok(token) => token,
        Err(why) => return Ok(Err(CallFailed(why))),
    };
    Ok(match call(token).await {
        Ok(answer) => Ok(answer),
        Err(ApiCallError::Failed(failed)) => Err(failed),
        Err(ApiCallError::Unauthorized) => Err(CallFailed(
            "Bitbucket refused the integration's fresh token: test the integration, and reconnect it if it was revoked."
                .into(),
        )),
    })
}

/// Why a repository could not be used for a stack.
pub enum Unusable {
    /// Not written `PROJECT/slug`.
    Invalid(String),
    /// Bitbucket does not show it to the integration.
    Repository(String),
    /// Bitbucket could not be asked.
    Bitbucket(String),
    Error(ApiError),
}

impl From<ApiError> for Unusable {
    fn from(error: ApiError) -> Self {
        Unusable::Error(error)
    }
}

/// Finds `PROJECT/slug` through the integration's credentials.
pub async fn find(state: &AppState, integration: &Integration, name: &str) -> Result<Repository, Unusable> {
    match integration.provider {
        Provider::DataCenter => {
            let (project, slug) = parse_repository_name(name).map_err(Unusable::Invalid)?;
            let connection = checks::stored_connection(&state.services, integration).await.map_err(stored)?;
            match datacenter::repository(&connection, &state.services.config, &project, &slug).await {
                Ok(Some(repository)) => Ok(repository),
                Ok(None) => Err(Unusable::Repository(format!(
                    "Bitbucket shows no repository {project}/{slug} to the integration {}: check the name, and that its token can read it.",
                    integration.name
                ))),
                Err(CallFailed(why)) => Err(Unusable::Bitbucket(why)),
            }
        }
        Provider::Cloud => {
            let workspace = cloud_workspace(integration)?;
            let slug = cloud_repository_slug(name, &workspace).map_err(Unusable::Invalid)?;
            let (http, endpoints) = cloud_client(state)?;
            let config = &state.services.config;
            let found = with_cloud_token(state, integration, |token| {
                let (http, endpoints, workspace, slug) =
                    (http.clone(), endpoints.clone(), workspace.clone(), slug.clone());
                async move { bitbucket_cloud::repository(&http, config, &endpoints, &token, &workspace, &slug).await }
            })
            .await?;
            match found {
                Ok(Some(repository)) => Ok(repository),
                Ok(None) => Err(Unusable::Repository(format!(
                    "Bitbucket shows no repository {workspace}/{slug} to the integration {}: check the name, and that its account can read it.",
                    integration.name
                ))),
                Err(CallFailed(why)) => Err(Unusable::Bitbucket(why)),
            }
        }
    }
}

/// The slug of `workspace/slug` for a Cloud integration, which reaches one
/// workspace only; only characters Bitbucket allows, so it cannot change a path.
fn cloud_repository_slug(raw: &str, workspace: &str) -> Result<String, String> {
    let usage = || {
        format!(
            "Name the repository as {workspace}/slug, such as {workspace}/my-repo (not \u{201c}{}\u{201d}).",
            raw.trim()
        )
    };
    let (given, slug) = raw.trim().split_once('/').ok_or_else(usage)?;
    if given != workspace {
        return Err(format!(
            "This integration reaches the workspace {workspace} only: name a repository as {workspace}/slug."
        ));
    }
    let slug_ok = !slug.is_empty()
        && slug != "."
        && slug != ".."
        && slug.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if slug_ok {
        Ok(slug.to_ascii_lowercase())
    } else {
        Err(usage())
    }
}
