//! Posting a build status to a commit, on both products: the request each
//! expects (sent by [`super::calls::send`]).

use serde_json::{json, Value};

use super::calls::{Call, CallKind};

/// What a status says, in each product's words already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status<'a> {
    pub key: &'a str,
    /// `INPROGRESS`, `SUCCESSFUL`, `FAILED`, `STOPPED` or `CANCELLED`.
    pub state: &'static str,
    pub name: &'a str,
    pub url: &'a str,
    pub description: &'a str,
    /// The branch the commit was built on, without `refs/heads/`.
    pub branch: Option<&'a str>,
}

/// Data Center's current endpoint (8.x and later), with the branch as `ref`.
pub fn datacenter_current(project: &str, slug: &str, commit: &str, status: &Status<'_>) -> (Call, Value) {
    let mut body = datacenter_body(status);
    if let Some(branch) = status.branch {
        body["ref"] = json!(format!("refs/heads/{branch}"));
    }
    let path = format!("/rest/api/latest/projects/{project}/repos/{slug}/commits/{commit}/builds");
    (Call { kind: CallKind::BuildStatus, method: "POST", path }, body)
}

/// The legacy endpoint of servers without the current one: no `ref`, and
/// no `CANCELLED` (the caller gives `FAILED`).
pub fn datacenter_legacy(commit: &str, status: &Status<'_>) -> (Call, Value) {
    (
        Call { kind: CallKind::BuildStatus, method: "POST", path: format!("/rest/build-status/1.0/commits/{commit}") },
        datacenter_body(status),
    )
}

fn datacenter_body(status: &Status<'_>) -> Value {
    json!({"key": status.key, "state": status.state, "name": status.name, "url": status.url,
           "description": status.description})
}

/// Cloud: the bare branch name as `refname`.
pub fn cloud(workspace: &str, slug: &str, commit: &str, status: &Status<'_>) -> (Call, Value) {
    let mut body = json!({"key": status.key, "state": status.state, "name": status.name, "url": status.url,
                          "description": status.description});
    if let Some(branch) = status.branch {
        body["refname"] = json!(branch);
    }
    let path = format!("/2.0/repositories/{workspace}/{slug}/commit/{commit}/statuses/build");
    (Call { kind: CallKind::BuildStatus, method: "POST", path }, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn status(branch: Option<&'static str>) -> Status<'static> {
        Status {
            key: "bg/abc/tracked",
            state: "SUCCESSFUL",
            name: "Bitgate: web (tracked)",
            url: "https://ci.example.com/runs/1",
            description: "Succeeded",
            branch,
        }
    }

    #[test]
    fn each_product_gets_its_path_and_its_branch_field() {
        let (call, body) = datacenter_current("OPS", "my-repo", SHA, &status(Some("main")));
        assert_eq!(call.path, format!("/rest/api/latest/projects/OPS/repos/my-repo/commits/{SHA}/builds"));
        assert_eq!(body["ref"], "refs/heads/main");
        let (call, body) = datacenter_legacy(SHA, &status(Some("main")));
        assert_eq!(call.path, format!("/rest/build-status/1.0/commits/{SHA}"));
        assert!(body.get("ref").is_none(), "the legacy endpoint knows no ref");
        let (call, body) = cloud("acme", "website", SHA, &status(Some("main")));
        assert_eq!(call.path, format!("/2.0/repositories/acme/website/commit/{SHA}/statuses/build"));
        assert_eq!((body["refname"].as_str(), body["key"].as_str()), (Some("main"), Some("bg/abc/tracked")));
        assert!(cloud("acme", "website", SHA, &status(None)).1.get("refname").is_none());
    }
}
