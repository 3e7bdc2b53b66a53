//! `/api/v1/integrations`: list, create (credentials checked first), read,
//! test, delete, and the webhook endpoint and secret. Authorization comes
//! first, then validation, then the connection checks; nothing is stored
//! unless every check passed.

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::{
    access::Access,
    audit::{self, Event, Target},
    bitbucket::datacenter,
    integrations::{self, rules, Health, Integration, NewDataCenter, Options, Provider},
    users::FieldError,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    cloud::{self, CloudInput, CloudUpdate, CloudView},
    error::{ApiError, ErrorBody},
    json::{Fields, JsonObject},
    pagination::{page_of, Cursor, Page, PageQuery},
    rfc3339,
};
use crate::state::AppState;

/// An integration, as the API shows it. Never a secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Integration)]
pub struct IntegrationView {
    pub id: Uuid,
    pub name: String,
    /// Made from the name; the webhook endpoint ends with it.
    pub slug: String,
    #[schema(example = "bitbucket_datacenter")]
    pub provider: String,
    /// `default` (every space may use it) or `space`.
    #[schema(example = "space")]
    pub scope: String,
    /// Set when `scope` is `space`.
    pub space_id: Option<Uuid>,
    pub labels: Vec<String>,
    /// Markdown.
    pub description: String,
    pub options: OptionsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<DataCenterView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudView>,
    /// Where Bitbucket sends this integration's webhooks.
    pub webhook_url: String,
    pub health: HealthView,
    /// How many stacks use it.
    pub stacks_count: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub created_by: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OptionsView {
    /// Clone with git rather than download archives.
    pub use_git_checkout: bool,
    /// Push build statuses to Bitbucket.
    pub commit_status: bool,
    /// Link back to the platform in statuses.
    pub status_details: bool,
    /// `individual`, `aggregated` or `all`.
    pub vcs_checks: String,
}

/// Data Center credentials as shown: the token never, its last four characters only.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataCenterView {
    pub api_url: String,
    pub user_facing_url: String,
    pub username: String,
    pub access_token_last4: String,
    pub ca_certificate: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `connected`, `pending_authorization` or `error`.
    pub state: String,
    pub message: String,
    #[schema(format = DateTime)]
    pub checked_at: Option<String>,
}

/// The body of `POST /api/v1/integrations`.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct CreateIntegration {
    /// 1 to 63 characters, unique; it cannot change (the webhook endpoint is made from it).
    #[schema(example = "dc-main")]
    name: String,
    /// `bitbucket_datacenter` (give `datacenter`) or `bitbucket_cloud` (give `cloud`).
    provider: String,
    /// `default` (account admins only; one per provider) or `space`.
    scope: String,
    /// The space, when `scope` is `space`; you must administer it.
    space_id: Option<Uuid>,
    labels: Option<Vec<String>>,
    /// Markdown.
    description: Option<String>,
    options: Option<OptionsInput>,
    datacenter: Option<DataCenterInput>,
    cloud: Option<CloudInput>,
}

/// Options; each left out takes its default.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct OptionsInput {
    /// Default false.
    use_git_checkout: Option<bool>,
    /// Default true.
    commit_status: Option<bool>,
    /// Default true.
    status_details: Option<bool>,
    /// `individual` (default), `aggregated` or `all`.
    vcs_checks: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DataCenterInput {
    /// Where Bitbucket's REST API answers, with its context path.
    #[schema(example = "https://bitbucket.example.com")]
    api_url: String,
    /// Where people open Bitbucket; the API URL when left out.
    user_facing_url: Option<String>,
    /// The user the access token belongs to.
    username: String,
    /// An HTTP access token with Projects: read and Repositories: read. Write-only.
    #[schema(format = Password)]
    access_token: String,
    /// The PEM certificate of a private CA that signed Bitbucket's certificate.
    ca_certificate: Option<String>,
}

/// The answer of a connection test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub checks: Vec<CheckView>,
    pub health: HealthView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// `server`, `token`, `owner`, `projects`, `repositories`.
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// The webhook endpoint and secret, to paste into Bitbucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
    /// While a rotated-out secret is still accepted.
    #[schema(format = DateTime)]
    pub previous_secret_valid_until: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `bitbucket_cloud` or `bitbucket_datacenter`.
    provider: Option<String>,
    /// Only the integrations of this space.
    #[param(value_type = Option<Uuid>)]
    space_id: Option<String>,
    /// Only integrations with this label.
    label: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    cursor: Option<String>,
}

pub fn webhook_url(state: &AppState, slug: &str) -> String {
    state.services.config.public_url.join(&format!("/webhooks/bitbucket/{slug}"))
}

fn health_view(health: &Health) -> HealthView {
    HealthView {
        state: health.state.clone(),
        message: health.message.clone(),
        checked_at: health.checked_at.map(rfc3339),
    }
}

fn view(state: &AppState, integration: &Integration) -> IntegrationView {
    IntegrationView {
        id: integration.id,
        name: integration.name.clone(),
        slug: integration.slug.clone(),
        provider: integration.provider.as_str().to_owned(),
        scope: if integration.space_id.is_some() { "space" } else { "default" }.to_owned(),
        space_id: integration.space_id,
        labels: integration.labels.clone(),
        description: integration.description.clone(),
        options: OptionsView {
            use_git_checkout: integration.options.use_git_checkout,
            commit_status: integration.options.commit_status,
            status_details: integration.options.status_details,
            vcs_checks: integration.options.vcs_checks.clone(),
        },
        datacenter: integration.datacenter.as_ref().map(|dc| DataCenterView {
            api_url: dc.api_url.clone(),
            user_facing_url: dc.user_facing_url.clone(),
            username: dc.username.clone(),
            access_token_last4: dc.access_token_last4.clone(),
            ca_certificate: dc.ca_certificate.clone(),
        }),
        cloud: integration.cloud.as_ref().map(CloudView::from),
        webhook_url: webhook_url(state, &integration.slug),
        health: health_view(&integration.health),
        stacks_count: integration.stacks_count,
        created_at: rfc3339(integration.created_at),
        created_by: integration.created_by_label.clone(),
    }
}

fn target(integration: &Integration) -> Target {
    Target { kind: "integration", id: integration.id.to_string(), label: integration.name.clone() }
}

/// The integration, when the caller administers it (its space's admins; the
/// account's for a default); otherwise the refusal, recorded.
pub async fn administered(state: &AppState, caller: &Caller, raw: &str, action: &str) -> Result<Integration, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let integration = integrations::find(&state.services.pool, id).await?.ok_or(ApiError::NotFound)?;
    if let Err(why) = access.can_administer_integration(integration.space_id) {
        return Err(caller.refused(state, "integration", action, integration.space_id, why).await);
    }
    Ok(integration)
}

/// List integrations
///
/// The defaults, and the integrations of every space you hold a role on.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", params(ListQuery),
    responses((status = 200, description = "The integrations you can see, newest first.", body = Page<IntegrationView>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<IntegrationView>>, ApiError> {
    let request = PageQuery { limit: query.limit.clone(), cursor: query.cursor.clone() }.parse()?;
    let provider = query
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(Provider::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.message))?;
    let space_id = query
        .space_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| ApiError::BadRequest("space_id must be a space's id (a UUID).".into()))?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let filter = integrations::ListFilter { provider, space_id, label: query.label.clone().filter(|l| !l.is_empty()) };
    let rows = integrations::list(
        &state.services.pool,
        &access.visible_spaces(),
        &filter,
        request.after.map(|c| (c.at, c.id)),
        request.limit + 1,
    )
    .await?;
    Ok(Json(page_of(rows, request.limit, |i| Cursor { at: i.created_at, id: i.id }, |i| view(&state, i))))
}

/// Create an integration
///
/// Admins of the space; account admins for a default. The credentials are
/// checked against Bitbucket first: when a check fails, the answer is 422
/// with each failed check in `details`, and nothing is stored.
#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations", request_body = CreateIntegration,
    responses(
        (status = 201, description = "Created; every connection check passed.", body = IntegrationView),
        (status = 403, description = "You do not administer the space (or the account, for a default).", body = ErrorBody),
        (status = 404, description = "The space does not exist, or you cannot see it.", body = ErrorBody),
        (status = 409, description = "The name or its webhook endpoint is taken, or a default exists already.", body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, caller: Caller, body: JsonObject) -> Result<Response, ApiError> {
    let integration = create_checked(&state, &caller, body).await.map_err(|failure| failure.error)?;
    Ok((StatusCode::CREATED, Json(view(&state, &integration))).into_response())
}

/// Why an integration was not created or changed, with the checklist when
/// the connection checks ran.
pub struct CreateFailure {
    pub error: ApiError,
    pub report: Option<datacenter::Report>,
}

impl From<ApiError> for CreateFailure {
    fn from(error: ApiError) -> Self {
        Self { error, report: None }
    }
}

impl From<sqlx::Error> for CreateFailure {
    fn from(error: sqlx::Error) -> Self {
        ApiError::from(error).into()
    }
}

impl From<bitgate_core::access::Denied> for CreateFailure {
    fn from(denied: bitgate_core::access::Denied) -> Self {
        ApiError::from(denied).into()
    }
}

/// Creates an integration from a request body (the REST API's, or the
/// wizard's form turned into one): authorization, validation, conflicts,
/// the connection checks, then the insert and its audit entry.
pub async fn create_checked(state: &AppState, caller: &Caller, body: JsonObject) -> Result<Integration, CreateFailure> {
    let mut fields = Fields::new::<CreateIntegration>(body);
    // Authorization first: the scope decides who may.
    let scope = fields.required_string("scope");
    let space_raw = fields.optional_string("space_id");
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let space_id = match (scope.as_deref(), space_raw) {
        (Some("space"), Some(raw)) => {
            let space = Uuid::parse_str(raw.trim()).map_err(|_| ApiError::NotFound)?;
            if let Err(why) = access.can_administer(space) {
                return Err(caller.refused(state, "integration", "integration.create", Some(space), why).await.into());
            }
            Some(space)
        }
        (Some("space"), None) => {
            fields.refuse("space_id", "required", "Choose the space this integration belongs to.");
            None
        }
        (Some("default"), _) => {
            if let Err(why) = access.can_administer_account() {
                return Err(caller.refused(state, "integration", "integration.create", None, why).await.into());
            }
            None
        }
        (Some(_), _) => {
            fields.refuse("scope", "invalid", "Choose default or space.");
            None
        }
        (None, _) => None,
    };

    let name = fields.required_string("name").and_then(|raw| fields.check(integrations::parse_name(&raw)));
    let provider = fields.required_string("provider").and_then(|raw| fields.check(Provider::parse(&raw)));
    let labels = fields.optional_strings("labels").unwrap_or_default();
    let labels = fields.check(integrations::parse_labels(&labels));
    let description = fields.optional_string("description").unwrap_or_default();
    let description = fields.check(integrations::parse_description(&description));
    let options = read_options(&mut fields);
    // The credentials of the provider chosen; the other provider's are refused.
    let (other, other_label) = match provider {
        Some(Provider::Cloud) => ("datacenter", "a Bitbucket Cloud"),
        _ => ("cloud", "a Bitbucket Data Center"),
    };
    if fields.has(other) {
        fields.refuse(other, "wrong_provider", format!("Not a field of {other_label} integration."));
    }
    let credentials = match provider {
        Some(Provider::DataCenter) => match fields.nested::<DataCenterInput>("datacenter") {
            Some(mut dc) => {
                let connection = read_connection(state, &mut dc);
                fields.absorb(dc);
                connection.map(Credentials::DataCenter)
            }
            None => {
                fields.refuse("datacenter", "required", "Give the Data Center credentials.");
                None
            }
        },
        Some(Provider::Cloud) => match fields.nested::<CloudInput>("cloud") {
            Some(mut cloud) => {
                let settings = cloud::read(&mut cloud);
                fields.absorb(cloud);
                settings.map(Credentials::Cloud)
            }
            None => {
                fields.refuse("cloud", "required", "Give the workspace and the OAuth consumer's key and secret.");
                None
            }
        },
        None => None,
    };
    fields.finish()?;
    let (Some((name, slug)), Some(labels), Some(description), Some(options), Some(provider), Some(credentials)) =
        (name, labels, description, options, provider, credentials)
    else {
        return Err(ApiError::Internal("validated fields missing".into()).into());
    };

    // Conflicts before the (slow) checks; the insert catches races.
    if let Some(conflict) = integrations::conflict(&state.services.pool, &name, &slug, provider, space_id).await? {
        return Err(ApiError::Conflict(conflict.field_error().into_iter().collect()).into());
    }
    let common = Common { name, slug, space_id, labels, description, options };
    let (connection, user_facing_url, ca_pem) = match credentials {
        Credentials::DataCenter(connection) => connection,
        Credentials::Cloud(settings) => return create_cloud(state, caller, common, settings).await,
    };
    let Common { name, slug, space_id, labels, description, options } = common;
    let report = datacenter::check(&connection, &state.services.config).await;
    if !report.passed() {
        return Err(CreateFailure { error: ApiError::Validation(check_errors(&report)), report: Some(report) });
    }
    let new = NewDataCenter {
        name,
        slug,
        space_id,
        labels,
        description,
        options,
        api_url: connection.api_url.as_str().trim_end_matches('/').to_owned(),
        user_facing_url,
        username: connection.username.trim().to_owned(),
        access_token: connection.token.trim().to_owned(),
        ca_certificate: ca_pem,
        disable_polling: false,
        disable_webhooks: false,
        health: Health {
            state: "connected".into(),
            message: report.checks.first().map(|c| c.message.clone()).unwrap_or_default(),
            checked_at: Some(time::OffsetDateTime::now_utc()),
        },
        created_by: Some(caller.user.id),
        created_by_label: caller.user.email.clone(),
    };
    let mut tx = state.services.pool.begin().await?;
    let created = integrations::create_datacenter(&mut tx, &state.services.keyring, new).await;
    record_creation(caller, tx, created).await
}

/// The credentials of a creation, read and checked for form.
enum Credentials {
    DataCenter((datacenter::Connection, String, Option<String>)),
    Cloud(cloud::CloudSettings),
}

/// What every integration has, whatever its provider.
struct Common {
    name: String,
    slug: String,
    space_id: Option<Uuid>,
    labels: Vec<String>,
    description: String,
    options: Options,
}

/// Creates a Cloud integration once its consumer passed the checks its
/// mode allows before an approval.
async fn create_cloud(
    state: &AppState,
    caller: &Caller,
    common: Common,
    settings: cloud::CloudSettings,
) -> Result<Integration, CreateFailure> {
    let tokens = cloud::check_new(state, &settings).await?;
    let health = cloud::initial_health(&settings, tokens.as_ref().map(|(_, account)| account));
    let new = integrations::NewCloud {
        name: common.name,
        slug: common.slug,
        space_id: common.space_id,
        labels: common.labels,
        description: common.description,
        options: common.options,
        workspace: settings.workspace,
        consumer: settings.consumer,
        mode: settings.mode,
        tokens,
        health,
        created_by: Some(caller.user.id),
        created_by_label: caller.user.email.clone(),
    };
    let mut tx = state.services.pool.begin().await?;
    let created = integrations::create_cloud(&mut tx, &state.services.keyring, new).await;
    record_creation(caller, tx, created).await
}

/// Ends a creation: a conflict the insert caught, or the audit entry and the commit.
async fn record_creation(
    caller: &Caller,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    created: Result<Integration, integrations::WriteError>,
) -> Result<Integration, CreateFailure> {
    let integration = match created {
        Ok(integration) => integration,
        Err(integrations::WriteError::Database(e)) => return Err(e.into()),
        Err(conflict) => return Err(ApiError::Conflict(conflict.field_error().into_iter().collect()).into()),
    };
    let event = Event::new(caller.actor(), "integration.created")
        .target(target(&integration))
        .from_address(caller.address)
        .details(serde_json::json!({"provider": integration.provider.as_str()}))
        .in_space(integration.space_id);
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(integration)
}

fn read_options(fields: &mut Fields) -> Option<Options> {
    let defaults = Options::default();
    let Some(mut options) = fields.nested::<OptionsInput>("options") else {
        return Some(defaults);
    };
    let use_git_checkout = options.optional_bool("use_git_checkout").unwrap_or(defaults.use_git_checkout);
    let commit_status = options.optional_bool("commit_status").unwrap_or(defaults.commit_status);
    let status_details = options.optional_bool("status_details").unwrap_or(defaults.status_details);
    let vcs_checks = options.optional_string("vcs_checks").unwrap_or(defaults.vcs_checks);
    let vcs_checks = options.check(integrations::parse_vcs_checks(&vcs_checks));
    fields.absorb(options);
    Some(Options { use_git_checkout, commit_status, status_details, vcs_checks: vcs_checks? })
}

/// The connection to check, the user-facing URL, and the CA as given.
fn read_connection(state: &AppState, dc: &mut Fields) -> Option<(datacenter::Connection, String, Option<String>)> {
    let config = &state.services.config;
    let api_url = dc.required_string("api_url").and_then(|raw| match datacenter::parse_api_url(&raw, config) {
        Ok(url) => Some(url),
        Err(why) => {
            dc.refuse("api_url", "invalid", why);
            None
        }
    });
    let user_facing_url = dc.optional_string("user_facing_url").filter(|u| !u.trim().is_empty());
    let user_facing_url = match user_facing_url {
        Some(raw) => match url::Url::parse(raw.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url.as_str().trim_end_matches('/').to_owned()),
            _ => {
                dc.refuse("user_facing_url", "invalid", "Use an http:// or https:// URL.");
                None
            }
        },
        None => api_url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_owned()),
    };
    let username = dc.required_string("username").and_then(|u| {
        if u.trim().is_empty() {
            dc.refuse("username", "required", "Enter the Bitbucket username the token belongs to.");
            None
        } else {
            Some(u)
        }
    });
    let token = dc.required_string("access_token").and_then(|t| {
        if t.trim().is_empty() {
            dc.refuse("access_token", "required", "Paste the HTTP access token.");
            None
        } else {
            Some(t)
        }
    });
    let ca_pem = dc.optional_string("ca_certificate").filter(|c| !c.trim().is_empty());
    let ca = match &ca_pem {
        Some(pem) => match datacenter::parse_ca_certificate(pem) {
            Ok(ca) => Some(ca),
            Err(why) => {
                dc.refuse("ca_certificate", "invalid", why);
                return None;
            }
        },
        None => None,
    };
    let connection = datacenter::Connection { api_url: api_url?, username: username?, token: token?, ca };
    Some((connection, user_facing_url?, ca_pem.map(|p| p.trim().to_owned())))
}

/// Failed checks as `details`, each on the field an admin would change.
fn check_errors(report: &datacenter::Report) -> Vec<FieldError> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok && !c.message.starts_with("Not checked"))
        .map(|c| {
            let field = match c.name {
                "server" => "datacenter.api_url",
                "owner" => "datacenter.username",
                _ => "datacenter.access_token",
            };
            FieldError::new(field, &format!("check_{}", c.name), c.message.clone())
        })
        .collect()
}

/// The body of `PATCH /api/v1/integrations/{id}`: fields left out stay.
#[allow(dead_code)] // Documents the fields that `Fields` reads one by one.
#[derive(ToSchema)]
pub struct UpdateIntegration {
    /// Cannot change (the webhook endpoint is made from it); accepted when unchanged.
    name: Option<String>,
    /// `default` (account admins only) or `space` (with `space_id`, a space
    /// you administer). Refused while stacks outside the new scope use it.
    scope: Option<String>,
    /// The space, when `scope` is `space` (or to move it to another space).
    space_id: Option<Uuid>,
    labels: Option<Vec<String>>,
    description: Option<String>,
    options: Option<OptionsInput>,
    datacenter: Option<DataCenterUpdate>,
    cloud: Option<CloudUpdate>,
}

/// Data Center credentials to change. A new token, and any change of the
/// API URL (which needs the token again), is checked with Bitbucket first.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DataCenterUpdate {
    api_url: Option<String>,
    user_facing_url: Option<String>,
    username: Option<String>,
    /// Write-only. Empty or left out: the stored token stays, unless the API URL changes.
    #[schema(format = Password)]
    access_token: Option<String>,
    /// PEM; an empty string removes it.
    ca_certificate: Option<String>,
}

/// Change an integration
///
/// Everything but the name. Admins of its space; account admins for a default.
/// Changed credentials are checked with Bitbucket before anything is saved.
#[utoipa::path(patch, path = "/api/v1/integrations/{id}", tag = "integrations", request_body = UpdateIntegration,
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The integration as it is now.", body = IntegrationView),
        (status = 403, description = "You see it in lists but do not administer it (or the new scope).", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody),
        (status = 409, description = "A default integration exists already for this provider.", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: JsonObject,
) -> Result<Json<IntegrationView>, ApiError> {
    let updated = update_checked(&state, &caller, &raw, body).await.map_err(|failure| failure.error)?;
    Ok(Json(view(&state, &updated)))
}

/// Changes an integration from a request body (the REST API's PATCH, or the
/// edit page's form turned into one): authorization, validation, the checks
/// of changed credentials, then the update and its audit entry.
pub async fn update_checked(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    body: JsonObject,
) -> Result<Integration, CreateFailure> {
    let integration = administered(state, caller, raw, "integration.update").await?;
    let mut fields = Fields::new::<UpdateIntegration>(body);
    if let Some(name) = fields.optional_string("name") {
        if name.trim() != integration.name {
            fields.refuse("name", "immutable", "The name cannot change: the webhook endpoint is made from it.");
        }
    }
    // A new scope: authorized like a creation there, before anything else is judged.
    let new_scope = new_scope(state, caller, &integration, &mut fields).await?;
    let labels = fields.optional_strings("labels").and_then(|l| fields.check(integrations::parse_labels(&l)));
    let description =
        fields.optional_string("description").and_then(|d| fields.check(integrations::parse_description(&d)));
    // Fields left out of `options` keep their stored value, not the default.
    let options = match fields.has("options") {
        true => read_options(&mut fields).map(|posted| merge_options(&integration.options, posted, &fields)),
        false => None,
    };
    let mut changes = integrations::Changes { labels, description, options, space_id: new_scope, ..Default::default() };
    let mut connection_changed = false;
    let mut new_connection = None;
    let (other, other_label) = match integration.provider {
        Provider::Cloud => ("datacenter", "a Bitbucket Cloud"),
        Provider::DataCenter => ("cloud", "a Bitbucket Data Center"),
    };
    if fields.has(other) {
        fields.refuse(other, "wrong_provider", format!("Not a field of {other_label} integration."));
    }
    let cloud_changes = match fields.nested::<CloudUpdate>("cloud") {
        Some(mut cloud) if integration.provider == Provider::Cloud => {
            let changes = cloud::read_changes(&mut cloud);
            fields.absorb(cloud);
            Some(changes)
        }
        _ => None,
    };
    // Data Center credentials change only on a Data Center integration (a
    // `datacenter` object on a Cloud one was refused above).
    let current = integration.datacenter.clone();
    let dc_fields = fields.nested::<DataCenterUpdate>("datacenter");
    if let (Some(mut dc), Some(current)) = (dc_fields, &current) {
        let config = &state.services.config;
        let api_url = match dc.optional_string("api_url") {
            Some(raw) => match datacenter::parse_api_url(&raw, config) {
                Ok(url) => Some(url),
                Err(why) => {
                    dc.refuse("api_url", "invalid", why);
                    None
                }
            },
            None => None,
        };
        let url_changed = api_url.as_ref().is_some_and(|u| rules::api_url_moved(&current.api_url, u.as_str()));
        let token = dc.optional_string("access_token").filter(|t| !t.trim().is_empty()).map(|t| t.trim().to_owned());
        if let Some(url) = &api_url {
            dc.check(rules::token_follows_api_url(&current.api_url, url.as_str(), token.is_some()));
        }
        let username = dc.optional_string("username").map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
        let ca = match dc.optional_string("ca_certificate") {
            Some(pem) if pem.trim().is_empty() => Some(None),
            Some(pem) => match datacenter::parse_ca_certificate(&pem) {
                Ok(_) => Some(Some(pem.trim().to_owned())),
                Err(why) => {
                    dc.refuse("ca_certificate", "invalid", why);
                    None
                }
            },
            None => None,
        };
        let user_facing_url = dc.optional_string("user_facing_url").map(|u| u.trim().trim_end_matches('/').to_owned());
        connection_changed = url_changed
            || token.is_some()
            || username.as_ref().is_some_and(|u| *u != current.username)
            || ca.as_ref().is_some_and(|c| *c != current.ca_certificate);
        changes.api_url = api_url.map(|u| u.as_str().trim_end_matches('/').to_owned());
        changes.user_facing_url = user_facing_url.filter(|u| !u.is_empty());
        changes.username = username;
        changes.ca_certificate = ca;
        new_connection = Some(token);
        fields.absorb(dc);
    }
    fields.finish()?;
    if let Some(scope) = new_scope {
        rules::stacks_stay_in_scope(&state.services.pool, integration.id, scope)
            .await?
            .map_err(|refused| ApiError::Validation(vec![refused]))?;
    }

    if let (Some(wanted), Some(stored)) = (cloud_changes, &integration.cloud) {
        apply_cloud_changes(state, integration.id, stored, wanted, &mut changes).await?;
    }
    if let (true, Some(current)) = (connection_changed, &current) {
        let token = match new_connection.flatten() {
            Some(token) => token,
            None => integrations::datacenter_token(&state.services.pool, &state.services.keyring, integration.id)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .ok_or(ApiError::NotFound)?,
        };
        let api_url = url::Url::parse(changes.api_url.as_deref().unwrap_or(&current.api_url))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let pem = match &changes.ca_certificate {
            Some(pem) => pem.clone(),
            None => current.ca_certificate.clone(),
        };
        let ca = pem.as_deref().map(datacenter::parse_ca_certificate).transpose().map_err(ApiError::Internal)?;
        let username = changes.username.clone().unwrap_or_else(|| current.username.clone());
        let connection = datacenter::Connection { api_url, username, token: token.clone(), ca };
        let report = datacenter::check(&connection, &state.services.config).await;
        if !report.passed() {
            return Err(CreateFailure { error: ApiError::Validation(check_errors(&report)), report: Some(report) });
        }
        changes.access_token = Some(token);
        changes.health =
            Some(("connected".into(), report.checks.first().map(|c| c.message.clone()).unwrap_or_default()));
    }
    let mut tx = state.services.pool.begin().await?;
    let updated = match integrations::update(&mut tx, &state.services.keyring, integration.id, changes).await {
        Ok(updated) => updated.ok_or(ApiError::NotFound)?,
        Err(integrations::WriteError::Database(e)) => return Err(ApiError::from(e).into()),
        Err(conflict) => return Err(ApiError::Conflict(conflict.field_error().into_iter().collect()).into()),
    };
    let event = Event::new(caller.actor(), "integration.updated")
        .target(target(&updated))
        .from_address(caller.address)
        .details(serde_json::json!({
            "credentials_checked": connection_changed,
            "scope_changed": new_scope.is_some_and(|scope| scope != integration.space_id),
        }))
        .in_space(updated.space_id);
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Checks changed Cloud credentials and puts them into `changes`: a new
/// consumer, workspace or mode forgets the tokens; in client-credentials
/// mode a new token is requested and checked at once, otherwise the
/// integration waits for a new approval.
async fn apply_cloud_changes(
    state: &AppState,
    id: Uuid,
    stored: &integrations::CloudView,
    wanted: cloud::CloudChanges,
    changes: &mut integrations::Changes,
) -> Result<(), CreateFailure> {
    let key_changed = wanted.key.as_ref().is_some_and(|k| *k != stored.client_id);
    if let Some(key) = &wanted.key {
        rules::secret_follows_key(&stored.client_id, key, wanted.secret.is_some())
            .map_err(|refused| ApiError::Validation(vec![refused]))?;
    }
    let workspace_changed = wanted.workspace.as_ref().is_some_and(|w| *w != stored.workspace);
    let mode_changed = wanted.mode.is_some_and(|m| m.as_str() != stored.mode);
    if !(key_changed || wanted.secret.is_some() || workspace_changed || mode_changed) {
        return Ok(());
    }
    let (stored_consumer, _, stored_mode) =
        bitgate_core::cloud_tokens::consumer(&state.services.pool, &state.services.keyring, id)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or(ApiError::NotFound)?;
    let settings = cloud::CloudSettings {
        workspace: wanted.workspace.clone().unwrap_or_else(|| stored.workspace.clone()),
        consumer: bitgate_core::bitbucket::cloud::Consumer {
            key: wanted.key.clone().unwrap_or(stored_consumer.key),
            secret: wanted.secret.clone().unwrap_or(stored_consumer.secret),
        },
        mode: wanted.mode.unwrap_or(stored_mode),
    };
    let tokens = cloud::check_new(state, &settings).await?;
    let health = cloud::initial_health(&settings, tokens.as_ref().map(|(_, account)| account));
    changes.health = Some((health.state, health.message));
    changes.workspace = Some(settings.workspace);
    changes.mode = Some(settings.mode);
    changes.consumer = Some(settings.consumer);
    changes.cloud_tokens = tokens;
    Ok(())
}

/// The scope a PATCH asks for (`None`: unchanged; `Some(None)`: default),
/// once the caller is found to administer it; a refusal is recorded.
async fn new_scope(
    state: &AppState,
    caller: &Caller,
    integration: &Integration,
    fields: &mut Fields,
) -> Result<Option<Option<Uuid>>, CreateFailure> {
    let scope = fields.optional_string("scope");
    let space = fields.optional_string("space_id").filter(|s| !s.trim().is_empty());
    let wanted = match (scope.as_deref(), space) {
        (None, None) => return Ok(None),
        (Some("default"), _) => None,
        (Some("space") | None, Some(raw)) => Some(Uuid::parse_str(raw.trim()).map_err(|_| ApiError::NotFound)?),
        (Some("space"), None) => match integration.space_id {
            Some(current) => Some(current),
            None => {
                fields.refuse("space_id", "required", "Choose the space this integration belongs to.");
                return Ok(None);
            }
        },
        (Some(_), _) => {
            fields.refuse("scope", "invalid", "Choose default or space.");
            return Ok(None);
        }
    };
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    if let Err(why) = access.can_administer_integration(wanted) {
        return Err(caller.refused(state, "integration", "integration.update", wanted, why).await.into());
    }
    Ok(Some(wanted))
}

/// Options as posted over the stored ones: a field the body leaves out of
/// `options` keeps its stored value.
fn merge_options(stored: &Options, posted: Options, fields: &Fields) -> Options {
    let given = |name: &str| fields.nested_has("options", name);
    Options {
        use_git_checkout: if given("use_git_checkout") { posted.use_git_checkout } else { stored.use_git_checkout },
        commit_status: if given("commit_status") { posted.commit_status } else { stored.commit_status },
        status_details: if given("status_details") { posted.status_details } else { stored.status_details },
        vcs_checks: if given("vcs_checks") { posted.vcs_checks } else { stored.vcs_checks.clone() },
    }
}

/// Get an integration
///
/// Admins of its space; account admins for a default. (Readers see it in lists.)
#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The integration.", body = IntegrationView),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<IntegrationView>, ApiError> {
    let id = Uuid::parse_str(&raw).map_err(|_| ApiError::NotFound)?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let integration = integrations::find(&state.services.pool, id).await?.ok_or(ApiError::NotFound)?;
    if let Some(space) = integration.space_id {
        access.can_see(space)?;
    }
    access.can_administer_integration(integration.space_id)?;
    Ok(Json(view(&state, &integration)))
}

/// Test the connection again
///
/// Runs every check with the stored credentials and records the health.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/test", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The checks, passed or not, and the health now recorded.", body = TestResult),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<TestResult>, ApiError> {
    let integration = administered(&state, &caller, &raw, "integration.test").await?;
    let report = retest(&state, &caller, &integration).await?;
    let updated = integrations::find(&state.services.pool, integration.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(TestResult {
        checks: report
            .checks
            .into_iter()
            .map(|c| CheckView { name: c.name.to_owned(), ok: c.ok, message: c.message })
            .collect(),
        health: health_view(&updated.health),
    }))
}

/// The stored credentials of a Data Center integration, ready for the checks.
pub async fn stored_connection(
    state: &AppState,
    integration: &Integration,
) -> Result<datacenter::Connection, ApiError> {
    let Some(dc) = &integration.datacenter else {
        return Err(ApiError::Internal("an integration without credentials".into()));
    };
    let token = integrations::datacenter_token(&state.services.pool, &state.services.keyring, integration.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    let api_url = url::Url::parse(&dc.api_url).map_err(|e| ApiError::Internal(e.to_string()))?;
    let ca =
        dc.ca_certificate.as_deref().map(datacenter::parse_ca_certificate).transpose().map_err(ApiError::Internal)?;
    Ok(datacenter::Connection { api_url, username: dc.username.clone(), token, ca })
}

/// Runs the checks with the stored credentials, records the health and the
/// audit entry: the REST API's `/test` and the details page's button.
pub async fn retest(
    state: &AppState,
    caller: &Caller,
    integration: &Integration,
) -> Result<datacenter::Report, ApiError> {
    let (report, health) = match integration.provider {
        Provider::DataCenter => {
            let connection = stored_connection(state, integration).await?;
            let report = datacenter::check(&connection, &state.services.config).await;
            let health = if report.passed() { "connected" } else { "error" };
            (report, health)
        }
        Provider::Cloud => cloud::retest(state, integration).await?,
    };
    let message = match report.first_failure() {
        None => match integration.provider {
            Provider::DataCenter => report.checks.first().map(|c| c.message.clone()).unwrap_or_default(),
            Provider::Cloud => report.checks.last().map(|c| c.message.clone()).unwrap_or_default(),
        },
        Some(failure) => failure.message.clone(),
    };
    integrations::set_health(&state.services.pool, integration.id, health, &message).await?;
    let event = Event::new(caller.actor(), "integration.tested")
        .target(target(integration))
        .from_address(caller.address)
        .details(serde_json::json!({"health": health}))
        .in_space(integration.space_id);
    audit::record(&state.services.pool, event).await?;
    Ok(report)
}

/// Opens the webhook secret for someone entitled to see it, and records
/// that they did: the REST API's `/webhook` and the details page's Reveal.
pub async fn reveal_secret(state: &AppState, caller: &Caller, integration: &Integration) -> Result<String, ApiError> {
    let secret = integrations::webhook_secret(&state.services.pool, &state.services.keyring, integration.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    let event = Event::new(caller.actor(), "integration.webhook_secret_revealed")
        .target(target(integration))
        .from_address(caller.address)
        .in_space(integration.space_id);
    audit::record(&state.services.pool, event).await?;
    Ok(secret)
}

/// Delete an integration
///
/// Its stacks are left detached (no webhooks, no runs) until attached to
/// another integration of the same provider.
#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_checked(&state, &caller, &raw).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an integration the caller administers, detaching its stacks:
/// the REST API's DELETE and the delete page. Returns it and how many
/// stacks were detached.
pub async fn delete_checked(state: &AppState, caller: &Caller, raw: &str) -> Result<(Integration, i64), ApiError> {
    let integration = administered(state, caller, raw, "integration.delete").await?;
    // Deleting cascades to deliveries and stacks, which a router may be
    // updating in the other order: a deadlock is resolved by trying again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match delete_once(caller, &integration, &state.services.pool).await {
            Err(error) if attempt < 4 && bitgate_core::db::is_retryable(&error) => continue,
            Err(error) => return Err(error.into()),
            Ok(None) => return Err(ApiError::NotFound),
            Ok(Some(detached)) => return Ok((integration, detached)),
        }
    }
}

async fn delete_once(
    caller: &Caller,
    integration: &Integration,
    pool: &sqlx::PgPool,
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(detached) = integrations::delete(&mut tx, integration.id).await? else { return Ok(None) };
    let event = Event::new(caller.actor(), "integration.deleted")
        .target(target(integration))
        .from_address(caller.address)
        .details(serde_json::json!({"stacks_detached": detached}))
        .in_space(integration.space_id);
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(Some(detached))
}

/// Reveal the webhook endpoint and secret
///
/// Admins of its space (account admins for a default). Each read is audited.
#[utoipa::path(get, path = "/api/v1/integrations/{id}/webhook", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The endpoint and secret to paste into Bitbucket.", body = Webhook),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody)))]
pub async fn webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let integration = administered(&state, &caller, &raw, "integration.webhook_secret_revealed").await?;
    let secret = reveal_secret(&state, &caller, &integration).await?;
    let until = bitgate_core::webhooks::deliveries::previous_valid_until(&state.services.pool, integration.id).await?;
    let body = Webhook {
        url: webhook_url(&state, &integration.slug),
        secret,
        previous_secret_valid_until: until.map(rfc3339),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
