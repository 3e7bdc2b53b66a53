//! The open pull requests Bitgate knows of, as its events tell them: a pull
//! request into a stack's branch is open from its last proposed run until
//! a `pull_request.closed` event (one opened before the stack existed, or
//! before its events were retained, is not known).

use sqlx::PgExecutor;
use uuid::Uuid;

use super::events::{EventType, OpenPullRequest, PullRequestRef};

/// The open pull requests into the branches of `stacks`.
pub async fn open_for(db: impl PgExecutor<'_>, stacks: &[Uuid]) -> Result<Vec<OpenPullRequest>, sqlx::Error> {
    if stacks.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!(
        r#"SELECT DISTINCT ON (stack_id, (pull_request ->> 'id')) type AS "event_type!", pull_request AS "pull_request!"
           FROM events
           WHERE stack_id = ANY($1) AND pull_request IS NOT NULL
           ORDER BY stack_id, (pull_request ->> 'id'), tx DESC, seq DESC"#,
        stacks
    )
    .fetch_all(db)
    .await?;
    let mut open: Vec<OpenPullRequest> = rows
        .into_iter()
        .filter(|row| row.event_type != EventType::PullRequestClosed.as_str())
        .filter_map(|row| serde_json::from_value::<PullRequestRef>(row.pull_request).ok())
        .map(|pr| OpenPullRequest {
            id: pr.id,
            source_branch: pr.source_branch,
            target_branch: pr.target_branch,
            title: pr.title,
            url: pr.url,
        })
        .collect();
    // Two stacks on one branch know the same pull request.
    open.sort_by(|a, b| (a.id, &a.target_branch).cmp(&(b.id, &b.target_branch)));
    open.dedup_by(|a, b| a.id == b.id && a.target_branch == b.target_branch);
    Ok(open)
}
