//! The client's address, for the audit log and login rate limits:
//! `X-Forwarded-For` is believed only from `BITGATE_TRUSTED_PROXIES`.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;

use crate::state::AppState;

/// The address a request came from, as far as Bitgate can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

pub async fn resolve(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let forwarded = request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let address = client_address(peer, forwarded, &state.services.config.trusted_proxies);
    request.extensions_mut().insert(ClientAddress(address));
    next.run(request).await
}

/// Walks `X-Forwarded-For` from the right, past trusted proxies: the first
/// untrusted hop is the client (anything left of it could be forged).
fn client_address(peer: Option<IpAddr>, forwarded: Option<&str>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded.unwrap_or_default().rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_address(Some(outsider), Some("1.2.3.4"), &trusted), Some(outsider));
        assert_eq!(client_address(Some(proxy), Some("1.2.3.4"), &trusted), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(
            client_address(Some(proxy), Some("6.6.6.6, 1.2.3.4, 10.0.0.7"), &trusted),
            Some("1.2.3.4".parse().unwrap()),
            "the forged left-most entry is ignored"
        );
        assert_eq!(client_address(Some(proxy), None, &trusted), Some(proxy));
        assert_eq!(client_address(Some(proxy), Some("1.2.3.4"), &[]), Some(proxy));
        assert_eq!(client_address(None, Some("1.2.3.4"), &trusted), None);
    }
}
