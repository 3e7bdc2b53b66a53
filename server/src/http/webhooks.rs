//! `POST /webhooks/bitbucket/{slug}`: Bitbucket's deliveries. Decided,
//! recorded and answered by `core::webhooks` (SPEC.md's decision table);
//! an accepted delivery is acknowledged only once stored, routed to its
//! stacks by the same statement. The answer's body says what became of the delivery, which
//! Bitbucket shows in its webhook history.

use axum::{
    body::{to_bytes, Body},
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use std::{sync::Arc, time::Instant};

use bitgate_core::{
    telemetry,
    webhooks::{self, Incoming, ReceiveError},
    Services,
};
use serde_json::{json, Map, Value};

use tower_http::{catch_panic::CatchPanicLayer, set_header::SetResponseHeaderLayer};

use super::limits::BodyDeadlinePassed;

/// The delivery endpoint with only the layers it needs. It is the hot path
/// (SPEC.md's ingest target) and is called by Bitbucket, not browsers: no
/// session, viewer or CSRF check (a delivery is authenticated by its
/// signature), no error pages, no compression (answers are a few bytes), no
/// request span (the delivery log records every request), no client address.
/// Each of those layers cost time per delivery, and the page layers clone the
/// application state per request. Its state is the services alone, behind
/// one `Arc`: one count to increment per request, where the whole
/// application's state (the Leptos options among it) took a dozen.
pub fn router(services: Services) -> Router {
    Router::new()
        .route("/webhooks/bitbucket/{slug}", post(receive))
        .layer(axum::middleware::from_fn(super::limits::body_deadline))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(CatchPanicLayer::custom(|_| {
            let body =
                json!({"error": {"code": "internal", "message": "The delivery could not be handled.", "details": []}});
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }))
        .with_state(Arc::new(services))
}

/// Headers never kept in the log.
const REDACTED: [&str; 3] = ["x-hub-signature", "authorization", "cookie"];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request's headers as kept: the signature (and any credential) redacted.
fn kept_headers(headers: &HeaderMap) -> Value {
    let mut kept = Map::new();
    for (name, value) in headers {
        let shown = if REDACTED.contains(&name.as_str()) {
            "(redacted)".to_owned()
        } else {
            value.to_str().unwrap_or("(not text)").chars().take(1000).collect()
        };
        kept.insert(name.as_str().to_owned(), Value::String(shown));
    }
    Value::Object(kept)
}

pub async fn receive(
    State(services): State<Arc<Services>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (response, outcome, signature) = answer(&services, &slug, &headers, body).await;
    telemetry::delivery(outcome, signature, started.elapsed());
    response
}

/// The answer, and what became of the delivery for the metrics: its outcome
/// and signature verdict.
async fn answer(
    services: &Services,
    slug: &str,
    headers: &HeaderMap,
    body: Body,
) -> (Response, &'static str, &'static str) {
    // Read at most one byte past the limit: more is refused unread. A body
    // that does not arrive by its deadline is answered, not recorded.
    let bytes = match to_bytes(body, webhooks::MAX_BODY).await {
        Ok(bytes) => Some(bytes),
        Err(error) if BodyDeadlinePassed::caused(&error) => {
            let message = "The body did not arrive in time; nothing was recorded.";
            let body = json!({"error": {"code": "request_timeout", "message": message, "details": []}});
            return ((StatusCode::REQUEST_TIMEOUT, Json(body)).into_response(), "timed_out", "unchecked");
        }
        Err(_) => None,
    };
    let incoming = Incoming {
        content_type: header(headers, "content-type"),
        event_key: header(headers, "x-event-key"),
        signature: header(headers, "x-hub-signature"),
        request_id: header(headers, "x-request-id").or_else(|| header(headers, "x-request-uuid")),
        headers: kept_headers(headers),
        body: bytes.as_deref(),
    };
    match webhooks::receive(services, slug, incoming).await {
        Ok(receipt) => {
            let status = StatusCode::from_u16(receipt.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({"delivery": receipt.delivery, "outcome": receipt.outcome, "reason": receipt.reason});
            ((status, Json(body)).into_response(), receipt.outcome.as_str(), receipt.signature)
        }
        Err(ReceiveError::NotFound) => (
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": {"code": "not_found", "message": "No integration has this webhook endpoint.", "details": []}})),
            )
                .into_response(),
            "unknown_endpoint",
            "unchecked",
        ),
        Err(error) => {
            tracing::warn!(%error, "a delivery could not be stored; answering 503 so that Bitbucket retries");
            (
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": {"code": "unavailable", "message": "The delivery could not be stored; Bitbucket may send it again.", "details": []}})),
                )
                    .into_response(),
                "unavailable",
                "unchecked",
            )
        }
    }
}
