//! Group commit for verified deliveries: the requests that arrive while a
//! write is under way are stored together, in one multi-row statement,
//! and each is answered once that statement has committed.
//!
//! One statement and one commit per delivery is what makes PostgreSQL the
//! bottleneck of webhook ingest (a round trip, a plan and a WAL flush
//! each). A lone delivery is written at once, so this adds no latency when
//! traffic is light; under load the batches grow by themselves. A batch
//! that fails is written again one row at a time, so that one row the
//! database refuses cannot fail the deliveries that shared its batch.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

/// Rows written by one statement at most.
const MAX_BATCH: usize = 128;
/// Batches written at the same time at most (each holds a connection).
const IN_FLIGHT: usize = 4;

/// A verified delivery, ready to be stored.
#[derive(Debug, Clone)]
pub struct Row {
    pub integration: Uuid,
    pub request_id: Option<String>,
    pub event_key: Option<String>,
    pub repository: Option<(String, String)>,
    pub signature: &'static str,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub headers: Value,
    pub body: Option<Value>,
    pub event: Option<Value>,
}

/// `Some(id)` when stored; `None` when a verified delivery with the same
/// request id was stored before (a duplicate).
type Stored = Result<Option<Uuid>, sqlx::Error>;

struct Pending {
    id: Uuid,
    row: Row,
    answer: oneshot::Sender<Stored>,
}

/// One process's writer, started on first use.
#[derive(Debug, Default)]
pub struct Writer {
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
}

impl Writer {
    /// Stores `row` with the deliveries arriving at the same time; returns
    /// once the row is committed (or known to be a duplicate).
    pub async fn store(&self, pool: &PgPool, row: Row) -> Stored {
        let queue = self.queue.get_or_init(|| start(pool.clone()));
        let (answer, answered) = oneshot::channel();
        let id = Uuid::new_v4();
        if let Err(refused) = queue.send(Pending { id, row, answer }) {
            // The writer's task is gone (its runtime is shutting down):
            // store this one alone rather than lose it.
            let row = refused.0.row;
            return insert(pool, vec![(id, row)]).await.map(|stored| stored.first().copied());
        }
        answered.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }
}

fn start(pool: PgPool) -> mpsc::UnboundedSender<Pending> {
    let (queue, mut arrivals) = mpsc::unbounded_channel::<Pending>();
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            // A slot first: while every slot is busy, arrivals gather into the next batch.
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let Some(first) = arrivals.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match arrivals.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let pool = pool.clone();
            tokio::spawn(async move {
                write(&pool, batch).await;
                drop(slot);
            });
        }
    });
    queue
}

async fn write(pool: &PgPool, batch: Vec<Pending>) {
    let rows: Vec<(Uuid, Row)> = batch.iter().map(|p| (p.id, p.row.clone())).collect();
    match insert(pool, rows).await {
        Ok(stored) => {
            for pending in batch {
                let found = stored.contains(&pending.id).then_some(pending.id);
                let _ = pending.answer.send(Ok(found));
            }
        }
        Err(_) if batch.len() > 1 => {
            for pending in batch {
                let result = insert(pool, vec![(pending.id, pending.row)]).await;
                let _ = pending.answer.send(result.map(|stored| stored.first().copied()));
            }
        }
        Err(error) => {
            for pending in batch {
                let _ = pending.answer.send(Err(clone_error(&error)));
            }
        }
    }
}

/// `sqlx::Error` is not `Clone`; the callers only report it.
fn clone_error(error: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(error.to_string())
}

/// One statement for the whole batch; returns the ids it stored (the rest
/// were duplicates of a stored verified delivery, or of an earlier row of
/// the batch).
async fn insert(pool: &PgPool, rows: Vec<(Uuid, Row)>) -> Result<Vec<Uuid>, sqlx::Error> {
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut integrations = Vec::with_capacity(n);
    let mut request_ids = Vec::with_capacity(n);
    let mut event_keys = Vec::with_capacity(n);
    let mut repository_ids = Vec::with_capacity(n);
    let mut repository_names = Vec::with_capacity(n);
    let mut signatures = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut reasons = Vec::with_capacity(n);
    let mut headers = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    for (id, row) in rows {
        let (repository_id, repository_name) = row.repository.unzip();
        ids.push(id);
        integrations.push(row.integration);
        request_ids.push(row.request_id);
        event_keys.push(row.event_key);
        repository_ids.push(repository_id);
        repository_names.push(repository_name);
        signatures.push(row.signature.to_owned());
        outcomes.push(row.outcome.to_owned());
        reasons.push(row.reason);
        headers.push(row.headers);
        bodies.push(row.body);
        events.push(row.event);
    }
    sqlx::query_scalar!(
        r#"INSERT INTO webhook_deliveries (id, integration_id, request_id, event_key, repository_id, repository_name,
                                          signature, outcome, reason, headers, body, event)
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                                $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::jsonb[])
           ON CONFLICT (integration_id, request_id)
               WHERE request_id IS NOT NULL AND signature IN ('valid', 'valid_previous') AND outcome <> 'duplicate'
           DO NOTHING
           RETURNING id"#,
        &ids,
        &integrations,
        &request_ids as &[Option<String>],
        &event_keys as &[Option<String>],
        &repository_ids as &[Option<String>],
        &repository_names as &[Option<String>],
        &signatures,
        &outcomes,
        &reasons as &[Option<String>],
        &headers,
        &bodies as &[Option<Value>],
        &events as &[Option<Value>],
    )
    .fetch_all(pool)
    .await
}
