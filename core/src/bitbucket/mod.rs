//! Talking to Bitbucket: checking credentials before they are saved, and
//! finding the repositories stacks attach to.

pub mod branch_heads;
pub mod build_statuses;
pub mod calls;
pub mod cloud;
pub mod datacenter;
pub mod pull_request_comments;
pub mod repository_hooks;

use serde::Serialize;

use crate::integrations::Provider;

/// A repository as Bitgate keeps it: Bitbucket's stable id (the Data Center
/// repository id, the Cloud repository UUID), with the names people use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repository {
    pub id: String,
    /// The Data Center project key (or the Cloud workspace).
    pub project: String,
    pub slug: String,
    /// The name Bitbucket shows.
    pub display_name: String,
}

impl Repository {
    /// `PRJ/my-repo`: how stacks and deliveries name it.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.project, self.slug)
    }
}

/// Which page of the repositories to read, and the text their names contain.
#[derive(Debug, Clone, Copy)]
pub struct RepositorySearch<'a> {
    pub name: &'a str,
    /// Where the page starts, counted in repositories.
    pub start: u64,
    pub limit: u32,
}

/// One page of repositories, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPage {
    pub items: Vec<Repository>,
    pub next_start: Option<u64>,
}

/// Bitgate's one OAuth callback, where Bitbucket sends the admin's browser
/// back after an approval: Cloud's consumers and Data Center's application
/// links name the same URL.
pub fn oauth_callback_url(config: &crate::config::Config) -> String {
    config.public_url.join("/oauth/bitbucket/callback")
}

/// Where the page after `body` starts, in what each product asks for it
/// by (Data Center: a count, `nextPageStart`; Cloud: its `page`), if there
/// is one.
pub fn next_page(provider: Provider, body: &serde_json::Value) -> Option<String> {
    match provider {
        Provider::DataCenter => match body["isLastPage"].as_bool() {
            Some(false) => body["nextPageStart"].as_u64().map(|start| start.to_string()),
            _ => None,
        },
        // Cloud's `next` is a whole URL; its `page` parameter is what to ask for.
        Provider::Cloud => body["next"].as_str().and_then(|next| {
            let url = url::Url::parse(next).ok()?;
            let page = url.query_pairs().find(|(key, _)| key == "page").map(|(_, page)| page.into_owned());
            page
        }),
    }
}

/// One line of a connection checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Data Center: `server`, `token`, `owner`, `projects`, `repositories`;
    /// Cloud: `consumer`, `token`, `scopes`, `user`, `workspace`.
    pub name: &'static str,
    pub ok: bool,
    pub message: String,
    /// A line that, failed, is said but fails nothing (whether Bitgate can
    /// manage the webhooks): the integration stays connected.
    pub warning: bool,
}

impl Check {
    pub fn passed(name: &'static str, message: impl Into<String>) -> Self {
        Self { name, ok: true, message: message.into(), warning: false }
    }

    pub fn failed(name: &'static str, message: impl Into<String>) -> Self {
        Self { name, ok: false, message: message.into(), warning: false }
    }

    /// A failed line that fails nothing.
    pub fn warned(name: &'static str, message: impl Into<String>) -> Self {
        Self { name, ok: false, message: message.into(), warning: true }
    }
}

/// The checklist, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Bitbucket's version, when it said (Data Center).
    pub version: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok || c.warning)
    }

    /// The first failure's message, for a health state.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok && !c.warning)
    }
}

/// Why a call with stored credentials got no usable answer, in words an
/// admin can act on (never Bitbucket's body verbatim).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CallFailed(pub String);

/// Why a REST call with a stored token failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCallError {
    /// 401 to a bearer token: an OAuth access token expired or was revoked
    /// (refresh and retry once); an HTTP access token, revoked.
    Unauthorized,
    Failed(CallFailed),
}

impl From<CallFailed> for ApiCallError {
    fn from(failed: CallFailed) -> Self {
        ApiCallError::Failed(failed)
    }
}

/// The most characters of a remote server's own text a message quotes.
pub const EXCERPT_CHARS: usize = 64;

/// A short, harmless excerpt of text a remote server chose (a username, a
/// display name, a project key) for quoting in a message of ours: control
/// and invisible formatting characters dropped (bidirectional overrides,
/// zero-width ones), whitespace runs made one space, at most
/// [`EXCERPT_CHARS`] characters (an ellipsis marks a cut). Never the whole
/// of an answer: what happened is said in our words.
pub fn excerpt(remote: &str) -> String {
    // Unicode's format characters (category Cf) that change how text looks
    // or reads without being seen.
    let is_invisible = |c: char| {
        matches!(c, '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
    };
    let mut words = remote
        .split(|c: char| c.is_whitespace() || c.is_control())
        .map(|word| word.chars().filter(|c| !is_invisible(*c) && !c.is_control()).collect::<String>())
        .filter(|word| !word.is_empty());
    let mut text = String::new();
    let mut count = 0;
    if let Some(first) = words.next() {
        text.push_str(&first);
        count = first.chars().count();
        for word in words {
            if count > EXCERPT_CHARS {
                break;
            }
            text.push(' ');
            text.push_str(&word);
            count += 1 + word.chars().count();
        }
    }
    if count > EXCERPT_CHARS {
        let mut cut: String = text.chars().take(EXCERPT_CHARS - 1).collect();
        cut.push('\u{2026}');
        return cut;
    }
    text
}

/// Why an answer was not read: longer than any Bitbucket sends to this
/// call. `check` names what the admin should check.
pub fn too_large(host: &str, limit: usize, check: &str) -> String {
    let size = match limit {
        limit if limit >= 1024 * 1024 => format!("{} MiB", limit / (1024 * 1024)),
        limit => format!("{} KiB", limit / 1024),
    };
    format!("{host} answered with more than {size}, far more than Bitbucket sends: check {check}.")
}

/// A version string as Bitbucket writes one (`8.19.1`, `9.4.0-rc1`), or
/// `None` for anything else a server might put there.
pub fn version_of(remote: &str) -> Option<String> {
    let version = remote.trim();
    let plausible = version.len() <= 32
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
    plausible.then(|| version.to_owned())
}

/// Splits `PRJ/my-repo` into its project key and slug. Only the characters
/// Bitbucket allows in them, so that neither can change the path it is put in.
pub fn parse_repository_name(raw: &str) -> Result<(String, String), String> {
    let usage =
        || format!("Name the repository as PROJECT/slug, such as PRJ/my-repo (not \u{201c}{}\u{201d}).", raw.trim());
    let (project, slug) = raw.trim().split_once('/').ok_or_else(usage)?;
    let project_ok = !project.is_empty() && project.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '~');
    let slug_ok = !slug.is_empty()
        && slug != "."
        && slug != ".."
        && slug.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if project_ok && slug_ok {
        Ok((project.to_owned(), slug.to_owned()))
    } else {
        Err(usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_single_line_and_free_of_controls() {
        assert_eq!(excerpt("  jcitizen \n"), "jcitizen");
        assert_eq!(excerpt("Ada\r\n\tLovelace"), "Ada Lovelace");
        assert_eq!(excerpt("admin\u{202e}nimda\u{2066}"), "adminnimda", "no bidirectional overrides");
        assert_eq!(excerpt("ad\u{200b}m\u{feff}i\u{61c}n\u{2060}"), "admin", "no invisible characters");
        assert_eq!(excerpt("a\u{0}b\u{1b}[31mc"), "a b [31mc", "no control characters (the escape is gone)");
        let long = excerpt(&"x".repeat(10_000));
        assert_eq!(long.chars().count(), EXCERPT_CHARS);
        assert!(long.ends_with('\u{2026}'));
        let many = excerpt(&"word ".repeat(5_000));
        assert_eq!(many.chars().count(), EXCERPT_CHARS, "{many}");
        assert_eq!(excerpt(""), "");
        assert_eq!(excerpt(&"y".repeat(EXCERPT_CHARS)), "y".repeat(EXCERPT_CHARS), "exactly the limit is kept whole");
    }

    #[test]
    fn versions_are_taken_only_in_a_version_s_shape() {
        assert_eq!(version_of("8.19.1").as_deref(), Some("8.19.1"));
        assert_eq!(version_of(" 9.4.0-rc1 ").as_deref(), Some("9.4.0-rc1"));
        for bad in ["", "v8", "8.19.1 <script>", "8.19\n1", "9".repeat(40).as_str(), "Bitbucket is great"] {
            assert_eq!(version_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn repository_names_are_project_and_slug_and_nothing_else() {
        assert_eq!(parse_repository_name(" PRJ/my-repo ").unwrap(), ("PRJ".into(), "my-repo".into()));
        assert_eq!(parse_repository_name("~JSMITH/dotfiles").unwrap(), ("~JSMITH".into(), "dotfiles".into()));
        for bad in ["", "PRJ", "PRJ/", "/repo", "PRJ/a/b", "PRJ/..", "PRJ/a?b", "P R/x", "PRJ/%2e%2e"] {
            assert!(parse_repository_name(bad).is_err(), "{bad:?}");
        }
    }
}
