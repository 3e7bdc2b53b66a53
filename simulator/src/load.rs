//! A load generator for the webhook benchmark: signed, real-shaped
//! deliveries with distinct request ids, either as fast as `clients`
//! concurrent senders can go (the sustained rate) or at a fixed rate (the
//! latency at that rate). Reports the rate and latency percentiles.

use std::time::{Duration, Instant};

use crate::sender;

#[derive(Debug, Clone)]
pub struct Report {
    pub sent: usize,
    pub failed: usize,
    pub seconds: f64,
    pub latencies: Vec<Duration>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        (self.sent - self.failed) as f64 / self.seconds
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The `p` quantile (0 to 1) of `latencies`; zero when there are none.
pub fn percentile(latencies: &[Duration], p: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn one(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    secret: &str,
    body: &[u8],
    id: &str,
) -> (bool, Duration) {
    let started = Instant::now();
    let mut request = client.post(url).body(body.to_vec());
    for (name, value) in sender::headers(event, Some(secret), body, id) {
        request = request.header(name, value);
    }
    let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
    (ok, started.elapsed())
}

/// `clients` senders for `duration`, each sending as soon as its last answer came.
pub async fn closed_loop(url: &str, secret: &str, event: &str, clients: usize, duration: Duration) -> Report {
    let body = serde_json::to_vec(&sender::payload(event).unwrap_or_default()).unwrap_or_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap_or_default();
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url, secret, event, body, run) =
            (client.clone(), url.to_owned(), secret.to_owned(), event.to_owned(), body.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut report = Report { sent: 0, failed: 0, seconds: 0.0, latencies: Vec::new() };
            let mut n = 0u64;
            while started.elapsed() < duration {
                let (ok, took) = one(&client, &url, &event, &secret, &body, &format!("{run}-{c}-{n}")).await;
                n += 1;
                report.sent += 1;
                report.failed += usize::from(!ok);
                report.latencies.push(took);
            }
            report
        }));
    }
    let mut total = Report { sent: 0, failed: 0, seconds: 0.0, latencies: Vec::new() };
    for task in tasks {
        if let Ok(report) = task.await {
            total.sent += report.sent;
            total.failed += report.failed;
            total.latencies.extend(report.latencies);
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

/// `rate` deliveries a second for `duration`, whatever the answers' speed.
pub async fn open_loop(url: &str, secret: &str, event: &str, rate: u32, duration: Duration) -> Report {
    let body = serde_json::to_vec(&sender::payload(event).unwrap_or_default()).unwrap_or_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap_or_default();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        let (client, url, secret, event, body, id) =
            (client.clone(), url.to_owned(), secret.to_owned(), event.to_owned(), body.clone(), format!("{run}-{n}"));
        n += 1;
        tasks.push(tokio::spawn(async move { one(&client, &url, &event, &secret, &body, &id).await }));
    }
    let mut report = Report { sent: 0, failed: 0, seconds: started.elapsed().as_secs_f64(), latencies: Vec::new() };
    for task in tasks {
        if let Ok((ok, took)) = task.await {
            report.sent += 1;
            report.failed += usize::from(!ok);
            report.latencies.push(took);
        }
    }
    report
}
