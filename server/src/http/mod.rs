//! The HTTP surface: pages (Leptos), the login forms, health probes and
//! static files, behind the security middleware.
//!
//! Layers, outermost first: request id, tracing, panic catching, compression, security
//! headers, error bodies, client address, sessions, CSRF, viewer. The
//! webhook endpoint has its own, leaner stack (`webhooks::router`).
//!
//! [`router`] is the one route table: each page's handler loads its data and
//! renders it as a [`PageData`] variant, which chooses the page component.

pub mod api_reference;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod client_address;
pub mod deliveries;
pub mod health;
pub mod integrations;
pub mod integrations_file;
pub mod limits;
pub mod markdown;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod pages;
pub mod request_id;
pub mod security;
pub mod session;
pub mod spaces;
pub mod stacks;
pub mod submission;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::path::PathBuf;

use axum::{
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, Uri},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use bitgate_app::context::{PageContext, PageData};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::{
        predicate::{NotForContentType, SizeAbove},
        CompressionLayer, Predicate,
    },
    trace::{DefaultOnFailure, TraceLayer},
};

use crate::state::AppState;

/// Requests larger than this are refused before a handler runs.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .route("/", get(integrations::home))
        .route("/integrations/new", get(integrations::new_page).post(integrations::create))
        .route("/integrations/import", get(integrations_file::page).post(integrations_file::import))
        .route("/integrations/export", get(integrations_file::export))
        .route("/integrations/{id}", get(integrations::show))
        .route("/integrations/{id}/webhook/reveal", post(integrations::reveal))
        .route("/integrations/{id}/test", post(integrations::test))
        .route("/integrations/{id}/hooks/repair", post(integrations::repair_hooks))
        .route("/integrations/{id}/connect", post(oauth::connect))
        .route("/integrations/{id}/deliveries", get(deliveries::log))
        .route("/integrations/{id}/deliveries/latest", get(deliveries::latest))
        .route("/integrations/{id}/webhook/rotate", post(deliveries::rotate))
        .route("/integrations/{id}/webhook/retire-previous", post(deliveries::retire))
        .route("/deliveries/{id}", get(deliveries::show))
        .route("/oauth/bitbucket/callback", get(oauth::callback))
        .route("/integrations/{id}/edit", get(integrations::edit_page).post(integrations::update))
        .route("/integrations/{id}/delete", get(integrations::delete_page).post(integrations::delete))
        .route("/stacks", get(stacks::list))
        .route("/stacks/new", get(stacks::new_page).post(stacks::create))
        .route("/stacks/{id}", get(stacks::show).post(stacks::update))
        .route("/stacks/{id}/delete", post(stacks::delete))
        .route("/markdown/preview", post(markdown::preview))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/setup", get(auth::setup_page).post(auth::setup))
        .route("/tokens", get(tokens::page).post(tokens::create))
        .route("/spaces", get(spaces::list).post(spaces::create))
        .route("/spaces/{id}", get(spaces::show).post(spaces::update))
        .route("/spaces/{id}/members", post(spaces::add_member))
        .route("/spaces/{id}/members/{user_id}/remove", post(spaces::remove_member))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/users", get(users::page).post(users::create))
        .route("/users/{id}/{verb}", post(users::set_disabled))
        .route("/audit", get(audit::page))
        .route("/api/reference", get(api_reference::page))
        .merge(crate::api::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), session::resolve_viewer))
        .layer(middleware::from_fn_with_state(state.clone(), security::csrf_protection))
        .layer(session::layer(&state.services.config, state.services.pool.clone()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(if state.metrics.is_some() && state.services.config.metrics_listen.is_none() {
            metrics::router()
        } else {
            Router::new()
        })
        .merge(assets::router(&PathBuf::from(state.leptos.site_root.as_ref()), &state.leptos.site_pkg_dir))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limits::body_deadline))
        .layer(middleware::from_fn_with_state(state.clone(), client_address::resolve))
        .layer(CatchPanicLayer::custom(|_| crate::error::AppError::Internal("a handler panicked".into()).into_response()))
        .layer(middleware::from_fn_with_state(state.clone(), crate::error::render_errors))
        .layer(middleware::from_fn_with_state(state.clone(), security::security_headers))
        .layer(CompressionLayer::new().br(true).gzip(true).compress_when(SizeAbove::new(1024).and(NotForContentType::IMAGES)))
        .layer(
            // Paths only: query strings can carry one-time tokens.
            // A 5xx is logged where it is made (`error.rs`: a 500 as an
            // error, a database outage's 503 as a warning); this layer's
            // own line about it is a warning, not a second error.
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    let id = request.extensions().get::<request_id::RequestId>().map(|id| id.0.as_str());
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = id)
                })
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), request_id::assign));
    // Bitbucket's deliveries, the hot path, get a stack of their own, added
    // after the layers above: see `webhooks::router`.
    let deliveries = webhooks::router(state.services.clone());
    app.with_state(state).merge(deliveries)
}

/// Unknown paths: the site's 404 page for browsers, the JSON error for the API.
async fn not_found(State(state): State<AppState>, context: Option<axum::Extension<PageContext>>, uri: Uri) -> Response {
    match context {
        Some(axum::Extension(context)) if !uri.path().starts_with("/api/") => {
            state.pages.render(context.with(PageData::NotFound), StatusCode::NOT_FOUND).await
        }
        _ => crate::error::AppError::NotFound.into_response(),
    }
}
