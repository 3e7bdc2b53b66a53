//! Who calls the API: a Bearer token's user, or the browser session's user
//! (whose state changes passed the CSRF check already). A request that
//! carries `Authorization` is judged by it alone, never by its cookie.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};
use bitgate_core::{access::Denied, api_tokens, audit::Actor, principal::Principal, users::User};
use uuid::Uuid;

use crate::error::AppError;
use crate::{
    http::{client_address::ClientAddress, session::CurrentUser},
    state::AppState,
};

#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Arc<User>,
    /// The token used, when it was a token.
    pub token_id: Option<Uuid>,
    pub address: Option<std::net::IpAddr>,
}

impl Caller {
    /// The principal the operations in core take.
    pub fn principal(&self) -> Principal {
        Principal::User { user: self.user.clone(), token_id: self.token_id, address: self.address }
    }

    /// The actor of the audit events this caller causes.
    pub fn actor(&self) -> Actor {
        self.principal().actor()
    }

    /// Records a refused attempt at `action` on a `kind` of thing in `space`
    /// (None: account-wide), then answers it: 404 when the caller may not
    /// know it exists, 403 otherwise. The record is `Principal::refused`'s.
    pub async fn refused(
        &self,
        state: &AppState,
        kind: &'static str,
        action: &str,
        space: Option<Uuid>,
        why: Denied,
    ) -> AppError {
        match self.principal().refused(&state.services.pool, kind, action, space, why).await {
            Ok(why) => why.into(),
            Err(e) => e.into(),
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let address = parts.extensions.get::<ClientAddress>().and_then(|a| a.0);
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| AppError::Unauthenticated)?;
            let (scheme, secret) = value.split_once(' ').ok_or(AppError::Unauthenticated)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AppError::Unauthenticated);
            }
            let (user, token_id) = api_tokens::authenticate(&state.services.pool, secret.trim())
                .await?
                .ok_or(AppError::Unauthenticated)?;
            return Ok(Caller { user: Arc::new(user), token_id: Some(token_id), address });
        }
        match parts.extensions.get::<CurrentUser>() {
            Some(CurrentUser(user)) => Ok(Caller { user: user.clone(), token_id: None, address }),
            None => Err(AppError::Unauthenticated),
        }
    }
}
