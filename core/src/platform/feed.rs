//! The events feed the platform follows (`GET /api/v1/events?after=&wait=`):
//! events in the order they become readable, after a cursor, answered at
//! once when some follow it and otherwise after waiting for one.
//!
//! **The order.** An event's sequence number is taken when it is written,
//! not when its transaction commits: two writers can commit 8 before 7,
//! and a reader that saw 8 and moved its cursor past 7 would never see 7.
//! So events are read in `(tx, seq)` order (`tx` where the writing
//! transaction stands, below) and only those whose transaction is older
//! than every transaction still running (the horizon: `pg_snapshot_xmin` of
//! the reading statement's snapshot). Any transaction that can still commit
//! stands at least at that horizon, so nothing can later appear behind a
//! cursor taken from this feed. An event committed while an older
//! transaction still runs waits until that one ends (milliseconds for
//! Bitgate's own writes); the wait re-reads shortly in that case, as no
//! notification will come for it.
//!
//! **Positions, not ids.** Transaction ids belong to a cluster, and a
//! backup can be restored onto another whose ids are lower. So `tx` and the
//! horizon are the ids plus the feed's offset (`feed_position()`,
//! `feed_horizon()` in the database), which `bitgate restore` raises above
//! every position the installation gave ([`crate::db::backup`]): restored
//! events are readable at once, and a cursor from before the restore still
//! comes before every new event.
//!
//! **Waking.** Each process listens to [`CHANNEL`] once and wakes its
//! waiting readers through a [`Signal`]. Writers of events notify it: the
//! group commit after its batches commit ([`Signal::announce`]: its own
//! process's readers at once, the others' within 10 ms, one notification
//! for a burst), the rarer writers with their transaction.

use std::{fmt, str::FromStr, time::Duration};

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use super::events::{EventType, PullRequestRef, RunKind};
use crate::{signal::Signal, spaces::SpaceId, stacks::StackId};

/// Notified when events become readable.
pub const CHANNEL: &str = "bitgate_events";
/// The longest a reader may wait for an event (SPEC: 30 s).
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// How soon a reader looks again when events are committed but not yet
/// readable (an older transaction still runs).
const PENDING_RECHECK: Duration = Duration::from_millis(5);
/// How often a waiting reader reads again without a notification.
const UNNOTIFIED_RECHECK: Duration = Duration::from_secs(1);

/// A position in the feed: after the event `seq` of transaction `tx`.
/// Written `{tx}.{seq}`; the empty cursor is the beginning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    tx: i64,
    seq: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.tx, self.seq)
    }
}

/// A cursor that is not one this feed gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Pass a next_cursor this feed answered, or nothing to start from the oldest event kept.")]
pub struct BadCursor;

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(raw: &str) -> Result<Self, BadCursor> {
        let (tx, seq) = raw.split_once('.').ok_or(BadCursor)?;
        let number = |part: &str| {
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadCursor);
            }
            part.parse::<i64>().map_err(|_| BadCursor)
        };
        Ok(Cursor { tx: number(tx)?, seq: number(seq)? })
    }
}

/// An event as the platform reads it (SPEC's appendix, "An event is read as").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// `run.requested` only (left out otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<RunKind>,
    /// `run.requested` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resync: Option<bool>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub stack_id: StackId,
    pub integration_id: Uuid,
    /// Null for a poll.
    pub delivery_id: Option<Uuid>,
    pub repository: Repository,
    pub branch: String,
    pub commit: Option<String>,
    pub pull_request: Option<PullRequestRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repository {
    pub id: String,
    pub name: String,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub after: Cursor,
    /// 1 to 500.
    pub limit: i64,
    pub stack_id: Option<StackId>,
    pub event_type: Option<EventType>,
}

/// One answer of the feed.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Event>,
    /// Where to read next, also when `items` is empty.
    pub next_cursor: Cursor,
    /// Events after the cursor are committed but not yet readable.
    pub pending: bool,
}

/// Reads once: the events after `query.after` of the stacks in `spaces`
/// (`None`: every stack; the operator's), as far as they are readable.
pub async fn read(db: impl PgExecutor<'_>, spaces: Option<&[SpaceId]>, query: &Query) -> Result<Page, sqlx::Error> {
    // One statement: the horizon is that of the snapshot the rows are read
    // with. One row more than asked tells whether the page is full.
    let rows = sqlx::query!(
        r#"WITH horizon AS (SELECT feed_horizon() AS xmin)
           SELECT h.xmin::text::bigint AS "horizon!", e.id AS "id?", e.seq AS "seq?", e.tx::text::bigint AS "tx?",
                  e.at AS "at?", e.type AS "event_type?", e.kind, e.resync AS "resync?", e.stack_id AS "stack_id?",
                  e.integration_id AS "integration_id?", e.delivery_id, e.repository_id AS "repository_id?",
                  e.repository_name AS "repository_name?", e.branch AS "branch?", e.commit, e.pull_request
           FROM horizon h LEFT JOIN LATERAL (
               SELECT e.* FROM events e JOIN stacks s ON s.id = e.stack_id
               WHERE (e.tx, e.seq) > ($1::text::xid8, $2) AND NOT e.held
                 AND ($3::uuid[] IS NULL OR s.space_id = ANY($3))
                 AND ($4::uuid IS NULL OR e.stack_id = $4)
                 AND ($5::text IS NULL OR e.type = $5)
               ORDER BY e.tx, e.seq
               LIMIT $6
           ) e ON true
           ORDER BY e.tx, e.seq"#,
        query.after.tx.to_string(),
        query.after.seq,
        spaces as Option<&[SpaceId]>,
        query.stack_id,
        query.event_type.map(EventType::as_str),
        query.limit + 1
    )
    .fetch_all(db)
    .await?;
    let horizon = rows.first().map(|row| row.horizon).unwrap_or_default();
    let mut items = Vec::new();
    let mut last = query.after;
    let mut pending = false;
    let mut full = false;
    for row in rows {
        let (Some(id), Some(seq), Some(tx)) = (row.id, row.seq, row.tx) else { continue };
        if tx >= horizon {
            // Committed, but an older transaction may still commit events
            // before it: not readable yet.
            pending = true;
            break;
        }
        if items.len() as i64 == query.limit {
            full = true;
            break;
        }
        let event_type = row.event_type.as_deref().and_then(EventType::parse).unwrap_or(EventType::RunRequested);
        let kind = row.kind.as_deref().and_then(RunKind::parse);
        items.push(Event {
            id,
            event_type,
            kind,
            resync: kind.map(|_| row.resync.unwrap_or_default()),
            at: row.at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            stack_id: row.stack_id.unwrap_or_default(),
            integration_id: row.integration_id.unwrap_or_default(),
            delivery_id: row.delivery_id,
            repository: Repository {
                id: row.repository_id.unwrap_or_default(),
                name: row.repository_name.unwrap_or_default(),
            },
            branch: row.branch.unwrap_or_default(),
            commit: row.commit,
            pull_request: row.pull_request.and_then(|value: Value| serde_json::from_value(value).ok()),
        });
        last = Cursor { tx, seq };
    }
    // Every matching event of a transaction below the horizon has been
    // read, unless the page is full: the next reader may start at the
    // horizon (and skips every event the filters left out on the way).
    let next_cursor = if full || pending { last } else { last.max(Cursor { tx: horizon, seq: 0 }) };
    Ok(Page { items, next_cursor, pending })
}

/// The position after every event readable now: where a reader that
/// wants only what comes next starts.
pub async fn head(db: impl PgExecutor<'_>) -> Result<Cursor, sqlx::Error> {
    let horizon = sqlx::query_scalar!(r#"SELECT feed_horizon()::text::bigint AS "horizon!""#).fetch_one(db).await?;
    Ok(Cursor { tx: horizon, seq: 0 })
}

/// Reads, and while nothing is readable waits up to `wait` for events,
/// waking on `signal`.
pub async fn follow(
    pool: &PgPool,
    signal: &Signal,
    spaces: Option<&[SpaceId]>,
    query: Query,
    wait: Duration,
) -> Result<Page, sqlx::Error> {
    let deadline = Instant::now() + wait.min(MAX_WAIT);
    let mut woken = signal.subscribe();
    let mut query = query;
    let mut waiting = None;
    loop {
        // Marked seen before reading: a notification that comes during the
        // read wakes the next wait.
        woken.borrow_and_update();
        let page = read(pool, spaces, &query).await?;
        let now = Instant::now();
        if !page.items.is_empty() || now >= deadline {
            return Ok(page);
        }
        query.after = page.next_cursor;
        // Counted among the waiting readers until it answers.
        waiting.get_or_insert_with(crate::telemetry::FeedWaiter::start);
        // Without a notification, read again after a while all the same
        // (one may be missed while the listening connection reconnects),
        // and soon when committed events wait for an older transaction.
        let recheck = if page.pending { PENDING_RECHECK } else { UNNOTIFIED_RECHECK };
        let _ = tokio::time::timeout_at((now + recheck).min(deadline), woken.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_as_written_and_refuse_anything_else() {
        let cursor = Cursor { tx: 748, seq: 1042 };
        assert_eq!(cursor.to_string(), "748.1042");
        assert_eq!("748.1042".parse::<Cursor>(), Ok(cursor));
        assert_eq!("0.0".parse::<Cursor>(), Ok(Cursor::default()));
        for bad in ["", "748", "748.", ".5", "a.b", "-1.2", "1.-2", "1.2.3", " 1.2", "99999999999999999999.1", "+1.2"] {
            assert_eq!(bad.parse::<Cursor>(), Err(BadCursor), "{bad:?}");
        }
    }

    #[test]
    fn cursors_order_by_transaction_first() {
        assert!(Cursor { tx: 5, seq: 100 } < Cursor { tx: 6, seq: 1 });
        assert!(Cursor { tx: 5, seq: 1 } < Cursor { tx: 5, seq: 2 });
    }
}
