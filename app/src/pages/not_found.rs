use leptos::prelude::*;

use crate::components::layout::CardPage;

/// What every unknown path, and everything the viewer may not see, renders.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <CardPage title="Page not found">
            <p>"There is nothing here, or you do not have access to it."</p>
            <p><a class="button primary" href="/">"Go to the start page"</a></p>
        </CardPage>
    }
}
