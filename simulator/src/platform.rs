//! A stand-in for the platform that runs the stacks' work, so that the
//! offline demo closes the loop with no platform of one's own: it follows
//! Bitgate's events feed and, for each requested run, reports it queued,
//! running, then succeeded or failed, as a CI system would.
//!
//! A run fails when its pull request's title or its branch says `fail`
//! (Bitbucket's push payloads carry no commit message, so the demo's
//! person names a branch or a pull request to choose the outcome).

use std::time::Duration;

use serde_json::{json, Value};

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

/// How a requested run ends.
pub fn fails(event: &Value) -> bool {
    let says = |value: &Value| value.as_str().is_some_and(|text| text.to_ascii_lowercase().contains("fail"));
    says(&event["branch"]) || says(&event["pull_request"]["title"])
}

/// The reports of one run, in order: `(state, summary)`.
pub fn reports(event: &Value) -> Vec<(&'static str, Option<String>)> {
    let branch = event["branch"].as_str().unwrap_or("?");
    let end = if fails(event) {
        ("failed", Some(format!("Error: the demo platform failed `{branch}`, as its name asked.")))
    } else {
        ("succeeded", Some(format!("The demo platform ran `{branch}`: no changes.")))
    };
    vec![("queued", None), ("running", None), end]
}

impl Platform {
    /// Follows the feed from its end, forever; each requested run is
    /// reported in a task of its own.
    pub async fn follow(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let mut cursor = match &self.after {
            Some(after) => after.clone(),
            None => self.head(&client).await?,
        };
        loop {
            let mut url = format!("{}/api/v1/events?after={cursor}&wait=30", self.bitgate_url.trim_end_matches('/'));
            if let Some(stack) = &self.stack {
                url.push_str(&format!("&stack_id={stack}"));
            }
            let page: Value =
                client.get(&url).bearer_auth(&self.token).send().await?.error_for_status()?.json().await?;
            for event in page["items"].as_array().into_iter().flatten() {
                if event["type"] == "run.requested" && event["commit"].is_string() {
                    let (platform, client, event) = (self.clone(), client.clone(), event.clone());
                    tokio::spawn(async move {
                        if let Err(error) = platform.run(&client, &event).await {
                            eprintln!("platform: reporting the run of event {} failed: {error}", event["id"]);
                        }
                    });
                }
            }
            cursor = page["next_cursor"].as_str().unwrap_or(&cursor).to_owned();
        }
    }

    /// The cursor at the feed's end: runs are requested from now on.
    async fn head(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let mut cursor = String::new();
        loop {
            let url = format!("{}/api/v1/events?after={cursor}&limit=100", self.bitgate_url.trim_end_matches('/'));
            let page: Value =
                client.get(&url).bearer_auth(&self.token).send().await?.error_for_status()?.json().await?;
            let next = page["next_cursor"].as_str().unwrap_or_default().to_owned();
            if page["items"].as_array().is_none_or(Vec::is_empty) {
                return Ok(next);
            }
            cursor = next;
        }
    }

    async fn run(&self, client: &reqwest::Client, event: &Value) -> anyhow::Result<()> {
        let (Some(stack), Some(key)) = (event["stack_id"].as_str(), event["id"].as_str()) else { return Ok(()) };
        let url = format!("{}/api/v1/stacks/{stack}/runs/demo-{key}", self.bitgate_url.trim_end_matches('/'));
        let title = match event["pull_request"]["id"].as_u64() {
            Some(id) => format!("Demo run of pull request #{id}"),
            None => format!("Demo run of {}", event["branch"].as_str().unwrap_or("?")),
        };
        for (state, summary) in reports(event) {
            let mut body = json!({"commit": event["commit"], "kind": event["kind"], "state": state, "title": title,
                                  "summary": summary});
            if let Some(id) = event["pull_request"]["id"].as_u64() {
                body["pull_request_id"] = json!(id);
            }
            client.put(&url).bearer_auth(&self.token).json(&body).send().await?.error_for_status()?;
            tokio::time::sleep(self.step).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_fails_when_its_branch_or_pull_request_says_so() {
        let push = json!({"branch": "main"});
        assert_eq!(
            reports(&push).iter().map(|(state, _)| *state).collect::<Vec<_>>(),
            ["queued", "running", "succeeded"]
        );
        assert!(fails(&json!({"branch": "feature/FAIL-fast"})));
        assert!(fails(&json!({"branch": "feature/x", "pull_request": {"title": "This will fail"}})));
        assert!(!fails(&json!({"branch": "feature/x", "pull_request": {"title": "Add the thing"}})));
        assert_eq!(reports(&json!({"branch": "fail"}))[2].0, "failed");
    }
}
