//! Integrations as code: the YAML file platform teams keep in a repository
//! and import into Bitgate (CLI, browser and API), and export from it.

pub mod export;
pub mod file;
pub mod import;
pub mod schema;
mod yaml;
