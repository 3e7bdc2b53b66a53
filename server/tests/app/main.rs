//! Bitgate's integration tests: the real server on a port of its own, each
//! test with its own PostgreSQL database, driven over HTTP; and the real
//! binary for the CLI and the embedded cluster.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_pages;
mod api_tokens;
mod cli;
mod cloud;
mod cloud_events;
mod comments;
mod contract;
mod csrf;
mod database;
mod datacenter_oauth;
mod events;
mod headers;
mod helpers;
mod hooks;
mod integration_operations;
mod integrations_api;
mod integrations_file;
mod integrations_pages;
mod jobs;
mod limits;
mod login;
mod logs;
mod operations;
mod permissions;
mod production;
mod proxy;
mod runs_api;
mod sessions;
mod setup;
mod spaces_api;
mod spaces_pages;
mod stacks_api;
mod stacks_pages;
mod statuses;
mod tokens_page;
mod users_audit_api;
mod webhooks;
mod world;
