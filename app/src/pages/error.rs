//! Error pages rendered outside the router: by middleware (503 while the
//! database is away, 403 for a failed CSRF check, 429) and for server errors.

#[cfg(feature = "ssr")]
use leptos::prelude::*;

/// What an error page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    /// The machine-readable code of SPEC.md's error shape, shown small.
    pub code: String,
    /// A page to start again from (the OAuth callback's errors).
    pub retry: Option<String>,
}

#[cfg(feature = "ssr")]
#[component]
fn ErrorView(page: ErrorPage) -> impl IntoView {
    use crate::components::layout::CardPage;
    view! {
        <CardPage title=page.title>
            <p>{page.message}</p>
            <p class="muted">"Error code: " <code>{page.code}</code></p>
            <p>
                {page.retry.map(|href| view! { <a class="button primary" href=href>"Try again"</a> " " })}
                <a class="button secondary" href="/">"Go to the start page"</a>
            </p>
        </CardPage>
    }
}

/// A whole HTML document for an error page, with the site's stylesheet and
/// no script.
#[cfg(feature = "ssr")]
pub fn render_document(options: &LeptosOptions, page: ErrorPage) -> String {
    use leptos_meta::HashedStylesheet;
    let options = options.clone();
    let owner = Owner::new();
    owner.with(move || {
        let title = format!("{} · Bitgate", page.title);
        view! {
            <!DOCTYPE html>
            <html lang="en">
                <head>
                    <meta charset="utf-8" />
                    <meta name="viewport" content="width=device-width, initial-scale=1" />
                    <title>{title}</title>
                    <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                    <HashedStylesheet options id="leptos" />
                </head>
                <body>
                    <ErrorView page />
                </body>
            </html>
        }
        .to_html()
    })
}
