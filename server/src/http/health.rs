//! Probes for load balancers and orchestrators.

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde_json::json;

use crate::state::AppState;

/// The process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// The process can do its work: it is not stopping, and the database answers.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.is_stopping() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "stopping"})));
    }
    if bitgate_core::db::is_reachable(&state.services.pool).await {
        (StatusCode::OK, Json(json!({"status": "ready", "database": "reachable"})))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "unreachable"})))
    }
}
