//! `bitgate serve`: start-up, background maintenance, graceful shutdown.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use bitgate_app::context::Installation;
use bitgate_core::{
    config::{Config, SecretKeysSource},
    db::Database,
    maintenance,
    passwords::PasswordHasher,
    secrets::Keyring,
    setup, Services,
};
use leptos::config::LeptosOptions;

use crate::{
    http::{self, pages::PageRenderer},
    state::AppState,
};

/// A failure that stops start-up, said in one sentence.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

impl StartupError {
    fn from(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    let database = Database::connect(&config).await.map_err(StartupError::from)?;
    let result = serve_with(&config, &database).await;
    database.close().await;
    result
}

async fn serve_with(config: &Config, database: &Database) -> Result<(), StartupError> {
    database.migrate().await.map_err(StartupError::from)?;
    let services = build_services(config, database).await?;
    let state = app_state(services.clone(), database.is_embedded(), None);
    let app = http::router(state.clone());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartupError(format!("BITGATE_LISTEN {} cannot be used: {e}.", config.listen)))?;
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| StartupError(format!("BITGATE_METRICS_LISTEN {address} cannot be used: {e}.")))?,
        ),
        None => None,
    };
    tracing::info!(listen = %config.listen, public_url = config.public_url.as_str(), "Bitgate is serving");
    announce_setup_link(config, &services).await?;

    // SIGTERM or SIGINT: /readyz turns 503 at once, the listeners stop
    // taking connections, and the requests in flight and the jobs under
    // way finish, each within BITGATE_SHUTDOWN_GRACE.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn({
        let stopping = state.stopping.clone();
        async move {
            shutdown_signal().await;
            stopping.store(true, Ordering::Relaxed);
            let _ = stop.send(true);
        }
    });
    let limits = http::limits::Limits { shutdown_grace: config.shutdown_grace, ..Default::default() };
    if let Some(listener) = metrics_listener {
        let metrics = http::metrics::router().with_state(state.clone());
        tokio::spawn(http::limits::serve(listener, metrics, limits, until(stopped.clone())));
    }
    maintenance::schedule_periodic(&services.pool).await.map_err(StartupError::from)?;
    let mut worker = tokio::spawn(run_jobs(services.clone(), stopped.clone()));
    // The jobs under way and the requests in flight (a delivery's answered
    // once its batch commits) finish side by side, in one grace.
    let jobs_stopped = until(stopped.clone());
    let jobs_finished = async {
        jobs_stopped.await;
        if tokio::time::timeout(config.shutdown_grace, &mut worker).await.is_err() {
            tracing::warn!("jobs still running after BITGATE_SHUTDOWN_GRACE were stopped; their leases expire and another process takes them");
            worker.abort();
        }
    };
    let (served, ()) = tokio::join!(http::limits::serve(listener, app, limits, until(stopped)), jobs_finished);
    tracing::info!("Bitgate stopped serving");
    served.map_err(|e| StartupError(format!("The server stopped with an error: {e}.")))
}

/// Resolves once `stopped` turns true.
async fn until(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The secret keys: `BITGATE_SECRET_KEYS`, or in development the key
/// generated once into the data directory.
pub fn load_keyring(config: &Config) -> Result<Keyring, StartupError> {
    match &config.secret_keys {
        SecretKeysSource::Environment(keys) => {
            Keyring::parse(keys).map_err(|e| StartupError(format!("BITGATE_SECRET_KEYS is invalid: {e}.")))
        }
        SecretKeysSource::GeneratedIn(path) => Keyring::load_or_generate(path).map_err(|e| {
            StartupError(format!("The development secret key in {} cannot be used: {e}.", path.display()))
        }),
    }
}

/// The services handlers share.
pub async fn build_services(config: &Config, database: &Database) -> Result<Services, StartupError> {
    let keyring = load_keyring(config)?;
    // Hashing is CPU- and memory-bound: at most one per core at a time.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(cores))
        .await
        .map_err(StartupError::from)?
        .map_err(StartupError::from)?;
    let services = Services {
        config: Arc::new(config.clone()),
        pool: database.pool.clone(),
        keyring: Arc::new(keyring),
        hasher,
        webhooks: Default::default(),
        events: Default::default(),
        jobs: Default::default(),
    };
    bitgate_core::webhooks::endpoints::listen(services.pool.clone(), services.webhooks.endpoints.clone());
    services.events.listen(services.pool.clone(), bitgate_core::platform::feed::CHANNEL);
    services.jobs.listen(services.pool.clone(), bitgate_core::jobs::CHANNEL);
    Ok(services)
}

/// The router's state around the services; `site_root` is where the built
/// site is (found next to the binary when `None`).
pub fn app_state(services: Services, embedded_database: bool, site_root: Option<PathBuf>) -> AppState {
    let leptos = leptos_options(&services.config, site_root);
    let installation = Arc::new(Installation {
        public_url: services.config.public_url.as_str().to_owned(),
        cloud_oauth_origin: services.config.bitbucket_cloud_url.origin().ascii_serialization(),
        embedded_database,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    });
    // Leptos spawns the tasks of a render on this executor; set once per
    // process (a second call, from a second app in the same process, is a no-op).
    let _ = any_spawner::Executor::init_tokio();
    let render = leptos_axum::render_app_async_with_context(|| (), {
        let leptos = leptos.clone();
        move || bitgate_app::shell(leptos.clone())
    });
    let metrics = services.config.metrics.then(http::metrics::recorder);
    AppState {
        services,
        leptos,
        pages: PageRenderer::new(render),
        installation,
        metrics,
        stopping: Arc::new(AtomicBool::new(false)),
    }
}

/// Where cargo-leptos put the site: `LEPTOS_SITE_ROOT` when it runs us,
/// otherwise `target/site` beside the binary's `target/release`.
fn leptos_options(config: &Config, site_root: Option<PathBuf>) -> LeptosOptions {
    let site_root =
        site_root.or_else(|| std::env::var("LEPTOS_SITE_ROOT").ok().map(PathBuf::from)).unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().and_then(|dir| dir.parent()).map(|target| target.join("site")))
                .filter(|dir| dir.is_dir())
                .unwrap_or_else(|| PathBuf::from("target/site"))
        });
    // cargo-leptos writes the hashes of the asset names beside the binary;
    // without that file (a binary built by plain cargo) names are unhashed.
    let hash_files = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hash.txt").is_file()))
        .unwrap_or(false);
    LeptosOptions::builder()
        .output_name("bitgate")
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .site_addr(config.listen)
        .env(leptos::config::Env::PROD)
        .hash_files(hash_files)
        .build()
}

/// On a fresh install, prints the one-time link that creates the first
/// admin, and leaves it in `{data_dir}/setup-url` (readable by the owner only).
async fn announce_setup_link(config: &Config, services: &Services) -> Result<(), StartupError> {
    let Some(token) = setup::issue_if_needed(&services.pool).await.map_err(StartupError::from)? else {
        return Ok(());
    };
    let url = config.public_url.join(&format!("/setup?token={token}"));
    let minutes = setup::LINK_LIFETIME.as_secs() / 60;
    let path = config.data_dir.join("setup-url");
    // The link is for the person starting Bitgate: shown on their terminal,
    // never on a standard output that is a log stream (a file, a pipe, a
    // service manager), where only the file holding it is named.
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        println!("\n  No user exists yet. Create the first administrator within {minutes} minutes at:\n\n    {url}\n");
    } else {
        println!(
            "No user exists yet. The link to create the first administrator (valid {minutes} minutes) is in {}.",
            path.display()
        );
    }
    let written = std::fs::create_dir_all(&config.data_dir).and_then(|()| {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path)?.write_all(url.as_bytes())
    });
    if let Err(e) = written {
        tracing::warn!(error = %e, file = %path.display(), "could not write the setup link to the data directory");
    }
    Ok(())
}

/// How many jobs a process runs at once: outbound work waits on Bitbucket
/// (tens of milliseconds a call), so one at a time would cap a process at
/// a few dozen statuses a second.
pub const JOB_WORKERS: usize = 16;

/// The job workers every process runs: each takes due jobs one at a time,
/// and when there are none (or the database is away) waits until jobs are
/// queued somewhere, or 5 seconds (a job may also fall due by its time).
pub async fn run_jobs(services: Services, stopped: tokio::sync::watch::Receiver<bool>) {
    // Futures of one task, not tasks: stopping the worker stops them all.
    futures::future::join_all((0..JOB_WORKERS).map(|_| work(services.clone(), stopped.clone()))).await;
}

/// Takes jobs until told to stop; a job under way is finished first.
async fn work(services: Services, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut queued = services.jobs.subscribe();
    while !*stopped.borrow() {
        queued.borrow_and_update();
        match maintenance::run_one(&services).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "the job worker cannot reach the database"),
        }
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_secs(5), queued.changed()) => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: not ready any more; finishing the requests and jobs under way");
}
