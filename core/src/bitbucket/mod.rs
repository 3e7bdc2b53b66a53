//! Talking to Bitbucket: checking credentials before they are saved.

pub mod datacenter;
