//! What the server knows of the request before a page renders: who is
//! looking, their CSRF token, flash messages, and the outcome of a form post
//! being answered with its page, and the page itself ([`PageData`]). The
//! server's middleware puts a [`PageContext`] into the request's extensions;
//! the handler adds its page's data and renders; components read it while
//! rendering on the server (islands get what they need as props).

use serde::{Deserialize, Serialize};

/// The logged-in user, as pages show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub is_account_admin: bool,
    /// Sent back in a hidden field by every plain form post of this session.
    pub csrf_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashKind {
    Success,
    Info,
    Error,
}

/// A one-time message shown on the next page (after a redirect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
    /// A connection test's checklist under the message (what a passed test proved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::components::checklist::CheckLine>,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Self::new(FlashKind::Success, message)
    }
    pub fn info(message: impl Into<String>) -> Self {
        Self::new(FlashKind::Info, message)
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(FlashKind::Error, message)
    }
    fn new(kind: FlashKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), checks: Vec::new() }
    }
    /// The message with the checklist it sums up.
    pub fn with_checks(self, checks: Vec<crate::components::checklist::CheckLine>) -> Self {
        Self { checks, ..self }
    }
}

/// A form that was posted and is answered with its page again: the values to
/// keep (never a password) and the errors to show next to each field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormOutcome {
    pub values: Vec<(String, String)>,
    pub field_errors: Vec<(String, String)>,
    /// An error about the whole form, shown above it.
    pub form_error: Option<String>,
    /// Why the form cannot be used at all (a spent setup link, say): the page
    /// shows this instead of the form.
    pub blocked: Option<String>,
}

impl FormOutcome {
    pub fn value(&self, field: &str) -> String {
        self.values.iter().find(|(k, _)| k == field).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    pub fn error(&self, field: &str) -> Option<String> {
        self.field_errors.iter().find(|(k, _)| k == field).map(|(_, v)| v.clone())
    }
}

/// Facts about this Bitgate installation that pages show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installation {
    pub public_url: String,
    /// Where Bitbucket Cloud's OAuth pages are (`BITGATE_BITBUCKET_CLOUD_URL`'s
    /// origin): the Connect button's form is sent on there.
    pub cloud_oauth_origin: String,
    pub embedded_database: bool,
    pub version: String,
}

/// An API token as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// What the API tokens page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokensPage {
    pub tokens: Vec<TokenRow>,
    /// A token just created: its name and secret, shown this once.
    pub created: Option<(String, String)>,
    /// The create form was sent again after it made this token (a double
    /// click): the secret went to the first answer only.
    pub sent_again: Option<TokenRow>,
    /// The next page's address, when there is one; the first's, on a later page.
    pub next_page: Option<String>,
    pub first_page: Option<String>,
}

/// A space as the spaces page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceRow {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    pub description: String,
    /// The viewer's role on it (read, write, admin).
    pub role: String,
}

/// What the spaces page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpacesPage {
    pub spaces: Vec<SpaceRow>,
}

/// A member of a space as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
}

/// What a space's page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpacePage {
    pub space: SpaceRow,
    /// `root` keeps its name.
    pub is_root: bool,
    /// Members are shown to the space's admins only.
    pub members: Option<Vec<MemberRow>>,
}

/// A user as the users page lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub disabled: bool,
    pub account_admin: bool,
    pub created_at: String,
}

/// What the users page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<UserRow>,
    /// The next page's address, when there is one; the first's, on a later page.
    pub next_page: Option<String>,
    pub first_page: Option<String>,
}

/// An audit event as the audit page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub occurred_at: String,
    /// The actor's kind (`user`, `token`, `cli`, `anonymous`) and label.
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub space: Option<String>,
    pub client_address: Option<String>,
    /// The event's details, as compact JSON ("" when there are none).
    pub details: String,
}

/// The audit page's filters, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilters {
    pub actor: String,
    pub action: String,
    /// A date (YYYY-MM-DD) or an RFC 3339 time.
    pub since: String,
    pub space_id: String,
}

/// What the audit page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditRow>,
    pub filters: AuditFilters,
    /// A problem with the filters, shown above them.
    pub filter_error: Option<String>,
    /// The actions to choose from, and the spaces (id, name) the viewer may filter by.
    pub actions: Vec<String>,
    pub spaces: Vec<(String, String)>,
    /// The address of the next (older) page, when there is one.
    pub older: Option<String>,
}

/// The API reference page: the OpenAPI document, digested for reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiReference {
    /// The document's description, as HTML rendered on the server from
    /// Bitgate's own markdown (never from user input).
    pub intro_html: String,
    pub sections: Vec<ApiSection>,
    pub schemas: Vec<SchemaDoc>,
}

/// The operations of one tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiSection {
    pub tag: String,
    pub description: String,
    pub operations: Vec<OperationDoc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationDoc {
    /// The operation id, used as the anchor.
    pub id: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    /// HTML rendered on the server from the handler's doc comment.
    pub description_html: String,
    pub authenticated: bool,
    pub parameters: Vec<FieldDoc>,
    /// The request body's type, when it takes one.
    pub request: Option<TypeRef>,
    pub responses: Vec<ResponseDoc>,
}

/// A parameter or a property.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldDoc {
    pub name: String,
    /// Where a parameter goes (path, query); empty for properties.
    pub location: String,
    pub kind: TypeRef,
    pub required: bool,
    /// Inline HTML rendered on the server from Bitgate's own doc comments.
    pub description_html: String,
}

/// A type as the reference writes it: its text, and the schema it links to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeRef {
    pub text: String,
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDoc {
    pub status: String,
    /// Inline HTML rendered on the server from Bitgate's own doc comments.
    pub description_html: String,
    pub body: Option<TypeRef>,
}

/// A named schema: an object's properties, or an enumeration's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDoc {
    pub name: String,
    pub description: String,
    pub properties: Vec<FieldDoc>,
    pub values: Vec<String>,
}

/// An integration as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRow {
    pub id: String,
    pub name: String,
    pub provider: String,
    /// "Default" or the space's name.
    pub scope: String,
    pub labels: Vec<String>,
    pub health: String,
    pub stacks_count: i64,
    /// Whether the viewer may open it (readers see it in the list only).
    pub can_open: bool,
}

/// The integrations list (the home page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationsPage {
    pub rows: Vec<IntegrationRow>,
    /// The viewer administers a space, or the account: they may create one.
    pub can_create: bool,
    /// The filters' choices: (value, label) of the spaces the viewer sees,
    /// and the labels in use.
    pub spaces: Vec<(String, String)>,
    pub labels: Vec<String>,
    /// The filters applied: provider, space id, label, name search ("" for any).
    pub provider: String,
    pub space: String,
    pub label: String,
    pub name: String,
    /// The next page's address (the filters kept), when there is one.
    pub next_page: Option<String>,
    /// The first page's address, on a later page.
    pub first_page: Option<String>,
}

/// A stack as lists show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackRow {
    pub id: String,
    pub name: String,
    pub space: String,
    /// The integration's name; None when detached.
    pub integration: Option<String>,
    /// `PROJECT/slug`.
    pub repository: String,
    pub branch: String,
}

/// `/stacks`: the stacks of the spaces the viewer sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StacksPage {
    pub rows: Vec<StackRow>,
    /// The viewer writes to a space: they may create one.
    pub can_create: bool,
    /// The next page's address, when there is one; the first's, on a later page.
    pub next_page: Option<String>,
    pub first_page: Option<String>,
}

/// `/stacks/new`, one GET step at a time: the space, then an integration
/// its stacks may use, then a repository from what Bitbucket shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewStackPage {
    /// (id, name) of the spaces the viewer writes to.
    pub spaces: Vec<(String, String)>,
    pub space_id: String,
    /// (id, label) of the integrations the chosen space may use.
    pub integrations: Vec<(String, String)>,
    pub integration_id: String,
    /// The repository search as typed.
    pub query: String,
    /// (full name, name Bitbucket shows) of this page of repositories.
    pub repositories: Vec<(String, String)>,
    /// The link to the next page of repositories, when there is one.
    pub more_href: Option<String>,
    /// Why the repositories could not be listed.
    pub repositories_error: Option<String>,
    /// The triggers a new stack starts with, ticked on the form.
    pub triggers: StackTriggers,
}

/// A stack's triggers: which events its deliveries make besides a tracked
/// run for a push to its branch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackTriggers {
    pub build_pull_requests: bool,
    pub all_branches: bool,
    pub prune_branches: bool,
    pub resync_pull_requests: bool,
}

/// `/stacks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackPage {
    pub id: String,
    pub name: String,
    pub space: String,
    pub provider: String,
    /// (id, name) of its integration, when attached; its details link only
    /// for those who administer it.
    pub integration: Option<(String, String)>,
    pub integration_link: bool,
    pub repository: String,
    pub repository_id: String,
    pub branch: String,
    pub created: String,
    pub can_write: bool,
    /// (id, name) of the integrations it may be attached to instead.
    pub attachable: Vec<(String, String)>,
    /// A push deleted the branch it tracks.
    pub branch_deleted: bool,
    /// (delivery id, time) of the last delivery that triggered it; the link
    /// only for those who may see the delivery log.
    pub last_delivery: Option<(String, String)>,
    pub last_delivery_link: bool,
    pub triggers: StackTriggers,
    /// (state, message) of Bitgate's webhook in its repository; none until
    /// the first check.
    pub hook: Option<(String, String)>,
    /// Its latest runs, newest first.
    pub runs: Vec<RunRow>,
    /// It has older runs than those shown (the API lists them all).
    pub more_runs: bool,
    pub outbound: OutboundLog,
}

/// A run as its stack's page lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRow {
    /// The platform's own id of the run.
    pub key: String,
    /// The platform's page of the run: an http(s) URL, checked when reported.
    pub url: Option<String>,
    pub title: Option<String>,
    pub kind: String,
    pub state: String,
    /// The commit's first 12 characters.
    pub commit: String,
    /// The pull request a proposed run is for.
    pub pull_request_id: Option<i64>,
    pub updated_at: String,
    pub statuses: Vec<RunStatusRow>,
    /// The comment Bitgate keeps on its pull request for the stack.
    pub comment: Option<RunCommentRow>,
}

/// A run's pull-request comment in Bitbucket, and whether it was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCommentRow {
    pub pull_request_id: i64,
    /// `pending`, `sent`, `failed` or `skipped`.
    pub sent: String,
    /// Why it failed or was skipped.
    pub message: Option<String>,
}

/// A build status that shows a run in Bitbucket, and whether it was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStatusRow {
    pub key: String,
    /// In Bitbucket's word: `INPROGRESS`, `SUCCESSFUL`...
    pub state: String,
    /// `pending`, `sent` or `failed`.
    pub sent: String,
    /// Why it failed.
    pub message: Option<String>,
}

/// The latest calls Bitgate made to Bitbucket for a stack or an integration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundLog {
    pub rows: Vec<OutboundRow>,
    /// There are older calls than those shown (the API lists them all).
    pub more: bool,
    /// Where the API lists them all, such as `/api/v1/stacks/{id}/outbound`.
    pub api_path: String,
}

/// One call to Bitbucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundRow {
    pub at: String,
    /// What was sent, such as `build status bitgate/tracked (failed)`.
    pub what: String,
    pub method: String,
    /// The API path, without host or query.
    pub path: String,
    /// Bitbucket's answer; none when none came (the network, the timeout).
    pub status: Option<i32>,
    pub ok: bool,
    /// Bitbucket's message, quoted short, or why no answer came.
    pub message: Option<String>,
    /// 1 for the first try.
    pub attempt: i32,
    /// (id, name) of the stack it was for, on an integration's log, when the
    /// viewer sees that stack.
    pub stack: Option<(String, String)>,
}

/// One delivery as the log lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub received_at: String,
    pub event_key: String,
    pub repository: String,
    pub request_id: String,
    pub signature: String,
    pub outcome: String,
    pub reason: String,
    pub stacks: usize,
    pub duplicate_count: i32,
}

/// `/integrations/{id}/deliveries`: the delivery log, filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveriesPage {
    pub integration_id: String,
    pub integration_name: String,
    pub rows: Vec<DeliveryRow>,
    /// The filters in effect (empty: any).
    pub outcome: String,
    pub event: String,
    /// Rejected requests past the recording cap in the last day.
    pub dropped_today: i64,
    /// The next page's address (the filters kept), when there is one.
    pub next_page: Option<String>,
    /// The first page's address (the filters kept), on a later page.
    pub first_page: Option<String>,
}

/// `/deliveries/{id}`: one delivery, its headers and (accepted) body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryPage {
    pub integration_id: String,
    pub integration_name: String,
    pub row: DeliveryRow,
    pub headers: Vec<(String, String)>,
    /// Pretty-printed JSON.
    pub body: Option<String>,
    /// (id, name) of the stacks it matched.
    pub stacks: Vec<(String, String)>,
}

/// `/integrations/{id}/delete`: what deleting it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteIntegrationPage {
    pub id: String,
    pub name: String,
    pub stacks: Vec<StackRow>,
    /// Bitgate deletes its webhooks from Bitbucket first.
    pub manage_webhooks: bool,
}

/// The Data Center wizard: where the integration may go, and the checklist
/// of the last attempt. The edit page uses it too (with `editing`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WizardPage {
    /// (id, name) of the integration being edited; its form is prefilled.
    pub editing: Option<(String, String)>,
    /// (id, name) of the spaces the viewer administers.
    pub spaces: Vec<(String, String)>,
    pub can_create_default: bool,
    /// (check, passed, message) of the last test, when one ran.
    pub checks: Vec<crate::components::checklist::CheckLine>,
    /// How long each call to Bitbucket may take (BITGATE_OUTBOUND_TIMEOUT).
    pub outbound_timeout_seconds: u64,
    /// `bitbucket_datacenter` or `bitbucket_cloud`; empty: the provider is
    /// still to choose.
    pub provider: String,
    /// The OAuth callback to paste into a Cloud consumer.
    pub callback_url: String,
}

/// An integration's details page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationPage {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub scope: String,
    pub labels: Vec<String>,
    /// Rendered and sanitized on the server.
    pub description_html: String,
    /// (label, value) facts: URLs, username, token's last four, options...
    pub facts: Vec<(String, String)>,
    pub health_state: String,
    pub health_message: String,
    pub health_checked_at: String,
    pub webhook_url: String,
    /// Shown once revealed (the answer is then `no-store`).
    pub webhook_secret: Option<String>,
    /// The triggers to tick in Bitbucket: (group, label, event key).
    pub triggers: Vec<(String, String, String)>,
    /// Where the webhook is added in this provider's Bitbucket.
    pub webhook_steps: String,
    /// When the last delivery came; none yet: "waiting for the first delivery".
    pub last_delivery_at: Option<String>,
    /// While a rotated-out secret is still accepted.
    pub previous_secret_valid_until: Option<String>,
    /// A Cloud integration approved by an admin: the Connect button's label
    /// (`Connect` while pending, `Reconnect` otherwise).
    pub connect: Option<String>,
    pub created: String,
    pub stacks: Vec<StackRow>,
    /// Bitgate keeps its webhook in each repository its stacks use.
    pub manage_webhooks: bool,
    /// Those repositories and Bitgate's webhook in each, as last checked.
    pub hooks: Vec<HookRow>,
    /// What polling does for repositories without a working webhook, and
    /// (Cloud) how many one pass can read within Bitbucket's allowance.
    pub polling: String,
    /// Its outbound log; none for a viewer who may not read it.
    pub outbound: Option<OutboundLog>,
    /// A Data Center OAuth 1.0a integration: what to enter in Bitbucket's
    /// application link.
    pub application_link: Option<Box<ApplicationLink>>,
}

/// What an admin enters in Bitbucket's application link for an OAuth 1.0a
/// integration: Bitgate's consumer key and public key, named as the form names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationLink {
    pub consumer_key: String,
    pub consumer_name: String,
    pub public_key: String,
    /// Where Bitbucket's Application Links page is.
    pub links_page: String,
}

/// Bitgate's webhook in one repository, as the integration's page lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookRow {
    pub repository: String,
    /// How many of the integration's stacks use the repository.
    pub stacks: i64,
    /// `installed`, `missing`, ...; none until the first check.
    pub state: Option<String>,
    pub message: Option<String>,
    pub checked_at: Option<String>,
    /// Its branch heads are read instead (no working webhook).
    pub polled: bool,
}

/// `/integrations/import`: the file chosen, then its preview or its problems.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPage {
    /// (id, name) of the spaces the viewer administers: where the entries
    /// that name no space go.
    pub spaces: Vec<(String, String)>,
    pub space_id: String,
    /// The file posted, kept for the apply step (or to fix it in place).
    pub text: String,
    /// (place, message) of every problem of the last attempt.
    pub problems: Vec<(String, String)>,
    /// What applying the file would do, once it passed every check.
    pub preview: Option<ImportPreview>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPreview {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
}

/// `/login`: where to go once logged in, and why the user was sent here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginPage {
    /// A path of this site to return to (already checked by the server).
    pub next: String,
    /// `expired` or `logged_out`, from the redirect that led here.
    pub reason: Option<String>,
}

/// The page being answered, with the data it shows: one variant per page,
/// so that a handler cannot render a page without its data, and the page
/// component is chosen by the variant (see `App`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PageData {
    /// Every unknown path, and everything the viewer may not see.
    #[default]
    NotFound,
    Login(LoginPage),
    Setup,
    Integrations(IntegrationsPage),
    /// A new integration, or an existing one being edited.
    Wizard(WizardPage),
    Integration(IntegrationPage),
    DeleteIntegration(DeleteIntegrationPage),
    Import(ImportPage),
    Deliveries(DeliveriesPage),
    Delivery(DeliveryPage),
    Stacks(StacksPage),
    NewStack(NewStackPage),
    Stack(StackPage),
    Spaces(SpacesPage),
    Space(SpacePage),
    Tokens(TokensPage),
    Users(UsersPage),
    Audit(AuditPage),
    ApiReference(ApiReference),
}

/// Everything a page may need to know about its request: who is looking,
/// the flashes to show, the form being answered, and the page itself.
#[derive(Debug, Clone, Default)]
pub struct PageContext {
    pub viewer: Option<Viewer>,
    pub flashes: Vec<Flash>,
    pub form: Option<FormOutcome>,
    pub installation: Installation,
    pub page: PageData,
    /// A fresh token for the form on this page that creates something
    /// (`SubmissionField`): sent twice, it creates once (core's `submissions`).
    pub submission: String,
}

impl PageContext {
    /// This context answering with `page`.
    pub fn with(self, page: PageData) -> Self {
        Self { page, ..self }
    }

    /// This context answering with `page` and a posted form's outcome.
    pub fn with_form(self, page: PageData, form: Option<FormOutcome>) -> Self {
        Self { page, form, ..self }
    }
}

/// The page context of the request being rendered, shared rather than
/// copied (empty in the browser, where only islands run).
pub fn page_context() -> std::sync::Arc<PageContext> {
    #[cfg(feature = "ssr")]
    {
        use leptos::prelude::use_context;
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<std::sync::Arc<PageContext>>().cloned())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        std::sync::Arc::default()
    }
}
