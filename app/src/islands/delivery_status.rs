//! The details page's delivery status, kept current: "Waiting for the first
//! delivery" turns into the time of the delivery as soon as one arrives,
//! without a reload (the admin is usually on this page right after pasting
//! the webhook into Bitbucket, waiting to see that it works). Without
//! JavaScript the server-rendered text is shown as it was.

use leptos::prelude::*;

/// How often the server is asked.
#[cfg(feature = "hydrate")]
const POLL_SECONDS: u64 = 4;

/// The status line; `last` is the time of the last delivery when the page was rendered.
#[island]
pub fn DeliveryStatus(integration_id: String, last: Option<String>) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    let (last, set_last) = signal(last);
    Effect::new(move |_| set_hydrated.set(true));
    #[cfg(feature = "hydrate")]
    {
        let url = format!("/integrations/{integration_id}/deliveries/latest");
        let stopped = StoredValue::new(false);
        let _ = set_interval_with_handle(
            move || {
                if stopped.get_value() {
                    return;
                }
                let url = url.clone();
                leptos::task::spawn_local(async move {
                    match latest(&url).await {
                        Ok(found) => {
                            if found.is_some() && found != last.get_untracked() {
                                set_last.set(found);
                            }
                        }
                        // Logged out, access withdrawn, or the integration deleted.
                        Err(Stop) => stopped.set_value(true),
                    }
                });
            },
            std::time::Duration::from_secs(POLL_SECONDS),
        );
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (integration_id, set_last);
    view! {
        <span class="delivery-time" aria-live="polite" data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
            {move || match last.get() {
                Some(at) => format!("Last delivery: {at}. "),
                None => "Waiting for the first delivery. ".to_owned(),
            }}
        </span>
    }
}

/// The server no longer answers this page's questions: polling ends.
#[cfg(feature = "hydrate")]
struct Stop;

/// The last delivery's time, `None` while there is none. A failed request
/// (the network, a restart) is `Ok(None)`: the next tick asks again.
#[cfg(feature = "hydrate")]
async fn latest(url: &str) -> Result<Option<String>, Stop> {
    use wasm_bindgen::JsCast;
    let Some(window) = web_sys::window() else { return Err(Stop) };
    let Ok(response) = wasm_bindgen_futures::JsFuture::from(window.fetch_with_str(url)).await else { return Ok(None) };
    let Ok(response) = response.dyn_into::<web_sys::Response>() else { return Ok(None) };
    // A redirect is the login page: the session ended.
    if response.redirected() || matches!(response.status(), 401 | 403 | 404) {
        return Err(Stop);
    }
    if !response.ok() {
        return Ok(None);
    }
    let Ok(text) = response.text() else { return Ok(None) };
    let text = wasm_bindgen_futures::JsFuture::from(text).await.ok().and_then(|t| t.as_string()).unwrap_or_default();
    Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
}
