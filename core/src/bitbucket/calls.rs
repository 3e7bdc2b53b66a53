//! One call to Bitbucket's REST API on the platform loop's behalf, and its
//! answer reduced to what the sender decides on: the status code,
//! Bitbucket's message, `Retry-After`, and the body of a success. No secret
//! reaches the answer: the path logged is the API path, without host, and
//! the message is quoted short.

use std::time::Duration;

use reqwest::{header, Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::{
    datacenter::{oauth1, Auth},
    excerpt,
};
use crate::{
    config::Config,
    outbound::{self, ReadFailed},
    telemetry,
};

/// One call as the outbound log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub kind: CallKind,
    pub method: &'static str,
    pub path: String,
}

/// What a call is for (its metrics' label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    BuildStatus,
    Comment,
    Webhook,
    BranchHeads,
    Commit,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::BuildStatus => "build_status",
            CallKind::Comment => "comment",
            CallKind::Webhook => "webhook",
            CallKind::BranchHeads => "branch_heads",
            CallKind::Commit => "commit",
        }
    }
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
    /// A success's JSON body (a created comment's id and version, a page).
    pub body: Option<Value>,
    /// Why an OAuth 1.0a link's signed call was refused (`oauth_problem`).
    pub oauth_problem: Option<String>,
}

impl Answer {
    /// An answer made up where no call was made.
    pub fn made_up(status: Option<StatusCode>, message: String) -> Self {
        Self { status, message: Some(message), retry_after: None, body: None, oauth_problem: None }
    }
}

/// Sends `call` (with `body` as JSON, if any) to `base` + `call.path`,
/// authenticated by `auth`, within `BITGATE_OUTBOUND_TIMEOUT`, reading at
/// most one page's worth of answer.
pub async fn send(
    client: &reqwest::Client,
    config: &Config,
    base: &Url,
    call: &Call,
    auth: Auth<'_>,
    body: Option<&Value>,
) -> Answer {
    let url = format!("{}{}", base.as_str().trim_end_matches('/'), call.path);
    let method = Method::from_bytes(call.method.as_bytes()).unwrap_or(Method::POST);
    let mut request = client.request(method, url).header(header::ACCEPT, "application/json");
    if let Some(body) = body {
        request = request.json(body);
    }
    let exchange = async {
        let mut request = request.build()?;
        auth.sign(&mut request);
        let response = client.execute(request).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let headers = response.headers().clone();
        let body = if status.is_redirection() {
            Vec::new()
        } else {
            outbound::read_body(response, outbound::MAX_PAGE_BYTES).await?
        };
        let oauth_problem = match auth {
            Auth::OAuth1(..) if !status.is_success() => oauth1::problem_in(&headers, &body),
            _ => None,
        };
        Ok::<_, ReadFailed>((status, retry_after, body, oauth_problem))
    };
    let started = std::time::Instant::now();
    let answer = answer_of(tokio::time::timeout(config.outbound_timeout, exchange).await, auth, config);
    telemetry::outbound_call(call.kind.as_str(), answer.status.map(|s| s.as_u16()), started.elapsed());
    answer
}

type Exchanged =
    Result<Result<(StatusCode, Option<Duration>, Vec<u8>, Option<String>), ReadFailed>, tokio::time::error::Elapsed>;

fn answer_of(exchanged: Exchanged, auth: Auth<'_>, config: &Config) -> Answer {
    match exchanged {
        Ok(Ok((status, retry_after, body, oauth_problem))) => {
            let (message, body) = match (&oauth_problem, auth) {
                _ if status.is_success() => (None, serde_json::from_slice(&body).ok()),
                // Said as what to fix: Bitbucket's own words are a form body.
                (Some(problem), Auth::OAuth1(consumer, _)) => {
                    (Some(oauth1::explain(Some(problem), status.as_u16(), &consumer.key)), None)
                }
                _ => (message_of(&body), None),
            };
            Answer { status: Some(status), message, retry_after, body, oauth_problem }
        }
        Ok(Err(ReadFailed::TooLarge { limit })) => {
            Answer::made_up(None, format!("Bitbucket's answer was longer than {limit} bytes."))
        }
        Ok(Err(ReadFailed::Transport(error))) => Answer::made_up(
            None,
            if error.is_timeout() { timed_out(config) } else { "Bitbucket could not be reached.".into() },
        ),
        Err(_) => Answer::made_up(None, timed_out(config)),
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
