//! What can be done to an integration, one function per operation, for
//! every door: the REST API, the pages and (through the import) the CLI
//! call these and nothing below them. Each takes the principal and a typed
//! input, and in this order: authorizes (a refused write is audited),
//! validates every field, applies the rules (`rules.rs`), checks changed
//! credentials with Bitbucket, then writes and audits in one transaction.
//! Nothing is stored unless every check passed.

use serde_json::json;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use url::Url;
use uuid::Uuid;

use super::{
    checks::{self, StoredError},
    input::{self, given, CloudInput, DataCenterInput, IntegrationInput, NewDataCenterAuth},
    rules, CloudView, DataCenterAuth, DataCenterCredential, DataCenterView, HealthState, Integration, IntegrationId,
    NewCloud, NewDataCenter, Options, Provider, SecretError, WriteError,
};
use crate::{
    access::Denied,
    audit::{self, AuditAction, Event, Target},
    bitbucket::{
        cloud::{self, Endpoints, Mode},
        datacenter::{self, oauth1, oauth2},
        Check, Report,
    },
    managed_hooks, oauth_flows, oauth_tokens,
    principal::Principal,
    secret::Secret,
    spaces::SpaceId,
    users::FieldError,
    validation::Problems,
    webhooks::deliveries,
    Services,
};

/// Why an operation on an integration did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// No such integration (or space), or none the principal may know of.
    #[error("no such integration")]
    NotFound,
    /// The permission table says no; a refused write is in the audit log.
    #[error("refused by the permission table")]
    Denied(Denied),
    /// Every problem of the input, each on its field.
    #[error("the input has {} problems", .0.len())]
    Invalid(Vec<FieldError>),
    /// The name, its webhook endpoint or the provider's default is taken.
    #[error("conflicts with another integration")]
    Conflict(Vec<FieldError>),
    /// Bitbucket did not accept the credentials: each failed check on the
    /// field to change, and the whole checklist.
    #[error("the connection checks failed")]
    CheckFailed { problems: Vec<FieldError>, report: Report },
    /// The stored credentials could not be read (a key changed, say).
    #[error(transparent)]
    Stored(StoredError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<StoredError> for IntegrationError {
    fn from(error: StoredError) -> Self {
        match error {
            StoredError::Database(e) | StoredError::Secret(SecretError::Database(e)) => IntegrationError::Database(e),
            StoredError::Missing => IntegrationError::NotFound,
            other => IntegrationError::Stored(other),
        }
    }
}

impl From<SecretError> for IntegrationError {
    fn from(error: SecretError) -> Self {
        StoredError::from(error).into()
    }
}

impl From<WriteError> for IntegrationError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Database(e) => IntegrationError::Database(e),
            conflict => IntegrationError::Conflict(conflict.field_error().into_iter().collect()),
        }
    }
}

impl IntegrationError {
    fn datacenter_checks(report: Report) -> Self {
        IntegrationError::CheckFailed { problems: checks::datacenter_problems(&report), report }
    }

    fn cloud_checks(report: Report) -> Self {
        IntegrationError::CheckFailed { problems: checks::cloud_problems(&report), report }
    }
}

/// The consumer key Bitgate gives an OAuth 1.0a link unless told another
/// (here and in the integrations file): one per integration, recognisable
/// in Bitbucket's list of links.
pub fn default_consumer_key(slug: &str) -> String {
    format!("bitgate-{slug}")
}

/// An RSA 2048 key pair for an OAuth 1.0a link, made off the async
/// threads (it takes a good part of a second).
async fn new_key_pair() -> Result<oauth1::KeyPair, IntegrationError> {
    let made = tokio::task::spawn_blocking(oauth1::KeyPair::generate).await;
    match made {
        Ok(Ok(keys)) => Ok(keys),
        _ => Err(IntegrationError::Stored(StoredError::Corrupt("Bitgate could not make an RSA key pair.".into()))),
    }
}

/// An id from a path: one that is not a UUID names nothing.
pub fn parse_id(raw: &str) -> Result<IntegrationId, IntegrationError> {
    Uuid::parse_str(raw.trim()).map_err(|_| IntegrationError::NotFound)
}

/// Why an integration is loaded: to read it (a refusal is only answered),
/// or to act on it (a refusal is recorded under this action).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Read,
    Act(&'static str),
}

/// The audit event of `by`'s `action` on an integration, in its space.
pub(crate) fn audit_event(by: &Principal, action: AuditAction, integration: &Integration) -> Event {
    let target = Target { kind: "integration", id: integration.id.to_string(), label: integration.name.clone() };
    Event::new(by.actor(), action).target(target).from_address(by.address()).in_space(integration.space_id)
}

/// Records a refused attempt and gives the refusal to answer.
async fn refused(
    services: &Services,
    by: &Principal,
    action: &'static str,
    space: Option<SpaceId>,
    why: Denied,
) -> IntegrationError {
    match by.refused(&services.pool, "integration", action, space, why).await {
        Ok(why) => IntegrationError::Denied(why),
        Err(e) => e.into(),
    }
}

/// The integration, when `by` administers it (its space's admins; the
/// account's for a default). Readers of its space see it in lists only.
pub async fn load_for(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
    purpose: Purpose,
) -> Result<Integration, IntegrationError> {
    let access = by.access(&services.pool).await?;
    let integration = super::find(&services.pool, id).await?.ok_or(IntegrationError::NotFound)?;
    match (access.can_administer_integration(integration.space_id), purpose) {
        (Ok(()), _) => Ok(integration),
        (Err(why), Purpose::Read) => Err(IntegrationError::Denied(why)),
        (Err(why), Purpose::Act(action)) => Err(refused(services, by, action, integration.space_id, why).await),
    }
}

/// New credentials, validated.
enum NewCredentials {
    DataCenter(input::NewDataCenterCredentials),
    Cloud(input::NewCloudCredentials),
}

/// A new integration and the checks its credentials passed.
#[derive(Debug)]
pub struct Created {
    pub integration: Integration,
    /// Every line of the connection test, for those credentials a test
    /// proves at once (an access token, client credentials, a consumer);
    /// empty for an application link, which Bitbucket's approval proves.
    pub checks: Vec<Check>,
}

/// Creates an integration. Admins of the space; account admins for a
/// default. The credentials are checked with Bitbucket before anything is stored.
pub async fn create(services: &Services, by: &Principal, input: IntegrationInput) -> Result<Created, IntegrationError> {
    let IntegrationInput {
        read_problems,
        name,
        provider,
        scope,
        space_id,
        labels,
        description,
        options,
        datacenter,
        cloud,
    } = input;
    let mut problems = Problems(read_problems);
    // Authorization first: the scope decides who may.
    let access = by.access(&services.pool).await?;
    let space_id = match (scope.as_deref(), given(space_id)) {
        (Some("space"), Some(raw)) => {
            let space = Uuid::parse_str(raw.trim()).map_err(|_| IntegrationError::NotFound)?;
            if let Err(why) = access.can_administer(space) {
                return Err(refused(services, by, "integration.create", Some(space), why).await);
            }
            Some(space)
        }
        (Some("space"), None) => {
            problems.push("space_id", "required", "Choose the space this integration belongs to.");
            None
        }
        (Some("default"), _) => {
            if let Err(why) = access.can_administer_account() {
                return Err(refused(services, by, "integration.create", None, why).await);
            }
            None
        }
        (Some(_), _) => {
            problems.push("scope", "invalid", "Choose default or space.");
            None
        }
        (None, _) => problems.required("scope", None).and(None),
    };
    let named = input::name(&mut problems, name);
    let provider = input::provider(&mut problems, provider);
    let labels = input::labels(&mut problems, Some(labels.unwrap_or_default()));
    let description = input::description(&mut problems, Some(description.unwrap_or_default()));
    let options = input::options(&mut problems, &Options::default(), options.unwrap_or_default());
    let credentials = match provider {
        Some(provider) => {
            input::refuse_other_provider(&mut problems, provider, datacenter.is_some(), cloud.is_some());
            match provider {
                Provider::DataCenter => {
                    input::new_datacenter(&mut problems, datacenter, &services.config).map(NewCredentials::DataCenter)
                }
                Provider::Cloud => input::new_cloud(&mut problems, cloud).map(NewCredentials::Cloud),
            }
        }
        None => None,
    };
    let (Some((name, slug)), Some(provider), Some(labels), Some(description), Some(options), Some(credentials)) =
        (named, provider, labels, description, options, credentials)
    else {
        return Err(IntegrationError::Invalid(problems.0));
    };
    if !problems.is_empty() {
        return Err(IntegrationError::Invalid(problems.0));
    }

    // Conflicts before the (slow) checks; the insert catches races.
    if let Some(conflict) = super::conflict(&services.pool, &name, &slug, provider, space_id).await? {
        return Err(conflict.into());
    }
    let (created_by, created_by_label) = (by.user_id(), by.label());
    let mut tx;
    let mut passed = Vec::new();
    let created = match credentials {
        NewCredentials::DataCenter(dc) => {
            let (api_url, credential, health) = match dc.auth {
                NewDataCenterAuth::AccessToken(connection) => {
                    let (health, report) = checks::check_datacenter(&connection, &services.config)
                        .await
                        .map_err(IntegrationError::datacenter_checks)?;
                    passed = report.checks;
                    let datacenter::Connection { api_url, username, token, .. } = *connection;
                    (api_url, DataCenterCredential::AccessToken { username, token }, health)
                }
                NewDataCenterAuth::OAuth2 { api_url, ca, client } => {
                    let health = checks::check_datacenter_client(
                        &api_url,
                        &dc.user_facing_url,
                        ca.as_ref(),
                        &client,
                        &services.config,
                    )
                    .await
                    .map_err(IntegrationError::datacenter_checks)?;
                    (api_url, DataCenterCredential::OAuth2(client), health)
                }
                NewDataCenterAuth::OAuth1 { api_url, ca, consumer_key } => {
                    let consumer_key = consumer_key.unwrap_or_else(|| default_consumer_key(&slug));
                    let keys = new_key_pair().await?;
                    let consumer = oauth1::Consumer::new(consumer_key.clone(), &keys.private_pem)
                        .ok_or_else(|| IntegrationError::Stored(StoredError::Corrupt("a new key pair".into())))?;
                    let user_facing = &dc.user_facing_url;
                    let health = checks::check_datacenter_consumer(
                        &api_url,
                        user_facing,
                        ca.as_ref(),
                        &consumer,
                        false,
                        &services.config,
                    )
                    .await
                    .map_err(IntegrationError::datacenter_checks)?;
                    (api_url, DataCenterCredential::OAuth1 { consumer_key, keys }, health)
                }
            };
            let new = NewDataCenter {
                name,
                slug,
                space_id,
                labels,
                description,
                options,
                api_url: api_url.as_str().trim_end_matches('/').to_owned(),
                user_facing_url: dc.user_facing_url,
                credential,
                ca_certificate: dc.ca_certificate,
                health,
                created_by,
                created_by_label,
            };
            tx = services.pool.begin().await?;
            super::create_datacenter(&mut tx, &services.keyring, new).await?
        }
        NewCredentials::Cloud(settings) => {
            let (health, tokens, report) =
                checks::check_cloud(&services.config, &settings.workspace, &settings.consumer, settings.mode)
                    .await
                    .map_err(IntegrationError::cloud_checks)?;
            passed = report.checks;
            let new = NewCloud {
                name,
                slug,
                space_id,
                labels,
                description,
                options,
                workspace: settings.workspace,
                consumer: settings.consumer,
                mode: settings.mode,
                tokens,
                health,
                created_by,
                created_by_label,
            };
            tx = services.pool.begin().await?;
            super::create_cloud(&mut tx, &services.keyring, new).await?
        }
    };
    let event = audit_event(by, AuditAction::IntegrationCreated, &created)
        .details(json!({"provider": created.provider.as_str()}));
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(Created { integration: created, checks: passed })
}

/// Changes an integration: everything but its name and provider; fields
/// not given stay. Changed credentials are checked with Bitbucket first.
pub async fn update(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
    input: IntegrationInput,
) -> Result<Integration, IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.update")).await?;
    let IntegrationInput {
        read_problems,
        name,
        provider: _,
        scope,
        space_id,
        labels,
        description,
        options,
        datacenter,
        cloud,
    } = input;
    let mut problems = Problems(read_problems);
    if name.is_some_and(|name| name.trim() != integration.name) {
        problems.push("name", "immutable", "The name cannot change: the webhook endpoint is made from it.");
    }
    // A new scope: authorized like a creation there, before anything else is judged.
    let new_scope = new_scope(services, by, &integration, scope, given(space_id), &mut problems).await?;
    let mut changes = super::Changes {
        space_id: new_scope,
        labels: input::labels(&mut problems, labels),
        description: input::description(&mut problems, description),
        options: options.and_then(|o| input::options(&mut problems, &integration.options, o)),
        ..Default::default()
    };
    input::refuse_other_provider(&mut problems, integration.provider, datacenter.is_some(), cloud.is_some());
    let cloud_wanted = match (cloud, &integration.cloud) {
        (Some(wanted), Some(stored)) => cloud_changes(&mut problems, stored, wanted),
        _ => None,
    };
    let datacenter_wanted = match (datacenter, &integration.datacenter) {
        (Some(wanted), Some(stored)) => {
            datacenter_changes(&mut problems, stored, wanted, &services.config, &mut changes)
        }
        _ => None,
    };
    if !problems.is_empty() {
        return Err(IntegrationError::Invalid(problems.0));
    }
    if let Some(scope) = new_scope {
        rules::stacks_stay_in_scope(&services.pool, integration.id, scope)
            .await?
            .map_err(|refused| IntegrationError::Invalid(vec![refused]))?;
    }

    if let (Some(wanted), Some(stored)) = (cloud_wanted, &integration.cloud) {
        apply_cloud_changes(services, integration.id, stored, wanted, &mut changes).await?;
    }
    let mut credentials_checked = false;
    if let (Some(wanted), Some(stored)) = (datacenter_wanted, &integration.datacenter) {
        if wanted.connection_changed {
            credentials_checked = true;
            let switched = wanted.auth != stored.auth;
            match wanted.auth {
                DataCenterAuth::AccessToken => {
                    let connection = changed_connection(services, &integration, stored, wanted).await?;
                    let (health, _) = checks::check_datacenter(&connection, &services.config)
                        .await
                        .map_err(IntegrationError::datacenter_checks)?;
                    if switched {
                        changes.datacenter_auth = Some(DataCenterAuth::AccessToken);
                        changes.username = Some(connection.username.clone());
                    }
                    changes.access_token = Some(connection.token);
                    changes.health = Some((health.state, health.message));
                }
                DataCenterAuth::OAuth2 => {
                    let (api_url, ca, client, new_client) =
                        changed_link(services, &integration, stored, wanted).await?;
                    let user_facing = changes.user_facing_url.clone().unwrap_or_else(|| stored.user_facing_url.clone());
                    let health =
                        checks::check_datacenter_client(&api_url, &user_facing, ca.as_ref(), &client, &services.config)
                            .await
                            .map_err(IntegrationError::datacenter_checks)?;
                    if switched {
                        changes.datacenter_auth = Some(DataCenterAuth::OAuth2);
                    }
                    if new_client {
                        // Its tokens belong to the old link or server: approved again.
                        changes.oauth2_client = Some(client);
                        changes.health = Some((health.state, health.message));
                    }
                }
                // Switched to a legacy link: a new key pair, to paste into
                // Bitbucket, then Connect. A link that stays keeps its keys;
                // moved to another server or trust root, its access token
                // was the old server's: an admin connects again.
                DataCenterAuth::OAuth1 => {
                    let new_keys = match switched {
                        true => {
                            let consumer_key =
                                wanted.consumer_key.clone().unwrap_or_else(|| default_consumer_key(&integration.slug));
                            Some((consumer_key, new_key_pair().await?))
                        }
                        false => None,
                    };
                    let consumer = match &new_keys {
                        Some((consumer_key, keys)) => oauth1::Consumer::new(consumer_key.clone(), &keys.private_pem)
                            .ok_or_else(|| StoredError::Corrupt("a new key pair".into()))?,
                        None => {
                            super::datacenter_oauth1(&services.pool, &services.keyring, integration.id)
                                .await?
                                .ok_or(IntegrationError::NotFound)?
                                .0
                        }
                    };
                    let (api_url, ca) = changed_server(stored, wanted.api_url, wanted.ca)?;
                    let user_facing = changes.user_facing_url.clone().unwrap_or_else(|| stored.user_facing_url.clone());
                    let config = &services.config;
                    let health = checks::check_datacenter_consumer(
                        &api_url,
                        &user_facing,
                        ca.as_ref(),
                        &consumer,
                        false,
                        config,
                    )
                    .await
                    .map_err(IntegrationError::datacenter_checks)?;
                    if switched {
                        changes.datacenter_auth = Some(DataCenterAuth::OAuth1);
                    }
                    changes.forget_oauth1_token = new_keys.is_none();
                    changes.oauth1 = new_keys;
                    changes.health = Some((health.state, health.message));
                }
            }
        }
    }
    let mut tx = services.pool.begin().await?;
    let updated =
        super::update(&mut tx, &services.keyring, integration.id, changes).await?.ok_or(IntegrationError::NotFound)?;
    let event = audit_event(by, AuditAction::IntegrationUpdated, &updated).details(json!({
        "credentials_checked": credentials_checked,
        "scope_changed": new_scope.is_some_and(|scope| scope != integration.space_id),
    }));
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(updated)
}

/// The scope a change asks for (`None`: unchanged; `Some(None)`: default),
/// once `by` is found to administer it; a refusal is recorded.
async fn new_scope(
    services: &Services,
    by: &Principal,
    integration: &Integration,
    scope: Option<String>,
    space: Option<String>,
    problems: &mut Problems,
) -> Result<Option<Option<SpaceId>>, IntegrationError> {
    let wanted = match (scope.as_deref(), space) {
        (None, None) => return Ok(None),
        (Some("default"), _) => None,
        (Some("space") | None, Some(raw)) => Some(Uuid::parse_str(raw.trim()).map_err(|_| IntegrationError::NotFound)?),
        (Some("space"), None) => match integration.space_id {
            Some(current) => Some(current),
            None => {
                problems.push("space_id", "required", "Choose the space this integration belongs to.");
                return Ok(None);
            }
        },
        (Some(_), _) => {
            problems.push("scope", "invalid", "Choose default or space.");
            return Ok(None);
        }
    };
    let access = by.access(&services.pool).await?;
    if let Err(why) = access.can_administer_integration(wanted) {
        return Err(refused(services, by, "integration.update", wanted, why).await);
    }
    Ok(Some(wanted))
}

/// A Data Center change, validated: whether the connection must be
/// checked again, and with what (the rest is in the changes already).
struct DataCenterWanted {
    connection_changed: bool,
    /// How it authenticates after the change.
    auth: DataCenterAuth,
    api_url: Option<Url>,
    username: Option<String>,
    token: Option<Secret<String>>,
    /// OAuth 2.0: a new client id, and its secret.
    client_id: Option<String>,
    client_secret: Option<Secret<String>>,
    /// OAuth 1.0a, switched to: the consumer key given, if any.
    consumer_key: Option<String>,
    /// `Some(None)`: the CA certificate is removed.
    ca: Option<Option<reqwest::Certificate>>,
}

/// Reads a Data Center change into `changes`. A new API URL needs the
/// token again ([`rules::token_follows_api_url`]).
fn datacenter_changes(
    problems: &mut Problems,
    stored: &DataCenterView,
    wanted: DataCenterInput,
    config: &crate::config::Config,
    changes: &mut super::Changes,
) -> Option<DataCenterWanted> {
    let auth = match wanted.auth.clone() {
        Some(raw) => input::datacenter_auth(problems, Some(raw))?,
        None => stored.auth,
    };
    input::refuse_other_auth(problems, auth, &wanted);
    let switched = auth != stored.auth;
    let api_url = wanted.api_url.and_then(|raw| input::api_url(problems, &raw, config));
    let token = wanted.access_token.and_then(|t| t.filled());
    let oauth2 = wanted.oauth2.unwrap_or_default();
    let client_id = given(oauth2.client_id).map(|id| id.trim().to_owned());
    let client_secret = oauth2.client_secret.and_then(|s| s.filled());
    let url_moved = api_url.as_ref().is_some_and(|u| rules::api_url_moved(&stored.api_url, u.as_str()));
    let username = given(wanted.username).map(|u| u.trim().to_owned());
    let ca = match wanted.ca_certificate {
        Some(pem) if pem.trim().is_empty() => Some(None),
        Some(pem) => Some(Some(input::ca_certificate(problems, &pem)?)),
        None => None,
    };
    let new_pem = ca.as_ref().map(|c| c.as_ref().map(|(pem, _)| pem.as_str()));
    let mut consumer_key = None;
    match (auth, switched) {
        // Another way to authenticate: all of its fields.
        (DataCenterAuth::AccessToken, true) => {
            problems.filled(
                "datacenter.username",
                username.clone(),
                "Enter the Bitbucket username the token belongs to.",
            );
            problems.filled_secret("datacenter.access_token", token.clone(), "Paste the HTTP access token.");
        }
        (DataCenterAuth::OAuth2, true) => {
            input::oauth2_client(
                problems,
                Some(input::OAuth2Input { client_id: client_id.clone(), client_secret: client_secret.clone() }),
            );
        }
        (DataCenterAuth::AccessToken, false) => {
            if let Some(url) = &api_url {
                problems.check(rules::token_follows_api_url(&stored.api_url, url.as_str(), token.is_some()));
            }
            if let Some(new_pem) = new_pem {
                problems.check(rules::token_follows_trust(stored.ca_certificate.as_deref(), new_pem, token.is_some()));
            }
        }
        (DataCenterAuth::OAuth2, false) => {
            let stored_id = stored.oauth2.as_ref().map(|o| o.client_id.as_str()).unwrap_or_default();
            problems.check(rules::client_secret_follows(
                (&stored.api_url, stored.ca_certificate.as_deref(), stored_id),
                (api_url.as_ref().map(Url::as_str), new_pem, client_id.as_deref()),
                client_secret.is_some(),
            ));
        }
        (DataCenterAuth::OAuth1, true) => {
            consumer_key = input::oauth1_consumer_key(problems, wanted.oauth1).flatten();
        }
        (DataCenterAuth::OAuth1, false) => {
            if wanted.oauth1.is_some_and(|o| o.consumer_key.is_some()) {
                problems.push(
                    "datacenter.oauth1.consumer_key",
                    "immutable",
                    "The consumer key is the application link's in Bitbucket: it does not change. Switch to another way to authenticate and back for a new link.",
                );
            }
        }
    }
    if auth != DataCenterAuth::AccessToken && username.is_some() {
        problems.push(
            "datacenter.username",
            "wrong_auth",
            "An OAuth integration acts as whoever approves it in Bitbucket: connect it as that user.",
        );
    }
    let user_facing_url = given(wanted.user_facing_url).and_then(|raw| input::user_facing_url(problems, &raw));
    let ca_changed = ca.as_ref().is_some_and(|c| c.as_ref().map(|(pem, _)| pem) != stored.ca_certificate.as_ref());
    let connection_changed = switched
        || url_moved
        || token.is_some()
        || client_secret.is_some()
        || username.as_ref().is_some_and(|u| Some(u) != stored.username.as_ref())
        || ca_changed;
    changes.api_url = api_url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_owned());
    changes.user_facing_url = user_facing_url;
    if auth == DataCenterAuth::AccessToken {
        changes.username = username.clone();
    }
    changes.ca_certificate = ca.as_ref().map(|c| c.as_ref().map(|(pem, _)| pem.clone()));
    let ca = ca.map(|c| c.map(|(_, parsed)| parsed));
    Some(DataCenterWanted {
        connection_changed,
        auth,
        api_url,
        username,
        token,
        client_id,
        client_secret,
        consumer_key,
        ca,
    })
}

/// The server a Data Center change points at: the new API URL and CA
/// certificate over the stored ones.
fn changed_server(
    stored: &DataCenterView,
    api_url: Option<Url>,
    ca: Option<Option<reqwest::Certificate>>,
) -> Result<(Url, Option<reqwest::Certificate>), StoredError> {
    let api_url = match api_url {
        Some(url) => url,
        None => Url::parse(&stored.api_url).map_err(|e| StoredError::Corrupt(e.to_string()))?,
    };
    let ca = match ca {
        Some(ca) => ca,
        None => checks::stored_ca(stored)?,
    };
    Ok((api_url, ca))
}

/// The application link a Data Center OAuth 2.0 change is checked with:
/// the new client over the stored one (a stored secret is used only for
/// the server and trust it was given for: the rule above refused any
/// other). Returns the API URL, the CA, the client, and whether it is a
/// new client (or server), whose approval must be given again.
async fn changed_link(
    services: &Services,
    integration: &Integration,
    stored: &DataCenterView,
    wanted: DataCenterWanted,
) -> Result<(Url, Option<reqwest::Certificate>, oauth2::Client, bool), IntegrationError> {
    let stored_client = super::datacenter_oauth2_client(&services.pool, &services.keyring, integration.id).await?;
    let new_client = wanted.client_secret.is_some() || stored_client.is_none();
    let (api_url, ca) = changed_server(stored, wanted.api_url, wanted.ca)?;
    let moved = rules::api_url_moved(&stored.api_url, api_url.as_str());
    let client = match (wanted.client_secret, stored_client) {
        (Some(secret), stored) => {
            oauth2::Client { id: wanted.client_id.or(stored.map(|c| c.id)).unwrap_or_default(), secret }
        }
        (None, Some(stored)) => stored,
        (None, None) => return Err(IntegrationError::NotFound),
    };
    Ok((api_url, ca, client, new_client || moved))
}

/// The connection a Data Center change is checked with: what changed over
/// what is stored. The stored token is opened only for the URL it was
/// given for (the rule above refused any other).
async fn changed_connection(
    services: &Services,
    integration: &Integration,
    stored: &DataCenterView,
    wanted: DataCenterWanted,
) -> Result<datacenter::Connection, IntegrationError> {
    let token = match wanted.token {
        Some(token) => token,
        None => super::datacenter_token(&services.pool, &services.keyring, integration.id)
            .await?
            .ok_or(IntegrationError::NotFound)?,
    };
    let (api_url, ca) = changed_server(stored, wanted.api_url, wanted.ca)?;
    let username = wanted.username.or_else(|| stored.username.clone()).unwrap_or_default();
    Ok(datacenter::Connection { api_url, username, token, ca, oauth1: None })
}

/// A Cloud change, validated: the workspace, the consumer (a new key needs
/// its secret; a new secret alone keeps the key) and the mode.
struct CloudWanted {
    workspace: Option<String>,
    key: Option<String>,
    secret: Option<Secret<String>>,
    mode: Option<Mode>,
}

fn cloud_changes(problems: &mut Problems, stored: &CloudView, wanted: CloudInput) -> Option<CloudWanted> {
    let workspace = wanted.workspace.and_then(|raw| input::workspace(problems, &raw));
    let key = given(wanted.client_id).map(|k| k.trim().to_owned());
    let secret = wanted.client_secret.and_then(|s| s.filled());
    let mode = wanted.mode.and_then(|raw| input::mode(problems, Some(raw)));
    if let Some(key) = &key {
        problems.check(rules::secret_follows_key(&stored.client_id, key, secret.is_some()))?;
    }
    Some(CloudWanted { workspace, key, secret, mode })
}

/// Checks changed Cloud credentials and puts them into `changes`: a new
/// consumer, workspace or mode forgets the tokens; in client-credentials
/// mode a new token is requested and checked at once, otherwise the
/// integration waits for a new approval.
async fn apply_cloud_changes(
    services: &Services,
    id: IntegrationId,
    stored: &CloudView,
    wanted: CloudWanted,
    changes: &mut super::Changes,
) -> Result<(), IntegrationError> {
    let key_changed = wanted.key.as_ref().is_some_and(|k| *k != stored.client_id);
    let workspace_changed = wanted.workspace.as_ref().is_some_and(|w| *w != stored.workspace);
    let mode_changed = wanted.mode.is_some_and(|m| m != stored.mode);
    if !(key_changed || wanted.secret.is_some() || workspace_changed || mode_changed) {
        return Ok(());
    }
    let (stored_consumer, _, stored_mode) =
        oauth_tokens::consumer(&services.pool, &services.keyring, id).await?.ok_or(IntegrationError::NotFound)?;
    let workspace = wanted.workspace.unwrap_or_else(|| stored.workspace.clone());
    let consumer = crate::bitbucket::cloud::Consumer {
        key: wanted.key.unwrap_or(stored_consumer.key),
        secret: wanted.secret.unwrap_or(stored_consumer.secret),
    };
    let mode = wanted.mode.unwrap_or(stored_mode);
    let (health, tokens, _) = checks::check_cloud(&services.config, &workspace, &consumer, mode)
        .await
        .map_err(IntegrationError::cloud_checks)?;
    changes.health = Some((health.state, health.message));
    changes.workspace = Some(workspace);
    changes.mode = Some(mode);
    changes.consumer = Some(consumer);
    changes.cloud_tokens = tokens;
    Ok(())
}

/// Runs every check again with the stored credentials, records the health
/// and the test; returns the checklist and the integration as it is now.
pub async fn test(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
) -> Result<(Report, Integration), IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.test")).await?;
    let (report, health) = checks::retest(services, &integration).await?;
    super::set_health(&services.pool, integration.id, health.state, &health.message).await?;
    if health.state == HealthState::Connected {
        // What Bitbucket refused while it was in error goes out now.
        if crate::jobs::release_outbound(&services.pool, integration.id).await? > 0 {
            services.jobs.notify();
        }
        // A permission granted since (REPO_ADMIN, Cloud's webhook scope)
        // is used at once, not at the next hourly check.
        let mut tx = services.pool.begin().await?;
        if !managed_hooks::enqueue_integration(&mut tx, integration.id).await?.is_empty() {
            services.jobs.notify();
        }
        tx.commit().await?;
    }
    let event = audit_event(by, AuditAction::IntegrationTested, &integration).details(json!({"health": health.state}));
    audit::record(&services.pool, event).await?;
    let tested = super::find(&services.pool, integration.id).await?.ok_or(IntegrationError::NotFound)?;
    Ok((report, tested))
}

/// Opens the webhook secret for someone entitled to see it, and records
/// that they did.
pub async fn reveal_webhook_secret(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
) -> Result<(Integration, Secret<String>), IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.webhook_secret_revealed")).await?;
    let secret = super::webhook_secret(&services.pool, &services.keyring, integration.id)
        .await?
        .ok_or(IntegrationError::NotFound)?;
    let event = audit_event(by, AuditAction::WebhookSecretRevealed, &integration);
    audit::record(&services.pool, event).await?;
    Ok((integration, secret))
}

/// A rotated webhook secret: the new one, and until when the previous one
/// is still accepted.
pub struct Rotated {
    pub integration: Integration,
    pub secret: Secret<String>,
    pub previous_valid_until: Option<OffsetDateTime>,
}

/// Rotates the webhook secret; the previous one stays valid for
/// `BITGATE_WEBHOOK_SECRET_GRACE`.
pub async fn rotate_webhook_secret(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
) -> Result<Rotated, IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.webhook_secret_rotated")).await?;
    let grace = services.config.webhook_secret_grace;
    let mut tx = services.pool.begin().await?;
    let secret = deliveries::rotate(&mut tx, &services.keyring, integration.id, grace)
        .await?
        .ok_or(IntegrationError::NotFound)?;
    let until = deliveries::previous_valid_until(&mut *tx, integration.id).await?;
    let event = audit_event(by, AuditAction::WebhookSecretRotated, &integration)
        .details(json!({"previous_valid_until": until.and_then(|t| t.format(&Rfc3339).ok())}));
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    services.webhooks.endpoints.changed_here();
    // Bitbucket's hooks get the new secret before the answer (the grace
    // period only covers deliveries in flight); a repository Bitbucket
    // could not be asked about is retried by its job.
    if let Err(error) = managed_hooks::reconcile::integration_now(services, integration.id).await {
        tracing::warn!(%error, "the hooks could not be given the rotated secret now; their jobs will");
    }
    Ok(Rotated { integration, secret, previous_valid_until: until })
}

/// Stops accepting the secret a rotation replaced; whether there was one.
pub async fn retire_previous_secret(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
) -> Result<(Integration, bool), IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.webhook_secret_retired")).await?;
    let mut tx = services.pool.begin().await?;
    let retired = deliveries::retire_previous(&mut tx, integration.id).await?;
    if retired {
        let event = audit_event(by, AuditAction::WebhookSecretRetired, &integration);
        audit::record(&mut *tx, event).await?;
    }
    tx.commit().await?;
    services.webhooks.endpoints.changed_here();
    Ok((integration, retired))
}

/// Deletes an integration, detaching its stacks; returns it and how many
/// stacks were detached.
pub async fn delete(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
) -> Result<(Integration, i64), IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.delete")).await?;
    // Bitgate's hooks go first, while there is a credential to delete them with.
    let hooks_left = managed_hooks::reconcile::remove_all(services, &integration).await?;
    // Deleting cascades to deliveries and stacks, which a router may be
    // updating in the other order: a deadlock is resolved by trying again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match delete_once(services, by, &integration, hooks_left).await {
            Err(error) if attempt < 4 && crate::db::is_retryable(&error) => continue,
            Err(error) => return Err(error.into()),
            Ok(None) => return Err(IntegrationError::NotFound),
            Ok(Some(detached)) => return Ok((integration, detached)),
        }
    }
}

async fn delete_once(
    services: &Services,
    by: &Principal,
    integration: &Integration,
    hooks_left: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = services.pool.begin().await?;
    let Some(detached) = super::delete(&mut tx, integration.id).await? else { return Ok(None) };
    let details = json!({"stacks_detached": detached, "hooks_left_in_bitbucket": hooks_left});
    let event = audit_event(by, AuditAction::IntegrationDeleted, integration).details(details);
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    services.webhooks.endpoints.changed_here();
    Ok(Some(detached))
}

/// Makes a provider's authorize URL for a flow's `state`, with the PKCE verifier to keep.
type AuthorizeUrl = Box<dyn FnOnce(&str) -> (String, String) + Send>;

/// Starts the approval of an integration that authorizes in Bitbucket (a
/// Cloud consumer in `authorization_code` mode, a Data Center OAuth 2.0
/// link); returns Bitbucket's authorize URL. `session` binds the flow to
/// the starting browser ([`oauth_flows::session_binding`]); `None` for the API.
pub async fn start_authorization(
    services: &Services,
    by: &Principal,
    id: IntegrationId,
    session: Option<String>,
) -> Result<String, IntegrationError> {
    let integration = load_for(services, by, id, Purpose::Act("integration.authorize")).await?;
    // The flow comes back to a logged-in user's browser: the CLI has none.
    let user = by.user_id().ok_or(IntegrationError::Denied(Denied::Forbidden))?;
    if let Some(dc) = integration.datacenter.as_ref().filter(|dc| dc.auth == DataCenterAuth::OAuth1) {
        return start_oauth1(services, &integration, dc, user, session).await;
    }
    let authorize: AuthorizeUrl = match &integration.datacenter {
        Some(dc) if dc.auth == DataCenterAuth::OAuth2 => {
            let client = super::datacenter_oauth2_client(&services.pool, &services.keyring, integration.id)
                .await?
                .ok_or(IntegrationError::NotFound)?;
            let api_url = Url::parse(&dc.api_url).map_err(|e| StoredError::Corrupt(e.to_string()))?;
            let user_facing = Url::parse(&dc.user_facing_url).map_err(|e| StoredError::Corrupt(e.to_string()))?;
            let endpoints = oauth2::Endpoints::new(&api_url, &user_facing, &services.config);
            let scope = oauth2::scope_for(integration.options.manage_webhooks);
            Box::new(move |state| oauth2::authorize_url(&endpoints, &client, state, scope))
        }
        Some(_) => {
            return Err(IntegrationError::Invalid(vec![FieldError::new(
                "datacenter.auth",
                "access_token",
                "This integration uses an HTTP access token: it needs no approval in Bitbucket.",
            )]))
        }
        None => {
            let (consumer, _, mode) = oauth_tokens::consumer(&services.pool, &services.keyring, integration.id)
                .await?
                .ok_or(IntegrationError::NotFound)?;
            if mode == Mode::ClientCredentials {
                return Err(IntegrationError::Invalid(vec![FieldError::new(
                    "cloud.mode",
                    "client_credentials",
                    "This integration uses client credentials: it needs no approval. Test it to request a new token.",
                )]));
            }
            let endpoints = Endpoints::from_config(&services.config);
            Box::new(move |state| cloud::authorize_url(&endpoints, &consumer, state))
        }
    };
    Ok(oauth_flows::start(&services.pool, &services.keyring, authorize, integration.id, user, session).await?)
}

/// The first leg of an OAuth 1.0a link: a request token whose approval
/// comes back to Bitgate's callback with the flow's state. A link Bitbucket
/// refuses (no such consumer key, another public key) is said on its field.
async fn start_oauth1(
    services: &Services,
    integration: &Integration,
    dc: &DataCenterView,
    user: Uuid,
    session: Option<String>,
) -> Result<String, IntegrationError> {
    let (consumer, _) = super::datacenter_oauth1(&services.pool, &services.keyring, integration.id)
        .await?
        .ok_or(IntegrationError::NotFound)?;
    let connection = checks::connection_with(dc, Secret::new(String::new()))?;
    let user_facing = Url::parse(&dc.user_facing_url).map_err(|e| StoredError::Corrupt(e.to_string()))?;
    let endpoints = oauth1::Endpoints::new(&connection.api_url, &user_facing);
    let http = datacenter::http_client(connection.ca.as_ref(), &services.config).map_err(StoredError::from)?;
    let state = oauth_flows::new_state();
    let mut callback = Url::parse(&crate::bitbucket::oauth_callback_url(&services.config))
        .map_err(|e| StoredError::Corrupt(e.to_string()))?;
    callback.query_pairs_mut().append_pair("state", &state);
    let request_token = oauth1::request_token(&http, &services.config, &endpoints, &consumer, callback.as_str())
        .await
        .map_err(|refused| {
            let field = match refused.problem.as_deref() {
                Some("consumer_key_unknown") => "datacenter.oauth1.consumer_key",
                Some("signature_invalid") => "datacenter.oauth1.public_key",
                _ => "datacenter.api_url",
            };
            IntegrationError::Invalid(vec![FieldError::new(field, "link_refused", refused.message)])
        })?;
    oauth_flows::start_oauth1(&services.pool, &state, &request_token, integration.id, user, session).await?;
    Ok(endpoints.authorize_url(&request_token))
}
