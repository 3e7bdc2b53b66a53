//! `/api/v1/audit`: account admins read every event; a space admin reads
//! the events of the spaces they administer.

use crate::error::AppError;
use axum::{extract::State, Json};
use bitgate_core::{access::Access, audit};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    error::ErrorBody,
    pagination::{page_of, Cursor, Page, PageQuery},
    rfc3339,
};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only what this actor did: a user's email, `cli`, or an actor id.
    actor: Option<String>,
    /// Only this action, such as `space.created`.
    action: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only the events of this space.
    #[param(value_type = Option<Uuid>)]
    space_id: Option<String>,
    /// How many events to answer, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Something that happened, who did it, to what, and from where. Never a secret value.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub actor: AuditActor,
    /// Such as `login.succeeded`, `space.created`, `token.revoked`.
    pub action: String,
    pub target: Option<AuditTarget>,
    /// The space the event belongs to, for space admins' view of the log.
    pub space_id: Option<Uuid>,
    /// Where the request came from (null for the CLI and background jobs).
    pub client_address: Option<String>,
    /// Facts about the event, such as the role given.
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    /// `user`, `token`, `cli` or `anonymous`.
    pub kind: String,
    /// The user's id (for a token: its user's), when there is one.
    pub id: Option<Uuid>,
    /// An email, a token's name, or `cli`.
    pub label: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditTarget {
    /// `user`, `space`, `api_token`...
    pub kind: String,
    pub id: Option<String>,
    pub label: Option<String>,
}

/// Read the audit log
///
/// Account admins read every event; admins of a space read the events of the
/// spaces they administer. Newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "The events.", body = Page<AuditEvent>),
        (status = 403, description = "You administer no space.", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page<AuditEvent>>, AppError> {
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let everything = access.is_account_admin();
    let administered = access.administered_spaces();
    if !everything && administered.is_empty() {
        return Err(AppError::Forbidden);
    }
    let request = PageQuery { limit: query.limit.clone(), cursor: query.cursor.clone() }.parse()?;
    let since =
        query.since.as_deref().map(|raw| OffsetDateTime::parse(raw.trim(), &Rfc3339)).transpose().map_err(|_| {
            AppError::BadRequest("since must be a time in RFC 3339, such as 2026-11-01T00:00:00Z.".into())
        })?;
    let space_id = query
        .space_id
        .as_deref()
        .map(|raw| Uuid::parse_str(raw.trim()))
        .transpose()
        .map_err(|_| AppError::BadRequest("space_id must be a space's id (a UUID).".into()))?;
    let scope = if everything { audit::Scope::Everything } else { audit::Scope::Spaces(administered) };
    let filter = audit::Filter { actor: query.actor.clone(), action: query.action.clone(), since, space_id };
    let rows =
        audit::search(&state.services.pool, &scope, &filter, request.after.map(|c| (c.at, c.id)), request.limit + 1)
            .await?;
    Ok(Json(page_of(
        rows,
        request.limit,
        |r| Cursor { at: r.occurred_at, id: r.id },
        |r| AuditEvent {
            id: r.id,
            occurred_at: rfc3339(r.occurred_at),
            actor: AuditActor { kind: r.actor_kind.clone(), id: r.actor_id, label: r.actor_label.clone() },
            action: r.action.clone(),
            target: r.target_kind.as_ref().map(|kind| AuditTarget {
                kind: kind.clone(),
                id: r.target_id.clone(),
                label: r.target_label.clone(),
            }),
            space_id: r.space_id,
            client_address: r.client_address.clone(),
            details: r.details.clone(),
        },
    )))
}
