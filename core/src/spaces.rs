//! Spaces: a tree under `root`, where roles are granted.

pub mod operations;

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::users::{FieldError, Role};

pub type SpaceId = Uuid;

/// The name of the space at the top of the tree.
pub const ROOT: &str = "root";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    pub id: SpaceId,
    pub name: String,
    pub parent_id: Option<SpaceId>,
}

/// A space named by its name or its id, as the CLI takes it.
pub async fn resolve(db: impl PgExecutor<'_>, name_or_id: &str) -> Result<Option<Space>, sqlx::Error> {
    let id = Uuid::parse_str(name_or_id.trim()).ok();
    sqlx::query_as!(Space, "SELECT id, name, parent_id FROM spaces WHERE name = $1 OR id = $2", name_or_id.trim(), id)
        .fetch_optional(db)
        .await
}

/// A space as the API and pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceRecord {
    pub id: SpaceId,
    pub name: String,
    pub parent_id: Option<SpaceId>,
    pub description: String,
    pub created_at: time::OffsetDateTime,
}

/// A space's name: 1 to 63 printable characters once trimmed.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    match name.chars().count() {
        0 => Err(FieldError::new("name", "required", "Enter a name for the space.")),
        1..=63 if !name.chars().any(char::is_control) => Ok(name.to_owned()),
        1..=63 => Err(FieldError::new("name", "invalid", "Use printable characters only.")),
        _ => Err(FieldError::new("name", "too_long", "Use at most 63 characters.")),
    }
}

/// A description: at most 2,000 characters.
pub fn parse_description(raw: &str) -> Result<String, FieldError> {
    let description = raw.trim();
    if description.chars().count() > 2000 {
        Err(FieldError::new("description", "too_long", "Use at most 2,000 characters."))
    } else {
        Ok(description.to_owned())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpaceWriteError {
    #[error("A space with this name exists already.")]
    NameTaken,
    #[error("This space has child spaces: delete or move them first.")]
    HasChildren,
    #[error("This space holds integrations or stacks: delete them first.")]
    InUse,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn constraint_error(error: sqlx::Error) -> SpaceWriteError {
    match error.as_database_error().and_then(|e| e.constraint()) {
        Some("spaces_name_key") => SpaceWriteError::NameTaken,
        Some("spaces_parent_id_fkey") => SpaceWriteError::HasChildren,
        Some("integrations_space_id_fkey" | "stacks_space_id_fkey") => SpaceWriteError::InUse,
        _ => SpaceWriteError::Database(error),
    }
}

pub async fn find(db: impl PgExecutor<'_>, id: SpaceId) -> Result<Option<SpaceRecord>, sqlx::Error> {
    sqlx::query_as!(SpaceRecord, "SELECT id, name, parent_id, description, created_at FROM spaces WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// A page of the given spaces, newest first, after a position.
pub async fn list(
    db: impl PgExecutor<'_>,
    ids: &[SpaceId],
    after: Option<(time::OffsetDateTime, SpaceId)>,
    limit: i64,
) -> Result<Vec<SpaceRecord>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        SpaceRecord,
        r#"SELECT id, name, parent_id, description, created_at FROM spaces
           WHERE id = ANY($1) AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
           ORDER BY created_at DESC, id DESC LIMIT $4"#,
        ids,
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await
}

pub async fn create(
    db: impl PgExecutor<'_>,
    name: &str,
    parent_id: SpaceId,
    description: &str,
) -> Result<SpaceRecord, SpaceWriteError> {
    sqlx::query_as!(
        SpaceRecord,
        r#"INSERT INTO spaces (name, parent_id, description) VALUES ($1, $2, $3)
           RETURNING id, name, parent_id, description, created_at"#,
        name,
        parent_id,
        description
    )
    .fetch_one(db)
    .await
    .map_err(constraint_error)
}

/// Renames or re-describes a space (fields left `None` stay).
pub async fn update(
    db: impl PgExecutor<'_>,
    id: SpaceId,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<Option<SpaceRecord>, SpaceWriteError> {
    sqlx::query_as!(
        SpaceRecord,
        r#"UPDATE spaces SET name = coalesce($2, name), description = coalesce($3, description) WHERE id = $1
           RETURNING id, name, parent_id, description, created_at"#,
        id,
        name,
        description
    )
    .fetch_optional(db)
    .await
    .map_err(constraint_error)
}

pub async fn delete(db: impl PgExecutor<'_>, id: SpaceId) -> Result<bool, SpaceWriteError> {
    let deleted = sqlx::query!("DELETE FROM spaces WHERE id = $1 AND parent_id IS NOT NULL", id)
        .execute(db)
        .await
        .map_err(constraint_error)?;
    Ok(deleted.rows_affected() == 1)
}

/// A role granted directly on a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
}

pub async fn members(db: impl PgExecutor<'_>, space: SpaceId) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as!(
        Member,
        r#"SELECT u.id AS user_id, u.email, u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.space_id = $1 ORDER BY u.email"#,
        space
    )
    .fetch_all(db)
    .await
}

/// Grants or changes a role; returns the membership.
pub async fn set_member(db: impl PgExecutor<'_>, space: SpaceId, user_id: Uuid, role: Role) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO memberships (space_id, user_id, role) VALUES ($1, $2, $3)
           ON CONFLICT (space_id, user_id) DO UPDATE SET role = excluded.role"#,
        space,
        user_id,
        role.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn remove_member(db: impl PgExecutor<'_>, space: SpaceId, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query!("DELETE FROM memberships WHERE space_id = $1 AND user_id = $2", space, user_id)
        .execute(db)
        .await?;
    Ok(removed.rows_affected() == 1)
}

/// The account must keep an enabled administrator of `root`. A change that
/// may take one away locks this first, in its own transaction, and asks
/// [`AccountAdmins::one_remains`] after the change: such changes wait for
/// each other, so two admins removing each other at once cannot each see the
/// other one still there (as they would, each in its own snapshot).
pub struct AccountAdmins(());

impl AccountAdmins {
    /// Waits for any other transaction holding it, and holds it until this one ends.
    pub async fn lock(tx: &mut PgConnection) -> Result<Self, sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bitgate.account_admins'))").execute(&mut *tx).await?;
        Ok(Self(()))
    }

    /// Whether an enabled user still administers `root`, changes of this
    /// transaction included.
    pub async fn one_remains(self, tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT EXISTS (
                 SELECT 1 FROM memberships m JOIN spaces s ON s.id = m.space_id JOIN users u ON u.id = m.user_id
                 WHERE s.parent_id IS NULL AND m.role = 'admin' AND u.disabled_at IS NULL) AS "remains!""#
        )
        .fetch_one(&mut *tx)
        .await
    }
}
