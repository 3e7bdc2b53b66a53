//! The demo platform's page, `/simulator/platform`: not a Bitbucket page,
//! the simulator's own (`/simulator/` is a path neither product has). A
//! person pastes Bitgate's address and an API token, and a [`Platform`]
//! follower starts inside the simulator's process (replacing the one
//! running, if any); the page then shows since when it follows, how many
//! runs it reported and its last error. `bitbucket-simulator
//! --platform-token` starts one at launch.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
    Form, Router,
};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::{
    datacenter, escape,
    platform::{InProcess, Platform, Progress, RETRY},
    sender::DATACENTER_REPOSITORY,
    shown_time,
};

/// Where the page is.
pub const PATH: &str = "/simulator/platform";

/// How long each state of a run lasts, as the CLI's default.
const STEP: std::time::Duration = std::time::Duration::from_secs(2);

/// The page's state: where Bitgate is, and the follower running, if any.
#[derive(Debug)]
pub struct Follower {
    /// The form's default; the running follower's too.
    bitgate_url: String,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    bitgate_url: String,
    started: OffsetDateTime,
    progress: Arc<Mutex<Progress>>,
    task: tokio::task::AbortHandle,
}

pub type Shared = Arc<Mutex<Follower>>;

impl Follower {
    /// No follower yet; the form proposes `bitgate_url`.
    pub fn shared(bitgate_url: &str) -> Shared {
        Arc::new(Mutex::new(Self { bitgate_url: bitgate_url.to_owned(), running: None }))
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Follower> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn set_bitgate_url(shared: &Shared, url: &str) {
    lock(shared).bitgate_url = url.to_owned();
}

/// Starts a follower of the Bitgate at the page's URL with `token`, in a
/// task of this process, and stops the one running.
pub fn start(shared: &Shared, datacenter: &datacenter::Shared, token: &str) {
    let mut follower = lock(shared);
    if let Some(running) = follower.running.take() {
        running.task.abort();
    }
    let platform = Platform {
        bitgate_url: follower.bitgate_url.clone(),
        token: token.to_owned(),
        stack: None,
        after: None,
        step: STEP,
    };
    let progress = Arc::new(Mutex::new(Progress::default()));
    let within = InProcess { progress: progress.clone(), datacenter: datacenter.clone() };
    let task = tokio::spawn(async move { platform.follow_in_process(within).await }).abort_handle();
    follower.running =
        Some(Running { bitgate_url: follower.bitgate_url.clone(), started: OffsetDateTime::now_utc(), progress, task });
}

/// Stops the follower, if one runs.
pub(crate) fn stop(shared: &Shared) {
    if let Some(running) = lock(shared).running.take() {
        running.task.abort();
    }
}

/// The running follower's progress; none when none runs.
pub fn progress(shared: &Shared) -> Option<Progress> {
    let follower = lock(shared);
    let running = follower.running.as_ref()?;
    let progress = running.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    Some(progress)
}

#[derive(Clone)]
struct PageState {
    follower: Shared,
    datacenter: datacenter::Shared,
}

#[derive(Debug, Default, Deserialize)]
struct StartForm {
    #[serde(default)]
    bitgate_url: String,
    #[serde(default)]
    token: String,
}

impl StartForm {
    fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        let web = url::Url::parse(self.bitgate_url.trim())
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
        if !web {
            problems.push("Enter Bitgate's address, such as http://127.0.0.1:3000.");
        }
        if self.token.trim().is_empty() {
            problems.push("Paste an API token made on Bitgate's Tokens page.");
        }
        problems
    }
}

fn status(follower: &Follower) -> String {
    let Some(running) = &follower.running else {
        return "<p class=\"status\">Not running: paste an API token below.</p>".to_owned();
    };
    let progress = running.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let url = escape(&running.bitgate_url);
    let state = match progress.following_since {
        Some(since) => format!("Following {url}/api/v1/events since {}.", escape(&shown_time(since))),
        None if progress.last_error.is_some() => {
            format!("Not reaching {url}: trying again every {} seconds.", RETRY.as_secs())
        }
        None => format!("Reaching {url} (started {})…", escape(&shown_time(running.started))),
    };
    let error = match &progress.last_error {
        Some((at, message)) => {
            format!("<p class=\"error\">Last error ({}): {}</p>", escape(&shown_time(*at)), escape(message))
        }
        None => String::new(),
    };
    format!("<p class=\"status\">{state}</p><p class=\"runs\">Runs reported: {}.</p>{error}", progress.runs_reported)
}

fn platform_page(follower: &Follower, context_path: &str, form: &StartForm, problems: &[&str]) -> Html<String> {
    let (_, key, slug) = DATACENTER_REPOSITORY;
    let repository = format!("{context_path}/projects/{key}/repos/{slug}/browse");
    let errors = if problems.is_empty() {
        String::new()
    } else {
        let items: String = problems.iter().map(|p| format!("<li>{}</li>", escape(p))).collect();
        format!("<ul class=\"errors\" role=\"alert\">{items}</ul>")
    };
    let replaces = if follower.running.is_some() { " (replaces the one running)" } else { "" };
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>The demo platform - Bitbucket simulator</title>\
         </head><body><h1>The demo platform</h1>\
         <p class=\"note\">A page of the Bitbucket simulator, not of Bitbucket. It plays the platform that runs \
         the stacks' work: it follows Bitgate's events feed and reports each requested run queued, running, then \
         succeeded, or failed when the branch, the pull request's title or the commit's message says \
         <q>fail</q>. Bitgate then posts the build status and the comment to Bitbucket.</p>\
         <h2>Status</h2>{status}\
         <h2>Follow Bitgate</h2>\
         <form method=\"post\" action=\"{PATH}\">{errors}\
         <p><label for=\"platform-url\">Bitgate URL</label> \
         <input id=\"platform-url\" name=\"bitgate_url\" size=\"40\" value=\"{url}\"></p>\
         <p><label for=\"platform-token\">Bitgate API token</label> \
         <input id=\"platform-token\" name=\"token\" type=\"password\" size=\"60\" autocomplete=\"off\" value=\"{token}\"></p>\
         <button type=\"submit\">Follow Bitgate</button>{replaces}</form>\
         <p>Then push a commit or open a pull request on <a href=\"{repository}\">{key}/{slug}</a>, and watch \
         the build status and the comment there, and the run on the stack's page in Bitgate.</p></body></html>",
        status = status(follower),
        url = escape(&form.bitgate_url),
        token = escape(&form.token),
        repository = escape(&repository),
    ))
}

fn context_path(datacenter: &datacenter::Shared) -> String {
    datacenter.read().unwrap_or_else(|poisoned| poisoned.into_inner()).context_path.clone()
}

async fn show(State(state): State<PageState>) -> Response {
    let context_path = context_path(&state.datacenter);
    let follower = lock(&state.follower);
    let form = StartForm { bitgate_url: follower.bitgate_url.clone(), token: String::new() };
    platform_page(&follower, &context_path, &form, &[]).into_response()
}

/// Starts a follower with the form's URL and token; a refused form comes
/// back as typed.
async fn follow(State(state): State<PageState>, Form(form): Form<StartForm>) -> Response {
    let problems = form.problems();
    if !problems.is_empty() {
        let context_path = context_path(&state.datacenter);
        let page = platform_page(&lock(&state.follower), &context_path, &form, &problems);
        return (StatusCode::BAD_REQUEST, page).into_response();
    }
    set_bitgate_url(&state.follower, form.bitgate_url.trim());
    start(&state.follower, &state.datacenter, form.token.trim());
    Redirect::to(PATH).into_response()
}

pub fn router(follower: Shared, datacenter: datacenter::Shared) -> Router {
    Router::new().route(PATH, get(show).post(follow)).with_state(PageState { follower, datacenter })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_needs_a_web_address_and_a_token() {
        let form = |url: &str, token: &str| StartForm { bitgate_url: url.into(), token: token.into() };
        assert!(form("http://127.0.0.1:3000", "bg_token").problems().is_empty());
        assert_eq!(form("127.0.0.1:3000", "bg_token").problems().len(), 1);
        assert_eq!(form("https://bitgate.example.com", " ").problems().len(), 1);
    }
}
