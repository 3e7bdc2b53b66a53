//! The REST API under `/api/v1`: JSON in and out, the error shape and codes
//! of SPEC.md, cursor pagination, Bearer tokens or the browser session.

pub mod caller;
pub mod error;
pub mod json;
pub mod pagination;
pub mod tokens;

use axum::{
    routing::{delete, get},
    Router,
};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
}
