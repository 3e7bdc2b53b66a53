//! The outbound log (`/api/v1/integrations/{id}/outbound`,
//! `/api/v1/stacks/{id}/outbound`): every call Bitgate made to Bitbucket
//! for the platform loop, newest first. An integration's is seen by those
//! who administer it; a stack's by those who read its runs.

use axum::{
    extract::{Path, State},
    Json,
};
use bitgate_core::{
    integrations::operations::{parse_id, Purpose},
    platform::{
        outbound_log::{self, Of, OutboundCall},
        runs,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    caller::Caller,
    error::ErrorBody,
    pagination::{page_of, Cursor, Page, PageQuery},
    query::Query,
    rfc3339,
};
use crate::{error::AppError, state::AppState};

/// One call to Bitbucket.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OutboundCall)]
pub struct OutboundCallView {
    pub id: Uuid,
    #[schema(format = DateTime)]
    pub at: String,
    pub integration_id: Uuid,
    pub stack_id: Option<Uuid>,
    /// What was sent.
    #[schema(example = "build status bitgate/tracked (failed)")]
    pub what: String,
    pub method: String,
    /// The API path, without host or query.
    pub path: String,
    /// Bitbucket's answer; null when none came (the network, the timeout).
    pub status: Option<i32>,
    pub ok: bool,
    /// Bitbucket's message, quoted short, or why no answer came.
    pub message: Option<String>,
    /// 1 for the first try.
    pub attempt: i32,
}

fn view(call: &OutboundCall) -> OutboundCallView {
    OutboundCallView {
        id: call.id,
        at: rfc3339(call.at),
        integration_id: call.integration_id,
        stack_id: call.stack_id,
        what: call.what.clone(),
        method: call.method.clone(),
        path: call.path.clone(),
        status: call.status,
        ok: call.ok,
        message: call.message.clone(),
        attempt: call.attempt,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboundQuery {
    /// `failed` or `ok`: only the calls that failed, or succeeded.
    status: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    cursor: Option<String>,
}

async fn page(state: &AppState, of: Of, query: OutboundQuery) -> Result<Json<Page<OutboundCallView>>, AppError> {
    let request = PageQuery { limit: query.limit, cursor: query.cursor }.parse()?;
    let ok = match query.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("ok") => Some(true),
        Some("failed") => Some(false),
        Some(_) => return Err(AppError::BadRequest("status must be failed or ok.".into())),
    };
    let rows = outbound_log::list(&state.services.pool, of, ok, request.after.map(|c| (c.at, c.id)), request.limit + 1)
        .await?;
    Ok(Json(page_of(rows, request.limit, |c| Cursor { at: c.at, id: c.id }, view)))
}

/// An integration's outbound log
///
/// Newest first; admins of its space (account admins for a default).
#[utoipa::path(get, path = "/api/v1/integrations/{id}/outbound", tag = "runs",
    params(("id" = Uuid, Path, description = "The integration's id."), OutboundQuery),
    responses(
        (status = 200, description = "The calls, newest first.", body = Page<OutboundCallView>),
        (status = 400, description = "A parameter is not valid.", body = ErrorBody),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn of_integration(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(query): Query<OutboundQuery>,
) -> Result<Json<Page<OutboundCallView>>, AppError> {
    let principal = caller.principal();
    let of = outbound_log::readable_of_integration(
        &state.services,
        &principal,
        parse_id(&raw)?,
        Purpose::Act("integration.outbound"),
    )
    .await?;
    page(&state, of, query).await
}

/// A stack's outbound log
///
/// Newest first; anyone with a role on the stack's space.
#[utoipa::path(get, path = "/api/v1/stacks/{id}/outbound", tag = "runs",
    params(("id" = Uuid, Path, description = "The stack's id."), OutboundQuery),
    responses(
        (status = 200, description = "The calls, newest first.", body = Page<OutboundCallView>),
        (status = 400, description = "A parameter is not valid.", body = ErrorBody),
        (status = 404, description = "No such stack, or none you can see.", body = ErrorBody)))]
pub async fn of_stack(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(query): Query<OutboundQuery>,
) -> Result<Json<Page<OutboundCallView>>, AppError> {
    let of = outbound_log::readable_of_stack(&state.services, &caller.principal(), runs::parse_stack_id(&raw)?).await?;
    page(&state, of, query).await
}
