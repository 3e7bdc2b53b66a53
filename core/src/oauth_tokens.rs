//! A Cloud integration's tokens: stored sealed, handed out while fresh,
//! refreshed before they expire and when Bitbucket answers 401.
//!
//! Bitbucket rotates the refresh token on every use, so a refresh happens
//! inside the transaction that holds the credentials' row lock, and the new
//! pair is written before that transaction commits: two processes never
//! spend one refresh token, and the second one finds the work done (it
//! compares what it saw with what is stored now). An unused refresh token
//! expires after 3 months, so idle integrations are refreshed well before.
//! When the chain breaks for good (revoked consumer, `invalid_grant`, a
//! crash between Bitbucket's rotation and our commit), the integration
//! turns `error` with a reason that says to reconnect, and that is audited.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    audit::{self, Actor, AuditAction, Event, Target},
    bitbucket::cloud::{self, Consumer, Endpoints, Mode, TokenError, Tokens},
    integrations::{binding, IntegrationId, SecretError, CLOUD_TABLE},
    secret::Secret,
    secrets::{Keyring, Sealed},
    Services,
};

/// Tokens that expire within this are refreshed by the periodic job.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(600);
/// A stored access token with less than this left is refreshed before use.
pub const USE_MARGIN: Duration = Duration::from_secs(60);
/// Refresh tokens unused for this long are spent anyway (they die after 3 months).
pub const IDLE_REFRESH: Duration = Duration::from_secs(30 * 24 * 3600);

fn open(
    keyring: &Keyring,
    key_id: String,
    ciphertext: Vec<u8>,
    column: &'static str,
    id: Uuid,
) -> Result<Secret<String>, SecretError> {
    Ok(keyring.open_text(&Sealed { key_id, ciphertext }, binding(CLOUD_TABLE, column, id))?)
}

/// Stores the tokens of a new authorization, and who gave it: the
/// Bitbucket account, and the Bitgate user who clicked Connect (if any).
pub async fn store(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: IntegrationId,
    tokens: &Tokens,
    authorized_by: &str,
    authorized_by_label: Option<&str>,
) -> Result<(), sqlx::Error> {
    let access = keyring.seal(tokens.access.as_bytes(), binding(CLOUD_TABLE, "access_token", id));
    let refresh =
        tokens.refresh.as_ref().map(|r| keyring.seal(r.as_bytes(), binding(CLOUD_TABLE, "refresh_token", id)));
    sqlx::query!(
        r#"UPDATE cloud_credentials SET
             access_token_key = $2, access_token = $3, refresh_token_key = $4, refresh_token = $5,
             token_expires_at = $6, token_obtained_at = now(), scopes = $7,
             authorized_by = $8, authorized_by_label = $9, authorized_at = now()
           WHERE integration_id = $1"#,
        id,
        access.key_id,
        access.ciphertext,
        refresh.as_ref().map(|r| r.key_id.clone()),
        refresh.as_ref().map(|r| r.ciphertext.clone()),
        tokens.expires_at,
        tokens.scopes.as_deref().unwrap_or_default(),
        authorized_by,
        authorized_by_label,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records who the stored tokens act as, when a test found it changed:
/// client-credentials integrations connected before May 2026 named the
/// consumer's owner, and act as its app user since.
pub async fn set_account(db: impl PgExecutor<'_>, id: IntegrationId, authorized_by: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE cloud_credentials SET authorized_by = $2
           WHERE integration_id = $1 AND access_token IS NOT NULL AND authorized_by IS DISTINCT FROM $2"#,
        id,
        authorized_by
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets the tokens (the consumer or workspace changed, or the chain broke).
pub async fn forget(db: impl PgExecutor<'_>, id: IntegrationId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE cloud_credentials SET
             access_token_key = NULL, access_token = NULL, refresh_token_key = NULL, refresh_token = NULL,
             token_expires_at = NULL, token_obtained_at = NULL, scopes = '{}',
             authorized_by = NULL, authorized_by_label = NULL, authorized_at = NULL
           WHERE integration_id = $1"#,
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A Cloud integration's consumer, workspace and mode.
pub async fn consumer(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: IntegrationId,
) -> Result<Option<(Consumer, String, Mode)>, SecretError> {
    let row = sqlx::query!(
        "SELECT client_id, client_secret_key, client_secret, workspace, mode FROM cloud_credentials WHERE integration_id = $1",
        id
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let secret = open(keyring, row.client_secret_key, row.client_secret, "client_secret", id)?;
    let mode = Mode::parse(&row.mode).unwrap_or(Mode::AuthorizationCode);
    Ok(Some((Consumer { key: row.client_id, secret }, row.workspace, mode)))
}

/// Why no access token could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum TokenProblem {
    /// There is none (not connected yet, or the chain broke): an admin must connect it.
    #[error("{0}")]
    NotConnected(String),
    /// Bitbucket could not be asked now; nothing changed.
    #[error("{0}")]
    Bitbucket(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

const NOT_CONNECTED: &str =
    "The integration is not connected to Bitbucket: an admin must connect it (Connect or Reconnect on its page).";

/// What the caller saw before asking for a refresh: if the stored tokens
/// changed since, another request or process refreshed them already.
#[derive(Debug, Clone)]
pub enum Seen {
    /// The expiry it found due (the periodic job, a token about to expire).
    Expiry(Option<OffsetDateTime>),
    /// The access token Bitbucket just refused with 401.
    Refused(Secret<String>),
}

/// An access token with at least [`USE_MARGIN`] left, refreshed if needed.
pub async fn access_token(services: &Services, id: IntegrationId) -> Result<Secret<String>, TokenProblem> {
    let row = sqlx::query!(
        "SELECT access_token_key, access_token, token_expires_at FROM cloud_credentials WHERE integration_id = $1",
        id
    )
    .fetch_optional(&services.pool)
    .await?;
    let Some(row) = row else { return Err(TokenProblem::NotConnected(NOT_CONNECTED.into())) };
    let (Some(key_id), Some(ciphertext)) = (row.access_token_key, row.access_token) else {
        return Err(TokenProblem::NotConnected(NOT_CONNECTED.into()));
    };
    let fresh = row.token_expires_at.is_some_and(|at| at > OffsetDateTime::now_utc() + USE_MARGIN);
    if fresh {
        return Ok(open(&services.keyring, key_id, ciphertext, "access_token", id)?);
    }
    refresh(services, id, Seen::Expiry(row.token_expires_at)).await
}

/// Replaces the tokens under the credentials' row lock, unless what the
/// caller saw is already out of date. Returns the access token to use.
pub async fn refresh(services: &Services, id: IntegrationId, seen: Seen) -> Result<Secret<String>, TokenProblem> {
    let keyring = &services.keyring;
    let mut tx = services.pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT c.client_id, c.client_secret_key, c.client_secret, c.mode, c.access_token_key, c.access_token,
                  c.refresh_token_key, c.refresh_token, c.token_expires_at, i.name, i.space_id
           FROM cloud_credentials c JOIN integrations i ON i.id = c.integration_id
           WHERE c.integration_id = $1
           FOR UPDATE OF c"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Err(TokenProblem::NotConnected(NOT_CONNECTED.into())) };
    let (Some(access_key), Some(access_sealed)) = (row.access_token_key, row.access_token) else {
        return Err(TokenProblem::NotConnected(NOT_CONNECTED.into()));
    };
    let current = open(keyring, access_key, access_sealed, "access_token", id)?;
    let already_done = match &seen {
        Seen::Expiry(expiry) => row.token_expires_at != *expiry,
        Seen::Refused(refused) => *refused != current,
    };
    if already_done {
        tx.commit().await?;
        return Ok(current);
    }

    let consumer = Consumer {
        key: row.client_id,
        secret: open(keyring, row.client_secret_key, row.client_secret, "client_secret", id)?,
    };
    let endpoints = Endpoints::from_config(&services.config);
    let http = cloud::http_client(&services.config).map_err(|e| TokenProblem::Bitbucket(e.to_string()))?;
    let answer = match Mode::parse(&row.mode) {
        Some(Mode::ClientCredentials) => {
            cloud::client_credentials(&http, &services.config, &endpoints, &consumer).await
        }
        _ => {
            let (Some(key_id), Some(sealed)) = (row.refresh_token_key, row.refresh_token) else {
                return Err(TokenProblem::NotConnected(NOT_CONNECTED.into()));
            };
            let refresh_token = open(keyring, key_id, sealed, "refresh_token", id)?;
            cloud::refresh(&http, &services.config, &endpoints, &consumer, &refresh_token).await
        }
    };
    match answer {
        Ok(tokens) => {
            rotate(&mut tx, keyring, id, &tokens).await?;
            tx.commit().await?;
            tracing::info!(integration = %id, "Bitbucket Cloud tokens refreshed");
            Ok(tokens.access)
        }
        Err(TokenError::Unreachable(why) | TokenError::Refused(why)) => {
            // Nothing was spent that we know of: the tokens stay, a later run retries.
            tx.rollback().await?;
            Err(TokenProblem::Bitbucket(why))
        }
        Err(broken) => {
            let reason = format!(
                "Bitbucket refused to renew the authorization: {} Reconnect the integration.",
                broken.message(&endpoints)
            );
            forget(&mut *tx, id).await?;
            sqlx::query!(
                "UPDATE integrations SET health_state = 'error', health_message = $2, health_checked_at = now() WHERE id = $1",
                id,
                reason
            )
            .execute(&mut *tx)
            .await?;
            let event = Event::new(Actor::System, AuditAction::IntegrationAuthorizationLost)
                .target(Target { kind: "integration", id: id.to_string(), label: row.name })
                .details(serde_json::json!({"reason": format!("{broken:?}")}))
                .in_space(row.space_id);
            audit::record(&mut *tx, event).await?;
            tx.commit().await?;
            tracing::warn!(integration = %id, "Bitbucket Cloud authorization lost: {reason}");
            Err(TokenProblem::NotConnected(reason))
        }
    }
}

/// Writes a refreshed pair (the authorization stays whose it was).
async fn rotate(
    tx: &mut PgConnection,
    keyring: &Keyring,
    id: IntegrationId,
    tokens: &Tokens,
) -> Result<(), sqlx::Error> {
    let access = keyring.seal(tokens.access.as_bytes(), binding(CLOUD_TABLE, "access_token", id));
    let refresh =
        tokens.refresh.as_ref().map(|r| keyring.seal(r.as_bytes(), binding(CLOUD_TABLE, "refresh_token", id)));
    sqlx::query!(
        r#"UPDATE cloud_credentials SET
             access_token_key = $2, access_token = $3,
             refresh_token_key = coalesce($4, refresh_token_key), refresh_token = coalesce($5, refresh_token),
             token_expires_at = $6, token_obtained_at = now(), scopes = coalesce($7, scopes)
           WHERE integration_id = $1"#,
        id,
        access.key_id,
        access.ciphertext,
        refresh.as_ref().map(|r| r.key_id.clone()),
        refresh.as_ref().map(|r| r.ciphertext.clone()),
        tokens.expires_at,
        // An answer that names no scopes keeps the ones granted before.
        tokens.scopes.as_deref(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The periodic job: refreshes every token that expires soon, and every
/// refresh token left unused for [`IDLE_REFRESH`]. Returns how many were
/// refreshed; one integration's failure does not stop the others.
pub async fn refresh_due(services: &Services) -> Result<u64, sqlx::Error> {
    let due = sqlx::query!(
        r#"SELECT integration_id, token_expires_at FROM cloud_credentials
           WHERE access_token IS NOT NULL
             AND (token_expires_at <= now() + make_interval(secs => $1)
                  OR (refresh_token IS NOT NULL AND token_obtained_at <= now() - make_interval(secs => $2)))"#,
        EXPIRY_MARGIN.as_secs_f64(),
        IDLE_REFRESH.as_secs_f64()
    )
    .fetch_all(&services.pool)
    .await?;
    let mut refreshed = 0;
    for row in due {
        match refresh(services, row.integration_id, Seen::Expiry(row.token_expires_at)).await {
            Ok(_) => refreshed += 1,
            Err(TokenProblem::Database(error)) => return Err(error),
            // The problem is said in Bitgate's words (and a key's id at most): never a token.
            Err(problem) => tracing::warn!(integration = %row.integration_id, "token refresh failed: {problem}"),
        }
    }
    Ok(refreshed)
}
