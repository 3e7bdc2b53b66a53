//! The users page: account admins list, create, disable and re-enable
//! users. The same rules as `/api/v1/users`, through the same core calls.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{Flash, FormOutcome, PageContext, UserRow, UsersPage};
use bitgate_core::{
    access::Access,
    audit::{self, Actor, Event, Target},
    passwords::Password,
    spaces,
    users::{self, ChangeUserError, CreateUserError, DisplayName, Email, FieldError, NewUser, Role, User},
};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    pages::AppError,
    session::{push_flash, CurrentUser},
};
use crate::{api::rfc3339, state::AppState};

async fn require_account_admin(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    Access::load(&state.services.pool, user.0.id).await?.can_administer_account()?;
    Ok(())
}

fn row(user: &User) -> UserRow {
    UserRow {
        id: user.id.to_string(),
        email: user.email.clone(),
        name: user.name.clone(),
        disabled: user.disabled,
        account_admin: user.is_account_admin,
        created_at: rfc3339(user.created_at),
    }
}

async fn render(
    state: &AppState,
    context: PageContext,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let mut users = users::list(&state.services.pool, None, 10_000).await?;
    users.sort_by_key(|user| user.name.to_lowercase());
    let page = UsersPage { users: users.iter().map(row).collect() };
    let context = PageContext { users: Some(page), form, ..context };
    Ok(state.pages.render("/users", context, status).await)
}

pub async fn page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
) -> Result<Response, AppError> {
    require_account_admin(&state, &user).await?;
    render(&state, context, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    /// A checkbox: "on" when ticked, absent otherwise.
    #[serde(default)]
    account_admin: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    require_account_admin(&state, &user).await?;
    let mut errors: Vec<FieldError> = Vec::new();
    let email = Email::parse(&form.email).map_err(|e| errors.push(e)).ok();
    let name = match form.name.trim() {
        "" => None,
        raw => DisplayName::parse(raw).map_err(|e| errors.push(e)).ok(),
    };
    let password = Password::new(form.password.clone())
        .map_err(|e| errors.push(FieldError::new("password", "too_weak", e.to_string())))
        .ok();
    // The form is answered again with what was typed, never the password.
    let again = |errors: Vec<FieldError>| FormOutcome {
        values: vec![
            ("email".into(), form.email.clone()),
            ("name".into(), form.name.clone()),
            ("account_admin".into(), form.account_admin.clone().unwrap_or_default()),
        ],
        field_errors: errors.into_iter().map(|e| (e.field, e.message)).collect(),
        ..FormOutcome::default()
    };
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return render(&state, context, Some(again(errors)), StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let root = spaces::resolve(&state.services.pool, spaces::ROOT).await?.ok_or(AppError::NotFound)?;
    let role = form.account_admin.is_some().then_some((Role::Admin, root.id));
    let name = name.unwrap_or_else(|| DisplayName::from_email(&email));
    let mut tx = state.services.pool.begin().await?;
    let created = match users::create(&mut tx, &state.services.hasher, NewUser { email, name, password, role }).await {
        Ok(created) => created,
        Err(CreateUserError::EmailTaken(email)) => {
            let errors =
                vec![FieldError::new("email", "taken", format!("A user with the email {email} exists already."))];
            return render(&state, context, Some(again(errors)), StatusCode::CONFLICT).await;
        }
        Err(CreateUserError::Database(e)) => return Err(e.into()),
        Err(CreateUserError::Hashing(e)) => return Err(AppError::Internal(e.to_string())),
    };
    audit::record(
        &mut *tx,
        Event::new(Actor::user(&user.0), "user.created").target(Target::user(&created)).from_address(address),
    )
    .await?;
    tx.commit().await?;
    push_flash(&session, Flash::success(format!("{} can now log in.", created.email))).await?;
    Ok(Redirect::to("/users").into_response())
}

/// `POST /users/{id}/disable` and `/enable`.
pub async fn set_disabled(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path((raw, verb)): Path<(String, String)>,
) -> Result<Response, AppError> {
    require_account_admin(&state, &user).await?;
    let id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    let disabled = match verb.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(AppError::NotFound),
    };
    let mut tx = state.services.pool.begin().await?;
    let changed = match users::change(&mut tx, id, None, Some(disabled)).await {
        Ok(changed) => changed,
        Err(ChangeUserError::NotFound) => return Err(AppError::NotFound),
        Err(ChangeUserError::LastAdmin) => {
            drop(tx);
            push_flash(&session, Flash::error("This is the last enabled account admin: nothing was changed.")).await?;
            return Ok(Redirect::to("/users").into_response());
        }
        Err(ChangeUserError::Database(e)) => return Err(e.into()),
    };
    let action = if disabled { "user.disabled" } else { "user.enabled" };
    audit::record(
        &mut *tx,
        Event::new(Actor::user(&user.0), action).target(Target::user(&changed)).from_address(address),
    )
    .await?;
    tx.commit().await?;
    let message = if disabled {
        format!("{} is disabled: their sessions and API tokens stopped working.", changed.email)
    } else {
        format!("{} is enabled again.", changed.email)
    };
    push_flash(&session, Flash::success(message)).await?;
    Ok(Redirect::to("/users").into_response())
}
