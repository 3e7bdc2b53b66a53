//! The outbound log on the stack's and the integration's pages: the latest
//! calls, read under the rule core keeps for the API too
//! (`outbound_log::readable_of_stack`, `readable_of_integration`).

use std::collections::{BTreeSet, HashMap};

use bitgate_app::context::{OutboundLog, OutboundRow};
use bitgate_core::{
    access::Access,
    integrations::{
        operations::{IntegrationError, Purpose},
        Integration,
    },
    platform::outbound_log::{self, Of},
    principal::Principal,
    stacks::{self, StackId},
};

use super::session::CurrentUser;
use crate::{api::rfc3339, error::AppError, state::AppState};

/// How many calls a page shows; the API pages through the rest.
const SHOWN: usize = 20;

/// A stack's latest calls: whoever reads its runs.
pub async fn of_stack(state: &AppState, by: &Principal, stack: StackId) -> Result<OutboundLog, AppError> {
    let log = outbound_log::readable_of_stack(&state.services, by, stack).await?;
    latest(state, log, format!("/api/v1/stacks/{stack}/outbound"), None).await
}

/// An integration's latest calls, each with its stack, when the viewer may
/// read them (those who administer it); `None` leaves the section off.
pub async fn of_integration(
    state: &AppState,
    user: &CurrentUser,
    access: &Access,
    integration: &Integration,
) -> Result<Option<OutboundLog>, AppError> {
    let principal = user.caller(None).principal();
    let log = outbound_log::readable_of_integration(&state.services, &principal, integration.id, Purpose::Read).await;
    let log = match log {
        Ok(log) => log,
        Err(IntegrationError::Denied(_)) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    let api_path = format!("/api/v1/integrations/{}/outbound", integration.id);
    Ok(Some(latest(state, log, api_path, Some(access)).await?))
}

/// The latest calls of `of`, and `api_path`, where the API lists them all.
/// With `stacks_seen_by`, each call names its stack when that viewer sees it
/// (an integration's log spans stacks of several spaces).
async fn latest(
    state: &AppState,
    of: Of,
    api_path: String,
    stacks_seen_by: Option<&Access>,
) -> Result<OutboundLog, AppError> {
    let pool = &state.services.pool;
    // One more than shown says whether there are older ones.
    let mut calls = outbound_log::list(pool, of, None, None, SHOWN as i64 + 1).await?;
    let more = calls.len() > SHOWN;
    calls.truncate(SHOWN);
    let mut names = HashMap::new();
    if let Some(access) = stacks_seen_by {
        for id in calls.iter().filter_map(|call| call.stack_id).collect::<BTreeSet<_>>() {
            if let Some(stack) = stacks::find(pool, id).await?.filter(|s| access.can_see(s.space_id).is_ok()) {
                names.insert(id, stack.name);
            }
        }
    }
    let rows = calls
        .into_iter()
        .map(|call| OutboundRow {
            at: rfc3339(call.at),
            stack: call.stack_id.and_then(|id| names.get(&id).map(|name| (id.to_string(), name.clone()))),
            what: call.what,
            method: call.method,
            path: call.path,
            status: call.status,
            ok: call.ok,
            message: call.message,
            attempt: call.attempt,
        })
        .collect();
    Ok(OutboundLog { rows, more, api_path })
}
