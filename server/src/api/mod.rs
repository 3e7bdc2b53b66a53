//! The REST API under `/api/v1`: JSON in and out, the error shape and codes
//! of SPEC.md, cursor pagination, Bearer tokens or the browser session.

pub mod audit;
pub mod caller;
pub mod error;
pub mod json;
pub mod pagination;
pub mod spaces;
pub mod tokens;
pub mod users;

use axum::{
    routing::{delete, get},
    Router,
};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::state::AppState;

/// Times in the API: RFC 3339 in UTC.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/spaces", get(spaces::list).post(spaces::create))
        .route("/api/v1/spaces/{id}", get(spaces::get).patch(spaces::update).delete(spaces::delete))
        .route("/api/v1/spaces/{id}/members", get(spaces::members).put(spaces::put_member))
        .route("/api/v1/spaces/{id}/members/{user_id}", delete(spaces::remove_member))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/users/{id}", get(users::get).patch(users::update))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
}
