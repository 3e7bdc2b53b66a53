//! `/api/v1/events`: the feed the platform follows. Answers at once when
//! events follow the cursor, otherwise waits up to `wait` seconds for one
//! (no connection is held while waiting). Callers read the events of the
//! stacks they can see.

use std::time::Duration;

use axum::{extract::State, Json};
use bitgate_core::{
    access::Access,
    platform::{
        events::{EventType, PullRequestRef, RunKind},
        feed::{self, Cursor, Event, Query as FeedQuery, MAX_WAIT},
    },
    stacks,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{caller::Caller, error::ErrorBody, pagination::MAX_LIMIT, query::Query, rfc3339};
use crate::{error::AppError, state::AppState};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `next_cursor` of the previous answer; left out, the oldest event kept.
    after: Option<String>,
    /// How many events to answer, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// Seconds to wait for an event when none follows the cursor, 0 to 30 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 30)]
    wait: Option<String>,
    /// Only this stack's events.
    stack_id: Option<String>,
    /// Only events of this type: `run.requested`, `branch.deleted` or `pull_request.closed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
}

/// A repository, by Bitbucket's stable id and its name.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventRepository {
    pub id: String,
    /// `PRJ/my-repo` or `workspace/my-repo`.
    pub name: String,
}

/// The pull request an event is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPullRequest {
    pub id: u64,
    pub source_branch: String,
    pub target_branch: String,
    /// The source's commit.
    pub source_commit: Option<String>,
    pub title: Option<String>,
    /// Its page in Bitbucket, when the delivery gave it.
    pub url: Option<String>,
}

/// What a stack should react to.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    pub id: Uuid,
    /// `run.requested`, `branch.deleted` or `pull_request.closed`.
    #[serde(rename = "type")]
    #[schema(example = "run.requested")]
    pub event_type: String,
    /// `tracked` (a push to the stack's branch) or `proposed` (a pull
    /// request into it); `run.requested` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A proposed run requested again because its source was pushed
    /// (`resync_pull_requests`); `run.requested` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resync: Option<bool>,
    #[schema(format = DateTime)]
    pub at: String,
    pub stack_id: Uuid,
    pub integration_id: Uuid,
    /// The delivery it came from; null for a poll.
    pub delivery_id: Option<Uuid>,
    pub repository: EventRepository,
    /// The branch whose code runs (a pull request's source), or that was deleted.
    pub branch: String,
    /// 40 hex characters; null for a deleted branch.
    pub commit: Option<String>,
    /// Null for pushes.
    pub pull_request: Option<EventPullRequest>,
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub items: Vec<EventView>,
    /// Pass as `after` next time, also when `items` is empty.
    pub next_cursor: String,
}

fn view(event: Event) -> EventView {
    EventView {
        id: event.id,
        event_type: event.event_type.as_str().to_owned(),
        kind: event.kind.map(RunKind::as_str).map(str::to_owned),
        resync: event.resync,
        at: rfc3339(event.at),
        stack_id: event.stack_id,
        integration_id: event.integration_id,
        delivery_id: event.delivery_id,
        repository: EventRepository { id: event.repository.id, name: event.repository.name },
        branch: event.branch,
        commit: event.commit,
        pull_request: event.pull_request.map(|pr: PullRequestRef| EventPullRequest {
            id: pr.id,
            source_branch: pr.source_branch,
            target_branch: pr.target_branch,
            source_commit: pr.source_commit,
            title: pr.title,
            url: pr.url,
        }),
    }
}

fn number(raw: Option<&str>, name: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> Result<i64, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(default) };
    raw.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        AppError::BadRequest(format!("{name} must be a whole number from {} to {}.", range.start(), range.end()))
    })
}

/// Follow the events
///
/// The events of the stacks you can see, in the order they became
/// readable, after `after`. Answers at once when some follow it; otherwise
/// waits up to `wait` seconds for one and answers an empty list when none
/// came. Pass `next_cursor` as `after` next time: following it never skips
/// an event.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, description = "The events after the cursor (possibly none), and where to read next.", body = EventsPage),
        (status = 400, description = "A parameter is not valid.", body = ErrorBody),
        (status = 404, description = "`stack_id` names no stack you can see.", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventsPage>, AppError> {
    let after = match query.after.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => Cursor::default(),
        Some(raw) => raw.parse::<Cursor>().map_err(|bad| AppError::BadRequest(format!("after: {bad}")))?,
    };
    let limit = number(query.limit.as_deref(), "limit", 1..=MAX_LIMIT, 50)?;
    let wait = number(query.wait.as_deref(), "wait", 0..=MAX_WAIT.as_secs() as i64, 0)?;
    let event_type = match query.event_type.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(raw) => Some(EventType::parse(raw).ok_or_else(|| {
            AppError::BadRequest("type must be run.requested, branch.deleted or pull_request.closed.".into())
        })?),
    };
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let stack_id = match query.stack_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let id =
                Uuid::parse_str(raw).map_err(|_| AppError::BadRequest("stack_id must be an id (a UUID).".into()))?;
            let stack = stacks::find(&state.services.pool, id).await?.ok_or(AppError::NotFound)?;
            access.can_see(stack.space_id)?;
            Some(id)
        }
    };
    let spaces = access.visible_spaces();
    let page = feed::follow(
        &state.services.pool,
        &state.services.events,
        Some(&spaces),
        FeedQuery { after, limit, stack_id, event_type },
        Duration::from_secs(wait as u64),
    )
    .await?;
    Ok(Json(EventsPage {
        items: page.items.into_iter().map(view).collect(),
        next_cursor: page.next_cursor.to_string(),
    }))
}
