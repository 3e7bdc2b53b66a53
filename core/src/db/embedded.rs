//! The embedded PostgreSQL cluster used when `DATABASE_URL` is unset.
//!
//! The cluster lives in `{data_dir}/postgres`, listens on a Unix socket in
//! `{data_dir}/run` only (no TCP port to collide with), and runs as an
//! unprivileged user when Bitgate runs as root, because initdb and postgres
//! refuse root. Several Bitgate processes (a server and a CLI command, say)
//! share one cluster: a lock file serialises start and stop, the first one
//! starts it, and whoever leaves last stops it.

use std::{
    fs::File,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use nix::unistd::{Gid, Uid, User};

/// The database Bitgate creates inside its cluster.
pub const DATABASE_NAME: &str = "bitgate";
/// The cluster's superuser (trust authentication over a socket only the
/// cluster's owner can reach).
pub const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "DATABASE_URL is not set and no PostgreSQL server binaries (initdb, pg_ctl) were found: install PostgreSQL (on Debian: apt-get install postgresql) or set DATABASE_URL to a PostgreSQL server."
    )]
    NoBinaries,
    #[error("the embedded PostgreSQL cluster cannot use {path}: {why}")]
    DataDir { path: PathBuf, why: String },
    #[error("the embedded PostgreSQL cluster failed to {step} (see {log}): {why}")]
    Command { step: &'static str, log: PathBuf, why: String },
}

/// Who runs the cluster's processes.
#[derive(Debug, Clone)]
struct Owner {
    /// `None`: the current user (who is not root).
    switch_to: Option<(Uid, Gid, String)>,
}

impl Owner {
    fn detect() -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(Self { switch_to: None });
        }
        for name in ["postgres", "nobody"] {
            if let Ok(Some(user)) = User::from_name(name) {
                return Ok(Self { switch_to: Some((user.uid, user.gid, name.to_owned())) });
            }
        }
        Err("Bitgate runs as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL".into())
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir("/").stdin(Stdio::null());
        if let Some((uid, gid, _)) = &self.switch_to {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
    }

    fn chown(&self, path: &Path) -> Result<(), String> {
        if let Some((uid, gid, _)) = &self.switch_to {
            nix::unistd::chown(path, Some(*uid), Some(*gid)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A running embedded cluster.
#[derive(Debug)]
pub struct EmbeddedCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    owner: Owner,
}

impl EmbeddedCluster {
    fn cluster_dir(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }

    /// Where its server's programs are (pg_dump and pg_restore beside them).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The directory holding the cluster's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    fn log_file(&self) -> PathBuf {
        self.data_dir.join("postgres.log")
    }

    fn lock(&self) -> Result<File, EmbeddedError> {
        let path = self.data_dir.join("cluster.lock");
        let file = File::create(&path).map_err(|e| self.data_dir_error(e))?;
        file.lock().map_err(|e| self.data_dir_error(e))?;
        Ok(file)
    }

    fn data_dir_error(&self, why: impl ToString) -> EmbeddedError {
        EmbeddedError::DataDir { path: self.data_dir.clone(), why: why.to_string() }
    }

    /// Finds the binaries, creates the cluster on first use, and starts it
    /// unless another process already has. Blocking: call it on a blocking thread.
    pub fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let bin_dir = find_binaries().ok_or(EmbeddedError::NoBinaries)?;
        let data_dir_error = |why: String| EmbeddedError::DataDir { path: data_dir.to_owned(), why };
        std::fs::create_dir_all(data_dir).map_err(|e| data_dir_error(e.to_string()))?;
        let data_dir = data_dir.canonicalize().map_err(|e| data_dir_error(e.to_string()))?;
        let owner = Owner::detect().map_err(data_dir_error)?;
        let cluster = Self { bin_dir, data_dir, owner };

        let socket = cluster.socket_dir().join(".s.PGSQL.5432");
        if socket.as_os_str().len() > 100 {
            return Err(cluster
                .data_dir_error("its path is too long for a Unix socket; set BITGATE_DATA_DIR to a shorter path"));
        }

        let _lock = cluster.lock()?;
        cluster.prepare_directories()?;
        if !cluster.cluster_dir().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if !cluster.is_running()? {
            cluster.remove_stale_pid_file();
            cluster.pg_ctl("start", &["-l", &cluster.log_file().to_string_lossy(), "-t", "60"])?;
        }
        Ok(cluster)
    }

    fn prepare_directories(&self) -> Result<(), EmbeddedError> {
        if self.owner.switch_to.is_some() {
            // The cluster's owner must be able to traverse the data directory
            // (but not list or read it: the secret key file stays private).
            let mut permissions = std::fs::metadata(&self.data_dir).map_err(|e| self.data_dir_error(e))?.permissions();
            permissions.set_mode(permissions.mode() | 0o111);
            std::fs::set_permissions(&self.data_dir, permissions).map_err(|e| self.data_dir_error(e))?;
            if let Some((_, _, name)) = &self.owner.switch_to {
                for ancestor in self.data_dir.ancestors().skip(1) {
                    let mode = std::fs::metadata(ancestor).map(|m| m.permissions().mode()).unwrap_or(0);
                    if mode & 0o001 == 0 {
                        return Err(self.data_dir_error(format!(
                            "PostgreSQL runs as the user `{name}`, who cannot enter {}; set BITGATE_DATA_DIR to a directory outside it (for example under /var/tmp) or allow it with chmod o+x",
                            ancestor.display()
                        )));
                    }
                }
            }
        }
        for dir in [self.socket_dir(), self.cluster_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| self.data_dir_error(e))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| self.data_dir_error(e))?;
            self.owner.chown(&dir).map_err(|e| self.data_dir_error(e))?;
        }
        let log = self.log_file();
        if !log.exists() {
            File::create(&log).map_err(|e| self.data_dir_error(e))?;
        }
        self.owner.chown(&log).map_err(|e| self.data_dir_error(e))?;
        Ok(())
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        tracing::info!(dir = %self.cluster_dir().display(), "creating the embedded PostgreSQL cluster");
        // initdb wants an empty directory: clear what an interrupted run left.
        let cluster_dir = self.cluster_dir();
        for entry in std::fs::read_dir(&cluster_dir).map_err(|e| self.data_dir_error(e))?.flatten() {
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(|e| self.data_dir_error(e))?;
        }
        let output = self
            .owner
            .command(&self.bin_dir.join("initdb"))
            .args(["-D"])
            .arg(&cluster_dir)
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-instructions"])
            .output()
            .map_err(|e| self.command_error("run initdb", e))?;
        if !output.status.success() {
            return Err(self.command_error("run initdb", String::from_utf8_lossy(&output.stderr).trim()));
        }
        let settings = format!(
            "\n# Written by Bitgate: a socket in the data directory, no TCP.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             unix_socket_permissions = 0700\n\
             shared_buffers = 32MB\n\
             max_connections = 200\n",
            self.socket_dir().display().to_string().replace('\'', "''")
        );
        let conf = cluster_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| self.data_dir_error(e))?;
        text.push_str(&settings);
        std::fs::write(&conf, text).map_err(|e| self.data_dir_error(e))?;
        Ok(())
    }

    /// Whether a postmaster runs on this cluster now.
    fn is_running(&self) -> Result<bool, EmbeddedError> {
        let status = self
            .owner
            .command(&self.bin_dir.join("pg_ctl"))
            .args(["status", "-D"])
            .arg(self.cluster_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| self.command_error("check its status", e))?;
        // pg_ctl status: 0 running, 3 not running, 4 no cluster.
        Ok(status.success())
    }

    /// After a crash `postmaster.pid` stays behind; if its pid now belongs to
    /// another process, postgres would refuse to start, so it goes.
    fn remove_stale_pid_file(&self) {
        let pid_file = self.cluster_dir().join("postmaster.pid");
        let Ok(contents) = std::fs::read_to_string(&pid_file) else { return };
        let alive_postgres = contents
            .lines()
            .next()
            .and_then(|pid| pid.trim().parse::<i32>().ok())
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
            .is_some_and(|comm| comm.trim() == "postgres");
        if !alive_postgres {
            tracing::warn!(file = %pid_file.display(), "removing the stale pid file of a cluster that did not stop cleanly");
            let _ = std::fs::remove_file(&pid_file);
        }
    }

    fn pg_ctl(&self, action: &'static str, extra: &[&str]) -> Result<(), EmbeddedError> {
        let output = self
            .owner
            .command(&self.bin_dir.join("pg_ctl"))
            .arg(action)
            .arg("-D")
            .arg(self.cluster_dir())
            .arg("-w")
            .args(extra)
            // pg_ctl start leaves postgres running: it must not hold our pipes.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| self.command_error(action, e))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(self.command_error(action, String::from_utf8_lossy(&output.stderr).trim()))
        }
    }

    fn command_error(&self, step: &'static str, why: impl ToString) -> EmbeddedError {
        EmbeddedError::Command { step, log: self.log_file(), why: why.to_string() }
    }

    /// Stops the cluster. Blocking. The caller checks first that nobody else
    /// uses it; the lock keeps a process from starting it meanwhile.
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let _lock = self.lock()?;
        if self.is_running()? {
            self.pg_ctl("stop", &["-m", "fast", "-t", "30"])?;
        }
        Ok(())
    }
}

/// The directory of `initdb` and `pg_ctl`: `BITGATE_POSTGRES_BINDIR` if set,
/// otherwise `PATH` first, then the usual
/// places of Debian, Red Hat and Homebrew packages (newest version first).
pub(crate) fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    // An explicit place wins, and is the only place looked at.
    if let Some(dir) = std::env::var_os("BITGATE_POSTGRES_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return has_both(&dir).then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| has_both(dir)) {
            return Some(dir);
        }
    }
    // (directory, prefix of its versioned entries): /usr/lib/postgresql/15/bin, /usr/pgsql-16/bin, ...
    let places = [("/usr/lib/postgresql", ""), ("/usr", "pgsql-"), ("/opt/homebrew/opt", "postgresql@")];
    let mut versioned: Vec<(u32, PathBuf)> = places
        .iter()
        .flat_map(|(parent, stem)| {
            std::fs::read_dir(parent)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let version = name.strip_prefix(stem)?.split('.').next()?.parse::<u32>().ok()?;
                    Some((version, entry.path().join("bin")))
                })
                .collect::<Vec<_>>()
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versioned.sort();
    versioned.pop().map(|(_, dir)| dir).or_else(|| {
        [PathBuf::from("/usr/local/pgsql/bin"), PathBuf::from("/usr/local/bin")].into_iter().find(|d| has_both(d))
    })
}
