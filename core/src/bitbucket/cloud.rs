//! Talking to Bitbucket Cloud through an OAuth consumer: checking the
//! consumer before it is saved, the authorization-code flow (with PKCE),
//! refreshing, client credentials, and the REST calls Bitgate makes with
//! the tokens (`/2.0/user`, the workspace, its repositories). No database
//! in here: storing the tokens is `cloud_tokens`'s job.
//!
//! The OAuth endpoints are the operator's (`BITGATE_BITBUCKET_CLOUD_URL`,
//! `BITGATE_BITBUCKET_CLOUD_API_URL`), not a user's, so they are called with
//! the outbound client minus the deny list; it follows no redirect either.
//! Bitbucket's answers are never echoed back: every message is ours.

use futures::future::BoxFuture;
use oauth2::{
    basic::{BasicErrorResponse, BasicErrorResponseType, BasicTokenType},
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    HttpClientError, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use reqwest::{header, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use super::{
    excerpt, too_large, ApiCallError, CallFailed, Check, Report, Repository, RepositoryPage, RepositorySearch,
};
use crate::{
    config::Config,
    outbound::{self, ReadFailed},
    secret::Secret,
    text_enum::text_enum,
};

/// The scopes Bitgate cannot work without (the others it asks for are
/// for later features and only shown).
pub const REQUIRED_SCOPES: [&str; 2] = ["account", "repository"];

/// The permissions the wizard asks to tick on the consumer.
pub const PERMISSIONS: [&str; 5] =
    ["Account: Read", "Workspace membership: Read", "Projects: Read", "Repositories: Read", "Pull requests: Read"];

/// The lines of the checklist, in order.
pub const CHECKS: [&str; 5] = ["consumer", "token", "scopes", "user", "workspace"];

text_enum! {
    /// How an integration gets its tokens (`cloud_credentials.mode`).
    pub enum Mode {
        /// An admin approves in Bitbucket; tokens are refreshed.
        AuthorizationCode = "authorization_code",
        /// A private consumer asks for tokens itself.
        ClientCredentials = "client_credentials",
    }
}

/// An OAuth consumer's key and secret.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub key: String,
    pub secret: Secret<String>,
}

/// Tokens Bitbucket gave out.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: Secret<String>,
    /// Authorization-code grants only.
    pub refresh: Option<Secret<String>>,
    pub expires_at: OffsetDateTime,
    /// The scopes Bitbucket says it granted; `None` when its answer named
    /// none (neither `scope` nor `scopes`), which is not "no scope".
    pub scopes: Option<Vec<String>>,
}

/// Bitbucket named the granted scopes `scopes` until May 2026, and OAuth's
/// standard `scope` since; the standard field is the token answer's own,
/// the old one is read here for servers and proxies that still send it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BitbucketFields {
    #[serde(default)]
    scopes: Option<String>,
}

impl ExtraTokenFields for BitbucketFields {}

type TokenAnswer = StandardTokenResponse<BitbucketFields, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    oauth2::StandardTokenIntrospectionResponse<oauth2::EmptyExtraTokenFields, BasicTokenType>,
    StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Where Bitbucket Cloud is, and where it sends the admin back.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorize: Url,
    pub token: Url,
    pub api: Url,
    /// `{public_url}/oauth/bitbucket/callback`.
    pub callback: String,
}

impl Endpoints {
    pub fn from_config(config: &Config) -> Self {
        let join = |base: &Url, path: &str| {
            let mut url = base.clone();
            url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
            url
        };
        Self {
            authorize: join(&config.bitbucket_cloud_url, "/site/oauth2/authorize"),
            token: join(&config.bitbucket_cloud_url, "/site/oauth2/access_token"),
            api: config.bitbucket_cloud_api_url.clone(),
            callback: callback_url(config),
        }
    }

    fn oauth(&self, consumer: &Consumer) -> OAuthClient {
        let client = oauth2::Client::new(ClientId::new(consumer.key.trim().to_owned()))
            .set_client_secret(ClientSecret::new(consumer.secret.expose().trim().to_owned()))
            .set_auth_uri(AuthUrl::from_url(self.authorize.clone()))
            .set_token_uri(TokenUrl::from_url(self.token.clone()));
        match RedirectUrl::new(self.callback.clone()) {
            Ok(redirect) => client.set_redirect_uri(redirect),
            Err(_) => client,
        }
    }

    fn api_path(&self, path: &str) -> String {
        format!("{}{path}", self.api.as_str().trim_end_matches('/'))
    }
}

/// The OAuth callback every consumer must name.
pub fn callback_url(config: &Config) -> String {
    super::oauth_callback_url(config)
}

/// The HTTP client of Bitbucket Cloud calls (callers need not name reqwest).
pub type HttpClient = reqwest::Client;

/// The client for Bitbucket Cloud's own endpoints: the outbound rules
/// (no redirects, the timeout) without the deny list, which is for
/// user-given URLs.
pub fn http_client(config: &Config) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.outbound_timeout)
        .connect_timeout(config.outbound_timeout)
        .user_agent(concat!("Bitgate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Where to send the admin's browser to approve, and the PKCE verifier to
/// keep for the exchange.
pub fn authorize_url(endpoints: &Endpoints, consumer: &Consumer, state: &str) -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = state.to_owned();
    let (url, _) =
        endpoints.oauth(consumer).authorize_url(move || CsrfToken::new(state)).set_pkce_challenge(challenge).url();
    (url.to_string(), verifier.secret().clone())
}

/// Why a token request gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The key or secret is wrong (`invalid_client`).
    Consumer,
    /// The consumer has no callback URL (`invalid_request`).
    NoCallback,
    /// Client credentials for a consumer that is not private (`unauthorized_client`).
    NotPrivate,
    /// The code or refresh token was refused (`invalid_grant`): used, expired or revoked.
    Grant,
    /// Another refusal, in our words.
    Refused(String),
    /// No answer, or not an OAuth answer.
    Unreachable(String),
}

impl TokenError {
    /// In words an admin can act on.
    pub fn message(&self, endpoints: &Endpoints) -> String {
        match self {
            TokenError::Consumer => "Bitbucket rejected the consumer key or secret: copy both again from the consumer's page (Workspace settings → OAuth consumers).".into(),
            TokenError::NoCallback => format!(
                "The consumer has no callback URL, which Bitbucket requires: edit the consumer and set its callback URL to {}.",
                endpoints.callback
            ),
            TokenError::NotPrivate => "This consumer is not private, so Bitbucket refuses it client credentials: tick \u{201c}This is a private consumer\u{201d} on the consumer, or choose the authorization-code mode.".into(),
            TokenError::Grant => "Bitbucket refused the grant: it was already used, has expired, or the consumer's access was revoked. Connect again.".into(),
            TokenError::Refused(why) | TokenError::Unreachable(why) => why.clone(),
        }
    }
}

fn token_error(
    error: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
    config: &Config,
    endpoints: &Endpoints,
) -> TokenError {
    match error {
        RequestTokenError::ServerResponse(answer) => match answer.error() {
            BasicErrorResponseType::InvalidClient => TokenError::Consumer,
            BasicErrorResponseType::InvalidGrant => TokenError::Grant,
            BasicErrorResponseType::UnauthorizedClient => TokenError::NotPrivate,
            BasicErrorResponseType::InvalidRequest
                if answer.error_description().is_some_and(|d| d.to_lowercase().contains("callback")) =>
            {
                TokenError::NoCallback
            }
            // OAuth's own codes are named; a code of the server's own
            // invention is its text, which is not repeated.
            BasicErrorResponseType::Extension(_) => TokenError::Refused(
                "Bitbucket refused the token request with an error OAuth does not define: check the consumer's settings."
                    .into(),
            ),
            other => TokenError::Refused(format!(
                "Bitbucket refused the token request ({}): check the consumer's settings.",
                other.as_ref()
            )),
        },
        RequestTokenError::Request(HttpClientError::Reqwest(error)) => {
            TokenError::Unreachable(unreachable(&endpoints.token, &error, config))
        }
        RequestTokenError::Request(HttpClientError::Other(_)) => TokenError::Unreachable(too_large(
            endpoints.token.host_str().unwrap_or_default(),
            outbound::MAX_ANSWER_BYTES,
            "BITGATE_BITBUCKET_CLOUD_URL",
        )),
        RequestTokenError::Request(_) | RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
            TokenError::Unreachable(format!(
                "Bitbucket's token endpoint ({}) gave an answer that is not OAuth's: check BITGATE_BITBUCKET_CLOUD_URL.",
                endpoints.token.host_str().unwrap_or_default()
            ))
        }
    }
}

fn unreachable(url: &Url, error: &reqwest::Error, config: &Config) -> String {
    let host = url.host_str().unwrap_or_default();
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() || chain.to_lowercase().contains("timed out") {
        format!(
            "No answer from {host} within {} seconds (BITGATE_OUTBOUND_TIMEOUT): try again later.",
            config.outbound_timeout.as_secs()
        )
    } else {
        format!("Bitgate could not reach {host}: check the network between them.")
    }
}

/// The HTTP client oauth2 makes its token requests with: reqwest's, with
/// the answer read through [`outbound::read_body`] so that it is capped
/// like every other answer from Bitbucket. It owns its (shared) client: a
/// borrowed one would tie the future to a second lifetime, and the futures
/// of every caller would stop being `Send` for all lifetimes. Data Center's
/// OAuth 2.0 provider is called through it too.
pub(crate) struct Capped(pub(crate) reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Capped {
    type Error = HttpClientError<reqwest::Error>;
    type Future = BoxFuture<'c, Result<oauth2::HttpResponse, Self::Error>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let response = self.0.execute(request).await.map_err(Box::new)?;
            let mut answer = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = match outbound::read_body(response, outbound::MAX_ANSWER_BYTES).await {
                Ok(body) => body,
                Err(ReadFailed::Transport(error)) => return Err(HttpClientError::Reqwest(Box::new(error))),
                Err(too_large @ ReadFailed::TooLarge { .. }) => {
                    return Err(HttpClientError::Other(too_large.to_string()))
                }
            };
            answer.body(body).map_err(HttpClientError::Http)
        })
    }
}

fn tokens_of(answer: TokenAnswer) -> Tokens {
    let lifetime = answer.expires_in().unwrap_or(std::time::Duration::from_secs(3600));
    Tokens {
        access: Secret::new(answer.access_token().secret().clone()),
        refresh: answer.refresh_token().map(|r| Secret::new(r.secret().clone())),
        expires_at: OffsetDateTime::now_utc() + lifetime,
        scopes: granted_scopes(&answer),
    }
}

/// The granted scopes a token answer names: OAuth's `scope` (Bitbucket
/// since May 2026), else the old `scopes`; `None` when it names neither.
fn granted_scopes(answer: &TokenAnswer) -> Option<Vec<String>> {
    // Scope names are shown in the checklist: only names in a scope's shape
    // (`repository`, `pullrequest:write`) are kept, and no more than fifty.
    let is_scope = |s: &&str| {
        s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c == ':' || c == '_')
    };
    let split = |list: &str| list.split([' ', ',']).filter(is_scope).take(50).map(str::to_owned).collect::<Vec<_>>();
    match answer.scopes() {
        Some(standard) => Some(standard.iter().flat_map(|scope| split(scope)).collect()),
        None => answer.extra_fields().scopes.as_deref().map(split),
    }
}

/// Checks a consumer's key and secret without an admin in the loop: a
/// token request with a code that cannot exist, which a valid consumer gets
/// `invalid_grant` for. (Client-credentials consumers are checked by asking
/// for their token: [`client_credentials`].)
pub async fn check_consumer(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    consumer: &Consumer,
) -> Result<(), TokenError> {
    let answer = endpoints
        .oauth(consumer)
        .exchange_code(AuthorizationCode::new("bitgate-consumer-check".into()))
        .request_async(&Capped(http.clone()))
        .await;
    match answer {
        Err(RequestTokenError::ServerResponse(answer)) if *answer.error() == BasicErrorResponseType::InvalidGrant => {
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(error) => Err(token_error(error, config, endpoints)),
    }
}

/// Exchanges the code of the callback, with the PKCE verifier of its flow.
pub async fn exchange_code(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    consumer: &Consumer,
    code: &str,
    verifier: Secret<String>,
) -> Result<Tokens, TokenError> {
    endpoints
        .oauth(consumer)
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.into_exposed()))
        .request_async(&Capped(http.clone()))
        .await
        .map(tokens_of)
        .map_err(|e| token_error(e, config, endpoints))
}

/// Spends a refresh token for a new pair (Bitbucket rotates it).
pub async fn refresh(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    consumer: &Consumer,
    refresh_token: &Secret<String>,
) -> Result<Tokens, TokenError> {
    let refresh_token = RefreshToken::new(refresh_token.expose().clone());
    endpoints
        .oauth(consumer)
        .exchange_refresh_token(&refresh_token)
        .request_async(&Capped(http.clone()))
        .await
        .map(tokens_of)
        .map_err(|e| token_error(e, config, endpoints))
}

/// A private consumer's own access token (no refresh token comes with it).
pub async fn client_credentials(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    consumer: &Consumer,
) -> Result<Tokens, TokenError> {
    endpoints
        .oauth(consumer)
        .exchange_client_credentials()
        .request_async(&Capped(http.clone()))
        .await
        .map(tokens_of)
        .map_err(|e| token_error(e, config, endpoints))
}

/// Checks new credentials the way their mode allows before they are saved:
/// client credentials get their token and every check at once; an
/// authorization-code consumer is checked with a code that cannot exist
/// (Bitbucket answers `invalid_grant` to a valid consumer), the rest after
/// an admin's approval. Returns the checklist that passed and the tokens
/// client credentials obtained, or the checklist of what failed.
pub async fn check_new(
    config: &Config,
    workspace: &str,
    consumer: &Consumer,
    mode: Mode,
) -> Result<(Report, Option<(Tokens, Account)>), Report> {
    let endpoints = Endpoints::from_config(config);
    let http = http_client(config).map_err(|_| {
        let mut report = Report { checks: Vec::new(), version: None };
        report.checks.push(failed("consumer", "Bitgate could not prepare its HTTP client (its TLS set-up failed)."));
        report
    })?;
    match mode {
        Mode::AuthorizationCode => match check_consumer(&http, config, &endpoints, consumer).await {
            Ok(()) => {
                let accepted = ok("consumer", "Bitbucket accepted the consumer's key and secret.");
                Ok((Report { checks: vec![accepted], version: None }, None))
            }
            Err(error) => Err(token_report(&error, &endpoints)),
        },
        Mode::ClientCredentials => {
            let tokens = match client_credentials(&http, config, &endpoints, consumer).await {
                Ok(tokens) => tokens,
                Err(error) => return Err(token_report(&error, &endpoints)),
            };
            let (report, account) = check_tokens(&http, config, &endpoints, &tokens, workspace).await;
            match account {
                Some(account) if report.passed() => Ok((report, Some((tokens, account)))),
                _ => Err(report),
            }
        }
    }
}

/// Who a token acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// A person: whoever approved an authorization-code grant.
    Person,
    /// The consumer's app user: what client-credentials tokens act as
    /// since May 2026. Not a person; it reaches only the workspace that
    /// owns the consumer.
    AppUser,
}

/// The account a token acts as, from `/2.0/user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub kind: AccountKind,
    /// A person's username; empty for an app user, which has none.
    pub username: String,
    pub display_name: String,
    /// Atlassian's account id, which every kind of account has.
    pub account_id: String,
}

impl Account {
    /// What `/2.0/user` answered: `type` `app_user` is the consumer's app
    /// user, anything else a person.
    pub fn from_user(body: &Value) -> Self {
        // Names are quoted in messages and the audit log: excerpts only.
        let text = |field: &str| excerpt(body[field].as_str().unwrap_or_default());
        let kind = if body["type"] == "app_user" { AccountKind::AppUser } else { AccountKind::Person };
        let username = match kind {
            AccountKind::Person => excerpt(body["username"].as_str().or(body["nickname"].as_str()).unwrap_or_default()),
            AccountKind::AppUser => String::new(),
        };
        Account { kind, username, display_name: text("display_name"), account_id: text("account_id") }
    }

    /// `Ada Lovelace (ada)`, or `Bitgate (the consumer's app user)`.
    pub fn label(&self) -> String {
        match self.kind {
            AccountKind::AppUser if self.display_name.is_empty() => "the consumer's app user".to_owned(),
            AccountKind::AppUser => format!("{} (the consumer's app user)", self.display_name),
            AccountKind::Person if self.display_name.is_empty() || self.display_name == self.username => {
                self.username.clone()
            }
            AccountKind::Person => format!("{} ({})", self.display_name, self.username),
        }
    }

    /// How a sentence names it: `ada`, or `The consumer's app user`.
    fn subject(&self) -> String {
        match self.kind {
            AccountKind::Person if !self.username.is_empty() => self.username.clone(),
            AccountKind::Person => self.label(),
            AccountKind::AppUser => "The consumer's app user".to_owned(),
        }
    }

    /// What identifies it in the audit log: the username, or the account id.
    pub fn handle(&self) -> &str {
        if self.username.is_empty() {
            &self.account_id
        } else {
            &self.username
        }
    }
}

/// The checklist's line "can post build statuses" (and comment on pull
/// requests), from the scopes Bitbucket granted: statuses need
/// `repository` (Repositories: Read), comments `pullrequest` (Pull
/// requests: Read).
pub fn check_statuses(granted: &[String]) -> Check {
    const NAME: &str = "statuses";
    let missing: Vec<&str> = [("repository", "Repositories: Read"), ("pullrequest", "Pull requests: Read")]
        .into_iter()
        .filter(|(scope, _)| !granted.iter().any(|g| g == scope || g.starts_with(&format!("{scope}:"))))
        .map(|(_, permission)| permission)
        .collect();
    if missing.is_empty() {
        ok(NAME, "The consumer can post build statuses and comment on pull requests.")
    } else {
        failed(
            NAME,
            format!(
                "The consumer lacks {}: give it that permission to post build statuses and comments, then reconnect.",
                missing.join(" and ")
            ),
        )
    }
}

/// The checklist's warning "can manage webhooks", from the scopes
/// Bitbucket granted: a repository's webhooks need `webhook` (Webhooks:
/// Read and write). Missing, it is a warning: hooks added by hand still
/// deliver.
pub fn check_hooks(granted: &[String], managed: bool) -> Check {
    const NAME: &str = "hooks";
    if !managed {
        return ok(NAME, "Manage webhooks is off: Bitgate does not create or repair webhooks in Bitbucket.");
    }
    if granted.iter().any(|g| g == "webhook") {
        ok(NAME, "The consumer can manage the repositories' webhooks.")
    } else {
        Check::warned(
            NAME,
            "The consumer lacks Webhooks: Read and write: give it that permission and reconnect, or add the webhook by hand.",
        )
    }
}

fn ok(name: &'static str, message: impl Into<String>) -> Check {
    Check::passed(name, message)
}

fn failed(name: &'static str, message: impl Into<String>) -> Check {
    Check::failed(name, message)
}

/// The lines after a failure that stops the checks.
pub fn not_run(report: &mut Report, after: &'static str) {
    let start = CHECKS.iter().position(|c| *c == after).map_or(CHECKS.len(), |i| i + 1);
    for name in &CHECKS[start..] {
        report.checks.push(failed(name, "Not checked: fix the line above first."));
    }
}

/// A failed token request as the checklist shows it.
pub fn token_report(error: &TokenError, endpoints: &Endpoints) -> Report {
    let line = if matches!(error, TokenError::Consumer | TokenError::NoCallback) { "consumer" } else { "token" };
    let mut report = Report { checks: Vec::new(), version: None };
    if line == "token" {
        report.checks.push(ok("consumer", "Bitbucket knows the consumer."));
    }
    report.checks.push(failed(line, error.message(endpoints)));
    not_run(&mut report, line);
    report
}

/// What a token is checked for once obtained: the scopes Bitgate needs,
/// the account it acts as, and that this account sees the workspace.
/// Returns the report and, when every line passed, the account.
pub async fn check_tokens(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    tokens: &Tokens,
    workspace: &str,
) -> (Report, Option<Account>) {
    let mut report = Report { checks: vec![ok("consumer", "Bitbucket accepted the consumer.")], version: None };
    report.checks.push(ok("token", "Bitbucket gave Bitgate an access token."));
    let Some(scopes) = &tokens.scopes else {
        report.checks.push(failed(
            "scopes",
            "Bitbucket's token answer did not say which scopes it granted (it names them \u{201c}scope\u{201d}, and \u{201c}scopes\u{201d} before May 2026; this answer had neither), so Bitgate cannot confirm the consumer has Account: Read and Repositories: Read. Bitbucket itself always says: if a proxy stands between Bitgate and Bitbucket, make it pass token answers unchanged, then test again.",
        ));
        not_run(&mut report, "scopes");
        return (report, None);
    };
    let missing: Vec<&str> =
        REQUIRED_SCOPES.iter().copied().filter(|needed| !scopes.iter().any(|s| s == needed)).collect();
    if missing.is_empty() {
        report.checks.push(ok("scopes", format!("Granted: {}.", scopes.join(", "))));
    } else {
        report.checks.push(failed(
            "scopes",
            format!(
                "The consumer lacks {}: edit it in Bitbucket, tick {}, and connect again. Granted: {}.",
                missing.join(" and "),
                PERMISSIONS.join(", "),
                if scopes.is_empty() { "nothing".to_owned() } else { scopes.join(", ") }
            ),
        ));
        not_run(&mut report, "scopes");
        return (report, None);
    }

    let account =
        match get_json(http, config, &endpoints.api, (&endpoints.api_path("/2.0/user"), ONE_OBJECT), &tokens.access)
            .await
        {
            Ok((StatusCode::OK, body)) => Account::from_user(&body),
            Ok((status, _)) => {
                report.checks.push(failed(
                    "user",
                    format!(
                        "Bitbucket refused to say whose token this is ({status}): the consumer needs Account: Read."
                    ),
                ));
                not_run(&mut report, "user");
                return (report, None);
            }
            Err(CallFailed(why)) => {
                report.checks.push(failed("user", why));
                not_run(&mut report, "user");
                return (report, None);
            }
        };
    let acts_as = match account.kind {
        AccountKind::Person => format!("The token acts as {}.", account.label()),
        AccountKind::AppUser => format!(
            "The token acts as the consumer's app user{}, not as a person: Bitbucket gives client-credentials tokens an account of their own.",
            if account.display_name.is_empty() { String::new() } else { format!(" \u{201c}{}\u{201d}", account.display_name) }
        ),
    };
    report.checks.push(ok("user", acts_as));

    let workspace = workspace.trim();
    let path = format!("/2.0/workspaces/{workspace}");
    match get_json(http, config, &endpoints.api, (&endpoints.api_path(&path), ONE_OBJECT), &tokens.access).await {
        Ok((StatusCode::OK, body)) => {
            let name = body["name"].as_str().map_or_else(|| workspace.to_owned(), excerpt);
            report
                .checks
                .push(ok("workspace", format!("{} sees the workspace {name} ({workspace}).", account.subject())));
            (report, Some(account))
        }
        Ok((StatusCode::NOT_FOUND | StatusCode::FORBIDDEN, _)) => {
            let fix = match account.kind {
                AccountKind::Person => "enter the workspace's ID as in bitbucket.org/{workspace}/, and connect with an account that is a member.",
                AccountKind::AppUser => "client credentials reach only the workspace that owns the consumer. Enter that workspace's ID, or create the consumer in this workspace's settings (Workspace settings \u{2192} OAuth consumers), or use the authorization-code mode.",
            };
            report.checks.push(failed(
                "workspace",
                format!("{} cannot see a workspace \u{201c}{workspace}\u{201d}: {fix}", account.subject()),
            ));
            (report, None)
        }
        Ok((status, _)) => {
            report.checks.push(failed("workspace", format!("Bitbucket answered {status} about the workspace.")));
            (report, None)
        }
        Err(CallFailed(why)) => {
            report.checks.push(failed("workspace", why));
            (report, None)
        }
    }
}

/// A workspace ID as Bitbucket allows it (it goes into URL paths).
pub fn parse_workspace(raw: &str) -> Result<String, String> {
    let workspace = raw.trim();
    if workspace.is_empty() {
        return Err("Enter the workspace ID, the part after bitbucket.org/ in its address.".into());
    }
    if workspace.len() > 62
        || !workspace.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "\u{201c}{workspace}\u{201d} is not a workspace ID: use its lowercase letters, digits, dashes and underscores, as in bitbucket.org/{{workspace}}/."
        ));
    }
    Ok(workspace.to_owned())
}

const ONE_OBJECT: usize = outbound::MAX_ANSWER_BYTES;

/// A GET of the REST API, its answer read up to `limit` bytes; 401 comes
/// back as a status, for the caller to refresh and retry.
async fn get_json(
    http: &reqwest::Client,
    config: &Config,
    base: &Url,
    (url, limit): (&str, usize),
    access_token: &Secret<String>,
) -> Result<(StatusCode, Value), CallFailed> {
    let response = http
        .get(url)
        .header(header::ACCEPT, "application/json")
        .bearer_auth(access_token.expose())
        .send()
        .await
        .map_err(|e| CallFailed(unreachable(base, &e, config)))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(CallFailed(
            "Bitbucket answered with a redirect, which Bitgate does not follow: check BITGATE_BITBUCKET_CLOUD_API_URL."
                .into(),
        ));
    }
    let body = match outbound::read_body(response, limit).await {
        Ok(body) => serde_json::from_slice(&body).unwrap_or(Value::Null),
        Err(ReadFailed::Transport(error)) => return Err(CallFailed(unreachable(base, &error, config))),
        Err(ReadFailed::TooLarge { limit }) => {
            let host = base.host_str().unwrap_or_default();
            return Err(CallFailed(too_large(host, limit, "BITGATE_BITBUCKET_CLOUD_API_URL")));
        }
    };
    Ok((status, body))
}

fn repository_of(value: &Value) -> Option<Repository> {
    Some(Repository {
        id: value["uuid"].as_str()?.to_owned(),
        project: value["workspace"]["slug"]
            .as_str()
            .or_else(|| value["full_name"].as_str().and_then(|f| f.split('/').next()))?
            .to_owned(),
        slug: value["slug"].as_str()?.to_owned(),
        display_name: value["name"].as_str().unwrap_or_default().to_owned(),
    })
}

fn refused(status: StatusCode) -> ApiCallError {
    match status {
        StatusCode::UNAUTHORIZED => ApiCallError::Unauthorized,
        StatusCode::FORBIDDEN => ApiCallError::Failed(CallFailed(
            "Bitbucket refused: the consumer needs Repositories: Read, and its account must see the workspace.".into(),
        )),
        status => ApiCallError::Failed(CallFailed(format!(
            "Bitbucket answered {status}: try again, or test the integration."
        ))),
    }
}

/// The workspace's repositories whose name contains `name`: Cloud pages by
/// number, so `start` (a multiple of `limit`) picks the page.
pub async fn repositories(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    access_token: &Secret<String>,
    workspace: &str,
    search: RepositorySearch<'_>,
) -> Result<RepositoryPage, ApiCallError> {
    let RepositorySearch { name, start, limit } = search;
    let mut url = Url::parse(&endpoints.api_path(&format!("/2.0/repositories/{workspace}")))
        .map_err(|_| ApiCallError::Failed(CallFailed("BITGATE_BITBUCKET_CLOUD_API_URL is not usable.".into())))?;
    let limit = limit.clamp(1, 100);
    let page = start / u64::from(limit) + 1;
    url.query_pairs_mut().append_pair("pagelen", &limit.to_string()).append_pair("page", &page.to_string());
    let search = name.trim().replace(['"', '\\'], "");
    if !search.is_empty() {
        url.query_pairs_mut().append_pair("q", &format!("name ~ \"{search}\""));
    }
    let (status, body) = get_json(http, config, &endpoints.api, (url.as_str(), outbound::MAX_PAGE_BYTES), access_token)
        .await
        .map_err(ApiCallError::Failed)?;
    if status != StatusCode::OK {
        return Err(refused(status));
    }
    let Some(values) = body["values"].as_array() else {
        return Err(ApiCallError::Failed(CallFailed("Bitbucket's answer was not the list of repositories.".into())));
    };
    let items = values.iter().filter_map(repository_of).collect();
    let next_start = body.get("next").and_then(Value::as_str).map(|_| page * u64::from(limit));
    Ok(RepositoryPage { items, next_start })
}

/// One repository of the workspace by slug; `None` when Bitbucket shows none.
pub async fn repository(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    access_token: &Secret<String>,
    workspace: &str,
    slug: &str,
) -> Result<Option<Repository>, ApiCallError> {
    // The workspace and slug were checked: they cannot change the path.
    let url = endpoints.api_path(&format!("/2.0/repositories/{workspace}/{slug}"));
    let (status, body) =
        get_json(http, config, &endpoints.api, (&url, ONE_OBJECT), access_token).await.map_err(ApiCallError::Failed)?;
    match status {
        StatusCode::OK => repository_of(&body)
            .map(Some)
            .ok_or_else(|| ApiCallError::Failed(CallFailed("Bitbucket's answer was not a repository.".into()))),
        StatusCode::NOT_FOUND => Ok(None),
        status => Err(refused(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_need_the_repository_and_pull_request_scopes() {
        let granted = |scopes: &[&str]| scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_statuses(&granted(&["account", "repository", "pullrequest:write"])).ok);
        let line = check_statuses(&granted(&["account", "repository"]));
        assert!(!line.ok);
        assert!(line.message.starts_with("The consumer lacks Pull requests: Read:"), "{}", line.message);
        let line = check_statuses(&granted(&["account"]));
        assert!(line.message.contains("Repositories: Read and Pull requests: Read"), "{}", line.message);
    }

    #[test]
    fn workspace_ids_go_into_paths_safely() {
        assert_eq!(parse_workspace(" acme ").unwrap(), "acme");
        assert_eq!(parse_workspace("team_2-x").unwrap(), "team_2-x");
        for bad in ["", "Acme", "a/b", "a?b", "..", "a b", "%2e"] {
            assert!(parse_workspace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let consumer = Consumer { key: "key".into(), secret: "s3cret".into() };
        assert!(!format!("{consumer:?}").contains("s3cret"));
        let tokens = Tokens {
            access: "acc3ss".into(),
            refresh: Some("r3fresh".into()),
            expires_at: OffsetDateTime::now_utc(),
            scopes: Some(vec!["account".into()]),
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("acc3ss") && !shown.contains("r3fresh"), "{shown}");
    }

    fn answer(json: &str) -> TokenAnswer {
        serde_json::from_str(json).expect("a token answer")
    }

    #[test]
    fn granted_scopes_are_read_from_scope_and_from_the_older_scopes() {
        let base = r#""access_token": "a", "token_type": "bearer", "expires_in": 7200"#;
        let standard = answer(&format!(r#"{{{base}, "scope": "account repository pullrequest"}}"#));
        assert_eq!(
            tokens_of(standard).scopes,
            Some(vec!["account".into(), "repository".into(), "pullrequest".into()]),
            "Bitbucket since May 2026"
        );
        let legacy = answer(&format!(r#"{{{base}, "scopes": "account repository"}}"#));
        assert_eq!(tokens_of(legacy).scopes, Some(vec!["account".into(), "repository".into()]), "the old name");
        let both = answer(&format!(r#"{{{base}, "scope": "account", "scopes": "account repository"}}"#));
        assert_eq!(tokens_of(both).scopes, Some(vec!["account".into()]), "the standard field wins");
        let empty = answer(&format!(r#"{{{base}, "scope": ""}}"#));
        assert_eq!(tokens_of(empty).scopes, Some(vec![]), "named, and nothing granted");
        let hostile =
            answer(&format!(r#"{{{base}, "scope": "account <b>x</b> repository \u202eevil {}"}}"#, "a".repeat(40)));
        assert_eq!(tokens_of(hostile).scopes, Some(vec!["account".into(), "repository".into()]), "only scope names");
        let neither = answer(&format!("{{{base}}}"));
        assert_eq!(tokens_of(neither).scopes, None, "not named is not the same as none granted");
    }

    #[test]
    fn an_app_user_is_told_apart_from_a_person() {
        let app = Account::from_user(&serde_json::json!({
            "type": "app_user", "display_name": "Bitgate", "uuid": "{u}", "account_id": "712020:abc",
        }));
        assert_eq!(app.kind, AccountKind::AppUser);
        assert_eq!(app.label(), "Bitgate (the consumer's app user)");
        assert_eq!(app.handle(), "712020:abc");
        let person = Account::from_user(&serde_json::json!({
            "type": "user", "username": "ada", "display_name": "Ada Lovelace", "account_id": "557058:x",
        }));
        assert_eq!(person.kind, AccountKind::Person);
        assert_eq!(person.label(), "Ada Lovelace (ada)");
        assert_eq!(person.handle(), "ada");
    }

    #[test]
    fn endpoints_follow_the_configuration() {
        let config = Config::load(&[
            ("BITGATE_BITBUCKET_CLOUD_URL", "http://127.0.0.1:7990/"),
            ("BITGATE_PUBLIC_URL", "https://bitgate.example.com"),
        ])
        .unwrap();
        let endpoints = Endpoints::from_config(&config);
        assert_eq!(endpoints.token.as_str(), "http://127.0.0.1:7990/site/oauth2/access_token");
        assert_eq!(endpoints.callback, "https://bitgate.example.com/oauth/bitbucket/callback");
        let consumer = Consumer { key: "k".into(), secret: "s".into() };
        let (url, verifier) = authorize_url(&endpoints, &consumer, "the-state");
        let url = Url::parse(&url).unwrap();
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "k");
        assert_eq!(query["state"], "the-state");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["response_type"], "code");
        assert!(verifier.len() >= 43);
        assert!(!url.as_str().contains("s3cret") && !query.contains_key("client_secret"));
    }
}
