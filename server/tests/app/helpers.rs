//! `TestApp`: a Bitgate server on 127.0.0.1:0 with a fresh database.

use std::{path::PathBuf, sync::Mutex, time::Duration};

use bitgate_server::http::limits::Limits;

use bitgate_core::{
    config::Config,
    db::Database,
    passwords::Password,
    spaces,
    users::{self, DisplayName, Email, NewUser, Role},
};
use reqwest::{redirect::Policy, Client, Response};
use tokio::sync::OnceCell;

/// The server tests create their databases on: `BITGATE_TEST_DATABASE_URL`,
/// or the local PostgreSQL; without one, a private cluster under `target/`.
/// The databases of earlier runs are dropped first (a test's database is
/// kept after it ends, to look into when it failed).
async fn admin_url() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        let url = server_url().await;
        drop_earlier_databases(&url).await;
        url
    })
    .await
}

/// Drops the `bitgate_test_` databases no one is connected to: those of
/// earlier runs (a run going on at the same time keeps its own, in use).
async fn drop_earlier_databases(admin: &str) {
    let Ok(pool) = sqlx::PgPool::connect(admin).await else { return };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'bitgate\\_test\\_%'
           AND datname NOT IN (SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    for name in names {
        // One that got a connection meanwhile is in use: left alone.
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\"")).execute(&pool).await;
    }
    pool.close().await;
}

async fn server_url() -> String {
    if let Ok(url) = std::env::var("BITGATE_TEST_DATABASE_URL") {
        return url;
    }
    let local = "postgres://postgres@127.0.0.1:5432/postgres".to_owned();
    if sqlx::PgPool::connect(&local).await.is_ok() {
        return local;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-postgres");
    let cluster =
        tokio::task::spawn_blocking(move || bitgate_core::db::EmbeddedCluster::start(&dir)).await.unwrap().expect(
            "no PostgreSQL for the tests: start one, set BITGATE_TEST_DATABASE_URL, or install PostgreSQL's binaries",
        );
    let socket = cluster.socket_dir();
    // The cluster outlives the test process's reference to it; it is reused next run.
    std::mem::forget(cluster);
    format!("postgres://postgres@localhost/postgres?host={}", socket.display())
}

/// A new, empty database; returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url().await;
    let name = format!("bitgate_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(admin).await.expect("the test PostgreSQL is reachable");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
    pool.close().await;
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&name);
    url.to_string()
}

pub struct TestApp {
    pub base: String,
    pub pool: sqlx::PgPool,
    pub services: bitgate_core::Services,
    /// The process's "told to stop" flag (`/readyz` answers 503 once set).
    pub stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _data_dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// The password of every user the tests create.
pub const PASSWORD: &str = "a long enough password";

pub struct TestUser {
    pub email: String,
    pub password: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns with extra configuration variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let database_url = fresh_database().await;
        Self::spawn_on(database_url, extra).await
    }

    pub async fn spawn_on(database_url: String, extra: &[(&str, &str)]) -> Self {
        Self::spawn_limited(database_url, extra, Limits::default()).await
    }

    /// Spawns serving within `limits` (shorter than production's, to test them).
    pub async fn spawn_limited(database_url: String, extra: &[(&str, &str)], limits: Limits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let base = format!("http://{address}");
        let data_dir = TempDir::new("bitgate-test-");
        let mut vars: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.clone()),
            ("BITGATE_PUBLIC_URL".into(), base.clone()),
            ("BITGATE_LISTEN".into(), address.to_string()),
            ("BITGATE_DATA_DIR".into(), data_dir.path().display().to_string()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::load(&MapSource(vars)).expect("test configuration is valid");
        let database = Database::connect(&config).await.unwrap();
        database.migrate().await.unwrap();
        let pool = database.pool.clone();
        let services = bitgate_server::serve::build_services(&config, &database).await.unwrap();
        let site = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/site");
        let state = bitgate_server::serve::app_state(services.clone(), false, Some(site));
        let stopping = state.stopping.clone();
        let router = bitgate_server::http::router(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            bitgate_server::http::limits::serve(listener, router, limits, stopped).await.unwrap();
        });
        Self { base, pool, services, stopping, _data_dir: data_dir, shutdown: Some(stop) }
    }

    /// A browser-like client: keeps cookies, follows no redirect, sends our Origin.
    pub fn browser(&self) -> Browser {
        let client = Client::builder().redirect(Policy::none()).timeout(Duration::from_secs(20)).build().unwrap();
        Browser { client, base: self.base.clone(), cookie: Mutex::new(None) }
    }

    pub async fn create_user(&self, email: &str, role: Option<Role>) -> TestUser {
        let password = PASSWORD.to_owned();
        let hasher = bitgate_core::passwords::PasswordHasher::new(1).unwrap();
        let mut tx = self.pool.begin().await.unwrap();
        let root = spaces::resolve(&mut *tx, "root").await.unwrap().unwrap();
        let user = users::create(
            &mut tx,
            &hasher,
            NewUser {
                email: Email::parse(email).unwrap(),
                name: DisplayName::parse("Test User").unwrap(),
                password: Password::new(password.clone()).unwrap(),
                role: role.map(|r| (r, root.id)),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let _ = user;
        TestUser { email: email.to_owned(), password }
    }

    pub async fn user_id(&self, email: &str) -> uuid::Uuid {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1").bind(email).fetch_one(&self.pool).await.unwrap()
    }

    /// A browser logged in as a new account admin.
    pub async fn logged_in_admin(&self) -> (Browser, TestUser) {
        let user = self.create_user("admin@example.com", Some(Role::Admin)).await;
        let browser = self.browser();
        let response = browser.login(&user.email, &user.password).await;
        assert_eq!(response.status(), 303, "login succeeds");
        (browser, user)
    }

    /// Calls the API with a Bearer token; the answer is checked against the
    /// OpenAPI document before it is returned.
    pub async fn api(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request =
            reqwest::Client::new().request(method.clone(), format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        crate::contract::checked(method, path, request.send().await.unwrap()).await
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar::<_, String>("SELECT action FROM audit_events ORDER BY occurred_at")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

struct MapSource(Vec<(String, String)>);

impl bitgate_core::config::Source for MapSource {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

/// A browser-like client: keeps the session cookie, follows no redirect,
/// and posts forms with our Origin.
pub struct Browser {
    pub client: Client,
    pub base: String,
    cookie: Mutex<Option<(String, String)>>,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.client.get(self.url(path)).header("accept", "text/html")).await
    }

    /// A form post from one of our pages (our Origin).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.send(
            self.client.post(self.url(path)).header("origin", &self.base).header("accept", "text/html").form(form),
        )
        .await
    }

    /// Sends a request with the session cookie and keeps what the answer sets.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        let cookie = self.cookie.lock().unwrap().clone();
        let request = match cookie {
            Some((name, value)) => request.header("cookie", format!("{name}={value}")),
            None => request,
        };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let removed = value.is_empty() || attributes.to_ascii_lowercase().contains("max-age=0");
            *self.cookie.lock().unwrap() = (!removed).then(|| (name.to_owned(), value.to_owned()));
        }
        response
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_form("/login", &[("email", email), ("password", password), ("next", "")]).await
    }

    /// The same browser (its session cookie) talking to another Bitgate
    /// process, as a load balancer would send it.
    pub fn on(&self, base: &str) -> Browser {
        Browser {
            client: self.client.clone(),
            base: base.to_owned(),
            cookie: Mutex::new(self.cookie.lock().unwrap().clone()),
        }
    }

    /// The session cookie's value, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().as_ref().map(|(_, value)| value.clone())
    }

    /// The CSRF token the page at `path` embeds in its forms.
    pub async fn csrf_token(&self, path: &str) -> String {
        let html = self.get(path).await.text().await.unwrap();
        let marker = "name=\"csrf_token\" value=\"";
        let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
        html[start..].split('"').next().unwrap().to_owned()
    }
}

/// A directory under /tmp, removed when dropped. Under /tmp because the
/// embedded cluster's unprivileged user must be able to enter it.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The value of the option a page's `<select name="{name}">` has selected:
/// what the browser would post for it untouched.
pub fn selected_option(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\""))?;
    let end = start + html[start..].find("</select>")?;
    let tags = html[start..end].split("<option").skip(1).filter_map(|option| option.split('>').next());
    let selected =
        tags.into_iter().find(|tag| tag.split_whitespace().any(|a| a == "selected" || a.starts_with("selected=")))?;
    let value = selected.split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].to_owned())
}

/// Whether a page's checkbox `<input name="{name}">` is ticked: what the
/// browser would post for it untouched (`None`: no such input).
pub fn ticked(html: &str, name: &str) -> Option<bool> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind("<input")?;
    let end = at + html[at..].find('>')?;
    let attributes = html[start..end].split_whitespace().map(|a| a.trim_end_matches('/'));
    Some(attributes.into_iter().any(|a| a == "checked" || a.starts_with("checked=")))
}

/// The value of a page's hidden `<input name="{name}">`.
pub fn hidden_value(html: &str, name: &str) -> String {
    let start = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no {name} field: {html}"));
    let tag = &html[html[..start].rfind('<').unwrap()..start + html[start..].find('>').unwrap()];
    let value = tag.split("value=\"").nth(1).unwrap();
    value[..value.find('"').unwrap()].to_owned()
}

pub fn location(response: &Response) -> String {
    response.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// A server of an attacker's that only counts the connections made to it
/// (it answers none): for tests that a stored secret is never sent there.
pub struct Listener {
    pub url: String,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Listener {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        Self { url, connections }
    }

    /// How many connections it accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Makes `count` copies of an integration straight in the database (names
/// `{prefix} 1`, `{prefix} 2`…, each a second older than the one before),
/// for lists long enough to page. Their sealed secrets stay bound to the
/// original's id: listable, not usable.
pub async fn copy_integration(pool: &sqlx::PgPool, id: uuid::Uuid, prefix: &str, count: i32) {
    sqlx::query(
        "WITH copies AS (SELECT n, gen_random_uuid() AS id FROM generate_series(1, $3) n),
              made AS (
                INSERT INTO integrations
                SELECT (jsonb_populate_record(i, jsonb_build_object(
                          'id', c.id, 'name', $2 || ' ' || c.n, 'slug', lower($2) || '-' || c.n,
                          'created_at', i.created_at - make_interval(secs => c.n)))).*
                FROM integrations i, copies c WHERE i.id = $1 RETURNING id)
         INSERT INTO datacenter_credentials
         SELECT (jsonb_populate_record(d, jsonb_build_object('integration_id', c.id))).*
         FROM datacenter_credentials d, copies c WHERE d.integration_id = $1",
    )
    .bind(id)
    .bind(prefix)
    .bind(count)
    .execute(pool)
    .await
    .unwrap();
}

/// The address of the link labelled `label` on a page (a pager's "Next page", "First page").
pub fn link_href(page: &str, label: &str) -> Option<String> {
    let at = page.find(&format!(">{label}</a>"))?;
    let start = page[..at].rfind("href=\"")? + 6;
    Some(page[start..start + page[start..].find('"')?].replace("&amp;", "&"))
}
