//! A pull request's comment, on both products: the requests that create,
//! read and edit one, list a pull request's comments (to find one whose id
//! a process died before recording), and what their answers say (sent by
//! [`super::calls::send`]). Data Center edits name the comment's version;
//! Cloud's name only its id (bitbucket-next.md §2).

use serde_json::{json, Value};

use super::calls::{Call, CallKind};

/// How many comments one listing call reads.
const PAGE: u32 = 50;

/// A comment as Bitbucket answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub id: i64,
    /// Data Center's version (the next edit names it); Cloud has none.
    pub version: Option<i64>,
    pub text: String,
}

/// A pull request in a repository: `(project or workspace, slug, id)`.
#[derive(Debug, Clone, Copy)]
pub struct On<'a> {
    pub owner: &'a str,
    pub slug: &'a str,
    pub pull_request: i64,
}

impl On<'_> {
    fn datacenter(&self) -> String {
        format!("/rest/api/1.0/projects/{}/repos/{}/pull-requests/{}", self.owner, self.slug, self.pull_request)
    }

    fn cloud(&self) -> String {
        format!("/2.0/repositories/{}/{}/pullrequests/{}", self.owner, self.slug, self.pull_request)
    }
}

pub fn datacenter_create(on: On<'_>, text: &str) -> (Call, Value) {
    (
        Call { kind: CallKind::Comment, method: "POST", path: format!("{}/comments", on.datacenter()) },
        json!({"text": text}),
    )
}

pub fn datacenter_read(on: On<'_>, id: i64) -> Call {
    Call { kind: CallKind::Comment, method: "GET", path: format!("{}/comments/{id}", on.datacenter()) }
}

pub fn datacenter_edit(on: On<'_>, id: i64, version: i64, text: &str) -> (Call, Value) {
    (
        Call { kind: CallKind::Comment, method: "PUT", path: format!("{}/comments/{id}", on.datacenter()) },
        json!({"version": version, "text": text}),
    )
}

/// Data Center lists a pull request's comments only among its activities,
/// newest first.
pub fn datacenter_activities(on: On<'_>, start: u64) -> Call {
    Call {
        kind: CallKind::Comment,
        method: "GET",
        path: format!("{}/activities?start={start}&limit={PAGE}", on.datacenter()),
    }
}

pub fn cloud_create(on: On<'_>, text: &str) -> (Call, Value) {
    (
        Call { kind: CallKind::Comment, method: "POST", path: format!("{}/comments", on.cloud()) },
        json!({"content": {"raw": text}}),
    )
}

pub fn cloud_edit(on: On<'_>, id: i64, text: &str) -> (Call, Value) {
    (
        Call { kind: CallKind::Comment, method: "PUT", path: format!("{}/comments/{id}", on.cloud()) },
        json!({"content": {"raw": text}}),
    )
}

pub fn cloud_list(on: On<'_>, page: u64) -> Call {
    Call { kind: CallKind::Comment, method: "GET", path: format!("{}/comments?pagelen={PAGE}&page={page}", on.cloud()) }
}

/// The comment a create, read or edit answered with.
pub fn remote_of(body: &Value) -> Option<Remote> {
    let id = body["id"].as_i64()?;
    let text = body["text"].as_str().or_else(|| body["content"]["raw"].as_str()).unwrap_or_default();
    Some(Remote { id, version: body["version"].as_i64(), text: text.to_owned() })
}

/// The comments of one listing page, and whether another page follows.
pub fn page_of(body: &Value) -> (Vec<Remote>, bool) {
    let values = body["values"].as_array().map(Vec::as_slice).unwrap_or_default();
    let comments = values
        .iter()
        .filter_map(|value| match value.get("comment") {
            // A Data Center activity: only comments added count.
            Some(comment) if value["action"] == "COMMENTED" => remote_of(comment),
            Some(_) => None,
            None => remote_of(value),
        })
        .collect();
    let more = match body.get("isLastPage") {
        Some(last) => last == false,
        None => body.get("next").is_some_and(|next| !next.is_null()),
    };
    (comments, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: On<'static> = On { owner: "OPS", slug: "my-repo", pull_request: 7 };

    #[test]
    fn each_product_gets_its_paths_and_bodies() {
        let (call, body) = datacenter_create(ON, "hi");
        assert_eq!(
            (call.method, call.path.as_str()),
            ("POST", "/rest/api/1.0/projects/OPS/repos/my-repo/pull-requests/7/comments")
        );
        assert_eq!(body, json!({"text": "hi"}));
        let (call, body) = datacenter_edit(ON, 3, 2, "hi");
        assert_eq!(
            (call.method, call.path.as_str()),
            ("PUT", "/rest/api/1.0/projects/OPS/repos/my-repo/pull-requests/7/comments/3")
        );
        assert_eq!(body, json!({"version": 2, "text": "hi"}));
        let cloud = On { owner: "acme", slug: "website", pull_request: 7 };
        let (call, body) = cloud_edit(cloud, 3, "hi");
        assert_eq!(
            (call.method, call.path.as_str()),
            ("PUT", "/2.0/repositories/acme/website/pullrequests/7/comments/3")
        );
        assert_eq!(body, json!({"content": {"raw": "hi"}}));
    }

    #[test]
    fn listings_of_both_products_are_read() {
        let datacenter = json!({"isLastPage": false, "values": [
            {"action": "COMMENTED", "commentAction": "ADDED", "comment": {"id": 4, "version": 1, "text": "a"}},
            {"action": "APPROVED"},
        ]});
        assert_eq!(page_of(&datacenter), (vec![Remote { id: 4, version: Some(1), text: "a".into() }], true));
        let cloud = json!({"values": [{"id": 9, "content": {"raw": "b"}}], "next": null});
        assert_eq!(page_of(&cloud), (vec![Remote { id: 9, version: None, text: "b".into() }], false));
    }
}
