//! The links under a paged list: the next page (its address carries the
//! filters and the cursor, so a page can be bookmarked and shared) and, on
//! a later page, the way back to the first.

use leptos::prelude::*;

#[component]
pub fn Pager(
    /// The next page's address, when there is one.
    next: Option<String>,
    /// The first page's address, on a later page.
    first: Option<String>,
) -> impl IntoView {
    (next.is_some() || first.is_some()).then(|| {
        view! {
            <nav class="pager" aria-label="Pages">
                {first.map(|href| view! { <a class="button secondary" href=href>"First page"</a> })}
                {next.map(|href| view! { <a class="button secondary" href=href>"Next page"</a> })}
            </nav>
        }
    })
}
