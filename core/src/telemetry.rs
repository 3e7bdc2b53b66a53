//! What Bitgate measures for Prometheus (`BITGATE_METRICS=on`): every
//! metric's name, help and labels are here, and the code records through
//! these functions. They go through the `metrics` facade: with no recorder
//! installed (metrics off) each call is a no-op. The server installs the
//! recorder and renders `/metrics`; the gauges that describe the database
//! (the job queue, the pool) are read when it is scraped ([`sample`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use sqlx::PgPool;

use crate::jobs::JobKind;

tokio::task_local! {
    /// The id of the request being handled (`X-Request-Id`): on its log
    /// lines, and stored with the jobs it queues so that theirs carry it.
    pub static REQUEST_ID: String;
}

/// The id of the request this task handles, if it handles one.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

pub const DELIVERIES: &str = "bitgate_webhook_deliveries_total";
pub const INGEST_SECONDS: &str = "bitgate_webhook_ingest_seconds";
pub const EVENTS_WRITTEN: &str = "bitgate_events_written_total";
pub const FEED_WAITERS: &str = "bitgate_event_feed_waiters";
pub const OUTBOUND_CALLS: &str = "bitgate_outbound_calls_total";
pub const OUTBOUND_SECONDS: &str = "bitgate_outbound_call_seconds";
pub const JOBS_QUEUED: &str = "bitgate_jobs_queued";
pub const JOBS_DUE: &str = "bitgate_jobs_due";
pub const JOB_OLDEST_DUE_SECONDS: &str = "bitgate_job_oldest_due_age_seconds";
pub const TOKEN_REFRESHES: &str = "bitgate_oauth_token_refreshes_total";
pub const POOL_CONNECTIONS: &str = "bitgate_db_pool_connections";
pub const POOL_MAX: &str = "bitgate_db_pool_max_connections";
pub const START_TIME: &str = "bitgate_process_start_time_seconds";
pub const BUILD_INFO: &str = "bitgate_build_info";

/// The histograms' buckets, in seconds: from a fast ingest (a millisecond)
/// to the outbound timeout's range.
pub const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Registers every metric's help text and sets the process's own gauges;
/// called once, after the recorder is installed.
pub fn describe() {
    describe_counter!(DELIVERIES, "Webhook deliveries answered, by outcome and signature verdict.");
    describe_histogram!(INGEST_SECONDS, Unit::Seconds, "Time from a delivery's request to its answer.");
    describe_counter!(EVENTS_WRITTEN, "Events derived from deliveries and stored for the feed.");
    describe_gauge!(FEED_WAITERS, "Readers waiting on the events feed (long polls) in this process.");
    describe_counter!(OUTBOUND_CALLS, "Calls to Bitbucket's REST API, by kind and answer class.");
    describe_histogram!(OUTBOUND_SECONDS, Unit::Seconds, "Time of a call to Bitbucket's REST API, by kind.");
    describe_gauge!(JOBS_QUEUED, "Jobs in the queue, by kind (due, waiting, running or held).");
    describe_gauge!(JOBS_DUE, "Jobs due and not running, by kind.");
    describe_gauge!(JOB_OLDEST_DUE_SECONDS, Unit::Seconds, "How long the oldest due job has waited, by kind.");
    describe_counter!(TOKEN_REFRESHES, "OAuth token refreshes, by provider and result.");
    describe_gauge!(POOL_CONNECTIONS, "The database pool's connections, by state (idle, in_use).");
    describe_gauge!(POOL_MAX, "The most connections the database pool opens.");
    describe_gauge!(START_TIME, Unit::Seconds, "When this process started, in seconds since the Unix epoch.");
    describe_gauge!(BUILD_INFO, "Always 1; its label is Bitgate's version.");
    // Shown from the start, so that dashboards and alerts see 0, not nothing.
    gauge!(FEED_WAITERS).set(0.0);
    for provider in ["bitbucket_cloud", "bitbucket_datacenter"] {
        for result in ["refreshed", "failed"] {
            counter!(TOKEN_REFRESHES, "provider" => provider, "result" => result).increment(0);
        }
    }
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    gauge!(START_TIME).set(started);
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// One delivery answered: its outcome (`accepted`, `ignored`, `duplicate`,
/// `rejected`, or `unknown_endpoint` and `unavailable` for those never
/// recorded), its signature verdict, and how long the answer took.
pub fn delivery(outcome: &'static str, signature: &'static str, took: Duration) {
    counter!(DELIVERIES, "outcome" => outcome, "signature" => signature).increment(1);
    histogram!(INGEST_SECONDS).record(took.as_secs_f64());
}

/// Events stored by a batch of deliveries.
pub fn events_written(count: usize) {
    if count > 0 {
        counter!(EVENTS_WRITTEN).increment(count as u64);
    }
}

/// A reader waiting on the events feed, counted until dropped.
pub struct FeedWaiter(());

impl FeedWaiter {
    pub fn start() -> Self {
        gauge!(FEED_WAITERS).increment(1.0);
        Self(())
    }
}

impl Drop for FeedWaiter {
    fn drop(&mut self) {
        gauge!(FEED_WAITERS).decrement(1.0);
    }
}

/// One call to Bitbucket: its kind (`build_status`, `comment`, `webhook`,
/// `branch_heads`, `commit`), the answer's class (`2xx`, `4xx`, `5xx`, or
/// `none` when no answer came) and how long it took.
pub fn outbound_call(kind: &'static str, status: Option<u16>, took: Duration) {
    let class = match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(_) => "5xx",
        None => "none",
    };
    counter!(OUTBOUND_CALLS, "kind" => kind, "answer" => class).increment(1);
    histogram!(OUTBOUND_SECONDS, "kind" => kind).record(took.as_secs_f64());
}

/// An OAuth token refresh (the provider as stored: `bitbucket_cloud`,
/// `bitbucket_datacenter`) that succeeded or failed.
pub fn token_refresh(provider: &'static str, succeeded: bool) {
    let result = if succeeded { "refreshed" } else { "failed" };
    counter!(TOKEN_REFRESHES, "provider" => provider, "result" => result).increment(1);
}

/// Reads the gauges that describe the database: the job queue by kind and
/// the pool's connections. Called before each scrape's rendering.
pub async fn sample(pool: &PgPool) -> Result<(), sqlx::Error> {
    let kinds = sqlx::query!(
        r#"SELECT kind AS "kind!",
                  count(*) AS "queued!",
                  count(*) FILTER (WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now())) AS "due!",
                  extract(epoch FROM now() - min(run_at) FILTER
                      (WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now())))::float8 AS oldest_due
           FROM jobs GROUP BY kind"#
    )
    .fetch_all(pool)
    .await?;
    // Every kind is shown, so that one that emptied reads 0, not its last count.
    for kind in JobKind::ALL {
        for name in [JOBS_QUEUED, JOBS_DUE, JOB_OLDEST_DUE_SECONDS] {
            gauge!(name, "kind" => kind.as_str()).set(0.0);
        }
    }
    for kind in kinds {
        gauge!(JOBS_QUEUED, "kind" => kind.kind.clone()).set(kind.queued as f64);
        gauge!(JOBS_DUE, "kind" => kind.kind.clone()).set(kind.due as f64);
        gauge!(JOB_OLDEST_DUE_SECONDS, "kind" => kind.kind).set(kind.oldest_due.unwrap_or(0.0));
    }
    let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
    gauge!(POOL_CONNECTIONS, "state" => "idle").set(idle);
    gauge!(POOL_CONNECTIONS, "state" => "in_use").set(size - idle);
    gauge!(POOL_MAX).set(f64::from(pool.options().get_max_connections()));
    Ok(())
}
