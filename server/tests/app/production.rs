//! Running Bitgate in production: Prometheus metrics that follow the work
//! (`BITGATE_METRICS`), none when off; a request id on every answer (a
//! trusted proxy's kept); `/readyz` unready once told to stop; and the
//! binary stopping gracefully: the request in flight answered, JSON log
//! lines, `/metrics` on a listener of its own; backups made and restored
//! with PostgreSQL's own tools, the embedded cluster's included.

use std::{
    io::{Read, Write},
    process::Stdio,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use bitbucket_simulator::{sender, DataCenter, Simulator, Transport};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    cli::{bitgate, run},
    helpers::{fresh_database, TestApp},
    webhooks::{endpoint, post},
    world::{world_with, World},
};

async fn metrics_world() -> (World, Simulator) {
    let world =
        world_with(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s"), ("BITGATE_METRICS", "on")])
            .await;
    (world, Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap())
}

async fn scrape(base: &str) -> String {
    let answer = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    answer.text().await.unwrap()
}

/// The value of `series` (a name and its labels, as rendered) in a scrape;
/// 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// The families an operator watches, each with its help line.
const FAMILIES: [&str; 14] = [
    "bitgate_webhook_deliveries_total",
    "bitgate_webhook_ingest_seconds",
    "bitgate_events_written_total",
    "bitgate_event_feed_waiters",
    "bitgate_outbound_calls_total",
    "bitgate_outbound_call_seconds",
    "bitgate_jobs_queued",
    "bitgate_jobs_due",
    "bitgate_job_oldest_due_age_seconds",
    "bitgate_oauth_token_refreshes_total",
    "bitgate_db_pool_connections",
    "bitgate_db_pool_max_connections",
    "bitgate_process_start_time_seconds",
    "bitgate_build_info",
];

#[tokio::test]
async fn metrics_follow_deliveries_events_outbound_calls_and_the_job_queue() {
    let (w, simulator) = metrics_world().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    while bitgate_core::maintenance::run_one(&w.app.services).await.unwrap() {}
    let before = scrape(&w.app.base).await;
    assert!(before.contains("bitgate_build_info{version=\"0.1.0\"} 1"), "{before}");
    assert!(value(&before, "bitgate_process_start_time_seconds") > 1.7e9);
    assert!(value(&before, "bitgate_db_pool_max_connections") >= 1.0);

    // One push that makes an event, one refused signature. (Other tests of
    // this process may count too: the counters only grow.)
    let accepted = r#"bitgate_webhook_deliveries_total{outcome="accepted",signature="valid"}"#;
    let mismatched = r#"bitgate_webhook_deliveries_total{outcome="rejected",signature="mismatch"}"#;
    let push = serde_json::to_vec(&sender::payload("repo:refs_changed").unwrap()).unwrap();
    let (status, _) = post(&e.url, "repo:refs_changed", &push, Some(e.secret.as_str()), "m-1").await;
    assert_eq!(status, 202);
    let (status, _) = post(&e.url, "repo:refs_changed", &push, Some("not the secret"), "m-2").await;
    assert_eq!(status, 401);
    // A run reported: its build status waits in the queue.
    let run = json!({"commit": "823b2230a56056231c9425d63758fa87078a66b4", "kind": "tracked", "state": "running"});
    let (status, _) =
        w.call(w.token("team writer"), Method::PUT, &format!("/api/v1/stacks/{stack}/runs/r1"), Some(run)).await;
    assert!(status == 200 || status == 201);
    let queued = scrape(&w.app.base).await;
    assert!(value(&queued, accepted) >= value(&before, accepted) + 1.0, "{queued}");
    assert!(value(&queued, mismatched) >= value(&before, mismatched) + 1.0, "{queued}");
    let events = "bitgate_events_written_total";
    assert!(value(&queued, events) >= value(&before, events) + 1.0, "{queued}");
    assert!(value(&queued, "bitgate_webhook_ingest_seconds_count") >= 2.0, "{queued}");
    assert_eq!(value(&queued, r#"bitgate_jobs_queued{kind="outbound.build_status"}"#), 1.0, "{queued}");
    assert_eq!(value(&queued, r#"bitgate_jobs_due{kind="outbound.build_status"}"#), 1.0, "{queued}");

    // Sent: the call is counted by kind and answer, and the queue empties.
    let sent = r#"bitgate_outbound_calls_total{kind="build_status",answer="2xx"}"#;
    while bitgate_core::maintenance::run_one(&w.app.services).await.unwrap() {}
    let after = scrape(&w.app.base).await;
    assert!(value(&after, sent) >= value(&queued, sent) + 1.0, "{after}");
    assert_eq!(value(&after, r#"bitgate_jobs_queued{kind="outbound.build_status"}"#), 0.0, "{after}");

    // A reader waiting on the feed is counted while it waits.
    let waiting = {
        let (base, token) = (w.app.base.clone(), w.token("team reader").to_owned());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!("{base}/api/v1/events?after=999999999.0&wait=3"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = scrape(&w.app.base).await;
    assert!(value(&text, "bitgate_event_feed_waiters") >= 1.0, "{text}");
    assert_eq!(waiting.await.unwrap(), 200);
    for family in FAMILIES {
        assert!(text.contains(&format!("# HELP {family} ")), "{family} is described: {text}");
    }
}

/// `/metrics` as a client that follows no redirect sees it.
async fn metrics_status(base: &str) -> u16 {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    client.get(format!("{base}/metrics")).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn without_metrics_there_is_no_metrics_page_and_every_answer_has_a_request_id() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    // An unknown page: to the login page, as any is for a stranger.
    assert_eq!(metrics_status(&app.base).await, 303);
    // An id sent by a client that is no trusted proxy is not taken.
    let answer =
        client.get(format!("{}/healthz", app.base)).header("x-request-id", "chosen-by-me").send().await.unwrap();
    let id = answer.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let again = client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), id, "one per request");

    // From a trusted proxy, its id is kept (when it is one).
    let behind = TestApp::spawn_with(&[("BITGATE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let kept =
        client.get(format!("{}/login", behind.base)).header("x-request-id", "4f2c9a1b7e8d").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "4f2c9a1b7e8d");
    let odd = client.get(format!("{}/login", behind.base)).header("x-request-id", "a b\"c").send().await.unwrap();
    assert_ne!(odd.headers()["x-request-id"], "a b\"c");
}

#[tokio::test]
async fn told_to_stop_a_process_is_unready_at_once() {
    let app = TestApp::spawn().await;
    let ready = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
    app.stopping.store(true, Ordering::Relaxed);
    let stopping = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(stopping.status(), 503);
    assert_eq!(stopping.json::<Value>().await.unwrap()["status"], "stopping");
    assert_eq!(reqwest::get(format!("{}/healthz", app.base)).await.unwrap().status(), 200, "still alive");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn sigterm_answers_the_request_in_flight_then_exits_and_logs_are_json_with_request_ids() {
    let database = fresh_database().await;
    let data = tempdir();
    let (port, metrics_port) = (free_port(), free_port());
    let (listen, metrics_listen) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{metrics_port}"));
    let public = format!("http://{listen}");
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("BITGATE_DATA_DIR", data.as_str()),
        ("BITGATE_LISTEN", listen.as_str()),
        ("BITGATE_PUBLIC_URL", public.as_str()),
        ("BITGATE_LOG_FORMAT", "json"),
        ("BITGATE_METRICS", "on"),
        ("BITGATE_METRICS_LISTEN", metrics_listen.as_str()),
        ("BITGATE_SHUTDOWN_GRACE", "5s"),
        // tower-http says when each request ends, at debug.
        ("RUST_LOG", "info,tower_http=debug"),
    ];
    let server = bitgate(&env).arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{public}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // /metrics is on its own listener only.
    assert_eq!(metrics_status(&public).await, 303);
    let text = scrape(&format!("http://{metrics_listen}")).await;
    assert!(text.contains("bitgate_build_info"), "{text}");
    let answered = client.get(format!("{public}/login")).send().await.unwrap();
    let request_id = answered.headers()["x-request-id"].to_str().unwrap().to_owned();

    // A request whose body is still arriving when the signal comes.
    let mut in_flight = std::net::TcpStream::connect(&listen).unwrap();
    let body = br#"{"test": true}"#;
    write!(
        in_flight,
        "POST /webhooks/bitbucket/no-such-integration HTTP/1.1\r\nHost: {listen}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{{",
        body.len()
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped_at = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(std::net::TcpStream::connect(&listen).is_err(), "no new connection is taken");
    in_flight.write_all(&body[1..]).unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "the request in flight is answered: {answer}");

    let output = tokio::task::spawn_blocking(move || server.wait_with_output().unwrap()).await.unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert!(stopped_at.elapsed() < Duration::from_secs(5), "within the grace");
    let logs = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not one JSON object: {line}")))
        .collect();
    assert!(lines.iter().any(|line| line["fields"]["message"] == "Bitgate is serving"), "{logs}");
    assert!(lines.iter().any(|line| line["fields"]["message"] == "Bitgate stopped serving"), "{logs}");
    // The request's own lines name its id, as its answer did.
    let of_request: Vec<&Value> = lines.iter().filter(|line| line["span"]["request_id"] == request_id).collect();
    assert!(!of_request.is_empty(), "{logs}");
    assert!(of_request.iter().all(|line| line["span"]["path"] == "/login"), "{of_request:?}");
    let _ = std::fs::remove_dir_all(&data);
}

/// A new directory under /tmp (an embedded cluster's user can enter it).
fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("bitgate-production-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

#[tokio::test]
async fn a_backup_restores_elsewhere_with_its_secrets_usable_and_never_over_data_unless_forced() {
    let (w, simulator) = crate::world::world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let push = serde_json::to_vec(&sender::payload("repo:refs_changed").unwrap()).unwrap();
    let (status, _) = post(&e.url, "repo:refs_changed", &push, Some(e.secret.as_str()), "before-backup").await;
    assert_eq!(status, 202);
    // The source stands in for another cluster, whose transaction ids are
    // far above the target's (which shares this server): its event's feed
    // position, and the cursor a platform that read it holds, are moved
    // 2^40 up, as they are after that many transactions.
    let moved: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "UPDATE events SET tx = (tx::text::bigint + (1::bigint << 40))::text::xid8 RETURNING id, tx::text || '.' || seq",
    )
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    let [(event, old_cursor)] = <[_; 1]>::try_from(moved).expect("the push made one event");
    let keys = crate::cloud::keys_of(&w.app);
    let dir = tempdir();
    let file = format!("{dir}/bitgate.dump");
    let source = w.app.services.config.database_url.clone().unwrap();
    let backup =
        run(bitgate(&[("DATABASE_URL", &source), ("BITGATE_SECRET_KEYS", &keys)]).args(["backup", &file]), None);
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    assert!(String::from_utf8_lossy(&backup.stderr).contains("BITGATE_SECRET_KEYS"), "the keys are not in it");

    // Into an empty database; then again over it: refused, and nothing lost.
    let target = fresh_database().await;
    let restore = |force: bool| {
        let mut command = bitgate(&[("DATABASE_URL", &target), ("BITGATE_SECRET_KEYS", &keys)]);
        command.args(["restore", &file]);
        if force {
            command.arg("--force");
        }
        run(&mut command, None)
    };
    let restored = restore(false);
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    let refused = restore(false);
    crate::cli::assert_one_sentence(&refused, "--force");
    let missing = run(bitgate(&[("DATABASE_URL", &target)]).args(["restore", "/nonexistent/backup"]), None);
    crate::cli::assert_one_sentence(&missing, "is not a file");
    // The database replaced stands far ahead of the backup (2^62, as if
    // restored often): a platform's cursor from it must still come before
    // what follows the forced restore.
    let replaced = sqlx::PgPool::connect(&target).await.unwrap();
    crate::events::as_after_a_restore(&replaced).await;
    let live_cursor: String =
        sqlx::query_scalar("SELECT feed_horizon()::text || '.0'").fetch_one(&replaced).await.unwrap();
    replaced.close().await;
    let forced = restore(true);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));

    // A process on it with the same keys: the integration, its stack, its
    // deliveries, its sealed token and webhook secret all work.
    let extra =
        [("BITGATE_SECRET_KEYS", keys.as_str()), ("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")];
    let app = TestApp::spawn_on(target, &extra).await;
    let admin = w.token("team admin");
    let (status, found) = app.api(admin, Method::GET, &format!("/api/v1/integrations/{}", e.id), None).await;
    assert_eq!((status.as_u16(), found["name"].as_str()), (200, Some("dc-main")), "{found}");
    let (status, _) = app.api(admin, Method::GET, &format!("/api/v1/stacks/{stack}"), None).await;
    assert_eq!(status, 200);
    let (_, log) = app.api(admin, Method::GET, &format!("/api/v1/integrations/{}/deliveries", e.id), None).await;
    let ids: Vec<&str> = log["items"].as_array().unwrap().iter().filter_map(|d| d["request_id"].as_str()).collect();
    assert_eq!(ids, ["before-backup"], "{log}");
    let (status, tested) = app.api(admin, Method::POST, &format!("/api/v1/integrations/{}/test", e.id), None).await;
    assert_eq!((status.as_u16(), tested["health"]["state"].as_str()), (200, Some("connected")), "{tested}");
    let url = e.url.replace(&w.app.base, &app.base);
    let (status, _) = post(&url, "repo:refs_changed", &push, Some(e.secret.as_str()), "after-restore").await;
    assert_eq!(status, 202, "the webhook secret opens with the same keys");

    // The events feed: the restored event is readable at once, and the
    // platform's cursor from before the restore comes before the new one.
    let writer = w.token("team writer");
    let (_, first) = app.api(writer, Method::GET, "/api/v1/events?wait=0", None).await;
    let restored: Vec<&str> = first["items"].as_array().unwrap().iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(restored.first(), Some(&event.to_string().as_str()), "first, as it was written first: {first}");
    for cursor in [&old_cursor, &live_cursor] {
        let (status, next) = app.api(writer, Method::GET, &format!("/api/v1/events?after={cursor}&wait=5"), None).await;
        let after: Vec<&Value> = next["items"].as_array().unwrap().iter().collect();
        assert_eq!((status.as_u16(), after.len()), (200, 1), "after {cursor}: {next}");
        assert_ne!(after[0]["id"].as_str(), Some(event.to_string().as_str()), "{next}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_embedded_cluster_is_backed_up_and_restored_with_postgresql_s_own_tools() {
    let (first, second) = (tempdir(), tempdir());
    let file = format!("{first}/bitgate.dump");
    let created = run(
        bitgate(&[("BITGATE_DATA_DIR", &first)]).args([
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ]),
        Some("a long enough password\n"),
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let backup = run(bitgate(&[("BITGATE_DATA_DIR", &first)]).args(["backup", &file]), None);
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let restored = run(bitgate(&[("BITGATE_DATA_DIR", &second)]).args(["restore", &file]), None);
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    let found =
        run(bitgate(&[("BITGATE_DATA_DIR", &second)]).args(["user", "disable", "--email", "ops@example.com"]), None);
    assert!(found.status.success(), "the user came with the backup: {}", String::from_utf8_lossy(&found.stderr));
    for dir in [first, second] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
