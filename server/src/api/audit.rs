//! `/api/v1/audit`: account admins read every event; a space admin reads
//! the events of the spaces they administer.

use axum::{
    extract::{Query, State},
    response::IntoResponse,
    Json,
};
use bitgate_core::{access::Access, users::Role};
use serde::Deserialize;
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{
    caller::Caller,
    error::ApiError,
    pagination::{page, Cursor, PageQuery},
    rfc3339,
};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let everything = access.is_account_admin();
    let administered: Vec<_> =
        access.visible_spaces().into_iter().filter(|space| access.role_on(*space) == Some(Role::Admin)).collect();
    if !everything && administered.is_empty() {
        return Err(ApiError::Forbidden);
    }
    let request = query.page.parse()?;
    let since =
        query.since.as_deref().map(|raw| OffsetDateTime::parse(raw.trim(), &Rfc3339)).transpose().map_err(|_| {
            ApiError::BadRequest("since must be a time in RFC 3339, such as 2026-11-01T00:00:00Z.".into())
        })?;
    let (after_at, after_id) = request.after.map(|c| (c.at, c.id)).unzip();
    let rows = sqlx::query!(
        r#"SELECT id, occurred_at, actor_kind, actor_id, actor_label, action, target_kind, target_id, target_label,
                  space_id, host(client_address) AS client_address, details
           FROM audit_events
           WHERE ($1 OR space_id = ANY($2))
             AND ($3::text IS NULL OR actor_label = $3 OR actor_id::text = $3)
             AND ($4::text IS NULL OR action = $4)
             AND ($5::timestamptz IS NULL OR occurred_at >= $5)
             AND ($6::timestamptz IS NULL OR (occurred_at, id) < ($6, $7))
           ORDER BY occurred_at DESC, id DESC LIMIT $8"#,
        everything,
        &administered,
        query.actor.as_deref().map(str::trim).filter(|a| !a.is_empty()),
        query.action.as_deref().map(str::trim).filter(|a| !a.is_empty()),
        since,
        after_at,
        after_id,
        request.limit + 1
    )
    .fetch_all(&state.services.pool)
    .await?;
    let (items, next_cursor) = page(rows, request.limit, |r| Cursor { at: r.occurred_at, id: r.id });
    let items: Vec<Value> = items
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "occurred_at": rfc3339(r.occurred_at),
                "actor": {"kind": r.actor_kind, "id": r.actor_id, "label": r.actor_label},
                "action": r.action,
                "target": r.target_kind.as_ref().map(|kind| json!({"kind": kind, "id": r.target_id, "label": r.target_label})),
                "space_id": r.space_id,
                "client_address": r.client_address,
                "details": r.details,
            })
        })
        .collect();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor})))
}
