//! What can be done to users, for every door: the users page, the REST API
//! (`/api/v1/users`) and the CLI (`bitgate user create`). Account admins
//! (and the operator) only; a refusal is audited. The first admin is made
//! by the setup link instead (`crate::setup`), before anyone can log in.

use serde_json::json;
use sqlx::PgPool;

use super::{
    change, create as create_row, find, find_for_login, update as write_user, ChangeUserError, CreateUserError,
    DisplayName, Email, FieldError, NewUser, Role, User, UserId,
};
use crate::{
    access::Denied,
    audit::{self, AuditAction, Event, Target},
    passwords::{Password, PasswordHasher},
    principal::Principal,
    spaces,
    validation::Problems,
};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no such user")]
    NotFound,
    /// Not an account admin; the refusal is in the audit log.
    #[error("refused by the permission table")]
    Denied(Denied),
    #[error("the input has {} problems", .0.len())]
    Invalid(Vec<FieldError>),
    /// The email is taken, or the change would leave no enabled account admin.
    #[error("conflicts with what is stored")]
    Conflict(Vec<FieldError>),
    #[error("the password could not be hashed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A new user, as asked; `None`: not given.
#[derive(Default)]
pub struct NewUserInput {
    /// What the door's reader found wrong, reported with the rest.
    pub read_problems: Vec<FieldError>,
    pub email: Option<String>,
    /// Made from the email when left out.
    pub name: Option<String>,
    pub password: Option<String>,
    /// A role to grant, on `space` (a name or an id; `root` when left out).
    pub role: Option<String>,
    pub space: Option<String>,
}

/// Account admins and the operator manage users; a refusal is recorded.
async fn administer(db: &PgPool, by: &Principal, action: &'static str) -> Result<(), UserError> {
    match by.access(db).await?.can_administer_account() {
        Ok(()) => Ok(()),
        Err(why) => Err(UserError::Denied(by.refused(db, "user", action, None, why).await?)),
    }
}

/// Creates a user who can log in at once, with a role when one is asked.
pub async fn create(
    db: &PgPool,
    hasher: &PasswordHasher,
    by: &Principal,
    input: NewUserInput,
) -> Result<User, UserError> {
    administer(db, by, "user.create").await?;
    let mut problems = Problems(input.read_problems);
    let email = problems.required("email", input.email).and_then(|raw| problems.check(Email::parse(&raw)));
    let name = match input.name.filter(|n| !n.trim().is_empty()) {
        Some(raw) => problems.check(DisplayName::parse(&raw)),
        None => None,
    };
    let password = problems.required("password", input.password).and_then(|raw| {
        problems.check(Password::new(raw).map_err(|e| FieldError::new("password", "too_weak", e.to_string())))
    });
    let role = input.role.and_then(|raw| problems.check(Role::parse(&raw)));
    let space_name = input.space.unwrap_or_else(|| spaces::ROOT.to_owned());
    let space = spaces::resolve(db, &space_name).await?;
    if space.is_none() {
        let message = format!("No space is named or has the id \u{201c}{space_name}\u{201d}.");
        problems.push("space_id", "unknown", message);
    }
    let (Some(email), Some(password), Some(space), true) = (email, password, space, problems.is_empty()) else {
        return Err(UserError::Invalid(problems.0));
    };
    let name = name.unwrap_or_else(|| DisplayName::from_email(&email));
    let grant = role.map(|role| (role, space.id));
    let mut tx = db.begin().await?;
    let user = match create_row(&mut tx, hasher, NewUser { email, name, password, role: grant }).await {
        Ok(user) => user,
        Err(CreateUserError::EmailTaken(email)) => {
            let message = format!("A user with the email {email} exists already.");
            return Err(UserError::Conflict(vec![FieldError::new("email", "taken", message)]));
        }
        Err(CreateUserError::Database(e)) => return Err(e.into()),
        Err(CreateUserError::Hashing(e)) => return Err(UserError::Hashing(e.to_string())),
    };
    let details = match grant {
        Some((role, _)) => json!({"role": role.as_str(), "space": space.name}),
        None => json!({}),
    };
    let event = Event::new(by.actor(), AuditAction::UserCreated).target(Target::user(&user)).from_address(by.address());
    audit::record(&mut *tx, event.details(details)).await?;
    tx.commit().await?;
    Ok(user)
}

/// A change to a user; `None`: unchanged.
#[derive(Default)]
pub struct UserChange {
    pub read_problems: Vec<FieldError>,
    pub name: Option<String>,
    /// Disabling ends their sessions and API tokens at once.
    pub disabled: Option<bool>,
}

/// Renames, disables or re-enables a user; the account keeps an enabled admin.
pub async fn update(db: &PgPool, by: &Principal, id: UserId, input: UserChange) -> Result<User, UserError> {
    let action = match input.disabled {
        Some(true) => AuditAction::UserDisabled,
        Some(false) => AuditAction::UserEnabled,
        None => AuditAction::UserUpdated,
    };
    administer(db, by, action.as_str()).await?;
    let mut problems = Problems(input.read_problems);
    let name = input.name.and_then(|raw| problems.check(DisplayName::parse(&raw)));
    if !problems.is_empty() {
        return Err(UserError::Invalid(problems.0));
    }
    let mut tx = db.begin().await?;
    let user = match change(&mut tx, by, id, name.as_ref(), input.disabled).await {
        Ok(user) => user,
        Err(ChangeUserError::NotFound) => return Err(UserError::NotFound),
        Err(ChangeUserError::LastAdmin) => {
            let message = "This is the last enabled administrator of the account.";
            return Err(UserError::Conflict(vec![FieldError::new("disabled", "last_admin", message)]));
        }
        Err(ChangeUserError::Database(e)) => return Err(e.into()),
    };
    let event = Event::new(by.actor(), action).target(Target::user(&user)).from_address(by.address());
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(user)
}

/// Disables a user for the operator (`bitgate user disable`), audited. The
/// operator stands outside the account's rules: this may disable the last
/// account admin (one is made again with `bitgate user create --role admin`).
/// `None` when no user has the email.
pub async fn disable_as_operator(db: &PgPool, email: &Email) -> Result<Option<User>, sqlx::Error> {
    let by = Principal::Operator;
    let mut tx = db.begin().await?;
    let Some(found) = find_for_login(&mut *tx, email).await? else { return Ok(None) };
    write_user(&mut tx, &by, found.id, None, Some(true)).await?;
    let user = find(&mut *tx, found.id).await?.ok_or(sqlx::Error::RowNotFound)?;
    let event = Event::new(by.actor(), AuditAction::UserDisabled).target(Target::user(&user));
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(Some(user))
}
