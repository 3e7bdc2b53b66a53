//! `/api/v1/stacks/{id}/runs`: the platform's reports of the work it does
//! for a stack, under its own run id as the key. Writers of the stack's
//! space report them (201 for a key's first report, 200 after); anyone who
//! sees the stack reads them. States only move forward; a report that would
//! move one back is a 409 that changes nothing.

use axum::{
    extract::{rejection::PathRejection, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::platform::{
    comments,
    events::RunKind,
    runs::{self, Reported, Run, RunInput, RunState, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, MAX_URL_CHARS},
    statuses,
};
use serde::Serialize;
use utoipa::{
    openapi::schema::{ObjectBuilder, Type},
    ToSchema,
};
use uuid::Uuid;

use super::{
    caller::Caller,
    error::ErrorBody,
    json::{Fields, JsonObject},
    pagination::{page_of, Cursor, Page, PageQuery},
    query::Query,
    rfc3339,
};
use crate::{error::AppError, state::AppState};

/// A string schema taking exactly `values`.
fn one_of<'a>(values: impl IntoIterator<Item = &'a str>, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.into_iter().collect::<Vec<_>>()))
        .description(Some(description))
}

fn kind_schema() -> ObjectBuilder {
    one_of(
        RunKind::ALL.iter().map(|k| k.as_str()),
        "`tracked`: for a branch the stack follows; `proposed`: for a pull request into it.",
    )
}

fn state_schema() -> ObjectBuilder {
    one_of(
        RunState::ALL.iter().map(|s| s.as_str()),
        "Only moves forward: `queued`, then `running`, then one of `succeeded`, `failed`, `stopped` \
         (`queued` may go straight to an end); an end never changes.",
    )
}

fn status_state_schema() -> ObjectBuilder {
    one_of(
        ["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED", "CANCELLED"],
        "The build status's state in Bitbucket: queued and running runs are `INPROGRESS`; a stopped run is \
         `STOPPED` on Cloud and `CANCELLED` on Data Center.",
    )
}

fn sent_schema() -> ObjectBuilder {
    one_of(
        ["pending", "sent", "failed"],
        "`pending`: queued for Bitbucket; `sent`: Bitbucket took it; `failed`: Bitbucket refused it, or it could \
         not be sent in time (see `message`).",
    )
}

/// A run, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Run)]
pub struct RunView {
    pub id: Uuid,
    pub stack_id: Uuid,
    /// The platform's own id of the run, unique in its stack.
    #[schema(example = "pipeline-4711")]
    pub key: String,
    /// The full commit id, lowercase.
    #[schema(example = "0123456789abcdef0123456789abcdef01234567")]
    pub commit: String,
    #[schema(schema_with = kind_schema)]
    pub kind: RunKind,
    #[schema(schema_with = state_schema)]
    pub state: RunState,
    /// The platform's page of the run.
    pub url: Option<String>,
    pub title: Option<String>,
    /// Markdown.
    pub summary: Option<String>,
    /// The pull request a proposed run is for; null for a tracked run.
    pub pull_request_id: Option<i64>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When a report last changed it.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The build statuses that show this run in Bitbucket (its stack's, and
    /// the commit's aggregate, as the integration's `vcs_checks` says);
    /// empty when the integration posts none.
    pub statuses: Vec<RunStatusView>,
    /// The comment Bitgate keeps on the run's pull request for its stack
    /// (as the integration's `pr_comments` says); null when there is none.
    pub comment: Option<RunCommentView>,
}

/// The comment of a proposed run's (pull request, stack) in Bitbucket.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunComment)]
pub struct RunCommentView {
    pub pull_request_id: i64,
    #[schema(schema_with = comment_sent_schema)]
    pub sent: String,
    /// Bitbucket's answer when it refused the comment, or why it was not posted.
    pub message: Option<String>,
}

fn comment_sent_schema() -> ObjectBuilder {
    one_of(
        ["pending", "sent", "failed", "skipped"],
        "`pending`: queued for Bitbucket; `sent`: the comment shows its latest run; `failed`: Bitbucket refused \
         it; `skipped`: not posted, as the pull request closed or its head moved on (see `message`).",
    )
}

/// A build status of a run in Bitbucket, and whether it was sent.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunStatus)]
pub struct RunStatusView {
    /// The status's key in Bitbucket: stable, at most 40 characters.
    pub key: String,
    #[schema(schema_with = status_state_schema)]
    pub state: String,
    #[schema(schema_with = sent_schema)]
    pub sent: String,
    /// Bitbucket's answer when it refused the status.
    pub message: Option<String>,
}

/// The run with the statuses that show it.
pub async fn view(state: &AppState, run: &Run) -> Result<RunView, AppError> {
    let shown = statuses::of_run(&state.services.pool, run).await?;
    let comment = comments::of_run(&state.services.pool, run).await?;
    let mut view = bare_view(run);
    view.comment =
        comment.map(|c| RunCommentView { pull_request_id: c.pull_request_id, sent: c.sent, message: c.message });
    view.statuses = shown
        .into_iter()
        .map(|s| RunStatusView { key: s.key, state: s.state.to_owned(), sent: s.sent, message: s.message })
        .collect();
    Ok(view)
}

fn bare_view(run: &Run) -> RunView {
    RunView {
        id: run.id,
        stack_id: run.stack_id,
        key: run.key.clone(),
        commit: run.commit.clone(),
        kind: run.kind,
        state: run.state,
        url: run.url.clone(),
        title: run.title.clone(),
        summary: run.summary.clone(),
        pull_request_id: run.pull_request_id,
        created_at: rfc3339(run.created_at),
        updated_at: rfc3339(run.updated_at),
        statuses: Vec::new(),
        comment: None,
    }
}

/// The body of `PUT /api/v1/stacks/{id}/runs/{key}`: the whole run as the
/// platform sees it now. An optional field left out is cleared.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct ReportRun {
    /// The full commit id the run works on: 40 hexadecimal digits. It
    /// cannot change.
    #[schema(example = "0123456789abcdef0123456789abcdef01234567", pattern = "^[0-9a-fA-F]{40}$")]
    commit: String,
    // Its description is the schema's; it cannot change either.
    #[schema(schema_with = kind_schema)]
    kind: String,
    #[schema(schema_with = state_schema)]
    state: String,
    /// The platform's page of the run: http or https, at most 450
    /// characters (Bitbucket Data Center's limit on a status's link).
    #[schema(max_length = 450, example = "https://ci.example.com/runs/4711")]
    url: Option<String>,
    /// One line, at most 255 characters.
    #[schema(max_length = 255)]
    title: Option<String>,
    /// Markdown, at most 100,000 characters.
    #[schema(max_length = 100000)]
    summary: Option<String>,
    /// Required for a proposed run, refused for a tracked one. It cannot change.
    #[schema(minimum = 1)]
    pull_request_id: Option<i64>,
}

// The documented limits are the ones core enforces.
const _: () = assert!(MAX_URL_CHARS == 450 && MAX_TITLE_CHARS == 255 && MAX_SUMMARY_CHARS == 100_000);

/// A request body as `runs::report` reads it: each value moved over, what
/// JSON itself refuses (an unknown field, a wrong type) noted for it.
fn read_input(body: JsonObject) -> RunInput {
    let mut fields = Fields::new::<ReportRun>(body);
    let mut input = RunInput {
        commit: fields.optional_string("commit"),
        kind: fields.optional_string("kind"),
        state: fields.optional_string("state"),
        url: fields.optional_string("url"),
        title: fields.optional_string("title"),
        summary: fields.optional_string("summary"),
        pull_request_id: fields.optional_integer("pull_request_id"),
        ..Default::default()
    };
    input.read_problems = fields.errors;
    input
}

/// The path's parameters; a key that is not UTF-8 once decoded is a
/// malformed request, answered in the API's error shape.
fn path_of<T>(path: Result<Path<T>, PathRejection>) -> Result<T, AppError> {
    path.map(|Path(value)| value)
        .map_err(|rejection| AppError::BadRequest(format!("The path is invalid: {}.", rejection.body_text())))
}

/// Report a run
///
/// Writers of the stack's space. The first report of a key creates the
/// run (201); later ones move its state forward or change its url, title
/// or summary (200), and the same report again changes nothing (200). A
/// report that would move the state back, or that names another commit,
/// kind or pull request, is refused with 409 and changes nothing.
#[utoipa::path(put, path = "/api/v1/stacks/{id}/runs/{key}", tag = "runs", request_body = ReportRun,
    params(
        ("id" = Uuid, Path, description = "The stack's id."),
        ("key" = String, Path, description = "The platform's own id of the run: 1 to 200 printable characters, percent-encoded in the path.")),
    responses(
        (status = 201, description = "The key's first report: the run is stored.", body = RunView),
        (status = 200, description = "The run as it is now, whether this report changed it or was the same again.", body = RunView),
        (status = 403, description = "You can see the stack but not write to its space.", body = ErrorBody),
        (status = 404, description = "No such stack, or none you can see.", body = ErrorBody),
        (status = 409, description = "The report would move the state back, or names another commit, kind or pull request than the run's; nothing changed. `details` says which.", body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: JsonObject,
) -> Result<Response, AppError> {
    let (stack, key) = path_of(path)?;
    let input = read_input(body);
    let (run, reported) =
        runs::report(&state.services, &caller.principal(), runs::parse_stack_id(&stack)?, &key, input).await?;
    let status = if reported == Reported::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view(&state, &run).await?)).into_response())
}

/// Get a run
///
/// Anyone with a role on the stack's space.
#[utoipa::path(get, path = "/api/v1/stacks/{id}/runs/{key}", tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The stack's id."),
        ("key" = String, Path, description = "The platform's own id of the run, percent-encoded.")),
    responses(
        (status = 200, description = "The run.", body = RunView),
        (status = 400, description = "The key is not UTF-8 once decoded.", body = ErrorBody),
        (status = 404, description = "No such stack or run, or none you can see.", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<RunView>, AppError> {
    let (stack, key) = path_of(path)?;
    let run = runs::get(&state.services, &caller.principal(), runs::parse_stack_id(&stack)?, &key).await?;
    Ok(Json(view(&state, &run).await?))
}

/// List a stack's runs
///
/// Newest first; anyone with a role on the stack's space.
#[utoipa::path(get, path = "/api/v1/stacks/{id}/runs", tag = "runs",
    params(("id" = Uuid, Path, description = "The stack's id."), PageQuery),
    responses(
        (status = 200, description = "The stack's runs, newest first.", body = Page<RunView>),
        (status = 404, description = "No such stack, or none you can see.", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<RunView>>, AppError> {
    let stack = runs::parse_stack_id(&path_of(path)?)?;
    let request = query.parse()?;
    let rows =
        runs::page(&state.services, &caller.principal(), stack, request.after.map(|c| (c.at, c.id)), request.limit + 1)
            .await?;
    let page = page_of(rows, request.limit, |r| Cursor { at: r.created_at, id: r.id }, Clone::clone);
    let mut items = Vec::with_capacity(page.items.len());
    for run in &page.items {
        items.push(view(&state, run).await?);
    }
    Ok(Json(Page { items, next_cursor: page.next_cursor }))
}
