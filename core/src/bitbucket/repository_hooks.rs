//! A repository's webhooks on both products, as Bitgate manages its own
//! (SPEC.md, "Webhooks managed by Bitgate"; bitbucket-next.md §4): the
//! calls that list, create, change and delete a hook, what a listed hook
//! reads as, and how Bitgate's hook is told apart and compared with what
//! it should be. The calls are sent by [`super::calls::send`].
//!
//! Bitgate's hook is the one named `Bitgate ({integration name})` (Data
//! Center's `name`, Cloud's `description`): hooks of other names are never
//! touched, whatever their URL. It is compared, as JBS's reconciler does on
//! every scan, on its URL, its events (exactly the trigger table's: Bitgate
//! owns this hook, so an event too many is a difference too), whether it is
//! active and, on Data Center, which answers it, its secret. Cloud answers
//! only `secret_set`: there the secret is written on every change and
//! after a rotation, and otherwise trusted.

use serde_json::{json, Value};

use super::calls::{Call, CallKind};
use crate::{
    integrations::Provider,
    webhooks::events::{CLOUD_KEYS, DATACENTER_KEYS},
};

/// The name of an integration's hook in Bitbucket.
pub fn hook_name(integration_name: &str) -> String {
    format!("Bitgate ({integration_name})")
}

/// The events Bitgate's hook subscribes to: SPEC.md's trigger table.
pub fn wanted_events(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::DataCenter => &DATACENTER_KEYS,
        Provider::Cloud => &CLOUD_KEYS,
    }
}

/// The hook as it should be (its `Debug` shows no secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub provider: Provider,
    pub name: String,
    pub url: &'a str,
    pub secret: &'a str,
}

impl std::fmt::Debug for Wanted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wanted")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A hook as Bitbucket lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Data Center's number (as text), Cloud's UUID in braces.
    pub id: String,
    pub name: String,
    pub url: String,
    pub active: bool,
    pub events: Vec<String>,
    /// What it signs with, where Bitbucket tells (Data Center).
    pub secret: Secret,
}

/// What Bitbucket tells of a hook's secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Data Center: the secret itself (`configuration.secret`), or none.
    Known(Option<String>),
    /// Cloud: only whether there is one (`secret_set`).
    Set(bool),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(secret) => write!(f, "Known({})", if secret.is_some() { "…" } else { "none" }),
            Self::Set(set) => write!(f, "Set({set})"),
        }
    }
}

/// How a hook differs from the wanted one, in the words its state shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    Url,
    Events,
    Inactive,
    Secret,
    /// Found by the id Bitgate kept, under another name (the integration
    /// was renamed since).
    Name,
}

impl Difference {
    pub fn in_words(self) -> &'static str {
        match self {
            Self::Url => "its URL is not this integration's endpoint",
            Self::Events => "its events are not the trigger table's",
            Self::Inactive => "it is not active",
            Self::Secret => "its secret is not this integration's",
            Self::Name => "its name is not this integration's",
        }
    }
}

/// Where `found` differs from `wanted`, in a fixed order; empty when it is
/// as it should be.
pub fn differences(wanted: &Wanted<'_>, found: &Found) -> Vec<Difference> {
    let mut differs = Vec::new();
    if found.url.trim_end_matches('/') != wanted.url.trim_end_matches('/') {
        differs.push(Difference::Url);
    }
    let mut events: Vec<&str> = found.events.iter().map(String::as_str).collect();
    events.sort_unstable();
    events.dedup();
    let mut expected = wanted_events(wanted.provider).to_vec();
    expected.sort_unstable();
    if events != expected {
        differs.push(Difference::Events);
    }
    if !found.active {
        differs.push(Difference::Inactive);
    }
    let secret_differs = match &found.secret {
        Secret::Known(secret) => secret.as_deref() != Some(wanted.secret),
        Secret::Set(set) => !set,
    };
    if secret_differs {
        differs.push(Difference::Secret);
    }
    if found.name != wanted.name {
        differs.push(Difference::Name);
    }
    differs
}

/// Bitgate's hook among those listed, if any, and its duplicates (hooks of
/// its name beyond it: two processes racing before the reconciler's lock,
/// or a copy made by hand), which are deleted. The hook of `known_id` (the
/// one Bitgate made) is Bitgate's whatever its name now: the integration
/// may have been renamed since.
pub fn own_hook<'a>(name: &str, known_id: Option<&str>, listed: &'a [Found]) -> (Option<&'a Found>, Vec<&'a Found>) {
    let first = known_id
        .and_then(|id| listed.iter().find(|hook| hook.id == id))
        .or_else(|| listed.iter().find(|hook| hook.name == name));
    let duplicates =
        listed.iter().filter(|hook| hook.name == name && first.is_none_or(|first| first.id != hook.id)).collect();
    (first, duplicates)
}

/// The collection of a repository's hooks (`owner`: the project key or the
/// workspace), with where a page starts (Data Center counts, Cloud pages).
pub fn list(provider: Provider, owner: &str, slug: &str, page: Option<&str>) -> Call {
    let path = match (provider, page) {
        (Provider::DataCenter, start) => {
            format!("/rest/api/1.0/projects/{owner}/repos/{slug}/webhooks?start={}&limit=100", start.unwrap_or("0"))
        }
        (Provider::Cloud, None) => format!("/2.0/repositories/{owner}/{slug}/hooks?pagelen=100"),
        (Provider::Cloud, Some(page)) => format!("/2.0/repositories/{owner}/{slug}/hooks?pagelen=100&page={page}"),
    };
    Call { kind: CallKind::Webhook, method: "GET", path }
}

/// One page of a list: its hooks, and the next page's start, if any. `None`
/// when the body is not such a page.
pub fn parse_page(provider: Provider, body: &Value) -> Option<(Vec<Found>, Option<String>)> {
    let values = body["values"].as_array()?;
    let hooks = values.iter().filter_map(|hook| parse_hook(provider, hook)).collect();
    let next = super::next_page(provider, body);
    Some((hooks, next))
}

fn parse_hook(provider: Provider, hook: &Value) -> Option<Found> {
    let events = hook["events"].as_array()?.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect();
    let (id, name, secret) = match provider {
        Provider::DataCenter => (
            hook["id"].as_u64()?.to_string(),
            hook["name"].as_str()?,
            Secret::Known(hook["configuration"]["secret"].as_str().map(str::to_owned)),
        ),
        Provider::Cloud => (
            hook["uuid"].as_str()?.to_owned(),
            hook["description"].as_str().unwrap_or_default(),
            Secret::Set(hook["secret_set"].as_bool().unwrap_or(false)),
        ),
    };
    Some(Found {
        id,
        name: name.to_owned(),
        url: hook["url"].as_str()?.to_owned(),
        active: hook["active"].as_bool().unwrap_or(false),
        events,
        secret,
    })
}

/// Creates the wanted hook.
pub fn create(owner: &str, slug: &str, wanted: &Wanted<'_>) -> (Call, Value) {
    let path = match wanted.provider {
        Provider::DataCenter => format!("/rest/api/1.0/projects/{owner}/repos/{slug}/webhooks"),
        Provider::Cloud => format!("/2.0/repositories/{owner}/{slug}/hooks"),
    };
    (Call { kind: CallKind::Webhook, method: "POST", path }, body(wanted))
}

/// Makes the hook `id` the wanted one (every field written, the secret too:
/// Cloud cannot be asked whether its secret is Bitgate's).
pub fn update(owner: &str, slug: &str, id: &str, wanted: &Wanted<'_>) -> (Call, Value) {
    (Call { kind: CallKind::Webhook, method: "PUT", path: one(wanted.provider, owner, slug, id) }, body(wanted))
}

/// Data Center's last delivery to the hook `id` (204: none yet).
pub fn latest_invocation(owner: &str, slug: &str, id: &str) -> Call {
    Call {
        kind: CallKind::Webhook,
        method: "GET",
        path: format!("{}/latest", one(Provider::DataCenter, owner, slug, id)),
    }
}

/// A failed delivery, as Data Center's `latest` tells it: `None` when the
/// last one succeeded (or the body is not an invocation).
pub fn failed_invocation(body: &Value) -> Option<String> {
    let result = &body["result"];
    let outcome = result["outcome"].as_str()?;
    if outcome.eq_ignore_ascii_case("SUCCESS") {
        return None;
    }
    let description = result["description"].as_str().unwrap_or_default();
    Some(match description.parse::<u16>() {
        Ok(status) => format!("Bitgate answered {status}"),
        Err(_) if description.is_empty() => "no answer".to_owned(),
        Err(_) => super::excerpt(description),
    })
}

/// Deletes the hook `id` (404 means it is gone already).
pub fn delete(provider: Provider, owner: &str, slug: &str, id: &str) -> Call {
    Call { kind: CallKind::Webhook, method: "DELETE", path: one(provider, owner, slug, id) }
}

fn one(provider: Provider, owner: &str, slug: &str, id: &str) -> String {
    match provider {
        Provider::DataCenter => format!("/rest/api/1.0/projects/{owner}/repos/{slug}/webhooks/{id}"),
        // The braces of a Cloud UUID, encoded as a path segment's.
        Provider::Cloud => {
            format!("/2.0/repositories/{owner}/{slug}/hooks/{}", id.replace('{', "%7B").replace('}', "%7D"))
        }
    }
}

fn body(wanted: &Wanted<'_>) -> Value {
    let events = wanted_events(wanted.provider);
    match wanted.provider {
        Provider::DataCenter => json!({"name": wanted.name, "url": wanted.url, "active": true, "events": events,
                                       "configuration": {"secret": wanted.secret}}),
        Provider::Cloud => json!({"description": wanted.name, "url": wanted.url, "active": true, "events": events,
                                  "secret": wanted.secret}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://bitgate.example.com/webhooks/bitbucket/dc-main";

    fn wanted(provider: Provider) -> Wanted<'static> {
        Wanted { provider, name: hook_name("dc-main"), url: URL, secret: "s3cret" }
    }

    fn found(provider: Provider) -> Found {
        Found {
            id: "1".into(),
            name: hook_name("dc-main"),
            url: URL.into(),
            active: true,
            events: wanted_events(provider).iter().rev().map(|e| (*e).to_owned()).collect(),
            secret: match provider {
                Provider::DataCenter => Secret::Known(Some("s3cret".into())),
                Provider::Cloud => Secret::Set(true),
            },
        }
    }

    #[test]
    fn a_hook_as_wanted_differs_in_nothing_whatever_the_order_of_its_events() {
        for provider in [Provider::DataCenter, Provider::Cloud] {
            assert_eq!(differences(&wanted(provider), &found(provider)), [], "{provider:?}");
        }
    }

    #[test]
    fn each_difference_is_found_and_named() {
        let provider = Provider::DataCenter;
        let mut hook = found(provider);
        hook.url = "https://old.example.com/webhooks/bitbucket/dc-main".into();
        hook.events.retain(|e| e != "pr:from_ref_updated");
        hook.active = false;
        hook.secret = Secret::Known(Some("old".into()));
        let all = [Difference::Url, Difference::Events, Difference::Inactive, Difference::Secret];
        assert_eq!(differences(&wanted(provider), &hook), all);
        // An event too many is a difference too: the hook is Bitgate's own.
        let mut extra = found(provider);
        extra.events.push("repo:forked".into());
        assert_eq!(differences(&wanted(provider), &extra), [Difference::Events]);
        let mut no_secret = found(provider);
        no_secret.secret = Secret::Known(None);
        assert_eq!(differences(&wanted(provider), &no_secret), [Difference::Secret]);
        // Cloud tells only whether a secret is set.
        let mut cloud = found(Provider::Cloud);
        cloud.secret = Secret::Set(false);
        assert_eq!(differences(&wanted(Provider::Cloud), &cloud), [Difference::Secret]);
        assert!(all.iter().all(|d| d.in_words().starts_with("it")));
    }

    #[test]
    fn only_the_hook_of_bitgate_s_name_is_ours_and_its_copies_are_duplicates() {
        let mut other = found(Provider::DataCenter);
        other.name = "Jenkins".into();
        let mut copy = found(Provider::DataCenter);
        copy.id = "2".into();
        let listed = [other.clone(), found(Provider::DataCenter), copy.clone()];
        let (ours, duplicates) = own_hook(&hook_name("dc-main"), None, &listed);
        assert_eq!(ours.map(|h| h.id.as_str()), Some("1"));
        assert_eq!(duplicates, [&copy]);
        assert_eq!(own_hook(&hook_name("dc-main"), None, &[other.clone()]), (None, vec![]));
        // The hook Bitgate made stays its own after the integration is
        // renamed, and then differs in its name; a hook of the new name
        // beside it is a duplicate.
        let renamed = hook_name("dc-renamed");
        let made = [other, found(Provider::DataCenter)];
        let (ours, duplicates) = own_hook(&renamed, Some("1"), &made);
        assert_eq!((ours.map(|h| h.id.as_str()), duplicates.len()), (Some("1"), 0));
        let wanted = Wanted { name: renamed.clone(), ..wanted(Provider::DataCenter) };
        assert_eq!(differences(&wanted, ours.unwrap()), [Difference::Name]);
        let mut twin = found(Provider::DataCenter);
        (twin.id, twin.name) = ("3".into(), renamed.clone());
        let with_twin = [found(Provider::DataCenter), twin.clone()];
        assert_eq!(own_hook(&renamed, Some("1"), &with_twin).1, [&twin]);
        // A kept id that is gone: the first of the name.
        assert_eq!(own_hook(&renamed, Some("9"), &with_twin).0, Some(&twin));
    }

    #[test]
    fn data_center_s_last_delivery_reads_as_failed_or_not() {
        let ok = json!({"event": "repo:refs_changed", "result": {"outcome": "SUCCESS", "description": "200"}});
        assert_eq!(failed_invocation(&ok), None);
        let refused = json!({"result": {"outcome": "FAILURE", "description": "401"}});
        assert_eq!(failed_invocation(&refused).as_deref(), Some("Bitgate answered 401"));
        let down = json!({"result": {"outcome": "ERROR", "description": "Connection refused"}});
        assert_eq!(failed_invocation(&down).as_deref(), Some("Connection refused"));
        assert_eq!(failed_invocation(&json!({})), None, "not an invocation");
    }

    #[test]
    fn pages_of_both_products_read_as_hooks_and_where_the_next_starts() {
        let datacenter = json!({"values": [{"id": 7, "name": "Bitgate (dc-main)", "url": URL, "active": true,
            "events": ["repo:refs_changed"], "configuration": {"secret": "s3cret"}}],
            "isLastPage": false, "nextPageStart": 100});
        let (hooks, next) = parse_page(Provider::DataCenter, &datacenter).unwrap();
        assert_eq!((hooks[0].id.as_str(), next.as_deref()), ("7", Some("100")));
        assert_eq!(hooks[0].secret, Secret::Known(Some("s3cret".into())));
        let last = json!({"values": [], "isLastPage": true});
        assert_eq!(parse_page(Provider::DataCenter, &last), Some((vec![], None)));

        let cloud = json!({"values": [{"uuid": "{a1b2}", "description": "Bitgate (dc-main)", "url": URL,
            "active": false, "events": ["repo:push"], "secret_set": true}],
            "next": "https://api.bitbucket.org/2.0/repositories/acme/web/hooks?pagelen=100&page=2"});
        let (hooks, next) = parse_page(Provider::Cloud, &cloud).unwrap();
        assert_eq!((hooks[0].id.as_str(), hooks[0].active, next.as_deref()), ("{a1b2}", false, Some("2")));
        assert_eq!(hooks[0].secret, Secret::Set(true));
        assert_eq!(parse_page(Provider::Cloud, &json!({"error": {"message": "no"}})), None);
    }

    #[test]
    fn each_product_gets_its_paths_and_its_body_and_the_secret_is_never_shown() {
        let (call, body) = create("OPS", "my-repo", &wanted(Provider::DataCenter));
        assert_eq!((call.method, call.path.as_str()), ("POST", "/rest/api/1.0/projects/OPS/repos/my-repo/webhooks"));
        assert_eq!(
            (body["name"].as_str(), body["configuration"]["secret"].as_str()),
            (Some("Bitgate (dc-main)"), Some("s3cret"))
        );
        assert_eq!(body["events"].as_array().unwrap().len(), DATACENTER_KEYS.len());
        let (call, body) = update("acme", "web", "{a1b2}", &wanted(Provider::Cloud));
        assert_eq!((call.method, call.path.as_str()), ("PUT", "/2.0/repositories/acme/web/hooks/%7Ba1b2%7D"));
        assert_eq!(
            (body["description"].as_str(), body["secret"].as_str()),
            (Some("Bitgate (dc-main)"), Some("s3cret"))
        );
        assert_eq!(
            delete(Provider::DataCenter, "OPS", "my-repo", "7").path,
            "/rest/api/1.0/projects/OPS/repos/my-repo/webhooks/7"
        );
        assert_eq!(
            list(Provider::Cloud, "acme", "web", Some("2")).path,
            "/2.0/repositories/acme/web/hooks?pagelen=100&page=2"
        );
        assert!(!format!("{:?}", found(Provider::DataCenter)).contains("s3cret"));
        assert!(!format!("{:?}", wanted(Provider::DataCenter)).contains("s3cret"));
    }
}
