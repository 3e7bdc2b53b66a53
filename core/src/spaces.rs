//! Spaces: a tree under `root`, where roles are granted.

use sqlx::PgExecutor;
use uuid::Uuid;

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
