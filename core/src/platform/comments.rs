//! Pull-request comments (SPEC.md, "Pull-request comments"): one comment
//! per (pull request, stack), created at the first failed proposed run
//! (`pr_comments: failures`) or at the first one (`always`), and edited in
//! place afterwards to show the latest run. The rule lives here: when a
//! comment is due, what it says, the 32,000-character cut; and
//! [`run_changed`], which stores what the comment should say and queues it
//! (sent by [`super::sending::comments`]) in the transaction that stored
//! the run's report.

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    events::RunKind,
    pull_requests,
    runs::{Run, RunState},
};
use crate::{
    integrations::PrComments,
    jobs::{self, JobKind},
};

/// A comment's text is cut to this many characters (Data Center refuses
/// 32,768 and more; Cloud's limit is not documented).
pub const MAX_COMMENT_CHARS: usize = 32_000;

/// What a comment shows: the latest run of its stack on the pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown<'a> {
    pub stack_name: &'a str,
    /// The stack's page in Bitgate: linked from every comment, and how a
    /// comment whose id was lost is found again.
    pub stack_page: &'a str,
    pub state: RunState,
    pub run_key: &'a str,
    pub run_url: Option<&'a str>,
    pub title: Option<&'a str>,
    pub commit: &'a str,
    pub summary: Option<&'a str>,
    /// A run of the stack on this pull request failed before this one.
    pub failed_before: bool,
}

/// Whether a comment is created for a run in `state` (an existing one is
/// always edited).
pub fn creates(option: PrComments, state: RunState) -> bool {
    match option {
        PrComments::Off => false,
        PrComments::Failures => state == RunState::Failed,
        PrComments::Always => true,
    }
}

/// The first line of every comment of a stack: with the stack's page in
/// the last line, how a comment is recognised among the pull request's.
fn heading(stack_name: &str) -> String {
    format!("**Bitgate: {stack_name}**")
}

/// The comment's Markdown, at most [`MAX_COMMENT_CHARS`] characters: the
/// summary is cut to fit, with a link to where the rest is.
pub fn render(shown: &Shown<'_>) -> String {
    let short: String = shown.commit.chars().take(12).collect();
    let run = match (shown.title, shown.run_url) {
        (Some(title), Some(url)) => format!("[{}]({url})", one_line(title)),
        (None, Some(url)) => format!("[{}]({url})", one_line(shown.run_key)),
        (Some(title), None) => one_line(title),
        (None, None) => format!("`{}`", one_line(shown.run_key)),
    };
    let state = match shown.state {
        RunState::Queued => "⏳ Queued".to_owned(),
        RunState::Running => "⏳ Running".to_owned(),
        RunState::Succeeded if shown.failed_before => "✅ Succeeded: the earlier failure is fixed".to_owned(),
        RunState::Succeeded => "✅ Succeeded".to_owned(),
        RunState::Failed => "❌ Failed".to_owned(),
        RunState::Stopped => "⏹ Stopped".to_owned(),
    };
    let head = format!("{}\n\n{state}: run {run} on commit `{short}`.", heading(shown.stack_name));
    let foot = format!(
        "\n\n---\nBitgate keeps this comment up to date for the stack [{}]({}).",
        one_line(shown.stack_name),
        shown.stack_page
    );
    let Some(summary) = shown.summary.map(str::trim).filter(|s| !s.is_empty()) else {
        return format!("{head}{foot}");
    };
    let rest = shown.run_url.unwrap_or(shown.stack_page);
    let room = MAX_COMMENT_CHARS.saturating_sub(head.chars().count() + foot.chars().count() + 2);
    if summary.chars().count() <= room {
        return format!("{head}\n\n{summary}{foot}");
    }
    let cut_note = format!("\n\n… The summary is cut here: [read it whole]({rest}).");
    let kept: String = summary.chars().take(room.saturating_sub(cut_note.chars().count())).collect();
    format!("{head}\n\n{kept}{cut_note}{foot}")
}

/// A title or key on one line, with nothing that closes a Markdown link.
fn one_line(text: &str) -> String {
    text.chars().take(200).map(|c| if c.is_control() || matches!(c, '[' | ']') { ' ' } else { c }).collect()
}

/// Whether `text` is the comment Bitgate keeps for the stack whose page is
/// `stack_page`.
pub fn is_ours(text: &str, stack_name: &str, stack_page: &str) -> bool {
    text.starts_with(&heading(stack_name)) && text.trim_end().ends_with(&format!("]({stack_page})."))
}

struct Target {
    stack_name: String,
    integration_id: Uuid,
    repository_id: String,
    repository_name: String,
    pr_comments: PrComments,
}

/// A proposed run's report was stored and changed the run: the comment of
/// its (pull request, stack) is set to show it, and queued, when the run
/// is still the latest of the stack on the pull request, its commit is the
/// pull request's head and the pull request is open. Runs in the
/// transaction that stored the report.
pub async fn run_changed(tx: &mut PgConnection, public_url: &str, run: &Run) -> Result<(), sqlx::Error> {
    let Some(pull_request) = run.pull_request_id.filter(|_| run.kind == RunKind::Proposed) else { return Ok(()) };
    let target = sqlx::query_as!(
        Target,
        r#"SELECT s.name AS stack_name, i.id AS integration_id, s.repository_id, s.repository_name,
                  i.pr_comments AS "pr_comments: PrComments"
           FROM stacks s JOIN integrations i ON i.id = s.integration_id
           WHERE s.id = $1"#,
        run.stack_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(target) = target.filter(|t| t.pr_comments != PrComments::Off) else { return Ok(()) };
    // One decision per comment at a time: the next reads what this one wrote.
    let lock = format!("comment {} {} {pull_request}", run.stack_id, target.repository_id);
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock).execute(&mut *tx).await?;
    if !pull_requests::known(&mut *tx, run.stack_id, pull_request).await?.current(&run.commit) {
        return Ok(());
    }
    let latest = sqlx::query_scalar!(
        r#"SELECT id FROM runs WHERE stack_id = $1 AND kind = 'proposed' AND pull_request_id = $2
           ORDER BY created_at DESC, id DESC LIMIT 1"#,
        run.stack_id,
        pull_request
    )
    .fetch_one(&mut *tx)
    .await?;
    if latest != run.id {
        // A late report of an older run: the comment speaks for a newer one.
        return Ok(());
    }
    let existing = sqlx::query!(
        r#"SELECT state AS "state: RunState", failed_before, run_id FROM pull_request_comments
           WHERE stack_id = $1 AND repository_id = $2 AND pull_request_id = $3"#,
        run.stack_id,
        target.repository_id,
        pull_request
    )
    .fetch_optional(&mut *tx)
    .await?;
    let failed_before = match &existing {
        None if !creates(target.pr_comments, run.state) => return Ok(()),
        None => false,
        Some(row) => row.failed_before || (row.state == RunState::Failed && row.run_id != Some(run.id)),
    };
    let base = public_url.trim_end_matches('/');
    let stack_page = format!("{base}/stacks/{}", run.stack_id);
    let body = render(&Shown {
        stack_name: &target.stack_name,
        stack_page: &stack_page,
        state: run.state,
        run_key: &run.key,
        run_url: run.url.as_deref(),
        title: run.title.as_deref(),
        commit: &run.commit,
        summary: run.summary.as_deref(),
        failed_before,
    });
    let changed = sqlx::query_scalar!(
        r#"INSERT INTO pull_request_comments (integration_id, stack_id, repository_id, repository_name,
                                              pull_request_id, run_id, commit, state, failed_before, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (stack_id, repository_id, pull_request_id) DO UPDATE
               SET integration_id = EXCLUDED.integration_id, run_id = EXCLUDED.run_id, commit = EXCLUDED.commit,
                   state = EXCLUDED.state, failed_before = EXCLUDED.failed_before, body = EXCLUDED.body,
                   revision = pull_request_comments.revision + 1, sent = 'pending', message = NULL,
                   pending_since = CASE WHEN pull_request_comments.sent = 'pending'
                                        THEN pull_request_comments.pending_since ELSE now() END,
                   updated_at = now()
               WHERE pull_request_comments.body IS DISTINCT FROM EXCLUDED.body
           RETURNING id"#,
        target.integration_id,
        run.stack_id,
        target.repository_id,
        target.repository_name,
        pull_request,
        run.id,
        run.commit,
        run.state.as_str(),
        failed_before,
        body
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = changed {
        let payload = json!({"comment": id, "integration": target.integration_id});
        jobs::enqueue_outbound(&mut *tx, JobKind::SendPullRequestComment, payload, &format!("comment:{id}")).await?;
    }
    Ok(())
}

/// A pull request's comment as a run shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentShown {
    pub pull_request_id: i64,
    /// `pending`, `sent`, `failed` or `skipped`.
    pub sent: String,
    pub message: Option<String>,
}

/// The comment of a run's (pull request, stack), if there is one.
pub async fn of_run(db: impl sqlx::PgExecutor<'_>, run: &Run) -> Result<Option<CommentShown>, sqlx::Error> {
    let Some(pull_request) = run.pull_request_id else { return Ok(None) };
    let row = sqlx::query!(
        r#"SELECT c.sent, c.message FROM pull_request_comments c JOIN stacks s ON s.id = c.stack_id
           WHERE c.stack_id = $1 AND c.repository_id = s.repository_id AND c.pull_request_id = $2"#,
        run.stack_id,
        pull_request
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| CommentShown { pull_request_id: pull_request, sent: r.sent, message: r.message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(state: RunState, summary: Option<&'static str>) -> Shown<'static> {
        Shown {
            stack_name: "web",
            stack_page: "https://bitgate.example.com/stacks/1",
            state,
            run_key: "run-7",
            run_url: Some("https://ci.example.com/runs/7"),
            title: Some("Plan"),
            commit: "0123456789abcdef0123456789abcdef01234567",
            summary,
            failed_before: false,
        }
    }

    #[test]
    fn a_comment_is_created_by_what_the_option_says() {
        assert!(!creates(PrComments::Off, RunState::Failed));
        assert!(creates(PrComments::Failures, RunState::Failed));
        for state in [RunState::Queued, RunState::Running, RunState::Succeeded, RunState::Stopped] {
            assert!(!creates(PrComments::Failures, state), "{state:?}");
            assert!(creates(PrComments::Always, state), "{state:?}");
        }
    }

    #[test]
    fn it_says_the_state_links_the_run_and_carries_the_summary() {
        let text = render(&shown(RunState::Failed, Some("Error: 2 resources failed")));
        assert!(
            text.starts_with(
                "**Bitgate: web**\n\n❌ Failed: run [Plan](https://ci.example.com/runs/7) on commit `0123456789ab`."
            ),
            "{text}"
        );
        assert!(text.contains("\n\nError: 2 resources failed\n\n---\n"), "{text}");
        assert!(is_ours(&text, "web", "https://bitgate.example.com/stacks/1"));
        assert!(!is_ours(&text, "web", "https://bitgate.example.com/stacks/2"));
        let fixed = render(&Shown { failed_before: true, ..shown(RunState::Succeeded, None) });
        assert!(fixed.contains("✅ Succeeded: the earlier failure is fixed"), "{fixed}");
        let odd = render(&Shown { title: Some("a](evil) [b"), ..shown(RunState::Running, None) });
        assert!(odd.contains("[a (evil)  b](https://ci.example.com/runs/7)"), "{odd}");
    }

    #[test]
    fn a_long_summary_is_cut_to_fit_with_a_link_to_the_rest() {
        let long = "é".repeat(40_000);
        let text = render(&shown(RunState::Failed, Some(Box::leak(long.into_boxed_str()))));
        assert_eq!(text.chars().count(), MAX_COMMENT_CHARS, "filled to the limit, not past it");
        assert!(text.contains("… The summary is cut here: [read it whole](https://ci.example.com/runs/7)."));
        assert!(is_ours(&text, "web", "https://bitgate.example.com/stacks/1"), "the foot survives the cut");
        let fits = "x".repeat(31_000);
        let text = render(&shown(RunState::Failed, Some(Box::leak(fits.into_boxed_str()))));
        assert!(!text.contains("cut here"));
    }
}
