//! A repository's webhooks in Data Center's REST API 1.0, what a caller
//! that manages its own hook uses (bitbucket-next.md §4, "Data Center"):
//! `GET|POST /rest/api/1.0/projects/{key}/repos/{slug}/webhooks` (the list
//! paged like every Data Center list, `?event=` keeping the hooks subscribed
//! to an event, `?statistics=true` adding each hook's statistics) and
//! `GET|PUT|DELETE .../webhooks/{id}` (200, 201 for a creation, 204 for a
//! deletion, 404 for an id the repository does not have: atlassian-dc-mcp#55
//! on 9.x). Every call needs REPO_ADMIN; without it Bitbucket refuses with
//! its 401, as for every permission (go-scm, atlassian-python-api #806;
//! Woodpecker reads "the list works" as "the token is an admin").
//!
//! The hooks are [`super::hooks`]' own: one made here shows on the
//! repository's webhooks page and receives what its pushes and pull
//! requests send, and one made on the page is listed here.
//!
//! Validation, as Bitbucket's (the messages' wording is UNVERIFIED unless
//! said): a name (at most 255 characters), an absolute http(s) URL, at
//! least one event, each a known event key (`"{key} is unknown"`, the text
//! go-scm matches, bitbucket-protocol.md §3) and none twice (400,
//! harness-core#39903 in bitbucket-next.md §4). Older servers refuse
//! `pr:from_ref_updated`, but no source says from which version it exists,
//! so the simulator accepts it whatever its `version`.
//!
//! Diagnostics, Data Center only: `.../webhooks/{id}/latest` (the last
//! invocation, `?event=` and `?outcome=` narrowing it), `.../statistics`
//! (`?event=`) and `.../statistics/summary` (one entry per event), computed
//! from the recorded deliveries. Their shapes are those of Atlassian's
//! webhooks plugin as its REST clients read them (lvermeulen/Bitbucket.Net
//! `WebHookInvocation`, `WebHookResult`, `WebHookStatisticsCounts`; jira.js
//! `getWebhookStatistics`, `getWebhookStatisticsSummary` and
//! `getLatestWebhookInvocation` for Jira, which ships the same plugin);
//! UNVERIFIED for Bitbucket itself, field by field as marked below.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::hooks::{Delivery, Hook, Outcome, MAX_NAME};
use super::{as_user, caller, epoch_millis, error, no_such_repository, not_permitted, paged, read, write};
use super::{Instance, PageQuery, Repository, Shared, Token};

/// The event keys a repository hook may subscribe to: Data Center's
/// repository and pull-request events (bitbucket-protocol.md §4, from
/// Atlassian's event payload page and the clients it names; both
/// `pr:reviewer:needs_work` and its newer name `changes_requested`).
pub const EVENTS: [&str; 22] = [
    "repo:refs_changed",
    "repo:modified",
    "repo:forked",
    "repo:comment:added",
    "repo:comment:edited",
    "repo:comment:deleted",
    "repo:secret_detected",
    "mirror:repo_synchronized",
    "pr:opened",
    "pr:from_ref_updated",
    "pr:to_ref_updated",
    "pr:modified",
    "pr:reviewer:updated",
    "pr:reviewer:approved",
    "pr:reviewer:unapproved",
    "pr:reviewer:needs_work",
    "pr:reviewer:changes_requested",
    "pr:merged",
    "pr:declined",
    "pr:deleted",
    "pr:comment:added",
    "pr:comment:edited",
];

/// The caller of a call that needs REPO_ADMIN on `key/slug`, and the
/// repository; otherwise Bitbucket's 401 (no permission) or 404 (no such
/// repository), in that order, as [`super::repository_reader`] refuses.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn repository_admin(
    instance: &Instance,
    headers: &HeaderMap,
    key: &str,
    slug: &str,
) -> Result<(Token, Repository), Response> {
    let token = caller(instance, headers)?.filter(|t| t.repository_admin).ok_or_else(not_permitted)?;
    let repository = instance.repository(key, slug).cloned().ok_or_else(|| no_such_repository(key, slug))?;
    Ok((token, repository))
}

/// Bitbucket's 404 for a hook the repository does not have (message and
/// exception name UNVERIFIED).
fn no_such_webhook(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Webhook {id} does not exist."),
        "com.atlassian.bitbucket.webhook.NoSuchWebhookException",
    )
}

/// Bitbucket's validation error with every problem at once, each naming its field.
fn invalid(problems: &[(&str, String)]) -> Response {
    let errors: Vec<Value> = problems
        .iter()
        .map(|(context, message)| json!({"context": context, "message": message, "exceptionName": null}))
        .collect();
    (StatusCode::BAD_REQUEST, Json(json!({"errors": errors}))).into_response()
}

fn hook_json(hook: &Hook) -> Value {
    // Data Center gives the secret back in `configuration`: that is what lets
    // a reconciler compare it with the one it holds, where Cloud only says
    // `secret_set` (bitbucket-next.md §4, "Rotation consequence").
    let configuration = match &hook.secret {
        Some(secret) => json!({"secret": secret}),
        None => json!({}),
    };
    json!({
        "id": hook.id, "name": hook.name, "createdDate": hook.created_date, "updatedDate": hook.updated_date,
        "events": hook.events, "configuration": configuration, "url": hook.url, "active": hook.active,
        "scopeType": "repository", "sslVerificationRequired": hook.ssl_verification_required,
    })
}

/// A webhook body as posted: every field optional, so that an update
/// changes only what it names (UNVERIFIED: that Bitbucket keeps the fields
/// a PUT leaves out).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Posted {
    name: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
    active: Option<bool>,
    /// Replaced as a whole: a configuration without `secret` removes it.
    configuration: Option<Map<String, Value>>,
    ssl_verification_required: Option<bool>,
}

#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn posted(body: &[u8]) -> Result<Posted, Response> {
    serde_json::from_slice(body).map_err(|_| invalid(&[("body", "The request body is not a webhook.".to_owned())]))
}

impl Posted {
    fn apply(self, hook: &mut Hook) {
        if let Some(name) = self.name {
            hook.name = name.trim().to_owned();
        }
        if let Some(url) = self.url {
            hook.url = url.trim().to_owned();
        }
        if let Some(events) = self.events {
            hook.events = events;
        }
        if let Some(active) = self.active {
            hook.active = active;
        }
        if let Some(configuration) = self.configuration {
            hook.secret =
                configuration.get("secret").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        }
        if let Some(required) = self.ssl_verification_required {
            hook.ssl_verification_required = required;
        }
    }
}

/// What is wrong with a hook about to be stored, every problem at once.
fn problems(hook: &Hook) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if hook.name.is_empty() {
        problems.push(("name", "A webhook needs a name.".to_owned()));
    } else if hook.name.chars().count() > MAX_NAME {
        problems.push(("name", format!("The name must be at most {MAX_NAME} characters.")));
    }
    let web =
        url::Url::parse(&hook.url).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
    if !web {
        problems.push(("url", "The URL must be an absolute http or https URL.".to_owned()));
    }
    if hook.events.is_empty() {
        problems.push(("events", "A webhook needs at least one event.".to_owned()));
    }
    for (index, event) in hook.events.iter().enumerate() {
        if !EVENTS.contains(&event.as_str()) {
            problems.push(("events", format!("{event} is unknown")));
        } else if hook.events[..index].contains(event) {
            problems.push(("events", format!("{event} is listed more than once.")));
        }
    }
    problems
}

fn find(instance: &Instance, repository: &Repository, id: u64) -> Option<usize> {
    instance.hooks.iter().position(|h| h.id == id && h.repository_id == repository.id)
}

/// The caller and the index of hook `id` of `key/slug`, for a call that
/// needs REPO_ADMIN; otherwise the refusal ([`repository_admin`]'s, or 404).
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn hook_of(
    instance: &Instance,
    headers: &HeaderMap,
    (key, slug, id): (&str, &str, u64),
) -> Result<(Token, usize), Response> {
    let (token, repository) = repository_admin(instance, headers, key, slug)?;
    let index = find(instance, &repository, id).ok_or_else(|| no_such_webhook(id))?;
    Ok((token, index))
}

/// `SUCCESS` for a 2xx answer, `FAILURE` for another answer, `ERROR` when
/// none came (the webhooks plugin's `InvocationOutcome`).
fn outcome(delivery: &Delivery) -> &'static str {
    match delivery.outcome {
        Outcome::Answered { status, .. } if (200..300).contains(&status) => "SUCCESS",
        Outcome::Answered { .. } => "FAILURE",
        Outcome::Unreachable(_) => "ERROR",
    }
}

fn millis(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// One invocation as `latest` and the statistics show it (Bitbucket.Net's
/// `WebHookInvocation`). UNVERIFIED: `eventScope`, and that `description`
/// is the HTTP status for an answer and the error for none. The plugin's
/// numeric `id` is left out: the simulator numbers no invocations.
fn invocation_json(hook: &Hook, delivery: &Delivery) -> Value {
    let start = millis(delivery.at);
    let duration = u64::try_from(delivery.duration.as_millis()).unwrap_or(u64::MAX);
    let description = match &delivery.outcome {
        Outcome::Answered { status, .. } => status.to_string(),
        Outcome::Unreachable(reason) => reason.clone(),
    };
    json!({
        "event": delivery.event_key,
        "eventScope": {"type": "repository", "id": hook.repository_id.to_string()},
        "duration": duration, "start": start, "finish": start.saturating_add(duration),
        "request": {"method": "POST", "url": hook.url},
        "result": {"outcome": outcome(delivery), "description": description},
    })
}

/// A hook's invocation history, for one event or all: the counts of each
/// outcome over the deliveries the instance keeps, and the last of each.
/// UNVERIFIED: the window (here from the hook's creation until now) and
/// that a `last…` without invocation is left out.
fn history(instance: &Instance, hook: &Hook, event: Option<&str>) -> Value {
    let of_hook: Vec<&Delivery> =
        instance.deliveries.iter().filter(|d| d.hook_id == hook.id && event.is_none_or(|e| d.event_key == e)).collect();
    let count = |wanted: &str| of_hook.iter().filter(|d| outcome(d) == wanted).count();
    let window = json!({"start": hook.created_date, "duration": epoch_millis().saturating_sub(hook.created_date)});
    let mut body = json!({"counts": {
        "successes": count("SUCCESS"), "failures": count("FAILURE"), "errors": count("ERROR"), "window": window,
    }});
    for (field, wanted) in [("lastSuccess", "SUCCESS"), ("lastFailure", "FAILURE"), ("lastError", "ERROR")] {
        if let Some(last) = of_hook.iter().rev().find(|d| outcome(d) == wanted) {
            body[field] = invocation_json(hook, last);
        }
    }
    body
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    start: Option<usize>,
    limit: Option<usize>,
    event: Option<String>,
    statistics: Option<bool>,
}

async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Response {
    let instance = read(&state);
    let (token, repository) = match repository_admin(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let values = instance
        .hooks
        .iter()
        .filter(|h| h.repository_id == repository.id)
        .filter(|h| query.event.as_deref().is_none_or(|e| h.events.iter().any(|own| own == e)))
        .map(|h| {
            let mut shown = hook_json(h);
            if query.statistics == Some(true) {
                shown["statistics"] = history(&instance, h, None);
            }
            shown
        })
        .collect();
    let page = PageQuery { start: query.start, limit: query.limit, name: None };
    as_user(&Some(token), Json(paged(values, &page)))
}

/// Creates a hook: active and verifying certificates unless the body says
/// otherwise (Bitbucket's defaults; UNVERIFIED for `active`).
async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut instance = write(&state);
    let (token, repository) = match repository_admin(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let posted = match posted(&body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let now = epoch_millis();
    let mut hook = Hook {
        id: instance.hooks.iter().map(|h| h.id).max().unwrap_or(0) + 1,
        repository_id: repository.id,
        name: String::new(),
        url: String::new(),
        secret: None,
        events: Vec::new(),
        active: true,
        created_date: now,
        updated_date: now,
        ssl_verification_required: true,
    };
    posted.apply(&mut hook);
    let problems = problems(&hook);
    if !problems.is_empty() {
        return invalid(&problems);
    }
    let shown = hook_json(&hook);
    instance.hooks.push(hook);
    as_user(&Some(token), (StatusCode::CREATED, Json(shown)))
}

async fn get_one(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
) -> Response {
    let instance = read(&state);
    match hook_of(&instance, &headers, (&key, &slug, id)) {
        Ok((token, index)) => as_user(&Some(token), Json(hook_json(&instance.hooks[index]))),
        Err(refused) => refused,
    }
}

async fn update(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut instance = write(&state);
    let (token, index) = match hook_of(&instance, &headers, (&key, &slug, id)) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let posted = match posted(&body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let mut hook = instance.hooks[index].clone();
    posted.apply(&mut hook);
    let problems = problems(&hook);
    if !problems.is_empty() {
        return invalid(&problems);
    }
    hook.updated_date = epoch_millis();
    let shown = hook_json(&hook);
    instance.hooks[index] = hook;
    as_user(&Some(token), Json(shown))
}

/// Deletes a hook and its deliveries.
async fn delete(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
) -> Response {
    let mut instance = write(&state);
    let (token, index) = match hook_of(&instance, &headers, (&key, &slug, id)) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    instance.hooks.remove(index);
    instance.deliveries.retain(|d| d.hook_id != id);
    as_user(&Some(token), StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct LatestQuery {
    event: Option<String>,
    outcome: Option<String>,
}

/// The hook's last invocation, narrowed by event and outcome; 204 when
/// there is none (Jira's answer from the same plugin; UNVERIFIED here).
async fn latest(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
    Query(query): Query<LatestQuery>,
) -> Response {
    let instance = read(&state);
    let (token, index) = match hook_of(&instance, &headers, (&key, &slug, id)) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let hook = &instance.hooks[index];
    let last = instance.deliveries.iter().rev().find(|d| {
        d.hook_id == hook.id
            && query.event.as_deref().is_none_or(|e| d.event_key == e)
            && query.outcome.as_deref().is_none_or(|o| o.eq_ignore_ascii_case(outcome(d)))
    });
    match last {
        Some(delivery) => as_user(&Some(token), Json(invocation_json(hook, delivery))),
        None => as_user(&Some(token), StatusCode::NO_CONTENT),
    }
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    event: Option<String>,
}

/// The hook's history over all its events, or over `?event=`.
async fn statistics(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
    Query(query): Query<EventQuery>,
) -> Response {
    let instance = read(&state);
    let (token, index) = match hook_of(&instance, &headers, (&key, &slug, id)) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    as_user(&Some(token), Json(history(&instance, &instance.hooks[index], query.event.as_deref())))
}

/// The hook's history per event it subscribes to, keyed by event.
async fn summary(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug, id)): Path<(String, String, u64)>,
) -> Response {
    let instance = read(&state);
    let (token, index) = match hook_of(&instance, &headers, (&key, &slug, id)) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let hook = &instance.hooks[index];
    let by_event: Map<String, Value> =
        hook.events.iter().map(|event| (event.clone(), history(&instance, hook, Some(event)))).collect();
    as_user(&Some(token), Json(Value::Object(by_event)))
}

pub(super) fn routes() -> Router<Shared> {
    const HOOKS: &str = "/rest/api/1.0/projects/{key}/repos/{slug}/webhooks";
    Router::new()
        .route(HOOKS, get(list).post(create))
        .route(&format!("{HOOKS}/{{id}}"), get(get_one).put(update).delete(delete))
        .route(&format!("{HOOKS}/{{id}}/latest"), get(latest))
        .route(&format!("{HOOKS}/{{id}}/statistics"), get(statistics))
        .route(&format!("{HOOKS}/{{id}}/statistics/summary"), get(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(events: &[&str]) -> Hook {
        Hook {
            id: 1,
            repository_id: 1,
            name: "Bitgate".into(),
            url: "https://bitgate.example.com/webhooks/bitbucket/dc".into(),
            secret: None,
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            active: true,
            created_date: 0,
            updated_date: 0,
            ssl_verification_required: true,
        }
    }

    #[test]
    fn a_hook_is_checked_as_data_center_checks_it() {
        assert!(problems(&hook(&["repo:refs_changed", "pr:from_ref_updated"])).is_empty());
        let twice = problems(&hook(&["pr:opened", "pr:merged", "pr:opened"]));
        assert_eq!(twice, [("events", "pr:opened is listed more than once.".to_owned())]);
        assert_eq!(problems(&hook(&["repo:push"])), [("events", "repo:push is unknown".to_owned())]);
        assert_eq!(problems(&hook(&[])).len(), 1);
        let nameless = Hook { name: String::new(), url: "ftp://host/x".into(), ..hook(&["pr:opened"]) };
        assert_eq!(problems(&nameless).iter().map(|(field, _)| *field).collect::<Vec<_>>(), ["name", "url"]);
    }

    #[test]
    fn an_update_changes_what_it_names_and_an_empty_configuration_drops_the_secret() {
        let mut stored = Hook { secret: Some("s3".into()), ..hook(&["pr:opened"]) };
        let Ok(renamed) = posted(br#"{"name": "Renamed", "active": false}"#) else { panic!("a webhook body") };
        renamed.apply(&mut stored);
        assert_eq!((stored.name.as_str(), stored.active, stored.secret.as_deref()), ("Renamed", false, Some("s3")));
        let Ok(cleared) = posted(br#"{"configuration": {}}"#) else { panic!("a webhook body") };
        cleared.apply(&mut stored);
        assert_eq!(stored.secret, None);
    }
}
