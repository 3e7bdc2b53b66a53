//! One module per page.

pub mod error;
pub mod home;
pub mod login;
pub mod not_found;
pub mod setup;
pub mod spaces;
pub mod tokens;
