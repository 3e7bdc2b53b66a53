//! Rendering Leptos pages from axum handlers (a form post answered with its
//! page), and the error pages and JSON errors every failure ends in.

use std::{future::Future, pin::Pin, sync::Arc};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use bitgate_app::{
    context::{FormOutcome, PageContext},
    pages::error::ErrorPage,
};
use serde_json::json;

use crate::{api::error::ApiError, state::AppState};

type RenderFn = dyn Fn(Request<Body>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync;

/// Renders a page of the app for a path, with a given page context.
#[derive(Clone)]
pub struct PageRenderer(Arc<RenderFn>);

impl PageRenderer {
    pub fn new(
        render: impl Fn(Request<Body>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(render))
    }

    /// Renders `path` (with its query) as a GET would, with `context`, and
    /// answers with `status`.
    pub async fn render(&self, path: &str, context: PageContext, status: StatusCode) -> Response {
        let mut request = Request::new(Body::empty());
        match path.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return AppError::Internal("a page path did not parse".into()).into_response(),
        }
        request.extensions_mut().insert(context);
        let mut response = (self.0)(request).await;
        *response.status_mut() = status;
        response
    }
}

/// Why a request failed, as handlers report it. The response carries an
/// [`ErrorPage`] marker that [`render_errors`] turns into an HTML page or a
/// JSON error, whichever the client takes.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("csrf check failed: {0}")]
    CsrfFailed(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Bitbucket's OAuth callback could not finish: what happened, in words
    /// an admin can act on, and where to start again.
    #[error("the authorization did not finish: {message}")]
    Authorization {
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        message: String,
        retry: Option<String>,
    },
}

/// An API error met while answering a page (the pages answer an
/// operation's validation and conflicts with the form itself, through
/// [`form_with_problems`]; the rest is the page's error).
impl From<ApiError> for AppError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::NotFound => AppError::NotFound,
            ApiError::Forbidden => AppError::Forbidden,
            ApiError::Unavailable(why) => AppError::Unavailable(why),
            ApiError::BadRequest(why) => AppError::BadRequest(why),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<bitgate_core::integrations::operations::IntegrationError> for AppError {
    fn from(error: bitgate_core::integrations::operations::IntegrationError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<bitgate_core::users::operations::UserError> for AppError {
    fn from(error: bitgate_core::users::operations::UserError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<bitgate_core::stacks::operations::StackError> for AppError {
    fn from(error: bitgate_core::stacks::operations::StackError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        if bitgate_core::db::is_outage(&error) {
            AppError::Unavailable(error.to_string())
        } else if bitgate_core::db::is_unstorable_text(&error) {
            AppError::BadRequest(bitgate_core::db::UNSTORABLE_TEXT.into())
        } else {
            AppError::Internal(error.to_string())
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(error: tower_sessions::session::Error) -> Self {
        // The session store is the database: a failure there is an outage.
        AppError::Unavailable(error.to_string())
    }
}

/// What an error response will say; rendered by [`render_errors`].
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: &'static str,
    pub title: &'static str,
    pub message: String,
    /// A page to start again from.
    pub retry: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let retry = match &self {
            AppError::Authorization { retry, .. } => retry.clone(),
            _ => None,
        };
        let (status, code, title, message) = match &self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Page not found",
                "There is nothing here, or you do not have access to it.".to_owned(),
            ),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                "Your roles do not allow this here. Ask an administrator of the space.".to_owned(),
            ),
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "answering 503: the database is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Bitgate is unavailable",
                    "Bitgate cannot reach its database right now. Nothing was changed; try again in a moment."
                        .to_owned(),
                )
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "answering 500");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong",
                    "Bitgate hit an unexpected error. It has been logged; try again, and tell your administrator if it persists."
                        .to_owned(),
                )
            }
            AppError::CsrfFailed(why) => {
                tracing::warn!(why, "refused a state-changing request that failed the CSRF check");
                (
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "Request refused",
                    "This request did not come from a Bitgate page, so nothing was done. Reload the page and try again."
                        .to_owned(),
                )
            }
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request too large",
                "The request body is larger than Bitgate accepts.".to_owned(),
            ),
            AppError::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                format!("The request could not be read: {why}."),
            ),
            AppError::Authorization { status, code, title, message, .. } => (*status, *code, *title, message.clone()),
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorBody { code, title, message, retry });
        response
    }
}

/// Gives error responses their body: the SPEC's JSON error shape for API
/// clients, a page of the site for browsers.
pub async fn render_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let wants_html = !request.uri().path().starts_with("/api/")
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    let response = next.run(request).await;
    let status = response.status();
    let body = match response.extensions().get::<ErrorBody>() {
        Some(body) => body.clone(),
        // A 404 from the static files or a route axum did not match.
        None if status == StatusCode::NOT_FOUND && response.headers().get(header::CONTENT_TYPE).is_none() => {
            ErrorBody {
                code: "not_found",
                title: "Page not found",
                message: "There is nothing here, or you do not have access to it.".to_owned(),
                retry: None,
            }
        }
        None if status == StatusCode::METHOD_NOT_ALLOWED && response.headers().get(header::CONTENT_TYPE).is_none() => {
            ErrorBody {
                code: "method_not_allowed",
                title: "Not allowed",
                message: "This path does not take that method.".to_owned(),
                retry: None,
            }
        }
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if wants_html {
        let page = ErrorPage {
            title: body.title.to_owned(),
            message: body.message,
            code: body.code.to_owned(),
            retry: body.retry,
        };
        let html = bitgate_app::pages::error::render_document(&state.leptos, page);
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        Response::from_parts(parts, Body::from(html))
    } else {
        let json = Json(json!({"error": {"code": body.code, "message": body.message, "details": []}}));
        let (json_parts, json_body) = json.into_response().into_parts();
        parts.headers.extend(json_parts.headers);
        Response::from_parts(parts, json_body)
    }
}

/// A form answered again with its problems: each field's first one next to
/// it (`field_of` names the form field of an API field), the values kept.
pub fn form_with_problems(
    details: Vec<bitgate_core::users::FieldError>,
    values: Vec<(String, String)>,
    field_of: impl Fn(&str) -> String,
) -> FormOutcome {
    let mut field_errors: Vec<(String, String)> = Vec::new();
    for detail in details {
        let field = field_of(&detail.field);
        // One message per field: the first says what to fix first.
        if !field_errors.iter().any(|(f, _)| *f == field) {
            field_errors.push((field, detail.message));
        }
    }
    let form_error = Some("Nothing was saved: fix the fields marked below.".to_owned());
    FormOutcome { values, field_errors, form_error, blocked: None }
}
