//! The rules a change of an integration keeps, whichever door it comes
//! through: the REST API and the edit page (through
//! `operations::update`), and the import from the CLI, the API or the browser. Each rule
//! is written here once; the doors only say which field it concerns.

use sqlx::PgExecutor;

use super::IntegrationId;
use crate::{spaces::SpaceId, stacks, users::FieldError};

/// What a Data Center integration's refusal to reuse its stored token says.
pub const TOKEN_REQUIRED: &str =
    "Changing the API URL needs the access token again, so that a stored token is never sent to another server.";

/// Whether a Data Center integration's API URL changes: both as parsed
/// (normalized), where a trailing slash is no change. Every door decides
/// "changed" with this, so that the token rule below and the connection
/// check that follows agree.
pub fn api_url_moved(stored_api_url: &str, new_api_url: &str) -> bool {
    stored_api_url.trim_end_matches('/') != new_api_url.trim_end_matches('/')
}

/// A stored Data Center token goes only to the server it was given for: a
/// change of the API URL needs the token again, or a space admin (who may
/// edit the integration but never read its token) could make Bitgate send
/// it to a server of theirs with the first connection check.
pub fn token_follows_api_url(stored_api_url: &str, new_api_url: &str, token_given: bool) -> Result<(), FieldError> {
    if api_url_moved(stored_api_url, new_api_url) && !token_given {
        return Err(FieldError::new("datacenter.access_token", "token_required", TOKEN_REQUIRED));
    }
    Ok(())
}

/// What the refusal to reuse a stored token under another trust root says.
pub const TOKEN_REQUIRED_FOR_CA: &str =
    "Changing the CA certificate needs the access token again, so that a stored token is sent only under the trust it was given with.";

/// A stored Data Center token is sent only under the trust it was given
/// with: a CA certificate added, replaced or removed needs the token again.
/// Otherwise whoever may edit the integration (but never read its token)
/// could make Bitgate trust a certificate of theirs for the server's name,
/// and read the token on its way with the next connection check.
pub fn token_follows_trust(stored_ca: Option<&str>, new_ca: Option<&str>, token_given: bool) -> Result<(), FieldError> {
    fn given(ca: Option<&str>) -> Option<&str> {
        ca.map(str::trim).filter(|pem| !pem.is_empty())
    }
    if given(stored_ca) != given(new_ca) && !token_given {
        return Err(FieldError::new("datacenter.access_token", "token_required", TOKEN_REQUIRED_FOR_CA));
    }
    Ok(())
}

/// A Cloud consumer's stored secret belongs to its key: a new key needs
/// its own secret, never the stored one.
pub fn secret_follows_key(stored_key: &str, new_key: &str, secret_given: bool) -> Result<(), FieldError> {
    if new_key.trim() != stored_key && !secret_given {
        return Err(FieldError::new(
            "cloud.client_secret",
            "secret_required",
            "A new consumer key needs its secret too.",
        ));
    }
    Ok(())
}

/// A Data Center OAuth 2.0 link's stored client secret (and the refresh
/// token sent with it) goes only to the server, under the trust, and for
/// the client id it was given for: a new API URL, CA certificate or client
/// id needs the secret again, for the reason [`token_follows_api_url`] says.
pub fn client_secret_follows<'a>(
    stored: (&'a str, Option<&'a str>, &'a str),
    new: (Option<&'a str>, Option<Option<&'a str>>, Option<&'a str>),
    secret_given: bool,
) -> Result<(), FieldError> {
    let (stored_url, stored_ca, stored_id) = stored;
    let (new_url, new_ca, new_id) = new;
    fn trimmed(ca: Option<&str>) -> Option<&str> {
        ca.map(str::trim).filter(|pem| !pem.is_empty())
    }
    let moved = new_url.is_some_and(|url| api_url_moved(stored_url, url));
    let trust = new_ca.is_some_and(|ca| trimmed(ca) != trimmed(stored_ca));
    let other_client = new_id.is_some_and(|id| id.trim() != stored_id);
    if (moved || trust || other_client) && !secret_given {
        let why = if other_client {
            "A new client ID needs its secret too."
        } else {
            "Changing the API URL or the CA certificate needs the client secret again, so that a stored secret is sent only to the server, and under the trust, it was given for."
        };
        return Err(FieldError::new("datacenter.oauth2.client_secret", "secret_required", why));
    }
    Ok(())
}

/// An integration moves only to a scope from which every stack using it
/// can still use it (`new_scope` `None`: a default, usable everywhere).
/// The error names the stacks left outside.
pub async fn stacks_stay_in_scope(
    db: impl PgExecutor<'_>,
    integration: IntegrationId,
    new_scope: Option<SpaceId>,
) -> Result<Result<(), FieldError>, sqlx::Error> {
    let outside = stacks::outside_scope(db, integration, new_scope).await?;
    if outside.is_empty() {
        return Ok(Ok(()));
    }
    Ok(Err(FieldError::new(
        "space_id",
        "stacks_outside",
        format!(
            "Stacks outside the new scope use it ({}): attach them to another integration, or choose a scope that includes their spaces.",
            outside.join(", ")
        ),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oauth2_client_secret_follows_its_server_trust_and_client() {
        let stored = ("https://b.example.com", None, "client-1");
        assert!(client_secret_follows(stored, (Some("https://b.example.com/"), Some(None), Some("client-1")), false)
            .is_ok());
        for new in [
            (Some("https://evil.example.com"), None, None),
            (None, Some(Some("-----BEGIN CERTIFICATE-----")), None),
            (None, None, Some("client-2")),
        ] {
            let refused = client_secret_follows(stored, new, false).unwrap_err();
            assert_eq!(
                (refused.field.as_str(), refused.code.as_str()),
                ("datacenter.oauth2.client_secret", "secret_required")
            );
            assert!(client_secret_follows(stored, new, true).is_ok());
        }
    }

    #[test]
    fn a_stored_token_follows_only_the_url_it_was_given_for() {
        let stored = "https://bitbucket.example.com";
        assert!(token_follows_api_url(stored, "https://bitbucket.example.com/", false).is_ok(), "no change");
        assert!(token_follows_api_url(stored, "https://evil.example.com", true).is_ok(), "the token given again");
        let refused = token_follows_api_url(stored, "https://evil.example.com", false).unwrap_err();
        assert_eq!((refused.field.as_str(), refused.code.as_str()), ("datacenter.access_token", "token_required"));
        let refused = token_follows_api_url(stored, "https://bitbucket.example.com/bitbucket", false);
        assert!(refused.is_err(), "another context path is another URL");
    }

    #[test]
    fn urls_are_compared_as_every_door_parses_them() {
        let config = crate::config::Config::load(&[("BITGATE_MODE", "development")]).unwrap();
        let parsed = |raw: &str| crate::bitbucket::datacenter::parse_api_url(raw, &config).unwrap().to_string();
        let stored = parsed("https://bitbucket.example.com");
        for same in ["HTTPS://Bitbucket.Example.com:443/", " https://bitbucket.example.com// "] {
            assert!(!api_url_moved(&stored, &parsed(same)), "{same}");
        }
        for moved in
            ["http://bitbucket.example.com", "https://bitbucket.example.com:8443", "https://bitbucket.example.com/bb"]
        {
            assert!(api_url_moved(&stored, &parsed(moved)), "{moved}");
            assert!(token_follows_api_url(&stored, &parsed(moved), false).is_err(), "{moved}");
        }
    }

    #[test]
    fn a_stored_token_follows_only_the_trust_it_was_given_with() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert!(token_follows_trust(None, None, false).is_ok());
        assert!(token_follows_trust(Some(pem), Some(&format!(" {pem}\n")), false).is_ok(), "the same, trimmed");
        assert!(token_follows_trust(None, Some(" "), false).is_ok(), "blank is none");
        for (stored, new) in
            [(None, Some(pem)), (Some(pem), None), (Some(pem), Some("-----BEGIN CERTIFICATE-----\nOTHER"))]
        {
            let refused = token_follows_trust(stored, new, false).unwrap_err();
            assert_eq!((refused.field.as_str(), refused.code.as_str()), ("datacenter.access_token", "token_required"));
            assert!(token_follows_trust(stored, new, true).is_ok(), "with the token given again");
        }
    }

    #[test]
    fn a_stored_secret_belongs_to_its_consumer_key() {
        assert!(secret_follows_key("key", " key ", false).is_ok());
        assert!(secret_follows_key("key", "other", true).is_ok());
        let refused = secret_follows_key("key", "other", false).unwrap_err();
        assert_eq!((refused.field.as_str(), refused.code.as_str()), ("cloud.client_secret", "secret_required"));
    }
}
