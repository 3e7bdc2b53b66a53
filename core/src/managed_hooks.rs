//! Bitgate's webhook in each repository an integration's stacks use
//! (SPEC.md, "Webhooks managed by Bitgate, and polling"): what is known of
//! each one (the `repository_hooks` rows), when a repository is reconciled,
//! and who may see and repair them. The reconciler is in [`reconcile`], the
//! calls to Bitbucket in [`crate::bitbucket::repository_hooks`].
//!
//! A repository is reconciled by its job (`hooks.reconcile`, one per
//! integration and repository, claimed like every job, which is what keeps
//! two processes from reconciling it at once): queued when a stack is
//! created, moved or deleted and when its integration changes; every hour
//! for every repository; and run at once, in the request, for every
//! repository of an integration when its secret rotates and on Repair.

pub mod polling;
pub mod reconcile;

use serde_json::json;
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;

use crate::{
    audit::{self, AuditAction},
    integrations::{
        operations::{audit_event, load_for, IntegrationError, Purpose},
        IntegrationId,
    },
    jobs::{self, JobKind},
    principal::Principal,
    text_enum::text_enum,
    Services,
};

text_enum! {
    /// What the reconciler found of Bitgate's hook in a repository.
    pub enum HookState {
        /// There, as it should be, and (Data Center) its last delivery passed.
        Installed = "installed",
        /// Not there, and management is off or Bitbucket refused to create it.
        Missing = "missing",
        /// There, but not as it should be, and management is off or
        /// Bitbucket refused the change.
        Differs = "differs",
        /// There and as it should be, but Data Center's last delivery failed.
        Failing = "failing",
        /// Bitbucket refused to show or change the repository's hooks: the
        /// message says what to grant.
        NotPermitted = "not_permitted",
        /// The integration does not use webhooks (`disable_webhooks`).
        NotManaged = "not_managed",
    }
}

/// A hook's state, with what it means in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStatus {
    pub state: HookState,
    pub message: String,
}

/// One repository of an integration and its hook, as last checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryHook {
    pub repository_id: String,
    pub repository_name: String,
    /// How many stacks use it; none: its hook is about to be deleted.
    pub stacks: i64,
    /// `None`: not checked yet.
    pub status: Option<HookStatus>,
    pub checked_at: Option<OffsetDateTime>,
    /// Its branch heads are read every `BITGATE_POLL_INTERVAL` (no working hook).
    pub polled: bool,
}

/// The unique key of a repository's reconcile job.
fn job_key(integration: IntegrationId, repository_id: &str) -> String {
    format!("hooks:{integration}:{repository_id}")
}

/// Queues the reconciling of one repository; when it is under way
/// already, it runs once more after (it may have read the stacks before
/// the caller's change).
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    integration: IntegrationId,
    repository_id: &str,
) -> Result<(), sqlx::Error> {
    let payload = json!({"integration": integration, "repository": repository_id});
    jobs::enqueue_rerun(db, JobKind::ReconcileHook, payload, &job_key(integration, repository_id)).await
}

/// The repositories to reconcile for an integration: those its stacks use
/// and those it has a hook in (whose last stack may have gone).
async fn repositories(db: impl PgExecutor<'_>, integration: IntegrationId) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT repository_id AS "repository_id!" FROM stacks WHERE integration_id = $1
           UNION SELECT repository_id FROM repository_hooks WHERE integration_id = $1"#,
        integration
    )
    .fetch_all(db)
    .await
}

/// Queues every repository of an integration (its options or credential
/// changed: `integrations::update`, a test passed, Repair); returns their
/// job keys.
pub async fn enqueue_integration(
    tx: &mut PgConnection,
    integration: IntegrationId,
) -> Result<Vec<String>, sqlx::Error> {
    let repositories = repositories(&mut *tx, integration).await?;
    for repository in &repositories {
        enqueue(&mut *tx, integration, repository).await?;
    }
    Ok(repositories.iter().map(|repository| job_key(integration, repository)).collect())
}

/// Queues every repository of every integration: the hourly scan. Returns
/// how many were queued.
pub async fn enqueue_all(services: &Services) -> Result<u64, sqlx::Error> {
    let pairs = sqlx::query!(
        r#"SELECT integration_id AS "integration_id!", repository_id AS "repository_id!"
           FROM stacks WHERE integration_id IS NOT NULL
           UNION SELECT integration_id, repository_id FROM repository_hooks"#
    )
    .fetch_all(&services.pool)
    .await?;
    let mut tx = services.pool.begin().await?;
    for pair in &pairs {
        enqueue(&mut *tx, pair.integration_id, &pair.repository_id).await?;
    }
    tx.commit().await?;
    Ok(u64::try_from(pairs.len()).unwrap_or(u64::MAX))
}

/// Every repository of an integration with its hook, by name.
pub async fn list(db: impl PgExecutor<'_>, integration: IntegrationId) -> Result<Vec<RepositoryHook>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH used AS (
               -- The newest stack's name, as the reconciler uses it.
               SELECT repository_id, (array_agg(repository_name ORDER BY created_at DESC))[1] AS repository_name,
                      count(*) AS stacks
               FROM stacks WHERE integration_id = $1 GROUP BY repository_id
           ), kept AS (SELECT * FROM repository_hooks WHERE integration_id = $1)
           SELECT coalesce(u.repository_id, k.repository_id) AS "repository_id!",
                  coalesce(u.repository_name, k.repository_name) AS "repository_name!",
                  coalesce(u.stacks, 0) AS "stacks!",
                  k.state AS "state?: HookState", k.message AS "message?", k.checked_at AS "checked_at?",
                  EXISTS (SELECT FROM polled_repositories p
                          WHERE p.integration_id = $1 AND p.repository_id = coalesce(u.repository_id, k.repository_id))
                      AS "polled!"
           FROM used u FULL JOIN kept k ON k.repository_id = u.repository_id
           ORDER BY "repository_name!", "repository_id!""#,
        integration
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| RepositoryHook {
            repository_id: row.repository_id,
            repository_name: row.repository_name,
            stacks: row.stacks,
            status: row.state.map(|state| HookStatus { state, message: row.message.unwrap_or_default() }),
            checked_at: row.checked_at,
            polled: row.polled,
        })
        .collect())
}

/// An integration's hooks, for those who administer it.
pub async fn readable(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
) -> Result<Vec<RepositoryHook>, IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Read).await?;
    Ok(list(&services.pool, integration.id).await?)
}

/// Repair: every repository of the integration reconciled now (those
/// Bitbucket could not be asked about are retried later by their jobs);
/// its admins. Returns the hooks as they are then.
pub async fn repair(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
) -> Result<Vec<RepositoryHook>, IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.hooks_repair")).await?;
    let repositories = reconcile::integration_now(services, integration.id).await?;
    let event =
        audit_event(by, AuditAction::HooksRepaired, &integration).details(json!({"repositories": repositories}));
    audit::record(&services.pool, event).await?;
    Ok(list(&services.pool, integration.id).await?)
}
