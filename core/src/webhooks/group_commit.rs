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

use sqlx::{postgres::PgPoolOptions, PgPool};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use super::{routing::Routed, DeliveryOutcome};
use crate::{
    jobs::{self, JobKind},
    platform::{
        events::{Derived, RunKind},
        feed,
    },
    signal::Signal,
    telemetry,
};

/// Rows written by one statement at most.
const MAX_BATCH: usize = 128;

/// A verified delivery, ready to be stored. The JSON columns come as text
/// (the body as it was received): PostgreSQL parses them into `jsonb`
/// either way, and this spares serializing a parsed value again.
#[derive(Debug)]
pub struct Row {
    pub integration: Uuid,
    pub request_id: Option<String>,
    pub event_key: Option<String>,
    pub repository: Option<(String, String)>,
    pub signature: &'static str,
    pub outcome: DeliveryOutcome,
    pub reason: Option<String>,
    pub headers: String,
    pub body: Option<String>,
    pub event: Option<String>,
    /// What it does to stacks, written with it.
    pub routed: Routed,
}

/// `Some(id)` when stored; `None` when a verified delivery with the same
/// request id was stored before (a duplicate).
type Stored = Result<Option<Uuid>, sqlx::Error>;

struct Pending {
    id: Uuid,
    row: Row,
    answer: oneshot::Sender<Stored>,
}

/// One process's writer, started on first use: two queues, each batching
/// what it is sent.
#[derive(Debug, Default)]
pub struct Writer {
    /// Deliveries that concern no stack, written [`LANES`] batches at a time.
    plain: OnceLock<mpsc::UnboundedSender<Pending>>,
    /// Deliveries that concern stacks, one batch at a time.
    routed: OnceLock<mpsc::UnboundedSender<Pending>>,
}

impl Writer {
    /// Stores `row` with the deliveries arriving at the same time; returns
    /// once the row is committed (or known to be a duplicate). The events
    /// feed's readers (`events`) hear of the events it made.
    pub async fn store(&self, pool: &PgPool, events: &Signal, row: Row) -> Stored {
        let queue = if row.routed.concerns_stacks() {
            self.routed.get_or_init(|| start(pool, events.clone(), 1))
        } else {
            self.plain.get_or_init(|| start(pool, events.clone(), LANES))
        };
        let (answer, answered) = oneshot::channel();
        // Time-ordered (UUIDv7), like the events' ids: each batch adds its
        // keys at the right edge of the primary keys (and of the events'
        // delivery index) instead of on random pages, which cost every
        // insert a page read and, after a checkpoint, a full page in the
        // WAL. At 16 clients, ingest +6 to +38 % in three A/B rounds
        // (scripts/bench-webhooks), no change at 8.
        let id = Uuid::now_v7();
        if let Err(refused) = queue.send(Pending { id, row, answer }) {
            // The writer's task is gone (its runtime is shutting down):
            // store this one alone rather than lose it.
            let row = refused.0.row;
            let stored = insert(pool, &[(id, &row)]).await?;
            if made_events(&row, id, &stored) {
                events.announce(pool, feed::CHANNEL);
            }
            return Ok(stored.first().copied());
        }
        answered.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }
}

/// How many batches of deliveries that concern no stack are written at once,
/// each on a connection of its own.
///
/// One batch at a time left the machine 42 % idle in `scripts/bench-webhooks`'
/// 8-client phase (`BENCH_PROFILE`): a batch is one statement, run by one
/// PostgreSQL process on one core, and the deliveries arriving meanwhile
/// waited for its commit before theirs was even sent. With two lanes a
/// batch starts as soon as one is free, and the deliveries arriving while
/// both are busy make the next one, so batches still grow with the load.
/// (Two lanes still leave it 32 % idle there, pgbench 12 %.) Four lanes
/// were slower: 0.65 against 0.72 of pgbench at 8 clients (smaller batches,
/// more commits), 1.10 against 1.09 at 16, three A/B rounds.
///
/// Deliveries that concern stacks keep one lane: their batches lock the same
/// stack rows. When those batches still wrote the stack's row (its last
/// delivery), a second lane only waited for the first's row locks, with
/// smaller batches (0.37 of pgbench against 0.43 with one lane at 8
/// clients, every delivery triggering one stack, in the same run). Two lanes
/// that only share-lock the stack (`FOR KEY SHARE`, the last delivery read
/// from the latest event instead of written, as now) were slower than one lane
/// that wrote it:
/// 0.51 against 0.55 at 8 clients, 0.74 against 0.81 at 16, in one run (a
/// lock is a write of the stack's row too, and two batches' locks on it a
/// MultiXact). Nor were two lanes with no lock and no write of the stack at
/// all (its existence read from the batch's snapshot), the most two lanes
/// could give: a stack 0.53 against 0.57 of pgbench at 8 clients, 0.72
/// against 0.72 at 16, three rounds each. A routed batch's cost is its
/// events' inserts, work for the cores, which a second lane does not add.
const LANES: usize = 2;

/// Starts a writer of `lanes` batches at a time: a batch is gathered when a
/// lane is free, from what arrived meanwhile. The writer's connections are
/// its own, not checked before each batch (the application's pool pings
/// every connection it lends): a connection that broke fails one batch,
/// answered 503, and the next batch opens another.
fn start(pool: &PgPool, events: Signal, lanes: usize) -> mpsc::UnboundedSender<Pending> {
    let announcer = Arc::new(Announcer { pool: pool.clone(), events });
    let own = PgPoolOptions::new()
        .max_connections(lanes as u32)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .idle_timeout(pool.options().get_idle_timeout())
        .connect_lazy_with((*pool.connect_options()).clone());
    let free = Arc::new(Semaphore::new(lanes));
    let (queue, mut arrivals) = mpsc::unbounded_channel::<Pending>();
    tokio::spawn(async move {
        while let Some(first) = arrivals.recv().await {
            let Ok(lane) = free.clone().acquire_owned().await else { return };
            let mut batch = vec![first];
            gather(&mut arrivals, &mut batch).await;
            let (own, announcer) = (own.clone(), announcer.clone());
            tokio::spawn(async move {
                write(&own, &announcer, batch).await;
                drop(lane);
            });
        }
    });
    queue
}

/// Adds to `batch` the deliveries handed over while the tasks that are
/// ready to run now run. A handler's hand-over wakes this task first (tokio
/// runs a task woken by another next on its worker), before the handlers
/// of the requests that arrived with it, so what was queued at that moment
/// was often that one delivery: a commit of its own. Yielding lets them run
/// and hand theirs over; the gathering goes on while each turn brings more
/// (a turn of the scheduler's own upkeep can end it early: the next batch
/// takes the rest). With one delivery at a time it costs one turn of the
/// scheduler. No stack, `scripts/bench-webhooks`, the build before against
/// this one, three rounds: at 8 clients 2.5 rows a commit became 3.1, and
/// ingest 0.80 of pgbench 0.83; at 16 clients 4.7 rows became 6.4, and 0.98
/// became 1.11. At 1 client this build was 6 % slower in two such runs (p50
/// +25 to +40 µs), while one binary with and without the yield measured the
/// same within noise (+0.4 %, -2 %): not separated from the machine's noise.
/// Two turns were worth as much as eight; one gave fewer rows a commit.
async fn gather(arrivals: &mut mpsc::UnboundedReceiver<Pending>, batch: &mut Vec<Pending>) {
    loop {
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match arrivals.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if batch.len() == before || batch.len() == MAX_BATCH {
            return;
        }
    }
}

/// Tells the events feed's readers of the events a batch made, through the
/// application's pool (the writer's own connection is for batches only).
struct Announcer {
    pool: PgPool,
    events: Signal,
}

impl Announcer {
    fn announce(&self) {
        self.events.announce(&self.pool, feed::CHANNEL);
    }
}

/// Writes a batch and answers its deliveries; announces the events it
/// made (the statement that stores them notifies nobody: one notification
/// per batch was too many, see [`Signal::announce`]).
async fn write(pool: &PgPool, announcer: &Announcer, batch: Vec<Pending>) {
    let rows: Vec<(Uuid, &Row)> = batch.iter().map(|p| (p.id, &p.row)).collect();
    let result = insert(pool, &rows).await;
    drop(rows);
    match result {
        Ok(stored) => {
            if batch.iter().any(|pending| made_events(&pending.row, pending.id, &stored)) {
                announcer.announce();
            }
            for pending in batch {
                let found = stored.contains(&pending.id).then_some(pending.id);
                let _ = pending.answer.send(Ok(found));
            }
        }
        Err(_) if batch.len() > 1 => {
            for pending in batch {
                let result = insert(pool, &[(pending.id, &pending.row)]).await;
                if matches!(&result, Ok(stored) if made_events(&pending.row, pending.id, stored)) {
                    announcer.announce();
                }
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

/// Whether `row`, stored as `id`, made events (a duplicate makes none).
fn made_events(row: &Row, id: Uuid, stored: &[Uuid]) -> bool {
    !row.routed.events.is_empty() && stored.contains(&id)
}

/// `sqlx::Error` is not `Clone`; the callers only report it.
fn clone_error(error: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(error.to_string())
}

/// One statement for the whole batch, routing included: it stores the rows
/// and, when some concern stacks, stores the events they make (for the rows
/// it stored and the stacks that still exist: an event exists exactly when
/// its delivery and its stack do; one naming a Cloud short commit id held,
/// its resolution queued in the same transaction) and sets the branch flags
/// they change (the batch's latest wins). A stack's last triggering
/// delivery is its latest event's ([`crate::stacks`]), not written here.
/// Returns the ids it stored (the rest were duplicates of a stored verified
/// delivery, or of an earlier row of the batch).
async fn insert(pool: &PgPool, rows: &[(Uuid, &Row)]) -> Result<Vec<Uuid>, sqlx::Error> {
    let stored = insert_batch(pool, rows).await?;
    let made = rows.iter().filter(|(id, _)| stored.contains(id)).map(|(_, row)| row.routed.events.len()).sum();
    telemetry::events_written(made);
    Ok(stored)
}

/// [`insert`]'s statement (or, when events wait on a commit, transaction).
async fn insert_batch(pool: &PgPool, rows: &[(Uuid, &Row)]) -> Result<Vec<Uuid>, sqlx::Error> {
    let column = |f: fn(&Row) -> Option<&str>| rows.iter().map(|(_, row)| f(row)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let integrations: Vec<Uuid> = rows.iter().map(|(_, row)| row.integration).collect();
    let request_ids = column(|r| r.request_id.as_deref());
    let event_keys = column(|r| r.event_key.as_deref());
    let repository_ids = column(|r| r.repository.as_ref().map(|(id, _)| id.as_str()));
    let repository_names = column(|r| r.repository.as_ref().map(|(_, name)| name.as_str()));
    let signatures = column(|r| Some(r.signature));
    let outcomes = column(|r| Some(r.outcome.as_str()));
    let reasons = column(|r| r.reason.as_deref());
    let headers = column(|r| Some(r.headers.as_str()));
    let bodies = column(|r| r.body.as_deref());
    let events = column(|r| r.event.as_deref());
    let mut made = Made::default();
    let mut flags = Flags::default();
    for (id, row) in rows {
        for (stack, derived) in &row.routed.events {
            made.push(*stack, *id, row, derived);
        }
        for (stack, deleted) in &row.routed.branch_deleted {
            flags.push(*stack, *id, *deleted);
        }
    }
    // The stacks the batch names, locked against their deletion (below).
    let mut touched: Vec<Uuid> = made.stacks.iter().chain(&flags.stacks).copied().collect();
    touched.sort_unstable();
    touched.dedup();
    if touched.is_empty() {
        // Most batches concern no stack: then a plain insert, which costs
        // the database about half what the routing statement costs (one
        // row: 0.11 ms against 0.20 ms, pg_stat_statements, PostgreSQL 15).
        return sqlx::query_scalar!(
            r#"INSERT INTO webhook_deliveries (id, integration_id, request_id, event_key, repository_id, repository_name,
                                               signature, outcome, reason, headers, body, event)
               SELECT id, integration_id, request_id, event_key, repository_id, repository_name, signature, outcome,
                      reason, headers::jsonb, body::jsonb, event::jsonb
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
                    AS t (id, integration_id, request_id, event_key, repository_id, repository_name, signature, outcome,
                          reason, headers, body, event)
               ON CONFLICT (integration_id, request_id)
                   WHERE request_id IS NOT NULL AND signature IN ('valid', 'valid_previous') AND outcome <> 'duplicate'
               DO NOTHING
               RETURNING id"#,
            &ids,
            &integrations,
            &request_ids as &[Option<&str>],
            &event_keys as &[Option<&str>],
            &repository_ids as &[Option<&str>],
            &repository_names as &[Option<&str>],
            &signatures as &[Option<&str>],
            &outcomes as &[Option<&str>],
            &reasons as &[Option<&str>],
            &headers as &[Option<&str>],
            &bodies as &[Option<&str>],
            &events as &[Option<&str>],
        )
        .fetch_all(pool)
        .await;
    }
    // Each row's stacks as an array literal: UNNEST cannot take one array per row.
    let stacks: Vec<String> = rows
        .iter()
        .map(|(_, row)| {
            let ids: Vec<String> = row.routed.stacks.iter().map(Uuid::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    let statement = sqlx::query_scalar!(
        r#"WITH stored AS (
               INSERT INTO webhook_deliveries (id, integration_id, request_id, event_key, repository_id, repository_name,
                                               signature, outcome, reason, headers, body, event, stacks)
               SELECT id, integration_id, request_id, event_key, repository_id, repository_name, signature, outcome,
                      reason, headers::jsonb, body::jsonb, event::jsonb, stacks::uuid[]
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
                    AS t (id, integration_id, request_id, event_key, repository_id, repository_name, signature, outcome,
                          reason, headers, body, event, stacks)
               ON CONFLICT (integration_id, request_id)
                   WHERE request_id IS NOT NULL AND signature IN ('valid', 'valid_previous') AND outcome <> 'duplicate'
               DO NOTHING
               RETURNING id
           ), locked AS (
               -- The stacks stay until this commits: a stack deleted
               -- meanwhile waits for it, and its trigger then deletes the
               -- events written here (its statement, under READ COMMITTED,
               -- sees them once this has committed). One that is gone
               -- already (a process's routes lag a deletion in another), or
               -- whose deletion this waited for, is not found: its events
               -- are dropped, not the batch. A share lock makes no new row
               -- version and no index or foreign-key work; updating the row
               -- (its last triggering delivery, as this statement did) cost
               -- a routed batch more than its events.
               SELECT id FROM stacks WHERE id = ANY ($14::uuid[]) FOR KEY SHARE
           ), flagged AS (
               -- A push to a stack's branch says whether it exists: the row
               -- is written only when that changes the flag, which is rare.
               UPDATE stacks s SET branch_deleted = f.deleted
               FROM (SELECT DISTINCT ON (f.stack) f.stack, f.deleted
                     FROM UNNEST($15::uuid[], $16::uuid[], $17::boolean[]) WITH ORDINALITY
                          AS f (stack, delivery, deleted, position)
                     WHERE f.delivery = ANY (ARRAY(SELECT id FROM stored))
                     ORDER BY f.stack, f.position DESC) f
               -- (Joined to `locked` so that the lock is taken before this
               -- writes the row: a row this statement has written already
               -- can no longer be locked by it.)
               WHERE s.id = f.stack AND s.id = ANY (ARRAY(SELECT id FROM locked))
                 AND s.branch_deleted IS DISTINCT FROM f.deleted
           ), made AS (
               INSERT INTO events (id, stack_id, delivery_id, integration_id, repository_id, repository_name, type, kind,
                                   resync, branch, commit, pull_request, held)
               SELECT m.id, m.stack, m.delivery, m.integration, m.repository_id, m.repository_name, m.type, m.kind, m.resync,
                      m.branch, m.commit, m.pull_request::jsonb,
                      -- Cloud's short commit ids: held until resolved (migrations;
                      -- the same test as `Made::held`).
                      coalesce(length(m.commit) < 40, false)
               FROM UNNEST($18::uuid[], $19::uuid[], $20::uuid[], $21::text[], $22::text[], $23::text[], $24::text[],
                           $25::boolean[], $26::text[], $27::text[], $28::text[], $29::uuid[]) WITH ORDINALITY
                    AS m (stack, delivery, integration, repository_id, repository_name, type, kind, resync, branch,
                          commit, pull_request, id, position)
               WHERE m.delivery = ANY (ARRAY(SELECT id FROM stored))
                 AND m.stack = ANY (ARRAY(SELECT id FROM locked))
               ORDER BY m.position
           )
           -- (`= ANY (ARRAY(…))`, not `IN (SELECT …)`: a batch is at most
           -- 128 rows, too few to pay for the hash table IN builds.)
           SELECT id AS "id!" FROM stored"#,
        &ids,
        &integrations,
        &request_ids as &[Option<&str>],
        &event_keys as &[Option<&str>],
        &repository_ids as &[Option<&str>],
        &repository_names as &[Option<&str>],
        &signatures as &[Option<&str>],
        &outcomes as &[Option<&str>],
        &reasons as &[Option<&str>],
        &headers as &[Option<&str>],
        &bodies as &[Option<&str>],
        &events as &[Option<&str>],
        &stacks,
        &touched,
        &flags.stacks,
        &flags.deliveries,
        &flags.deleted,
        &made.stacks,
        &made.deliveries,
        &made.integrations,
        &made.repository_ids as &[&str],
        &made.repository_names as &[&str],
        &made.types as &[&str],
        &made.kinds as &[Option<&str>],
        &made.resyncs,
        &made.branches as &[&str],
        &made.commits as &[Option<String>],
        &made.pull_requests as &[Option<String>],
        &made.ids,
    );
    if made.held.is_empty() {
        return statement.fetch_all(pool).await;
    }
    // Rare (Cloud's pull requests): the jobs that resolve the held events'
    // commits are queued in the same transaction, by a statement of their
    // own, so that the common batch's statement inserts into no other table.
    let mut tx = pool.begin().await?;
    let stored = statement.fetch_all(&mut *tx).await?;
    for (delivery, integration) in made.held.iter().filter(|(delivery, _)| stored.contains(delivery)) {
        let payload = serde_json::json!({"delivery": delivery, "integration": integration});
        let key = format!("resolve_commit:{delivery}");
        jobs::enqueue_outbound(&mut *tx, JobKind::ResolveCommit, payload, &key).await?;
    }
    tx.commit().await?;
    Ok(stored)
}

/// The events a batch makes, in the batch's order: columns for UNNEST.
#[derive(Default)]
struct Made<'a> {
    /// Time-ordered, as the deliveries' ([`Writer::store`]).
    ids: Vec<Uuid>,
    stacks: Vec<Uuid>,
    deliveries: Vec<Uuid>,
    integrations: Vec<Uuid>,
    repository_ids: Vec<&'a str>,
    repository_names: Vec<&'a str>,
    types: Vec<&'static str>,
    kinds: Vec<Option<&'static str>>,
    resyncs: Vec<bool>,
    branches: Vec<&'a str>,
    commits: Vec<Option<String>>,
    pull_requests: Vec<Option<String>>,
    /// The deliveries (with their integration) whose events name a commit
    /// by a prefix: held until a job resolves it.
    held: Vec<(Uuid, Uuid)>,
}

impl<'a> Made<'a> {
    fn push(&mut self, stack: Uuid, delivery: Uuid, row: &'a Row, derived: &'a Derived) {
        // Events come of accepted deliveries, which always name their repository.
        let (repository_id, repository_name) =
            row.repository.as_ref().map(|(id, name)| (id.as_str(), name.as_str())).unwrap_or_default();
        self.ids.push(Uuid::now_v7());
        self.stacks.push(stack);
        self.deliveries.push(delivery);
        self.integrations.push(row.integration);
        self.repository_ids.push(repository_id);
        self.repository_names.push(repository_name);
        self.types.push(derived.event_type.as_str());
        self.kinds.push(derived.kind.map(RunKind::as_str));
        self.resyncs.push(derived.resync);
        self.branches.push(&derived.branch);
        self.commits.push(derived.commit.clone());
        let short = derived.commit.as_ref().is_some_and(|commit| commit.len() < 40);
        if short && !self.held.contains(&(delivery, row.integration)) {
            self.held.push((delivery, row.integration));
        }
        self.pull_requests.push(derived.pull_request.as_ref().and_then(|pr| serde_json::to_string(pr).ok()));
    }
}

/// The branch flags a batch changes, one entry per (delivery, stack), in
/// the batch's order (the latest wins): columns for UNNEST.
#[derive(Default)]
struct Flags {
    stacks: Vec<Uuid>,
    deliveries: Vec<Uuid>,
    deleted: Vec<bool>,
}

impl Flags {
    fn push(&mut self, stack: Uuid, delivery: Uuid, deleted: bool) {
        self.stacks.push(stack);
        self.deliveries.push(delivery);
        self.deleted.push(deleted);
    }
}
