//! The security headers of every response, and the CSRF rule of every
//! state-changing request.

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{header, HeaderName, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bitgate_core::tokens::constant_time_eq;
use tower_sessions::Session;

use super::{limits::read_body, session::SessionAuth, MAX_BODY_BYTES};
use crate::error::AppError;
use crate::state::AppState;

/// The header in which scripts send the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The hidden form field that carries it in plain HTML form posts.
pub const CSRF_FIELD: &str = "csrf_token";

/// Headers of every response. Pages set their own CSP (with the nonce of
/// their inline hydration script); everything else gets the strictest one.
pub async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    if state.services.config.public_url.is_https() {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    // Dynamic answers show a user's data: no cache keeps them.
    if !is_static && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The CSRF rule of SPEC.md: a state-changing request must come from a page
/// of Bitgate's own origin (`Origin`, or lacking one `Referer`), and a plain
/// form post of a logged-in user must also carry the session's token.
/// Exempt: Bearer-authenticated API calls and webhook deliveries.
pub async fn csrf_protection(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) || is_exempt(&request) {
        return next.run(request).await;
    }
    let expected_origin = state.services.config.public_url.origin();
    if let Err(why) = check_origin(&request, &expected_origin) {
        return AppError::CsrfFailed(why).into_response();
    }
    let auth = match SessionAuth::load(&session).await {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    let Some(auth) = auth else {
        return next.run(request).await;
    };
    match check_session_token(request, &auth.csrf_token).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn is_exempt(request: &Request) -> bool {
    let path = request.uri().path();
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer "));
    path.starts_with("/webhooks/") || (bearer && path.starts_with("/api/"))
}

fn check_origin(request: &Request, expected: &str) -> Result<(), &'static str> {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        return match origin.to_str() {
            Ok(origin) if origin == expected => Ok(()),
            _ => Err("foreign Origin"),
        };
    }
    let referer = headers.get(header::REFERER).ok_or("neither Origin nor Referer")?;
    let referer = referer.to_str().map_err(|_| "unreadable Referer")?;
    let url = url::Url::parse(referer).map_err(|_| "unreadable Referer")?;
    if url.origin().ascii_serialization() == expected {
        Ok(())
    } else {
        Err("foreign Referer")
    }
}

/// The text of a multipart body's field `name` (the first of that name).
async fn multipart_field(body: Bytes, boundary: String, name: &str) -> Option<String> {
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}

/// Checks the session's token in the `X-CSRF-Token` header or, for form
/// bodies, the hidden field; gives the request back intact.
async fn check_session_token(request: Request, expected: &str) -> Result<Request, AppError> {
    if let Some(sent) = request.headers().get(CSRF_HEADER) {
        return match sent.to_str() {
            Ok(sent) if constant_time_eq(sent, expected) => Ok(request),
            _ => Err(AppError::CsrfFailed("wrong token header")),
        };
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        // Multipart bodies (the import page's file) carry the token in a
        // field of their own: never in the URL, where
        // logs and Referer headers would keep it. The body is held whole,
        // within the request cap, and handed on intact.
        let boundary = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .ok_or(AppError::CsrfFailed("multipart body without a boundary"))?;
        let (parts, body) = request.into_parts();
        let bytes = read_body(body, MAX_BODY_BYTES).await?;
        return match multipart_field(bytes.clone(), boundary, CSRF_FIELD).await {
            Some(sent) if constant_time_eq(&sent, expected) => Ok(Request::from_parts(parts, Body::from(bytes))),
            _ => Err(AppError::CsrfFailed("missing or wrong token")),
        };
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        // Not a form body: the Origin check above already held (a cross-site
        // post, text/plain included, carries the foreign Origin).
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, MAX_BODY_BYTES).await?;
    let sent = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v));
    match sent {
        Some(sent) if constant_time_eq(&sent, expected) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(AppError::CsrfFailed("missing or wrong token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method(Method::POST).uri("/logout");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_origin_must_be_ours() {
        let ours = "https://bitgate.example.com";
        assert!(check_origin(&post(&[("origin", ours)]), ours).is_ok());
        assert!(check_origin(&post(&[("origin", "https://evil.example.com")]), ours).is_err());
        assert!(check_origin(&post(&[("origin", "null")]), ours).is_err());
        assert!(check_origin(&post(&[("referer", "https://bitgate.example.com/login?x=1")]), ours).is_ok());
        assert!(check_origin(&post(&[("referer", "https://bitgate.example.com.evil.com/")]), ours).is_err());
        assert!(check_origin(&post(&[]), ours).is_err());
        // Origin decides when both are present.
        assert!(check_origin(
            &post(&[("origin", "https://evil.example.com"), ("referer", "https://bitgate.example.com/")]),
            ours
        )
        .is_err());
    }

    #[tokio::test]
    async fn form_posts_need_the_session_token() {
        let form = |body: &'static str| {
            Request::builder()
                .method(Method::POST)
                .uri("/logout")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap()
        };
        assert!(check_session_token(form("a=1"), "tok").await.is_err());
        assert!(check_session_token(form("csrf_token=nope"), "tok").await.is_err());
        let passed = check_session_token(form("a=1&csrf_token=tok"), "tok").await.unwrap();
        let body = axum::body::to_bytes(passed.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"a=1&csrf_token=tok", "the body reaches the handler intact");
        let with_header = post(&[(CSRF_HEADER, "tok")]);
        assert!(check_session_token(with_header, "tok").await.is_ok());
        assert!(check_session_token(post(&[(CSRF_HEADER, "bad")]), "tok").await.is_err());
    }

    #[tokio::test]
    async fn multipart_posts_carry_the_token_in_a_field_and_reach_the_handler_intact() {
        let multipart = |content_type: &str, body: Vec<u8>| {
            Request::builder()
                .method(Method::POST)
                .uri("/integrations/import")
                .header("content-type", content_type)
                .body(Body::from(body))
                .unwrap()
        };
        let body = |token: &str, file: &str| {
            format!(
                "--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.yaml\"\r\n\r\n{file}\r\n\
                 --B0undary\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n--B0undary--\r\n"
            )
            .into_bytes()
        };
        // The boundary is case-sensitive: it is read from the header as sent.
        let kind = "multipart/form-data; boundary=B0undary";
        let sent = body("tok", "version: 1");
        let passed = check_session_token(multipart(kind, sent.clone()), "tok").await.unwrap();
        let received = axum::body::to_bytes(passed.into_body(), usize::MAX).await.unwrap();
        assert_eq!(received, sent, "the body reaches the handler byte for byte");
        let refused = |result: Result<Request, AppError>| result.err().map(|e| e.into_response().status().as_u16());
        assert_eq!(refused(check_session_token(multipart(kind, body("nope", "x")), "tok").await), Some(403));
        let no_boundary = check_session_token(multipart("multipart/form-data", body("tok", "x")), "tok").await;
        assert_eq!(refused(no_boundary), Some(403));
        let too_large = body("tok", &"x".repeat(MAX_BODY_BYTES));
        assert_eq!(refused(check_session_token(multipart(kind, too_large), "tok").await), Some(413));
    }
}
