//! Bitgate's Leptos application in islands mode: pages are components that
//! render on the server only; the interactive parts are islands, hydrated in
//! the browser from the WASM bundle.

pub mod components;
pub mod context;
pub mod islands;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use crate::pages::{
    api_reference::ApiReferencePage,
    audit::AuditPage,
    deliveries::{DeliveriesPage, DeliveryDetailsPage},
    home::HomePage,
    import::ImportIntegrationsPage,
    integrations::{DeleteIntegrationPage, IntegrationDetailsPage, NewIntegrationPage},
    login::LoginPage,
    not_found::NotFoundPage,
    setup::SetupPage,
    spaces::{SpacePage, SpacesPage},
    stacks::{NewStackPage, StackDetailsPage, StacksPage},
    tokens::TokensPage,
    users::UsersPage,
};

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <HashedStylesheet options=options.clone() id="leptos" />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The CSP of a page: scripts only from Bitgate, plus the one inline
/// hydration script, allowed by this response's nonce; WASM may compile.
#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    use http::{header::CONTENT_SECURITY_POLICY, HeaderValue};
    let nonce = leptos::nonce::use_nonce().map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    // Connect posts to Bitgate, which redirects to Bitbucket Cloud's approval
    // page: form-action covers that redirect, so Cloud's origin is named.
    let cloud = crate::context::page_context().installation.cloud_oauth_origin;
    let cloud = if cloud.is_empty() { String::new() } else { format!(" {cloud}") };
    let policy = format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'{cloud}"
    );
    if let (Some(response), Ok(value)) = (use_context::<leptos_axum::ResponseOptions>(), HeaderValue::from_str(&policy))
    {
        response.insert_header(CONTENT_SECURITY_POLICY, value);
    }
}

/// The routes. Every page renders fully on the server before it is sent
/// (`SsrMode::Async`), so that it reads completely without JavaScript.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Router>
            <Routes fallback=NotFoundPage>
                <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                <Route path=path!("/setup") view=SetupPage ssr=SsrMode::Async />
                <Route path=path!("/tokens") view=TokensPage ssr=SsrMode::Async />
                <Route path=path!("/spaces") view=SpacesPage ssr=SsrMode::Async />
                <Route path=path!("/spaces/:id") view=SpacePage ssr=SsrMode::Async />
                <Route path=path!("/users") view=UsersPage ssr=SsrMode::Async />
                <Route path=path!("/integrations/new") view=NewIntegrationPage ssr=SsrMode::Async />
                <Route path=path!("/integrations/import") view=ImportIntegrationsPage ssr=SsrMode::Async />
                <Route path=path!("/integrations/:id") view=IntegrationDetailsPage ssr=SsrMode::Async />
                <Route path=path!("/integrations/:id/edit") view=NewIntegrationPage ssr=SsrMode::Async />
                <Route path=path!("/integrations/:id/delete") view=DeleteIntegrationPage ssr=SsrMode::Async />
                <Route path=path!("/integrations/:id/deliveries") view=DeliveriesPage ssr=SsrMode::Async />
                <Route path=path!("/deliveries/:id") view=DeliveryDetailsPage ssr=SsrMode::Async />
                <Route path=path!("/stacks") view=StacksPage ssr=SsrMode::Async />
                <Route path=path!("/stacks/new") view=NewStackPage ssr=SsrMode::Async />
                <Route path=path!("/stacks/:id") view=StackDetailsPage ssr=SsrMode::Async />
                <Route path=path!("/audit") view=AuditPage ssr=SsrMode::Async />
                <Route path=path!("/api/reference") view=ApiReferencePage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}
