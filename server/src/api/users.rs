//! `/api/v1/users`: account admins list, create, rename, disable and
//! re-enable users. Disabling ends the user's sessions and API tokens at
//! once: both are checked against the flag on every request.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use bitgate_core::{
    access::Access,
    users::{
        self,
        operations::{self, NewUserInput, UserChange},
        User,
    },
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

/// A user, as account admins see them. Never their password.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub id: Uuid,
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub name: String,
    /// A disabled user cannot log in, and their sessions and API tokens stop working.
    pub disabled: bool,
    /// Admin of `root`.
    pub account_admin: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            disabled: user.disabled,
            account_admin: user.is_account_admin,
            created_at: rfc3339(user.created_at),
        }
    }
}

/// The body of `POST /api/v1/users`.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct CreateUser {
    email: String,
    /// Shown in the console; the part of the email before `@` when left out.
    name: Option<String>,
    /// At least 12 characters. The user can change it later.
    #[schema(format = Password)]
    password: String,
    /// A role to give the new user on `space_id` (none when left out).
    role: Option<RoleName>,
    /// The space of `role`; `root` when left out.
    space_id: Option<Uuid>,
}

/// The body of `PATCH /api/v1/users/{id}`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct UpdateUser {
    name: Option<String>,
    /// true disables the user at once (sessions and tokens included); false re-enables them.
    disabled: Option<bool>,
}

async fn require_account_admin(state: &AppState, caller: &Caller) -> Result<(), AppError> {
    Access::load(&state.services.pool, caller.user.id).await?.can_administer_account()?;
    Ok(())
}

/// List users
///
/// Account admins (admins of `root`).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery),
    responses(
        (status = 200, description = "The users, newest first.", body = Page<UserView>),
        (status = 403, description = "You are not an account admin.", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<UserView>>, AppError> {
    require_account_admin(&state, &caller).await?;
    let request = query.parse()?;
    let rows = users::list(&state.services.pool, request.after.map(|c| (c.at, c.id)), request.limit + 1).await?;
    Ok(Json(page_of(rows, request.limit, |u| Cursor { at: u.created_at, id: u.id }, |u| UserView::from(u))))
}

/// Get a user
///
/// Account admins.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 403, description = "You are not an account admin.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<UserView>, AppError> {
    require_account_admin(&state, &caller).await?;
    let id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    let user = users::find(&state.services.pool, id).await?.ok_or(AppError::NotFound)?;
    Ok(Json(UserView::from(&user)))
}

/// Create a user
///
/// Account admins.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses(
        (status = 201, description = "The user was created.", body = UserView),
        (status = 403, description = "You are not an account admin.", body = ErrorBody),
        (status = 409, description = "A user has this email already.", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<impl IntoResponse, AppError> {
    let mut fields = Fields::new::<CreateUser>(body);
    let mut input = NewUserInput {
        email: fields.optional_string("email"),
        name: fields.optional_string("name"),
        password: fields.optional_string("password"),
        role: fields.optional_string("role"),
        space: fields.optional_string("space_id"),
        ..Default::default()
    };
    // The API names a space by its id only.
    if input.space.as_deref().is_some_and(|raw| Uuid::parse_str(raw.trim()).is_err()) {
        fields.refuse("space_id", "invalid", "Give a space id (a UUID).");
        input.space = None;
    }
    input.read_problems = fields.errors;
    let user = operations::create(&state.services.pool, &state.services.hasher, &caller.principal(), input).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Rename, disable or re-enable a user
///
/// Account admins. Disabling ends the user's sessions and API tokens at once.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UpdateUser,
    params(("id" = Uuid, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user as they are now.", body = UserView),
        (status = 403, description = "You are not an account admin.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
        (status = 409, description = "This would disable the last account admin.", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: JsonObject,
) -> Result<Json<UserView>, AppError> {
    let id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    let mut fields = Fields::new::<UpdateUser>(body);
    let change = UserChange {
        name: fields.optional_string("name"),
        disabled: fields.optional_bool("disabled"),
        read_problems: std::mem::take(&mut fields.errors),
    };
    let user = operations::update(&state.services.pool, &caller.principal(), id, change).await?;
    Ok(Json(UserView::from(&user)))
}
