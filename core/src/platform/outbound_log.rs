//! The outbound log: every call Bitgate made to Bitbucket on the platform
//! loop's behalf (build statuses, comments), newest first, for an
//! integration or a stack. Written by [`super::sending`]; nothing secret
//! is in it (the API path without host or query, Bitbucket's message
//! quoted short).

use std::time::Duration;

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::runs::{self, RunError};
use crate::{
    integrations::{
        operations::{self, IntegrationError, Purpose},
        IntegrationId,
    },
    principal::Principal,
    stacks::StackId,
    Services,
};

/// One call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub integration_id: Uuid,
    pub stack_id: Option<Uuid>,
    /// What was sent, such as `build status bg/…/tracked (failed)`.
    pub what: String,
    pub method: String,
    pub path: String,
    /// `None`: no answer came.
    pub status: Option<i32>,
    pub ok: bool,
    pub message: Option<String>,
    pub attempt: i32,
}

/// Whose calls.
#[derive(Debug, Clone, Copy)]
pub enum Of {
    Integration(Uuid),
    Stack(Uuid),
}

// Who reads which log is decided here, once, for the API and the pages.

/// An integration's log, when `by` may read it: those who administer the
/// integration (its space's admins; the account's for a default), as
/// [`operations::load_for`] decides; `purpose` says whether a refusal is
/// audited.
pub async fn readable_of_integration(
    services: &Services,
    by: &Principal,
    integration: IntegrationId,
    purpose: Purpose,
) -> Result<Of, IntegrationError> {
    let integration = operations::load_for(services, by, integration, purpose).await?;
    Ok(Of::Integration(integration.id))
}

/// A stack's log, when `by` may read it: whoever reads its runs (anyone
/// with a role on its space).
pub async fn readable_of_stack(services: &Services, by: &Principal, stack: StackId) -> Result<Of, RunError> {
    let stack = runs::readable(services, by, stack).await?;
    Ok(Of::Stack(stack.id))
}

/// A page of calls, newest first; `ok`: only those that succeeded (`true`)
/// or failed (`false`). `of` is what a `readable_of_…` above gave the reader.
pub async fn list(
    db: impl PgExecutor<'_>,
    of: Of,
    ok: Option<bool>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<OutboundCall>, sqlx::Error> {
    let (integration, stack) = match of {
        Of::Integration(id) => (Some(id), None),
        Of::Stack(id) => (None, Some(id)),
    };
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        OutboundCall,
        r#"SELECT id, at, integration_id, stack_id, what, method, path, status, ok, message, attempt
           FROM outbound_calls
           WHERE ($1::uuid IS NULL OR integration_id = $1) AND ($2::uuid IS NULL OR stack_id = $2)
             AND ($3::boolean IS NULL OR ok = $3)
             AND ($4::timestamptz IS NULL OR (at, id) < ($4, $5))
           ORDER BY at DESC, id DESC LIMIT $6"#,
        integration,
        stack,
        ok,
        after_at,
        after_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// Calls kept per integration at most, whatever their age: a Bitbucket
/// refusing every retry for a day must not fill the database.
const KEPT_PER_INTEGRATION: i64 = 10_000;

/// Deletes calls older than `retention` (the deliveries' retention: the
/// log explains what those deliveries made), and the oldest past the cap.
pub async fn apply_retention(db: &mut sqlx::PgConnection, retention: Duration) -> Result<u64, sqlx::Error> {
    let old = sqlx::query!(
        "DELETE FROM outbound_calls WHERE at < now() - make_interval(secs => $1)",
        retention.as_secs_f64()
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    let excess = sqlx::query!(
        r#"DELETE FROM outbound_calls WHERE id IN (
               SELECT id FROM (
                   SELECT id, row_number() OVER (PARTITION BY integration_id ORDER BY at DESC, id DESC) AS n
                   FROM outbound_calls) ranked
               WHERE n > $1)"#,
        KEPT_PER_INTEGRATION
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    Ok(old + excess)
}
