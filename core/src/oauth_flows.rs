//! Authorization flows waiting for Bitbucket's redirect. Each is a row, so
//! that the callback may land on any Bitgate process: found by the SHA-256
//! of its `state` (the state itself is never stored), used once, valid for
//! [`LIFETIME`], bound to its integration, to the user who started it and,
//! when a browser started it, to that browser's session. The PKCE verifier
//! is sealed like every other secret.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    integrations::{binding, IntegrationId, SecretError},
    secret::Secret,
    secrets::{Keyring, Sealed},
    tokens::{random_token, sha256},
};

pub const LIFETIME: Duration = Duration::from_secs(600);
const TABLE: &str = "oauth_flows";

fn state_hash(state: &str) -> String {
    hex::encode(sha256(state))
}

/// What ties a callback to the browser that started the flow: a digest of
/// a secret of that session kept for this alone (not its CSRF token, which
/// every page shows), never the secret itself.
pub fn session_binding(session_secret: &str) -> String {
    hex::encode(sha256(session_secret))
}

/// A new flow's `state`: random, stored only as its digest.
pub fn new_state() -> String {
    random_token()
}

/// Records the flow of an OAuth 1.0a link, whose callback names `state`
/// and brings back `request_token` approved (it needs no PKCE verifier).
pub async fn start_oauth1(
    db: impl PgExecutor<'_>,
    state: &str,
    request_token: &str,
    integration_id: IntegrationId,
    user_id: Uuid,
    session: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO oauth_flows (state_hash, integration_id, user_id, session_binding, request_token, expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))"#,
        state_hash(state),
        integration_id,
        user_id,
        session,
        request_token,
        LIFETIME.as_secs_f64()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Starts a flow and returns the URL to send the browser to. `authorize`
/// makes the provider's authorize URL for a `state`, with the PKCE
/// verifier to keep. `session` is the starting browser's
/// [`session_binding`]; `None` when the API started it (then any browser
/// session of the same user may finish it).
pub async fn start(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    authorize: impl FnOnce(&str) -> (String, String),
    integration_id: IntegrationId,
    user_id: Uuid,
    session: Option<String>,
) -> Result<String, sqlx::Error> {
    let state = random_token();
    let (url, verifier) = authorize(&state);
    let id = Uuid::new_v4();
    let sealed = keyring.seal(verifier.as_bytes(), binding(TABLE, "pkce_verifier", id));
    sqlx::query!(
        r#"INSERT INTO oauth_flows (id, state_hash, integration_id, user_id, session_binding, pkce_verifier_key,
                                   pkce_verifier, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))"#,
        id,
        state_hash(&state),
        integration_id,
        user_id,
        session,
        sealed.key_id,
        sealed.ciphertext,
        LIFETIME.as_secs_f64()
    )
    .execute(db)
    .await?;
    Ok(url)
}

/// A flow taken by its callback: OAuth 2.0's keeps a PKCE verifier, OAuth
/// 1.0a's the request token it waits for.
#[derive(Debug)]
pub struct Flow {
    pub integration_id: IntegrationId,
    pub pkce_verifier: Option<Secret<String>>,
    pub request_token: Option<String>,
}

/// Why a callback's `state` was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum FlowRefused {
    #[error("missing")]
    Missing,
    /// Never issued, or used already.
    #[error("unknown")]
    Unknown,
    #[error("expired")]
    Expired,
    /// Started by another user, or in another browser.
    #[error("another browser")]
    OtherBrowser,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Takes the flow a callback names, in the caller's transaction: checked
/// against the user and session the callback arrived with, then deleted
/// (used once). A callback from another browser does not use it up.
pub async fn take(
    tx: &mut PgConnection,
    keyring: &Keyring,
    state: Option<&str>,
    user_id: Uuid,
    session: &str,
) -> Result<Flow, FlowRefused> {
    let state = state.map(str::trim).filter(|s| !s.is_empty()).ok_or(FlowRefused::Missing)?;
    let row = sqlx::query!(
        r#"SELECT id, integration_id, user_id, session_binding, pkce_verifier_key, pkce_verifier, request_token,
                  expires_at
           FROM oauth_flows WHERE state_hash = $1 FOR UPDATE"#,
        state_hash(state)
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Err(FlowRefused::Unknown) };
    if row.expires_at <= OffsetDateTime::now_utc() {
        sqlx::query!("DELETE FROM oauth_flows WHERE id = $1", row.id).execute(&mut *tx).await?;
        return Err(FlowRefused::Expired);
    }
    let same_session = row.session_binding.as_deref().is_none_or(|bound| bound == session_binding(session));
    if row.user_id != user_id || !same_session {
        return Err(FlowRefused::OtherBrowser);
    }
    sqlx::query!("DELETE FROM oauth_flows WHERE id = $1", row.id).execute(&mut *tx).await?;
    let pkce_verifier = match (row.pkce_verifier_key, row.pkce_verifier) {
        (Some(key_id), Some(ciphertext)) => Some(
            keyring
                .open_text(&Sealed { key_id, ciphertext }, binding(TABLE, "pkce_verifier", row.id))
                .map_err(SecretError::from)?,
        ),
        _ => None,
    };
    Ok(Flow { integration_id: row.integration_id, pkce_verifier, request_token: row.request_token })
}

/// Drops flows nobody finished (part of the session clean-up job).
pub async fn delete_expired(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!("DELETE FROM oauth_flows WHERE expires_at < now()").execute(db).await?.rows_affected())
}
