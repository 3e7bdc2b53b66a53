//! Conformance: every event key of SPEC.md's trigger table, for both
//! products, is understood and normalized as expected, from the project's
//! own real-shaped bodies (the simulator's sender) and, when the folder is
//! there, from ../shared/bitbucket-fixtures/payloads (what Bitbucket really sent).

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bitbucket_simulator::sender;
use bitgate_core::{
    integrations::Provider,
    webhooks::events::{normalize, CLOUD_KEYS, DATACENTER_KEYS},
};
use serde_json::{json, Value};

#[test]
fn every_event_key_of_both_products_is_understood() {
    for (provider, keys, repository) in [
        (Provider::DataCenter, DATACENTER_KEYS.as_slice(), ("1", "OPS/my-repo")),
        (Provider::Cloud, CLOUD_KEYS.as_slice(), (sender::CLOUD_REPOSITORY.0, "acme/website")),
    ] {
        for key in keys {
            let body = sender::payload(key).unwrap_or_else(|| panic!("the sender has a body for {key}"));
            let event = normalize(provider, key, &body).unwrap().unwrap_or_else(|| panic!("{key} is understood"));
            assert_eq!((event.repository.id.as_str(), event.repository.name.as_str()), repository, "{key}");
            assert!(event.actor.is_some(), "{key} names its actor");
            if key.contains("push") || key.contains("refs_changed") {
                assert_eq!(event.refs.len(), 1, "{key}");
                assert_eq!((event.refs[0].kind.as_str(), event.refs[0].name.as_str()), ("branch", "main"));
                assert!(event.refs[0].commit.is_some());
            } else {
                let pr = event.pull_request.unwrap_or_else(|| panic!("{key} is a pull request"));
                assert_eq!((pr.id, pr.source_branch.as_str(), pr.target_branch.as_str()), (7, "feature/thing", "main"));
            }
            // The other product's reading of the same key: not understood.
            let other = if provider == Provider::Cloud { Provider::DataCenter } else { Provider::Cloud };
            assert_eq!(normalize(other, key, &body).unwrap(), None, "{key} is not the other product's");
        }
    }
}

#[test]
fn pushes_that_create_or_delete_branches_are_recognized() {
    for (change, action) in [("ADD", "created"), ("UPDATE", "updated"), ("DELETE", "deleted")] {
        let event = normalize(Provider::DataCenter, "repo:refs_changed", &sender::datacenter_push("main", change))
            .unwrap()
            .unwrap();
        assert_eq!(event.refs[0].action, action);
        assert_eq!(event.refs[0].commit.is_none(), action == "deleted");
    }
    for action in ["created", "updated", "deleted"] {
        let event = normalize(Provider::Cloud, "repo:push", &sender::cloud_push("main", action)).unwrap().unwrap();
        assert_eq!(event.refs[0].action, action);
    }
}

#[test]
fn bodies_that_are_not_the_event_their_key_names_are_malformed() {
    let push = sender::payload("repo:refs_changed").unwrap();
    assert!(normalize(Provider::DataCenter, "pr:opened", &push).is_err());
    assert!(normalize(Provider::DataCenter, "repo:refs_changed", &Value::Array(vec![])).is_err());
    assert!(normalize(Provider::Cloud, "repo:push", &serde_json::json!({"push": {}})).is_err());
    assert_eq!(normalize(Provider::Cloud, "repo:fork", &serde_json::json!({})).unwrap(), None, "unknown: ignored");
}

/// The event key of each fixture file (SOURCES.md lists them).
fn key_of(file: &str) -> String {
    let stem = file.trim_end_matches(".json");
    match stem {
        "repo_refs_changed" => "repo:refs_changed".into(),
        "repo_push" => "repo:push".into(),
        "pr_reviewer_approved" => "pr:reviewer:approved".into(),
        stem if stem.starts_with("pr_") => format!("pr:{}", &stem[3..]),
        stem if stem.starts_with("pullrequest_") => format!("pullrequest:{}", &stem["pullrequest_".len()..]),
        other => other.into(),
    }
}

#[test]
fn the_shared_fixtures_when_present_are_all_understood() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bitbucket-fixtures/payloads");
    if !root.is_dir() {
        eprintln!("{} is not here: skipped (the project's own bodies are checked above)", root.display());
        return;
    }
    let mut checked = 0;
    for (folder, provider) in [("datacenter", Provider::DataCenter), ("cloud", Provider::Cloud)] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let key = key_of(&file);
            let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let event = normalize(provider, &key, &body)
                .unwrap_or_else(|e| panic!("{file} ({key}): {e}"))
                .unwrap_or_else(|| panic!("{file}: {key} is not understood"));
            assert!(!event.repository.id.is_empty() && event.repository.name.contains('/'), "{file}");
            assert!(event.refs.len() + usize::from(event.pull_request.is_some()) > 0, "{file}");
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked} fixtures");
}

/// `body` with every timestamp field (`date`, `…Date`, `…Timestamp`) as
/// Data Center 10 writes it, an ISO-8601 string, or as earlier versions
/// do, epoch milliseconds (bitbucket-next.md §4: the change broke other
/// products' parsers).
fn with_timestamps(body: &Value, iso: bool) -> Value {
    const MILLIS: i64 = 1_537_538_991_000;
    match body {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| {
                    let timestamp = name == "date" || name.ends_with("Date") || name.ends_with("Timestamp");
                    let value = match (timestamp && !value.is_object(), iso) {
                        (true, true) => Value::from("2018-09-21T14:09:51.000Z"),
                        (true, false) => Value::from(MILLIS),
                        (false, _) => with_timestamps(value, iso),
                    };
                    (name.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|item| with_timestamps(item, iso)).collect()),
        other => other.clone(),
    }
}

#[test]
fn data_center_timestamps_are_read_alike_as_iso_strings_or_epoch_milliseconds() {
    for key in DATACENTER_KEYS {
        let mut body = sender::payload(key).unwrap();
        // Data Center 10's push names its new head's commit in full, with its times.
        if let Some(change) = body["changes"].get_mut(0) {
            change["toCommit"] = serde_json::json!({
                "id": change["toHash"], "displayId": "823b2230a56", "message": "A change",
                "author": {"name": "jcitizen", "emailAddress": "jane@example.com"}, "authorTimestamp": 0,
                "committer": {"name": "jcitizen", "emailAddress": "jane@example.com"}, "committerTimestamp": 0,
                "parents": [{"id": change["fromHash"], "displayId": "5c64a07cd6c"}]
            });
        }
        let epoch = normalize(Provider::DataCenter, key, &with_timestamps(&body, false)).unwrap();
        let iso = normalize(Provider::DataCenter, key, &with_timestamps(&body, true)).unwrap();
        assert!(epoch.is_some(), "{key} is understood");
        assert_eq!(iso, epoch, "{key}: the same event whichever way its times are written");
    }
}

#[test]
fn read_fields_take_what_indexing_json_would_and_nothing_else() {
    let mut body = sender::payload("pr:opened").unwrap();
    body["pullRequest"]["title"] = json!({"text": "not a title"});
    body["pullRequest"]["links"]["self"] = json!({"href": "not a list"});
    body["pullRequest"]["toRef"]["repository"]["id"] = json!(42);
    body["pullRequest"]["toRef"]["repository"]["slug"] = json!("my-\u{e9}\"repo\"");
    let event = normalize(Provider::DataCenter, "pr:opened", &body).unwrap().unwrap();
    let pr = event.pull_request.unwrap();
    assert_eq!((pr.title, pr.url), (None, None), "an object for a title, an object for a list: absent");
    assert_eq!(event.repository.id, "42", "a number is read as JSON writes it");
    assert_eq!(event.repository.name, "OPS/my-\u{e9}\"repo\"");

    for (id, reads) in [(json!(7), true), (json!("7"), false), (json!(7.5), false), (json!(-7), false)] {
        body["pullRequest"]["id"] = id.clone();
        let read = normalize(Provider::DataCenter, "pr:opened", &body);
        assert_eq!(read.is_ok(), reads, "pull request id {id}: {read:?}");
    }
}
