//! Posting a build status to a commit, on both products: the request each
//! expects, and its answer reduced to what the sender decides on (the
//! status code, Bitbucket's message, `Retry-After`). No secret reaches the
//! answer: the path logged is the API path, without host or query.

use std::time::Duration;

use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use url::Url;

use super::excerpt;
use crate::{
    config::Config,
    outbound::{self, ReadFailed},
    secret::Secret,
};

/// What a status says, in each product's words already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status<'a> {
    pub key: &'a str,
    /// `INPROGRESS`, `SUCCESSFUL`, `FAILED`, `STOPPED` or `CANCELLED`.
    pub state: &'static str,
    pub name: &'a str,
    pub url: &'a str,
    pub description: &'a str,
    /// The branch the commit was built on, without `refs/heads/`.
    pub branch: Option<&'a str>,
}

/// One call as the outbound log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `None`: no answer (the network, the timeout, an answer too large).
    pub status: Option<StatusCode>,
    /// Bitbucket's message (quoted at most 64 characters), or why there was no answer.
    pub message: Option<String>,
    /// How long Bitbucket asked to wait (429, 503).
    pub retry_after: Option<Duration>,
}

/// Data Center's current endpoint (8.x and later), with the branch as `ref`.
pub fn datacenter_current(project: &str, slug: &str, commit: &str, status: &Status<'_>) -> (Call, Value) {
    let mut body = datacenter_body(status);
    if let Some(branch) = status.branch {
        body["ref"] = json!(format!("refs/heads/{branch}"));
    }
    let path = format!("/rest/api/latest/projects/{project}/repos/{slug}/commits/{commit}/builds");
    (Call { method: "POST", path }, body)
}

/// The legacy endpoint of servers without the current one: no `ref`, and
/// no `CANCELLED` (the caller gives `FAILED`).
pub fn datacenter_legacy(commit: &str, status: &Status<'_>) -> (Call, Value) {
    (Call { method: "POST", path: format!("/rest/build-status/1.0/commits/{commit}") }, datacenter_body(status))
}

fn datacenter_body(status: &Status<'_>) -> Value {
    json!({"key": status.key, "state": status.state, "name": status.name, "url": status.url,
           "description": status.description})
}

/// Cloud: the bare branch name as `refname`.
pub fn cloud(workspace: &str, slug: &str, commit: &str, status: &Status<'_>) -> (Call, Value) {
    let mut body = json!({"key": status.key, "state": status.state, "name": status.name, "url": status.url,
                          "description": status.description});
    if let Some(branch) = status.branch {
        body["refname"] = json!(branch);
    }
    let path = format!("/2.0/repositories/{workspace}/{slug}/commit/{commit}/statuses/build");
    (Call { method: "POST", path }, body)
}

/// Sends `body` to `base` + `call.path` with the bearer token, within
/// `BITGATE_OUTBOUND_TIMEOUT`, reading at most one object's worth of answer.
pub async fn send(
    client: &reqwest::Client,
    config: &Config,
    base: &Url,
    call: &Call,
    token: &Secret<String>,
    body: &Value,
) -> Answer {
    let url = format!("{}{}", base.as_str().trim_end_matches('/'), call.path);
    let request =
        client.post(url).header(header::ACCEPT, "application/json").bearer_auth(token.expose()).json(body).send();
    let exchange = async {
        let response = request.await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = if status.is_redirection() {
            Vec::new()
        } else {
            outbound::read_body(response, outbound::MAX_ANSWER_BYTES).await?
        };
        Ok::<_, ReadFailed>((status, retry_after, body))
    };
    match tokio::time::timeout(config.outbound_timeout, exchange).await {
        Ok(Ok((status, retry_after, body))) => {
            let message = if status.is_success() { None } else { message_of(&body) };
            Answer { status: Some(status), message, retry_after }
        }
        Ok(Err(ReadFailed::TooLarge { limit })) => Answer {
            status: None,
            message: Some(format!("Bitbucket's answer was longer than {limit} bytes.")),
            retry_after: None,
        },
        Ok(Err(ReadFailed::Transport(error))) => Answer {
            status: None,
            message: Some(if error.is_timeout() {
                timed_out(config)
            } else {
                "Bitbucket could not be reached.".into()
            }),
            retry_after: None,
        },
        Err(_) => Answer { status: None, message: Some(timed_out(config)), retry_after: None },
    }
}

fn timed_out(config: &Config) -> String {
    format!("No answer within {} seconds (BITGATE_OUTBOUND_TIMEOUT).", config.outbound_timeout.as_secs())
}

/// Bitbucket's own message: Data Center's `errors[0].message`, Cloud's
/// `error.message`; quoted short, never echoed whole.
fn message_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = value["errors"][0]["message"].as_str().or_else(|| value["error"]["message"].as_str())?;
    Some(excerpt(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn status(branch: Option<&'static str>) -> Status<'static> {
        Status {
            key: "bg/abc/tracked",
            state: "SUCCESSFUL",
            name: "Bitgate: web (tracked)",
            url: "https://ci.example.com/runs/1",
            description: "Succeeded",
            branch,
        }
    }

    #[test]
    fn each_product_gets_its_path_and_its_branch_field() {
        let (call, body) = datacenter_current("OPS", "my-repo", SHA, &status(Some("main")));
        assert_eq!(call.path, format!("/rest/api/latest/projects/OPS/repos/my-repo/commits/{SHA}/builds"));
        assert_eq!(body["ref"], "refs/heads/main");
        let (call, body) = datacenter_legacy(SHA, &status(Some("main")));
        assert_eq!(call.path, format!("/rest/build-status/1.0/commits/{SHA}"));
        assert!(body.get("ref").is_none(), "the legacy endpoint knows no ref");
        let (call, body) = cloud("acme", "website", SHA, &status(Some("main")));
        assert_eq!(call.path, format!("/2.0/repositories/acme/website/commit/{SHA}/statuses/build"));
        assert_eq!((body["refname"].as_str(), body["key"].as_str()), (Some("main"), Some("bg/abc/tracked")));
        assert!(cloud("acme", "website", SHA, &status(None)).1.get("refname").is_none());
    }

    #[test]
    fn bitbucket_s_message_is_quoted_short() {
        let datacenter = br#"{"errors":[{"message":"Key is longer than 255 characters"}]}"#;
        assert_eq!(message_of(datacenter).as_deref(), Some("Key is longer than 255 characters"));
        let cloud = br#"{"type":"error","error":{"message":"key: Ensure this value has at most 40 characters"}}"#;
        assert!(message_of(cloud).unwrap().starts_with("key: Ensure"));
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "x".repeat(5000));
        assert!(message_of(long.as_bytes()).unwrap().chars().count() <= 70);
        assert_eq!(message_of(b"<html>"), None);
    }
}
