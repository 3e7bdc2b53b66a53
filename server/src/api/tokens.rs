//! `/api/v1/tokens`: the caller's own API tokens.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use bitgate_core::{
    api_tokens::{self, ApiToken},
    audit::{self, Event, Target},
    users::FieldError,
};
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use uuid::Uuid;

use super::{
    caller::Caller,
    error::ApiError,
    json::{Fields, JsonObject},
    pagination::{page, Cursor, PageQuery},
    rfc3339,
};
use crate::state::AppState;

fn to_json(token: &ApiToken) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "prefix": format!("{}{}", api_tokens::PREFIX, token.prefix),
        "created_at": rfc3339(token.created_at),
        "expires_at": token.expires_at.map(rfc3339),
        "last_used_at": token.last_used_at.map(rfc3339),
    })
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let request = query.parse()?;
    let rows = api_tokens::list_page(
        &state.services.pool,
        caller.user.id,
        request.after.map(|c| (c.at, c.id)),
        request.limit + 1,
    )
    .await?;
    let (items, next_cursor) = page(rows, request.limit, |t| Cursor { at: t.created_at, id: t.id });
    Ok(Json(json!({"items": items.iter().map(to_json).collect::<Vec<_>>(), "next_cursor": next_cursor})))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let mut fields = Fields::new(body, &["name", "expires_at"]);
    let name = fields.required_string("name").and_then(|raw| fields.check(api_tokens::parse_name(&raw)));
    let expires_at = fields.optional_string("expires_at").and_then(|raw| {
        let parsed = OffsetDateTime::parse(raw.trim(), &Rfc3339)
            .map_err(|_| {
                FieldError::new("expires_at", "invalid", "Give a time in RFC 3339, such as 2027-01-31T00:00:00Z.")
            })
            .and_then(|at| {
                if at > OffsetDateTime::now_utc() {
                    Ok(at)
                } else {
                    Err(FieldError::new("expires_at", "in_the_past", "The expiry must be in the future."))
                }
            });
        fields.check(parsed)
    });
    fields.finish()?;
    let name = name.ok_or_else(|| ApiError::Internal("validated name missing".into()))?;

    let mut tx = state.services.pool.begin().await?;
    let (token, secret) = api_tokens::create(&mut *tx, caller.user.id, &name, expires_at).await?;
    let target = Target { kind: "api_token", id: token.id.to_string(), label: token.name.clone() };
    audit::record(&mut *tx, Event::new(caller.actor(), "token.created").target(target).from_address(caller.address))
        .await?;
    tx.commit().await?;

    let mut body = to_json(&token);
    body["token"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // Someone else's token, or a malformed id, is simply not there.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let mut tx = state.services.pool.begin().await?;
    let token = api_tokens::revoke(&mut *tx, caller.user.id, id).await?.ok_or(ApiError::NotFound)?;
    let target = Target { kind: "api_token", id: token.id.to_string(), label: token.name.clone() };
    audit::record(&mut *tx, Event::new(caller.actor(), "token.revoked").target(target).from_address(caller.address))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
