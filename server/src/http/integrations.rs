//! The integrations pages: the list (home), the wizard (create and edit),
//! the details page with the webhook setup, the secret's reveal, a new
//! connection test, and the delete page. The wizard posts a plain form whose
//! fields are moved into the operations' input as they are; every decision
//! is the operation's in core, the one the REST API calls, so the browser
//! and the API cannot disagree.

use crate::{
    api::pagination::{page, page_start, Cursor},
    error::AppError,
};
use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::{
    components::{checklist::CheckLine, when::exact},
    context::{
        ApplicationLink, DeleteIntegrationPage, Flash, FormOutcome, HookRow, IntegrationPage, IntegrationRow,
        IntegrationsPage, PageContext, PageData, StackRow, WizardPage,
    },
    pages::integrations::{manage_webhooks_in_words, polling_in_words, pr_comments_in_words, webhooks_in_words},
};
use bitgate_core::{
    access::Access,
    bitbucket::{cloud::Mode, Check},
    integrations::{
        self,
        input::{self, given, IntegrationInput},
        operations::{self, parse_id, IntegrationError, Purpose},
        DataCenterAuth, HealthState, Integration, Provider,
    },
    managed_hooks,
    secret::Secret,
    spaces,
    stacks::{self, StackFilter},
    webhooks,
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{
    client_address::ClientAddress,
    markdown,
    pages::{form_with_problems, list_href},
    session::{push_flash, CurrentUser},
    submission::{self, Done},
};
use crate::{
    api::{integrations::webhook_url, rfc3339},
    state::AppState,
};

/// The Cloud triggers to tick, from SPEC.md's table.
const CLOUD_TRIGGERS: [(&str, &str, &str); 8] = [
    ("Repository", "Push", "repo:push"),
    ("Pull request", "Created", "pullrequest:created"),
    ("Pull request", "Updated", "pullrequest:updated"),
    ("Pull request", "Approved", "pullrequest:approved"),
    ("Pull request", "Approval removed", "pullrequest:unapproved"),
    ("Pull request", "Merged", "pullrequest:fulfilled"),
    ("Pull request", "Declined", "pullrequest:rejected"),
    ("Pull request", "Comment created", "pullrequest:comment_created"),
];

/// The Data Center triggers to tick, from SPEC.md's table.
const DATACENTER_TRIGGERS: [(&str, &str, &str); 10] = [
    ("Repository", "Push", "repo:refs_changed"),
    ("Pull request", "Opened", "pr:opened"),
    ("Pull request", "Source branch updated", "pr:from_ref_updated"),
    ("Pull request", "Modified", "pr:modified"),
    ("Pull request", "Approved", "pr:reviewer:approved"),
    ("Pull request", "Unapproved", "pr:reviewer:unapproved"),
    ("Pull request", "Merged", "pr:merged"),
    ("Pull request", "Declined", "pr:declined"),
    ("Pull request", "Deleted", "pr:deleted"),
    ("Pull request", "Comment added", "pr:comment:added"),
];

#[derive(Deserialize, Default)]
pub struct ListFilters {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    space_id: String,
    #[serde(default)]
    label: String,
    /// Text the name holds.
    #[serde(default)]
    name: String,
    /// Where the page starts: the API's cursor.
    #[serde(default)]
    cursor: String,
}

impl ListFilters {
    /// This list's address with these filters, starting at `cursor`.
    fn href(&self, cursor: Option<&str>) -> String {
        let filters =
            [("provider", &self.provider), ("space_id", &self.space_id), ("label", &self.label), ("name", &self.name)];
        list_href("/", &filters.map(|(key, value)| (key, value.as_str())), cursor)
    }
}

/// How many integrations a page of the list shows.
const PAGE_SIZE: i64 = 50;

/// `/`: the integrations the viewer can see, 50 a page, filtered by
/// provider, space, label and a name search (an unknown filter value shows
/// nothing rather than everything); the filters are kept in the address.
pub async fn home(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Query(filters): Query<ListFilters>,
) -> Result<Response, AppError> {
    let pool = &state.services.pool;
    let access = Access::load(pool, user.0.id).await?;
    let visible = access.visible_spaces();
    let after = page_start(&filters.cursor)?;
    let provider = Provider::parse(&filters.provider).ok();
    let space_id = uuid::Uuid::parse_str(&filters.space_id).ok();
    let unknown =
        (!filters.provider.is_empty() && provider.is_none()) || (!filters.space_id.is_empty() && space_id.is_none());
    let filter = integrations::ListFilter {
        provider,
        space_id,
        label: Some(filters.label.clone()).filter(|l| !l.is_empty()),
        name: Some(filters.name.trim().to_owned()).filter(|n| !n.is_empty()),
    };
    let listing = async {
        match unknown {
            true => Ok(Vec::new()),
            false => integrations::list_for(pool, &access, &filter, after.map(|c| (c.at, c.id)), PAGE_SIZE + 1).await,
        }
    };
    // Three reads that need nothing of each other, asked at once on three
    // of the pool's connections: the page waits for the slowest, not for
    // their sum (at 1,000 integrations the page and the labels take about
    // a millisecond each).
    let (listed, labels, spaces) = tokio::try_join!(
        listing,
        integrations::labels_in_use(pool, &visible),
        spaces::list(pool, &visible, None, 10_000)
    )?;
    let (listed, next_cursor) = page(listed, PAGE_SIZE, |listed| {
        let (at, id) = listed.position();
        Cursor { at, id }
    });
    let mut spaces: Vec<(String, String)> = spaces.into_iter().map(|s| (s.id.to_string(), s.name)).collect();
    spaces.sort_by(|a, b| a.1.cmp(&b.1));
    let names: HashMap<String, String> = spaces.iter().cloned().collect();
    let rows = listed
        .iter()
        .map(|listed| {
            let (i, can_open) = (listed.summary(), matches!(listed, integrations::Listed::Whole(_)));
            IntegrationRow {
                id: i.id.to_string(),
                can_open,
                scope: match i.space_id {
                    Some(space) => names.get(&space.to_string()).cloned().unwrap_or_default(),
                    None => "Default".to_owned(),
                },
                name: i.name,
                provider: i.provider.label().to_owned(),
                labels: i.labels,
                health: i.health_state.as_str().to_owned(),
                stacks_count: i.stacks_count,
            }
        })
        .collect();
    let can_create = access.is_account_admin() || !access.administered_spaces().is_empty();
    let page = IntegrationsPage {
        rows,
        can_create,
        spaces,
        labels,
        next_page: next_cursor.as_deref().map(|cursor| filters.href(Some(cursor))),
        first_page: (!filters.cursor.is_empty()).then(|| filters.href(None)),
        provider: filters.provider,
        space: filters.space_id,
        label: filters.label,
        name: filters.name,
    };
    let context = PageContext { page: PageData::Integrations(page), ..context };
    Ok(state.pages.render(context, StatusCode::OK).await)
}

async fn render_wizard(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    provider: &str,
    form: Option<FormOutcome>,
    checks: Vec<(String, bool, String)>,
    status: StatusCode,
) -> Result<Response, AppError> {
    render_form(state, context, user, Err(provider), form, checks, status).await
}

/// The wizard's form: an integration's edit page (`Ok`), or a new one of a
/// provider (`Err`; empty: the provider is still to choose).
async fn render_form(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    editing: Result<&Integration, &str>,
    form: Option<FormOutcome>,
    checks: Vec<(String, bool, String)>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let administered = access.administered_spaces();
    if administered.is_empty() {
        return Err(AppError::Forbidden);
    }
    let mut spaces = spaces::list(&state.services.pool, &administered, None, 10_000).await?;
    spaces.sort_by(|a, b| a.name.cmp(&b.name));
    let provider = match editing {
        Ok(integration) => integration.provider.as_str(),
        Err(provider) => match Provider::parse(provider) {
            Ok(provider) => provider.as_str(),
            Err(_) => "",
        },
    };
    let editing = editing.ok();
    let wizard = WizardPage {
        provider: provider.to_owned(),
        callback_url: bitgate_core::bitbucket::cloud::callback_url(&state.services.config),
        editing: editing.map(|i| (i.id.to_string(), i.name.clone())),
        spaces: spaces.into_iter().map(|s| (s.id.to_string(), s.name)).collect(),
        can_create_default: access.is_account_admin(),
        checks,
        outbound_timeout_seconds: state.services.config.outbound_timeout.as_secs(),
    };
    let context = PageContext { page: PageData::Wizard(wizard), form, ..context };
    Ok(state.pages.render(context, status).await)
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default)]
    provider: String,
}

/// `/integrations/new`: the choice of provider; with `?provider=`, its wizard.
pub async fn new_page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Query(query): Query<NewQuery>,
) -> Result<Response, AppError> {
    render_wizard(&state, context, &user, &query.provider, None, Vec::new(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct WizardForm {
    /// `bitbucket_cloud`, or Data Center when left out.
    #[serde(default)]
    provider: String,
    /// The rendered form's token (`submissions`): the same form sent twice creates once.
    #[serde(default)]
    submission: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    space_id: String,
    #[serde(default)]
    api_url: String,
    #[serde(default)]
    user_facing_url: String,
    /// Data Center: `access_token` or `oauth2`.
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    access_token: String,
    /// Data Center, `oauth1`: the link's consumer key (empty: Bitgate's own).
    #[serde(default)]
    consumer_key: String,
    #[serde(default)]
    ca_certificate: String,
    #[serde(default)]
    labels: String,
    #[serde(default)]
    description: String,
    use_git_checkout: Option<String>,
    commit_status: Option<String>,
    status_details: Option<String>,
    #[serde(default)]
    vcs_checks: String,
    #[serde(default)]
    pr_comments: String,
    manage_webhooks: Option<String>,
    disable_polling: Option<String>,
    disable_webhooks: Option<String>,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    mode: String,
}

impl WizardForm {
    fn is_cloud(&self) -> bool {
        self.provider == Provider::Cloud.as_str()
    }

    fn labels(&self) -> Vec<String> {
        self.labels.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }

    /// The checkboxes: a box left unticked is not posted at all.
    fn options(&self) -> input::OptionsInput {
        input::OptionsInput {
            use_git_checkout: Some(self.use_git_checkout.is_some()),
            commit_status: Some(self.commit_status.is_some()),
            status_details: Some(self.status_details.is_some()),
            vcs_checks: Some(if self.vcs_checks.is_empty() { "individual" } else { &self.vcs_checks }.to_owned()),
            // Not posted: the default on a creation, the stored choice on an edit.
            pr_comments: given(Some(self.pr_comments.clone())),
            manage_webhooks: Some(self.manage_webhooks.is_some()),
            disable_polling: Some(self.disable_polling.is_some()),
            disable_webhooks: Some(self.disable_webhooks.is_some()),
        }
    }

    /// The `cloud` part; on an edit, an empty secret keeps the stored one.
    fn cloud(&self, creating: bool) -> input::CloudInput {
        input::CloudInput {
            workspace: Some(self.workspace.clone()),
            client_id: Some(self.client_id.clone()),
            client_secret: if creating {
                Some(Secret::new(self.client_secret.clone()))
            } else {
                given(Some(self.client_secret.clone())).map(Secret::new)
            },
            mode: Some(if self.mode.is_empty() { "authorization_code" } else { &self.mode }.to_owned()),
        }
    }

    /// The `datacenter` part, with the fields of the way to sign in chosen
    /// only (the page hides the other's, which may still hold what was
    /// typed before switching). On an edit, an empty secret keeps the stored one.
    fn datacenter(&self, creating: bool, user_facing_url: Option<String>) -> input::DataCenterInput {
        let secret = |value: &str| {
            if creating {
                Some(Secret::new(value.to_owned()))
            } else {
                given(Some(value.to_owned())).map(Secret::new)
            }
        };
        let auth = DataCenterAuth::parse(&self.auth).unwrap_or(DataCenterAuth::AccessToken);
        let token = auth == DataCenterAuth::AccessToken;
        input::DataCenterInput {
            api_url: Some(self.api_url.clone()),
            user_facing_url,
            auth: Some(auth.as_str().to_owned()),
            username: token.then(|| self.username.clone()),
            access_token: if token { secret(&self.access_token) } else { None },
            oauth2: (auth == DataCenterAuth::OAuth2).then(|| input::OAuth2Input {
                client_id: Some(self.client_id.clone()),
                client_secret: secret(&self.client_secret),
            }),
            // The consumer key is chosen once: an edit that keeps the link does not post it.
            oauth1: (auth == DataCenterAuth::OAuth1 && creating)
                .then(|| input::OAuth1Input { consumer_key: given(Some(self.consumer_key.clone())) }),
            ca_certificate: Some(self.ca_certificate.clone()),
        }
    }

    /// What the wizard asks to create.
    fn creation(&self) -> IntegrationInput {
        let provider = if self.is_cloud() { Provider::Cloud } else { Provider::DataCenter };
        IntegrationInput {
            name: Some(self.name.clone()),
            provider: Some(provider.as_str().to_owned()),
            scope: Some(if self.scope.is_empty() { "space" } else { &self.scope }.to_owned()),
            space_id: if self.scope == "default" { None } else { given(Some(self.space_id.clone())) },
            labels: Some(self.labels()),
            description: Some(self.description.clone()),
            options: Some(self.options()),
            datacenter: (!self.is_cloud()).then(|| input::DataCenterInput {
                ca_certificate: given(Some(self.ca_certificate.clone())),
                ..self.datacenter(true, given(Some(self.user_facing_url.clone())))
            }),
            cloud: self.is_cloud().then(|| self.cloud(true)),
            ..Default::default()
        }
    }

    /// What the edit page asks to change: the name never changes; an empty
    /// token keeps the stored one, an empty CA certificate removes it.
    fn change(&self) -> IntegrationInput {
        let user_facing_url =
            if self.user_facing_url.trim().is_empty() { &self.api_url } else { &self.user_facing_url };
        // The scope fields are on the page; a post without them keeps the scope.
        let (scope, space_id) = match self.scope.as_str() {
            "" => (None, None),
            "default" => (Some("default".to_owned()), None),
            scope => (Some(scope.to_owned()), Some(self.space_id.clone())),
        };
        IntegrationInput {
            scope,
            space_id,
            labels: Some(self.labels()),
            description: Some(self.description.clone()),
            options: Some(self.options()),
            datacenter: (!self.is_cloud()).then(|| self.datacenter(false, Some(user_facing_url.clone()))),
            cloud: self.is_cloud().then(|| self.cloud(false)),
            ..Default::default()
        }
    }

    /// What the page keeps when it answers again: everything but the token.
    fn values(&self) -> Vec<(String, String)> {
        let flag = |f: &Option<String>| if f.is_some() { "on" } else { "" }.to_owned();
        [
            ("provider", self.provider.clone()),
            ("workspace", self.workspace.clone()),
            ("client_id", self.client_id.clone()),
            ("mode", self.mode.clone()),
            ("name", self.name.clone()),
            ("scope", self.scope.clone()),
            ("space_id", self.space_id.clone()),
            ("api_url", self.api_url.clone()),
            ("user_facing_url", self.user_facing_url.clone()),
            ("auth", self.auth.clone()),
            ("username", self.username.clone()),
            ("consumer_key", self.consumer_key.clone()),
            ("ca_certificate", self.ca_certificate.clone()),
            ("labels", self.labels.clone()),
            ("description", self.description.clone()),
            ("use_git_checkout", flag(&self.use_git_checkout)),
            ("commit_status", flag(&self.commit_status)),
            ("status_details", flag(&self.status_details)),
            ("vcs_checks", self.vcs_checks.clone()),
            ("pr_comments", self.pr_comments.clone()),
            ("manage_webhooks", flag(&self.manage_webhooks)),
            ("disable_polling", flag(&self.disable_polling)),
            ("disable_webhooks", flag(&self.disable_webhooks)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The form field an API error detail is about (`datacenter.api_url` → `api_url`).
fn form_field(field: &str) -> String {
    field.rsplit('.').next().unwrap_or(field).to_owned()
}

pub async fn create(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<WizardForm>,
) -> Result<Response, AppError> {
    // Sent twice (the button clicked again while Bitbucket is asked): done once.
    let token = form.submission.clone();
    let provider = if form.is_cloud() { Provider::Cloud } else { Provider::DataCenter };
    let busy = {
        let (state, context, user, values) = (state.clone(), context.clone(), user.clone(), form.values());
        let token = token.clone();
        move || async move {
            let outcome = FormOutcome {
                values,
                form_error: Some("This form was sent before and Bitbucket is still being asked about it: open the integrations list in a minute to see whether it was saved.".to_owned()),
                ..Default::default()
            };
            // The form keeps its token: sent again, it waits for the first
            // request and lands on what that made, instead of making it again.
            let context = PageContext { submission: token, ..context };
            render_wizard(&state, context, &user, provider.as_str(), Some(outcome), Vec::new(), StatusCode::CONFLICT)
                .await
        }
    };
    let work = {
        let (state, user) = (state.clone(), user.clone());
        async move {
            let principal = user.caller(address).principal();
            match operations::create(&state.services, &principal, form.creation()).await {
                Ok(operations::Created { integration, checks }) => {
                    let message = if integration.health.state == HealthState::PendingAuthorization {
                        let what =
                            if integration.provider == Provider::Cloud { "consumer" } else { "application link" };
                        format!(
                            "Integration \u{201c}{}\u{201d} saved: Bitbucket accepted the {what}. Now click Connect and approve it in Bitbucket.",
                            integration.name
                        )
                    } else {
                        format!(
                            "Integration \u{201c}{}\u{201d} created: every check passed. Now set up its webhook in Bitbucket.",
                            integration.name
                        )
                    };
                    let flash = Flash::success(message).with_checks(check_lines(checks));
                    Ok(Done::Made { path: format!("/integrations/{}", integration.id), flash })
                }
                Err(failure) => {
                    let (outcome, checks, status) = answered_again(failure, form.values())?;
                    let page =
                        render_wizard(&state, context, &user, provider.as_str(), Some(outcome), checks, status).await?;
                    Ok(Done::Refused(page))
                }
            }
        }
    };
    // Longer than the checks can take: they stop at the first call that cannot reach Bitbucket.
    submission::once_or(&state, &session, &user, &token, submission::asking_bitbucket(&state), work, busy).await
}

/// Whether the integration is connected by an admin's approval in
/// Bitbucket (Connect): Cloud's authorization-code consumers, Data
/// Center's OAuth 2.0 links.
fn authorizes_in_bitbucket(integration: &Integration) -> bool {
    match (&integration.cloud, &integration.datacenter) {
        (Some(cloud), _) => cloud.mode == Mode::AuthorizationCode,
        (None, Some(dc)) => dc.auth != DataCenterAuth::AccessToken,
        (None, None) => false,
    }
}

/// A connection checklist as the console shows it: (name, passed, message) per line.
type CheckLines = Vec<CheckLine>;

fn check_lines(checks: Vec<Check>) -> CheckLines {
    checks.into_iter().map(|check| (check.name.to_owned(), check.ok, check.message)).collect()
}

/// A refused create or edit, as the form answered again: every field's
/// first problem next to it, and the checklist when the checks ran. Any
/// other failure is the page's.
fn answered_again(
    error: IntegrationError,
    values: Vec<(String, String)>,
) -> Result<(FormOutcome, CheckLines, StatusCode), AppError> {
    let (problems, status, checks): (_, _, CheckLines) = match error {
        IntegrationError::Invalid(problems) => (problems, StatusCode::UNPROCESSABLE_ENTITY, Vec::new()),
        IntegrationError::Conflict(problems) => (problems, StatusCode::CONFLICT, Vec::new()),
        IntegrationError::CheckFailed { problems, report } => {
            (problems, StatusCode::UNPROCESSABLE_ENTITY, check_lines(report.checks))
        }
        other => return Err(other.into()),
    };
    let mut outcome = form_with_problems(problems, values, form_field);
    if !checks.is_empty() {
        outcome.form_error = Some(
            "Nothing was saved: the connection test failed. Fix what the checklist says, then test again.".to_owned(),
        );
    }
    Ok((outcome, checks, status))
}

/// The integration, to read, when the viewer administers it (readers see it
/// in lists only: 403; outside its space: 404), with the viewer's roles.
/// (A refused read is answered, not recorded: no address is needed.)
async fn administered(state: &AppState, user: &CurrentUser, raw: &str) -> Result<(Integration, Access), AppError> {
    let principal = user.caller(None).principal();
    let integration = operations::load_for(&state.services, &principal, parse_id(raw)?, Purpose::Read).await?;
    let access = Access::load(&state.services.pool, user.0.id).await?;
    Ok((integration, access))
}

async fn render_details(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    access: &Access,
    integration: Integration,
    secret: Option<String>,
) -> Result<Response, AppError> {
    let stacks = stacks_of(state, access, &integration).await?;
    let outbound = super::outbound::of_integration(state, user, access, &integration).await?;
    // The viewer administers the integration (`administered`): its hooks are theirs to see.
    let hooks = managed_hooks::list(&state.services.pool, integration.id)
        .await?
        .into_iter()
        .map(|hook| HookRow {
            repository: hook.repository_name,
            stacks: hook.stacks,
            state: hook.status.as_ref().map(|s| s.state.as_str().to_owned()),
            message: hook.status.map(|s| s.message),
            checked_at: hook.checked_at.map(rfc3339),
            polled: hook.polled,
        })
        .collect();
    let polling = polling_in_effect(&integration, state.services.config.poll_interval);
    let scope = match integration.space_id {
        Some(space) => match spaces::find(&state.services.pool, space).await? {
            Some(space) => format!("space {}", space.name),
            None => "a space".to_owned(),
        },
        None => "default for every space".to_owned(),
    };
    let mut facts = Vec::new();
    if let Some(dc) = &integration.datacenter {
        facts.push(("API URL".to_owned(), dc.api_url.clone()));
        facts.push(("User-facing URL".to_owned(), dc.user_facing_url.clone()));
        let authorized = |label: &Option<String>, at: Option<time::OffsetDateTime>| match (&dc.username, label, at) {
            (Some(account), Some(user), Some(at)) => format!("{account}, connected by {user} at {}", exact(at)),
            (Some(account), None, Some(at)) => format!("{account}, since {}", exact(at)),
            _ => "not yet".to_owned(),
        };
        match (&dc.oauth2, &dc.oauth1) {
            (None, Some(link)) => {
                facts.push(("Signs in with".to_owned(), "an OAuth 1.0a application link (RSA-SHA1)".to_owned()));
                facts.push(("Consumer key".to_owned(), link.consumer_key.clone()));
                facts.push(("Authorized as".to_owned(), authorized(&link.authorized_by_label, link.authorized_at)));
            }
            (None, None) => {
                facts.push(("Signs in with".to_owned(), "an HTTP access token".to_owned()));
                facts.push(("Username".to_owned(), dc.username.clone().unwrap_or_default()));
                let last4 = dc.access_token_last4.as_deref().unwrap_or_default();
                facts.push(("Access token".to_owned(), format!("…{last4}")));
            }
            (Some(link), _) => {
                facts.push(("Signs in with".to_owned(), "an OAuth 2.0 application link".to_owned()));
                facts.push(("Client ID".to_owned(), link.client_id.clone()));
                facts.push(("Authorized as".to_owned(), authorized(&link.authorized_by_label, link.authorized_at)));
                let expires = link.token_expires_at.map(exact).unwrap_or_else(|| "no token".into());
                facts.push(("Access token expires".to_owned(), format!("{expires} (refreshed automatically)")));
                facts.push(("Permission granted".to_owned(), link.scopes.join(", ")));
            }
        }
        facts.push(("Private CA".to_owned(), if dc.ca_certificate.is_some() { "given" } else { "none" }.to_owned()));
    }
    if let Some(cloud) = &integration.cloud {
        facts.push(("Workspace".to_owned(), cloud.workspace.clone()));
        facts.push(("Consumer key".to_owned(), cloud.client_id.clone()));
        let mode = match cloud.mode {
            Mode::ClientCredentials => "client credentials (private consumer)",
            Mode::AuthorizationCode => "authorization code (approved by an admin)",
        };
        facts.push(("Mode".to_owned(), mode.to_owned()));
        let authorized = match (&cloud.authorized_by, &cloud.authorized_by_label, cloud.authorized_at) {
            (Some(account), Some(user), Some(at)) => format!("{account}, connected by {user} at {}", exact(at)),
            (Some(account), None, Some(at)) => format!("{account}, since {}", exact(at)),
            _ => "not yet".to_owned(),
        };
        if cloud.mode == Mode::ClientCredentials {
            // Client-credentials tokens are nobody's: Bitbucket gives them the consumer's app user.
            let acts_as = match &cloud.authorized_by {
                Some(_) => format!("{authorized}. Client-credentials tokens act as the consumer's app user, not a person, and reach only the workspace that owns the consumer."),
                None => authorized,
            };
            facts.push(("Acts as".to_owned(), acts_as));
        } else {
            facts.push(("Authorized as".to_owned(), authorized));
        }
        let expires = cloud.token_expires_at.map(exact).unwrap_or_else(|| "no token".into());
        facts.push(("Access token expires".to_owned(), format!("{expires} (refreshed automatically)")));
        facts.push(("Scopes granted".to_owned(), cloud.scopes.join(", ")));
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let labels = if integration.labels.is_empty() { "none".to_owned() } else { integration.labels.join(", ") };
    facts.push(("Labels".to_owned(), labels));
    facts.push(("Use git checkout".to_owned(), yes_no(integration.options.use_git_checkout)));
    facts.push(("Commit status".to_owned(), yes_no(integration.options.commit_status)));
    facts.push(("Status details".to_owned(), yes_no(integration.options.status_details)));
    facts.push(("VCS checks".to_owned(), integration.options.vcs_checks.as_str().to_owned()));
    let pr_comments = integration.options.pr_comments.as_str();
    facts.push((
        "Pull-request comments".to_owned(),
        pr_comments_in_words(pr_comments).unwrap_or_else(|| pr_comments.to_owned()),
    ));
    let options = &integration.options;
    let manage_webhooks = manage_webhooks_in_words(options.manage_webhooks, options.disable_webhooks);
    facts.push(("Manage webhooks in Bitbucket".to_owned(), manage_webhooks.to_owned()));
    facts.push(("Webhooks".to_owned(), webhooks_in_words(options.disable_webhooks).to_owned()));
    facts.push(("Polling".to_owned(), polling_in_words(options.disable_polling).to_owned()));
    facts.push(("Stacks using it".to_owned(), integration.stacks_count.to_string()));
    let with_secret = secret.is_some();
    let last_delivery_at = webhooks::deliveries::last_received_at(&state.services.pool, integration.id).await?;
    let previous_secret_valid_until =
        webhooks::deliveries::previous_valid_until(&state.services.pool, integration.id).await?;
    let page = IntegrationPage {
        id: integration.id.to_string(),
        name: integration.name.clone(),
        provider: integration.provider.label().to_owned(),
        scope,
        labels: integration.labels.clone(),
        description_html: markdown::to_html(&integration.description),
        facts,
        health_state: integration.health.state.as_str().to_owned(),
        health_message: integration.health.message.clone(),
        health_checked_at: integration.health.checked_at.map(rfc3339).unwrap_or_else(|| "never".into()),
        webhook_url: webhook_url(state, &integration.slug),
        webhook_secret: secret,
        triggers: match integration.provider {
            Provider::Cloud => CLOUD_TRIGGERS.iter(),
            Provider::DataCenter => DATACENTER_TRIGGERS.iter(),
        }
        .map(|(g, l, k)| (g.to_string(), l.to_string(), k.to_string()))
        .collect(),
        webhook_steps: match integration.provider {
            Provider::Cloud => {
                "In Bitbucket Cloud, open the repository's Repository settings, Webhooks, Add webhook, and enter:"
            }
            Provider::DataCenter => {
                "In Bitbucket, open the repository's (or project's) settings, Webhooks, Create webhook, and enter:"
            }
        }
        .to_owned(),
        last_delivery_at: last_delivery_at.map(exact),
        previous_secret_valid_until: previous_secret_valid_until.map(exact),
        connect: authorizes_in_bitbucket(&integration).then(|| {
            if integration.health.state == HealthState::PendingAuthorization { "Connect" } else { "Reconnect" }
                .to_owned()
        }),
        created: format!("Created {} by {}", exact(integration.created_at), integration.created_by_label),
        stacks,
        manage_webhooks: integration.options.manage_webhooks,
        hooks,
        polling,
        outbound,
        application_link: integration.datacenter.as_ref().and_then(|dc| {
            let link = dc.oauth1.as_ref()?;
            Some(Box::new(ApplicationLink {
                consumer_key: link.consumer_key.clone(),
                consumer_name: format!("Bitgate ({})", integration.name),
                public_key: link.public_key.clone(),
                links_page: format!(
                    "{}/plugins/servlet/applinks/listApplicationLinks",
                    dc.user_facing_url.trim_end_matches('/')
                ),
            }))
        }),
    };
    let context = PageContext { page: PageData::Integration(page), ..context };
    let mut response = state.pages.render(context, StatusCode::OK).await;
    if with_secret {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

pub async fn show(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let (integration, access) = administered(&state, &user, &raw).await?;
    render_details(&state, context, &user, &access, integration, None).await
}

/// The details page with a secret just made (a rotation), `no-store`.
pub async fn details_with_secret(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    integration: Integration,
    secret: String,
) -> Result<Response, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    render_details(state, context, user, &access, integration, Some(secret)).await
}

/// Shows the webhook secret, once, in a `no-store` answer; audited. The
/// details page's island asks for the secret alone (`Accept: text/plain`)
/// and shows it in place; a plain form post gets the page with it.
pub async fn reveal(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Path(raw): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let principal = user.caller(address).principal();
    let (integration, secret) = operations::reveal_webhook_secret(&state.services, &principal, parse_id(&raw)?).await?;
    let wants_text = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|kind| kind.trim().starts_with("text/plain")));
    if wants_text {
        let plain = [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        return Ok((plain, secret.into_exposed()).into_response());
    }
    let access = Access::load(&state.services.pool, user.0.id).await?;
    render_details(&state, context, &user, &access, integration, Some(secret.into_exposed())).await
}

/// What polling does for the integration, in the page's words.
fn polling_in_effect(integration: &Integration, interval: std::time::Duration) -> String {
    if integration.options.disable_polling {
        return "Polling is disabled: a repository without a working webhook sends nothing to its stacks.".to_owned();
    }
    let every = spoken_interval(interval);
    match integration.provider {
        Provider::DataCenter => {
            format!("Repositories without a working webhook are polled: their branch heads are read every {every}.")
        }
        Provider::Cloud => format!(
            "Repositories without a working webhook are polled: their branch heads are read every {every}. \
             Bitbucket Cloud allows {} requests an hour, so one pass reads at most {} of this integration's repositories (those read the longest ago first).",
            managed_hooks::polling::CLOUD_REQUESTS_PER_HOUR,
            managed_hooks::polling::cloud_budget(interval)
        ),
    }
}

/// `90 s`, `5 min`, `2 h`: an interval as people say it.
fn spoken_interval(interval: std::time::Duration) -> String {
    let seconds = interval.as_secs();
    match seconds {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Repair: every repository's hook reconciled now, then the page again
/// with what came of it.
pub async fn repair_hooks(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let principal = user.caller(address).principal();
    let id = parse_id(&raw)?;
    let hooks = managed_hooks::repair(&state.services, &principal, id).await?;
    let checked = hooks.iter().filter(|hook| hook.status.is_some()).count();
    let working = hooks
        .iter()
        .filter(|hook| hook.status.as_ref().is_some_and(|s| s.state == managed_hooks::HookState::Installed))
        .count();
    let disabled =
        hooks.iter().any(|hook| hook.status.as_ref().is_some_and(|s| s.state == managed_hooks::HookState::NotManaged));
    let flash = if hooks.is_empty() {
        Flash::info("No stack uses this integration yet: there is no webhook to repair.")
    } else if disabled {
        Flash::info("Webhooks are disabled for this integration: Bitgate does not use or repair them.")
    } else if working == hooks.len() {
        Flash::success(format!("Every repository's webhook is as it should be ({working})."))
    } else {
        Flash::info(format!(
            "{working} of {} repositories have a working webhook ({checked} checked); the table says what the others need.",
            hooks.len()
        ))
    };
    push_flash(&session, flash).await?;
    Ok(Redirect::to(&format!("/integrations/{id}#hooks")).into_response())
}

/// Tests the connection again with the stored credentials.
pub async fn test(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let principal = user.caller(address).principal();
    let (report, integration) = operations::test(&state.services, &principal, parse_id(&raw)?).await?;
    let warning = report.checks.iter().find(|c| c.warning && !c.ok);
    let flash = match (report.first_failure(), warning) {
        (None, None) => Flash::success("Every check passed: the integration is connected."),
        (None, Some(warning)) => Flash::info(format!("The integration is connected. Warning: {}", warning.message)),
        (Some(failure), _) => Flash::error(format!("The {} check failed: {}", failure.name, failure.message)),
    }
    .with_checks(check_lines(report.checks));
    push_flash(&session, flash).await?;
    Ok(Redirect::to(&format!("/integrations/{}", integration.id)).into_response())
}

/// The edit form's values as stored (the token never: only its last four).
fn stored_values(integration: &Integration) -> Vec<(String, String)> {
    let flag = |on: bool| if on { "on" } else { "" }.to_owned();
    let mut values = vec![
        ("scope", if integration.space_id.is_some() { "space" } else { "default" }.to_owned()),
        ("space_id", integration.space_id.map(|s| s.to_string()).unwrap_or_default()),
        ("labels", integration.labels.join(", ")),
        ("description", integration.description.clone()),
        ("use_git_checkout", flag(integration.options.use_git_checkout)),
        ("commit_status", flag(integration.options.commit_status)),
        ("status_details", flag(integration.options.status_details)),
        ("vcs_checks", integration.options.vcs_checks.as_str().to_owned()),
        ("pr_comments", integration.options.pr_comments.as_str().to_owned()),
        ("manage_webhooks", flag(integration.options.manage_webhooks)),
        ("disable_polling", flag(integration.options.disable_polling)),
        ("disable_webhooks", flag(integration.options.disable_webhooks)),
    ];
    if let Some(cloud) = &integration.cloud {
        values.extend([
            ("provider", Provider::Cloud.as_str().to_owned()),
            ("workspace", cloud.workspace.clone()),
            ("client_id", cloud.client_id.clone()),
            ("mode", cloud.mode.as_str().to_owned()),
        ]);
    }
    if let Some(dc) = &integration.datacenter {
        values.extend([
            ("api_url", dc.api_url.clone()),
            ("user_facing_url", dc.user_facing_url.clone()),
            ("auth", dc.auth.as_str().to_owned()),
            ("ca_certificate", dc.ca_certificate.clone().unwrap_or_default()),
        ]);
        match (&dc.access_token_last4, &dc.oauth2) {
            (Some(last4), _) => values.extend([
                ("username", dc.username.clone().unwrap_or_default()),
                ("access_token_last4", format!("\u{2026}{last4}")),
            ]),
            (None, Some(link)) => {
                values.extend([("client_id", link.client_id.clone()), ("stored_client_id", link.client_id.clone())])
            }
            (None, None) => {
                if let Some(link) = &dc.oauth1 {
                    values.push(("consumer_key", link.consumer_key.clone()));
                }
            }
        }
    }
    values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// `/integrations/{id}/edit`: the wizard's form, prefilled.
pub async fn edit_page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let (integration, _) = administered(&state, &user, &raw).await?;
    let form = FormOutcome { values: stored_values(&integration), ..Default::default() };
    render_form(&state, context, &user, Ok(&integration), Some(form), Vec::new(), StatusCode::OK).await
}

pub async fn update(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
    Form(form): Form<WizardForm>,
) -> Result<Response, AppError> {
    // The operation authorizes; the integration is loaded again only to
    // answer a refused form with its page.
    let principal = user.caller(address).principal();
    match operations::update(&state.services, &principal, parse_id(&raw)?, form.change()).await {
        Ok(updated) => {
            push_flash(&session, Flash::success(format!("Integration \u{201c}{}\u{201d} saved.", updated.name)))
                .await?;
            Ok(Redirect::to(&format!("/integrations/{}", updated.id)).into_response())
        }
        Err(failure) => {
            let (integration, _) = administered(&state, &user, &raw).await?;
            let mut values = form.values();
            let stored = ["access_token_last4", "stored_client_id"];
            values.extend(stored_values(&integration).into_iter().filter(|(k, _)| stored.contains(&k.as_str())));
            let (outcome, checks, status) = answered_again(failure, values)?;
            render_form(&state, context, &user, Ok(&integration), Some(outcome), checks, status).await
        }
    }
}

/// The stacks using an integration that the viewer can see.
async fn stacks_of(state: &AppState, access: &Access, integration: &Integration) -> Result<Vec<StackRow>, AppError> {
    let filter = StackFilter { integration_id: Some(integration.id), ..Default::default() };
    let found = stacks::list(&state.services.pool, &access.visible_spaces(), &filter, None, 1000).await?;
    super::stacks::rows(state, found).await
}

async fn render_delete(
    state: &AppState,
    context: PageContext,
    access: &Access,
    integration: &Integration,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let page = DeleteIntegrationPage {
        id: integration.id.to_string(),
        name: integration.name.clone(),
        stacks: stacks_of(state, access, integration).await?,
        manage_webhooks: integration.options.manage_webhooks,
    };
    let context = PageContext { page: PageData::DeleteIntegration(page), form, ..context };
    Ok(state.pages.render(context, status).await)
}

/// `/integrations/{id}/delete`: what it does to the stacks, then confirm.
pub async fn delete_page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let (integration, access) = administered(&state, &user, &raw).await?;
    render_delete(&state, context, &access, &integration, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm_name: String,
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, AppError> {
    let principal = user.caller(address).principal();
    let id = parse_id(&raw)?;
    // A refused delete is recorded even before the name is compared.
    let integration = operations::load_for(&state.services, &principal, id, Purpose::Act("integration.delete")).await?;
    let access = Access::load(&state.services.pool, user.0.id).await?;
    if form.confirm_name.trim() != integration.name {
        let outcome = FormOutcome {
            values: vec![("confirm_name".into(), form.confirm_name.clone())],
            field_errors: vec![(
                "confirm_name".into(),
                format!("Type the integration's name exactly, {}, to delete it.", integration.name),
            )],
            form_error: Some("Nothing was deleted.".into()),
            blocked: None,
        };
        return render_delete(&state, context, &access, &integration, Some(outcome), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let (deleted, detached) = operations::delete(&state.services, &principal, id).await?;
    let message = match detached {
        0 => format!("Integration \u{201c}{}\u{201d} deleted.", deleted.name),
        n => format!("Integration \u{201c}{}\u{201d} deleted; {n} stack(s) detached: attach them to another integration from their pages.", deleted.name),
    };
    push_flash(&session, Flash::success(message)).await?;
    Ok(Redirect::to("/").into_response())
}
