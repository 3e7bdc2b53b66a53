//! `/api/v1/stacks`: the consumers of integrations. Readers of a space see
//! its stacks; writers create, change, re-attach and delete them. A stack's
//! repository is always found through its integration before it is saved,
//! so a stack never points at a repository its integration cannot read.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::{
    access::Access,
    managed_hooks::HookStatus,
    platform::events::Triggers,
    stacks::{
        self,
        operations::{self, StackInput},
        Stack, StackFilter,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    error::ErrorBody,
    json::{Fields, JsonObject},
    pagination::{page_of, Cursor, Page, PageQuery},
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
    pub triggers: TriggersView,
    /// Bitgate's webhook in the stack's repository, as last checked; null
    /// until the first check (and when detached).
    pub hook: Option<HookView>,
}

/// A repository's webhook, as Bitgate last found it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HookStatus)]
pub struct HookView {
    /// `installed`, `missing`, `differs`, `failing`, `not_permitted` or `not_managed`.
    #[schema(example = "installed")]
    pub state: String,
    /// What it means, and what to do (for `not_permitted`: what to grant).
    pub message: String,
}

impl From<&HookStatus> for HookView {
    fn from(status: &HookStatus) -> Self {
        Self { state: status.state.as_str().to_owned(), message: status.message.clone() }
    }
}

/// Which events the stack's deliveries make, besides a tracked run for a
/// push to its branch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StackTriggers)]
pub struct TriggersView {
    /// A proposed run for a pull request into the branch, when it is opened
    /// or its source moves. Default true.
    pub build_pull_requests: bool,
    /// A tracked run for a push to any branch of the repository (the event
    /// names the branch). Default false.
    pub all_branches: bool,
    /// `branch.deleted` when the branch (with `all_branches`: any branch) is
    /// deleted. Default true.
    pub prune_branches: bool,
    /// A push to the source of an open pull request into the branch also
    /// requests its proposed run, with `resync: true` (with
    /// `build_pull_requests` only). Default false.
    pub resync_pull_requests: bool,
}

impl From<Triggers> for TriggersView {
    fn from(triggers: Triggers) -> Self {
        let Triggers { build_pull_requests, all_branches, prune_branches, resync_pull_requests } = triggers;
        TriggersView { build_pull_requests, all_branches, prune_branches, resync_pull_requests }
    }
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
        triggers: stack.triggers.into(),
        hook: stack.hook.as_ref().map(HookView::from),
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
    /// Each left out takes its default.
    triggers: Option<TriggersInput>,
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
    /// Each left out stays as it is.
    triggers: Option<TriggersInput>,
}

/// Triggers to set: each is true or false, and may be left out.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = StackTriggersInput)]
pub struct TriggersInput {
    build_pull_requests: Option<bool>,
    all_branches: Option<bool>,
    prune_branches: Option<bool>,
    resync_pull_requests: Option<bool>,
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

fn uuid_param(raw: Option<&str>, name: &str) -> Result<Option<Uuid>, AppError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| Uuid::parse_str(s.trim()))
        .transpose()
        .map_err(|_| AppError::BadRequest(format!("{name} must be an id (a UUID).")))
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
) -> Result<Json<Page<StackView>>, AppError> {
    let request = PageQuery { limit: query.limit.clone(), cursor: query.cursor.clone() }.parse()?;
    let detached = match query.detached.as_deref() {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(AppError::BadRequest("detached must be true or false.".into())),
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

/// A request body as the stack operations read it: each value moved over,
/// what JSON itself refuses (an unknown field, a wrong type) noted for them.
fn read_input<B: utoipa::PartialSchema>(body: JsonObject) -> StackInput {
    let mut fields = Fields::new::<B>(body);
    let triggers = fields.nested::<TriggersInput>("triggers").map(|mut t| {
        let read = operations::TriggersInput {
            build_pull_requests: t.optional_bool("build_pull_requests"),
            all_branches: t.optional_bool("all_branches"),
            prune_branches: t.optional_bool("prune_branches"),
            resync_pull_requests: t.optional_bool("resync_pull_requests"),
        };
        fields.absorb(t);
        read
    });
    let mut input = StackInput {
        name: fields.optional_string("name"),
        space_id: fields.optional_string("space_id"),
        integration_id: fields.optional_string("integration_id"),
        repository: fields.optional_string("repository"),
        branch: fields.optional_string("branch"),
        triggers,
        ..Default::default()
    };
    input.read_problems = fields.errors;
    input
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
pub async fn create(State(state): State<AppState>, caller: Caller, body: JsonObject) -> Result<Response, AppError> {
    let stack = operations::create(&state.services, &caller.principal(), read_input::<CreateStack>(body)).await?;
    Ok((StatusCode::CREATED, Json(view(&stack))).into_response())
}

/// The stack, when the caller can see its space.
async fn visible(state: &AppState, caller: &Caller, raw: &str) -> Result<Stack, AppError> {
    let id = operations::parse_id(raw)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let stack = stacks::find(&state.services.pool, id).await?.ok_or(AppError::NotFound)?;
    access.can_see(stack.space_id)?;
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
) -> Result<Json<StackView>, AppError> {
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
) -> Result<Json<StackView>, AppError> {
    let input = read_input::<UpdateStack>(body);
    let stack = operations::update(&state.services, &caller.principal(), operations::parse_id(&raw)?, input).await?;
    Ok(Json(view(&stack)))
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
) -> Result<StatusCode, AppError> {
    operations::delete(&state.services, &caller.principal(), operations::parse_id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
