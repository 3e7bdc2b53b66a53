//! The repository's page, `/projects/{key}/repos/{slug}/browse`, where the
//! demo's person plays the developer: its branches, its open pull requests,
//! what its webhooks last answered, and two forms that do what a `git push`
//! and Bitbucket's "Create pull request" do, with the deliveries Bitbucket
//! makes of them:
//! - a push sends `repo:refs_changed` (`ADD` for a new branch, `UPDATE`
//!   with the old head as `fromHash`), and, for each open pull request from
//!   the branch, moves its source and sends `pr:from_ref_updated` with
//!   `previousFromHash`;
//! - a pull request from a branch that does not exist yet pushes it first
//!   (one commit, its message the title), then sends `pr:opened`.
//!
//! The pages act as the demo user; they are not REST calls (no faults,
//! not in `calls`).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use serde_json::json;

use super::{
    commits::branch_name_problem, epoch_millis, hooks, page, pull_requests::PullRequest, read, write, Instance,
    Repository, Shared, DEMO_USER,
};
use crate::escape;

/// How many of the latest deliveries the page shows.
const SHOWN_DELIVERIES: usize = 8;

/// The push form as typed.
#[derive(Debug, Clone, Deserialize)]
struct PushForm {
    #[serde(default)]
    branch: String,
    #[serde(default)]
    message: String,
}

/// The pull request form as typed.
#[derive(Debug, Clone, Deserialize)]
struct OpenForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    into: String,
    #[serde(default)]
    title: String,
}

impl Default for PushForm {
    fn default() -> Self {
        Self { branch: "main".into(), message: String::new() }
    }
}

impl Default for OpenForm {
    fn default() -> Self {
        Self { from: String::new(), into: "main".into(), title: String::new() }
    }
}

/// Which form was refused, and why.
enum Refused {
    Push(Vec<String>),
    Open(Vec<String>),
}

/// The repository's pages' common part, context path included.
pub(super) fn repository_path(instance: &Instance, repository: &Repository) -> String {
    format!("{}/projects/{}/repos/{}", instance.context_path, repository.project_key, repository.slug)
}

fn errors(problems: &[String]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let items: String = problems.iter().map(|p| format!("<li>{}</li>", escape(p))).collect();
    format!("<ul class=\"errors\" role=\"alert\">{items}</ul>")
}

fn repository_page(
    instance: &Instance,
    repository: &Repository,
    push: &PushForm,
    open: &OpenForm,
    refused: Option<&Refused>,
) -> Html<String> {
    let base = repository_path(instance, repository);
    let branches: String = instance
        .branches
        .iter()
        .filter(|b| b.repository_id == repository.id)
        .map(|b| {
            let message = instance.commit(repository.id, &b.head).map_or("", |c| c.message.as_str());
            format!(
                "<tr data-branch=\"{name}\"><td class=\"branch\">{name}</td>\
                 <td class=\"head\"><a href=\"{base}/commits/{head}\"><code>{head}</code></a></td><td>{message}</td></tr>",
                name = escape(&b.name),
                base = escape(&base),
                head = escape(&b.head),
                message = escape(message),
            )
        })
        .collect();
    let branches = if branches.is_empty() {
        "<p>No branches yet: push a commit.</p>".to_owned()
    } else {
        format!(
            "<table class=\"branches\"><thead><tr><th>Branch</th><th>Head</th><th>Message</th></tr></thead>\
             <tbody>{branches}</tbody></table>"
        )
    };
    let open_pull_requests: String = instance
        .pull_requests
        .iter()
        .filter(|pr| pr.repository_id == repository.id && pr.state == "OPEN")
        .map(|pr| {
            format!(
                "<li><a href=\"{base}/pull-requests/{id}/overview\">#{id} {title}</a> ({from} into {to})</li>",
                base = escape(&base),
                id = pr.id,
                title = escape(&pr.title),
                from = escape(&pr.from_branch),
                to = escape(&pr.to_branch),
            )
        })
        .collect();
    let open_pull_requests = if open_pull_requests.is_empty() {
        "<p>No open pull requests.</p>".to_owned()
    } else {
        format!("<ul class=\"pull-requests\">{open_pull_requests}</ul>")
    };
    let webhooks = format!(
        "{}/plugins/servlet/webhooks/projects/{}/repos/{}",
        instance.context_path, repository.project_key, repository.slug
    );
    let has_hooks = instance.hooks.iter().any(|h| h.repository_id == repository.id);
    let sent: String = hooks::latest(instance, repository.id, SHOWN_DELIVERIES)
        .map(|(hook, delivery)| {
            format!(
                "<li class=\"delivery\">{} <small>({})</small></li>",
                escape(&delivery.sentence(&hook.name)),
                escape(&crate::shown_time(delivery.at))
            )
        })
        .collect();
    let sent = match (has_hooks, sent.is_empty()) {
        (false, _) => format!(
            "<p>No webhook: what happens here is sent nowhere. Add Bitgate's on the \
             <a href=\"{}\">webhooks page</a>.</p>",
            escape(&webhooks)
        ),
        (true, true) => "<p>Nothing sent yet.</p>".to_owned(),
        (true, false) => format!("<ul class=\"deliveries\">{sent}</ul>"),
    };
    let (push_errors, open_errors) = match refused {
        Some(Refused::Push(problems)) => (errors(problems), String::new()),
        Some(Refused::Open(problems)) => (String::new(), errors(problems)),
        None => (String::new(), String::new()),
    };
    let name = format!("{}/{}", repository.project_key, repository.slug);
    page(
        &name,
        &format!(
            "<h1>{name}</h1>\
             <p><a href=\"{webhooks}\">Webhooks</a> · The demo platform: <a href=\"{platform}\">its page</a> \
             (a simulator page)</p>\
             <h2>Sent to webhooks</h2>{sent}\
             <h2>Branches</h2>{branches}\
             <h2>Open pull requests</h2>{open_pull_requests}\
             <h2>Push a commit</h2>\
             <form method=\"post\" action=\"{base}/push\">{push_errors}\
             <p><label for=\"push-branch\">Branch</label> <input id=\"push-branch\" name=\"branch\" value=\"{branch}\"></p>\
             <p><label for=\"push-message\">Commit message</label> \
             <input id=\"push-message\" name=\"message\" size=\"60\" value=\"{message}\"></p>\
             <button type=\"submit\">Push</button></form>\
             <h2>Open a pull request</h2>\
             <form method=\"post\" action=\"{base}/pull-requests\">{open_errors}\
             <p><label for=\"pr-from\">From branch</label> <input id=\"pr-from\" name=\"from\" value=\"{from}\"> \
             (a new one is pushed first, with one commit)</p>\
             <p><label for=\"pr-into\">Into branch</label> <input id=\"pr-into\" name=\"into\" value=\"{into}\"></p>\
             <p><label for=\"pr-title\">Title</label> <input id=\"pr-title\" name=\"title\" size=\"60\" value=\"{title}\"></p>\
             <button type=\"submit\">Open pull request</button></form>",
            name = escape(&name),
            webhooks = escape(&webhooks),
            platform = crate::platform_page::PATH,
            base = escape(&base),
            branch = escape(&push.branch),
            message = escape(&push.message),
            from = escape(&open.from),
            into = escape(&open.into),
            title = escape(&open.title),
        ),
    )
}

fn no_repository() -> Response {
    (StatusCode::NOT_FOUND, Html("<h1>Repository not found</h1>")).into_response()
}

async fn show(State(state): State<Shared>, Path((key, slug)): Path<(String, String)>) -> Response {
    let instance = read(&state);
    let Some(repository) = instance.repository(&key, &slug) else { return no_repository() };
    repository_page(&instance, repository, &PushForm::default(), &OpenForm::default(), None).into_response()
}

fn refuse(instance: &Instance, repository: &Repository, push: &PushForm, open: &OpenForm, why: Refused) -> Response {
    (StatusCode::BAD_REQUEST, repository_page(instance, repository, push, open, Some(&why))).into_response()
}

/// Pushes one commit onto the branch, and the deliveries that follow; back
/// to the page.
async fn push(
    State(state): State<Shared>,
    Path((key, slug)): Path<(String, String)>,
    Form(form): Form<PushForm>,
) -> Response {
    let (outgoing, back) = {
        let mut instance = write(&state);
        let Some(repository) = instance.repository(&key, &slug).cloned() else { return no_repository() };
        let branch = form.branch.trim();
        let mut problems: Vec<String> = branch_name_problem(branch).map(str::to_owned).into_iter().collect();
        if form.message.trim().is_empty() {
            problems.push("Enter a commit message.".into());
        }
        if !problems.is_empty() {
            return refuse(&instance, &repository, &form, &OpenForm::default(), Refused::Push(problems));
        }
        let pushed = instance.push_commit(repository.id, branch, form.message.trim());
        let mut outgoing = hooks::push_event(&instance, &repository, &pushed);
        // Bitbucket rescopes each open pull request from the branch.
        let from_branch =
            |pr: &PullRequest| pr.from_repository_id == repository.id && pr.from_branch == branch && pr.state == "OPEN";
        let moved: Vec<u64> = instance.pull_requests.iter().filter(|pr| from_branch(pr)).map(|pr| pr.id).collect();
        for id in moved {
            let Some(pr) = instance.pull_requests.iter_mut().find(|pr| pr.id == id && from_branch(pr)) else {
                continue;
            };
            let previous = std::mem::replace(&mut pr.from_commit, pushed.to_hash.clone());
            pr.updated_date = epoch_millis();
            let pr = pr.clone();
            outgoing.extend(hooks::pull_request_event(
                &instance,
                &pr,
                "pr:from_ref_updated",
                json!({"previousFromHash": previous}),
            ));
        }
        (outgoing, repository_path(&instance, &repository))
    };
    hooks::deliver(&state, outgoing).await;
    Redirect::to(&format!("{back}/browse")).into_response()
}

/// Opens a pull request, pushing its source branch first when it is new; back to the page.
async fn open(
    State(state): State<Shared>,
    Path((key, slug)): Path<(String, String)>,
    Form(form): Form<OpenForm>,
) -> Response {
    let (outgoing, back) = {
        let mut instance = write(&state);
        let Some(repository) = instance.repository(&key, &slug).cloned() else { return no_repository() };
        let (from, into, title) = (form.from.trim(), form.into.trim(), form.title.trim());
        let mut problems: Vec<String> = Vec::new();
        if let Some(problem) = branch_name_problem(from) {
            problems.push(format!("From branch: {problem}"));
        }
        if instance.branch(repository.id, into).is_none() {
            problems.push(format!("Into branch: {name} has no branch {into:?}.", name = repository.slug));
        }
        if !from.is_empty() && from == into {
            problems.push("A pull request goes from one branch into another.".into());
        }
        if title.is_empty() {
            problems.push("Enter a title.".into());
        }
        // Bitbucket's DuplicatePullRequestException.
        let duplicate = instance.pull_requests.iter().find(|pr| {
            pr.repository_id == repository.id
                && pr.from_repository_id == repository.id
                && pr.from_branch == from
                && pr.to_branch == into
                && pr.state == "OPEN"
        });
        if let Some(pr) = duplicate {
            problems
                .push(format!("Only one pull request may be open for a given source and target branch: #{}.", pr.id));
        }
        if !problems.is_empty() {
            return refuse(&instance, &repository, &PushForm::default(), &form, Refused::Open(problems));
        }
        let mut outgoing = Vec::new();
        if instance.branch(repository.id, from).is_none() {
            let pushed = instance.push_commit(repository.id, from, title);
            outgoing.extend(hooks::push_event(&instance, &repository, &pushed));
        }
        let from_commit = instance.branch(repository.id, from).map(|b| b.head.clone()).unwrap_or_default();
        let now = epoch_millis();
        let pr = PullRequest {
            id: instance
                .pull_requests
                .iter()
                .filter(|pr| pr.repository_id == repository.id)
                .map(|pr| pr.id)
                .max()
                .unwrap_or(0)
                + 1,
            repository_id: repository.id,
            from_repository_id: repository.id,
            title: title.to_owned(),
            from_branch: from.to_owned(),
            from_commit,
            to_branch: into.to_owned(),
            state: "OPEN".into(),
            version: 0,
            author: DEMO_USER.into(),
            merge_commit: None,
            created_date: now,
            updated_date: now,
        };
        instance.pull_requests.push(pr.clone());
        outgoing.extend(hooks::pull_request_event(&instance, &pr, "pr:opened", json!({})));
        (outgoing, repository_path(&instance, &repository))
    };
    hooks::deliver(&state, outgoing).await;
    Redirect::to(&format!("{back}/browse")).into_response()
}

pub(super) fn routes() -> Router<Shared> {
    const REPOSITORY: &str = "/projects/{key}/repos/{slug}";
    Router::new()
        .route(&format!("{REPOSITORY}/browse"), get(show))
        .route(&format!("{REPOSITORY}/push"), post(push))
        .route(&format!("{REPOSITORY}/pull-requests"), post(open))
}
