//! One module per page.

pub mod api_reference;
pub mod audit;
pub mod deliveries;
pub mod error;
pub mod home;
pub mod import;
pub mod integrations;
pub mod login;
pub mod not_found;
pub mod setup;
pub mod spaces;
pub mod stacks;
pub mod tokens;
pub mod users;
