//! What islands ask of the browser, written once: a POST to the server
//! (same origin, the page's CSRF token in its header, as every write is
//! checked) answered with text, and a copy to the clipboard.

/// POSTs `body` to `path` and returns the answer's text; `Err(())` when the
/// server could not be reached or did not answer 2xx (the caller says it in
/// its own words).
#[cfg(feature = "hydrate")]
pub async fn post_text(path: &str, body: &str, csrf: &str) -> Result<String, ()> {
    use wasm_bindgen::JsCast;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&wasm_bindgen::JsValue::from_str(body));
    let headers = web_sys::Headers::new().map_err(|_| ())?;
    headers.set("content-type", "text/plain; charset=utf-8").map_err(|_| ())?;
    headers.set("accept", "text/plain").map_err(|_| ())?;
    headers.set("x-csrf-token", csrf).map_err(|_| ())?;
    init.set_headers(&headers);
    let window = web_sys::window().ok_or(())?;
    let response =
        wasm_bindgen_futures::JsFuture::from(window.fetch_with_str_and_init(path, &init)).await.map_err(|_| ())?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| ())?;
    // Followed to another page (the login page, once the session ended): not the answer.
    if response.redirected() || !response.ok() {
        return Err(());
    }
    let text = wasm_bindgen_futures::JsFuture::from(response.text().map_err(|_| ())?).await.map_err(|_| ())?;
    text.as_string().ok_or(())
}

/// On the server islands only render: nothing is posted.
#[cfg(not(feature = "hydrate"))]
pub async fn post_text(_path: &str, _body: &str, _csrf: &str) -> Result<String, ()> {
    Err(())
}

/// Puts `text` on the clipboard; whether the browser allowed it.
pub async fn copy_text(text: &str) -> bool {
    let Some(window) = web_sys::window() else { return false };
    let promise = window.navigator().clipboard().write_text(text);
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}
