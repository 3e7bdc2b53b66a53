//! API tokens: `bgt_` and 256 random bits, shown once, stored as SHA-256,
//! optionally expiring, acting with their user's roles and dying with them.

pub mod operations;

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    tokens::{random_token, sha256},
    users::{self, FieldError, User, UserId},
};

/// What every API token starts with (so that secret scanners find leaks).
pub const PREFIX: &str = "bgt_";

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: UserId,
    pub name: String,
    /// The first characters of the secret after `bgt_`, to tell tokens apart.
    pub prefix: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A token's name: 1 to 100 characters once trimmed.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    match name.chars().count() {
        0 => Err(FieldError::new("name", "required", "Name the token after what uses it, such as \"terraform\".")),
        1..=100 => Ok(name.to_owned()),
        _ => Err(FieldError::new("name", "too_long", "Use at most 100 characters.")),
    }
}

/// Creates a token; the secret is returned here and never again.
pub async fn create(
    db: impl PgExecutor<'_>,
    user_id: UserId,
    name: &str,
    expires_at: Option<OffsetDateTime>,
) -> Result<(ApiToken, String), sqlx::Error> {
    let secret = format!("{PREFIX}{}", random_token());
    let prefix: String = secret[PREFIX.len()..].chars().take(6).collect();
    let token = sqlx::query_as!(
        ApiToken,
        r#"INSERT INTO api_tokens (user_id, name, token_sha256, prefix, expires_at) VALUES ($1, $2, $3, $4, $5)
           RETURNING id, user_id, name, prefix, created_at, expires_at, last_used_at"#,
        user_id,
        name,
        sha256(&secret),
        prefix,
        expires_at
    )
    .fetch_one(db)
    .await?;
    Ok((token, secret))
}

/// The user a token acts for, when the token is known, not revoked, not
/// expired, and its user is enabled. Records when it was last used.
pub async fn authenticate(pool: &sqlx::PgPool, secret: &str) -> Result<Option<(User, Uuid)>, sqlx::Error> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    let found = sqlx::query!(
        r#"UPDATE api_tokens t SET last_used_at = now()
           FROM users u
           WHERE t.token_sha256 = $1 AND u.id = t.user_id
             AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.disabled_at IS NULL
           RETURNING t.id, t.user_id"#,
        sha256(secret)
    )
    .fetch_optional(pool)
    .await?;
    let Some(found) = found else { return Ok(None) };
    Ok(users::find(pool, found.user_id).await?.filter(|u| !u.disabled).map(|user| (user, found.id)))
}

/// A page of a user's live tokens, newest first, after a position.
pub async fn list_page(
    db: impl PgExecutor<'_>,
    user_id: UserId,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<ApiToken>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        ApiToken,
        r#"SELECT id, user_id, name, prefix, created_at, expires_at, last_used_at FROM api_tokens
           WHERE user_id = $1 AND revoked_at IS NULL
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
           ORDER BY created_at DESC, id DESC
           LIMIT $4"#,
        user_id,
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// One of a user's live tokens; `None` for anyone else's, a revoked one or none.
pub async fn find_live(db: impl PgExecutor<'_>, user_id: UserId, id: Uuid) -> Result<Option<ApiToken>, sqlx::Error> {
    sqlx::query_as!(
        ApiToken,
        r#"SELECT id, user_id, name, prefix, created_at, expires_at, last_used_at FROM api_tokens
           WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL"#,
        id,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// Revokes one of a user's tokens; `None` when the user has no such live token.
pub async fn revoke(db: impl PgExecutor<'_>, user_id: UserId, id: Uuid) -> Result<Option<ApiToken>, sqlx::Error> {
    sqlx::query_as!(
        ApiToken,
        r#"UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
           RETURNING id, user_id, name, prefix, created_at, expires_at, last_used_at"#,
        id,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// Revokes every live token of a user; returns them.
pub async fn revoke_all(db: impl PgExecutor<'_>, user_id: UserId) -> Result<Vec<ApiToken>, sqlx::Error> {
    sqlx::query_as!(
        ApiToken,
        r#"UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL
           RETURNING id, user_id, name, prefix, created_at, expires_at, last_used_at"#,
        user_id
    )
    .fetch_all(db)
    .await
}

/// When a token expires (`Some(None)`: never); `None` when there is no such token.
pub async fn expires_at(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Option<OffsetDateTime>>, sqlx::Error> {
    sqlx::query_scalar!("SELECT expires_at FROM api_tokens WHERE id = $1", id).fetch_optional(db).await
}
