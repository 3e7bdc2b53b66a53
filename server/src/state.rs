//! The state every handler shares.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

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
    /// The Prometheus recorder, when `BITGATE_METRICS` is on.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Set when the process was told to stop: `/readyz` answers 503 from
    /// then on, so that a load balancer sends no new work here.
    pub stopping: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
