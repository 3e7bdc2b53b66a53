use leptos::prelude::*;

use crate::{
    components::layout::Page, context::page_context, islands::copy_button::CopyValue,
    pages::integrations::IntegrationList,
};

/// `/`: the integrations of the account. Until there is one, it says what an
/// integration is and what Bitbucket will need from Bitgate.
#[component]
pub fn HomePage(page: crate::context::IntegrationsPage) -> impl IntoView {
    let installation = page_context().installation.clone();
    let callback_url = format!("{}/oauth/bitbucket/callback", installation.public_url);
    let webhook_base = format!("{}/webhooks/bitbucket/", installation.public_url);
    view! {
        <Page title="Integrations" lede="Connections from this platform to Bitbucket Cloud and Bitbucket Data Center.">
            <IntegrationList page />
            <section class="panel">
                <h2>"What Bitbucket will need"</h2>
                <dl class="facts">
                    <dt>"OAuth callback URL (Bitbucket Cloud consumers)"</dt>
                    <dd><CopyValue value=callback_url /></dd>
                    <dt>"Webhook endpoints start with"</dt>
                    <dd><code>{webhook_base}</code></dd>
                </dl>
            </section>
            <section class="panel">
                <h2>"This installation"</h2>
                <dl class="facts">
                    <dt>"Public URL"</dt>
                    <dd><code>{installation.public_url}</code></dd>
                    <dt>"Database"</dt>
                    <dd>
                        {if installation.embedded_database {
                            "Embedded PostgreSQL cluster in the data directory"
                        } else {
                            "PostgreSQL server from DATABASE_URL"
                        }}
                    </dd>
                    <dt>"Version"</dt>
                    <dd>{installation.version}</dd>
                </dl>
            </section>
        </Page>
    }
}
