//! Bitbucket's webhook bodies, both products, turned into one shape: the
//! repository by its stable id and its name, the branches and tags a push
//! changed, the pull request and what happened to it, and who did it.
//! The event key (the `X-Event-Key` header) decides how a body is read; a
//! body that does not read as the event it names is malformed.
//!
//! Each product's bodies are read in a module of their own, through the
//! forgiving readings of [`lenient`]: only the fields an event needs.

mod cloud;
mod datacenter;
mod lenient;

use serde::{de::IgnoredAny, Deserialize, Serialize};

use crate::integrations::Provider;
use lenient::Object;

/// Every event key Bitgate understands, per provider (SPEC.md's trigger table).
pub const DATACENTER_KEYS: [&str; 10] = [
    "repo:refs_changed",
    "pr:opened",
    "pr:from_ref_updated",
    "pr:modified",
    "pr:reviewer:approved",
    "pr:reviewer:unapproved",
    "pr:merged",
    "pr:declined",
    "pr:deleted",
    "pr:comment:added",
];
pub const CLOUD_KEYS: [&str; 8] = [
    "repo:push",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:approved",
    "pullrequest:unapproved",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
];
/// Bitbucket Data Center's "Test connection".
pub const PING: &str = "diagnostics:ping";

/// A repository as the event names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRef {
    /// The Data Center repository id, the Cloud repository UUID (what stacks keep).
    pub id: String,
    /// `PRJ/my-repo`, `workspace/my-repo`.
    pub name: String,
}

/// A branch or tag a push changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefChange {
    /// `branch` or `tag`.
    pub kind: String,
    pub name: String,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    /// The commit it points to now (none once deleted).
    pub commit: Option<String>,
}

/// A pull request event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub id: u64,
    /// `opened`, `updated`, `modified`, `approved`, `unapproved`, `merged`,
    /// `declined`, `deleted`, `commented`.
    pub action: String,
    pub source_branch: String,
    pub target_branch: String,
    /// The source's latest commit, when the body says.
    pub commit: Option<String>,
    /// Its title and its page in Bitbucket, when the body says (deliveries
    /// stored before they were read have neither).
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// One delivery's meaning, whatever the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub key: String,
    pub repository: RepositoryRef,
    pub actor: Option<String>,
    /// Pushes: what changed (empty for pull requests).
    pub refs: Vec<RefChange>,
    pub pull_request: Option<PullRequest>,
}

/// Why a body does not read as the event its key names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn missing(what: &str, key: &str) -> Malformed {
    Malformed(format!("the body of a {key} event has no {what}"))
}

/// Reads a delivery's body, the JSON text Bitbucket sent: `Ok(None)` for
/// an event key Bitgate does not know (the body must still be a JSON object).
pub fn normalize(provider: Provider, key: &str, body: &str) -> Result<Option<Event>, Malformed> {
    match provider {
        Provider::DataCenter if DATACENTER_KEYS.contains(&key) => datacenter::read(key, parse(body)?).map(Some),
        Provider::Cloud if CLOUD_KEYS.contains(&key) => cloud::read(key, parse(body)?).map(Some),
        _ => parse::<IgnoredAny>(body).map(|_| None),
    }
}

/// The body as a JSON object read as `T`. JSON leaves a field named twice
/// open to any reading, so a body that repeats a field Bitgate reads is
/// malformed rather than read either way.
fn parse<'a, T: Deserialize<'a>>(body: &'a str) -> Result<T, Malformed> {
    match serde_json::from_str::<Object<T>>(body) {
        Ok(Object(Some(object))) => Ok(object),
        Ok(Object(None)) => Err(Malformed("the body is not a JSON object".into())),
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(Malformed(e.to_string())),
        Err(e) => Err(Malformed(format!("not JSON: {e}"))),
    }
}
