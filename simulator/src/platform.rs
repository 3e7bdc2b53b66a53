//! A stand-in for the platform that runs the stacks' work, so that the
//! offline demo closes the loop with no platform of one's own: it follows
//! Bitgate's events feed and, for each requested run, reports it queued,
//! running, then succeeded or failed, as a CI system would.
//!
//! A run fails when its pull request's title or its branch says `fail`
//! (Bitbucket's push payloads carry no commit message, so the demo's
//! person names a branch or a pull request to choose the outcome); a
//! follower inside the simulator ([`InProcess`], started from the platform
//! page) also reads the commit's message in the Data Center instance, so
//! that a commit pushed on the repository page saying `fail` fails.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// Where Bitgate is, and how to act in it.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Such as `http://127.0.0.1:3000`.
    pub bitgate_url: String,
    /// An API token with write on the stacks' spaces.
    pub token: String,
    /// Only this stack's events (all visible ones otherwise).
    pub stack: Option<String>,
    /// The cursor to follow from; the feed's end when left out.
    pub after: Option<String>,
    /// How long each state lasts before the next report.
    pub step: Duration,
}

/// What a follower inside the simulator has beside its [`Platform`]: the
/// record of its progress, which the platform page shows, and the Data
/// Center instance, whose commits' messages can ask for a failure.
#[derive(Debug, Clone)]
pub struct InProcess {
    pub progress: Arc<Mutex<Progress>>,
    pub datacenter: crate::datacenter::Shared,
}

/// What a follower inside the simulator has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Since when it has followed the feed without a failure (none: not
    /// reaching Bitgate yet, or not since the last error).
    pub following_since: Option<OffsetDateTime>,
    /// Runs reported to their end.
    pub runs_reported: u64,
    /// The last failure, and when: reaching Bitgate or reporting a run.
    pub last_error: Option<(OffsetDateTime, String)>,
}

/// How long a follower inside the simulator waits before it tries Bitgate
/// again (it may be starting, or restarting).
pub const RETRY: Duration = Duration::from_secs(3);

impl InProcess {
    fn note(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    /// The message of the event's commit, in the repository the event names.
    fn commit_message(&self, event: &Value) -> Option<String> {
        let repository = event["repository"]["id"].as_str()?.parse::<u64>().ok()?;
        let commit = event["commit"].as_str()?;
        let instance = self.datacenter.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        instance.commit(repository, commit).map(|c| c.message.clone())
    }
}

/// How a requested run ends: failed when its branch, its pull request's
/// title or its commit's message (when known) says `fail`, in any case.
pub fn fails(event: &Value, commit_message: Option<&str>) -> bool {
    let says = |text: &str| text.to_ascii_lowercase().contains("fail");
    event["branch"].as_str().is_some_and(says)
        || event["pull_request"]["title"].as_str().is_some_and(says)
        || commit_message.is_some_and(says)
}

/// The reports of one run, in order: `(state, summary)`.
pub fn reports(event: &Value, commit_message: Option<&str>) -> Vec<(&'static str, Option<String>)> {
    let branch = event["branch"].as_str().unwrap_or("?");
    let end = if fails(event, commit_message) {
        let why = "as its branch, pull request title or commit message asked";
        ("failed", Some(format!("Error: the demo platform failed `{branch}`, {why}.")))
    } else {
        ("succeeded", Some(format!("The demo platform ran `{branch}`: no changes.")))
    };
    vec![("queued", None), ("running", None), end]
}

impl Platform {
    /// Follows the feed from its end, forever; each requested run is
    /// reported in a task of its own. When Bitgate does not answer (it is
    /// restarting, its database is) it tries again every [`RETRY`] from
    /// where it was; it returns when Bitgate refuses the token.
    pub async fn follow(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let mut cursor = self.after.clone();
        loop {
            let Err(error) = self.follow_from(&client, &mut cursor, None).await;
            if error.downcast_ref::<Refused>().is_some() {
                return Err(error);
            }
            eprintln!("platform: {error:#}; trying again in {} s", RETRY.as_secs());
            tokio::time::sleep(RETRY).await;
        }
    }

    /// [`Self::follow`] inside the simulator: progress and failures are
    /// recorded in `within`, and after a failure it tries again, from where
    /// it was, every [`RETRY`]. Never returns: its task is aborted to stop it.
    pub async fn follow_in_process(&self, within: InProcess) {
        let client = reqwest::Client::new();
        let mut cursor = self.after.clone();
        loop {
            let Err(error) = self.follow_from(&client, &mut cursor, Some(&within)).await;
            within.note(|p| {
                p.following_since = None;
                p.last_error = Some((OffsetDateTime::now_utc(), format!("{error:#}")));
            });
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Follows from `cursor` (the feed's end when none), keeping it up to
    /// date, until reading the feed fails.
    async fn follow_from(
        &self,
        client: &reqwest::Client,
        cursor: &mut Option<String>,
        within: Option<&InProcess>,
    ) -> anyhow::Result<std::convert::Infallible> {
        if cursor.is_none() {
            *cursor = Some(self.head(client).await?);
        }
        // The first read answers at once, so that it is soon known whether Bitgate does.
        let mut wait = 0;
        loop {
            let after = cursor.clone().unwrap_or_default();
            let base = self.bitgate_url.trim_end_matches('/');
            let mut url = format!("{base}/api/v1/events?after={after}&wait={wait}");
            if let Some(stack) = &self.stack {
                url.push_str(&format!("&stack_id={stack}"));
            }
            let page = self.read(client, &url).await?;
            wait = 30;
            if let Some(within) = within {
                within.note(|p| {
                    p.following_since.get_or_insert_with(OffsetDateTime::now_utc);
                });
            }
            for event in page["items"].as_array().into_iter().flatten() {
                if event["type"] == "run.requested" && event["commit"].is_string() {
                    let (platform, client, event, within) =
                        (self.clone(), client.clone(), event.clone(), within.cloned());
                    tokio::spawn(async move {
                        let reported = platform
                            .run(&client, &event, within.as_ref())
                            .await
                            .map_err(|error| format!("reporting the run of event {} failed: {error:#}", event["id"]));
                        match (within, reported) {
                            (Some(within), Ok(())) => within.note(|p| p.runs_reported += 1),
                            (Some(within), Err(message)) => {
                                within.note(|p| p.last_error = Some((OffsetDateTime::now_utc(), message)));
                            }
                            (None, Err(message)) => eprintln!("platform: {message}"),
                            (None, Ok(())) => {}
                        }
                    });
                }
            }
            if let Some(next) = page["next_cursor"].as_str() {
                *cursor = Some(next.to_owned());
            }
        }
    }

    /// One page of the feed, or what went wrong in a person's words.
    async fn read(&self, client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
        let answer = client.get(url).bearer_auth(&self.token).send().await.map_err(|error| {
            let mut cause: &dyn std::error::Error = &error;
            while let Some(source) = cause.source() {
                cause = source;
            }
            anyhow!("Bitgate does not answer at {}: {cause}", self.bitgate_url)
        })?;
        match answer.status().as_u16() {
            401 => Err(Refused("Bitgate refused the token (401): use an API token from Bitgate's Tokens page.").into()),
            403 => Err(Refused("Bitgate refused the token (403): it may not read the stacks' events.").into()),
            status if !answer.status().is_success() => bail!("Bitgate answered {status} to {url}"),
            _ => Ok(answer.json().await?),
        }
    }

    /// The cursor at the feed's end: runs are requested from now on.
    async fn head(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let mut cursor = String::new();
        loop {
            let url = format!("{}/api/v1/events?after={cursor}&limit=100", self.bitgate_url.trim_end_matches('/'));
            let page = self.read(client, &url).await?;
            let next = page["next_cursor"].as_str().unwrap_or_default().to_owned();
            if page["items"].as_array().is_none_or(Vec::is_empty) {
                return Ok(next);
            }
            cursor = next;
        }
    }

    async fn run(&self, client: &reqwest::Client, event: &Value, within: Option<&InProcess>) -> anyhow::Result<()> {
        let (Some(stack), Some(key)) = (event["stack_id"].as_str(), event["id"].as_str()) else { return Ok(()) };
        let url = format!("{}/api/v1/stacks/{stack}/runs/demo-{key}", self.bitgate_url.trim_end_matches('/'));
        let title = match event["pull_request"]["id"].as_u64() {
            Some(id) => format!("Demo run of pull request #{id}"),
            None => format!("Demo run of {}", event["branch"].as_str().unwrap_or("?")),
        };
        let message = within.and_then(|w| w.commit_message(event));
        for (state, summary) in reports(event, message.as_deref()) {
            let mut body = json!({"commit": event["commit"], "kind": event["kind"], "state": state, "title": title,
                                  "summary": summary});
            if let Some(id) = event["pull_request"]["id"].as_u64() {
                body["pull_request_id"] = json!(id);
            }
            report(client, &url, &self.token, &body).await?;
            tokio::time::sleep(self.step).await;
        }
        Ok(())
    }
}

/// Bitgate refused the token: following again would not help.
#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

/// How long a report is tried again while Bitgate does not take it.
const REPORT_PATIENCE: Duration = Duration::from_secs(300);

/// Puts one report of a run, again after no answer, a 5xx or a 429 (a
/// restarting Bitgate, its database restarting), as a CI system's
/// reporter would, for [`REPORT_PATIENCE`] ([`crate::retry::with_backoff`]).
/// Bitgate takes the same report twice as once.
async fn report(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> anyhow::Result<()> {
    let transient = |answer: &crate::retry::Answer| {
        answer.as_ref().map_or(true, |r| r.status().is_server_error() || r.status().as_u16() == 429)
    };
    let send = || client.put(url).bearer_auth(token).json(body).send();
    let (answer, _, _) = crate::retry::with_backoff(REPORT_PATIENCE, transient, send).await;
    answer?.error_for_status()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_fails_when_its_branch_or_pull_request_says_so() {
        let push = json!({"branch": "main"});
        assert_eq!(
            reports(&push, None).iter().map(|(state, _)| *state).collect::<Vec<_>>(),
            ["queued", "running", "succeeded"]
        );
        assert!(fails(&json!({"branch": "feature/FAIL-fast"}), None));
        assert!(fails(&json!({"branch": "feature/x", "pull_request": {"title": "This will fail"}}), None));
        assert!(!fails(&json!({"branch": "feature/x", "pull_request": {"title": "Add the thing"}}), None));
        assert_eq!(reports(&json!({"branch": "fail"}), None)[2].0, "failed");
    }

    #[test]
    fn a_run_fails_when_its_commit_message_says_so() {
        let push = json!({"branch": "main", "commit": "0123456789abcdef0123456789abcdef01234567"});
        assert!(fails(&push, Some("Make it FAIL on purpose")));
        assert!(!fails(&push, Some("Works")));
        assert!(!fails(&push, None), "no message known: the branch and title decide");
        let (state, summary) = reports(&push, Some("this fails")).pop().unwrap_or_default();
        assert_eq!(state, "failed");
        assert!(summary.unwrap_or_default().contains("commit message"));
        assert_eq!(reports(&push, Some("Works"))[2].0, "succeeded");
    }

    #[test]
    fn a_follower_inside_the_simulator_reads_the_commit_message_of_the_events_repository() {
        let datacenter = std::sync::Arc::new(std::sync::RwLock::new(crate::DataCenter::sample()));
        let within = InProcess { progress: Arc::default(), datacenter };
        let event = |repository: &str, commit: &str| json!({"repository": {"id": repository}, "commit": commit});
        let head = "823b2230a56056231c9425d63758fa87078a66b4";
        assert_eq!(within.commit_message(&event("1", head)).as_deref(), Some("Describe the stacks in the README"));
        assert_eq!(within.commit_message(&event("2", head)), None, "another repository");
        assert_eq!(within.commit_message(&event("{uuid}", head)), None, "a Cloud repository");
    }
}
