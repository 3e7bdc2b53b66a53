//! The simulator's sender: real-shaped webhook bodies for every event key
//! Bitgate understands (Data Center and Cloud, as Atlassian documents them
//! and as ../shared/bitbucket-fixtures shows them), signed the way
//! Bitbucket signs them, and posted to a URL with Bitbucket's headers.
//! Tests use it as the project's own fixtures; the demo uses it to see
//! deliveries arrive without a Bitbucket. The Data Center builders take
//! what a body names (repository, branches, commits, pull request), so that
//! the simulator's repository page and webhooks send its own; [`payload`]
//! fills them with the sample's.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The sample repositories the bodies name (those of the simulator's instances).
pub const DATACENTER_REPOSITORY: (u64, &str, &str) = (1, "OPS", "my-repo");
pub const CLOUD_REPOSITORY: (&str, &str, &str) = ("{00000000-0000-4000-8000-000000001001}", "acme", "website");

/// Whether a key is one of Data Center's (its bodies carry `eventKey` too).
pub fn is_datacenter(event_key: &str) -> bool {
    event_key.starts_with("repo:refs_changed") || event_key.starts_with("pr:") || event_key == "diagnostics:ping"
}

/// A Data Center repository as bodies name it, its project with it.
#[derive(Debug, Clone, Copy)]
pub struct DcRepository<'a> {
    pub id: u64,
    pub slug: &'a str,
    pub name: &'a str,
    pub project_id: u64,
    pub project_key: &'a str,
    pub project_name: &'a str,
}

/// A Data Center user as bodies name them (the actor, an author).
#[derive(Debug, Clone, Copy)]
pub struct DcUser<'a> {
    pub id: u64,
    pub slug: &'a str,
    pub display_name: &'a str,
    pub email: &'a str,
}

/// One branch a push changed: `ADD` (from forty zeros), `UPDATE`, or
/// `DELETE` (to forty zeros).
#[derive(Debug, Clone, Copy)]
pub struct DcRefChange<'a> {
    pub branch: &'a str,
    pub from_hash: &'a str,
    pub to_hash: &'a str,
    pub change: &'a str,
}

/// A pull request as bodies name it: its refs with their latest commits.
#[derive(Debug, Clone, Copy)]
pub struct DcPullRequest<'a> {
    pub id: u64,
    pub version: u64,
    pub title: &'a str,
    /// `OPEN`, `MERGED` or `DECLINED`.
    pub state: &'a str,
    /// The source: its repository (the target's, or a fork), branch and head.
    pub from: (DcRepository<'a>, &'a str, &'a str),
    /// The target: its repository, branch and head.
    pub to: (DcRepository<'a>, &'a str, &'a str),
    pub author: DcUser<'a>,
    /// Once merged: the merge commit (`properties.mergeCommit`).
    pub merge_commit: Option<&'a str>,
    /// Milliseconds since the epoch.
    pub created_date: u64,
    pub updated_date: u64,
}

/// Forty zeros: the hash a created branch comes from and a deleted one goes to.
pub const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// The time of a Data Center body's `date`, as Bitbucket writes it
/// (`2026-11-30T08:00:00+0000`).
pub fn datacenter_date(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    at.format(&format).unwrap_or_default()
}

fn dc_repository_json(repository: &DcRepository) -> Value {
    json!({"slug": repository.slug, "id": repository.id, "name": repository.name, "scmId": "git",
           "state": "AVAILABLE", "statusMessage": "Available", "forkable": true, "public": false,
           "project": {"key": repository.project_key, "id": repository.project_id, "name": repository.project_name,
                       "public": false, "type": "NORMAL"}})
}

fn dc_user_json(user: &DcUser) -> Value {
    json!({"name": user.slug, "emailAddress": user.email, "id": user.id, "displayName": user.display_name,
           "active": true, "slug": user.slug, "type": "NORMAL"})
}

fn dc_ref_json(repository: &DcRepository, branch: &str, commit: &str) -> Value {
    json!({"id": format!("refs/heads/{branch}"), "displayId": branch, "latestCommit": commit,
           "repository": dc_repository_json(repository)})
}

fn dc_pull_request_json(pr: &DcPullRequest) -> Value {
    let ((from_repository, from_branch, from_commit), (to_repository, to_branch, to_commit)) = (pr.from, pr.to);
    let mut body = json!({"id": pr.id, "version": pr.version, "title": pr.title, "description": "", "state": pr.state,
           "open": pr.state == "OPEN", "closed": pr.state != "OPEN", "createdDate": pr.created_date,
           "updatedDate": pr.updated_date,
           "fromRef": dc_ref_json(&from_repository, from_branch, from_commit),
           "toRef": dc_ref_json(&to_repository, to_branch, to_commit),
           "locked": false,
           "author": {"user": dc_user_json(&pr.author), "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
           "reviewers": [], "participants": []});
    if let Some(commit) = pr.merge_commit {
        body["properties"] = json!({"mergeCommit": {"displayId": commit.get(..11).unwrap_or(commit), "id": commit}});
    }
    body
}

/// A Data Center push: `repo:refs_changed` with one change per branch.
pub fn datacenter_refs_changed(
    repository: &DcRepository,
    actor: &DcUser,
    date: &str,
    changes: &[DcRefChange],
) -> Value {
    let changes: Vec<Value> = changes
        .iter()
        .map(|change| {
            let ref_id = format!("refs/heads/{}", change.branch);
            json!({"ref": {"id": ref_id, "displayId": change.branch, "type": "BRANCH"}, "refId": ref_id,
                   "fromHash": change.from_hash, "toHash": change.to_hash, "type": change.change})
        })
        .collect();
    json!({"eventKey": "repo:refs_changed", "date": date, "actor": dc_user_json(actor),
           "repository": dc_repository_json(repository), "changes": changes})
}

/// A Data Center pull request event (`pr:…`): the pull request as it is
/// now, and the fields particular to the event in `extra` (such as
/// `previousFromHash` for `pr:from_ref_updated`).
pub fn datacenter_pull_request_event(
    event_key: &str,
    date: &str,
    actor: &DcUser,
    pull_request: &DcPullRequest,
    extra: Value,
) -> Value {
    let mut body = json!({"eventKey": event_key, "date": date, "actor": dc_user_json(actor),
                          "pullRequest": dc_pull_request_json(pull_request)});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// The sample's names: the simulator's OPS/my-repo and its `jcitizen`.
fn dc_repository() -> DcRepository<'static> {
    let (id, project_key, slug) = DATACENTER_REPOSITORY;
    DcRepository { id, slug, name: slug, project_id: 909, project_key, project_name: "Operations" }
}

fn dc_user() -> DcUser<'static> {
    DcUser { id: 101, slug: "jcitizen", display_name: "Jane Citizen", email: "jane@example.com" }
}

/// The sample date of the built-in bodies.
const SAMPLE_DATE: &str = "2026-11-30T08:00:00+0000";

/// The sender's pull request: #7, `feature/thing` into `main` of OPS/my-repo.
fn dc_pull_request(state: &str) -> DcPullRequest<'_> {
    DcPullRequest {
        id: 7,
        version: 1,
        title: "Add the thing",
        state,
        from: (dc_repository(), "feature/thing", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"),
        to: (dc_repository(), "main", "823b2230a56056231c9425d63758fa87078a66b4"),
        author: dc_user(),
        merge_commit: None,
        created_date: 1_700_000_000_000,
        updated_date: 1_700_000_100_000,
    }
}

/// A Data Center push changing `branch`: `ADD`, `UPDATE` or `DELETE`.
pub fn datacenter_push(branch: &str, change: &str) -> Value {
    let (from_hash, to_hash) = match change {
        "ADD" => (NO_COMMIT, "823b2230a56056231c9425d63758fa87078a66b4"),
        "DELETE" => ("823b2230a56056231c9425d63758fa87078a66b4", NO_COMMIT),
        _ => ("5c64a07cd6c0f21b753bf261ef059c7e7633c50a", "823b2230a56056231c9425d63758fa87078a66b4"),
    };
    let change = DcRefChange { branch, from_hash, to_hash, change };
    datacenter_refs_changed(&dc_repository(), &dc_user(), SAMPLE_DATE, &[change])
}

fn cloud_repository() -> Value {
    let (uuid, workspace, slug) = CLOUD_REPOSITORY;
    json!({"type": "repository", "uuid": uuid, "name": slug, "full_name": format!("{workspace}/{slug}"),
           "scm": "git", "is_private": true,
           "workspace": {"type": "workspace", "slug": workspace, "name": "Acme", "uuid": "{00000000-0000-4000-8000-000000000001}"},
           "project": {"type": "project", "key": "PROJ"},
           "links": {"html": {"href": format!("https://bitbucket.org/{workspace}/{slug}")}}})
}

fn cloud_actor() -> Value {
    json!({"type": "user", "display_name": "Ada Lovelace", "nickname": "ada", "username": "ada",
           "uuid": "{00000000-0000-4000-8000-000000000007}", "account_id": "557058:0f1c8a3e-7b7e-4f3f-9a1c-2b3c4d5e6f70"})
}

fn cloud_ref(name: &str, hash: &str) -> Value {
    json!({"type": "branch", "name": name, "target": {"type": "commit", "hash": hash}})
}

/// A Cloud push changing `branch`: `created`, `updated` or `deleted`.
pub fn cloud_push(branch: &str, change: &str) -> Value {
    let new =
        if change == "deleted" { Value::Null } else { cloud_ref(branch, "141977fedf5cf35aa290ac87d4b5177ac4cd9de1") };
    let old =
        if change == "created" { Value::Null } else { cloud_ref(branch, "507a576e59b3e4d8f5d1e9c0b2a3f4e5d6c7b8a9") };
    json!({"push": {"changes": [{"forced": false, "old": old, "new": new, "truncated": false, "commits": [],
                                 "created": change == "created", "closed": change == "deleted"}]},
           "repository": cloud_repository(), "actor": cloud_actor()})
}

fn cloud_pull_request(state: &str) -> Value {
    let repository = cloud_repository();
    json!({"type": "pullrequest", "id": 7, "title": "Add the thing", "description": "", "state": state,
           "author": cloud_actor(), "close_source_branch": false, "comment_count": 0, "task_count": 0,
           "source": {"branch": {"name": "feature/thing"}, "commit": {"hash": "a1b2c3d4e5f6"}, "repository": repository},
           "destination": {"branch": {"name": "main"}, "commit": {"hash": "141977fedf5c"}, "repository": cloud_repository()},
           "created_on": "2026-11-30T08:00:00.000000+00:00", "updated_on": "2026-11-30T08:01:00.000000+00:00",
           "reviewers": [], "participants": []})
}

/// The body Bitbucket sends for `event_key`, naming the sample repository;
/// `None` for a key neither product sends.
pub fn payload(event_key: &str) -> Option<Value> {
    let dc_pr = |state: &str, extra: Value| {
        datacenter_pull_request_event(event_key, SAMPLE_DATE, &dc_user(), &dc_pull_request(state), extra)
    };
    let cloud_pr = |state: &str, extra: Value| {
        let mut body =
            json!({"pullrequest": cloud_pull_request(state), "repository": cloud_repository(), "actor": cloud_actor()});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    Some(match event_key {
        "diagnostics:ping" => json!({"test": true}),
        "repo:refs_changed" => datacenter_push("main", "UPDATE"),
        "pr:opened" | "pr:from_ref_updated" | "pr:modified" => dc_pr("OPEN", json!({})),
        "pr:reviewer:approved" | "pr:reviewer:unapproved" => dc_pr(
            "OPEN",
            json!({"participant": {"user": dc_user_json(&dc_user()), "role": "REVIEWER", "approved": event_key.ends_with(":approved"), "status": "APPROVED"},
                   "previousStatus": "UNAPPROVED"}),
        ),
        "pr:merged" => dc_pr("MERGED", json!({})),
        "pr:declined" => dc_pr("DECLINED", json!({})),
        "pr:deleted" => dc_pr("OPEN", json!({})),
        "pr:comment:added" => dc_pr(
            "OPEN",
            json!({"comment": {"id": 17, "version": 0, "text": "Looks good", "author": dc_user_json(&dc_user())}}),
        ),
        "repo:push" => cloud_push("main", "updated"),
        "pullrequest:created" | "pullrequest:updated" => cloud_pr("OPEN", json!({})),
        "pullrequest:approved" | "pullrequest:unapproved" => {
            cloud_pr("OPEN", json!({"approval": {"date": "2026-11-30T08:02:00.000000+00:00", "user": cloud_actor()}}))
        }
        "pullrequest:fulfilled" => cloud_pr("MERGED", json!({})),
        "pullrequest:rejected" => cloud_pr("DECLINED", json!({})),
        "pullrequest:comment_created" => {
            cloud_pr("OPEN", json!({"comment": {"id": 17, "content": {"raw": "Looks good"}, "user": cloud_actor()}}))
        }
        _ => return None,
    })
}

/// `sha256=<hex>`: the HMAC-SHA256 of the body, keyed with the secret.
pub fn sign(secret: &str, body: &[u8]) -> String {
    #[allow(clippy::expect_used, reason = "HMAC takes keys of any length: new_from_slice cannot fail for it")]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The headers Bitbucket sends with a delivery (Cloud's request id header
/// is `X-Request-UUID`, Data Center's `X-Request-Id`).
pub fn headers(event_key: &str, secret: Option<&str>, body: &[u8], request_id: &str) -> Vec<(&'static str, String)> {
    let mut headers = vec![("content-type", "application/json".to_owned()), ("x-event-key", event_key.to_owned())];
    if is_datacenter(event_key) {
        headers.push(("x-request-id", request_id.to_owned()));
        headers.push(("user-agent", "Atlassian HttpClient 4.2.0 / Bitbucket-9.4.0".to_owned()));
    } else {
        headers.push(("x-request-uuid", request_id.to_owned()));
        headers.push(("x-hook-uuid", "{5f4b3c2a-1d0e-4f9a-8b7c-6d5e4f3a2b1c}".to_owned()));
        headers.push(("user-agent", "Bitbucket-Webhooks/2.0".to_owned()));
    }
    if let Some(secret) = secret {
        headers.push(("x-hub-signature", sign(secret, body)));
    }
    headers
}
