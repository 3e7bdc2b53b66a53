//! Bitgate's repository calls for managed hooks and polling against the
//! simulator, both products: a hook created as wanted lists as Bitgate's
//! with no difference, a changed one shows its differences until it is
//! updated, and a deleted one is gone (a second delete answers 404); the
//! branch heads read are Bitbucket's, and a push moves one.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitbucket_simulator::{
    cloud::{DEMO_KEY, DEMO_SECRET},
    datacenter::DEMO_TOKEN,
    DataCenter, Simulator, Transport,
};
use bitgate_core::{
    bitbucket::{
        branch_heads::{self, Head},
        calls::{send, Call},
        repository_hooks::{self, differences, hook_name, own_hook, Difference, Found, Wanted},
    },
    config::Config,
    integrations::Provider,
    secret::Secret,
};
use serde_json::Value;
use url::Url;

const URL: &str = "https://bitgate.example.com/webhooks/bitbucket/main";

fn config() -> Config {
    Config::load(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).unwrap()
}

struct Remote {
    client: reqwest::Client,
    base: Url,
    token: Secret<String>,
}

impl Remote {
    async fn call(&self, call: &Call, body: Option<&Value>) -> (u16, Option<Value>) {
        let auth = bitgate_core::bitbucket::datacenter::Auth::Bearer(self.token.expose());
        let answer = send(&self.client, &config(), &self.base, call, auth, body).await;
        (answer.status.map_or(0, |s| s.as_u16()), answer.body)
    }

    async fn hooks(&self, provider: Provider, owner: &str, slug: &str) -> Vec<Found> {
        let (status, body) = self.call(&repository_hooks::list(provider, owner, slug, None), None).await;
        assert_eq!(status, 200);
        let (hooks, next) = repository_hooks::parse_page(provider, &body.unwrap()).unwrap();
        assert_eq!(next, None, "one page");
        hooks
    }
}

async fn cloud_token(sim: &Simulator) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/site/oauth2/access_token", sim.url))
        .basic_auth(DEMO_KEY, Some(DEMO_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn a_hook_lives_and_dies_as_bitgate_manages_it(provider: Provider, owner: &str, slug: &str) {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let token = match provider {
        Provider::DataCenter => DEMO_TOKEN.to_owned(),
        Provider::Cloud => cloud_token(&sim).await,
    };
    let remote =
        Remote { client: reqwest::Client::new(), base: Url::parse(&sim.url).unwrap(), token: Secret::new(token) };
    let name = hook_name("main");
    let wanted = Wanted { provider, name: name.clone(), url: URL, secret: "the first secret" };

    let (call, body) = repository_hooks::create(owner, slug, &wanted);
    assert_eq!(remote.call(&call, Some(&body)).await.0, 201);
    let listed = remote.hooks(provider, owner, slug).await;
    let (ours, duplicates) = own_hook(&name, None, &listed);
    let ours = ours.expect("the created hook is listed under Bitgate's name").clone();
    assert!(duplicates.is_empty());
    assert_eq!(differences(&wanted, &ours), [], "{ours:?}");

    // A rotation: Data Center shows the old secret; Cloud cannot tell.
    let rotated = Wanted { secret: "the second secret", ..wanted.clone() };
    let expected: &[Difference] = match provider {
        Provider::DataCenter => &[Difference::Secret],
        Provider::Cloud => &[],
    };
    assert_eq!(differences(&rotated, &ours), expected);
    let (call, body) = repository_hooks::update(owner, slug, &ours.id, &rotated);
    assert_eq!(remote.call(&call, Some(&body)).await.0, 200);
    let listed = remote.hooks(provider, owner, slug).await;
    assert_eq!(differences(&rotated, own_hook(&name, None, &listed).0.unwrap()), []);

    let delete = repository_hooks::delete(provider, owner, slug, &ours.id);
    assert_eq!(remote.call(&delete, None).await.0, 204);
    assert_eq!(own_hook(&name, None, &remote.hooks(provider, owner, slug).await).0, None);
    assert_eq!(remote.call(&delete, None).await.0, 404, "gone already");
}

#[tokio::test]
async fn a_data_center_hook_lives_and_dies_as_bitgate_manages_it() {
    a_hook_lives_and_dies_as_bitgate_manages_it(Provider::DataCenter, "OPS", "my-repo").await;
}

#[tokio::test]
async fn a_cloud_hook_lives_and_dies_as_bitgate_manages_it() {
    a_hook_lives_and_dies_as_bitgate_manages_it(Provider::Cloud, "acme", "website").await;
}

impl Remote {
    async fn heads(&self, provider: Provider, owner: &str, slug: &str) -> Vec<Head> {
        let (status, body) = self.call(&branch_heads::list(provider, owner, slug, None), None).await;
        assert_eq!(status, 200);
        let (heads, next) = branch_heads::parse_page(provider, &body.unwrap()).unwrap();
        assert_eq!(next, None, "one page");
        heads
    }
}

fn head_of<'a>(heads: &'a [Head], branch: &str) -> &'a str {
    &heads.iter().find(|h| h.branch == branch).unwrap_or_else(|| panic!("{branch} in {heads:?}")).commit
}

#[tokio::test]
async fn branch_heads_are_bitbucket_s_and_a_push_moves_one() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let base = Url::parse(&sim.url).unwrap();
    let datacenter =
        Remote { client: reqwest::Client::new(), base: base.clone(), token: Secret::new(DEMO_TOKEN.into()) };
    let before = datacenter.heads(Provider::DataCenter, "OPS", "my-repo").await;
    let pushed = sim.datacenter.write().unwrap().push_commit(1, "main", "Polled, not delivered");
    let after = datacenter.heads(Provider::DataCenter, "OPS", "my-repo").await;
    assert_ne!(head_of(&before, "main"), head_of(&after, "main"));
    assert_eq!(head_of(&after, "main"), pushed.to_hash);
    assert_eq!(before.len(), after.len(), "the other branches did not move");

    let cloud = Remote { client: reqwest::Client::new(), base, token: Secret::new(cloud_token(&sim).await) };
    let heads = cloud.heads(Provider::Cloud, "acme", "website").await;
    let expected = sim.cloud.read().unwrap().branches.iter().filter(|b| b.repository == "acme/website").count();
    assert_eq!(heads.len(), expected);
    let main = sim
        .cloud
        .read()
        .unwrap()
        .branches
        .iter()
        .find(|b| b.repository == "acme/website" && b.name == "main")
        .map(|b| b.target.clone());
    assert_eq!(Some(head_of(&heads, "main").to_owned()), main);
}
