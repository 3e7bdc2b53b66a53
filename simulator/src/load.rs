//! A load generator for the webhook benchmark: signed, real-shaped
//! deliveries with distinct request ids, either as fast as `clients`
//! concurrent senders can go (the sustained rate) or at a fixed rate (the
//! latency at that rate). Reports the rate and latency percentiles.
//!
//! For the soak ([`Options`]), each delivery can push a commit of its own
//! (so that every one asks for a run and a build status of its own) and be
//! sent again, under the same request id, after a 5xx or no answer, as
//! Bitbucket retries; the report then splits into windows of time.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{retry, sender};

#[derive(Debug, Clone)]
pub struct Report {
    /// Deliveries sent (each counted once, however many attempts it took).
    pub sent: usize,
    /// Deliveries never answered 2xx.
    pub failed: usize,
    pub seconds: f64,
    /// Each delivery's last attempt's time to its answer.
    pub latencies: Vec<Duration>,
    /// Each delivery: when it was first sent (since the start), its latency,
    /// whether it was acknowledged, how many attempts it took.
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Duration,
    pub took: Duration,
    pub ok: bool,
    pub attempts: u32,
}

/// One window of a [`Report`]: the deliveries first sent in it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Duration,
    pub sent: usize,
    pub failed: usize,
    /// Deliveries that needed more than one attempt.
    pub retried: usize,
    pub p50: Duration,
    pub p99: Duration,
}

impl Report {
    fn new(samples: Vec<Sample>, seconds: f64) -> Self {
        Report {
            sent: samples.len(),
            failed: samples.iter().filter(|s| !s.ok).count(),
            seconds,
            latencies: samples.iter().map(|s| s.took).collect(),
            samples,
        }
    }

    pub fn rate(&self) -> f64 {
        (self.sent - self.failed) as f64 / self.seconds
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    /// Deliveries that needed more than one attempt.
    pub fn retried(&self) -> usize {
        self.samples.iter().filter(|s| s.attempts > 1).count()
    }

    /// The report cut into windows of `width` by when deliveries were first sent.
    pub fn windows(&self, width: Duration) -> Vec<Window> {
        let width = width.max(Duration::from_millis(1));
        let mut buckets: Vec<Vec<Sample>> = Vec::new();
        for sample in &self.samples {
            let index = (sample.at.as_nanos() / width.as_nanos()) as usize;
            if buckets.len() <= index {
                buckets.resize(index + 1, Vec::new());
            }
            buckets[index].push(*sample);
        }
        buckets
            .into_iter()
            .enumerate()
            .map(|(index, samples)| {
                let latencies: Vec<Duration> = samples.iter().map(|s| s.took).collect();
                Window {
                    start: width * index as u32,
                    sent: samples.len(),
                    failed: samples.iter().filter(|s| !s.ok).count(),
                    retried: samples.iter().filter(|s| s.attempts > 1).count(),
                    p50: percentile(&latencies, 0.5),
                    p99: percentile(&latencies, 0.99),
                }
            })
            .collect()
    }
}

/// How the deliveries are made and sent.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Each delivery pushes a commit of its own (Data Center's `toHash`,
    /// Cloud's `new.target.hash`) instead of the built-in body's.
    pub distinct_commits: bool,
    /// Sends a delivery again, under its request id, after a 5xx or no
    /// answer, for up to this long (zero: once only).
    pub retry_for: Duration,
    /// The request ids' prefix (`{prefix}-{n}`); a new uuid when none.
    pub run_id: Option<String>,
}

/// The built-in body of `event` with `commit` pushed instead of its own.
pub fn with_commit(mut body: Value, commit: &str) -> Value {
    if let Some(changes) = body["changes"].as_array_mut() {
        for change in changes {
            change["toHash"] = Value::from(commit);
        }
    }
    if let Some(changes) = body["push"]["changes"].as_array_mut() {
        for change in changes {
            if change["new"]["target"].is_object() {
                change["new"]["target"]["hash"] = Value::from(commit);
            }
        }
    }
    body
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

/// One delivery, sent again (same id, same body) after a 5xx or no answer,
/// as Bitbucket does, until `retry_for` has passed ([`retry::with_backoff`]).
async fn delivered(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    secret: &str,
    body: &[u8],
    id: &str,
    retry_for: Duration,
) -> (bool, Duration, u32) {
    let worth_retrying = |answer: &retry::Answer| answer.as_ref().map_or(true, |r| r.status().is_server_error());
    let send = || {
        let mut request = client.post(url).body(body.to_vec());
        for (name, value) in sender::headers(event, Some(secret), body, id) {
            request = request.header(name, value);
        }
        request.send()
    };
    let (answer, took, attempts) = retry::with_backoff(retry_for, worth_retrying, send).await;
    (matches!(answer, Ok(r) if r.status().is_success()), took, attempts)
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
            let mut samples = Vec::new();
            let mut n = 0u64;
            while started.elapsed() < duration {
                let at = started.elapsed();
                let id = format!("{run}-{c}-{n}");
                let (ok, took, _) = delivered(&client, &url, &event, &secret, &body, &id, Duration::ZERO).await;
                n += 1;
                samples.push(Sample { at, took, ok, attempts: 1 });
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        if let Ok(sent) = task.await {
            samples.extend(sent);
        }
    }
    Report::new(samples, started.elapsed().as_secs_f64())
}

/// `rate` deliveries a second for `duration`, whatever the answers' speed.
pub async fn open_loop(url: &str, secret: &str, event: &str, rate: u32, duration: Duration) -> Report {
    open_loop_with(url, secret, event, rate, duration, &Options::default()).await
}

/// [`open_loop`] with the soak's [`Options`].
pub async fn open_loop_with(
    url: &str,
    secret: &str,
    event: &str,
    rate: u32,
    duration: Duration,
    options: &Options,
) -> Report {
    let payload = sender::payload(event).unwrap_or_default();
    let same_body = serde_json::to_vec(&payload).unwrap_or_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap_or_default();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now();
    let run = options.run_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    // The commits' first 32 digits name the run, the last 8 the delivery.
    let commits = uuid::Uuid::new_v4().as_u128();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        let body = if options.distinct_commits {
            let commit = format!("{commits:032x}{:08x}", n as u32);
            serde_json::to_vec(&with_commit(payload.clone(), &commit)).unwrap_or_default()
        } else {
            same_body.clone()
        };
        let (client, url, secret, event, id, retry_for) = (
            client.clone(),
            url.to_owned(),
            secret.to_owned(),
            event.to_owned(),
            format!("{run}-{n}"),
            options.retry_for,
        );
        let at = started.elapsed();
        n += 1;
        tasks.push(tokio::spawn(async move {
            let (ok, took, attempts) = delivered(&client, &url, &event, &secret, &body, &id, retry_for).await;
            Sample { at, took, ok, attempts }
        }));
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    for task in tasks {
        if let Ok(sample) = task.await {
            samples.push(sample);
        }
    }
    Report::new(samples, seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_of_its_own_replaces_the_pushed_one_in_both_products_bodies() {
        let commit = "ab".repeat(20);
        let datacenter = with_commit(sender::payload("repo:refs_changed").unwrap(), &commit);
        assert_eq!(datacenter["changes"][0]["toHash"], commit.as_str());
        let cloud = with_commit(sender::payload("repo:push").unwrap(), &commit);
        assert_eq!(cloud["push"]["changes"][0]["new"]["target"]["hash"], commit.as_str());
    }

    #[test]
    fn windows_split_deliveries_by_when_they_were_first_sent() {
        let ms = Duration::from_millis;
        let sample = |at, took, ok, attempts| Sample { at: ms(at), took: ms(took), ok, attempts };
        let report =
            Report::new(vec![sample(10, 5, true, 1), sample(900, 7, true, 3), sample(1500, 40, false, 2)], 2.0);
        let windows = report.windows(Duration::from_secs(1));
        assert_eq!(windows.len(), 2);
        assert_eq!((windows[0].sent, windows[0].failed, windows[0].retried), (2, 0, 1));
        assert_eq!((windows[0].p50, windows[0].p99), (ms(7), ms(7)));
        assert_eq!((windows[1].start, windows[1].sent, windows[1].failed), (Duration::from_secs(1), 1, 1));
        assert_eq!((report.sent, report.failed, report.retried()), (3, 1, 2));
    }
}
