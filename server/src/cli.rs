//! The command line: `bitgate [serve]`, `migrate`, `user create|disable`,
//! `token create`, `secrets rekey`, `integrations export|import|schema`,
//! `events follow`.
//! Commands talk to the database directly, act with operator authority, and
//! are audited with actor `cli`. Exit 0 on success; otherwise non-zero with
//! one sentence on stderr.

use std::{
    io::{Read, Write},
    process::ExitCode,
};

use bitgate_core::{
    access::Access,
    api_tokens::operations::{self as token_operations, NewToken, Owner, TokenError},
    as_code::{
        self,
        export::Selection,
        import::{Import, ImportError},
    },
    audit::{self, Actor, AuditAction, Event},
    config::{parse_duration, Config, Environment},
    db::Database,
    passwords::PasswordHasher,
    platform::feed,
    principal::Principal,
    spaces, stacks,
    users::{
        self,
        operations::{self as user_operations, NewUserInput, UserError},
        Email,
    },
};
use clap::{Parser, Subcommand};
use serde_json::json;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "bitgate", version, about = "Bitgate: connect a CI/CD platform to Bitbucket Cloud and Data Center.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web console, the REST API and the Bitbucket endpoints (the default).
    Serve,
    /// Apply the database migrations that have not run yet, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the keys that encrypt stored secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Integrations as code: the YAML file.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// The events feed the platform follows.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Write the whole database to FILE with PostgreSQL's pg_dump (custom
    /// format). The secret keys are not in it: keep BITGATE_SECRET_KEYS too.
    Backup { file: std::path::PathBuf },
    /// Replace the database's contents with the backup in FILE (pg_restore,
    /// in one transaction); refused over users or integrations unless --force.
    Restore {
        file: std::path::PathBuf,
        /// Replace a database that holds users or integrations.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print the events that come from now on, one JSON object a line (as
    /// `GET /api/v1/events` answers them), until interrupted.
    Follow {
        /// Only this stack's events: its id, or its name when no other
        /// space has a stack of that name.
        #[arg(long)]
        stack: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// Write the integrations as YAML on standard output, secrets left as
    /// placeholders to fill in.
    Export {
        /// Only this space's integrations (a name or an id); every
        /// integration, the defaults included, when left out.
        #[arg(long)]
        space: Option<String>,
    },
    /// Create or update integrations from a YAML file (`-`: standard input).
    /// Everything is checked, Bitbucket connections included, before anything
    /// is written; then all of it is written, or nothing.
    Import {
        file: std::path::PathBuf,
        /// Check everything and say what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The space (name or id) that receives the entries naming no scope,
        /// CDS-shaped ones included; `root` when left out.
        #[arg(long)]
        space: Option<String>,
    },
    /// Print the JSON Schema of the integrations file.
    Schema,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every stored secret under the first key of BITGATE_SECRET_KEYS,
    /// after which the other keys can be removed.
    Rekey,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token for a user; prints the token alone on stdout (it is shown only once).
    Create {
        #[arg(long)]
        email: String,
        /// What the token is for, such as "terraform".
        #[arg(long)]
        name: String,
        /// Lifetime such as 30d or 12h; no expiry when left out.
        #[arg(long)]
        expires: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// Display name (the part of the email before @ when left out).
        #[arg(long)]
        name: Option<String>,
        /// Role to grant: read, write or admin (`--role admin` on root makes an account admin).
        #[arg(long)]
        role: Option<String>,
        /// Space (name or id) the role holds on; `root` when left out.
        #[arg(long, requires = "role")]
        space: Option<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: their sessions end at once.
    Disable {
        #[arg(long)]
        email: String,
    },
}

/// A failure, said in one sentence.
#[derive(Debug)]
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_serve = matches!(cli.command, None | Some(Command::Serve));
    if let Err(sentence) = init_tracing(if is_serve { "info" } else { "warn" }) {
        eprintln!("{sentence}");
        return ExitCode::from(2);
    }
    let config = match Config::load(&Environment) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("The async runtime could not start: {error}.");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => crate::serve::serve(config).await.map_err(Failure::from),
            Command::Migrate => with_database(&config, |_| async { Ok(()) }).await,
            Command::User(command) => user(&config, command).await,
            Command::Token(command) => token(&config, command).await,
            Command::Secrets(SecretsCommand::Rekey) => rekey(&config).await,
            Command::Integrations(command) => integrations(&config, command).await,
            Command::Events(EventsCommand::Follow { stack }) => follow_events(&config, stack).await,
            Command::Backup { file } => backup(&config, &file).await,
            Command::Restore { file, force } => restore(&config, &file, force).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(sentence)) => {
            eprintln!("{}", sentence.trim());
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::try_new(&value).map_err(|e| format!("RUST_LOG is invalid: {e}."))?
        }
        _ => EnvFilter::new(default),
    };
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    // `json`: one object per line, with the request's (or job's) span and
    // its request id, for a log pipeline; the default is text for people.
    match std::env::var("BITGATE_LOG_FORMAT").ok().as_deref().map(str::trim) {
        None | Some("" | "text") => subscriber.init(),
        Some("json") => subscriber.json().with_current_span(true).with_span_list(true).init(),
        Some(other) => return Err(format!("BITGATE_LOG_FORMAT is invalid: \"{other}\" is neither text nor json.")),
    }
    Ok(())
}

/// Connects (starting the embedded cluster if needed), migrates, runs `work`,
/// and closes (stopping the cluster if nobody else uses it).
async fn with_database<F, Fut>(config: &Config, work: F) -> Result<(), Failure>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let database = Database::connect(config).await?;
    let result = match database.migrate().await {
        Ok(()) => work(database.pool.clone()).await,
        Err(e) => Err(e.into()),
    };
    database.close().await;
    result
}

async fn backup(config: &Config, file: &std::path::Path) -> Result<(), Failure> {
    let database = Database::connect(config).await?;
    let result = match database.migrate().await {
        Ok(()) => bitgate_core::db::backup::backup(&database, config, file).await.map_err(Failure::from),
        Err(e) => Err(e.into()),
    };
    database.close().await;
    result?;
    eprintln!("Backed up to {}. The secret keys (BITGATE_SECRET_KEYS) are not in it: keep them too.", file.display());
    Ok(())
}

async fn restore(config: &Config, file: &std::path::Path, force: bool) -> Result<(), Failure> {
    // Not migrated first: the backup brings its own schema.
    let database = Database::connect(config).await?;
    let result = bitgate_core::db::backup::restore(&database, config, file, force).await.map_err(Failure::from);
    database.close().await;
    result?;
    eprintln!("Restored from {}. Start Bitgate with the secret keys the backup was made with.", file.display());
    Ok(())
}

async fn user(config: &Config, command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Create { email, name, role, space, password_stdin } => {
            if !password_stdin {
                return Err(Failure("Pass the password on standard input with --password-stdin.".into()));
            }
            let password = read_password()?;
            let input =
                NewUserInput { email: Some(email), name, password: Some(password), role, space, ..Default::default() };
            with_database(config, |pool| async move {
                let hasher = PasswordHasher::new(1)?;
                let user =
                    user_operations::create(&pool, &hasher, &Principal::Operator, input).await.map_err(
                        |e| match e {
                            UserError::Invalid(problems) | UserError::Conflict(problems) => {
                                let flag = |field: &str| match field {
                                    "space_id" => "--space".to_owned(),
                                    "password" => "the password".to_owned(),
                                    other => format!("--{other}"),
                                };
                                let lines: Vec<String> =
                                    problems.iter().map(|p| format!("{}: {}", flag(&p.field), p.message)).collect();
                                Failure(lines.join("\n"))
                            }
                            other => Failure(other.to_string()),
                        },
                    )?;
                println!("{}", user.id);
                Ok(())
            })
            .await
        }
        UserCommand::Disable { email } => {
            let email = Email::parse(&email).map_err(|e| Failure(format!("--email: {e}")))?;
            with_database(config, |pool| async move {
                let disabled = user_operations::disable_as_operator(&pool, &email).await?;
                disabled.map(|_| ()).ok_or_else(|| Failure(format!("No user has the email {email}.")))
            })
            .await
        }
    }
}

async fn token(config: &Config, command: TokenCommand) -> Result<(), Failure> {
    let TokenCommand::Create { email, name, expires } = command;
    let email = Email::parse(&email).map_err(|e| Failure(format!("--email: {e}")))?;
    let lifetime =
        expires.map(|raw| parse_duration(raw.trim()).map_err(|e| Failure(format!("--expires: {e}.")))).transpose()?;
    with_database(config, |pool| async move {
        let user = users::find_for_login(&pool, &email).await?;
        let user =
            user.filter(|u| !u.disabled).ok_or_else(|| Failure(format!("No enabled user has the email {email}.")))?;
        let new =
            NewToken { name, expires_at: lifetime.map(|d| time::OffsetDateTime::now_utc() + d), ..Default::default() };
        let owner = Owner { id: user.id, email: email.as_str() };
        let (_, secret) =
            token_operations::issue(&pool, &Principal::Operator, owner, new).await.map_err(|e| match e {
                TokenError::Invalid(problems) => {
                    let flag = |field: &str| if field == "name" { "--name" } else { "--expires" };
                    let lines: Vec<String> =
                        problems.iter().map(|p| format!("{}: {}", flag(&p.field), p.message)).collect();
                    Failure(lines.join("\n"))
                }
                TokenError::NotFound => Failure(format!("No enabled user has the email {email}.")),
                TokenError::Database(e) => e.into(),
            })?;
        println!("{secret}");
        Ok(())
    })
    .await
}

async fn rekey(config: &Config) -> Result<(), Failure> {
    let keyring = crate::serve::load_keyring(config).map_err(|e| Failure(e.0))?;
    with_database(config, |pool| async move {
        let done = bitgate_core::rekey::rekey(&pool, &keyring)
            .await
            .map_err(|e| Failure(format!("Nothing was changed: {e}.")))?;
        let event = Event::new(Actor::Cli, AuditAction::SecretsRekeyed).details(serde_json::json!({
            "key_id": keyring.current_key_id(), "examined": done.examined, "resealed": done.resealed
        }));
        audit::record(&pool, event).await?;
        println!(
            "{} secrets examined, {} re-encrypted under key \"{}\".",
            done.examined,
            done.resealed,
            keyring.current_key_id()
        );
        Ok(())
    })
    .await
}

async fn integrations(config: &Config, command: IntegrationsCommand) -> Result<(), Failure> {
    match command {
        IntegrationsCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&as_code::schema::schema())?);
            Ok(())
        }
        IntegrationsCommand::Export { space } => {
            with_database(config, |pool| async move {
                let (selection, space_name) = match &space {
                    Some(raw) => {
                        let found = spaces::resolve(&pool, raw).await?;
                        let found = found
                            .ok_or_else(|| Failure(format!("--space: no space is named or has the id \"{raw}\".")))?;
                        (Selection { spaces: Some(vec![found.id]), defaults: false }, Some(found.name))
                    }
                    None => (Selection { spaces: None, defaults: true }, None),
                };
                let entries = as_code::export::entries(&pool, &selection).await?;
                let details = json!({"count": entries.len(), "space": space_name});
                audit::record(&pool, Event::new(Actor::Cli, AuditAction::IntegrationsExported).details(details))
                    .await?;
                print!("{}", as_code::file::render(&entries));
                Ok(())
            })
            .await
        }
        IntegrationsCommand::Import { file, dry_run, space } => {
            let text = read_file(&file)?;
            let keyring = crate::serve::load_keyring(config).map_err(|e| Failure(e.0))?;
            with_database(config, |pool| async move {
                let space = space.unwrap_or_else(|| spaces::ROOT.to_owned());
                let found = spaces::resolve(&pool, &space).await?;
                let found =
                    found.ok_or_else(|| Failure(format!("--space: no space is named or has the id \"{space}\".")))?;
                let import = Import {
                    db: &pool,
                    keyring: &keyring,
                    config,
                    by: Principal::Operator,
                    access: Access::operator(),
                    space: found.id,
                    dry_run,
                };
                match as_code::import::run(&import, &text).await {
                    Ok(summary) => {
                        print!("{}", summary.to_text(dry_run));
                        Ok(())
                    }
                    Err(ImportError::Problems(problems)) => {
                        let listed: Vec<String> =
                            problems.iter().map(|p| p.to_string().trim_end_matches('.').to_owned()).collect();
                        let count = if problems.len() == 1 {
                            "this problem".to_owned()
                        } else {
                            format!("these {} problems", problems.len())
                        };
                        Err(Failure(format!(
                            "Nothing was imported; fix {count}: {}.",
                            listed.join("; ").trim_end_matches('.')
                        )))
                    }
                    Err(ImportError::Database(e)) => Err(Failure(format!("Nothing was imported: {e}."))),
                }
            })
            .await
        }
    }
}

/// An integrations file, or standard input for `-`; at most the size a file may have.
async fn follow_events(config: &Config, stack: Option<String>) -> Result<(), Failure> {
    with_database(config, |pool| async move {
        let stack_id = match &stack {
            None => None,
            Some(raw) => Some(resolve_stack(&pool, raw).await?),
        };
        let signal = bitgate_core::signal::Signal::default();
        signal.listen(pool.clone(), feed::CHANNEL);
        let mut query = feed::Query { after: feed::head(&pool).await?, limit: 100, stack_id, event_type: None };
        let mut out = std::io::stdout();
        loop {
            let page = feed::follow(&pool, &signal, None, query.clone(), feed::MAX_WAIT).await?;
            for event in &page.items {
                let line = serde_json::to_string(event)?;
                // A closed pipe (`| head`) ends the command quietly.
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(());
                }
            }
            query.after = page.next_cursor;
        }
    })
    .await
}

/// A stack by id, or by a name only one stack has.
async fn resolve_stack(pool: &sqlx::PgPool, raw: &str) -> Result<uuid::Uuid, Failure> {
    if let Ok(id) = uuid::Uuid::parse_str(raw.trim()) {
        return match stacks::find(pool, id).await? {
            Some(stack) => Ok(stack.id),
            None => Err(Failure(format!("--stack: no stack has the id {id}."))),
        };
    }
    match stacks::named(pool, raw.trim()).await?.as_slice() {
        [one] => Ok(*one),
        [] => Err(Failure(format!("--stack: no stack is named \"{}\".", raw.trim()))),
        _ => Err(Failure(format!("--stack: several spaces have a stack named \"{}\"; give its id.", raw.trim()))),
    }
}

fn read_file(path: &std::path::Path) -> Result<String, Failure> {
    let limit = as_code::file::MAX_FILE as u64 + 1;
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_string(&mut text))
    };
    read.map_err(|e| Failure(format!("{} cannot be read: {e}.", path.display())))?;
    Ok(text)
}

/// The password is the first line of standard input.
/// The first line of standard input (the password policy is the operation's).
fn read_password() -> Result<String, Failure> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| Failure(format!("Standard input could not be read: {e}.")))?;
    Ok(input.lines().next().unwrap_or_default().to_owned())
}
