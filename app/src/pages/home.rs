use leptos::prelude::*;

use crate::{
    components::layout::{EmptyState, Page},
    context::page_context,
    islands::copy_button::CopyValue,
};

/// `/`: the integrations of the account. Until there is one, it says what an
/// integration is and what Bitbucket will need from Bitgate.
#[component]
pub fn HomePage() -> impl IntoView {
    let context = page_context();
    let installation = context.installation;
    let callback_url = format!("{}/oauth/bitbucket/callback", installation.public_url);
    let webhook_base = format!("{}/webhooks/bitbucket/", installation.public_url);
    view! {
        <Page title="Integrations" lede="Connections from this platform to Bitbucket Cloud and Bitbucket Data Center.">
            <EmptyState title="No integrations yet">
                <p>
                    "An integration connects Bitgate to one Bitbucket instance: a Bitbucket Cloud workspace through an OAuth consumer, or a Bitbucket Data Center server through an HTTP access token. It is either the default for its provider or scoped to one space."
                </p>
            </EmptyState>
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
