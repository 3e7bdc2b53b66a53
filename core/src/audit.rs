//! The audit log: who did what to what, when, from where; never a secret.

use std::net::IpAddr;

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::users::User;

/// Who acted.
#[derive(Debug, Clone)]
pub enum Actor {
    User {
        id: Uuid,
        email: String,
    },
    /// A user acting through one of their API tokens (`id` is the token's).
    Token {
        id: Uuid,
        user_id: Uuid,
        email: String,
    },
    /// The CLI, acting with operator authority.
    Cli,
    /// Someone not logged in (a failed login, say).
    Anonymous,
}

impl Actor {
    pub fn user(user: &User) -> Self {
        Actor::User { id: user.id, email: user.email.clone() }
    }

    fn parts(&self) -> (&'static str, Option<Uuid>, &str) {
        match self {
            Actor::User { id, email } => ("user", Some(*id), email.as_str()),
            Actor::Token { id, email, .. } => ("token", Some(*id), email.as_str()),
            Actor::Cli => ("cli", None, "cli"),
            Actor::Anonymous => ("anonymous", None, "anonymous"),
        }
    }
}

/// What was acted on.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static str,
    pub id: String,
    pub label: String,
}

impl Target {
    pub fn user(user: &User) -> Self {
        Self { kind: "user", id: user.id.to_string(), label: user.email.clone() }
    }

    pub fn space(space: &crate::spaces::SpaceRecord) -> Self {
        Self { kind: "space", id: space.id.to_string(), label: space.name.clone() }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    pub action: &'static str,
    pub target: Option<Target>,
    pub space_id: Option<Uuid>,
    pub client_address: Option<IpAddr>,
    /// Extra facts; callers put no secret in here.
    pub details: Value,
}

impl Event {
    pub fn new(actor: Actor, action: &'static str) -> Self {
        Self {
            actor,
            action,
            target: None,
            space_id: None,
            client_address: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    pub fn from_address(mut self, address: Option<IpAddr>) -> Self {
        self.client_address = address;
        self
    }

    /// Scopes the event to a space, so that the space's admins see it.
    pub fn in_space(mut self, space: Uuid) -> Self {
        self.space_id = Some(space);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Records an event, in the caller's transaction when there is one, so that
/// the event and the change it describes commit together.
pub async fn record(db: impl PgExecutor<'_>, event: Event) -> Result<(), sqlx::Error> {
    let (actor_kind, actor_id, actor_label) = event.actor.parts();
    let (target_kind, target_id, target_label) = match &event.target {
        Some(t) => (Some(t.kind), Some(t.id.as_str()), Some(t.label.as_str())),
        None => (None, None, None),
    };
    sqlx::query!(
        r#"INSERT INTO audit_events (actor_kind, actor_id, actor_label, action, target_kind, target_id, target_label,
                                    space_id, client_address, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::inet, $10)"#,
        actor_kind,
        actor_id,
        actor_label,
        event.action,
        target_kind,
        target_id,
        target_label,
        event.space_id,
        event.client_address.map(|a| a.to_string()) as Option<String>,
        event.details,
    )
    .execute(db)
    .await?;
    Ok(())
}
