//! Security headers, error pages and status codes.

use crate::helpers::TestApp;

#[tokio::test]
async fn pages_carry_the_security_headers() {
    let app = TestApp::spawn().await;
    let page = app.browser().get("/login").await;
    assert_eq!(page.status(), 200);
    let headers = page.headers();
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "'wasm-unsafe-eval'",
        "'nonce-",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("strict-transport-security").is_none(), "no HSTS on plain http");

    // The inline hydration script carries the nonce the CSP allows.
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the page's script uses the CSP nonce");

    let health = app.browser().get("/healthz").await;
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert!(health.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
}

#[tokio::test]
async fn https_deployments_get_hsts_and_a_host_prefixed_secure_cookie() {
    let app = TestApp::spawn_with(&[("BITGATE_PUBLIC_URL", "https://bitgate.example.com")]).await;
    let user = app.create_user("ada@example.com", None).await;
    let browser = app.browser();
    let login = browser
        .send(
            browser
                .client
                .post(browser.url("/login"))
                .header("origin", "https://bitgate.example.com")
                .form(&[("email", user.email.as_str()), ("password", user.password.as_str())]),
        )
        .await;
    assert_eq!(login.status(), 303);
    assert!(login.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-bitgate=") && cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn unknown_paths_answer_404_pages_and_json() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let page = browser.get("/no/such/page").await;
    assert_eq!(page.status(), 404);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Page not found") && html.contains("<nav"),
        "a page of the site, with its navigation: {html}"
    );

    let api = browser.client.get(browser.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(api.status(), 404);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["details"].is_array());

    let asset = browser.get("/pkg/missing.wasm").await;
    assert_eq!(asset.status(), 404);
}

#[tokio::test]
async fn static_assets_are_precompressed_and_cached_for_long() {
    let app = TestApp::spawn().await;
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site/pkg");
    let wasm = std::fs::read_dir(&site)
        .expect("the site is built (cargo leptos build --release) before the tests")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(".wasm"))
        .expect("a wasm file");
    let client = reqwest::Client::new();
    let response =
        client.get(format!("{}/pkg/{wasm}", app.base)).header("accept-encoding", "br, gzip").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "br");
    assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
    let gzip = client.get(format!("{}/pkg/{wasm}", app.base)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn a_logged_in_page_shows_the_console() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_admin().await;
    let home = browser.get("/").await;
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("Integrations") && html.contains("Log out"));
    assert!(html.contains(&format!("{}/oauth/bitbucket/callback", app.base)));
}
