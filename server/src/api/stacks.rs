//! `/api/v1/stacks`: the consumers of integrations. Readers of a space see
//! its stacks; writers create, change, re-attach and delete them. A stack's
//! repository is always found through its integration before it is saved,
//! so a stack never points at a repository its integration cannot read.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::{
    access::Access,
    audit::{self, Event, Target},
    integrations::{self, Integration},
    stacks::{self, NewStack, Stack, StackChanges, StackFilter, StackWriteError},
    users::FieldError,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    error::{ApiError, ErrorBody},
    json::{Fields, JsonObject},
    pagination::{page_of, Cursor, Page, PageQuery},
    repositories::{self, Unusable},
    rfc3339,
};
use crate::state::AppState;

/// A stack, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Stack)]
pub struct StackView {
    pub id: Uuid,
    pub name: String,
    pub space_id: Uuid,
    /// `bitbucket_cloud` or `bitbucket_datacenter`.
    pub provider: String,
    /// Null when detached.
    pub integration_id: Option<Uuid>,
    pub integration_name: Option<String>,
    /// Its integration was deleted: no webhooks, no runs, until it is
    /// attached to another integration of the same provider.
    pub detached: bool,
    pub repository: RepositoryRef,
    pub branch: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub created_by: String,
    /// A push deleted the branch it tracks: no run until it is created again.
    pub branch_deleted: bool,
    /// The last delivery that triggered it.
    pub last_delivery: Option<LastDelivery>,
}

/// A stack's last triggering delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastDelivery {
    pub id: Uuid,
    #[schema(format = DateTime)]
    pub received_at: String,
}

/// A repository by Bitbucket's stable id, with its name beside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryRef {
    pub id: String,
    /// `PROJECT/slug`.
    #[schema(example = "PRJ/my-repo")]
    pub name: String,
}

pub fn view(stack: &Stack) -> StackView {
    StackView {
        id: stack.id,
        name: stack.name.clone(),
        space_id: stack.space_id,
        provider: stack.provider.as_str().to_owned(),
        integration_id: stack.integration_id,
        integration_name: stack.integration_name.clone(),
        detached: stack.integration_id.is_none(),
        repository: RepositoryRef { id: stack.repository_id.clone(), name: stack.repository_name.clone() },
        branch: stack.branch.clone(),
        created_at: rfc3339(stack.created_at),
        created_by: stack.created_by_label.clone(),
        branch_deleted: stack.branch_deleted,
        last_delivery: stack.last_delivery.map(|(id, at)| LastDelivery { id, received_at: rfc3339(at) }),
    }
}

/// The body of `POST /api/v1/stacks`.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct CreateStack {
    /// 1 to 100 characters, unique in its space.
    #[schema(example = "web-production")]
    name: String,
    /// You need the write role on it.
    space_id: Uuid,
    /// A default integration, or one of this space or a space above it.
    integration_id: Uuid,
    /// `PROJECT/slug`, as `/api/v1/integrations/{id}/repositories` names it.
    #[schema(example = "PRJ/my-repo")]
    repository: String,
    #[schema(example = "main")]
    branch: String,
}

/// The body of `PATCH /api/v1/stacks/{id}`: fields left out stay.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct UpdateStack {
    name: Option<String>,
    branch: Option<String>,
    /// Another integration of the same provider: re-attaches the stack (a
    /// detached one included); its repository is found through it again.
    integration_id: Option<Uuid>,
    /// `PROJECT/slug`: another repository, found through the integration.
    repository: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the stacks of this space.
    #[param(value_type = Option<Uuid>)]
    space_id: Option<String>,
    /// Only the stacks using this integration.
    #[param(value_type = Option<Uuid>)]
    integration_id: Option<String>,
    /// `true`: only detached stacks; `false`: only attached ones.
    #[param(value_type = Option<bool>)]
    detached: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    cursor: Option<String>,
}

fn target(stack: &Stack) -> Target {
    Target { kind: "stack", id: stack.id.to_string(), label: stack.name.clone() }
}

fn uuid_param(raw: Option<&str>, name: &str) -> Result<Option<Uuid>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| Uuid::parse_str(s.trim()))
        .transpose()
        .map_err(|_| ApiError::BadRequest(format!("{name} must be an id (a UUID).")))
}

/// List stacks
///
/// The stacks of every space you hold a role on, newest first.
#[utoipa::path(get, path = "/api/v1/stacks", tag = "stacks", params(ListQuery),
    responses((status = 200, description = "The stacks you can see.", body = Page<StackView>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<StackView>>, ApiError> {
    let request = PageQuery { limit: query.limit.clone(), cursor: query.cursor.clone() }.parse()?;
    let detached = match query.detached.as_deref() {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::BadRequest("detached must be true or false.".into())),
    };
    let filter = StackFilter {
        space_id: uuid_param(query.space_id.as_deref(), "space_id")?,
        integration_id: uuid_param(query.integration_id.as_deref(), "integration_id")?,
        detached,
    };
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let rows = stacks::list(
        &state.services.pool,
        &access.visible_spaces(),
        &filter,
        request.after.map(|c| (c.at, c.id)),
        request.limit + 1,
    )
    .await?;
    Ok(Json(page_of(rows, request.limit, |s| Cursor { at: s.created_at, id: s.id }, view)))
}

/// Why a stack was not written, field by field.
fn write_failure(error: StackWriteError) -> ApiError {
    match error {
        StackWriteError::Database(e) => e.into(),
        conflict => ApiError::Conflict(conflict.field_error().into_iter().collect()),
    }
}

/// The integration a stack in `space` is to use, when it may; the same
/// answer whether it does not exist or is not usable there, so that a
/// writer learns nothing about integrations they cannot see.
async fn usable_integration(
    state: &AppState,
    raw: Uuid,
    space: Uuid,
) -> Result<Result<Integration, FieldError>, ApiError> {
    let refusal = FieldError::new(
        "integration_id",
        "not_usable",
        "This space cannot use that integration: choose a default integration, or one of this space or a space above it.",
    );
    if !stacks::integration_usable_in(&state.services.pool, raw, space).await? {
        return Ok(Err(refusal));
    }
    Ok(integrations::find(&state.services.pool, raw).await?.ok_or(refusal))
}

/// `integration_id` as an id; anything else is refused as a field.
fn integration_id(fields: &mut Fields, raw: Option<String>) -> Option<Uuid> {
    let parsed = Uuid::parse_str(raw?.trim()).ok();
    if parsed.is_none() {
        fields.refuse("integration_id", "invalid", "Give the integration's id (a UUID).");
    }
    parsed
}

/// The integration, when it serves the stack's provider (its repository id
/// means nothing to another provider).
fn of_provider(integration: Integration, stack: &Stack) -> Result<Integration, FieldError> {
    if integration.provider == stack.provider {
        Ok(integration)
    } else {
        Err(FieldError::new(
            "integration_id",
            "other_provider",
            format!(
                "This stack's repository is on {}: attach it to an integration of that provider.",
                stack.provider.label()
            ),
        ))
    }
}

/// The repository found through the integration, or the field error that says why not.
async fn repository_through(
    state: &AppState,
    integration: &Integration,
    name: &str,
) -> Result<Result<(String, String), FieldError>, ApiError> {
    match repositories::find(state, integration, name).await {
        Ok(repository) => Ok(Ok((repository.id.clone(), repository.full_name()))),
        Err(Unusable::Invalid(why)) => Ok(Err(FieldError::new("repository", "invalid", why))),
        Err(Unusable::Repository(why)) => Ok(Err(FieldError::new("repository", "not_found", why))),
        Err(Unusable::Bitbucket(why)) => Ok(Err(FieldError::new("repository", "bitbucket_error", why))),
        Err(Unusable::Error(error)) => Err(error),
    }
}

/// Create a stack
///
/// Writers of the space. The repository is looked up through the
/// integration first; nothing is stored when Bitbucket does not show it.
#[utoipa::path(post, path = "/api/v1/stacks", tag = "stacks", request_body = CreateStack,
    responses(
        (status = 201, description = "Created.", body = StackView),
        (status = 403, description = "You can see the space but not write to it.", body = ErrorBody),
        (status = 404, description = "The space does not exist, or you cannot see it.", body = ErrorBody),
        (status = 409, description = "A stack of this space has this name.", body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, caller: Caller, body: JsonObject) -> Result<Response, ApiError> {
    let stack = create_checked(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(view(&stack))).into_response())
}

/// Creates a stack from a request body (the REST API's, or the page's form
/// turned into one): authorization, validation, the repository lookup, the
/// insert and its audit entry.
pub async fn create_checked(state: &AppState, caller: &Caller, body: JsonObject) -> Result<Stack, ApiError> {
    let mut fields = Fields::new::<CreateStack>(body);
    // Authorization first: the space decides who may.
    let space = match fields.required_string("space_id") {
        Some(raw) => Some(Uuid::parse_str(raw.trim()).map_err(|_| ApiError::NotFound)?),
        None => None,
    };
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    if let Some(space) = space {
        if let Err(why) = access.can_write(space) {
            return Err(caller.refused(state, "stack", "stack.create", Some(space), why).await);
        }
    }
    let name = fields.required_string("name").and_then(|raw| fields.check(stacks::parse_name(&raw)));
    let branch = fields.required_string("branch").and_then(|raw| fields.check(stacks::parse_branch(&raw)));
    let repository = fields.required_string("repository");
    let raw = fields.required_string("integration_id");
    let integration_id = integration_id(&mut fields, raw);
    let integration = match (integration_id, space) {
        (Some(id), Some(space)) => fields.check(usable_integration(state, id, space).await?),
        _ => None,
    };
    fields.finish()?;
    let (Some(space), Some(name), Some(branch), Some(repository), Some(integration)) =
        (space, name, branch, repository, integration)
    else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };

    // A taken name before Bitbucket is asked; the insert still catches a race.
    if stacks::name_taken(&state.services.pool, space, &name).await? {
        return Err(write_failure(StackWriteError::NameTaken));
    }
    let (repository_id, repository_name) =
        repository_through(state, &integration, &repository).await?.map_err(|e| ApiError::Validation(vec![e]))?;
    let new = NewStack {
        name,
        space_id: space,
        provider: integration.provider,
        integration_id: integration.id,
        repository_id,
        repository_name,
        branch,
        created_by_label: caller.user.email.clone(),
    };
    let mut tx = state.services.pool.begin().await?;
    let id = stacks::create(&mut *tx, new).await.map_err(write_failure)?;
    let stack = stacks::find(&mut *tx, id).await?.ok_or(ApiError::NotFound)?;
    let event = Event::new(caller.actor(), "stack.created")
        .target(target(&stack))
        .from_address(caller.address)
        .details(serde_json::json!({"integration": integration.name, "repository": stack.repository_name}))
        .in_space(stack.space_id);
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(stack)
}

/// The stack, when the caller can see its space.
async fn visible(state: &AppState, caller: &Caller, raw: &str) -> Result<Stack, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let stack = stacks::find(&state.services.pool, id).await?.ok_or(ApiError::NotFound)?;
    access.can_see(stack.space_id)?;
    Ok(stack)
}

/// The stack, when the caller may change it; otherwise the refusal, recorded.
pub async fn writable(state: &AppState, caller: &Caller, raw: &str, action: &str) -> Result<Stack, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let stack = stacks::find(&state.services.pool, id).await?.ok_or(ApiError::NotFound)?;
    if let Err(why) = access.can_write(stack.space_id) {
        return Err(caller.refused(state, "stack", action, Some(stack.space_id), why).await);
    }
    Ok(stack)
}

/// Get a stack
///
/// Anyone with a role on its space.
#[utoipa::path(get, path = "/api/v1/stacks/{id}", tag = "stacks",
    params(("id" = Uuid, Path, description = "The stack's id.")),
    responses(
        (status = 200, description = "The stack.", body = StackView),
        (status = 404, description = "No such stack, or none you can see.", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<StackView>, ApiError> {
    let stack = visible(&state, &caller, &raw).await?;
    Ok(Json(view(&stack)))
}

/// Change or re-attach a stack
///
/// Writers of its space. A new integration (re-attaching) or repository is
/// checked through Bitbucket before anything is saved.
#[utoipa::path(patch, path = "/api/v1/stacks/{id}", tag = "stacks", request_body = UpdateStack,
    params(("id" = Uuid, Path, description = "The stack's id.")),
    responses(
        (status = 200, description = "The stack as it is now.", body = StackView),
        (status = 403, description = "You can see it but not change it.", body = ErrorBody),
        (status = 404, description = "No such stack, or none you can see.", body = ErrorBody),
        (status = 409, description = "Another stack of its space has this name.", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: JsonObject,
) -> Result<Json<StackView>, ApiError> {
    let stack = update_checked(&state, &caller, &raw, body).await?;
    Ok(Json(view(&stack)))
}

/// Applies a change to a stack (the REST API's PATCH, and the stack page's forms).
pub async fn update_checked(state: &AppState, caller: &Caller, raw: &str, body: JsonObject) -> Result<Stack, ApiError> {
    let stack = writable(state, caller, raw, "stack.update").await?;
    let mut fields = Fields::new::<UpdateStack>(body);
    let name = fields.optional_string("name").and_then(|raw| fields.check(stacks::parse_name(&raw)));
    let branch = fields.optional_string("branch").and_then(|raw| fields.check(stacks::parse_branch(&raw)));
    let repository = fields.optional_string("repository").filter(|r| !r.trim().is_empty());
    let raw = fields.optional_string("integration_id").filter(|r| !r.trim().is_empty());
    let new_integration = match integration_id(&mut fields, raw) {
        Some(id) => {
            let usable = usable_integration(state, id, stack.space_id).await?;
            fields.check(usable.and_then(|integration| of_provider(integration, &stack)))
        }
        None => None,
    };
    if repository.is_some() && new_integration.is_none() && stack.integration_id.is_none() && fields.errors.is_empty() {
        fields.refuse(
            "integration_id",
            "required",
            "This stack is detached: give the integration to attach it to with its repository.",
        );
    }
    fields.finish()?;

    // A new integration or repository: find the repository through the
    // integration it will use (the stored name when only re-attaching).
    let reattached = new_integration.as_ref().is_some_and(|i| Some(i.id) != stack.integration_id);
    let mut attachment = None;
    if new_integration.is_some() || repository.is_some() {
        let integration = match (new_integration, stack.integration_id) {
            (Some(integration), _) => integration,
            (None, Some(current)) => {
                integrations::find(&state.services.pool, current).await?.ok_or(ApiError::NotFound)?
            }
            (None, None) => return Err(ApiError::Internal("a detached stack without a new integration".into())),
        };
        let wanted = repository.unwrap_or_else(|| stack.repository_name.clone());
        let (id, name) =
            repository_through(state, &integration, &wanted).await?.map_err(|e| ApiError::Validation(vec![e]))?;
        attachment = Some((integration.id, id, name));
    }
    let mut tx = state.services.pool.begin().await?;
    let updated = stacks::update(&mut tx, stack.id, StackChanges { name, branch, attachment })
        .await
        .map_err(write_failure)?
        .ok_or(ApiError::NotFound)?;
    let action = if reattached { "stack.attached" } else { "stack.updated" };
    let mut event = Event::new(caller.actor(), action)
        .target(target(&updated))
        .from_address(caller.address)
        .in_space(updated.space_id);
    if reattached {
        event = event.details(serde_json::json!({"integration": updated.integration_name, "was_detached": stack.integration_id.is_none()}));
    }
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Delete a stack
///
/// Writers of its space.
#[utoipa::path(delete, path = "/api/v1/stacks/{id}", tag = "stacks",
    params(("id" = Uuid, Path, description = "The stack's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "You can see it but not change it.", body = ErrorBody),
        (status = 404, description = "No such stack, or none you can see.", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_checked(&state, &caller, &raw).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_checked(state: &AppState, caller: &Caller, raw: &str) -> Result<Stack, ApiError> {
    let stack = writable(state, caller, raw, "stack.delete").await?;
    let mut tx = state.services.pool.begin().await?;
    if !stacks::delete(&mut *tx, stack.id).await? {
        return Err(ApiError::NotFound);
    }
    let event = Event::new(caller.actor(), "stack.deleted")
        .target(target(&stack))
        .from_address(caller.address)
        .in_space(stack.space_id);
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(stack)
}
