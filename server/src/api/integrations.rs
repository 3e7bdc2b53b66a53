//! `/api/v1/integrations`: list, create, read, change, test, delete, and
//! the webhook endpoint and secret. The DTOs of the API and one call per
//! handler: what an operation decides (authorization, validation, the rules,
//! the checks with Bitbucket) is in `bitgate_core::integrations::operations`.

use crate::error::AppError;
use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::{
    access::Access,
    integrations::{
        self, input,
        operations::{self, parse_id, IntegrationError, Purpose},
        Health, Integration, Listed, Provider,
    },
    secret::Secret,
    users::FieldError,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{
    caller::Caller,
    cloud::{CloudInput, CloudUpdate, CloudView},
    error::ErrorBody,
    json::{Fields, JsonObject},
    pagination::{page_of, Cursor, Page, PageQuery},
    rfc3339,
};
use crate::state::AppState;

/// An integration, as the API shows it to those who may open it. Never a
/// secret.
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

/// An integration in a list, to a caller who sees it there but may not
/// open it (a space's readers and writers; every user but account admins,
/// for a default): no URLs, usernames, credentials or health text.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = IntegrationSummary)]
// Documents `additionalProperties: false`, so that a whole integration
// never also reads as a summary (the list's items are one of the two).
#[serde(deny_unknown_fields)]
pub struct IntegrationSummaryView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    #[schema(example = "bitbucket_datacenter")]
    pub provider: String,
    /// `default` or `space`.
    pub scope: String,
    pub space_id: Option<Uuid>,
    pub labels: Vec<String>,
    pub health: HealthStateView,
    pub stacks_count: i64,
}

/// An item of the integrations list: whole, or its summary.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ListedIntegration {
    Whole(Box<IntegrationView>),
    Summary(IntegrationSummaryView),
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
    /// `off`, `failures` or `always`: one comment per pull request and
    /// stack, never, from the first failed run, or from the first run.
    pub pr_comments: String,
    /// Bitgate creates and repairs its webhook in each repository a stack
    /// uses. Never true with `disable_webhooks`.
    pub manage_webhooks: bool,
    /// Bitgate never polls branch heads to make up for missing webhooks
    /// (CDS's `disablePolling`).
    pub disable_polling: bool,
    /// Bitbucket's webhooks are not used (CDS's `disableWebHooks`).
    pub disable_webhooks: bool,
}

/// Data Center credentials as shown: never a token or a secret; an access
/// token's last four characters only. Only the fields of its `auth` are given.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataCenterView {
    pub api_url: String,
    pub user_facing_url: String,
    /// `access_token` or `oauth2`.
    pub auth: String,
    /// The account Bitgate acts as: the access token's owner, or who
    /// approved the OAuth 2.0 link (null until someone has).
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_last4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<DataCenterOAuth2View>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth1: Option<DataCenterOAuth1View>,
    pub ca_certificate: Option<String>,
}

/// An OAuth 1.0a application link as shown: its consumer key and the public
/// key to paste into Bitbucket; never the private key.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataCenterOAuth1View {
    pub consumer_key: String,
    /// PEM (`-----BEGIN PUBLIC KEY-----`), also at `/api/v1/integrations/{id}/public-key`.
    pub public_key: String,
    /// Which Bitgate user connected it; null until connected.
    pub connected_by: Option<String>,
}

/// An OAuth 2.0 application link as shown: its client id, never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataCenterOAuth2View {
    pub client_id: String,
    /// Which Bitgate user connected it; null until connected.
    pub connected_by: Option<String>,
    #[schema(format = DateTime)]
    pub token_expires_at: Option<String>,
    /// What Bitbucket granted, such as `REPO_ADMIN`.
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `connected`, `pending_authorization` or `error`.
    pub state: String,
    pub message: String,
    #[schema(format = DateTime)]
    pub checked_at: Option<String>,
}

/// The health a summary shows: its state alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStateView {
    /// `connected`, `pending_authorization` or `error`.
    pub state: String,
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
    /// `off`, `failures` (default) or `always`: Bitgate's comment on a pull
    /// request, one per stack, kept up to date from the first failed run
    /// (`failures`) or from the first run (`always`).
    pr_comments: Option<String>,
    /// Default true: Bitgate creates and repairs its webhook in each
    /// repository a stack uses (it needs `REPO_ADMIN` on Data Center, the
    /// consumer's Webhooks permission on Cloud). Refused as true while
    /// `disable_webhooks` is (`webhooks_disabled`); left out while
    /// `disable_webhooks` is set to true, it turns false.
    manage_webhooks: Option<bool>,
    /// Default false: true stops Bitgate from polling branch heads when
    /// webhooks do not arrive (CDS's `disablePolling`).
    disable_polling: Option<bool>,
    /// Default false: true means Bitbucket's webhooks are not used, and keeps
    /// `manage_webhooks` false (CDS's `disableWebHooks`).
    disable_webhooks: Option<bool>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DataCenterInput {
    /// Where Bitbucket's REST API answers, with its context path.
    #[schema(example = "https://bitbucket.example.com")]
    api_url: String,
    /// Where people open Bitbucket (and approve an OAuth 2.0 link); the API URL when left out.
    user_facing_url: Option<String>,
    /// `access_token` (the default), `oauth2` (an incoming OAuth 2.0
    /// application link, Data Center 7.20 and later) or `oauth1` (a legacy
    /// OAuth 1.0a link with Bitgate's RSA key pair): the OAuth ones are
    /// created `pending_authorization`, then connected in a browser.
    auth: Option<String>,
    /// `access_token`: the user the access token belongs to.
    username: Option<String>,
    /// `access_token`: an HTTP access token with Projects: read and
    /// Repositories: read (admin to manage webhooks). Write-only.
    #[schema(format = Password)]
    access_token: Option<String>,
    /// `oauth2`: the application link's client.
    oauth2: Option<OAuth2Input>,
    /// `oauth1`: the link's consumer key (`bitgate-{slug}` when left out).
    oauth1: Option<OAuth1Input>,
    /// The PEM certificate of a private CA that signed Bitbucket's certificate.
    ca_certificate: Option<String>,
}

/// A legacy OAuth 1.0a application link: Bitgate makes its RSA key pair
/// (the public key is then shown, to paste into Bitbucket's link).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct OAuth1Input {
    consumer_key: Option<String>,
}

/// An incoming OAuth 2.0 application link's client, as Bitbucket shows it
/// (Administration → Application Links → the link → Credentials). Its
/// redirect URL is Bitgate's `/oauth/bitbucket/callback`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct OAuth2Input {
    client_id: Option<String>,
    /// Write-only. On a change, left out: the stored secret stays (a new
    /// client id, API URL or CA certificate needs it again: `secret_required`).
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// The answer of a connection test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub checks: Vec<CheckView>,
    pub health: HealthView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// Data Center: `server`, `token`, `owner`, `projects`, `repositories`;
    /// Cloud: `consumer`, `token`, `scopes`, `user`, `workspace`; then
    /// `statuses` and `hooks`.
    pub name: String,
    pub ok: bool,
    pub message: String,
    /// A failed warning (`hooks`: whether Bitgate can manage the webhooks)
    /// leaves the integration connected.
    pub warning: bool,
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
    /// Only integrations whose name holds this text (in any case).
    name: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    cursor: Option<String>,
}

pub fn webhook_url(state: &AppState, slug: &str) -> String {
    integrations::webhook_url(&state.services.config, slug)
}

fn health_view(health: &Health) -> HealthView {
    HealthView {
        state: health.state.as_str().to_owned(),
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
            vcs_checks: integration.options.vcs_checks.as_str().to_owned(),
            pr_comments: integration.options.pr_comments.as_str().to_owned(),
            manage_webhooks: integration.options.manage_webhooks,
            disable_polling: integration.options.disable_polling,
            disable_webhooks: integration.options.disable_webhooks,
        },
        datacenter: integration.datacenter.as_ref().map(|dc| DataCenterView {
            api_url: dc.api_url.clone(),
            user_facing_url: dc.user_facing_url.clone(),
            auth: dc.auth.as_str().to_owned(),
            username: dc.username.clone(),
            access_token_last4: dc.access_token_last4.clone(),
            oauth1: dc.oauth1.as_ref().map(|link| DataCenterOAuth1View {
                consumer_key: link.consumer_key.clone(),
                public_key: link.public_key.clone(),
                connected_by: link.authorized_by_label.clone(),
            }),
            oauth2: dc.oauth2.as_ref().map(|link| DataCenterOAuth2View {
                client_id: link.client_id.clone(),
                connected_by: link.authorized_by_label.clone(),
                token_expires_at: link.token_expires_at.map(rfc3339),
                scopes: link.scopes.clone(),
            }),
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

/// An integration in a list, as much of it as the caller may see.
fn listed_view(state: &AppState, listed: &Listed) -> ListedIntegration {
    let summary = match listed {
        Listed::Whole(integration) => return ListedIntegration::Whole(Box::new(view(state, integration))),
        Listed::Summary(summary) => summary,
    };
    ListedIntegration::Summary(IntegrationSummaryView {
        id: summary.id,
        name: summary.name.clone(),
        slug: summary.slug.clone(),
        provider: summary.provider.as_str().to_owned(),
        scope: if summary.space_id.is_some() { "space" } else { "default" }.to_owned(),
        space_id: summary.space_id,
        labels: summary.labels.clone(),
        health: HealthStateView { state: summary.health_state.as_str().to_owned() },
        stacks_count: summary.stacks_count,
    })
}

/// The integration, when the caller administers it (its space's admins; the
/// account's for a default); otherwise the refusal, recorded under `action`.
pub async fn administered(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    action: &'static str,
) -> Result<Integration, AppError> {
    let id = parse_id(raw)?;
    Ok(operations::load_for(&state.services, &caller.principal(), id, Purpose::Act(action)).await?)
}

/// A request body as the operations read it: each value moved over, and
/// what is not JSON's business (the field is unknown, or of the wrong type)
/// noted for them to report. `B`, `D` and `C` are the documented schemas of
/// the body, its `datacenter` and its `cloud` objects.
fn read_input<B: PartialSchema, D: PartialSchema, C: PartialSchema>(body: JsonObject) -> input::IntegrationInput {
    let mut fields = Fields::new::<B>(body);
    let options = fields.nested::<OptionsInput>("options").map(|mut o| {
        let read = input::OptionsInput {
            use_git_checkout: o.optional_bool("use_git_checkout"),
            commit_status: o.optional_bool("commit_status"),
            status_details: o.optional_bool("status_details"),
            vcs_checks: o.optional_string("vcs_checks"),
            pr_comments: o.optional_string("pr_comments"),
            manage_webhooks: o.optional_bool("manage_webhooks"),
            disable_polling: o.optional_bool("disable_polling"),
            disable_webhooks: o.optional_bool("disable_webhooks"),
        };
        fields.absorb(o);
        read
    });
    let datacenter = fields.nested::<D>("datacenter").map(|mut dc| {
        let oauth2 = dc.nested::<OAuth2Input>("oauth2").map(|mut link| {
            let read = input::OAuth2Input {
                client_id: link.optional_string("client_id"),
                client_secret: link.optional_string("client_secret").map(Secret::new),
            };
            dc.absorb(link);
            read
        });
        let oauth1 = dc.nested::<OAuth1Input>("oauth1").map(|mut link| {
            let read = input::OAuth1Input { consumer_key: link.optional_string("consumer_key") };
            dc.absorb(link);
            read
        });
        let read = input::DataCenterInput {
            oauth1,
            api_url: dc.optional_string("api_url"),
            user_facing_url: dc.optional_string("user_facing_url"),
            auth: dc.optional_string("auth"),
            username: dc.optional_string("username"),
            access_token: dc.optional_string("access_token").map(Secret::new),
            oauth2,
            ca_certificate: dc.optional_string("ca_certificate"),
        };
        fields.absorb(dc);
        read
    });
    let cloud = fields.nested::<C>("cloud").map(|mut cloud| {
        let read = input::CloudInput {
            workspace: cloud.optional_string("workspace"),
            client_id: cloud.optional_string("client_id"),
            client_secret: cloud.optional_string("client_secret").map(Secret::new),
            mode: cloud.optional_string("mode"),
        };
        fields.absorb(cloud);
        read
    });
    let mut read = input::IntegrationInput {
        name: fields.optional_string("name"),
        provider: fields.optional_string("provider"),
        scope: fields.optional_string("scope"),
        space_id: fields.optional_string("space_id"),
        labels: fields.optional_strings("labels"),
        description: fields.optional_string("description"),
        options,
        datacenter,
        cloud,
        ..Default::default()
    };
    read.read_problems = fields.errors;
    read
}

/// List integrations
///
/// The defaults, and the integrations of every space you hold a role on.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", params(ListQuery),
    responses((status = 200, description = "The integrations you can see, newest first: whole where you may open them, else their summary.", body = Page<ListedIntegration>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<ListedIntegration>>, AppError> {
    let request = PageQuery { limit: query.limit.clone(), cursor: query.cursor.clone() }.parse()?;
    let provider = query
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(Provider::parse)
        .transpose()
        .map_err(|e| AppError::BadRequest(e.message))?;
    let space_id = query
        .space_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| AppError::BadRequest("space_id must be a space's id (a UUID).".into()))?;
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let filter = integrations::ListFilter {
        provider,
        space_id,
        label: query.label.clone().filter(|l| !l.is_empty()),
        name: query.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned),
    };
    let after = request.after.map(|c| (c.at, c.id));
    let rows = integrations::list_for(&state.services.pool, &access, &filter, after, request.limit + 1).await?;
    let cursor = |listed: &Listed| {
        let (at, id) = listed.position();
        Cursor { at, id }
    };
    Ok(Json(page_of(rows, request.limit, cursor, |listed| listed_view(&state, listed))))
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
pub async fn create(State(state): State<AppState>, caller: Caller, body: JsonObject) -> Result<Response, AppError> {
    let input = read_input::<CreateIntegration, DataCenterInput, CloudInput>(body);
    let created = operations::create(&state.services, &caller.principal(), input).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &created.integration))).into_response())
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
/// API URL or the CA certificate (each needs the token again), is checked
/// with Bitbucket first.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DataCenterUpdate {
    api_url: Option<String>,
    user_facing_url: Option<String>,
    /// Another way to authenticate, with all of its fields.
    auth: Option<String>,
    /// `oauth2`: a new client id (with its secret), or a new secret.
    oauth2: Option<OAuth2Input>,
    /// Switching to `oauth1`: the consumer key (a new key pair is made).
    oauth1: Option<OAuth1Input>,
    username: Option<String>,
    /// Write-only. Empty or left out: the stored token stays, unless the API
    /// URL or the CA certificate changes (then `token_required`).
    #[schema(format = Password)]
    access_token: Option<String>,
    /// PEM; an empty string removes it. Any change needs the token again.
    ca_certificate: Option<String>,
}

/// The public key of an OAuth 1.0a link
///
/// The PEM to paste into Bitbucket's application link, as its incoming
/// authentication's public key (`oauth1` Data Center integrations). The
/// private key of the pair never leaves Bitgate. Admins of its space;
/// account admins for a default.
#[utoipa::path(get, path = "/api/v1/integrations/{id}/public-key", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The public key, PEM.", content_type = "application/x-pem-file", body = String),
        (status = 403, description = "You see it in lists but do not administer it.", body = ErrorBody),
        (status = 404, description = "No such integration, or none you can see.", body = ErrorBody),
        (status = 422, description = "Not a Data Center integration with auth oauth1.", body = ErrorBody)))]
pub async fn public_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&raw)?;
    let integration = operations::load_for(&state.services, &caller.principal(), id, Purpose::Read).await?;
    let Some(link) = integration.datacenter.as_ref().and_then(|dc| dc.oauth1.as_ref()) else {
        let why = "Only Data Center integrations that authenticate with oauth1 have a key pair.";
        return Err(IntegrationError::Invalid(vec![FieldError::new("datacenter.auth", "not_oauth1", why)]).into());
    };
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], link.public_key.clone()).into_response())
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
) -> Result<Json<IntegrationView>, AppError> {
    let input = read_input::<UpdateIntegration, DataCenterUpdate, CloudUpdate>(body);
    let updated = operations::update(&state.services, &caller.principal(), parse_id(&raw)?, input).await?;
    Ok(Json(view(&state, &updated)))
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
) -> Result<Json<IntegrationView>, AppError> {
    let integration =
        operations::load_for(&state.services, &caller.principal(), parse_id(&raw)?, Purpose::Read).await?;
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
) -> Result<Json<TestResult>, AppError> {
    let (report, tested) = operations::test(&state.services, &caller.principal(), parse_id(&raw)?).await?;
    Ok(Json(TestResult {
        checks: report
            .checks
            .into_iter()
            .map(|c| CheckView { name: c.name.to_owned(), ok: c.ok, message: c.message, warning: c.warning })
            .collect(),
        health: health_view(&tested.health),
    }))
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
) -> Result<StatusCode, AppError> {
    operations::delete(&state.services, &caller.principal(), parse_id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
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
) -> Result<Response, AppError> {
    let (integration, secret) =
        operations::reveal_webhook_secret(&state.services, &caller.principal(), parse_id(&raw)?).await?;
    let until = bitgate_core::webhooks::deliveries::previous_valid_until(&state.services.pool, integration.id).await?;
    let body = Webhook {
        url: webhook_url(&state, &integration.slug),
        secret: secret.into_exposed(),
        previous_secret_valid_until: until.map(rfc3339),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
