//! Bitgate's configuration: every variable of SPEC.md's table, parsed once at
//! start-up into typed values. An invalid value stops start-up with one
//! sentence that names the variable.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use url::Url;

use crate::secrets::{Keyring, KeyringError};

/// Where the configuration comes from: the process environment in production,
/// a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Environment;

impl Source for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

/// How secret keys were obtained: development generates one into the data
/// directory, production requires `BITGATE_SECRET_KEYS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKeysSource {
    /// `BITGATE_SECRET_KEYS` as given.
    Environment(String),
    /// Development: generated once into `{data_dir}/secret-keys`.
    GeneratedIn(PathBuf),
}

/// The whole configuration, loaded once.
#[derive(Clone)]
pub struct Config {
    pub mode: Mode,
    /// `None`: start the embedded cluster in the data directory.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub public_url: PublicUrl,
    pub secret_keys: SecretKeysSource,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub webhook_secret_grace: Duration,
    /// How often branch heads are read for repositories without a working hook.
    pub poll_interval: Duration,
    pub delivery_retention: Duration,
    pub audit_retention: Duration,
    pub outbound_deny: Vec<IpNet>,
    pub outbound_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub bitbucket_cloud_url: Url,
    pub bitbucket_cloud_api_url: Url,
    /// `BITGATE_METRICS=on`: Prometheus metrics at `/metrics`.
    pub metrics: bool,
    /// Where `/metrics` is served instead of `BITGATE_LISTEN`, if set.
    pub metrics_listen: Option<SocketAddr>,
    /// How long a stopping process waits for its requests and jobs.
    pub shutdown_grace: Duration,
}

impl fmt::Debug for Config {
    // The database URL may carry a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("mode", &self.mode)
            .field("database", &self.database_url.as_ref().map(|_| "(set)"))
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_str())
            .finish_non_exhaustive()
    }
}

/// The one sentence that stops start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn invalid(variable: &str, why: impl fmt::Display) -> Self {
        Self(format!("{variable} is invalid: {why}."))
    }
}

/// The public URL, normalised to an origin plus an optional path prefix
/// without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(Url);

impl PublicUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("{e} (expected e.g. https://bitgate.example.com)"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("it must start with http:// or https://".into());
        }
        if url.host_str().is_none() {
            return Err("it has no host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("it must not contain a user name or password".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("it must not contain a query or a fragment".into());
        }
        let mut url = url;
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        Ok(Self(url))
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    /// The URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// An absolute URL for a path of Bitgate's (`path` starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.as_str(), path)
    }
}

impl Config {
    /// Loads the configuration from a source, checking every value.
    pub fn load(source: &impl Source) -> Result<Self, ConfigError> {
        let var = |name: &str| source.get(name).filter(|v| !v.trim().is_empty());

        let mode = match var("BITGATE_MODE").as_deref().map(str::trim) {
            None | Some("development") => Mode::Development,
            Some("production") => Mode::Production,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "BITGATE_MODE",
                    format!("\"{other}\" is neither development nor production"),
                ))
            }
        };
        let data_dir = PathBuf::from(var("BITGATE_DATA_DIR").unwrap_or_else(|| ".bitgate".into()));
        let listen =
            var("BITGATE_LISTEN").unwrap_or_else(|| "127.0.0.1:3000".into()).trim().parse::<SocketAddr>().map_err(
                |_| ConfigError::invalid("BITGATE_LISTEN", "expected an address and port such as 127.0.0.1:3000"),
            )?;
        let public_url =
            PublicUrl::parse(var("BITGATE_PUBLIC_URL").as_deref().unwrap_or("http://127.0.0.1:3000").trim())
                .map_err(|why| ConfigError::invalid("BITGATE_PUBLIC_URL", why))?;

        let secret_keys = match var("BITGATE_SECRET_KEYS") {
            Some(keys) => {
                // Checked here so that a bad key stops start-up, not the first encryption.
                Keyring::parse(&keys).map_err(|e: KeyringError| ConfigError::invalid("BITGATE_SECRET_KEYS", e))?;
                SecretKeysSource::Environment(keys)
            }
            None if mode == Mode::Production => {
                return Err(ConfigError(
                    "BITGATE_SECRET_KEYS must be set when BITGATE_MODE is production (id:base64-of-32-bytes, comma-separated)."
                        .into(),
                ))
            }
            None => SecretKeysSource::GeneratedIn(data_dir.join("secret-keys")),
        };
        if mode == Mode::Production && !public_url.is_https() {
            return Err(ConfigError(
                "BITGATE_PUBLIC_URL must be an https:// URL when BITGATE_MODE is production.".into(),
            ));
        }

        let duration = |name: &str, default: &str| -> Result<Duration, ConfigError> {
            parse_duration(var(name).as_deref().unwrap_or(default).trim())
                .map_err(|why| ConfigError::invalid(name, why))
        };
        let cidrs = |name: &str, default: &str| -> Result<Vec<IpNet>, ConfigError> {
            // An explicitly empty value means "none", unlike an unset one.
            let raw = source.get(name).unwrap_or_else(|| default.to_owned());
            parse_cidrs(&raw).map_err(|why| ConfigError::invalid(name, why))
        };
        let url = |name: &str, default: &str| -> Result<Url, ConfigError> {
            let raw = var(name).unwrap_or_else(|| default.to_owned());
            let url = Url::parse(raw.trim()).map_err(|e| ConfigError::invalid(name, e))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(name, "it must start with http:// or https://"));
            }
            Ok(url)
        };

        let metrics = match var("BITGATE_METRICS").as_deref().map(str::trim) {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(ConfigError::invalid("BITGATE_METRICS", format!("\"{other}\" is neither on nor off")))
            }
        };
        let metrics_listen =
            var("BITGATE_METRICS_LISTEN").map(|raw| raw.trim().parse::<SocketAddr>()).transpose().map_err(|_| {
                ConfigError::invalid("BITGATE_METRICS_LISTEN", "expected an address and port such as 127.0.0.1:9300")
            })?;
        if metrics_listen.is_some() && !metrics {
            return Err(ConfigError::invalid("BITGATE_METRICS_LISTEN", "it is set but BITGATE_METRICS is not on"));
        }
        if metrics_listen == Some(listen) {
            return Err(ConfigError::invalid(
                "BITGATE_METRICS_LISTEN",
                "it is BITGATE_LISTEN's address; leave it unset to serve /metrics there",
            ));
        }

        let session_idle = duration("BITGATE_SESSION_IDLE", "30m")?;
        let session_max = duration("BITGATE_SESSION_MAX", "12h")?;
        if session_idle > session_max {
            return Err(ConfigError::invalid("BITGATE_SESSION_IDLE", "it is longer than BITGATE_SESSION_MAX"));
        }

        Ok(Self {
            mode,
            database_url: var("DATABASE_URL"),
            data_dir,
            listen,
            public_url,
            secret_keys,
            session_idle,
            session_max,
            webhook_secret_grace: duration("BITGATE_WEBHOOK_SECRET_GRACE", "24h")?,
            poll_interval: duration("BITGATE_POLL_INTERVAL", "60s")?,
            delivery_retention: duration("BITGATE_DELIVERY_RETENTION", "30d")?,
            audit_retention: duration("BITGATE_AUDIT_RETENTION", "365d")?,
            outbound_deny: cidrs("BITGATE_OUTBOUND_DENY", "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10")?,
            outbound_timeout: duration("BITGATE_OUTBOUND_TIMEOUT", "10s")?,
            trusted_proxies: cidrs("BITGATE_TRUSTED_PROXIES", "")?,
            bitbucket_cloud_url: url("BITGATE_BITBUCKET_CLOUD_URL", "https://bitbucket.org")?,
            bitbucket_cloud_api_url: url("BITGATE_BITBUCKET_CLOUD_API_URL", "https://api.bitbucket.org")?,
            metrics,
            metrics_listen,
            shutdown_grace: duration("BITGATE_SHUTDOWN_GRACE", "10s")?,
        })
    }
}

/// Parses `30s`, `10m`, `12h`, `30d` (a positive whole number and a unit).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let expected = || format!("\"{raw}\" is not a duration such as 30s, 10m, 12h or 30d");
    let unit_at = raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(expected)?;
    let (number, unit) = raw.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| expected())?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(expected()),
    };
    if number == 0 {
        return Err(format!("\"{raw}\" must be longer than zero"));
    }
    number.checked_mul(seconds_per_unit).map(Duration::from_secs).ok_or_else(|| format!("\"{raw}\" is too long"))
}

fn parse_cidrs(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("\"{part}\" is not a CIDR such as 10.0.0.0/8"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_those_of_the_spec() {
        let config = Config::load(&[]).unwrap();
        assert_eq!(config.mode, Mode::Development);
        assert_eq!(config.database_url, None);
        assert_eq!(config.data_dir, PathBuf::from(".bitgate"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:3000");
        assert_eq!(config.session_idle, Duration::from_secs(30 * 60));
        assert_eq!(config.session_max, Duration::from_secs(12 * 3600));
        assert_eq!(config.webhook_secret_grace, Duration::from_secs(24 * 3600));
        assert_eq!(config.poll_interval, Duration::from_secs(60));
        assert_eq!(config.delivery_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.audit_retention, Duration::from_secs(365 * 86_400));
        assert_eq!(config.outbound_deny.len(), 4);
        assert_eq!(config.outbound_timeout, Duration::from_secs(10));
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.bitbucket_cloud_url.as_str(), "https://bitbucket.org/");
        assert_eq!(config.secret_keys, SecretKeysSource::GeneratedIn(PathBuf::from(".bitgate/secret-keys")));
        assert!(!config.metrics && config.metrics_listen.is_none());
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn metrics_have_a_listener_of_their_own_only_when_on_and_elsewhere() {
        let config = Config::load(&[("BITGATE_METRICS", "on"), ("BITGATE_METRICS_LISTEN", "127.0.0.1:9300")]).unwrap();
        assert!(config.metrics);
        assert_eq!(config.metrics_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9300"));
        let off = Config::load(&[("BITGATE_METRICS_LISTEN", "127.0.0.1:9300")]).unwrap_err().to_string();
        assert!(off.contains("BITGATE_METRICS is not on"), "{off}");
        let same = [("BITGATE_METRICS", "on"), ("BITGATE_METRICS_LISTEN", "127.0.0.1:3000")];
        assert!(Config::load(&same).unwrap_err().to_string().contains("BITGATE_LISTEN"));
    }

    #[test]
    fn durations_take_the_four_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        for bad in ["", "10", "m", "1.5h", "10 m", "-3s", "0s", "10w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_invalid_value_names_its_variable_in_one_sentence() {
        let cases: [(&str, &str); 10] = [
            ("BITGATE_SESSION_IDLE", "soon"),
            ("BITGATE_LISTEN", "localhost"),
            ("BITGATE_PUBLIC_URL", "ftp://example.com"),
            ("BITGATE_MODE", "staging"),
            ("BITGATE_OUTBOUND_DENY", "10.0.0.0/33"),
            ("BITGATE_SECRET_KEYS", "k1:tooshort"),
            ("BITGATE_BITBUCKET_CLOUD_URL", "not a url"),
            ("BITGATE_METRICS", "yes"),
            ("BITGATE_METRICS_LISTEN", "9300"),
            ("BITGATE_SHUTDOWN_GRACE", "0s"),
        ];
        for (name, value) in cases {
            let error = Config::load(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{error}");
            assert!(error.ends_with('.') && error.lines().count() == 1, "{error}");
        }
    }

    #[test]
    fn production_needs_keys_and_https() {
        let error = Config::load(&[("BITGATE_MODE", "production")]).unwrap_err();
        assert!(error.to_string().contains("BITGATE_SECRET_KEYS"));

        let key = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let error = Config::load(&[("BITGATE_MODE", "production"), ("BITGATE_SECRET_KEYS", key)]).unwrap_err();
        assert!(error.to_string().contains("BITGATE_PUBLIC_URL"));

        let config = Config::load(&[
            ("BITGATE_MODE", "production"),
            ("BITGATE_SECRET_KEYS", key),
            ("BITGATE_PUBLIC_URL", "https://bitgate.example.com/"),
        ])
        .unwrap();
        assert_eq!(config.public_url.as_str(), "https://bitgate.example.com");
        assert_eq!(config.public_url.origin(), "https://bitgate.example.com");
    }

    #[test]
    fn an_empty_deny_list_means_none() {
        let config = Config::load(&[("BITGATE_OUTBOUND_DENY", "")]).unwrap();
        assert!(config.outbound_deny.is_empty());
        let config = Config::load(&[("BITGATE_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16")]).unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
    }

    #[test]
    fn the_public_url_refuses_credentials_and_keeps_a_path_prefix() {
        assert!(PublicUrl::parse("http://user:pw@example.com").is_err());
        let url = PublicUrl::parse("https://example.com/bitgate/").unwrap();
        assert_eq!(url.join("/login"), "https://example.com/bitgate/login");
        assert_eq!(url.origin(), "https://example.com");
    }
}
