//! Stacks: the consumers of an integration. Each watches one repository
//! (by Bitbucket's stable id, with its `PROJECT/slug` beside it) and one
//! branch, in one space. A stack whose integration was deleted is detached
//! (no webhooks, no runs) until it is attached to another integration of
//! the same provider that its space may use.

pub mod operations;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    integrations::{IntegrationId, Provider},
    managed_hooks::{HookState, HookStatus},
    platform::events::Triggers,
    spaces::SpaceId,
    users::FieldError,
};

pub type StackId = Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub id: StackId,
    pub name: String,
    pub space_id: SpaceId,
    pub provider: Provider,
    /// None: detached.
    pub integration_id: Option<IntegrationId>,
    pub integration_name: Option<String>,
    pub repository_id: String,
    /// `PROJECT/slug`.
    pub repository_name: String,
    pub branch: String,
    pub created_at: OffsetDateTime,
    pub created_by_label: String,
    /// A push deleted the branch it tracks.
    pub branch_deleted: bool,
    /// The last delivery that triggered it, and when it came: its latest
    /// event's (a delivery makes events for exactly the stacks it
    /// triggers; in the feed's order, that of their transactions), or,
    /// when it has none, the one routing wrote before events existed
    /// (`last_delivery_id`, which routing no longer writes).
    pub last_delivery: Option<(Uuid, OffsetDateTime)>,
    /// Which events its deliveries make besides a tracked run for a push to
    /// its branch (SPEC.md's stack triggers).
    pub triggers: Triggers,
    /// Bitgate's hook in its repository, as last checked (`None`: not yet,
    /// or detached).
    pub hook: Option<HookStatus>,
}

/// A stack's name: 1 to 100 printable characters, unique in its space.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    match name.chars().count() {
        0 => Err(FieldError::new("name", "required", "Enter a name for the stack, such as web-production.")),
        1..=100 if !name.chars().any(char::is_control) => Ok(name.to_owned()),
        1..=100 => Err(FieldError::new("name", "invalid", "Use printable characters only.")),
        _ => Err(FieldError::new("name", "too_long", "Use at most 100 characters.")),
    }
}

/// A branch name as git accepts it (`git check-ref-format --branch`), given
/// without `refs/heads/`.
pub fn parse_branch(raw: &str) -> Result<String, FieldError> {
    let branch = raw.trim();
    let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    if branch.is_empty() {
        return Err(FieldError::new("branch", "required", "Enter the branch the stack follows, such as main."));
    }
    let invalid = branch.len() > 255
        || branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch == "@"
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch.contains("/.")
        || branch.chars().any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if invalid {
        Err(FieldError::new(
            "branch",
            "invalid",
            format!("\u{201c}{branch}\u{201d} is not a branch name git accepts: no spaces, no ~ ^ : ? * [ \\, no \u{201c}..\u{201d}."),
        ))
    } else {
        Ok(branch.to_owned())
    }
}

/// A checked new stack; its repository was found through its integration.
pub struct NewStack {
    pub name: String,
    pub space_id: SpaceId,
    pub provider: Provider,
    pub integration_id: IntegrationId,
    pub repository_id: String,
    pub repository_name: String,
    pub branch: String,
    pub created_by_label: String,
    pub triggers: Triggers,
}

#[derive(Debug, thiserror::Error)]
pub enum StackWriteError {
    #[error("A stack of this space has this name already.")]
    NameTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl StackWriteError {
    pub fn field_error(&self) -> Option<FieldError> {
        match self {
            StackWriteError::NameTaken => Some(FieldError::new("name", "taken", self.to_string())),
            StackWriteError::Database(_) => None,
        }
    }
}

fn constraint_error(error: sqlx::Error) -> StackWriteError {
    match error.as_database_error().and_then(|e| e.constraint()) {
        Some("stacks_name_key") => StackWriteError::NameTaken,
        _ => StackWriteError::Database(error),
    }
}

struct Row {
    id: Uuid,
    name: String,
    space_id: Uuid,
    provider: String,
    integration_id: Option<Uuid>,
    integration_name: Option<String>,
    repository_id: String,
    repository_name: String,
    branch: String,
    created_at: OffsetDateTime,
    created_by_label: String,
    branch_deleted: bool,
    last_delivery_id: Option<Uuid>,
    last_delivery_at: Option<OffsetDateTime>,
    build_pull_requests: bool,
    all_branches: bool,
    prune_branches: bool,
    resync_pull_requests: bool,
    hook_state: Option<HookState>,
    hook_message: Option<String>,
}

impl From<Row> for Stack {
    fn from(row: Row) -> Self {
        Stack {
            id: row.id,
            name: row.name,
            space_id: row.space_id,
            provider: if row.provider == "bitbucket_cloud" { Provider::Cloud } else { Provider::DataCenter },
            integration_id: row.integration_id,
            integration_name: row.integration_name,
            repository_id: row.repository_id,
            repository_name: row.repository_name,
            branch: row.branch,
            created_at: row.created_at,
            created_by_label: row.created_by_label,
            branch_deleted: row.branch_deleted,
            last_delivery: row.last_delivery_id.zip(row.last_delivery_at),
            triggers: Triggers {
                build_pull_requests: row.build_pull_requests,
                all_branches: row.all_branches,
                prune_branches: row.prune_branches,
                resync_pull_requests: row.resync_pull_requests,
            },
            hook: row.hook_state.map(|state| HookStatus { state, message: row.hook_message.unwrap_or_default() }),
        }
    }
}

pub async fn create(db: impl PgExecutor<'_>, new: NewStack) -> Result<StackId, StackWriteError> {
    sqlx::query_scalar!(
        r#"INSERT INTO stacks (name, space_id, provider, integration_id, repository_id, repository_name, branch, created_by_label,
                               build_pull_requests, all_branches, prune_branches, resync_pull_requests)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id"#,
        new.name,
        new.space_id,
        new.provider.as_str(),
        new.integration_id,
        new.repository_id,
        new.repository_name,
        new.branch,
        new.created_by_label,
        new.triggers.build_pull_requests,
        new.triggers.all_branches,
        new.triggers.prune_branches,
        new.triggers.resync_pull_requests,
    )
    .fetch_one(db)
    .await
    .map_err(constraint_error)
}

/// Whether a stack of `space` has this name (case-insensitively).
pub async fn name_taken(db: impl PgExecutor<'_>, space: SpaceId, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM stacks WHERE space_id = $1 AND lower(name) = lower($2)) AS "taken!""#,
        space,
        name
    )
    .fetch_one(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: StackId) -> Result<Option<Stack>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT s.id, s.name, s.space_id, s.provider, s.integration_id, i.name AS "integration_name?",
                  s.repository_id, s.repository_name, s.branch, s.created_at, s.created_by_label, s.branch_deleted,
                  d.id AS "last_delivery_id?", d.received_at AS "last_delivery_at?",
                  s.build_pull_requests, s.all_branches, s.prune_branches, s.resync_pull_requests,
                  h.state AS "hook_state?: HookState", h.message AS "hook_message?"
           FROM stacks s LEFT JOIN integrations i ON i.id = s.integration_id
                LEFT JOIN LATERAL (SELECT e.delivery_id FROM events e WHERE e.stack_id = s.id AND e.delivery_id IS NOT NULL
                                   ORDER BY e.tx DESC, e.seq DESC LIMIT 1) latest ON true
                LEFT JOIN webhook_deliveries d ON d.id = coalesce(latest.delivery_id, s.last_delivery_id)
                LEFT JOIN repository_hooks h ON h.integration_id = s.integration_id AND h.repository_id = s.repository_id
           WHERE s.id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Stack::from))
}

/// The ids of the stacks named `name` (case-insensitively), in any space.
pub async fn named(db: impl PgExecutor<'_>, name: &str) -> Result<Vec<StackId>, sqlx::Error> {
    sqlx::query_scalar!("SELECT id FROM stacks WHERE lower(name) = lower($1) ORDER BY id", name).fetch_all(db).await
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct StackFilter {
    pub space_id: Option<SpaceId>,
    pub integration_id: Option<IntegrationId>,
    /// Only detached stacks (`Some(true)`), or only attached ones.
    pub detached: Option<bool>,
}

/// The stacks of the `visible` spaces, newest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    visible: &[SpaceId],
    filter: &StackFilter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Stack>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT s.id, s.name, s.space_id, s.provider, s.integration_id, i.name AS "integration_name?",
                  s.repository_id, s.repository_name, s.branch, s.created_at, s.created_by_label, s.branch_deleted,
                  d.id AS "last_delivery_id?", d.received_at AS "last_delivery_at?",
                  s.build_pull_requests, s.all_branches, s.prune_branches, s.resync_pull_requests,
                  h.state AS "hook_state?: HookState", h.message AS "hook_message?"
           -- The page first, then what each row shows: each stack's latest
           -- event is looked up for the page's rows only.
           FROM (SELECT * FROM stacks s
                 WHERE s.space_id = ANY($1)
                   AND ($2::uuid IS NULL OR s.space_id = $2)
                   AND ($3::uuid IS NULL OR s.integration_id = $3)
                   AND ($4::boolean IS NULL OR (s.integration_id IS NULL) = $4)
                   AND ($5::timestamptz IS NULL OR (s.created_at, s.id) < ($5, $6))
                 ORDER BY s.created_at DESC, s.id DESC LIMIT $7) s
                LEFT JOIN integrations i ON i.id = s.integration_id
                LEFT JOIN LATERAL (SELECT e.delivery_id FROM events e WHERE e.stack_id = s.id AND e.delivery_id IS NOT NULL
                                   ORDER BY e.tx DESC, e.seq DESC LIMIT 1) latest ON true
                LEFT JOIN webhook_deliveries d ON d.id = coalesce(latest.delivery_id, s.last_delivery_id)
                LEFT JOIN repository_hooks h ON h.integration_id = s.integration_id AND h.repository_id = s.repository_id
           ORDER BY s.created_at DESC, s.id DESC"#,
        visible,
        filter.space_id,
        filter.integration_id,
        filter.detached,
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Stack::from).collect())
}

/// Changes to a stack; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct StackChanges {
    pub name: Option<String>,
    pub branch: Option<String>,
    /// The integration (possibly another one: re-attaching) and the
    /// repository as found through it: (integration, repository id, name).
    pub attachment: Option<(IntegrationId, String, String)>,
    /// All four at once: the operations merge a partial change over the
    /// stored ones first.
    pub triggers: Option<Triggers>,
}

pub async fn update(
    tx: &mut PgConnection,
    id: StackId,
    changes: StackChanges,
) -> Result<Option<Stack>, StackWriteError> {
    let (integration, repository_id, repository_name) = match changes.attachment {
        Some((integration, id, name)) => (Some(integration), Some(id), Some(name)),
        None => (None, None, None),
    };
    let triggers = changes.triggers;
    let updated = sqlx::query!(
        r#"UPDATE stacks SET
             name = coalesce($2, name),
             branch = coalesce($3, branch),
             integration_id = coalesce($4, integration_id),
             repository_id = coalesce($5, repository_id),
             repository_name = coalesce($6, repository_name),
             build_pull_requests = coalesce($7, build_pull_requests),
             all_branches = coalesce($8, all_branches),
             prune_branches = coalesce($9, prune_branches),
             resync_pull_requests = coalesce($10, resync_pull_requests),
             -- Another branch or repository: the old one's deletion no longer concerns it.
             branch_deleted = CASE WHEN $3::text IS NOT NULL OR $5::text IS NOT NULL THEN false ELSE branch_deleted END
           WHERE id = $1"#,
        id,
        changes.name,
        changes.branch,
        integration,
        repository_id,
        repository_name,
        triggers.map(|t| t.build_pull_requests),
        triggers.map(|t| t.all_branches),
        triggers.map(|t| t.prune_branches),
        triggers.map(|t| t.resync_pull_requests),
    )
    .execute(&mut *tx)
    .await
    .map_err(constraint_error)?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(find(&mut *tx, id).await?)
}

pub async fn delete(db: impl PgExecutor<'_>, id: StackId) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!("DELETE FROM stacks WHERE id = $1", id).execute(db).await?.rows_affected() == 1)
}

/// Whether a stack in `space` may use the integration: a default, or one
/// scoped to `space` or to a space above it.
pub async fn integration_usable_in(
    db: impl PgExecutor<'_>,
    integration: IntegrationId,
    space: SpaceId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH RECURSIVE up AS (
               SELECT id, parent_id FROM spaces WHERE id = $2
               UNION ALL
               SELECT s.id, s.parent_id FROM spaces s JOIN up ON s.id = up.parent_id
           )
           SELECT EXISTS (
               SELECT 1 FROM integrations i
               WHERE i.id = $1 AND (i.space_id IS NULL OR i.space_id IN (SELECT id FROM up))
           ) AS "usable!""#,
        integration,
        space
    )
    .fetch_one(db)
    .await
}

/// The integrations a stack in `space` may use, by name: the defaults, and
/// those of `space` and of the spaces above it.
pub async fn integrations_usable_in(
    db: impl PgExecutor<'_>,
    space: SpaceId,
) -> Result<Vec<(IntegrationId, String, Provider)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH RECURSIVE up AS (
               SELECT id, parent_id FROM spaces WHERE id = $1
               UNION ALL
               SELECT s.id, s.parent_id FROM spaces s JOIN up ON s.id = up.parent_id
           )
           SELECT i.id, i.name, i.provider FROM integrations i
           WHERE i.space_id IS NULL OR i.space_id IN (SELECT id FROM up)
           ORDER BY lower(i.name)"#,
        space
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let provider = if r.provider == "bitbucket_cloud" { Provider::Cloud } else { Provider::DataCenter };
            (r.id, r.name, provider)
        })
        .collect())
}

/// The names of the stacks using `integration` that could not use it with
/// the scope `scope` (`None`: a default, which every space may use).
pub async fn outside_scope(
    db: impl PgExecutor<'_>,
    integration: IntegrationId,
    scope: Option<SpaceId>,
) -> Result<Vec<String>, sqlx::Error> {
    let Some(scope) = scope else { return Ok(Vec::new()) };
    sqlx::query_scalar!(
        r#"WITH RECURSIVE down AS (
               SELECT id FROM spaces WHERE id = $2
               UNION ALL
               SELECT s.id FROM spaces s JOIN down ON s.parent_id = down.id
           )
           SELECT name FROM stacks
           WHERE integration_id = $1 AND space_id NOT IN (SELECT id FROM down)
           ORDER BY lower(name)"#,
        integration,
        scope
    )
    .fetch_all(db)
    .await
}

/// The spaces among `spaces` that may use an integration scoped to `scope`
/// (`None`: a default, usable everywhere): `scope` and the spaces below it.
pub async fn spaces_using(
    db: impl PgExecutor<'_>,
    scope: Option<SpaceId>,
    spaces: &[SpaceId],
) -> Result<Vec<SpaceId>, sqlx::Error> {
    let Some(scope) = scope else { return Ok(spaces.to_vec()) };
    sqlx::query_scalar!(
        r#"WITH RECURSIVE down AS (
               SELECT id FROM spaces WHERE id = $1
               UNION ALL
               SELECT s.id FROM spaces s JOIN down ON s.parent_id = down.id
           )
           SELECT id AS "id!" FROM down WHERE id = ANY($2)"#,
        scope,
        spaces
    )
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_follow_git_rules() {
        for good in ["main", "release/1.2", "feature/JIRA-12_x", "refs/heads/main", "v1.0"] {
            assert!(parse_branch(good).is_ok(), "{good}");
        }
        assert_eq!(parse_branch(" refs/heads/main ").unwrap(), "main");
        assert_eq!(parse_branch("").unwrap_err().code, "required");
        for bad in [
            "a b", "a..b", "-x", "x/", "x.lock", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", "@", "a@{1}", "a//b",
            "a/.b", "/x",
        ] {
            assert_eq!(parse_branch(bad).unwrap_err().code, "invalid", "{bad:?}");
        }
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(parse_name("  web  ").unwrap(), "web");
        assert_eq!(parse_name("").unwrap_err().code, "required");
        assert_eq!(parse_name(&"x".repeat(101)).unwrap_err().code, "too_long");
        assert_eq!(parse_name("a\u{7}").unwrap_err().code, "invalid");
    }
}
