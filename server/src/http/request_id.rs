//! Every request's id: the `X-Request-Id` a trusted proxy
//! (`BITGATE_TRUSTED_PROXIES`) set, when it looks like one, or a new one. It
//! names the request's log lines (the `request` span), comes back in the
//! answer's `X-Request-Id`, and is stored with the jobs the request queues
//! (`core::telemetry::REQUEST_ID`), whose log lines name it too.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use bitgate_core::telemetry;
use uuid::Uuid;

use crate::state::AppState;

/// The id, for the layers inside (the request span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

const HEADER: &str = "x-request-id";

pub async fn assign(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let from_proxy = peer.is_some_and(|ip| state.services.config.trusted_proxies.iter().any(|net| net.contains(&ip)));
    let given = request.headers().get(HEADER).and_then(|v| v.to_str().ok()).filter(|id| plausible(id));
    let id = match given {
        Some(id) if from_proxy => id.to_owned(),
        _ => Uuid::new_v4().to_string(),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = telemetry::REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// An id as proxies make them (a UUID, nginx's 32 hex digits): short, and
/// nothing that could pass for another field in a log line.
fn plausible(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_short_plain_id_is_kept() {
        assert!(plausible("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(plausible("4f2c9a1b7e8d4c3a9b0e1f2a3b4c5d6e"));
        for bad in ["", "a b", "id\nlevel=ERROR", "\"quoted\"", &"x".repeat(129)] {
            assert!(!plausible(bad), "{bad:?}");
        }
    }
}
