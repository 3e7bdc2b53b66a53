//! The repository's pages, clicked as a person clicks them: a webhook made
//! on its page receives what the push and pull request forms do, signed
//! and shaped as Bitbucket Data Center sends them; the forms are not REST
//! calls.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use bitbucket_simulator::{
    datacenter::hooks::{Outcome, DEFAULT_EVENTS},
    sender, DataCenter, Fault, Simulator, Transport,
};
use serde_json::Value;

const MAIN: &str = "823b2230a56056231c9425d63758fa87078a66b4";
const THING: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const SECRET: &str = "a webhook secret";
const REPOSITORY: &str = "/projects/OPS/repos/my-repo";
const WEBHOOKS: &str = "/plugins/servlet/webhooks/projects/OPS/repos/my-repo";

/// A delivery the receiver got: its headers and body.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn event_key(&self) -> &str {
        self.header("x-event-key")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A stand-in for Bitgate's webhook endpoint: records each request, answers 202.
async fn receiver() -> (String, Inbox) {
    async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
        inbox.lock().unwrap().push(Received { headers, body: body.to_vec() });
        (StatusCode::ACCEPTED, r#"{"status": "accepted"}"#)
    }
    let inbox = Inbox::default();
    let app = Router::new().route("/webhooks/bitbucket/dc", post(receive)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/bitbucket/dc", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// What the receiver got since the last call.
fn taken(inbox: &Inbox) -> Vec<Received> {
    std::mem::take(&mut *inbox.lock().unwrap())
}

/// Posts a form as a browser does; the status, the `Location` and the page.
async fn submit(sim: &Simulator, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client.post(format!("{}{path}", sim.url)).form(fields).send().await.unwrap();
    let location = answer.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    (answer.status().as_u16(), location, answer.text().await.unwrap())
}

async fn page(sim: &Simulator, path: &str) -> String {
    reqwest::get(format!("{}{path}", sim.url)).await.unwrap().text().await.unwrap()
}

/// Creates a hook with the form: `events` ticked, active unless `inactive`.
async fn create_hook(sim: &Simulator, name: &str, url: &str, events: &[&str], active: bool) {
    let mut fields = vec![("name", name), ("url", url), ("secret", SECRET)];
    fields.extend(events.iter().map(|event| ("events", *event)));
    if active {
        fields.push(("active", "on"));
    }
    let (status, location, _) = submit(sim, WEBHOOKS, &fields).await;
    assert_eq!((status, location.as_str()), (303, WEBHOOKS));
}

fn head(sim: &Simulator, branch: &str) -> String {
    sim.datacenter.read().unwrap().branch(1, branch).unwrap().head.clone()
}

#[tokio::test]
async fn a_push_reaches_the_webhook_signed_and_shaped_as_data_center_sends_it() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let (url, inbox) = receiver().await;
    create_hook(&sim, "Bitgate", &url, &DEFAULT_EVENTS, true).await;
    let hooks = page(&sim, WEBHOOKS).await;
    assert!(hooks.contains("Bitgate") && hooks.contains(&url) && hooks.contains("No deliveries yet."), "{hooks}");

    let (status, location, _) =
        submit(&sim, &format!("{REPOSITORY}/push"), &[("branch", "main"), ("message", "Works")]).await;
    assert_eq!((status, location), (303, format!("{REPOSITORY}/browse")));
    let new_head = head(&sim, "main");
    assert_ne!(new_head, MAIN);
    let got = taken(&inbox);
    assert_eq!(got.len(), 1, "{got:?}");
    let push = &got[0];
    assert_eq!(push.event_key(), "repo:refs_changed");
    assert_eq!(push.header("x-hub-signature"), sender::sign(SECRET, &push.body));
    assert!(!push.header("x-request-id").is_empty());
    assert!(push.header("user-agent").starts_with("Atlassian HttpClient"), "{}", push.header("user-agent"));
    let body = push.json();
    assert_eq!(
        (body["eventKey"].as_str(), body["actor"]["name"].as_str()),
        (Some("repo:refs_changed"), Some("jcitizen"))
    );
    assert_eq!(
        (body["repository"]["id"].as_u64(), body["repository"]["project"]["key"].as_str()),
        (Some(1), Some("OPS"))
    );
    let change = &body["changes"][0];
    assert_eq!(change["ref"]["displayId"], "main");
    assert_eq!(change["refId"], "refs/heads/main");
    assert_eq!((change["fromHash"].as_str(), change["toHash"].as_str()), (Some(MAIN), Some(new_head.as_str())));
    assert_eq!(change["type"], "UPDATE");

    // Bitgate's answer, on both pages.
    let browse = page(&sim, &format!("{REPOSITORY}/browse")).await;
    assert!(browse.contains("Sent repo:refs_changed to Bitgate: 202"), "{browse}");
    assert!(browse.contains(&new_head) && browse.contains("Works"), "the branch's new head: {browse}");
    let hooks = page(&sim, WEBHOOKS).await;
    assert!(hooks.contains(push.header("x-request-id")) && hooks.contains("accepted"), "{hooks}");
    let recorded = sim.datacenter.read().unwrap().deliveries.back().cloned().unwrap();
    assert_eq!(recorded.event_key, "repo:refs_changed");
    assert!(matches!(recorded.outcome, Outcome::Answered { status: 202, ref excerpt } if excerpt.contains("accepted")));

    // A push to pull request 7's source moves it: Bitbucket says so too.
    submit(&sim, &format!("{REPOSITORY}/push"), &[("branch", "feature/thing"), ("message", "More of the thing")]).await;
    let moved_to = head(&sim, "feature/thing");
    let got = taken(&inbox);
    assert_eq!(got.iter().map(Received::event_key).collect::<Vec<_>>(), ["repo:refs_changed", "pr:from_ref_updated"]);
    let updated = got[1].json();
    assert_eq!(got[1].header("x-hub-signature"), sender::sign(SECRET, &got[1].body));
    assert_eq!((updated["pullRequest"]["id"].as_u64(), updated["previousFromHash"].as_str()), (Some(7), Some(THING)));
    assert_eq!(updated["pullRequest"]["fromRef"]["latestCommit"].as_str(), Some(moved_to.as_str()));
    assert_eq!(updated["pullRequest"]["toRef"]["latestCommit"].as_str(), Some(new_head.as_str()));
    assert_eq!(updated["pullRequest"]["author"]["user"]["name"], "jcitizen");
    let pr = sim.datacenter.read().unwrap().pull_requests.iter().find(|pr| pr.id == 7).cloned().unwrap();
    assert_eq!(pr.from_commit, moved_to);

    // A new branch is an ADD from forty zeros.
    submit(&sim, &format!("{REPOSITORY}/push"), &[("branch", "release/1"), ("message", "Cut it")]).await;
    let added = taken(&inbox)[0].json();
    assert_eq!(
        (added["changes"][0]["type"].as_str(), added["changes"][0]["fromHash"].as_str()),
        (Some("ADD"), Some(sender::NO_COMMIT))
    );
}

#[tokio::test]
async fn pull_requests_opened_merged_and_declined_on_the_pages_are_delivered() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let (url, inbox) = receiver().await;
    create_hook(&sim, "Bitgate", &url, &DEFAULT_EVENTS, true).await;

    let opened = [("from", "feature/demo"), ("into", "main"), ("title", "This will fail")];
    let (status, location, _) = submit(&sim, &format!("{REPOSITORY}/pull-requests"), &opened).await;
    assert_eq!((status, location), (303, format!("{REPOSITORY}/browse")));
    let source = head(&sim, "feature/demo");
    assert_eq!(sim.datacenter.read().unwrap().commit(1, &source).unwrap().message, "This will fail");
    let got = taken(&inbox);
    assert_eq!(got.iter().map(Received::event_key).collect::<Vec<_>>(), ["repo:refs_changed", "pr:opened"]);
    assert_eq!(got[0].json()["changes"][0]["type"], "ADD", "the new branch is pushed first");
    let pr = got[1].json()["pullRequest"].clone();
    assert_eq!(
        (pr["id"].as_u64(), pr["title"].as_str(), pr["state"].as_str()),
        (Some(8), Some("This will fail"), Some("OPEN"))
    );
    assert_eq!(
        (pr["fromRef"]["displayId"].as_str(), pr["fromRef"]["latestCommit"].as_str()),
        (Some("feature/demo"), Some(source.as_str()))
    );
    assert_eq!((pr["toRef"]["displayId"].as_str(), pr["toRef"]["latestCommit"].as_str()), (Some("main"), Some(MAIN)));
    assert_eq!(pr["toRef"]["repository"]["slug"], "my-repo");
    let browse = page(&sim, &format!("{REPOSITORY}/browse")).await;
    assert!(browse.contains(&format!("{REPOSITORY}/pull-requests/8/overview")) && browse.contains("#8 This will fail"));

    // A second one for the same branches, or a branch name Git refuses: the form says why, as typed.
    let (status, _, refused) = submit(&sim, &format!("{REPOSITORY}/pull-requests"), &opened).await;
    assert_eq!(status, 400);
    assert!(refused.contains("Only one pull request may be open") && refused.contains("value=\"This will fail\""));
    let bad = [("from", "two words"), ("into", "main"), ("title", "Nope")];
    let (status, _, refused) = submit(&sim, &format!("{REPOSITORY}/pull-requests"), &bad).await;
    assert!(status == 400 && refused.contains("no spaces") && refused.contains("value=\"two words\""), "{refused}");
    assert!(taken(&inbox).is_empty());

    // Merge: the target moves to a merge commit, then pr:merged.
    let overview = format!("{REPOSITORY}/pull-requests/8/overview");
    assert!(page(&sim, &overview).await.contains(">Merge</button>"));
    let (status, location, _) = submit(&sim, &format!("{REPOSITORY}/pull-requests/8/merge"), &[]).await;
    assert_eq!((status, location.as_str()), (303, overview.as_str()));
    let merge_commit = head(&sim, "main");
    let got = taken(&inbox);
    assert_eq!(got.iter().map(Received::event_key).collect::<Vec<_>>(), ["repo:refs_changed", "pr:merged"]);
    let merged = got[1].json()["pullRequest"].clone();
    assert_eq!((merged["state"].as_str(), merged["version"].as_u64()), (Some("MERGED"), Some(1)));
    assert_eq!(merged["properties"]["mergeCommit"]["id"].as_str(), Some(merge_commit.as_str()));
    assert!(page(&sim, &overview).await.contains("MERGED"));
    let (status, _, _) = submit(&sim, &format!("{REPOSITORY}/pull-requests/8/merge"), &[]).await;
    assert_eq!(status, 409, "a merged pull request is not merged again");

    // Decline.
    submit(&sim, &format!("{REPOSITORY}/pull-requests/1/decline"), &[]).await;
    let got = taken(&inbox);
    assert_eq!(got.iter().map(Received::event_key).collect::<Vec<_>>(), ["pr:declined"]);
    let declined = got[0].json()["pullRequest"].clone();
    assert_eq!(
        (declined["id"].as_u64(), declined["state"].as_str(), declined["version"].as_u64()),
        (Some(1), Some("DECLINED"), Some(1))
    );
}

#[tokio::test]
async fn hooks_are_checked_and_only_active_subscribed_ones_get_an_event() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let (url, inbox) = receiver().await;

    let typed = [("name", "Bitgate"), ("url", "127.0.0.1:3000/webhooks"), ("secret", SECRET), ("events", "pr:opened")];
    let (status, _, refused) = submit(&sim, WEBHOOKS, &typed).await;
    assert_eq!(status, 400);
    assert!(refused.contains("Enter the URL as an http:// or https:// address"), "{refused}");
    assert!(
        refused.contains("value=\"Bitgate\"") && refused.contains("value=\"127.0.0.1:3000/webhooks\""),
        "{refused}"
    );
    assert!(refused.contains("value=\"a webhook secret\""), "nothing typed is lost");
    let (status, _, refused) = submit(&sim, WEBHOOKS, &[("name", " "), ("url", "ftp://host/x")]).await;
    assert!(status == 400 && refused.contains("Enter a name") && refused.contains("Choose at least one event"));
    assert!(sim.datacenter.read().unwrap().hooks.is_empty(), "a refused form stores nothing");

    create_hook(&sim, "Asleep", &url, &DEFAULT_EVENTS, false).await;
    create_hook(&sim, "Pull requests only", &url, &["pr:opened"], true).await;
    submit(&sim, &format!("{REPOSITORY}/push"), &[("branch", "main"), ("message", "Unheard")]).await;
    assert!(taken(&inbox).is_empty(), "inactive, or not subscribed to pushes");
    let browse = page(&sim, &format!("{REPOSITORY}/browse")).await;
    assert!(browse.contains("Nothing sent yet."), "{browse}");
    submit(&sim, &format!("{REPOSITORY}/pull-requests"), &[("from", "feature/x"), ("into", "main"), ("title", "X")])
        .await;
    let got = taken(&inbox);
    assert_eq!(got.iter().map(Received::event_key).collect::<Vec<_>>(), ["pr:opened"]);

    // Delete: the hook and its deliveries go.
    let id = sim.datacenter.read().unwrap().hooks.iter().find(|h| h.name == "Pull requests only").unwrap().id;
    let (status, location, _) = submit(&sim, &format!("{WEBHOOKS}/{id}/delete"), &[]).await;
    assert_eq!((status, location.as_str()), (303, WEBHOOKS));
    let instance = sim.datacenter.read().unwrap().clone();
    assert_eq!(instance.hooks.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["Asleep"]);
    assert!(instance.deliveries.is_empty());
}

#[tokio::test]
async fn the_pages_forms_are_not_rest_calls_and_take_no_fault() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let (url, inbox) = receiver().await;
    sim.configure(|dc| dc.faults.push_back(Fault::Unavailable));
    create_hook(&sim, "Bitgate", &url, &DEFAULT_EVENTS, true).await;
    let (status, _, _) = submit(&sim, &format!("{REPOSITORY}/push"), &[("branch", "main"), ("message", "Works")]).await;
    assert_eq!(status, 303);
    submit(&sim, &format!("{REPOSITORY}/pull-requests/1/merge"), &[]).await;
    assert_eq!(taken(&inbox).len(), 3);
    let instance = sim.datacenter.read().unwrap().clone();
    assert!(instance.calls.is_empty(), "{:?}", instance.calls);
    assert_eq!(instance.faults.len(), 1, "the fault waits for a REST write call");

    // The REST API's write calls still take it, and are counted.
    let status = serde_json::json!({"key": "k", "state": "SUCCESSFUL", "url": "https://ci/1"});
    let builds = format!("{}/rest/api/1.0/projects/OPS/repos/my-repo/commits/{MAIN}/builds", sim.url);
    let answer = reqwest::Client::new()
        .post(builds)
        .bearer_auth(bitbucket_simulator::datacenter::DEMO_TOKEN)
        .json(&status)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    let calls = sim.datacenter.read().unwrap().calls.clone();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [503]);
}

#[tokio::test]
async fn an_unreachable_hook_is_recorded_with_the_reason() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    // A port nothing listens on: bound, then let go.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    create_hook(&sim, "Gone", &format!("http://{closed}/webhooks"), &DEFAULT_EVENTS, true).await;
    submit(&sim, &format!("{REPOSITORY}/push"), &[("branch", "main"), ("message", "Anyone?")]).await;
    let delivery = sim.datacenter.read().unwrap().deliveries.back().cloned().unwrap();
    assert!(matches!(&delivery.outcome, Outcome::Unreachable(reason) if !reason.is_empty()), "{delivery:?}");
    let browse = page(&sim, &format!("{REPOSITORY}/browse")).await;
    assert!(browse.contains("Could not send repo:refs_changed to Gone: no answer ("), "{browse}");
}
