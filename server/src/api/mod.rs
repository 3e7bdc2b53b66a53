//! The REST API under `/api/v1`: JSON in and out, the error shape and codes
//! of SPEC.md, cursor pagination, Bearer tokens or the browser session.
//!
//! Every route is registered from its handler's `#[utoipa::path]`
//! description, so the OpenAPI document (`openapi.rs`) lists exactly the
//! routes that exist, with the types the handlers really return.

pub mod audit;
pub mod caller;
pub mod cloud;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod hooks;
pub mod integrations;
pub mod integrations_file;
pub mod json;
pub mod openapi;
pub mod outbound;
pub mod pagination;
pub mod query;
pub mod repositories;
pub mod runs;
pub mod spaces;
pub mod stacks;
pub mod tokens;
pub mod users;

use axum::Router;
use bitgate_core::users::Role;
use serde::Serialize;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// Times in the API: RFC 3339 in UTC.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
}

/// A role on a space. `read` sees it; `write` manages its stacks too;
/// `admin` manages everything in it, members and child spaces included.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Role)]
pub enum RoleName {
    Read,
    Write,
    Admin,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Read => RoleName::Read,
            Role::Write => RoleName::Write,
            Role::Admin => RoleName::Admin,
        }
    }
}

/// The API's routes, each with its description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(spaces::list, spaces::create))
        .routes(routes!(spaces::get, spaces::update, spaces::delete))
        .routes(routes!(spaces::members, spaces::put_member))
        .routes(routes!(spaces::remove_member))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(integrations::list, integrations::create))
        .routes(routes!(integrations_file::export))
        .routes(routes!(integrations_file::import))
        .routes(routes!(integrations::get, integrations::update, integrations::delete))
        .routes(routes!(integrations::test))
        .routes(routes!(cloud::authorize))
        .routes(routes!(integrations::webhook))
        .routes(routes!(integrations::public_key))
        .routes(routes!(deliveries::rotate))
        .routes(routes!(deliveries::retire_previous))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::get))
        .routes(routes!(repositories::list))
        .routes(routes!(stacks::list, stacks::create))
        .routes(routes!(stacks::get, stacks::update, stacks::delete))
        .routes(routes!(events::list))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get, runs::report))
        .routes(routes!(outbound::of_integration))
        .routes(routes!(outbound::of_stack))
        .routes(routes!(hooks::list_hooks))
        .routes(routes!(hooks::repair_hooks))
}

/// The API, and `/api/v1/openapi.json` describing it.
pub fn router() -> Router<AppState> {
    let (router, _) = routes().split_for_parts();
    router.route("/api/v1/openapi.json", axum::routing::get(openapi::serve(openapi::document())))
}
