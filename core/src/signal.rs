//! Waking this process's waiters when something happened in any process:
//! a PostgreSQL channel, listened to once per process, turned into a
//! generation counter that waiters watch. A waiter marks what it has seen
//! before it looks, so a notification that comes while it looks wakes its
//! next wait; and one that was missed while the connection was down is made
//! up for by waking everyone when it comes back.
//!
//! A writer that does something often tells the others by [`Signal::announce`]:
//! at once in its own process, and to the other processes by one
//! notification per [`ANNOUNCE_WINDOW`] at most, however many times it
//! announces meanwhile.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use sqlx::{
    postgres::{PgListener, PgPoolOptions},
    PgPool,
};
use tokio::sync::{watch, Notify};

/// The longest an announcement waits behind the one before it: other
/// processes hear of a burst of writes within this (plus a round trip).
pub const ANNOUNCE_WINDOW: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Signal(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    generation: watch::Sender<u64>,
    /// Wakes the task that notifies the other processes, started on the first announcement.
    announcer: OnceLock<Arc<Notify>>,
}

impl Default for Signal {
    fn default() -> Self {
        Self(Arc::new(Inner { generation: watch::channel(0).0, announcer: OnceLock::new() }))
    }
}

impl Signal {
    /// A waiter: `changed()` returns after the next notification.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.generation.subscribe()
    }

    /// Wakes every waiter of this process.
    pub fn notify(&self) {
        self.0.generation.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Something committed that every process's waiters on `channel`
    /// should hear of: this process's wake now, the others' within
    /// [`ANNOUNCE_WINDOW`]. For writes too frequent for a notification
    /// each: every notification wakes each listening connection of every
    /// process (a PostgreSQL backend and a Bitgate task), and one per
    /// delivery made a fifth of the ingest rate with events
    /// (scripts/bench-webhooks). Sent after the commit, not with it: a
    /// process that dies in between leaves the other processes' readers to
    /// their regular re-read.
    pub fn announce(&self, pool: &PgPool, channel: &'static str) {
        self.notify();
        let announcer = self.0.announcer.get_or_init(|| {
            let wake = Arc::new(Notify::new());
            let (pool, woken) = (pool.clone(), wake.clone());
            tokio::spawn(async move {
                loop {
                    // A permit stored while the last one was sent makes the next.
                    woken.notified().await;
                    if let Err(error) = sqlx::query!("SELECT pg_notify($1, '')", channel).execute(&pool).await {
                        tracing::debug!(%error, channel, "cannot notify the other processes");
                    }
                    tokio::time::sleep(ANNOUNCE_WINDOW).await;
                }
            });
            wake
        });
        announcer.notify_one();
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
