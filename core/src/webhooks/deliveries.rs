//! Reading the delivery log, keeping it bounded, and rotating the secret
//! that signs deliveries.

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::DeliveryOutcome;
use crate::{
    integrations::{binding, IntegrationId},
    secret::Secret,
    secrets::Keyring,
    tokens::random_token,
};

/// At most this many deliveries are kept per integration.
pub const KEPT_PER_INTEGRATION: i64 = 10_000;

/// A delivery as its log lists it: what came and what became of it. What
/// it carried is read only for its own page ([`Details`]): a log's page of
/// a hundred read every body too, up to 256 KB each, to show none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub integration_id: Uuid,
    pub received_at: OffsetDateTime,
    pub request_id: Option<String>,
    pub event_key: Option<String>,
    pub repository_id: Option<String>,
    pub repository_name: Option<String>,
    pub signature: String,
    pub outcome: DeliveryOutcome,
    pub reason: Option<String>,
    pub stacks: Vec<Uuid>,
    pub duplicate_count: i32,
}

/// A delivery with what it carried, for its own page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub delivery: Delivery,
    /// The request's headers as kept (the signature redacted).
    pub headers: Value,
    /// The body, when it was kept.
    pub body: Option<Value>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub outcome: Option<DeliveryOutcome>,
    pub event_key: Option<String>,
}

/// An integration's deliveries, newest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    integration: IntegrationId,
    filter: &Filter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        Delivery,
        r#"SELECT id, integration_id, received_at, request_id, event_key, repository_id, repository_name, signature,
                  outcome AS "outcome: DeliveryOutcome", reason, stacks, duplicate_count
           FROM webhook_deliveries
           WHERE integration_id = $1
             AND ($2::text IS NULL OR outcome = $2)
             AND ($3::text IS NULL OR event_key = $3)
             AND ($4::timestamptz IS NULL OR (received_at, id) < ($4, $5))
           ORDER BY received_at DESC, id DESC LIMIT $6"#,
        integration,
        filter.outcome.map(DeliveryOutcome::as_str),
        filter.event_key.as_deref(),
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Details>, sqlx::Error> {
    let found = sqlx::query!(
        r#"SELECT id, integration_id, received_at, request_id, event_key, repository_id, repository_name, signature,
                  outcome AS "outcome: DeliveryOutcome", reason, headers, body, stacks, duplicate_count
           FROM webhook_deliveries WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(found.map(|row| Details {
        delivery: Delivery {
            id: row.id,
            integration_id: row.integration_id,
            received_at: row.received_at,
            request_id: row.request_id,
            event_key: row.event_key,
            repository_id: row.repository_id,
            repository_name: row.repository_name,
            signature: row.signature,
            outcome: row.outcome,
            reason: row.reason,
            stacks: row.stacks,
            duplicate_count: row.duplicate_count,
        },
        headers: row.headers,
        body: row.body,
    }))
}

/// Rejected requests past the recording cap, per integration, in the last day.
pub async fn dropped_today(db: impl PgExecutor<'_>, integration: IntegrationId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(sum(dropped), 0)::bigint AS "dropped!" FROM webhook_rejections
           WHERE integration_id = $1 AND minute > now() - interval '1 day'"#,
        integration
    )
    .fetch_one(db)
    .await
}

/// The retention job: deliveries older than `retention`, those past the
/// newest [`KEPT_PER_INTEGRATION`] of each integration, and old counters.
pub async fn apply_retention(db: &mut PgConnection, retention: Duration) -> Result<u64, sqlx::Error> {
    let old = sqlx::query!(
        "DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(secs => $1)",
        retention.as_secs_f64()
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    let excess = sqlx::query!(
        r#"DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM (
                   SELECT id, row_number() OVER (PARTITION BY integration_id ORDER BY received_at DESC, id DESC) AS n
                   FROM webhook_deliveries) ranked
               WHERE n > $1)"#,
        KEPT_PER_INTEGRATION
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    sqlx::query!("DELETE FROM webhook_rejections WHERE minute < now() - interval '2 days'").execute(&mut *db).await?;
    Ok(old + excess)
}

/// Rotates an integration's webhook secret: a new one signs from now on,
/// the current one stays valid for `grace`. Returns the new secret.
pub async fn rotate(
    tx: &mut PgConnection,
    keyring: &Keyring,
    id: IntegrationId,
    grace: Duration,
) -> Result<Option<Secret<String>>, sqlx::Error> {
    let current =
        sqlx::query!("SELECT webhook_secret_key, webhook_secret FROM integrations WHERE id = $1 FOR UPDATE", id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(current) = current else { return Ok(None) };
    // The current secret moves to the previous column: sealed again, bound to it.
    let Ok(plain) = keyring.open(
        &crate::secrets::Sealed { key_id: current.webhook_secret_key, ciphertext: current.webhook_secret },
        binding("integrations", "webhook_secret", id),
    ) else {
        return Err(sqlx::Error::Protocol("the webhook secret does not open".into()));
    };
    let previous = keyring.seal(&plain, binding("integrations", "previous_webhook_secret", id));
    let secret = Secret::new(random_token());
    let sealed = keyring.seal(secret.as_bytes(), binding("integrations", "webhook_secret", id));
    sqlx::query!(
        r#"UPDATE integrations SET webhook_secret_key = $2, webhook_secret = $3,
             previous_webhook_secret_key = $4, previous_webhook_secret = $5,
             previous_secret_valid_until = now() + make_interval(secs => $6)
           WHERE id = $1"#,
        id,
        sealed.key_id,
        sealed.ciphertext,
        previous.key_id,
        previous.ciphertext,
        grace.as_secs_f64()
    )
    .execute(&mut *tx)
    .await?;
    super::endpoints::changed(&mut *tx, id).await?;
    Ok(Some(secret))
}

/// Makes `secret` the webhook secret (an import carrying the secret Bitbucket's
/// webhooks already have): any rotation in progress ends, and every process
/// stops accepting the secrets it replaced at once.
pub async fn set_secret(
    tx: &mut PgConnection,
    keyring: &Keyring,
    id: IntegrationId,
    secret: &Secret<String>,
) -> Result<(), sqlx::Error> {
    let sealed = keyring.seal(secret.as_bytes(), binding("integrations", "webhook_secret", id));
    sqlx::query!(
        r#"UPDATE integrations SET webhook_secret_key = $2, webhook_secret = $3,
             previous_webhook_secret_key = NULL, previous_webhook_secret = NULL, previous_secret_valid_until = NULL
           WHERE id = $1"#,
        id,
        sealed.key_id,
        sealed.ciphertext,
    )
    .execute(&mut *tx)
    .await?;
    super::endpoints::changed(&mut *tx, id).await
}

/// Stops accepting the previous secret at once. Returns whether there was one.
pub async fn retire_previous(db: &mut PgConnection, id: IntegrationId) -> Result<bool, sqlx::Error> {
    let retired = sqlx::query!(
        r#"UPDATE integrations SET previous_webhook_secret_key = NULL, previous_webhook_secret = NULL,
             previous_secret_valid_until = NULL
           WHERE id = $1 AND previous_webhook_secret IS NOT NULL"#,
        id
    )
    .execute(&mut *db)
    .await?;
    super::endpoints::changed(&mut *db, id).await?;
    Ok(retired.rows_affected() == 1)
}

/// Until when the previous secret is accepted (none: no rotation in progress).
pub async fn previous_valid_until(
    db: impl PgExecutor<'_>,
    id: IntegrationId,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT previous_secret_valid_until FROM integrations WHERE id = $1 AND previous_secret_valid_until > now()",
        id
    )
    .fetch_optional(db)
    .await?
    .flatten())
}

/// When the integration's last delivery came (none yet: still waiting).
pub async fn last_received_at(
    db: impl PgExecutor<'_>,
    id: IntegrationId,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    sqlx::query_scalar!("SELECT max(received_at) FROM webhook_deliveries WHERE integration_id = $1", id)
        .fetch_one(db)
        .await
}
