//! A repository's branches in Bitbucket Cloud's REST API 2.0, what a caller
//! polls where no webhook gets through (bitbucket-next.md §4, "Detecting a
//! hook a user deleted"): `GET /2.0/repositories/{workspace}/{repo}/refs/
//! branches`, paged like every Cloud list (bitbucket-protocol.md §3), scope
//! `repository`. Each branch is `{"type": "branch", "name", "target":
//! {"type": "commit", "hash", ...}, "links"}`.
//!
//! `q` takes Cloud's filter language for the name only: `name = "main"`
//! (exactly) and `name ~ "feat"` (contains, any case); any other filter is
//! refused with a 400 (Cloud understands far more; its message here is
//! UNVERIFIED). UNVERIFIED too: the order (by name here).

#![allow(
    clippy::result_large_err,
    reason = "handlers here refuse early with `?`: a refusal is the handler's answer, built once per request"
)]

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

use super::statuses::{answer, authorized};
use super::{api_error, paged, PageQuery, Shared, DEMO_PR_COMMIT, DEMO_REPOSITORY, DEMO_WORKSPACE};

/// A branch of a repository and the commit it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// `workspace/slug`.
    pub repository: String,
    pub name: String,
    /// The head commit: 40 hex digits.
    pub target: String,
}

impl Branch {
    /// The demo repository's branches: `main` at the head the sender's push
    /// names, and the sample pull request's source.
    pub(super) fn sample() -> Vec<Self> {
        let repository = format!("{DEMO_WORKSPACE}/{DEMO_REPOSITORY}");
        [("main", "141977fedf5cf35aa290ac87d4b5177ac4cd9de1"), ("feature/login", DEMO_PR_COMMIT)]
            .map(|(name, target)| Self { repository: repository.clone(), name: name.into(), target: target.into() })
            .to_vec()
    }

    fn json(&self) -> Value {
        let api = format!("https://api.bitbucket.org/2.0/repositories/{}", self.repository);
        let html = format!("https://bitbucket.org/{}", self.repository);
        json!({
            "type": "branch", "name": self.name,
            "target": {"type": "commit", "hash": self.target, "links": {
                "self": {"href": format!("{api}/commit/{}", self.target)},
                "html": {"href": format!("{html}/commits/{}", self.target)},
            }},
            "links": {
                "self": {"href": format!("{api}/refs/branches/{}", self.name)},
                "commits": {"href": format!("{api}/commits/{}", self.name)},
                "html": {"href": format!("{html}/branch/{}", self.name)},
            },
        })
    }
}

/// Which names a `q` keeps.
#[derive(Debug, PartialEq, Eq)]
enum NameFilter {
    All,
    Equal(String),
    /// Lowercase.
    Containing(String),
}

/// Reads `name = "…"` or `name ~ "…"`; Cloud's 400 for anything else.
fn name_filter(q: Option<&str>) -> Result<NameFilter, Response> {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else { return Ok(NameFilter::All) };
    let refused = || api_error(StatusCode::BAD_REQUEST, &format!("Invalid filter: {q}"));
    let condition = q.strip_prefix("name").ok_or_else(refused)?.trim_start();
    let (operator, value) = condition.split_at(condition.chars().next().map_or(0, char::len_utf8));
    let value = value.trim();
    let text = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(refused)?;
    match operator {
        "=" => Ok(NameFilter::Equal(text.to_owned())),
        "~" => Ok(NameFilter::Containing(text.to_lowercase())),
        _ => Err(refused()),
    }
}

async fn list_branches(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((workspace, repo)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    answer(&state, |instance| {
        authorized(instance, &headers, &workspace, &repo, "repository")?;
        let filter = name_filter(query.q.as_deref())?;
        let repository = format!("{workspace}/{repo}");
        let mut found: Vec<&Branch> = instance
            .branches
            .iter()
            .filter(|b| b.repository == repository)
            .filter(|b| match &filter {
                NameFilter::All => true,
                NameFilter::Equal(name) => b.name == *name,
                NameFilter::Containing(text) => b.name.to_lowercase().contains(text),
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        let values = found.into_iter().map(Branch::json).collect();
        let path = format!("/2.0/repositories/{repository}/refs/branches");
        Ok(Json(paged(values, &query, &path, &headers)).into_response())
    })
}

pub(super) fn api() -> Router<Shared> {
    Router::new().route("/2.0/repositories/{workspace}/{repo}/refs/branches", get(list_branches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_reads_equality_and_containment_of_the_name() {
        assert_eq!(name_filter(None).ok(), Some(NameFilter::All));
        assert_eq!(name_filter(Some(r#"name="main""#)).ok(), Some(NameFilter::Equal("main".into())));
        assert_eq!(
            name_filter(Some(r#" name = "feature/login" "#)).ok(),
            Some(NameFilter::Equal("feature/login".into()))
        );
        assert_eq!(name_filter(Some(r#"name ~ "LOG""#)).ok(), Some(NameFilter::Containing("log".into())));
        for refused in [r#"name != "main""#, "name = main", r#"target.hash = "abc""#] {
            assert!(name_filter(Some(refused)).is_err(), "{refused}");
        }
    }
}
