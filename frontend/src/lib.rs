//! The WASM entry point: hydrates the islands of the server-rendered page.

// Naming the app crate keeps its island exports in the bundle (without it the
// build succeeds and nothing hydrates).
#[expect(unused_imports, reason = "links the islands of the app crate into the bundle")]
use bitgate_app::*;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
