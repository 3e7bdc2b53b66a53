//! What receiving needs of each endpoint's integration, its webhook
//! secrets and its stacks, cached in this process so that a delivery costs
//! one statement (its insert). Every process drops an entry the moment its
//! secret rotates, is retired, the integration goes or one of its stacks
//! changes where it routes: the change sends `NOTIFY bitgate_webhook_endpoints`
//! in its own transaction (stacks by a trigger, whatever path changes them),
//! and each process LISTENs. While the listening connection is down, the
//! cache is not used at all (a missed notification cannot leave a retired
//! secret accepted).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use sqlx::{postgres::PgListener, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::routing::Routes;
use crate::{integrations::Provider, secret::Secret};

/// Also named by the `stacks_route_changed` trigger (migrations).
pub const CHANNEL: &str = "bitgate_webhook_endpoints";

/// What verifying a delivery needs of its integration (its `Debug` shows
/// no secret: it sits in the cache, inside `Services`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub provider: Provider,
    pub secret: Secret<Vec<u8>>,
    /// The previous secret and until when it is accepted.
    pub previous: Option<(Secret<Vec<u8>>, OffsetDateTime)>,
    /// The integration's stacks, where its deliveries are routed.
    pub routes: Routes,
}

impl Endpoint {
    /// The previous secret, while its grace period lasts.
    pub fn previous_now(&self) -> Option<&[u8]> {
        self.previous.as_ref().filter(|(_, until)| *until > OffsetDateTime::now_utc()).map(|(s, _)| s.as_slice())
    }
}

#[derive(Debug, Default)]
pub struct Cache {
    entries: RwLock<HashMap<String, Arc<Endpoint>>>,
    /// Whether this process is listening (the cache is used only then).
    listening: AtomicBool,
    /// Bumped by every notification: an entry read before one is not kept.
    generation: AtomicU64,
}

impl Cache {
    pub fn get(&self, slug: &str) -> Option<Arc<Endpoint>> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        self.entries.read().ok()?.get(slug).cloned()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps an entry read at `generation`, unless a change came since.
    pub fn put(&self, slug: &str, endpoint: Arc<Endpoint>, generation: u64) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            if self.generation() == generation {
                entries.insert(slug.to_owned(), endpoint);
            }
        }
    }

    /// A change this process committed: its own next delivery sees it at
    /// once (the notification reaches every process, this one too, but a
    /// moment later).
    pub fn changed_here(&self) {
        self.forget_all();
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}

/// Tells every process that an integration's webhook secrets changed (sent
/// when the caller's transaction commits). Stacks tell by a trigger.
pub async fn changed(db: impl PgExecutor<'_>, integration: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify($1, $2)", CHANNEL, integration.to_string()).execute(db).await?;
    Ok(())
}

/// Listens for changes for as long as the process runs, reconnecting
/// after a failure; the cache is off while it is not listening.
pub fn listen(pool: sqlx::PgPool, cache: Arc<Cache>) {
    tokio::spawn(async move {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if listener.listen(CHANNEL).await.is_ok() {
                        cache.forget_all();
                        cache.listening.store(true, Ordering::Release);
                        while let Ok(notification) = listener.recv().await {
                            tracing::debug!(integration = notification.payload(), "webhook endpoint changed");
                            cache.forget_all();
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "cannot listen for webhook endpoint changes yet"),
            }
            cache.listening.store(false, Ordering::Release);
            cache.forget_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_endpoint_shows_no_secret() {
        let endpoint = Endpoint {
            id: Uuid::new_v4(),
            provider: Provider::DataCenter,
            secret: Secret::new(b"current-s3cret".to_vec()),
            previous: Some((Secret::new(b"previous-s3cret".to_vec()), OffsetDateTime::now_utc())),
            routes: Routes::default(),
        };
        let shown = format!("{endpoint:?}");
        // Neither as text nor as the bytes' numbers.
        assert!(!shown.contains("s3cret") && !shown.contains(&format!("{:?}", b"current-s3cret")[1..12]), "{shown}");
        assert_eq!(endpoint.previous_now(), None, "its grace period is over");
    }
}
