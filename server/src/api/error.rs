//! The API's errors: `{"error": {"code", "message", "details": [...]}}`.

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::{
    api_tokens::operations::TokenError, integrations::operations::IntegrationError, spaces::operations::SpaceError,
    stacks::operations::StackError, users::operations::UserError, users::FieldError,
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("conflict")]
    Conflict(Vec<FieldError>),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("rate limited")]
    RateLimited(Duration),
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Bitbucket gave no usable answer to a call made for the request; the
    /// message is ours and says what to do.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if bitgate_core::db::is_outage(&error) {
            ApiError::Unavailable(error.to_string())
        } else if bitgate_core::db::is_unstorable_text(&error) {
            ApiError::BadRequest(bitgate_core::db::UNSTORABLE_TEXT.into())
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}

impl From<bitgate_core::access::Denied> for ApiError {
    fn from(denied: bitgate_core::access::Denied) -> Self {
        match denied {
            bitgate_core::access::Denied::Hidden => ApiError::NotFound,
            bitgate_core::access::Denied::Forbidden => ApiError::Forbidden,
        }
    }
}

/// An operation on an integration that did not happen, as the API answers it.
impl From<IntegrationError> for ApiError {
    fn from(error: IntegrationError) -> Self {
        match error {
            IntegrationError::NotFound => ApiError::NotFound,
            IntegrationError::Denied(denied) => denied.into(),
            IntegrationError::Invalid(problems) | IntegrationError::CheckFailed { problems, .. } => {
                ApiError::Validation(problems)
            }
            IntegrationError::Conflict(problems) => ApiError::Conflict(problems),
            IntegrationError::Database(e) => e.into(),
            stored @ IntegrationError::Stored(_) => ApiError::Internal(stored.to_string()),
        }
    }
}

/// A token operation that did not happen, as the API answers it.
impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid(problems) => ApiError::Validation(problems),
            TokenError::NotFound => ApiError::NotFound,
            TokenError::Database(e) => e.into(),
        }
    }
}

/// A space operation that did not happen, as the API answers it.
impl From<SpaceError> for ApiError {
    fn from(error: SpaceError) -> Self {
        match error {
            SpaceError::NotFound => ApiError::NotFound,
            SpaceError::Denied(denied) => denied.into(),
            SpaceError::Invalid(problems) => ApiError::Validation(problems),
            SpaceError::Conflict(problems) => ApiError::Conflict(problems),
            SpaceError::Database(e) => e.into(),
        }
    }
}

/// A user operation that did not happen, as the API answers it.
impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotFound => ApiError::NotFound,
            UserError::Denied(denied) => denied.into(),
            UserError::Invalid(problems) => ApiError::Validation(problems),
            UserError::Conflict(problems) => ApiError::Conflict(problems),
            hashing @ UserError::Hashing(_) => ApiError::Internal(hashing.to_string()),
            UserError::Database(e) => e.into(),
        }
    }
}

/// A stack operation that did not happen, as the API answers it.
impl From<StackError> for ApiError {
    fn from(error: StackError) -> Self {
        match error {
            StackError::NotFound => ApiError::NotFound,
            StackError::Denied(denied) => denied.into(),
            StackError::Invalid(problems) => ApiError::Validation(problems),
            StackError::Conflict(problems) => ApiError::Conflict(problems),
            stored @ StackError::Stored(_) => ApiError::Internal(stored.to_string()),
            StackError::Database(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = match self {
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest, why, Vec::new()),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "Authenticate with `Authorization: Bearer <api token>` or a Bitgate session.".to_owned(),
                Vec::new(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "Your roles do not allow this here.".to_owned(),
                Vec::new(),
            ),
            ApiError::Conflict(details) => (
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "This conflicts with what exists; see details.".to_owned(),
                details,
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "Nothing here, or nothing you can see.".to_owned(),
                Vec::new(),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "The request body is too large.".to_owned(),
                Vec::new(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "Send the body as JSON with `Content-Type: application/json`.".to_owned(),
                Vec::new(),
            ),
            ApiError::Validation(details) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                "Some fields are invalid; see details.".to_owned(),
                details,
            ),
            ApiError::RateLimited(wait) => {
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    format!("Too many requests; retry after {} seconds.", wait.as_secs()),
                    Vec::new(),
                );
                if let Ok(value) = HeaderValue::from_str(&wait.as_secs().to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return response;
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "API answering 503: the database is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "The database is unavailable; retry shortly.".to_owned(),
                    Vec::new(),
                )
            }
            ApiError::BadGateway(why) => (StatusCode::BAD_GATEWAY, ErrorCode::BadGateway, why, Vec::new()),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "API answering 500");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "Unexpected error; it has been logged.".to_owned(),
                    Vec::new(),
                )
            }
        };
        error_response(status, code, message, details)
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// What went wrong, for programs.
    #[schema(example = "validation_failed")]
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// One entry per failed field or check (422, 409); empty otherwise.
    pub details: Vec<ErrorDetail>,
}

/// The error codes of SPEC.md, plus `internal` for the unexpected.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthenticated,
    Forbidden,
    CsrfFailed,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    RateLimited,
    Unavailable,
    BadGateway,
    Internal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The request field concerned, such as `name`.
    pub field: String,
    /// Why, for programs: `required`, `taken`, `invalid_type`, `unknown_field`...
    pub code: String,
    pub message: String,
}

fn error_response(status: StatusCode, code: ErrorCode, message: String, details: Vec<FieldError>) -> Response {
    let details =
        details.into_iter().map(|d| ErrorDetail { field: d.field, code: d.code, message: d.message }).collect();
    (status, Json(ErrorBody { error: ErrorObject { code, message, details } })).into_response()
}
