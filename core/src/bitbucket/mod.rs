//! Talking to Bitbucket: checking credentials before they are saved, and
//! finding the repositories stacks attach to.

pub mod cloud;
pub mod datacenter;

use serde::Serialize;

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

/// One line of a connection checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Data Center: `server`, `token`, `owner`, `projects`, `repositories`;
    /// Cloud: `consumer`, `token`, `scopes`, `user`, `workspace`.
    pub name: &'static str,
    pub ok: bool,
    pub message: String,
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
        self.checks.iter().all(|c| c.ok)
    }

    /// The first failure's message, for a health state.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }
}

/// Why a call with stored credentials got no usable answer, in words an
/// admin can act on (never Bitbucket's body verbatim).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CallFailed(pub String);

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
    fn repository_names_are_project_and_slug_and_nothing_else() {
        assert_eq!(parse_repository_name(" PRJ/my-repo ").unwrap(), ("PRJ".into(), "my-repo".into()));
        assert_eq!(parse_repository_name("~JSMITH/dotfiles").unwrap(), ("~JSMITH".into(), "dotfiles".into()));
        for bad in ["", "PRJ", "PRJ/", "/repo", "PRJ/a/b", "PRJ/..", "PRJ/a?b", "P R/x", "PRJ/%2e%2e"] {
            assert!(parse_repository_name(bad).is_err(), "{bad:?}");
        }
    }
}
