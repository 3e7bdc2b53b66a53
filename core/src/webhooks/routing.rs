//! Matching accepted deliveries to the stacks they concern, after the
//! acknowledgement: pushes by repository and branch, pull requests by
//! repository. A push that deletes a tracked branch flags its stacks (and
//! one that creates it again clears the flag).
//!
//! Deliveries are routed in batches, from the database: a process that
//! stored one wakes its router, which routes everything pending (claimed
//! with `FOR UPDATE SKIP LOCKED`, so processes share the work); what a
//! crash leaves behind is routed by the periodic job. Batches keep the
//! stacks' rows out of the acknowledgement's path, where one busy stack
//! would otherwise serialize every delivery.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use serde_json::json;
use uuid::Uuid;

use super::events::Event;
use crate::Services;

/// How many deliveries one batch routes at most.
const BATCH: i64 = 500;

/// One process's router: at most one batch run at a time.
#[derive(Debug, Default)]
pub struct Router {
    running: AtomicBool,
}

/// Asks this process's router to route what is pending, soon. Cheap: a
/// router already running picks the new delivery up in its next batch.
pub fn wake(services: &Services) {
    if services.webhooks.router.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let services = services.clone();
    tokio::spawn(async move {
        // A moment for the deliveries arriving together to share a batch.
        tokio::time::sleep(Duration::from_millis(20)).await;
        loop {
            match route_pending(&services).await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "routing failed; the periodic job will retry");
                    break;
                }
            }
        }
        services.webhooks.router.running.store(false, Ordering::Release);
    });
}

/// Routes one batch of pending deliveries; returns how many.
pub async fn route_pending(services: &Services) -> Result<u64, sqlx::Error> {
    let mut tx = services.pool.begin().await?;
    let pending = sqlx::query!(
        r#"SELECT id, integration_id, event FROM webhook_deliveries
           WHERE routed_at IS NULL AND outcome = 'accepted'
           ORDER BY received_at, id LIMIT $1
           FOR UPDATE SKIP LOCKED"#,
        BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut candidates: HashMap<(Uuid, String), Vec<(Uuid, String)>> = HashMap::new();
    let mut routed = Vec::with_capacity(pending.len());
    let mut last_delivery: HashMap<Uuid, Uuid> = HashMap::new();
    let mut branch_deleted: HashMap<Uuid, bool> = HashMap::new();
    for delivery in &pending {
        let event: Option<Event> = delivery.event.clone().and_then(|value| serde_json::from_value(value).ok());
        let mut matched = Vec::new();
        if let Some(event) = event {
            let key = (delivery.integration_id, event.repository.id.clone());
            if !candidates.contains_key(&key) {
                let stacks = sqlx::query!(
                    "SELECT id, branch FROM stacks WHERE integration_id = $1 AND repository_id = $2",
                    key.0,
                    key.1
                )
                .fetch_all(&mut *tx)
                .await?;
                candidates.insert(key.clone(), stacks.into_iter().map(|s| (s.id, s.branch)).collect());
            }
            for (stack, branch) in candidates.get(&key).map(Vec::as_slice).unwrap_or_default() {
                let change = event.refs.iter().find(|r| r.kind == "branch" && r.name == *branch);
                let triggers = match (&event.pull_request, change) {
                    (Some(_), _) => true,
                    (None, Some(change)) => {
                        let deleted = change.action == "deleted";
                        branch_deleted.insert(*stack, deleted);
                        !deleted
                    }
                    (None, None) => false,
                };
                if triggers {
                    matched.push(*stack);
                    last_delivery.insert(*stack, delivery.id);
                }
            }
        }
        routed.push(json!({"id": delivery.id, "stacks": matched}));
    }
    sqlx::query!(
        r#"UPDATE webhook_deliveries d SET routed_at = now(),
             stacks = ARRAY(SELECT jsonb_array_elements_text(m.stacks)::uuid)
           FROM jsonb_to_recordset($1) AS m(id uuid, stacks jsonb)
           WHERE d.id = m.id"#,
        serde_json::Value::Array(routed)
    )
    .execute(&mut *tx)
    .await?;
    let (stacks, deliveries): (Vec<Uuid>, Vec<Uuid>) = last_delivery.into_iter().unzip();
    sqlx::query!(
        r#"UPDATE stacks s SET last_delivery_id = m.delivery
           FROM unnest($1::uuid[], $2::uuid[]) AS m(stack, delivery) WHERE s.id = m.stack"#,
        &stacks,
        &deliveries
    )
    .execute(&mut *tx)
    .await?;
    let (stacks, flags): (Vec<Uuid>, Vec<bool>) = branch_deleted.into_iter().unzip();
    sqlx::query!(
        r#"UPDATE stacks s SET branch_deleted = m.deleted
           FROM unnest($1::uuid[], $2::boolean[]) AS m(stack, deleted) WHERE s.id = m.stack"#,
        &stacks,
        &flags
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(pending.len() as u64)
}
