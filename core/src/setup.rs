//! The one-time setup link that lets the first admin be created in the
//! browser on a fresh install: a random token in the URL, stored as its
//! SHA-256, valid once and for a limited time, and only while no user exists.

use std::time::Duration;

use sqlx::PgPool;

use crate::{
    passwords::PasswordHasher,
    spaces,
    tokens::{random_token, sha256},
    users::{self, CreateUserError, NewUser, Role, User},
};

/// How long a setup link stays valid.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Issues a new setup link token when no user exists yet.
pub async fn issue_if_needed(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    if users::any_exist(pool).await? {
        return Ok(None);
    }
    let token = random_token();
    sqlx::query!(
        "INSERT INTO setup_tokens (token_sha256, expires_at) VALUES ($1, now() + make_interval(secs => $2))",
        sha256(&token),
        LINK_LIFETIME.as_secs_f64()
    )
    .execute(pool)
    .await?;
    Ok(Some(token))
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("This setup link is not valid. Use the link Bitgate printed when it started.")]
    Unknown,
    #[error("This setup link has been used already. Log in with the account it created.")]
    Used,
    #[error("This setup link has expired. Restart Bitgate to get a new one, or create the admin with `bitgate user create`.")]
    Expired,
    #[error("Bitgate has been set up already. Log in instead.")]
    AlreadySetUp,
    #[error(transparent)]
    CreateUser(#[from] CreateUserError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks a setup token without spending it (to show the form).
pub async fn check(pool: &PgPool, token: &str) -> Result<(), SetupError> {
    let row = sqlx::query!(
        r#"SELECT used_at IS NOT NULL AS "used!", expires_at < now() AS "expired!" FROM setup_tokens WHERE token_sha256 = $1"#,
        sha256(token)
    )
    .fetch_optional(pool)
    .await?;
    match row {
        None => Err(SetupError::Unknown),
        Some(r) if r.used => Err(SetupError::Used),
        Some(r) if r.expired => Err(SetupError::Expired),
        Some(_) if users::any_exist(pool).await? => Err(SetupError::AlreadySetUp),
        Some(_) => Ok(()),
    }
}

/// Spends the token and creates the first admin (admin of `root`) in one
/// transaction: two browsers racing with the same link create one user.
pub async fn complete(
    pool: &PgPool,
    hasher: &PasswordHasher,
    token: &str,
    mut admin: NewUser,
) -> Result<User, SetupError> {
    let mut tx = pool.begin().await?;
    // The row lock makes a concurrent use of the same link wait, then see it used.
    let row = sqlx::query!(
        r#"SELECT used_at IS NOT NULL AS "used!", expires_at < now() AS "expired!"
           FROM setup_tokens WHERE token_sha256 = $1 FOR UPDATE"#,
        sha256(token)
    )
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        None => return Err(SetupError::Unknown),
        Some(r) if r.used => return Err(SetupError::Used),
        Some(r) if r.expired => return Err(SetupError::Expired),
        Some(_) => {}
    }
    // Serialise with any other first-admin creation (another link, the CLI).
    sqlx::query!("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    if users::any_exist(&mut *tx).await? {
        return Err(SetupError::AlreadySetUp);
    }
    let root = spaces::resolve(&mut *tx, spaces::ROOT).await?.ok_or(sqlx::Error::RowNotFound)?;
    admin.role = Some((Role::Admin, root.id));
    let user = users::create(&mut tx, hasher, admin).await?;
    sqlx::query!("UPDATE setup_tokens SET used_at = now() WHERE used_at IS NULL").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(user)
}
