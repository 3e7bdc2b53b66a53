//! Logging in and out, and the first-admin setup link: plain HTML forms
//! handled here (they work without JavaScript), answered with their page
//! again when something is wrong.

use crate::error::AppError;
use axum::{
    extract::{Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{Flash, FormOutcome, LoginPage, PageContext, PageData};
use bitgate_core::{
    audit::{self, Actor, AuditAction, Event, Target},
    passwords::{Password, PasswordError},
    setup::{self, SetupError},
    throttle::{self, Attempt, LoginKeys},
    users::{self, CreateUserError, DisplayName, Email, NewUser},
};
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use super::{
    client_address::ClientAddress,
    session::{push_flash, safe_next, CurrentUser, SessionAuth},
};
use crate::state::AppState;

/// The one message for a wrong password and an unknown email alike.
const INVALID_CREDENTIALS: &str = "The email or password is incorrect.";

/// The login page answering a post: the form's values carry `next`.
fn failed_login_page() -> PageData {
    PageData::Login(LoginPage::default())
}

pub async fn login_page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    uri: axum::http::Uri,
) -> Response {
    let query = Query::<LoginQuery>::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    if context.viewer.is_some() {
        return see_other(safe_next(&query.next));
    }
    let page = LoginPage { next: query.next, reason: query.reason };
    state.pages.render(context.with(PageData::Login(page)), StatusCode::OK).await
}

/// `/login?next=…&reason=…`: where to return afterwards, and why the user
/// was sent to log in (`expired`, `logged_out`).
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let pool = &state.services.pool;
    let again = |error: String| FormOutcome {
        values: vec![("email".into(), form.email.trim().to_owned()), ("next".into(), form.next.clone())],
        form_error: Some(error),
        ..FormOutcome::default()
    };
    let Ok(email) = Email::parse(&form.email) else {
        let outcome = again(INVALID_CREDENTIALS.into());
        return Ok(state
            .pages
            .render(context.with_form(failed_login_page(), Some(outcome)), StatusCode::UNAUTHORIZED)
            .await);
    };
    let keys = LoginKeys::new(&email, address);
    // Counted before the password is checked: concurrent guesses each take
    // their own attempt, and none is checked once the attempts are used up.
    if let Attempt::Refused { retry_after: wait } = throttle::reserve(pool, &keys).await? {
        let minutes = wait.as_secs().div_ceil(60);
        let outcome = again(format!(
            "Too many failed attempts. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        ));
        let mut response = state
            .pages
            .render(context.with_form(failed_login_page(), Some(outcome)), StatusCode::TOO_MANY_REQUESTS)
            .await;
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }

    let candidate = users::find_for_login(pool, &email).await?;
    let password = Password::offered(form.password);
    let matches = state
        .services
        .hasher
        .verify(&password, candidate.as_ref().map(|c| c.password_hash.as_str()))
        .await
        .map_err(AppError::internal)?;
    let user_id = match candidate {
        Some(candidate) if matches && !candidate.disabled => candidate.id,
        _ => {
            audit::record(
                pool,
                Event::new(Actor::Anonymous, AuditAction::LoginFailed)
                    .target(Target { kind: "user", id: String::new(), label: email.to_string() })
                    .from_address(address),
            )
            .await?;
            let outcome = again(INVALID_CREDENTIALS.into());
            return Ok(state
                .pages
                .render(context.with_form(failed_login_page(), Some(outcome)), StatusCode::UNAUTHORIZED)
                .await);
        }
    };

    throttle::record_success(pool, &keys).await?;
    SessionAuth::start(&session, pool, user_id).await?;
    let user = users::find(pool, user_id).await?.ok_or(AppError::NotFound)?;
    audit::record(
        pool,
        Event::new(Actor::user(&user), AuditAction::Login).target(Target::user(&user)).from_address(address),
    )
    .await?;
    Ok(see_other(safe_next(&form.next)))
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    user: Option<Extension<CurrentUser>>,
    session: Session,
) -> Result<Response, AppError> {
    if let Some(Extension(CurrentUser(user))) = user {
        audit::record(
            &state.services.pool,
            Event::new(Actor::user(&user), AuditAction::Logout).target(Target::user(&user)).from_address(address),
        )
        .await?;
    }
    // Deletes the server-side record, not just the cookie.
    session.flush().await?;
    Ok(see_other("/login?reason=logged_out"))
}

#[derive(Debug, Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    token: String,
}

pub async fn setup_page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Query(query): Query<SetupQuery>,
) -> Result<Response, AppError> {
    let (outcome, status) = match setup::check(&state.services.pool, &query.token).await {
        Ok(()) => {
            (FormOutcome { values: vec![("token".into(), query.token)], ..FormOutcome::default() }, StatusCode::OK)
        }
        Err(SetupError::Database(e)) => return Err(e.into()),
        Err(problem) => {
            (FormOutcome { blocked: Some(problem.to_string()), ..FormOutcome::default() }, setup_status(&problem))
        }
    };
    // The page carries the one-time token: like every dynamic page it is
    // `no-store`, and `Referrer-Policy: same-origin` keeps the URL from other
    // sites. (`no-referrer` would make browsers post the form with
    // `Origin: null`, which the CSRF check rightly refuses.)
    Ok(state.pages.render(context.with_form(PageData::Setup, Some(outcome)), status).await)
}

fn setup_status(problem: &SetupError) -> StatusCode {
    match problem {
        SetupError::Unknown => StatusCode::NOT_FOUND,
        SetupError::Used | SetupError::Expired => StatusCode::GONE,
        SetupError::AlreadySetUp => StatusCode::CONFLICT,
        SetupError::CreateUser(_) | SetupError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn setup(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<SetupForm>,
) -> Result<Response, AppError> {
    let mut errors = Vec::new();
    let name = DisplayName::parse(&form.name).map_err(|e| errors.push((e.field.clone(), e.message))).ok();
    let email = Email::parse(&form.email).map_err(|e| errors.push((e.field.clone(), e.message))).ok();
    let password =
        Password::new(form.password).map_err(|e: PasswordError| errors.push(("password".into(), e.to_string()))).ok();
    let values = vec![
        ("token".into(), form.token.clone()),
        ("name".into(), form.name.clone()),
        ("email".into(), form.email.clone()),
    ];

    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        let outcome = FormOutcome { values, field_errors: errors, ..FormOutcome::default() };
        return Ok(state
            .pages
            .render(context.with_form(PageData::Setup, Some(outcome)), StatusCode::UNPROCESSABLE_ENTITY)
            .await);
    };
    let new_admin = NewUser { email, name, password, role: None };
    let user = match setup::complete(&state.services.pool, &state.services.hasher, &form.token, new_admin).await {
        Ok(user) => user,
        Err(SetupError::Database(e)) => return Err(e.into()),
        Err(SetupError::CreateUser(CreateUserError::Database(e))) => return Err(e.into()),
        Err(SetupError::CreateUser(CreateUserError::Hashing(e))) => return Err(AppError::internal(e)),
        Err(problem) => {
            let status = setup_status(&problem);
            let outcome = FormOutcome { blocked: Some(problem.to_string()), ..FormOutcome::default() };
            return Ok(state.pages.render(context.with_form(PageData::Setup, Some(outcome)), status).await);
        }
    };
    audit::record(
        &state.services.pool,
        Event::new(Actor::user(&user), AuditAction::UserCreated)
            .target(Target::user(&user))
            .from_address(address)
            .details(json!({"via": "setup_link", "role": "admin", "space": "root"})),
    )
    .await?;
    SessionAuth::start(&session, &state.services.pool, user.id).await?;
    push_flash(
        &session,
        Flash::success(format!("Welcome, {}. Bitgate is set up and you are its administrator.", user.name)),
    )
    .await?;
    Ok(see_other("/"))
}

fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}
