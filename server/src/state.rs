//! The state every handler shares.

use std::sync::Arc;

use axum::extract::FromRef;
use bitgate_core::Services;
use leptos::config::LeptosOptions;

use crate::http::pages::PageRenderer;

/// Built once at start-up; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub leptos: LeptosOptions,
    pub pages: PageRenderer,
    pub installation: Arc<bitgate_app::context::Installation>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
