//! Markdown to HTML for what users write (integration descriptions) and what
//! this code base writes (the API reference): raw HTML is shown as text, and
//! links and images keep only http(s), mailto and relative targets, so the
//! result is safe to put into a page as is.

use pulldown_cmark::{CowStr, Event, Parser, Tag};

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // A colon before any slash, ? or # names a scheme.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => matches!(scheme, "http" | "https" | "mailto"),
        _ => true,
    }
}

pub fn to_html(text: &str) -> String {
    let events = Parser::new(text).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) if !safe_url(&dest_url) => {
            Event::Start(Tag::Link { link_type, dest_url: CowStr::Borrowed("#"), title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) if !safe_url(&dest_url) => {
            Event::Start(Tag::Image { link_type, dest_url: CowStr::Borrowed("#"), title, id })
        }
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// One line as inline HTML, without the paragraph around it.
pub fn inline(text: &str) -> String {
    let html = to_html(text);
    let html = html.trim_end();
    html.strip_prefix("<p>").and_then(|h| h.strip_suffix("</p>")).unwrap_or(html).to_owned()
}

/// The longest description there is to preview.
const MAX_PREVIEW_CHARS: usize = 10_000;

/// `POST /markdown/preview`: a description rendered as the details page will
/// show it, for the wizard's Preview button (a logged-in, CSRF-checked
/// request like every other write; nothing is stored).
pub async fn preview(_user: axum::Extension<super::session::CurrentUser>, body: String) -> axum::response::Response {
    use axum::{
        http::{header, StatusCode},
        response::IntoResponse,
    };
    if body.chars().count() > MAX_PREVIEW_CHARS {
        return (StatusCode::PAYLOAD_TOO_LARGE, "Use at most 10,000 characters.").into_response();
    }
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], to_html(&body))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_dangerous_links_do_not_survive() {
        let html = to_html(
            "Hi <script>alert(1)</script> [x](javascript:alert(1)) [y](JaVaScRiPt:alert(1)) ![i](data:text/html,x)",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.to_lowercase().contains("javascript:"), "{html}");
        assert!(!html.contains("data:"), "{html}");
        let html = to_html("[docs](https://example.com/a?b#c) [here](/integrations) **bold** `code`");
        assert!(html.contains("href=\"https://example.com/a?b#c\"") && html.contains("href=\"/integrations\""));
        assert!(html.contains("<strong>bold</strong>") && html.contains("<code>code</code>"));
    }

    #[test]
    fn inline_drops_the_paragraph() {
        assert_eq!(inline("Send `x` to <b>me</b>"), "Send <code>x</code> to &lt;b&gt;me&lt;/b&gt;");
    }
}
