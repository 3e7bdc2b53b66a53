//! Server-rendered building blocks shared by the pages.

pub mod form;
pub mod layout;
pub mod outbound;
