//! The legacy OAuth 1.0a application link, RSA-SHA1, as CDS used it and HCP
//! Terraform still does (bitbucket-next.md §6, bitbucket-protocol.md §6): an
//! admin creates a Generic Application link (on Data Center 7.21 and later
//! by choosing "Atlassian product") with incoming authentication: a consumer
//! key, a consumer name and the consumer's RSA public key. The consumer then
//! runs the three legs on Bitbucket's servlets, under the context path:
//!
//! - `POST {ctx}/plugins/servlet/oauth/request-token`, signed by the
//!   consumer with `oauth_callback` (`oob` in CDS): `oauth_token`,
//!   `oauth_token_secret`, `oauth_callback_confirmed=true`.
//! - `GET {ctx}/plugins/servlet/oauth/authorize?oauth_token=…`: a consent
//!   page, signed in as [`DEMO_USER`], with Allow and Deny; back to the
//!   callback with `oauth_token` and `oauth_verifier` (or a page showing the
//!   verifier for `oob`).
//! - `POST {ctx}/plugins/servlet/oauth/access-token`, signed with the
//!   request token and `oauth_verifier`: the access token.
//!
//! Every later call signed with the access token acts as the user who
//! approved, with that user's own permissions (a link has no scopes):
//! [`authenticate`] verifies an `Authorization: OAuth …` header before any
//! handler runs and hands the request on with the token's [`Token`], which
//! `caller()` then finds as it finds any other.
//!
//! The verifier is the simulator's own, written from RFC 5849 alone (§3.4.1
//! base string, §3.6 percent-encoding, §3.4.3 RSA-SHA1): it shares nothing
//! with the signer Bitgate uses, so that one's mistakes show here.
//!
//! Refusals follow Atlassian's OAuth service provider, which is built on
//! net.oauth (`OAuthServlet.handleException`, ported with the rest of the
//! provider into Atlassian's own Jenkins plugin,
//! jenkinsci/atlassian-bitbucket-server-integration-plugin
//! `OAuth1aRequestFilter`, `AccessTokenRestEndpoint`): a
//! `WWW-Authenticate: OAuth realm="…", oauth_problem="…"` header, the same
//! parameters as a form-encoded body, and net.oauth's status for each
//! problem: 400 for `version_rejected`, `parameter_absent`,
//! `parameter_rejected`, `timestamp_refused` and
//! `signature_method_rejected`, 401 for the others (`consumer_key_unknown`,
//! `signature_invalid`, `nonce_used`, `token_rejected`, `token_expired`,
//! `permission_unknown`, `permission_denied`). The same answer comes from
//! the REST API, since the provider's filter answers before Bitbucket's REST
//! layer runs. A `signature_invalid` answer carries the base string the
//! simulator computed (`oauth_signature_base_string`), as net.oauth's
//! validator adds it: what a person comparing with their own needs. The
//! checks run in net.oauth's order: the token first, then the version, the
//! timestamp (5 minutes either way, `oauth_acceptable_timestamps=lo-hi`),
//! the nonce (recorded even if the signature then fails), the signature.
//!
//! UNVERIFIED, chosen here: any method but RSA-SHA1 is
//! `signature_method_rejected` (a real link may answer HMAC-SHA1 with
//! `signature_invalid` instead); a call signed without `oauth_token` (2-legged
//! OAuth, which the link does not allow) is `permission_denied`; the token
//! answers' `text/plain` type and the access token's `oauth_expires_in`
//! (5 years) and `oauth_authorization_expires_in` come from the port above.
//! Deny sends `oauth_verifier=denied` to the callback, as the port's
//! authorize page does (`DENIED_STATUS`), rather than an `oauth_problem`.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::{Body, Bytes},
    extract::{OriginalUri, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use rsa::{
    pkcs1::DecodeRsaPublicKey, pkcs1v15, pkcs8::DecodePublicKey, signature::Verifier, traits::PublicKeyParts,
    RsaPublicKey,
};

use super::{page, read, write, Instance, Shared, Token, DEMO_USER};
use crate::escape;

pub const REQUEST_TOKEN_PATH: &str = "/plugins/servlet/oauth/request-token";
pub const AUTHORIZE_PATH: &str = "/plugins/servlet/oauth/authorize";
pub const ACCESS_TOKEN_PATH: &str = "/plugins/servlet/oauth/access-token";
/// Where an admin lists and creates application links.
pub const LINKS_PATH: &str = "/plugins/servlet/applinks/listApplicationLinks";

/// How far a timestamp may be from the simulator's clock, either way
/// (net.oauth's `SimpleOAuthValidator` default: 5 minutes).
const TIMESTAMP_WINDOW_SECONDS: u64 = 300;
/// How long a request token waits for its approval and exchange.
pub const REQUEST_TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// What the access-token answer says of the token and of its session.
const ACCESS_TOKEN_EXPIRES_IN: u64 = 157_680_000;
const AUTHORIZATION_EXPIRES_IN: u64 = 160_272_000;
/// The largest form body read for its parameters.
const BODY_LIMIT: usize = 1 << 20;

/// An application link with incoming OAuth 1.0a authentication.
#[derive(Debug, Clone)]
pub struct ApplicationLink {
    pub consumer_key: String,
    /// The application's name in the links list.
    pub name: String,
    /// What the consent page calls the consumer.
    pub consumer_name: String,
    /// As pasted: SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), PKCS#1
    /// (`BEGIN RSA PUBLIC KEY`), or the bare base64 of either.
    pub public_key_pem: String,
}

/// Where a request token stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Pending,
    Allowed { user: String, verifier: String },
    Denied { user: String },
}

#[derive(Debug, Clone)]
pub struct RequestToken {
    pub token: String,
    pub secret: String,
    pub consumer_key: String,
    /// `oauth_callback`: a URL, or `oob`.
    pub callback: String,
    pub approval: Approval,
    pub issued_at: Instant,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub secret: String,
    pub consumer_key: String,
    pub user: String,
    /// The secret of the [`Token`] in `instance.tokens` it stands for: never
    /// given out, so no one can send it as `Bearer`.
    pub bearer: String,
}

/// The key of a pasted public key, in any of the forms an admin pastes.
pub fn public_key(pasted: &str) -> Option<RsaPublicKey> {
    let text = pasted.replace("\r\n", "\n");
    let text = text.trim();
    if let Ok(key) = RsaPublicKey::from_public_key_pem(text).or_else(|_| RsaPublicKey::from_pkcs1_pem(text)) {
        return Some(key);
    }
    let der = STANDARD.decode(text.split_whitespace().collect::<String>()).ok()?;
    RsaPublicKey::from_public_key_der(&der).or_else(|_| RsaPublicKey::from_pkcs1_der(&der)).ok()
}

impl Instance {
    /// Adds an application link (replacing one with the same consumer key),
    /// as an admin does on the links page; its consumer name is its name.
    pub fn add_application_link(&mut self, consumer_key: &str, name: &str, public_key_pem: &str) {
        self.application_links.retain(|l| l.consumer_key != consumer_key);
        self.application_links.push(ApplicationLink {
            consumer_key: consumer_key.to_owned(),
            name: name.to_owned(),
            consumer_name: name.to_owned(),
            public_key_pem: public_key_pem.to_owned(),
        });
    }

    /// Deletes a link and everything issued to it.
    pub fn remove_application_link(&mut self, consumer_key: &str) {
        self.application_links.retain(|l| l.consumer_key != consumer_key);
        self.oauth1_request_tokens.retain(|t| t.consumer_key != consumer_key);
        let bearers: Vec<String> = self
            .oauth1_access_tokens
            .iter()
            .filter(|t| t.consumer_key == consumer_key)
            .map(|t| t.bearer.clone())
            .collect();
        self.tokens.retain(|t| !bearers.contains(&t.secret));
        self.oauth1_access_tokens.retain(|t| t.consumer_key != consumer_key);
        self.oauth1_nonces.remove(consumer_key);
    }

    fn application_link(&self, consumer_key: &str) -> Result<ApplicationLink, Problem> {
        self.application_links
            .iter()
            .find(|l| l.consumer_key == consumer_key)
            .cloned()
            .ok_or_else(|| Problem::new("consumer_key_unknown"))
    }
}

/// RFC 5849 §3.6: the unreserved characters as they are, every other byte
/// of the UTF-8 as `%XX` in capitals.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `%XX` sequences back to bytes (a malformed one stays as it is); `+` is
/// a plus, as in a header.
fn decode(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex));
        match (bytes[i], pair) {
            (b'%', (Some(high), Some(low))) => {
                decoded.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The parameters of an `Authorization: OAuth k="v", …` header, decoded,
/// `realm` left out (RFC 5849 §3.5.1, §3.4.1.3.1); `None` for another scheme.
fn header_parameters(value: &str) -> Option<Vec<(String, String)>> {
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case("oauth ") {
        return None;
    }
    let parameters = value[6..]
        .split(',')
        .filter_map(|item| {
            let (name, quoted) = item.trim().split_once('=')?;
            let quoted = quoted.trim();
            let raw = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(quoted);
            Some((decode(name.trim()), decode(raw)))
        })
        .filter(|(name, _)| name != "realm")
        .collect();
    Some(parameters)
}

/// A refusal, with the parameters net.oauth adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    problem: &'static str,
    details: Vec<(&'static str, String)>,
}

impl Problem {
    fn new(problem: &'static str) -> Self {
        Self { problem, details: Vec::new() }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    /// net.oauth's `OAuthServlet.PROBLEM_TO_HTTP_CODE`.
    fn status(&self) -> StatusCode {
        match self.problem {
            "version_rejected"
            | "parameter_absent"
            | "parameter_rejected"
            | "timestamp_refused"
            | "signature_method_rejected" => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The answer: the `WWW-Authenticate` header (realm, then the `oauth_*`
    /// parameters) and the parameters again as a form body.
    fn answer(&self, realm: &str) -> Response {
        let parameters: Vec<(&str, &str)> = std::iter::once(("oauth_problem", self.problem))
            .chain(self.details.iter().map(|(name, value)| (*name, value.as_str())))
            .collect();
        let mut challenge = format!("OAuth realm=\"{}\"", encode(realm));
        for (name, value) in parameters.iter().filter(|(name, _)| name.starts_with("oauth_")) {
            challenge.push_str(&format!(", {}=\"{}\"", encode(name), encode(value)));
        }
        let body: Vec<String> =
            parameters.iter().map(|(name, value)| format!("{}={}", encode(name), encode(value))).collect();
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded;charset=UTF-8")],
            body.join("&"),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// A request as OAuth 1.0a reads it.
#[derive(Debug, Clone)]
struct Message {
    method: String,
    /// `scheme://host[:port]/path`, as RFC 5849 §3.4.1.2 makes it.
    base_uri: String,
    /// `scheme://host[:port]{context path}`: the realm of a refusal.
    realm: String,
    /// The header's parameters (realm aside), then the query's, then the
    /// form body's, decoded.
    parameters: Vec<(String, String)>,
}

impl Message {
    /// The message of a request; `parts.uri` or, inside the context path's
    /// nest, the original URI, which still has the context path.
    fn of(parts: &Parts, body: &[u8], context_path: &str) -> Self {
        let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let https = parts.extensions.get::<crate::ReachedOverTls>().is_some();
        let scheme = if https { "https" } else { "http" };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| uri.authority().map(|a| a.to_string()))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let default_port = if https { ":443" } else { ":80" };
        let host = host.strip_suffix(default_port).unwrap_or(&host);
        let mut parameters = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(header_parameters)
            .unwrap_or_default();
        if let Some(query) = uri.query() {
            parameters.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        if is_form(&parts.headers) {
            parameters.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Self {
            method: parts.method.as_str().to_ascii_uppercase(),
            base_uri: format!("{scheme}://{host}{}", uri.path()),
            realm: format!("{scheme}://{host}{context_path}"),
            parameters,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// RFC 5849 §3.4.1: the method, the base URI and the normalized
    /// parameters (each name and value encoded, sorted by name then value,
    /// `oauth_signature` left out), each encoded and joined by `&`.
    fn base_string(&self) -> String {
        let mut pairs: Vec<(String, String)> = self
            .parameters
            .iter()
            .filter(|(name, _)| name != "oauth_signature")
            .map(|(name, value)| (encode(name), encode(value)))
            .collect();
        pairs.sort();
        let normalized: Vec<String> = pairs.into_iter().map(|(name, value)| format!("{name}={value}")).collect();
        format!("{}&{}&{}", self.method, encode(&self.base_uri), encode(&normalized.join("&")))
    }

    /// The parameters every signed request carries, and `extra`: absent
    /// ones are named together, as net.oauth's `requireParameters` does.
    fn require(&self, extra: &[&str]) -> Result<(), Problem> {
        let standard =
            ["oauth_consumer_key", "oauth_signature_method", "oauth_signature", "oauth_timestamp", "oauth_nonce"];
        let absent: Vec<&str> =
            standard.iter().chain(extra).copied().filter(|name| self.get(name).is_none_or(str::is_empty)).collect();
        if absent.is_empty() {
            return Ok(());
        }
        Err(Problem::new("parameter_absent").with("oauth_parameters_absent", absent.join("&")))
    }

    /// net.oauth's `checkSingleParameters`: no `oauth_*` parameter twice.
    fn single_parameters(&self) -> Result<(), Problem> {
        let mut seen: Vec<&str> = Vec::new();
        let mut repeated: Vec<&str> = Vec::new();
        for (name, _) in self.parameters.iter().filter(|(name, _)| name.starts_with("oauth_")) {
            if seen.contains(&name.as_str()) && !repeated.contains(&name.as_str()) {
                repeated.push(name);
            }
            seen.push(name);
        }
        if repeated.is_empty() {
            return Ok(());
        }
        Err(Problem::new("parameter_rejected").with("oauth_parameters_rejected", repeated.join("&")))
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether `signature` (base64) is the link's RSASSA-PKCS1-v1_5 signature,
/// over SHA-1, of `base_string`.
fn signed_by(link: &ApplicationLink, base_string: &str, signature: &str) -> bool {
    let Some(key) = public_key(&link.public_key_pem) else { return false };
    let Ok(bytes) = STANDARD.decode(signature.trim()) else { return false };
    let Ok(signature) = pkcs1v15::Signature::try_from(bytes.as_slice()) else { return false };
    pkcs1v15::VerifyingKey::<sha1::Sha1>::new(key).verify(base_string.as_bytes(), &signature).is_ok()
}

/// net.oauth's `validateMessage`, for a message the link signed: the
/// version, the timestamp, the nonce (recorded here, before the signature
/// is checked, as net.oauth records it), the method, the signature.
fn validate(instance: &mut Instance, message: &Message, link: &ApplicationLink) -> Result<(), Problem> {
    message.single_parameters()?;
    if message.get("oauth_version").is_some_and(|v| v != "1.0") {
        return Err(Problem::new("version_rejected").with("oauth_acceptable_versions", "1.0-1.0"));
    }
    let now = now_seconds().saturating_add_signed(instance.oauth1_clock_offset_seconds);
    let (lowest, highest) = (now.saturating_sub(TIMESTAMP_WINDOW_SECONDS), now + TIMESTAMP_WINDOW_SECONDS);
    let timestamp = message.get("oauth_timestamp").and_then(|t| t.parse::<u64>().ok());
    let Some(timestamp) = timestamp.filter(|t| (lowest..=highest).contains(t)) else {
        return Err(
            Problem::new("timestamp_refused").with("oauth_acceptable_timestamps", format!("{lowest}-{highest}"))
        );
    };
    let nonce = message.get("oauth_nonce").unwrap_or_default().to_owned();
    let seen = instance.oauth1_nonces.entry(link.consumer_key.clone()).or_default();
    // Kept as long as their timestamp could still be accepted.
    seen.retain(|(_, at)| *at >= lowest);
    if instance.oauth1_replayed_requests > 0 {
        instance.oauth1_replayed_requests -= 1;
        seen.push((nonce.clone(), timestamp));
    }
    if seen.iter().any(|(used, _)| *used == nonce) {
        return Err(Problem::new("nonce_used"));
    }
    seen.push((nonce, timestamp));
    let method = message.get("oauth_signature_method").unwrap_or_default();
    if method != "RSA-SHA1" {
        return Err(Problem::new("signature_method_rejected").with("oauth_acceptable_signature_methods", "RSA-SHA1"));
    }
    let base_string = message.base_string();
    if !signed_by(link, &base_string, message.get("oauth_signature").unwrap_or_default()) {
        return Err(Problem::new("signature_invalid")
            .with("oauth_signature", message.get("oauth_signature").unwrap_or_default())
            .with("oauth_signature_base_string", base_string)
            .with("oauth_signature_method", "RSA-SHA1"));
    }
    Ok(())
}

/// A random token: 32 letters and digits.
fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The request's message, after its body is read: the parts and the body
/// come back so that a request that passes can be handed on.
async fn message_of(state: &Shared, request: Request) -> Result<(Message, Parts, Bytes), Response> {
    let context_path =
        state.read().map(|i| i.context_path.clone()).unwrap_or_else(|p| p.into_inner().context_path.clone());
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "The body is too large.").into_response());
    };
    let message = Message::of(&parts, &bytes, &context_path);
    Ok((message, parts, bytes))
}

/// A token answer: form-encoded pairs, typed `text/plain` as the provider's
/// servlets type it.
fn token_answer(pairs: &[(&str, &str)]) -> Response {
    let body: Vec<String> = pairs.iter().map(|(name, value)| format!("{}={}", encode(name), encode(value))).collect();
    ([(header::CONTENT_TYPE, "text/plain;charset=UTF-8")], body.join("&")).into_response()
}

async fn request_token(State(state): State<Shared>, request: Request) -> Response {
    let (message, _, _) = match message_of(&state, request).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let outcome = {
        let mut instance = write(&state);
        issue_request_token(&mut instance, &message)
    };
    match outcome {
        Ok((token, secret)) => token_answer(&[
            ("oauth_token", &token),
            ("oauth_token_secret", &secret),
            ("oauth_callback_confirmed", "true"),
        ]),
        Err(problem) => problem.answer(&message.realm),
    }
}

fn issue_request_token(instance: &mut Instance, message: &Message) -> Result<(String, String), Problem> {
    message.require(&["oauth_callback"])?;
    let link = instance.application_link(message.get("oauth_consumer_key").unwrap_or_default())?;
    validate(instance, message, &link)?;
    let callback = message.get("oauth_callback").unwrap_or_default().to_owned();
    let usable = callback == "oob"
        || url::Url::parse(&callback).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
    if !usable {
        return Err(Problem::new("parameter_rejected").with("oauth_parameters_rejected", "oauth_callback"));
    }
    let (token, secret) = (random_token(), random_token());
    instance.oauth1_request_tokens.retain(|t| t.issued_at.elapsed() < REQUEST_TOKEN_LIFETIME);
    instance.oauth1_request_tokens.push(RequestToken {
        token: token.clone(),
        secret: secret.clone(),
        consumer_key: link.consumer_key,
        callback,
        approval: Approval::Pending,
        issued_at: Instant::now(),
    });
    Ok((token, secret))
}

async fn access_token(State(state): State<Shared>, request: Request) -> Response {
    let (message, _, _) = match message_of(&state, request).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let outcome = {
        let mut instance = write(&state);
        issue_access_token(&mut instance, &message)
    };
    match outcome {
        Ok((token, secret)) => token_answer(&[
            ("oauth_token", &token),
            ("oauth_token_secret", &secret),
            ("oauth_expires_in", &ACCESS_TOKEN_EXPIRES_IN.to_string()),
            ("oauth_session_handle", &random_token()),
            ("oauth_authorization_expires_in", &AUTHORIZATION_EXPIRES_IN.to_string()),
        ]),
        Err(problem) => problem.answer(&message.realm),
    }
}

/// `AccessTokenServlet`'s order: the request token (its expiry, its
/// approval, its consumer, the verifier), then the message itself.
fn issue_access_token(instance: &mut Instance, message: &Message) -> Result<(String, String), Problem> {
    message.require(&["oauth_token"])?;
    let presented = message.get("oauth_token").unwrap_or_default();
    let Some(request_token) = instance.oauth1_request_tokens.iter().find(|t| t.token == presented).cloned() else {
        return Err(Problem::new("token_rejected"));
    };
    if request_token.issued_at.elapsed() >= REQUEST_TOKEN_LIFETIME {
        return Err(Problem::new("token_expired"));
    }
    let user = match &request_token.approval {
        Approval::Pending => return Err(Problem::new("permission_unknown")),
        Approval::Denied { .. } => return Err(Problem::new("permission_denied")),
        Approval::Allowed { user, verifier } => {
            if message.get("oauth_consumer_key") != Some(request_token.consumer_key.as_str()) {
                return Err(Problem::new("token_rejected"));
            }
            message.require(&["oauth_token", "oauth_verifier"])?;
            if message.get("oauth_verifier") != Some(verifier.as_str()) {
                return Err(Problem::new("token_rejected"));
            }
            user.clone()
        }
    };
    let link = instance.application_link(&request_token.consumer_key)?;
    validate(instance, message, &link)?;
    let (token, secret, bearer) = (random_token(), random_token(), format!("oauth1-{}", uuid::Uuid::new_v4()));
    instance.oauth1_request_tokens.retain(|t| t.token != request_token.token);
    // No scopes on a link: the user's own permissions, which the simulator's users all have.
    instance.tokens.push(Token {
        secret: bearer.clone(),
        owner: user.clone(),
        project_read: true,
        repository_read: true,
        repository_admin: true,
    });
    instance.oauth1_access_tokens.push(AccessToken {
        token: token.clone(),
        secret: secret.clone(),
        consumer_key: link.consumer_key,
        user,
        bearer,
    });
    Ok((token, secret))
}

/// The user an access token signs for: the secret of its [`Token`].
fn resource_bearer(instance: &mut Instance, message: &Message) -> Result<String, Problem> {
    message.require(&[])?;
    let Some(presented) = message.get("oauth_token").filter(|t| !t.is_empty()) else {
        // 2-legged OAuth: the link's "Allow 2-Legged OAuth" is left unticked.
        return Err(Problem::new("permission_denied"));
    };
    let Some(access) = instance.oauth1_access_tokens.iter().find(|t| t.token == presented).cloned() else {
        return Err(Problem::new("token_rejected"));
    };
    if message.get("oauth_consumer_key") != Some(access.consumer_key.as_str()) {
        return Err(Problem::new("token_rejected"));
    }
    let link = instance.application_link(&access.consumer_key)?;
    validate(instance, message, &link)?;
    Ok(access.bearer)
}

/// Before every handler: a request with `Authorization: OAuth …` is
/// verified, then handed on as its access token's [`Token`] (in the
/// `Authorization` header, where `caller()` reads it), or refused here as
/// the provider's filter refuses it. The OAuth servlets check their own
/// requests; other requests pass as they are.
pub(super) async fn authenticate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let signed = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("oauth "));
    let context_path =
        state.read().map(|i| i.context_path.clone()).unwrap_or_else(|p| p.into_inner().context_path.clone());
    let path = request.uri().path();
    let servlet = path.strip_prefix(context_path.as_str()).unwrap_or(path).starts_with("/plugins/servlet/oauth/");
    if !signed || servlet {
        return next.run(request).await;
    }
    let (message, parts, body) = match message_of(&state, request).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let outcome = {
        let mut instance = write(&state);
        resource_bearer(&mut instance, &message)
    };
    match outcome.map(|bearer| HeaderValue::from_str(&format!("Bearer {bearer}"))) {
        Ok(Ok(value)) => {
            let mut request = Request::from_parts(parts, Body::from(body));
            request.headers_mut().insert(header::AUTHORIZATION, value);
            next.run(request).await
        }
        Ok(Err(_)) => Problem::new("token_rejected").answer(&message.realm),
        Err(problem) => problem.answer(&message.realm),
    }
}

/// A page for a request token that cannot be approved.
fn token_problem_page(problem: &Problem) -> Response {
    let body = format!(
        "<h1>The application's request cannot be approved</h1><p><code>oauth_problem={}</code></p>",
        escape(problem.problem)
    );
    (problem.status(), page("OAuth error", &body)).into_response()
}

/// The request token a person is asked about: one that waits for approval.
fn waiting(instance: &Instance, token: &str) -> Result<(RequestToken, ApplicationLink), Problem> {
    let found = instance.oauth1_request_tokens.iter().find(|t| t.token == token).cloned();
    let found = found.ok_or_else(|| Problem::new("token_rejected"))?;
    if found.approval != Approval::Pending {
        return Err(Problem::new("token_used"));
    }
    if found.issued_at.elapsed() >= REQUEST_TOKEN_LIFETIME {
        return Err(Problem::new("token_expired"));
    }
    let link = instance.application_link(&found.consumer_key)?;
    Ok((found, link))
}

async fn authorize_page(State(state): State<Shared>, OriginalUri(uri): OriginalUri) -> Response {
    let instance = read(&state);
    let token = uri
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "oauth_token"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (request_token, link) = match waiting(&instance, &token) {
        Ok(found) => found,
        Err(problem) => return token_problem_page(&problem),
    };
    let user = instance.users.iter().find(|u| u.slug == DEMO_USER);
    let signed_in = user.map_or_else(|| DEMO_USER.to_owned(), |u| format!("{} ({})", u.display_name, u.slug));
    let body = format!(
        "<h1>{name} wants to access your Bitbucket account</h1>\
         <p>Signed in as {signed_in}.</p>\
         <p>{name} will be able to read and change what you can in Bitbucket, as you: an application link \
         has no scopes.</p>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"oauth_token\" value=\"{token}\">\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        name = escape(&link.consumer_name),
        signed_in = escape(&signed_in),
        action = escape(&format!("{}{AUTHORIZE_PATH}", instance.context_path)),
        token = escape(&request_token.token),
    );
    page(&format!("Authorize {}", link.consumer_name), &body).into_response()
}

/// Allow or Deny: back to the callback with the token and the verifier
/// (`denied` for Deny), or, for `oob`, a page with the verifier to copy.
async fn decide(State(state): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let token = form.get("oauth_token").cloned().unwrap_or_default();
    let mut instance = write(&state);
    let (request_token, link) = match waiting(&instance, &token) {
        Ok(found) => found,
        Err(problem) => return token_problem_page(&problem),
    };
    let (approval, verifier) = match form.get("decision").map(String::as_str) {
        Some("allow") => {
            let verifier = random_token()[..6].to_owned();
            (Approval::Allowed { user: DEMO_USER.to_owned(), verifier: verifier.clone() }, verifier)
        }
        Some("deny") => (Approval::Denied { user: DEMO_USER.to_owned() }, "denied".to_owned()),
        _ => return (StatusCode::BAD_REQUEST, page("Bad request", "<h1>Choose Allow or Deny.</h1>")).into_response(),
    };
    if let Some(stored) = instance.oauth1_request_tokens.iter_mut().find(|t| t.token == token) {
        stored.approval = approval;
    }
    if request_token.callback == "oob" {
        let body = if verifier == "denied" {
            format!("<h1>You denied {} access</h1>", escape(&link.consumer_name))
        } else {
            format!(
                "<h1>You allowed {} access</h1><p>Give it this verification code: <code class=\"verifier\">{}</code></p>",
                escape(&link.consumer_name),
                escape(&verifier)
            )
        };
        return page("Authorized applications", &body).into_response();
    }
    let Ok(mut target) = url::Url::parse(&request_token.callback) else {
        return token_problem_page(&Problem::new("parameter_rejected"));
    };
    // Appended after whatever query the callback already has.
    target.query_pairs_mut().append_pair("oauth_token", &token).append_pair("oauth_verifier", &verifier);
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// The links page's creation form as typed.
#[derive(Debug, Default)]
struct LinkForm {
    name: String,
    consumer_key: String,
    consumer_name: String,
    public_key: String,
}

impl LinkForm {
    fn parse(body: &[u8]) -> Self {
        let mut form = Self::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            let field = match name.as_ref() {
                "name" => &mut form.name,
                "consumer_key" => &mut form.consumer_key,
                "consumer_name" => &mut form.consumer_name,
                "public_key" => &mut form.public_key,
                _ => continue,
            };
            *field = value.trim().to_owned();
        }
        form
    }

    fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        if self.name.is_empty() {
            problems.push("Enter the application name.");
        }
        if self.consumer_key.is_empty() {
            problems.push("Enter the consumer key.");
        }
        if self.consumer_name.is_empty() {
            problems.push("Enter the consumer name.");
        }
        if public_key(&self.public_key).is_none() {
            problems.push("Paste the consumer's RSA public key (PEM, such as -----BEGIN PUBLIC KEY-----).");
        }
        problems
    }
}

fn links_page(instance: &Instance, form: &LinkForm, problems: &[&str]) -> Html<String> {
    let rows: String = instance
        .application_links
        .iter()
        .map(|link| {
            let bits = public_key(&link.public_key_pem).map_or(0, |key| key.size() * 8);
            format!(
                "<tr><td>{}</td><td>Generic Application</td><td><code>{}</code></td><td>{}</td>\
                 <td>OAuth, incoming (RSA {bits} bits)</td></tr>",
                escape(&link.name),
                escape(&link.consumer_key),
                escape(&link.consumer_name),
            )
        })
        .collect();
    let links = if rows.is_empty() {
        "<p>No application links yet.</p>".to_owned()
    } else {
        format!(
            "<table class=\"links\"><thead><tr><th>Application</th><th>Type</th><th>Consumer key</th>\
             <th>Consumer name</th><th>Incoming authentication</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let errors = if problems.is_empty() {
        String::new()
    } else {
        let items: String = problems.iter().map(|p| format!("<li>{}</li>", escape(p))).collect();
        format!("<ul class=\"errors\" role=\"alert\">{items}</ul>")
    };
    page(
        "Application Links",
        &format!(
            "<h1>Application Links</h1>\
             <p>An application with incoming OAuth 1.0a authentication signs its requests with its RSA private \
             key; Bitbucket checks them with the public key pasted here. A link with the same consumer key is \
             replaced.</p>{links}\
             <h2>Create link</h2>\
             <form method=\"post\" action=\"{action}\">{errors}\
             <p><label for=\"link-type\">Application type</label> <select id=\"link-type\" name=\"type\">\
             <option value=\"generic\" selected>Generic Application</option></select></p>\
             <p><label for=\"link-name\">Application name</label> <input id=\"link-name\" name=\"name\" value=\"{name}\"></p>\
             <h3>Incoming authentication</h3>\
             <p><label for=\"link-consumer-key\">Consumer key</label> \
             <input id=\"link-consumer-key\" name=\"consumer_key\" size=\"60\" value=\"{consumer_key}\"></p>\
             <p><label for=\"link-consumer-name\">Consumer name</label> \
             <input id=\"link-consumer-name\" name=\"consumer_name\" value=\"{consumer_name}\"></p>\
             <p><label for=\"link-public-key\">Public key</label><br>\
             <textarea id=\"link-public-key\" name=\"public_key\" rows=\"10\" cols=\"70\">{public_key}</textarea></p>\
             <p><label><input type=\"checkbox\" name=\"two_legged\" value=\"on\"> Allow 2-Legged OAuth</label></p>\
             <button type=\"submit\">Create</button></form>",
            action = escape(&format!("{}{LINKS_PATH}", instance.context_path)),
            name = escape(&form.name),
            consumer_key = escape(&form.consumer_key),
            consumer_name = escape(&form.consumer_name),
            public_key = escape(&form.public_key),
        ),
    )
}

async fn list_links(State(state): State<Shared>) -> Response {
    let instance = read(&state);
    links_page(&instance, &LinkForm::default(), &[]).into_response()
}

/// Creates (or replaces) a link from the form; a refused form comes back
/// as typed, with what to fix.
async fn create_link(State(state): State<Shared>, body: Bytes) -> Response {
    let form = LinkForm::parse(&body);
    let mut instance = write(&state);
    let problems = form.problems();
    if !problems.is_empty() {
        return (StatusCode::BAD_REQUEST, links_page(&instance, &form, &problems)).into_response();
    }
    instance.add_application_link(&form.consumer_key, &form.name, &form.public_key);
    if let Some(link) = instance.application_links.iter_mut().find(|l| l.consumer_key == form.consumer_key) {
        link.consumer_name = form.consumer_name;
    }
    Redirect::to(&format!("{}{LINKS_PATH}", instance.context_path)).into_response()
}

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(REQUEST_TOKEN_PATH, post(request_token))
        .route(AUTHORIZE_PATH, get(authorize_page).post(decide))
        .route(ACCESS_TOKEN_PATH, post(access_token))
        .route(LINKS_PATH, get(list_links).post(create_link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_the_unreserved_characters() {
        assert_eq!(encode("Ladies + Gentlemen"), "Ladies%20%2B%20Gentlemen");
        assert_eq!(encode("An encoded string!"), "An%20encoded%20string%21");
        assert_eq!(encode("Dogs, Cats & Mice"), "Dogs%2C%20Cats%20%26%20Mice");
        assert_eq!(encode("☃"), "%E2%98%83");
        assert_eq!(encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(decode("%E2%98%83+%2"), "☃+%2");
    }

    #[test]
    fn the_header_is_read_with_its_values_decoded_and_without_its_realm() {
        let parameters =
            header_parameters(r#"OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2",oauth_signature="wOJIO9A2W5mFwDgiDvZbTSMK%2FPY%3D""#)
                .unwrap_or_default();
        assert_eq!(
            parameters,
            [
                ("oauth_consumer_key".to_owned(), "9djdj82h48djs9d2".to_owned()),
                ("oauth_signature".to_owned(), "wOJIO9A2W5mFwDgiDvZbTSMK/PY=".to_owned())
            ]
        );
        assert_eq!(header_parameters("Bearer abc"), None);
    }

    /// RFC 5849 §3.4.1.1's example: the request and the base string it gives.
    #[test]
    fn the_base_string_is_the_rfcs() {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b")
            .header(header::HOST, "example.com")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::AUTHORIZATION,
                r#"OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D""#,
            )
            .body(())
            .unwrap_or_default();
        let (parts, ()) = request.into_parts();
        let message = Message::of(&parts, b"c2&a3=2+q", "");
        assert_eq!(
            message.base_string(),
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
        );
        assert_eq!(message.realm, "http://example.com");
    }

    #[test]
    fn a_refusal_names_its_problem_in_the_header_and_the_body() {
        let refused =
            Problem::new("timestamp_refused").with("oauth_acceptable_timestamps", "10-20").answer("http://h:7990/bb");
        assert_eq!(refused.status(), 400);
        assert_eq!(
            refused.headers()[header::WWW_AUTHENTICATE],
            r#"OAuth realm="http%3A%2F%2Fh%3A7990%2Fbb", oauth_problem="timestamp_refused", oauth_acceptable_timestamps="10-20""#
        );
        assert_eq!(Problem::new("nonce_used").status(), 401);
    }
}
