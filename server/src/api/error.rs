//! The API's error body, `{"error": {"code", "message", "details": [...]}}`,
//! as the OpenAPI document describes it. The error itself, shared with the
//! pages, is [`crate::error::AppError`].

use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// What went wrong, for programs.
    #[schema(value_type = ErrorCode, example = "validation_failed")]
    pub code: &'static str,
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
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
    RateLimited,
    Unavailable,
    BadGateway,
    Internal,
}

impl ErrorCode {
    /// The code as the body spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::Internal => "internal",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The request field concerned, such as `name`.
    pub field: String,
    /// Why, for programs: `required`, `taken`, `invalid_type`, `unknown_field`...
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn each_code_is_spelled_as_the_document_says() {
        use ErrorCode::*;
        let codes = [
            BadRequest,
            Unauthenticated,
            Forbidden,
            CsrfFailed,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            RequestTimeout,
            UnsupportedMediaType,
            ValidationFailed,
            RateLimited,
            Unavailable,
            BadGateway,
            Internal,
        ];
        for code in codes {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
        }
    }
}
