//! What the server knows of the request before a page renders: who is
//! looking, their CSRF token, flash messages, and the outcome of a form post
//! being answered with its page. The server's middleware puts a
//! [`PageContext`] into the request's extensions; components read it while
//! rendering on the server (islands get what they need as props).

use serde::{Deserialize, Serialize};

/// The logged-in user, as pages show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub is_account_admin: bool,
    /// Sent back in a hidden field by every plain form post of this session.
    pub csrf_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashKind {
    Success,
    Info,
    Error,
}

/// A one-time message shown on the next page (after a redirect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Self { kind: FlashKind::Success, message: message.into() }
    }
    pub fn info(message: impl Into<String>) -> Self {
        Self { kind: FlashKind::Info, message: message.into() }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self { kind: FlashKind::Error, message: message.into() }
    }
}

/// A form that was posted and is answered with its page again: the values to
/// keep (never a password) and the errors to show next to each field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormOutcome {
    pub values: Vec<(String, String)>,
    pub field_errors: Vec<(String, String)>,
    /// An error about the whole form, shown above it.
    pub form_error: Option<String>,
    /// Why the form cannot be used at all (a spent setup link, say): the page
    /// shows this instead of the form.
    pub blocked: Option<String>,
}

impl FormOutcome {
    pub fn value(&self, field: &str) -> String {
        self.values.iter().find(|(k, _)| k == field).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    pub fn error(&self, field: &str) -> Option<String> {
        self.field_errors.iter().find(|(k, _)| k == field).map(|(_, v)| v.clone())
    }
}

/// Facts about this Bitgate installation that pages show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installation {
    pub public_url: String,
    pub embedded_database: bool,
    pub version: String,
}

/// An API token as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// What the API tokens page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokensPage {
    pub tokens: Vec<TokenRow>,
    /// A token just created: its name and secret, shown this once.
    pub created: Option<(String, String)>,
}

/// A space as the spaces page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceRow {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    pub description: String,
    /// The viewer's role on it (read, write, admin).
    pub role: String,
}

/// What the spaces page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpacesPage {
    pub spaces: Vec<SpaceRow>,
}

/// A member of a space as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
}

/// What a space's page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpacePage {
    pub space: SpaceRow,
    /// Members are shown to the space's admins only.
    pub members: Option<Vec<MemberRow>>,
}

/// Everything a page may need to know about its request.
#[derive(Debug, Clone, Default)]
pub struct PageContext {
    pub viewer: Option<Viewer>,
    pub flashes: Vec<Flash>,
    pub form: Option<FormOutcome>,
    pub installation: Installation,
    /// Data of the page being answered by a handler (the pages that take
    /// form posts load their data there).
    pub tokens: Option<TokensPage>,
    pub spaces: Option<SpacesPage>,
    pub space: Option<SpacePage>,
}

/// The page context of the request being rendered (empty in the browser,
/// where only islands run).
pub fn page_context() -> PageContext {
    #[cfg(feature = "ssr")]
    {
        use leptos::prelude::use_context;
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<PageContext>().cloned())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        PageContext::default()
    }
}

/// The query parameters of the request being rendered.
pub fn query_param(name: &str) -> Option<String> {
    #[cfg(feature = "ssr")]
    {
        use leptos::prelude::use_context;
        let parts = use_context::<http::request::Parts>()?;
        let query = parts.uri.query()?;
        form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
    #[cfg(not(feature = "ssr"))]
    {
        let _ = name;
        None
    }
}
