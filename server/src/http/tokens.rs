//! The API tokens page: list, create (the secret shown in the answer, once),
//! revoke. Plain form posts, so it works without JavaScript.

use crate::error::AppError;
use axum::{
    extract::{Path, Query, State},
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

/// How many tokens a page of the list shows.
const PAGE_SIZE: i64 = 50;

/// The page of the viewer's tokens starting at `cursor` (the first when
/// empty), newest first, under what `shown` puts above it.
async fn render(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    shown: Shown,
    cursor: &str,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let after = pagination::page_start(cursor)?;
    let found =
        api_tokens::list_page(&state.services.pool, user.0.id, after.map(|c| (c.at, c.id)), PAGE_SIZE + 1).await?;
    let (found, next) = pagination::page(found, PAGE_SIZE, |token| Cursor { at: token.created_at, id: token.id });
    let tokens: Vec<TokenRow> = found.into_iter().map(row).collect();
    // Looked up, not found in the list, which shows one page:
    // only the viewer's own live token, so `again` names no one else's.
    let (created, sent_again) = match shown {
        Shown::Nothing => (None, None),
        Shown::Created { name, secret } => (Some((name, secret)), None),
        Shown::SentAgain(id) => (None, api_tokens::find_live(&state.services.pool, user.0.id, id).await?.map(row)),
    };
    let page = PageData::Tokens(TokensPage {
        tokens,
        created,
        sent_again,
        next_page: next.map(|cursor| format!("/tokens?cursor={cursor}")),
        first_page: (!cursor.is_empty()).then(|| "/tokens".to_owned()),
    });
    let context = PageContext { page, form, ..context };
    Ok(state.pages.render(context, status).await)
}

/// What the page shows above the list, besides the form's problems.
enum Shown {
    Nothing,
    /// A token just created, with its secret: this once.
    Created {
        name: String,
        secret: String,
    },
    /// The form was sent again after it made this token (a double click):
    /// its secret went to the first answer only.
    SentAgain(Uuid),
}

#[derive(Deserialize)]
pub struct PageQuery {
    /// Set where a repeat of the create form is sent (`Done::Shown`).
    again: Option<String>,
    /// Where the page starts: the API's cursor.
    #[serde(default)]
    cursor: String,
}

pub async fn page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Query(query): Query<PageQuery>,
) -> Result<Response, AppError> {
    let shown = match query.again.as_deref().map(Uuid::parse_str) {
        Some(Ok(id)) => Shown::SentAgain(id),
        _ => Shown::Nothing,
    };
    render(&state, context, &user, shown, &query.cursor, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires: String,
    /// The page's token: sent twice, the form makes one token.
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
    let expires_at = match form.expires.as_str() {
        "never" | "" => None,
        lifetime => Some(
            OffsetDateTime::now_utc()
                + parse_duration(lifetime)
                    .map_err(|why| AppError::BadRequest(format!("The expiry is not one Bitgate offers: {why}.")))?,
        ),
    };
    let submission = form.submission.clone();
    let work = {
        let (state, user) = (state.clone(), user.clone());
        async move {
            let principal = user.caller(address).principal();
            let owner = Owner { id: user.0.id, email: &user.0.email };
            let new = NewToken { name: form.name.clone(), expires_at, ..Default::default() };
            let (token, secret) = match operations::issue(&state.services.pool, &principal, owner, new).await {
                Ok(issued) => issued,
                Err(TokenError::Invalid(problems)) => {
                    let values = vec![("name".into(), form.name.clone())];
                    let outcome = form_with_problems(problems, values, |field| field.to_owned());
                    let status = StatusCode::UNPROCESSABLE_ENTITY;
                    return Ok(Done::Refused(
                        render(&state, context, &user, Shown::Nothing, "", Some(outcome), status).await?,
                    ));
                }
                Err(TokenError::NotFound) => return Err(AppError::NotFound),
                Err(TokenError::Database(e)) => return Err(e.into()),
            };
            // Answered with the page itself (not a redirect), so the secret is
            // never stored anywhere, not even in the session. A repeat cannot
            // show it again: it is sent to the list, which says so. The token
            // is saved: from here the work does not fail (a failure would let
            // a repeat make a second one), whatever the page's own answer.
            let repeat_to = format!("/tokens?again={}", token.id);
            let shown = Shown::Created { name: token.name, secret };
            let response = render(&state, context, &user, shown, "", None, StatusCode::CREATED)
                .await
                .unwrap_or_else(IntoResponse::into_response);
            Ok(Done::Shown { response, repeat_to })
        }
    };
    submission::once(&state, &session, &user, &submission, submission::WAIT, work).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
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
