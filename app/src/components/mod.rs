//! Server-rendered building blocks shared by the pages.

pub mod badge;
pub mod checklist;
pub mod form;
pub mod layout;
pub mod outbound;
pub mod pager;
pub mod when;
