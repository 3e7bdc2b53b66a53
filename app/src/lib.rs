//! Bitgate's Leptos application in islands mode: pages are components that
//! render on the server only; the interactive parts are islands, hydrated in
//! the browser from the WASM bundle.

// Views are nested types; the wizard's, with islands inside, goes deeper
// than rustc's default query depth (the limit Leptos's docs recommend).
#![recursion_limit = "256"]

pub mod components;
pub mod context;
pub mod islands;
pub mod pages;
#[cfg(all(test, feature = "ssr"))]
mod tests;

use crate::{
    context::{page_context, PageData},
    pages::{
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
    },
};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags};

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
    let cloud = crate::context::page_context().installation.cloud_oauth_origin.clone();
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

/// The page the server answers with: the variant of the request's page data
/// chooses the component, which takes the data as its props. The server's
/// router (`server/src/http/mod.rs`) is the one route table; pages render
/// completely on the server (nothing here waits for the browser).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    match page_context().page.clone() {
        PageData::NotFound => view! { <NotFoundPage /> }.into_any(),
        PageData::Login(page) => view! { <LoginPage page /> }.into_any(),
        PageData::Setup => view! { <SetupPage /> }.into_any(),
        PageData::Integrations(page) => view! { <HomePage page /> }.into_any(),
        PageData::Wizard(wizard) => view! { <NewIntegrationPage wizard /> }.into_any(),
        PageData::Integration(page) => view! { <IntegrationDetailsPage page /> }.into_any(),
        PageData::DeleteIntegration(page) => view! { <DeleteIntegrationPage page /> }.into_any(),
        PageData::Import(page) => view! { <ImportIntegrationsPage page /> }.into_any(),
        PageData::Deliveries(page) => view! { <DeliveriesPage page /> }.into_any(),
        PageData::Delivery(page) => view! { <DeliveryDetailsPage page /> }.into_any(),
        PageData::Stacks(page) => view! { <StacksPage page /> }.into_any(),
        PageData::NewStack(page) => view! { <NewStackPage page /> }.into_any(),
        PageData::Stack(page) => view! { <StackDetailsPage page /> }.into_any(),
        PageData::Spaces(page) => view! { <SpacesPage page /> }.into_any(),
        PageData::Space(page) => view! { <SpacePage page /> }.into_any(),
        PageData::Tokens(data) => view! { <TokensPage data /> }.into_any(),
        PageData::Users(page) => view! { <UsersPage page /> }.into_any(),
        PageData::Audit(page) => view! { <AuditPage page /> }.into_any(),
        PageData::ApiReference(reference) => view! { <ApiReferencePage reference /> }.into_any(),
    }
}
