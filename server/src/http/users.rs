//! The users page: account admins list, create, disable and re-enable
//! users. The same rules as `/api/v1/users`, through the same core calls.

use crate::error::AppError;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{Flash, FormOutcome, PageContext, PageData, UserRow, UsersPage};
use bitgate_core::{
    access::Access,
    users::{
        self,
        operations::{self, NewUserInput, UserChange, UserError},
        Role, User,
    },
};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    pages::form_with_problems,
    session::{push_flash, CurrentUser},
    submission::{self, Done},
};
use crate::{
    api::{
        pagination::{self, Cursor},
        rfc3339,
    },
    state::AppState,
};

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

/// How many users a page of the list shows.
const PAGE_SIZE: i64 = 50;

/// The page of users starting at `cursor` (the first when empty), newest first.
async fn render(
    state: &AppState,
    context: PageContext,
    cursor: &str,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let after = pagination::page_start(cursor)?;
    let found = users::list(&state.services.pool, after.map(|c| (c.at, c.id)), PAGE_SIZE + 1).await?;
    let (found, next) = pagination::page(found, PAGE_SIZE, |user| Cursor { at: user.created_at, id: user.id });
    let page = UsersPage {
        users: found.iter().map(row).collect(),
        next_page: next.map(|cursor| format!("/users?cursor={cursor}")),
        first_page: (!cursor.is_empty()).then(|| "/users".to_owned()),
    };
    let context = PageContext { page: PageData::Users(page), form, ..context };
    Ok(state.pages.render(context, status).await)
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// Where the page starts: the API's cursor.
    #[serde(default)]
    cursor: String,
}

/// `/users`: 50 a page, newest first.
pub async fn page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    require_account_admin(&state, &user).await?;
    render(&state, context, &query.cursor, None, StatusCode::OK).await
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
    /// The form's token (`submission`): sent twice, it creates once.
    #[serde(default)]
    submission: String,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    let token = form.submission.clone();
    let work = {
        let (state, user) = (state.clone(), user.clone());
        async move {
            let input = NewUserInput {
                email: Some(form.email.clone()),
                name: Some(form.name.clone()),
                password: Some(form.password.clone()),
                role: form.account_admin.is_some().then(|| Role::Admin.as_str().to_owned()),
                ..Default::default()
            };
            let principal = user.caller(address).principal();
            match operations::create(&state.services.pool, &state.services.hasher, &principal, input).await {
                Ok(created) => Ok(Done::Made {
                    path: "/users".to_owned(),
                    flash: Flash::success(format!("{} can now log in.", created.email)),
                }),
                Err(error) => {
                    let (problems, status) = match error {
                        UserError::Invalid(problems) => (problems, StatusCode::UNPROCESSABLE_ENTITY),
                        UserError::Conflict(problems) => (problems, StatusCode::CONFLICT),
                        other => return Err(other.into()),
                    };
                    // The form is answered again with what was typed, never the password.
                    let values = vec![
                        ("email".into(), form.email),
                        ("name".into(), form.name),
                        ("account_admin".into(), form.account_admin.unwrap_or_default()),
                    ];
                    let outcome = form_with_problems(problems, values, |field| field.to_owned());
                    Ok(Done::Refused(render(&state, context, "", Some(outcome), status).await?))
                }
            }
        }
    };
    submission::once(&state, &session, &user, &token, submission::WAIT, work).await
}

/// `POST /users/{id}/disable` and `/enable`.
pub async fn set_disabled(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path((raw, verb)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    let disabled = match verb.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(AppError::NotFound),
    };
    let change = UserChange { disabled: Some(disabled), ..Default::default() };
    let changed = match operations::update(&state.services.pool, &user.caller(address).principal(), id, change).await {
        Ok(changed) => changed,
        Err(UserError::Conflict(_)) => {
            push_flash(&session, Flash::error("This is the last enabled account admin: nothing was changed.")).await?;
            return Ok(Redirect::to("/users").into_response());
        }
        Err(other) => return Err(other.into()),
    };
    let message = if disabled {
        format!("{} is disabled: their sessions and API tokens stopped working.", changed.email)
    } else {
        format!("{} is enabled again.", changed.email)
    };
    push_flash(&session, Flash::success(message)).await?;
    Ok(Redirect::to("/users").into_response())
}
