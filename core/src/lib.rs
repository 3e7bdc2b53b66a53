//! Bitgate's domain: what both the browser pages (server functions) and the
//! REST API, webhook and OAuth handlers call. No web framework in here.

pub mod access;
pub mod api_tokens;
pub mod as_code;
pub mod audit;
pub mod bitbucket;
pub mod config;
pub mod db;
pub mod integrations;
pub mod jobs;
pub mod maintenance;
pub mod managed_hooks;
pub mod oauth_flows;
pub mod oauth_tokens;
pub mod outbound;
pub mod passwords;
pub mod platform;
pub mod principal;
pub mod rekey;
pub mod secret;
pub mod secrets;
pub mod sessions;
pub mod setup;
pub mod signal;
pub mod spaces;
pub mod stacks;
pub mod submissions;
pub mod telemetry;
mod text_enum;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod validation;
pub mod webhooks;

use std::sync::Arc;

use sqlx::PgPool;

/// The long-lived services a request handler needs, built once at start-up
/// and shared (cheap to clone).
#[derive(Debug, Clone)]
pub struct Services {
    pub config: Arc<config::Config>,
    pub pool: PgPool,
    pub keyring: Arc<secrets::Keyring>,
    pub hasher: passwords::PasswordHasher,
    /// This process's router of webhook deliveries and cache of their secrets.
    pub webhooks: Arc<webhooks::Runtime>,
    /// Wakes this process's readers of the events feed.
    pub events: signal::Signal,
    /// Wakes this process's job workers when jobs are queued.
    pub jobs: signal::Signal,
}
