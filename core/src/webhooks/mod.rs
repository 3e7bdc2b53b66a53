//! Webhook deliveries: each request to `/webhooks/bitbucket/{slug}` decided
//! in the order of SPEC.md's decision table, recorded (rejected ones and
//! unsigned pings, which anyone can send, up to [`UNVERIFIED_PER_MINUTE`]
//! per integration, then counted), acknowledged
//! only once committed, routed to its integration's stacks by the same
//! statement.

pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod group_commit;
pub mod routing;
pub mod signature;

use std::sync::Arc;

use endpoints::Endpoint;
use serde_json::Value;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    integrations::{self, Provider},
    platform::{events::Triggers, pull_requests},
    secret::Secret,
    secrets::Sealed,
    text_enum::text_enum,
    Services,
};
use events::{normalize, PING};
use routing::Routes;
use signature::{verify, Verdict};

/// Bodies larger than this are refused unread.
pub const MAX_BODY: usize = 256 * 1024;
/// Rejected requests recorded per integration and minute; the rest are counted.
pub const UNVERIFIED_PER_MINUTE: i32 = 60;

/// A request as the endpoint received it.
pub struct Incoming<'a> {
    pub content_type: Option<&'a str>,
    pub event_key: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// The headers to keep, the signature already redacted.
    pub headers: Value,
    /// `None` when it was over [`MAX_BODY`].
    pub body: Option<&'a [u8]>,
}

text_enum! {
    /// What became of a delivery (`webhook_deliveries.outcome`).
    pub enum DeliveryOutcome {
        /// Verified and stored (routed to its stacks, if any).
        Accepted = "accepted",
        /// Verified, or an unsigned ping, with nothing to act on.
        Ignored = "ignored",
        /// A retry of a verified delivery stored already.
        Duplicate = "duplicate",
        /// Refused: too large, not JSON, unsigned, a wrong signature, malformed.
        Rejected = "rejected",
    }
}

/// The answer, and what was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub status: u16,
    pub outcome: DeliveryOutcome,
    /// The signature's verdict (`webhook_deliveries.signature`).
    pub signature: &'static str,
    pub reason: Option<String>,
    /// The delivery recorded (none past the rejection cap).
    pub delivery: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// No integration has that slug: 404, nothing recorded.
    #[error("no integration has this webhook endpoint")]
    NotFound,
    /// The database cannot store it: 503, so Bitbucket tries again.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("a webhook secret does not open: {0}")]
    Secret(String),
}

/// The webhook side of a process: its cache of endpoints and its writer of
/// verified deliveries.
#[derive(Debug, Default)]
pub struct Runtime {
    pub endpoints: Arc<endpoints::Cache>,
    pub writer: group_commit::Writer,
}

/// The integration a slug names, from the cache or the database.
async fn endpoint(services: &Services, slug: &str) -> Result<Arc<Endpoint>, ReceiveError> {
    let cache = &services.webhooks.endpoints;
    if let Some(found) = cache.get(slug) {
        return Ok(found);
    }
    let generation = cache.generation();
    // The secrets and the stacks in one query: without LISTEN (degraded
    // mode) this runs for every delivery.
    let row = sqlx::query!(
        r#"SELECT i.id, i.provider, i.webhook_secret_key, i.webhook_secret, i.previous_webhook_secret_key,
                  i.previous_webhook_secret, i.previous_secret_valid_until,
                  coalesce(array_agg(s.id ORDER BY s.id) FILTER (WHERE s.id IS NOT NULL), '{}') AS "stack_ids!: Vec<Uuid>",
                  coalesce(array_agg(s.repository_id ORDER BY s.id) FILTER (WHERE s.id IS NOT NULL), '{}')
                      AS "stack_repositories!: Vec<String>",
                  coalesce(array_agg(s.branch ORDER BY s.id) FILTER (WHERE s.id IS NOT NULL), '{}')
                      AS "stack_branches!: Vec<String>",
                  -- Each stack's triggers as bits, in the order of Triggers' fields.
                  -- (PostgreSQL gives | and << the same precedence: hence the parentheses.)
                  coalesce(array_agg(s.build_pull_requests::int | (s.all_branches::int << 1)
                                     | (s.prune_branches::int << 2) | (s.resync_pull_requests::int << 3) ORDER BY s.id)
                               FILTER (WHERE s.id IS NOT NULL),
                           '{}') AS "stack_triggers!: Vec<i32>"
           FROM integrations i LEFT JOIN stacks s ON s.integration_id = i.id
           WHERE i.slug = $1
           GROUP BY i.id"#,
        slug
    )
    .fetch_optional(&services.pool)
    .await?;
    let row = row.ok_or(ReceiveError::NotFound)?;
    let open = |key_id: String, ciphertext: Vec<u8>, column: &'static str| {
        services
            .keyring
            .open(&Sealed { key_id, ciphertext }, integrations::binding("integrations", column, row.id))
            .map(Secret::new)
            .map_err(|e| ReceiveError::Secret(e.to_string()))
    };
    let secret = open(row.webhook_secret_key, row.webhook_secret, "webhook_secret")?;
    let previous = match (row.previous_secret_valid_until, row.previous_webhook_secret_key, row.previous_webhook_secret)
    {
        (Some(until), Some(key_id), Some(ciphertext)) => {
            Some((open(key_id, ciphertext, "previous_webhook_secret")?, until))
        }
        _ => None,
    };
    let provider = if row.provider == "bitbucket_cloud" { Provider::Cloud } else { Provider::DataCenter };
    let routes = Routes::from_rows(
        row.stack_repositories
            .into_iter()
            .zip(row.stack_ids.into_iter().zip(row.stack_branches).zip(row.stack_triggers))
            .map(|(repository, ((id, branch), bits))| {
                let flag = |i: u32| bits & (1 << i) != 0;
                let triggers = Triggers {
                    build_pull_requests: flag(0),
                    all_branches: flag(1),
                    prune_branches: flag(2),
                    resync_pull_requests: flag(3),
                };
                (repository, routing::StackRoute { id, branch, triggers })
            }),
    );
    let found = Arc::new(Endpoint { id: row.id, provider, secret, previous, routes });
    cache.put(slug, found.clone(), generation);
    Ok(found)
}

/// What a delivery row is made of.
struct Record<'a> {
    request_id: Option<&'a str>,
    event_key: Option<&'a str>,
    signature: &'static str,
    outcome: DeliveryOutcome,
    reason: Option<String>,
    body: Option<Value>,
    event: Option<Value>,
    repository: Option<(String, String)>,
}

async fn insert(
    tx: &mut PgConnection,
    integration: Uuid,
    headers: &Value,
    record: Record<'_>,
) -> Result<Uuid, sqlx::Error> {
    let (repository_id, repository_name) = record.repository.unzip();
    sqlx::query_scalar!(
        r#"INSERT INTO webhook_deliveries (integration_id, request_id, event_key, repository_id, repository_name,
                                          signature, outcome, reason, headers, body, event)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"#,
        integration,
        record.request_id,
        record.event_key,
        repository_id,
        repository_name,
        record.signature,
        record.outcome.as_str(),
        record.reason,
        headers,
        record.body,
        record.event,
    )
    .fetch_one(&mut *tx)
    .await
}

/// Records a rejected request unless this minute's cap is reached (then it
/// is only counted), and answers `status`.
async fn reject(
    services: &Services,
    endpoint: &Endpoint,
    incoming: &Incoming<'_>,
    status: u16,
    signature: &'static str,
    reason: &str,
) -> Result<Receipt, ReceiveError> {
    let unverified =
        Unverified { status, event_key: incoming.event_key, signature, outcome: DeliveryOutcome::Rejected, reason };
    record_unverified(services, endpoint, incoming, unverified).await
}

/// What is recorded of a request no signature vouches for.
struct Unverified<'a> {
    status: u16,
    /// The event key as it is recorded.
    event_key: Option<&'a str>,
    signature: &'static str,
    outcome: DeliveryOutcome,
    reason: &'a str,
}

/// Records a request that anyone could have sent (rejected, or an unsigned
/// ping) unless this minute's cap of such requests is reached, when it is
/// only counted: a flood of them cannot fill the log and push real
/// deliveries out of its retention.
async fn record_unverified(
    services: &Services,
    endpoint: &Endpoint,
    incoming: &Incoming<'_>,
    unverified: Unverified<'_>,
) -> Result<Receipt, ReceiveError> {
    let Unverified { status, event_key, signature, outcome, reason } = unverified;
    let mut tx = services.pool.begin().await?;
    let counted = sqlx::query_scalar!(
        r#"INSERT INTO webhook_rejections (integration_id, minute, recorded) VALUES ($1, date_trunc('minute', now()), 1)
           ON CONFLICT (integration_id, minute) DO UPDATE SET recorded = webhook_rejections.recorded + 1
           WHERE webhook_rejections.recorded < $2
           RETURNING recorded"#,
        endpoint.id,
        UNVERIFIED_PER_MINUTE
    )
    .fetch_optional(&mut *tx)
    .await?;
    let delivery = match counted {
        Some(_) => {
            let record = Record {
                request_id: incoming.request_id,
                event_key,
                signature,
                outcome,
                reason: Some(reason.to_owned()),
                body: None,
                event: None,
                repository: None,
            };
            Some(insert(&mut tx, endpoint.id, &incoming.headers, record).await?)
        }
        None => {
            sqlx::query!(
                "UPDATE webhook_rejections SET dropped = dropped + 1 WHERE integration_id = $1 AND minute = date_trunc('minute', now())",
                endpoint.id
            )
            .execute(&mut *tx)
            .await?;
            None
        }
    };
    tx.commit().await?;
    Ok(Receipt { status, outcome, signature, reason: Some(reason.to_owned()), delivery })
}

async fn record(
    mut tx: Transaction<'_, Postgres>,
    endpoint: &Endpoint,
    incoming: &Incoming<'_>,
    status: u16,
    record: Record<'_>,
) -> Result<Receipt, ReceiveError> {
    let (outcome, signature) = (record.outcome, record.signature);
    let reason = record.reason.clone();
    // No per-integration counter is updated here: that row would serialize
    // every delivery of the integration. The last delivery's time is read
    // from the log's index instead.
    let id = insert(&mut tx, endpoint.id, &incoming.headers, record).await?;
    tx.commit().await?;
    Ok(Receipt { status, outcome, signature, reason, delivery: Some(id) })
}

/// JSON as PostgreSQL's `jsonb` takes it: it cannot hold U+0000, which JSON
/// may escape (`\u0000`, in a commit message, say). Such characters are
/// stored as U+FFFD, the replacement character, so that the delivery is kept
/// rather than refused with a 503 that Bitbucket would retry forever.
fn storable(json: String) -> String {
    if !json.contains("\\u0000") {
        return json;
    }
    fn replace(value: &mut Value) {
        match value {
            Value::String(text) => *text = text.replace('\0', "\u{fffd}"),
            Value::Array(items) => items.iter_mut().for_each(replace),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut value) in entries {
                    replace(&mut value);
                    map.insert(key.replace('\0', "\u{fffd}"), value);
                }
            }
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(&json) {
        Ok(mut value) => {
            replace(&mut value);
            value.to_string()
        }
        Err(_) => json,
    }
}

/// Decides, records and answers one request (SPEC.md's decision table, in order).
pub async fn receive(services: &Services, slug: &str, incoming: Incoming<'_>) -> Result<Receipt, ReceiveError> {
    let endpoint = endpoint(services, slug).await?;
    let Some(body) = incoming.body else {
        return reject(services, &endpoint, &incoming, 413, "unchecked", "too large: the body is over 256 KiB").await;
    };
    let is_json = incoming.content_type.and_then(|v| v.split(';').next()).is_some_and(|mime| {
        let mime = mime.trim().to_ascii_lowercase();
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
    });
    if !is_json {
        return reject(services, &endpoint, &incoming, 415, "unchecked", "content type: not JSON").await;
    }
    let verdict = verify(incoming.signature, body, endpoint.secret.as_slice(), endpoint.previous_now());
    let key = incoming.event_key.map(str::trim).filter(|k| !k.is_empty());
    if key == Some(PING) && verdict == Verdict::Missing {
        let unsigned = Unverified {
            status: 200,
            event_key: key,
            signature: "unsigned_ping",
            outcome: DeliveryOutcome::Ignored,
            reason: "unsigned ping: proves reachability only",
        };
        return record_unverified(services, &endpoint, &incoming, unsigned).await;
    }
    if key == Some(PING) && verdict != Verdict::Mismatch {
        let row = Record {
            request_id: incoming.request_id,
            event_key: key,
            signature: verdict.as_str(),
            outcome: DeliveryOutcome::Accepted,
            reason: Some("ping".into()),
            body: None,
            event: None,
            repository: None,
        };
        return record(services.pool.begin().await?, &endpoint, &incoming, 200, row).await;
    }
    match verdict {
        Verdict::Missing => return reject(services, &endpoint, &incoming, 401, "missing", "missing signature").await,
        Verdict::Mismatch => {
            return reject(services, &endpoint, &incoming, 401, "mismatch", "signature mismatch").await;
        }
        Verdict::Valid | Verdict::ValidPrevious => {}
    }
    let parsed: Result<Value, String> = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"));
    let key_text = key.unwrap_or_default();
    let normalized = parsed.and_then(|value| normalize(endpoint.provider, key_text, &value).map_err(|e| e.to_string()));
    let event = match normalized {
        Ok(found) => found,
        Err(why) => {
            // A retry of a verified delivery is a duplicate before anything else.
            if let Some(receipt) = duplicate(services, &endpoint, &incoming, verdict).await? {
                return Ok(receipt);
            }
            return reject(services, &endpoint, &incoming, 400, verdict.as_str(), &format!("malformed: {why}")).await;
        }
    };
    let (outcome, reason, repository, event, body, routed) = match event {
        None => {
            let why = if key.is_none() { "no event key" } else { "unknown event" };
            (DeliveryOutcome::Ignored, Some(why.to_owned()), None, None, None, Default::default())
        }
        Some(event) => {
            let repository = Some((event.repository.id.clone(), event.repository.name.clone()));
            // The body as received: it parsed as JSON, so it is UTF-8.
            let text = std::str::from_utf8(body).ok().map(|t| storable(t.to_owned()));
            let resyncing = endpoint.routes.resyncing(&event);
            let open = pull_requests::open_for(&services.pool, &resyncing).await?;
            let routed = endpoint.routes.route(&event, &open);
            (
                DeliveryOutcome::Accepted,
                None,
                repository,
                serde_json::to_string(&event).ok().map(storable),
                text,
                routed,
            )
        }
    };
    let row = group_commit::Row {
        integration: endpoint.id,
        request_id: incoming.request_id.map(str::to_owned),
        event_key: key.map(str::to_owned),
        repository,
        signature: verdict.as_str(),
        outcome,
        reason: reason.clone(),
        headers: incoming.headers.to_string(),
        body,
        event,
        routed,
    };
    // Stored unless its request id was seen verified before (the unique
    // index decides, so racing retries cannot both get in).
    match services.webhooks.writer.store(&services.pool, &services.events, row).await? {
        Some(id) => Ok(Receipt { status: 202, outcome, signature: verdict.as_str(), reason, delivery: Some(id) }),
        None => duplicate(services, &endpoint, &incoming, verdict)
            .await?
            .ok_or_else(|| ReceiveError::Database(sqlx::Error::RowNotFound)),
    }
}

/// What polling found moved in a repository (SPEC.md: "a moved head turned
/// into the same events as a push"): routed as a delivered push would be,
/// and recorded in the delivery log with the signature `poll` (nothing
/// signed it: Bitgate read it). Returns the log entry's id.
pub async fn polled(services: &Services, slug: &str, event: events::Event) -> Result<Uuid, ReceiveError> {
    let endpoint = endpoint(services, slug).await?;
    let resyncing = endpoint.routes.resyncing(&event);
    let open = pull_requests::open_for(&services.pool, &resyncing).await?;
    let routed = endpoint.routes.route(&event, &open);
    let row = group_commit::Row {
        integration: endpoint.id,
        request_id: None,
        event_key: Some(event.key.clone()),
        repository: Some((event.repository.id.clone(), event.repository.name.clone())),
        signature: POLL,
        outcome: DeliveryOutcome::Accepted,
        reason: Some("polled: no working webhook in this repository".into()),
        headers: "{}".into(),
        body: None,
        event: serde_json::to_string(&event).ok().map(storable),
        routed,
    };
    // No request id: never taken for a duplicate.
    services.webhooks.writer.store(&services.pool, &services.events, row).await?.ok_or(ReceiveError::NotFound)
}

/// The signature of what polling found.
pub const POLL: &str = "poll";

/// When a verified delivery with this request id is stored already: counts
/// the retry on it, records the duplicate, and answers 200.
async fn duplicate(
    services: &Services,
    endpoint: &Endpoint,
    incoming: &Incoming<'_>,
    verdict: Verdict,
) -> Result<Option<Receipt>, ReceiveError> {
    let Some(request_id) = incoming.request_id else { return Ok(None) };
    let mut tx = services.pool.begin().await?;
    let original = sqlx::query_scalar!(
        r#"UPDATE webhook_deliveries SET duplicate_count = duplicate_count + 1
           WHERE integration_id = $1 AND request_id = $2 AND signature IN ('valid', 'valid_previous')
             AND outcome <> 'duplicate'
           RETURNING id"#,
        endpoint.id,
        request_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(original) = original else { return Ok(None) };
    let row = Record {
        request_id: Some(request_id),
        event_key: incoming.event_key,
        signature: verdict.as_str(),
        outcome: DeliveryOutcome::Duplicate,
        reason: Some(format!("already received as delivery {original}")),
        body: None,
        event: None,
        repository: None,
    };
    record(tx, endpoint, incoming, 200, row).await.map(Some)
}
