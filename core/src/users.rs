//! Users, and the roles they hold in spaces.

pub mod operations;

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    api_tokens,
    passwords::{HashingError, Password, PasswordHasher},
    principal::Principal,
    sessions,
    spaces::{AccountAdmins, SpaceId},
};

/// An email address, trimmed and lowercased. Only its shape is checked:
/// Bitgate sends no mail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(FieldError::new("email", "required", "Enter an email address."));
        }
        let valid = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if valid {
            Ok(Self(email))
        } else {
            Err(FieldError::new("email", "invalid", "Enter an email address such as ada@example.com."))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's display name: 1 to 100 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        match name.chars().count() {
            0 => Err(FieldError::new("name", "required", "Enter a name.")),
            1..=100 if !name.chars().any(char::is_control) => Ok(Self(name.to_owned())),
            1..=100 => Err(FieldError::new("name", "invalid", "Use printable characters only.")),
            _ => Err(FieldError::new("name", "too_long", "Use at most 100 characters.")),
        }
    }

    /// The part of an email before `@`, when no name is given.
    pub fn from_email(email: &Email) -> Self {
        let local = email.as_str().split('@').next().unwrap_or("user");
        Self(local.chars().take(100).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A problem with one field of a form or request, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), code: code.to_owned(), message: message.into() }
    }
}

/// A role held on a space, and on its descendants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw.trim() {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(FieldError::new("role", "invalid", "Choose read, write or admin.")),
        }
    }
}

pub type UserId = Uuid;

/// A user as the rest of Bitgate sees it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub disabled: bool,
    /// Admin of `root`, that is of the whole account.
    pub is_account_admin: bool,
    pub created_at: OffsetDateTime,
}

/// What creating a user needs.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub name: DisplayName,
    pub password: Password,
    /// The role to grant, and where.
    pub role: Option<(Role, SpaceId)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("A user with the email {0} exists already.")]
    EmailTaken(Email),
    #[error(transparent)]
    Hashing(#[from] HashingError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates a user (and its role) in the caller's transaction.
pub async fn create(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    hasher: &PasswordHasher,
    new: NewUser,
) -> Result<User, CreateUserError> {
    let hash = hasher.hash(&new.password).await?;
    let inserted = sqlx::query!(
        r#"INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3)
           RETURNING id, created_at"#,
        new.email.as_str(),
        new.name.as_str(),
        hash,
    )
    .fetch_one(&mut **tx)
    .await;
    let row = match inserted {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email_key") => {
            return Err(CreateUserError::EmailTaken(new.email))
        }
        Err(e) => return Err(e.into()),
    };
    if let Some((role, space_id)) = new.role {
        sqlx::query!(
            "INSERT INTO memberships (space_id, user_id, role) VALUES ($1, $2, $3)",
            space_id,
            row.id,
            role.as_str()
        )
        .execute(&mut **tx)
        .await?;
    }
    let user = find(&mut **tx, row.id).await?;
    user.ok_or(CreateUserError::Database(sqlx::Error::RowNotFound))
}

/// A user by id, disabled ones included.
pub async fn find(db: impl PgExecutor<'_>, id: UserId) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        r#"SELECT u.id, u.email, u.name, u.disabled_at IS NOT NULL AS "disabled!", u.created_at,
                  EXISTS (SELECT 1 FROM memberships m JOIN spaces s ON s.id = m.space_id
                          WHERE m.user_id = u.id AND s.parent_id IS NULL AND m.role = 'admin') AS "is_account_admin!"
           FROM users u WHERE u.id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Whether any user exists (the first-admin setup is offered until one does).
pub async fn any_exist(db: impl PgExecutor<'_>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM users) AS "exists!""#).fetch_one(db).await
}

/// What login needs to know of an account.
#[derive(Debug)]
pub struct LoginCandidate {
    pub id: UserId,
    pub password_hash: String,
    pub disabled: bool,
}

pub async fn find_for_login(db: impl PgExecutor<'_>, email: &Email) -> Result<Option<LoginCandidate>, sqlx::Error> {
    sqlx::query_as!(
        LoginCandidate,
        r#"SELECT id, password_hash, disabled_at IS NOT NULL AS "disabled!" FROM users WHERE email = $1"#,
        email.as_str()
    )
    .fetch_optional(db)
    .await
}

/// A page of users, newest first, after a position.
pub async fn list(
    db: impl PgExecutor<'_>,
    after: Option<(OffsetDateTime, UserId)>,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        User,
        r#"SELECT u.id, u.email, u.name, u.disabled_at IS NOT NULL AS "disabled!", u.created_at,
                  EXISTS (SELECT 1 FROM memberships m JOIN spaces s ON s.id = m.space_id
                          WHERE m.user_id = u.id AND s.parent_id IS NULL AND m.role = 'admin') AS "is_account_admin!"
           FROM users u
           WHERE ($1::timestamptz IS NULL OR (u.created_at, u.id) < ($1, $2))
           ORDER BY u.created_at DESC, u.id DESC LIMIT $3"#,
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// Changes a user's name or disabled flag (fields left `None` stay), in the
/// caller's transaction. Disabling ends, for good, what the user could still
/// act through: their API tokens are revoked (audited as done by `by`) and
/// their browser sessions deleted, so that re-enabling them revives neither.
/// Returns false when no such user exists.
async fn update(
    tx: &mut PgConnection,
    by: &Principal,
    id: UserId,
    name: Option<&DisplayName>,
    disabled: Option<bool>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        r#"UPDATE users SET
             name = coalesce($2, name),
             disabled_at = CASE WHEN $3::bool IS NULL THEN disabled_at
                                WHEN $3 THEN coalesce(disabled_at, now())
                                ELSE NULL END
           WHERE id = $1"#,
        id,
        name.map(DisplayName::as_str),
        disabled
    )
    .execute(&mut *tx)
    .await?;
    let found = updated.rows_affected() == 1;
    if found && disabled == Some(true) {
        api_tokens::operations::revoke_all_of_disabled(&mut *tx, by, id).await?;
        sessions::end_all(&mut *tx, id).await?;
    }
    Ok(found)
}

/// Why a user could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeUserError {
    #[error("no such user")]
    NotFound,
    #[error("this is the last enabled administrator of the account")]
    LastAdmin,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Renames, disables or re-enables a user in the caller's transaction,
/// refusing to leave the account without an enabled administrator of root.
pub async fn change(
    tx: &mut PgConnection,
    by: &Principal,
    id: UserId,
    name: Option<&DisplayName>,
    disabled: Option<bool>,
) -> Result<User, ChangeUserError> {
    let admins = AccountAdmins::lock(&mut *tx).await?;
    if !update(&mut *tx, by, id, name, disabled).await? {
        return Err(ChangeUserError::NotFound);
    }
    if !admins.one_remains(&mut *tx).await? {
        return Err(ChangeUserError::LastAdmin);
    }
    find(&mut *tx, id).await?.ok_or(ChangeUserError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "@example.com", "ada@", "ada@@example.com", "a da@example.com", "ada@.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Email::parse("").unwrap_err().code, "required");
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(DisplayName::parse("  Ada Lovelace ").unwrap().as_str(), "Ada Lovelace");
        assert_eq!(DisplayName::parse("   ").unwrap_err().code, "required");
        assert_eq!(DisplayName::parse(&"x".repeat(101)).unwrap_err().code, "too_long");
        assert_eq!(DisplayName::from_email(&Email::parse("ada@example.com").unwrap()).as_str(), "ada");
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
        assert_eq!(Role::parse("admin").unwrap(), Role::Admin);
        assert!(Role::parse("owner").is_err());
    }
}
