use leptos::prelude::*;

use crate::{
    components::layout::{CardPage, Page},
    context::page_context,
};

/// What every unknown path, and everything the viewer may not see, renders:
/// inside the console for a logged-in user, on its own otherwise.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    let body = || {
        view! {
            <p>"There is nothing here, or you do not have access to it."</p>
            <p>
                <a class="button primary" href="/">
                    "Go to the start page"
                </a>
            </p>
        }
    };
    if page_context().viewer.is_some() {
        view! { <Page title="Page not found">{body()}</Page> }.into_any()
    } else {
        view! { <CardPage title="Page not found">{body()}</CardPage> }.into_any()
    }
}
