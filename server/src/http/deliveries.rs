//! The delivery log pages and the secret's rotation buttons. The rotation
//! and retirement are the operations the REST API calls too, so both say
//! the same and leave the same audit trail.

use crate::error::AppError;
use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension,
};
use bitgate_app::context::{DeliveriesPage, DeliveryPage, DeliveryRow, Flash, PageContext, PageData};
use bitgate_core::{
    integrations::operations::{self, parse_id},
    stacks,
    webhooks::deliveries::{self, Delivery},
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{
    client_address::ClientAddress,
    pages::list_href,
    session::{push_flash, CurrentUser},
};
use crate::{
    api::{
        deliveries::{administered_delivery, filter_of},
        integrations::administered,
        pagination::{self, Cursor, PageQuery},
        rfc3339,
    },
    state::AppState,
};

/// Deliveries per page of the log: a page of 100 was 45 KB (the goal is
/// under 30 KB, SPEC.md), and 50 is what the console's other lists show.
const PAGE_SIZE: i64 = 50;

fn row(delivery: &Delivery) -> DeliveryRow {
    DeliveryRow {
        id: delivery.id.to_string(),
        received_at: rfc3339(delivery.received_at),
        event_key: delivery.event_key.clone().unwrap_or_default(),
        repository: delivery.repository_name.clone().unwrap_or_default(),
        request_id: delivery.request_id.clone().unwrap_or_default(),
        signature: delivery.signature.clone(),
        outcome: delivery.outcome.as_str().to_owned(),
        reason: delivery.reason.clone().unwrap_or_default(),
        stacks: delivery.stacks.len(),
        duplicate_count: delivery.duplicate_count,
    }
}

#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    event: String,
    cursor: Option<String>,
}

/// `/integrations/{id}/deliveries`.
pub async fn log(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Path(raw): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Response, AppError> {
    let caller = user.caller(address);
    let integration = administered(&state, &caller, &raw, "integration.deliveries").await?;
    let filter = filter_of(Some(&query.outcome), Some(&query.event)).map_err(|_| {
        AppError::BadRequest("The outcome filter is one of accepted, ignored, duplicate or rejected.".into())
    })?;
    let request = PageQuery { limit: Some(PAGE_SIZE.to_string()), cursor: query.cursor.clone() }
        .parse()
        .map_err(|_| AppError::BadRequest("This page link is damaged; start again from the first page.".into()))?;
    let after = request.after.map(|c| (c.at, c.id));
    let (rows, dropped_today) = tokio::try_join!(
        deliveries::list(&state.services.pool, integration.id, &filter, after, PAGE_SIZE + 1),
        deliveries::dropped_today(&state.services.pool, integration.id),
    )?;
    let (rows, next) = pagination::page(rows, PAGE_SIZE, |d| Cursor { at: d.received_at, id: d.id });
    let path = format!("/integrations/{}/deliveries", integration.id);
    let filters = [("outcome", query.outcome.as_str()), ("event", query.event.as_str())];
    let page = DeliveriesPage {
        integration_id: integration.id.to_string(),
        integration_name: integration.name.clone(),
        rows: rows.iter().map(row).collect(),
        next_page: next.map(|cursor| list_href(&path, &filters, Some(&cursor))),
        first_page: query.cursor.as_deref().is_some_and(|c| !c.is_empty()).then(|| list_href(&path, &filters, None)),
        outcome: query.outcome,
        event: query.event,
        dropped_today,
    };
    let context = PageContext { page: PageData::Deliveries(page), ..context };
    Ok(state.pages.render(context, StatusCode::OK).await)
}

/// `/integrations/{id}/deliveries/latest`: when the last delivery came
/// (the details page's time format), empty while none has. The details
/// page's island asks for it every few seconds, so that "Waiting for the
/// first delivery" turns into the delivery's time without a reload.
pub async fn latest(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let integration = administered(&state, &user.caller(address), &raw, "integration.deliveries").await?;
    let at = deliveries::last_received_at(&state.services.pool, integration.id).await?;
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")];
    Ok((headers, at.map(bitgate_app::components::when::exact).unwrap_or_default()).into_response())
}

/// `/deliveries/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let (found, integration) = administered_delivery(&state, &user.caller(address), &raw).await?;
    let delivery = &found.delivery;
    let mut headers: Vec<(String, String)> = found
        .headers
        .as_object()
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
    headers.sort();
    let mut matched = Vec::new();
    for id in &delivery.stacks {
        if let Some(stack) = stacks::find(&state.services.pool, *id).await? {
            matched.push((stack.id.to_string(), stack.name));
        }
    }
    let page = DeliveryPage {
        integration_id: integration.id.to_string(),
        integration_name: integration.name.clone(),
        row: row(delivery),
        headers,
        body: found.body.as_ref().and_then(|b| serde_json::to_string_pretty(b).ok()),
        stacks: matched,
    };
    let context = PageContext { page: PageData::Delivery(page), ..context };
    Ok(state.pages.render(context, StatusCode::OK).await)
}

/// Rotate: the new secret shown once on the details page (`no-store`).
pub async fn rotate(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let principal = user.caller(address).principal();
    let rotated = operations::rotate_webhook_secret(&state.services, &principal, parse_id(&raw)?).await?;
    let mut context = context;
    let until = rotated.previous_valid_until.map(rfc3339).unwrap_or_default();
    context.flashes.push(Flash::success(if rotated.integration.options.manage_webhooks {
        format!(
            "New secret made, and given to Bitgate's webhooks in Bitbucket (the table below says where it could not be). \
             The previous one is accepted until {until}."
        )
    } else {
        format!("New secret made: paste it into Bitbucket's webhook now. The previous one is accepted until {until}.")
    }));
    super::integrations::details_with_secret(&state, context, &user, rotated.integration, rotated.secret.into_exposed())
        .await
}

/// Retire the previous secret at once.
pub async fn retire(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let principal = user.caller(address).principal();
    let (integration, retired) =
        operations::retire_previous_secret(&state.services, &principal, parse_id(&raw)?).await?;
    let message = if retired {
        "The previous secret is retired: only the current one is accepted now."
    } else {
        "There was no previous secret to retire."
    };
    push_flash(&session, Flash::success(message)).await?;
    Ok(Redirect::to(&format!("/integrations/{}", integration.id)).into_response())
}
