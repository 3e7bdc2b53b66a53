//! Bitbucket Cloud's bodies: `repo:push` and the `pullrequest:` events
//! (what it sends: ../shared/bitbucket-fixtures/payloads/cloud).

use serde::Deserialize;

use super::{
    lenient::{Array, Count, Object, Text},
    missing, Event, Malformed, PullRequest, RefChange, RepositoryRef,
};

/// The fields Bitgate reads, whichever event the key names.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Body {
    actor: Object<Actor>,
    repository: Object<Repository>,
    push: Object<Push>,
    pullrequest: Object<PullRequestBody>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Actor {
    username: Text,
    nickname: Text,
    display_name: Text,
    account_id: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Repository {
    uuid: Text,
    full_name: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Push {
    changes: Array<Object<Change>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Change {
    new: Object<RefState>,
    old: Object<RefState>,
}

/// A branch or tag before or after the push.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RefState {
    name: Text,
    #[serde(rename = "type")]
    kind: Text,
    target: Object<Commit>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Commit {
    hash: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PullRequestBody {
    id: Count,
    title: Text,
    source: Object<End>,
    destination: Object<End>,
    links: Object<Links>,
}

/// The source or the destination of a pull request.
#[derive(Deserialize, Default)]
#[serde(default)]
struct End {
    branch: Object<Branch>,
    commit: Object<Commit>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Branch {
    name: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Links {
    html: Object<Link>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Link {
    href: Text,
}

pub(super) fn read(key: &str, body: Body) -> Result<Event, Malformed> {
    let actor = body.actor.0.and_then(|a| a.username.0.or(a.nickname.0).or(a.display_name.0).or(a.account_id.0));
    let repository = body.repository.0.unwrap_or_default();
    let id = repository.uuid.0.ok_or_else(|| missing("repository uuid", key))?;
    let name = repository.full_name.0.ok_or_else(|| missing("repository full_name", key))?;
    let repository = RepositoryRef { id, name };
    if key == "repo:push" {
        let changes = body.push.0.and_then(|push| push.changes.0).ok_or_else(|| missing("push changes", key))?;
        let refs = changes
            .into_iter()
            .map(|change| ref_change(change.0.unwrap_or_default(), key))
            .collect::<Result<Vec<_>, Malformed>>()?;
        return Ok(Event { key: key.into(), repository, actor, refs, pull_request: None });
    }
    let pr = body.pullrequest.0.ok_or_else(|| missing("pullrequest", key))?;
    let action = match key {
        "pullrequest:created" => "opened",
        "pullrequest:updated" => "updated",
        "pullrequest:approved" => "approved",
        "pullrequest:unapproved" => "unapproved",
        "pullrequest:fulfilled" => "merged",
        "pullrequest:rejected" => "declined",
        _ => "commented",
    };
    let (source, destination) = (pr.source.0.unwrap_or_default(), pr.destination.0.unwrap_or_default());
    let pull_request = PullRequest {
        id: pr.id.0.ok_or_else(|| missing("pull request id", key))?,
        action: action.into(),
        source_branch: source.branch.0.and_then(|b| b.name.0).ok_or_else(|| missing("source branch", key))?,
        target_branch: destination.branch.0.and_then(|b| b.name.0).ok_or_else(|| missing("destination branch", key))?,
        commit: source.commit.0.and_then(|c| c.hash.0),
        title: pr.title.0,
        url: pr.links.0.and_then(|links| links.html.0?.href.0),
    };
    Ok(Event { key: key.into(), repository, actor, refs: Vec::new(), pull_request: Some(pull_request) })
}

fn ref_change(change: Change, key: &str) -> Result<RefChange, Malformed> {
    let Change { new, old } = change;
    let action = match (old.0.is_some(), new.0.is_some()) {
        (false, true) => "created",
        (true, false) => "deleted",
        _ => "updated",
    };
    let commit = new.get().and_then(|n| n.target.get()).and_then(|target| target.hash.0.clone());
    // What the ref is: as it is now, or as it was before it was deleted.
    let present = new.0.or(old.0).unwrap_or_default();
    let name = present.name.0.ok_or_else(|| missing("ref name", key))?;
    let kind = if present.kind.get() == Some("tag") { "tag" } else { "branch" };
    Ok(RefChange { kind: kind.into(), name, action: action.into(), commit })
}
