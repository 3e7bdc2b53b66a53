//! Data Center's legacy OAuth 1.0a application links, RSA-SHA1 (the CDS
//! seed's way, and HCP Terraform's still): Bitgate makes an RSA key pair per
//! integration, an admin pastes its public key into an application link's
//! incoming authentication with Bitgate's consumer key, and Bitgate runs
//! the three legs (`/plugins/servlet/oauth/request-token`, the authorize
//! page, `/access-token`) and signs every call with the access token
//! (bitbucket-next.md §6). No database in here.
//!
//! The signature base string is the `oauth1-request` crate's, not ours
//! (RFC 5849 §3.4.1: the query's parameters and the `oauth_*` ones,
//! encoded and sorted); RSA-SHA1 uses no token secret. Bitbucket's
//! refusals (`oauth_problem`) are turned into what an admin should fix.

use std::fmt::Display;

use oauth1_request::{self as oauth, signature_method::Rsa09Sha1 as RsaSha1};
use reqwest::{header, Method};
use rsa::{
    pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding},
    RsaPrivateKey,
};
use url::Url;

use crate::{
    config::Config,
    outbound::{self, ReadFailed},
    secret::Secret,
};

/// The key size Bitgate makes (what Atlassian's link form expects).
const KEY_BITS: usize = 2048;

/// An integration's key pair: the private key sealed like every secret and
/// never shown; the public key, shown to paste into Bitbucket.
pub struct KeyPair {
    /// PKCS#8 PEM.
    pub private_pem: Secret<String>,
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_pem: String,
}

impl KeyPair {
    /// A new RSA 2048 key pair from the operating system's randomness.
    pub fn generate() -> Result<Self, rsa::Error> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)?;
        let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|_| rsa::Error::Internal)?;
        let public_pem = key.to_public_key().to_public_key_pem(LineEnding::LF).map_err(|_| rsa::Error::Internal)?;
        Ok(Self { private_pem: Secret::new(private_pem.to_string()), public_pem })
    }
}

/// A consumer that signs: its key, and the private key of its pair.
#[derive(Clone)]
pub struct Consumer {
    pub key: String,
    private: RsaPrivateKey,
}

impl std::fmt::Debug for Consumer {
    // Never the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("key", &self.key).finish()
    }
}

impl Consumer {
    /// `None` when the stored key is not a PKCS#8 RSA private key.
    pub fn new(key: String, private_pem: &Secret<String>) -> Option<Self> {
        let private = RsaPrivateKey::from_pkcs8_pem(private_pem.expose()).ok()?;
        Some(Self { key, private })
    }

    /// The `Authorization` header of a request to `url` (its query signed
    /// with it), with the access `token` (none for the request-token leg)
    /// and the leg's `callback` or `verifier`.
    pub fn authorization(
        &self,
        method: &Method,
        url: &Url,
        token: Option<&str>,
        callback: Option<&str>,
        verifier: Option<&str>,
    ) -> String {
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let parameters = oauth::ParameterList::new(
            query.iter().map(|(key, value)| (key.as_str(), value as &dyn Display)).collect::<Vec<_>>(),
        );
        // RSA-SHA1 signs with the private key alone: the secrets are empty.
        let mut builder = oauth::Builder::<_, _>::new(
            oauth::Credentials::new(self.key.as_str(), ""),
            RsaSha1::new(self.private.clone()),
        );
        builder.token(token.map(|token| oauth::Credentials::new(token, "")));
        builder.callback(callback);
        builder.verifier(verifier);
        builder.authorize(method.as_str(), base.as_str(), &parameters)
    }
}

/// Where the three legs are (the browser opens the authorize page at the
/// user-facing URL; Bitgate calls the others at the API URL).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub request_token: Url,
    pub authorize: Url,
    pub access_token: Url,
}

impl Endpoints {
    pub fn new(api_url: &Url, user_facing_url: &Url) -> Self {
        let join = |base: &Url, path: &str| {
            let mut url = base.clone();
            url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
            url
        };
        Self {
            request_token: join(api_url, "/plugins/servlet/oauth/request-token"),
            authorize: join(user_facing_url, "/plugins/servlet/oauth/authorize"),
            access_token: join(api_url, "/plugins/servlet/oauth/access-token"),
        }
    }

    /// Where to send the admin's browser to approve `request_token`.
    pub fn authorize_url(&self, request_token: &str) -> String {
        let mut url = self.authorize.clone();
        url.query_pairs_mut().append_pair("oauth_token", request_token);
        url.to_string()
    }
}

/// Why a leg gave no token, in words an admin can act on, with
/// Bitbucket's `oauth_problem` when it said one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub problem: Option<String>,
    pub message: String,
}

impl Refused {
    fn said(message: impl Into<String>) -> Self {
        Self { problem: None, message: message.into() }
    }
}

/// Whether the server at `endpoints` is Bitbucket's OAuth 1.0a provider,
/// before its application link exists: a request-token call it refuses
/// with `consumer_key_unknown` (no link yet) or `signature_invalid` (a link
/// of that consumer key with another public key: the page says to paste
/// this one) is an answer from the provider; only an answer from
/// something else fails.
pub async fn probe(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    consumer: &Consumer,
    callback: &str,
) -> Result<(), Refused> {
    match request_token(http, config, endpoints, consumer, callback).await {
        Ok(_) => Ok(()),
        Err(refused) if matches!(refused.problem.as_deref(), Some("consumer_key_unknown" | "signature_invalid")) => {
            Ok(())
        }
        Err(refused) => Err(refused),
    }
}

/// The first leg: a request token whose approval comes back to `callback`.
pub async fn request_token(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    consumer: &Consumer,
    callback: &str,
) -> Result<String, Refused> {
    let url = &endpoints.request_token;
    let authorization = consumer.authorization(&Method::POST, url, None, Some(callback), None);
    let fields = leg(http, config, url, authorization, consumer).await?;
    if fields.iter().any(|(key, value)| key == "oauth_callback_confirmed" && value != "true") {
        return Err(Refused::said("Bitbucket did not confirm Bitgate's callback: check the application link."));
    }
    token_of(&fields)
}

/// The last leg: the access token for an approved request token.
pub async fn access_token(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    consumer: &Consumer,
    request_token: &str,
    verifier: &str,
) -> Result<Secret<String>, Refused> {
    let url = &endpoints.access_token;
    let authorization = consumer.authorization(&Method::POST, url, Some(request_token), None, Some(verifier));
    let fields = leg(http, config, url, authorization, consumer).await?;
    token_of(&fields).map(Secret::new)
}

fn token_of(fields: &[(String, String)]) -> Result<String, Refused> {
    fields
        .iter()
        .find(|(key, _)| key == "oauth_token")
        .map(|(_, token)| token.clone())
        .filter(|token| !token.is_empty() && token.len() <= 512)
        .ok_or_else(|| Refused::said("Bitbucket's answer carries no token: check the API URL."))
}

/// One signed POST of a leg; its form-encoded answer, or the refusal.
async fn leg(
    http: &reqwest::Client,
    config: &Config,
    url: &Url,
    authorization: String,
    consumer: &Consumer,
) -> Result<Vec<(String, String)>, Refused> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let exchange = async {
        let response = http.post(url.clone()).header(header::AUTHORIZATION, authorization).send().await?;
        let status = response.status();
        let challenge =
            response.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = outbound::read_body(response, outbound::MAX_ANSWER_BYTES).await?;
        Ok::<_, ReadFailed>((status, challenge, body))
    };
    let (status, challenge, body) = match tokio::time::timeout(config.outbound_timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(ReadFailed::TooLarge { .. })) => {
            return Err(Refused::said(format!(
                "{host} answered with far more than Bitbucket sends: check the API URL."
            )))
        }
        Ok(Err(ReadFailed::Transport(_))) => {
            return Err(Refused::said(format!("Bitgate could not reach {host}: check the API URL and the network.")))
        }
        Err(_) => {
            return Err(Refused::said(format!(
                "No answer from {host} within {} seconds (BITGATE_OUTBOUND_TIMEOUT).",
                config.outbound_timeout.as_secs()
            )))
        }
    };
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    if status.is_success() {
        return Ok(fields);
    }
    let problem = problem_of(challenge.as_deref(), &fields);
    let message = explain(problem.as_deref(), status.as_u16(), &consumer.key);
    Err(Refused { problem, message })
}

/// The `oauth_problem` of a refused signed call: in its `WWW-Authenticate`
/// header, or in a form-encoded body.
pub fn problem_in(headers: &header::HeaderMap, body: &[u8]) -> Option<String> {
    let challenge = headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    problem_of(challenge, &fields)
}

/// Bitbucket's `oauth_problem`, from the answer's body or its
/// `WWW-Authenticate` header; only a word of OAuth's problem vocabulary.
pub fn problem_of(challenge: Option<&str>, fields: &[(String, String)]) -> Option<String> {
    let in_body = fields.iter().find(|(key, _)| key == "oauth_problem").map(|(_, problem)| problem.clone());
    let in_header = challenge.and_then(|value| {
        value.split(',').find_map(|part| {
            let (key, value) = part.trim().trim_start_matches("OAuth ").split_once('=')?;
            (key.trim() == "oauth_problem").then(|| value.trim().trim_matches('"').to_owned())
        })
    });
    in_body
        .or(in_header)
        .filter(|problem| problem.len() <= 40 && problem.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

/// What an `oauth_problem` means for the admin (RFC 5849's extension
/// vocabulary, as Atlassian's provider answers it).
pub fn explain(problem: Option<&str>, status: u16, consumer_key: &str) -> String {
    match problem {
        Some("consumer_key_unknown") => format!(
            "Bitbucket has no application link with the consumer key {consumer_key}: create it (Administration \u{2192} Application Links) with this integration's consumer key and public key, or check the API URL."
        ),
        Some("signature_invalid") => "Bitbucket could not verify Bitgate's signature: the public key in the application link is not this integration's. Paste the public key shown on the integration's page into the link's incoming authentication again.".into(),
        Some("signature_method_rejected") => "The application link does not accept RSA-SHA1 signatures: set its incoming authentication to OAuth with this integration's public key.".into(),
        Some("timestamp_refused") => "Bitbucket refused the request's time: the clocks of Bitgate's and Bitbucket's servers are more than 5 minutes apart. Set both to the right time (NTP), then try again.".into(),
        Some("nonce_used") => "Bitbucket saw this request before (a repeated nonce) and refused it: try again.".into(),
        Some("token_rejected" | "token_expired" | "token_revoked") => "Bitbucket no longer accepts the integration's token (it was revoked or expired): connect again.".into(),
        Some("permission_denied" | "permission_unknown") => "Access was not granted in Bitbucket: connect again and choose Allow.".into(),
        Some(other) => format!("Bitbucket refused the OAuth request ({other}): check the application link."),
        None => format!("Bitbucket refused the OAuth request ({status}): check the API URL and the application link."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_signs_and_its_public_key_is_a_pem_to_paste() {
        let pair = KeyPair::generate().unwrap();
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{}", pair.public_pem);
        assert!(!pair.public_pem.contains("PRIVATE"));
        let consumer = Consumer::new("bitgate-dc".into(), &pair.private_pem).unwrap();
        assert!(!format!("{consumer:?}").contains("PRIVATE"), "Debug never shows the key");
        let url = Url::parse("https://bitbucket.example.com/rest/api/1.0/projects?limit=1").unwrap();
        let header = consumer.authorization(&Method::GET, &url, Some("access-token"), None, None);
        assert!(header.starts_with("OAuth "), "{header}");
        for part in [
            "oauth_consumer_key=\"bitgate-dc\"",
            "oauth_token=\"access-token\"",
            "oauth_signature_method=\"RSA-SHA1\"",
            "oauth_signature=\"",
        ] {
            assert!(header.contains(part), "{part} in {header}");
        }
        assert!(!header.contains("limit"), "the query is signed, not sent in the header");
    }

    #[test]
    fn problems_are_read_from_the_body_or_the_header_and_explained() {
        let fields = vec![("oauth_problem".to_owned(), "signature_invalid".to_owned())];
        assert_eq!(problem_of(None, &fields).as_deref(), Some("signature_invalid"));
        let header = r#"OAuth realm="https%3A%2F%2Fb.example.com", oauth_problem="timestamp_refused""#;
        assert_eq!(problem_of(Some(header), &[]).as_deref(), Some("timestamp_refused"));
        assert_eq!(problem_of(Some(r#"OAuth oauth_problem="<script>""#), &[]), None, "only OAuth's words");
        assert!(explain(Some("consumer_key_unknown"), 401, "bitgate-dc").contains("bitgate-dc"));
        assert!(explain(Some("signature_invalid"), 401, "k").contains("public key"));
        assert!(explain(Some("timestamp_refused"), 400, "k").contains("clocks"));
        assert!(explain(None, 502, "k").contains("502"));
    }
}
