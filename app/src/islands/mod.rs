//! The interactive parts of pages, hydrated in the browser. Each takes what
//! it needs as serializable props (context from server-only parents does not
//! reach an island after hydration), and marks itself `data-hydrated` once
//! live, which browser tests wait for.

pub mod browser;
pub mod copy_button;
pub mod delivery_status;
pub mod integration_form;
pub mod password_field;
pub mod reveal_secret;
