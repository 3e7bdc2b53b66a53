//! The PostgreSQL connection: the server named by `DATABASE_URL`, or the
//! embedded cluster in the data directory.

pub mod backup;
pub mod embedded;

use std::{str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Executor, PgPool,
};

use crate::config::Config;
pub use embedded::{EmbeddedCluster, EmbeddedError};

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("DATABASE_URL is invalid: {0}.")]
    InvalidUrl(String),
    #[error(
        "The database could not be reached ({0}); check that PostgreSQL is running and that DATABASE_URL points to it."
    )]
    Unreachable(String),
    #[error("{0}")]
    Embedded(#[from] EmbeddedError),
    #[error("The database migrations failed: {0}.")]
    Migration(String),
}

/// The pool, and the embedded cluster behind it when there is one.
#[derive(Debug)]
pub struct Database {
    pub pool: PgPool,
    cluster: Option<EmbeddedCluster>,
    application_name: String,
}

/// How long a request waits for a connection before it answers 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Database {
    /// Connects, starting the embedded cluster when `DATABASE_URL` is unset.
    /// Fails when the server cannot be reached at all.
    pub async fn connect(config: &Config) -> Result<Self, DatabaseError> {
        let application_name = format!("bitgate-{}", std::process::id());
        let (options, cluster) = match &config.database_url {
            Some(url) => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| DatabaseError::InvalidUrl(redact_url_error(&e.to_string())))?;
                (options, None)
            }
            None => {
                let data_dir = config.data_dir.clone();
                let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&data_dir))
                    .await
                    .map_err(|e| DatabaseError::Unreachable(e.to_string()))??;
                let options = PgConnectOptions::new()
                    .socket(cluster.socket_dir())
                    .username(embedded::SUPERUSER)
                    .database("postgres");
                create_database_if_missing(&options, embedded::DATABASE_NAME).await?;
                (options.database(embedded::DATABASE_NAME), Some(cluster))
            }
        };
        let options = options.application_name(&application_name).log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        // Fail at start-up rather than on the first request.
        pool.acquire().await.map_err(|e| DatabaseError::Unreachable(e.to_string()))?;
        Ok(Self { pool, cluster, application_name })
    }

    /// Whether this is the embedded cluster.
    pub fn is_embedded(&self) -> bool {
        self.cluster.is_some()
    }

    /// Applies the migrations in `migrations/` that have not run yet.
    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        migrate(&self.pool).await
    }

    /// Closes the pool; stops the embedded cluster when no other Bitgate
    /// process is connected to it.
    pub async fn close(self) {
        let mut others = match &self.cluster {
            Some(_) => self.other_clients().await,
            None => 0,
        };
        // A process that has just exited (a CLI command run a moment ago)
        // may still be listed while its backends end: half a second for
        // them, paid only while another process is connected.
        for _ in 0..10 {
            if others == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            others = self.other_clients().await;
        }
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            if others > 0 {
                tracing::info!(others, "leaving the embedded PostgreSQL cluster running for other Bitgate processes");
                return;
            }
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => tracing::info!("stopped the embedded PostgreSQL cluster"),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not stop the embedded PostgreSQL cluster"),
                Err(e) => tracing::warn!(error = %e, "could not stop the embedded PostgreSQL cluster"),
            }
        }
    }

    /// How many clients of other processes are connected (1 when unknown:
    /// the cluster is then left running, the safe side).
    async fn other_clients(&self) -> i64 {
        sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM pg_stat_activity
                   WHERE backend_type = 'client backend' AND application_name <> $1"#,
            self.application_name
        )
        .fetch_one(&self.pool)
        .await
        .unwrap_or(1)
    }
}

/// Applies the migrations in `migrations/` that have not run yet. Several
/// processes may call it at once: sqlx serialises them with an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), DatabaseError> {
    sqlx::migrate!("../migrations").run(pool).await.map_err(|e| DatabaseError::Migration(e.to_string()))
}

/// Whether an error means the database could not be reached (answer 503,
/// and nothing was done), rather than a bug or a refused statement (500).
pub fn is_outage(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_))
        || error.as_database_error().and_then(|e| e.code()).is_some_and(|code| is_outage_code(&code))
}

/// What PostgreSQL says when it is going away or not there yet: a
/// connection exception (class 08), a shutdown or restart (57P01 admin,
/// 57P02 crash, 57P03 starting up) or no connection slot left (53300).
/// A restart sends 57P01 to every query in flight: the caller should try
/// again (503), not read it as Bitgate's fault (500).
fn is_outage_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Whether PostgreSQL refused text it cannot store: the NUL character, in a
/// `text` value (22021) or escaped in `jsonb` (22P05). It comes from the
/// request, so it is the caller's bad input, not Bitgate's failure.
pub fn is_unstorable_text(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "22021" || code == "22P05")
}

/// What a request whose text cannot be stored is told.
pub const UNSTORABLE_TEXT: &str = "Text may not contain the NUL character (U+0000): remove it and send again.";

/// Whether a transaction failed only because of concurrent ones (a
/// deadlock or a serialization failure): running it again may succeed.
pub fn is_retryable(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "40P01" || code == "40001")
}

/// Whether the database answers now (for `/readyz`).
pub async fn is_reachable(pool: &PgPool) -> bool {
    tokio::time::timeout(ACQUIRE_TIMEOUT, pool.execute("SELECT 1")).await.is_ok_and(|r| r.is_ok())
}

async fn create_database_if_missing(admin: &PgConnectOptions, name: &str) -> Result<(), DatabaseError> {
    let unreachable = |e: sqlx::Error| DatabaseError::Unreachable(e.to_string());
    let mut connection = admin.connect().await.map_err(unreachable)?;
    let exists: bool =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, name)
            .fetch_one(&mut connection)
            .await
            .map_err(unreachable)?;
    if !exists {
        // The name is a constant of ours, not input: quoting it is enough.
        let created = connection.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await;
        // Another process may have created it meanwhile.
        if let Err(e) = created {
            if e.as_database_error().and_then(|d| d.code()).as_deref() != Some("42P04") {
                return Err(unreachable(e));
            }
        }
    }
    Ok(())
}

/// sqlx repeats the URL in some errors: keep a password out of the message.
fn redact_url_error(message: &str) -> String {
    match message.find("://") {
        Some(_) => "it is not a postgres:// URL that can be parsed".to_owned(),
        None => message.to_owned(),
    }
}
