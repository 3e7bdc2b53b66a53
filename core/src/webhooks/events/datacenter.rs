//! Bitbucket Data Center's bodies: `repo:refs_changed` and the `pr:` events
//! (what it sends: ../shared/bitbucket-fixtures/payloads/datacenter).

use serde::Deserialize;

use super::{
    lenient::{Array, Count, Object, Text},
    missing, Event, Malformed, PullRequest, RefChange, RepositoryRef,
};

/// The fields Bitgate reads, whichever event the key names.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Body {
    actor: Object<Actor>,
    repository: Object<Repository>,
    changes: Array<Object<Change>>,
    pull_request: Object<PullRequestBody>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Actor {
    name: Text,
    slug: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Repository {
    id: Text,
    slug: Text,
    project: Object<Project>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Project {
    key: Text,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Change {
    #[serde(rename = "ref")]
    reference: Object<Ref>,
    ref_id: Text,
    #[serde(rename = "type")]
    kind: Text,
    to_hash: Text,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Ref {
    display_id: Text,
    #[serde(rename = "type")]
    kind: Text,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PullRequestBody {
    id: Count,
    title: Text,
    from_ref: Object<PullRequestRef>,
    to_ref: Object<PullRequestRef>,
    links: Object<Links>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PullRequestRef {
    display_id: Text,
    latest_commit: Text,
    repository: Object<Repository>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Links {
    #[serde(rename = "self")]
    pages: Array<Object<Link>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Link {
    href: Text,
}

fn repository(repository: Option<&Repository>, key: &str) -> Result<RepositoryRef, Malformed> {
    let field = |read: fn(&Repository) -> Option<&str>| repository.and_then(read).map(str::to_owned);
    let id = field(|r| r.id.get()).ok_or_else(|| missing("repository id", key))?;
    let slug = field(|r| r.slug.get()).ok_or_else(|| missing("repository slug", key))?;
    let project = field(|r| r.project.get()?.key.get()).ok_or_else(|| missing("project key", key))?;
    Ok(RepositoryRef { id, name: format!("{project}/{slug}") })
}

pub(super) fn read(key: &str, body: Body) -> Result<Event, Malformed> {
    let actor = body.actor.0.and_then(|a| a.name.0.or(a.slug.0));
    if key == "repo:refs_changed" {
        let repository = repository(body.repository.get(), key)?;
        let changes = body.changes.0.ok_or_else(|| missing("changes", key))?;
        let refs = changes
            .into_iter()
            .map(|change| ref_change(change.0.unwrap_or_default(), key))
            .collect::<Result<Vec<_>, Malformed>>()?;
        return Ok(Event { key: key.into(), repository, actor, refs, pull_request: None });
    }
    let pr = body.pull_request.0.ok_or_else(|| missing("pullRequest", key))?;
    let id = pr.id.0.ok_or_else(|| missing("pull request id", key))?;
    let to = pr.to_ref.0.unwrap_or_default();
    let from = pr.from_ref.0.unwrap_or_default();
    let repository = repository(to.repository.get(), key)?;
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
    let first_page = pr.links.0.and_then(|links| links.pages.0?.into_iter().next()?.0);
    let pull_request = PullRequest {
        id,
        action: action.into(),
        source_branch: from.display_id.0.ok_or_else(|| missing("source branch", key))?,
        target_branch: to.display_id.0.ok_or_else(|| missing("target branch", key))?,
        commit: from.latest_commit.0,
        title: pr.title.0,
        url: first_page.and_then(|link| link.href.0),
    };
    Ok(Event { key: key.into(), repository, actor, refs: Vec::new(), pull_request: Some(pull_request) })
}

fn ref_change(change: Change, key: &str) -> Result<RefChange, Malformed> {
    let reference = change.reference.0.unwrap_or_default();
    let ref_id = change.ref_id.get();
    let name = reference.display_id.0.or_else(|| ref_id.map(short_ref)).ok_or_else(|| missing("ref name", key))?;
    let kind = match reference.kind.get() {
        Some("TAG") => "tag",
        _ if ref_id.is_some_and(|r| r.starts_with("refs/tags/")) => "tag",
        _ => "branch",
    };
    let action = match change.kind.get() {
        Some("ADD") => "created",
        Some("DELETE") => "deleted",
        _ => "updated",
    };
    let commit = if action == "deleted" { None } else { change.to_hash.0 };
    Ok(RefChange { kind: kind.into(), name, action: action.into(), commit })
}

fn short_ref(full: &str) -> String {
    full.trim_start_matches("refs/heads/").trim_start_matches("refs/tags/").to_owned()
}
