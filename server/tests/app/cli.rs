//! The `bitgate` binary: configuration errors, the CLI's user commands, and
//! the embedded PostgreSQL cluster's whole life.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::{fresh_database, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_bitgate");

/// The binary with a clean environment plus `vars`.
pub fn bitgate(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.env_clear();
    for name in ["PATH", "HOME", "LANG"] {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    command.envs(vars.iter().copied());
    command.stdin(Stdio::null());
    command
}

pub fn run(command: &mut Command, stdin: Option<&str>) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

/// One sentence: a single line that ends with a full stop.
pub fn assert_one_sentence(output: &Output, contains: &str) {
    assert!(!output.status.success());
    let message = stderr(output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.ends_with('.'), "{message}");
    assert!(message.contains(contains), "{contains:?} not in {message:?}");
}

#[test]
fn an_invalid_configuration_value_stops_start_up_naming_the_variable() {
    let output = run(&mut bitgate(&[("BITGATE_SESSION_IDLE", "soon")]), None);
    assert_eq!(output.status.code(), Some(2));
    assert_one_sentence(&output, "BITGATE_SESSION_IDLE");

    let output = run(bitgate(&[("BITGATE_MODE", "production")]).arg("migrate"), None);
    assert_one_sentence(&output, "BITGATE_SECRET_KEYS");
}

#[test]
fn an_unreachable_database_stops_start_up() {
    let output = run(bitgate(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]).arg("serve"), None);
    assert_one_sentence(&output, "The database could not be reached");
}

#[test]
fn without_postgresql_binaries_it_says_what_to_install() {
    let empty = TempDir::new("bitgate-nobin-");
    let data = TempDir::new("bitgate-data-");
    let output = run(
        bitgate(&[
            ("BITGATE_POSTGRES_BINDIR", &empty.path().display().to_string()),
            ("BITGATE_DATA_DIR", &data.path().display().to_string()),
        ])
        .arg("serve"),
        None,
    );
    assert_one_sentence(&output, "install PostgreSQL");
    assert!(stderr(&output).contains("DATABASE_URL"));
}

#[tokio::test]
async fn user_create_and_disable() {
    let url = fresh_database().await;
    let env = [("DATABASE_URL", url.as_str())];
    let create = |extra: &[&str], stdin: Option<&str>| {
        let mut command = bitgate(&env);
        command.args(["user", "create"]).args(extra);
        run(&mut command, stdin)
    };

    let output = create(
        &["--email", "Ada@Example.com", "--role", "admin", "--password-stdin"],
        Some("a long enough password\n"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "prints the new user's id: {id}");

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (email, name, role): (String, String, String) = sqlx::query_as(
        "SELECT u.email, u.name, m.role FROM users u JOIN memberships m ON m.user_id = u.id JOIN spaces s ON s.id = m.space_id WHERE s.name = 'root'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((email.as_str(), name.as_str(), role.as_str()), ("ada@example.com", "ada", "admin"));
    let actor: String = sqlx::query_scalar("SELECT actor_kind FROM audit_events WHERE action = 'user.created'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(actor, "cli");

    let again = create(&["--email", "ada@example.com", "--password-stdin"], Some("a long enough password\n"));
    assert_one_sentence(&again, "exists already");
    let short = create(&["--email", "bob@example.com", "--password-stdin"], Some("short\n"));
    assert_one_sentence(&short, "at least 12 characters");
    let no_space = create(
        &["--email", "bob@example.com", "--role", "read", "--space", "nowhere", "--password-stdin"],
        Some("a long enough password\n"),
    );
    assert_one_sentence(&no_space, "--space");
    let no_stdin = create(&["--email", "bob@example.com"], None);
    assert_one_sentence(&no_stdin, "--password-stdin");
    let bad_role = create(
        &["--email", "bob@example.com", "--role", "owner", "--password-stdin"],
        Some("a long enough password\n"),
    );
    assert_one_sentence(&bad_role, "--role");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    assert_eq!(users, 1, "nothing was created by the refused commands");

    let ada = uuid::Uuid::parse_str(&id).unwrap();
    bitgate_core::api_tokens::create(&pool, ada, "ci", None).await.unwrap();
    let disable = run(bitgate(&env).args(["user", "disable", "--email", "ada@example.com"]), None);
    assert!(disable.status.success(), "{}", stderr(&disable));
    let disabled: bool =
        sqlx::query_scalar("SELECT disabled_at IS NOT NULL FROM users").fetch_one(&pool).await.unwrap();
    assert!(disabled);
    let revoked: (bool, String) = sqlx::query_as(
        "SELECT t.revoked_at IS NOT NULL, e.actor_kind FROM api_tokens t JOIN audit_events e ON e.target_id = t.id::text
         WHERE e.action = 'token.revoked'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(revoked, (true, "cli".to_owned()), "disabling revokes the user's tokens, audited");
    let unknown = run(bitgate(&env).args(["user", "disable", "--email", "nobody@example.com"]), None);
    assert_one_sentence(&unknown, "No user has the email");
}

fn is_running(data_dir: &Path) -> bool {
    data_dir.join("postgres/postmaster.pid").exists()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_embedded_cluster_starts_is_shared_and_stops() {
    // Under /tmp: the cluster's user must be able to enter every parent.
    let data = TempDir::new("bitgate-embedded-");
    let data_dir = data.path().display().to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://{listen}");
    let env = [
        ("BITGATE_DATA_DIR", data_dir.as_str()),
        ("BITGATE_LISTEN", listen.as_str()),
        ("BITGATE_PUBLIC_URL", public.as_str()),
    ];

    // A command on its own creates the cluster, migrates, and stops it again.
    let migrate = run(bitgate(&env).arg("migrate"), None);
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    assert!(data.path().join("postgres/PG_VERSION").exists());
    assert!(!is_running(data.path()), "stopped when the command is done");

    // A crash leaves a pid file whose pid now belongs to another process.
    std::fs::write(data.path().join("postgres/postmaster.pid"), format!("{}\n", std::process::id())).unwrap();

    let mut server = bitgate(&env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{public}/readyz")).send().await {
            if response.status() == 200 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the server did not become ready");
        assert!(server.try_wait().unwrap().is_none(), "the server exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let setup_url = std::fs::read_to_string(data.path().join("setup-url")).unwrap();
    assert!(setup_url.starts_with(&format!("{public}/setup?token=")));
    let page = client.get(&setup_url).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // A CLI command beside the server shares its cluster and leaves it running.
    let create = run(
        bitgate(&env).args(["user", "create", "--email", "ops@example.com", "--password-stdin"]),
        Some("a long enough password\n"),
    );
    assert!(create.status.success(), "{}", stderr(&create));
    assert!(is_running(data.path()));
    assert_eq!(client.get(format!("{public}/readyz")).send().await.unwrap().status(), 200);

    // SIGTERM: a graceful stop that takes the cluster down with it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let output = tokio::task::spawn_blocking(move || server.wait_with_output().unwrap()).await.unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    // Standard output is a pipe here, as under a service manager: the link
    // stays out of it, and the file holding it is named.
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!printed.contains("setup?token="), "{printed}");
    assert!(printed.contains("setup-url"), "{printed}");
    assert!(!is_running(data.path()), "the cluster stops with the last process using it");

    // And the next run reuses it, with the user created before.
    let again = run(bitgate(&env).args(["user", "disable", "--email", "ops@example.com"]), None);
    assert!(again.status.success(), "{}", stderr(&again));
}

#[tokio::test]
async fn token_create_prints_the_token_alone() {
    let url = fresh_database().await;
    let env = [("DATABASE_URL", url.as_str())];
    let user = run(
        bitgate(&env).args(["user", "create", "--email", "ci@example.com", "--password-stdin"]),
        Some("a long enough password\n"),
    );
    assert!(user.status.success(), "{}", stderr(&user));

    let output = run(
        bitgate(&env).args(["token", "create", "--email", "ci@example.com", "--name", "pipeline", "--expires", "30d"]),
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let secret = stdout.trim();
    assert!(secret.starts_with("bgt_"));

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (user, _) =
        bitgate_core::api_tokens::authenticate(&pool, secret).await.unwrap().expect("the printed token works");
    assert_eq!(user.email, "ci@example.com");
    let days: f64 = sqlx::query_scalar("SELECT extract(epoch FROM expires_at - now())::float8 / 86400 FROM api_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!((29.9..=30.0).contains(&days), "{days}");
    let actor: String = sqlx::query_scalar("SELECT actor_kind FROM audit_events WHERE action = 'token.created'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(actor, "cli");

    let unknown = run(bitgate(&env).args(["token", "create", "--email", "nobody@example.com", "--name", "x"]), None);
    assert_one_sentence(&unknown, "No enabled user");
    let bad_expiry = run(
        bitgate(&env).args(["token", "create", "--email", "ci@example.com", "--name", "x", "--expires", "soon"]),
        None,
    );
    assert_one_sentence(&bad_expiry, "--expires");
    let blank = run(bitgate(&env).args(["token", "create", "--email", "ci@example.com", "--name", " "]), None);
    assert_one_sentence(&blank, "--name");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn rekey_reseals_every_secret_so_the_old_key_can_go() {
    use bitgate_core::{integrations, secrets::Keyring};
    let database_url = fresh_database().await;
    let data = TempDir::new("bitgate-rekey-");
    let data_dir = data.path().display().to_string();
    let (old, new) = (Keyring::generate_entry("old"), Keyring::generate_entry("new"));
    let with_keys = |keys: &str| {
        let mut command = bitgate(&[("DATABASE_URL", database_url.as_str()), ("BITGATE_DATA_DIR", data_dir.as_str())]);
        command.env("BITGATE_SECRET_KEYS", keys);
        command
    };
    let output = run(with_keys(&old).arg("migrate"), None);
    assert!(output.status.success(), "{}", stderr(&output));

    // Two integrations sealed under the old key: the default, and one of root.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let old_ring = Keyring::parse(&old).unwrap();
    let root: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM spaces WHERE parent_id IS NULL").fetch_one(&pool).await.unwrap();
    let mut ids = Vec::new();
    for (name, space_id) in [("one", None), ("two", Some(root))] {
        ids.push(stored_datacenter(&pool, &old_ring, name, space_id).await.id);
    }

    // Rekey with the new key first, the old one still there to open with.
    let both = format!("{new},{old}");
    let output = run(with_keys(&both).args(["secrets", "rekey"]), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(said.contains("4 secrets examined, 4 re-encrypted under key \"new\""), "{said}");

    // The old key can go: everything opens with the new one alone.
    let new_ring = Keyring::parse(&new).unwrap();
    for (id, name) in ids.iter().zip(["one", "two"]) {
        let token = integrations::datacenter_token(&pool, &new_ring, *id).await.unwrap().unwrap();
        assert_eq!(token.expose(), &format!("BBDC-token-of-{name}"));
        assert!(integrations::webhook_secret(&pool, &new_ring, *id).await.unwrap().is_some());
        assert!(integrations::datacenter_token(&pool, &old_ring, *id).await.is_err(), "the old key opens nothing now");
    }
    let output = run(with_keys(&both).args(["secrets", "rekey"]), None);
    assert!(String::from_utf8_lossy(&output.stdout).contains("4 secrets examined, 0 re-encrypted"));

    // Without the key a secret was sealed with, rekey refuses and changes nothing.
    let output = run(with_keys(&Keyring::generate_entry("other")).args(["secrets", "rekey"]), None);
    assert_one_sentence(&output, "Nothing was changed");
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events").fetch_all(&pool).await.unwrap();
    assert!(actions.contains(&"secrets.rekeyed".to_owned()));
}

#[tokio::test]
async fn integrations_export_writes_yaml_without_secrets_and_schema_describes_it() {
    use bitgate_core::{as_code::file, secrets::Keyring, spaces};
    let database_url = fresh_database().await;
    let data = TempDir::new("bitgate-export-");
    let data_dir = data.path().display().to_string();
    let keys = Keyring::generate_entry("k");
    let cli = || {
        let mut command = bitgate(&[("DATABASE_URL", database_url.as_str()), ("BITGATE_DATA_DIR", data_dir.as_str())]);
        command.env("BITGATE_SECRET_KEYS", &keys);
        command
    };
    let output = run(cli().arg("migrate"), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let ring = Keyring::parse(&keys).unwrap();
    let root: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM spaces WHERE parent_id IS NULL").fetch_one(&pool).await.unwrap();
    let team = spaces::create(&pool, "team", root, "").await.unwrap();
    for (name, space_id) in [("zeta-default", None), ("alpha-team", Some(team.id))] {
        stored_datacenter(&pool, &ring, name, space_id).await;
    }

    let output = run(cli().args(["integrations", "export"]), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert!(!yaml.contains("BBDC-token-of"), "no secret is exported:\n{yaml}");
    let entries = file::parse(&yaml).unwrap_or_else(|problems| panic!("{problems:?}\n{yaml}"));
    let names: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.scope.clone())).collect();
    assert_eq!(
        names,
        [("alpha-team", file::Scope::Space("team".into())), ("zeta-default", file::Scope::Default)],
        "sorted by name, with their scopes"
    );
    let file::Credentials::DataCenter { access_token, user_facing_url, .. } = &entries[0].credentials else {
        panic!("{yaml}")
    };
    assert_eq!((access_token, user_facing_url.as_deref()), (&None, Some("https://git.example.com")));
    assert!(yaml.contains("<fill in: the HTTP access token of jcitizen>"));

    // One space: its integrations only (the defaults are not a space's).
    let output = run(cli().args(["integrations", "export", "--space", "team"]), None);
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert!(yaml.contains("alpha-team") && !yaml.contains("zeta-default"), "{yaml}");
    assert_one_sentence(&run(cli().args(["integrations", "export", "--space", "nope"]), None), "--space");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE actor_kind = 'cli'").fetch_all(&pool).await.unwrap();
    assert_eq!(actions.iter().filter(|a| *a == "integrations.exported").count(), 2, "{actions:?}");

    let output = run(cli().args(["integrations", "schema"]), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(schema["$defs"]["entry"]["properties"]["datacenter"]["properties"]["access_token"].is_object());
}

/// What the import commands are tried on: the simulator, a migrated
/// database of their own with its `root` space, and the CLI pointed at both
/// (loopback allowed, a short timeout).
struct ImportWorld {
    simulator: bitbucket_simulator::Simulator,
    data: TempDir,
    pool: sqlx::PgPool,
    root: uuid::Uuid,
    cli: Box<dyn Fn() -> Command>,
}

impl ImportWorld {
    async fn start(prefix: &str) -> Self {
        let simulator = bitbucket_simulator::Simulator::start(
            bitbucket_simulator::DataCenter::sample(),
            bitbucket_simulator::Transport::Http,
        )
        .await
        .unwrap();
        let database_url = fresh_database().await;
        let data = TempDir::new(prefix);
        let data_dir = data.path().display().to_string();
        let keys = bitgate_core::secrets::Keyring::generate_entry("k");
        let url = database_url.clone();
        let cli = Box::new(move || {
            let mut command = bitgate(&[
                ("DATABASE_URL", url.as_str()),
                ("BITGATE_DATA_DIR", data_dir.as_str()),
                ("BITGATE_OUTBOUND_DENY", ""),
                ("BITGATE_OUTBOUND_TIMEOUT", "2s"),
            ]);
            command.env("BITGATE_SECRET_KEYS", &keys);
            command
        });
        assert!(run(cli().arg("migrate"), None).status.success());
        let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
        let root = sqlx::query_scalar("SELECT id FROM spaces WHERE parent_id IS NULL").fetch_one(&pool).await.unwrap();
        Self { simulator, data, pool, root, cli }
    }
}

// Multi-threaded: the simulator answers while the test waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_import_checks_everything_then_writes_all_or_nothing() {
    use bitbucket_simulator::datacenter::{DEMO_TOKEN, DEMO_USER};
    let ImportWorld { simulator, data, pool, root, cli } = ImportWorld::start("bitgate-import-").await;
    bitgate_core::spaces::create(&pool, "team", root, "").await.unwrap();
    let url = &simulator.url;
    let good = data.path().join("good.yaml");
    std::fs::write(
        &good,
        format!(
            "version: 1\nintegrations:\n\
             - {{name: dc-default, provider: bitbucket_datacenter, scope: default,\n   \
                datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n\
             - {{name: from-cds, type: bitbucketserver, url: {url}, auth: {{user: {DEMO_USER}, token: {DEMO_TOKEN}}}}}\n"
        ),
    )
    .unwrap();
    let good = good.display().to_string();
    let count =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM integrations").fetch_one(&pool).await.unwrap() };

    let output = run(cli().args(["integrations", "import", &good, "--dry-run", "--space", "team"]), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        said,
        "would create: dc-default, from-cds\nwould update: none\nunchanged: none\nDry run: nothing was written.\n"
    );
    assert_eq!(count().await, 0, "a dry run writes nothing");

    let output = run(cli().args(["integrations", "import", &good, "--space", "team"]), None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "created: dc-default, from-cds\nupdated: none\nunchanged: none\n"
    );
    let space: String = sqlx::query_scalar(
        "SELECT s.name FROM integrations i JOIN spaces s ON s.id = i.space_id WHERE i.name = 'from-cds'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(space, "team", "the CDS entry landed in --space");

    // Again, from standard input: nothing to change.
    let output = run(
        cli().args(["integrations", "import", "-", "--space", "team"]),
        Some(&std::fs::read_to_string(&good).unwrap()),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8(output.stdout)
        .unwrap()
        .ends_with("Nothing to change: every integration is as the file says.\n"));

    // A bad file: every problem in one sentence, nothing written.
    let bad = data.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "version: 1\nintegrations:\n\
             - {{name: new-one, provider: bitbucket_datacenter, space: team, datacenter: {{api_url: {url}, username: {DEMO_USER}, access_token: {DEMO_TOKEN}}}}}\n\
             - {{name: elsewhere, provider: bitbucket_datacenter, space: nowhere, datacenter: {{api_url: {url}, username: u, access_token: t}}}}\n\
             - {{name: no-token, provider: bitbucket_datacenter, space: team, datacenter: {{api_url: {url}, username: u}}}}\n"
        ),
    )
    .unwrap();
    let output = run(cli().args(["integrations", "import", &bad.display().to_string()]), None);
    assert_one_sentence(&output, "Nothing was imported; fix these 2 problems");
    let message = stderr(&output);
    assert!(message.contains("integrations[1] (elsewhere).space: no space is named"), "{message}");
    assert!(message.contains("integrations[2] (no-token).datacenter.access_token: missing"), "{message}");
    assert_eq!(count().await, 2, "nothing was written");
    assert_one_sentence(&run(cli().args(["integrations", "import", &good, "--space", "nope"]), None), "--space");
    assert_one_sentence(&run(cli().args(["integrations", "import", "/nonexistent.yaml"]), None), "cannot be read");

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE actor_kind = 'cli' ORDER BY occurred_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        actions,
        ["integration.created", "integration.created", "integrations.imported", "integrations.imported"]
    );
}

/// The CLI's import keeps the rules of the API: a stored token is never
/// sent to a new API URL (the file must give it again), and an integration
/// does not move away from the spaces of its stacks. Nothing is written,
/// and the new URL receives no request at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_import_never_sends_a_stored_token_elsewhere_nor_strands_stacks() {
    use bitbucket_simulator::datacenter::{DEMO_TOKEN, DEMO_USER};
    use bitgate_core::spaces;
    let ImportWorld { simulator, data, pool, root, cli } = ImportWorld::start("bitgate-import-rules-").await;
    let attacker = crate::helpers::Listener::start().await;
    let team = spaces::create(&pool, "team", root, "").await.unwrap().id;
    spaces::create(&pool, "other", root, "").await.unwrap();
    let file = |name: &str, content: String| {
        let path = data.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let entry = |api_url: &str, space: &str, token: &str| {
        format!(
            "version: 1\nintegrations:\n- {{name: team-dc, provider: bitbucket_datacenter, space: {space}, \
             datacenter: {{api_url: {api_url}, username: {DEMO_USER}{token}}}}}\n"
        )
    };
    let first = file("first.yaml", entry(&simulator.url, "team", &format!(", access_token: {DEMO_TOKEN}")));
    let output = run(cli().args(["integrations", "import", &first]), None);
    assert!(output.status.success(), "{}", stderr(&output));
    let api_url = || async {
        sqlx::query_scalar::<_, String>("SELECT api_url FROM datacenter_credentials").fetch_one(&pool).await.unwrap()
    };

    let elsewhere = file("elsewhere.yaml", entry(&attacker.url, "team", ""));
    for dry_run in [true, false] {
        let mut command = cli();
        command.args(["integrations", "import", &elsewhere]);
        if dry_run {
            command.arg("--dry-run");
        }
        let output = run(&mut command, None);
        assert_one_sentence(&output, "integrations[0] (team-dc).datacenter.access_token");
        assert!(stderr(&output).contains("access token again"), "{}", stderr(&output));
    }
    assert_eq!(attacker.connections(), 0, "not even the version probe reached the new URL");
    assert_eq!(api_url().await, simulator.url.trim_end_matches('/'), "nothing was written");

    // A stack in `team`: the integration cannot move to the sibling `other`.
    sqlx::query(
        "INSERT INTO stacks (name, space_id, provider, integration_id, repository_id, repository_name, branch, created_by_label)
         SELECT 'web', $1, 'bitbucket_datacenter', id, '1', 'PRJ/my-repo', 'main', 'test' FROM integrations",
    )
    .bind(team)
    .execute(&pool)
    .await
    .unwrap();
    let moved = file("moved.yaml", entry(&simulator.url, "other", ""));
    let output = run(cli().args(["integrations", "import", &moved]), None);
    assert_one_sentence(&output, "integrations[0] (team-dc).space");
    assert!(stderr(&output).contains("web"), "names the stack: {}", stderr(&output));
    let space: String = sqlx::query_scalar("SELECT s.name FROM integrations i JOIN spaces s ON s.id = i.space_id")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(space, "team", "nothing was written");
}

/// A Data Center integration stored directly (token `BBDC-token-of-{name}`,
/// user-facing URL https://git.example.com), for commands that read them.
async fn stored_datacenter(
    pool: &sqlx::PgPool,
    keyring: &bitgate_core::secrets::Keyring,
    name: &str,
    space_id: Option<uuid::Uuid>,
) -> bitgate_core::integrations::Integration {
    use bitgate_core::integrations;
    let new = integrations::NewDataCenter {
        name: name.into(),
        slug: name.into(),
        space_id,
        labels: vec!["prod".into()],
        description: "Our **main** one".into(),
        options: integrations::Options::default(),
        api_url: "https://bitbucket.example.com".into(),
        user_facing_url: "https://git.example.com".into(),
        credential: integrations::DataCenterCredential::AccessToken {
            username: "jcitizen".into(),
            token: format!("BBDC-token-of-{name}").into(),
        },
        ca_certificate: None,
        health: integrations::Health {
            state: integrations::HealthState::Connected,
            message: String::new(),
            checked_at: None,
        },
        created_by: None,
        created_by_label: "test".into(),
    };
    let mut tx = pool.begin().await.unwrap();
    let created = integrations::create_datacenter(&mut tx, keyring, new).await.unwrap();
    tx.commit().await.unwrap();
    created
}
