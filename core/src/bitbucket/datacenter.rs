//! Checking a Bitbucket Data Center connection before it is saved: the
//! server answers as Bitbucket, the token is accepted, it belongs to the
//! username given, and it can read projects and repositories. Each check is
//! reported on its own with what to fix; the checks stop at the first call
//! that cannot reach the server, and all of them share one deadline, so a
//! test takes at most one `BITGATE_OUTBOUND_TIMEOUT`. Bitbucket's answers
//! are never echoed back: every message is ours, quoting at most a short
//! excerpt of a name (`bitbucket::excerpt`).

pub mod oauth1;
pub mod oauth2;

use reqwest::{header, Response, StatusCode};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::{excerpt, too_large, version_of, ApiCallError, CallFailed, Repository, RepositoryPage, RepositorySearch};
pub use super::{Check, Report};
use crate::{
    config::Config,
    outbound::{self, check_url, ReadFailed, UrlRefused},
    secret::Secret,
};

/// What the checks need. The token is sent as `Authorization: Bearer`
/// (an HTTP access token, an OAuth 2.0 one), or is an OAuth 1.0a access
/// token that `oauth1`'s consumer signs each request with.
#[derive(Clone)]
pub struct Connection {
    pub api_url: Url,
    pub username: String,
    pub token: Secret<String>,
    /// A private CA's certificate, parsed.
    pub ca: Option<reqwest::Certificate>,
    /// An OAuth 1.0a application link's consumer.
    pub oauth1: Option<oauth1::Consumer>,
}

impl Connection {
    /// How its requests prove who they are.
    pub fn auth(&self) -> Auth<'_> {
        match &self.oauth1 {
            Some(consumer) => Auth::OAuth1(consumer, self.token.expose()),
            None => Auth::Bearer(self.token.expose()),
        }
    }
}

/// How one request to Bitbucket proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    Bearer(&'a str),
    /// Signed by the consumer with the access token.
    OAuth1(&'a oauth1::Consumer, &'a str),
}

impl Auth<'_> {
    /// Adds the `Authorization` header to a request that is otherwise
    /// ready: OAuth 1.0a signs its method and URL (query included).
    pub fn sign(self, request: &mut reqwest::Request) {
        let value = match self {
            Auth::Bearer(token) => format!("Bearer {token}"),
            Auth::OAuth1(consumer, token) => {
                consumer.authorization(request.method(), request.url(), Some(token), None, None)
            }
        };
        if let Ok(mut value) = header::HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
    }
}

impl std::fmt::Debug for Connection {
    // Never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("api_url", &self.api_url.as_str()).field("username", &self.username).finish()
    }
}

pub const CHECKS: [&str; 5] = ["server", "token", "owner", "projects", "repositories"];

/// Where an access token is created for a Bitbucket at `user_facing_url`.
pub fn token_page(user_facing_url: &Url) -> String {
    format!("{}/plugins/servlet/access-tokens/manage", user_facing_url.as_str().trim_end_matches('/'))
}

/// Parses an API URL the way the checks need it: http(s), no user info,
/// query or fragment, no trailing slash; an IP literal in the deny list is
/// refused before any connection.
pub fn parse_api_url(raw: &str, config: &Config) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("Enter the URL of Bitbucket's REST API, such as https://bitbucket.example.com.".into());
    }
    let url = Url::parse(raw)
        .map_err(|_| format!("\u{201c}{raw}\u{201d} is not a URL: write it like https://bitbucket.example.com."))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("Leave out the query (?...) and fragment (#...): give the URL Bitbucket is served at.".into());
    }
    check_url(&url, &config.outbound_deny).map_err(|e| match e {
        UrlRefused::Scheme => "Use an http:// or https:// URL.".to_owned(),
        UrlRefused::UserInfo => "Leave the user name and password out of the URL: the token authenticates.".to_owned(),
        UrlRefused::NoHost => "The URL needs a host name.".to_owned(),
        UrlRefused::Denied(ip) => {
            format!("Bitgate is configured not to connect to {ip} (BITGATE_OUTBOUND_DENY).")
        }
        UrlRefused::NotAHost(ip) => {
            format!("{ip} is not the address of one host (unspecified, broadcast or multicast): give Bitbucket's own.")
        }
    })?;
    let mut url = url;
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// Parses a PEM CA certificate given for a private CA.
pub fn parse_ca_certificate(pem: &str) -> Result<reqwest::Certificate, String> {
    let pem = pem.trim();
    if !pem.starts_with("-----BEGIN CERTIFICATE-----") {
        return Err(
            "Paste the CA certificate in PEM form, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----."
                .into(),
        );
    }
    reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|_| "This is not a readable PEM certificate.".to_owned())
}

fn endpoint(base: &Url, path: &str) -> String {
    format!("{}{path}", base.as_str().trim_end_matches('/'))
}

/// Why a call did not come back with an answer, in words an admin can act on.
fn unreachable(url: &Url, error: &reqwest::Error, config: &Config) -> String {
    let host = url.host_str().unwrap_or_default();
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    let chain = chain.to_lowercase();
    if error.is_timeout() || chain.contains("timed out") {
        timed_out(url, config)
    } else if chain.contains("bitgate_outbound_deny") {
        format!("{host} resolves to an address Bitgate is configured not to connect to (BITGATE_OUTBOUND_DENY).")
    } else if chain.contains("certificate") || chain.contains("unknownissuer") || chain.contains("tls") {
        format!(
            "The TLS connection to {host} failed: its certificate is not trusted. If Bitbucket uses a private CA, paste the CA certificate."
        )
    } else if chain.contains("dns error")
        || chain.contains("lookup address")
        || chain.contains("name or service not known")
    {
        format!("The host name {host} does not resolve: check its spelling.")
    } else if chain.contains("connection refused") {
        format!("{host} refused the connection: check the port, and that Bitbucket is running.")
    } else {
        format!("Bitgate could not reach {host}: check the URL and the network between them.")
    }
}

/// An answer read whole, within the cap and the deadline.
struct Answer {
    status: StatusCode,
    /// The answer is a web page (a login form, a proxy's error page).
    html: bool,
    /// Bitbucket names the token's owner in `X-AUSERNAME`.
    username: Option<String>,
    body: Vec<u8>,
    /// Why an OAuth 1.0a link's signed call was refused.
    oauth_problem: Option<String>,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The calls to one server that share one deadline: so that a server
/// dripping its answers cannot make a check last longer than
/// `BITGATE_OUTBOUND_TIMEOUT`, however many calls it has.
struct Calls<'a> {
    client: &'a reqwest::Client,
    base: &'a Url,
    config: &'a Config,
    deadline: Instant,
}

impl<'a> Calls<'a> {
    fn new(client: &'a reqwest::Client, base: &'a Url, config: &'a Config) -> Self {
        Self { client, base, config, deadline: Instant::now() + config.outbound_timeout }
    }

    /// A GET of `path` answered by one object.
    async fn get(&self, path: &str, auth: Option<Auth<'_>>) -> Result<Answer, String> {
        self.fetch(&endpoint(self.base, path), auth, outbound::MAX_ANSWER_BYTES).await
    }

    /// One GET, its body read whole: at most `limit` bytes, and finished
    /// before the deadline; or the reason, in words an admin can act on. A
    /// signed GET refused as a replay (`nonce_used`: something between
    /// resent it) is signed anew and sent once more.
    async fn fetch(&self, url: &str, auth: Option<Auth<'_>>, limit: usize) -> Result<Answer, String> {
        let answer = self.fetch_once(url, auth, limit).await?;
        if answer.oauth_problem.as_deref() == Some("nonce_used") {
            return self.fetch_once(url, auth, limit).await;
        }
        Ok(answer)
    }

    async fn fetch_once(&self, url: &str, auth: Option<Auth<'_>>, limit: usize) -> Result<Answer, String> {
        let call = async {
            let mut request = self.client.get(url).header(header::ACCEPT, "application/json").build()?;
            if let Some(auth) = auth {
                auth.sign(&mut request);
            }
            let response = self.client.execute(request).await?;
            let status = response.status();
            let html = is_html(&response);
            let username = response.headers().get("x-ausername").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let headers = response.headers().clone();
            let body = if status.is_redirection() { Vec::new() } else { outbound::read_body(response, limit).await? };
            let oauth_problem = match auth {
                Some(Auth::OAuth1(..)) if !status.is_success() => oauth1::problem_in(&headers, &body),
                _ => None,
            };
            Ok::<_, ReadFailed>(Answer { status, html, username, body, oauth_problem })
        };
        let host = self.base.host_str().unwrap_or_default();
        match tokio::time::timeout_at(self.deadline, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(ReadFailed::Transport(error))) => Err(unreachable(self.base, &error, self.config)),
            Ok(Err(ReadFailed::TooLarge { limit })) => Err(too_large(host, limit, "the API URL")),
            Err(_) => Err(timed_out(self.base, self.config)),
        }
    }
}

fn timed_out(url: &Url, config: &Config) -> String {
    format!(
        "No answer from {} within {} seconds (BITGATE_OUTBOUND_TIMEOUT): check the URL and that Bitgate can reach it.",
        url.host_str().unwrap_or_default(),
        config.outbound_timeout.as_secs()
    )
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html"))
}

fn ok(name: &'static str, message: impl Into<String>) -> Check {
    Check::passed(name, message)
}

fn failed(name: &'static str, message: impl Into<String>) -> Check {
    Check::failed(name, message)
}

/// The lines after a failure that stops the checks.
fn not_run(report: &mut Report, after: &'static str) {
    let start = CHECKS.iter().position(|c| *c == after).map_or(CHECKS.len(), |i| i + 1);
    for name in &CHECKS[start..] {
        report.checks.push(failed(name, "Not checked: fix the line above first."));
    }
}

/// The outbound client, trusting the connection's private CA when it has one.
pub(crate) fn client_for(connection: &Connection, config: &Config) -> reqwest::Result<reqwest::Client> {
    http_client(connection.ca.as_ref(), config)
}

/// The outbound client of one Data Center, trusting its private CA, if any.
pub fn http_client(ca: Option<&reqwest::Certificate>, config: &Config) -> reqwest::Result<reqwest::Client> {
    match ca {
        Some(ca) => outbound::client_trusting(config, ca),
        None => outbound::client(config),
    }
}

/// The checklist's line "can post build statuses" (and comment on pull
/// requests): both need Repository read on the repository, so the token
/// reads each repository the integration's stacks use (`names`, as
/// `PRJ/slug`).
pub async fn check_statuses(connection: &Connection, config: &Config, names: &[String]) -> Check {
    const NAME: &str = "statuses";
    if names.is_empty() {
        return ok(
            NAME,
            "No stack uses this integration yet. Build statuses and comments need Repository read on each repository a stack uses.",
        );
    }
    let Ok(client) = client_for(connection, config) else {
        return failed(NAME, "Bitgate could not prepare an HTTP client for this URL.");
    };
    let calls = Calls::new(&client, &connection.api_url, config);
    let token = Some(connection.auth());
    let mut refused: Vec<String> = Vec::new();
    for name in names {
        let Ok((project, slug)) = super::parse_repository_name(name) else { continue };
        let path = format!("/rest/api/1.0/projects/{project}/repos/{slug}");
        match calls.get(&path, token).await {
            Ok(answer) if answer.status.is_success() => {}
            Ok(answer) => refused.push(format!("{name} (answered {})", answer.status.as_u16())),
            Err(why) => return failed(NAME, why),
        }
    }
    if refused.is_empty() {
        let count = names.len();
        ok(
            NAME,
            format!(
                "The token can post build statuses to the {count} repositor{} its stacks use.",
                if count == 1 { "y" } else { "ies" }
            ),
        )
    } else {
        failed(
            NAME,
            format!(
                "The token cannot read {}: it needs Repository read (REPO_READ) there to post build statuses and comments.",
                refused.join(", ")
            ),
        )
    }
}

/// The checklist's warning "can manage webhooks": listing a repository's
/// webhooks needs Repository admin (REPO_ADMIN), as creating them does, so
/// the token lists them in each repository the stacks use. A refusal is a
/// warning: deliveries still come through hooks added by hand.
pub async fn check_hooks(connection: &Connection, config: &Config, names: &[String], managed: bool) -> Check {
    const NAME: &str = "hooks";
    if !managed {
        return ok(NAME, "Manage webhooks is off: Bitgate does not create or repair webhooks in Bitbucket.");
    }
    if names.is_empty() {
        return ok(
            NAME,
            "No stack uses this integration yet. Managing webhooks needs Repository admin (REPO_ADMIN) on each repository a stack uses.",
        );
    }
    let Ok(client) = client_for(connection, config) else {
        return Check::warned(NAME, "Bitgate could not prepare an HTTP client for this URL.");
    };
    let calls = Calls::new(&client, &connection.api_url, config);
    let token = Some(connection.auth());
    let mut refused: Vec<String> = Vec::new();
    for name in names {
        let Ok((project, slug)) = super::parse_repository_name(name) else { continue };
        let path = format!("/rest/api/1.0/projects/{project}/repos/{slug}/webhooks?limit=1");
        match calls.get(&path, token).await {
            Ok(answer) if answer.status.is_success() => {}
            Ok(answer) if matches!(answer.status.as_u16(), 401 | 403) => {
                refused.push(format!("{name} (answered {})", answer.status.as_u16()));
            }
            // Gone, or Bitbucket unwell: the statuses line says so; this
            // one is about the permission only.
            Ok(_) => {}
            Err(why) => return Check::warned(NAME, why),
        }
    }
    if refused.is_empty() {
        ok(NAME, "The token can manage the webhooks of the repositories its stacks use.")
    } else {
        Check::warned(
            NAME,
            format!(
                "The token cannot manage the webhooks of {}: give it Repository admin (REPO_ADMIN) there, or add the webhook by hand.",
                refused.join(", ")
            ),
        )
    }
}

/// Whose token this is (an OAuth 2.0 token acts as whoever approved it),
/// as Bitbucket names the user in `X-AUSERNAME`; or why it cannot be told.
pub async fn account(connection: &Connection, config: &Config) -> Result<String, String> {
    let client = client_for(connection, config)
        .map_err(|_| "Bitgate could not prepare an HTTP client for this URL.".to_owned())?;
    let calls = Calls::new(&client, &connection.api_url, config);
    let answer = calls.get("/plugins/servlet/applinks/whoami", Some(connection.auth())).await?;
    if !answer.status.is_success() {
        return Err(format!("Bitbucket refused the new token ({}).", answer.status));
    }
    answer
        .username
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && name.len() <= 255 && !name.contains(['<', '\n']))
        .ok_or_else(|| "Bitbucket did not say whose the new token is (it answered as to an anonymous user).".to_owned())
}

/// Runs every check, in order.
pub async fn check(connection: &Connection, config: &Config) -> Report {
    let mut report = Report { checks: Vec::new(), version: None };
    let Ok(client) = client_for(connection, config) else {
        report.checks.push(failed("server", "Bitgate could not prepare an HTTP client for this URL."));
        not_run(&mut report, "server");
        return report;
    };
    let base = &connection.api_url;
    let calls = Calls::new(&client, base, config);

    // 1. The server answers as Bitbucket (anonymously: the version is public).
    let properties_path = "/rest/api/1.0/application-properties";
    let answer = match calls.get(properties_path, None).await {
        Ok(answer) => answer,
        Err(why) => {
            report.checks.push(failed("server", why));
            not_run(&mut report, "server");
            return report;
        }
    };
    let status = answer.status;
    if status.is_redirection() {
        report.checks.push(failed(
            "server",
            format!("The server answered with a redirect ({status}). Bitgate does not follow redirects: enter the URL Bitbucket is really served at, not one that sends elsewhere (to a login page, or from http to https)."),
        ));
        not_run(&mut report, "server");
        return report;
    }
    if answer.html {
        report.checks.push(failed(
            "server",
            "The server answered with a web page, not Bitbucket's REST API. Check the context path: if Bitbucket is served at https://host/bitbucket, the API URL includes /bitbucket.",
        ));
        not_run(&mut report, "server");
        return report;
    }
    let body = answer.json();
    let says_bitbucket = |body: &Option<Value>| body.as_ref().is_some_and(|b| b.get("errors").is_some());
    let version = body.as_ref().and_then(|b| b.get("version")).and_then(Value::as_str);
    match (status, &body) {
        (StatusCode::OK, Some(_)) if version.is_some() => match version.and_then(version_of) {
            Some(version) => {
                report.checks.push(ok("server", format!("Bitbucket Data Center {version} answered.")));
                report.version = Some(version);
            }
            None => report
                .checks
                .push(ok("server", "Bitbucket Data Center answered (its version is not in a form Bitgate knows).")),
        },
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) if says_bitbucket(&body) => {
            report.checks.push(ok("server", "Bitbucket answered (it shows its version to logged-in users only)."));
        }
        _ => {
            report.checks.push(failed(
                "server",
                format!(
                    "{} answered {status}, not as Bitbucket Data Center. Check the API URL and its context path.",
                    endpoint(base, properties_path)
                ),
            ));
            not_run(&mut report, "server");
            return report;
        }
    }

    // 2. The token is accepted, and 3. it belongs to the username given.
    let token = Some(connection.auth());
    let whoami = match calls.get("/plugins/servlet/applinks/whoami", token).await {
        Ok(answer) => answer,
        Err(why) => {
            report.checks.push(failed("token", why));
            not_run(&mut report, "token");
            return report;
        }
    };
    if let (Some(problem), Some(consumer)) = (&whoami.oauth_problem, &connection.oauth1) {
        report.checks.push(failed("token", oauth1::explain(Some(problem), whoami.status.as_u16(), &consumer.key)));
        not_run(&mut report, "token");
        return report;
    }
    if matches!(whoami.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        report.checks.push(failed(
            "token",
            "Bitbucket refused the token: it is wrong, expired or revoked. Create a new HTTP access token and paste it whole.",
        ));
        not_run(&mut report, "token");
        return report;
    }
    // The body is the username alone; anything longer or with markup is
    // not an answer about this token.
    let body_owner = String::from_utf8_lossy(&whoami.body).trim().to_owned();
    let body_owner = Some(body_owner).filter(|o| !o.is_empty() && o.len() <= 255 && !o.contains(['<', '\n']));
    let owner = whoami.username.filter(|o| !o.trim().is_empty()).or(body_owner);
    let Some(owner) = owner else {
        report.checks.push(failed(
            "token",
            "Bitbucket did not recognise the token (it answered as to an anonymous user). Paste the whole token.",
        ));
        not_run(&mut report, "token");
        return report;
    };
    report.checks.push(ok("token", "Bitbucket accepted the token."));
    let username = connection.username.trim();
    if owner.trim().eq_ignore_ascii_case(username) {
        report.checks.push(ok("owner", format!("The token belongs to {}.", excerpt(&owner))));
    } else {
        let owner = excerpt(&owner);
        report.checks.push(failed(
            "owner",
            format!("The token belongs to {owner}, not {username}: enter {owner} as the username, or use a token of {username}."),
        ));
    }

    // 4. and 5. It can read projects and repositories.
    for (name, path, what, permission) in [
        ("projects", "/rest/api/1.0/projects?limit=1", "project", "Projects: read"),
        ("repositories", "/rest/api/1.0/repos?limit=1", "repository", "Repositories: read"),
    ] {
        let answer = match calls.get(path, token).await {
            Ok(answer) => answer,
            Err(why) => {
                report.checks.push(failed(name, why));
                not_run(&mut report, name);
                return report;
            }
        };
        let status = answer.status;
        let first = answer.json().and_then(|page| page["values"].get(0).cloned());
        match (status, first) {
            (StatusCode::OK, Some(first)) => {
                let label = match name {
                    "projects" => excerpt(first["key"].as_str().unwrap_or_default()),
                    _ => excerpt(&format!(
                        "{}/{}",
                        first["project"]["key"].as_str().unwrap_or_default(),
                        first["slug"].as_str().unwrap_or_default()
                    )),
                };
                report.checks.push(ok(name, format!("The token reads {name} (for example {label}).")));
            }
            (StatusCode::OK, None) => report.checks.push(failed(
                name,
                format!("The token sees no {what}. Give it the permission {permission}, or check that the user can see one."),
            )),
            (status, _) => report.checks.push(failed(
                name,
                format!("Bitbucket refused to list {name} to this token ({status}). Give it the permission {permission}."),
            )),
        }
    }
    report
}

/// What a stack needs of a Data Center repository.
fn repository_of(value: &Value) -> Option<Repository> {
    Some(Repository {
        id: value["id"].as_u64()?.to_string(),
        project: value["project"]["key"].as_str()?.to_owned(),
        slug: value["slug"].as_str()?.to_owned(),
        display_name: value["name"].as_str().unwrap_or_default().to_owned(),
    })
}

/// A listing or lookup refused to the integration's credential.
pub const TOKEN_REFUSED: &str =
    "Bitbucket refused the integration's token: test the integration, and give it a new token if it was revoked.";

/// An answer of a listing or lookup call that is not the JSON asked for.
fn refused_call(connection: &Connection, answer: &Answer) -> ApiCallError {
    let (status, html) = (answer.status, answer.html);
    let bearer = connection.oauth1.is_none();
    if status == StatusCode::UNAUTHORIZED && bearer && !html {
        return ApiCallError::Unauthorized;
    }
    ApiCallError::Failed(CallFailed(match status {
        _ if answer.oauth_problem.is_some() => oauth1::explain(
            answer.oauth_problem.as_deref(),
            status.as_u16(),
            connection.oauth1.as_ref().map_or("", |consumer| consumer.key.as_str()),
        ),
        _ if html => {
            "Bitbucket answered with a web page instead of its REST API: check the API URL's context path.".into()
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => TOKEN_REFUSED.into(),
        status if status.is_redirection() => {
            "Bitbucket answered with a redirect, which Bitgate does not follow: correct the integration's API URL."
                .into()
        }
        status => format!("Bitbucket answered {status}: try again, or test the integration."),
    }))
}

/// The repositories the token can read whose name contains `name`, one
/// Bitbucket page at a time (Bitbucket's own `start` and `limit`).
pub async fn repositories(
    connection: &Connection,
    config: &Config,
    search: RepositorySearch<'_>,
) -> Result<RepositoryPage, ApiCallError> {
    let RepositorySearch { name, start, limit } = search;
    let client =
        client_for(connection, config).map_err(|e| CallFailed(unreachable(&connection.api_url, &e, config)))?;
    let mut url = Url::parse(&endpoint(&connection.api_url, "/rest/api/1.0/repos"))
        .map_err(|_| CallFailed("The integration's API URL is not usable.".into()))?;
    url.query_pairs_mut()
        .append_pair("name", name.trim())
        .append_pair("start", &start.to_string())
        .append_pair("limit", &limit.to_string());
    let calls = Calls::new(&client, &connection.api_url, config);
    let token = Some(connection.auth());
    let answer = calls.fetch(url.as_str(), token, outbound::MAX_PAGE_BYTES).await.map_err(CallFailed)?;
    if answer.status != StatusCode::OK || answer.html {
        return Err(refused_call(connection, &answer));
    }
    let page =
        answer.json().ok_or_else(|| CallFailed("Bitbucket's answer was not the list of repositories.".into()))?;
    let items = page["values"].as_array().map(|values| values.iter().filter_map(repository_of).collect());
    let Some(items) = items else {
        return Err(CallFailed("Bitbucket's answer was not the list of repositories.".into()).into());
    };
    let last = page["isLastPage"].as_bool().unwrap_or(true);
    Ok(RepositoryPage { items, next_start: if last { None } else { page["nextPageStart"].as_u64() } })
}

/// One repository by project key and slug; `None` when Bitbucket says it
/// does not exist or the token cannot read it.
pub async fn repository(
    connection: &Connection,
    config: &Config,
    project: &str,
    slug: &str,
) -> Result<Option<Repository>, ApiCallError> {
    let client =
        client_for(connection, config).map_err(|e| CallFailed(unreachable(&connection.api_url, &e, config)))?;
    // The key and slug were checked (bitbucket::parse_repository_name): they cannot change the path.
    let path = format!("/rest/api/1.0/projects/{project}/repos/{slug}");
    let calls = Calls::new(&client, &connection.api_url, config);
    let answer = calls.get(&path, Some(connection.auth())).await.map_err(CallFailed)?;
    let not_a_repository = || CallFailed("Bitbucket's answer was not a repository.".into());
    match answer.status {
        StatusCode::NOT_FOUND if !answer.html => Ok(None),
        StatusCode::OK if !answer.html => {
            Ok(answer.json().as_ref().and_then(repository_of).map(Some).ok_or_else(not_a_repository)?)
        }
        _ => Err(refused_call(connection, &answer)),
    }
}
