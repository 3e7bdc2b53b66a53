//! Build statuses on commits, as Data Center keeps them: one per
//! (repository, commit, key), overwritten by the same key. Two endpoints:
//! the repository-scoped one (`/rest/api/{latest|1.0}/projects/…/commits/
//! {id}/builds`, REPO_READ, `ref`, CANCELLED) and the legacy one
//! (`/rest/build-status/1.0/commits/{id}`, deprecated in 7.14: no
//! repository, so every repository holding the commit shows the status; three
//! states only). The limits and answers are Atlassian's documented ones
//! (bitbucket-next.md §1a, §1b); the messages' exact words are ours.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{as_user, caller, epoch_millis, invalid, not_permitted, paged, read, repository_reader, write};
use super::{PageQuery, Shared};
use crate::escape;

/// A build status as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStatus {
    /// `None` for one posted to the legacy endpoint, which names no repository.
    pub repository_id: Option<u64>,
    pub commit: String,
    pub key: String,
    /// `INPROGRESS`, `SUCCESSFUL`, `FAILED`, `CANCELLED` or `UNKNOWN`.
    pub state: String,
    pub name: String,
    pub description: String,
    pub url: String,
    /// `refs/heads/…`, when given (current endpoint only).
    pub ref_name: Option<String>,
    /// Who posted it last (the token's owner).
    pub author: String,
    pub date_added: u64,
}

impl BuildStatus {
    fn json(&self) -> Value {
        json!({
            "key": self.key, "state": self.state, "name": self.name, "description": self.description,
            "url": self.url, "ref": self.ref_name, "dateAdded": self.date_added,
        })
    }
}

/// States of the current endpoint; the legacy one takes the first three.
const STATES: [&str; 5] = ["SUCCESSFUL", "FAILED", "INPROGRESS", "CANCELLED", "UNKNOWN"];
const LEGACY_STATES: [&str; 3] = ["SUCCESSFUL", "FAILED", "INPROGRESS"];
const MAX_FIELD: usize = 255;
const MAX_URL: usize = 450;

#[derive(Debug, Deserialize)]
struct Posted {
    key: Option<String>,
    state: Option<String>,
    url: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "ref")]
    ref_name: Option<String>,
}

fn is_commit(text: &str) -> bool {
    text.len() == 40 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The body's checks, in Bitbucket's order; the status to store, or the
/// 400 that refuses it.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn checked(body: &str, commit: &str, legacy: bool) -> Result<Posted, Response> {
    if !is_commit(commit) {
        return Err(invalid("commitId", &format!("{commit} is not a valid commit hash.")));
    }
    let posted: Posted =
        serde_json::from_str(body).map_err(|_| invalid("body", "The request body is not a build status."))?;
    let key = posted.key.as_deref().unwrap_or_default();
    if key.trim().is_empty() || key.chars().count() > MAX_FIELD {
        return Err(invalid("key", "The key must be non-blank and at most 255 characters."));
    }
    let states: &[&str] = if legacy { &LEGACY_STATES } else { &STATES };
    if !posted.state.as_deref().is_some_and(|s| states.contains(&s)) {
        return Err(invalid("state", &format!("The state must be one of {}.", states.join(", "))));
    }
    let url = posted.url.as_deref().unwrap_or_default();
    if url.trim().is_empty() || url.chars().count() > MAX_URL {
        return Err(invalid("url", "The url must be non-blank and at most 450 characters."));
    }
    let long = |field: &Option<String>| field.as_deref().is_some_and(|f| f.chars().count() > MAX_FIELD);
    if long(&posted.name) || long(&posted.description) {
        return Err(invalid("name", "The name and description must be at most 255 characters."));
    }
    if posted.ref_name.as_deref().is_some_and(|r| !r.starts_with("refs/") || r.contains("..")) {
        return Err(invalid("ref", "The ref must be a fully qualified ref, such as refs/heads/main."));
    }
    Ok(posted)
}

fn store(state: &Shared, repository_id: Option<u64>, commit: &str, posted: Posted, author: &str) {
    let status = BuildStatus {
        repository_id,
        commit: commit.to_lowercase(),
        key: posted.key.unwrap_or_default(),
        state: posted.state.unwrap_or_default(),
        name: posted.name.unwrap_or_default(),
        description: posted.description.unwrap_or_default(),
        url: posted.url.unwrap_or_default(),
        ref_name: posted.ref_name,
        author: author.to_owned(),
        date_added: epoch_millis(),
    };
    let mut instance = write(state);
    let identity = (status.repository_id, status.commit.clone(), status.key.clone());
    match instance.build_status_index.get(&identity).copied() {
        Some(at) => instance.build_statuses[at] = status,
        None => {
            let at = instance.build_statuses.len();
            instance.build_statuses.push(status);
            instance.build_status_index.insert(identity, at);
        }
    }
}

/// Where the current endpoint is missing (an older server), Bitbucket's
/// REST layer answers 404 for the unknown resource (its exact body is
/// UNVERIFIED; Bitgate only needs the status).
fn missing_resource() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn post_current(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, commit)): Path<(String, String, String)>,
    body: String,
) -> Response {
    let instance = read(&state);
    if !instance.builds_endpoint {
        return missing_resource();
    }
    let (token, repository) = match repository_reader(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match checked(&body, &commit, false) {
        Ok(posted) => {
            drop(instance);
            store(&state, Some(repository.id), &commit, posted, &token.owner);
            as_user(&Some(token), StatusCode::NO_CONTENT)
        }
        Err(refused) => refused,
    }
}

#[derive(Debug, Deserialize)]
struct KeyQuery {
    key: Option<String>,
    start: Option<usize>,
    limit: Option<usize>,
}

async fn get_current(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, commit)): Path<(String, String, String)>,
    Query(query): Query<KeyQuery>,
) -> Response {
    let instance = read(&state);
    if !instance.builds_endpoint {
        return missing_resource();
    }
    let (token, repository) = match repository_reader(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let commit = commit.to_lowercase();
    let values = instance
        .build_statuses
        .iter()
        .filter(|s| s.repository_id == Some(repository.id) && s.commit == commit)
        .filter(|s| query.key.as_deref().is_none_or(|k| k == s.key))
        .map(BuildStatus::json)
        .collect();
    let page = PageQuery { start: query.start, limit: query.limit, name: None };
    as_user(&Some(token), Json(paged(values, &page)))
}

async fn post_legacy(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(commit): Path<String>,
    body: String,
) -> Response {
    let instance = read(&state);
    // Any licensed user may post: a valid token.
    let token = match caller(&instance, &headers) {
        Ok(Some(token)) => token,
        Ok(None) => return not_permitted(),
        Err(refused) => return refused,
    };
    match checked(&body, &commit, true) {
        Ok(posted) => {
            drop(instance);
            store(&state, None, &commit, posted, &token.owner);
            as_user(&Some(token), StatusCode::NO_CONTENT)
        }
        Err(refused) => refused,
    }
}

/// The legacy listing: the statuses posted there and, since it names no
/// repository, those of every repository for the commit; newest first,
/// at most 100 in all, as Bitbucket's.
async fn get_legacy(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(commit): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let instance = read(&state);
    let token = match caller(&instance, &headers) {
        Ok(Some(token)) => token,
        Ok(None) => return not_permitted(),
        Err(refused) => return refused,
    };
    let commit = commit.to_lowercase();
    let mut found: Vec<&BuildStatus> = instance.build_statuses.iter().filter(|s| s.commit == commit).collect();
    found.sort_by_key(|s| std::cmp::Reverse(s.date_added));
    let values = found.into_iter().take(100).map(BuildStatus::json).collect();
    as_user(&Some(token), Json(paged(values, &query)))
}

/// The commit's page, as a person sees it in Bitbucket: its builds.
async fn commit_page(
    State(state): State<Shared>,
    Path((key, slug, commit)): Path<(String, String, String)>,
) -> Response {
    let instance = read(&state);
    let Some(repository) = instance.repository(&key, &slug) else {
        return (StatusCode::NOT_FOUND, Html("<h1>Repository not found</h1>")).into_response();
    };
    let commit = commit.to_lowercase();
    let rows: String = instance
        .build_statuses
        .iter()
        .filter(|s| s.commit == commit && s.repository_id.is_none_or(|id| id == repository.id))
        .map(|s| {
            format!(
                "<tr><td class=\"key\">{}</td><td class=\"state\">{}</td><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
                escape(&s.key),
                escape(&s.state),
                escape(&s.name),
                escape(&s.description),
                escape(&s.url),
                escape(&s.url),
                escape(s.ref_name.as_deref().unwrap_or(if s.repository_id.is_none() { "(legacy)" } else { "" })),
            )
        })
        .collect();
    let body = if rows.is_empty() {
        "<p>No builds.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Key</th><th>State</th><th>Name</th><th>Description</th><th>Link</th><th>Ref</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    Html(format!(
        "<!DOCTYPE html><html><head><title>Commit {short} - {project}/{slug} - Bitbucket</title></head>\
         <body><h1>Commit {short}</h1><p>{project}/{slug}</p><h2>Builds</h2>{body}</body></html>",
        short = escape(&commit[..commit.len().min(11)]),
        project = escape(&repository.project_key),
        slug = escape(&repository.slug),
    ))
    .into_response()
}

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/rest/api/latest/projects/{key}/repos/{slug}/commits/{commit}/builds",
            get(get_current).post(post_current),
        )
        .route("/rest/api/1.0/projects/{key}/repos/{slug}/commits/{commit}/builds", get(get_current).post(post_current))
        .route("/rest/build-status/1.0/commits/{commit}", get(get_legacy).post(post_legacy))
        .route("/projects/{key}/repos/{slug}/commits/{commit}", get(commit_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_checked_as_bitbucket_checks_it() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let good = r#"{"key": "k", "state": "CANCELLED", "url": "https://ci/1", "ref": "refs/heads/main"}"#;
        assert!(checked(good, commit, false).is_ok());
        assert!(checked(good, commit, true).is_err(), "no CANCELLED on the legacy endpoint");
        assert!(checked(good, "abc", false).is_err(), "a commit hash");
        let key = format!(r#"{{"key": "{}", "state": "FAILED", "url": "u"}}"#, "k".repeat(256));
        assert!(checked(&key, commit, false).is_err(), "a key over 255 characters");
        let url = format!(r#"{{"key": "k", "state": "FAILED", "url": "{}"}}"#, "u".repeat(451));
        assert!(checked(&url, commit, false).is_err(), "a url over 450 characters");
        let url = format!(r#"{{"key": "k", "state": "FAILED", "url": "{}"}}"#, "u".repeat(450));
        assert!(checked(&url, commit, false).is_ok(), "450 is allowed");
        assert!(checked(r#"{"key": "k", "state": "FAILED"}"#, commit, false).is_err(), "url is required");
        assert!(checked(r#"{"key": "k", "state": "DONE", "url": "u"}"#, commit, false).is_err());
        let pr_ref = r#"{"key": "k", "state": "FAILED", "url": "u", "ref": "feature"}"#;
        assert!(checked(pr_ref, commit, false).is_err(), "a bare branch is not a ref");
    }
}
