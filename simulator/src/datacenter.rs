//! Bitbucket Data Center (Server), as far as Bitgate talks to it: the REST
//! API 1.0 paths, paging, error bodies and headers of Atlassian's
//! documentation and the captured responses in ../shared/bitbucket-fixtures;
//! build statuses ([`builds`]) and pull requests with their comments
//! ([`pull_requests`]), each with a page a person can look at; and what the
//! demo's person clicks to play a developer: branches and commits
//! ([`commits`]) pushed and pull requests opened on the repository's page
//! ([`repository_page`]), sent to the repository's webhooks ([`hooks`]),
//! which the REST API manages too ([`webhooks_api`]); the branches' heads
//! for a caller that polls them ([`branches`]); and the incoming
//! application link of an "External application", Data Center's OAuth 2.0
//! provider ([`oauth2`]), and the legacy OAuth 1.0a (RSA-SHA1) link with
//! its three legs and signed calls ([`oauth1`]).

pub mod branches;
pub mod builds;
pub mod commits;
pub mod hooks;
pub mod oauth1;
pub mod oauth2;
pub mod pull_requests;
pub mod repository_page;
pub mod webhooks_api;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// A user of the simulated instance.
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub slug: String,
    pub display_name: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub key: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub project_key: String,
}

/// An HTTP access token: whose it is and what it may read or manage. An
/// OAuth 2.0 access token is one too ([`oauth2`]), its expiry kept beside
/// it in [`Instance::oauth2_access_tokens`], and so is what an OAuth 1.0a
/// access token signs for ([`oauth1`]).
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: String,
    pub owner: String,
    pub project_read: bool,
    pub repository_read: bool,
    /// REPO_ADMIN on every repository: what managing a repository's
    /// webhooks needs ([`webhooks_api`]).
    pub repository_admin: bool,
}

/// Everything the simulated instance knows; tests change it while it runs.
#[derive(Debug, Clone)]
pub struct Instance {
    pub version: String,
    /// Where Bitbucket lives on the host, such as `/bitbucket` ("" for the root).
    /// Requests outside it get the HTML login page a real proxy setup shows.
    pub context_path: String,
    pub users: Vec<User>,
    pub projects: Vec<Project>,
    pub repositories: Vec<Repository>,
    pub tokens: Vec<Token>,
    /// Waited before every answer.
    pub delay: Duration,
    /// When set, every request is answered with a redirect there.
    pub redirect_to: Option<String>,
    /// Whether the repository-scoped build-status endpoint exists (Data
    /// Center 7.4 and later, UNVERIFIED); without it, that path is 404 and
    /// only the legacy `/rest/build-status/1.0` one works, as on older servers.
    pub builds_endpoint: bool,
    pub build_statuses: Vec<builds::BuildStatus>,
    /// Where each (repository, commit, key) is in `build_statuses`, kept
    /// by the handlers that post one (a soak posts hundreds of thousands).
    pub build_status_index: HashMap<(Option<u64>, String, String), usize>,
    pub pull_requests: Vec<pull_requests::PullRequest>,
    pub comments: Vec<pull_requests::Comment>,
    pub branches: Vec<commits::Branch>,
    pub commits: Vec<commits::Commit>,
    pub hooks: Vec<hooks::Hook>,
    /// The latest deliveries to hooks, oldest first, at most [`hooks::RECENT_DELIVERIES`].
    pub deliveries: VecDeque<hooks::Delivery>,
    /// Repositories (by id) whose hooks' deliveries fail as a refused
    /// connection does: each is recorded as failed and nothing is sent, so
    /// that the hook's `latest` and statistics show it, as Bitbucket's do
    /// when the receiver is down.
    pub failing_hook_repositories: Vec<u64>,
    /// Taken one by one by the next write calls of the REST API.
    pub faults: VecDeque<crate::Fault>,
    /// Faults every REST call may meet by chance (none by default).
    pub random_faults: crate::RandomFaults,
    /// The same for the REST API's reads (GET): what polling meets when
    /// Bitbucket throttles it.
    pub read_faults: VecDeque<crate::Fault>,
    /// Every write call of the REST API received, in order (the pages'
    /// forms are a person's clicks, not calls: they are not here).
    pub calls: Vec<crate::Call>,
    /// The incoming "External application" links (OAuth 2.0 clients).
    pub oauth2_clients: Vec<oauth2::OAuth2Client>,
    /// Codes the consent page gave out.
    pub oauth2_codes: Vec<oauth2::OAuth2Code>,
    pub oauth2_refresh_tokens: Vec<oauth2::OAuth2RefreshToken>,
    /// The OAuth 2.0 access tokens issued, by secret: their client, user,
    /// scope and expiry (each is also a [`Token`] in `tokens`).
    pub oauth2_access_tokens: HashMap<String, oauth2::OAuth2AccessToken>,
    /// How long an issued access token lives (3600 s; tests shorten it).
    pub oauth2_access_token_lifetime: Duration,
    /// How long a refresh token lives (90 days).
    pub oauth2_refresh_token_lifetime: Duration,
    /// How long a code may wait for its token request (10 s).
    pub oauth2_code_lifetime: Duration,
    /// Application links with incoming OAuth 1.0a authentication (none in
    /// the sample: the admin creates them).
    pub application_links: Vec<oauth1::ApplicationLink>,
    pub oauth1_request_tokens: Vec<oauth1::RequestToken>,
    pub oauth1_access_tokens: Vec<oauth1::AccessToken>,
    /// The nonces each consumer key used, with their timestamps.
    pub oauth1_nonces: HashMap<String, Vec<(String, u64)>>,
    /// How far this server's clock is ahead of the host's, in seconds
    /// (negative: behind): a Bitbucket whose clock drifted, for the
    /// timestamp check of signed requests.
    pub oauth1_clock_offset_seconds: i64,
    /// The next signed requests that find their nonce already used, as when
    /// something between resent a request whose answer it lost.
    pub oauth1_replayed_requests: u32,
}

/// The token the demo and the tests start with.
pub const DEMO_TOKEN: &str = "BBDC-demo-token-0000000000000000000000000000";
pub const DEMO_USER: &str = "jcitizen";
pub use oauth2::{DEMO_OAUTH2_CLIENT_ID, DEMO_OAUTH2_CLIENT_SECRET};

impl Instance {
    /// A small instance: two users, three projects, 60 repositories (more
    /// than one page), and the demo token of `jcitizen`, which reads all and
    /// administers every repository (so the demo can manage its webhooks);
    /// and the demo OAuth 2.0 link, without its redirect URL.
    pub fn sample() -> Self {
        let (branches, commits) = Self::sample_history();
        let projects = vec![
            Project { id: 363, key: "PRJ".into(), name: "Platform".into() },
            Project { id: 909, key: "OPS".into(), name: "Operations".into() },
            Project { id: 910, key: "WEB".into(), name: "Web".into() },
        ];
        let repositories = (1..=60)
            .map(|n| {
                let project = &projects[(n as usize) % projects.len()];
                let slug = if n == 1 { "my-repo".to_owned() } else { format!("service-{n:02}") };
                Repository { id: n, name: slug.clone(), slug, project_key: project.key.clone() }
            })
            .collect();
        Self {
            version: "8.19.1".into(),
            context_path: String::new(),
            users: vec![
                User {
                    id: 101,
                    slug: DEMO_USER.into(),
                    display_name: "Jane Citizen".into(),
                    email: "jane@example.com".into(),
                },
                User {
                    id: 102,
                    slug: "jsmith".into(),
                    display_name: "John Smith".into(),
                    email: "john@example.com".into(),
                },
            ],
            projects,
            repositories,
            tokens: vec![Token {
                secret: DEMO_TOKEN.into(),
                owner: DEMO_USER.into(),
                project_read: true,
                repository_read: true,
                repository_admin: true,
            }],
            delay: Duration::ZERO,
            redirect_to: None,
            builds_endpoint: true,
            build_statuses: Vec::new(),
            build_status_index: HashMap::new(),
            pull_requests: vec![pull_requests::PullRequest::sample(), pull_requests::PullRequest::of_sender()],
            comments: Vec::new(),
            branches,
            commits,
            hooks: Vec::new(),
            deliveries: VecDeque::new(),
            failing_hook_repositories: Vec::new(),
            faults: VecDeque::new(),
            random_faults: crate::RandomFaults::default(),
            read_faults: VecDeque::new(),
            calls: Vec::new(),
            oauth2_clients: vec![oauth2::OAuth2Client::demo()],
            oauth2_codes: Vec::new(),
            oauth2_refresh_tokens: Vec::new(),
            oauth2_access_tokens: HashMap::new(),
            oauth2_access_token_lifetime: oauth2::ACCESS_TOKEN_LIFETIME,
            oauth2_refresh_token_lifetime: oauth2::REFRESH_TOKEN_LIFETIME,
            oauth2_code_lifetime: oauth2::CODE_LIFETIME,
            application_links: Vec::new(),
            oauth1_request_tokens: Vec::new(),
            oauth1_access_tokens: Vec::new(),
            oauth1_nonces: HashMap::new(),
            oauth1_clock_offset_seconds: 0,
            oauth1_replayed_requests: 0,
        }
    }

    /// A repository by project key (any case) and slug.
    pub fn repository(&self, key: &str, slug: &str) -> Option<&Repository> {
        self.repositories.iter().find(|r| r.project_key.eq_ignore_ascii_case(key) && r.slug == slug)
    }
}

pub type Shared = Arc<RwLock<Instance>>;

/// The instance to read, shared: no handler copies it (its logs of calls
/// and statuses grow without bound under load). A handler that goes on to
/// change it drops this first: std's lock is not reentrant.
fn read(state: &Shared) -> RwLockReadGuard<'_, Instance> {
    state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(state: &Shared) -> RwLockWriteGuard<'_, Instance> {
    state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A page a person looks at, titled as Bitbucket titles its pages.
fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{} - Bitbucket</title></head><body>{body}</body></html>",
        crate::escape(title)
    ))
}

/// Bitbucket's validation error: the field in `context`, no exception name.
fn invalid(context: &str, message: &str) -> Response {
    let body = json!({"errors": [{"context": context, "message": message, "exceptionName": null}]});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Bitbucket's answer to a caller that may not do what it asked.
fn not_permitted() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "You are not permitted to access this resource",
        "com.atlassian.bitbucket.AuthorisationException",
    )
}

fn no_such_repository(key: &str, slug: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Repository {key}/{slug} does not exist."),
        "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
    )
}

/// The caller of a call that needs REPO_READ on `key/slug`, and the
/// repository; otherwise Bitbucket's refusal (401 without the permission,
/// 404 for a repository that does not exist).
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn repository_reader(
    instance: &Instance,
    headers: &HeaderMap,
    key: &str,
    slug: &str,
) -> Result<(Token, Repository), Response> {
    let token = caller(instance, headers)?.filter(|t| t.repository_read).ok_or_else(not_permitted)?;
    let repository = instance.repository(key, slug).cloned().ok_or_else(|| no_such_repository(key, slug))?;
    Ok((token, repository))
}

/// Milliseconds since the epoch, as Bitbucket writes times.
fn epoch_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Bitbucket's error body.
fn error(status: StatusCode, message: &str, exception: &str) -> Response {
    let body = json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]});
    (status, Json(body)).into_response()
}

/// Who the request authenticates as: `Ok(None)` when anonymous, `Err` with
/// Bitbucket's 401 when the token is not one of the instance's, or is an
/// OAuth 2.0 access token past its expiry (the same answer: Bitbucket does
/// not say which). A request signed with OAuth 1.0a arrives here verified,
/// its header replaced by its access token's own `Bearer`
/// ([`oauth1::authenticate`], which refuses the others before any handler
/// runs); an `OAuth` header that got here unverified finds no token.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn caller(instance: &Instance, headers: &HeaderMap) -> Result<Option<Token>, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let secret = value.strip_prefix("Bearer ").unwrap_or_default().trim();
    match instance.tokens.iter().find(|t| t.secret == secret && !instance.oauth2_expired(secret)) {
        Some(token) => Ok(Some(token.clone())),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Please check your credentials and try again.",
            "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
        )),
    }
}

/// Adds `X-AUSERNAME`, as Bitbucket does on authenticated answers.
fn as_user(token: &Option<Token>, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    if let Some(value) = token.as_ref().and_then(|t| HeaderValue::from_str(&t.owner).ok()) {
        response.headers_mut().insert("x-ausername", value);
    }
    response
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    start: Option<usize>,
    limit: Option<usize>,
    name: Option<String>,
}

/// Bitbucket's paging: `size`, `limit`, `isLastPage`, `start`, and
/// `nextPageStart` when there is more.
fn paged(values: Vec<Value>, query: &PageQuery) -> Value {
    let start = query.start.unwrap_or(0);
    let limit = query.limit.unwrap_or(25).clamp(1, 1000);
    let page: Vec<Value> = values.iter().skip(start).take(limit).cloned().collect();
    let is_last = start + page.len() >= values.len();
    let mut body = json!({"size": page.len(), "limit": limit, "isLastPage": is_last, "start": start, "values": page});
    if !is_last {
        body["nextPageStart"] = json!(start + limit);
    }
    body
}

fn project_json(project: &Project, base: &str) -> Value {
    json!({
        "key": project.key, "id": project.id, "name": project.name, "public": false, "type": "NORMAL",
        "links": {"self": [{"href": format!("{base}/projects/{}", project.key)}]}
    })
}

fn repository_json(instance: &Instance, repository: &Repository, base: &str) -> Value {
    let project = instance.projects.iter().find(|p| p.key == repository.project_key);
    let key = repository.project_key.to_lowercase();
    json!({
        "slug": repository.slug, "id": repository.id, "name": repository.name, "scmId": "git",
        "state": "AVAILABLE", "statusMessage": "Available", "forkable": true, "public": false,
        "project": project.map(|p| project_json(p, base)),
        "links": {
            "clone": [
                {"href": format!("{base}/scm/{key}/{}.git", repository.slug), "name": "http"}
            ],
            "self": [{"href": format!("{base}/projects/{}/repos/{}/browse", repository.project_key, repository.slug)}]
        }
    })
}

fn base_url(headers: &HeaderMap, instance: &Instance) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}{}", instance.context_path)
}

async fn application_properties(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let instance = read(&state);
    let token = match caller(&instance, &headers) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    as_user(
        &token,
        Json(
            json!({"version": instance.version, "buildNumber": "8019001", "buildDate": "1717372800000", "displayName": "Bitbucket"}),
        ),
    )
}

async fn whoami(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let instance = read(&state);
    match caller(&instance, &headers) {
        Ok(token) => {
            let name = token.as_ref().map(|t| t.owner.clone()).unwrap_or_default();
            as_user(&token, ([(header::CONTENT_TYPE, "text/plain;charset=UTF-8")], name))
        }
        Err(refused) => refused,
    }
}

async fn user(State(state): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> Response {
    let instance = read(&state);
    let token = match caller(&instance, &headers) {
        Ok(Some(token)) => Some(token),
        Ok(None) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "You are not permitted to access this resource",
                "com.atlassian.bitbucket.AuthorisationException",
            )
        }
        Err(refused) => return refused,
    };
    let base = base_url(&headers, &instance);
    match instance.users.iter().find(|u| u.slug == slug) {
        Some(user) => as_user(
            &token,
            Json(json!({
                "name": user.slug, "emailAddress": user.email, "id": user.id, "displayName": user.display_name,
                "active": true, "slug": user.slug, "type": "NORMAL",
                "links": {"self": [{"href": format!("{base}/users/{}", user.slug)}]}
            })),
        ),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("User {slug} does not exist."),
            "com.atlassian.bitbucket.user.NoSuchUserException",
        ),
    }
}

/// Projects the token may read; none without project read (Bitbucket lists
/// what the caller can see, it does not refuse the call).
async fn projects(State(state): State<Shared>, headers: HeaderMap, Query(query): Query<PageQuery>) -> Response {
    let instance = read(&state);
    let token = match caller(&instance, &headers) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let base = base_url(&headers, &instance);
    let visible = token.as_ref().is_some_and(|t| t.project_read);
    let values = if visible { instance.projects.iter().map(|p| project_json(p, &base)).collect() } else { Vec::new() };
    as_user(&token, Json(paged(values, &query)))
}

fn repositories_of(
    instance: &Instance,
    token: &Option<Token>,
    project: Option<&str>,
    query: &PageQuery,
    base: &str,
) -> Value {
    let visible = token.as_ref().is_some_and(|t| t.repository_read);
    let name = query.name.as_deref().unwrap_or_default().to_lowercase();
    let values = instance
        .repositories
        .iter()
        .filter(|_| visible)
        .filter(|r| project.is_none_or(|p| r.project_key.eq_ignore_ascii_case(p)))
        .filter(|r| r.name.to_lowercase().contains(&name))
        .map(|r| repository_json(instance, r, base))
        .collect();
    paged(values, query)
}

async fn repositories(State(state): State<Shared>, headers: HeaderMap, Query(query): Query<PageQuery>) -> Response {
    let instance = read(&state);
    let token = match caller(&instance, &headers) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let base = base_url(&headers, &instance);
    let body = repositories_of(&instance, &token, None, &query, &base);
    as_user(&token, Json(body))
}

async fn project_repositories(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let instance = read(&state);
    let token = match caller(&instance, &headers) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    if !instance.projects.iter().any(|p| p.key.eq_ignore_ascii_case(&key)) {
        return error(
            StatusCode::NOT_FOUND,
            &format!("Project {key} does not exist."),
            "com.atlassian.bitbucket.project.NoSuchProjectException",
        );
    }
    let base = base_url(&headers, &instance);
    let body = repositories_of(&instance, &token, Some(&key), &query, &base);
    as_user(&token, Json(body))
}

/// One repository by project key and slug; a token without repository read,
/// like an unknown repository, gets Bitbucket's 404.
async fn repository(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug)): Path<(String, String)>,
) -> Response {
    let instance = read(&state);
    let token = match caller(&instance, &headers) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let visible = token.as_ref().is_some_and(|t| t.repository_read);
    match instance.repository(&key, &slug).filter(|_| visible) {
        Some(found) => {
            let base = base_url(&headers, &instance);
            as_user(&token, Json(repository_json(&instance, found, &base)))
        }
        None => no_such_repository(&key, &slug),
    }
}

/// What a browser gets from a path Bitbucket does not serve, such as an API
/// URL with the wrong context path: the login page, as HTML, status 200.
async fn login_page() -> Response {
    Html(
        "<!DOCTYPE html><html><head><title>Log in - Bitbucket</title></head><body>\
         <form id=\"form-login\" action=\"/j_atl_security_check\" method=\"post\">\
         <input name=\"j_username\"><input name=\"j_password\" type=\"password\"></form></body></html>",
    )
    .into_response()
}

/// The configured delay and redirect, before anything else; then, for a
/// write call of the REST API, the next fault a test asked for, and the
/// call's record. The REST API is what is under `/rest/` (below the context
/// path); the pages' forms (webhooks, pushes, merges) are a person's
/// clicks, which tests do not count among Bitgate's calls. The OAuth 2.0
/// provider's endpoints are under `/rest/` too but are the sign-in, not the
/// REST API: a fault queued for Bitgate's next call must reach that call,
/// not a consent click or a token request before it.
async fn behaviour(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let (delay, redirect_to, context_path) = {
        let instance = state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (instance.delay, instance.redirect_to.clone(), instance.context_path.clone())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(target) = redirect_to {
        return (StatusCode::FOUND, [(header::LOCATION, target)]).into_response();
    }
    let path = request.uri().path();
    let below = path.strip_prefix(context_path.as_str()).unwrap_or(path);
    let rest = below.starts_with("/rest/") && !below.starts_with("/rest/oauth2/");
    let writes = rest && !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let reads = rest && request.method() == Method::GET;
    // A fault by chance first; otherwise the next queued one, if any.
    let fault = if rest {
        let mut instance = write(&state);
        instance.random_faults.draw().or_else(|| {
            if writes {
                instance.faults.pop_front()
            } else if reads {
                instance.read_faults.pop_front()
            } else {
                None
            }
        })
    } else {
        None
    };
    if !writes && fault.is_none() {
        return next.run(request).await;
    }
    let (method, path, at) = (request.method().clone(), request.uri().path().to_owned(), Instant::now());
    let response = match fault {
        Some(crate::Fault::RateLimited { retry_after_seconds }) => {
            let mut refused = error(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded the rate limit for this resource. Try again later.",
                "com.atlassian.bitbucket.throttle.ThrottledException",
            );
            if let Some(seconds) = retry_after_seconds {
                refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            refused
        }
        Some(crate::Fault::Unavailable) => {
            (StatusCode::SERVICE_UNAVAILABLE, Html("<h1>503 Service Unavailable</h1>")).into_response()
        }
        None => next.run(request).await,
    };
    let status = response.status().as_u16();
    if writes {
        write(&state).calls.push(crate::Call { method, path, at, status });
    }
    response
}

pub fn router(state: Shared) -> Router {
    let context_path = read(&state).context_path.clone();
    let api = Router::new()
        .route("/rest/api/1.0/application-properties", get(application_properties))
        .route("/plugins/servlet/applinks/whoami", get(whoami))
        .route("/rest/api/1.0/users/{slug}", get(user))
        .route("/rest/api/1.0/projects", get(projects))
        .route("/rest/api/1.0/projects/{key}/repos", get(project_repositories))
        .route("/rest/api/1.0/projects/{key}/repos/{slug}", get(repository))
        .route("/rest/api/1.0/repos", get(repositories))
        .merge(builds::routes())
        .merge(pull_requests::routes())
        .merge(hooks::routes())
        .merge(webhooks_api::routes())
        .merge(branches::routes())
        .merge(oauth2::routes())
        .merge(oauth1::routes())
        .merge(repository_page::routes());
    let routes = if context_path.is_empty() { api } else { Router::new().nest(&context_path, api) };
    routes
        .fallback(login_page)
        .layer(middleware::from_fn_with_state(state.clone(), oauth1::authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), behaviour))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_bitbucket_paging() {
        let values: Vec<Value> = (0..30).map(|n| json!(n)).collect();
        let first = paged(values.clone(), &PageQuery { start: None, limit: None, name: None });
        assert_eq!((first["size"].as_u64(), first["isLastPage"].as_bool()), (Some(25), Some(false)));
        assert_eq!(first["nextPageStart"], 25);
        let last = paged(values, &PageQuery { start: Some(25), limit: None, name: None });
        assert_eq!((last["size"].as_u64(), last["isLastPage"].as_bool()), (Some(5), Some(true)));
        assert!(last.get("nextPageStart").is_none());
    }
}
