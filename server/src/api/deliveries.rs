//! The delivery log (`/api/v1/integrations/{id}/deliveries`,
//! `/api/v1/deliveries/{id}`) and the webhook secret's rotation
//! (`/webhook/rotate`, `/webhook/retire-previous`). Whoever administers an
//! integration sees its deliveries and rotates its secret; each rotation
//! and retirement is audited.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::{
    integrations::{
        operations::{self, parse_id},
        Integration,
    },
    webhooks::{
        deliveries::{self, Delivery, Filter},
        DeliveryOutcome,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    error::ErrorBody,
    integrations::{administered, webhook_url, Webhook},
    pagination::{page_of, Cursor, Page, PageQuery},
    rfc3339,
};
use crate::state::AppState;

/// A delivery's repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryRepository {
    /// Bitbucket's stable id.
    pub id: String,
    /// `PRJ/my-repo` or `workspace/my-repo`.
    pub name: String,
}

/// One request to a webhook endpoint, and what became of it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryView {
    pub id: Uuid,
    pub integration_id: Uuid,
    #[schema(format = DateTime)]
    pub received_at: String,
    pub request_id: Option<String>,
    #[schema(example = "repo:refs_changed")]
    pub event_key: Option<String>,
    pub repository: Option<DeliveryRepository>,
    /// `valid`, `valid_previous`, `missing`, `mismatch`, `unsigned_ping` or `unchecked`.
    pub signature: String,
    /// `accepted`, `ignored`, `duplicate` or `rejected`.
    pub outcome: String,
    pub reason: Option<String>,
    /// The stacks it matched.
    pub stacks: Vec<Uuid>,
    /// How many times Bitbucket sent it again.
    pub duplicate_count: i32,
}

/// A delivery with its headers (the signature redacted) and, when accepted, its body.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetails {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
}

pub fn view(delivery: &Delivery) -> DeliveryView {
    DeliveryView {
        id: delivery.id,
        integration_id: delivery.integration_id,
        received_at: rfc3339(delivery.received_at),
        request_id: delivery.request_id.clone(),
        event_key: delivery.event_key.clone(),
        repository: match (&delivery.repository_id, &delivery.repository_name) {
            (Some(id), Some(name)) => Some(DeliveryRepository { id: id.clone(), name: name.clone() }),
            _ => None,
        },
        signature: delivery.signature.clone(),
        outcome: delivery.outcome.as_str().to_owned(),
        reason: delivery.reason.clone(),
        stacks: delivery.stacks.clone(),
        duplicate_count: delivery.duplicate_count,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `accepted`, `ignored`, `duplicate` or `rejected`.
    outcome: Option<String>,
    /// An event key, such as `repo:push`.
    event: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    cursor: Option<String>,
}

/// The filter of a listing, checked.
pub fn filter_of(outcome: Option<&str>, event: Option<&str>) -> Result<Filter, AppError> {
    let outcome = outcome
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|raw| {
            DeliveryOutcome::parse(raw)
                .ok_or_else(|| AppError::BadRequest("outcome must be accepted, ignored, duplicate or rejected.".into()))
        })
        .transpose()?;
    let event_key = event.map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned);
    if event_key.as_ref().is_some_and(|e| e.len() > 100) {
        return Err(AppError::BadRequest("event is at most 100 characters.".into()));
    }
    Ok(Filter { outcome, event_key })
}

/// List an integration's deliveries
///
/// Newest first; admins of its space (account admins for a default).
#[utoipa::path(get, path = "/api/v1/integrations/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The integration's id."), DeliveriesQuery),
    responses(
        (status = 200, description = "The deliveries, newest first.", body = Page<DeliveryView>),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Page<DeliveryView>>, AppError> {
    let integration = administered(&state, &caller, &raw, "integration.deliveries").await?;
    let request = PageQuery { limit: query.limit.clone(), cursor: query.cursor.clone() }.parse()?;
    let filter = filter_of(query.outcome.as_deref(), query.event.as_deref())?;
    let rows = deliveries::list(
        &state.services.pool,
        integration.id,
        &filter,
        request.after.map(|c| (c.at, c.id)),
        request.limit + 1,
    )
    .await?;
    Ok(Json(page_of(rows, request.limit, |d| Cursor { at: d.received_at, id: d.id }, view)))
}

/// The delivery with what it carried, when the caller administers its integration.
pub async fn administered_delivery(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<(deliveries::Details, Integration), AppError> {
    let id = Uuid::parse_str(raw).map_err(|_| AppError::NotFound)?;
    let found = deliveries::find(&state.services.pool, id).await?.ok_or(AppError::NotFound)?;
    let integration = administered(state, caller, &found.delivery.integration_id.to_string(), "delivery.read").await?;
    Ok((found, integration))
}

/// Get a delivery
///
/// With its headers (the signature redacted) and, for accepted deliveries, its body.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The delivery's id.")),
    responses(
        (status = 200, description = "The delivery.", body = DeliveryDetails),
        (status = 403, description = "You see its integration in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such delivery, or none you can see.", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<DeliveryDetails>, AppError> {
    let (found, _) = administered_delivery(&state, &caller, &raw).await?;
    Ok(Json(DeliveryDetails { delivery: view(&found.delivery), headers: found.headers, body: found.body }))
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Rotate the webhook secret
///
/// A new secret signs from now on; the previous one stays valid for
/// `BITGATE_WEBHOOK_SECRET_GRACE` (24 hours by default), so that Bitbucket
/// can be given the new one without losing a delivery. Audited.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/webhook/rotate", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The new secret, and until when the previous one is accepted.", body = Webhook),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let rotated = operations::rotate_webhook_secret(&state.services, &caller.principal(), parse_id(&raw)?).await?;
    let webhook = Webhook {
        url: webhook_url(&state, &rotated.integration.slug),
        secret: rotated.secret.into_exposed(),
        previous_secret_valid_until: rotated.previous_valid_until.map(rfc3339),
    };
    Ok(no_store(Json(webhook)))
}

/// Retire the previous webhook secret
///
/// Stops accepting the secret a rotation replaced, at once, on every process. Audited.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/webhook/retire-previous", tag = "webhooks",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The endpoint and the current secret; no previous one is accepted any more.", body = Webhook),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn retire_previous(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let principal = caller.principal();
    let id = parse_id(&raw)?;
    operations::retire_previous_secret(&state.services, &principal, id).await?;
    let (integration, secret) = operations::reveal_webhook_secret(&state.services, &principal, id).await?;
    let webhook = Webhook {
        url: webhook_url(&state, &integration.slug),
        secret: secret.into_exposed(),
        previous_secret_valid_until: None,
    };
    Ok((StatusCode::OK, no_store(Json(webhook))).into_response())
}
