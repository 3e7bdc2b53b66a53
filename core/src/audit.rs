//! The audit log: who did what to what, when, from where; never a secret.

use std::net::IpAddr;

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{text_enum::text_enum, users::User};

text_enum! {
    /// What an event records (`audit_events.action`). Events read back keep
    /// their text: another Bitgate version may have written other actions.
    pub enum AuditAction {
        Login = "auth.login",
        LoginFailed = "auth.login_failed",
        Logout = "auth.logout",
        /// A refused attempt; the attempted action is the target's label.
        AuthorizationDenied = "authorization.denied",
        UserCreated = "user.created",
        UserUpdated = "user.updated",
        UserDisabled = "user.disabled",
        UserEnabled = "user.enabled",
        TokenCreated = "token.created",
        TokenRevoked = "token.revoked",
        SpaceCreated = "space.created",
        SpaceUpdated = "space.updated",
        SpaceDeleted = "space.deleted",
        MemberSet = "member.set",
        MemberRemoved = "member.removed",
        IntegrationCreated = "integration.created",
        IntegrationUpdated = "integration.updated",
        IntegrationDeleted = "integration.deleted",
        IntegrationTested = "integration.tested",
        IntegrationAuthorized = "integration.authorized",
        IntegrationAuthorizationLost = "integration.authorization_lost",
        WebhookSecretRevealed = "integration.webhook_secret_revealed",
        WebhookSecretRotated = "integration.webhook_secret_rotated",
        WebhookSecretRetired = "integration.webhook_secret_retired",
        HooksRepaired = "integration.hooks_repaired",
        IntegrationsExported = "integrations.exported",
        IntegrationsImported = "integrations.imported",
        StackCreated = "stack.created",
        StackUpdated = "stack.updated",
        StackAttached = "stack.attached",
        StackDeleted = "stack.deleted",
        SecretsRekeyed = "secrets.rekeyed",
    }
}

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
    /// Bitgate itself, in a background job (a token refresh, say).
    System,
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
            Actor::System => ("system", None, "system"),
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
    pub action: AuditAction,
    pub target: Option<Target>,
    pub space_id: Option<Uuid>,
    pub client_address: Option<IpAddr>,
    /// Extra facts; callers put no secret in here.
    pub details: Value,
}

impl Event {
    pub fn new(actor: Actor, action: AuditAction) -> Self {
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

    /// Scopes the event to a space, so that the space's admins see it
    /// (`None`: account-wide, such as a default integration's events).
    pub fn in_space(mut self, space: impl Into<Option<Uuid>>) -> Self {
        self.space_id = space.into();
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
           -- A space that does not exist (a refused request may name any id) is left out.
           VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT id FROM spaces WHERE id = $8), $9::text::inet, $10)"#,
        actor_kind,
        actor_id,
        actor_label,
        event.action.as_str(),
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

/// Whose events a reader may see.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Account admins: every event.
    Everything,
    /// Space admins: the events of these spaces (those they administer).
    Spaces(Vec<Uuid>),
}

/// What to look for; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A user's email, a token's user's email, `cli`, or an actor id.
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<time::OffsetDateTime>,
    pub space_id: Option<Uuid>,
}

/// A recorded event.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub id: Uuid,
    pub occurred_at: time::OffsetDateTime,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub actor_label: String,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub target_label: Option<String>,
    pub space_id: Option<Uuid>,
    pub client_address: Option<String>,
    pub details: Value,
}

/// Events newest first, after `after` (the (time, id) of the last one seen).
pub async fn search(
    db: impl PgExecutor<'_>,
    scope: &Scope,
    filter: &Filter,
    after: Option<(time::OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Recorded>, sqlx::Error> {
    let (everything, spaces) = match scope {
        Scope::Everything => (true, Vec::new()),
        Scope::Spaces(spaces) => (false, spaces.clone()),
    };
    let (after_at, after_id) = after.unzip();
    let text = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    sqlx::query_as!(
        Recorded,
        r#"SELECT id, occurred_at, actor_kind, actor_id, actor_label, action, target_kind, target_id, target_label,
                  space_id, host(client_address) AS client_address, details
           FROM audit_events
           WHERE ($1 OR space_id = ANY($2))
             AND ($3::text IS NULL OR actor_label = $3 OR actor_id::text = $3)
             AND ($4::text IS NULL OR action = $4)
             AND ($5::timestamptz IS NULL OR occurred_at >= $5)
             AND ($6::uuid IS NULL OR space_id = $6)
             AND ($7::timestamptz IS NULL OR (occurred_at, id) < ($7, $8))
           ORDER BY occurred_at DESC, id DESC LIMIT $9"#,
        everything,
        &spaces,
        text(&filter.actor),
        text(&filter.action),
        filter.since,
        filter.space_id,
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// The actions recorded so far, for the audit page's filter.
pub async fn actions(db: impl PgExecutor<'_>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT DISTINCT action FROM audit_events ORDER BY action").fetch_all(db).await
}
