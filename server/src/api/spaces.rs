//! `/api/v1/spaces` and their members. Authorization comes first: a caller
//! who may not act learns nothing about whether the request was valid.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use bitgate_core::{
    access::Access,
    spaces::{
        self,
        operations::{self, MemberInput, SpaceInput},
        SpaceRecord,
    },
    users::Role,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    error::ErrorBody,
    json::{Fields, JsonObject},
    pagination::{page_of, Cursor, Page, PageQuery},
    rfc3339, RoleName,
};
use crate::state::AppState;

/// A space, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Space {
    pub id: Uuid,
    /// Unique in the account.
    #[schema(example = "payments")]
    pub name: String,
    /// Null for `root` only.
    pub parent_id: Option<Uuid>,
    pub description: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The caller's effective role here (held here or on a space above).
    pub role: Option<RoleName>,
}

impl Space {
    fn new(space: &SpaceRecord, access: &Access) -> Self {
        Self {
            id: space.id,
            name: space.name.clone(),
            parent_id: space.parent_id,
            description: space.description.clone(),
            created_at: rfc3339(space.created_at),
            role: access.role_on(space.id).map(RoleName::from),
        }
    }
}

/// The body of `POST /api/v1/spaces`.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct CreateSpace {
    /// 1 to 63 printable characters, unique in the account.
    #[schema(example = "payments")]
    name: String,
    /// The space to create it in; you must administer it.
    parent_id: Uuid,
    description: Option<String>,
}

/// The body of `PATCH /api/v1/spaces/{id}`: fields left out stay as they are.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct UpdateSpace {
    /// A new name (not for `root`).
    name: Option<String>,
    description: Option<String>,
}

/// A member of a space: a user and the role they hold on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: RoleName,
}

/// The body of `PUT /api/v1/spaces/{id}/members`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PutMember {
    /// The email of an existing user.
    #[schema(example = "ada@example.com")]
    email: String,
    role: RoleName,
}

/// Parses a path id; a malformed one names nothing.
fn id(raw: &str) -> Result<Uuid, AppError> {
    Ok(operations::parse_id(raw)?)
}

/// List the spaces you can see
///
/// Every space you hold a role on, and the spaces inside them, newest first.
#[utoipa::path(get, path = "/api/v1/spaces", tag = "spaces", params(PageQuery),
    responses((status = 200, description = "The spaces you can see.", body = Page<Space>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Space>>, AppError> {
    let request = query.parse()?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let rows = spaces::list(
        &state.services.pool,
        &access.visible_spaces(),
        request.after.map(|c| (c.at, c.id)),
        request.limit + 1,
    )
    .await?;
    Ok(Json(page_of(rows, request.limit, |s| Cursor { at: s.created_at, id: s.id }, |s| Space::new(s, &access))))
}

/// Get a space
///
/// Any role on the space, or on a space above it.
#[utoipa::path(get, path = "/api/v1/spaces/{id}", tag = "spaces", params(("id" = Uuid, Path, description = "The space's id.")),
    responses(
        (status = 200, description = "The space.", body = Space),
        (status = 404, description = "No such space, or none you can see.", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<Space>, AppError> {
    let space_id = id(&raw)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    access.can_see(space_id)?;
    let space = spaces::find(&state.services.pool, space_id).await?.ok_or(AppError::NotFound)?;
    Ok(Json(Space::new(&space, &access)))
}

/// Create a space
///
/// Inside a space you administer.
#[utoipa::path(post, path = "/api/v1/spaces", tag = "spaces", request_body = CreateSpace,
    responses(
        (status = 201, description = "The space was created.", body = Space),
        (status = 403, description = "You can see the parent but do not administer it.", body = ErrorBody),
        (status = 404, description = "The parent does not exist, or you cannot see it.", body = ErrorBody),
        (status = 409, description = "A space has this name already (`details[].field` is `name`).", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<impl IntoResponse, AppError> {
    let mut fields = Fields::new::<CreateSpace>(body);
    // Authorization first: an unknown or unseen parent is a 404 whatever else is wrong.
    let parent = fields.optional_string("parent_id");
    let input = SpaceInput {
        name: fields.optional_string("name"),
        description: fields.optional_string("description"),
        read_problems: Vec::new(),
    };
    let Some(parent) = parent else {
        if !fields.has("parent_id") {
            fields.refuse("parent_id", "required", "\"parent_id\" is required.");
        }
        return Err(AppError::Validation(fields.errors));
    };
    let input = SpaceInput { read_problems: fields.errors, ..input };
    let space = operations::create(&state.services.pool, &caller.principal(), id(&parent)?, input).await?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    Ok((StatusCode::CREATED, Json(Space::new(&space, &access))))
}

/// Rename a space or change its description
///
/// Admins of the space.
#[utoipa::path(patch, path = "/api/v1/spaces/{id}", tag = "spaces", request_body = UpdateSpace,
    params(("id" = Uuid, Path, description = "The space's id.")),
    responses(
        (status = 200, description = "The space as it is now.", body = Space),
        (status = 403, description = "You can see the space but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such space, or none you can see.", body = ErrorBody),
        (status = 409, description = "Another space has this name.", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: JsonObject,
) -> Result<Json<Space>, AppError> {
    let mut fields = Fields::new::<UpdateSpace>(body);
    let input = SpaceInput {
        name: fields.optional_string("name"),
        description: fields.optional_string("description"),
        read_problems: std::mem::take(&mut fields.errors),
    };
    let space = operations::update(&state.services.pool, &caller.principal(), id(&raw)?, input).await?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    Ok(Json(Space::new(&space, &access)))
}

/// Delete a space
///
/// Admins of its parent; a space with spaces inside it cannot go, nor can `root`.
#[utoipa::path(delete, path = "/api/v1/spaces/{id}", tag = "spaces",
    params(("id" = Uuid, Path, description = "The space's id.")),
    responses(
        (status = 204, description = "The space was deleted."),
        (status = 403, description = "You do not administer its parent, or it is `root`.", body = ErrorBody),
        (status = 404, description = "No such space, or none you can see.", body = ErrorBody),
        (status = 409, description = "Spaces are inside it; delete them first.", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    operations::delete(&state.services.pool, &caller.principal(), id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl Member {
    fn new(member: &spaces::Member) -> Result<Self, AppError> {
        let role = Role::parse(&member.role).map_err(|e| AppError::internal(e.message))?;
        Ok(Self { user_id: member.user_id, email: member.email.clone(), name: member.name.clone(), role: role.into() })
    }
}

/// List the members of a space
///
/// Admins of the space. The roles held on this space itself (roles held on
/// spaces above it apply too, and are listed there). One page holds them all.
#[utoipa::path(get, path = "/api/v1/spaces/{id}/members", tag = "spaces",
    params(("id" = Uuid, Path, description = "The space's id.")),
    responses(
        (status = 200, description = "The members.", body = Page<Member>),
        (status = 403, description = "You can see the space but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such space, or none you can see.", body = ErrorBody)))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<Page<Member>>, AppError> {
    let space_id = id(&raw)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    access.can_administer(space_id)?;
    let members = spaces::members(&state.services.pool, space_id).await?;
    let items = members.iter().map(Member::new).collect::<Result<_, _>>()?;
    Ok(Json(Page { items, next_cursor: None }))
}

/// Give a user a role on a space
///
/// Admins of the space. Replaces the role the user held on this space.
#[utoipa::path(put, path = "/api/v1/spaces/{id}/members", tag = "spaces", request_body = PutMember,
    params(("id" = Uuid, Path, description = "The space's id.")),
    responses(
        (status = 200, description = "The member as they are now.", body = Member),
        (status = 403, description = "You can see the space but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such space, or none you can see.", body = ErrorBody),
        (status = 409, description = "This would leave the account without an administrator of root.", body = ErrorBody)))]
pub async fn put_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: JsonObject,
) -> Result<Json<Member>, AppError> {
    let space_id = id(&raw)?;
    let mut fields = Fields::new::<PutMember>(body);
    let input = MemberInput {
        email: fields.optional_string("email"),
        role: fields.optional_string("role"),
        read_problems: std::mem::take(&mut fields.errors),
    };
    let user = operations::set_member(&state.services.pool, &caller.principal(), space_id, input).await?;
    let members = spaces::members(&state.services.pool, space_id).await?;
    let member = members.iter().find(|m| m.user_id == user.user_id).ok_or(AppError::NotFound)?;
    Ok(Json(Member::new(member)?))
}

/// Take a user's role on a space away
///
/// Admins of the space.
#[utoipa::path(delete, path = "/api/v1/spaces/{id}/members/{user_id}", tag = "spaces",
    params(("id" = Uuid, Path, description = "The space's id."), ("user_id" = Uuid, Path, description = "The member's user id.")),
    responses(
        (status = 204, description = "The role was removed."),
        (status = 403, description = "You can see the space but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such space or member, or none you can see.", body = ErrorBody),
        (status = 409, description = "This would leave the account without an administrator of root.", body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, user_raw)): Path<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    let space_id = id(&raw)?;
    let user_id = id(&user_raw)?;
    operations::remove_member(&state.services.pool, &caller.principal(), space_id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
