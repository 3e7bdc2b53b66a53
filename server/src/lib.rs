//! The `bitgate` binary's library: the HTTP server (pages, REST API,
//! webhooks, OAuth callback) and the CLI, around `bitgate-core`.

pub mod api;
pub mod cli;
pub mod error;
pub mod http;
pub mod serve;
pub mod state;
