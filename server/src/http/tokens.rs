//! The API tokens page: list, create (the secret shown in the answer, once),
//! revoke. Plain form posts, so it works without JavaScript.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{Flash, FormOutcome, PageContext, TokenRow, TokensPage};
use bitgate_core::{
    api_tokens::{self, ApiToken},
    audit::{self, Actor, Event, Target},
    config::parse_duration,
};
use serde::Deserialize;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    pages::AppError,
    session::{push_flash, CurrentUser},
};
use crate::state::AppState;

fn row(token: ApiToken) -> TokenRow {
    let show = |at: OffsetDateTime| at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default();
    TokenRow {
        id: token.id.to_string(),
        name: token.name,
        prefix: format!("{}{}", api_tokens::PREFIX, token.prefix),
        created_at: show(token.created_at),
        expires_at: token.expires_at.map(show),
        last_used_at: token.last_used_at.map(show),
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
    let context = PageContext { tokens: Some(TokensPage { tokens, created }), form, ..context };
    Ok(state.pages.render("/tokens", context, status).await)
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
    let name = match api_tokens::parse_name(&form.name) {
        Ok(name) => name,
        Err(error) => {
            let outcome = FormOutcome {
                values: vec![("name".into(), form.name.clone())],
                field_errors: vec![("name".into(), error.message)],
                ..FormOutcome::default()
            };
            return render(&state, context, &user, None, Some(outcome), StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let expires_at = match form.expires.as_str() {
        "never" | "" => None,
        lifetime => Some(
            OffsetDateTime::now_utc()
                + parse_duration(lifetime).map_err(|why| AppError::BadRequest(format!("expires: {why}")))?,
        ),
    };
    let mut tx = state.services.pool.begin().await?;
    let (token, secret) = api_tokens::create(&mut *tx, user.0.id, &name, expires_at).await?;
    let target = Target { kind: "api_token", id: token.id.to_string(), label: token.name.clone() };
    audit::record(&mut *tx, Event::new(Actor::user(&user.0), "token.created").target(target).from_address(address))
        .await?;
    tx.commit().await?;
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
    let mut tx = state.services.pool.begin().await?;
    let token = api_tokens::revoke(&mut *tx, user.0.id, id).await?.ok_or(AppError::NotFound)?;
    let target = Target { kind: "api_token", id: token.id.to_string(), label: token.name.clone() };
    audit::record(&mut *tx, Event::new(Actor::user(&user.0), "token.revoked").target(target).from_address(address))
        .await?;
    tx.commit().await?;
    push_flash(
        &session,
        Flash::success(format!("The token \u{201c}{}\u{201d} is revoked: it no longer works.", token.name)),
    )
    .await?;
    Ok(Redirect::to("/tokens").into_response())
}
