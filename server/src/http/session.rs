//! Browser sessions: stored in PostgreSQL by tower-sessions, with the cookie
//! rules, idle and absolute timeouts of SPEC.md; and the middleware that
//! turns a session into the page context of a request.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use bitgate_app::context::{Flash, PageContext, Viewer};
use bitgate_core::{config::Config, sessions, tokens::random_token, users};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::{cookie::SameSite, Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

const AUTH_KEY: &str = "auth";
const FLASH_KEY: &str = "flashes";
/// When the session's idle clock was last renewed (Unix milliseconds).
const RENEWED_KEY: &str = "renewed_at";

/// The cookie's name: `__Host-` needs Secure, so plain-http local use gets
/// the bare name.
pub fn cookie_name(config: &Config) -> &'static str {
    if config.public_url.is_https() {
        "__Host-bitgate"
    } else {
        "bitgate"
    }
}

/// The session layer: PostgreSQL store, HttpOnly, SameSite=Lax, Secure on
/// https, expiring after `BITGATE_SESSION_IDLE` of inactivity.
pub fn layer(config: &Config, pool: sqlx::PgPool) -> SessionManagerLayer<PostgresStore> {
    let idle = time::Duration::try_from(config.session_idle).unwrap_or(time::Duration::minutes(30));
    SessionManagerLayer::new(PostgresStore::new(pool))
        .with_name(cookie_name(config))
        .with_secure(config.public_url.is_https())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
}

/// What a logged-in session holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionAuth {
    pub user_id: Uuid,
    #[serde(with = "time::serde::timestamp")]
    pub authenticated_at: OffsetDateTime,
    /// Sent back by every form and script: pages carry it, so it is no
    /// secret from whoever sees a page.
    pub csrf_token: String,
    /// Binds the OAuth flows this browser starts to it. Never on a page or
    /// in a URL, unlike the CSRF token. (Absent from sessions made before
    /// it existed: those still read, and are then refused for having no
    /// owner noted, so the user logs in again.)
    #[serde(default)]
    pub oauth_binding_secret: String,
}

impl SessionAuth {
    pub async fn load(session: &Session) -> Result<Option<Self>, AppError> {
        Ok(session.get::<Self>(AUTH_KEY).await?)
    }

    /// Logs a user in: a new session id (against fixation), a new CSRF token
    /// and OAuth binding secret. The session is saved at once, to learn its
    /// new id and note whose it is.
    pub async fn start(session: &Session, pool: &sqlx::PgPool, user_id: Uuid) -> Result<Self, AppError> {
        session.cycle_id().await?;
        let auth = Self {
            user_id,
            authenticated_at: OffsetDateTime::now_utc(),
            csrf_token: random_token(),
            oauth_binding_secret: random_token(),
        };
        session.insert(AUTH_KEY, &auth).await?;
        session.insert(RENEWED_KEY, unix_millis(auth.authenticated_at)).await?;
        session.save().await?;
        let id = session.id().ok_or_else(|| AppError::internal("a saved session has an id"))?;
        sessions::record_owner(pool, &id.to_string(), user_id).await?;
        Ok(auth)
    }
}

/// Adds a message for the next page the session sees.
pub async fn push_flash(session: &Session, flash: Flash) -> Result<(), AppError> {
    let mut flashes: Vec<Flash> = session.get(FLASH_KEY).await?.unwrap_or_default();
    flashes.push(flash);
    session.insert(FLASH_KEY, flashes).await?;
    Ok(())
}

/// The logged-in user of a request, for handlers.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<users::User>);

impl CurrentUser {
    /// This user as the REST API's code sees a caller, for the pages that
    /// write through it (so that both leave the same audit trail).
    pub fn caller(&self, address: Option<std::net::IpAddr>) -> crate::api::caller::Caller {
        crate::api::caller::Caller { user: self.0.clone(), token_id: None, address }
    }
}

/// Paths anyone may reach; every other page needs a logged-in user.
fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/logout" | "/setup" | "/healthz" | "/readyz" | "/favicon.svg")
        || ["/api/", "/webhooks/", "/oauth/"].iter().any(|prefix| path.starts_with(prefix))
}

/// Resolves the session to a user (checking the absolute timeout and that the
/// user is still enabled), takes the flash messages, and puts a
/// [`PageContext`] into the request. A page that needs a user and has none
/// redirects to the login page, which returns here afterwards.
pub async fn resolve_viewer(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let had_cookie = request.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).any(|cookies| {
        cookies.split(';').any(|c| c.trim().starts_with(&format!("{}=", cookie_name(&state.services.config))))
    });

    let viewer = match current_user(&state, &session).await {
        Ok(viewer) => viewer,
        Err(error) => return error.into_response(),
    };
    let flashes = match &viewer {
        Some(_) => {
            let idle = state.services.config.session_idle;
            let taken = async {
                renew_idle_clock(&session, idle).await?;
                take_flashes(&session).await
            };
            match taken.await {
                Ok(flashes) => flashes,
                Err(error) => return error.into_response(),
            }
        }
        None => Vec::new(),
    };

    let path = request.uri().path().to_owned();
    let Some((user, auth)) = viewer else {
        if is_public(&path) {
            request.extensions_mut().insert(page_context(&state, None, flashes));
            return next.run(request).await;
        }
        return redirect_to_login(&request, had_cookie);
    };

    let viewer = Viewer {
        user_id: user.id.to_string(),
        email: user.email.clone(),
        name: user.name.clone(),
        is_account_admin: user.is_account_admin,
        csrf_token: auth.csrf_token.clone(),
    };
    request.extensions_mut().insert(page_context(&state, Some(viewer), flashes));
    request.extensions_mut().insert(CurrentUser(Arc::new(user)));
    next.run(request).await
}

/// The messages left for this page, taken from the session. Read first:
/// removing marks the session changed even when there was nothing to remove,
/// and a changed session is written at the end of the request.
async fn take_flashes(session: &Session) -> Result<Vec<Flash>, AppError> {
    if session.get::<Vec<Flash>>(FLASH_KEY).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(session.remove::<Vec<Flash>>(FLASH_KEY).await?.unwrap_or_default())
}

/// Renews the session's idle clock when it was last renewed more than a
/// tenth of `idle` ago (a minute at most), by changing the session: a
/// session is written only when it changed, and each write moves its
/// expiry (in the store and in the cookie) to `idle` from then.
///
/// Writing it on every page view, as before, cost each view an upsert and
/// its commit, a WAL flush, on the path of the answer: the integrations
/// list at 1,000 took 4.1-4.9 ms (p50) with it, 2.9-3.6 ms without. A
/// session so ends after `idle` without a request, or up to a step sooner.
async fn renew_idle_clock(session: &Session, idle: std::time::Duration) -> Result<(), AppError> {
    let step = (idle / 10).min(std::time::Duration::from_secs(60));
    let now = OffsetDateTime::now_utc();
    let due = match session.get::<i64>(RENEWED_KEY).await? {
        Some(renewed) => {
            let since = now - OffsetDateTime::UNIX_EPOCH - time::Duration::milliseconds(renewed);
            since.is_negative() || since.unsigned_abs() >= step
        }
        None => true,
    };
    if due {
        session.insert(RENEWED_KEY, unix_millis(now)).await?;
    }
    Ok(())
}

fn unix_millis(at: OffsetDateTime) -> i64 {
    (at - OffsetDateTime::UNIX_EPOCH).whole_milliseconds() as i64
}

fn page_context(state: &AppState, viewer: Option<Viewer>, flashes: Vec<Flash>) -> PageContext {
    // Only a logged-in user's pages have forms that create something.
    let submission = viewer.as_ref().map(|_| Uuid::new_v4().to_string()).unwrap_or_default();
    PageContext {
        viewer,
        flashes,
        installation: state.installation.as_ref().clone(),
        submission,
        ..PageContext::default()
    }
}

/// The session's user, if it is logged in, within its absolute lifetime,
/// still noted as that user's (disabling a user ends their sessions for
/// good), and enabled. A session that fails one of these is ended server-side.
async fn current_user(state: &AppState, session: &Session) -> Result<Option<(users::User, SessionAuth)>, AppError> {
    let Some(auth) = SessionAuth::load(session).await? else { return Ok(None) };
    let max_age = time::Duration::try_from(state.services.config.session_max).unwrap_or(time::Duration::hours(12));
    let pool = &state.services.pool;
    let user = match session.id() {
        Some(id) if OffsetDateTime::now_utc() - auth.authenticated_at <= max_age => {
            sessions::user_of(pool, &id.to_string(), auth.user_id).await?
        }
        _ => None,
    };
    match user {
        Some(user) if !user.disabled => Ok(Some((user, auth))),
        _ => {
            session.flush().await?;
            Ok(None)
        }
    }
}

fn redirect_to_login(request: &Request, had_cookie: bool) -> Response {
    let wanted = request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let mut query = vec![("next", wanted)];
    if had_cookie {
        query.push(("reason", "expired"));
    }
    let query = serde_urlencoded::to_string(query).unwrap_or_default();
    let mut response = Redirect::to(&format!("/login?{query}")).into_response();
    // A 303 also for HEAD and GET; and a session that ended clears its cookie.
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The path a login may return to: a path of this site only, never another
/// origin (no open redirect).
pub fn safe_next(next: &str) -> &str {
    let is_local_path = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if is_local_path && !next.starts_with("/login") && !next.starts_with("/logout") {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/integrations?x=1"), "/integrations?x=1");
        for outside in [
            "https://evil.example.com",
            "//evil.example.com",
            "/\\evil.example.com",
            "evil",
            "",
            "/login",
            "/\t/evil.com",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(outside), "/", "{outside:?}");
        }
    }

    #[test]
    fn pages_need_a_user_and_entry_points_do_not() {
        for public in [
            "/login",
            "/setup",
            "/healthz",
            "/readyz",
            "/api/v1/spaces",
            "/webhooks/bitbucket/x",
            "/oauth/bitbucket/callback",
        ] {
            assert!(is_public(public), "{public}");
        }
        for private in ["/", "/users", "/loginx", "/integrations/1"] {
            assert!(!is_public(private), "{private}");
        }
    }
}
