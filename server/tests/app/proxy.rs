//! Three Bitgate processes behind nginx, as an operator runs them: the
//! proxying of `deploy/nginx.conf` (on a free port, without TLS), one
//! PostgreSQL, one set of keys. A browser session works whichever process
//! answers; deliveries are spread over all three; a secret rotated through
//! one is refused by the others at once; a process killed with SIGKILL
//! under load loses no delivery it acknowledged.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use bitbucket_simulator::sender;
use reqwest::Method;
use serde_json::Value;

use crate::{
    cli::bitgate,
    webhooks::{endpoint, post},
    world::world_with_bitbucket,
};

/// The processes and the proxy; all killed when dropped.
struct Fleet {
    processes: Vec<Child>,
    ports: Vec<u16>,
    nginx: Child,
    proxy: String,
    dir: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().chain(std::iter::once(&mut self.nginx)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `deploy/nginx.conf` made to run here: our ports, plain http, no
/// redirect server, nginx's files in `dir`.
fn nginx_config(dir: &Path, listen: u16, upstreams: &[u16]) -> String {
    let deployed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf")).unwrap();
    let site = deployed.split("\nserver {\n    listen 80;").next().unwrap();
    let mut servers = upstreams.iter();
    let site: Vec<String> = site
        .lines()
        .filter(|line| !line.trim_start().starts_with("ssl_certificate"))
        .map(|line| {
            if line.trim_start().starts_with("server 127.0.0.1:") {
                let rest = line.trim_start().split_once(' ').unwrap().1.split_once(' ').unwrap().1;
                format!("    server 127.0.0.1:{} {rest}", servers.next().unwrap())
            } else if line.trim_start().starts_with("listen 443") {
                format!("    listen 127.0.0.1:{listen};")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{}\n}}\n",
        site.join("\n")
    )
}

async fn fleet(database_url: &str, keys: &str) -> Fleet {
    let dir = std::env::temp_dir().join(format!("bitgate-fleet-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // nginx's workers run as nobody.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let proxy_port = free_port();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site").display().to_string();
    let processes = ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            let data = dir.join(format!("data-{port}")).display().to_string();
            bitgate(&[
                ("DATABASE_URL", database_url),
                ("BITGATE_SECRET_KEYS", keys),
                ("BITGATE_DATA_DIR", &data),
                ("BITGATE_LISTEN", &listen),
                ("BITGATE_PUBLIC_URL", &proxy),
                ("BITGATE_TRUSTED_PROXIES", "127.0.0.1"),
                ("BITGATE_OUTBOUND_DENY", ""),
                ("BITGATE_METRICS", "on"),
                ("LEPTOS_SITE_ROOT", &site),
                ("RUST_LOG", "warn"),
            ])
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    let config = dir.join("nginx.conf");
    std::fs::write(&config, nginx_config(&dir, proxy_port, &ports)).unwrap();
    let program = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let nginx = std::process::Command::new(program)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (./scripts/test installs it)");
    let fleet = Fleet { processes, ports, nginx, proxy, dir };
    let client = reqwest::Client::new();
    let started = Instant::now();
    for url in fleet.ports.iter().map(|p| format!("http://127.0.0.1:{p}")).chain([fleet.proxy.clone()]) {
        while !client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            assert!(started.elapsed() < Duration::from_secs(60), "{url} did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    fleet
}

/// Accepted deliveries a process counted (its own metrics).
async fn accepted_by(port: u16) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    let series = r#"bitgate_webhook_deliveries_total{outcome="accepted",signature="valid"} "#;
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// Posts a signed push as Bitbucket does, again after a 503 (a database
/// busy with the rest of the suite), as Bitbucket would.
async fn deliver(url: &str, push: &[u8], secret: &str, request_id: &str) -> (u16, Value) {
    let mut answer = post(url, "repo:refs_changed", push, Some(secret), request_id).await;
    for _ in 0..3 {
        if answer.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        answer = post(url, "repo:refs_changed", push, Some(secret), request_id).await;
    }
    answer
}

#[tokio::test]
async fn three_processes_behind_nginx_share_sessions_deliveries_secrets_and_survive_a_kill() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _stack) = endpoint(&w, &simulator.url).await;
    let database_url = w.app.services.config.database_url.clone().unwrap();
    let keys = crate::cloud::keys_of(&w.app);
    let mut fleet = fleet(&database_url, &keys).await;
    let through_proxy = e.url.replace(&w.app.base, &fleet.proxy);

    // A browser logs in through the proxy; its session works on every process.
    let browser = w.app.browser().on(&fleet.proxy);
    let login = browser.login(&crate::world::email_of("team admin"), crate::helpers::PASSWORD).await;
    assert_eq!(login.status(), 303);
    for _ in 0..9 {
        let page = browser.get(&format!("/integrations/{}", e.id)).await;
        assert_eq!(page.status(), 200, "the session holds whichever process answers");
    }
    for port in &fleet.ports {
        let page = browser.on(&format!("http://127.0.0.1:{port}")).get(&format!("/integrations/{}", e.id)).await;
        assert_eq!(page.status(), 200, "process {port} knows the session");
    }

    // Deliveries through the proxy are spread over the three.
    let push = serde_json::to_vec(&sender::payload("repo:refs_changed").unwrap()).unwrap();
    for n in 0..30 {
        let (status, answer) = deliver(&through_proxy, &push, &e.secret, &format!("spread-{n}")).await;
        assert_eq!(status, 202, "{answer}");
    }
    for port in fleet.ports.clone() {
        assert!(accepted_by(port).await >= 1.0, "process {port} took some");
    }

    // Rotated through the first process, the old secret retired: the
    // others refuse it at once.
    let first = format!("http://127.0.0.1:{}", fleet.ports[0]);
    let admin = w.token("team admin");
    let api = |base: String, path: String| {
        let token = admin.to_owned();
        async move {
            let answer = reqwest::Client::new().post(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, rotated) = api(first.clone(), format!("/api/v1/integrations/{}/webhook/rotate", e.id)).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, _) = api(first.clone(), format!("/api/v1/integrations/{}/webhook/retire-previous", e.id)).await;
    assert!(status == 200 || status == 204, "{status}");
    let (_, webhook) = w.call(admin, Method::GET, &format!("/api/v1/integrations/{}/webhook", e.id), None).await;
    let new_secret = webhook["secret"].as_str().unwrap().to_owned();
    for port in &fleet.ports[1..] {
        let url = e.url.replace(&w.app.base, &format!("http://127.0.0.1:{port}"));
        let (status, _) = post(&url, "repo:refs_changed", &push, Some(&e.secret), &format!("old-{port}")).await;
        assert_eq!(status, 401, "process {port} refuses the retired secret");
        let (status, answer) = deliver(&url, &push, &new_secret, &format!("new-{port}")).await;
        assert_eq!(status, 202, "{answer}");
    }

    // Under load, the second process is killed: every delivery answered
    // 2xx is in the log (the others were not acknowledged: Bitbucket retries them).
    let sending: Vec<_> = (0..120)
        .map(|n| {
            let (url, push, secret) = (through_proxy.clone(), push.clone(), new_secret.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(n * 5)).await;
                // (An answer may be nginx's own 502, not Bitgate's.)
                let mut request = reqwest::Client::new().post(&url).body(push.clone());
                for (name, value) in sender::headers("repo:refs_changed", Some(&secret), &push, &format!("load-{n}")) {
                    request = request.header(name, value);
                }
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                let body: Value = answer.json().await.unwrap_or(Value::Null);
                (status, body["delivery"].as_str().map(str::to_owned))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(250)).await;
    fleet.processes[1].kill().unwrap();
    let mut acknowledged = Vec::new();
    for sent in sending {
        let (status, delivery) = sent.await.unwrap();
        if (200..300).contains(&status) {
            acknowledged.push(delivery.unwrap());
        }
    }
    assert!(acknowledged.len() >= 100, "the other two took the load: {}", acknowledged.len());
    let ids: Vec<uuid::Uuid> = acknowledged.iter().map(|id| uuid::Uuid::parse_str(id).unwrap()).collect();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(stored as usize, ids.len(), "every acknowledged delivery is stored");
}
