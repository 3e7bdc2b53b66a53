//! Matching accepted deliveries to the stacks they concern, after the
//! acknowledgement: pushes by repository and branch, pull requests by
//! repository. A push that deletes a tracked branch flags its stacks (and
//! one that creates it again clears the flag). Runs right after a delivery
//! is stored and, for anything a crash left unrouted, as a periodic job.

use uuid::Uuid;

use super::events::Event;
use crate::Services;

/// Routes one delivery, unless another process is at it or did it.
/// Returns the stacks it matched.
pub async fn route(services: &Services, delivery: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = services.pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT integration_id, event FROM webhook_deliveries
           WHERE id = $1 AND routed_at IS NULL AND outcome = 'accepted'
           FOR UPDATE SKIP LOCKED"#,
        delivery
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(Vec::new()) };
    let event: Option<Event> = row.event.and_then(|value| serde_json::from_value(value).ok());
    let mut matched = Vec::new();
    if let Some(event) = event {
        let stacks = sqlx::query!(
            "SELECT id, branch FROM stacks WHERE integration_id = $1 AND repository_id = $2",
            row.integration_id,
            event.repository.id
        )
        .fetch_all(&mut *tx)
        .await?;
        for stack in stacks {
            let change = event.refs.iter().find(|r| r.kind == "branch" && r.name == stack.branch);
            let matches = match (&event.pull_request, change) {
                (Some(_), _) => true,
                (None, Some(change)) => {
                    let deleted = change.action == "deleted";
                    sqlx::query!("UPDATE stacks SET branch_deleted = $2 WHERE id = $1", stack.id, deleted)
                        .execute(&mut *tx)
                        .await?;
                    !deleted
                }
                (None, None) => false,
            };
            if matches {
                matched.push(stack.id);
            }
        }
    }
    sqlx::query!("UPDATE webhook_deliveries SET stacks = $2, routed_at = now() WHERE id = $1", delivery, &matched)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("UPDATE stacks SET last_delivery_id = $2 WHERE id = ANY($1)", &matched, delivery)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(matched)
}

/// The periodic job: routes what is left unrouted (a process died between
/// the acknowledgement and the routing). Returns how many it routed.
pub async fn route_pending(services: &Services) -> Result<u64, sqlx::Error> {
    let pending = sqlx::query_scalar!(
        r#"SELECT id FROM webhook_deliveries WHERE routed_at IS NULL AND outcome = 'accepted'
           ORDER BY received_at LIMIT 500"#
    )
    .fetch_all(&services.pool)
    .await?;
    let mut routed = 0;
    for id in pending {
        route(services, id).await?;
        routed += 1;
    }
    Ok(routed)
}
