//! Integrations: named connections to one Bitbucket, default for their
//! provider or scoped to one space. Secrets (the Data Center access token,
//! the webhook secret) are sealed with the keyring, bound to their row and
//! column, and opened only where they are needed.

pub mod checks;
pub mod input;
pub mod operations;
pub mod repositories;
pub mod rules;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    access::Access,
    bitbucket::{
        cloud,
        datacenter::{oauth1, oauth2},
    },
    config::Config,
    secret::Secret,
    secrets::{Binding, Keyring, OpenError, Sealed},
    spaces::SpaceId,
    text_enum::text_enum,
    tokens::random_token,
    users::FieldError,
};

pub type IntegrationId = Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cloud,
    DataCenter,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cloud => "bitbucket_cloud",
            Provider::DataCenter => "bitbucket_datacenter",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "bitbucket_cloud" => Ok(Provider::Cloud),
            "bitbucket_datacenter" => Ok(Provider::DataCenter),
            _ => Err(FieldError::new("provider", "invalid", "Choose bitbucket_cloud or bitbucket_datacenter.")),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Provider::Cloud => "Bitbucket Cloud",
            Provider::DataCenter => "Bitbucket Data Center",
        }
    }
}

text_enum! {
    /// Which checks a build reports to Bitbucket (`integrations.vcs_checks`).
    pub enum VcsChecks {
        Individual = "individual",
        Aggregated = "aggregated",
        All = "all",
    }
}

text_enum! {
    /// When a pull request gets Bitgate's comment (`integrations.pr_comments`):
    /// never, from its first failed run, or from its first run.
    pub enum PrComments {
        Off = "off",
        Failures = "failures",
        Always = "always",
    }
}

/// How builds are reported to Bitbucket (statuses and pull-request
/// comments), and how Bitgate hears of changes (webhooks and polling).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Options {
    pub use_git_checkout: bool,
    pub commit_status: bool,
    pub status_details: bool,
    pub vcs_checks: VcsChecks,
    pub pr_comments: PrComments,
    /// Bitgate keeps its webhook in each repository a stack uses (CDS's
    /// `disableWebHooksCreation` is its opposite). Never with
    /// `disable_webhooks`: [`input::options`] refuses the two together.
    pub manage_webhooks: bool,
    /// CDS's `disablePolling`: Bitgate never reads branch heads to make up
    /// for missing webhooks.
    pub disable_polling: bool,
    /// CDS's `disableWebHooks`: Bitbucket's webhooks are not used.
    pub disable_webhooks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            use_git_checkout: false,
            commit_status: true,
            status_details: true,
            vcs_checks: VcsChecks::Individual,
            pr_comments: PrComments::Failures,
            manage_webhooks: true,
            disable_polling: false,
            disable_webhooks: false,
        }
    }
}

pub fn parse_vcs_checks(raw: &str) -> Result<VcsChecks, FieldError> {
    VcsChecks::parse(raw)
        .ok_or_else(|| FieldError::new("options.vcs_checks", "invalid", "Choose individual, aggregated or all."))
}

pub fn parse_pr_comments(raw: &str) -> Result<PrComments, FieldError> {
    PrComments::parse(raw)
        .ok_or_else(|| FieldError::new("options.pr_comments", "invalid", "Choose off, failures or always."))
}

/// The slug of a name: lowercase letters and digits, other runs turned into
/// one dash. The webhook endpoint is `/webhooks/bitbucket/{slug}`.
pub fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// A name, 1 to 63 characters, whose slug is not empty; returns (name, slug).
pub fn parse_name(raw: &str) -> Result<(String, String), FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "required", "Enter a name, such as bitbucket-main."));
    }
    if name.chars().count() > 63 {
        return Err(FieldError::new("name", "too_long", "Use at most 63 characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new("name", "invalid", "Use printable characters only."));
    }
    let slug = slug_of(name);
    if slug.is_empty() {
        return Err(FieldError::new(
            "name",
            "invalid",
            "Include at least one letter or digit: the webhook endpoint is made from them.",
        ));
    }
    Ok((name.to_owned(), slug))
}

/// Labels: at most 20, each 1 to 50 characters, without duplicates.
pub fn parse_labels(raw: &[String]) -> Result<Vec<String>, FieldError> {
    let mut labels: Vec<String> = Vec::new();
    for label in raw.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if label.chars().count() > 50 || label.chars().any(char::is_control) {
            return Err(FieldError::new("labels", "invalid", "Each label is at most 50 printable characters."));
        }
        if !labels.iter().any(|l| l == label) {
            labels.push(label.to_owned());
        }
    }
    if labels.len() > 20 {
        return Err(FieldError::new("labels", "too_many", "Use at most 20 labels."));
    }
    Ok(labels)
}

pub fn parse_description(raw: &str) -> Result<String, FieldError> {
    if raw.chars().count() > 10_000 {
        Err(FieldError::new("description", "too_long", "Use at most 10,000 characters."))
    } else {
        Ok(raw.trim().to_owned())
    }
}

text_enum! {
    /// How a Data Center integration authenticates (`datacenter_credentials.auth`).
    pub enum DataCenterAuth {
        /// An HTTP access token, pasted.
        AccessToken = "access_token",
        /// An incoming OAuth 2.0 application link (Data Center 7.20 and
        /// later): an admin approves in Bitbucket; tokens are refreshed.
        OAuth2 = "oauth2",
        /// A legacy OAuth 1.0a application link (RSA-SHA1): Bitgate's
        /// public key pasted into Bitbucket, an admin approves, every call
        /// is signed.
        OAuth1 = "oauth1",
    }
}

/// The Data Center credentials as they may be shown: never a token or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenterView {
    pub api_url: String,
    pub user_facing_url: String,
    pub auth: DataCenterAuth,
    /// The account Bitgate acts as: the access token's owner, or who
    /// approved the OAuth 2.0 link (`None` until someone has).
    pub username: Option<String>,
    /// Access tokens only.
    pub access_token_last4: Option<String>,
    /// OAuth 2.0 only.
    pub oauth2: Option<DataCenterOAuth2View>,
    /// OAuth 1.0a only.
    pub oauth1: Option<DataCenterOAuth1View>,
    pub ca_certificate: Option<String>,
}

/// A Data Center OAuth 1.0a link as it may be shown: the consumer key and
/// the public key to paste into Bitbucket, never the private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenterOAuth1View {
    pub consumer_key: String,
    /// PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key: String,
    /// The Bitgate user who connected it.
    pub authorized_by_label: Option<String>,
    pub authorized_at: Option<OffsetDateTime>,
}

/// A Data Center OAuth 2.0 link as it may be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenterOAuth2View {
    pub client_id: String,
    /// The Bitgate user who connected it.
    pub authorized_by_label: Option<String>,
    pub authorized_at: Option<OffsetDateTime>,
    pub token_expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
}

/// The Cloud credentials as they may be shown: never the secret or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudView {
    pub workspace: String,
    pub client_id: String,
    pub mode: cloud::Mode,
    /// The Bitbucket account the tokens act as, once there are tokens.
    pub authorized_by: Option<String>,
    /// The Bitgate user who connected it (authorization_code).
    pub authorized_by_label: Option<String>,
    pub authorized_at: Option<OffsetDateTime>,
    pub token_expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
}

text_enum! {
    /// Where an integration stands with Bitbucket (`integrations.health_state`).
    pub enum HealthState {
        Connected = "connected",
        /// An OAuth integration waiting for an admin's approval in Bitbucket.
        PendingAuthorization = "pending_authorization",
        Error = "error",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: HealthState,
    pub message: String,
    pub checked_at: Option<OffsetDateTime>,
}

impl Health {
    /// The health of Cloud credentials that passed [`cloud::check_new`]:
    /// connected with client credentials, waiting for an admin's approval otherwise.
    pub fn of_new_cloud(workspace: &str, mode: cloud::Mode, account: Option<&cloud::Account>) -> Self {
        let now = Some(OffsetDateTime::now_utc());
        match (mode, account) {
            (cloud::Mode::ClientCredentials, Some(account)) => Health {
                state: HealthState::Connected,
                message: format!("Connected to the workspace {workspace} as {}.", account.label()),
                checked_at: now,
            },
            _ => Health {
                state: HealthState::PendingAuthorization,
                message: "Waiting for an admin to connect it: click Connect and approve in Bitbucket.".into(),
                checked_at: now,
            },
        }
    }
}

/// An integration as stored, secrets left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub id: IntegrationId,
    pub name: String,
    pub slug: String,
    pub provider: Provider,
    /// None: the default of its provider.
    pub space_id: Option<SpaceId>,
    pub labels: Vec<String>,
    pub description: String,
    pub options: Options,
    pub health: Health,
    pub created_at: OffsetDateTime,
    pub created_by_label: String,
    pub datacenter: Option<DataCenterView>,
    pub cloud: Option<CloudView>,
    pub stacks_count: i64,
}

/// The endpoint Bitbucket delivers an integration's webhooks to.
pub fn webhook_url(config: &Config, slug: &str) -> String {
    config.public_url.join(&format!("/webhooks/bitbucket/{slug}"))
}

/// What every user who sees an integration in a list may know of it
/// (SPEC's permission table: a space's readers see its integrations in
/// lists): no credentials, URLs, usernames or health text, which are for
/// those who may open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: IntegrationId,
    pub name: String,
    pub slug: String,
    pub provider: Provider,
    pub space_id: Option<SpaceId>,
    pub labels: Vec<String>,
    pub health_state: HealthState,
    /// Its stacks are in the same lists: their count discloses nothing more.
    pub stacks_count: i64,
    pub created_at: OffsetDateTime,
}

impl Integration {
    pub fn summary(&self) -> Summary {
        Summary {
            id: self.id,
            name: self.name.clone(),
            slug: self.slug.clone(),
            provider: self.provider,
            space_id: self.space_id,
            labels: self.labels.clone(),
            health_state: self.health.state,
            stacks_count: self.stacks_count,
            created_at: self.created_at,
        }
    }
}

/// An integration as a list shows it to one caller.
#[derive(Debug, Clone)]
pub enum Listed {
    /// The caller may open it: all of it.
    Whole(Box<Integration>),
    /// The caller sees it in lists only.
    Summary(Summary),
}

impl Listed {
    /// Where it stands in the list's order: (created at, id).
    pub fn position(&self) -> (OffsetDateTime, IntegrationId) {
        match self {
            Listed::Whole(integration) => (integration.created_at, integration.id),
            Listed::Summary(summary) => (summary.created_at, summary.id),
        }
    }

    pub fn summary(&self) -> Summary {
        match self {
            Listed::Whole(integration) => integration.summary(),
            Listed::Summary(summary) => summary.clone(),
        }
    }
}

/// How a Data Center integration authenticates, checked.
pub enum DataCenterCredential {
    AccessToken {
        username: String,
        token: Secret<String>,
    },
    /// The application link's client; the tokens come with the callback.
    OAuth2(oauth2::Client),
    /// The consumer key and the key pair Bitgate made; the access token
    /// comes with the callback.
    OAuth1 {
        consumer_key: String,
        keys: oauth1::KeyPair,
    },
}

impl DataCenterCredential {
    pub fn auth(&self) -> DataCenterAuth {
        match self {
            DataCenterCredential::AccessToken { .. } => DataCenterAuth::AccessToken,
            DataCenterCredential::OAuth2(_) => DataCenterAuth::OAuth2,
            DataCenterCredential::OAuth1 { .. } => DataCenterAuth::OAuth1,
        }
    }
}

/// What a new Data Center integration is made of, checked.
pub struct NewDataCenter {
    pub name: String,
    pub slug: String,
    pub space_id: Option<SpaceId>,
    pub labels: Vec<String>,
    pub description: String,
    pub options: Options,
    pub api_url: String,
    pub user_facing_url: String,
    pub credential: DataCenterCredential,
    pub ca_certificate: Option<String>,
    pub health: Health,
    pub created_by: Option<Uuid>,
    pub created_by_label: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("An integration has this name already.")]
    NameTaken,
    #[error("An integration has a name with the same webhook endpoint already.")]
    SlugTaken,
    #[error("A default integration exists already for this provider.")]
    DefaultExists,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl WriteError {
    /// The field and code the error is about.
    pub fn field_error(&self) -> Option<FieldError> {
        match self {
            WriteError::NameTaken => Some(FieldError::new("name", "taken", self.to_string())),
            WriteError::SlugTaken => Some(FieldError::new(
                "name",
                "slug_taken",
                "Another integration's name gives the same webhook endpoint: choose another name.",
            )),
            WriteError::DefaultExists => Some(FieldError::new(
                "scope",
                "default_exists",
                "A default integration exists already for this provider: scope this one to a space, or edit the default.",
            )),
            WriteError::Database(_) => None,
        }
    }
}

fn constraint_error(error: sqlx::Error) -> WriteError {
    match error.as_database_error().and_then(|e| e.constraint()) {
        Some("integrations_name_key") => WriteError::NameTaken,
        Some("integrations_slug_key") => WriteError::SlugTaken,
        Some("integrations_one_default") => WriteError::DefaultExists,
        _ => WriteError::Database(error),
    }
}

const TABLE: &str = "integrations";

/// What would stop a new integration from being stored, checked before its
/// (slow) connection checks; the insert still catches a race.
pub async fn conflict(
    db: impl PgExecutor<'_>,
    name: &str,
    slug: &str,
    provider: Provider,
    space_id: Option<SpaceId>,
) -> Result<Option<WriteError>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM integrations WHERE lower(name) = lower($1)) AS "name!",
                  EXISTS (SELECT 1 FROM integrations WHERE slug = $2) AS "slug!",
                  EXISTS (SELECT 1 FROM integrations WHERE provider = $3 AND space_id IS NULL) AS "default!""#,
        name,
        slug,
        provider.as_str()
    )
    .fetch_one(db)
    .await?;
    Ok(if row.name {
        Some(WriteError::NameTaken)
    } else if row.slug {
        Some(WriteError::SlugTaken)
    } else if space_id.is_none() && row.default {
        Some(WriteError::DefaultExists)
    } else {
        None
    })
}

pub(crate) fn binding(table: &'static str, column: &'static str, row: Uuid) -> Binding<'static> {
    Binding { table, column, row }
}

/// Creates a Data Center integration with a new webhook secret, in the
/// caller's transaction.
pub async fn create_datacenter(
    tx: &mut PgConnection,
    keyring: &Keyring,
    new: NewDataCenter,
) -> Result<Integration, WriteError> {
    let id = Uuid::new_v4();
    let secret = keyring.seal(random_token().as_bytes(), binding(TABLE, "webhook_secret", id));
    sqlx::query!(
        r#"INSERT INTO integrations (id, name, slug, provider, space_id, labels, description, use_git_checkout,
                                    commit_status, status_details, vcs_checks, pr_comments, manage_webhooks,
                                    disable_polling, disable_webhooks, webhook_secret_key, webhook_secret,
                                    health_state, health_message, health_checked_at, created_by, created_by_label)
           VALUES ($1, $2, $3, 'bitbucket_datacenter', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                   $20, $21)"#,
        id,
        new.name,
        new.slug,
        new.space_id,
        &new.labels,
        new.description,
        new.options.use_git_checkout,
        new.options.commit_status,
        new.options.status_details,
        new.options.vcs_checks.as_str(),
        new.options.pr_comments.as_str(),
        new.options.manage_webhooks,
        new.options.disable_polling,
        new.options.disable_webhooks,
        secret.key_id,
        secret.ciphertext,
        new.health.state.as_str(),
        new.health.message,
        new.health.checked_at,
        new.created_by,
        new.created_by_label,
    )
    .execute(&mut *tx)
    .await
    .map_err(constraint_error)?;
    let auth = new.credential.auth();
    let (mut username, mut token, mut token_last4, mut client_id, mut client_secret) = (None, None, None, None, None);
    let (mut consumer_key, mut private_key, mut public_key) = (None, None, None);
    match &new.credential {
        DataCenterCredential::AccessToken { username: owner, token: given } => {
            username = Some(owner.clone());
            token = Some(keyring.seal(given.as_bytes(), binding(DATACENTER_TABLE, "access_token", id)));
            token_last4 = Some(last4(given.expose()));
        }
        DataCenterCredential::OAuth2(client) => {
            client_id = Some(client.id.trim().to_owned());
            client_secret = Some(
                keyring.seal(client.secret.expose().trim().as_bytes(), binding(DATACENTER_TABLE, "client_secret", id)),
            );
        }
        DataCenterCredential::OAuth1 { consumer_key: key, keys } => {
            consumer_key = Some(key.clone());
            let sealed = keyring.seal(keys.private_pem.as_bytes(), binding(DATACENTER_TABLE, "private_key", id));
            private_key = Some(sealed);
            public_key = Some(keys.public_pem.clone());
        }
    }
    let (token_key, token) = token.map(|t| (t.key_id, t.ciphertext)).unzip();
    let (secret_key, secret) = client_secret.map(|s| (s.key_id, s.ciphertext)).unzip();
    let (private_key_key, private_key) = private_key.map(|k| (k.key_id, k.ciphertext)).unzip();
    sqlx::query!(
        r#"INSERT INTO datacenter_credentials (integration_id, api_url, user_facing_url, auth, username,
                                              access_token_key, access_token, access_token_last4, client_id,
                                              client_secret_key, client_secret, ca_certificate, consumer_key,
                                              private_key_key, private_key, public_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"#,
        id,
        new.api_url,
        new.user_facing_url,
        auth.as_str(),
        username,
        token_key,
        token,
        token_last4,
        client_id,
        secret_key,
        secret,
        new.ca_certificate,
        consumer_key,
        private_key_key,
        private_key,
        public_key,
    )
    .execute(&mut *tx)
    .await?;
    find(&mut *tx, id).await?.ok_or(WriteError::Database(sqlx::Error::RowNotFound))
}

/// What a new Cloud integration is made of, checked. `tokens` is set for
/// client credentials (obtained before saving); an authorization-code
/// integration gets its tokens at the callback.
pub struct NewCloud {
    pub name: String,
    pub slug: String,
    pub space_id: Option<SpaceId>,
    pub labels: Vec<String>,
    pub description: String,
    pub options: Options,
    pub workspace: String,
    pub consumer: cloud::Consumer,
    pub mode: cloud::Mode,
    pub tokens: Option<(cloud::Tokens, cloud::Account)>,
    pub health: Health,
    pub created_by: Option<Uuid>,
    pub created_by_label: String,
}

/// Creates a Cloud integration with a new webhook secret, in the caller's
/// transaction.
pub async fn create_cloud(tx: &mut PgConnection, keyring: &Keyring, new: NewCloud) -> Result<Integration, WriteError> {
    let id = Uuid::new_v4();
    let secret = keyring.seal(random_token().as_bytes(), binding(TABLE, "webhook_secret", id));
    sqlx::query!(
        r#"INSERT INTO integrations (id, name, slug, provider, space_id, labels, description, use_git_checkout,
                                    commit_status, status_details, vcs_checks, pr_comments, manage_webhooks,
                                    disable_polling, disable_webhooks, webhook_secret_key, webhook_secret,
                                    health_state, health_message, health_checked_at, created_by, created_by_label)
           VALUES ($1, $2, $3, 'bitbucket_cloud', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                   $20, $21)"#,
        id,
        new.name,
        new.slug,
        new.space_id,
        &new.labels,
        new.description,
        new.options.use_git_checkout,
        new.options.commit_status,
        new.options.status_details,
        new.options.vcs_checks.as_str(),
        new.options.pr_comments.as_str(),
        new.options.manage_webhooks,
        new.options.disable_polling,
        new.options.disable_webhooks,
        secret.key_id,
        secret.ciphertext,
        new.health.state.as_str(),
        new.health.message,
        new.health.checked_at,
        new.created_by,
        new.created_by_label,
    )
    .execute(&mut *tx)
    .await
    .map_err(constraint_error)?;
    let client_secret =
        keyring.seal(new.consumer.secret.expose().trim().as_bytes(), binding(CLOUD_TABLE, "client_secret", id));
    sqlx::query!(
        r#"INSERT INTO cloud_credentials (integration_id, workspace, client_id, client_secret_key, client_secret, mode)
           VALUES ($1, $2, $3, $4, $5, $6)"#,
        id,
        new.workspace,
        new.consumer.key.trim(),
        client_secret.key_id,
        client_secret.ciphertext,
        new.mode.as_str(),
    )
    .execute(&mut *tx)
    .await?;
    if let Some((tokens, account)) = &new.tokens {
        crate::oauth_tokens::store(&mut *tx, keyring, Provider::Cloud, id, tokens, &account.label(), None).await?;
    }
    find(&mut *tx, id).await?.ok_or(WriteError::Database(sqlx::Error::RowNotFound))
}

/// Where Cloud credentials are kept (the secrets are bound to it).
pub const CLOUD_TABLE: &str = "cloud_credentials";
/// Where Data Center credentials are kept (the secrets are bound to it).
pub const DATACENTER_TABLE: &str = "datacenter_credentials";

/// The last four characters of a token, to recognise it.
pub fn last4(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

struct Row {
    id: Uuid,
    name: String,
    slug: String,
    provider: String,
    space_id: Option<Uuid>,
    labels: Vec<String>,
    description: String,
    use_git_checkout: bool,
    commit_status: bool,
    status_details: bool,
    vcs_checks: VcsChecks,
    pr_comments: PrComments,
    manage_webhooks: bool,
    disable_polling: bool,
    disable_webhooks: bool,
    health_state: HealthState,
    health_message: String,
    health_checked_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    created_by_label: String,
    api_url: Option<String>,
    user_facing_url: Option<String>,
    auth: Option<DataCenterAuth>,
    username: Option<String>,
    access_token_last4: Option<String>,
    dc_client_id: Option<String>,
    dc_authorized_by_label: Option<String>,
    dc_authorized_at: Option<OffsetDateTime>,
    dc_token_expires_at: Option<OffsetDateTime>,
    dc_scopes: Option<Vec<String>>,
    consumer_key: Option<String>,
    public_key: Option<String>,
    ca_certificate: Option<String>,
    workspace: Option<String>,
    client_id: Option<String>,
    mode: Option<cloud::Mode>,
    authorized_by: Option<String>,
    authorized_by_label: Option<String>,
    authorized_at: Option<OffsetDateTime>,
    token_expires_at: Option<OffsetDateTime>,
    scopes: Option<Vec<String>>,
    stacks_count: i64,
}

impl From<Row> for Integration {
    fn from(row: Row) -> Self {
        let datacenter = match (row.api_url, row.user_facing_url, row.auth) {
            (Some(api_url), Some(user_facing_url), Some(auth)) => Some(DataCenterView {
                api_url,
                user_facing_url,
                auth,
                username: row.username,
                access_token_last4: row.access_token_last4,
                oauth1: row.consumer_key.zip(row.public_key).map(|(consumer_key, public_key)| DataCenterOAuth1View {
                    consumer_key,
                    public_key,
                    authorized_by_label: row.dc_authorized_by_label.clone(),
                    authorized_at: row.dc_authorized_at,
                }),
                oauth2: row.dc_client_id.map(|client_id| DataCenterOAuth2View {
                    client_id,
                    authorized_by_label: row.dc_authorized_by_label,
                    authorized_at: row.dc_authorized_at,
                    token_expires_at: row.dc_token_expires_at,
                    scopes: row.dc_scopes.unwrap_or_default(),
                }),
                ca_certificate: row.ca_certificate,
            }),
            _ => None,
        };
        let cloud = match (row.workspace, row.client_id, row.mode) {
            (Some(workspace), Some(client_id), Some(mode)) => Some(CloudView {
                workspace,
                client_id,
                mode,
                authorized_by: row.authorized_by,
                authorized_by_label: row.authorized_by_label,
                authorized_at: row.authorized_at,
                token_expires_at: row.token_expires_at,
                scopes: row.scopes.unwrap_or_default(),
            }),
            _ => None,
        };
        Integration {
            id: row.id,
            name: row.name,
            slug: row.slug,
            provider: if row.provider == "bitbucket_cloud" { Provider::Cloud } else { Provider::DataCenter },
            space_id: row.space_id,
            labels: row.labels,
            description: row.description,
            options: Options {
                use_git_checkout: row.use_git_checkout,
                commit_status: row.commit_status,
                status_details: row.status_details,
                vcs_checks: row.vcs_checks,
                pr_comments: row.pr_comments,
                manage_webhooks: row.manage_webhooks,
                disable_polling: row.disable_polling,
                disable_webhooks: row.disable_webhooks,
            },
            health: Health { state: row.health_state, message: row.health_message, checked_at: row.health_checked_at },
            created_at: row.created_at,
            created_by_label: row.created_by_label,
            datacenter,
            cloud,
            stacks_count: row.stacks_count,
        }
    }
}

pub async fn find(db: impl PgExecutor<'_>, id: IntegrationId) -> Result<Option<Integration>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT i.id, i.name, i.slug, i.provider, i.space_id, i.labels, i.description, i.use_git_checkout,
                  i.commit_status, i.status_details, i.vcs_checks AS "vcs_checks: VcsChecks",
                  i.pr_comments AS "pr_comments: PrComments", i.manage_webhooks, i.disable_polling,
                  i.disable_webhooks, i.health_state AS "health_state: HealthState", i.health_message,
                  i.health_checked_at, i.created_at, i.created_by_label,
                  d.api_url AS "api_url?", d.user_facing_url AS "user_facing_url?",
                  d.auth AS "auth?: DataCenterAuth", d.username, d.access_token_last4, d.client_id AS dc_client_id,
                  d.authorized_by_label AS dc_authorized_by_label, d.authorized_at AS dc_authorized_at,
                  d.token_expires_at AS dc_token_expires_at, d.scopes AS "dc_scopes?", d.consumer_key, d.public_key,
                  d.ca_certificate,
                  c.workspace AS "workspace?", c.client_id AS "client_id?", c.mode AS "mode?: cloud::Mode",
                  c.authorized_by, c.authorized_by_label, c.authorized_at, c.token_expires_at,
                  c.scopes AS "scopes?",
                  (SELECT count(*) FROM stacks s WHERE s.integration_id = i.id) AS "stacks_count!"
           FROM integrations i LEFT JOIN datacenter_credentials d ON d.integration_id = i.id
                LEFT JOIN cloud_credentials c ON c.integration_id = i.id
           WHERE i.id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Integration::from))
}

/// The integration of this name, without regard to case (names are unique so).
pub async fn find_by_name(db: &sqlx::PgPool, name: &str) -> Result<Option<Integration>, sqlx::Error> {
    let id = sqlx::query_scalar!("SELECT id FROM integrations WHERE lower(name) = lower($1)", name.trim())
        .fetch_optional(db)
        .await?;
    match id {
        Some(id) => find(db, id).await,
        None => Ok(None),
    }
}

/// Whether an integration has this webhook endpoint.
pub async fn slug_taken(db: impl PgExecutor<'_>, slug: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM integrations WHERE slug = $1) AS "taken!""#, slug)
        .fetch_one(db)
        .await
}

/// The default integration of a provider: its id and name.
pub async fn default_of(
    db: impl PgExecutor<'_>,
    provider: Provider,
) -> Result<Option<(IntegrationId, String)>, sqlx::Error> {
    let row =
        sqlx::query!("SELECT id, name FROM integrations WHERE provider = $1 AND space_id IS NULL", provider.as_str())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|r| (r.id, r.name)))
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub provider: Option<Provider>,
    /// Only integrations of this space (and, when `with_defaults`, the defaults).
    pub space_id: Option<SpaceId>,
    pub label: Option<String>,
    /// Only integrations whose name holds this text, in any case.
    pub name: Option<String>,
}

/// The integrations `access` can see, each as much as it may: whole when
/// it may open it, else its [`Summary`]. Every list a person reads (page,
/// API) comes through here, so that none shows a reader more.
pub async fn list_for(
    db: impl PgExecutor<'_>,
    access: &Access,
    filter: &ListFilter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Listed>, sqlx::Error> {
    let found = list(db, &access.visible_spaces(), filter, after, limit).await?;
    Ok(found
        .into_iter()
        .map(|integration| match access.can_administer_integration(integration.space_id) {
            Ok(()) => Listed::Whole(Box::new(integration)),
            Err(_) => Listed::Summary(integration.summary()),
        })
        .collect())
}

/// Integrations in the `visible` spaces plus the defaults, newest first,
/// whole: for callers that show them only to those who may open them (the
/// export) or pass them through [`list_for`].
pub async fn list(
    db: impl PgExecutor<'_>,
    visible: &[SpaceId],
    filter: &ListFilter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Integration>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    let rows = sqlx::query_as!(
        Row,
        r#"WITH page AS (
               -- The page first: the joins and the counts are for its rows only.
               SELECT i.id, i.name, i.slug, i.provider, i.space_id, i.labels, i.description, i.use_git_checkout,
                      i.commit_status, i.status_details, i.vcs_checks, i.pr_comments, i.manage_webhooks,
                      i.disable_polling, i.disable_webhooks, i.health_state, i.health_message, i.health_checked_at,
                      i.created_at, i.created_by_label
               FROM integrations i
               WHERE (i.space_id IS NULL OR i.space_id = ANY($1))
                 AND ($2::text IS NULL OR i.provider = $2)
                 AND ($3::uuid IS NULL OR i.space_id = $3)
                 AND ($4::text IS NULL OR $4 = ANY(i.labels))
                 AND ($5::timestamptz IS NULL OR (i.created_at, i.id) < ($5, $6))
                 AND ($8::text IS NULL OR strpos(lower(i.name), lower($8)) > 0)
               ORDER BY i.created_at DESC, i.id DESC LIMIT $7
           )
           SELECT i.id, i.name, i.slug, i.provider, i.space_id, i.labels, i.description, i.use_git_checkout,
                  i.commit_status, i.status_details, i.vcs_checks AS "vcs_checks: VcsChecks",
                  i.pr_comments AS "pr_comments: PrComments", i.manage_webhooks, i.disable_polling,
                  i.disable_webhooks, i.health_state AS "health_state: HealthState", i.health_message,
                  i.health_checked_at, i.created_at, i.created_by_label,
                  d.api_url AS "api_url?", d.user_facing_url AS "user_facing_url?",
                  d.auth AS "auth?: DataCenterAuth", d.username, d.access_token_last4, d.client_id AS dc_client_id,
                  d.authorized_by_label AS dc_authorized_by_label, d.authorized_at AS dc_authorized_at,
                  d.token_expires_at AS dc_token_expires_at, d.scopes AS "dc_scopes?", d.consumer_key, d.public_key,
                  d.ca_certificate,
                  c.workspace AS "workspace?", c.client_id AS "client_id?", c.mode AS "mode?: cloud::Mode",
                  c.authorized_by, c.authorized_by_label, c.authorized_at, c.token_expires_at,
                  c.scopes AS "scopes?",
                  coalesce(k.stacks, 0) AS "stacks_count!"
           FROM page i LEFT JOIN datacenter_credentials d ON d.integration_id = i.id
                LEFT JOIN cloud_credentials c ON c.integration_id = i.id
                -- One count for the page (a subquery per row was planned as
                -- a scan of every stack when most belong to one integration).
                LEFT JOIN (SELECT s.integration_id, count(*) AS stacks FROM stacks s
                           WHERE s.integration_id = ANY (ARRAY(SELECT id FROM page)) GROUP BY s.integration_id) k
                       ON k.integration_id = i.id
           ORDER BY i.created_at DESC, i.id DESC"#,
        visible,
        filter.provider.map(Provider::as_str),
        filter.space_id,
        filter.label.as_deref(),
        after_at,
        after_id,
        limit,
        filter.name.as_deref()
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Integration::from).collect())
}

/// The labels of the integrations in the `visible` spaces and the defaults,
/// each once, in order: the choices of a label filter, however long the list.
pub async fn labels_in_use(db: impl PgExecutor<'_>, visible: &[SpaceId]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT DISTINCT label AS "label!" FROM integrations i, unnest(i.labels) AS label
           WHERE i.space_id IS NULL OR i.space_id = ANY($1) ORDER BY 1"#,
        visible
    )
    .fetch_all(db)
    .await
}

/// Opens the webhook secret (for its reveal and for verifying deliveries).
pub async fn webhook_secret(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: IntegrationId,
) -> Result<Option<Secret<String>>, SecretError> {
    let row = sqlx::query!("SELECT webhook_secret_key, webhook_secret FROM integrations WHERE id = $1", id)
        .fetch_optional(db)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed = Sealed { key_id: row.webhook_secret_key, ciphertext: row.webhook_secret };
    Ok(Some(keyring.open_text(&sealed, binding(TABLE, "webhook_secret", id))?))
}

/// Opens a Data Center HTTP access token, to call Bitbucket with it
/// (`None` for an OAuth 2.0 integration: its token comes from `oauth_tokens`).
pub async fn datacenter_token(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: IntegrationId,
) -> Result<Option<Secret<String>>, SecretError> {
    let row = sqlx::query!(
        r#"SELECT access_token_key AS "access_token_key!", access_token AS "access_token!" FROM datacenter_credentials
           WHERE integration_id = $1 AND auth = 'access_token'"#,
        id
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed = Sealed { key_id: row.access_token_key, ciphertext: row.access_token };
    Ok(Some(keyring.open_text(&sealed, binding(DATACENTER_TABLE, "access_token", id))?))
}

/// A Data Center OAuth 1.0a link's consumer (its private key opened), and
/// its access token once connected.
pub async fn datacenter_oauth1(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: IntegrationId,
) -> Result<Option<(oauth1::Consumer, Option<Secret<String>>)>, SecretError> {
    let row = sqlx::query!(
        r#"SELECT consumer_key AS "consumer_key!", private_key_key AS "private_key_key!", private_key AS "private_key!",
                  access_token_key, access_token
           FROM datacenter_credentials WHERE integration_id = $1 AND auth = 'oauth1'"#,
        id
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed = Sealed { key_id: row.private_key_key, ciphertext: row.private_key };
    let private_pem = keyring.open_text(&sealed, binding(DATACENTER_TABLE, "private_key", id))?;
    // A key Bitgate made and sealed itself: one that does not parse was tampered with.
    let consumer =
        oauth1::Consumer::new(row.consumer_key, &private_pem).ok_or(SecretError::Open(OpenError::Corrupt))?;
    let token = match (row.access_token_key, row.access_token) {
        (Some(key_id), Some(ciphertext)) => {
            let sealed = Sealed { key_id, ciphertext };
            Some(keyring.open_text(&sealed, binding(DATACENTER_TABLE, "access_token", id))?)
        }
        _ => None,
    };
    Ok(Some((consumer, token)))
}

/// Stores an OAuth 1.0a link's access token, who it acts as, and who
/// connected it (in the caller's transaction).
pub async fn store_oauth1_token(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: IntegrationId,
    token: &Secret<String>,
    account: &str,
    connected_by: Option<&str>,
) -> Result<(), sqlx::Error> {
    let sealed = keyring.seal(token.as_bytes(), binding(DATACENTER_TABLE, "access_token", id));
    sqlx::query!(
        r#"UPDATE datacenter_credentials SET access_token_key = $2, access_token = $3, username = $4,
                                            authorized_by_label = $5, authorized_at = now()
           WHERE integration_id = $1 AND auth = 'oauth1'"#,
        id,
        sealed.key_id,
        sealed.ciphertext,
        account,
        connected_by
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Opens a Data Center OAuth 2.0 link's client (its id and secret).
pub async fn datacenter_oauth2_client(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: IntegrationId,
) -> Result<Option<oauth2::Client>, SecretError> {
    let row = sqlx::query!(
        r#"SELECT client_id AS "client_id!", client_secret_key AS "client_secret_key!", client_secret AS "client_secret!"
           FROM datacenter_credentials WHERE integration_id = $1 AND auth = 'oauth2'"#,
        id
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed = Sealed { key_id: row.client_secret_key, ciphertext: row.client_secret };
    let secret = keyring.open_text(&sealed, binding(DATACENTER_TABLE, "client_secret", id))?;
    Ok(Some(oauth2::Client { id: row.client_id, secret }))
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Changes to an integration; `None` leaves a field as it is.
#[derive(Default)]
pub struct Changes {
    /// `Some(None)`: the default of its provider; `Some(Some(space))`: scoped to it.
    pub space_id: Option<Option<SpaceId>>,
    pub labels: Option<Vec<String>>,
    pub description: Option<String>,
    pub options: Option<Options>,
    pub api_url: Option<String>,
    pub user_facing_url: Option<String>,
    pub username: Option<String>,
    /// A new token, already checked with Bitbucket.
    pub access_token: Option<Secret<String>>,
    /// Data Center: another way to authenticate. To an access token, with
    /// `username` and `access_token`; to OAuth 2.0, with `oauth2_client`.
    pub datacenter_auth: Option<DataCenterAuth>,
    /// Data Center: a new OAuth 2.0 client, already checked. It forgets
    /// the stored tokens (they belong to the old one): an admin connects again.
    pub oauth2_client: Option<oauth2::Client>,
    /// Data Center, switching to OAuth 1.0a: the consumer key and the new
    /// key pair.
    pub oauth1: Option<(String, oauth1::KeyPair)>,
    /// Data Center, an OAuth 1.0a link moved to another server or trust
    /// root: its access token (and who it acts as) was the old one's.
    pub forget_oauth1_token: bool,
    /// `Some(None)` removes the CA certificate.
    pub ca_certificate: Option<Option<String>>,
    /// Cloud: a new workspace, consumer or mode, already checked. Any of
    /// them forgets the stored tokens (they belong to the old ones).
    pub workspace: Option<String>,
    pub consumer: Option<cloud::Consumer>,
    pub mode: Option<cloud::Mode>,
    /// Cloud: tokens obtained for the new credentials (client credentials).
    pub cloud_tokens: Option<(cloud::Tokens, cloud::Account)>,
    /// The health after the checks that the credential changes needed.
    pub health: Option<(HealthState, String)>,
}

impl Changes {
    /// Whether these changes change nothing (health aside, which follows them).
    pub fn is_empty(&self) -> bool {
        self.space_id.is_none()
            && self.labels.is_none()
            && self.description.is_none()
            && self.options.is_none()
            && self.api_url.is_none()
            && self.user_facing_url.is_none()
            && self.username.is_none()
            && self.access_token.is_none()
            && self.datacenter_auth.is_none()
            && self.oauth2_client.is_none()
            && self.oauth1.is_none()
            && !self.forget_oauth1_token
            && self.ca_certificate.is_none()
            && self.workspace.is_none()
            && self.consumer.is_none()
            && self.mode.is_none()
            && self.cloud_tokens.is_none()
    }
}

/// Applies changes in the caller's transaction (the name never changes).
pub async fn update(
    tx: &mut PgConnection,
    keyring: &Keyring,
    id: IntegrationId,
    changes: Changes,
) -> Result<Option<Integration>, WriteError> {
    // Options or a credential changed, by whatever door (page, API, import):
    // Bitgate's hooks are checked again with them.
    let recheck_hooks = changes.options.is_some()
        || changes.access_token.is_some()
        || changes.cloud_tokens.is_some()
        || changes.datacenter_auth.is_some();
    // A new client belongs to another link: its tokens are not the old one's.
    let forget_oauth2 = changes.oauth2_client.is_some() || changes.datacenter_auth.is_some();
    let options = changes.options.as_ref();
    let updated = sqlx::query!(
        r#"UPDATE integrations SET
             labels = coalesce($2, labels),
             description = coalesce($3, description),
             use_git_checkout = coalesce($4, use_git_checkout),
             commit_status = coalesce($5, commit_status),
             status_details = coalesce($6, status_details),
             vcs_checks = coalesce($7, vcs_checks),
             pr_comments = coalesce($8, pr_comments),
             manage_webhooks = coalesce($9, manage_webhooks),
             disable_polling = coalesce($10, disable_polling),
             disable_webhooks = coalesce($11, disable_webhooks),
             health_state = coalesce($12, health_state),
             health_message = coalesce($13, health_message),
             health_checked_at = CASE WHEN $12::text IS NULL THEN health_checked_at ELSE now() END,
             space_id = CASE WHEN $14 THEN $15 ELSE space_id END,
             updated_at = now()
           WHERE id = $1"#,
        id,
        changes.labels.as_deref(),
        changes.description,
        options.map(|o| o.use_git_checkout),
        options.map(|o| o.commit_status),
        options.map(|o| o.status_details),
        options.map(|o| o.vcs_checks.as_str()),
        options.map(|o| o.pr_comments.as_str()),
        options.map(|o| o.manage_webhooks),
        options.map(|o| o.disable_polling),
        options.map(|o| o.disable_webhooks),
        changes.health.as_ref().map(|h| h.0.as_str()),
        changes.health.as_ref().map(|h| h.1.clone()),
        changes.space_id.is_some(),
        changes.space_id.flatten(),
    )
    .execute(&mut *tx)
    .await
    .map_err(constraint_error)?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    if forget_oauth2 {
        crate::oauth_tokens::forget(&mut *tx, Provider::DataCenter, id).await?;
    }
    let token = changes
        .access_token
        .as_ref()
        .map(|t| (keyring.seal(t.as_bytes(), binding(DATACENTER_TABLE, "access_token", id)), last4(t.expose())));
    let client_secret = changes
        .oauth2_client
        .as_ref()
        .map(|c| keyring.seal(c.secret.expose().trim().as_bytes(), binding(DATACENTER_TABLE, "client_secret", id)));
    let private_key = changes
        .oauth1
        .as_ref()
        .map(|(_, keys)| keyring.seal(keys.private_pem.as_bytes(), binding(DATACENTER_TABLE, "private_key", id)));
    // Switching how it authenticates clears what the other ways kept.
    sqlx::query!(
        r#"UPDATE datacenter_credentials SET
             auth = coalesce($10, auth),
             api_url = coalesce($2, api_url),
             user_facing_url = coalesce($3, user_facing_url),
             username = CASE WHEN $10 IN ('oauth2', 'oauth1') OR $18 THEN NULL ELSE coalesce($4, username) END,
             access_token_key = CASE WHEN $10 IN ('oauth2', 'oauth1') OR $18 THEN NULL
                                     ELSE coalesce($5, access_token_key) END,
             access_token = CASE WHEN $10 IN ('oauth2', 'oauth1') OR $18 THEN NULL ELSE coalesce($6, access_token) END,
             authorized_by_label = CASE WHEN $18 THEN NULL ELSE authorized_by_label END,
             authorized_at = CASE WHEN $18 THEN NULL ELSE authorized_at END,
             access_token_last4 = CASE WHEN $10 IN ('oauth2', 'oauth1') THEN NULL
                                       ELSE coalesce($7, access_token_last4) END,
             client_id = CASE WHEN $10 <> 'oauth2' THEN NULL ELSE coalesce($11, client_id) END,
             client_secret_key = CASE WHEN $10 <> 'oauth2' THEN NULL ELSE coalesce($12, client_secret_key) END,
             client_secret = CASE WHEN $10 <> 'oauth2' THEN NULL ELSE coalesce($13, client_secret) END,
             consumer_key = CASE WHEN $10 = 'oauth1' THEN $14 WHEN $10 IS NOT NULL THEN NULL ELSE consumer_key END,
             private_key_key = CASE WHEN $10 = 'oauth1' THEN $15 WHEN $10 IS NOT NULL THEN NULL ELSE private_key_key END,
             private_key = CASE WHEN $10 = 'oauth1' THEN $16 WHEN $10 IS NOT NULL THEN NULL ELSE private_key END,
             public_key = CASE WHEN $10 = 'oauth1' THEN $17 WHEN $10 IS NOT NULL THEN NULL ELSE public_key END,
             ca_certificate = CASE WHEN $8 THEN $9 ELSE ca_certificate END
           WHERE integration_id = $1"#,
        id,
        changes.api_url,
        changes.user_facing_url,
        changes.username,
        token.as_ref().map(|(sealed, _)| sealed.key_id.clone()),
        token.as_ref().map(|(sealed, _)| sealed.ciphertext.clone()),
        token.as_ref().map(|(_, last4)| last4.clone()),
        changes.ca_certificate.is_some(),
        changes.ca_certificate.flatten(),
        changes.datacenter_auth.map(DataCenterAuth::as_str),
        changes.oauth2_client.as_ref().map(|c| c.id.trim().to_owned()),
        client_secret.as_ref().map(|s| s.key_id.clone()),
        client_secret.as_ref().map(|s| s.ciphertext.clone()),
        changes.oauth1.as_ref().map(|(consumer_key, _)| consumer_key.clone()),
        private_key.as_ref().map(|k| k.key_id.clone()),
        private_key.as_ref().map(|k| k.ciphertext.clone()),
        changes.oauth1.as_ref().map(|(_, keys)| keys.public_pem.clone()),
        changes.forget_oauth1_token,
    )
    .execute(&mut *tx)
    .await?;
    if changes.workspace.is_some() || changes.consumer.is_some() || changes.mode.is_some() {
        let secret = changes
            .consumer
            .as_ref()
            .map(|c| keyring.seal(c.secret.expose().trim().as_bytes(), binding(CLOUD_TABLE, "client_secret", id)));
        sqlx::query!(
            r#"UPDATE cloud_credentials SET
                 workspace = coalesce($2, workspace),
                 client_id = coalesce($3, client_id),
                 client_secret_key = coalesce($4, client_secret_key),
                 client_secret = coalesce($5, client_secret),
                 mode = coalesce($6, mode)
               WHERE integration_id = $1"#,
            id,
            changes.workspace,
            changes.consumer.as_ref().map(|c| c.key.trim().to_owned()),
            secret.as_ref().map(|s| s.key_id.clone()),
            secret.as_ref().map(|s| s.ciphertext.clone()),
            changes.mode.map(cloud::Mode::as_str),
        )
        .execute(&mut *tx)
        .await?;
        crate::oauth_tokens::forget(&mut *tx, Provider::Cloud, id).await?;
    }
    if let Some((tokens, account)) = &changes.cloud_tokens {
        crate::oauth_tokens::store(&mut *tx, keyring, Provider::Cloud, id, tokens, &account.label(), None).await?;
    }
    if recheck_hooks {
        crate::managed_hooks::enqueue_integration(&mut *tx, id).await?;
    }
    Ok(find(&mut *tx, id).await?)
}

/// Records the outcome of a connection test.
pub async fn set_health(
    db: impl PgExecutor<'_>,
    id: IntegrationId,
    state: HealthState,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE integrations SET health_state = $2, health_message = $3, health_checked_at = now() WHERE id = $1",
        id,
        state.as_str(),
        message
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes an integration; its stacks are left detached. Returns how many.
pub async fn delete(tx: &mut PgConnection, id: IntegrationId) -> Result<Option<i64>, sqlx::Error> {
    let detached: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM stacks WHERE integration_id = $1"#, id)
        .fetch_one(&mut *tx)
        .await?;
    let deleted = sqlx::query!("DELETE FROM integrations WHERE id = $1", id).execute(&mut *tx).await?;
    crate::webhooks::endpoints::changed(&mut *tx, id).await?;
    Ok((deleted.rows_affected() == 1).then_some(detached))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_keep_letters_and_digits() {
        assert_eq!(slug_of("Bitbucket Main"), "bitbucket-main");
        assert_eq!(slug_of("  DC -- prod_2 "), "dc-prod-2");
        assert_eq!(slug_of("Ünïcode"), "n-code");
        assert_eq!(parse_name("!!!").unwrap_err().code, "invalid");
        assert_eq!(parse_name("").unwrap_err().code, "required");
        assert_eq!(parse_name(&"x".repeat(64)).unwrap_err().code, "too_long");
        assert_eq!(parse_name(" DC main ").unwrap(), ("DC main".to_owned(), "dc-main".to_owned()));
    }

    #[test]
    fn labels_are_trimmed_deduplicated_and_bounded() {
        let labels = parse_labels(&[" prod ".into(), "prod".into(), "".into(), "eu".into()]).unwrap();
        assert_eq!(labels, ["prod", "eu"]);
        assert!(parse_labels(&["x".repeat(51)]).is_err());
        assert!(parse_labels(&(0..21).map(|n| n.to_string()).collect::<Vec<_>>()).is_err());
    }

    #[test]
    fn last_four_characters() {
        assert_eq!(last4("BBDC-abcdef1234"), "1234");
        assert_eq!(last4("ab"), "ab");
    }
}
