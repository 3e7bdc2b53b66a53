//! Static files from the site directory that cargo-leptos builds: served
//! precompressed (brotli, gzip) when the browser takes it, and cached for a
//! year under `/pkg/`, whose file names carry a hash of their content.

use std::path::Path;

use axum::{
    http::{header, HeaderValue},
    Router,
};
use tower_http::{services::ServeDir, set_header::SetResponseHeaderLayer};

pub fn router<S: Clone + Send + Sync + 'static>(site_root: &Path, pkg_dir: &str) -> Router<S> {
    let hashed = ServeDir::new(site_root.join(pkg_dir)).precompressed_br().precompressed_gzip();
    let public = ServeDir::new(site_root).precompressed_br().precompressed_gzip();
    Router::new()
        .nest_service(
            &format!("/{pkg_dir}"),
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ))
                .service(hashed),
        )
        .route_service(
            "/favicon.svg",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ))
                .service(public),
        )
}
