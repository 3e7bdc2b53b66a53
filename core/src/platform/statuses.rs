//! Build statuses: what Bitgate shows on a commit in Bitbucket for the runs
//! the platform reports (SPEC.md, "Build statuses"). The rule: the keys
//! (stable forever, at most 40 characters: Cloud's limit, and merge checks
//! name them), the readable names, the state mapping of each product, the
//! aggregate of several stacks; and [`run_changed`], which turns a stored
//! report into the statuses Bitbucket should show, each queued to be sent
//! (by [`super::sending`]) in the transaction that stored the report.

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    events::RunKind,
    runs::{Run, RunState},
};
use crate::{
    integrations::{Provider, VcsChecks},
    jobs::{self, JobKind},
    text_enum::text_enum,
};

/// Bitbucket Cloud refuses longer keys; Data Center takes 255.
pub const MAX_KEY_CHARS: usize = 40;

text_enum! {
    /// A status's state as Bitgate keeps it; each product's word is
    /// [`BuildState::word`].
    pub enum BuildState {
        InProgress = "in_progress",
        Successful = "successful",
        Failed = "failed",
        Stopped = "stopped",
    }
}

/// Where a status goes on Data Center: the current endpoint, or the legacy
/// one of servers that have no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Current,
    Legacy,
}

impl BuildState {
    /// A run's state as Bitbucket shows it.
    pub fn of(run: RunState) -> Self {
        match run {
            RunState::Queued | RunState::Running => BuildState::InProgress,
            RunState::Succeeded => BuildState::Successful,
            RunState::Failed => BuildState::Failed,
            RunState::Stopped => BuildState::Stopped,
        }
    }

    /// The product's word. A stopped run: `STOPPED` on Cloud, `CANCELLED`
    /// on Data Center, and `FAILED` on the legacy endpoint, which knows no
    /// other word for it.
    pub fn word(self, provider: Provider, endpoint: Endpoint) -> &'static str {
        match (self, provider, endpoint) {
            (BuildState::InProgress, ..) => "INPROGRESS",
            (BuildState::Successful, ..) => "SUCCESSFUL",
            (BuildState::Failed, ..) => "FAILED",
            (BuildState::Stopped, Provider::Cloud, _) => "STOPPED",
            (BuildState::Stopped, Provider::DataCenter, Endpoint::Current) => "CANCELLED",
            (BuildState::Stopped, Provider::DataCenter, Endpoint::Legacy) => "FAILED",
        }
    }

    /// The status's description: the state in words.
    pub fn description(self) -> &'static str {
        match self {
            BuildState::InProgress => "In progress",
            BuildState::Successful => "Succeeded",
            BuildState::Failed => "Failed",
            BuildState::Stopped => "Stopped",
        }
    }

    /// The state of one status for several stacks' runs: failed when any
    /// failed, in progress while any is queued or running, stopped when
    /// any stopped (and none failed), successful when all succeeded.
    /// `None` without runs.
    pub fn aggregate(runs: impl IntoIterator<Item = RunState>) -> Option<Self> {
        let states: Vec<BuildState> = runs.into_iter().map(BuildState::of).collect();
        let any = |state: BuildState| states.contains(&state);
        if states.is_empty() {
            None
        } else if any(BuildState::Failed) {
            Some(BuildState::Failed)
        } else if any(BuildState::InProgress) {
            Some(BuildState::InProgress)
        } else if any(BuildState::Stopped) {
            Some(BuildState::Stopped)
        } else {
            Some(BuildState::Successful)
        }
    }
}

/// Whether `vcs_checks` posts one status per stack, one for all stacks of
/// the commit, or both.
pub fn posts_individual(checks: VcsChecks) -> bool {
    matches!(checks, VcsChecks::Individual | VcsChecks::All)
}

pub fn posts_aggregated(checks: VcsChecks) -> bool {
    matches!(checks, VcsChecks::Aggregated | VcsChecks::All)
}

/// The key of a stack's status of `kind`: `bg/{the stack id in base32}/{kind}`,
/// 38 characters at most. It depends on nothing that can be renamed.
pub fn individual_key(stack: Uuid, kind: RunKind) -> String {
    format!("bg/{}/{}", base32(stack.as_u128()), kind.as_str())
}

/// The key of the status of all stacks of a commit.
pub fn aggregated_key(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Tracked => "bitgate/tracked",
        RunKind::Proposed => "bitgate/proposed",
    }
}

/// The readable name beside a key (at most 255 characters, Data Center's
/// limit).
pub fn individual_name(stack_name: &str, kind: RunKind) -> String {
    let name: String = stack_name.chars().take(200).collect();
    format!("Bitgate: {name} ({})", kind.as_str())
}

pub fn aggregated_name(kind: RunKind) -> String {
    format!("Bitgate: all stacks ({})", kind.as_str())
}

/// What a status should show, before it is stored.
struct Desired<'a> {
    stack: Option<Uuid>,
    key: String,
    name: String,
    state: BuildState,
    url: &'a str,
    description: String,
}

/// Where a stack's statuses go, and the integration's options that decide
/// which are posted.
struct Target {
    stack_name: String,
    integration_id: Uuid,
    repository_id: String,
    repository_name: String,
    stack_branch: String,
    commit_status: bool,
    status_details: bool,
    vcs_checks: VcsChecks,
}

/// A run's report was stored, and its state (or link) changed: the
/// statuses it concerns are set to show the latest run of each stack on
/// the commit, and queued. Runs in the transaction that stored the report,
/// so a status is queued exactly when a report is.
pub async fn run_changed(tx: &mut PgConnection, public_url: &str, run: &Run) -> Result<(), sqlx::Error> {
    let target = sqlx::query_as!(
        Target,
        r#"SELECT s.name AS stack_name, i.id AS integration_id, s.repository_id, s.repository_name,
                  s.branch AS stack_branch, i.commit_status, i.status_details,
                  i.vcs_checks AS "vcs_checks: VcsChecks"
           FROM stacks s JOIN integrations i ON i.id = s.integration_id
           WHERE s.id = $1"#,
        run.stack_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    // A detached stack has nowhere to post; an integration may post nothing.
    let Some(target) = target.filter(|t| t.commit_status) else { return Ok(()) };
    let branch = branch_of(tx, run, &target.stack_branch).await?;
    let base = public_url.trim_end_matches('/');
    let stack_page = format!("{base}/stacks/{}", run.stack_id);
    if posts_individual(target.vcs_checks) {
        let key = individual_key(run.stack_id, run.kind);
        lock(tx, &target, &run.commit, &key).await?;
        // The latest run of the stack on the commit speaks for it: a late
        // report of an older run does not cover a newer one.
        let latest = latest_runs(tx, &target, run, Some(run.stack_id)).await?;
        if let Some((state, url, title)) = latest.into_iter().next() {
            let url =
                if target.status_details { url.unwrap_or_else(|| stack_page.clone()) } else { stack_page.clone() };
            let state = BuildState::of(state);
            let description = match title {
                Some(title) => format!("{}: {}", state.description(), title.chars().take(200).collect::<String>()),
                None => state.description().to_owned(),
            };
            let name = individual_name(&target.stack_name, run.kind);
            let desired = Desired { stack: Some(run.stack_id), key, name, state, url: &url, description };
            store(tx, &target, run, branch.as_deref(), desired).await?;
        }
    }
    if posts_aggregated(target.vcs_checks) {
        let key = aggregated_key(run.kind).to_owned();
        lock(tx, &target, &run.commit, &key).await?;
        let latest = latest_runs(tx, &target, run, None).await?;
        if let Some(state) = BuildState::aggregate(latest.iter().map(|(state, ..)| *state)) {
            let stacks = latest.len();
            let description = format!("{} ({stacks} stack{})", state.description(), if stacks == 1 { "" } else { "s" });
            let name = aggregated_name(run.kind);
            let url = format!("{base}/stacks");
            let desired = Desired { stack: None, key, name, state, url: &url, description };
            store(tx, &target, run, branch.as_deref(), desired).await?;
        }
    }
    Ok(())
}

/// One status is decided by one transaction at a time: the next one reads
/// the runs the first committed.
async fn lock(tx: &mut PgConnection, target: &Target, commit: &str, key: &str) -> Result<(), sqlx::Error> {
    let name = format!("status {} {} {commit} {key}", target.integration_id, target.repository_id);
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", name).execute(&mut *tx).await?;
    Ok(())
}

/// The state, link and title of the latest run of each stack (of `only`,
/// or of every stack of the integration on the repository) on the run's
/// commit and of its kind.
async fn latest_runs(
    tx: &mut PgConnection,
    target: &Target,
    run: &Run,
    only: Option<Uuid>,
) -> Result<Vec<(RunState, Option<String>, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT ON (r.stack_id) r.state AS "state: RunState", r.url, r.title
           FROM runs r JOIN stacks s ON s.id = r.stack_id
           WHERE s.integration_id = $1 AND s.repository_id = $2 AND r.commit = $3 AND r.kind = $4
             AND ($5::uuid IS NULL OR r.stack_id = $5)
           ORDER BY r.stack_id, r.created_at DESC, r.id DESC"#,
        target.integration_id,
        target.repository_id,
        run.commit,
        run.kind.as_str(),
        only
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|row| (row.state, row.url, row.title)).collect())
}

/// The branch the commit was built on, as the events of the stack tell:
/// a pull request's source for a proposed run, the pushed branch for a
/// tracked one (the stack's own, unless it runs for every branch). Cloud's
/// pull-request events name the commit by its first 12 hex digits.
async fn branch_of(tx: &mut PgConnection, run: &Run, stack_branch: &str) -> Result<Option<String>, sqlx::Error> {
    let branch = sqlx::query_scalar!(
        r#"SELECT branch FROM events
           WHERE stack_id = $1 AND kind = $3
             AND (commit = $2 OR (length(commit) BETWEEN 7 AND 39 AND starts_with($2, commit)))
             AND ($4::bigint IS NULL OR (pull_request ->> 'id')::bigint = $4)
           ORDER BY tx DESC, seq DESC LIMIT 1"#,
        run.stack_id,
        run.commit,
        run.kind.as_str(),
        run.pull_request_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(branch.or_else(|| (run.kind == RunKind::Tracked).then(|| stack_branch.to_owned())))
}

/// Stores what a status should show; when that changed, its revision goes
/// up and its job is queued (one pending job per status: it always sends
/// the latest revision).
async fn store(
    tx: &mut PgConnection,
    target: &Target,
    run: &Run,
    branch: Option<&str>,
    desired: Desired<'_>,
) -> Result<(), sqlx::Error> {
    let changed = sqlx::query_scalar!(
        r#"INSERT INTO commit_statuses (integration_id, stack_id, repository_id, repository_name, commit, branch, kind,
                                        key, name, state, url, description)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (integration_id, repository_id, commit, key) DO UPDATE
               SET name = EXCLUDED.name, state = EXCLUDED.state, url = EXCLUDED.url,
                   description = EXCLUDED.description, branch = coalesce(EXCLUDED.branch, commit_statuses.branch),
                   revision = commit_statuses.revision + 1, sent = 'pending', message = NULL,
                   pending_since = CASE WHEN commit_statuses.sent = 'pending' THEN commit_statuses.pending_since
                                        ELSE now() END,
                   updated_at = now()
               WHERE (commit_statuses.name, commit_statuses.state, commit_statuses.url, commit_statuses.description)
                     IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.state, EXCLUDED.url, EXCLUDED.description)
           RETURNING id"#,
        target.integration_id,
        desired.stack,
        target.repository_id,
        target.repository_name,
        run.commit,
        branch,
        run.kind.as_str(),
        desired.key,
        desired.name,
        desired.state.as_str(),
        desired.url,
        desired.description
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = changed {
        let payload = json!({"status": id, "integration": target.integration_id});
        jobs::enqueue_outbound(&mut *tx, JobKind::SendBuildStatus, payload, &format!("status:{id}")).await?;
    }
    Ok(())
}

/// A status as a run shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub key: String,
    /// In the product's word (`INPROGRESS`, …).
    pub state: &'static str,
    /// `pending`, `sent` or `failed`.
    pub sent: String,
    pub message: Option<String>,
}

/// The statuses that show a run: its stack's on its commit, and the
/// aggregate of its commit.
pub async fn of_run(db: impl sqlx::PgExecutor<'_>, run: &Run) -> Result<Vec<Shown>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT c.key, c.state AS "state: BuildState", c.sent, c.message, i.provider
           FROM commit_statuses c JOIN stacks s ON s.id = $1 JOIN integrations i ON i.id = c.integration_id
           WHERE c.integration_id = s.integration_id AND c.repository_id = s.repository_id AND c.commit = $2
             AND c.kind = $3 AND (c.stack_id = $1 OR c.stack_id IS NULL)
           ORDER BY c.stack_id NULLS LAST, c.key"#,
        run.stack_id,
        run.commit,
        run.kind.as_str()
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let provider = if r.provider == Provider::Cloud.as_str() { Provider::Cloud } else { Provider::DataCenter };
            Shown { key: r.key, state: r.state.word(provider, Endpoint::Current), sent: r.sent, message: r.message }
        })
        .collect())
}

/// 128 bits as 26 lowercase base32 characters (RFC 4648's alphabet).
fn base32(value: u128) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    // 26 five-bit groups cover 130 bits: the first holds the top 3.
    (0..26).rev().map(|group| ALPHABET[((value >> (group * 5)) & 31) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pinned_short_and_distinct() {
        let stack = Uuid::parse_str("0193a5f0-7c1e-7d2a-9b3c-4d5e6f708192").unwrap();
        // Pinned: merge checks in Bitbucket name these; they never change.
        assert_eq!(individual_key(stack, RunKind::Tracked), "bg/absos7a7a6puvjwpcnlzxxbams/tracked");
        assert_eq!(individual_key(stack, RunKind::Proposed), "bg/absos7a7a6puvjwpcnlzxxbams/proposed");
        assert_eq!(individual_key(Uuid::max(), RunKind::Proposed).chars().count(), 38);
        assert_eq!(aggregated_key(RunKind::Tracked), "bitgate/tracked");
        for key in [individual_key(Uuid::max(), RunKind::Proposed), aggregated_key(RunKind::Proposed).into()] {
            assert!(key.len() <= MAX_KEY_CHARS && key.is_ascii(), "{key}");
        }
        let other = Uuid::parse_str("0193a5f0-7c1e-7d2a-9b3c-4d5e6f708193").unwrap();
        assert_ne!(individual_key(stack, RunKind::Tracked), individual_key(other, RunKind::Tracked));
    }

    #[test]
    fn each_run_state_maps_to_each_product_s_word() {
        use Endpoint::{Current, Legacy};
        use Provider::{Cloud, DataCenter};
        let cases = [
            (RunState::Queued, "INPROGRESS", "INPROGRESS", "INPROGRESS"),
            (RunState::Running, "INPROGRESS", "INPROGRESS", "INPROGRESS"),
            (RunState::Succeeded, "SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL"),
            (RunState::Failed, "FAILED", "FAILED", "FAILED"),
            (RunState::Stopped, "STOPPED", "CANCELLED", "FAILED"),
        ];
        for (run, cloud, datacenter, legacy) in cases {
            let state = BuildState::of(run);
            assert_eq!(state.word(Cloud, Current), cloud, "{run:?} on Cloud");
            assert_eq!(state.word(DataCenter, Current), datacenter, "{run:?} on Data Center");
            assert_eq!(state.word(DataCenter, Legacy), legacy, "{run:?} on the legacy endpoint");
        }
    }

    #[test]
    fn the_aggregate_fails_first_then_waits_then_stops() {
        use RunState::*;
        assert_eq!(BuildState::aggregate([]), None);
        assert_eq!(BuildState::aggregate([Succeeded, Succeeded]), Some(BuildState::Successful));
        assert_eq!(BuildState::aggregate([Succeeded, Running]), Some(BuildState::InProgress));
        assert_eq!(BuildState::aggregate([Queued, Failed]), Some(BuildState::Failed));
        assert_eq!(BuildState::aggregate([Succeeded, Stopped]), Some(BuildState::Stopped));
        assert_eq!(BuildState::aggregate([Stopped, Running]), Some(BuildState::InProgress));
        assert_eq!(BuildState::aggregate([Stopped, Failed]), Some(BuildState::Failed));
    }

    #[test]
    fn names_are_readable_and_bounded() {
        assert_eq!(individual_name("web-production", RunKind::Proposed), "Bitgate: web-production (proposed)");
        assert!(individual_name(&"x".repeat(1000), RunKind::Tracked).chars().count() <= 255);
        assert_eq!(aggregated_name(RunKind::Tracked), "Bitgate: all stacks (tracked)");
    }
}
