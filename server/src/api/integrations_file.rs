//! Integrations as code over the API: `/api/v1/integrations/export`, the
//! YAML file of `bitgate integrations export`, limited to what the caller
//! administers (the permission table's "open a space integration's details").

use axum::{
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use bitgate_core::{
    access::Access,
    as_code::{self, export::Selection},
    audit::{self, Event},
};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{
    caller::Caller,
    error::{ApiError, ErrorBody},
};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this space's integrations (you administer it). Left out: every
    /// space you administer, and the defaults when you administer the account.
    pub space_id: Option<String>,
}

/// Export integrations as YAML
///
/// The integrations file of `bitgate integrations import`: each secret is a
/// placeholder to fill in. Sorted by name, so that a copy kept in a
/// repository changes only where Bitgate did.
#[utoipa::path(get, path = "/api/v1/integrations/export", tag = "integrations", params(ExportQuery),
    responses(
        (status = 200, description = "The integrations file.", content_type = "application/yaml", body = String),
        (status = 400, description = "space_id is not a space's id.", body = ErrorBody),
        (status = 403, description = "You do not administer the space.", body = ErrorBody),
        (status = 404, description = "The space does not exist, or you cannot see it.", body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let space = query
        .space_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|raw| Uuid::parse_str(raw.trim()))
        .transpose()
        .map_err(|_| ApiError::BadRequest("space_id must be a space's id (a UUID).".into()))?;
    let selection = match space {
        Some(space) => {
            if let Err(why) = access.can_administer(space) {
                return Err(caller.refused(&state, "integration", "integrations.export", Some(space), why).await);
            }
            Selection { spaces: Some(vec![space]), defaults: false }
        }
        None => Selection { spaces: Some(access.administered_spaces()), defaults: access.is_account_admin() },
    };
    let entries = as_code::export::entries(&state.services.pool, &selection).await?;
    let event = Event::new(caller.actor(), "integrations.exported")
        .from_address(caller.address)
        .details(json!({"count": entries.len()}))
        .in_space(space);
    audit::record(&state.services.pool, event).await?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], as_code::file::render(&entries)).into_response())
}
