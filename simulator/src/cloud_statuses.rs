//! What Bitgate reports back to Bitbucket Cloud, and how Cloud answers it:
//! build statuses on commits (`/2.0/repositories/{workspace}/{repo}/commit/
//! {commit}/statuses`), pull requests and their comments, faults a test
//! queues for the next write requests (429 and 503), a log of the write
//! requests received, and bitbucket.org's own pages of a commit and of a
//! pull request for a person watching the demo.
//!
//! Facts are from ../shared/bitbucket-next.md §1c and §2 and the shapes in
//! ../shared/bitbucket-fixtures; where no source settled a behaviour, the
//! comment beside it says UNVERIFIED and what was chosen.

#![allow(
    clippy::result_large_err,
    reason = "handlers here refuse early with `?`: a refusal is the handler's answer, built once per request"
)]

use std::time::Instant;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Map, Value};
use time::{macros::format_description, OffsetDateTime};

use super::{account_json, api_error, caller, paged, visible_repository, with, Instance, PageQuery, Shared};
use crate::{escape, Call, Fault};

/// Cloud's build-status key limit, with its error in [`status_fields`].
const KEY_LIMIT: usize = 40;
/// Above this many characters a comment is refused with Cloud's bare HTML
/// 400, as Atlantis users saw for very large bodies; Atlantis posted 200,000
/// characters without error. The exact threshold is UNVERIFIED.
const COMMENT_LIMIT: usize = 1_000_000;
/// Request bodies up to this size are read, so that an oversized comment
/// meets Cloud's 400 rather than the server's own body limit.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
const STATES: [&str; 4] = ["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestState {
    Open,
    Merged,
    Declined,
}

impl PullRequestState {
    fn as_str(self) -> &'static str {
        match self {
            PullRequestState::Open => "OPEN",
            PullRequestState::Merged => "MERGED",
            PullRequestState::Declined => "DECLINED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PullRequest {
    /// Numbered per repository, from 1.
    pub id: u64,
    /// The destination repository, `workspace/slug`.
    pub repository: String,
    /// `workspace/slug` of the source: another repository for a fork.
    pub source_repository: String,
    pub source_branch: String,
    /// The source branch's head, 40 hex digits (the API shows 12 of them).
    pub source_commit: String,
    pub destination_branch: String,
    pub destination_commit: String,
    pub state: PullRequestState,
    pub title: String,
    /// The author's account UUID.
    pub author: String,
}

/// A build status on a commit, one per (repository, commit, key).
/// UNVERIFIED: Jenkins' maintainers report that statuses with the same key
/// and different refnames coexist; the simulator keeps one per key, which is
/// all Bitgate writes (its keys differ per stack and kind).
#[derive(Debug, Clone)]
pub struct BuildStatus {
    pub uuid: String,
    /// `workspace/slug`.
    pub repository: String,
    pub commit: String,
    pub key: String,
    pub state: String,
    pub name: String,
    pub description: String,
    pub url: String,
    /// The bare branch name; once set it cannot be set back to none.
    pub refname: Option<String>,
    /// The account UUID of the creator: the only account (besides a
    /// repository admin) that may overwrite the status.
    pub creator: String,
    pub created_on: String,
    pub updated_on: String,
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    /// `workspace/slug` of the pull request's repository.
    pub repository: String,
    pub pull_request: u64,
    pub raw: String,
    /// The author's account UUID.
    pub author: String,
    pub created_on: String,
    pub updated_on: String,
}

/// A fault as Cloud answers it.
fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_seconds } => {
            let mut answer = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "text/plain")],
                "Rate limit for this resource has been exceeded",
            )
                .into_response();
            if let Some(seconds) = retry_after_seconds {
                answer.headers_mut().insert(header::RETRY_AFTER, seconds.into());
            }
            answer
        }
        // UNVERIFIED: the body of Cloud's 503; a short plain text is chosen.
        Fault::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain")], "Service Unavailable")
                .into_response()
        }
    }
}

/// Gives each write request under `/2.0/repositories/` the next queued
/// fault, if any, and logs it. The log is appended when the answer is
/// ready, so concurrent requests appear in the order they were answered.
pub(super) async fn faults_and_calls(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let writes = matches!(method, Method::POST | Method::PUT | Method::DELETE);
    if !writes || !request.uri().path().starts_with("/2.0/repositories/") {
        return next.run(request).await;
    }
    let (path, at) = (request.uri().path().to_owned(), Instant::now());
    let answer = match with(&state, |instance| instance.faults.pop_front()) {
        Some(fault) => fault_response(fault),
        None => next.run(request).await,
    };
    let status = answer.status().as_u16();
    with(&state, |instance| instance.calls.push(Call { method, path, at, status }));
    answer
}

/// Runs a handler's work on the instance; a refusal returns early with `?`.
pub(super) fn answer(state: &Shared, work: impl FnOnce(&mut Instance) -> Result<Response, Response>) -> Response {
    with(state, |instance| work(instance).unwrap_or_else(|refused| refused))
}

/// Cloud's timestamps: microseconds, UTC as `+00:00`.
pub(super) fn now() -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");
    OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

/// Whether granted scopes cover the one an endpoint needs, with the
/// implications of Bitbucket's scope list: a write scope implies its read
/// scope, `pullrequest` implies `repository`, `pullrequest:write` implies
/// `repository:write`; `repository:admin` implies neither.
fn covers(granted: &[String], needed: &str) -> bool {
    let implied = |scope: &str| -> &[&str] {
        match scope {
            "repository:write" => &["repository"],
            "pullrequest" => &["repository"],
            "pullrequest:write" => &["pullrequest", "repository", "repository:write"],
            _ => &[],
        }
    };
    granted.iter().any(|scope| scope == needed || implied(scope).contains(&needed))
}

/// An account allowed to act on a repository.
pub(super) struct Caller {
    account: String,
    /// Granted `repository:admin`: Cloud lets repository admins overwrite
    /// others' statuses. Membership is not simulated, so the scope stands
    /// for the admin permission (UNVERIFIED for an app user).
    admin: bool,
}

impl Caller {
    fn may_change(&self, author: &str) -> bool {
        self.admin || self.account == author
    }
}

/// Checks, in Cloud's order, a valid token (401), the scope the endpoint
/// needs (403 naming the scopes) and that the repository is visible (404).
pub(super) fn authorized(
    instance: &Instance,
    headers: &HeaderMap,
    workspace: &str,
    repo: &str,
    needed: &str,
) -> Result<Caller, Response> {
    let (principal, scopes) = caller(instance, headers)?;
    if !covers(&scopes, needed) {
        let body = json!({"type": "error", "error": {
            "message": "Your credentials lack one or more required privilege scopes.",
            "detail": {"granted": scopes, "required": [needed]}
        }});
        return Err((StatusCode::FORBIDDEN, Json(body)).into_response());
    }
    visible_repository(instance, &principal, workspace, repo)?;
    Ok(Caller { account: principal.uuid().to_owned(), admin: scopes.iter().any(|s| s == "repository:admin") })
}

/// Cloud's validation error: the message names the field, `fields` lists
/// its problems (the shape of the 40-character key error).
pub(super) fn field_error(field: &str, problem: &str) -> Response {
    let body =
        json!({"type": "error", "error": {"message": format!("{field}: {problem}"), "fields": {field: [problem]}}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// A JSON object body; UNVERIFIED: Cloud's message for one that is not.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(api_error(StatusCode::BAD_REQUEST, "Bad request: the body is not a JSON object.")),
    }
}

/// The simulator knows no commits, so any full lowercase hash is one; Cloud
/// also resolves abbreviated hashes, which Bitgate never sends.
fn is_commit(commit: &str) -> bool {
    commit.len() == 40 && commit.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

/// The 404 for a commit Cloud does not know (message UNVERIFIED).
fn unknown_commit(commit: &str) -> Response {
    api_error(StatusCode::NOT_FOUND, &format!("Commit not found: {commit}"))
}

/// `GET .../commit/{commit}`: a commit by its full id or a prefix of at
/// least 7 digits naming one commit only (Cloud's pull-request payloads
/// name heads by 12).
async fn get_commit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, commit)): Path<(String, String, String)>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "repository")?;
        let repository = format!("{workspace}/{repo}");
        let known = instance
            .commits
            .iter()
            .filter(|(r, _)| *r == repository)
            .map(|(_, hash)| hash)
            .chain(instance.pull_requests.iter().filter(|p| p.repository == repository).map(|p| &p.source_commit))
            .chain(instance.pull_requests.iter().filter(|p| p.repository == repository).map(|p| &p.destination_commit));
        let mut found: Vec<&String> =
            known.filter(|hash| commit.len() >= 7 && hash.starts_with(&commit.to_ascii_lowercase())).collect();
        found.sort();
        found.dedup();
        let [hash] = found.as_slice() else { return Err(unknown_commit(&commit)) };
        let api = format!("https://api.bitbucket.org/2.0/repositories/{repository}/commit/{hash}");
        Ok(Json(json!({
            "type": "commit", "hash": hash, "date": now(), "message": "A commit of the simulator\n",
            "links": {"self": {"href": api},
                      "html": {"href": format!("https://bitbucket.org/{repository}/commits/{hash}")}},
        }))
        .into_response())
    })
}

/// What a status request sets; a field left out stays as it was.
struct StatusFields {
    key: Option<String>,
    state: Option<String>,
    name: Option<String>,
    description: Option<String>,
    url: Option<String>,
    refname: Option<String>,
}

/// Reads and checks a status body as Cloud does: `key` at most 40
/// characters with Cloud's exact error, `state` one of the four, and, when
/// `creating`, `key`, `state` and `url` required (`url` is effectively
/// required; Cloud's wording for the missing fields is UNVERIFIED and
/// Django's, like the key error's, is used).
fn status_fields(body: &[u8], creating: bool) -> Result<StatusFields, Response> {
    let body = json_object(body)?;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let fields = StatusFields {
        key: text("key"),
        state: text("state"),
        name: text("name"),
        description: text("description"),
        url: text("url"),
        refname: text("refname"),
    };
    let required = "This field is required.";
    let absent = |value: &Option<String>| value.as_deref().is_none_or(str::is_empty);
    if creating && absent(&fields.key) {
        return Err(field_error("key", required));
    }
    if let Some(length) = fields.key.as_deref().map(|key| key.chars().count()).filter(|n| *n > KEY_LIMIT) {
        return Err(field_error(
            "key",
            &format!("Ensure this value has at most {KEY_LIMIT} characters (it has {length})."),
        ));
    }
    if creating && absent(&fields.state) {
        return Err(field_error("state", required));
    }
    if let Some(state) = fields.state.as_deref().filter(|state| !STATES.contains(state)) {
        return Err(field_error(
            "state",
            &format!("Select a valid choice. {state} is not one of the available choices."),
        ));
    }
    if (creating || fields.url.is_some()) && absent(&fields.url) {
        return Err(field_error("url", required));
    }
    Ok(fields)
}

impl BuildStatus {
    fn apply(&mut self, fields: StatusFields, now: String) {
        let keep = |target: &mut String, value: Option<String>| {
            if let Some(value) = value {
                *target = value;
            }
        };
        keep(&mut self.state, fields.state);
        keep(&mut self.name, fields.name);
        keep(&mut self.description, fields.description);
        keep(&mut self.url, fields.url);
        if fields.refname.is_some() {
            self.refname = fields.refname;
        }
        self.updated_on = now;
    }
}

fn status_json(instance: &Instance, status: &BuildStatus) -> Value {
    let api = format!("https://api.bitbucket.org/2.0/repositories/{}/commit/{}", status.repository, status.commit);
    let name = status.repository.split_once('/').map_or(status.repository.as_str(), |(_, slug)| slug);
    json!({
        "type": "build", "uuid": status.uuid, "key": status.key, "state": status.state, "name": status.name,
        "description": status.description, "url": status.url, "refname": status.refname,
        "created_on": status.created_on, "updated_on": status.updated_on,
        // UNVERIFIED: the field name of "the account object of the commit status author".
        "creator": account_json(instance, &status.creator),
        "commit": {"type": "commit", "hash": status.commit, "links": {
            "self": {"href": api},
            "html": {"href": format!("https://bitbucket.org/{}/commits/{}", status.repository, status.commit)},
        }},
        "repository": {"type": "repository", "full_name": status.repository, "name": name},
        "links": {"self": {"href": format!("{api}/statuses/build/{}", status.key)}, "commit": {"href": api}},
    })
}

fn status_index(instance: &Instance, repository: &str, commit: &str, key: &str) -> Option<usize> {
    instance.statuses.iter().position(|s| s.repository == repository && s.commit == commit && s.key == key)
}

/// Why an account may not overwrite another's status (message UNVERIFIED;
/// the rule is Atlassian's change notice of May 2021).
fn not_the_creator() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "Only the account that created this build status, or a repository admin, may change it.",
    )
}

/// The 404 for a status key the commit does not have (message UNVERIFIED).
fn unknown_status(key: &str) -> Response {
    api_error(StatusCode::NOT_FOUND, &format!("No build status with key '{key}' on this commit."))
}

/// `POST .../commit/{commit}/statuses/build`: creates, or overwrites the
/// same key when the caller created it. 201 either way (UNVERIFIED for an
/// overwrite).
async fn create_status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, commit)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    answer(&state, |instance| {
        let caller = authorized(instance, &headers, &workspace, &repo, "repository")?;
        if !is_commit(&commit) {
            return Err(unknown_commit(&commit));
        }
        let mut fields = status_fields(&body, true)?;
        let repository = format!("{workspace}/{repo}");
        let key = fields.key.take().unwrap_or_default();
        let index = match status_index(instance, &repository, &commit, &key) {
            Some(index) if !caller.may_change(&instance.statuses[index].creator) => return Err(not_the_creator()),
            Some(index) => {
                instance.statuses[index].apply(fields, now());
                index
            }
            None => {
                let created_on = now();
                let uuid = super::braced(3_000_000 + instance.statuses.len() as u64);
                instance.statuses.push(BuildStatus {
                    uuid,
                    repository,
                    commit,
                    // UNVERIFIED: a status posted without a name shows its key.
                    name: fields.name.unwrap_or_else(|| key.clone()),
                    key,
                    state: fields.state.unwrap_or_default(),
                    description: fields.description.unwrap_or_default(),
                    url: fields.url.unwrap_or_default(),
                    refname: fields.refname,
                    creator: caller.account,
                    updated_on: created_on.clone(),
                    created_on,
                });
                instance.statuses.len() - 1
            }
        };
        Ok((StatusCode::CREATED, Json(status_json(instance, &instance.statuses[index]))).into_response())
    })
}

/// `PUT .../statuses/build/{key}`: changes state, name, description, url or
/// refname of a status the caller created. A body naming another key is
/// refused (Cloud: "the key cannot be changed"; refusing rather than
/// ignoring it is UNVERIFIED).
async fn update_status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, commit, key)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    answer(&state, |instance| {
        let caller = authorized(instance, &headers, &workspace, &repo, "repository")?;
        let fields = status_fields(&body, false)?;
        if fields.key.as_ref().is_some_and(|new| *new != key) {
            return Err(field_error("key", "The key of a build status cannot be changed."));
        }
        let repository = format!("{workspace}/{repo}");
        let index = status_index(instance, &repository, &commit, &key).ok_or_else(|| unknown_status(&key))?;
        if !caller.may_change(&instance.statuses[index].creator) {
            return Err(not_the_creator());
        }
        instance.statuses[index].apply(fields, now());
        Ok(Json(status_json(instance, &instance.statuses[index])).into_response())
    })
}

async fn get_status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, commit, key)): Path<(String, String, String, String)>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "repository")?;
        let repository = format!("{workspace}/{repo}");
        let index = status_index(instance, &repository, &commit, &key).ok_or_else(|| unknown_status(&key))?;
        Ok(Json(status_json(instance, &instance.statuses[index])).into_response())
    })
}

/// `GET .../commit/{commit}/statuses`, paged like every Cloud list.
async fn list_statuses(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, commit)): Path<(String, String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "repository")?;
        let repository = format!("{workspace}/{repo}");
        let values = instance
            .statuses
            .iter()
            .filter(|s| s.repository == repository && s.commit == commit)
            .map(|s| status_json(instance, s))
            .collect();
        let path = format!("/2.0/repositories/{repository}/commit/{commit}/statuses");
        Ok(Json(paged(values, &query, &path, &headers)).into_response())
    })
}

/// The pull request `id` of `workspace/slug`; Cloud's 404 otherwise
/// (message UNVERIFIED). An id that is not a number is not found either.
fn find_pull_request<'a>(instance: &'a Instance, repository: &str, id: &str) -> Result<&'a PullRequest, Response> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| instance.pull_requests.iter().find(|p| p.repository == repository && p.id == id))
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, &format!("Pull request {id} not found in {repository}")))
}

fn html_link(repository: &str, id: u64) -> String {
    format!("https://bitbucket.org/{repository}/pull-requests/{id}")
}

/// Cloud's shape, with the 12-digit abbreviated hashes Cloud's pull
/// requests carry (as in the fixtures' `pullrequest:*` payloads).
fn pull_request_json(instance: &Instance, pull_request: &PullRequest) -> Value {
    let end = |repository: &str, branch: &str, commit: &str| {
        let name = repository.split_once('/').map_or(repository, |(_, slug)| slug);
        json!({
            "branch": {"name": branch},
            "commit": {"type": "commit", "hash": commit.get(..12).unwrap_or(commit)},
            "repository": {"type": "repository", "full_name": repository, "name": name},
        })
    };
    let api = format!(
        "https://api.bitbucket.org/2.0/repositories/{}/pullrequests/{}",
        pull_request.repository, pull_request.id
    );
    json!({
        "type": "pullrequest", "id": pull_request.id, "title": pull_request.title,
        "state": pull_request.state.as_str(), "author": account_json(instance, &pull_request.author),
        "source": end(&pull_request.source_repository, &pull_request.source_branch, &pull_request.source_commit),
        "destination": end(&pull_request.repository, &pull_request.destination_branch, &pull_request.destination_commit),
        "comment_count": instance.comments.iter()
            .filter(|c| c.repository == pull_request.repository && c.pull_request == pull_request.id).count(),
        "links": {
            "self": {"href": api},
            "html": {"href": html_link(&pull_request.repository, pull_request.id)},
            "comments": {"href": format!("{api}/comments")},
        },
    })
}

async fn get_pull_request(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, id)): Path<(String, String, String)>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "pullrequest")?;
        let found = find_pull_request(instance, &format!("{workspace}/{repo}"), &id)?;
        Ok(Json(pull_request_json(instance, found)).into_response())
    })
}

fn comment_json(instance: &Instance, comment: &Comment) -> Value {
    let title = instance
        .pull_requests
        .iter()
        .find(|p| p.repository == comment.repository && p.id == comment.pull_request)
        .map(|p| p.title.clone());
    let pull_request = html_link(&comment.repository, comment.pull_request);
    json!({
        "type": "pullrequest_comment", "id": comment.id, "deleted": false,
        "content": {
            "type": "rendered", "raw": comment.raw, "markup": "markdown",
            "html": format!("<p>{}</p>", escape(&comment.raw)),
        },
        "user": account_json(instance, &comment.author),
        "created_on": comment.created_on, "updated_on": comment.updated_on,
        "pullrequest": {"type": "pullrequest", "id": comment.pull_request, "title": title,
            "links": {"html": {"href": pull_request}}},
        "links": {
            "self": {"href": format!("https://api.bitbucket.org/2.0/repositories/{}/pullrequests/{}/comments/{}",
                comment.repository, comment.pull_request, comment.id)},
            "html": {"href": format!("{pull_request}/_/diff#comment-{}", comment.id)},
        },
    })
}

/// The raw text of a comment body, `{"content": {"raw": ...}}`. Too long a
/// text gets Cloud's bare HTML 400; a missing one a field error (UNVERIFIED
/// wording).
fn comment_text(body: &[u8]) -> Result<String, Response> {
    let body = json_object(body)?;
    let Some(raw) = body.get("content").and_then(|c| c.get("raw")).and_then(Value::as_str) else {
        return Err(field_error("content", "This field is required."));
    };
    if raw.chars().count() > COMMENT_LIMIT {
        return Err((StatusCode::BAD_REQUEST, Html("<h1>Bad Request (400)</h1>")).into_response());
    }
    Ok(raw.to_owned())
}

/// `POST .../pullrequests/{id}/comments`. A closed pull request still takes
/// comments (UNVERIFIED; Bitbucket's page allows it).
async fn create_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    answer(&state, |instance| {
        let caller = authorized(instance, &headers, &workspace, &repo, "pullrequest")?;
        let repository = format!("{workspace}/{repo}");
        let pull_request = find_pull_request(instance, &repository, &id)?.id;
        let raw = comment_text(&body)?;
        instance.comment_ids += 1;
        let created_on = now();
        let comment = Comment {
            id: instance.comment_ids,
            repository,
            pull_request,
            raw,
            author: caller.account,
            updated_on: created_on.clone(),
            created_on,
        };
        let created = comment_json(instance, &comment);
        instance.comments.push(comment);
        Ok((StatusCode::CREATED, Json(created)).into_response())
    })
}

/// The index of comment `comment_id` on the pull request; Cloud's 404
/// otherwise (message UNVERIFIED).
fn find_comment(instance: &Instance, repository: &str, id: &str, comment_id: &str) -> Result<usize, Response> {
    let pull_request = find_pull_request(instance, repository, id)?.id;
    comment_id
        .parse::<u64>()
        .ok()
        .and_then(|comment_id| {
            instance
                .comments
                .iter()
                .position(|c| c.repository == repository && c.pull_request == pull_request && c.id == comment_id)
        })
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, &format!("Comment {comment_id} not found")))
}

/// `PUT .../comments/{comment_id}`: only its author may change the text,
/// admins included (UNVERIFIED: 403 and its message).
async fn update_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, id, comment_id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    answer(&state, |instance| {
        let caller = authorized(instance, &headers, &workspace, &repo, "pullrequest")?;
        let index = find_comment(instance, &format!("{workspace}/{repo}"), &id, &comment_id)?;
        if instance.comments[index].author != caller.account {
            return Err(api_error(StatusCode::FORBIDDEN, "You can only edit your own comments."));
        }
        let raw = comment_text(&body)?;
        let comment = &mut instance.comments[index];
        comment.raw = raw;
        comment.updated_on = now();
        Ok(Json(comment_json(instance, &instance.comments[index])).into_response())
    })
}

async fn get_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, id, comment_id)): Path<(String, String, String, String)>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "pullrequest")?;
        let index = find_comment(instance, &format!("{workspace}/{repo}"), &id, &comment_id)?;
        Ok(Json(comment_json(instance, &instance.comments[index])).into_response())
    })
}

/// `DELETE .../comments/{comment_id}`: 204. Its author, or a repository
/// admin, may delete it. UNVERIFIED: Cloud may keep a deleted comment in
/// lists marked `deleted`; here it is gone, and a second delete is a 404.
async fn delete_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, id, comment_id)): Path<(String, String, String, String)>,
) -> Response {
    answer(&state, |instance| {
        let caller = authorized(instance, &headers, &workspace, &repo, "pullrequest")?;
        let index = find_comment(instance, &format!("{workspace}/{repo}"), &id, &comment_id)?;
        if !caller.may_change(&instance.comments[index].author) {
            return Err(api_error(StatusCode::FORBIDDEN, "You can only delete your own comments."));
        }
        instance.comments.remove(index);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// `GET .../pullrequests/{id}/comments`, oldest first, paged.
async fn list_comments(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, id)): Path<(String, String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "pullrequest")?;
        let repository = format!("{workspace}/{repo}");
        let pull_request = find_pull_request(instance, &repository, &id)?.id;
        let values = instance
            .comments
            .iter()
            .filter(|c| c.repository == repository && c.pull_request == pull_request)
            .map(|c| comment_json(instance, c))
            .collect();
        let path = format!("/2.0/repositories/{repository}/pullrequests/{pull_request}/comments");
        Ok(Json(paged(values, &query, &path, &headers)).into_response())
    })
}

/// The REST routes of this module, under the parent's REST layers.
pub(super) fn api() -> Router<Shared> {
    let repository = "/2.0/repositories/{workspace}/{repo}";
    Router::new()
        .route(&format!("{repository}/commit/{{commit}}"), get(get_commit))
        .route(&format!("{repository}/commit/{{commit}}/statuses"), get(list_statuses))
        .route(&format!("{repository}/commit/{{commit}}/statuses/build"), axum::routing::post(create_status))
        .route(&format!("{repository}/commit/{{commit}}/statuses/build/{{key}}"), get(get_status).put(update_status))
        .route(&format!("{repository}/pullrequests/{{id}}"), get(get_pull_request))
        .route(&format!("{repository}/pullrequests/{{id}}/comments"), get(list_comments).post(create_comment))
        .route(
            &format!("{repository}/pullrequests/{{id}}/comments/{{comment_id}}"),
            get(get_comment).put(update_comment).delete(delete_comment),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// bitbucket.org's page shapes, `/{workspace}/{repo}/commits/{commit}` and
/// `/{workspace}/{repo}/pull-requests/{id}`: four segments whose third is
/// `commits` or `pull-requests`, which no other route of the simulator has
/// (Cloud's OAuth pages are under `/site/`, its API under `/2.0/`, Data
/// Center's under `/rest/` and `/plugins/`, below its context path if any).
pub(super) fn pages() -> Router<Shared> {
    Router::new()
        .route("/{workspace}/{repo}/commits/{commit}", get(commit_page))
        .route("/{workspace}/{repo}/pull-requests/{id}", get(pull_request_page))
}

fn page(title: &str, body: &str) -> Html<String> {
    let title = escape(title);
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title} - Bitbucket</title></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    ))
}

fn not_found_page(what: &str) -> Response {
    (StatusCode::NOT_FOUND, page("Page not found", &format!("<p>{}</p>", escape(what)))).into_response()
}

/// A table of the commit's builds, each linked when its link is a web page.
fn builds_table(instance: &Instance, repository: &str, commit: &str) -> String {
    let rows: String = instance
        .statuses
        .iter()
        .filter(|s| s.repository == repository && s.commit == commit)
        .map(|s| {
            let link = if s.url.starts_with("https://") || s.url.starts_with("http://") {
                format!("<a href=\"{0}\">{0}</a>", escape(&s.url))
            } else {
                escape(&s.url)
            };
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{link}</td></tr>",
                escape(&s.key),
                escape(&s.state),
                escape(&s.name),
                escape(&s.description)
            )
        })
        .collect();
    if rows.is_empty() {
        return "<p>No builds for this commit.</p>".into();
    }
    format!(
        "<table><thead><tr><th>Key</th><th>State</th><th>Name</th><th>Description</th><th>Link</th></tr></thead>\
         <tbody>{rows}</tbody></table>"
    )
}

/// A commit's builds, as a person watching the demo opens them. The page
/// asks for no token: the browser is taken to be signed in.
async fn commit_page(
    State(state): State<Shared>,
    Path((workspace, repo, commit)): Path<(String, String, String)>,
) -> Response {
    with(&state, |instance| {
        let repository = format!("{workspace}/{repo}");
        if !instance.repositories.iter().any(|r| r.workspace == workspace && r.slug == repo) {
            return not_found_page(&format!("No repository {repository}."));
        }
        let builds = builds_table(instance, &repository, &commit);
        page(
            &format!("{repository}: commit {}", commit.get(..12).unwrap_or(&commit)),
            &format!("<h2>Builds</h2>{builds}"),
        )
        .into_response()
    })
}

/// A pull request: its branches, the builds of its head commit and its comments.
async fn pull_request_page(
    State(state): State<Shared>,
    Path((workspace, repo, id)): Path<(String, String, String)>,
) -> Response {
    with(&state, |instance| {
        let repository = format!("{workspace}/{repo}");
        let Ok(pull_request) = find_pull_request(instance, &repository, &id) else {
            return not_found_page(&format!("No pull request {id} in {repository}."));
        };
        let name_of = |uuid: &str| account_json(instance, uuid)["display_name"].as_str().unwrap_or_default().to_owned();
        let comments: String = instance
            .comments
            .iter()
            .filter(|c| c.repository == repository && c.pull_request == pull_request.id)
            .map(|c| {
                format!(
                    "<article id=\"comment-{}\"><p><strong>{}</strong> <time>{}</time></p><pre>{}</pre></article>",
                    c.id,
                    escape(&name_of(&c.author)),
                    escape(&c.created_on),
                    escape(&c.raw)
                )
            })
            .collect();
        let comments = if comments.is_empty() { "<p>No comments yet.</p>".to_owned() } else { comments };
        let commit = &pull_request.source_commit;
        let body = format!(
            "<p>{state} · by {author} · <code>{source}</code> into <code>{destination}</code> · head \
             <a href=\"/{repository}/commits/{commit}\"><code>{short}</code></a></p>\
             <h2>Builds</h2>{builds}<h2>Comments</h2>{comments}",
            state = pull_request.state.as_str(),
            author = escape(&name_of(&pull_request.author)),
            source = escape(&pull_request.source_branch),
            destination = escape(&pull_request.destination_branch),
            repository = escape(&repository),
            commit = escape(commit),
            short = escape(commit.get(..12).unwrap_or(commit)),
            builds = builds_table(instance, &repository, commit),
        );
        page(&format!("{repository}: #{} {}", pull_request.id, pull_request.title), &body).into_response()
    })
}
