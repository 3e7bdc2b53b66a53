//! Data Center's OAuth 2.0 provider (an incoming application link of the
//! kind "External application", Bitbucket 7.20 and later): the
//! authorization code with PKCE at `/rest/oauth2/latest/authorize`, the
//! token endpoint `/rest/oauth2/latest/token`, refreshing. No database in
//! here: storing the tokens is `oauth_tokens`'s job.
//!
//! Unlike Cloud's, these endpoints are at an admin-given URL: the token
//! endpoint is called with the integration's outbound client (deny list,
//! private CA), the browser is sent to the user-facing URL. The client
//! authenticates with its id and secret in the request body, as
//! Atlassian's examples do, and every grant names the redirect URL: the
//! provider checks it on the refresh grant too and answers a bare
//! `invalid_grant` without it (bitbucket-next.md §5).

use oauth2::{
    basic::{BasicErrorResponse, BasicErrorResponseType, BasicTokenType},
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointNotSet,
    EndpointSet, HttpClientError, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use time::OffsetDateTime;
use url::Url;

use crate::{
    bitbucket::{
        cloud::{Capped, TokenError, Tokens},
        too_large,
    },
    config::Config,
    outbound,
    secret::Secret,
};

/// The scope that lets Bitgate manage webhooks (and everything below it).
pub const SCOPE_ADMIN: &str = "REPO_ADMIN";
/// The scope that reads repositories and posts build statuses and comments.
pub const SCOPE_READ: &str = "REPO_READ";

/// The scope to ask for: Repository admin when Bitgate manages the
/// webhooks (creating one needs it), Repository read otherwise.
pub fn scope_for(manage_webhooks: bool) -> &'static str {
    if manage_webhooks {
        SCOPE_ADMIN
    } else {
        SCOPE_READ
    }
}

/// An application link's client id and secret.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Secret<String>,
}

/// Where the provider is: the browser goes to the user-facing URL,
/// Bitgate calls the API URL; both come back to Bitgate's one callback.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorize: Url,
    pub token: Url,
    pub callback: String,
}

impl Endpoints {
    pub fn new(api_url: &Url, user_facing_url: &Url, config: &Config) -> Self {
        let join = |base: &Url, path: &str| {
            let mut url = base.clone();
            url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
            url
        };
        Self {
            authorize: join(user_facing_url, "/rest/oauth2/latest/authorize"),
            token: join(api_url, "/rest/oauth2/latest/token"),
            callback: super::super::oauth_callback_url(config),
        }
    }

    fn oauth(&self, client: &Client) -> OAuthClient {
        let oauth = oauth2::Client::new(ClientId::new(client.id.trim().to_owned()))
            .set_client_secret(ClientSecret::new(client.secret.expose().trim().to_owned()))
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(AuthUrl::from_url(self.authorize.clone()))
            .set_token_uri(TokenUrl::from_url(self.token.clone()));
        match RedirectUrl::new(self.callback.clone()) {
            Ok(redirect) => oauth.set_redirect_uri(redirect),
            Err(_) => oauth,
        }
    }
}

type TokenAnswer = StandardTokenResponse<EmptyExtraTokenFields, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    oauth2::StandardTokenIntrospectionResponse<EmptyExtraTokenFields, BasicTokenType>,
    StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Where to send the admin's browser to approve `scope`, and the PKCE
/// verifier to keep for the exchange.
pub fn authorize_url(endpoints: &Endpoints, client: &Client, state: &str, scope: &str) -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = state.to_owned();
    let (url, _) = endpoints
        .oauth(client)
        .authorize_url(move || CsrfToken::new(state))
        .add_scope(Scope::new(scope.to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    (url.to_string(), verifier.secret().clone())
}

/// Checks a client id and secret without an admin in the loop: a token
/// request with a code that cannot exist, which a valid client gets
/// `invalid_grant` for and a wrong one `invalid_client`.
pub async fn check_client(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    client: &Client,
) -> Result<(), TokenError> {
    let answer = endpoints
        .oauth(client)
        .exchange_code(AuthorizationCode::new("bitgate-client-check".into()))
        .set_pkce_verifier(PkceCodeVerifier::new("bitgate-client-check-verifier-0000000000000000".into()))
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
    client: &Client,
    code: &str,
    verifier: Secret<String>,
) -> Result<Tokens, TokenError> {
    endpoints
        .oauth(client)
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.into_exposed()))
        .request_async(&Capped(http.clone()))
        .await
        .map(tokens_of)
        .map_err(|e| token_error(e, config, endpoints))
}

/// Spends a refresh token for a new pair, naming the redirect URL as the
/// provider requires.
pub async fn refresh(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    client: &Client,
    refresh_token: &Secret<String>,
) -> Result<Tokens, TokenError> {
    let refresh_token = RefreshToken::new(refresh_token.expose().clone());
    endpoints
        .oauth(client)
        .exchange_refresh_token(&refresh_token)
        .add_extra_param("redirect_uri", endpoints.callback.clone())
        .request_async(&Capped(http.clone()))
        .await
        .map(tokens_of)
        .map_err(|e| token_error(e, config, endpoints))
}

fn tokens_of(answer: TokenAnswer) -> Tokens {
    let lifetime = answer.expires_in().unwrap_or(std::time::Duration::from_secs(3600));
    // Scope names are shown: only names in a scope's shape (`REPO_ADMIN`), at most fifty.
    let is_scope = |s: &&str| {
        !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
    };
    let scopes = answer.scopes().map(|granted| {
        granted.iter().flat_map(|scope| scope.split([' ', ',']).filter(is_scope).map(str::to_owned)).take(50).collect()
    });
    Tokens {
        access: Secret::new(answer.access_token().secret().clone()),
        refresh: answer.refresh_token().map(|r| Secret::new(r.secret().clone())),
        expires_at: OffsetDateTime::now_utc() + lifetime,
        scopes,
    }
}

/// A failed token request in words an admin of Data Center can act on.
pub fn message(error: &TokenError, endpoints: &Endpoints) -> String {
    match error {
        TokenError::Consumer => "Bitbucket rejected the client ID or secret: copy both again from the application link (Administration \u{2192} Application Links \u{2192} the link \u{2192} Credentials).".into(),
        TokenError::NoCallback => format!(
            "Bitbucket refused the redirect URL: edit the application link and set its redirect URL to {}.",
            endpoints.callback
        ),
        TokenError::NotPrivate => "Bitbucket refused this client the grant: check the application link's settings.".into(),
        TokenError::Grant => "Bitbucket refused the grant: it was already used, has expired, or the authorization was revoked (Authorized applications, in the user's Bitbucket account). Connect again.".into(),
        TokenError::Refused(why) | TokenError::Unreachable(why) => why.clone(),
    }
}

fn token_error(
    error: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
    config: &Config,
    endpoints: &Endpoints,
) -> TokenError {
    let host = endpoints.token.host_str().unwrap_or_default().to_owned();
    match error {
        RequestTokenError::ServerResponse(answer) => match answer.error() {
            BasicErrorResponseType::InvalidClient => TokenError::Consumer,
            BasicErrorResponseType::InvalidGrant => TokenError::Grant,
            BasicErrorResponseType::InvalidRequest
                if answer.error_description().is_some_and(|d| d.to_lowercase().contains("redirect")) =>
            {
                TokenError::NoCallback
            }
            BasicErrorResponseType::Extension(_) => TokenError::Refused(
                "Bitbucket refused the token request with an error OAuth does not define: check the application link's settings."
                    .into(),
            ),
            other => TokenError::Refused(format!(
                "Bitbucket refused the token request ({}): check the application link's settings.",
                other.as_ref()
            )),
        },
        RequestTokenError::Request(HttpClientError::Reqwest(error)) => {
            TokenError::Unreachable(if error.is_timeout() {
                format!(
                    "No answer from {host} within {} seconds (BITGATE_OUTBOUND_TIMEOUT): try again later.",
                    config.outbound_timeout.as_secs()
                )
            } else {
                format!("Bitgate could not reach {host}: check the API URL and the network between them.")
            })
        }
        RequestTokenError::Request(HttpClientError::Other(_)) => {
            TokenError::Unreachable(too_large(&host, outbound::MAX_ANSWER_BYTES, "the API URL"))
        }
        RequestTokenError::Request(_) | RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
            TokenError::Unreachable(format!(
                "{host} answered the token request, but not as an OAuth 2.0 provider: OAuth 2.0 application links need Bitbucket Data Center 7.20 or later, and the API URL must be Bitbucket's."
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_follows_whether_hooks_are_managed() {
        assert_eq!(scope_for(true), "REPO_ADMIN");
        assert_eq!(scope_for(false), "REPO_READ");
    }

    #[test]
    fn the_authorize_url_asks_for_a_code_with_pkce_at_the_user_facing_url() {
        let config = Config::load(&[("BITGATE_MODE", "development")]).unwrap();
        let endpoints = Endpoints::new(
            &Url::parse("http://bitbucket.internal:7990/bitbucket").unwrap(),
            &Url::parse("https://bitbucket.example.com/bitbucket").unwrap(),
            &config,
        );
        assert_eq!(endpoints.token.as_str(), "http://bitbucket.internal:7990/bitbucket/rest/oauth2/latest/token");
        let client = Client { id: "abc".into(), secret: Secret::new("s".into()) };
        let (url, verifier) = authorize_url(&endpoints, &client, "the-state", SCOPE_ADMIN);
        let url = Url::parse(&url).unwrap();
        assert_eq!(url.path(), "/bitbucket/rest/oauth2/latest/authorize");
        assert_eq!(url.host_str(), Some("bitbucket.example.com"));
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "abc");
        assert_eq!(query["state"], "the-state");
        assert_eq!(query["scope"], "REPO_ADMIN");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["redirect_uri"], endpoints.callback);
        assert!(verifier.len() >= 43);
        assert!(!url.as_str().contains(&verifier), "the verifier stays in Bitgate");
    }
}
