//! `/api/v1/users`: account admins list, create, rename, disable and
//! re-enable users. Disabling ends the user's sessions and API tokens at
//! once: both are checked against the flag on every request.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use bitgate_core::{
    access::Access,
    audit::{self, Event, Target},
    passwords::Password,
    spaces,
    users::{self, CreateUserError, DisplayName, Email, FieldError, NewUser, Role, User},
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    caller::Caller,
    error::ApiError,
    json::{Fields, JsonObject},
    pagination::{page, Cursor, PageQuery},
    rfc3339,
};
use crate::state::AppState;

fn to_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "disabled": user.disabled,
        "account_admin": user.is_account_admin,
        "created_at": rfc3339(user.created_at),
    })
}

async fn require_account_admin(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    Access::load(&state.services.pool, caller.user.id).await?.can_administer_account()?;
    Ok(())
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    require_account_admin(&state, &caller).await?;
    let request = query.parse()?;
    let rows = users::list(&state.services.pool, request.after.map(|c| (c.at, c.id)), request.limit + 1).await?;
    let (items, next_cursor) = page(rows, request.limit, |u| Cursor { at: u.created_at, id: u.id });
    Ok(Json(json!({"items": items.iter().map(to_json).collect::<Vec<_>>(), "next_cursor": next_cursor})))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    require_account_admin(&state, &caller).await?;
    let id = Uuid::parse_str(&raw).map_err(|_| ApiError::NotFound)?;
    let user = users::find(&state.services.pool, id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(to_json(&user)))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    require_account_admin(&state, &caller).await?;
    let mut fields = Fields::new(body, &["email", "name", "password", "role", "space_id"]);
    let email = fields.required_string("email").and_then(|raw| fields.check(Email::parse(&raw)));
    let name = fields.optional_string("name").and_then(|raw| fields.check(DisplayName::parse(&raw)));
    let password = fields.required_string("password").and_then(|raw| {
        fields.check(Password::new(raw).map_err(|e| FieldError::new("password", "too_weak", e.to_string())))
    });
    let role = fields.optional_string("role").and_then(|raw| fields.check(Role::parse(&raw)));
    let space_id = match fields.optional_string("space_id") {
        Some(raw) => match Uuid::parse_str(&raw) {
            Ok(id) => spaces::find(&state.services.pool, id).await?.map(|s| s.id).or_else(|| {
                fields.errors.push(FieldError::new("space_id", "unknown", "No space has this id."));
                None
            }),
            Err(_) => {
                fields.errors.push(FieldError::new("space_id", "invalid", "Give a space id (a UUID)."));
                None
            }
        },
        None => spaces::resolve(&state.services.pool, spaces::ROOT).await?.map(|s| s.id),
    };
    fields.finish()?;
    let (Some(email), Some(password), Some(space_id)) = (email, password, space_id) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let name = name.unwrap_or_else(|| DisplayName::from_email(&email));

    let mut tx = state.services.pool.begin().await?;
    let new = NewUser { email, name, password, role: role.map(|r| (r, space_id)) };
    let user = match users::create(&mut tx, &state.services.hasher, new).await {
        Ok(user) => user,
        Err(CreateUserError::EmailTaken(email)) => {
            return Err(ApiError::Conflict(vec![FieldError::new(
                "email",
                "taken",
                format!("A user with the email {email} exists already."),
            )]))
        }
        Err(CreateUserError::Database(e)) => return Err(e.into()),
        Err(CreateUserError::Hashing(e)) => return Err(ApiError::Internal(e.to_string())),
    };
    audit::record(
        &mut *tx,
        Event::new(caller.actor(), "user.created").target(Target::user(&user)).from_address(caller.address),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_json(&user))))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    require_account_admin(&state, &caller).await?;
    let id = Uuid::parse_str(&raw).map_err(|_| ApiError::NotFound)?;
    users::find(&state.services.pool, id).await?.ok_or(ApiError::NotFound)?;
    let mut fields = Fields::new(body, &["name", "disabled"]);
    let name = fields.optional_string("name").and_then(|raw| fields.check(DisplayName::parse(&raw)));
    let disabled = fields.optional_bool("disabled");
    fields.finish()?;

    let mut tx = state.services.pool.begin().await?;
    users::update(&mut *tx, id, name.as_ref(), disabled).await?;
    if spaces::account_admin_count(&mut *tx).await? == 0 {
        return Err(ApiError::Conflict(vec![FieldError::new(
            "disabled",
            "last_admin",
            "This is the last enabled administrator of the account.",
        )]));
    }
    let user = users::find(&mut *tx, id).await?.ok_or(ApiError::NotFound)?;
    let action = match disabled {
        Some(true) => "user.disabled",
        Some(false) => "user.enabled",
        None => "user.updated",
    };
    audit::record(
        &mut *tx,
        Event::new(caller.actor(), action).target(Target::user(&user)).from_address(caller.address),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(to_json(&user)))
}
