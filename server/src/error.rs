//! The one error type of the HTTP boundary, for pages and the API alike:
//! why a request failed. A handler returns it; its response carries an
//! [`ErrorReport`] that [`render_errors`] turns into the SPEC's JSON error
//! for API clients or a page of the site for browsers. Unexpected failures
//! keep their source error, logged once where the answer is made.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use bitgate_app::pages::error::ErrorPage;
use bitgate_core::{
    access::Denied, api_tokens::operations::TokenError, integrations::operations::IntegrationError,
    platform::runs::RunError, spaces::operations::SpaceError, stacks::operations::StackError,
    users::operations::UserError, users::FieldError,
};

use crate::{
    api::error::{ErrorBody, ErrorCode, ErrorDetail, ErrorObject},
    state::AppState,
};

/// Any error, kept as the source of a 500 or a 503.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request could not be read; the message says why, as a sentence.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("forbidden")]
    Forbidden,
    #[error("csrf check failed: {0}")]
    CsrfFailed(&'static str),
    #[error("not found")]
    NotFound,
    #[error("conflict")]
    Conflict(Vec<FieldError>),
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body did not arrive by its deadline (`http::limits`).
    #[error("request timeout")]
    RequestTimeout,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("rate limited")]
    RateLimited(Duration),
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Bitbucket gave no usable answer to a call made for the request; the
    /// message is ours and says what to do.
    #[error("bad gateway: {0}")]
    BadGateway(String),
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
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl AppError {
    /// An unexpected failure, with what it was.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        AppError::Internal(source.into())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        if bitgate_core::db::is_outage(&error) {
            AppError::Unavailable(error.into())
        } else if bitgate_core::db::is_unstorable_text(&error) {
            AppError::BadRequest(bitgate_core::db::UNSTORABLE_TEXT.into())
        } else {
            AppError::Internal(error.into())
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(error: tower_sessions::session::Error) -> Self {
        // The session store is the database: a failure there is an outage.
        AppError::Unavailable(error.into())
    }
}

impl From<Denied> for AppError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Hidden => AppError::NotFound,
            Denied::Forbidden => AppError::Forbidden,
        }
    }
}

/// An operation on an integration that did not happen.
impl From<IntegrationError> for AppError {
    fn from(error: IntegrationError) -> Self {
        match error {
            IntegrationError::NotFound => AppError::NotFound,
            IntegrationError::Denied(denied) => denied.into(),
            IntegrationError::Invalid(problems) | IntegrationError::CheckFailed { problems, .. } => {
                AppError::Validation(problems)
            }
            IntegrationError::Conflict(problems) => AppError::Conflict(problems),
            IntegrationError::Database(e) => e.into(),
            stored @ IntegrationError::Stored(_) => AppError::internal(stored),
        }
    }
}

/// A token operation that did not happen.
impl From<TokenError> for AppError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid(problems) => AppError::Validation(problems),
            TokenError::NotFound => AppError::NotFound,
            TokenError::Database(e) => e.into(),
        }
    }
}

/// A space operation that did not happen.
impl From<SpaceError> for AppError {
    fn from(error: SpaceError) -> Self {
        match error {
            SpaceError::NotFound => AppError::NotFound,
            SpaceError::Denied(denied) => denied.into(),
            SpaceError::Invalid(problems) => AppError::Validation(problems),
            SpaceError::Conflict(problems) => AppError::Conflict(problems),
            SpaceError::Database(e) => e.into(),
        }
    }
}

/// A user operation that did not happen.
impl From<UserError> for AppError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotFound => AppError::NotFound,
            UserError::Denied(denied) => denied.into(),
            UserError::Invalid(problems) => AppError::Validation(problems),
            UserError::Conflict(problems) => AppError::Conflict(problems),
            hashing @ UserError::Hashing(_) => AppError::internal(hashing),
            UserError::Database(e) => e.into(),
        }
    }
}

/// A stack operation that did not happen.
impl From<StackError> for AppError {
    fn from(error: StackError) -> Self {
        match error {
            StackError::NotFound => AppError::NotFound,
            StackError::Denied(denied) => denied.into(),
            StackError::Invalid(problems) => AppError::Validation(problems),
            StackError::Conflict(problems) => AppError::Conflict(problems),
            stored @ StackError::Stored(_) => AppError::internal(stored),
            StackError::Database(e) => e.into(),
        }
    }
}

/// A run report or read that did not happen.
impl From<RunError> for AppError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::NotFound => AppError::NotFound,
            RunError::Denied(denied) => denied.into(),
            RunError::Invalid(problems) => AppError::Validation(problems),
            RunError::Conflict(problems) => AppError::Conflict(problems),
            RunError::Database(e) => e.into(),
        }
    }
}

/// What an error answer says, put on the response by [`AppError`] and given
/// its body, JSON or HTML, by [`render_errors`].
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// An [`ErrorCode`], or on the OAuth callback's pages what stopped it.
    pub code: &'static str,
    /// The heading of the error page.
    pub title: &'static str,
    pub message: String,
    /// One entry per failed field or check (422, 409).
    pub details: Vec<FieldError>,
    /// A page to start again from.
    pub retry: Option<String>,
}

impl ErrorReport {
    fn new(code: ErrorCode, title: &'static str, message: impl Into<String>) -> Self {
        Self { code: code.as_str(), title, message: message.into(), details: Vec::new(), retry: None }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, report) = match self {
            AppError::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, ErrorReport::new(ErrorCode::BadRequest, "Bad request", why))
            }
            AppError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                ErrorReport::new(
                    ErrorCode::Unauthenticated,
                    "Log in first",
                    "Authenticate with `Authorization: Bearer <api token>` or a Bitgate session.",
                ),
            ),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                ErrorReport::new(
                    ErrorCode::Forbidden,
                    "Not allowed",
                    "Your roles do not allow this here. Ask an administrator of the space.",
                ),
            ),
            AppError::CsrfFailed(why) => {
                tracing::warn!(why, "refused a state-changing request that failed the CSRF check");
                (
                    StatusCode::FORBIDDEN,
                    ErrorReport::new(
                        ErrorCode::CsrfFailed,
                        "Request refused",
                        "This request did not come from a Bitgate page, so nothing was done. Reload the page and try again.",
                    ),
                )
            }
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorReport::new(
                    ErrorCode::NotFound,
                    "Page not found",
                    "There is nothing here, or you do not have access to it.",
                ),
            ),
            AppError::Conflict(details) => (
                StatusCode::CONFLICT,
                ErrorReport {
                    details,
                    ..ErrorReport::new(ErrorCode::Conflict, "Conflict", "This conflicts with what exists; see details.")
                },
            ),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorReport::new(
                    ErrorCode::PayloadTooLarge,
                    "Request too large",
                    "The request body is larger than Bitgate accepts.",
                ),
            ),
            AppError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorReport::new(
                    ErrorCode::RequestTimeout,
                    "Request too slow",
                    "The request body did not arrive in time; nothing was done.",
                ),
            ),
            AppError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorReport::new(
                    ErrorCode::UnsupportedMediaType,
                    "Unsupported media type",
                    "Send the body as JSON with `Content-Type: application/json`.",
                ),
            ),
            AppError::Validation(details) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorReport {
                    details,
                    ..ErrorReport::new(
                        ErrorCode::ValidationFailed,
                        "Some fields are invalid",
                        "Some fields are invalid; see details.",
                    )
                },
            ),
            AppError::RateLimited(wait) => {
                retry_after = Some(wait.as_secs());
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorReport::new(
                        ErrorCode::RateLimited,
                        "Too many requests",
                        format!("Too many requests; retry after {} seconds.", wait.as_secs()),
                    ),
                )
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "answering 503: the database is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorReport::new(
                        ErrorCode::Unavailable,
                        "Bitgate is unavailable",
                        "Bitgate cannot reach its database right now. Nothing was changed; try again in a moment.",
                    ),
                )
            }
            AppError::BadGateway(why) => {
                (StatusCode::BAD_GATEWAY, ErrorReport::new(ErrorCode::BadGateway, "Bitbucket did not answer", why))
            }
            AppError::Authorization { status, code, title, message, retry } => {
                (status, ErrorReport { code, retry, ..ErrorReport::new(ErrorCode::BadRequest, title, message) })
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, source = ?cause.source(), "answering 500");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorReport::new(
                        ErrorCode::Internal,
                        "Something went wrong",
                        "Bitgate hit an unexpected error. It has been logged; try again, and tell your administrator if it persists.",
                    ),
                )
            }
        };
        let mut response = status.into_response();
        if let Some(seconds) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response.extensions_mut().insert(report);
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
    let unanswered = response.headers().get(header::CONTENT_TYPE).is_none();
    let report = match response.extensions().get::<ErrorReport>() {
        Some(report) => report.clone(),
        // A 404 from the static files or a route axum did not match.
        None if status == StatusCode::NOT_FOUND && unanswered => ErrorReport::new(
            ErrorCode::NotFound,
            "Page not found",
            "There is nothing here, or you do not have access to it.",
        ),
        None if status == StatusCode::METHOD_NOT_ALLOWED && unanswered => {
            ErrorReport::new(ErrorCode::MethodNotAllowed, "Not allowed", "This path does not take that method.")
        }
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if wants_html {
        // A page has no details list: their sentences are its message
        // (the API's "see details" would point at nothing).
        let message = match report.details.is_empty() {
            true => report.message,
            false => report.details.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join(" "),
        };
        let page =
            ErrorPage { title: report.title.to_owned(), message, code: report.code.to_owned(), retry: report.retry };
        let html = bitgate_app::pages::error::render_document(&state.leptos, page);
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        Response::from_parts(parts, Body::from(html))
    } else {
        let details = report
            .details
            .into_iter()
            .map(|d| ErrorDetail { field: d.field, code: d.code, message: d.message })
            .collect();
        let body = ErrorBody { error: ErrorObject { code: report.code, message: report.message, details } };
        let (json_parts, json_body) = Json(body).into_response().into_parts();
        parts.headers.extend(json_parts.headers);
        Response::from_parts(parts, json_body)
    }
}
