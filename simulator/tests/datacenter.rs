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
            repository_admin: false,
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

/// A write call with the demo token (or `token`), its status and JSON body.
async fn send(method: reqwest::Method, url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let request = reqwest::Client::new().request(method, url).json(&body);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn builds_url(sim: &Simulator, version: &str, repository: &str) -> String {
    let (key, slug) = repository.split_once('/').unwrap();
    format!("{}/rest/api/{version}/projects/{key}/repos/{slug}/commits/{COMMIT}/builds", sim.url)
}

#[tokio::test]
async fn build_statuses_are_kept_per_repository_commit_and_key() {
    use reqwest::Method;
    use serde_json::json;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let url = builds_url(&sim, "latest", "OPS/my-repo");
    let status = |state: &str| {
        json!({"key": "bitgate-1a2b", "state": state, "url": "https://ci.example.com/runs/1",
               "name": "Bitgate: infra (tracked)", "description": "Running", "ref": "refs/heads/main"})
    };
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), status("INPROGRESS")).await.0, 204);
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), status("CANCELLED")).await.0, 204);
    let version_one = builds_url(&sim, "1.0", "OPS/my-repo");
    let (_, listed) =
        send(Method::GET, &format!("{version_one}?key=bitgate-1a2b"), Some(DEMO_TOKEN), Value::Null).await;
    assert_eq!(listed["size"], 1, "the same key overwrites: {listed}");
    assert_eq!(
        (listed["values"][0]["state"].as_str(), listed["values"][0]["ref"].as_str()),
        (Some("CANCELLED"), Some("refs/heads/main"))
    );

    // Bitbucket's refusals: each field's limit, the permission, the repository.
    let long_key = json!({"key": "k".repeat(256), "state": "FAILED", "url": "https://ci/1"});
    let (status_code, refused) = send(Method::POST, &url, Some(DEMO_TOKEN), long_key).await;
    assert_eq!((status_code, refused["errors"][0]["context"].as_str()), (400, Some("key")));
    let long_url = json!({"key": "k", "state": "FAILED", "url": "u".repeat(451)});
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), long_url).await.0, 400);
    let bare_ref = json!({"key": "k", "state": "FAILED", "url": "https://ci/1", "ref": "main"});
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), bare_ref).await.0, 400);
    let (status_code, anonymous) = send(Method::POST, &url, None, status("FAILED")).await;
    assert_eq!(status_code, 401);
    assert_eq!(anonymous["errors"][0]["exceptionName"], "com.atlassian.bitbucket.AuthorisationException");
    sim.configure(|dc| {
        dc.tokens.push(Token {
            secret: "no-repos".into(),
            owner: DEMO_USER.into(),
            project_read: true,
            repository_read: false,
            repository_admin: false,
        })
    });
    assert_eq!(send(Method::POST, &url, Some("no-repos"), status("FAILED")).await.0, 401, "REPO_READ is needed");
    let missing = builds_url(&sim, "latest", "OPS/no-such-repo");
    assert_eq!(send(Method::POST, &missing, Some(DEMO_TOKEN), status("FAILED")).await.0, 404);

    // The commit's page shows it.
    let page =
        get(&format!("{}/projects/OPS/repos/my-repo/commits/{COMMIT}", sim.url), None).await.text().await.unwrap();
    assert!(
        page.contains("bitgate-1a2b") && page.contains("CANCELLED") && page.contains("https://ci.example.com/runs/1"),
        "{page}"
    );
}

#[tokio::test]
async fn an_older_server_has_only_the_legacy_build_status_endpoint() {
    use reqwest::Method;
    use serde_json::json;
    let sim =
        Simulator::start(DataCenter { builds_endpoint: false, ..DataCenter::sample() }, Transport::Http).await.unwrap();
    let current = builds_url(&sim, "latest", "OPS/my-repo");
    let status = json!({"key": "bitgate-1a2b", "state": "FAILED", "url": "https://ci/1"});
    assert_eq!(send(Method::POST, &current, Some(DEMO_TOKEN), status.clone()).await.0, 404);
    let legacy = format!("{}/rest/build-status/1.0/commits/{COMMIT}", sim.url);
    assert_eq!(send(Method::POST, &legacy, Some(DEMO_TOKEN), status).await.0, 204);
    let cancelled = json!({"key": "bitgate-1a2b", "state": "CANCELLED", "url": "https://ci/1"});
    assert_eq!(send(Method::POST, &legacy, Some(DEMO_TOKEN), cancelled).await.0, 400, "three states only");
    assert_eq!(send(Method::POST, &legacy, None, json!({})).await.0, 401);
    let (_, listed) = send(Method::GET, &legacy, Some(DEMO_TOKEN), Value::Null).await;
    assert_eq!((listed["size"].as_u64(), listed["values"][0]["state"].as_str()), (Some(1), Some("FAILED")));
    // No repository in its path: every repository holding the commit shows it.
    let page =
        get(&format!("{}/projects/PRJ/repos/service-03/commits/{COMMIT}", sim.url), None).await.text().await.unwrap();
    assert!(page.contains("bitgate-1a2b") && page.contains("(legacy)"), "{page}");
}

#[tokio::test]
async fn pull_request_comments_have_versions_authors_and_a_length_limit() {
    use reqwest::Method;
    use serde_json::json;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let pr = format!("{}/rest/api/1.0/projects/OPS/repos/my-repo/pull-requests/1", sim.url);
    let (status, found) = send(Method::GET, &pr, Some(DEMO_TOKEN), Value::Null).await;
    assert_eq!((status, found["state"].as_str(), found["open"].as_bool()), (200, Some("OPEN"), Some(true)));
    assert_eq!(found["fromRef"]["latestCommit"].as_str().map(str::len), Some(40));
    assert_eq!(found["toRef"]["displayId"], "main");
    let (status, _) =
        send(Method::GET, &pr.replace("/pull-requests/1", "/pull-requests/99"), Some(DEMO_TOKEN), Value::Null).await;
    assert_eq!(status, 404);

    let comments = format!("{pr}/comments");
    let (status, created) =
        send(Method::POST, &comments, Some(DEMO_TOKEN), json!({"text": "Bitgate: **failed**"})).await;
    assert_eq!((status, created["version"].as_u64()), (201, Some(0)));
    let id = created["id"].as_u64().unwrap();
    let one = format!("{comments}/{id}");
    let (status, edited) =
        send(Method::PUT, &one, Some(DEMO_TOKEN), json!({"version": 0, "text": "Bitgate: succeeded"})).await;
    assert_eq!((status, edited["version"].as_u64()), (200, Some(1)));
    // An edit naming an old version: 409; read it again, then it works.
    let (status, stale) = send(Method::PUT, &one, Some(DEMO_TOKEN), json!({"version": 0, "text": "late"})).await;
    assert_eq!(
        (status, stale["errors"][0]["exceptionName"].as_str()),
        (409, Some("com.atlassian.bitbucket.comment.CommentOutOfDateException"))
    );
    let (_, current) = send(Method::GET, &one, Some(DEMO_TOKEN), Value::Null).await;
    assert_eq!((current["version"].as_u64(), current["text"].as_str()), (Some(1), Some("Bitgate: succeeded")));

    // The length limit, with Bitbucket's exact answer.
    let (status, refused) = send(Method::POST, &comments, Some(DEMO_TOKEN), json!({"text": "x".repeat(32_768)})).await;
    assert_eq!(status, 400);
    assert_eq!(
        refused,
        json!({"errors": [{"context": "text", "message": "Please enter a non-empty value less than 32768 characters", "exceptionName": null}]})
    );
    assert_eq!(send(Method::POST, &comments, Some(DEMO_TOKEN), json!({"text": "x".repeat(32_767)})).await.0, 201);
    assert_eq!(send(Method::POST, &comments, Some(DEMO_TOKEN), json!({"text": " "})).await.0, 400);

    // Only the author edits or deletes.
    sim.configure(|dc| {
        dc.tokens.push(Token {
            secret: "smith".into(),
            owner: "jsmith".into(),
            project_read: true,
            repository_read: true,
            repository_admin: false,
        })
    });
    assert_eq!(send(Method::PUT, &one, Some("smith"), json!({"version": 1, "text": "mine now"})).await.0, 403);
    let page = get(&format!("{}/projects/OPS/repos/my-repo/pull-requests/1/overview", sim.url), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Bitgate: succeeded") && page.contains("OPEN"), "{page}");
    assert_eq!(send(Method::DELETE, &format!("{one}?version=1"), Some(DEMO_TOKEN), Value::Null).await.0, 204);
    assert_eq!(send(Method::GET, &one, Some(DEMO_TOKEN), Value::Null).await.0, 404);
}

#[tokio::test]
async fn faults_answer_the_next_write_calls_and_every_write_is_logged() {
    use bitbucket_simulator::Fault;
    use reqwest::Method;
    use serde_json::json;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    sim.configure(|dc| dc.faults.extend([Fault::RateLimited { retry_after_seconds: Some(7) }, Fault::Unavailable]));
    let url = builds_url(&sim, "latest", "OPS/my-repo");
    let status = json!({"key": "k", "state": "SUCCESSFUL", "url": "https://ci/1"});
    // Reads are not write calls: they take no fault.
    assert_eq!(get(&format!("{}/rest/api/1.0/repos", sim.url), Some(DEMO_TOKEN)).await.status(), 200);
    let limited = reqwest::Client::new().post(&url).bearer_auth(DEMO_TOKEN).json(&status).send().await.unwrap();
    assert_eq!((limited.status().as_u16(), limited.headers()["retry-after"].to_str().unwrap()), (429, "7"));
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), status.clone()).await.0, 503);
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), status).await.0, 204);
    let calls = sim.datacenter.read().unwrap().calls.clone();
    let answered: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(answered, [429, 503, 204]);
    assert!(calls.iter().all(|c| c.method == "POST" && c.path.ends_with("/builds")));
}

#[tokio::test]
async fn random_faults_meet_rest_reads_and_writes_but_not_the_pages() {
    use bitbucket_simulator::{Fault, RandomFaults};
    use reqwest::Method;
    use serde_json::json;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let url = builds_url(&sim, "latest", "OPS/my-repo");
    let status = json!({"key": "k", "state": "SUCCESSFUL", "url": "https://ci/1"});
    let repos = format!("{}/rest/api/1.0/repos", sim.url);

    sim.configure(|dc| dc.random_faults = RandomFaults { unavailable_percent: 100.0, rate_limited_percent: 0.0 });
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), status.clone()).await.0, 503);
    assert_eq!(get(&repos, Some(DEMO_TOKEN)).await.status(), 503);
    let page = get(&format!("{}/projects/OPS/repos/my-repo/browse", sim.url), None).await;
    assert_eq!(page.status(), 200, "a person's page is not the REST API");

    sim.configure(|dc| {
        dc.random_faults = RandomFaults { unavailable_percent: 0.0, rate_limited_percent: 100.0 };
        dc.faults.push_back(Fault::Unavailable);
    });
    let limited = reqwest::Client::new().post(&url).bearer_auth(DEMO_TOKEN).json(&status).send().await.unwrap();
    assert_eq!((limited.status().as_u16(), limited.headers()["retry-after"].to_str().unwrap()), (429, "1"));

    sim.configure(|dc| dc.random_faults = RandomFaults::default());
    assert_eq!(
        send(Method::POST, &url, Some(DEMO_TOKEN), status.clone()).await.0,
        503,
        "a queued fault waits its turn behind a random one"
    );
    assert_eq!(send(Method::POST, &url, Some(DEMO_TOKEN), status).await.0, 204);
    let answered: Vec<u16> = sim.datacenter.read().unwrap().calls.iter().map(|c| c.status).collect();
    assert_eq!(answered, [503, 429, 503, 204], "faulted writes are logged with their answer");
    assert_eq!(sim.datacenter.read().unwrap().build_statuses.len(), 1);
}
