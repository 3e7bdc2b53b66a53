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

/// What the stack's events last said of one pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Merged, declined or deleted.
    Closed,
    /// Open, its source at this commit (when the event said).
    Open { head: Option<String> },
    /// No event of the stack names it (opened before the stack existed,
    /// or its events are past retention).
    Unknown,
}

impl Known {
    /// Whether a run on `commit` still speaks for the pull request: not
    /// when it is closed, nor when its head has moved past the commit.
    pub fn current(&self, commit: &str) -> bool {
        match self {
            Known::Closed => false,
            // Cloud's pull-request payloads name the source by its first
            // 12 hex digits only.
            Known::Open { head: Some(head) } => {
                commit == head || (head.len() >= 7 && commit.starts_with(head.as_str()))
            }
            Known::Open { head: None } | Known::Unknown => true,
        }
    }
}

/// The pull request `id` as the events of `stack` last told it.
pub async fn known(db: impl PgExecutor<'_>, stack: Uuid, id: i64) -> Result<Known, sqlx::Error> {
    let last = sqlx::query!(
        r#"SELECT type AS "event_type!", commit FROM events
           WHERE stack_id = $1 AND pull_request IS NOT NULL AND (pull_request ->> 'id')::bigint = $2
           ORDER BY tx DESC, seq DESC LIMIT 1"#,
        stack,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(match last {
        None => Known::Unknown,
        Some(row) if row.event_type == EventType::PullRequestClosed.as_str() => Known::Closed,
        Some(row) => Known::Open { head: row.commit },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_speaks_for_an_open_pull_request_at_its_head_only() {
        let full = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
        assert!(Known::Unknown.current(full));
        assert!(!Known::Closed.current(full));
        assert!(Known::Open { head: None }.current(full));
        assert!(Known::Open { head: Some(full.into()) }.current(full));
        assert!(Known::Open { head: Some("a1b2c3d4e5f6".into()) }.current(full), "Cloud's short hash");
        assert!(!Known::Open { head: Some("b2c3d4e5f607".into()) }.current(full));
        assert!(!Known::Open { head: Some("a".into()) }.current(full), "too short to tell");
    }
}
