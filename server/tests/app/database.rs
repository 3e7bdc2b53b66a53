//! The database going away and coming back while Bitgate runs.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::helpers::{fresh_database, TestApp};

/// A TCP proxy in front of PostgreSQL that a test can cut and restore.
struct Outage {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Outage {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (accept_up, accept_cut) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let mut cuts = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn take_down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn bring_back(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn an_outage_gives_503_and_service_comes_back_by_itself() {
    let direct = fresh_database().await;
    let url = url::Url::parse(&direct).unwrap();
    let Some(host) = url.host_str().filter(|h| *h != "localhost").map(str::to_owned) else {
        eprintln!("skipped: the test database is on a Unix socket, which this proxy does not speak");
        return;
    };
    let outage = Outage::start(format!("{host}:{}", url.port().unwrap_or(5432))).await;
    let mut proxied = url.clone();
    proxied.set_host(Some("127.0.0.1")).unwrap();
    proxied.set_port(Some(outage.port)).unwrap();
    let app = TestApp::spawn_on(proxied.to_string(), &[]).await;
    let (browser, _) = app.logged_in_admin().await;
    assert_eq!(browser.get("/readyz").await.status(), 200);
    assert_eq!(browser.get("/").await.status(), 200);

    outage.take_down();
    let ready = browser.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let page = browser.get("/").await;
    assert_eq!(page.status(), 503);
    assert!(page.text().await.unwrap().contains("cannot reach its database"));
    let health = browser.get("/healthz").await;
    assert_eq!(health.status(), 200, "the process itself is up");

    outage.bring_back();
    let mut recovered = false;
    for _ in 0..40 {
        if browser.get("/readyz").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "readyz recovers once the database is back");
    assert_eq!(browser.get("/").await.status(), 200, "the session survived the outage");
}

/// A stream of deliveries while the database goes away and comes back:
/// every delivery acknowledged with a 2xx is in the log afterwards, and
/// every other one was answered 503 (so that Bitbucket sends it again).
#[tokio::test]
async fn no_acknowledged_delivery_is_lost_when_the_database_goes_away() {
    use bitbucket_simulator::{
        datacenter::{DEMO_TOKEN, DEMO_USER},
        sender, DataCenter, Simulator, Transport,
    };
    let direct = fresh_database().await;
    let url = url::Url::parse(&direct).unwrap();
    let Some(host) = url.host_str().filter(|h| *h != "localhost").map(str::to_owned) else {
        eprintln!("skipped: the test database is on a Unix socket, which this proxy does not speak");
        return;
    };
    let outage = Outage::start(format!("{host}:{}", url.port().unwrap_or(5432))).await;
    let mut proxied = url.clone();
    proxied.set_host(Some("127.0.0.1")).unwrap();
    proxied.set_port(Some(outage.port)).unwrap();
    let app = TestApp::spawn_on(proxied.to_string(), &[("BITGATE_OUTBOUND_DENY", "")]).await;
    let simulator = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let admin = app.create_user("ops@example.com", Some(bitgate_core::users::Role::Admin)).await;
    let admin_id = app.user_id(&admin.email).await;
    let (_, token) = bitgate_core::api_tokens::create(&app.pool, admin_id, "t", None).await.unwrap();
    let body = serde_json::json!({
        "name": "dc", "provider": "bitbucket_datacenter", "scope": "default",
        "datacenter": {"api_url": simulator.url, "username": DEMO_USER, "access_token": DEMO_TOKEN}
    });
    let (status, created) = app.api(&token, reqwest::Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (_, webhook) = app.api(&token, reqwest::Method::GET, &format!("/api/v1/integrations/{id}/webhook"), None).await;
    let (endpoint, secret) =
        (webhook["url"].as_str().unwrap().to_owned(), webhook["secret"].as_str().unwrap().to_owned());

    let payload = serde_json::to_vec(&sender::payload("repo:refs_changed").unwrap()).unwrap();
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for n in 0..150 {
        match n {
            50 => outage.take_down(),
            100 => outage.bring_back(),
            _ => {}
        }
        let request_id = format!("stream-{n}");
        let mut request = client.post(&endpoint).body(payload.clone()).timeout(Duration::from_secs(20));
        for (name, value) in sender::headers("repo:refs_changed", Some(&secret), &payload, &request_id) {
            request = request.header(name, value);
        }
        let status = request.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        answers.push((request_id, status));
        if n >= 100 && status == 503 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM webhook_deliveries WHERE request_id LIKE 'stream-%'")
            .fetch_all(&sqlx::PgPool::connect(&direct).await.unwrap())
            .await
            .unwrap();
    let acknowledged: Vec<&str> =
        answers.iter().filter(|(_, s)| (200..300).contains(s)).map(|(r, _)| r.as_str()).collect();
    for request_id in &acknowledged {
        assert!(stored.iter().any(|s| s == request_id), "{request_id} was acknowledged but is not in the log");
    }
    for (request_id, status) in &answers {
        assert!((200..300).contains(status) || *status == 503, "{request_id} got {status}, neither stored nor 503");
    }
    let refused = answers.iter().filter(|(_, s)| *s == 503).count();
    assert!(refused > 0, "the outage was felt");
    assert!(acknowledged.len() >= 90, "before and after the outage, deliveries are stored: {}", acknowledged.len());
    assert!((200..300).contains(&answers.last().unwrap().1), "stored again once the database is back");
}

/// PostgreSQL restarting ends the queries in flight with 57P01
/// ("terminating connection due to administrator command"): an outage,
/// answered 503 so that the caller tries again, not a bug answered 500.
#[tokio::test]
async fn a_restart_s_goodbye_to_the_queries_in_flight_is_an_outage_not_a_bug() {
    use sqlx::Connection;
    let url = fresh_database().await;
    let mut ended = sqlx::PgConnection::connect(&url).await.unwrap();
    let goodbye = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())").execute(&mut ended).await.unwrap_err();
    assert_eq!(goodbye.as_database_error().and_then(|e| e.code()).as_deref(), Some("57P01"), "{goodbye}");
    assert!(bitgate_core::db::is_outage(&goodbye));
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    let bug = sqlx::query("SELECT 1 / 0").execute(&mut other).await.unwrap_err();
    assert!(!bitgate_core::db::is_outage(&bug), "a refused statement is not an outage: {bug}");
}
