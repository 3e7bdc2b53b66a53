//! Bitbucket's webhook bodies, both products, turned into one shape: the
//! repository by its stable id and its name, the branches and tags a push
//! changed, the pull request and what happened to it, and who did it.
//! The event key (the `X-Event-Key` header) decides how a body is read; a
//! body that does not read as the event it names is malformed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::integrations::Provider;

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

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn missing(what: &str, key: &str) -> Malformed {
    Malformed(format!("the body of a {key} event has no {what}"))
}

/// Reads a delivery: `Ok(None)` for an event key Bitgate does not know.
pub fn normalize(provider: Provider, key: &str, body: &Value) -> Result<Option<Event>, Malformed> {
    if !body.is_object() {
        return Err(Malformed("the body is not a JSON object".into()));
    }
    match provider {
        Provider::DataCenter if DATACENTER_KEYS.contains(&key) => datacenter(key, body).map(Some),
        Provider::Cloud if CLOUD_KEYS.contains(&key) => cloud(key, body).map(Some),
        _ => Ok(None),
    }
}

fn datacenter_repository(value: &Value, key: &str) -> Result<RepositoryRef, Malformed> {
    let id = text(&value["id"]).ok_or_else(|| missing("repository id", key))?;
    let slug = text(&value["slug"]).ok_or_else(|| missing("repository slug", key))?;
    let project = text(&value["project"]["key"]).ok_or_else(|| missing("project key", key))?;
    Ok(RepositoryRef { id, name: format!("{project}/{slug}") })
}

fn datacenter(key: &str, body: &Value) -> Result<Event, Malformed> {
    let actor = text(&body["actor"]["name"]).or_else(|| text(&body["actor"]["slug"]));
    if key == "repo:refs_changed" {
        let repository = datacenter_repository(&body["repository"], key)?;
        let changes = body["changes"].as_array().ok_or_else(|| missing("changes", key))?;
        let refs = changes
            .iter()
            .map(|change| {
                let name = text(&change["ref"]["displayId"])
                    .or_else(|| text(&change["refId"]).map(|r| short_ref(&r)))
                    .ok_or_else(|| missing("ref name", key))?;
                let kind = match change["ref"]["type"].as_str() {
                    Some("TAG") => "tag",
                    _ if change["refId"].as_str().is_some_and(|r| r.starts_with("refs/tags/")) => "tag",
                    _ => "branch",
                };
                let action = match change["type"].as_str() {
                    Some("ADD") => "created",
                    Some("DELETE") => "deleted",
                    _ => "updated",
                };
                let commit = if action == "deleted" { None } else { text(&change["toHash"]) };
                Ok(RefChange { kind: kind.into(), name, action: action.into(), commit })
            })
            .collect::<Result<Vec<_>, Malformed>>()?;
        return Ok(Event { key: key.into(), repository, actor, refs, pull_request: None });
    }
    let pr = &body["pullRequest"];
    if !pr.is_object() {
        return Err(missing("pullRequest", key));
    }
    let id = pr["id"].as_u64().ok_or_else(|| missing("pull request id", key))?;
    let repository = datacenter_repository(&pr["toRef"]["repository"], key)?;
    let action = match key {
        "pr:opened" => "opened",
        "pr:from_ref_updated" => "updated",
        "pr:modified" => "modified",
        "pr:reviewer:approved" => "approved",
        "pr:reviewer:unapproved" => "unapproved",
        "pr:merged" => "merged",
        "pr:declined" => "declined",
        "pr:deleted" => "deleted",
        _ => "commented",
    };
    let pull_request = PullRequest {
        id,
        action: action.into(),
        source_branch: text(&pr["fromRef"]["displayId"]).ok_or_else(|| missing("source branch", key))?,
        target_branch: text(&pr["toRef"]["displayId"]).ok_or_else(|| missing("target branch", key))?,
        commit: text(&pr["fromRef"]["latestCommit"]),
        title: text(&pr["title"]),
        url: text(&pr["links"]["self"][0]["href"]),
    };
    Ok(Event { key: key.into(), repository, actor, refs: Vec::new(), pull_request: Some(pull_request) })
}

fn short_ref(full: &str) -> String {
    full.trim_start_matches("refs/heads/").trim_start_matches("refs/tags/").to_owned()
}

fn cloud_repository(value: &Value, key: &str) -> Result<RepositoryRef, Malformed> {
    let id = text(&value["uuid"]).ok_or_else(|| missing("repository uuid", key))?;
    let name = text(&value["full_name"]).ok_or_else(|| missing("repository full_name", key))?;
    Ok(RepositoryRef { id, name })
}

fn cloud(key: &str, body: &Value) -> Result<Event, Malformed> {
    let actor = ["username", "nickname", "display_name", "account_id"].iter().find_map(|f| text(&body["actor"][f]));
    let repository = cloud_repository(&body["repository"], key)?;
    if key == "repo:push" {
        let changes = body["push"]["changes"].as_array().ok_or_else(|| missing("push changes", key))?;
        let refs = changes
            .iter()
            .map(|change| {
                let (new, old) = (&change["new"], &change["old"]);
                let present = if new.is_object() { new } else { old };
                let name = text(&present["name"]).ok_or_else(|| missing("ref name", key))?;
                let kind = if present["type"].as_str() == Some("tag") { "tag" } else { "branch" };
                let action = match (old.is_object(), new.is_object()) {
                    (false, true) => "created",
                    (true, false) => "deleted",
                    _ => "updated",
                };
                Ok(RefChange { kind: kind.into(), name, action: action.into(), commit: text(&new["target"]["hash"]) })
            })
            .collect::<Result<Vec<_>, Malformed>>()?;
        return Ok(Event { key: key.into(), repository, actor, refs, pull_request: None });
    }
    let pr = &body["pullrequest"];
    if !pr.is_object() {
        return Err(missing("pullrequest", key));
    }
    let action = match key {
        "pullrequest:created" => "opened",
        "pullrequest:updated" => "updated",
        "pullrequest:approved" => "approved",
        "pullrequest:unapproved" => "unapproved",
        "pullrequest:fulfilled" => "merged",
        "pullrequest:rejected" => "declined",
        _ => "commented",
    };
    let pull_request = PullRequest {
        id: pr["id"].as_u64().ok_or_else(|| missing("pull request id", key))?,
        action: action.into(),
        source_branch: text(&pr["source"]["branch"]["name"]).ok_or_else(|| missing("source branch", key))?,
        target_branch: text(&pr["destination"]["branch"]["name"]).ok_or_else(|| missing("destination branch", key))?,
        commit: text(&pr["source"]["commit"]["hash"]),
        title: text(&pr["title"]),
        url: text(&pr["links"]["html"]["href"]),
    };
    Ok(Event { key: key.into(), repository, actor, refs: Vec::new(), pull_request: Some(pull_request) })
}
