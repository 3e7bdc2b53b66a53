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
