//! What can be done to spaces and their members, for every door: the spaces
//! pages and the REST API (`/api/v1/spaces`). Each operation authorizes
//! first (a refused write is audited, and a caller who may not act learns
//! nothing about whether the request was valid), validates every field,
//! then writes and audits in one transaction.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{parse_description, parse_name, AccountAdmins, SpaceId, SpaceRecord, SpaceWriteError, ROOT};
use crate::{
    access::{Access, Denied},
    audit::{self, AuditAction, Event, Target},
    principal::Principal,
    users::{self, Email, FieldError, Role, UserId},
    validation::Problems,
};

#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// No such space (or member), or none the principal may know of.
    #[error("no such space")]
    NotFound,
    /// The permission table says no; the refusal is in the audit log.
    #[error("refused by the permission table")]
    Denied(Denied),
    #[error("the input has {} problems", .0.len())]
    Invalid(Vec<FieldError>),
    /// A name taken, dependents in the way, or the last account admin.
    #[error("conflicts with what is stored")]
    Conflict(Vec<FieldError>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<SpaceWriteError> for SpaceError {
    fn from(error: SpaceWriteError) -> Self {
        let field = match error {
            SpaceWriteError::Database(e) => return SpaceError::Database(e),
            SpaceWriteError::NameTaken => ("name", "taken"),
            SpaceWriteError::HasChildren => ("id", "has_children"),
            SpaceWriteError::InUse => ("id", "in_use"),
        };
        SpaceError::Conflict(vec![FieldError::new(field.0, field.1, error.to_string())])
    }
}

/// A path's id: one that is not a UUID names nothing.
pub fn parse_id(raw: &str) -> Result<Uuid, SpaceError> {
    Uuid::parse_str(raw.trim()).map_err(|_| SpaceError::NotFound)
}

/// What a creation or change asks; `None`: not given (a change keeps it).
#[derive(Debug, Default)]
pub struct SpaceInput {
    /// What the door's reader found wrong (an unknown field, a wrong
    /// type), reported with the rest after authorization.
    pub read_problems: Vec<FieldError>,
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Checks that `by` administers `space`; a refusal is recorded under `action`.
async fn administer(db: &PgPool, by: &Principal, space: SpaceId, action: &'static str) -> Result<Access, SpaceError> {
    let access = by.access(db).await?;
    match access.can_administer(space) {
        Ok(()) => Ok(access),
        Err(why) => Err(SpaceError::Denied(by.refused(db, "space", action, Some(space), why).await?)),
    }
}

fn event(by: &Principal, action: AuditAction, target: Target, space: SpaceId) -> Event {
    Event::new(by.actor(), action).target(target).from_address(by.address()).in_space(space)
}

/// Creates a space inside `parent`, which `by` must administer.
pub async fn create(
    db: &PgPool,
    by: &Principal,
    parent: SpaceId,
    input: SpaceInput,
) -> Result<SpaceRecord, SpaceError> {
    administer(db, by, parent, "space.create").await?;
    let mut problems = Problems(input.read_problems);
    let name = problems.required("name", input.name).and_then(|raw| problems.check(parse_name(&raw)));
    let description = problems.check(parse_description(input.description.as_deref().unwrap_or_default()));
    let (Some(name), Some(description), true) = (name, description, problems.is_empty()) else {
        return Err(SpaceError::Invalid(problems.0));
    };
    let mut tx = db.begin().await?;
    let space = super::create(&mut *tx, &name, parent, &description).await?;
    audit::record(&mut *tx, event(by, AuditAction::SpaceCreated, Target::space(&space), space.id)).await?;
    tx.commit().await?;
    Ok(space)
}

/// Renames a space or changes its description; `root` keeps its name.
pub async fn update(db: &PgPool, by: &Principal, id: SpaceId, input: SpaceInput) -> Result<SpaceRecord, SpaceError> {
    administer(db, by, id, "space.update").await?;
    let current = super::find(db, id).await?.ok_or(SpaceError::NotFound)?;
    let mut problems = Problems(input.read_problems);
    let name = input.name.and_then(|raw| problems.check(parse_name(&raw)));
    if current.parent_id.is_none() && name.as_deref().is_some_and(|n| n != ROOT) {
        problems.push("name", "immutable", "The root space keeps its name.");
    }
    let description = input.description.and_then(|raw| problems.check(parse_description(&raw)));
    if !problems.is_empty() {
        return Err(SpaceError::Invalid(problems.0));
    }
    let mut tx = db.begin().await?;
    let space =
        super::update(&mut *tx, id, name.as_deref(), description.as_deref()).await?.ok_or(SpaceError::NotFound)?;
    audit::record(&mut *tx, event(by, AuditAction::SpaceUpdated, Target::space(&space), space.id)).await?;
    tx.commit().await?;
    Ok(space)
}

/// Deletes a space: administering its parent; `root` cannot go, nor a space
/// with spaces, integrations or stacks in it.
pub async fn delete(db: &PgPool, by: &Principal, id: SpaceId) -> Result<SpaceRecord, SpaceError> {
    let access = by.access(db).await?;
    let space = super::find(db, id).await?.ok_or(SpaceError::NotFound)?;
    // Whoever sees the space learns 403, even when its parent is hidden from
    // them. Every refusal of an existing space is recorded, hidden or not.
    let refusal = match (access.can_see(id), space.parent_id) {
        (Err(why), _) => Some(why),
        (Ok(()), None) => Some(Denied::Forbidden),
        (Ok(()), Some(parent)) => access.can_administer(parent).err().map(|_| Denied::Forbidden),
    };
    if let Some(why) = refusal {
        return Err(SpaceError::Denied(by.refused(db, "space", "space.delete", Some(id), why).await?));
    }
    // Root was refused above: it has no parent.
    let parent = space.parent_id.ok_or(SpaceError::Denied(Denied::Forbidden))?;
    let mut tx = db.begin().await?;
    if !super::delete(&mut *tx, id).await? {
        return Err(SpaceError::NotFound);
    }
    audit::record(&mut *tx, event(by, AuditAction::SpaceDeleted, Target::space(&space), parent)).await?;
    tx.commit().await?;
    Ok(space)
}

/// Who to give a role, and which.
#[derive(Debug, Default)]
pub struct MemberInput {
    pub read_problems: Vec<FieldError>,
    pub email: Option<String>,
    pub role: Option<String>,
}

/// A role given.
#[derive(Debug)]
pub struct Membership {
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
}

const LAST_ADMIN: &str = "The account must keep an administrator of root.";

/// Gives an existing user a role on a space (replacing the one they held there).
pub async fn set_member(
    db: &PgPool,
    by: &Principal,
    space: SpaceId,
    input: MemberInput,
) -> Result<Membership, SpaceError> {
    let access = administer(db, by, space, "member.set").await?;
    let mut problems = Problems(input.read_problems);
    let email = problems.required("email", input.email).and_then(|raw| problems.check(Email::parse(&raw)));
    let role = problems.required("role", input.role).and_then(|raw| problems.check(Role::parse(&raw)));
    let user = match &email {
        Some(email) => users::find_for_login(db, email).await?,
        None => None,
    };
    // What a space admin learns from adding a member by email: whether it is
    // an enabled user's, which adding needs, and nothing more. A disabled
    // account answers as no account does (with the same words, which do not
    // repeat the email), so that only account admins, who manage users, can
    // tell the two apart or give a disabled user a role.
    let user = user.filter(|user| !user.disabled || access.is_account_admin());
    if email.is_some() && user.is_none() {
        problems.push(
            "email",
            "unknown_user",
            "No enabled user has this email: an account admin creates users (and enables them) first.",
        );
    }
    let (Some(email), Some(user), Some(role), true) = (email, user, role, problems.is_empty()) else {
        return Err(SpaceError::Invalid(problems.0));
    };
    let mut tx = db.begin().await?;
    let admins = AccountAdmins::lock(&mut tx).await?;
    super::set_member(&mut *tx, space, user.id, role).await?;
    if !admins.one_remains(&mut tx).await? {
        return Err(SpaceError::Conflict(vec![FieldError::new("role", "last_admin", LAST_ADMIN)]));
    }
    let target = Target { kind: "user", id: user.id.to_string(), label: email.to_string() };
    audit::record(&mut *tx, event(by, AuditAction::MemberSet, target, space).details(json!({"role": role.as_str()})))
        .await?;
    tx.commit().await?;
    Ok(Membership { user_id: user.id, email, role })
}

/// Takes a user's role on a space away; the account keeps an admin of root.
pub async fn remove_member(db: &PgPool, by: &Principal, space: SpaceId, user: UserId) -> Result<(), SpaceError> {
    administer(db, by, space, "member.remove").await?;
    let mut tx = db.begin().await?;
    let admins = AccountAdmins::lock(&mut tx).await?;
    if !super::remove_member(&mut *tx, space, user).await? {
        return Err(SpaceError::NotFound);
    }
    if !admins.one_remains(&mut tx).await? {
        return Err(SpaceError::Conflict(vec![FieldError::new("user_id", "last_admin", LAST_ADMIN)]));
    }
    let target = Target { kind: "user", id: user.to_string(), label: user.to_string() };
    audit::record(&mut *tx, event(by, AuditAction::MemberRemoved, target, space)).await?;
    tx.commit().await?;
    Ok(())
}
