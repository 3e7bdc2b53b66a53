//! The audit log page: account admins read every event, space admins the
//! events of the spaces they administer (the rule of `/api/v1/audit`).

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
    Extension,
};
use bitgate_app::context::{AuditFilters, AuditPage, AuditRow, PageContext, PageData};
use bitgate_core::{access::Access, audit, spaces};
use serde::Deserialize;
use time::{format_description::well_known::Rfc3339, macros::format_description, Date, OffsetDateTime};
use uuid::Uuid;

use super::{pages::list_href, session::CurrentUser};
use crate::error::AppError;
use crate::{
    api::{
        pagination::{self, Cursor},
        rfc3339,
    },
    state::AppState,
};

/// Events per page: a page of 100 was 35 KB (the goal is under 30 KB,
/// SPEC.md), and 50 is what the console's other lists show.
const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    space_id: String,
    #[serde(default)]
    cursor: String,
}

/// A day (`2026-11-01`, as a date input sends it) or an RFC 3339 time.
fn parse_since(raw: &str) -> Result<Option<OffsetDateTime>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(day) = Date::parse(raw, format_description!("[year]-[month]-[day]")) {
        return Ok(Some(day.midnight().assume_utc()));
    }
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(Some)
        .map_err(|_| format!("\u{201c}{raw}\u{201d} is not a date: use a day such as 2026-11-01."))
}

pub async fn page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let administered = access.administered_spaces();
    let scope = if access.is_account_admin() {
        audit::Scope::Everything
    } else if administered.is_empty() {
        return Err(AppError::Forbidden);
    } else {
        audit::Scope::Spaces(administered.clone())
    };
    let mut space_records = spaces::list(&state.services.pool, &administered, None, 10_000).await?;
    space_records.sort_by(|a, b| a.name.cmp(&b.name));
    let names: HashMap<Uuid, String> = space_records.iter().map(|s| (s.id, s.name.clone())).collect();

    let mut filter_error = None;
    let since = parse_since(&query.since).unwrap_or_else(|e| {
        filter_error = Some(e);
        None
    });
    // A space outside the reader's scope filters to nothing rather than erroring.
    let space_id = match query.space_id.trim() {
        "" => None,
        raw => match Uuid::parse_str(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                filter_error = Some("Choose a space from the list.".into());
                None
            }
        },
    };
    let after = match query.cursor.trim() {
        "" => None,
        raw => match Cursor::decode(raw) {
            Ok(cursor) => Some((cursor.at, cursor.id)),
            Err(_) => {
                filter_error = Some("That page link is damaged; showing the newest events.".into());
                None
            }
        },
    };
    let filter =
        audit::Filter { actor: Some(query.actor.clone()), action: Some(query.action.clone()), since, space_id };
    let rows = audit::search(&state.services.pool, &scope, &filter, after, PAGE_SIZE + 1).await?;
    let (rows, next) = pagination::page(rows, PAGE_SIZE, |r| Cursor { at: r.occurred_at, id: r.id });
    let filters = [
        ("actor", query.actor.as_str()),
        ("action", query.action.as_str()),
        ("since", query.since.as_str()),
        ("space_id", query.space_id.as_str()),
    ];
    let older = next.map(|cursor| list_href("/audit", &filters, Some(&cursor)));
    let events = rows
        .into_iter()
        .map(|r| AuditRow {
            occurred_at: rfc3339(r.occurred_at),
            actor_kind: r.actor_kind,
            actor: r.actor_label,
            action: r.action,
            target: r.target_kind.map(|kind| format!("{kind} {}", r.target_label.unwrap_or_default())),
            space: r.space_id.map(|id| names.get(&id).cloned().unwrap_or_else(|| id.to_string())),
            client_address: r.client_address,
            details: match &r.details {
                serde_json::Value::Object(map) if map.is_empty() => String::new(),
                details => details.to_string(),
            },
        })
        .collect();
    let page = AuditPage {
        events,
        filters: AuditFilters {
            actor: query.actor.clone(),
            action: query.action.clone(),
            since: query.since.clone(),
            space_id: query.space_id.clone(),
        },
        filter_error,
        actions: audit::actions(&state.services.pool).await?,
        spaces: space_records.into_iter().map(|s| (s.id.to_string(), s.name)).collect(),
        older,
    };
    let status = if page.filter_error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let context = PageContext { page: PageData::Audit(page), ..context };
    Ok(state.pages.render(context, status).await)
}
