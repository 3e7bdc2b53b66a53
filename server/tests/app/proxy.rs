//! Three Bitgate processes behind nginx, as an operator runs them: the
//! proxying of `deploy/nginx.conf` (on a free port, without TLS), one
//! PostgreSQL, one set of keys. A browser session works whichever process
//! answers; deliveries are spread over all three; a secret rotated through
//! one is refused by the others at once; a process killed with SIGKILL
//! under load loses no delivery it acknowledged. The OAuth callback lands
//! on another process than the one that started the flow; each job runs
//! once, and one leased by a killed process is taken over after its lease.
//! A rolling restart under webhook load loses nothing.

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
    /// What every process is started with (a restart starts it again so).
    env: Vec<(String, String)>,
    /// One fleet at a time: three processes' pools (16 connections each)
    /// beside the rest of the suite are what the local server can hold.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().chain(std::iter::once(&mut self.nginx)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fleet {
    fn start(&self, port: u16) -> Child {
        let listen = format!("127.0.0.1:{port}");
        let data = self.dir.join(format!("data-{port}")).display().to_string();
        let mut vars: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.extend([("BITGATE_DATA_DIR", data.as_str()), ("BITGATE_LISTEN", listen.as_str())]);
        // Its log, to say why when it does not start.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_of(port)).unwrap();
        bitgate(&vars).arg("serve").stdout(Stdio::null()).stderr(log).spawn().unwrap()
    }

    fn log_of(&self, port: u16) -> PathBuf {
        self.dir.join(format!("bitgate-{port}.log"))
    }

    /// Waits until `url` answers `/readyz` with 200; `log` says why not.
    async fn ready(url: &str, log: &Path) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while !client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            if started.elapsed() > Duration::from_secs(60) {
                panic!("{url} did not become ready: {}", std::fs::read_to_string(log).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn process_url(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[n])
    }

    fn signal(&self, n: usize, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.processes[n].id() as i32), signal).unwrap();
    }

    /// Stops process `n` as systemd does (SIGTERM), waits for it to exit
    /// (returning how long that took), and starts it again on its port.
    async fn restart(&mut self, n: usize) -> Duration {
        self.signal(n, nix::sys::signal::Signal::SIGTERM);
        let asked = Instant::now();
        let exit = loop {
            if let Some(exit) = self.processes[n].try_wait().unwrap() {
                break exit;
            }
            assert!(asked.elapsed() < Duration::from_secs(30), "process {n} did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = asked.elapsed();
        assert!(exit.success(), "process {n} stopped cleanly: {exit}");
        self.processes[n] = self.start(self.ports[n]);
        Self::ready(&self.process_url(n), &self.log_of(self.ports[n])).await;
        took
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
    fleet_with(database_url, keys, &[]).await
}

/// Three processes (with `extra` settings) and nginx before them, all ready.
async fn fleet_with(database_url: &str, keys: &str, extra: &[(&str, &str)]) -> Fleet {
    let turn = TURN.lock().await;
    let dir = std::env::temp_dir().join(format!("bitgate-fleet-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // nginx's workers run as nobody.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let proxy_port = free_port();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site").display().to_string();
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", database_url),
        ("BITGATE_SECRET_KEYS", keys),
        ("BITGATE_PUBLIC_URL", &proxy),
        ("BITGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("BITGATE_OUTBOUND_DENY", ""),
        ("BITGATE_METRICS", "on"),
        ("LEPTOS_SITE_ROOT", &site),
        ("RUST_LOG", "warn"),
    ]
    .iter()
    // (Later settings win: `extra` may change the ones above.)
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
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
    let mut fleet = Fleet { processes: Vec::new(), ports, nginx, proxy, dir, env, _turn: turn };
    fleet.processes = fleet.ports.iter().map(|port| fleet.start(*port)).collect();
    for n in 0..3 {
        Fleet::ready(&fleet.process_url(n), &fleet.log_of(fleet.ports[n])).await;
    }
    Fleet::ready(&fleet.proxy, &fleet.dir.join("error.log")).await;
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

/// Waits until `query` (a count) gives `expected`, for at most 30 s.
async fn until_count(pool: &sqlx::PgPool, query: &str, expected: i64) {
    let started = Instant::now();
    loop {
        let count: i64 = sqlx::query_scalar(query).fetch_one(pool).await.unwrap();
        if count == expected {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{query}: {count}, not {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn behind_nginx_the_oauth_callback_lands_anywhere_each_job_runs_once_and_a_killed_process_s_job_is_taken_over() {
    use nix::sys::signal::Signal;
    let (w, simulator) = crate::cloud::cloud_world().await;
    let (_dc, stack) = endpoint(&w, &simulator.url).await;
    let database_url = w.app.services.config.database_url.clone().unwrap();
    let keys = crate::cloud::keys_of(&w.app);
    let mut fleet = fleet_with(
        &database_url,
        &keys,
        &[("BITGATE_BITBUCKET_CLOUD_URL", &simulator.url), ("BITGATE_BITBUCKET_CLOUD_API_URL", &simulator.url)],
    )
    .await;

    // An admin clicks Connect on the first process; Bitbucket sends the
    // browser back to the proxy's callback, which the third answers.
    let proxy_callback = format!("{}/oauth/bitbucket/callback", fleet.proxy);
    simulator.configure_cloud(|cloud| cloud.consumers[0].callback_url = Some(proxy_callback.clone()));
    let cloud = crate::cloud::create(&w, "Cloud main", "authorization_code").await["id"].as_str().unwrap().to_owned();
    // (The browser logs in through the proxy; its Connect reaches the
    // first process, with the Origin nginx passes on: the proxy's.)
    let browser = w.app.browser().on(&fleet.proxy);
    assert_eq!(browser.login(&crate::world::email_of("team admin"), crate::helpers::PASSWORD).await.status(), 303);
    let first = browser.on(&fleet.process_url(0));
    let csrf = first.csrf_token(&format!("/integrations/{cloud}")).await;
    let connect = first.client.post(first.url(&format!("/integrations/{cloud}/connect")));
    let clicked = first
        .send(connect.header("origin", &fleet.proxy).header("accept", "text/html").form(&[("csrf_token", &csrf)]))
        .await;
    assert_eq!(clicked.status(), 303);
    let authorize = crate::helpers::location(&clicked);
    let query: std::collections::HashMap<String, String> =
        url::Url::parse(&authorize).unwrap().query_pairs().into_owned().collect();
    assert_eq!(query["redirect_uri"], proxy_callback, "Bitbucket is sent to the public URL, the proxy");
    let callback = crate::cloud::approve(&simulator, &authorize, "grant").await;
    let landed = first.on(&fleet.process_url(2)).get(&callback).await;
    let status = landed.status();
    assert_eq!(status, 303, "the third process finishes what the first started: {}", landed.text().await.unwrap());
    let admin = w.token("team admin");
    let read = reqwest::Client::new()
        .get(format!("{}/api/v1/integrations/{cloud}", fleet.process_url(1)))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(read.json::<Value>().await.unwrap()["health"]["state"], "connected");

    // Thirty runs reported through the proxy: three job workers, each
    // status sent once.
    let writer = w.token("team writer").to_owned();
    let commit = |n: usize| format!("{n:040x}");
    let report = |base: String, n: usize| {
        let (writer, stack, commit) = (writer.clone(), stack.clone(), commit(n));
        async move {
            let body = serde_json::json!({"commit": commit, "kind": "tracked", "state": "succeeded"});
            let answer = reqwest::Client::new()
                .put(format!("{base}/api/v1/stacks/{stack}/runs/run-{n}"))
                .bearer_auth(writer)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "{}", answer.status());
        }
    };
    futures::future::join_all((0..30).map(|n| report(fleet.proxy.clone(), n))).await;
    until_count(&w.app.pool, "SELECT count(*) FROM commit_statuses WHERE sent = 'sent'", 30).await;
    let calls = simulator.datacenter.read().unwrap().calls.clone();
    for n in 0..30 {
        let posts = calls.iter().filter(|c| c.method == "POST" && c.path.contains(&commit(n))).count();
        assert_eq!(posts, 1, "the status of commit {n} was sent once, by one of the three");
    }

    // Only the first process is left running; it takes the next job and,
    // while Bitbucket is slow to answer it, is killed.
    fleet.signal(1, Signal::SIGSTOP);
    fleet.signal(2, Signal::SIGSTOP);
    simulator.configure(|dc| dc.delay = Duration::from_secs(30));
    report(fleet.process_url(0), 30).await;
    let leased = "SELECT count(*) FROM jobs WHERE kind = 'outbound.build_status' AND locked_until > now()";
    until_count(&w.app.pool, leased, 1).await;
    fleet.processes[0].kill().unwrap();
    fleet.processes[0].wait().unwrap();
    fleet.signal(1, Signal::SIGCONT);
    fleet.signal(2, Signal::SIGCONT);
    simulator.configure(|dc| dc.delay = Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = "SELECT count(*) FROM commit_statuses WHERE sent = 'sent'";
    until_count(&w.app.pool, sent, 30).await;
    until_count(&w.app.pool, leased, 1).await;
    // The lease (five minutes) runs out: the others take the job over.
    sqlx::query("UPDATE jobs SET locked_until = now() WHERE locked_until > now()").execute(&w.app.pool).await.unwrap();
    until_count(&w.app.pool, sent, 31).await;
    let statuses = simulator.datacenter.read().unwrap().build_statuses.clone();
    assert!(statuses.iter().any(|s| s.commit == commit(30) && s.state == "SUCCESSFUL"), "Bitbucket has it");
}

#[tokio::test]
async fn a_rolling_restart_behind_nginx_under_webhook_load_loses_no_delivery() {
    use bitbucket_simulator::load;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _stack) = endpoint(&w, &simulator.url).await;
    let database_url = w.app.services.config.database_url.clone().unwrap();
    let mut fleet = fleet(&database_url, &crate::cloud::keys_of(&w.app)).await;
    let through_proxy = e.url.replace(&w.app.base, &fleet.proxy);
    let run = format!("rolling-{}", uuid::Uuid::new_v4().simple());

    // Bitbucket sends 100 deliveries a second, and again after a 5xx or no
    // answer, while the first process, then the second, is restarted.
    let options =
        load::Options { distinct_commits: true, retry_for: Duration::from_secs(30), run_id: Some(run.clone()) };
    let (url, secret) = (through_proxy.clone(), e.secret.clone());
    let sending = tokio::spawn(async move {
        load::open_loop_with(&url, &secret, "repo:refs_changed", 100, Duration::from_secs(8), &options).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 0..2 {
        let took = fleet.restart(n).await;
        assert!(took < Duration::from_secs(11), "process {n} stopped within the grace: {took:?}");
    }
    let report = sending.await.unwrap();
    assert!(report.sent >= 700, "{} sent", report.sent);
    assert_eq!(report.failed, 0, "every delivery was acknowledged ({} needed a retry)", report.retried());
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT request_id) FROM webhook_deliveries WHERE request_id LIKE $1 || '-%' AND outcome = 'accepted'",
    )
    .bind(&run)
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(logged as usize, report.sent, "every acknowledged delivery is in the log");
}
