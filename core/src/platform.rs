//! The platform loop (SPEC.md, "The platform loop"): what comes in from
//! Bitbucket goes out to the platform that runs the stacks' work as events,
//! and what the platform reports as runs goes back to Bitbucket.

pub mod comments;
pub mod events;
pub mod feed;
pub mod outbound_log;
pub mod pull_requests;
pub mod runs;
pub mod sending;
pub mod statuses;
