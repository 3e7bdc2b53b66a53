//! The one HTTP client for every call to a user-given Bitbucket URL:
//! http(s) only, no user info, no redirects followed, a timeout, and every
//! address checked after DNS resolution against `BITGATE_OUTBOUND_DENY`
//! (so a name that resolves to 127.0.0.1 is refused like the literal).

use std::{
    net::{IpAddr, SocketAddr},
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
    if is_denied(ip, deny) {
        Err(UrlRefused::Denied(ip))
    } else {
        Ok(())
    }
}

fn is_denied(ip: IpAddr, deny: &[IpNet]) -> bool {
    // An IPv4-mapped IPv6 address is the IPv4 address in disguise.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    deny.iter().any(|net| net.contains(&ip))
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
            let allowed: Vec<SocketAddr> = resolved.iter().copied().filter(|a| !is_denied(a.ip(), &deny)).collect();
            if allowed.is_empty() {
                let refused = resolved.first().map(|a| a.ip().to_string()).unwrap_or_else(|| "nothing".into());
                return Err(format!("{host} resolves to {refused}, which BITGATE_OUTBOUND_DENY does not allow").into());
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
