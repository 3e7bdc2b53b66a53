//! The Bitbucket simulator: a server that speaks enough of Bitbucket Data
//! Center and Cloud for every flow of Bitgate, so that no test and no demo
//! needs the internet. Both products answer on one address (their paths do
//! not meet), with the demo platform's page ([`platform_page`], under
//! `/simulator/`, a path neither product has). Tests start it in-process
//! with [`Simulator::start`]; `bitbucket-simulator` runs it beside Bitgate.

pub mod cloud;
pub mod datacenter;
pub mod feed_bench;
pub mod load;
pub mod platform;
pub mod platform_page;
pub mod retry;
pub mod sender;
pub mod tls;

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::oneshot};

pub use datacenter::Instance as DataCenter;

/// A failure a test asks for: the next write call gets it instead of its
/// answer, as when Bitbucket is overloaded. Each product answers it in its
/// own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Too many requests (429). Cloud has been seen answering it without
    /// `Retry-After` (SharpBucket#108, Sourcegraph #49001), hence the
    /// option: `Some` sends the header, `None` leaves it out.
    RateLimited { retry_after_seconds: Option<u64> },
    /// 503, as when a node is being restarted.
    Unavailable,
}

/// Faults drawn at random, as a busy Bitbucket fails now and then (the
/// soak's `--fail-percent` and `--throttle-percent`): each call of the
/// REST API is answered 503 with the first chance, 429 (`Retry-After: 1`)
/// with the second, before any queued [`Fault`] is looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RandomFaults {
    /// Percent of calls answered 503.
    pub unavailable_percent: f64,
    /// Percent of calls answered 429.
    pub rate_limited_percent: f64,
}

impl RandomFaults {
    /// The fault this call gets, if any.
    pub fn draw(&self) -> Option<Fault> {
        if self.unavailable_percent <= 0.0 && self.rate_limited_percent <= 0.0 {
            return None;
        }
        // A uniform roll in [0, 100) from the operating system's randomness
        // (a version 4 uuid), without a random-number crate for one line.
        let roll = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 10_000.0;
        if roll < self.unavailable_percent {
            Some(Fault::Unavailable)
        } else if roll < self.unavailable_percent + self.rate_limited_percent {
            Some(Fault::RateLimited { retry_after_seconds: Some(1) })
        } else {
            None
        }
    }
}

/// A write call the simulator received, for tests that count them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: axum::http::Method,
    /// The path, context path included, without the query.
    pub path: String,
    /// When it arrived.
    pub at: std::time::Instant,
    /// What it was answered (a fault's status for a faulted one).
    pub status: u16,
}

/// Marks a request that came over TLS: the scheme an OAuth 1.0a
/// signature's base string names (`datacenter::oauth1`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReachedOverTls;

/// Text for an HTML page.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A time for a page: `2026-11-30 08:00:05 UTC`.
pub(crate) fn shown_time(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    /// The base URL, such as `http://127.0.0.1:40123`, context path not included.
    pub url: String,
    pub address: SocketAddr,
    /// With TLS: the private CA's certificate (PEM).
    pub ca_pem: Option<String>,
    pub datacenter: datacenter::Shared,
    pub cloud: cloud::Shared,
    /// The demo platform's page: where Bitgate is, and its follower.
    pub platform: platform_page::Shared,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        platform_page::stop(&self.platform);
    }
}

pub enum Transport {
    Http,
    /// TLS with a certificate from a private CA made for this run.
    Tls,
}

impl Simulator {
    /// Starts a Data Center instance on 127.0.0.1, on a port of its own.
    pub async fn start(instance: DataCenter, transport: Transport) -> anyhow::Result<Self> {
        Self::start_on("127.0.0.1:0".parse()?, instance, transport).await
    }

    pub async fn start_on(address: SocketAddr, instance: DataCenter, transport: Transport) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let datacenter: datacenter::Shared = Arc::new(RwLock::new(instance));
        // Bitgate's default callback; tests and the demo set theirs.
        let cloud: cloud::Shared =
            Arc::new(RwLock::new(cloud::Instance::sample("http://127.0.0.1:3000/oauth/bitbucket/callback")));
        // Bitgate's default address; `bitbucket-simulator --bitgate-url` sets its own.
        let platform = platform_page::Follower::shared("http://127.0.0.1:3000");
        let router = cloud::router(cloud.clone())
            .merge(datacenter::router(datacenter.clone()))
            .merge(platform_page::router(platform.clone(), datacenter.clone()));
        let (stop, stopped) = oneshot::channel();
        let (url, ca_pem) = match transport {
            Transport::Http => {
                tokio::spawn(async move {
                    let _ = axum::serve(listener, router).with_graceful_shutdown(async { drop(stopped.await) }).await;
                });
                (format!("http://{address}"), None)
            }
            Transport::Tls => {
                let ca = tls::PrivateCa::generate()?;
                let router = router.layer(axum::Extension(ReachedOverTls));
                tokio::spawn(serve_tls(listener, ca.acceptor, router, stopped));
                (format!("https://localhost:{}", address.port()), Some(ca.ca_pem))
            }
        };
        Ok(Self { url, address, ca_pem, datacenter, cloud, platform, stop: Some(stop) })
    }

    /// Changes the running instance (a token's permissions, the delay...).
    pub fn configure(&self, change: impl FnOnce(&mut DataCenter)) {
        let mut instance = self.datacenter.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut instance);
    }

    /// Changes the running Cloud (a consumer, the token expiry...).
    pub fn configure_cloud(&self, change: impl FnOnce(&mut cloud::Instance)) {
        let mut instance = self.cloud.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut instance);
    }

    /// Where the demo platform finds Bitgate (its page's default).
    pub fn set_bitgate_url(&self, url: &str) {
        platform_page::set_bitgate_url(&self.platform, url);
    }

    /// Starts the demo platform in this process, following Bitgate with
    /// `token` (an API token), instead of the one running, if any.
    pub fn start_platform(&self, token: &str) {
        platform_page::start(&self.platform, &self.datacenter, token);
    }
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            // A client that refuses our certificate ends here; that is the point.
            let Ok(stream) = acceptor.accept(stream).await else { return };
            let service = TowerToHyperService::new(router);
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_faults_come_at_about_the_rates_asked() {
        let faults = RandomFaults { unavailable_percent: 5.0, rate_limited_percent: 1.0 };
        let drawn: Vec<Option<Fault>> = (0..20_000).map(|_| faults.draw()).collect();
        let unavailable = drawn.iter().filter(|f| **f == Some(Fault::Unavailable)).count();
        let limited = drawn.iter().filter(|f| **f == Some(Fault::RateLimited { retry_after_seconds: Some(1) })).count();
        // Five standard deviations either side: wrong rates fail, chance does not.
        assert!((850..=1150).contains(&unavailable), "{unavailable} of 20,000 answered 503");
        assert!((130..=270).contains(&limited), "{limited} of 20,000 answered 429");
        assert!((0..1000).all(|_| RandomFaults::default().draw().is_none()), "none unless asked");
    }
}
