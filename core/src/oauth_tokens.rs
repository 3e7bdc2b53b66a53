//! An integration's OAuth 2.0 tokens, Cloud's (an OAuth consumer) and Data
//! Center's (an OAuth 2.0 application link) alike: stored sealed, handed
//! out while fresh, refreshed before they expire and when Bitbucket answers
//! 401. Only where they are kept and which endpoint renews them differ.
//!
//! Bitbucket Cloud rotates the refresh token on every use (Data Center may
//! too), so a refresh happens inside the transaction that holds the
//! credentials' row lock, and the new pair is written before that
//! transaction commits: two processes never spend one refresh token, and
//! the second one finds the work done (it compares what it saw with what is
//! stored now). An unused refresh token expires (Cloud: 3 months, Data
//! Center: 90 days by default), so idle integrations are refreshed well
//! before. When the chain breaks for good (revoked consumer or link,
//! `invalid_grant`, a crash between Bitbucket's rotation and our commit),
//! the integration turns `error` with a reason that says to reconnect, and
//! that is audited.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use crate::{
    audit::{self, Actor, AuditAction, Event, Target},
    bitbucket::{
        cloud::{self, Consumer, Endpoints, Mode, TokenError, Tokens},
        datacenter::{self, oauth2},
    },
    integrations::{binding, IntegrationId, Provider, SecretError, CLOUD_TABLE, DATACENTER_TABLE},
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

/// The table whose row keeps the integration's tokens: the secrets are bound to it.
fn table(provider: Provider) -> &'static str {
    match provider {
        Provider::Cloud => CLOUD_TABLE,
        Provider::DataCenter => DATACENTER_TABLE,
    }
}

fn open(
    keyring: &Keyring,
    provider: Provider,
    sealed: (String, Vec<u8>),
    column: &'static str,
    id: Uuid,
) -> Result<Secret<String>, SecretError> {
    let (key_id, ciphertext) = sealed;
    Ok(keyring.open_text(&Sealed { key_id, ciphertext }, binding(table(provider), column, id))?)
}

fn seal(keyring: &Keyring, provider: Provider, secret: &Secret<String>, column: &'static str, id: Uuid) -> Sealed {
    keyring.seal(secret.as_bytes(), binding(table(provider), column, id))
}

/// Stores the tokens of a new authorization, and who gave it: the
/// Bitbucket account, and the Bitgate user who clicked Connect (if any).
pub async fn store(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    provider: Provider,
    id: IntegrationId,
    tokens: &Tokens,
    authorized_by: &str,
    authorized_by_label: Option<&str>,
) -> Result<(), sqlx::Error> {
    let access = seal(keyring, provider, &tokens.access, "access_token", id);
    let refresh = tokens.refresh.as_ref().map(|r| seal(keyring, provider, r, "refresh_token", id));
    let (refresh_key, refresh_sealed) = refresh.map(|r| (r.key_id, r.ciphertext)).unzip();
    let scopes = tokens.scopes.as_deref().unwrap_or_default();
    let query = match provider {
        Provider::Cloud => sqlx::query!(
            r#"UPDATE cloud_credentials SET
                 access_token_key = $2, access_token = $3, refresh_token_key = $4, refresh_token = $5,
                 token_expires_at = $6, token_obtained_at = now(), scopes = $7,
                 authorized_by = $8, authorized_by_label = $9, authorized_at = now()
               WHERE integration_id = $1"#,
            id,
            access.key_id,
            access.ciphertext,
            refresh_key,
            refresh_sealed,
            tokens.expires_at,
            scopes,
            authorized_by,
            authorized_by_label,
        ),
        // Data Center's account is the integration's username: the checks
        // and the pages know it by that name.
        Provider::DataCenter => sqlx::query!(
            r#"UPDATE datacenter_credentials SET
                 access_token_key = $2, access_token = $3, refresh_token_key = $4, refresh_token = $5,
                 token_expires_at = $6, token_obtained_at = now(), scopes = $7,
                 username = $8, authorized_by_label = $9, authorized_at = now()
               WHERE integration_id = $1 AND auth = 'oauth2'"#,
            id,
            access.key_id,
            access.ciphertext,
            refresh_key,
            refresh_sealed,
            tokens.expires_at,
            scopes,
            authorized_by,
            authorized_by_label,
        ),
    };
    query.execute(db).await?;
    Ok(())
}

/// Records who the stored tokens act as, when a test found it changed:
/// client-credentials integrations connected before May 2026 named the
/// consumer's owner, and act as its app user since. (Cloud only.)
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

/// Forgets the tokens (the consumer, the client or the workspace changed,
/// or the chain broke).
pub async fn forget(db: impl PgExecutor<'_>, provider: Provider, id: IntegrationId) -> Result<(), sqlx::Error> {
    let query = match provider {
        Provider::Cloud => sqlx::query!(
            r#"UPDATE cloud_credentials SET
                 access_token_key = NULL, access_token = NULL, refresh_token_key = NULL, refresh_token = NULL,
                 token_expires_at = NULL, token_obtained_at = NULL, scopes = '{}',
                 authorized_by = NULL, authorized_by_label = NULL, authorized_at = NULL
               WHERE integration_id = $1"#,
            id
        ),
        Provider::DataCenter => sqlx::query!(
            r#"UPDATE datacenter_credentials SET
                 access_token_key = NULL, access_token = NULL, refresh_token_key = NULL, refresh_token = NULL,
                 token_expires_at = NULL, token_obtained_at = NULL, scopes = '{}',
                 username = NULL, authorized_by_label = NULL, authorized_at = NULL
               WHERE integration_id = $1 AND auth = 'oauth2'"#,
            id
        ),
    };
    query.execute(db).await?;
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
    let secret = open(keyring, Provider::Cloud, (row.client_secret_key, row.client_secret), "client_secret", id)?;
    let mode = Mode::parse(&row.mode).unwrap_or(Mode::AuthorizationCode);
    Ok(Some((Consumer { key: row.client_id, secret }, row.workspace, mode)))
}

/// A Data Center OAuth 2.0 integration's client, and where its provider is.
pub struct DataCenterClient {
    pub client: oauth2::Client,
    pub endpoints: oauth2::Endpoints,
    /// The integration's outbound client (its private CA, if any).
    pub http: reqwest::Client,
}

/// The application link's client of a Data Center OAuth 2.0 integration.
pub async fn datacenter_client(
    db: impl PgExecutor<'_>,
    services: &Services,
    id: IntegrationId,
) -> Result<Option<DataCenterClient>, TokenProblem> {
    let row = sqlx::query!(
        r#"SELECT client_id AS "client_id!", client_secret_key AS "client_secret_key!",
                  client_secret AS "client_secret!", api_url, user_facing_url, ca_certificate
           FROM datacenter_credentials WHERE integration_id = $1 AND auth = 'oauth2'"#,
        id
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let secret =
        open(&services.keyring, Provider::DataCenter, (row.client_secret_key, row.client_secret), "client_secret", id)?;
    Ok(Some(DataCenterClient {
        client: oauth2::Client { id: row.client_id, secret },
        endpoints: datacenter_endpoints(services, &row.api_url, &row.user_facing_url)?,
        http: datacenter_http(services, row.ca_certificate.as_deref())?,
    }))
}

fn datacenter_endpoints(
    services: &Services,
    api_url: &str,
    user_facing_url: &str,
) -> Result<oauth2::Endpoints, TokenProblem> {
    let parse =
        |raw: &str| Url::parse(raw).map_err(|_| TokenProblem::Bitbucket(format!("The stored URL {raw} is not a URL.")));
    Ok(oauth2::Endpoints::new(&parse(api_url)?, &parse(user_facing_url)?, &services.config))
}

fn datacenter_http(services: &Services, ca: Option<&str>) -> Result<reqwest::Client, TokenProblem> {
    let ca = ca.map(datacenter::parse_ca_certificate).transpose().map_err(TokenProblem::Bitbucket)?;
    datacenter::http_client(ca.as_ref(), &services.config)
        .map_err(|_| TokenProblem::Bitbucket("Bitgate could not prepare an HTTP client for this URL.".into()))
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
pub async fn access_token(
    services: &Services,
    provider: Provider,
    id: IntegrationId,
) -> Result<Secret<String>, TokenProblem> {
    let row = match provider {
        Provider::Cloud => {
            sqlx::query_as!(
            Current,
            "SELECT access_token_key, access_token, token_expires_at FROM cloud_credentials WHERE integration_id = $1",
            id
        )
            .fetch_optional(&services.pool)
            .await?
        }
        Provider::DataCenter => {
            sqlx::query_as!(
                Current,
                r#"SELECT access_token_key, access_token, token_expires_at FROM datacenter_credentials
               WHERE integration_id = $1 AND auth = 'oauth2'"#,
                id
            )
            .fetch_optional(&services.pool)
            .await?
        }
    };
    let Some(row) = row else { return Err(TokenProblem::NotConnected(NOT_CONNECTED.into())) };
    let (Some(key_id), Some(ciphertext)) = (row.access_token_key, row.access_token) else {
        return Err(TokenProblem::NotConnected(NOT_CONNECTED.into()));
    };
    let fresh = row.token_expires_at.is_some_and(|at| at > OffsetDateTime::now_utc() + USE_MARGIN);
    if fresh {
        return Ok(open(&services.keyring, provider, (key_id, ciphertext), "access_token", id)?);
    }
    refresh(services, provider, id, Seen::Expiry(row.token_expires_at)).await
}

struct Current {
    access_token_key: Option<String>,
    access_token: Option<Vec<u8>>,
    token_expires_at: Option<OffsetDateTime>,
}

/// The credentials' row, locked for a refresh.
struct Locked {
    client_id: String,
    client_secret: (String, Vec<u8>),
    /// Cloud's; Data Center's application links are authorization-code only.
    mode: Option<String>,
    access_token: Option<(String, Vec<u8>)>,
    refresh_token: Option<(String, Vec<u8>)>,
    token_expires_at: Option<OffsetDateTime>,
    /// Data Center's: where the provider is, and its private CA.
    urls: Option<(String, String, Option<String>)>,
    name: String,
    space_id: Option<Uuid>,
}

async fn lock(tx: &mut PgConnection, provider: Provider, id: IntegrationId) -> Result<Option<Locked>, sqlx::Error> {
    let pair = |key: Option<String>, sealed: Option<Vec<u8>>| key.zip(sealed);
    Ok(match provider {
        Provider::Cloud => sqlx::query!(
            r#"SELECT c.client_id, c.client_secret_key, c.client_secret, c.mode, c.access_token_key, c.access_token,
                      c.refresh_token_key, c.refresh_token, c.token_expires_at, i.name, i.space_id
               FROM cloud_credentials c JOIN integrations i ON i.id = c.integration_id
               WHERE c.integration_id = $1
               FOR UPDATE OF c"#,
            id
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| Locked {
            client_id: row.client_id,
            client_secret: (row.client_secret_key, row.client_secret),
            mode: Some(row.mode),
            access_token: pair(row.access_token_key, row.access_token),
            refresh_token: pair(row.refresh_token_key, row.refresh_token),
            token_expires_at: row.token_expires_at,
            urls: None,
            name: row.name,
            space_id: row.space_id,
        }),
        Provider::DataCenter => sqlx::query!(
            r#"SELECT d.client_id AS "client_id!", d.client_secret_key AS "client_secret_key!",
                      d.client_secret AS "client_secret!", d.access_token_key, d.access_token, d.refresh_token_key,
                      d.refresh_token, d.token_expires_at, d.api_url, d.user_facing_url, d.ca_certificate, i.name,
                      i.space_id
               FROM datacenter_credentials d JOIN integrations i ON i.id = d.integration_id
               WHERE d.integration_id = $1 AND d.auth = 'oauth2'
               FOR UPDATE OF d"#,
            id
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| Locked {
            client_id: row.client_id,
            client_secret: (row.client_secret_key, row.client_secret),
            mode: None,
            access_token: pair(row.access_token_key, row.access_token),
            refresh_token: pair(row.refresh_token_key, row.refresh_token),
            token_expires_at: row.token_expires_at,
            urls: Some((row.api_url, row.user_facing_url, row.ca_certificate)),
            name: row.name,
            space_id: row.space_id,
        }),
    })
}

/// Replaces the tokens under the credentials' row lock, unless what the
/// caller saw is already out of date. Returns the access token to use.
pub async fn refresh(
    services: &Services,
    provider: Provider,
    id: IntegrationId,
    seen: Seen,
) -> Result<Secret<String>, TokenProblem> {
    let keyring = &services.keyring;
    let mut tx = services.pool.begin().await?;
    let Some(row) = lock(&mut tx, provider, id).await? else {
        return Err(TokenProblem::NotConnected(NOT_CONNECTED.into()));
    };
    let Some(access_sealed) = row.access_token else {
        return Err(TokenProblem::NotConnected(NOT_CONNECTED.into()));
    };
    let current = open(keyring, provider, access_sealed, "access_token", id)?;
    let already_done = match &seen {
        Seen::Expiry(expiry) => row.token_expires_at != *expiry,
        Seen::Refused(refused) => *refused != current,
    };
    if already_done {
        tx.commit().await?;
        return Ok(current);
    }

    let secret = open(keyring, provider, row.client_secret, "client_secret", id)?;
    let refresh_token =
        row.refresh_token.map(|sealed| open(keyring, provider, sealed, "refresh_token", id)).transpose()?;
    let (answer, says) = match (provider, row.urls) {
        (Provider::DataCenter, Some((api_url, user_facing_url, ca))) => {
            let endpoints = datacenter_endpoints(services, &api_url, &user_facing_url)?;
            let http = datacenter_http(services, ca.as_deref())?;
            let client = oauth2::Client { id: row.client_id, secret };
            let answer = match &refresh_token {
                Some(token) => oauth2::refresh(&http, &services.config, &endpoints, &client, token).await,
                None => Err(TokenError::Grant),
            };
            let says = answer.as_ref().err().map(|error| oauth2::message(error, &endpoints));
            (answer, says)
        }
        _ => {
            let consumer = Consumer { key: row.client_id, secret };
            let endpoints = Endpoints::from_config(&services.config);
            let http = cloud::http_client(&services.config).map_err(|e| TokenProblem::Bitbucket(e.to_string()))?;
            let answer = match (row.mode.as_deref().and_then(Mode::parse), &refresh_token) {
                (Some(Mode::ClientCredentials), _) => {
                    cloud::client_credentials(&http, &services.config, &endpoints, &consumer).await
                }
                (_, Some(token)) => cloud::refresh(&http, &services.config, &endpoints, &consumer, token).await,
                (_, None) => return Err(TokenProblem::NotConnected(NOT_CONNECTED.into())),
            };
            let says = answer.as_ref().err().map(|error| error.message(&endpoints));
            (answer, says)
        }
    };
    crate::telemetry::token_refresh(provider.as_str(), answer.is_ok());
    match answer {
        Ok(tokens) => {
            rotate(&mut tx, keyring, provider, id, &tokens).await?;
            tx.commit().await?;
            tracing::info!(integration = %id, provider = provider.as_str(), "OAuth tokens refreshed");
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
                says.unwrap_or_default()
            );
            forget(&mut *tx, provider, id).await?;
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
            tracing::warn!(integration = %id, "Bitbucket authorization lost: {reason}");
            Err(TokenProblem::NotConnected(reason))
        }
    }
}

/// Writes a refreshed pair (the authorization stays whose it was).
async fn rotate(
    tx: &mut PgConnection,
    keyring: &Keyring,
    provider: Provider,
    id: IntegrationId,
    tokens: &Tokens,
) -> Result<(), sqlx::Error> {
    let access = seal(keyring, provider, &tokens.access, "access_token", id);
    let refresh = tokens.refresh.as_ref().map(|r| seal(keyring, provider, r, "refresh_token", id));
    let (refresh_key, refresh_sealed) = refresh.map(|r| (r.key_id, r.ciphertext)).unzip();
    // An answer that names no scopes keeps the ones granted before.
    let scopes = tokens.scopes.as_deref();
    let query = match provider {
        Provider::Cloud => sqlx::query!(
            r#"UPDATE cloud_credentials SET
                 access_token_key = $2, access_token = $3,
                 refresh_token_key = coalesce($4, refresh_token_key), refresh_token = coalesce($5, refresh_token),
                 token_expires_at = $6, token_obtained_at = now(), scopes = coalesce($7, scopes)
               WHERE integration_id = $1"#,
            id,
            access.key_id,
            access.ciphertext,
            refresh_key,
            refresh_sealed,
            tokens.expires_at,
            scopes,
        ),
        Provider::DataCenter => sqlx::query!(
            r#"UPDATE datacenter_credentials SET
                 access_token_key = $2, access_token = $3,
                 refresh_token_key = coalesce($4, refresh_token_key), refresh_token = coalesce($5, refresh_token),
                 token_expires_at = $6, token_obtained_at = now(), scopes = coalesce($7, scopes)
               WHERE integration_id = $1"#,
            id,
            access.key_id,
            access.ciphertext,
            refresh_key,
            refresh_sealed,
            tokens.expires_at,
            scopes,
        ),
    };
    query.execute(&mut *tx).await?;
    Ok(())
}

/// The periodic job: refreshes every token that expires soon, and every
/// refresh token left unused for [`IDLE_REFRESH`], of both products.
/// Returns how many were refreshed; one integration's failure does not
/// stop the others.
pub async fn refresh_due(services: &Services) -> Result<u64, sqlx::Error> {
    let due = sqlx::query!(
        r#"SELECT 'bitbucket_cloud' AS "provider!", integration_id AS "integration_id!", token_expires_at
           FROM cloud_credentials
           WHERE access_token IS NOT NULL
             AND (token_expires_at <= now() + make_interval(secs => $1)
                  OR (refresh_token IS NOT NULL AND token_obtained_at <= now() - make_interval(secs => $2)))
           UNION ALL
           SELECT 'bitbucket_datacenter', integration_id, token_expires_at
           FROM datacenter_credentials
           WHERE auth = 'oauth2' AND access_token IS NOT NULL
             AND (token_expires_at <= now() + make_interval(secs => $1)
                  OR (refresh_token IS NOT NULL AND token_obtained_at <= now() - make_interval(secs => $2)))"#,
        EXPIRY_MARGIN.as_secs_f64(),
        IDLE_REFRESH.as_secs_f64()
    )
    .fetch_all(&services.pool)
    .await?;
    let mut refreshed = 0;
    for row in due {
        let Ok(provider) = Provider::parse(&row.provider) else { continue };
        match refresh(services, provider, row.integration_id, Seen::Expiry(row.token_expires_at)).await {
            Ok(_) => refreshed += 1,
            Err(TokenProblem::Database(error)) => return Err(error),
            // The problem is said in Bitgate's words (and a key's id at most): never a token.
            Err(problem) => tracing::warn!(integration = %row.integration_id, "token refresh failed: {problem}"),
        }
    }
    Ok(refreshed)
}
