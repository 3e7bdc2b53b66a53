//! Sending again after a passing failure, as Bitbucket resends a delivery
//! and a CI system's reporter resends a report: 1 s, then twice as long
//! each time, at most 10 s, for as long as one is patient.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// An answer: the response, or why none came.
pub type Answer = Result<reqwest::Response, reqwest::Error>;

/// The last answer of `send`, sent again while `passing(&answer)` says the
/// failure may pass and `patience` is not spent; with how long that last
/// attempt took and how many attempts there were.
pub async fn with_backoff<S, F>(
    patience: Duration,
    passing: impl Fn(&Answer) -> bool,
    send: S,
) -> (Answer, Duration, u32)
where
    S: Fn() -> F,
    F: Future<Output = Answer>,
{
    let first = Instant::now();
    let mut pause = Duration::from_secs(1);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let started = Instant::now();
        let answer = send().await;
        let took = started.elapsed();
        if !passing(&answer) || first.elapsed() + pause > patience {
            return (answer, took, attempts);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_passing_failure_is_sent_again_until_patience_is_spent_and_a_lasting_one_once() {
        // A port nobody listens on: every attempt fails at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let client = reqwest::Client::new();
        let send = || client.get(format!("http://{closed}/")).send();
        let (answer, _, attempts) = with_backoff(Duration::from_millis(1500), |_| true, send).await;
        assert!(answer.is_err());
        assert_eq!(attempts, 2, "at once, after 1 s; the next (2 s later) would pass the patience");
        let (_, _, attempts) = with_backoff(Duration::from_secs(60), |_| false, send).await;
        assert_eq!(attempts, 1, "a failure that will not pass is not sent again");
    }
}
