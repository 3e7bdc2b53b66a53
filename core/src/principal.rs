//! Who asks for an operation. Every use case in core takes one, whichever
//! door the request came through: a browser session and an API token are a
//! user (the token named, for the audit log); the CLI is the operator.

use std::{net::IpAddr, sync::Arc};

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{
    access::{Access, Denied},
    audit::{self, Actor, AuditAction, Event, Target},
    spaces::SpaceId,
    users::{User, UserId},
};

#[derive(Debug, Clone)]
pub enum Principal {
    /// A logged-in user: through their browser session (`token_id` none)
    /// or one of their API tokens.
    User { user: Arc<User>, token_id: Option<Uuid>, address: Option<IpAddr> },
    /// The installation's operator, through the CLI: may do anything.
    Operator,
}

impl Principal {
    /// The actor of the audit events this principal causes.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::User { user, token_id: Some(token), .. } => {
                Actor::Token { id: *token, user_id: user.id, email: user.email.clone() }
            }
            Principal::User { user, token_id: None, .. } => Actor::user(user),
            Principal::Operator => Actor::Cli,
        }
    }

    /// The client address the request came from, when over HTTP.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Principal::User { address, .. } => *address,
            Principal::Operator => None,
        }
    }

    /// The user, recorded as the creator of what they create.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Principal::User { user, .. } => Some(user.id),
            Principal::Operator => None,
        }
    }

    /// How the creator of something is shown: the user's email, or `cli`.
    pub fn label(&self) -> String {
        match self {
            Principal::User { user, .. } => user.email.clone(),
            Principal::Operator => "cli".to_owned(),
        }
    }

    /// What the permission table lets this principal do.
    pub async fn access(&self, db: impl PgExecutor<'_>) -> Result<Access, sqlx::Error> {
        match self {
            Principal::User { user, .. } => Access::load(db, user.id).await,
            Principal::Operator => Ok(Access::operator()),
        }
    }

    /// Records a refused attempt at `action` on a `kind` of thing in
    /// `space` (None: account-wide), and gives the refusal back to answer:
    /// who tried what, where, is in the audit log before any answer leaves.
    pub async fn refused(
        &self,
        db: impl PgExecutor<'_>,
        kind: &'static str,
        action: &str,
        space: Option<SpaceId>,
        why: Denied,
    ) -> Result<Denied, sqlx::Error> {
        let event = Event::new(self.actor(), AuditAction::AuthorizationDenied)
            .target(Target { kind, id: String::new(), label: action.to_owned() })
            .from_address(self.address())
            .in_space(space);
        audit::record(db, event).await?;
        Ok(why)
    }
}
