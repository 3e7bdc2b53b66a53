//! A repository's branches in Data Center's REST API 1.0, what a caller
//! polls where no webhook gets through (bitbucket-next.md §4, "Detecting a
//! hook a user deleted": a branch head that moved with no delivery):
//! `GET /rest/api/1.0/projects/{key}/repos/{slug}/branches`, paged like
//! every Data Center list, `filterText` keeping the branches whose name
//! contains it (any case), REPO_READ as for every read. Each branch is
//! Bitbucket's ref: `id` (`refs/heads/…`), `displayId`, `type` `BRANCH`,
//! `latestCommit`, its older name `latestChangeset`, and `isDefault`.
//!
//! The branches are [`super::commits`]' own, so a push on the repository's
//! page moves a head here. UNVERIFIED: the order (here the default branch
//! first, then by name; Bitbucket's default order is not in the sources)
//! and that `main` is every repository's default branch (the simulator's
//! repositories keep no default of their own).

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::Response,
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{as_user, commits::Branch, paged, read, repository_reader, PageQuery, Shared};

/// The branch every simulated repository treats as its default.
pub const DEFAULT_BRANCH: &str = "main";

fn branch_json(branch: &Branch) -> Value {
    json!({
        "id": format!("refs/heads/{}", branch.name), "displayId": branch.name, "type": "BRANCH",
        "latestCommit": branch.head, "latestChangeset": branch.head, "isDefault": branch.name == DEFAULT_BRANCH,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BranchQuery {
    start: Option<usize>,
    limit: Option<usize>,
    filter_text: Option<String>,
}

async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((key, slug)): Path<(String, String)>,
    Query(query): Query<BranchQuery>,
) -> Response {
    let instance = read(&state);
    let (token, repository) = match repository_reader(&instance, &headers, &key, &slug) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let filter = query.filter_text.as_deref().unwrap_or_default().to_lowercase();
    let mut found: Vec<&Branch> = instance
        .branches
        .iter()
        .filter(|b| b.repository_id == repository.id && b.name.to_lowercase().contains(&filter))
        .collect();
    found.sort_by(|a, b| (a.name != DEFAULT_BRANCH, &a.name).cmp(&(b.name != DEFAULT_BRANCH, &b.name)));
    let values = found.into_iter().map(branch_json).collect();
    let page = PageQuery { start: query.start, limit: query.limit, name: None };
    as_user(&Some(token), Json(paged(values, &page)))
}

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/rest/api/1.0/projects/{key}/repos/{slug}/branches", get(list))
}
