//! `/api/v1/tokens`: the caller's own API tokens.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use bitgate_core::{
    api_tokens::{
        self,
        operations::{self, NewToken, Owner},
        ApiToken,
    },
    users::FieldError,
};
use serde::Serialize;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use utoipa::ToSchema;
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

/// An API token, without its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiToken)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the token, to recognise it.
    #[schema(example = "bgt_3kQ9")]
    pub prefix: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

impl From<&ApiToken> for TokenView {
    fn from(token: &ApiToken) -> Self {
        Self {
            id: token.id,
            name: token.name.clone(),
            prefix: format!("{}{}", api_tokens::PREFIX, token.prefix),
            created_at: rfc3339(token.created_at),
            expires_at: token.expires_at.map(rfc3339),
            last_used_at: token.last_used_at.map(rfc3339),
        }
    }
}

/// A token just created: the only answer that holds its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenView,
    /// The token itself, `bgt_` and 43 more characters: store it now, it is never shown again.
    #[serde(rename = "token")]
    #[schema(example = "bgt_3kQ9...")]
    pub secret: String,
}

/// The body of `POST /api/v1/tokens`.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct CreateToken {
    /// What the token is for, such as `ci`.
    name: String,
    /// When it stops working (RFC 3339, in the future); never when left out.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// List your API tokens
///
/// Your own tokens, newest first, with when each was last used.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageQuery),
    responses((status = 200, description = "Your tokens.", body = Page<TokenView>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<TokenView>>, AppError> {
    let request = query.parse()?;
    let rows = api_tokens::list_page(
        &state.services.pool,
        caller.user.id,
        request.after.map(|c| (c.at, c.id)),
        request.limit + 1,
    )
    .await?;
    Ok(Json(page_of(rows, request.limit, |t| Cursor { at: t.created_at, id: t.id }, |t| TokenView::from(t))))
}

/// Create an API token
///
/// For yourself; it acts with your roles. The answer holds the secret, once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, description = "The token, with its secret in `token`.", body = CreatedToken)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<impl IntoResponse, AppError> {
    let mut fields = Fields::new::<CreateToken>(body);
    // A name left out is refused by the operation, with the others' problems.
    let name = fields.optional_string("name").unwrap_or_default();
    let expires_at = fields.optional_string("expires_at").and_then(|raw| {
        let parsed = OffsetDateTime::parse(raw.trim(), &Rfc3339).map_err(|_| {
            FieldError::new("expires_at", "invalid", "Give a time in RFC 3339, such as 2027-01-31T00:00:00Z.")
        });
        fields.check(parsed)
    });
    let owner = Owner { id: caller.user.id, email: &caller.user.email };
    let new = NewToken { name, expires_at, read_problems: fields.errors };
    let (token, secret) = operations::issue(&state.services.pool, &caller.principal(), owner, new).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token: TokenView::from(&token), secret })))
}

/// Revoke an API token
///
/// One of your own; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path, description = "The token's id.")),
    responses(
        (status = 204, description = "The token was revoked."),
        (status = 404, description = "You have no token with this id.", body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    // Someone else's token, or a malformed id, is simply not there.
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    operations::revoke(&state.services.pool, &caller.principal(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
