use leptos::prelude::*;

use crate::{
    components::{
        badge::{Badge, Tone},
        checklist::Checklist,
        form::{CsrfField, FormError, SubmissionField, TextField},
        layout::{EmptyState, Page, TableScroll},
        pager::Pager,
        when::When,
    },
    context::{page_context, IntegrationRow},
    islands::{
        copy_button::CopyValue,
        delivery_status::DeliveryStatus,
        integration_form::{CheckingSubmit, DescriptionField, IntegrationNameField, TokenPageLink},
        reveal_secret::RevealSecret,
    },
    pages::stacks::StackTable,
};

/// The choices of the integration option `pr_comments`: (value, name, what
/// it does). The form explains each with these words, and the details page
/// shows the chosen one with them, so the two cannot drift apart.
pub const PR_COMMENTS_CHOICES: [(&str, &str, &str); 3] = [
    ("off", "Off", "never comment."),
    ("failures", "Failures", "one comment per pull request and stack, created when a run fails, then kept up to date."),
    ("always", "Always", "the same comment, from the first run."),
];

/// What an integration gets when it does not say (the database's default).
pub const PR_COMMENTS_DEFAULT: &str = "failures";

/// A `pr_comments` value in words ("Off: never comment."), if it is one.
pub fn pr_comments_in_words(value: &str) -> Option<String> {
    PR_COMMENTS_CHOICES.iter().find(|(v, _, _)| *v == value).map(|(_, name, what)| format!("{name}: {what}"))
}

/// The webhook options' checkboxes: (field, label, what it means), in the
/// order the form shows them.
const WEBHOOK_OPTIONS: [(&str, &str, &str); 3] = [
    (
        "manage_webhooks",
        "Manage webhooks in Bitbucket",
        "Bitgate creates and repairs its webhook in each repository a stack uses. It needs REPO_ADMIN on Data Center, the consumer's Webhooks permission on Cloud.",
    ),
    (
        "disable_polling",
        "Disable polling",
        "Bitgate never reads branch heads to catch the changes of repositories whose webhook does not work.",
    ),
    (
        "disable_webhooks",
        "Disable webhooks",
        "Bitbucket's webhooks are not used, nor managed: changes are seen by polling, unless it is disabled too.",
    ),
];

/// `manage_webhooks` in words, as the details page shows it.
pub fn manage_webhooks_in_words(manage_webhooks: bool, disable_webhooks: bool) -> &'static str {
    match (manage_webhooks, disable_webhooks) {
        (true, _) => "Yes: Bitgate creates and repairs its webhook in each repository a stack uses.",
        (false, true) => "No: webhooks are disabled.",
        (false, false) => "No: set the webhook up in Bitbucket by hand, as the Webhook section says.",
    }
}

/// `disable_webhooks` in words, as the details page shows it.
pub fn webhooks_in_words(disable_webhooks: bool) -> &'static str {
    if disable_webhooks {
        "Disabled: Bitbucket's webhooks are not used."
    } else {
        "Used."
    }
}

/// `disable_polling` in words, as the details page shows it.
pub fn polling_in_words(disable_polling: bool) -> &'static str {
    if disable_polling {
        "Disabled: Bitgate never reads branch heads."
    } else {
        "On, for repositories whose webhook does not work."
    }
}

/// The integrations the viewer can see, as the home page lists them.
#[component]
pub fn IntegrationList(page: crate::context::IntegrationsPage) -> impl IntoView {
    let create = page.can_create.then(|| {
        view! {
            <p class="actions">
                <a class="button primary" href="/integrations/new">"New integration"</a>
                " "
                <a class="button secondary" href="/integrations/import">"Import or export YAML"</a>
            </p>
        }
    });
    let filtered =
        !(page.provider.is_empty() && page.space.is_empty() && page.label.is_empty() && page.name.is_empty());
    let pager = view! { <Pager next=page.next_page.clone() first=page.first_page.clone() /> };
    let filters = view! { <IntegrationFilters page=page.clone() /> };
    let list = if page.rows.is_empty() && page.first_page.is_some() {
        // A later page emptied since (integrations deleted meanwhile).
        view! { <p class="muted">"No more integrations."</p> }.into_any()
    } else if page.rows.is_empty() && filtered {
        view! { <p class="muted">"No integration matches these filters. " <a href="/">"Show all"</a></p> }.into_any()
    } else if page.rows.is_empty() {
        view! {
            <EmptyState title="No integrations yet">
                <p>
                    "An integration connects Bitgate to one Bitbucket instance: a Bitbucket Cloud workspace through an OAuth consumer, or a Bitbucket Data Center server through an HTTP access token. It is either the default for its provider or scoped to one space."
                </p>
            </EmptyState>
        }
        .into_any()
    } else {
        view! {
            <TableScroll label="Integrations"><table>
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Provider"</th>
                        <th>"Scope"</th>
                        <th>"Labels"</th>
                        <th>"Health"</th>
                        <th>"Stacks"</th>
                    </tr>
                </thead>
                <tbody>{page.rows.into_iter().map(|row| view! { <IntegrationLine row /> }).collect_view()}</tbody>
            </table></TableScroll>
        }
        .into_any()
    };
    view! {
        {create}
        {filters}
        {list}
        {pager}
    }
}

/// Filters of the integrations list: a plain GET form, so that a filtered
/// list has its own address.
#[component]
fn IntegrationFilters(page: crate::context::IntegrationsPage) -> impl IntoView {
    let option = |value: String, label: String, chosen: &str| {
        let selected = value == chosen;
        view! { <option value=value selected=selected>{label}</option> }
    };
    let providers = [("bitbucket_cloud", "Bitbucket Cloud"), ("bitbucket_datacenter", "Bitbucket Data Center")]
        .into_iter()
        .map(|(value, label)| option(value.to_owned(), label.to_owned(), &page.provider))
        .collect_view();
    let spaces = page.spaces.iter().map(|(id, name)| option(id.clone(), name.clone(), &page.space)).collect_view();
    let labels = page.labels.iter().map(|label| option(label.clone(), label.clone(), &page.label)).collect_view();
    view! {
        <form method="get" action="/" class="filters" aria-label="Filter integrations">
            <label>"Provider " <select name="provider"><option value="">"Any"</option>{providers}</select></label>
            <label>"Space " <select name="space_id"><option value="">"Any"</option>{spaces}</select></label>
            <label>"Label " <select name="label"><option value="">"Any"</option>{labels}</select></label>
            <label>"Name " <input type="search" name="name" value=page.name.clone() placeholder="part of a name" /></label>
            <button type="submit" class="button secondary">"Filter"</button>
        </form>
    }
}

#[component]
fn IntegrationLine(row: IntegrationRow) -> impl IntoView {
    let name = if row.can_open {
        view! { <a href=format!("/integrations/{}", row.id)>{row.name}</a> }.into_any()
    } else {
        view! { <span>{row.name}</span> }.into_any()
    };
    view! {
        <tr>
            <td>{name}</td>
            <td>{row.provider}</td>
            <td>{row.scope}</td>
            <td>
                {if row.labels.is_empty() {
                    view! { <span class="muted">"none"</span> }.into_any()
                } else {
                    row.labels.join(", ").into_any()
                }}
            </td>
            <td>{crate::components::badge::health(&row.health)}</td>
            <td>{row.stacks_count}</td>
        </tr>
    }
}

/// `/integrations/new`: first the provider, then its wizard, one form in
/// numbered steps. Nothing is saved until the connection checks pass. The
/// same form, prefilled and without the name, edits an integration.
#[component]
pub fn NewIntegrationPage(wizard: crate::context::WizardPage) -> impl IntoView {
    if wizard.provider.is_empty() {
        return view! { <ProviderChoice /> }.into_any();
    }
    view! { <IntegrationForm wizard /> }.into_any()
}

/// The wizard's first step: Data Center and Cloud side by side.
#[component]
fn ProviderChoice() -> impl IntoView {
    view! {
        <Page title="New integration" lede="Which Bitbucket does this integration connect to?">
            <div class="choices">
                <a class="choice-card" href="/integrations/new?provider=bitbucket_cloud">
                    <h2>"Bitbucket Cloud"</h2>
                    <p>"For workspaces on bitbucket.org. Connects through an OAuth consumer of the workspace, approved in Bitbucket."</p>
                </a>
                <a class="choice-card" href="/integrations/new?provider=bitbucket_datacenter">
                    <h2>"Bitbucket Data Center"</h2>
                    <p>"For a Bitbucket your organization runs itself (Data Center or Server). Connects with a user's HTTP access token, or through an OAuth 2.0 application link approved in Bitbucket."</p>
                </a>
            </div>
        </Page>
    }
}

/// The wizard's form for the provider chosen (or of the integration edited).
#[component]
fn IntegrationForm(wizard: crate::context::WizardPage) -> impl IntoView {
    let context = page_context();
    let is_cloud = wizard.provider == "bitbucket_cloud";
    let form = context.form.clone().unwrap_or_default();
    let endpoint_base = format!("{}/webhooks/bitbucket/", context.installation.public_url);
    let chosen_scope = form.value("scope");
    let chosen_space = form.value("space_id");
    let scope_error = form.error("scope").or_else(|| form.error("space_id"));
    let has_scope_error = scope_error.is_some();
    let ca_error = form.error("ca_certificate");
    let has_ca_error = ca_error.is_some();
    let default_option = wizard.can_create_default.then(|| {
        let checked = chosen_scope == "default";
        view! {
            <label class="choice">
                <input type="radio" name="scope" value="default" checked=checked />
                " Default for every space (one per provider)"
            </label>
        }
    });
    let space_options = wizard
        .spaces
        .iter()
        .map(|(id, name)| {
            let selected = *id == chosen_space;
            view! { <option value=id.clone() selected=selected>{name.clone()}</option> }
        })
        .collect_view();
    let checks = (!wizard.checks.is_empty()).then(|| {
        view! {
            <section class="panel" aria-live="polite">
                <h2>"Connection test"</h2>
                <Checklist lines=wizard.checks />
            </section>
        }
    });
    let git_checkout = form.value("use_git_checkout") == "on";
    let unposted = form.values.is_empty();
    let commit_status = unposted || form.value("commit_status") == "on";
    let status_details = unposted || form.value("status_details") == "on";
    let vcs = form.value("vcs_checks");
    let pr_comments_field = pr_comments_field(form.value("pr_comments"), form.error("pr_comments"));
    let webhook_fields = WEBHOOK_OPTIONS
        .iter()
        .map(|(name, label, explanation)| {
            // Management is on by default; the other two are off.
            let checked = form.value(name) == "on" || (unposted && *name == "manage_webhooks");
            option_checkbox(name, label, explanation, checked, form.error(name))
        })
        .collect_view();
    let editing = wizard.editing.clone();
    let csrf_token = context.viewer.as_ref().map(|v| v.csrf_token.clone()).unwrap_or_default();
    let oauth2 = !is_cloud && form.value("auth") == "oauth2";
    let oauth1 = !is_cloud && form.value("auth") == "oauth1";
    let check_labels: &[&str] = if is_cloud {
        &[
            "Bitbucket accepts the consumer's key and secret",
            "Client credentials: a token is granted, and its scopes, app user and workspace are checked",
        ]
    } else if oauth2 {
        &["The server answers as Bitbucket's OAuth 2.0 provider", "It accepts the client ID and secret"]
    } else if oauth1 {
        &["The server answers as Bitbucket's OAuth 1.0a provider"]
    } else {
        &[
            "The server answers as Bitbucket",
            "The token is accepted",
            "It belongs to the username given",
            "It can read projects",
            "It can read repositories",
        ]
    };
    let check_labels: Vec<String> = check_labels.iter().map(|l| (*l).to_owned()).collect();
    let (title, lede, action, submit) = match &editing {
        Some((id, name)) => (
            format!("Edit {name}"),
            "Changed credentials are checked with Bitbucket before they replace the stored ones.",
            format!("/integrations/{id}/edit"),
            "Save changes",
        ),
        None if is_cloud => (
            "New Bitbucket Cloud integration".to_owned(),
            "Bitgate checks the consumer with Bitbucket before it saves anything; then you approve it in Bitbucket.",
            "/integrations/new".to_owned(),
            "Check consumer and save",
        ),
        None => (
            "New Bitbucket Data Center integration".to_owned(),
            "Bitgate checks the credentials with Bitbucket before it saves anything.",
            "/integrations/new".to_owned(),
            "Test connection and save",
        ),
    };
    let scope_field = view! {
        <fieldset class="field" class:has-error=has_scope_error>
            <legend>"Scope"</legend>
            {default_option}
            <label class="choice">
                <input type="radio" name="scope" value="space" checked=chosen_scope != "default" />
                " One space: "
                <select name="space_id" aria-label="Space">{space_options}</select>
            </label>
            {scope_error.map(|e| view! { <p class="field-error">{e}</p> })}
        </fieldset>
    }
    .into_any();
    let name_and_scope = match &editing {
        Some((_, name)) => view! {
            <h2>"1. Name and scope"</h2>
            <p><strong>{name.clone()}</strong> <span class="muted">" The name cannot change: the webhook endpoint is made from it."</span></p>
            {scope_field}
        }
        .into_any(),
        None => view! {
            <p class="muted"><a href="/integrations/new">"Choose another provider"</a></p>
            <h2>"1. Name and scope"</h2>
            <IntegrationNameField endpoint_base=endpoint_base.clone() value=form.value("name") error=form.error("name") />
            {scope_field}
        }
        .into_any(),
    };
    // Required only by the server: the fields of the kind not chosen are
    // hidden, and a hidden required field would stop the form.
    let stored_token = form.value("access_token_last4");
    let token_field = match &editing {
        Some(_) if !stored_token.is_empty() => view! {
            <TextField name="access_token" label="HTTP access token" kind="password" autocomplete="off" hint=format!("Leave empty to keep the stored token ({stored_token}). Needed again when the API URL or the CA certificate changes.") />
        }
        .into_any(),
        _ => view! {
            <TextField name="access_token" label="HTTP access token" kind="password" autocomplete="off" hint="Stored encrypted; never shown again, only its last four characters." />
        }
        .into_any(),
    };
    let link_secret_field = match &editing {
        Some(_) if !form.value("stored_client_id").is_empty() => view! {
            <TextField name="client_secret" label="Client secret" kind="password" autocomplete="off" hint="Leave empty to keep the stored secret. Needed again with a new client ID, API URL or CA certificate; a new one must be approved again (Connect)." />
        }
        .into_any(),
        _ => view! {
            <TextField name="client_secret" label="Client secret" kind="password" autocomplete="off" hint="Stored encrypted; never shown again." />
        }
        .into_any(),
    };
    let auth = if oauth2 {
        "oauth2"
    } else if oauth1 {
        "oauth1"
    } else {
        "access_token"
    };
    let secret_field = match &editing {
        Some(_) => view! {
            <TextField name="client_secret" label="Secret" kind="password" autocomplete="off" hint="Leave empty to keep the stored secret. A new key needs its secret." />
        }
        .into_any(),
        None => view! {
            <TextField name="client_secret" label="Secret" kind="password" required=true autocomplete="off" hint="Stored encrypted; never shown again." />
        }
        .into_any(),
    };
    let mode = form.value("mode");
    let cloud_steps = view! {
        <h2>"2. In Bitbucket"</h2>
        <ol class="instructions">
            <li>"On bitbucket.org, open the workspace's settings (the gear), " <strong>"OAuth consumers"</strong> ", " <strong>"Add consumer"</strong> "."</li>
            <li>"Name it (Bitgate, say) and set its " <strong>"Callback URL"</strong> " to this address (Bitbucket asks for one even for private consumers):" <CopyValue value=wizard.callback_url.clone() /></li>
            <li>"Tick the permissions " <strong>"Account: Read"</strong> ", " <strong>"Workspace membership: Read"</strong> ", " <strong>"Projects: Read"</strong> ", " <strong>"Repositories: Read"</strong> " and " <strong>"Pull requests: Read"</strong> "."</li>
            <li>"For the client-credentials mode, tick " <strong>"This is a private consumer"</strong> "."</li>
            <li>"Save, then open the consumer to copy its " <strong>"Key"</strong> " and " <strong>"Secret"</strong> "."</li>
        </ol>
        <h2>"3. Connection"</h2>
        <TextField name="workspace" label="Workspace ID" required=true hint="As in bitbucket.org/{workspace}/: lowercase, such as acme." />
        <TextField name="client_id" label="Key" required=true autocomplete="off" hint="The consumer's key." />
        {secret_field}
        <fieldset class="field">
            <legend>"Mode"</legend>
            <label class="choice">
                <input type="radio" name="mode" value="authorization_code" checked=mode != "client_credentials" />
                " Authorization code: an admin approves in Bitbucket; Bitgate acts as that account and refreshes its tokens (recommended)"
            </label>
            <label class="choice">
                <input type="radio" name="mode" value="client_credentials" checked=mode == "client_credentials" />
                " Client credentials: a private consumer asks for its own tokens; Bitgate acts as the consumer's app user (not a person), which reaches only the workspace that owns the consumer"
            </label>
        </fieldset>
    }
    .into_any();
    // Type-erased: the Data Center steps are one view, which must stay shallow.
    let token_steps = view! {
        <div class="auth-access_token">
            <h2>"2. In Bitbucket"</h2>
            <ol class="instructions">
                <li>"Open " <TokenPageLink api_url=form.value("api_url") user_facing_url=form.value("user_facing_url") /> " as the user Bitgate will act as (Manage account, HTTP access tokens, Create token)."</li>
                <li>"Give it the permissions " <strong>"Projects: read"</strong> " and " <strong>"Repositories: read"</strong> " (" <strong>"Repositories: admin"</strong> " for Bitgate to manage the webhooks)."</li>
                <li>"Turn " <strong>"automated expiry"</strong> " off, so that the integration keeps working."</li>
                <li>"Copy the token: Bitbucket shows it once."</li>
            </ol>
        </div>
    }
    .into_any();
    let datacenter_steps = view! {
                <fieldset class="field auth-choice">
                    <legend>"How Bitgate signs in to Bitbucket"</legend>
                    <label class="choice">
                        <input type="radio" name="auth" value="access_token" checked=auth == "access_token" />
                        " Access token: a Bitbucket user's personal token, pasted here (Bitbucket 5.5 and later; the simplest)"
                    </label>
                    <label class="choice">
                        <input type="radio" name="auth" value="oauth2" checked=auth == "oauth2" />
                        " OAuth 2.0 application link: an admin approves Bitgate in Bitbucket, and Bitgate refreshes its tokens itself (Bitbucket 7.20 and later)"
                    </label>
                    <label class="choice">
                        <input type="radio" name="auth" value="oauth1" checked=auth == "oauth1" />
                        " OAuth 1.0a application link, RSA-SHA1: Bitgate makes a key pair whose public key you paste into Bitbucket (legacy; any Bitbucket Server or Data Center)"
                    </label>
                </fieldset>
                {token_steps}
                <div class="auth-oauth1">
                    <h2>"2. In Bitbucket"</h2>
                    <p>"Nothing yet: save first. Bitgate then makes the key pair, and the integration's page shows its public key and exactly what to enter in Bitbucket's application link (" <strong>"Administration"</strong> ", " <strong>"Application Links"</strong> "); then Connect."</p>
                </div>
                <div class="auth-oauth2">
                    <h2>"2. In Bitbucket"</h2>
                    <ol class="instructions">
                        <li>"As a Bitbucket administrator, open " <strong>"Administration"</strong> ", " <strong>"Application Links"</strong> ", " <strong>"Create link"</strong> ", and choose " <strong>"External application"</strong> " with the direction " <strong>"Incoming"</strong> "."</li>
                        <li>"Name it (Bitgate, say) and set its " <strong>"Redirect URL"</strong> " to this address:" <CopyValue value=wizard.callback_url.clone() /></li>
                        <li>"Choose the permission " <strong>"Repositories: Admin"</strong> " (" <code>"REPO_ADMIN"</code> "), which Bitgate needs to manage the webhooks; " <strong>"Repositories: Read"</strong> " (" <code>"REPO_READ"</code> ") is enough when " <em>"Manage webhooks"</em> " is off below. Bitgate asks for the one its options need."</li>
                        <li>"Save, then copy the link's " <strong>"Client ID"</strong> " and " <strong>"Client secret"</strong> "."</li>
                        <li>"After saving here, click " <strong>"Connect"</strong> " on the integration's page and approve in Bitbucket: Bitgate acts as the user who approves."</li>
                    </ol>
                </div>
                <h2>"3. Connection"</h2>
                <TextField name="api_url" label="API URL" kind="url" required=true hint="Where Bitbucket's REST API answers, with its context path: https://bitbucket.example.com or https://host/bitbucket." />
                <TextField name="user_facing_url" label="User-facing URL" kind="url" hint="Where people open Bitbucket, when it differs (behind a proxy). The API URL when left empty; OAuth approvals open it." />
                <div class="auth-access_token">
                    <TextField name="username" label="Username" hint="The Bitbucket user the token belongs to." />
                    {token_field}
                </div>
                <div class="auth-oauth2">
                    <TextField name="client_id" label="Client ID" autocomplete="off" hint="As Bitbucket shows it on the application link." />
                    {link_secret_field}
                </div>
                <div class="auth-oauth1">
                    <TextField name="consumer_key" label="Consumer key" autocomplete="off" hint="What Bitbucket's link will call Bitgate; bitgate-{name} when left empty. It cannot change once saved." />
                </div>
                <div class="field" class:has-error=has_ca_error>
                    <label for="field-ca_certificate">"CA certificate (optional)"</label>
                    <textarea id="field-ca_certificate" name="ca_certificate" rows="4" placeholder="-----BEGIN CERTIFICATE-----">{form.value("ca_certificate")}</textarea>
                    <p class="hint">"Only when Bitbucket's certificate comes from a private CA: paste that CA's certificate (PEM)."</p>
                    {ca_error.map(|e| view! { <p class="field-error">{e}</p> })}
                </div>
    }
    .into_any();
    let connection = if is_cloud { cloud_steps } else { datacenter_steps };
    let details = view! {
                <h2>"4. Details and options"</h2>
                <TextField name="labels" label="Labels" hint="Comma-separated, such as prod, eu." />
                <DescriptionField value=form.value("description") csrf_token=csrf_token />
                <div class="field checkbox"><label><input type="checkbox" name="use_git_checkout" checked=git_checkout />" Use git checkout (clone rather than download archives)"</label></div>
                <div class="field checkbox"><label><input type="checkbox" name="commit_status" checked=commit_status />" Commit status: report builds to Bitbucket"</label></div>
                <div class="field checkbox"><label><input type="checkbox" name="status_details" checked=status_details />" Status details: link statuses back to the platform"</label></div>
                <div class="field">
                    <label for="field-vcs_checks">"VCS checks"</label>
                    <select id="field-vcs_checks" name="vcs_checks">
                        <option value="individual" selected=vcs == "individual" || vcs.is_empty()>"individual: one status per stack"</option>
                        <option value="aggregated" selected=vcs == "aggregated">"aggregated: one status for all stacks"</option>
                        <option value="all" selected=vcs == "all">"all: both"</option>
                    </select>
                </div>
                {pr_comments_field}
                {webhook_fields}
    }
    .into_any();
    view! {
        <Page title=title lede=lede>
            <FormError />
            {checks}
            <form method="post" action=action class="stacked-form wizard">
                <CsrfField />
                <input type="hidden" name="provider" value=wizard.provider.clone() />
                {editing.is_none().then(|| view! { <SubmissionField /> })}
                {name_and_scope}
                {connection}
                {details}
                <CheckingSubmit label=submit.to_owned() checks=check_labels timeout_seconds=wizard.outbound_timeout_seconds />
            </form>
        </Page>
    }
}

/// The `pr_comments` select, each choice explained on a line of its own
/// below it. A value that is none of the choices (posted by hand, and
/// refused) selects the default, next to the error.
fn pr_comments_field(chosen: String, error: Option<String>) -> impl IntoView {
    let known = PR_COMMENTS_CHOICES.iter().any(|(value, _, _)| *value == chosen);
    let chosen = if known { chosen } else { PR_COMMENTS_DEFAULT.to_owned() };
    let has_error = error.is_some();
    let described_by =
        if has_error { "field-pr_comments-hint field-pr_comments-error" } else { "field-pr_comments-hint" };
    let options = PR_COMMENTS_CHOICES
        .iter()
        .map(|(value, name, _)| {
            let label = if *value == PR_COMMENTS_DEFAULT { format!("{name} (default)") } else { (*name).to_owned() };
            view! { <option value=*value selected=*value == chosen>{label}</option> }
        })
        .collect_view();
    let explanations = PR_COMMENTS_CHOICES
        .iter()
        .map(|(_, name, what)| view! { <p class="hint"><strong>{*name}</strong>": "{*what}</p> })
        .collect_view();
    view! {
        <div class="field" class:has-error=has_error>
            <label for="field-pr_comments">"Pull-request comments"</label>
            <select
                id="field-pr_comments"
                name="pr_comments"
                aria-invalid=has_error.then_some("true")
                aria-describedby=described_by
            >
                {options}
            </select>
            <div id="field-pr_comments-hint">{explanations}</div>
            {error.map(|e| view! { <p class="field-error" id="field-pr_comments-error">{e}</p> })}
        </div>
    }
}

/// An option's checkbox with its explanation below it, and its error when
/// the form is answered again. Unticked, a browser posts nothing for it.
fn option_checkbox(
    name: &'static str,
    label: &'static str,
    explanation: &'static str,
    checked: bool,
    error: Option<String>,
) -> impl IntoView {
    let has_error = error.is_some();
    let hint_id = format!("field-{name}-hint");
    let error_id = format!("field-{name}-error");
    let described_by = if has_error { format!("{hint_id} {error_id}") } else { hint_id.clone() };
    view! {
        <div class="field checkbox" class:has-error=has_error>
            <label>
                <input
                    type="checkbox"
                    name=name
                    checked=checked
                    aria-invalid=has_error.then_some("true")
                    aria-describedby=described_by
                />
                " "
                {label}
            </label>
            <p class="hint" id=hint_id>{explanation}</p>
            {error.map(|e| view! { <p class="field-error" id=error_id>{e}</p> })}
        </div>
    }
}

/// `/integrations/{id}`: what it is, its health, and exactly how to set up
/// its webhook in Bitbucket.
#[component]
pub fn IntegrationDetailsPage(page: crate::context::IntegrationPage) -> impl IntoView {
    let facts = page
        .facts
        .iter()
        .map(|(label, value)| view! { <dt>{label.clone()}</dt> <dd>{value.clone()}</dd> })
        .collect_view();
    let secret = match page.webhook_secret.clone() {
        Some(secret) => view! { <CopyValue value=secret /> }.into_any(),
        None => {
            let csrf_token = page_context().viewer.as_ref().map(|v| v.csrf_token.clone()).unwrap_or_default();
            view! { <RevealSecret integration_id=page.id.clone() csrf_token /> }.into_any()
        }
    };
    let triggers = page
        .triggers
        .iter()
        .map(|(group, label, key)| view! { <tr><td>{group.clone()}</td><td>{label.clone()}</td><td><code>{key.clone()}</code></td></tr> })
        .collect_view();
    view! {
        <Page title=page.name.clone() lede=format!("{} · {}", page.provider, page.scope)>
            <section class="panel">
                <h2>"Health"</h2>
                <p class="state-line">{crate::components::badge::health(&page.health_state)} <span>{page.health_message.clone()}</span></p>
                <p class="muted">"Last checked " <When at=page.health_checked_at.clone() /></p>
                {page.connect.clone().map(|label| {
                    let class = if label == "Connect" || page.health_state == "error" { "button primary" } else { "button secondary" };
                    view! {
                        <form method="post" action=format!("/integrations/{}/connect", page.id) class="inline">
                            <CsrfField />
                            <button type="submit" class=class>{label}</button>
                        </form>
                        " "
                    }
                })}
                <form method="post" action=format!("/integrations/{}/test", page.id) class="inline">
                    <CsrfField />
                    <button type="submit" class="button secondary">"Test connection"</button>
                </form>
            </section>
            {page.application_link.clone().map(|link| view! {
                <section class="panel application-link">
                    <h2>"Application link in Bitbucket"</h2>
                    <p>"This integration signs its calls with an RSA key pair Bitgate made; the private key never leaves Bitgate. As a Bitbucket administrator, open " <a href=link.links_page.clone()>"Administration, Application Links"</a> " and create the link:"</p>
                    <ol class="instructions">
                        <li><strong>"Create link"</strong> ": choose " <strong>"Atlassian product"</strong> " (Bitbucket 7.21 and later; " <strong>"Generic Application"</strong> " before), give Bitgate's address, and continue past the warning that it does not answer."</li>
                        <li><strong>"Application name"</strong> ": " <code>{link.consumer_name.clone()}</code> "; application type " <strong>"Generic Application"</strong> "; leave every outgoing field empty."</li>
                        <li>"Edit the link, " <strong>"Incoming Authentication"</strong> ": " <strong>"Consumer Key"</strong> " " <CopyValue value=link.consumer_key.clone() /></li>
                        <li><strong>"Consumer Name"</strong> ": " <code>{link.consumer_name.clone()}</code> "; " <strong>"Public Key"</strong> ":" <CopyValue value=link.public_key.clone() /></li>
                        <li>"Leave " <strong>"Consumer Callback URL"</strong> " empty and " <strong>"Allow 2-Legged OAuth"</strong> " off, then save."</li>
                        <li>"Back here, click " <strong>"Connect"</strong> " and approve in Bitbucket: Bitgate acts as the user who approves."</li>
                    </ol>
                    <p class="muted"><a href=format!("/api/v1/integrations/{}/public-key", page.id)>"The public key as a file"</a></p>
                </section>
            })}
            <section class="panel">
                <h2>"Webhook"</h2>
                <p class="delivery-status">
                    <DeliveryStatus integration_id=page.id.clone() last=page.last_delivery_at.clone() />
                    <a href=format!("/integrations/{}/deliveries", page.id)>"Delivery log"</a>
                </p>
                {if page.manage_webhooks {
                    view! { <p>"Bitgate keeps this webhook in every repository its stacks use (see Webhooks in Bitbucket): there is nothing to paste. To add it by hand elsewhere:"</p> }.into_any()
                } else {
                    view! { <p>{page.webhook_steps.clone()}</p> }.into_any()
                }}
                <dl class="facts">
                    <dt>"Title"</dt>
                    <dd><code>{format!("Bitgate ({})", page.name)}</code></dd>
                    <dt>"URL"</dt>
                    <dd><CopyValue value=page.webhook_url.clone() /></dd>
                    <dt>"Secret"</dt>
                    <dd class="with-actions">
                        {secret}
                        <form method="post" action=format!("/integrations/{}/webhook/rotate", page.id) class="inline">
                            <CsrfField />
                            <button type="submit" class="button secondary">"Rotate secret"</button>
                        </form>
                    </dd>
                    <dt>"Status"</dt>
                    <dd><Badge tone=Tone::Good word="active" /></dd>
                </dl>
                {page.previous_secret_valid_until.clone().map(|until| view! {
                    <p class="notice">
                        {format!("The previous secret is still accepted until {until}, so that Bitbucket can be given the new one without losing a delivery. The delivery log shows which secret signed each delivery.")}
                    </p>
                    <form method="post" action=format!("/integrations/{}/webhook/retire-previous", page.id) class="inline">
                        <CsrfField />
                        <button type="submit" class="button danger">"Retire the previous secret now"</button>
                    </form>
                })}
                <p class="after-facts">"Tick these triggers:"</p>
                <TableScroll label="Triggers"><table class="compact">
                    <thead><tr><th>"Group"</th><th>"Trigger"</th><th>"Event key"</th></tr></thead>
                    <tbody>{triggers}</tbody>
                </table></TableScroll>
            </section>
            <RepositoryHooks id=page.id.clone() managed=page.manage_webhooks rows=page.hooks.clone() polling=page.polling.clone() />
            <section class="panel">
                <h2>"Connection"</h2>
                <dl class="facts">{facts}</dl>
                <div class="prose" inner_html=page.description_html.clone()></div>
                <p class="muted">{page.created.clone()}</p>
                <p class="actions">
                    <a class="button secondary" href=format!("/integrations/{}/edit", page.id)>"Edit"</a>
                    " "
                    <a class="button danger" href=format!("/integrations/{}/delete", page.id)>"Delete"</a>
                </p>
            </section>
            <section class="panel">
                <h2>"Stacks using it"</h2>
                <StackTable rows=page.stacks.clone() empty="No stack uses it yet. Writers of a space that may use it create stacks from the Stacks page." />
            </section>
            <IntegrationOutbound log=page.outbound.clone() />
        </Page>
    }
    .into_any()
}

/// `/integrations/{id}/delete`: what deleting does to the stacks using it,
/// confirmed by typing the integration's name.
#[component]
pub fn DeleteIntegrationPage(page: crate::context::DeleteIntegrationPage) -> impl IntoView {
    let webhooks = if page.manage_webhooks {
        "Bitgate first deletes its webhooks from the repositories its stacks use; any it cannot reach, and any added by hand, will be answered 404."
    } else {
        "Bitbucket's webhooks to its endpoint will be answered 404 from now on."
    };
    let consequence = if page.stacks.is_empty() {
        format!("No stack uses it. {webhooks}")
    } else {
        format!(
            "{} use it. They will be detached: no webhooks, no runs, until someone attaches them to another integration of the same provider. {webhooks}",
            match page.stacks.len() {
                1 => "One stack".to_owned(),
                n => format!("{n} stacks"),
            }
        )
    };
    view! {
        <Page title=format!("Delete {}", page.name) lede="This cannot be undone: its credentials and webhook secret are erased.">
            <FormError />
            <section class="panel">
                <h2>"What happens"</h2>
                <p>{consequence}</p>
                <StackTable rows=page.stacks.clone() empty="" />
            </section>
            <form method="post" action=format!("/integrations/{}/delete", page.id) class="stacked-form">
                <CsrfField />
                <TextField name="confirm_name" label=format!("Type {} to confirm", page.name) required=true autocomplete="off" />
                <button type="submit" class="button danger">"Delete this integration"</button>
                " "
                <a href=format!("/integrations/{}", page.id)>"Cancel"</a>
            </form>
        </Page>
    }
    .into_any()
}

use crate::{
    components::outbound::OutboundTable,
    context::{HookRow, OutboundLog},
};

/// The words of a hook state, for the tables.
pub fn hook_state_in_words(state: &str) -> &'static str {
    match state {
        "installed" => "Installed",
        "missing" => "Missing",
        "differs" => "Differs",
        "failing" => "Failing",
        "not_permitted" => "Not permitted",
        "not_managed" => "Not managed",
        _ => "Unknown",
    }
}

/// The details page's "Webhooks in Bitbucket": each repository its stacks
/// use and Bitgate's hook there, with Repair.
#[component]
fn RepositoryHooks(id: String, managed: bool, rows: Vec<HookRow>, polling: String) -> impl IntoView {
    let lede = if managed {
        "Bitgate creates, checks and repairs its webhook in each repository its stacks use, every hour and when stacks change; Repair does it now."
    } else {
        "Manage webhooks is off: Bitgate only checks the webhooks added by hand. Repair checks them now."
    };
    let body = if rows.is_empty() {
        view! { <p class="muted">"No repository yet: the first stack using this integration adds one."</p> }.into_any()
    } else {
        let rows = rows
            .into_iter()
            .map(|row| {
                let (state_class, state_words) = match row.state.as_deref() {
                    Some(state) => (format!("hook-state {state}"), hook_state_in_words(state).to_owned()),
                    None => ("hook-state unchecked".to_owned(), "Not checked yet".to_owned()),
                };
                let stacks = match row.stacks {
                    0 => "none: its hook goes".to_owned(),
                    n => n.to_string(),
                };
                view! {
                    <tr>
                        <td><code>{row.repository}</code></td>
                        <td>{stacks}</td>
                        <td>
                            <span class=state_class>{state_words}</span>
                            {row.polled.then(|| view! { " " <span class="hook-state polled">"polled"</span> })}
                        </td>
                        <td>{row.message.unwrap_or_default()}</td>
                        <td class="muted">{row.checked_at.map(|at| view! { <When at /> })}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <TableScroll label="Repositories' webhooks"><table class="compact hooks">
                <thead><tr><th>"Repository"</th><th>"Stacks"</th><th>"Webhook"</th><th>"What it means"</th><th>"Checked"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table></TableScroll>
        }
        .into_any()
    };
    view! {
        <section class="panel" id="hooks">
            <h2>"Webhooks in Bitbucket"</h2>
            <p class="hint">{lede}</p>
            {body}
            <p class="hint">{polling}</p>
            <form method="post" action=format!("/integrations/{id}/hooks/repair") class="inline">
                <CsrfField />
                <button type="submit" class="button secondary">"Repair"</button>
            </form>
        </section>
    }
}

/// The details page's "Outbound calls": the integration's log, for those who
/// may read it (nothing otherwise).
#[component]
fn IntegrationOutbound(log: Option<OutboundLog>) -> impl IntoView {
    log.map(|log| {
        view! {
            <section class="panel">
                <h2>"Outbound calls"</h2>
                <p class="hint">"What Bitgate sent Bitbucket through this integration for its stacks' runs, newest first."</p>
                <OutboundTable
                    log=log
                    with_stack=true
                    empty="No call to Bitbucket yet: build statuses are sent when the platform reports the runs of the stacks using it."
                />
            </section>
        }
    })
}
