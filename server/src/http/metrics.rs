//! `/metrics` (`BITGATE_METRICS=on`): Prometheus's text format, rendered
//! by `metrics-exporter-prometheus` from what `core::telemetry` records.
//! Not behind login, like the health probes: an operator keeps it off the
//! public network, or serves it on `BITGATE_METRICS_LISTEN` alone.

use std::sync::OnceLock;

use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bitgate_core::telemetry;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// The process's recorder: installed once (the `metrics` facade has one
/// global recorder), shared by every app the process serves.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            // The buckets are constants known to be valid (non-empty).
            let builder = builder.set_buckets(&telemetry::BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                telemetry::describe();
            }
            handle
        })
        .clone()
}

/// The `/metrics` route.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<AppState>) -> Response {
    let Some(handle) = state.metrics.as_ref() else {
        return crate::error::AppError::NotFound.into_response();
    };
    if let Err(error) = telemetry::sample(&state.services.pool).await {
        tracing::warn!(%error, "the job queue's metrics could not be read");
    }
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}
