//! `bitgate backup FILE` and `bitgate restore FILE`: PostgreSQL's own
//! `pg_dump` and `pg_restore` (the custom format), run against the database
//! Bitgate uses: the embedded cluster (over its socket, as its superuser,
//! with the cluster's own binaries) or `DATABASE_URL`. A backup holds the
//! secrets sealed: the keys of `BITGATE_SECRET_KEYS` are needed to use it
//! and are not in it.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use tokio::process::Command;

use super::{embedded, Database};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Tool(String),
    #[error(
        "The database already holds users or integrations: restoring would replace them. Pass --force to replace them with the backup."
    )]
    NotEmpty,
    #[error("{0} is not a file.")]
    NoFile(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where the tools are and how they reach the database.
struct Target {
    bin_dir: Option<PathBuf>,
    connection: Vec<OsString>,
}

fn target(database: &Database, config: &Config) -> Target {
    match (&database.cluster, &config.database_url) {
        (Some(cluster), _) => Target {
            bin_dir: Some(cluster.bin_dir().to_owned()),
            connection: vec![
                "--host".into(),
                cluster.socket_dir().into(),
                "--username".into(),
                embedded::SUPERUSER.into(),
                "--dbname".into(),
                embedded::DATABASE_NAME.into(),
            ],
        },
        // The tools take the URL as it is (a password in it included).
        (None, url) => Target {
            bin_dir: embedded::find_binaries(),
            connection: vec!["--dbname".into(), url.clone().unwrap_or_default().into()],
        },
    }
}

impl Target {
    /// The tool beside the server's binaries when found there, else on `PATH`.
    fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.as_ref().map(|dir| dir.join(name)).filter(|path| path.is_file()).unwrap_or_else(|| name.into())
    }
}

/// Writes the database to `file`.
pub async fn backup(database: &Database, config: &Config, file: &Path) -> Result<(), BackupError> {
    let target = target(database, config);
    let mut arguments: Vec<OsString> =
        vec!["--format=custom".into(), "--no-owner".into(), "--no-privileges".into(), "--file".into(), file.into()];
    arguments.extend(target.connection.iter().cloned());
    run(&target.tool("pg_dump"), &arguments).await
}

/// Replaces the database's contents with the backup in `file`, in one
/// transaction (a failure leaves it as it was): the database is emptied and
/// the backup's statements run, through `psql --single-transaction`, so
/// that nothing of a newer schema is left beside the backup's. Refused
/// when the database holds users or integrations, unless `force`. The next
/// start migrates it, if the backup is older than this Bitgate.
pub async fn restore(database: &Database, config: &Config, file: &Path, force: bool) -> Result<(), BackupError> {
    if !file.is_file() {
        return Err(BackupError::NoFile(file.display().to_string()));
    }
    if holds_data(&database.pool).await? && !force {
        return Err(BackupError::NotEmpty);
    }
    let target = target(database, config);
    // The backup as SQL (checked whole before anything is changed)...
    let sql = output(
        &target.tool("pg_restore"),
        &["--no-owner".into(), "--no-privileges".into(), "--file=-".into(), file.into()],
    )
    .await?;
    // ...run after emptying the schema, all in one transaction, with the
    // feed's positions moved on.
    let mut script = NOTE_THE_LIVE_FEED_POSITION.as_bytes().to_vec();
    script.extend_from_slice(EMPTY_THE_DATABASE.as_bytes());
    script.extend_from_slice(&sql);
    script.extend_from_slice(RAISE_THE_FEED_OFFSET.as_bytes());
    let mut arguments: Vec<OsString> =
        ["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-"]
            .into_iter()
            .map(OsString::from)
            .collect();
    arguments.extend(target.connection.iter().cloned());
    run_with_input(&target.tool("psql"), &arguments, script).await
}

/// Drops every schema of the database (Bitgate's tables, the session
/// store's), leaving an empty `public` as a new database has.
const EMPTY_THE_DATABASE: &str = r#"DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', name);
    END LOOP;
END $$;
CREATE SCHEMA public;
"#;

/// Where the feed of the database being replaced stands, if it has one
/// (a restore over a database, `--force`): kept for
/// [`RAISE_THE_FEED_OFFSET`], in a setting of the restore's transaction.
const NOTE_THE_LIVE_FEED_POSITION: &str = r#"
DO $$
BEGIN
    IF to_regprocedure('public.feed_position()') IS NOT NULL THEN
        PERFORM set_config('bitgate.live_feed_position', public.feed_position()::text, true);
    END IF;
END $$;
"#;

/// Raises the events feed's offset (see the migration
/// `feed_positions_survive_a_restore` and [`crate::platform::feed`]) so
/// that every position given from now on is above every position given
/// before, by the backed-up installation or by the database replaced,
/// before or after the backup was made; the new cluster's transaction ids
/// may be lower than theirs, and the platform's cursor comes from them.
/// Positions start at the highest of:
/// - the backup's offset plus 2^40: its installation's transaction ids
///   are below 2^40 (a trillion);
/// - the replaced database's position (a restore over it);
/// - the restore's time in seconds times 2^31: positions grow by one per
///   transaction, and no installation runs 2^31 a second, so a later
///   restore of the same backup, onto any cluster, starts above what this
///   one gave (with clocks that agree; and unless the first term is the
///   highest for both, which takes a backup made less than 2^40 / 2^31 =
///   512 s after its own installation was restored).
///
/// The offset is then that start less this cluster's transaction id. The
/// plans that folded the old offset in go with the schema the restore
/// drops. Created when the backup is older than the offset: that
/// migration keeps it.
const RAISE_THE_FEED_OFFSET: &str = r#"
DO $$
DECLARE
    backed_up bigint := 0;
    replaced bigint := coalesce(nullif(current_setting('bitgate.live_feed_position', true), '')::bigint, 0);
    start bigint;
BEGIN
    IF to_regprocedure('public.feed_offset()') IS NOT NULL THEN
        EXECUTE 'SELECT public.feed_offset()' INTO backed_up;
    END IF;
    start := greatest(backed_up + (1::bigint << 40), replaced + 1,
                      floor(extract(epoch FROM clock_timestamp()))::bigint << 31);
    EXECUTE format('CREATE OR REPLACE FUNCTION public.feed_offset() RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
                   format('SELECT %s::bigint', start - pg_current_xact_id()::text::bigint));
END $$;
"#;

/// Whether Bitgate's tables hold users or integrations (a database never
/// migrated holds none).
async fn holds_data(pool: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
    let migrated: bool = sqlx::query_scalar(
        "SELECT to_regclass('public.users') IS NOT NULL AND to_regclass('public.integrations') IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    if !migrated {
        return Ok(false);
    }
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM integrations)")
        .fetch_one(pool)
        .await
}

async fn run(tool: &Path, arguments: &[OsString]) -> Result<(), BackupError> {
    output(tool, arguments).await.map(|_| ())
}

/// Runs `tool` with `input` on its standard input.
async fn run_with_input(tool: &Path, arguments: &[OsString], input: Vec<u8>) -> Result<(), BackupError> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(tool)
        .args(arguments)
        // Notices (each table the schema's drop takes along) are not news.
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| not_run(tool, &e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that stops early closes its input: its own message says why.
        let _ = stdin.write_all(&input).await;
    }
    let finished = child.wait_with_output().await.map_err(|e| not_run(tool, &e))?;
    checked(tool, finished).map(|_| ())
}

/// Runs `tool`; its standard output.
async fn output(tool: &Path, arguments: &[OsString]) -> Result<Vec<u8>, BackupError> {
    let finished = Command::new(tool)
        .args(arguments)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| not_run(tool, &e))?;
    checked(tool, finished)
}

fn name_of(tool: &Path) -> String {
    tool.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn not_run(tool: &Path, error: &std::io::Error) -> BackupError {
    BackupError::Tool(format!(
        "{} could not be run ({error}): install PostgreSQL's client programs (on Debian: apt-get install postgresql-client).",
        name_of(tool)
    ))
}

/// The output of a tool that succeeded; its first line of complaint otherwise.
fn checked(tool: &Path, finished: std::process::Output) -> Result<Vec<u8>, BackupError> {
    if finished.status.success() {
        return Ok(finished.stdout);
    }
    let said = String::from_utf8_lossy(&finished.stderr);
    let first = said
        .lines()
        .find(|line| line.contains("ERROR") || line.contains("FATAL"))
        .or_else(|| said.lines().find(|line| !line.trim().is_empty()))
        .unwrap_or("no message");
    Err(BackupError::Tool(format!("{} failed: {}", name_of(tool), first.trim())))
}
