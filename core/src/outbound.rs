//! The one HTTP client for every call to a user-given Bitbucket URL:
//! http(s) only, no user info, no redirects followed, a timeout, no proxy,
//! and every address checked after DNS resolution against
//! `BITGATE_OUTBOUND_DENY` (so a name that resolves to 127.0.0.1 is refused
//! like the literal).
//!
//! Addresses that are no single host's (unspecified, broadcast, multicast)
//! are refused whatever the deny list says: Linux connects `0.0.0.0` and
//! `[::]` to the machine itself. IPv6 addresses that carry an IPv4 address
//! (mapped, compatible, NAT64, 6to4, Teredo) are checked as that address too.
//!
//! Every answer is read through [`read_body`], which stops at the call's
//! cap ([`MAX_ANSWER_BYTES`] for one object, [`MAX_PAGE_BYTES`] for a page
//! of a list): a server that answers without end cannot grow the process
//! that every other integration shares.
//!
//! Proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`)
//! are never used for these calls: a proxy resolves the names itself, out of
//! reach of the check. An installation that must go through a proxy to reach
//! Bitbucket needs the proxy to enforce its own policy; Bitgate does not
//! offer one for user-given URLs.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::config::Config;

/// Why a URL may not be called.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    #[error("the URL must start with http:// or https://")]
    Scheme,
    #[error("the URL must not contain a user name or password")]
    UserInfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("Bitgate is configured not to connect to {0} (BITGATE_OUTBOUND_DENY)")]
    Denied(IpAddr),
    #[error("{0} is not the address of one host (unspecified, broadcast or multicast): Bitgate never connects to it")]
    NotAHost(IpAddr),
}

/// Checks a user-given URL before any connection: the scheme, user info,
/// and an IP-literal host against the deny list (names are checked when
/// they resolve).
pub fn check_url(url: &Url, deny: &[IpNet]) -> Result<(), UrlRefused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::UserInfo);
    }
    let ip = match url.host().ok_or(UrlRefused::NoHost)? {
        Host::Ipv4(ip) => IpAddr::V4(ip),
        Host::Ipv6(ip) => IpAddr::V6(ip),
        Host::Domain(_) => return Ok(()),
    };
    refusal(ip, deny).map_or(Ok(()), Err)
}

/// Why an address may not be connected to, if it may not: the address, and
/// every IPv4 address an IPv6 one carries, against the fixed ranges and the
/// deny list.
fn refusal(ip: IpAddr, deny: &[IpNet]) -> Option<UrlRefused> {
    let mut candidates = vec![ip];
    if let IpAddr::V6(v6) = ip {
        candidates.extend(embedded_ipv4(v6).into_iter().map(IpAddr::V4));
    }
    if candidates.iter().any(|candidate| !is_one_host(*candidate)) {
        return Some(UrlRefused::NotAHost(ip));
    }
    candidates.iter().any(|candidate| deny.iter().any(|net| net.contains(candidate))).then_some(UrlRefused::Denied(ip))
}

/// Whether an address can name one host: not unspecified (`0.0.0.0/8`,
/// `::`), not broadcast, not multicast.
fn is_one_host(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.octets()[0] == 0 || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// The IPv4 addresses an IPv6 address carries, in each form that routes to
/// them: IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::/96` and the local-use `64:ff9b:1::/48`, RFC 6052),
/// 6to4 (`2002:AABB:CCDD::/48`) and Teredo (`2001:0::/32`: the server, and
/// the client with its bits inverted).
fn embedded_ipv4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let o = v6.octets();
    let segments = v6.segments();
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let mut found = Vec::new();
    let mapped = o[..10].iter().all(|b| *b == 0) && o[10] == 0xff && o[11] == 0xff;
    // `::` and `::1` are IPv6's own unspecified and loopback addresses, not
    // IPv4-compatible ones, and are checked as such.
    let compatible = o[..12].iter().all(|b| *b == 0) && u32::from(last32) > 1;
    if mapped || compatible {
        found.push(last32);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        found.push(last32);
    }
    if segments[..3] == [0x64, 0xff9b, 1] {
        // The /48 format puts the address in octets 6, 7, 9 and 10 (octet 8
        // is reserved); the /96 format, which the prefix also allows, at the
        // end. The format not used is zeros, not an address.
        for candidate in [Ipv4Addr::new(o[6], o[7], o[9], o[10]), last32] {
            if !candidate.is_unspecified() {
                found.push(candidate);
            }
        }
    }
    if segments[0] == 0x2002 {
        found.push(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    if segments[..2] == [0x2001, 0] {
        found.push(Ipv4Addr::new(o[4], o[5], o[6], o[7]));
        found.push(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    found
}

/// The most Bitgate reads of an answer that is one object (a version, a
/// user, a token, a repository): 64 KiB, where Bitbucket's are a few KiB at
/// most. Parsed, JSON takes several times its size in memory, and the
/// checks of an import run eight at a time: this keeps them small.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most Bitgate reads of a page of a list (up to 100 repositories, some
/// hundred KiB at Bitbucket's most verbose): 4 MiB.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Why an answer's body was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailed {
    #[error("the answer is longer than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// Reads an answer's body whole, refusing more than `limit` bytes: a
/// declared length over the cap is refused unread, and an undeclared one is
/// refused as soon as it passes the cap.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadFailed> {
    let too_large = ReadFailed::TooLarge { limit };
    if response.content_length().is_some_and(|declared| declared > limit as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Resolves names with the system resolver and drops denied addresses.
#[derive(Debug)]
struct DenyingResolver {
    deny: Arc<Vec<IpNet>>,
}

impl Resolve for DenyingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let deny = self.deny.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                resolved.iter().copied().filter(|a| refusal(a.ip(), &deny).is_none()).collect();
            if allowed.is_empty() {
                let why = match resolved.first() {
                    Some(address) => match refusal(address.ip(), &deny) {
                        Some(UrlRefused::NotAHost(ip)) => {
                            format!("{ip}, which is not the address of one host: Bitgate never connects to it")
                        }
                        _ => format!("{}, which BITGATE_OUTBOUND_DENY does not allow", address.ip()),
                    },
                    None => "nothing".to_owned(),
                };
                return Err(format!("{host} resolves to {why}").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The shared client for calls to Bitbucket: built once, cheap to clone.
pub fn client(config: &Config) -> reqwest::Result<reqwest::Client> {
    builder(config).build()
}

/// A client that also trusts a private CA (a Bitbucket signed by one), for
/// one integration's calls.
pub fn client_trusting(config: &Config, ca: &reqwest::Certificate) -> reqwest::Result<reqwest::Client> {
    builder(config).add_root_certificate(ca.clone()).build()
}

fn builder(config: &Config) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.outbound_timeout)
        .connect_timeout(config.outbound_timeout)
        .user_agent(concat!("Bitgate/", env!("CARGO_PKG_VERSION")))
        // A proxy would resolve names itself, past the resolver below.
        .no_proxy()
        .dns_resolver(Arc::new(DenyingResolver { deny: Arc::new(config.outbound_deny.clone()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny() -> Vec<IpNet> {
        crate::config::Config::load(&[]).unwrap().outbound_deny
    }

    #[test]
    fn urls_are_checked_before_any_connection() {
        let ok = |u: &str| check_url(&Url::parse(u).unwrap(), &deny());
        assert_eq!(ok("https://bitbucket.example.com/rest"), Ok(()));
        assert_eq!(ok("ftp://bitbucket.example.com"), Err(UrlRefused::Scheme));
        assert_eq!(ok("https://user:pw@bitbucket.example.com"), Err(UrlRefused::UserInfo));
        assert_eq!(ok("http://127.0.0.1:7990"), Err(UrlRefused::Denied("127.0.0.1".parse().unwrap())));
        assert_eq!(ok("http://169.254.169.254/latest"), Err(UrlRefused::Denied("169.254.169.254".parse().unwrap())));
        assert!(matches!(ok("http://[::ffff:127.0.0.1]/"), Err(UrlRefused::Denied(_))));
        assert!(matches!(ok("http://[::1]/"), Err(UrlRefused::Denied(_))));
        assert_eq!(ok("http://10.1.2.3/"), Ok(()), "private networks are allowed unless denied");
        assert_eq!(check_url(&Url::parse("http://127.0.0.1/").unwrap(), &[]), Ok(()), "an empty list denies nothing");
    }

    #[test]
    fn addresses_of_no_single_host_are_refused_whatever_the_deny_list() {
        let not_a_host = |u: &str| {
            let refused = check_url(&Url::parse(u).unwrap(), &[]);
            assert!(matches!(refused, Err(UrlRefused::NotAHost(_))), "{u}: {refused:?}");
        };
        for url in [
            "http://0.0.0.0/",
            "http://0/",
            "http://0x0/",
            "http://0.1.2.3/",
            "http://000.000.000.000/",
            "http://[::]/",
            "http://[::ffff:0.0.0.0]/",
            "http://[::0.0.0.0]/",
            "http://[64:ff9b::0.0.0.0]/",
            "http://255.255.255.255/",
            "http://224.0.0.1/",
            "http://239.255.255.250/",
            "http://[ff02::1]/",
            "http://[::ffff:224.0.0.1]/",
        ] {
            not_a_host(url);
        }
    }

    #[test]
    fn ipv6_forms_carrying_a_denied_ipv4_address_are_denied() {
        let denied = |ip: Ipv6Addr| {
            let url = Url::parse(&format!("http://[{ip}]/")).unwrap();
            assert!(matches!(check_url(&url, &deny()), Err(UrlRefused::Denied(_))), "{ip}");
        };
        denied("::ffff:127.0.0.1".parse().unwrap());
        denied("::127.0.0.1".parse().unwrap());
        denied("64:ff9b::127.0.0.1".parse().unwrap());
        denied("64:ff9b::169.254.169.254".parse().unwrap());
        // The local-use NAT64 prefix in its /48 format: 127.0.0.1 around the reserved octet 8.
        denied(Ipv6Addr::from([0, 0x64, 0xff, 0x9b, 0, 1, 127, 0, 0, 0, 1, 0, 0, 0, 0, 0]));
        denied("2002:7f00:1::".parse().unwrap());
        denied("2002:a9fe:a9fe::1".parse().unwrap());
        // Teredo: the server's address, and the client's with its bits inverted.
        denied("2001:0:7f00:1::f7f7:f7f7".parse().unwrap());
        denied("2001:0:4136:e378:8000:63bf:80ff:fffe".parse().unwrap());

        let allowed = |u: &str| assert_eq!(check_url(&Url::parse(u).unwrap(), &deny()), Ok(()), "{u}");
        allowed("http://[2001:db8::1]/");
        allowed("http://[2606:4700::6810:84e5]/");
        allowed("http://[64:ff9b::8.8.8.8]/");
        allowed("http://[::ffff:10.1.2.3]/");
    }

    #[tokio::test]
    async fn names_that_resolve_to_denied_addresses_are_refused() {
        let resolver = DenyingResolver { deny: Arc::new(deny()) };
        let name: Name = "localhost".parse().unwrap();
        let error = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost was allowed"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains("BITGATE_OUTBOUND_DENY"), "{error}");

        let open = DenyingResolver { deny: Arc::new(Vec::new()) };
        let addrs: Vec<SocketAddr> = open.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()));
    }

    /// A server answering every connection with `head` and then `body_len`
    /// bytes of `x`, written in 64 KiB pieces while the client reads.
    async fn answering(head: &'static str, body_len: usize) -> u16 {
        use tokio::{io::AsyncWriteExt, net::TcpListener};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
                    let _ = socket.write_all(head.as_bytes()).await;
                    let piece = vec![b'x'; 64 * 1024];
                    let mut sent = 0;
                    while sent < body_len {
                        let n = piece.len().min(body_len - sent);
                        if socket.write_all(&piece[..n]).await.is_err() {
                            return;
                        }
                        sent += n;
                    }
                });
            }
        });
        port
    }

    async fn read(port: u16, limit: usize) -> Result<Vec<u8>, ReadFailed> {
        let config = crate::config::Config::load(&[("BITGATE_OUTBOUND_DENY", "")]).unwrap();
        let response = client(&config).unwrap().get(format!("http://127.0.0.1:{port}/")).send().await.unwrap();
        read_body(response, limit).await
    }

    #[tokio::test]
    async fn answers_longer_than_the_cap_are_refused_declared_or_not() {
        let declared = answering("HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n", 200_000).await;
        assert!(matches!(read(declared, 100_000).await, Err(ReadFailed::TooLarge { limit: 100_000 })));
        // No length given: read until the cap is passed, then stopped.
        let undeclared = answering("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 10_000_000).await;
        assert!(matches!(read(undeclared, 100_000).await, Err(ReadFailed::TooLarge { .. })));
        let within = answering("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n", 100_000).await;
        assert_eq!(read(within, 100_000).await.unwrap().len(), 100_000, "exactly the cap is read");
    }

    #[tokio::test]
    async fn the_client_follows_no_redirect() {
        use tokio::{io::AsyncWriteExt, net::TcpListener};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 302 Found\r\nLocation: http://example.com/\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let config = crate::config::Config::load(&[("BITGATE_OUTBOUND_DENY", "")]).unwrap();
        let response = client(&config).unwrap().get(format!("http://127.0.0.1:{port}/")).send().await.unwrap();
        assert_eq!(response.status(), 302, "the redirect is returned, not followed");
    }
}
