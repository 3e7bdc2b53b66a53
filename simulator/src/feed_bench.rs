//! The events feed benchmark (issue: "events from delivery commit to a
//! waiting reader"): readers follow Bitgate's feed while signed deliveries
//! arrive at a fixed rate; each event's latency is the time a reader got it
//! minus the event's `at` (the database's clock when the transaction that
//! stored the delivery began: a bound from above of the time since commit).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::load;

/// What the readers saw.
#[derive(Debug, Default)]
pub struct FeedReport {
    pub deliveries: usize,
    pub failed: usize,
    /// Every event each reader got, with its latency.
    pub latencies: Vec<Duration>,
}

impl FeedReport {
    pub fn percentile(&self, p: f64) -> Duration {
        load::percentile(&self.latencies, p)
    }
}

/// Where the benchmark sends and reads.
pub struct FeedBench<'a> {
    pub bitgate_url: &'a str,
    pub token: &'a str,
    pub webhook_url: &'a str,
    pub secret: &'a str,
    pub readers: usize,
    pub rate: u32,
    pub duration: Duration,
}

impl FeedBench<'_> {
    pub async fn run(&self) -> anyhow::Result<FeedReport> {
        let client = reqwest::Client::new();
        let base = self.bitgate_url.trim_end_matches('/').to_owned();
        let head = head(&client, &base, self.token).await?;
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..self.readers)
            .map(|_| {
                let (client, base, token, cursor, done) =
                    (client.clone(), base.clone(), self.token.to_owned(), head.clone(), done.clone());
                tokio::spawn(async move { read(&client, &base, &token, cursor, &done).await })
            })
            .collect();
        let sent = load::open_loop(self.webhook_url, self.secret, "repo:refs_changed", self.rate, self.duration).await;
        // The last events reach the readers, then they stop at their next empty page.
        tokio::time::sleep(Duration::from_secs(2)).await;
        done.store(true, Ordering::SeqCst);
        let mut report = FeedReport { deliveries: sent.sent, failed: sent.failed, latencies: Vec::new() };
        for reader in readers {
            report.latencies.extend(reader.await??);
        }
        Ok(report)
    }
}

async fn page(client: &reqwest::Client, base: &str, token: &str, cursor: &str, wait: u32) -> anyhow::Result<Value> {
    let url = format!("{base}/api/v1/events?after={cursor}&limit=500&wait={wait}");
    Ok(client.get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?)
}

async fn head(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let mut cursor = String::new();
    loop {
        let read = page(client, base, token, &cursor, 0).await?;
        cursor = read["next_cursor"].as_str().unwrap_or_default().to_owned();
        if read["items"].as_array().is_none_or(Vec::is_empty) {
            return Ok(cursor);
        }
    }
}

async fn read(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    mut cursor: String,
    done: &AtomicBool,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    loop {
        let read = page(client, base, token, &cursor, 1).await?;
        let now = OffsetDateTime::now_utc();
        let items = read["items"].as_array().cloned().unwrap_or_default();
        for event in &items {
            if let Some(at) = event["at"].as_str().and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok()) {
                latencies.push((now - at).try_into().unwrap_or_default());
            }
        }
        cursor = read["next_cursor"].as_str().unwrap_or(&cursor).to_owned();
        if items.is_empty() && done.load(Ordering::SeqCst) {
            return Ok(latencies);
        }
    }
}
