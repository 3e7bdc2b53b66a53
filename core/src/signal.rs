//! Waking this process's waiters when something happened in any process:
//! a PostgreSQL channel, listened to once per process, turned into a
//! generation counter that waiters watch. A waiter marks what it has seen
//! before it looks, so a notification that comes while it looks wakes its
//! next wait; and one that was missed while the connection was down is made
//! up for by waking everyone when it comes back.

use std::{sync::Arc, time::Duration};

use sqlx::{
    postgres::{PgListener, PgPoolOptions},
    PgPool,
};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Signal(Arc<watch::Sender<u64>>);

impl Default for Signal {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl Signal {
    /// A waiter: `changed()` returns after the next notification.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// Wakes every waiter of this process.
    pub fn notify(&self) {
        self.0.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Listens to `channel` for as long as the process runs, reconnecting
    /// after a failure. On a connection of its own: a listener keeps the
    /// connection it takes, which must not be one of the pool's.
    pub fn listen(&self, pool: PgPool, channel: &'static str) {
        let signal = self.clone();
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with((*pool.connect_options()).clone());
        tokio::spawn(async move {
            loop {
                match PgListener::connect_with(&own).await {
                    Ok(mut listener) => {
                        if listener.listen(channel).await.is_ok() {
                            signal.notify();
                            while listener.recv().await.is_ok() {
                                signal.notify();
                            }
                        }
                    }
                    Err(error) => tracing::debug!(%error, channel, "cannot listen yet"),
                }
                signal.notify();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
