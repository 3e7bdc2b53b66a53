//! The API tokens page: list, create (the secret shown in the answer, once),
//! revoke. Plain form posts, so it works without JavaScript.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{Flash, FormOutcome, PageContext, PageData, TokenRow, TokensPage};
use bitgate_core::{
    api_tokens::{
        self,
        operations::{self, NewToken, Owner, TokenError},
        ApiToken,
    },
    config::parse_duration,
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    pages::form_with_problems,
    session::{push_flash, CurrentUser},
};
use crate::{api::rfc3339, state::AppState};

fn row(token: ApiToken) -> TokenRow {
    TokenRow {
        id: token.id.to_string(),
        name: token.name,
        prefix: format!("{}{}", api_tokens::PREFIX, token.prefix),
        created_at: rfc3339(token.created_at),
        expires_at: token.expires_at.map(rfc3339),
        last_used_at: token.last_used_at.map(rfc3339),
    }
}

async fn render(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    created: Option<(String, String)>,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let tokens =
        api_tokens::list_page(&state.services.pool, user.0.id, None, 500).await?.into_iter().map(row).collect();
    let context = PageContext { page: PageData::Tokens(TokensPage { tokens, created }), form, ..context };
    Ok(state.pages.render(context, status).await)
}

pub async fn page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
) -> Result<Response, AppError> {
    render(&state, context, &user, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires: String,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    let expires_at = match form.expires.as_str() {
        "never" | "" => None,
        lifetime => Some(
            OffsetDateTime::now_utc()
                + parse_duration(lifetime)
                    .map_err(|why| AppError::BadRequest(format!("The expiry is not one Bitgate offers: {why}.")))?,
        ),
    };
    let principal = user.caller(address).principal();
    let owner = Owner { id: user.0.id, email: &user.0.email };
    let new = NewToken { name: form.name.clone(), expires_at, ..Default::default() };
    let (token, secret) = match operations::issue(&state.services.pool, &principal, owner, new).await {
        Ok(issued) => issued,
        Err(TokenError::Invalid(problems)) => {
            let values = vec![("name".into(), form.name.clone())];
            let outcome = form_with_problems(problems, values, |field| field.to_owned());
            return render(&state, context, &user, None, Some(outcome), StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(TokenError::NotFound) => return Err(AppError::NotFound),
        Err(TokenError::Database(e)) => return Err(e.into()),
    };
    // Answered with the page itself (not a redirect), so the secret is never
    // stored anywhere, not even in the session.
    render(&state, context, &user, Some((token.name, secret)), None, StatusCode::CREATED).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: tower_sessions::Session,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    let token = match operations::revoke(&state.services.pool, &user.caller(address).principal(), id).await {
        Ok(token) => token,
        Err(TokenError::Database(e)) => return Err(e.into()),
        Err(_) => return Err(AppError::NotFound),
    };
    push_flash(
        &session,
        Flash::success(format!("The token \u{201c}{}\u{201d} is revoked: it no longer works.", token.name)),
    )
    .await?;
    Ok(Redirect::to("/tokens").into_response())
}
