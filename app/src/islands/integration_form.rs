//! The wizard's live parts: the webhook endpoint a name will get, shown as
//! it is typed; the description's preview, rendered by the server (the same
//! safe markdown as the details page); and the connection test's progress
//! while Bitbucket is asked. Without JavaScript the form works the same,
//! with static hints.

use leptos::prelude::*;

/// The slug of a name, as the server makes it
/// (`bitgate_core::integrations::slug_of`; a server test keeps them equal).
pub fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// The name field, with the webhook endpoint it will give.
#[island]
pub fn IntegrationNameField(
    /// `{public_url}/webhooks/bitbucket/`.
    endpoint_base: String,
    value: String,
    error: Option<String>,
) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    let (name, set_name) = signal(value.clone());
    Effect::new(move |_| set_hydrated.set(true));
    let has_error = error.is_some();
    let endpoint = move || {
        let slug = slug_of(&name.get());
        if slug.is_empty() {
            format!("{endpoint_base}<name>")
        } else {
            format!("{endpoint_base}{slug}")
        }
    };
    view! {
        <div class="field" class:has-error=has_error data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
            <label for="field-name">"Name"</label>
            <input
                id="field-name"
                name="name"
                type="text"
                value=value
                required=true
                aria-invalid=has_error.then_some("true")
                aria-describedby="field-name-hint"
                on:input=move |ev| set_name.set(event_target_value(&ev))
            />
            <p class="hint" id="field-name-hint">
                "It cannot change later: the webhook endpoint is made from it. Endpoint: "
                <code class="endpoint-preview" aria-live="polite">{endpoint}</code>
            </p>
            {error.map(|error| view! { <p class="field-error" id="field-name-error">{error}</p> })}
        </div>
    }
}

/// Bitbucket's page where a user makes an HTTP access token, on the
/// user-facing URL (the API URL when that is empty); none until one of them
/// is an http(s) address.
pub fn token_page(user_facing_url: &str, api_url: &str) -> Option<String> {
    let base = match user_facing_url.trim() {
        "" => api_url.trim(),
        given => given,
    };
    let host = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"))?;
    if host.is_empty() || host.contains(' ') {
        return None;
    }
    Some(format!("{}/plugins/servlet/access-tokens/manage", base.trim_end_matches('/')))
}

/// Where to make the token, as a link once the API URL (or the user-facing
/// URL) is typed below: the fields are outside the island, so it listens to
/// the page's input events. Without JavaScript the server renders the same
/// link for the values the form was answered with.
#[island]
pub fn TokenPageLink(api_url: String, user_facing_url: String) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    let (api, set_api) = signal(api_url);
    let (facing, set_facing) = signal(user_facing_url);
    Effect::new(move |_| set_hydrated.set(true));
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let listening = window_event_listener_untyped("input", move |ev| {
            let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else {
                return;
            };
            match input.name().as_str() {
                "api_url" => set_api.set(input.value()),
                "user_facing_url" => set_facing.set(input.value()),
                _ => {}
            }
        });
        on_cleanup(move || listening.remove());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (set_api, set_facing);
    let page = move || token_page(&facing.get(), &api.get());
    // An <a> without href until there is an address: text, not a link.
    view! {
        <a class="token-page" href=page target="_blank" rel="noopener noreferrer" data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
            <code>{move || page().unwrap_or_else(|| "{user-facing URL}/plugins/servlet/access-tokens/manage".to_owned())}</code>
        </a>
    }
}

/// The description, with a Preview button that asks the server to render it.
#[island]
pub fn DescriptionField(value: String, csrf_token: String) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    let (text, set_text) = signal(value.clone());
    let (preview, set_preview) = signal(None::<Result<String, String>>);
    Effect::new(move |_| set_hydrated.set(true));
    let show_preview = move |_| {
        let body = text.get_untracked();
        let csrf = csrf_token.clone();
        leptos::task::spawn_local(async move {
            set_preview.set(Some(render_on_server(&body, &csrf).await));
        });
    };
    view! {
        <div class="field" data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
            <label for="field-description">"Description"</label>
            <textarea id="field-description" name="description" rows="3" on:input=move |ev| {
                set_text.set(event_target_value(&ev));
                set_preview.set(None);
            }>{value}</textarea>
            <p class="hint">
                "Markdown. "
                <button type="button" class="button link" hidden=move || !hydrated.get() on:click=show_preview>
                    "Preview"
                </button>
            </p>
            {move || match preview.get() {
                Some(Ok(html)) => view! { <div class="prose preview" aria-live="polite" inner_html=html></div> }.into_any(),
                Some(Err(why)) => view! { <p class="field-error">{why}</p> }.into_any(),
                None => ().into_any(),
            }}
        </div>
    }
}

/// POSTs the text to `/markdown/preview`; the HTML is the server's safe rendering.
async fn render_on_server(text: &str, csrf: &str) -> Result<String, String> {
    super::browser::post_text("/markdown/preview", text, csrf)
        .await
        .map_err(|()| "The preview is not available right now; the description is saved as written.".to_owned())
}

/// The submit button of a form that asks Bitbucket: once the form is
/// submitted, the button is disabled (a second click or Enter would send the
/// form again; the server does the work once anyway) and the checks it waits
/// for are listed with the time spent, in a panel fixed in view (style/: no
/// code to scroll, which would weigh more in the bundle than the panel).
#[island]
pub fn CheckingSubmit(label: String, checks: Vec<String>, timeout_seconds: u64) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    let (waited, set_waited) = signal(None::<u64>);
    Effect::new(move |_| set_hydrated.set(true));
    let started = move |ev: leptos::ev::MouseEvent| {
        if waited.get_untracked().is_some() {
            // Already sent: this click (or Enter in a field) would send it again.
            ev.prevent_default();
            return;
        }
        // Not submitted (invalid): nothing is being checked.
        if !form_is_valid(&ev) {
            return;
        }
        set_waited.set(Some(0));
        #[cfg(feature = "hydrate")]
        {
            let _ = set_interval_with_handle(
                move || set_waited.update(|w| *w = w.map(|s| s + 1)),
                std::time::Duration::from_secs(1),
            );
        }
    };
    view! {
        <div class="checking-submit" data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
            <button
                type="submit"
                class="button primary"
                aria-disabled=move || waited.get().is_some().then_some("true")
                on:click=started
            >
                {label}
            </button>
            // Said once when it appears (a status); the seconds counting up are for the eyes only.
            <section class="panel progress" role="status" hidden=move || waited.get().is_none()>
                <h2>
                    "Asking Bitbucket… "
                    <span aria-hidden="true">{move || format!("{} s ", waited.get().unwrap_or(0))}</span>
                    {format!("(Bitgate gives up after {timeout_seconds} s per call)")}
                </h2>
                <ul class="checklist">
                    {checks.into_iter().map(|check| view! { <li class="check pending">{check}</li> }).collect_view()}
                </ul>
            </section>
        </div>
    }
}

/// Whether the clicked button's form passes the browser's own validation
/// (otherwise it is not submitted, and nothing is being checked).
#[cfg(feature = "hydrate")]
fn form_is_valid(ev: &leptos::ev::MouseEvent) -> bool {
    use wasm_bindgen::JsCast;
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlButtonElement>().ok())
        .and_then(|button| button.form())
        .is_none_or(|form| form.check_validity())
}

#[cfg(not(feature = "hydrate"))]
fn form_is_valid(_ev: &leptos::ev::MouseEvent) -> bool {
    false
}
