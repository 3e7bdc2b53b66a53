//! Pull requests and their comments, as Data Center answers them
//! (bitbucket-next.md §2): a comment has an id and a version; an edit must
//! name the current version (409 otherwise) and only its author may make
//! it; text is a non-empty value of fewer than 32,768 characters. The
//! overview page merges or declines an open one, as its buttons do in
//! Bitbucket: the state changes, the version goes up by one, and the
//! webhooks get `pr:merged` or `pr:declined`; a merge also moves the target
//! branch to a merge commit (`repo:refs_changed`).

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{as_user, base_url, epoch_millis, error, invalid, read, repository_json, repository_reader, write};
use super::{hooks, repository_page::repository_path, Instance, Repository, Shared, DEMO_USER};
use crate::escape;

/// A pull request of the simulated instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub id: u64,
    /// The target repository's id.
    pub repository_id: u64,
    /// The source's repository: the same one, or a fork.
    pub from_repository_id: u64,
    pub title: String,
    pub from_branch: String,
    pub from_commit: String,
    pub to_branch: String,
    /// `OPEN`, `MERGED` or `DECLINED`.
    pub state: String,
    pub version: u64,
    /// Who opened it (a username).
    pub author: String,
    /// Once merged: the merge commit on the target branch.
    pub merge_commit: Option<String>,
    /// Milliseconds since the epoch.
    pub created_date: u64,
    pub updated_date: u64,
}

impl PullRequest {
    /// The sample's one pull request: `feature` into `main` of OPS/my-repo.
    pub fn sample() -> Self {
        Self {
            id: 1,
            repository_id: 1,
            from_repository_id: 1,
            title: "Add the feature".into(),
            from_branch: "feature".into(),
            from_commit: "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00".into(),
            to_branch: "main".into(),
            state: "OPEN".into(),
            version: 0,
            author: DEMO_USER.into(),
            merge_commit: None,
            // The sender's dates.
            created_date: 1_700_000_000_000,
            updated_date: 1_700_000_100_000,
        }
    }
}

impl PullRequest {
    /// The pull request the sender's `pr:*` deliveries name (#7,
    /// `feature/thing` into `main`), so that a delivery sent in the demo
    /// can be commented on.
    pub fn of_sender() -> Self {
        Self {
            id: 7,
            title: "Add the thing".into(),
            from_branch: "feature/thing".into(),
            from_commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".into(),
            ..Self::sample()
        }
    }
}

/// A comment on a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub repository_id: u64,
    pub pull_request_id: u64,
    pub version: u64,
    pub text: String,
    /// The author's username (the token's owner).
    pub author: String,
}

/// Bitbucket's limit: the text must have fewer characters than this.
pub const MAX_COMMENT: usize = 32_768;

fn ref_json(instance: &Instance, branch: &str, commit: &str, repository_id: u64, base: &str) -> Value {
    let repository = instance.repositories.iter().find(|r| r.id == repository_id);
    json!({
        "id": format!("refs/heads/{branch}"), "displayId": branch, "latestCommit": commit,
        "repository": repository.map(|r| repository_json(instance, r, base)),
    })
}

fn pull_request_json(instance: &Instance, pr: &PullRequest, repository: &Repository, base: &str) -> Value {
    let to_commit = instance.branch(pr.repository_id, &pr.to_branch).map_or("", |b| b.head.as_str());
    let author = instance.users.iter().find(|u| u.slug == pr.author);
    json!({
        "id": pr.id, "version": pr.version, "title": pr.title, "state": pr.state,
        "open": pr.state == "OPEN", "closed": pr.state != "OPEN",
        "createdDate": pr.created_date, "updatedDate": pr.updated_date,
        "fromRef": ref_json(instance, &pr.from_branch, &pr.from_commit, pr.from_repository_id, base),
        "toRef": ref_json(instance, &pr.to_branch, to_commit, pr.repository_id, base),
        "author": {"user": {"name": pr.author, "slug": pr.author,
                            "displayName": author.map(|a| a.display_name.clone()).unwrap_or_default()},
                   "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
        "links": {"self": [{"href": format!(
            "{base}/projects/{}/repos/{}/pull-requests/{}", repository.project_key, repository.slug, pr.id
        )}]}
    })
}

fn comment_json(instance: &Instance, comment: &Comment) -> Value {
    let author = instance.users.iter().find(|u| u.slug == comment.author);
    json!({
        "id": comment.id, "version": comment.version, "text": comment.text,
        "author": {"name": comment.author, "slug": comment.author,
                   "displayName": author.map(|a| a.display_name.clone()).unwrap_or_default()},
        "createdDate": epoch_millis(), "updatedDate": epoch_millis(),
    })
}

fn no_such_pull_request(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Pull request {id} does not exist in this repository."),
        "com.atlassian.bitbucket.pull.NoSuchPullRequestException",
    )
}

fn no_such_comment(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Comment {id} does not exist."),
        "com.atlassian.bitbucket.comment.NoSuchCommentException",
    )
}

/// The comment's text checked as Bitbucket checks it.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn text_of(body: &str) -> Result<(String, Option<u64>), Response> {
    #[derive(Deserialize)]
    struct Posted {
        text: Option<String>,
        version: Option<u64>,
    }
    let refused = || invalid("text", "Please enter a non-empty value less than 32768 characters");
    let posted: Posted = serde_json::from_str(body).map_err(|_| refused())?;
    let text = posted.text.unwrap_or_default();
    if text.trim().is_empty() || text.chars().count() >= MAX_COMMENT {
        return Err(refused());
    }
    Ok((text, posted.version))
}

async fn get_pull_request(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
) -> Response {
    let instance = read(&state);
    let (token, repository) = match repository_reader(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match instance.pull_requests.iter().find(|pr| pr.repository_id == repository.id && pr.id == id) {
        Some(pr) => {
            let base = base_url(&headers, &instance);
            as_user(&Some(token), Json(pull_request_json(&instance, pr, &repository, &base)))
        }
        None => no_such_pull_request(id),
    }
}

async fn post_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
    body: String,
) -> Response {
    let instance = read(&state);
    let (token, repository) = match repository_reader(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    if !instance.pull_requests.iter().any(|pr| pr.repository_id == repository.id && pr.id == id) {
        return no_such_pull_request(id);
    }
    let text = match text_of(&body) {
        Ok((text, _)) => text,
        Err(refused) => return refused,
    };
    drop(instance);
    let mut instance = write(&state);
    let comment = Comment {
        id: instance.comments.iter().map(|c| c.id).max().unwrap_or(0) + 1,
        repository_id: repository.id,
        pull_request_id: id,
        version: 0,
        text,
        author: token.owner.clone(),
    };
    instance.comments.push(comment.clone());
    let body = comment_json(&instance, &comment);
    drop(instance);
    as_user(&Some(token), (StatusCode::CREATED, Json(body)))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    start: Option<usize>,
    limit: Option<usize>,
}

/// `GET .../pull-requests/{id}/activities`: the only listing of a pull
/// request's general comments, newest first, among other activities (here:
/// the comments only, as `COMMENTED` / `ADDED`).
async fn activities(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> Response {
    let instance = read(&state);
    let (token, repository) = match repository_reader(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    if !instance.pull_requests.iter().any(|pr| pr.repository_id == repository.id && pr.id == id) {
        return no_such_pull_request(id);
    }
    let (start, limit) = (page.start.unwrap_or(0), page.limit.unwrap_or(25).clamp(1, 1000));
    let all: Vec<Value> = instance
        .comments
        .iter()
        .rev()
        .filter(|c| c.repository_id == repository.id && c.pull_request_id == id)
        .map(|c| {
            json!({"id": c.id * 10, "createdDate": epoch_millis(), "user": comment_json(&instance, c)["author"],
                   "action": "COMMENTED", "commentAction": "ADDED", "comment": comment_json(&instance, c)})
        })
        .collect();
    let values: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let last = start + values.len() >= all.len();
    let mut body = json!({"size": values.len(), "limit": limit, "start": start, "isLastPage": last, "values": values});
    if !last {
        body["nextPageStart"] = json!(start + limit);
    }
    as_user(&Some(token), Json(body))
}

#[derive(Debug, Deserialize)]
struct VersionQuery {
    version: Option<u64>,
}

/// What a call on one comment of one pull request finds, or its refusal.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn find_comment(
    instance: &Instance,
    headers: &HeaderMap,
    (key, slug, id, comment_id): (&str, &str, u64, u64),
) -> Result<(super::Token, Comment), Response> {
    let (token, repository) = repository_reader(instance, headers, key, slug)?;
    if !instance.pull_requests.iter().any(|pr| pr.repository_id == repository.id && pr.id == id) {
        return Err(no_such_pull_request(id));
    }
    let comment = instance
        .comments
        .iter()
        .find(|c| c.repository_id == repository.id && c.pull_request_id == id && c.id == comment_id)
        .cloned()
        .ok_or_else(|| no_such_comment(comment_id))?;
    Ok((token, comment))
}

fn out_of_date(comment: &Comment) -> Response {
    error(
        StatusCode::CONFLICT,
        &format!(
            "You are attempting to modify a comment based on out-of-date information. The current version is {}.",
            comment.version
        ),
        "com.atlassian.bitbucket.comment.CommentOutOfDateException",
    )
}

/// Only the author changes a comment's text (the status Bitbucket gives
/// another user is UNVERIFIED: 403 here).
fn not_the_author() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "You are not permitted to update this comment: only its author can.",
        "com.atlassian.bitbucket.AuthorisationException",
    )
}

async fn get_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id, comment_id)): Path<(String, String, u64, u64)>,
) -> Response {
    let instance = read(&state);
    match find_comment(&instance, &headers, (&key, &slug, id, comment_id)) {
        Ok((token, comment)) => as_user(&Some(token), Json(comment_json(&instance, &comment))),
        Err(refused) => refused,
    }
}

async fn put_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id, comment_id)): Path<(String, String, u64, u64)>,
    body: String,
) -> Response {
    let instance = read(&state);
    let (token, comment) = match find_comment(&instance, &headers, (&key, &slug, id, comment_id)) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let (text, version) = match text_of(&body) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    if comment.author != token.owner {
        return not_the_author();
    }
    if version != Some(comment.version) {
        return out_of_date(&comment);
    }
    drop(instance);
    let mut instance = write(&state);
    let Some(stored) = instance.comments.iter_mut().find(|c| c.id == comment.id) else {
        return no_such_comment(comment_id);
    };
    stored.text = text;
    stored.version += 1;
    let updated = stored.clone();
    let body = comment_json(&instance, &updated);
    drop(instance);
    as_user(&Some(token), Json(body))
}

async fn delete_comment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id, comment_id)): Path<(String, String, u64, u64)>,
    Query(query): Query<VersionQuery>,
) -> Response {
    let instance = read(&state);
    let (token, comment) = match find_comment(&instance, &headers, (&key, &slug, id, comment_id)) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    if comment.author != token.owner {
        return not_the_author();
    }
    if query.version != Some(comment.version) {
        return out_of_date(&comment);
    }
    drop(instance);
    write(&state).comments.retain(|c| c.id != comment.id);
    as_user(&Some(token), StatusCode::NO_CONTENT)
}

/// The pull request's page, as a person sees it: its state and comments.
async fn pull_request_page(
    State(state): State<Shared>,
    Path((key, slug, id)): Path<(String, String, u64)>,
) -> Response {
    let instance = read(&state);
    let found = instance.repository(&key, &slug).and_then(|r| {
        instance.pull_requests.iter().find(|pr| pr.repository_id == r.id && pr.id == id).map(|pr| (r, pr))
    });
    let Some((repository, pr)) = found else {
        return (StatusCode::NOT_FOUND, Html("<h1>Pull request not found</h1>")).into_response();
    };
    let comments: String = instance
        .comments
        .iter()
        .filter(|c| c.repository_id == repository.id && c.pull_request_id == pr.id)
        .map(|c| {
            format!(
                "<article class=\"comment\" id=\"comment-{}\"><p class=\"author\">{} (version {})</p><pre>{}</pre></article>",
                c.id,
                escape(&c.author),
                c.version,
                escape(&c.text)
            )
        })
        .collect();
    let comments = if comments.is_empty() { "<p>No comments.</p>".to_owned() } else { comments };
    let base = repository_path(&instance, repository);
    let actions = if pr.state == "OPEN" {
        format!(
            "<form method=\"post\" action=\"{path}/merge\"><button type=\"submit\">Merge</button></form>\
             <form method=\"post\" action=\"{path}/decline\"><button type=\"submit\">Decline</button></form>",
            path = escape(&format!("{base}/pull-requests/{}", pr.id))
        )
    } else {
        String::new()
    };
    Html(format!(
        "<!DOCTYPE html><html><head><title>Pull request #{id} - {project}/{slug} - Bitbucket</title></head>\
         <body><p><a href=\"{browse}\">{project}/{slug}</a></p><h1>#{id} {title}</h1><p class=\"state\">{state}</p>\
         <p>{from} ({commit}) into {to}</p>{actions}\
         <h2>Comments</h2>{comments}</body></html>",
        browse = escape(&format!("{base}/browse")),
        id = pr.id,
        project = escape(&repository.project_key),
        slug = escape(&repository.slug),
        title = escape(&pr.title),
        state = escape(&pr.state),
        from = escape(&pr.from_branch),
        commit = escape(&pr.from_commit),
        to = escape(&pr.to_branch),
    ))
    .into_response()
}

/// The merge commit's message, the first line of Bitbucket's default.
fn merge_message(repository: &Repository, pr: &PullRequest) -> String {
    format!(
        "Merge pull request #{} in {}/{} from {} to {}",
        pr.id, repository.project_key, repository.slug, pr.from_branch, pr.to_branch
    )
}

/// Merge or Decline on the overview page: an open pull request only (409
/// otherwise, as Bitbucket's IllegalPullRequestStateException); back to the page.
async fn close(state: Shared, key: &str, slug: &str, id: u64, merge: bool) -> Response {
    let (outgoing, back) = {
        let mut instance = write(&state);
        let Some(repository) = instance.repository(key, slug).cloned() else {
            return (StatusCode::NOT_FOUND, Html("<h1>Repository not found</h1>")).into_response();
        };
        let Some(pr) =
            instance.pull_requests.iter().find(|pr| pr.repository_id == repository.id && pr.id == id).cloned()
        else {
            return (StatusCode::NOT_FOUND, Html("<h1>Pull request not found</h1>")).into_response();
        };
        let back = format!("{}/pull-requests/{id}/overview", repository_path(&instance, &repository));
        if pr.state != "OPEN" {
            let message = format!(
                "<h1>Pull request #{id} is {}</h1><p>Only an open pull request can be merged or declined. \
                 <a href=\"{}\">Back to it</a>.</p>",
                escape(&pr.state),
                escape(&back)
            );
            return (StatusCode::CONFLICT, Html(message)).into_response();
        }
        let mut outgoing = Vec::new();
        let mut closed = pr;
        if merge {
            let pushed = instance.push_commit(repository.id, &closed.to_branch, &merge_message(&repository, &closed));
            outgoing.extend(hooks::push_event(&instance, &repository, &pushed));
            closed.merge_commit = Some(pushed.to_hash);
        }
        closed.state = if merge { "MERGED" } else { "DECLINED" }.into();
        closed.version += 1;
        closed.updated_date = epoch_millis();
        if let Some(stored) = instance.pull_requests.iter_mut().find(|p| p.repository_id == repository.id && p.id == id)
        {
            *stored = closed.clone();
        }
        let event_key = if merge { "pr:merged" } else { "pr:declined" };
        outgoing.extend(hooks::pull_request_event(&instance, &closed, event_key, json!({})));
        (outgoing, back)
    };
    hooks::deliver(&state, outgoing).await;
    Redirect::to(&back).into_response()
}

async fn merge(State(state): State<Shared>, Path((key, slug, id)): Path<(String, String, u64)>) -> Response {
    close(state, &key, &slug, id, true).await
}

async fn decline(State(state): State<Shared>, Path((key, slug, id)): Path<(String, String, u64)>) -> Response {
    close(state, &key, &slug, id, false).await
}

pub(super) fn routes() -> Router<Shared> {
    const PR: &str = "/rest/api/1.0/projects/{key}/repos/{slug}/pull-requests/{id}";
    const PAGE: &str = "/projects/{key}/repos/{slug}/pull-requests/{id}";
    Router::new()
        .route(PR, get(get_pull_request))
        .route(&format!("{PR}/comments"), axum::routing::post(post_comment))
        .route(&format!("{PR}/activities"), get(activities))
        .route(&format!("{PR}/comments/{{comment_id}}"), get(get_comment).put(put_comment).delete(delete_comment))
        .route(&format!("{PAGE}/overview"), get(pull_request_page))
        .route(&format!("{PAGE}/merge"), post(merge))
        .route(&format!("{PAGE}/decline"), post(decline))
}
