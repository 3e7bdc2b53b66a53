//! `POST /webhooks/bitbucket/{slug}`: every row of SPEC.md's decision
//! table in its order, the cap on recording rejected requests, duplicates,
//! routing to stacks, the secret's rotation, and the delivery log's API.

use bitbucket_simulator::{
    datacenter::{DEMO_TOKEN, DEMO_USER},
    sender,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::world::{world_with_bitbucket, World};

pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub secret: String,
}

/// A Data Center integration in the team, a stack on `OPS/my-repo` (branch
/// main), and the endpoint and secret Bitbucket would be given.
pub async fn endpoint(w: &World, simulator_url: &str) -> (Endpoint, String) {
    let body = json!({
        "name": "dc-main", "provider": "bitbucket_datacenter", "scope": "space", "space_id": w.team,
        "datacenter": {"api_url": simulator_url, "username": DEMO_USER, "access_token": DEMO_TOKEN}
    });
    let admin = w.token("team admin");
    let (status, created) = w.call(admin, Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, webhook) = w.call(admin, Method::GET, &format!("/api/v1/integrations/{id}/webhook"), None).await;
    let stack =
        json!({"name": "web", "space_id": w.team, "integration_id": id, "repository": "OPS/my-repo", "branch": "main"});
    let (status, stack) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(stack)).await;
    assert_eq!(status, 201, "{stack}");
    assert_eq!(
        stack["repository"]["id"],
        sender::DATACENTER_REPOSITORY.0.to_string(),
        "the sender names this repository"
    );
    let endpoint = Endpoint {
        id,
        url: webhook["url"].as_str().unwrap().to_owned(),
        secret: webhook["secret"].as_str().unwrap().to_owned(),
    };
    (endpoint, stack["id"].as_str().unwrap().to_owned())
}

/// Posts a delivery: `signature` is the secret to sign with (none: unsigned).
pub async fn post(url: &str, event: &str, body: &[u8], secret: Option<&str>, request_id: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_vec());
    for (name, value) in sender::headers(event, secret, body, request_id) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    // Every answer, whatever its outcome, from the endpoint's own lean stack.
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("set-cookie").is_none(), "no session for Bitbucket");
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A second Bitgate process on the same database, listening, its cache
/// warmed by one delivery signed with the endpoint's first secret; and the
/// endpoint's URL on it.
pub async fn second_process(w: &World, e: &Endpoint) -> (crate::helpers::TestApp, String) {
    let other = crate::helpers::TestApp::spawn_on(
        w.app.services.config.database_url.clone().unwrap(),
        &[("BITGATE_SECRET_KEYS", &crate::cloud::keys_of(&w.app))],
    )
    .await;
    let url = e.url.replace(&w.app.base, &other.base);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // it is listening
    let (status, answer) = post(&url, "repo:refs_changed", &push(), Some(&e.secret), "warm").await;
    assert_eq!((status, answer["outcome"].as_str()), (202, Some("accepted")), "{answer}");
    (other, url)
}

async fn deliveries(w: &World, id: &str, query: &str) -> Vec<Value> {
    let (status, page) = w
        .call(
            w.token("team admin"),
            Method::GET,
            &format!("/api/v1/integrations/{id}/deliveries?limit=500{query}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn push() -> Vec<u8> {
    serde_json::to_vec(&sender::payload("repo:refs_changed").unwrap()).unwrap()
}

#[tokio::test]
async fn every_row_of_the_decision_table_in_its_order() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let secret = Some(e.secret.as_str());
    let body = push();

    // No integration has that slug: 404, nothing recorded.
    let (status, _) = post(&e.url.replace("dc-main", "nobody"), "repo:refs_changed", &body, secret, "r0").await;
    assert_eq!(status, 404);

    // Too large comes before the content type and the signature.
    let huge = vec![b' '; 256 * 1024 + 1];
    let (status, answer) = post(&e.url, "repo:refs_changed", &huge, None, "r1").await;
    assert_eq!((status, answer["outcome"].as_str()), (413, Some("rejected")));
    // Not JSON comes before the signature.
    let (status, _) = reqwest::Client::new()
        .post(&e.url)
        .header("content-type", "text/plain")
        .header("x-event-key", "repo:refs_changed")
        .header("x-hub-signature", "sha256=00")
        .body(body.clone())
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 415);

    // Pings: signed, accepted; unsigned, ignored (reachability only); a bad signature is a mismatch.
    let (status, answer) = post(&e.url, "diagnostics:ping", b"{\"test\":true}", secret, "p1").await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("accepted")));
    let (status, answer) = post(&e.url, "diagnostics:ping", b"{\"test\":true}", None, "p2").await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")));
    let (status, _) = post(&e.url, "diagnostics:ping", b"{\"test\":true}", Some("wrong"), "p3").await;
    assert_eq!(status, 401);

    // No signature; a wrong one.
    let (status, answer) = post(&e.url, "repo:refs_changed", &body, None, "r2").await;
    assert_eq!((status, answer["reason"].as_str()), (401, Some("missing signature")));
    let (status, answer) = post(&e.url, "repo:refs_changed", &body, Some("not the secret"), "r3").await;
    assert_eq!((status, answer["reason"].as_str()), (401, Some("signature mismatch")));

    // Verified and understood: 202, accepted, routed to the stack on that repository and branch.
    let (status, answer) = post(&e.url, "repo:refs_changed", &body, secret, "r4").await;
    assert_eq!((status, answer["outcome"].as_str()), (202, Some("accepted")), "{answer}");
    let delivery = answer["delivery"].as_str().unwrap().to_owned();
    // Verified, and its request id seen: a duplicate, not processed again.
    let (status, answer) = post(&e.url, "repo:refs_changed", &body, secret, "r4").await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("duplicate")));
    // An unverified request reusing the id is not deduplicated: it is judged on its signature.
    let (status, _) = post(&e.url, "repo:refs_changed", &body, Some("forged"), "r4").await;
    assert_eq!(status, 401);

    // Verified, malformed: the header decides how the body is read.
    let (status, answer) = post(&e.url, "repo:refs_changed", b"[1, 2]", secret, "r5").await;
    assert_eq!((status, answer["outcome"].as_str()), (400, Some("rejected")));
    let (status, answer) = post(&e.url, "pr:opened", &body, secret, "r6").await;
    assert_eq!(status, 400, "a push body is not a pull request: {answer}");
    let (status, _) = post(&e.url, "repo:refs_changed", b"{not json", secret, "r7").await;
    assert_eq!(status, 400);
    // JSON is UTF-8: a string that is not makes the body bad JSON, rejected and not stored.
    let (status, answer) = post(&e.url, "repo:refs_changed", b"{\"date\": \"\xff\"}", secret, "r7u").await;
    assert_eq!(status, 400);
    assert!(answer["reason"].as_str().unwrap().starts_with("malformed: not JSON"), "{answer}");
    // Verified, event key not understood.
    let (status, answer) = post(&e.url, "repo:forked", b"{}", secret, "r8").await;
    assert_eq!(
        (status, answer["outcome"].as_str(), answer["reason"].as_str()),
        (202, Some("ignored"), Some("unknown event"))
    );

    // The log says all of it.
    let log = deliveries(&w, &e.id, "").await;
    let seen: Vec<(String, String)> = log
        .iter()
        .rev()
        .map(|d| (d["signature"].as_str().unwrap().to_owned(), d["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("unchecked", "rejected"),
        ("unchecked", "rejected"),
        ("valid", "accepted"),
        ("unsigned_ping", "ignored"),
        ("mismatch", "rejected"),
        ("missing", "rejected"),
        ("mismatch", "rejected"),
        ("valid", "accepted"),
        ("valid", "duplicate"),
        ("mismatch", "rejected"),
        ("valid", "rejected"),
        ("valid", "rejected"),
        ("valid", "rejected"),
        ("valid", "rejected"),
        ("valid", "ignored"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(s, o)| (s.to_string(), o.to_string())).collect();
    assert_eq!(seen, expected);

    // The accepted delivery: its repository, its stack, one duplicate, its body and redacted headers.
    let (status, details) =
        w.call(w.token("team admin"), Method::GET, &format!("/api/v1/deliveries/{delivery}"), None).await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["repository"]["name"], "OPS/my-repo");
    assert_eq!(details["duplicate_count"], 1);
    assert_eq!(details["headers"]["x-hub-signature"], "(redacted)");
    assert_eq!(details["body"]["eventKey"], "repo:refs_changed");
    // Routed by the statement that stored it: there at once.
    assert_eq!(details["stacks"], json!([stack]), "routed to the stack on OPS/my-repo, main");
    let rejected = log.iter().find(|d| d["outcome"] == "rejected" && d["signature"] == "mismatch").unwrap();
    let (_, rejected) = w
        .call(
            w.token("team admin"),
            Method::GET,
            &format!("/api/v1/deliveries/{}", rejected["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(rejected["body"].is_null(), "bodies are kept for accepted deliveries only");
    assert!(!rejected.to_string().contains(&e.secret));

    // Filters.
    assert_eq!(deliveries(&w, &e.id, "&outcome=accepted").await.len(), 2);
    assert_eq!(deliveries(&w, &e.id, "&event=repo:forked").await.len(), 1);
    let (status, _) = w
        .call(
            w.token("team admin"),
            Method::GET,
            &format!("/api/v1/integrations/{}/deliveries?outcome=maybe", e.id),
            None,
        )
        .await;
    assert_eq!(status, 400);
}

/// The cap counts per minute of the clock: a test of it starts early
/// enough in a minute to finish inside it.
async fn early_in_a_minute() {
    let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60;
    if second > 40 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
    }
}

#[tokio::test]
async fn rejected_requests_are_recorded_up_to_the_cap_then_counted() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    early_in_a_minute().await;
    for n in 0..65 {
        let (status, _) = post(&e.url, "repo:refs_changed", &push(), Some("wrong"), &format!("x{n}")).await;
        assert_eq!(status, 401);
    }
    assert_eq!(deliveries(&w, &e.id, "&outcome=rejected").await.len(), 60);
    let dropped: i64 =
        sqlx::query_scalar("SELECT sum(dropped)::bigint FROM webhook_rejections").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(dropped, 5);
    // Verified deliveries are never capped.
    let (status, _) = post(&e.url, "repo:refs_changed", &push(), Some(&e.secret), "fine").await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn unsigned_pings_share_the_cap_of_rejected_requests() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    early_in_a_minute().await;
    for n in 0..40 {
        let (status, _) = post(&e.url, "repo:refs_changed", &push(), Some("wrong"), &format!("r{n}")).await;
        assert_eq!(status, 401);
    }
    // Anyone can send an unsigned ping: it is answered, but recorded only
    // within the same cap, so a flood cannot push real history out.
    for n in 0..40 {
        let (status, _) = post(&e.url, "diagnostics:ping", b"{\"test\":true}", None, &format!("p{n}")).await;
        assert_eq!(status, 200);
    }
    let pings = deliveries(&w, &e.id, "&event=diagnostics:ping").await;
    assert_eq!(pings.len(), 20, "the first 20 pings fill the minute's cap");
    let recorded =
        deliveries(&w, &e.id, "&outcome=rejected").await.len() + deliveries(&w, &e.id, "&outcome=ignored").await.len();
    assert_eq!(recorded, 60);
    let dropped: i64 =
        sqlx::query_scalar("SELECT sum(dropped)::bigint FROM webhook_rejections").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(dropped, 20);
    // A signed ping proves the secret: never capped.
    let (status, _) = post(&e.url, "diagnostics:ping", b"{\"test\":true}", Some(&e.secret), "signed").await;
    assert_eq!(status, 200);
    assert_eq!(deliveries(&w, &e.id, "&outcome=accepted").await.len(), 1);
}

#[tokio::test]
async fn pushes_route_by_branch_and_a_deleted_branch_flags_its_stacks() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let secret = Some(e.secret.as_str());
    let route = |body: Value| serde_json::to_vec(&body).unwrap();
    // The stack as the API shows it: its last triggering delivery, its flag;
    // and its row's version (xmin), which says whether a delivery wrote it.
    let stack_row = || async {
        let (_, shown) = w.call(w.token("team writer"), Method::GET, &format!("/api/v1/stacks/{stack}"), None).await;
        let version: String = sqlx::query_scalar("SELECT xmin::text FROM stacks WHERE id = $1::text::uuid")
            .bind(&stack)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
        (shown["last_delivery"]["id"].as_str().map(str::to_owned), shown["branch_deleted"] == true, version)
    };
    // Routing is part of storing: the acknowledged delivery is routed already.
    let stacks_of = |delivery: String| {
        let w = &w;
        async move {
            let path = format!("/api/v1/deliveries/{delivery}");
            w.call(w.token("team admin"), Method::GET, &path, None).await.1["stacks"].clone()
        }
    };

    // Another branch: no stack.
    let (_, answer) =
        post(&e.url, "repo:refs_changed", &route(sender::datacenter_push("develop", "UPDATE")), secret, "a").await;
    assert_eq!(stacks_of(answer["delivery"].as_str().unwrap().to_owned()).await, json!([]));
    // Its branch deleted: flagged, and announced (a `branch.deleted` event).
    let (_, answer) =
        post(&e.url, "repo:refs_changed", &route(sender::datacenter_push("main", "DELETE")), secret, "b").await;
    assert_eq!(stacks_of(answer["delivery"].as_str().unwrap().to_owned()).await, json!([stack]));
    assert!(stack_row().await.1, "the stack tracks a deleted branch");
    // Created again: cleared, and triggered.
    let (_, answer) =
        post(&e.url, "repo:refs_changed", &route(sender::datacenter_push("main", "ADD")), secret, "c").await;
    let created = answer["delivery"].as_str().unwrap().to_owned();
    assert_eq!(stacks_of(created.clone()).await, json!([stack]));
    let (last, deleted, version) = stack_row().await;
    assert!(!deleted);
    assert_eq!(last.as_deref(), Some(created.as_str()), "the stack's last triggering delivery");
    // Pushed to: its last delivery, and its row not written (routing writes
    // a stack only to change its flag).
    let (_, answer) =
        post(&e.url, "repo:refs_changed", &route(sender::datacenter_push("main", "UPDATE")), secret, "c2").await;
    let pushed = answer["delivery"].as_str().unwrap().to_owned();
    assert_eq!(stack_row().await, (Some(pushed), false, version), "the last delivery; the row as it was");
    // Deleted, and then pushed to with its creation missed: the push clears the flag.
    post(&e.url, "repo:refs_changed", &route(sender::datacenter_push("main", "DELETE")), secret, "c3").await;
    assert!(stack_row().await.1);
    post(&e.url, "repo:refs_changed", &route(sender::datacenter_push("main", "UPDATE")), secret, "c4").await;
    assert!(!stack_row().await.1, "a push to the branch says it exists");
    // A pull request on the repository.
    let (_, answer) = post(&e.url, "pr:opened", &route(sender::payload("pr:opened").unwrap()), secret, "d").await;
    assert_eq!(stacks_of(answer["delivery"].as_str().unwrap().to_owned()).await, json!([stack]));
}

#[tokio::test]
async fn a_rotated_secret_keeps_the_old_one_valid_until_retired() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let admin = w.token("team admin");
    let (status, rotated) =
        w.call(admin, Method::POST, &format!("/api/v1/integrations/{}/webhook/rotate", e.id), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, e.secret);
    assert!(rotated["previous_secret_valid_until"].is_string());
    let (_, shown) = w.call(admin, Method::GET, &format!("/api/v1/integrations/{}/webhook", e.id), None).await;
    assert_eq!(shown["secret"], new.as_str());
    assert_eq!(shown["previous_secret_valid_until"], rotated["previous_secret_valid_until"]);

    let (status, _) = post(&e.url, "repo:refs_changed", &push(), Some(&new), "n1").await;
    assert_eq!(status, 202);
    let (status, _) = post(&e.url, "repo:refs_changed", &push(), Some(&e.secret), "o1").await;
    assert_eq!(status, 202, "the previous secret, in its grace period");
    let log = deliveries(&w, &e.id, "&outcome=accepted").await;
    let signatures: Vec<&str> = log.iter().map(|d| d["signature"].as_str().unwrap()).collect();
    assert_eq!(signatures, ["valid_previous", "valid"], "the log says which secret signed each");

    let (status, retired) =
        w.call(admin, Method::POST, &format!("/api/v1/integrations/{}/webhook/retire-previous", e.id), None).await;
    assert_eq!(status, 200);
    assert!(retired["previous_secret_valid_until"].is_null());
    let (status, _) = post(&e.url, "repo:refs_changed", &push(), Some(&e.secret), "o2").await;
    assert_eq!(status, 401, "retired at once");
    let actions = w.app.audit_actions().await;
    assert!(actions.contains(&"integration.webhook_secret_rotated".to_owned()));
    assert!(actions.contains(&"integration.webhook_secret_retired".to_owned()));

    // Who may: the table's admins; readers 403, outsiders 404.
    for (label, want) in [("team reader", 403), ("outsider", 404), ("team writer", 403)] {
        let (status, _) =
            w.call(w.token(label), Method::POST, &format!("/api/v1/integrations/{}/webhook/rotate", e.id), None).await;
        assert_eq!(status.as_u16(), want, "{label}");
        let (status, _) =
            w.call(w.token(label), Method::GET, &format!("/api/v1/integrations/{}/deliveries", e.id), None).await;
        assert_eq!(status.as_u16(), want, "{label}");
    }
}

#[tokio::test]
async fn retention_keeps_the_log_bounded_by_age() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    for n in 0..3 {
        post(&e.url, "repo:refs_changed", &push(), Some(&e.secret), &format!("k{n}")).await;
    }
    sqlx::query("UPDATE webhook_deliveries SET received_at = now() - interval '31 days' WHERE request_id = 'k0'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    let mut connection = w.app.pool.acquire().await.unwrap();
    let removed =
        bitgate_core::webhooks::deliveries::apply_retention(&mut connection, w.app.services.config.delivery_retention)
            .await
            .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(deliveries(&w, &e.id, "").await.len(), 2);
}

#[tokio::test]
async fn the_pages_show_the_log_each_delivery_and_the_rotation() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let admin = w.browser("team admin").await;
    let details = format!("/integrations/{}", e.id);
    assert!(admin.get(&details).await.text().await.unwrap().contains("Waiting for the first delivery."));
    // What the details page's island asks for: nothing yet.
    let latest = format!("/integrations/{}/deliveries/latest", e.id);
    let answer = admin.get(&latest).await;
    assert_eq!((answer.status().as_u16(), answer.headers()["cache-control"].to_str().unwrap()), (200, "no-store"));
    assert_eq!(answer.text().await.unwrap(), "");

    let (_, answer) = post(&e.url, "repo:refs_changed", &push(), Some(&e.secret), "page-1").await;
    let delivery = answer["delivery"].as_str().unwrap().to_owned();
    post(&e.url, "repo:refs_changed", &push(), Some("wrong"), "page-2").await;
    let page = admin.get(&details).await.text().await.unwrap();
    assert!(page.contains("Last delivery: ") && page.contains("Delivery log"), "the time of the last delivery");
    let at = admin.get(&latest).await.text().await.unwrap();
    assert!(at.starts_with("20") && page.contains(&format!("Last delivery: {at}.")), "{at}: the page's time");

    let log = admin.get(&format!("/integrations/{}/deliveries", e.id)).await;
    assert_eq!(log.status(), 200);
    let log = log.text().await.unwrap();
    assert!(log.contains("OPS/my-repo") && log.contains("page-1") && log.contains("signature mismatch"));
    let filtered =
        admin.get(&format!("/integrations/{}/deliveries?outcome=rejected", e.id)).await.text().await.unwrap();
    assert!(filtered.contains("page-2") && !filtered.contains("page-1"));

    let shown = admin.get(&format!("/deliveries/{delivery}")).await.text().await.unwrap();
    assert!(shown.contains("(redacted)"), "the signature header is redacted");
    assert!(
        shown.contains("&quot;eventKey&quot;: &quot;repo:refs_changed&quot;")
            || shown.contains("\"eventKey\": \"repo:refs_changed\""),
        "the body, pretty-printed"
    );
    assert!(shown.contains(&format!("/stacks/{stack}")), "the stack it matched");
    assert!(!shown.contains(&e.secret));
    let stack_page = admin.get(&format!("/stacks/{stack}")).await.text().await.unwrap();
    assert!(stack_page.contains(&format!("/deliveries/{delivery}")), "the stack's last triggering delivery");

    // Readers see neither; outsiders do not know it exists.
    let reader = w.browser("team reader").await;
    assert_eq!(reader.get(&format!("/integrations/{}/deliveries", e.id)).await.status(), 403);
    assert_eq!(reader.get(&latest).await.status(), 403);
    assert_eq!(reader.get(&format!("/deliveries/{delivery}")).await.status(), 403);
    let outsider = w.browser("outsider").await;
    assert_eq!(outsider.get(&format!("/deliveries/{delivery}")).await.status(), 404);
    assert_eq!(outsider.get(&latest).await.status(), 404);

    // Rotate: the new secret once, no-store; the previous one's grace shown; retire.
    let csrf = admin.csrf_token("/tokens").await;
    let rotated = admin.post_form(&format!("/integrations/{}/webhook/rotate", e.id), &[("csrf_token", &csrf)]).await;
    assert_eq!(rotated.status(), 200);
    assert_eq!(rotated.headers()["cache-control"], "no-store");
    let rotated = rotated.text().await.unwrap();
    assert!(rotated.contains("New secret made") && rotated.contains("still accepted until"));
    let retired =
        admin.post_form(&format!("/integrations/{}/webhook/retire-previous", e.id), &[("csrf_token", &csrf)]).await;
    assert_eq!(retired.status(), 303);
    let page = admin.get(&details).await.text().await.unwrap();
    assert!(page.contains("The previous secret is retired") && !page.contains("still accepted until"));
    let (status, _) = post(&e.url, "repo:refs_changed", &push(), Some(&e.secret), "page-3").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_log_pages_fifty_at_a_time_keeping_its_filters() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    // 60 deliveries of an event key that needs encoding in an address, and one other.
    sqlx::query(
        "INSERT INTO webhook_deliveries (integration_id, received_at, request_id, event_key, signature, outcome)
         SELECT $1::uuid, now() - n * interval '1 second', 'many-' || n, 'odd key&more', 'valid', 'ignored'
         FROM generate_series(1, 60) AS n
         UNION ALL SELECT $1::uuid, now(), 'other', 'repo:refs_changed', 'valid', 'ignored'",
    )
    .bind(&e.id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    let admin = w.browser("team admin").await;
    let log = format!("/integrations/{}/deliveries", e.id);
    let rows = |page: &str| page.matches("<code class=\"muted\">many-").count();
    let link = |page: &str, label: &str| {
        let end = page.find(&format!(">{label}</a>")).unwrap_or_else(|| panic!("no {label} link: {page}"));
        let start = page[..end].rfind("href=\"").unwrap() + "href=\"".len();
        page[start..].split('"').next().unwrap().replace("&amp;", "&")
    };

    let first = admin.get(&format!("{log}?event=odd+key%26more")).await.text().await.unwrap();
    assert_eq!(rows(&first), 50, "the newest 50 of the filtered 60");
    assert!(!first.contains(">other<"), "the filter holds");
    assert!(!first.contains(">First page</a>"));
    let next = link(&first, "Next page");
    assert!(next.starts_with(&format!("{log}?event=odd+key%26more&cursor=")), "{next}");

    let second = admin.get(&next).await;
    assert_eq!(second.status(), 200, "{next}");
    let second = second.text().await.unwrap();
    assert_eq!(rows(&second), 10, "the filter kept on the next page");
    assert!(second.contains("many-60") && !second.contains("many-50<"), "older ones only");
    assert!(!second.contains(">Next page</a>"));
    assert_eq!(link(&second, "First page"), format!("{log}?event=odd+key%26more"));
}

#[tokio::test]
async fn every_process_stops_accepting_a_retired_secret_at_once() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let admin = w.token("team admin");
    let (_, rotated) =
        w.call(admin, Method::POST, &format!("/api/v1/integrations/{}/webhook/rotate", e.id), None).await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    // Its cache warmed with both secrets (the previous one, in its grace period, signs).
    let (_other, other_url) = second_process(&w, &e).await;

    // Retired through the first process: the second refuses it right away.
    let (status, _) =
        w.call(admin, Method::POST, &format!("/api/v1/integrations/{}/webhook/retire-previous", e.id), None).await;
    assert_eq!(status, 200);
    let mut refused = false;
    for n in 0..10 {
        let (status, _) = post(&other_url, "repo:refs_changed", &push(), Some(&e.secret), &format!("old-{n}")).await;
        if status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the retired secret was refused within half a second");
    let (status, _) = post(&other_url, "repo:refs_changed", &push(), Some(&new), "new-1").await;
    assert_eq!(status, 202);

    // Deleted through the first process: the second answers 404.
    let (status, _) = w.call(admin, Method::DELETE, &format!("/api/v1/integrations/{}", e.id), None).await;
    assert_eq!(status, 204);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = post(&other_url, "repo:refs_changed", &push(), Some(&new), "new-2").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_process_routes_by_the_stacks_as_they_are_now() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, first) = endpoint(&w, &simulator.url).await;
    let writer = w.token("team writer");
    // Its cache warmed with the integration and its one stack.
    let (_other, other_url) = second_process(&w, &e).await;
    let mut sent = 0;
    // Posts to the second process until its delivery is routed to `expected`
    // (in any order), for at most half a second.
    let mut routes_to = |expected: Vec<String>| {
        sent += 1;
        let (url, secret, w) = (other_url.clone(), e.secret.clone(), &w);
        async move {
            let mut stacks = Vec::new();
            for attempt in 0..10 {
                let (status, answer) =
                    post(&url, "repo:refs_changed", &push(), Some(&secret), &format!("{sent}-{attempt}")).await;
                assert_eq!(status, 202, "stored even while its routes lag: {answer}");
                let path = format!("/api/v1/deliveries/{}", answer["delivery"].as_str().unwrap());
                let shown = w.call(w.token("team admin"), Method::GET, &path, None).await.1;
                stacks = shown["stacks"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
                stacks.sort();
                if stacks == expected {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("routed to {stacks:?}, not {expected:?}");
        }
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };

    // A stack created through the first process on the same repository and branch.
    let body = json!({"name": "api", "space_id": w.team, "integration_id": e.id, "repository": "OPS/my-repo",
                      "branch": "main"});
    let (status, second) = w.call(writer, Method::POST, "/api/v1/stacks", Some(body)).await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    routes_to(sorted(vec![first.clone(), second.clone()])).await;
    // Its branch changed: pushes to main no longer trigger it.
    let path = format!("/api/v1/stacks/{second}");
    let (status, _) = w.call(writer, Method::PATCH, &path, Some(json!({"branch": "develop"}))).await;
    assert_eq!(status, 200);
    routes_to(vec![first.clone()]).await;
    // The first deleted: nothing is triggered any more.
    let (status, _) = w.call(writer, Method::DELETE, &format!("/api/v1/stacks/{first}"), None).await;
    assert_eq!(status, 204);
    routes_to(vec![]).await;
}

#[tokio::test]
async fn deliveries_arriving_together_are_stored_together_each_exactly_once() {
    // Concurrent deliveries share group commits: each distinct one is
    // stored once with its own id, and retries racing their original in
    // the same batch are duplicates, not second copies. Both statements
    // that store a batch are checked: pushes to a branch no stack tracks
    // (the plain insert), then to the stack's branch (the routing one).
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let mut distinct = 0;
    for branch in ["develop", "main"] {
        let body = serde_json::to_vec(&sender::datacenter_push(branch, "UPDATE")).unwrap();
        let sends = (0..120).map(|n| {
            let (url, secret, body) = (e.url.clone(), e.secret.clone(), body.clone());
            // Every third request id is sent three times at once.
            let request_id = if n % 3 == 0 { format!("{branch}-same-{}", n / 9) } else { format!("{branch}-own-{n}") };
            tokio::spawn(async move {
                (request_id.clone(), post(&url, "repo:refs_changed", &body, Some(&secret), &request_id).await)
            })
        });
        let answers = futures::future::join_all(sends).await;
        let mut stored = std::collections::HashMap::<String, Vec<(u16, Value)>>::new();
        for answer in answers {
            let (request_id, (status, answer)) = answer.unwrap();
            stored.entry(request_id).or_default().push((status, answer));
        }
        let mut ids = std::collections::HashSet::new();
        for (request_id, answers) in &stored {
            let accepted: Vec<_> = answers.iter().filter(|(status, _)| *status == 202).collect();
            assert_eq!(accepted.len(), 1, "{request_id}: {answers:?}");
            assert!(ids.insert(accepted[0].1["delivery"].as_str().unwrap().to_owned()), "one id per delivery");
            for (status, answer) in answers.iter().filter(|(status, _)| *status != 202) {
                assert_eq!((*status, answer["outcome"].as_str()), (200, Some("duplicate")), "{request_id}");
            }
        }
        distinct += stored.len();
        let accepted: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE integration_id = $1::uuid AND outcome = 'accepted'",
        )
        .bind(&e.id)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
        assert_eq!(accepted as usize, distinct, "{branch}");
        assert_eq!(ids.len(), stored.len());
    }
}

/// An accepted, verified push as the writer takes it.
pub(crate) fn verified_row(
    integration: uuid::Uuid,
    request_id: String,
    body: &str,
    routed: bitgate_core::webhooks::routing::Routed,
) -> bitgate_core::webhooks::group_commit::Row {
    bitgate_core::webhooks::group_commit::Row {
        integration,
        request_id: Some(request_id),
        event_key: Some("repo:refs_changed".into()),
        repository: Some(("1".into(), "OPS/my-repo".into())),
        signature: "valid",
        outcome: bitgate_core::webhooks::DeliveryOutcome::Accepted,
        reason: None,
        headers: "{}".into(),
        body: Some(body.into()),
        event: None,
        routed,
    }
}

// Multi-threaded: the stores arrive together, as concurrent requests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_database_refuses_fails_alone_not_the_rows_stored_with_it() {
    use bitgate_core::webhooks::group_commit::Writer;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let integration: uuid::Uuid = e.id.parse().unwrap();
    let writer = std::sync::Arc::new(Writer::default());
    // jsonb refuses the NUL character: that row's batch fails, and is written again row by row.
    let refused = 31;
    let stores = (0..64).map(|n| {
        let (writer, pool) = (writer.clone(), w.app.pool.clone());
        let body = if n == refused { r#"{"text":"\u0000"}"# } else { r#"{"ok":true}"# };
        let row = verified_row(integration, format!("row-{n}"), body, Default::default());
        tokio::spawn(async move { (n, writer.store(&pool, &Default::default(), row).await) })
    });
    for answer in futures::future::join_all(stores).await {
        let (n, stored) = answer.unwrap();
        if n == refused {
            assert!(stored.is_err(), "the refused row is reported");
        } else {
            assert!(matches!(stored, Ok(Some(_))), "row {n}: {stored:?}");
        }
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE integration_id = $1")
        .bind(integration)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(count, 63);
}

#[tokio::test]
async fn deliveries_handed_over_together_share_one_commit() {
    // The writer is woken by the first hand-over and runs before the other
    // handlers that are ready (a woken task runs next on its worker): it
    // lets them hand theirs over before it takes its batch, so that eight
    // deliveries arriving together cost one commit, not three.
    use bitgate_core::webhooks::group_commit::Writer;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let integration: uuid::Uuid = e.id.parse().unwrap();
    let pool = w.app.pool.clone();
    // A runtime of one worker and nothing else on it (the world's servers
    // and the application's tasks stay on the test's): the order in which
    // its tasks run is then the same on every run. The store tasks are
    // spawned by a task on that worker, as a server's handlers are.
    let stored = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let writer = std::sync::Arc::new(Writer::default());
            tokio::spawn(async move {
                let stores: Vec<_> = (0..8)
                    .map(|n| {
                        let (writer, pool) = (writer.clone(), pool.clone());
                        let row = verified_row(integration, format!("together-{n}"), "{}", Default::default());
                        tokio::spawn(async move { writer.store(&pool, &Default::default(), row).await })
                    })
                    .collect();
                futures::future::join_all(stores).await
            })
            .await
            .unwrap()
        })
    })
    .await
    .unwrap();
    assert!(stored.iter().all(|answer| matches!(answer, Ok(Ok(Some(_))))), "{stored:?}");
    let commits: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM webhook_deliveries WHERE integration_id = $1 AND request_id LIKE 'together-%'",
    )
    .bind(integration)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(commits, 1, "the eight deliveries' transactions");
}

/// What routing makes of a push to `main` for each of `stacks`: a tracked run.
pub(crate) fn triggering(stacks: &[uuid::Uuid]) -> bitgate_core::webhooks::routing::Routed {
    use bitgate_core::platform::events::{Derived, EventType, RunKind};
    let run = || Derived {
        event_type: EventType::RunRequested,
        kind: Some(RunKind::Tracked),
        resync: false,
        branch: "main".into(),
        commit: Some("823b2230a56056231c9425d63758fa87078a66b4".into()),
        pull_request: None,
    };
    bitgate_core::webhooks::routing::Routed {
        stacks: stacks.to_vec(),
        branch_deleted: vec![],
        events: stacks.iter().map(|stack| (*stack, run())).collect(),
    }
}

// Multi-threaded: the stores arrive together, as concurrent requests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waiting_in_the_database_holds_up_no_other() {
    // Batches that concern no stack are written two at a time, and those
    // that concern stacks on a lane of their own: one batch waiting on a
    // lock (here, for another transaction's row with its request id) does
    // not keep a second plain delivery, nor a routed one, waiting behind it.
    use bitgate_core::webhooks::group_commit::Writer;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let (integration, stack): (uuid::Uuid, uuid::Uuid) = (e.id.parse().unwrap(), stack.parse().unwrap());
    let writer = std::sync::Arc::new(Writer::default());
    let mut other = w.app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO webhook_deliveries (integration_id, request_id, event_key, signature, outcome, headers)
         VALUES ($1, 'held', 'repo:refs_changed', 'valid', 'accepted', '{}')",
    )
    .bind(integration)
    .execute(&mut *other)
    .await
    .unwrap();
    let store = |row| {
        let (writer, pool) = (writer.clone(), w.app.pool.clone());
        tokio::spawn(async move { writer.store(&pool, &Default::default(), row).await })
    };
    let held = store(verified_row(integration, "held".into(), "{}", Default::default()));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the first batch waits for the other transaction");
    let within = std::time::Duration::from_secs(5);
    let plain = store(verified_row(integration, "plain".into(), "{}", Default::default()));
    let stored = tokio::time::timeout(within, plain).await.expect("a plain batch beside the waiting one");
    assert!(matches!(stored.unwrap(), Ok(Some(_))));
    let routed = store(verified_row(integration, "routed".into(), "{}", triggering(&[stack])));
    let stored = tokio::time::timeout(within, routed).await.expect("a routed batch on its own lane");
    assert!(matches!(stored.unwrap(), Ok(Some(_))));
    // The other transaction gives its row up: the waiting delivery is stored.
    other.rollback().await.unwrap();
    let stored = tokio::time::timeout(within, held).await.expect("stored once the lock is gone");
    assert!(matches!(stored.unwrap(), Ok(Some(_))));
}

#[tokio::test]
async fn deliveries_and_their_events_are_keyed_in_the_order_they_arrive() {
    // Time-ordered ids (UUIDv7): the primary keys grow at their right edge
    // (core/src/webhooks/group_commit.rs says what that is worth).
    use bitgate_core::webhooks::group_commit::Writer;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let (integration, stack): (uuid::Uuid, uuid::Uuid) = (e.id.parse().unwrap(), stack.parse().unwrap());
    let writer = Writer::default();
    let mut deliveries = Vec::new();
    for n in 0..4 {
        // Both statements: triggering the stack (events too) and not.
        let routed = if n % 2 == 0 { triggering(&[stack]) } else { Default::default() };
        let row = verified_row(integration, format!("ordered-{n}"), "{}", routed);
        deliveries.push(writer.store(&w.app.pool, &Default::default(), row).await.unwrap().unwrap());
    }
    let events: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM events WHERE stack_id = $1 ORDER BY seq")
        .bind(stack)
        .fetch_all(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    for ids in [&deliveries, &events] {
        assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "in order: {ids:?}");
    }
}

#[tokio::test]
async fn a_large_delivery_is_compressed_with_lz4_and_read_back_whole() {
    // Bitbucket Cloud's pushes pass the 2 KB at which PostgreSQL compresses a
    // row: lz4, not pglz (migrations/20261213000001_…), by both statements.
    use bitgate_core::webhooks::group_commit::Writer;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let (integration, stack): (uuid::Uuid, uuid::Uuid) = (e.id.parse().unwrap(), stack.parse().unwrap());
    let commits: Vec<Value> =
        (0..100).map(|n| json!({"hash": format!("{n:040}"), "message": format!("Change number {n}")})).collect();
    let body = json!({"push": {"changes": [{"commits": commits}]}}).to_string();
    assert!(body.len() > 6_000);
    let writer = Writer::default();
    for (n, routed) in [Default::default(), triggering(&[stack])].into_iter().enumerate() {
        let row = verified_row(integration, format!("large-{n}"), &body, routed);
        let id = writer.store(&w.app.pool, &Default::default(), row).await.unwrap().unwrap();
        let (compression, stored): (Option<String>, Value) =
            sqlx::query_as("SELECT pg_column_compression(body), body FROM webhook_deliveries WHERE id = $1")
                .bind(id)
                .fetch_one(&w.app.pool)
                .await
                .unwrap();
        assert_eq!(compression.as_deref(), Some("lz4"), "statement {n}");
        assert_eq!(stored, serde_json::from_str::<Value>(&body).unwrap(), "statement {n}");
    }
}

// Multi-threaded: the stores arrive together, as concurrent requests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_batch_that_triggers_a_stack_is_its_last_delivery() {
    // Concurrent deliveries are stored in batches, some changing the stack
    // and some not (two statements): a stack's last delivery is one of the
    // latest that triggered it, never one of an earlier batch.
    use bitgate_core::webhooks::group_commit::Writer;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let (integration, stack): (uuid::Uuid, uuid::Uuid) = (e.id.parse().unwrap(), stack.parse().unwrap());
    let writer = std::sync::Arc::new(Writer::default());
    for round in 0..20 {
        let stores = (0..24).map(|n| {
            let (writer, pool) = (writer.clone(), w.app.pool.clone());
            // Every other delivery triggers the stack; the rest change nothing.
            let routed = if n % 2 == 0 { triggering(&[stack]) } else { Default::default() };
            let row = verified_row(integration, format!("round-{round}-{n}"), "{}", routed);
            tokio::spawn(async move { writer.store(&pool, &Default::default(), row).await })
        });
        for stored in futures::future::join_all(stores).await {
            assert!(matches!(stored.unwrap(), Ok(Some(_))));
        }
        let latest_at: time::OffsetDateTime =
            sqlx::query_scalar("SELECT max(received_at) FROM webhook_deliveries WHERE $1 = ANY(stacks)")
                .bind(stack)
                .fetch_one(&w.app.pool)
                .await
                .unwrap();
        let shown = bitgate_core::stacks::find(&w.app.pool, stack).await.unwrap().unwrap();
        let last_at = shown.last_delivery.unwrap().1;
        assert_eq!(last_at, latest_at, "round {round}: the stack's last delivery is of the latest batch");
    }
    // Each triggering delivery made its one event, with it.
    let (events, triggering): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events e JOIN webhook_deliveries d ON d.id = e.delivery_id WHERE e.stack_id = $1),
                (SELECT count(*) FROM webhook_deliveries WHERE $1 = ANY(stacks))",
    )
    .bind(stack)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!((events, triggering), (20 * 12, 20 * 12));
}

#[tokio::test]
async fn a_delivery_carrying_a_nul_character_is_kept_not_refused() {
    // jsonb cannot hold U+0000; Bitbucket may send it escaped (a commit message, say).
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let mut body: Value = serde_json::from_slice(&push()).unwrap();
    body["note"] = json!("before\u{0}after");
    let body = serde_json::to_vec(&body).unwrap();
    assert!(String::from_utf8_lossy(&body).contains("\\u0000"));
    let (status, answer) = post(&e.url, "repo:refs_changed", &body, Some(&e.secret), "nul-1").await;
    assert_eq!((status, answer["outcome"].as_str()), (202, Some("accepted")), "{answer}");
    let stored: String = sqlx::query_scalar("SELECT body->>'note' FROM webhook_deliveries WHERE id = $1::uuid")
        .bind(answer["delivery"].as_str().unwrap())
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(stored, "before\u{fffd}after");
}
