//! The Data Center simulator answers as Bitbucket does: shapes, paging,
//! errors, headers, context path, delay, redirects and TLS.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bitbucket_simulator::{
    datacenter::{Token, DEMO_TOKEN, DEMO_USER},
    DataCenter, Simulator, Transport,
};
use serde_json::Value;

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let request = client.get(url);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn it_answers_as_bitbucket_with_the_users_and_their_tokens() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let properties: Value =
        get(&format!("{}/rest/api/1.0/application-properties", sim.url), None).await.json().await.unwrap();
    assert_eq!(
        (properties["displayName"].as_str(), properties["version"].as_str()),
        (Some("Bitbucket"), Some("8.19.1"))
    );

    let whoami = get(&format!("{}/plugins/servlet/applinks/whoami", sim.url), Some(DEMO_TOKEN)).await;
    assert_eq!(whoami.headers()["x-ausername"], DEMO_USER);
    assert_eq!(whoami.text().await.unwrap(), DEMO_USER);
    let anonymous = get(&format!("{}/plugins/servlet/applinks/whoami", sim.url), None).await;
    assert!(anonymous.headers().get("x-ausername").is_none());

    let refused = get(&format!("{}/rest/api/1.0/projects", sim.url), Some("BBDC-wrong")).await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("Authentication failed"));

    let user: Value =
        get(&format!("{}/rest/api/1.0/users/{DEMO_USER}", sim.url), Some(DEMO_TOKEN)).await.json().await.unwrap();
    assert_eq!(user["slug"], DEMO_USER);
    let missing = get(&format!("{}/rest/api/1.0/users/nobody", sim.url), Some(DEMO_TOKEN)).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["errors"][0]["message"], "User nobody does not exist.");
}

#[tokio::test]
async fn repositories_page_and_filter_and_permissions_limit_what_a_token_sees() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let mut seen = Vec::new();
    let mut start = 0;
    loop {
        let page: Value = get(&format!("{}/rest/api/1.0/repos?start={start}&limit=25", sim.url), Some(DEMO_TOKEN))
            .await
            .json()
            .await
            .unwrap();
        seen.extend(page["values"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()));
        if page["isLastPage"].as_bool().unwrap() {
            break;
        }
        start = page["nextPageStart"].as_u64().unwrap() as usize;
    }
    assert_eq!(seen.len(), 60);
    let named: Value =
        get(&format!("{}/rest/api/1.0/repos?name=MY-REPO", sim.url), Some(DEMO_TOKEN)).await.json().await.unwrap();
    assert_eq!(named["values"][0]["slug"], "my-repo");
    assert!(named["values"][0]["project"]["key"].is_string());
    let key = named["values"][0]["project"]["key"].as_str().unwrap();
    let one: Value = get(&format!("{}/rest/api/1.0/projects/{key}/repos/my-repo", sim.url), Some(DEMO_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((one["id"].as_u64(), one["slug"].as_str()), (Some(1), Some("my-repo")));
    let unknown = get(&format!("{}/rest/api/1.0/projects/{key}/repos/nope", sim.url), Some(DEMO_TOKEN)).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["errors"][0]["message"],
        format!("Repository {key}/nope does not exist.")
    );

    sim.configure(|dc| {
        dc.tokens.push(Token {
            secret: "BBDC-narrow".into(),
            owner: "jsmith".into(),
            project_read: false,
            repository_read: false,
        })
    });
    let projects: Value =
        get(&format!("{}/rest/api/1.0/projects", sim.url), Some("BBDC-narrow")).await.json().await.unwrap();
    assert_eq!(projects["size"], 0, "a token without project read sees no project");
    let repos: Value = get(&format!("{}/rest/api/1.0/repos", sim.url), Some("BBDC-narrow")).await.json().await.unwrap();
    assert_eq!(repos["size"], 0);
    let hidden = get(&format!("{}/rest/api/1.0/projects/{key}/repos/my-repo", sim.url), Some("BBDC-narrow")).await;
    assert_eq!(hidden.status(), 404, "a token without repository read does not see it");
    let missing = get(&format!("{}/rest/api/1.0/projects/NOPE/repos", sim.url), Some(DEMO_TOKEN)).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_wrong_context_path_gets_the_login_page_and_delays_and_redirects_apply() {
    let instance = DataCenter { context_path: "/bitbucket".into(), ..DataCenter::sample() };
    let sim = Simulator::start(instance, Transport::Http).await.unwrap();
    let right = get(&format!("{}/bitbucket/rest/api/1.0/application-properties", sim.url), None).await;
    assert_eq!(right.status(), 200);
    let wrong = get(&format!("{}/rest/api/1.0/application-properties", sim.url), None).await;
    assert_eq!(wrong.status(), 200);
    assert!(wrong.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(wrong.text().await.unwrap().contains("Log in - Bitbucket"));

    sim.configure(|dc| dc.delay = Duration::from_millis(300));
    let started = Instant::now();
    get(&format!("{}/bitbucket/rest/api/1.0/application-properties", sim.url), None).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    sim.configure(|dc| dc.redirect_to = Some("https://elsewhere.example/login".into()));
    let redirected = get(&format!("{}/bitbucket/rest/api/1.0/application-properties", sim.url), None).await;
    assert_eq!(redirected.status(), 302);
    assert_eq!(redirected.headers()["location"], "https://elsewhere.example/login");
}

#[tokio::test]
async fn tls_is_trusted_only_with_the_private_ca() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Tls).await.unwrap();
    let url = format!("{}/rest/api/1.0/application-properties", sim.url);
    let untrusted = reqwest::Client::new().get(&url).send().await;
    assert!(untrusted.is_err(), "the private CA is not trusted by default");
    let ca = reqwest::Certificate::from_pem(sim.ca_pem.as_ref().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let trusted = client.get(&url).send().await.unwrap();
    assert_eq!(trusted.status(), 200);
}
