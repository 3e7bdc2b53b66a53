//! What can be done with API tokens, for every door: the tokens page, the
//! REST API (`/api/v1/tokens`) and the CLI (`bitgate token create`). A user
//! issues and revokes their own tokens; the operator issues anyone's.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::{create, expires_at, parse_name, revoke as revoke_row, revoke_all, ApiToken};
use crate::{
    audit::{self, AuditAction, Event, Target},
    principal::Principal,
    users::{FieldError, UserId},
    validation::Problems,
};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Every problem of the input, each on its field.
    #[error("the input has {} problems", .0.len())]
    Invalid(Vec<FieldError>),
    /// No such live token of the caller's (or, for an issue, not theirs to issue).
    #[error("no such token")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a new token is asked to be.
#[derive(Default)]
pub struct NewToken {
    /// What the door's reader found wrong (an unknown field, a time that
    /// does not parse), reported with the rest.
    pub read_problems: Vec<FieldError>,
    pub name: String,
    /// `None`: it never expires.
    pub expires_at: Option<OffsetDateTime>,
}

/// The user a token is issued for.
pub struct Owner<'a> {
    pub id: UserId,
    pub email: &'a str,
}

fn target(token: &ApiToken, label: String) -> Target {
    Target { kind: "api_token", id: token.id.to_string(), label }
}

/// Issues a token for `owner`, audited; the secret is returned here and
/// never again. Users issue their own tokens only.
pub async fn issue(
    db: &PgPool,
    by: &Principal,
    owner: Owner<'_>,
    new: NewToken,
) -> Result<(ApiToken, String), TokenError> {
    if by.user_id().is_some_and(|user| user != owner.id) {
        return Err(TokenError::NotFound);
    }
    let mut problems = Problems(new.read_problems);
    let name = problems.check(parse_name(&new.name));
    if new.expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
        problems.push("expires_at", "in_the_past", "The expiry must be in the future.");
    }
    if let Some(limit) = maker_expiry(db, by).await? {
        if new.expires_at.is_none_or(|at| at > limit) {
            let limit = limit.to_offset(UtcOffset::UTC).format(&Rfc3339).unwrap_or_default();
            let message = format!(
                "A token made with an API token cannot outlive it: give an expiry no later than {limit}, \
                 when the token you are using expires."
            );
            problems.push("expires_at", "outlives_token", message);
        }
    }
    let Some(name) = name.filter(|_| problems.is_empty()) else { return Err(TokenError::Invalid(problems.0)) };
    let mut tx = db.begin().await?;
    let (token, secret) = create(&mut *tx, owner.id, &name, new.expires_at).await?;
    // The operator issues for others: the log says for whom.
    let label = match by {
        Principal::Operator => format!("{name} ({})", owner.email),
        Principal::User { .. } => name,
    };
    let event =
        Event::new(by.actor(), AuditAction::TokenCreated).target(target(&token, label)).from_address(by.address());
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok((token, secret))
}

/// Revokes one of the caller's live tokens, audited; it stops working at once.
pub async fn revoke(db: &PgPool, by: &Principal, id: Uuid) -> Result<ApiToken, TokenError> {
    // Someone else's token is simply not there; the operator revokes none here.
    let user = by.user_id().ok_or(TokenError::NotFound)?;
    let mut tx = db.begin().await?;
    let token = revoke_row(&mut *tx, user, id).await?.ok_or(TokenError::NotFound)?;
    audit::record(&mut *tx, revoked(by, &token)).await?;
    tx.commit().await?;
    Ok(token)
}

/// When the API token `by` acts through expires: a token made with a token
/// expires no later than it, so that a short-lived token cannot mint a
/// lasting one. `None` for a browser session, the operator, or a token that
/// never expires.
async fn maker_expiry(db: &PgPool, by: &Principal) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    match by {
        Principal::User { token_id: Some(maker), .. } => Ok(expires_at(db, *maker).await?.flatten()),
        Principal::User { token_id: None, .. } | Principal::Operator => Ok(None),
    }
}

fn revoked(by: &Principal, token: &ApiToken) -> Event {
    Event::new(by.actor(), AuditAction::TokenRevoked)
        .target(target(token, token.name.clone()))
        .from_address(by.address())
}

/// Revokes every live token of a user being disabled, each audited as
/// revoked by `by`, in the caller's transaction: a revoked token stays dead
/// when its user is enabled again.
pub(crate) async fn revoke_all_of_disabled(
    tx: &mut PgConnection,
    by: &Principal,
    user: UserId,
) -> Result<(), sqlx::Error> {
    for token in revoke_all(&mut *tx, user).await? {
        audit::record(&mut *tx, revoked(by, &token).details(json!({"reason": "user_disabled"}))).await?;
    }
    Ok(())
}
