//! Server-rendered building blocks shared by the pages.

pub mod badge;
pub mod form;
pub mod layout;
pub mod outbound;
pub mod when;
