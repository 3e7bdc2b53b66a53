//! Repository webhooks, as Data Center keeps and sends them (Atlassian's
//! "Manage webhooks" and "Event payload" pages): a hook has a name, a URL,
//! an optional secret, the event keys it subscribes to and whether it is
//! active. Bitbucket POSTs each event of a repository to each of its active
//! hooks subscribed to it, with the `X-Event-Key`, `X-Request-Id` and, with
//! a secret, `X-Hub-Signature` headers ([`crate::sender::headers`]), and
//! keeps the latest deliveries with the answers, which its hook page shows.
//!
//! The page is at Bitbucket's own path, `/plugins/servlet/webhooks/projects/
//! {key}/repos/{slug}`; the model keeps what the REST resource
//! `/rest/api/1.0/projects/{key}/repos/{slug}/webhooks` names (`id`, `name`,
//! `url`, `events`, `active`, `configuration.secret`, `createdDate`,
//! `updatedDate`, `sslVerificationRequired`), which that resource manages
//! too ([`super::webhooks_api`]): one list, whichever made the hook.
//!
//! A repository in [`Instance::failing_hook_repositories`] refuses every
//! delivery as a receiver that is down does: the delivery is recorded with
//! no answer and nothing is sent.

use std::time::Duration;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde_json::Value;
use time::OffsetDateTime;

use super::{commits::Pushed, page, pull_requests::PullRequest, read, write, Instance, Repository, Shared, DEMO_USER};
use crate::{escape, sender, shown_time};

/// A webhook of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub id: u64,
    pub repository_id: u64,
    pub name: String,
    pub url: String,
    /// Signs each delivery (`X-Hub-Signature`); none: unsigned deliveries.
    pub secret: Option<String>,
    /// The event keys it subscribes to, such as `repo:refs_changed`.
    pub events: Vec<String>,
    pub active: bool,
    /// Milliseconds since the epoch.
    pub created_date: u64,
    pub updated_date: u64,
    /// Whether an https URL's certificate must be trusted (Bitbucket's
    /// default; the simulator records it, its deliveries do not check it).
    pub ssl_verification_required: bool,
}

/// One delivery to a hook and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub hook_id: u64,
    pub event_key: String,
    /// Its `X-Request-Id`.
    pub request_id: String,
    /// When it was sent.
    pub at: OffsetDateTime,
    /// How long the answer took (zero when nothing was sent).
    pub duration: Duration,
    pub outcome: Outcome,
}

/// What the hook's URL answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its HTTP status and the beginning of its body.
    Answered { status: u16, excerpt: String },
    /// No answer: why (connection refused, a timeout...).
    Unreachable(String),
}

/// The events the form offers, all ticked: a push, and what happens to a
/// pull request. The simulator's pages make each but `pr:deleted` (they
/// delete no pull request).
pub const DEFAULT_EVENTS: [&str; 6] =
    ["repo:refs_changed", "pr:opened", "pr:from_ref_updated", "pr:merged", "pr:declined", "pr:deleted"];

/// How many deliveries the instance keeps, all hooks together (the oldest go first).
pub const RECENT_DELIVERIES: usize = 100;

/// How many of a hook's deliveries its page shows.
const SHOWN_PER_HOOK: usize = 10;

/// How long a delivery waits for its answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bitbucket's limit on a hook's name.
pub(super) const MAX_NAME: usize = 255;

/// Why a delivery to a repository in [`Instance::failing_hook_repositories`]
/// got no answer: what a refused connection reads as.
pub const REFUSED: &str = "Connection refused";

/// How much of an answer's body a delivery keeps.
const EXCERPT: usize = 200;

impl Outcome {
    /// "202", or why there was no answer.
    fn summary(&self) -> String {
        match self {
            Self::Answered { status, .. } => status.to_string(),
            Self::Unreachable(reason) => format!("no answer ({reason})"),
        }
    }
}

impl Delivery {
    /// "Sent repo:refs_changed to Bitgate: 202", for a page.
    pub(super) fn sentence(&self, hook_name: &str) -> String {
        let verb = if matches!(self.outcome, Outcome::Answered { .. }) { "Sent" } else { "Could not send" };
        format!("{verb} {} to {hook_name}: {}", self.event_key, self.outcome.summary())
    }
}

/// A delivery about to be sent.
pub(super) struct Outgoing {
    hook: Hook,
    event_key: &'static str,
    body: Vec<u8>,
}

/// An event's deliveries: one to each active hook of the repository subscribed to it.
fn to_subscribers(instance: &Instance, repository_id: u64, event_key: &'static str, body: &Value) -> Vec<Outgoing> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    instance
        .hooks
        .iter()
        .filter(|h| h.repository_id == repository_id && h.active && h.events.iter().any(|e| e == event_key))
        .map(|hook| Outgoing { hook: hook.clone(), event_key, body: body.clone() })
        .collect()
}

fn named<'a>(instance: &'a Instance, repository: &'a Repository) -> sender::DcRepository<'a> {
    let project = instance.projects.iter().find(|p| p.key == repository.project_key);
    sender::DcRepository {
        id: repository.id,
        slug: &repository.slug,
        name: &repository.name,
        project_id: project.map_or(0, |p| p.id),
        project_key: &repository.project_key,
        project_name: project.map_or(repository.project_key.as_str(), |p| p.name.as_str()),
    }
}

fn user<'a>(instance: &'a Instance, slug: &'a str) -> sender::DcUser<'a> {
    match instance.users.iter().find(|u| u.slug == slug) {
        Some(user) => sender::DcUser { id: user.id, slug, display_name: &user.display_name, email: &user.email },
        None => sender::DcUser { id: 0, slug, display_name: slug, email: "" },
    }
}

/// `repo:refs_changed` for a push to `repository`, made by the demo user
/// (the pages act as them).
pub(super) fn push_event(instance: &Instance, repository: &Repository, pushed: &Pushed) -> Vec<Outgoing> {
    let change = sender::DcRefChange {
        branch: &pushed.branch,
        from_hash: &pushed.from_hash,
        to_hash: &pushed.to_hash,
        change: pushed.change,
    };
    let date = sender::datacenter_date(OffsetDateTime::now_utc());
    let body =
        sender::datacenter_refs_changed(&named(instance, repository), &user(instance, DEMO_USER), &date, &[change]);
    to_subscribers(instance, repository.id, "repo:refs_changed", &body)
}

/// A `pr:…` event of `pr` as it is now, made by the demo user; `extra`
/// holds the event's own fields (`previousFromHash`...).
pub(super) fn pull_request_event(
    instance: &Instance,
    pr: &PullRequest,
    event_key: &'static str,
    extra: Value,
) -> Vec<Outgoing> {
    let Some(target) = instance.repositories.iter().find(|r| r.id == pr.repository_id) else { return Vec::new() };
    // A fork the instance does not hold (tests make such pull requests) is named as the target.
    let source = instance.repositories.iter().find(|r| r.id == pr.from_repository_id).unwrap_or(target);
    let to_commit = instance.branch(target.id, &pr.to_branch).map_or("", |b| b.head.as_str());
    let pull_request = sender::DcPullRequest {
        id: pr.id,
        version: pr.version,
        title: &pr.title,
        state: &pr.state,
        from: (named(instance, source), &pr.from_branch, &pr.from_commit),
        to: (named(instance, target), &pr.to_branch, to_commit),
        author: user(instance, &pr.author),
        merge_commit: pr.merge_commit.as_deref(),
        created_date: pr.created_date,
        updated_date: pr.updated_date,
    };
    let date = sender::datacenter_date(OffsetDateTime::now_utc());
    let body =
        sender::datacenter_pull_request_event(event_key, &date, &user(instance, DEMO_USER), &pull_request, extra);
    to_subscribers(instance, target.id, event_key, &body)
}

/// The innermost cause of a failed request: "Connection refused (os error
/// 111)" says more than reqwest's "error sending request".
fn reason(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Sends the deliveries one after the other and records each answer.
/// Bitbucket sends in the background; here the form that made the event
/// waits, so that the page it goes back to shows what Bitgate answered.
/// The instance is not locked while a delivery is on its way. A delivery
/// to a failing repository's hook is recorded as refused, unsent.
pub(super) async fn deliver(state: &Shared, outgoing: Vec<Outgoing>) {
    if outgoing.is_empty() {
        return;
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .build()
        .unwrap_or_default();
    for one in outgoing {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (at, started) = (OffsetDateTime::now_utc(), std::time::Instant::now());
        let refused = {
            let instance = state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            instance.failing_hook_repositories.contains(&one.hook.repository_id)
        };
        let outcome = if refused {
            Outcome::Unreachable(REFUSED.to_owned())
        } else {
            let mut request = client.post(&one.hook.url).body(one.body.clone());
            for (name, value) in sender::headers(one.event_key, one.hook.secret.as_deref(), &one.body, &request_id) {
                request = request.header(name, value);
            }
            match request.send().await {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let text = answer.text().await.unwrap_or_default();
                    let excerpt = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(EXCERPT).collect();
                    Outcome::Answered { status, excerpt }
                }
                Err(error) => Outcome::Unreachable(reason(&error)),
            }
        };
        let delivery = Delivery {
            hook_id: one.hook.id,
            event_key: one.event_key.to_owned(),
            request_id,
            at,
            duration: started.elapsed(),
            outcome,
        };
        let mut instance = write(state);
        instance.deliveries.push_back(delivery);
        while instance.deliveries.len() > RECENT_DELIVERIES {
            instance.deliveries.pop_front();
        }
    }
}

/// The latest deliveries to the hooks of a repository, newest first, each
/// with its hook.
pub(super) fn latest(
    instance: &Instance,
    repository_id: u64,
    count: usize,
) -> impl Iterator<Item = (&Hook, &Delivery)> {
    instance
        .deliveries
        .iter()
        .rev()
        .filter_map(move |d| {
            instance.hooks.iter().find(|h| h.id == d.hook_id && h.repository_id == repository_id).map(|h| (h, d))
        })
        .take(count)
}

/// The creation form as typed.
#[derive(Debug, Clone)]
struct HookForm {
    name: String,
    url: String,
    secret: String,
    events: Vec<String>,
    active: bool,
}

impl HookForm {
    /// What the form shows first: every event ticked, active.
    fn blank() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            secret: String::new(),
            events: DEFAULT_EVENTS.map(str::to_owned).to_vec(),
            active: true,
        }
    }

    /// The posted form (`events` comes once per ticked box; an unticked
    /// box is not posted).
    fn parse(body: &str) -> Self {
        let mut form = Self { events: Vec::new(), active: false, ..Self::blank() };
        for (name, value) in url::form_urlencoded::parse(body.as_bytes()) {
            match name.as_ref() {
                "name" => form.name = value.into_owned(),
                "url" => form.url = value.into_owned(),
                "secret" => form.secret = value.into_owned(),
                "events" => form.events.push(value.into_owned()),
                "active" => form.active = true,
                _ => {}
            }
        }
        form
    }

    /// What is wrong with it, every problem at once.
    fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            problems.push("Enter a name for the webhook.");
        } else if name.chars().count() > MAX_NAME {
            problems.push("The name is at most 255 characters.");
        }
        let web = url::Url::parse(self.url.trim())
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
        if !web {
            problems.push(
                "Enter the URL as an http:// or https:// address, such as the endpoint on Bitgate's integration page.",
            );
        }
        if self.events.is_empty() || self.events.iter().any(|e| !DEFAULT_EVENTS.contains(&e.as_str())) {
            problems.push("Choose at least one event.");
        }
        problems
    }
}

fn webhooks_path(instance: &Instance, repository: &Repository) -> String {
    format!(
        "{}/plugins/servlet/webhooks/projects/{}/repos/{}",
        instance.context_path, repository.project_key, repository.slug
    )
}

fn no_repository() -> Response {
    (StatusCode::NOT_FOUND, Html("<h1>Repository not found</h1>")).into_response()
}

fn hook_section(instance: &Instance, repository: &Repository, hook: &Hook) -> String {
    let rows: String = instance
        .deliveries
        .iter()
        .rev()
        .filter(|d| d.hook_id == hook.id)
        .take(SHOWN_PER_HOOK)
        .map(|d| {
            let excerpt = match &d.outcome {
                Outcome::Answered { excerpt, .. } => excerpt.as_str(),
                Outcome::Unreachable(_) => "",
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"outcome\">{}</td><td><code>{}</code></td></tr>",
                escape(&shown_time(d.at)),
                escape(&d.event_key),
                escape(&d.request_id),
                escape(&d.outcome.summary()),
                escape(excerpt)
            )
        })
        .collect();
    let deliveries = if rows.is_empty() {
        "<p>No deliveries yet.</p>".to_owned()
    } else {
        format!(
            "<table class=\"deliveries\"><thead><tr><th>When</th><th>Event</th><th>Request id</th><th>Answer</th>\
             <th>Body</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    format!(
        "<section class=\"hook\" id=\"hook-{id}\"><h3>{name}</h3><p class=\"url\">{url}</p>\
         <p>{active} · {signed} · Events: {events}</p>\
         <form method=\"post\" action=\"{path}/{id}/delete\">\
         <button type=\"submit\" aria-label=\"Delete {name}\">Delete</button></form>\
         <h4>Recent deliveries</h4>{deliveries}</section>",
        id = hook.id,
        name = escape(&hook.name),
        url = escape(&hook.url),
        active = if hook.active { "Active" } else { "Inactive: nothing is sent" },
        signed = if hook.secret.is_some() { "Signed with its secret" } else { "No secret: deliveries are unsigned" },
        events = escape(&hook.events.join(", ")),
        path = escape(&webhooks_path(instance, repository)),
    )
}

fn webhooks_page(instance: &Instance, repository: &Repository, form: &HookForm, problems: &[&str]) -> Html<String> {
    let hooks: String = instance
        .hooks
        .iter()
        .filter(|h| h.repository_id == repository.id)
        .map(|h| hook_section(instance, repository, h))
        .collect();
    let hooks = if hooks.is_empty() { "<p>No webhooks yet.</p>".to_owned() } else { hooks };
    let errors = if problems.is_empty() {
        String::new()
    } else {
        let items: String = problems.iter().map(|p| format!("<li>{}</li>", escape(p))).collect();
        format!("<ul class=\"errors\" role=\"alert\">{items}</ul>")
    };
    let checked = |on: bool| if on { " checked" } else { "" };
    let events: String = DEFAULT_EVENTS
        .iter()
        .map(|event| {
            format!(
                "<label><input type=\"checkbox\" name=\"events\" value=\"{event}\"{}> {event}</label> ",
                checked(form.events.iter().any(|e| e == event))
            )
        })
        .collect();
    let name = format!("{}/{}", repository.project_key, repository.slug);
    page(
        &format!("Webhooks - {name}"),
        &format!(
            "<h1>Webhooks</h1><p>{repo} · <a href=\"{browse}\">Back to the repository</a></p>\
             <p>Bitbucket posts each event of this repository to each active webhook subscribed to it, \
             signed with its secret (<code>X-Hub-Signature</code>). Paste the endpoint and the secret of \
             Bitgate's integration here.</p>\
             <h2>Webhooks of {repo}</h2>{hooks}\
             <h2>Create webhook</h2>\
             <form method=\"post\" action=\"{path}\">{errors}\
             <p><label for=\"hook-name\">Name</label> <input id=\"hook-name\" name=\"name\" value=\"{form_name}\"></p>\
             <p><label for=\"hook-url\">URL</label> <input id=\"hook-url\" name=\"url\" size=\"80\" value=\"{url}\"></p>\
             <p><label for=\"hook-secret\">Secret</label> <input id=\"hook-secret\" name=\"secret\" size=\"60\" \
             autocomplete=\"off\" value=\"{secret}\"></p>\
             <fieldset><legend>Events</legend>{events}</fieldset>\
             <p><label><input type=\"checkbox\" name=\"active\" value=\"on\"{active}> Active</label></p>\
             <button type=\"submit\">Create webhook</button></form>",
            repo = escape(&name),
            browse = escape(&format!(
                "{}/projects/{}/repos/{}/browse",
                instance.context_path, repository.project_key, repository.slug
            )),
            path = escape(&webhooks_path(instance, repository)),
            form_name = escape(&form.name),
            url = escape(&form.url),
            secret = escape(&form.secret),
            active = checked(form.active),
        ),
    )
}

async fn show(State(state): State<Shared>, Path((key, slug)): Path<(String, String)>) -> Response {
    let instance = read(&state);
    let Some(repository) = instance.repository(&key, &slug) else { return no_repository() };
    webhooks_page(&instance, repository, &HookForm::blank(), &[]).into_response()
}

/// Creates a hook from the form; a refused form comes back as typed, with
/// what to fix.
async fn create(State(state): State<Shared>, Path((key, slug)): Path<(String, String)>, body: String) -> Response {
    let form = HookForm::parse(&body);
    let mut instance = write(&state);
    let Some(repository) = instance.repository(&key, &slug).cloned() else { return no_repository() };
    let problems = form.problems();
    if !problems.is_empty() {
        return (StatusCode::BAD_REQUEST, webhooks_page(&instance, &repository, &form, &problems)).into_response();
    }
    let secret = Some(form.secret.trim().to_owned()).filter(|s| !s.is_empty());
    let now = super::epoch_millis();
    let hook = Hook {
        id: instance.hooks.iter().map(|h| h.id).max().unwrap_or(0) + 1,
        repository_id: repository.id,
        name: form.name.trim().to_owned(),
        url: form.url.trim().to_owned(),
        secret,
        events: form.events,
        active: form.active,
        created_date: now,
        updated_date: now,
        ssl_verification_required: true,
    };
    instance.hooks.push(hook);
    Redirect::to(&webhooks_path(&instance, &repository)).into_response()
}

/// Deletes a hook and its deliveries; one already gone is no error.
async fn delete(State(state): State<Shared>, Path((key, slug, id)): Path<(String, String, u64)>) -> Response {
    let mut instance = write(&state);
    let Some(repository) = instance.repository(&key, &slug).cloned() else { return no_repository() };
    instance.hooks.retain(|h| !(h.id == id && h.repository_id == repository.id));
    let kept: Vec<u64> = instance.hooks.iter().map(|h| h.id).collect();
    instance.deliveries.retain(|d| kept.contains(&d.hook_id));
    Redirect::to(&webhooks_path(&instance, &repository)).into_response()
}

pub(super) fn routes() -> Router<Shared> {
    const PAGE: &str = "/plugins/servlet/webhooks/projects/{key}/repos/{slug}";
    Router::new().route(PAGE, get(show).post(create)).route(&format!("{PAGE}/{{id}}/delete"), post(delete))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_read_with_each_ticked_event_and_checked_as_a_whole() {
        let form = HookForm::parse(
            "name=Bitgate&url=http%3A%2F%2F127.0.0.1%3A3000%2Fwebhooks%2Fbitbucket%2Fdc&secret=s3&events=pr%3Aopened&events=pr%3Amerged&active=on",
        );
        assert_eq!((form.name.as_str(), form.secret.as_str(), form.active), ("Bitgate", "s3", true));
        assert_eq!(form.events, ["pr:opened", "pr:merged"]);
        assert!(form.problems().is_empty());

        let inactive = HookForm::parse("name=x&url=https%3A%2F%2Fci.example.com%2Fhook&events=pr%3Aopened");
        assert!(!inactive.active && inactive.problems().is_empty());

        let wrong = HookForm::parse("name=+&url=ftp%3A%2F%2Fhost%2Fx");
        assert_eq!(wrong.problems().len(), 3, "name, URL and events: {:?}", wrong.problems());
        assert_eq!(HookForm::parse("name=x&url=not+a+url&events=pr%3Aopened").problems().len(), 1);
        assert_eq!(HookForm::parse("name=x&url=http%3A%2F%2Fh%2F&events=repo%3Aforked").problems().len(), 1);
    }
}
