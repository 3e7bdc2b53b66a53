//! A repository's webhooks in Bitbucket Cloud's REST API 2.0, what a caller
//! that manages its own hook uses (bitbucket-next.md §4, "Cloud";
//! bitbucket-protocol.md §3): `GET|POST /2.0/repositories/{workspace}/
//! {repo}/hooks` (paged like every Cloud list) and `GET|PUT|DELETE
//! .../hooks/{uid}`, the uid a UUID in braces. Every call needs the OAuth
//! scope `webhook` (403 naming the scopes otherwise, as `authorized`
//! does); Cloud also wants a repository admin, which the simulator does
//! not model (it keeps no memberships).
//!
//! A body is `{description, url, active, events, skip_cert_verification,
//! secret}`. The secret is write-only: answers say `secret_set` and never
//! carry it; a PUT without `secret` keeps it, `"secret": null` or `""`
//! removes it; at most 128 characters (the `webhook_subscription` schema
//! derived from Bitbucket's OpenAPI, bitbucket-protocol.md §3; JBS's
//! `BitbucketCloudWebhook`). The answer's shape is the captured one
//! (bitbucket-fixtures/responses/cloud/hook.json). Refused, with Cloud's
//! field error: no URL or one that is not http(s), no event, an unknown
//! event, or one listed twice (400, as Data Center does, bitbucket-next.md
//! §4; UNVERIFIED for Cloud), a missing description (required by the
//! Terraform provider's `bitbucket_hook`; UNVERIFIED for the API). The
//! messages' wording is UNVERIFIED.
//!
//! Cloud sends deliveries to these hooks in the real world; the simulator's
//! Cloud has no page that makes events, so it keeps them without sending.

#![allow(
    clippy::result_large_err,
    reason = "handlers here refuse early with `?`: a refusal is the handler's answer, built once per request"
)]

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Map, Value};

use super::statuses::{answer, authorized, field_error, json_object, now};
use super::{api_error, paged, Instance, PageQuery, Shared};

/// A webhook of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// A UUID in braces.
    pub uuid: String,
    /// `workspace/slug`.
    pub repository: String,
    pub description: String,
    pub url: String,
    pub active: bool,
    /// The event keys it subscribes to, in the order given.
    pub events: Vec<String>,
    pub skip_cert_verification: bool,
    /// The secret that signs its deliveries. Never in an answer (Cloud only
    /// says `secret_set`); kept so that tests can check what was set.
    pub secret: Option<String>,
    pub created_at: String,
}

/// Cloud's repository event keys (the `webhook_subscription` schema's
/// enum, bitbucket-protocol.md §4).
pub const EVENTS: [&str; 22] = [
    "repo:push",
    "repo:fork",
    "repo:updated",
    "repo:commit_comment_created",
    "repo:commit_status_created",
    "repo:commit_status_updated",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:approved",
    "pullrequest:unapproved",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:changes_request_created",
    "pullrequest:changes_request_removed",
    "pullrequest:comment_created",
    "pullrequest:comment_updated",
    "pullrequest:comment_deleted",
    "pullrequest:comment_resolved",
    "pullrequest:comment_reopened",
    "issue:created",
    "issue:updated",
    "issue:comment_created",
];

/// The schema's limit on a secret.
const SECRET_LIMIT: usize = 128;

/// What a body sets; a field left out stays as it was.
#[derive(Debug, Default)]
struct HookFields {
    description: Option<String>,
    url: Option<String>,
    active: Option<bool>,
    events: Option<Vec<String>>,
    skip_cert_verification: Option<bool>,
    /// `Some(None)`: removed (`null` or `""`).
    secret: Option<Option<String>>,
}

fn hook_fields(body: &[u8]) -> Result<HookFields, Response> {
    let body: Map<String, Value> = json_object(body)?;
    let text = |name: &str| match body.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.trim().to_owned())),
        Some(_) => Err(field_error(name, "Not a valid string.")),
    };
    let flag = |name: &str| match body.get(name) {
        None => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(field_error(name, "Must be a valid boolean.")),
    };
    let events = match body.get("events") {
        None => None,
        Some(Value::Array(events)) => Some(
            events
                .iter()
                .map(|event| event.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| field_error("events", "Each event must be a string."))?,
        ),
        Some(_) => return Err(field_error("events", "Expected a list of events.")),
    };
    let secret = match body.get("secret") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(secret)) => Some(Some(secret.clone()).filter(|s| !s.is_empty())),
        Some(_) => return Err(field_error("secret", "Not a valid string.")),
    };
    Ok(HookFields {
        description: text("description")?,
        url: text("url")?,
        active: flag("active")?,
        events,
        skip_cert_verification: flag("skip_cert_verification")?,
        secret,
    })
}

impl Hook {
    fn apply(&mut self, fields: HookFields) {
        let keep = |target: &mut String, value: Option<String>| {
            if let Some(value) = value {
                *target = value;
            }
        };
        keep(&mut self.description, fields.description);
        keep(&mut self.url, fields.url);
        if let Some(active) = fields.active {
            self.active = active;
        }
        if let Some(events) = fields.events {
            self.events = events;
        }
        if let Some(skip) = fields.skip_cert_verification {
            self.skip_cert_verification = skip;
        }
        if let Some(secret) = fields.secret {
            self.secret = secret;
        }
    }

    /// The first problem of a hook about to be stored, as Cloud's 400.
    fn problem(&self) -> Option<Response> {
        if self.description.is_empty() {
            return Some(field_error("description", "This field is required."));
        }
        let web = url::Url::parse(&self.url)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
        if !web {
            return Some(field_error("url", "Enter a valid http or https URL."));
        }
        if self.events.is_empty() {
            return Some(field_error("events", "Choose at least one event."));
        }
        for (index, event) in self.events.iter().enumerate() {
            if !EVENTS.contains(&event.as_str()) {
                return Some(field_error("events", &format!("{event} is not a valid event.")));
            }
            if self.events[..index].contains(event) {
                return Some(field_error("events", &format!("{event} is listed more than once.")));
            }
        }
        if self.secret.as_deref().is_some_and(|s| s.chars().count() > SECRET_LIMIT) {
            return Some(field_error("secret", &format!("Ensure this value has at most {SECRET_LIMIT} characters.")));
        }
        None
    }
}

/// The hook as Cloud answers it: `secret_set`, never the secret; events
/// sorted, as in the captured answer (UNVERIFIED that Cloud always sorts).
fn hook_json(instance: &Instance, hook: &Hook) -> Value {
    let api = format!("https://api.bitbucket.org/2.0/repositories/{}", hook.repository);
    let repository = instance.repositories.iter().find(|r| format!("{}/{}", r.workspace, r.slug) == hook.repository);
    let braces = |uuid: &str| uuid.replace('{', "%7B").replace('}', "%7D");
    let mut events = hook.events.clone();
    events.sort();
    json!({
        "type": "webhook_subscription", "uuid": hook.uuid, "url": hook.url, "description": hook.description,
        "subject_type": "repository",
        "subject": {
            "type": "repository", "full_name": hook.repository,
            "name": repository.map(|r| r.name.as_str()), "uuid": repository.map(|r| r.uuid.as_str()),
            "links": {
                "self": {"href": api},
                "html": {"href": format!("https://bitbucket.org/{}", hook.repository)},
                "avatar": {"href": format!(
                    "https://bitbucket.org/avatar/{}", braces(repository.map_or("", |r| r.uuid.as_str()))
                )},
            },
        },
        "active": hook.active, "created_at": hook.created_at, "events": events,
        "skip_cert_verification": hook.skip_cert_verification, "source": null, "read_only": false,
        "secret_set": hook.secret.is_some(),
        "links": {"self": {"href": format!("{api}/hooks/{}", braces(&hook.uuid))}},
    })
}

/// The index of hook `uid` of `workspace/slug`, braces or not; Cloud's 404
/// otherwise (message UNVERIFIED).
fn find(instance: &Instance, repository: &str, uid: &str) -> Result<usize, Response> {
    let bare = |uuid: &str| uuid.trim_start_matches('{').trim_end_matches('}').to_ascii_lowercase();
    instance
        .hooks
        .iter()
        .position(|h| h.repository == repository && bare(&h.uuid) == bare(uid))
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, &format!("Webhook {uid} not found")))
}

async fn list_hooks(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "webhook")?;
        let repository = format!("{workspace}/{repo}");
        let values =
            instance.hooks.iter().filter(|h| h.repository == repository).map(|h| hook_json(instance, h)).collect();
        let path = format!("/2.0/repositories/{repository}/hooks");
        Ok(Json(paged(values, &query, &path, &headers)).into_response())
    })
}

/// `POST .../hooks`: 201 with the hook; active unless the body says
/// otherwise (UNVERIFIED default).
async fn create_hook(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "webhook")?;
        let mut hook = Hook {
            uuid: format!("{{{}}}", uuid::Uuid::new_v4()),
            repository: format!("{workspace}/{repo}"),
            description: String::new(),
            url: String::new(),
            active: true,
            events: Vec::new(),
            skip_cert_verification: false,
            secret: None,
            created_at: now(),
        };
        hook.apply(hook_fields(&body)?);
        if let Some(refused) = hook.problem() {
            return Err(refused);
        }
        let created = hook_json(instance, &hook);
        instance.hooks.push(hook);
        Ok((StatusCode::CREATED, Json(created)).into_response())
    })
}

async fn get_hook(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, uid)): Path<(String, String, String)>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "webhook")?;
        let index = find(instance, &format!("{workspace}/{repo}"), &uid)?;
        Ok(Json(hook_json(instance, &instance.hooks[index])).into_response())
    })
}

/// `PUT .../hooks/{uid}`: changes what the body names.
async fn update_hook(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, uid)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "webhook")?;
        let index = find(instance, &format!("{workspace}/{repo}"), &uid)?;
        let mut hook = instance.hooks[index].clone();
        hook.apply(hook_fields(&body)?);
        if let Some(refused) = hook.problem() {
            return Err(refused);
        }
        let updated = hook_json(instance, &hook);
        instance.hooks[index] = hook;
        Ok(Json(updated).into_response())
    })
}

async fn delete_hook(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo, uid)): Path<(String, String, String)>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "webhook")?;
        let index = find(instance, &format!("{workspace}/{repo}"), &uid)?;
        instance.hooks.remove(index);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// The REST routes of this module, under the parent's REST layers (so that
/// writes meet the queued faults and are logged).
pub(super) fn api() -> Router<Shared> {
    let hooks = "/2.0/repositories/{workspace}/{repo}/hooks";
    Router::new()
        .route(hooks, get(list_hooks).post(create_hook))
        .route(&format!("{hooks}/{{uid}}"), get(get_hook).put(update_hook).delete(delete_hook))
}
