//! A repository's branch heads on both products, what polling reads where
//! no webhook gets through (SPEC.md, "Webhooks managed by Bitgate, and
//! polling"; bitbucket-next.md §4, "Detecting a hook a user deleted": a
//! branch head that moved with no delivery). One list per repository, not
//! per stack: every branch with the commit it points to, paged as each
//! product pages its lists. The calls are sent by [`super::calls::send`].

use serde_json::Value;

use super::calls::{Call, CallKind};
use crate::integrations::Provider;

/// How many branches one page asks for (both products' largest page is
/// larger; a repository's branches fit in a few pages).
const PAGE: u32 = 100;

/// A branch and the commit it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The branch's name, without `refs/heads/`.
    pub branch: String,
    /// The head commit, 40 hex digits.
    pub commit: String,
}

/// One page of the branches of `owner/slug` (`owner`: the project key or
/// the workspace), from where `page` says (Data Center counts, Cloud pages).
pub fn list(provider: Provider, owner: &str, slug: &str, page: Option<&str>) -> Call {
    let path = match (provider, page) {
        (Provider::DataCenter, start) => {
            format!("/rest/api/1.0/projects/{owner}/repos/{slug}/branches?start={}&limit={PAGE}", start.unwrap_or("0"))
        }
        (Provider::Cloud, None) => format!("/2.0/repositories/{owner}/{slug}/refs/branches?pagelen={PAGE}"),
        (Provider::Cloud, Some(page)) => {
            format!("/2.0/repositories/{owner}/{slug}/refs/branches?pagelen={PAGE}&page={page}")
        }
    };
    Call { kind: CallKind::BranchHeads, method: "GET", path }
}

/// One page of branches and where the next starts, if any; `None` when
/// the body is not such a page. A branch without a well-formed head (40
/// hex digits) is left out: it cannot be told moved or not.
pub fn parse_page(provider: Provider, body: &Value) -> Option<(Vec<Head>, Option<String>)> {
    let values = body["values"].as_array()?;
    let heads = values.iter().filter_map(|branch| parse_branch(provider, branch)).collect();
    let next = super::next_page(provider, body);
    Some((heads, next))
}

fn parse_branch(provider: Provider, branch: &Value) -> Option<Head> {
    let (name, commit) = match provider {
        Provider::DataCenter => {
            if branch["type"].as_str().is_some_and(|kind| kind != "BRANCH") {
                return None;
            }
            // `latestChangeset` is the older name of `latestCommit`.
            let commit = branch["latestCommit"].as_str().or_else(|| branch["latestChangeset"].as_str())?;
            (branch["displayId"].as_str()?, commit)
        }
        Provider::Cloud => (branch["name"].as_str()?, branch["target"]["hash"].as_str()?),
    };
    let full = commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    (full && !name.is_empty()).then(|| Head { branch: name.to_owned(), commit: commit.to_ascii_lowercase() })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HEAD: &str = "823b2230a56056231c9425d63758fa87078a66b4";

    #[test]
    fn both_products_pages_read_as_heads_and_where_the_next_starts() {
        let datacenter = json!({"values": [
            {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH", "latestCommit": HEAD, "isDefault": true},
            {"id": "refs/heads/old", "displayId": "old", "type": "BRANCH", "latestChangeset": HEAD.to_uppercase()},
            {"id": "refs/tags/v1", "displayId": "v1", "type": "TAG", "latestCommit": HEAD},
            {"id": "refs/heads/odd", "displayId": "odd", "type": "BRANCH", "latestCommit": "abc"}],
            "isLastPage": false, "nextPageStart": 100});
        let (heads, next) = parse_page(Provider::DataCenter, &datacenter).unwrap();
        let read: Vec<(&str, &str)> = heads.iter().map(|h| (h.branch.as_str(), h.commit.as_str())).collect();
        assert_eq!(read, [("main", HEAD), ("old", HEAD)], "tags and short heads left out, hashes in lower case");
        assert_eq!(next.as_deref(), Some("100"));
        assert_eq!(parse_page(Provider::DataCenter, &json!({"values": [], "isLastPage": true})), Some((vec![], None)));

        let cloud = json!({"values": [{"type": "branch", "name": "main", "target": {"type": "commit", "hash": HEAD}}],
            "next": "https://api.bitbucket.org/2.0/repositories/acme/web/refs/branches?pagelen=100&page=2"});
        let (heads, next) = parse_page(Provider::Cloud, &cloud).unwrap();
        assert_eq!(heads, [Head { branch: "main".into(), commit: HEAD.into() }]);
        assert_eq!(next.as_deref(), Some("2"));
        assert_eq!(parse_page(Provider::Cloud, &json!({"error": {"message": "no"}})), None);
    }

    #[test]
    fn pages_are_asked_for_as_each_product_pages() {
        assert_eq!(
            list(Provider::DataCenter, "OPS", "my-repo", Some("100")).path,
            "/rest/api/1.0/projects/OPS/repos/my-repo/branches?start=100&limit=100"
        );
        assert_eq!(
            list(Provider::Cloud, "acme", "web", None).path,
            "/2.0/repositories/acme/web/refs/branches?pagelen=100"
        );
        assert_eq!(
            list(Provider::Cloud, "acme", "web", Some("3")).path,
            "/2.0/repositories/acme/web/refs/branches?pagelen=100&page=3"
        );
    }
}
