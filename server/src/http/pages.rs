//! Rendering Leptos pages from axum handlers, and a posted form answered
//! again with its problems.

use std::{future::Future, pin::Pin, sync::Arc};

use axum::{body::Body, extract::Request, http::StatusCode, response::Response};
use bitgate_app::context::{FormOutcome, PageContext};

type RenderFn = dyn Fn(Request<Body>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync;

/// Renders the app's page for a page context: its `page` chooses what is
/// shown (see `bitgate_app::App`).
#[derive(Clone)]
pub struct PageRenderer(Arc<RenderFn>);

impl PageRenderer {
    pub fn new(
        render: impl Fn(Request<Body>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(render))
    }

    /// Renders the page of `context` and answers with `status`. The
    /// context travels in the request's extensions, shared by every
    /// component that reads it.
    pub async fn render(&self, context: PageContext, status: StatusCode) -> Response {
        let mut request = Request::new(Body::empty());
        request.extensions_mut().insert(Arc::new(context));
        let mut response = (self.0)(request).await;
        *response.status_mut() = status;
        response
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
