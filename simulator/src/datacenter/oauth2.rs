//! Data Center's OAuth 2.0 provider: the incoming application link an admin
//! makes under Administration → Application Links → Create link →
//! "External application" (Data Center 7.20 and later), which shows a
//! client id and secret (bitbucket-next.md §5; SPEC.md "Data Center by
//! OAuth"). Its two endpoints live under the context path:
//!
//! - `GET {ctx}/rest/oauth2/latest/authorize`: the consent page a person
//!   sees, signed in (here always as [`DEMO_USER`]), naming the application
//!   and the scope it asks for, with Allow and Deny. An unknown `client_id`
//!   or a `redirect_uri` other than the link's (or none) is an error page, never a
//!   redirect (RFC 6749 §4.1.2.1: the redirect itself is what cannot be
//!   trusted); other problems go back to the redirect URI with `error=`.
//!   Authorization code, with or without PKCE, is the only flow (no
//!   implicit, no password grant: Atlassian's provider API page).
//! - `POST {ctx}/rest/oauth2/latest/token`: `authorization_code` and
//!   `refresh_token`, the client authenticated by `client_id` and
//!   `client_secret` parameters or HTTP Basic, the parameters read from the
//!   form body and from the query string (Atlassian's own examples put them
//!   in the query; a servlet reads both). The provider checks `redirect_uri`
//!   on the refresh grant too, and a refresh without it, or with another,
//!   gets a bare `invalid_grant` (jira.js `refreshServerOAuth2Token`, same
//!   Atlassian plugin: bitbucket-next.md §5).
//!
//! Scopes are the wire strings of Woodpecker, coder and python-social-auth:
//! `PUBLIC_REPOS`, `REPO_READ`, `REPO_WRITE`, `REPO_ADMIN`, `PROJECT_ADMIN`,
//! space-separated. What the client asks for is what it gets, capped (on a
//! real server) at what the approving user may do; the simulator's users
//! may do everything. An access token is a [`Token`] of the approving user
//! in `instance.tokens`, so every REST endpoint takes it as `Bearer` like an
//! HTTP access token, with its expiry in [`Instance::oauth2_access_tokens`].
//!
//! Lifetimes are the provider's defaults (system properties, Atlassian's
//! "OAuth 2.0 provider system properties" page): access token 3600 s, refresh
//! token 90 days, authorization code 10 s (`max.client.delay.seconds`).
//! UNVERIFIED: whether a refresh rotates the refresh token. The simulator
//! takes the strict side (the old one is spent; a client that keeps whatever
//! comes back works either way); the old access token stays valid until it
//! expires. Also UNVERIFIED, chosen here: a missing `scope` is
//! `PUBLIC_REPOS` (the link page's "No scopes selected: View public projects
//! and repositories"); `plain` PKCE is accepted besides `S256`; the access
//! and refresh tokens' shape (opaque strings here). Not simulated: the
//! HTTPS the real provider requires of its base URL and of redirect URIs
//! (unless `atlassian.oauth2.provider.skip.*.https.requirement` is set, as
//! the simulator's http tests in effect do).

use std::time::{Duration, Instant};

use axum::{
    body::Bytes,
    extract::{OriginalUri, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use base64::{engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{page, read, write, Instance, Shared, Token, DEMO_USER};
use crate::escape;

/// The demo link's client id: 32 hex digits, the shape Data Center shows.
pub const DEMO_OAUTH2_CLIENT_ID: &str = "7c1e0b5fa29d4e8b93d6c0f4a1b2e3d4";
/// The demo link's client secret: 64 hex digits.
pub const DEMO_OAUTH2_CLIENT_SECRET: &str = "3a9f1c7e5b2d8064a1e9c3f7b5d2086e4c1a9f3e7b5d2c8064a1e3c9f7b5d20e";

/// Where the provider's endpoints are, below the context path.
pub const AUTHORIZE_PATH: &str = "/rest/oauth2/latest/authorize";
pub const TOKEN_PATH: &str = "/rest/oauth2/latest/token";

/// The scopes a client may ask for, weakest first, with the words the
/// consent page uses for each (the link page's labels: "Repositories: Read",
/// "Projects: Admin"...).
pub const SCOPES: [(&str, &str); 5] = [
    ("PUBLIC_REPOS", "View public projects and repositories"),
    ("REPO_READ", "Repositories: Read"),
    ("REPO_WRITE", "Repositories: Write"),
    ("REPO_ADMIN", "Repositories: Admin"),
    ("PROJECT_ADMIN", "Projects: Admin"),
];

/// An incoming "External application" link: what the admin typed (name,
/// redirect URL) and what Bitbucket generated (client id and secret).
#[derive(Debug, Clone)]
pub struct OAuth2Client {
    pub client_id: String,
    pub client_secret: String,
    pub name: String,
    /// The one redirect URL the link accepts, compared exactly. `None` until
    /// set: the sample's demo link gets Bitgate's callback from the test or
    /// from `bitbucket-simulator`.
    pub redirect_url: Option<String>,
}

/// A code the consent page gave out: spent by one token request, within
/// [`Instance::oauth2_code_lifetime`] of being issued.
#[derive(Debug, Clone)]
pub struct OAuth2Code {
    pub code: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE challenge and its method (`S256` or `plain`), if any.
    pub challenge: Option<(String, String)>,
    pub scope: Vec<String>,
    /// The slug of the user who clicked Allow.
    pub user: String,
    pub issued_at: Instant,
    pub used: bool,
}

/// A refresh token: the grant it continues, until it is spent or expires.
#[derive(Debug, Clone)]
pub struct OAuth2RefreshToken {
    pub token: String,
    pub client_id: String,
    pub user: String,
    pub scope: Vec<String>,
    /// The redirect URI of the grant: a refresh must name it again.
    pub redirect_uri: String,
    pub expires_at: Instant,
    pub spent: bool,
}

/// What the provider knows of an access token it issued, by the token's
/// secret; the token itself is a [`Token`] in `instance.tokens`.
#[derive(Debug, Clone)]
pub struct OAuth2AccessToken {
    pub client_id: String,
    pub user: String,
    pub scope: Vec<String>,
    pub expires_at: Instant,
}

impl OAuth2Client {
    /// The sample instance's link, named Bitgate, without a redirect URL.
    pub fn demo() -> Self {
        Self {
            client_id: DEMO_OAUTH2_CLIENT_ID.into(),
            client_secret: DEMO_OAUTH2_CLIENT_SECRET.into(),
            name: "Bitgate".into(),
            redirect_url: None,
        }
    }
}

impl Instance {
    fn oauth2_client(&self, client_id: &str) -> Option<&OAuth2Client> {
        self.oauth2_clients.iter().find(|c| c.client_id == client_id)
    }

    /// Revokes every grant of a client, as a user removing it under
    /// "Authorized applications" (or an admin deleting the link's tokens)
    /// does: its codes, refresh tokens and access tokens stop working.
    pub fn revoke_oauth2_grants(&mut self, client_id: &str) {
        self.oauth2_codes.retain(|c| c.client_id != client_id);
        self.oauth2_refresh_tokens.retain(|r| r.client_id != client_id);
        let revoked: Vec<String> = self
            .oauth2_access_tokens
            .iter()
            .filter(|(_, a)| a.client_id == client_id)
            .map(|(secret, _)| secret.clone())
            .collect();
        self.tokens.retain(|t| !revoked.contains(&t.secret));
        self.oauth2_access_tokens.retain(|_, a| a.client_id != client_id);
    }

    /// Makes a client's access tokens expired now, as an hour passing
    /// would; its refresh tokens still work.
    pub fn expire_oauth2_access_tokens(&mut self, client_id: &str) {
        let now = Instant::now();
        for access in self.oauth2_access_tokens.values_mut().filter(|a| a.client_id == client_id) {
            access.expires_at = now;
        }
    }

    /// Whether `secret` is an OAuth 2.0 access token past its expiry.
    pub(super) fn oauth2_expired(&self, secret: &str) -> bool {
        self.oauth2_access_tokens.get(secret).is_some_and(|a| a.expires_at <= Instant::now())
    }

    /// Issues an access token and a refresh token for a grant; the token
    /// endpoint's answer.
    fn issue_oauth2(&mut self, client_id: &str, user: &str, scope: &[String], redirect_uri: &str) -> Response {
        let access = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let refresh = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let has = |wanted: &[&str]| scope.iter().any(|s| wanted.contains(&s.as_str()));
        let reads = has(&["REPO_READ", "REPO_WRITE", "REPO_ADMIN", "PROJECT_ADMIN"]);
        self.tokens.push(Token {
            secret: access.clone(),
            owner: user.to_owned(),
            project_read: reads,
            repository_read: reads,
            repository_admin: has(&["REPO_ADMIN", "PROJECT_ADMIN"]),
        });
        let lifetime = self.oauth2_access_token_lifetime;
        self.oauth2_access_tokens.insert(
            access.clone(),
            OAuth2AccessToken {
                client_id: client_id.to_owned(),
                user: user.to_owned(),
                scope: scope.to_vec(),
                expires_at: Instant::now() + lifetime,
            },
        );
        self.oauth2_refresh_tokens.push(OAuth2RefreshToken {
            token: refresh.clone(),
            client_id: client_id.to_owned(),
            user: user.to_owned(),
            scope: scope.to_vec(),
            redirect_uri: redirect_uri.to_owned(),
            expires_at: Instant::now() + self.oauth2_refresh_token_lifetime,
            spent: false,
        });
        let body = json!({
            "access_token": access, "token_type": "bearer", "expires_in": lifetime.as_secs(),
            "refresh_token": refresh, "scope": scope.join(" "),
        });
        ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body)).into_response()
    }
}

/// The provider's default lifetimes (`atlassian.oauth2.provider.*`).
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
pub const CODE_LIFETIME: Duration = Duration::from_secs(10);

/// The parameters of a request: the query's, then the form body's (a
/// servlet's `getParameter` gives the query's first).
struct Parameters(Vec<(String, String)>);

impl Parameters {
    fn of(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut all: Vec<(String, String)> =
            query.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if form {
            all.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Self(all)
    }

    /// The first non-empty value of a parameter.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }
}

/// A page for a request that cannot go back to the client: 400, no redirect.
fn error_page(title: &str, message: &str) -> Response {
    let body = format!("<h1>{}</h1><p>{}</p>", escape(title), escape(message));
    (StatusCode::BAD_REQUEST, page(title, &body)).into_response()
}

/// Back to the client's redirect URI with the query parameters added (after
/// any it already has); 302, as the provider redirects.
fn redirect(redirect_uri: &str, parameters: &[(&str, Option<&str>)]) -> Response {
    let Ok(mut target) = url::Url::parse(redirect_uri) else {
        return error_page("Invalid redirect URI", "The redirect URI is not a URL.");
    };
    for (name, value) in parameters {
        if let Some(value) = value {
            target.query_pairs_mut().append_pair(name, value);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// The scope as requested: its known wire strings, or the first unknown one.
fn requested_scope(scope: Option<&str>) -> Result<Vec<String>, String> {
    let words: Vec<&str> = scope.unwrap_or_default().split_whitespace().collect();
    if words.is_empty() {
        return Ok(vec!["PUBLIC_REPOS".to_owned()]);
    }
    let mut scopes = Vec::new();
    for word in words {
        if !SCOPES.iter().any(|(name, _)| *name == word) {
            return Err(word.to_owned());
        }
        if !scopes.iter().any(|s| s == word) {
            scopes.push(word.to_owned());
        }
    }
    Ok(scopes)
}

/// The checks both the page and the decision make before anything may go
/// back to the client: the client exists and the redirect URI is its own.
#[allow(clippy::result_large_err, reason = "a refusal is the handler's answer, built once per request")]
fn trusted_client<'a>(instance: &'a Instance, parameters: &Parameters) -> Result<(&'a OAuth2Client, String), Response> {
    let Some(client) = parameters.get("client_id").and_then(|id| instance.oauth2_client(id)) else {
        return Err(error_page("Invalid client", "No application link has this client_id."));
    };
    let redirect_uri = parameters.get("redirect_uri").unwrap_or_default();
    if client.redirect_url.as_deref() != Some(redirect_uri) {
        return Err(error_page(
            "Invalid redirect URI",
            "The redirect_uri does not match the redirect URL of the application link.",
        ));
    }
    Ok((client, redirect_uri.to_owned()))
}

/// The consent page, or the error the client's redirect URI receives.
async fn authorize_page(State(state): State<Shared>, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let instance = read(&state);
    let parameters = Parameters::of(uri.query(), &headers, &[]);
    let (client, redirect_uri) = match trusted_client(&instance, &parameters) {
        Ok(trusted) => trusted,
        Err(refused) => return refused,
    };
    let state_value = parameters.get("state");
    let back = |error: &str, description: &str| {
        redirect(
            &redirect_uri,
            &[("error", Some(error)), ("error_description", Some(description)), ("state", state_value)],
        )
    };
    if parameters.get("response_type") != Some("code") {
        return back(
            "unsupported_response_type",
            "Only the authorization code flow (response_type=code) is supported.",
        );
    }
    let scope = match requested_scope(parameters.get("scope")) {
        Ok(scope) => scope,
        Err(unknown) => return back("invalid_scope", &format!("Unknown scope: {unknown}")),
    };
    let method = parameters.get("code_challenge_method");
    if parameters.get("code_challenge").is_some() && !matches!(method, None | Some("S256") | Some("plain")) {
        return back("invalid_request", "code_challenge_method must be S256 or plain.");
    }
    let user = instance.users.iter().find(|u| u.slug == DEMO_USER);
    let signed_in = user.map_or_else(|| DEMO_USER.to_owned(), |u| format!("{} ({})", u.display_name, u.slug));
    let hidden: String = ["client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"]
        .iter()
        .filter_map(|name| {
            let value = if *name == "scope" { Some(scope.join(" ")) } else { parameters.get(name).map(str::to_owned) };
            value.map(|v| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(&v)))
        })
        .collect();
    let asked: String = scope
        .iter()
        .filter_map(|s| SCOPES.iter().find(|(name, _)| name == s))
        .map(|(name, words)| format!("<li><strong>{}</strong> <code>{name}</code></li>", escape(words)))
        .collect();
    let body = format!(
        "<h1>{name} wants to access your Bitbucket account</h1>\
         <p>Signed in as {signed_in}.</p>\
         <p>{name} will be able to act as you with these permissions, never more than you have:</p>\
         <ul class=\"scopes\">{asked}</ul>\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        name = escape(&client.name),
        signed_in = escape(&signed_in),
        action = escape(&format!("{}{AUTHORIZE_PATH}", instance.context_path)),
    );
    page(&format!("Authorize {}", client.name), &body).into_response()
}

/// Allow or Deny: back to the redirect URI with a code, or `access_denied`.
async fn decide(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let parameters = Parameters::of(None, &headers, &body);
    let mut instance = write(&state);
    let (client_id, redirect_uri) = match trusted_client(&instance, &parameters) {
        Ok((client, redirect_uri)) => (client.client_id.clone(), redirect_uri),
        Err(refused) => return refused,
    };
    let state_value = parameters.get("state");
    match parameters.get("decision") {
        Some("allow") => {
            let Ok(scope) = requested_scope(parameters.get("scope")) else {
                return redirect(&redirect_uri, &[("error", Some("invalid_scope")), ("state", state_value)]);
            };
            let challenge = parameters.get("code_challenge").map(|challenge| {
                (challenge.to_owned(), parameters.get("code_challenge_method").unwrap_or("plain").to_owned())
            });
            let code = uuid::Uuid::new_v4().simple().to_string();
            instance.oauth2_codes.push(OAuth2Code {
                code: code.clone(),
                client_id,
                redirect_uri: redirect_uri.clone(),
                challenge,
                scope,
                user: DEMO_USER.to_owned(),
                issued_at: Instant::now(),
                used: false,
            });
            redirect(&redirect_uri, &[("code", Some(&code)), ("state", state_value)])
        }
        Some("deny") => redirect(
            &redirect_uri,
            &[
                ("error", Some("access_denied")),
                ("error_description", Some("The user denied the request.")),
                ("state", state_value),
            ],
        ),
        _ => error_page("Invalid request", "Choose Allow or Deny."),
    }
}

/// The token endpoint's error: `{"error", "error_description"}`.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

fn invalid_grant(description: &str) -> Response {
    token_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// The client's id and secret: HTTP Basic, or the `client_id` and
/// `client_secret` parameters.
fn client_credentials(headers: &HeaderMap, parameters: &Parameters) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, secret)| (id.to_owned(), secret.to_owned())));
    basic.or_else(|| Some((parameters.get("client_id")?.to_owned(), parameters.get("client_secret")?.to_owned())))
}

/// Whether a PKCE verifier answers the code's challenge (RFC 7636 §4.6).
fn pkce_matches(challenge: &str, method: &str, verifier: &str) -> bool {
    match method {
        "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge,
        _ => verifier == challenge,
    }
}

async fn token(
    State(state): State<Shared>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parameters = Parameters::of(uri.query(), &headers, &body);
    let mut instance = write(&state);
    let Some((client_id, secret)) = client_credentials(&headers, &parameters) else {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
    };
    if instance.oauth2_client(&client_id).is_none_or(|c| c.client_secret != secret) {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
    }
    match parameters.get("grant_type") {
        None => token_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing parameter: grant_type"),
        Some("authorization_code") => {
            let Some(code) = parameters.get("code") else {
                return token_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing parameter: code");
            };
            let lifetime = instance.oauth2_code_lifetime;
            // A code the provider never issued, or issued to another client,
            // is the same refusal: that is what a "dummy-code exchange" that
            // checks a client id and secret before saving them relies on.
            let Some(found) = instance.oauth2_codes.iter_mut().find(|c| c.code == code && c.client_id == client_id)
            else {
                return invalid_grant("The authorization code is invalid.");
            };
            // Spent by this first presentation, whatever comes of it.
            if std::mem::replace(&mut found.used, true) {
                return invalid_grant("The authorization code has already been used.");
            }
            if found.issued_at.elapsed() > lifetime {
                return invalid_grant("The authorization code has expired.");
            }
            if parameters.get("redirect_uri") != Some(found.redirect_uri.as_str()) {
                return invalid_grant("The redirect_uri does not match the one of the authorization request.");
            }
            if let Some((challenge, method)) = &found.challenge {
                let Some(verifier) = parameters.get("code_verifier") else {
                    return token_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing parameter: code_verifier");
                };
                if !pkce_matches(challenge, method, verifier) {
                    return invalid_grant("The code_verifier does not match the code_challenge.");
                }
            }
            let (user, scope, redirect_uri) = (found.user.clone(), found.scope.clone(), found.redirect_uri.clone());
            instance.issue_oauth2(&client_id, &user, &scope, &redirect_uri)
        }
        Some("refresh_token") => {
            let Some(refresh) = parameters.get("refresh_token") else {
                return token_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing parameter: refresh_token");
            };
            let redirect_uri = parameters.get("redirect_uri");
            let Some(found) =
                instance.oauth2_refresh_tokens.iter_mut().find(|r| r.token == refresh && r.client_id == client_id)
            else {
                return invalid_grant("The refresh token is invalid.");
            };
            if redirect_uri != Some(found.redirect_uri.as_str()) {
                // Bare, as the provider answers it: nothing says why.
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
            }
            if found.spent || found.expires_at <= Instant::now() {
                return invalid_grant("The refresh token is invalid.");
            }
            found.spent = true;
            let (user, scope, redirect_uri) = (found.user.clone(), found.scope.clone(), found.redirect_uri.clone());
            instance.issue_oauth2(&client_id, &user, &scope, &redirect_uri)
        }
        Some(other) => {
            token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &format!("Unsupported grant type: {other}"))
        }
    }
}

pub(super) fn routes() -> Router<Shared> {
    Router::new().route(AUTHORIZE_PATH, get(authorize_page).post(decide)).route(TOKEN_PATH, axum::routing::post(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_the_wire_strings_and_none_is_public_repositories() {
        assert_eq!(requested_scope(Some("REPO_READ  REPO_ADMIN")), Ok(vec!["REPO_READ".into(), "REPO_ADMIN".into()]));
        assert_eq!(requested_scope(None), Ok(vec!["PUBLIC_REPOS".into()]));
        assert_eq!(requested_scope(Some("REPO_READ repository")), Err("repository".into()));
    }

    #[test]
    fn pkce_checks_s256_and_plain() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", verifier));
        assert!(!pkce_matches("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", "another"));
        assert!(pkce_matches(verifier, "plain", verifier));
    }

    #[test]
    fn parameters_come_from_the_query_then_a_form_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        let parameters = Parameters::of(Some("grant_type=refresh_token&code="), &headers, b"code=c0de&grant_type=x");
        assert_eq!((parameters.get("grant_type"), parameters.get("code")), (Some("refresh_token"), Some("c0de")));
        let json_body = Parameters::of(None, &HeaderMap::new(), b"code=c0de");
        assert_eq!(json_body.get("code"), None, "a body that is not a form is not read");
    }
}
