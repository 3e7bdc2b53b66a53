//! Importing an integrations file (CLI, browser and API): every entry is
//! resolved, validated and checked with Bitbucket before anything is
//! written; then everything is written in one transaction, or nothing.
//!
//! Entries are matched to stored integrations by name (without regard to
//! case): a new name creates, a known one updates what differs, and an
//! entry that says what is stored already is left alone. A secret left out
//! keeps the stored one; a secret given is compared with the stored one
//! without being shown anywhere. A stored secret is reused only where the
//! API would reuse it ([`rules`]): not for another server, trust root or
//! client id.
//!
//! What needs a person cannot be imported: a Data Center application link
//! (or a Cloud consumer in authorization-code mode) is created with its
//! client checked, `pending_authorization`, and the summary lists it to
//! connect in the browser. An OAuth 1.0a link's key pair is never in a
//! file: a new link (or one switched to) gets a new pair, whose public key
//! an admin pastes into Bitbucket before connecting; a link that stays
//! keeps its pair, so that an export imported back changes nothing.

use std::fmt::Write;

use futures::future::join_all;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use super::file::{self, Credentials, Entry, Problem, Scope};
use crate::{
    access::{Access, Denied},
    audit::{self, AuditAction, Event, Target},
    bitbucket::{
        cloud::{Account, Consumer, Mode, Tokens},
        datacenter::{self, oauth1, oauth2},
        Report,
    },
    config::Config,
    integrations::{
        self, checks,
        input::{self, given},
        operations, rules, Changes, DataCenterAuth, DataCenterCredential, Health, HealthState, Integration,
        IntegrationId, NewCloud, NewDataCenter, Options, Provider,
    },
    oauth_tokens,
    principal::Principal,
    secret::Secret,
    secrets::Keyring,
    spaces::{self, SpaceId},
    users::FieldError,
    validation::Problems,
    webhooks,
};

/// One import.
pub struct Import<'a> {
    pub db: &'a PgPool,
    pub keyring: &'a Keyring,
    /// The outbound policy and Bitbucket Cloud's endpoints, for the checks.
    pub config: &'a Config,
    /// Who imports: a user (browser or API token), recorded as the creator
    /// of what they create, or the operator (the CLI).
    pub by: Principal,
    /// What the permission table lets them administer (the operator: all).
    pub access: Access,
    /// Where the entries that name no scope go (CDS's entries never do).
    pub space: SpaceId,
    /// Check everything, write nothing.
    pub dry_run: bool,
}

/// What an import did (or, in a dry run, would do), by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Of those created or updated, the ones left `pending_authorization`:
    /// a Data Center application link (new, switched to, or whose client,
    /// server or trust changed) or a Cloud consumer in authorization-code
    /// mode. Their tokens come only when an admin clicks Connect on the
    /// integration's page and approves in Bitbucket, which no file can do.
    pub to_connect: Vec<String>,
    /// Of those, the OAuth 1.0a links given a new key pair (new, or switched
    /// to): Bitbucket's application link needs its public key, shown on the
    /// integration's page, before Connect can work.
    pub new_key_pairs: Vec<String>,
}

impl Summary {
    /// Whether the file says what is stored already.
    pub fn changes_nothing(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty()
    }

    /// The summary as the CLI prints it: a line per kind, then what it means.
    pub fn to_text(&self, dry_run: bool) -> String {
        let names = |list: &[String]| if list.is_empty() { "none".to_owned() } else { list.join(", ") };
        let (created, updated) = if dry_run { ("would create", "would update") } else { ("created", "updated") };
        let mut text = format!(
            "{created}: {}\n{updated}: {}\nunchanged: {}\n",
            names(&self.created),
            names(&self.updated),
            names(&self.unchanged)
        );
        if !self.new_key_pairs.is_empty() {
            let made = if dry_run { "would get a new key pair" } else { "new key pair" };
            let _ = writeln!(
                text,
                "{made}: {}\nEach is an OAuth 1.0a application link: paste the public key shown on its page in \
                 Bitgate into Bitbucket's application link (incoming authentication) before clicking Connect.",
                self.new_key_pairs.join(", ")
            );
        }
        if !self.to_connect.is_empty() {
            let waiting = if dry_run { "would wait for Connect" } else { "waiting for Connect" };
            let _ = writeln!(
                text,
                "{waiting}: {}\nOpen each in Bitgate and click Connect to approve it in Bitbucket.",
                self.to_connect.join(", ")
            );
        }
        text.push_str(match (dry_run, self.changes_nothing()) {
            (_, true) => "Nothing to change: every integration is as the file says.\n",
            (true, false) => "Dry run: nothing was written.\n",
            (false, false) => "",
        });
        text
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Something in the file, or about it, is wrong: nothing was written.
    #[error("the file has {} problems", .0.len())]
    Problems(Vec<Problem>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Secrets at most this long; Bitgate's own are 43 characters.
const MAX_SECRET: usize = 1024;
/// Connection checks run at the same time at most.
const CHECKS_AT_ONCE: usize = 8;
/// A webhook secret shorter than this could be guessed.
const MIN_WEBHOOK_SECRET: usize = 16;

/// Reads, plans and (unless a dry run) applies a file.
pub async fn run(import: &Import<'_>, text: &str) -> Result<Summary, ImportError> {
    let entries = file::read(text).map_err(ImportError::Problems)?;
    let mut problems = Vec::new();
    let mut plans = Vec::new();
    for (place, entry) in entries {
        let mut found = Vec::new();
        let plan = plan(import, &place, entry, &mut found).await?;
        if found.is_empty() {
            plans.extend(plan);
        }
        problems.extend(found);
    }
    check_new_slugs_and_defaults(import, &plans, &mut problems).await?;
    // The entries that read well are checked with Bitbucket even when others
    // did not: one attempt lists every problem of the file.
    run_connection_checks(import, &mut plans, &mut problems).await?;
    if !problems.is_empty() {
        return Err(ImportError::Problems(problems));
    }
    let summary = summary(&plans);
    if !import.dry_run {
        apply(import, plans, &summary).await?;
    }
    Ok(summary)
}

/// One entry, resolved: what to do with it.
struct Plan {
    place: String,
    name: String,
    slug: String,
    provider: Provider,
    space_id: Option<SpaceId>,
    action: Action,
    /// The connection check this entry needs before it is written.
    check: Option<Check>,
    /// A webhook secret to set (differs from the stored one, or new).
    webhook_secret: Option<Secret<String>>,
}

enum Action {
    Create(Box<New>),
    Update { id: IntegrationId, changes: Box<Changes> },
    Unchanged,
}

/// What creating an entry takes, once its checks passed.
struct New {
    common: Common,
    credentials: NewCredentials,
    /// Set by the connection checks.
    checked: Option<Checked>,
}

struct Common {
    labels: Vec<String>,
    description: String,
    options: Options,
}

enum NewCredentials {
    DataCenter(Box<DataCenterFields>),
    Cloud { workspace: String, consumer: Consumer, mode: Mode },
}

/// A Data Center entry's credentials, validated and normalized as stored.
struct DataCenterFields {
    api_url: String,
    user_facing_url: String,
    login: Login,
    ca_certificate: Option<String>,
}

/// How a Data Center entry authenticates, with that way's fields; a
/// secret `None` when the file leaves it to the stored one, and so an
/// OAuth 1.0a link's consumer key (Bitgate's own for a new link).
enum Login {
    AccessToken { username: String, token: Option<Secret<String>> },
    OAuth2 { client_id: String, client_secret: Option<Secret<String>> },
    OAuth1 { consumer_key: Option<String> },
}

impl Login {
    fn auth(&self) -> DataCenterAuth {
        match self {
            Login::AccessToken { .. } => DataCenterAuth::AccessToken,
            Login::OAuth2 { .. } => DataCenterAuth::OAuth2,
            Login::OAuth1 { .. } => DataCenterAuth::OAuth1,
        }
    }

    /// The credential to create with: every secret is there, or the plan
    /// stopped at the entry's problem; an OAuth 1.0a link's consumer key
    /// and key pair are the ones its check was made with (`None` without).
    fn credential(self, link: Option<NewLink>) -> Option<DataCenterCredential> {
        Some(match self {
            Login::AccessToken { username, token } => {
                DataCenterCredential::AccessToken { username, token: token.unwrap_or_default() }
            }
            Login::OAuth2 { client_id, client_secret } => DataCenterCredential::OAuth2(oauth2::Client {
                id: client_id,
                secret: client_secret.unwrap_or_default(),
            }),
            Login::OAuth1 { .. } => {
                let (consumer_key, keys) = link?;
                DataCenterCredential::OAuth1 { consumer_key, keys }
            }
        })
    }
}

/// An OAuth 1.0a link's consumer key and the key pair made for it.
type NewLink = (String, oauth1::KeyPair);

enum Check {
    /// Boxed: a connection holds room for an OAuth 1.0a consumer's key.
    DataCenter(Box<datacenter::Connection>),
    /// An OAuth 2.0 link's client, with a code that cannot exist
    /// ([`checks::check_datacenter_client`]): its approval comes after.
    DataCenterClient {
        api_url: url::Url,
        user_facing_url: String,
        ca: Option<reqwest::Certificate>,
        client: oauth2::Client,
    },
    /// An OAuth 1.0a link's server, asked as its provider would be
    /// ([`checks::check_datacenter_consumer`], lenient: the link in
    /// Bitbucket comes after, with the public key).
    DataCenterConsumer {
        api_url: url::Url,
        user_facing_url: String,
        ca: Option<reqwest::Certificate>,
        signer: Signer,
    },
    Cloud {
        workspace: String,
        consumer: Consumer,
        mode: Mode,
    },
}

/// What signs an OAuth 1.0a link's check.
enum Signer {
    /// A new key pair for this consumer key, made with the check: a few
    /// at a time like the checks, each off the async threads.
    New(String),
    /// The link's stored consumer, whose key pair stays.
    Stored(Box<oauth1::Consumer>),
}

/// What the checks gave back to store.
enum Checked {
    /// With the consumer key and the key pair made for a new OAuth 1.0a link.
    DataCenter(Health, Option<NewLink>),
    Cloud(Health, Option<(Tokens, Account)>),
}

fn problem(place: &str, field: &str, message: impl Into<String>) -> Problem {
    Problem::new(in_entry(place, field), message)
}

fn in_entry(place: &str, field: &str) -> String {
    if field.is_empty() {
        place.to_owned()
    } else {
        format!("{place}.{field}")
    }
}

/// A field's error, with its code (a refused rule keeps its own).
fn field_problem(place: &str, error: FieldError) -> Problem {
    Problem::coded(in_entry(place, &error.field), &error.code, error.message)
}

/// Resolves one entry; its problems go to `problems` (and then the plan is not used).
async fn plan(
    import: &Import<'_>,
    place: &str,
    entry: Entry,
    problems: &mut Vec<Problem>,
) -> Result<Option<Plan>, sqlx::Error> {
    let db = import.db;
    let (name, slug) = match integrations::parse_name(&entry.name) {
        Ok(parsed) => parsed,
        Err(error) => {
            problems.push(field_problem(place, error));
            return Ok(None);
        }
    };
    let space_id = match &entry.scope {
        Scope::Default => None,
        Scope::Unstated => Some(import.space),
        Scope::Space(raw) => match spaces::resolve(db, raw).await? {
            Some(space) => Some(space.id),
            None => {
                problems.push(problem(
                    place,
                    "space",
                    format!("no space is named or has the id \u{201c}{raw}\u{201d}"),
                ));
                return Ok(None);
            }
        },
    };
    if let Some(why) = refusal(import, space_id).await? {
        let why = if entry.scope == Scope::Unstated {
            "names no space, and you do not administer the space the import puts such entries in: \
             name one (space: ...), or import into one of yours"
        } else {
            why
        };
        problems.push(problem(place, if space_id.is_some() { "space" } else { "scope" }, why));
        return Ok(None);
    }
    let existing = match integrations::find_by_name(db, &name).await? {
        Some(existing) => {
            if refusal(import, existing.space_id).await?.is_some() {
                problems.push(problem(
                    place,
                    "name",
                    "an integration of this name exists where you cannot change it (another space, or a default)",
                ));
                return Ok(None);
            }
            if existing.provider != entry.provider {
                problems.push(problem(
                    place,
                    "provider",
                    format!(
                        "{} exists as a {} integration: a provider cannot change (choose another name)",
                        existing.name,
                        existing.provider.label()
                    ),
                ));
                return Ok(None);
            }
            Some(existing)
        }
        None => None,
    };
    // Moving an integration must leave its stacks able to use it: the API's rule.
    if let Some(existing) = existing.as_ref().filter(|e| e.space_id != space_id) {
        if let Err(refused) = rules::stacks_stay_in_scope(db, existing.id, space_id).await? {
            problems.push(field_problem(place, FieldError { field: "space".into(), ..refused }));
            return Ok(None);
        }
    }
    let labels = integrations::parse_labels(&entry.labels).map_err(|e| field_problem(place, e));
    let description = integrations::parse_description(&entry.description).map_err(|e| field_problem(place, e));
    let webhook_secret = entry.webhook_secret.as_ref().and_then(|raw| {
        let secret = raw.expose().trim();
        if secret.chars().count() < MIN_WEBHOOK_SECRET {
            problems.push(problem(
                place,
                "webhook_secret",
                format!("use at least {MIN_WEBHOOK_SECRET} characters: a short secret can be guessed"),
            ));
            None
        } else if secret.len() > MAX_SECRET || secret.chars().any(char::is_control) {
            problems.push(problem(place, "webhook_secret", "use at most 1,024 printable characters"));
            None
        } else {
            Some(Secret::new(secret.to_owned()))
        }
    });
    let (labels, description) = match (labels, description) {
        (Ok(labels), Ok(description)) => (labels, description),
        (labels, description) => {
            problems.extend(labels.err().into_iter().chain(description.err()));
            return Ok(None);
        }
    };
    let common = Common { labels, description, options: entry.options };
    // An existing integration keeps its name as stored (the file may differ in case).
    let name = existing.as_ref().map_or(name, |e| e.name.clone());
    let make = |action, check, webhook_secret| Plan {
        place: place.to_owned(),
        name: name.clone(),
        slug: slug.clone(),
        provider: entry.provider,
        space_id,
        action,
        check,
        webhook_secret,
    };
    let keyring = import.keyring;
    match entry.credentials {
        Credentials::DataCenter {
            api_url,
            user_facing_url,
            auth,
            username,
            access_token,
            oauth2,
            oauth1,
            ca_certificate,
        } => {
            // The reader gives the fields of `auth`'s way alone.
            let login = match auth {
                DataCenterAuth::AccessToken => {
                    Login::AccessToken { username: username.unwrap_or_default(), token: access_token }
                }
                DataCenterAuth::OAuth2 => {
                    let (client_id, client_secret) =
                        oauth2.map_or_else(Default::default, |link| (link.client_id, link.client_secret));
                    Login::OAuth2 { client_id, client_secret }
                }
                DataCenterAuth::OAuth1 => Login::OAuth1 { consumer_key: oauth1.and_then(|link| link.consumer_key) },
            };
            let fields = DataCenterFields {
                api_url,
                user_facing_url: user_facing_url.unwrap_or_default(),
                login,
                ca_certificate,
            };
            let Some((mut fields, endpoint)) = datacenter_fields(import, place, fields, problems) else {
                return Ok(None);
            };
            let Some(existing) = existing else {
                let Some(check) = new_datacenter_check(place, &slug, &mut fields, endpoint, problems) else {
                    return Ok(None);
                };
                let new = New { common, credentials: NewCredentials::DataCenter(Box::new(fields)), checked: None };
                return Ok(Some(make(Action::Create(Box::new(new)), Some(check), webhook_secret)));
            };
            let mut changes = common_changes(&existing, space_id, common);
            let changed = datacenter_changes(import, place, &existing, fields, endpoint, &mut changes, problems);
            let Some(check) = changed.await? else { return Ok(None) };
            let webhook_secret = changed_webhook_secret(import, existing.id, webhook_secret).await?;
            Ok(Some(make(update_or_not(existing.id, changes, webhook_secret.is_some()), check, webhook_secret)))
        }
        Credentials::Cloud { workspace, client_id, client_secret, mode } => {
            // The wizard's and the API's validators, so that a file is held to the same rules.
            let mut found = Problems::default();
            let workspace = input::workspace(&mut found, &workspace);
            let mode = input::mode(&mut found, Some(mode));
            let client_id = client_id.trim().to_owned();
            let client_secret = client_secret.map(|s| s.trimmed());
            if client_secret.as_ref().is_some_and(|s| s.expose().len() > MAX_SECRET) {
                found.push("cloud.client_secret", "too_long", "Use at most 1,024 characters.");
            }
            let (Some(workspace), Some(mode), true) = (workspace, mode, found.is_empty()) else {
                problems.extend(found.0.into_iter().map(|error| field_problem(place, error)));
                return Ok(None);
            };
            let Some(existing) = existing else {
                let Some(secret) = client_secret else {
                    problems.push(problem(
                        place,
                        "cloud.client_secret",
                        "missing: a new integration needs its consumer's secret",
                    ));
                    return Ok(None);
                };
                let consumer = Consumer { key: client_id, secret };
                let check = Check::Cloud { workspace: workspace.clone(), consumer: consumer.clone(), mode };
                let new =
                    New { common, credentials: NewCredentials::Cloud { workspace, consumer, mode }, checked: None };
                return Ok(Some(make(Action::Create(Box::new(new)), Some(check), webhook_secret)));
            };
            let stored = oauth_tokens::consumer(db, keyring, existing.id).await;
            let Some(stored) = opened(stored, place, "cloud.client_secret", problems)? else { return Ok(None) };
            let Some(stored) = stored else { return Err(sqlx::Error::RowNotFound) };
            let (stored_consumer, stored_workspace, stored_mode) = stored;
            let mut changes = common_changes(&existing, space_id, common);
            let key_changed = client_id != stored_consumer.key;
            let secret_changed = client_secret.as_ref().is_some_and(|s| *s != stored_consumer.secret);
            if let Err(refused) = rules::secret_follows_key(&stored_consumer.key, &client_id, client_secret.is_some()) {
                problems.push(field_problem(place, refused));
                return Ok(None);
            }
            let consumer = Consumer { key: client_id, secret: client_secret.unwrap_or(stored_consumer.secret) };
            if key_changed || secret_changed {
                changes.consumer = Some(consumer.clone());
            }
            if workspace != stored_workspace {
                changes.workspace = Some(workspace.clone());
            }
            if mode != stored_mode {
                changes.mode = Some(mode);
            }
            let credentials_changed =
                changes.consumer.is_some() || changes.workspace.is_some() || changes.mode.is_some();
            let check = credentials_changed.then_some(Check::Cloud { workspace, consumer, mode });
            let webhook_secret = changed_webhook_secret(import, existing.id, webhook_secret).await?;
            Ok(Some(make(update_or_not(existing.id, changes, webhook_secret.is_some()), check, webhook_secret)))
        }
    }
}

/// A stored secret, opened; one that does not open (the keys changed since)
/// is a problem of the entry, which can give it again.
fn opened<T>(
    result: Result<T, integrations::SecretError>,
    place: &str,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Result<Option<T>, sqlx::Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(integrations::SecretError::Database(e)) => Err(e),
        Err(integrations::SecretError::Open(_)) => {
            let message = "the stored secret cannot be opened (BITGATE_SECRET_KEYS changed?): give it again";
            problems.push(problem(place, field, message));
            Ok(None)
        }
    }
}

/// Why the importer may not put (or change) an integration in `space`
/// (`None`: a default). A refusal is recorded in the audit log, as the
/// same attempt through the API is, even in a dry run: it is an attempt.
async fn refusal(import: &Import<'_>, space: Option<SpaceId>) -> Result<Option<&'static str>, sqlx::Error> {
    let Err(denied) = import.access.can_administer_integration(space) else { return Ok(None) };
    import.by.refused(import.db, "integration", "integration.import", space, denied).await?;
    Ok(Some(match (denied, space) {
        // A space they cannot see is answered as one that does not exist.
        (Denied::Hidden, Some(_)) => "no space is named so, or you cannot see it",
        (_, Some(_)) => "you do not administer this space",
        (_, None) => "only account admins import default integrations",
    }))
}

/// Where a Data Center entry's connection check goes: its API URL as
/// stored (normalized), and the CA certificate it trusts.
struct Endpoint {
    api_url: url::Url,
    ca: Option<reqwest::Certificate>,
}

/// Validates and normalizes a Data Center entry's fields the way the
/// wizard does; returns them with where their connection check goes.
fn datacenter_fields(
    import: &Import<'_>,
    place: &str,
    mut fields: DataCenterFields,
    problems: &mut Vec<Problem>,
) -> Option<(DataCenterFields, Endpoint)> {
    // The wizard's and the API's validators, so that a file is held to the same rules.
    let mut found = Problems::default();
    let endpoint_url = input::api_url(&mut found, &fields.api_url, import.config);
    let user_facing_url = match given(Some(fields.user_facing_url.clone())) {
        Some(raw) => input::user_facing_url(&mut found, &raw),
        // Stored without a trailing slash; the check takes the parsed URL, as the API's does.
        None => endpoint_url.as_ref().map(|url| url.as_str().trim_end_matches('/').to_owned()),
    };
    let secret = match &mut fields.login {
        Login::AccessToken { username, token } => {
            *username = username.trim().to_owned();
            Some((token, "datacenter.access_token"))
        }
        Login::OAuth2 { client_id, client_secret } => {
            *client_id = client_id.trim().to_owned();
            Some((client_secret, "datacenter.oauth2.client_secret"))
        }
        // No secret: the key pair is Bitgate's. The key is held to the API's rule.
        Login::OAuth1 { consumer_key } => {
            let given = consumer_key.take().map(|key| input::OAuth1Input { consumer_key: Some(key) });
            *consumer_key = input::oauth1_consumer_key(&mut found, given).flatten();
            None
        }
    };
    if let Some((secret, secret_field)) = secret {
        *secret = secret.take().map(|s| s.trimmed());
        if secret.as_ref().is_some_and(|s| s.expose().len() > MAX_SECRET) {
            found.push(secret_field, "too_long", "Use at most 1,024 characters.");
        }
    }
    let ca = fields.ca_certificate.as_deref().and_then(|pem| input::ca_certificate(&mut found, pem));
    if !found.is_empty() {
        problems.extend(found.0.into_iter().map(|error| field_problem(place, error)));
        return None;
    }
    let endpoint_url = endpoint_url?;
    fields.api_url = endpoint_url.as_str().trim_end_matches('/').to_owned();
    fields.user_facing_url = user_facing_url?;
    let (pem, ca) = ca.map_or((None, None), |(pem, parsed)| (Some(pem), Some(parsed)));
    fields.ca_certificate = pem;
    Some((fields, Endpoint { api_url: endpoint_url, ca }))
}

fn connection(username: &str, endpoint: Endpoint, token: Secret<String>) -> Check {
    let Endpoint { api_url, ca } = endpoint;
    let connection = datacenter::Connection { api_url, username: username.to_owned(), token, ca, oauth1: None };
    Check::DataCenter(Box::new(connection))
}

fn client_check(user_facing_url: &str, endpoint: Endpoint, client: oauth2::Client) -> Check {
    let Endpoint { api_url, ca } = endpoint;
    Check::DataCenterClient { api_url, user_facing_url: user_facing_url.to_owned(), ca, client }
}

fn consumer_check(user_facing_url: &str, endpoint: Endpoint, signer: Signer) -> Check {
    let Endpoint { api_url, ca } = endpoint;
    Check::DataCenterConsumer { api_url, user_facing_url: user_facing_url.to_owned(), ca, signer }
}

/// An application link's client, held to the API's rules ([`input::oauth2_client`]).
fn link(place: &str, client_id: &str, secret: Secret<String>, problems: &mut Vec<Problem>) -> Option<oauth2::Client> {
    let mut found = Problems::default();
    let given = input::OAuth2Input { client_id: Some(client_id.to_owned()), client_secret: Some(secret) };
    let client = input::oauth2_client(&mut found, Some(given));
    problems.extend(found.0.into_iter().map(|error| field_problem(place, error)));
    client
}

/// The check a new Data Center entry is created after: its secret is
/// required (nothing is stored to keep). An OAuth 2.0 link's client id is
/// left as the check normalized it; an OAuth 1.0a link's consumer key is
/// the one given or Bitgate's own, and its key pair is made with the check.
fn new_datacenter_check(
    place: &str,
    slug: &str,
    fields: &mut DataCenterFields,
    endpoint: Endpoint,
    problems: &mut Vec<Problem>,
) -> Option<Check> {
    match &mut fields.login {
        Login::AccessToken { username, token } => {
            let Some(token) = token.clone() else {
                problems.push(problem(place, "datacenter.access_token", "missing: a new integration needs its token"));
                return None;
            };
            Some(connection(username, endpoint, token))
        }
        Login::OAuth2 { client_id, client_secret } => {
            let Some(secret) = client_secret.clone() else {
                problems.push(problem(
                    place,
                    "datacenter.oauth2.client_secret",
                    "missing: a new integration needs its client secret",
                ));
                return None;
            };
            let client = link(place, client_id, secret, problems)?;
            client_id.clone_from(&client.id);
            Some(client_check(&fields.user_facing_url, endpoint, client))
        }
        Login::OAuth1 { consumer_key } => {
            let consumer_key = consumer_key.get_or_insert_with(|| operations::default_consumer_key(slug)).clone();
            Some(consumer_check(&fields.user_facing_url, endpoint, Signer::New(consumer_key)))
        }
    }
}

/// Puts what an existing Data Center integration's entry changes into
/// `changes`; `None` when the entry has a problem (in `problems`), else the
/// check the change needs before it is written, if any. A stored secret is
/// opened only once the rules let it go where the file says.
async fn datacenter_changes(
    import: &Import<'_>,
    place: &str,
    existing: &Integration,
    fields: DataCenterFields,
    endpoint: Endpoint,
    changes: &mut Changes,
    problems: &mut Vec<Problem>,
) -> Result<Option<Option<Check>>, sqlx::Error> {
    let (db, keyring, id) = (import.db, import.keyring, existing.id);
    let Some(stored) = existing.datacenter.as_ref() else { return Err(sqlx::Error::RowNotFound) };
    // Where the server is, and under which trust: every way's.
    let moved = rules::api_url_moved(&stored.api_url, &fields.api_url);
    if moved {
        changes.api_url = Some(fields.api_url.clone());
    }
    if stored.user_facing_url != fields.user_facing_url {
        changes.user_facing_url = Some(fields.user_facing_url.clone());
    }
    let ca_changed = stored.ca_certificate != fields.ca_certificate;
    if ca_changed {
        changes.ca_certificate = Some(fields.ca_certificate.clone());
    }
    let switched = fields.login.auth() != stored.auth;
    let (stored_ca, new_ca) = (stored.ca_certificate.as_deref(), fields.ca_certificate.as_deref());
    match fields.login {
        Login::AccessToken { username, token } if !switched => {
            // Before the stored token is opened: it must not go to a URL, nor under a
            // trust root, that the file changed.
            let given = token.is_some();
            let url = rules::token_follows_api_url(&stored.api_url, &fields.api_url, given);
            if let Err(refused) = url.and(rules::token_follows_trust(stored_ca, new_ca, given)) {
                problems.push(field_problem(place, refused));
                return Ok(None);
            }
            let stored_token = integrations::datacenter_token(db, keyring, id).await;
            let Some(stored_token) = opened(stored_token, place, "datacenter.access_token", problems)? else {
                return Ok(None);
            };
            let stored_token = stored_token.unwrap_or_default();
            let mut connection_changed = moved || ca_changed;
            if stored.username.as_deref() != Some(username.as_str()) {
                changes.username = Some(username.clone());
                connection_changed = true;
            }
            let token = match token {
                Some(token) if token != stored_token => {
                    changes.access_token = Some(token.clone());
                    connection_changed = true;
                    token
                }
                _ => stored_token,
            };
            Ok(Some(connection_changed.then(|| connection(&username, endpoint, token))))
        }
        // From an application link to a token: every field of the new way,
        // checked as a creation is; the link's client or key pair, and its
        // tokens, are forgotten.
        Login::AccessToken { username, token } => {
            let Some(token) = token else {
                let message = "missing: switching to an access token needs the token";
                problems.push(problem(place, "datacenter.access_token", message));
                return Ok(None);
            };
            changes.datacenter_auth = Some(DataCenterAuth::AccessToken);
            changes.username = Some(username.clone());
            changes.access_token = Some(token.clone());
            Ok(Some(Some(connection(&username, endpoint, token))))
        }
        Login::OAuth2 { client_id, client_secret } if !switched => {
            // Before the stored secret is opened: it goes only to the server, under
            // the trust, and for the client id it was given for.
            let stored_id = stored.oauth2.as_ref().map_or("", |link| link.client_id.as_str());
            let rule = rules::client_secret_follows(
                (&stored.api_url, stored_ca, stored_id),
                (Some(&fields.api_url), Some(new_ca), Some(&client_id)),
                client_secret.is_some(),
            );
            if let Err(refused) = rule {
                problems.push(field_problem(place, refused));
                return Ok(None);
            }
            let stored_client = integrations::datacenter_oauth2_client(db, keyring, id).await;
            let Some(stored_client) = opened(stored_client, place, "datacenter.oauth2.client_secret", problems)? else {
                return Ok(None);
            };
            let Some(stored_client) = stored_client else { return Err(sqlx::Error::RowNotFound) };
            let other_secret = client_secret.as_ref().is_some_and(|secret| *secret != stored_client.secret);
            let secret = client_secret.unwrap_or(stored_client.secret);
            let Some(client) = link(place, &client_id, secret, problems) else { return Ok(None) };
            // Its tokens belong to the client, the server and the trust they were
            // granted for: any of them changed, they are forgotten and an admin
            // connects it again (as the API's change does).
            if client.id != stored_client.id || other_secret || moved || ca_changed {
                changes.oauth2_client = Some(client.clone());
                return Ok(Some(Some(client_check(&fields.user_facing_url, endpoint, client))));
            }
            Ok(Some(None))
        }
        // From a token (or another link) to an OAuth 2.0 link: its client, checked
        // as a creation is; the token is forgotten, and an admin connects the link.
        Login::OAuth2 { client_id, client_secret } => {
            let Some(secret) = client_secret else {
                let message = "missing: switching to an application link needs its client secret";
                problems.push(problem(place, "datacenter.oauth2.client_secret", message));
                return Ok(None);
            };
            let Some(client) = link(place, &client_id, secret, problems) else { return Ok(None) };
            changes.datacenter_auth = Some(DataCenterAuth::OAuth2);
            changes.oauth2_client = Some(client.clone());
            Ok(Some(Some(client_check(&fields.user_facing_url, endpoint, client))))
        }
        // A link that stays keeps its key pair, and its consumer key: that is
        // the name Bitbucket's application link knows it by.
        Login::OAuth1 { consumer_key } if !switched => {
            let Some(link) = stored.oauth1.as_ref() else { return Err(sqlx::Error::RowNotFound) };
            if let Some(other) = consumer_key.filter(|key| *key != link.consumer_key) {
                problems.push(Problem::coded(
                    in_entry(place, "datacenter.oauth1.consumer_key"),
                    "immutable",
                    format!(
                        "the consumer key is the application link's in Bitbucket ({}): it cannot become {other}; \
                         write the stored one or leave it out (for a new link, switch to another way to \
                         authenticate and back)",
                        link.consumer_key
                    ),
                ));
                return Ok(None);
            }
            if !moved && !ca_changed {
                return Ok(Some(None));
            }
            // Another server or trust: asked, with the stored consumer (which
            // signs; no token is sent), whether it is Bitbucket's provider. Its
            // approval was the old server's: an admin connects it again.
            let stored_consumer = match integrations::datacenter_oauth1(db, keyring, id).await {
                Ok(stored) => stored,
                Err(integrations::SecretError::Database(e)) => return Err(e),
                Err(integrations::SecretError::Open(_)) => {
                    let message = "the link's stored private key cannot be opened (BITGATE_SECRET_KEYS changed?): \
                                   switch to another way to authenticate and back for a new key pair";
                    problems.push(problem(place, "datacenter.auth", message));
                    return Ok(None);
                }
            };
            let Some((consumer, _)) = stored_consumer else { return Err(sqlx::Error::RowNotFound) };
            changes.forget_oauth1_token = true;
            Ok(Some(Some(consumer_check(&fields.user_facing_url, endpoint, Signer::Stored(Box::new(consumer))))))
        }
        // From a token or an OAuth 2.0 link to an OAuth 1.0a link: a new key
        // pair (made with the check), as the API's switch makes; what the old
        // way kept is forgotten, and an admin pastes the public key into
        // Bitbucket and connects the link.
        Login::OAuth1 { consumer_key } => {
            let consumer_key = consumer_key.unwrap_or_else(|| operations::default_consumer_key(&existing.slug));
            changes.datacenter_auth = Some(DataCenterAuth::OAuth1);
            Ok(Some(Some(consumer_check(&fields.user_facing_url, endpoint, Signer::New(consumer_key)))))
        }
    }
}

/// The changes every provider shares: scope, labels, description, options.
fn common_changes(existing: &Integration, space_id: Option<SpaceId>, common: Common) -> Changes {
    let mut changes = Changes::default();
    if existing.space_id != space_id {
        changes.space_id = Some(space_id);
    }
    if existing.labels != common.labels {
        changes.labels = Some(common.labels);
    }
    if existing.description != common.description {
        changes.description = Some(common.description);
    }
    if existing.options != common.options {
        changes.options = Some(common.options);
    }
    changes
}

fn update_or_not(id: IntegrationId, changes: Changes, webhook_secret: bool) -> Action {
    if changes.is_empty() && !webhook_secret {
        Action::Unchanged
    } else {
        Action::Update { id, changes: Box::new(changes) }
    }
}

/// The webhook secret to set: the one given, when it is not the stored one.
async fn changed_webhook_secret(
    import: &Import<'_>,
    id: IntegrationId,
    given: Option<Secret<String>>,
) -> Result<Option<Secret<String>>, sqlx::Error> {
    let Some(given) = given else { return Ok(None) };
    let stored = match integrations::webhook_secret(import.db, import.keyring, id).await {
        Ok(stored) => stored,
        Err(integrations::SecretError::Database(e)) => return Err(e),
        // A secret that does not open is replaced by the one given.
        Err(integrations::SecretError::Open(_)) => None,
    };
    Ok((stored.as_ref() != Some(&given)).then_some(given))
}

/// Conflicts among the new entries and with what is stored: a webhook
/// endpoint (slug) taken, a second default of a provider.
async fn check_new_slugs_and_defaults(
    import: &Import<'_>,
    plans: &[Plan],
    problems: &mut Vec<Problem>,
) -> Result<(), sqlx::Error> {
    let db = import.db;
    for (i, plan) in plans.iter().enumerate() {
        let creating = matches!(plan.action, Action::Create(_));
        if creating {
            let taken = integrations::slug_taken(db, &plan.slug).await?;
            let in_file = plans[..i].iter().any(|p| matches!(p.action, Action::Create(_)) && p.slug == plan.slug);
            if taken || in_file {
                problems.push(problem(
                    &plan.place,
                    "name",
                    format!(
                        "another integration's name gives the same webhook endpoint ({}): choose another name",
                        plan.slug
                    ),
                ));
            }
        }
        if plan.space_id.is_none() {
            // Another default of this provider, that this file does not move to a space, stays the default.
            if let Some(default) = integrations::default_of(db, plan.provider).await? {
                let moved = plans.iter().any(|p| p.name.eq_ignore_ascii_case(&default.1) && p.space_id.is_some());
                if !default.1.eq_ignore_ascii_case(&plan.name) && !moved {
                    problems.push(problem(
                        &plan.place,
                        "scope",
                        format!(
                            "{} is the default {} integration already: a provider has one default",
                            default.1,
                            plan.provider.label()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs every connection check the plans need, all at once.
async fn run_connection_checks(
    import: &Import<'_>,
    plans: &mut [Plan],
    problems: &mut Vec<Problem>,
) -> Result<(), sqlx::Error> {
    let config = import.config;
    // A few at a time: a file of many entries must not open as many connections at once.
    let at_once = tokio::sync::Semaphore::new(CHECKS_AT_ONCE);
    let at_once = &at_once;
    let checks = plans.iter().map(|plan| async move {
        let _turn = at_once.acquire().await.ok();
        let checked = match &plan.check {
            None => return None,
            Some(Check::DataCenter(connection)) => {
                checks::check_datacenter(connection, config).await.map(|(health, _)| Checked::DataCenter(health, None))
            }
            Some(Check::DataCenterClient { api_url, user_facing_url, ca, client }) => {
                checks::check_datacenter_client(api_url, user_facing_url, ca.as_ref(), client, config)
                    .await
                    .map(|health| Checked::DataCenter(health, None))
            }
            Some(Check::DataCenterConsumer { api_url, user_facing_url, ca, signer }) => {
                let signed = match signer {
                    Signer::Stored(consumer) => Some((oauth1::Consumer::clone(consumer), None)),
                    Signer::New(consumer_key) => new_consumer(consumer_key).await,
                };
                let Some((consumer, made)) = signed else {
                    let message = "Bitgate could not make a key pair for the application link: import again";
                    return Some(Err(vec![problem(&plan.place, "datacenter.auth", message)]));
                };
                checks::check_datacenter_consumer(api_url, user_facing_url, ca.as_ref(), &consumer, false, config)
                    .await
                    .map(|health| Checked::DataCenter(health, made))
            }
            Some(Check::Cloud { workspace, consumer, mode }) => checks::check_cloud(config, workspace, consumer, *mode)
                .await
                .map(|(health, tokens, _)| Checked::Cloud(health, tokens)),
        };
        Some(checked.map_err(|report| reported(plan, &report)))
    });
    let outcomes = join_all(checks).await;
    for (plan, outcome) in plans.iter_mut().zip(outcomes) {
        match outcome {
            None => {}
            Some(Err(failed)) => problems.extend(failed),
            Some(Ok(checked)) => match (&mut plan.action, checked) {
                (Action::Create(new), checked) => new.checked = Some(checked),
                (Action::Update { changes, .. }, Checked::DataCenter(health, link)) => {
                    changes.health = Some((health.state, health.message));
                    if link.is_some() {
                        changes.oauth1 = link;
                    }
                }
                (Action::Update { changes, .. }, Checked::Cloud(health, tokens)) => {
                    changes.health = Some((health.state, health.message));
                    changes.cloud_tokens = tokens;
                }
                (Action::Unchanged, _) => {}
            },
        }
    }
    Ok(())
}

/// The API's reading of a failed checklist: each failure on the field to change.
fn reported(plan: &Plan, report: &Report) -> Vec<Problem> {
    let failed = match plan.provider {
        Provider::DataCenter => checks::datacenter_problems(report),
        Provider::Cloud => checks::cloud_problems(report),
    };
    failed.into_iter().map(|error| field_problem(&plan.place, error)).collect()
}

/// A new OAuth 1.0a consumer: an RSA 2048 key pair, made off the async
/// threads (it takes a good part of a second of a core), and the consumer
/// that signs with it. `None` when no key pair could be made.
async fn new_consumer(consumer_key: &str) -> Option<(oauth1::Consumer, Option<NewLink>)> {
    let keys = tokio::task::spawn_blocking(oauth1::KeyPair::generate).await.ok()?.ok()?;
    let consumer = oauth1::Consumer::new(consumer_key.to_owned(), &keys.private_pem)?;
    Some((consumer, Some((consumer_key.to_owned(), keys))))
}

fn summary(plans: &[Plan]) -> Summary {
    let mut summary = Summary::default();
    for plan in plans {
        let (list, state, new_key_pair) = match &plan.action {
            Action::Create(new) => {
                let (health, new_key_pair) = match &new.checked {
                    Some(Checked::DataCenter(health, link)) => (Some(health.state), link.is_some()),
                    Some(Checked::Cloud(health, _)) => (Some(health.state), false),
                    None => (None, false),
                };
                (&mut summary.created, health, new_key_pair)
            }
            Action::Update { changes, .. } => {
                (&mut summary.updated, changes.health.as_ref().map(|h| h.0), changes.oauth1.is_some())
            }
            Action::Unchanged => (&mut summary.unchanged, None, false),
        };
        list.push(plan.name.clone());
        if new_key_pair {
            summary.new_key_pairs.push(plan.name.clone());
        }
        if state == Some(HealthState::PendingAuthorization) {
            summary.to_connect.push(plan.name.clone());
        }
    }
    summary
}

/// Writes every plan in one transaction, each change audited.
async fn apply(import: &Import<'_>, plans: Vec<Plan>, summary: &Summary) -> Result<(), ImportError> {
    let keyring = import.keyring;
    let (created_by, created_by_label) = (import.by.user_id(), import.by.label());
    let mut tx = import.db.begin().await?;
    for plan in plans {
        let place = plan.place.clone();
        let written = match plan.action {
            Action::Unchanged => continue,
            Action::Create(new) => {
                // Every creation was checked, or the import stopped at its problem before writing.
                let Some(checked) = new.checked else {
                    return Err(ImportError::Problems(vec![problem(&place, "", "was not checked with Bitbucket")]));
                };
                let common = new.common;
                let created = match (new.credentials, checked) {
                    (NewCredentials::DataCenter(dc), Checked::DataCenter(health, link)) => {
                        let Some(credential) = dc.login.credential(link) else {
                            let message = "was not given a key pair with its check";
                            return Err(ImportError::Problems(vec![problem(&place, "", message)]));
                        };
                        let new = NewDataCenter {
                            name: plan.name.clone(),
                            slug: plan.slug.clone(),
                            space_id: plan.space_id,
                            labels: common.labels,
                            description: common.description,
                            options: common.options,
                            api_url: dc.api_url,
                            user_facing_url: dc.user_facing_url,
                            credential,
                            ca_certificate: dc.ca_certificate,
                            health,
                            created_by,
                            created_by_label: created_by_label.clone(),
                        };
                        integrations::create_datacenter(&mut tx, keyring, new).await
                    }
                    (NewCredentials::Cloud { workspace, consumer, mode }, checked) => {
                        let (health, tokens) = match checked {
                            Checked::Cloud(health, tokens) => (health, tokens),
                            Checked::DataCenter(health, _) => (health, None),
                        };
                        let new = NewCloud {
                            name: plan.name.clone(),
                            slug: plan.slug.clone(),
                            space_id: plan.space_id,
                            labels: common.labels,
                            description: common.description,
                            options: common.options,
                            workspace,
                            consumer,
                            mode,
                            tokens,
                            health,
                            created_by,
                            created_by_label: created_by_label.clone(),
                        };
                        integrations::create_cloud(&mut tx, keyring, new).await
                    }
                    (NewCredentials::DataCenter(_), Checked::Cloud(..)) => {
                        unreachable!("a Data Center entry is checked as Data Center")
                    }
                };
                created.map(|i| (i, AuditAction::IntegrationCreated))
            }
            Action::Update { id, changes } => match integrations::update(&mut tx, keyring, id, *changes).await {
                Ok(Some(updated)) => Ok((updated, AuditAction::IntegrationUpdated)),
                // Deleted since the plan was made.
                Ok(None) => {
                    return Err(ImportError::Problems(vec![problem(
                        &place,
                        "",
                        "deleted while the import ran: import again",
                    )]))
                }
                Err(error) => Err(error),
            },
        };
        let (integration, action) = match written {
            Ok(written) => written,
            Err(integrations::WriteError::Database(e)) => return Err(e.into()),
            // Another change won a race since the plan was made.
            Err(conflict) => return Err(ImportError::Problems(vec![problem(&place, "", conflict.to_string())])),
        };
        if let Some(secret) = &plan.webhook_secret {
            webhooks::deliveries::set_secret(&mut tx, keyring, integration.id, secret).await?;
        }
        let event = Event::new(import.by.actor(), action)
            .target(Target { kind: "integration", id: integration.id.to_string(), label: integration.name.clone() })
            .from_address(import.by.address())
            .details(json!({"via": "import", "provider": integration.provider.as_str(),
                            "webhook_secret_set": plan.webhook_secret.is_some()}))
            .in_space(integration.space_id);
        audit::record(&mut *tx, event).await?;
    }
    let event = Event::new(import.by.actor(), AuditAction::IntegrationsImported)
        .from_address(import.by.address())
        .in_space(import.space)
        .details(json!({"created": summary.created, "updated": summary.updated, "unchanged": summary.unchanged}));
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_waits_for_an_admin_to_connect() {
        let names = |list: &[&str]| list.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        let summary = Summary {
            created: names(&["dc-linked", "dc-token"]),
            updated: names(&["cloud"]),
            unchanged: Vec::new(),
            to_connect: names(&["dc-linked", "cloud"]),
            new_key_pairs: Vec::new(),
        };
        assert_eq!(
            summary.to_text(false),
            "created: dc-linked, dc-token\nupdated: cloud\nunchanged: none\nwaiting for Connect: dc-linked, cloud\n\
             Open each in Bitgate and click Connect to approve it in Bitbucket.\n"
        );
        assert!(summary.to_text(true).contains("would wait for Connect: dc-linked, cloud\n"));
        assert!(summary.to_text(true).ends_with("Dry run: nothing was written.\n"));
        // Nothing waits: the lines are as they were.
        let plain = Summary { to_connect: Vec::new(), ..summary };
        assert_eq!(plain.to_text(false), "created: dc-linked, dc-token\nupdated: cloud\nunchanged: none\n");
    }

    #[test]
    fn the_summary_says_which_links_got_a_new_key_pair_to_paste_into_bitbucket_first() {
        let names = |list: &[&str]| list.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        let summary = Summary {
            created: names(&["dc-legacy"]),
            updated: names(&["dc-switched"]),
            unchanged: names(&["dc-kept"]),
            to_connect: names(&["dc-legacy", "dc-switched"]),
            new_key_pairs: names(&["dc-legacy", "dc-switched"]),
        };
        assert_eq!(
            summary.to_text(false),
            "created: dc-legacy\nupdated: dc-switched\nunchanged: dc-kept\nnew key pair: dc-legacy, dc-switched\n\
             Each is an OAuth 1.0a application link: paste the public key shown on its page in Bitgate into \
             Bitbucket's application link (incoming authentication) before clicking Connect.\n\
             waiting for Connect: dc-legacy, dc-switched\n\
             Open each in Bitgate and click Connect to approve it in Bitbucket.\n"
        );
        let dry = summary.to_text(true);
        assert!(dry.contains("would get a new key pair: dc-legacy, dc-switched\n"), "{dry}");
        assert!(dry.ends_with("Dry run: nothing was written.\n"), "{dry}");
    }
}
