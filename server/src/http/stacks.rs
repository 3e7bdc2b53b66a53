//! The stacks pages: the list, the three-step creation (space, integration,
//! repository and branch), and a stack's page with its change, re-attach
//! and delete forms. Writes are the operations the REST API calls too
//! (`bitgate_core::stacks::operations`), so the browser and the API cannot
//! disagree.

use crate::{
    api::pagination::{page, page_start, Cursor},
    error::AppError,
};
use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{
    Flash, FormOutcome, NewStackPage, PageContext, PageData, RunCommentRow, RunRow, RunStatusRow, StackPage, StackRow,
    StackTriggers, StacksPage,
};
use bitgate_core::{
    access::Access,
    integrations::{self, operations::IntegrationError, repositories},
    platform::{
        comments,
        events::Triggers,
        runs::{self, Run},
        statuses,
    },
    principal::Principal,
    spaces,
    stacks::{
        self,
        operations::{self, StackError, StackInput, TriggersInput},
        Stack,
    },
};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    outbound,
    pages::form_with_problems,
    session::{push_flash, CurrentUser},
    submission::{self, Done},
};
use crate::{
    api::{
        pagination::{decode_offset, encode_offset},
        rfc3339,
    },
    state::AppState,
};

/// A refused write, as its form answered again (422, or 409 for a taken
/// name); any other failure is the page's.
fn answered_again(error: StackError, values: Vec<(String, String)>) -> Result<(FormOutcome, StatusCode), AppError> {
    let (problems, status) = match error {
        StackError::Invalid(problems) => (problems, StatusCode::UNPROCESSABLE_ENTITY),
        StackError::Conflict(problems) => (problems, StatusCode::CONFLICT),
        other => return Err(other.into()),
    };
    Ok((form_with_problems(problems, values, str::to_owned), status))
}

/// The triggers as the pages show them.
fn shown(triggers: Triggers) -> StackTriggers {
    let Triggers { build_pull_requests, all_branches, prune_branches, resync_pull_requests } = triggers;
    StackTriggers { build_pull_requests, all_branches, prune_branches, resync_pull_requests }
}

/// The triggers' checkboxes of the create and change forms. A browser does
/// not post an unticked box, so the form's hidden `triggers` field says the
/// boxes were on it: then a missing box is off. A post without it (the
/// attach form) leaves the triggers as they are.
#[derive(Deserialize)]
pub struct TriggerBoxes {
    triggers: Option<String>,
    build_pull_requests: Option<String>,
    all_branches: Option<String>,
    prune_branches: Option<String>,
    resync_pull_requests: Option<String>,
}

impl TriggerBoxes {
    fn input(&self) -> Option<TriggersInput> {
        self.triggers.as_ref()?;
        Some(TriggersInput {
            build_pull_requests: Some(self.build_pull_requests.is_some()),
            all_branches: Some(self.all_branches.is_some()),
            prune_branches: Some(self.prune_branches.is_some()),
            resync_pull_requests: Some(self.resync_pull_requests.is_some()),
        })
    }

    /// The boxes as the form shows them again after a refusal.
    fn values(&self) -> Vec<(String, String)> {
        let Some(input) = self.input() else { return Vec::new() };
        let flag = |on: Option<bool>| if on == Some(true) { "on" } else { "" }.to_owned();
        vec![
            ("triggers".to_owned(), "shown".to_owned()),
            ("build_pull_requests".to_owned(), flag(input.build_pull_requests)),
            ("all_branches".to_owned(), flag(input.all_branches)),
            ("prune_branches".to_owned(), flag(input.prune_branches)),
            ("resync_pull_requests".to_owned(), flag(input.resync_pull_requests)),
        ]
    }
}

/// How many stacks a page of the list shows.
const PAGE_SIZE: i64 = 50;

/// Stacks as lists show them, with their spaces' names.
pub async fn rows(state: &AppState, found: Vec<Stack>) -> Result<Vec<StackRow>, AppError> {
    let ids: Vec<Uuid> = found.iter().map(|s| s.space_id).collect();
    let names: HashMap<Uuid, String> =
        spaces::list(&state.services.pool, &ids, None, 10_000).await?.into_iter().map(|s| (s.id, s.name)).collect();
    Ok(found
        .into_iter()
        .map(|s| StackRow {
            id: s.id.to_string(),
            space: names.get(&s.space_id).cloned().unwrap_or_default(),
            name: s.name,
            integration: s.integration_name,
            repository: s.repository_name,
            branch: s.branch,
        })
        .collect())
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// Where the page starts: the API's cursor.
    #[serde(default)]
    cursor: String,
}

/// `/stacks`: the stacks the viewer sees, newest first, 50 a page.
pub async fn list(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let after = page_start(&query.cursor)?.map(|c| (c.at, c.id));
    let found =
        stacks::list(&state.services.pool, &access.visible_spaces(), &Default::default(), after, PAGE_SIZE + 1).await?;
    let (found, next) = page(found, PAGE_SIZE, |stack| Cursor { at: stack.created_at, id: stack.id });
    let page = StacksPage {
        rows: rows(&state, found).await?,
        can_create: !access.writable_spaces().is_empty(),
        next_page: next.map(|cursor| format!("/stacks?cursor={cursor}")),
        first_page: (!query.cursor.is_empty()).then(|| "/stacks".to_owned()),
    };
    let context = PageContext { page: PageData::Stacks(page), ..context };
    Ok(state.pages.render(context, StatusCode::OK).await)
}

#[derive(Deserialize, Default)]
pub struct NewStackQuery {
    #[serde(default)]
    space_id: String,
    #[serde(default)]
    integration_id: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    cursor: String,
}

/// The space, when the viewer writes to it.
fn writable_space(access: &Access, raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw.trim()).ok().filter(|space| access.can_write(*space).is_ok())
}

async fn render_new(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    query: NewStackQuery,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let writable = access.writable_spaces();
    if writable.is_empty() {
        return Err(AppError::Forbidden);
    }
    let mut spaces: Vec<(String, String)> = spaces::list(&state.services.pool, &writable, None, 10_000)
        .await?
        .into_iter()
        .map(|s| (s.id.to_string(), s.name))
        .collect();
    spaces.sort_by(|a, b| a.1.cmp(&b.1));
    let mut page =
        NewStackPage { spaces, query: query.query.clone(), triggers: shown(Triggers::default()), ..Default::default() };
    if let Some(space) = writable_space(&access, &query.space_id) {
        page.space_id = space.to_string();
        let usable = stacks::integrations_usable_in(&state.services.pool, space).await?;
        page.integrations = usable
            .iter()
            .map(|(id, name, provider)| (id.to_string(), format!("{name} ({})", provider.label())))
            .collect();
        let chosen = Uuid::parse_str(query.integration_id.trim()).ok().filter(|id| usable.iter().any(|u| u.0 == *id));
        if let Some(integration) = chosen {
            page.integration_id = integration.to_string();
            let integration = integrations::find(&state.services.pool, integration).await?.ok_or(AppError::NotFound)?;
            let start = match query.cursor.trim() {
                "" => 0,
                raw => decode_offset(raw)
                    .map_err(|_| AppError::BadRequest("This page link is damaged; search again.".into()))?,
            };
            let found = repositories::page(&state.services, &integration, &query.query, start, 25).await;
            match found.map_err(IntegrationError::from)? {
                Ok(found) => {
                    page.repositories = found.items.iter().map(|r| (r.full_name(), r.display_name.clone())).collect();
                    page.more_href = found.next_start.map(|next| {
                        let mut href = url::form_urlencoded::Serializer::new(String::new());
                        href.append_pair("space_id", &page.space_id)
                            .append_pair("integration_id", &page.integration_id)
                            .append_pair("query", &query.query)
                            .append_pair("cursor", &encode_offset(next));
                        format!("/stacks/new?{}", href.finish())
                    });
                }
                Err(failed) => page.repositories_error = Some(failed.0),
            }
        }
    }
    let context = PageContext { page: PageData::NewStack(page), form, ..context };
    Ok(state.pages.render(context, status).await)
}

/// `/stacks/new`, each step a GET of the same page.
pub async fn new_page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Query(query): Query<NewStackQuery>,
) -> Result<Response, AppError> {
    render_new(&state, context, &user, query, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct NewStackForm {
    #[serde(default)]
    space_id: String,
    #[serde(default)]
    integration_id: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    branch: String,
    #[serde(flatten)]
    triggers: TriggerBoxes,
    /// The form's token (`submission`): sent twice, it creates once.
    #[serde(default)]
    submission: String,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<NewStackForm>,
) -> Result<Response, AppError> {
    let token = form.submission.clone();
    let work = {
        let (state, user) = (state.clone(), user.clone());
        async move {
            let input = StackInput {
                space_id: Some(form.space_id.clone()),
                integration_id: Some(form.integration_id.clone()),
                repository: Some(form.repository.clone()),
                name: Some(form.name.clone()),
                branch: Some(form.branch.clone()),
                triggers: form.triggers.input(),
                ..Default::default()
            };
            match operations::create(&state.services, &user.caller(address).principal(), input).await {
                Ok(stack) => Ok(Done::Made {
                    path: format!("/stacks/{}", stack.id),
                    flash: Flash::success(format!("Stack \u{201c}{}\u{201d} created.", stack.name)),
                }),
                Err(error) => {
                    let mut values = vec![
                        ("repository".to_owned(), form.repository),
                        ("name".to_owned(), form.name),
                        ("branch".to_owned(), form.branch),
                    ];
                    values.extend(form.triggers.values());
                    let (outcome, status) = answered_again(error, values)?;
                    let query = NewStackQuery {
                        space_id: form.space_id,
                        integration_id: form.integration_id,
                        ..Default::default()
                    };
                    Ok(Done::Refused(render_new(&state, context, &user, query, Some(outcome), status).await?))
                }
            }
        }
    };
    submission::once(&state, &session, &user, &token, submission::asking_bitbucket(&state), work).await
}

/// How many runs a stack's page shows; the API pages through the rest.
const RUNS_SHOWN: usize = 20;

/// The stack's latest runs, each with the build statuses that show it, as
/// the API reads them (`runs::page` says who may), and whether there are
/// older ones.
async fn latest_runs(state: &AppState, by: &Principal, stack: Uuid) -> Result<(Vec<RunRow>, bool), AppError> {
    // One more than shown says whether there are older ones.
    let mut found = runs::page(&state.services, by, stack, None, RUNS_SHOWN as i64 + 1).await?;
    let more = found.len() > RUNS_SHOWN;
    found.truncate(RUNS_SHOWN);
    let mut rows = Vec::with_capacity(found.len());
    for run in found {
        let shown = statuses::of_run(&state.services.pool, &run).await?;
        let comment = comments::of_run(&state.services.pool, &run).await?;
        rows.push(run_row(run, shown, comment));
    }
    Ok((rows, more))
}

fn run_row(run: Run, shown: Vec<statuses::Shown>, comment: Option<comments::CommentShown>) -> RunRow {
    RunRow {
        commit: run.commit.chars().take(12).collect(),
        key: run.key,
        url: run.url,
        title: run.title,
        kind: run.kind.as_str().to_owned(),
        state: run.state.as_str().to_owned(),
        pull_request_id: run.pull_request_id,
        updated_at: rfc3339(run.updated_at),
        statuses: shown
            .into_iter()
            .map(|s| RunStatusRow { key: s.key, state: s.state.to_owned(), sent: s.sent, message: s.message })
            .collect(),
        comment: comment.map(|c| RunCommentRow {
            pull_request_id: c.pull_request_id,
            sent: c.sent,
            message: c.message,
        }),
    }
}

async fn render_stack(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    raw: &str,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let id = Uuid::parse_str(raw).map_err(|_| AppError::NotFound)?;
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let stack = stacks::find(&state.services.pool, id).await?.ok_or(AppError::NotFound)?;
    access.can_see(stack.space_id)?;
    let space = spaces::find(&state.services.pool, stack.space_id).await?.map(|s| s.name).unwrap_or_default();
    let integration_link = match stack.integration_id {
        Some(integration) => match integrations::find(&state.services.pool, integration).await? {
            Some(found) => access.can_administer_integration(found.space_id).is_ok(),
            None => false,
        },
        None => false,
    };
    let attachable = stacks::integrations_usable_in(&state.services.pool, stack.space_id)
        .await?
        .into_iter()
        .filter(|(id, _, provider)| *provider == stack.provider && Some(*id) != stack.integration_id)
        .map(|(id, name, _)| (id.to_string(), name))
        .collect();
    let principal = user.caller(None).principal();
    let (runs, more_runs) = latest_runs(state, &principal, stack.id).await?;
    let outbound = outbound::of_stack(state, &principal, stack.id).await?;
    let page = StackPage {
        id: stack.id.to_string(),
        name: stack.name.clone(),
        space,
        provider: stack.provider.label().to_owned(),
        integration: stack.integration_id.zip(stack.integration_name.clone()).map(|(id, name)| (id.to_string(), name)),
        integration_link,
        repository: stack.repository_name.clone(),
        repository_id: stack.repository_id.clone(),
        branch: stack.branch.clone(),
        created: format!(
            "Created {} by {}",
            bitgate_app::components::when::exact(stack.created_at),
            stack.created_by_label
        ),
        can_write: access.can_write(stack.space_id).is_ok(),
        attachable,
        branch_deleted: stack.branch_deleted,
        last_delivery: stack.last_delivery.map(|(id, at)| (id.to_string(), bitgate_app::components::when::exact(at))),
        // The delivery log belongs to the integration's admins.
        last_delivery_link: integration_link,
        triggers: shown(stack.triggers),
        hook: stack.hook.as_ref().map(|hook| (hook.state.as_str().to_owned(), hook.message.clone())),
        runs,
        more_runs,
        outbound,
    };
    let context = PageContext { page: PageData::Stack(page), form, ..context };
    Ok(state.pages.render(context, status).await)
}

/// `/stacks/{id}`: anyone with a role on its space.
pub async fn show(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    render_stack(&state, context, &user, &raw, None, StatusCode::OK).await
}

/// The stack page's forms: name, branch and triggers, or the integration
/// to attach it to.
#[derive(Deserialize)]
pub struct StackForm {
    name: Option<String>,
    branch: Option<String>,
    integration_id: Option<String>,
    #[serde(flatten)]
    triggers: TriggerBoxes,
}

pub async fn update(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
    Form(form): Form<StackForm>,
) -> Result<Response, AppError> {
    let input = StackInput {
        name: form.name.clone(),
        branch: form.branch.clone(),
        integration_id: form.integration_id.clone(),
        triggers: form.triggers.input(),
        ..Default::default()
    };
    let principal = user.caller(address).principal();
    match operations::update(&state.services, &principal, operations::parse_id(&raw)?, input).await {
        Ok(stack) => {
            let message = match &form.integration_id {
                Some(_) => format!(
                    "Stack \u{201c}{}\u{201d} attached to {}.",
                    stack.name,
                    stack.integration_name.as_deref().unwrap_or_default()
                ),
                None => format!("Stack \u{201c}{}\u{201d} saved.", stack.name),
            };
            push_flash(&session, Flash::success(message)).await?;
            Ok(Redirect::to(&format!("/stacks/{}", stack.id)).into_response())
        }
        Err(error) => {
            let mut values: Vec<(String, String)> = [("name", &form.name), ("branch", &form.branch)]
                .into_iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
                .collect();
            values.extend(form.triggers.values());
            let (mut outcome, status) = answered_again(error, values)?;
            // The attach form has one field: its problem is the whole form's.
            if let Some((_, why)) = outcome.field_errors.iter().find(|(f, _)| f != "name" && f != "branch") {
                outcome.form_error = Some(format!("Nothing was saved: {why}"));
            }
            render_stack(&state, context, &user, &raw, Some(outcome), status).await
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let principal = user.caller(address).principal();
    let stack = operations::delete(&state.services, &principal, operations::parse_id(&raw)?).await?;
    push_flash(&session, Flash::success(format!("Stack \u{201c}{}\u{201d} deleted.", stack.name))).await?;
    Ok(Redirect::to("/stacks").into_response())
}
