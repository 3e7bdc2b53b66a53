//! Rendering Leptos pages from axum handlers, a posted form answered again
//! with its problems, and a paged list's addresses.

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

/// The address of a paged list at `path` with its `filters` (the empty ones
/// left out), starting at `cursor`: the pages' links keep the filters, each
/// value encoded (a name search or an event key is any text).
pub fn list_href(path: &str, filters: &[(&str, &str)], cursor: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in filters.iter().filter(|(_, value)| !value.is_empty()) {
        query.append_pair(key, value);
    }
    if let Some(cursor) = cursor {
        query.append_pair("cursor", cursor);
    }
    match query.finish() {
        query if query.is_empty() => path.to_owned(),
        query => format!("{path}?{query}"),
    }
}
