//! Runs: the platform's reports of the work it does for a stack (SPEC.md,
//! "Run"), written under the platform's own key with
//! `PUT /api/v1/stacks/{id}/runs/{key}` and read by whoever sees the stack.
//!
//! A run's state only moves forward. The rule is [`RunState::step_to`], and
//! [`decide`] applies it to a stored run; [`report`] decides under a lock on
//! the run's row, so two reports of one run at once are judged one after the
//! other, and two first reports of one key create one run.

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use super::{comments, events::RunKind, statuses};
use crate::{
    access::Denied,
    principal::Principal,
    stacks::{self, Stack, StackId},
    text_enum::text_enum,
    users::FieldError,
    validation::Problems,
    Services,
};

pub type RunId = Uuid;

/// The longest key: the platform's own run id.
pub const MAX_KEY_CHARS: usize = 200;
/// The longest url: Bitbucket Data Center's limit on a build status's url,
/// where the run's url goes.
pub const MAX_URL_CHARS: usize = 450;
/// The longest title: Data Center's limit on a build status's name.
pub const MAX_TITLE_CHARS: usize = 255;
pub const MAX_SUMMARY_CHARS: usize = 100_000;

text_enum! {
    /// Where a run is: queued, then running, then one of the three ends.
    pub enum RunState {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Stopped = "stopped",
    }
}

/// What reporting a state does to a run that is in a state already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The state it is in: nothing moves.
    Same,
    /// Forward: taken.
    Forward,
    /// Back, or from one end to another: refused.
    Backward,
}

impl RunState {
    /// Succeeded, failed and stopped: nothing follows them.
    pub fn is_end(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed | RunState::Stopped)
    }

    /// How far along a run in this state is; the three ends are equally far.
    fn progress(self) -> u8 {
        match self {
            RunState::Queued => 0,
            RunState::Running => 1,
            RunState::Succeeded | RunState::Failed | RunState::Stopped => 2,
        }
    }

    /// The one rule of SPEC.md for a run in `self` reported as `next`:
    /// queued → running → an end, and queued may jump straight to an end
    /// (work that failed or was stopped before it started, or a platform
    /// that reports only the outcome); an end never changes, not even to
    /// another end.
    pub fn step_to(self, next: RunState) -> Step {
        if next == self {
            Step::Same
        } else if next.progress() > self.progress() {
            Step::Forward
        } else {
            Step::Backward
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: RunId,
    pub stack_id: StackId,
    /// The platform's own id of the run, unique per stack.
    pub key: String,
    /// 40 lowercase hex digits.
    pub commit: String,
    pub kind: RunKind,
    pub state: RunState,
    /// The platform's page of the run.
    pub url: Option<String>,
    pub title: Option<String>,
    /// Markdown.
    pub summary: Option<String>,
    /// Proposed runs only: the pull request they are for.
    pub pull_request_id: Option<i64>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A report as the platform sends it; `None`: not given.
#[derive(Debug, Default)]
pub struct RunInput {
    /// What the door's reader found wrong (an unknown field, a wrong
    /// type), reported with the rest after authorization.
    pub read_problems: Vec<FieldError>,
    pub commit: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
    pub url: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub pull_request_id: Option<i64>,
}

/// A checked report: the whole run as the platform sees it now. An
/// optional field left out is no longer there (a PUT replaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub commit: String,
    pub kind: RunKind,
    pub state: RunState,
    pub url: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub pull_request_id: Option<i64>,
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The first report of its key: the run is stored.
    Created,
    /// It moved the state forward, or changed the url, title or summary.
    Updated { state_changed: bool },
    /// The same report again: nothing was written.
    Unchanged,
}

impl Reported {
    /// Whether the run is in a state it was not in before this report:
    /// what a build status says, so what makes one worth sending.
    pub fn state_changed(self) -> bool {
        match self {
            Reported::Created => true,
            Reported::Updated { state_changed } => state_changed,
            Reported::Unchanged => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No such stack or run, or none the principal may know of.
    #[error("no such run")]
    NotFound,
    /// The permission table says no; a refused report is in the audit log.
    #[error("refused by the permission table")]
    Denied(Denied),
    #[error("the report has {} problems", .0.len())]
    Invalid(Vec<FieldError>),
    /// The report contradicts the stored run: another commit, kind or pull
    /// request, or a state behind the stored one. Nothing was changed.
    #[error("conflicts with the stored run")]
    Conflict(Vec<FieldError>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A path's stack id: one that is not a UUID names nothing.
pub fn parse_stack_id(raw: &str) -> Result<StackId, RunError> {
    Uuid::parse_str(raw.trim()).map_err(|_| RunError::NotFound)
}

/// A run's key: the platform's own id for it, 1 to 200 printable
/// characters, taken as given (it is the platform's, not ours to trim).
pub fn parse_key(raw: &str) -> Result<String, FieldError> {
    match raw.chars().count() {
        0 => Err(FieldError::new("key", "required", "Give the run's key: the platform's own id of the run.")),
        n if n > MAX_KEY_CHARS => {
            Err(FieldError::new("key", "too_long", format!("Use at most {MAX_KEY_CHARS} characters.")))
        }
        _ if raw.chars().any(char::is_control) => {
            Err(FieldError::new("key", "invalid", "Use printable characters only."))
        }
        _ => Ok(raw.to_owned()),
    }
}

/// A full commit id, as events carry it: 40 hex digits, stored lowercase.
pub fn parse_commit(raw: &str) -> Result<String, FieldError> {
    let commit = raw.trim();
    if commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(commit.to_ascii_lowercase())
    } else {
        Err(FieldError::new("commit", "invalid", "Give the full commit id: 40 hexadecimal digits."))
    }
}

pub fn parse_kind(raw: &str) -> Result<RunKind, FieldError> {
    RunKind::parse(raw.trim()).ok_or_else(|| {
        FieldError::new("kind", "invalid", "Use tracked (a branch's run) or proposed (a pull request's).")
    })
}

pub fn parse_state(raw: &str) -> Result<RunState, FieldError> {
    RunState::parse(raw.trim())
        .ok_or_else(|| FieldError::new("state", "invalid", "Use queued, running, succeeded, failed or stopped."))
}

/// The platform's page of the run: an http(s) URL without credentials in
/// it (it ends up in Bitbucket, where anyone who reads the repository sees
/// it), at most 450 characters as stored. Blank: none.
pub fn parse_url(raw: &str) -> Result<Option<String>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let invalid = |why: &str| FieldError::new("url", "invalid", why);
    let url = Url::parse(raw).map_err(|_| invalid("Give the run's page as an http:// or https:// URL."))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("Give the run's page as an http:// or https:// URL."));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "Leave credentials out of the URL: Bitbucket shows it to everyone who reads the repository.",
        ));
    }
    // The URL as stored and sent, percent-encoding included, is what the limit is about.
    let url = String::from(url);
    if url.chars().count() > MAX_URL_CHARS {
        return Err(FieldError::new("url", "too_long", format!("Use at most {MAX_URL_CHARS} characters.")));
    }
    Ok(Some(url))
}

/// A one-line title, at most 255 characters. Blank: none.
pub fn parse_title(raw: &str) -> Result<Option<String>, FieldError> {
    let title = raw.trim();
    match title.chars().count() {
        0 => Ok(None),
        n if n > MAX_TITLE_CHARS => {
            Err(FieldError::new("title", "too_long", format!("Use at most {MAX_TITLE_CHARS} characters.")))
        }
        _ if title.chars().any(char::is_control) => {
            Err(FieldError::new("title", "invalid", "Use one line of printable characters."))
        }
        _ => Ok(Some(title.to_owned())),
    }
}

/// Markdown, kept as given (its whitespace means something), at most
/// 100,000 characters. Blank: none.
pub fn parse_summary(raw: &str) -> Result<Option<String>, FieldError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    if raw.chars().count() > MAX_SUMMARY_CHARS {
        return Err(FieldError::new("summary", "too_long", format!("Use at most {MAX_SUMMARY_CHARS} characters.")));
    }
    // PostgreSQL cannot store NUL in text; said here rather than as a failed write.
    if raw.contains('\0') {
        return Err(FieldError::new("summary", "invalid", "Remove the NUL characters."));
    }
    Ok(Some(raw.to_owned()))
}

/// The key and the report, or every problem with them.
pub fn parse_report(key: &str, input: RunInput) -> Result<(String, Report), Vec<FieldError>> {
    // A field the door could not read (a number for a string) is named
    // once, by the door, rather than also as missing.
    let unread: Vec<String> = input.read_problems.iter().map(|p| p.field.clone()).collect();
    let is_unread = |field: &str| unread.iter().any(|f| f == field);
    let mut problems = Problems(input.read_problems);
    let required = |problems: &mut Problems, field: &str, value: Option<String>| {
        if is_unread(field) {
            None
        } else {
            problems.required(field, value)
        }
    };
    let key = problems.check(parse_key(key));
    let commit = required(&mut problems, "commit", input.commit).and_then(|raw| problems.check(parse_commit(&raw)));
    let kind = required(&mut problems, "kind", input.kind).and_then(|raw| problems.check(parse_kind(&raw)));
    let state = required(&mut problems, "state", input.state).and_then(|raw| problems.check(parse_state(&raw)));
    let url = input.url.map(|raw| problems.check(parse_url(&raw)));
    let title = input.title.map(|raw| problems.check(parse_title(&raw)));
    let summary = input.summary.map(|raw| problems.check(parse_summary(&raw)));
    match (input.pull_request_id, kind) {
        (Some(id), _) if id < 1 => {
            problems.push("pull_request_id", "invalid", "A pull request's id is a whole number from 1.")
        }
        (None, Some(RunKind::Proposed)) if !is_unread("pull_request_id") => problems.push(
            "pull_request_id",
            "required",
            "A proposed run is for a pull request: give the pull request's id.",
        ),
        (Some(_), Some(RunKind::Tracked)) => problems.push(
            "pull_request_id",
            "not_allowed",
            "A tracked run is for a branch, not a pull request: leave pull_request_id out.",
        ),
        _ => {}
    }
    let (Some(key), Some(commit), Some(kind), Some(state), Some(url), Some(title), Some(summary), true) = (
        key,
        commit,
        kind,
        state,
        url.unwrap_or(Some(None)),
        title.unwrap_or(Some(None)),
        summary.unwrap_or(Some(None)),
        problems.is_empty(),
    ) else {
        return Err(problems.0);
    };
    Ok((key, Report { commit, kind, state, url, title, summary, pull_request_id: input.pull_request_id }))
}

/// What a report does to the stored run, or why it is refused: a run's
/// commit, kind and pull request are what it is about, and its state only
/// moves forward.
pub fn decide(current: &Run, report: &Report) -> Result<Reported, Vec<FieldError>> {
    let mut conflicts = Problems::default();
    if report.commit != current.commit {
        conflicts.push(
            "commit",
            "changed",
            format!(
                "This run is for commit {}; a run's commit cannot change. Report work on another commit as another run, under a key of its own.",
                current.commit
            ),
        );
    }
    if report.kind != current.kind {
        conflicts.push(
            "kind",
            "changed",
            format!("This run is {}; a run's kind cannot change.", current.kind.as_str()),
        );
    }
    if report.pull_request_id != current.pull_request_id {
        let message = match current.pull_request_id {
            Some(id) => format!("This run is for pull request {id}; a run's pull request cannot change."),
            None => "This run is for no pull request; a run's pull request cannot change.".to_owned(),
        };
        conflicts.push("pull_request_id", "changed", message);
    }
    let step = current.state.step_to(report.state);
    if step == Step::Backward {
        let message = if current.state.is_end() {
            format!("This run has {} already; an ended run's state never changes.", ended(current.state))
        } else {
            format!(
                "This run is {} already; its state only moves forward (queued, running, then succeeded, failed or stopped).",
                current.state.as_str()
            )
        };
        conflicts.push("state", "backward", message);
    }
    if !conflicts.is_empty() {
        return Err(conflicts.0);
    }
    let same = step == Step::Same
        && report.url == current.url
        && report.title == current.title
        && report.summary == current.summary;
    Ok(if same { Reported::Unchanged } else { Reported::Updated { state_changed: step == Step::Forward } })
}

/// An end as a sentence says it: "has succeeded".
fn ended(state: RunState) -> &'static str {
    match state {
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Stopped => "stopped",
        RunState::Queued | RunState::Running => state.as_str(),
    }
}

/// The stack, when `by` may report its runs (writers of its space); a
/// refusal is audited. Asked before anything about the report, so a caller
/// who may not report learns nothing about whether it was valid.
async fn writable(services: &Services, by: &Principal, id: StackId) -> Result<Stack, RunError> {
    let stack = stacks::find(&services.pool, id).await?.ok_or(RunError::NotFound)?;
    match by.access(&services.pool).await?.can_write(stack.space_id) {
        Ok(()) => Ok(stack),
        Err(why) => {
            Err(RunError::Denied(by.refused(&services.pool, "run", "run.report", Some(stack.space_id), why).await?))
        }
    }
}

/// The stack, when `by` may read its runs (anyone with a role on its space);
/// its outbound log is read under the same rule.
pub async fn readable(services: &Services, by: &Principal, id: StackId) -> Result<Stack, RunError> {
    let stack = stacks::find(&services.pool, id).await?.ok_or(RunError::NotFound)?;
    match by.access(&services.pool).await?.can_see(stack.space_id) {
        Ok(()) => Ok(stack),
        Err(_) => Err(RunError::NotFound),
    }
}

/// Reports a run of a stack: writers of its space. The first report of a
/// key creates the run; later ones move it forward or change its url,
/// title or summary, and the same report again changes nothing.
pub async fn report(
    services: &Services,
    by: &Principal,
    stack: StackId,
    key: &str,
    input: RunInput,
) -> Result<(Run, Reported), RunError> {
    let stack = writable(services, by, stack).await?;
    let (key, report) = parse_report(key, input).map_err(RunError::Invalid)?;
    let mut tx = services.pool.begin().await?;
    // Inserting first settles a race between first reports: a second
    // insert of the key waits for the first to commit, then inserts
    // nothing, and the report is judged against the run the first stored.
    let (run, reported) = match insert(&mut tx, stack.id, &key, &report).await? {
        Some(run) => (run, Reported::Created),
        None => {
            let current = lock(&mut tx, stack.id, &key).await?.ok_or(RunError::NotFound)?;
            match decide(&current, &report).map_err(RunError::Conflict)? {
                Reported::Unchanged => return Ok((current, Reported::Unchanged)),
                reported => (update(&mut tx, current.id, &report).await?, reported),
            }
        }
    };
    // In this transaction: a status is queued exactly when a report that
    // changes what it shows is stored, in the order reports are decided.
    // (Unchanged reports returned above and send nothing again.)
    statuses::run_changed(&mut tx, services.config.public_url.as_str(), &run).await?;
    comments::run_changed(&mut tx, services.config.public_url.as_str(), &run).await?;
    tx.commit().await?;
    services.jobs.notify();
    Ok((run, reported))
}

/// One run of a stack: anyone who sees the stack.
pub async fn get(services: &Services, by: &Principal, stack: StackId, key: &str) -> Result<Run, RunError> {
    let stack = readable(services, by, stack).await?;
    find(&services.pool, stack.id, key).await?.ok_or(RunError::NotFound)
}

/// A stack's runs, newest first, after the position `after` (created_at,
/// id): anyone who sees the stack.
pub async fn page(
    services: &Services,
    by: &Principal,
    stack: StackId,
    after: Option<(OffsetDateTime, RunId)>,
    limit: i64,
) -> Result<Vec<Run>, RunError> {
    let stack = readable(services, by, stack).await?;
    Ok(list(&services.pool, stack.id, after, limit).await?)
}

/// Stores a first report; `None` when the stack has a run of that key already.
async fn insert(tx: &mut PgConnection, stack: StackId, key: &str, report: &Report) -> Result<Option<Run>, RunError> {
    sqlx::query_as!(
        Run,
        r#"INSERT INTO runs (stack_id, key, commit, kind, state, url, title, summary, pull_request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT ON CONSTRAINT runs_key DO NOTHING
           RETURNING id, stack_id, key, commit, kind AS "kind: RunKind", state AS "state: RunState", url, title,
                     summary, pull_request_id, created_at, updated_at"#,
        stack,
        key,
        report.commit,
        report.kind.as_str(),
        report.state.as_str(),
        report.url,
        report.title,
        report.summary,
        report.pull_request_id,
    )
    .fetch_optional(tx)
    .await
    .map_err(|error| match error.as_database_error().and_then(|e| e.constraint()) {
        // The stack was deleted since it was authorized.
        Some("runs_stack_id_fkey") => RunError::NotFound,
        _ => RunError::Database(error),
    })
}

/// The stored run, locked until the transaction ends.
async fn lock(tx: &mut PgConnection, stack: StackId, key: &str) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as!(
        Run,
        r#"SELECT id, stack_id, key, commit, kind AS "kind: RunKind", state AS "state: RunState", url, title,
                  summary, pull_request_id, created_at, updated_at
           FROM runs WHERE stack_id = $1 AND key = $2 FOR UPDATE"#,
        stack,
        key
    )
    .fetch_optional(tx)
    .await
}

/// Writes what a later report may change: its state, url, title and summary.
async fn update(tx: &mut PgConnection, id: RunId, report: &Report) -> Result<Run, sqlx::Error> {
    sqlx::query_as!(
        Run,
        r#"UPDATE runs SET state = $2, url = $3, title = $4, summary = $5, updated_at = now()
           WHERE id = $1
           RETURNING id, stack_id, key, commit, kind AS "kind: RunKind", state AS "state: RunState", url, title,
                     summary, pull_request_id, created_at, updated_at"#,
        id,
        report.state.as_str(),
        report.url,
        report.title,
        report.summary,
    )
    .fetch_one(tx)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, stack: StackId, key: &str) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as!(
        Run,
        r#"SELECT id, stack_id, key, commit, kind AS "kind: RunKind", state AS "state: RunState", url, title,
                  summary, pull_request_id, created_at, updated_at
           FROM runs WHERE stack_id = $1 AND key = $2"#,
        stack,
        key
    )
    .fetch_optional(db)
    .await
}

/// A stack's runs, newest first, after the position `after` (created_at, id).
pub async fn list(
    db: impl PgExecutor<'_>,
    stack: StackId,
    after: Option<(OffsetDateTime, RunId)>,
    limit: i64,
) -> Result<Vec<Run>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        Run,
        r#"SELECT id, stack_id, key, commit, kind AS "kind: RunKind", state AS "state: RunState", url, title,
                  summary, pull_request_id, created_at, updated_at
           FROM runs
           WHERE stack_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
           ORDER BY created_at DESC, id DESC LIMIT $4"#,
        stack,
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn states_only_move_forward_and_ends_never_change() {
        use RunState::*;
        let ends = [Succeeded, Failed, Stopped];
        for state in RunState::ALL {
            assert_eq!(state.step_to(*state), Step::Same, "{state:?} again");
        }
        assert_eq!(Queued.step_to(Running), Step::Forward);
        for end in ends {
            assert_eq!(Queued.step_to(end), Step::Forward, "queued may jump straight to {end:?}");
            assert_eq!(Running.step_to(end), Step::Forward, "running to {end:?}");
            assert_eq!(end.step_to(Queued), Step::Backward);
            assert_eq!(end.step_to(Running), Step::Backward);
            for other in ends.into_iter().filter(|other| *other != end) {
                assert_eq!(end.step_to(other), Step::Backward, "{end:?} never becomes {other:?}");
            }
        }
        assert_eq!(Running.step_to(Queued), Step::Backward);
        // Every pair is judged: exactly the forward ones above are forward.
        let forward = RunState::ALL
            .iter()
            .flat_map(|from| RunState::ALL.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| from.step_to(*to) == Step::Forward)
            .count();
        assert_eq!(forward, 1 + 3 + 3);
        assert_eq!(ends.map(RunState::is_end), [true; 3]);
        assert!(!Queued.is_end() && !Running.is_end());
    }

    fn input(kind: &str, state: &str) -> RunInput {
        RunInput {
            commit: Some(SHA.to_owned()),
            kind: Some(kind.to_owned()),
            state: Some(state.to_owned()),
            ..RunInput::default()
        }
    }

    fn fields(problems: &[FieldError]) -> Vec<(&str, &str)> {
        problems.iter().map(|p| (p.field.as_str(), p.code.as_str())).collect()
    }

    #[test]
    fn a_report_is_read_whole_with_every_problem_named() {
        let (key, report) = parse_report(
            "pipeline/42",
            RunInput {
                commit: Some(format!(" {} ", SHA.to_uppercase())),
                url: Some("https://ci.example.com/runs/42?tab=log".into()),
                title: Some("  Plan  ".into()),
                summary: Some("  **2 to add**\n".into()),
                ..input("tracked", "queued")
            },
        )
        .unwrap();
        assert_eq!(key, "pipeline/42");
        assert_eq!(report.commit, SHA, "lowercase, trimmed");
        assert_eq!((report.kind, report.state), (RunKind::Tracked, RunState::Queued));
        assert_eq!(report.url.as_deref(), Some("https://ci.example.com/runs/42?tab=log"));
        assert_eq!(report.title.as_deref(), Some("Plan"));
        assert_eq!(report.summary.as_deref(), Some("  **2 to add**\n"), "markdown kept as given");

        let blank = RunInput {
            url: Some(" ".into()),
            title: Some("".into()),
            summary: Some("\n".into()),
            ..input("tracked", "running")
        };
        let (_, report) = parse_report("k", blank).unwrap();
        assert_eq!((report.url, report.title, report.summary), (None, None, None), "blank is none");

        let problems = parse_report("", RunInput::default()).unwrap_err();
        assert_eq!(
            fields(&problems),
            [("key", "required"), ("commit", "required"), ("kind", "required"), ("state", "required")]
        );
        let problems = parse_report(
            "k",
            RunInput {
                read_problems: vec![FieldError::new("colour", "unknown_field", "x")],
                commit: Some("abc1234".into()),
                kind: Some("Tracked".into()),
                state: Some("done".into()),
                pull_request_id: Some(0),
                ..RunInput::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            fields(&problems),
            [
                ("colour", "unknown_field"),
                ("commit", "invalid"),
                ("kind", "invalid"),
                ("state", "invalid"),
                ("pull_request_id", "invalid")
            ]
        );
    }

    #[test]
    fn a_field_the_door_could_not_read_is_not_also_missing() {
        let unread = |field: &str| FieldError::new(field, "invalid_type", "x");
        let wrong_types = RunInput {
            read_problems: vec![unread("commit"), unread("kind"), unread("pull_request_id")],
            state: Some("queued".into()),
            ..RunInput::default()
        };
        let problems = parse_report("k", wrong_types).unwrap_err();
        assert_eq!(
            fields(&problems),
            [("commit", "invalid_type"), ("kind", "invalid_type"), ("pull_request_id", "invalid_type")]
        );
        let proposed = RunInput { read_problems: vec![unread("pull_request_id")], ..input("proposed", "queued") };
        assert_eq!(fields(&parse_report("k", proposed).unwrap_err()), [("pull_request_id", "invalid_type")]);
    }

    #[test]
    fn each_field_has_its_limits() {
        assert!(parse_key(&"k".repeat(MAX_KEY_CHARS)).is_ok());
        assert!(parse_key(&"é".repeat(MAX_KEY_CHARS)).is_ok(), "characters, not bytes");
        assert_eq!(parse_key(&"k".repeat(MAX_KEY_CHARS + 1)).unwrap_err().code, "too_long");
        assert_eq!(parse_key("a\nb").unwrap_err().code, "invalid");
        assert_eq!(parse_key(" spaced key ").unwrap(), " spaced key ", "the platform's key, as given");

        for bad in ["", "0123456", &SHA[..39], &format!("{SHA}0"), &SHA.replace('a', "g"), &format!("{}+", &SHA[..39])]
        {
            assert_eq!(parse_commit(bad).unwrap_err().field, "commit", "{bad}");
        }

        let long_url = format!("https://ci.example.com/{}", "r".repeat(MAX_URL_CHARS - 23));
        assert_eq!(long_url.len(), MAX_URL_CHARS);
        assert_eq!(parse_url(&long_url).unwrap().as_deref(), Some(long_url.as_str()));
        assert_eq!(parse_url(&format!("{long_url}r")).unwrap_err().code, "too_long");
        // The stored form counts: a space becomes %20.
        let spaced = format!("https://ci.example.com/{} ", "r".repeat(MAX_URL_CHARS - 24));
        assert_eq!(parse_url(&format!("{spaced}x")).unwrap_err().code, "too_long");
        for bad in [
            "ci.example.com/runs/1",
            "ftp://ci.example.com/1",
            "javascript:alert(1)",
            "data:text/html,x",
            "https://user:secret@ci.example.com/1",
            "https://token@ci.example.com/1",
            "http://",
        ] {
            assert_eq!(parse_url(bad).unwrap_err().code, "invalid", "{bad}");
        }
        assert_eq!(parse_url("HTTP://CI.example.com").unwrap().as_deref(), Some("http://ci.example.com/"));

        assert!(parse_title(&"t".repeat(MAX_TITLE_CHARS)).is_ok());
        assert_eq!(parse_title(&"t".repeat(MAX_TITLE_CHARS + 1)).unwrap_err().code, "too_long");
        assert_eq!(parse_title("two\nlines").unwrap_err().code, "invalid");

        assert!(parse_summary(&"s".repeat(MAX_SUMMARY_CHARS)).is_ok());
        assert_eq!(parse_summary(&"s".repeat(MAX_SUMMARY_CHARS + 1)).unwrap_err().code, "too_long");
        assert_eq!(parse_summary("a\0b").unwrap_err().code, "invalid");
    }

    #[test]
    fn a_proposed_run_names_its_pull_request_and_a_tracked_one_none() {
        let with =
            |kind: &str, id: Option<i64>| parse_report("k", RunInput { pull_request_id: id, ..input(kind, "queued") });
        assert_eq!(with("proposed", Some(7)).unwrap().1.pull_request_id, Some(7));
        assert_eq!(with("tracked", None).unwrap().1.pull_request_id, None);
        assert_eq!(fields(&with("proposed", None).unwrap_err()), [("pull_request_id", "required")]);
        assert_eq!(fields(&with("tracked", Some(7)).unwrap_err()), [("pull_request_id", "not_allowed")]);
        assert_eq!(fields(&with("proposed", Some(-3)).unwrap_err()), [("pull_request_id", "invalid")]);
    }

    fn stored(state: RunState) -> Run {
        let now = OffsetDateTime::now_utc();
        Run {
            id: Uuid::new_v4(),
            stack_id: Uuid::new_v4(),
            key: "k".into(),
            commit: SHA.into(),
            kind: RunKind::Proposed,
            state,
            url: Some("https://ci.example.com/1".into()),
            title: Some("Plan".into()),
            summary: None,
            pull_request_id: Some(7),
            created_at: now,
            updated_at: now,
        }
    }

    fn again(run: &Run) -> Report {
        Report {
            commit: run.commit.clone(),
            kind: run.kind,
            state: run.state,
            url: run.url.clone(),
            title: run.title.clone(),
            summary: run.summary.clone(),
            pull_request_id: run.pull_request_id,
        }
    }

    #[test]
    fn a_stored_run_takes_only_reports_of_itself_moving_forward() {
        let running = stored(RunState::Running);
        assert_eq!(decide(&running, &again(&running)), Ok(Reported::Unchanged));
        let done = Report { state: RunState::Succeeded, ..again(&running) };
        assert_eq!(decide(&running, &done), Ok(Reported::Updated { state_changed: true }));
        let summarized = Report { summary: Some("2 to add".into()), ..again(&running) };
        assert_eq!(decide(&running, &summarized), Ok(Reported::Updated { state_changed: false }));
        let unlinked = Report { url: None, ..again(&running) };
        assert_eq!(decide(&running, &unlinked), Ok(Reported::Updated { state_changed: false }), "a PUT replaces");

        let back = Report { state: RunState::Queued, ..again(&running) };
        assert_eq!(fields(&decide(&running, &back).unwrap_err()), [("state", "backward")]);
        let failed = stored(RunState::Failed);
        let retried = Report { state: RunState::Succeeded, ..again(&failed) };
        let refused = decide(&failed, &retried).unwrap_err();
        assert!(refused[0].message.contains("has failed already"), "{}", refused[0].message);
        // An ended run may still get its summary.
        let summarized = Report { summary: Some("1 failed".into()), ..again(&failed) };
        assert_eq!(decide(&failed, &summarized), Ok(Reported::Updated { state_changed: false }));

        let moved = Report {
            commit: "f".repeat(40),
            kind: RunKind::Tracked,
            pull_request_id: None,
            state: RunState::Queued,
            ..again(&running)
        };
        assert_eq!(
            fields(&decide(&running, &moved).unwrap_err()),
            [("commit", "changed"), ("kind", "changed"), ("pull_request_id", "changed"), ("state", "backward")]
        );
        assert_eq!(
            fields(&decide(&running, &Report { pull_request_id: Some(8), ..again(&running) }).unwrap_err()),
            [("pull_request_id", "changed")]
        );
    }

    #[test]
    fn only_new_states_are_worth_a_status() {
        assert!(Reported::Created.state_changed());
        assert!(Reported::Updated { state_changed: true }.state_changed());
        assert!(!Reported::Updated { state_changed: false }.state_changed());
        assert!(!Reported::Unchanged.state_changed());
    }
}
