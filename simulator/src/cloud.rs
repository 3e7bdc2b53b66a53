//! Bitbucket Cloud, as far as Bitgate talks to it: the OAuth 2.0 consumer
//! flows of bitbucket.org (`/site/oauth2/authorize` with its Grant and Deny
//! page, `/site/oauth2/access_token` with HTTP Basic client authentication
//! and three grants) and the REST API 2.0 of api.bitbucket.org (`/2.0/user`,
//! workspaces, repositories with Cloud's paging), with the shapes and error
//! bodies of Atlassian's documentation and ../shared/bitbucket-fixtures.
//! Both hosts are served on the simulator's one address.
//!
//! It answers as Bitbucket Cloud does since the changes Atlassian enforced
//! on 4 May 2026 ("OAuth 2.0 and API authentication changes for Bitbucket
//! Cloud"): token answers name the granted scopes `scope` (OAuth's field;
//! [`Instance::scope_field`] brings back the old `scopes`), client
//! credentials get no refresh token and act as the consumer's **app user**,
//! which reaches only the workspace that owns the consumer, refresh tokens
//! rotate on every use, and an access token is accepted only in
//! `Authorization: Bearer`, never in the query string.
//!
//! What Bitgate reports back (build statuses, pull requests and their
//! comments, the faults tests ask for, and the pages a person watching the
//! demo opens) is in `cloud_statuses.rs`; the repository webhooks a caller
//! manages in `cloud_hooks.rs`; the branches it polls in `cloud_branches.rs`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use crate::escape;
use axum::{
    extract::{Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Json, Router,
};
use base64::{engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// A child module in a file beside this one: it reads the instance's private
// parts (tokens, helpers) without widening their visibility.
#[path = "cloud_statuses.rs"]
mod statuses;

#[path = "cloud_hooks.rs"]
mod hooks;

#[path = "cloud_branches.rs"]
mod branches;

pub use branches::Branch;
pub use hooks::Hook;
pub use statuses::{BuildStatus, Comment, PullRequest, PullRequestState};

pub use crate::{Call, Fault};

/// An OAuth consumer of a workspace.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub key: String,
    pub secret: String,
    pub name: String,
    /// Bitbucket requires one for the authorization-code grant.
    pub callback_url: Option<String>,
    /// "This is a private consumer": allowed the client-credentials grant.
    pub private: bool,
    /// What the consumer was given, such as `account repository`.
    pub scopes: Vec<String>,
    /// The workspace that owns the consumer: the only one its client
    /// credentials reach.
    pub workspace: String,
    /// The app user its client-credentials tokens act as.
    pub app_user: AppUser,
}

/// The account Bitbucket gives a consumer for its client-credentials
/// tokens: not a person, so it has no `username` or `nickname`.
#[derive(Debug, Clone)]
pub struct AppUser {
    pub display_name: String,
    pub uuid: String,
    pub account_id: String,
}

#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub display_name: String,
    pub uuid: String,
    pub account_id: String,
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub slug: String,
    pub name: String,
    pub uuid: String,
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub uuid: String,
    pub workspace: String,
    pub slug: String,
    pub name: String,
    pub project_key: String,
}

/// A code given out by the authorize page, spent by one token request.
#[derive(Debug, Clone)]
struct Code {
    consumer: String,
    user: String,
    challenge: Option<String>,
    /// The callback the code was sent to: a token request naming another is refused.
    redirect_uri: String,
    used: bool,
}

/// Who a token acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Actor {
    /// The person who approved (authorization code, and its refreshes).
    User(String),
    /// The consumer's app user (client credentials).
    App,
}

/// What a token stands for.
#[derive(Debug, Clone)]
struct Grant {
    consumer: String,
    actor: Actor,
    scopes: Vec<String>,
}

/// The name under which token answers list the granted scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeField {
    /// `scope`, OAuth's standard name: Bitbucket since May 2026.
    Scope,
    /// `scopes`: Bitbucket before May 2026, and proxies that still rewrite to it.
    Scopes,
    /// Neither: a broken server or proxy.
    Missing,
}

/// Everything the simulated Cloud knows; tests change it while it runs.
#[derive(Debug, Clone)]
pub struct Instance {
    pub consumers: Vec<Consumer>,
    pub users: Vec<User>,
    /// Who is logged in to bitbucket.org in the browser that approves.
    pub signed_in: String,
    pub workspaces: Vec<Workspace>,
    pub repositories: Vec<Repository>,
    /// Seconds an access token lives (7200 on Bitbucket; tests shorten it).
    pub expires_in: u64,
    /// How token answers name the granted scopes.
    pub scope_field: ScopeField,
    codes: HashMap<String, Code>,
    access_tokens: HashMap<String, (Grant, Instant)>,
    /// Refresh tokens, and whether they were spent (Bitbucket rotates them).
    refresh_tokens: HashMap<String, (Grant, bool)>,
    issued: u64,
    pub pull_requests: Vec<PullRequest>,
    /// Commits Cloud can name in full from a prefix, as `(workspace/slug,
    /// 40 hex digits)`: the pull requests' heads are known besides these.
    pub commits: Vec<(String, String)>,
    /// Every build status posted, in the order they were first created.
    pub statuses: Vec<BuildStatus>,
    /// Every pull-request comment not deleted, in the order they were created.
    pub comments: Vec<Comment>,
    /// The repositories' webhooks, in the order they were created.
    pub hooks: Vec<Hook>,
    /// The repositories' branches and their heads.
    pub branches: Vec<Branch>,
    /// The last comment id given out: ids only grow, even past deletions.
    comment_ids: u64,
    /// Faults the next write requests (POST, PUT, DELETE) to the REST routes
    /// under `/2.0/repositories/` meet, one each, before any token check.
    pub faults: VecDeque<Fault>,
    /// Every write request to those routes, faulted or not, in the order answered.
    pub calls: Vec<Call>,
}

/// The consumer the demo and the tests start with: private, with a callback.
pub const DEMO_KEY: &str = "demo-consumer-key";
pub const DEMO_SECRET: &str = "demo-consumer-secret-0000000000";
pub const DEMO_WORKSPACE: &str = "acme";
pub const DEMO_USER: &str = "ada";
/// Ada's personal workspace, which the demo consumer's app user cannot reach.
pub const DEMO_PERSONAL_WORKSPACE: &str = "ada";
/// The display name of the demo consumer's app user.
pub const DEMO_APP_USER: &str = "Bitgate";
/// The demo workspace's repository that holds the sample pull request.
pub const DEMO_REPOSITORY: &str = "website";
/// The sample pull request: open, from `feature/login` into `main`.
pub const DEMO_PULL_REQUEST: u64 = 1;
/// The head commit of the sample pull request's source branch.
pub const DEMO_PR_COMMIT: &str = "9f2c4a1b7e3d5f60812a4b6c8d0e2f4a6b8c0d1e";

impl Instance {
    /// One workspace with 40 repositories (more than one page), its owner
    /// with a personal workspace of two repositories, the demo consumer of
    /// the first workspace, whose callback is `callback_url`, and one open
    /// pull request by the owner on the workspace's first repository.
    pub fn sample(callback_url: &str) -> Self {
        let workspace = Workspace { slug: DEMO_WORKSPACE.into(), name: "Acme".into(), uuid: braced(1) };
        let personal = Workspace { slug: DEMO_PERSONAL_WORKSPACE.into(), name: "Ada Lovelace".into(), uuid: braced(2) };
        let personal_repositories = [(2001, "notes"), (2002, "dotfiles")].map(|(n, slug)| Repository {
            uuid: braced(n),
            workspace: DEMO_PERSONAL_WORKSPACE.into(),
            slug: slug.into(),
            name: slug.into(),
            project_key: "PERS".into(),
        });
        let mut repositories: Vec<Repository> = (1..=40)
            .map(|n| {
                let slug = if n == 1 { DEMO_REPOSITORY.to_owned() } else { format!("service-{n:02}") };
                Repository {
                    uuid: braced(1000 + n),
                    workspace: DEMO_WORKSPACE.into(),
                    name: slug.clone(),
                    slug,
                    project_key: "PROJ".into(),
                }
            })
            .collect();
        repositories.extend(personal_repositories);
        let owner = User {
            username: DEMO_USER.into(),
            display_name: "Ada Lovelace".into(),
            uuid: braced(7),
            account_id: "557058:0f1c8a3e-7b7e-4f3f-9a1c-2b3c4d5e6f70".into(),
        };
        let full_name = format!("{DEMO_WORKSPACE}/{DEMO_REPOSITORY}");
        let pull_request = PullRequest {
            id: DEMO_PULL_REQUEST,
            repository: full_name.clone(),
            source_repository: full_name,
            source_branch: "feature/login".into(),
            source_commit: DEMO_PR_COMMIT.into(),
            destination_branch: "main".into(),
            destination_commit: "0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5".into(),
            state: PullRequestState::Open,
            title: "Add the login page".into(),
            author: owner.uuid.clone(),
        };
        Self {
            consumers: vec![Consumer {
                key: DEMO_KEY.into(),
                secret: DEMO_SECRET.into(),
                name: "Bitgate".into(),
                callback_url: Some(callback_url.into()),
                private: true,
                scopes: ["account", "repository", "pullrequest", "webhook", "project"].map(String::from).to_vec(),
                workspace: DEMO_WORKSPACE.into(),
                app_user: AppUser {
                    display_name: DEMO_APP_USER.into(),
                    uuid: braced(8),
                    account_id: "712020:5b1d2e4f-0a6c-4e8b-9d7f-3c2b1a0e9f88".into(),
                },
            }],
            users: vec![owner],
            signed_in: DEMO_USER.into(),
            workspaces: vec![workspace, personal],
            repositories,
            expires_in: 7200,
            scope_field: ScopeField::Scope,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            issued: 0,
            pull_requests: vec![pull_request],
            // The heads the sender's deliveries name (`sender::cloud_push`, `cloud_pull_request`).
            commits: [
                "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
                "141977fedf5cf35aa290ac87d4b5177ac4cd9de1",
                "507a576e59b3e4d8f5d1e9c0b2a3f4e5d6c7b8a9",
            ]
            .map(|hash| (format!("{DEMO_WORKSPACE}/{DEMO_REPOSITORY}"), hash.to_owned()))
            .to_vec(),
            statuses: Vec::new(),
            comments: Vec::new(),
            hooks: Vec::new(),
            branches: Branch::sample(),
            comment_ids: 0,
            faults: VecDeque::new(),
            calls: Vec::new(),
        }
    }

    fn next_secret(&mut self, prefix: &str) -> String {
        self.issued += 1;
        let digest = Sha256::digest(format!("{prefix}{}{:?}", self.issued, Instant::now()).as_bytes());
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&digest[..18]))
    }

    /// Makes every access token given out so far expired, as two hours passing would.
    pub fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for (_, expires) in self.access_tokens.values_mut() {
            *expires = now;
        }
    }

    fn consumer(&self, key: &str) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.key == key)
    }
}

/// A UUID in Bitbucket's braces, made from a number.
fn braced(n: u64) -> String {
    format!("{{00000000-0000-4000-8000-{n:012}}}")
}

pub type Shared = Arc<RwLock<Instance>>;

fn with<T>(state: &Shared, f: impl FnOnce(&mut Instance) -> T) -> T {
    let mut instance = state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut instance)
}

/// The OAuth error body Bitbucket answers the token endpoint with.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

/// The REST API's error body.
fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"type": "error", "error": {"message": message}}))).into_response()
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    response_type: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The page a browser sees at Bitbucket: which consumer asks for what, with
/// Grant and Deny.
async fn authorize_page(State(state): State<Shared>, Query(query): Query<AuthorizeQuery>) -> Response {
    let instance = with(&state, |i| i.clone());
    let Some(consumer) = query.client_id.as_deref().and_then(|key| instance.consumer(key)) else {
        return (StatusCode::BAD_REQUEST, Html("<h1>Invalid client_id</h1><p>No such OAuth consumer.</p>"))
            .into_response();
    };
    if consumer.callback_url.is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Html("<h1>invalid_request</h1><p>No callback uri defined for the OAuth client.</p>"),
        )
            .into_response();
    }
    if query.response_type.as_deref() != Some("code") {
        return (StatusCode::BAD_REQUEST, Html("<h1>unsupported_response_type</h1>")).into_response();
    }
    if query.code_challenge.is_some() && query.code_challenge_method.as_deref() != Some("S256") {
        return (StatusCode::BAD_REQUEST, Html("<h1>invalid_request</h1><p>Only S256 code challenges.</p>"))
            .into_response();
    }
    let hidden = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|v| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(v)))
            .unwrap_or_default()
    };
    let fields = format!(
        "{}{}{}",
        hidden("client_id", &query.client_id),
        hidden("state", &query.state),
        hidden("code_challenge", &query.code_challenge)
    );
    Html(format!(
        "<!DOCTYPE html><html><head><title>Authorize {name} - Bitbucket</title></head><body>\
         <h1>{name} is requesting access to your Bitbucket account</h1>\
         <p>Signed in as {user}. It asks to: {scopes}.</p>\
         <form method=\"post\" action=\"/site/oauth2/authorize\">{fields}\
         <button type=\"submit\" name=\"decision\" value=\"grant\">Grant access</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Cancel</button></form></body></html>",
        name = escape(&consumer.name),
        user = escape(&instance.signed_in),
        scopes = escape(&consumer.scopes.join(", ")),
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct Decision {
    client_id: String,
    state: Option<String>,
    code_challenge: Option<String>,
    decision: String,
}

/// Grant or Deny: back to the consumer's callback, with a code or the error.
async fn decide(State(state): State<Shared>, Form(decision): Form<Decision>) -> Response {
    let outcome = with(&state, |instance| {
        let consumer = instance.consumer(&decision.client_id)?.clone();
        let callback = consumer.callback_url.clone()?;
        let mut target = url::Url::parse(&callback).ok()?;
        if decision.decision == "grant" {
            let code = instance.next_secret("code-");
            let user = instance.signed_in.clone();
            instance.codes.insert(
                code.clone(),
                Code {
                    consumer: consumer.key.clone(),
                    user,
                    challenge: decision.code_challenge.clone(),
                    redirect_uri: callback.clone(),
                    used: false,
                },
            );
            target.query_pairs_mut().append_pair("code", &code);
        } else {
            target
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("error_description", "The user denied access to the application.");
        }
        if let Some(value) = &decision.state {
            target.query_pairs_mut().append_pair("state", value);
        }
        Some(target.to_string())
    });
    match outcome {
        Some(target) => Redirect::to(&target).into_response(),
        None => (StatusCode::BAD_REQUEST, Html("<h1>Invalid client_id</h1>")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The consumer named by HTTP Basic authentication (or the form's fields).
fn client(headers: &HeaderMap, request: &TokenRequest) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| pair.split_once(':').map(|(k, s)| (k.to_owned(), s.to_owned())));
    basic.or_else(|| Some((request.client_id.clone()?, request.client_secret.clone()?)))
}

fn issue(instance: &mut Instance, grant: Grant, with_refresh: bool, kind: &str) -> Value {
    let access = instance.next_secret("cloud-access-");
    let expires = Instant::now() + Duration::from_secs(instance.expires_in);
    instance.access_tokens.insert(access.clone(), (grant.clone(), expires));
    let mut body = json!({
        "access_token": access, "expires_in": instance.expires_in, "token_type": "bearer", "state": kind,
    });
    match instance.scope_field {
        ScopeField::Scope => body["scope"] = json!(grant.scopes.join(" ")),
        ScopeField::Scopes => body["scopes"] = json!(grant.scopes.join(" ")),
        ScopeField::Missing => {}
    }
    if with_refresh {
        let refresh = instance.next_secret("cloud-refresh-");
        instance.refresh_tokens.insert(refresh.clone(), (grant, false));
        body["refresh_token"] = json!(refresh);
    }
    body
}

async fn token(State(state): State<Shared>, headers: HeaderMap, Form(request): Form<TokenRequest>) -> Response {
    with(&state, |instance| {
        let Some((key, secret)) = client(&headers, &request) else {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client credentials missing");
        };
        let Some(consumer) = instance.consumer(&key).filter(|c| c.secret == secret).cloned() else {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid OAuth client credentials");
        };
        match request.grant_type.as_deref() {
            Some("authorization_code") => {
                if consumer.callback_url.is_none() {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "No callback uri defined for the OAuth client.",
                    );
                }
                let code = request.code.clone().unwrap_or_default();
                let Some(found) = instance.codes.get_mut(&code).filter(|c| c.consumer == consumer.key) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The authorization code is invalid.");
                };
                if found.used {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The authorization code has already been used.",
                    );
                }
                found.used = true;
                if request.redirect_uri.as_ref().is_some_and(|uri| *uri != found.redirect_uri) {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The redirect_uri does not match the one the code was issued to.",
                    );
                }
                if let Some(challenge) = &found.challenge {
                    let verifier = request.code_verifier.clone().unwrap_or_default();
                    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "The code verifier does not match the challenge.",
                        );
                    }
                }
                let grant = Grant {
                    consumer: consumer.key.clone(),
                    actor: Actor::User(found.user.clone()),
                    scopes: consumer.scopes.clone(),
                };
                Json(issue(instance, grant, true, "authorization_code")).into_response()
            }
            Some("refresh_token") => {
                let refresh = request.refresh_token.clone().unwrap_or_default();
                let Some((grant, spent)) =
                    instance.refresh_tokens.get_mut(&refresh).filter(|(g, _)| g.consumer == consumer.key)
                else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh_token");
                };
                if *spent {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh_token");
                }
                *spent = true;
                let grant = grant.clone();
                Json(issue(instance, grant, true, "refresh_token")).into_response()
            }
            Some("client_credentials") => {
                if !consumer.private {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "unauthorized_client",
                        "Client credentials are only allowed for private consumers.",
                    );
                }
                // Since May 2026: no refresh token, and the consumer's app user.
                let grant =
                    Grant { consumer: consumer.key.clone(), actor: Actor::App, scopes: consumer.scopes.clone() };
                Json(issue(instance, grant, false, "client_credentials")).into_response()
            }
            _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type"),
        }
    })
}

/// Who a Bearer token acts as.
#[derive(Debug, Clone)]
enum Principal {
    User(User),
    /// A consumer's app user, and the workspace that owns the consumer.
    App(AppUser, String),
}

impl Principal {
    /// Whether it reaches the workspace's data: a person reaches every
    /// workspace here (membership is not simulated); an app user only its
    /// consumer's.
    fn reaches(&self, workspace: &str) -> bool {
        match self {
            Principal::User(_) => true,
            Principal::App(_, own) => own == workspace,
        }
    }

    /// The account's UUID: what a status or a comment records as its author.
    fn uuid(&self) -> &str {
        match self {
            Principal::User(user) => &user.uuid,
            Principal::App(app_user, _) => &app_user.uuid,
        }
    }
}

/// The principal a Bearer token stands for; Cloud's 401 otherwise.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn bearer(instance: &Instance, headers: &HeaderMap) -> Result<Principal, Response> {
    caller(instance, headers).map(|(principal, _)| principal)
}

/// The principal a Bearer token stands for and the scopes it was granted;
/// Cloud's 401 otherwise.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn caller(instance: &Instance, headers: &HeaderMap) -> Result<(Principal, Vec<String>), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let invalid = || api_error(StatusCode::UNAUTHORIZED, "Invalid access token");
    match instance.access_tokens.get(token.trim()) {
        Some((_, expires)) if *expires <= Instant::now() => Err(api_error(
            StatusCode::UNAUTHORIZED,
            "Access token expired. Use your refresh token to obtain a new access token.",
        )),
        Some((grant, _)) => {
            let principal = match &grant.actor {
                Actor::User(username) => {
                    instance.users.iter().find(|u| u.username == *username).cloned().map(Principal::User)
                }
                Actor::App => {
                    instance.consumer(&grant.consumer).map(|c| Principal::App(c.app_user.clone(), c.workspace.clone()))
                }
            };
            principal.map(|principal| (principal, grant.scopes.clone())).ok_or_else(invalid)
        }
        None => Err(api_error(StatusCode::UNAUTHORIZED, "Token is invalid or not supported for this endpoint.")),
    }
}

/// Since May 2026 an access token is accepted only in the Authorization
/// header: a request that carries one in its query string is refused,
/// whatever else it carries.
async fn no_token_in_query(request: Request, next: Next) -> Response {
    let in_query = request
        .uri()
        .query()
        .is_some_and(|query| url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token"));
    if in_query {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "Access tokens are accepted only in the Authorization header (Bearer), not in the query string.",
        );
    }
    next.run(request).await
}

fn user_json(user: &User) -> Value {
    json!({
        "type": "user", "username": user.username, "display_name": user.display_name, "uuid": user.uuid,
        "account_id": user.account_id,
        "links": {"html": {"href": format!("https://bitbucket.org/{}/", user.username)}}
    })
}

fn app_user_json(app_user: &AppUser) -> Value {
    json!({
        "type": "app_user", "display_name": app_user.display_name, "uuid": app_user.uuid,
        "account_id": app_user.account_id, "account_status": "active",
        "created_on": "2026-05-04T00:00:00.000000+00:00",
        "links": {"avatar": {"href": "https://bitbucket.org/account/avatar/app-user.png"}}
    })
}

fn principal_json(principal: &Principal) -> Value {
    match principal {
        Principal::User(user) => user_json(user),
        Principal::App(app_user, _) => app_user_json(app_user),
    }
}

/// The account with this UUID, a person or a consumer's app user, as the
/// API shows it; an account the instance no longer knows keeps its UUID.
fn account_json(instance: &Instance, uuid: &str) -> Value {
    if let Some(user) = instance.users.iter().find(|u| u.uuid == uuid) {
        return user_json(user);
    }
    match instance.consumers.iter().find(|c| c.app_user.uuid == uuid) {
        Some(consumer) => app_user_json(&consumer.app_user),
        None => json!({"type": "user", "uuid": uuid, "display_name": "Former user"}),
    }
}

fn workspace_json(workspace: &Workspace) -> Value {
    json!({
        "type": "workspace", "slug": workspace.slug, "name": workspace.name, "uuid": workspace.uuid,
        "links": {"html": {"href": format!("https://bitbucket.org/{}/", workspace.slug)}}
    })
}

fn repository_json(repository: &Repository) -> Value {
    let full_name = format!("{}/{}", repository.workspace, repository.slug);
    json!({
        "type": "repository", "uuid": repository.uuid, "name": repository.name, "slug": repository.slug,
        "full_name": full_name, "scm": "git", "is_private": true,
        "project": {"type": "project", "key": repository.project_key},
        "workspace": {"type": "workspace", "slug": repository.workspace},
        "links": {"html": {"href": format!("https://bitbucket.org/{full_name}")}}
    })
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<usize>,
    pagelen: Option<usize>,
    /// Bitbucket's filter language; `name ~ "text"` is what Bitgate sends.
    q: Option<String>,
}

/// Cloud's paging: `pagelen`, `page`, `size`, `values`, and `next` while there is more.
fn paged(values: Vec<Value>, query: &PageQuery, path: &str, headers: &HeaderMap) -> Value {
    let pagelen = query.pagelen.unwrap_or(10).clamp(1, 100);
    let page = query.page.unwrap_or(1).max(1);
    let items: Vec<Value> = values.iter().skip((page - 1) * pagelen).take(pagelen).cloned().collect();
    let mut body = json!({"pagelen": pagelen, "page": page, "size": values.len(), "values": items});
    if page * pagelen < values.len() {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        // A Host header that makes no URL gets no `next` link rather than a panic.
        let Ok(mut next) = url::Url::parse(&format!("http://{host}{path}")) else { return body };
        next.query_pairs_mut()
            .append_pair("page", &(page + 1).to_string())
            .append_pair("pagelen", &pagelen.to_string());
        if let Some(q) = &query.q {
            next.query_pairs_mut().append_pair("q", q);
        }
        body["next"] = json!(next.to_string());
    }
    body
}

/// The text of a `name ~ "text"` filter.
fn name_filter(q: &Option<String>) -> String {
    q.as_deref()
        .and_then(|q| q.split_once('~'))
        .map(|(_, text)| text.trim().trim_matches('"').to_lowercase())
        .unwrap_or_default()
}

async fn current_user(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let instance = with(&state, |i| i.clone());
    match bearer(&instance, &headers) {
        Ok(principal) => Json(principal_json(&principal)).into_response(),
        Err(refused) => refused,
    }
}

async fn user_workspaces(State(state): State<Shared>, headers: HeaderMap, Query(query): Query<PageQuery>) -> Response {
    let instance = with(&state, |i| i.clone());
    let principal = match bearer(&instance, &headers) {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let values = instance
        .workspaces
        .iter()
        .filter(|w| principal.reaches(&w.slug))
        .map(|w| json!({"type": "workspace_membership", "permission": "owner", "workspace": workspace_json(w)}))
        .collect();
    Json(paged(values, &query, "/2.0/user/workspaces", &headers)).into_response()
}

async fn workspace(State(state): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> Response {
    let instance = with(&state, |i| i.clone());
    let principal = match bearer(&instance, &headers) {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    match instance.workspaces.iter().find(|w| w.slug == slug && principal.reaches(&w.slug)) {
        Some(found) => Json(workspace_json(found)).into_response(),
        None => api_error(StatusCode::NOT_FOUND, &format!("No workspace with identifier '{slug}'.")),
    }
}

async fn repositories(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let instance = with(&state, |i| i.clone());
    let principal = match bearer(&instance, &headers) {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    if !instance.workspaces.iter().any(|w| w.slug == slug && principal.reaches(&w.slug)) {
        return api_error(StatusCode::NOT_FOUND, &format!("No workspace with identifier '{slug}'."));
    }
    let name = name_filter(&query.q);
    let values = instance
        .repositories
        .iter()
        .filter(|r| r.workspace == slug && r.name.to_lowercase().contains(&name))
        .map(repository_json)
        .collect();
    Json(paged(values, &query, &format!("/2.0/repositories/{slug}"), &headers)).into_response()
}

async fn repository(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((slug, repo)): Path<(String, String)>,
) -> Response {
    let instance = with(&state, |i| i.clone());
    let principal = match bearer(&instance, &headers) {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    match visible_repository(&instance, &principal, &slug, &repo) {
        Ok(found) => Json(repository_json(found)).into_response(),
        Err(missing) => missing,
    }
}

/// The repository if the principal reaches it; Cloud's 404 otherwise (a
/// repository one cannot see is not found, not forbidden).
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn visible_repository<'a>(
    instance: &'a Instance,
    principal: &Principal,
    workspace: &str,
    slug: &str,
) -> Result<&'a Repository, Response> {
    instance
        .repositories
        .iter()
        .find(|r| r.workspace == workspace && r.slug == slug && principal.reaches(workspace))
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, &format!("Repository {workspace}/{slug} not found")))
}

pub fn router(state: Shared) -> Router {
    let rest = Router::new()
        .route("/2.0/user", get(current_user))
        .route("/2.0/user/workspaces", get(user_workspaces))
        .route("/2.0/workspaces/{workspace}", get(workspace))
        .route("/2.0/repositories/{workspace}", get(repositories))
        .route("/2.0/repositories/{workspace}/{repo}", get(repository))
        .merge(statuses::api())
        .merge(hooks::api())
        .merge(branches::api())
        .route_layer(middleware::from_fn(no_token_in_query))
        .route_layer(middleware::from_fn_with_state(state.clone(), statuses::faults_and_calls));
    Router::new()
        .route("/site/oauth2/authorize", get(authorize_page).post(decide))
        .route("/site/oauth2/access_token", post(token))
        .merge(rest)
        .merge(statuses::pages())
        .with_state(state)
}
