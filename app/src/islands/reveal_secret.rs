//! The webhook secret, masked until an admin reveals it. Revealing is a
//! POST (audited, answered `no-store`): with JavaScript the secret appears
//! in place and the page stays where it was; without, the form posts and
//! the answer is the page with the secret shown.

use leptos::prelude::*;

#[island]
pub fn RevealSecret(integration_id: String, csrf_token: String) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    let (secret, set_secret) = signal(None::<String>);
    let (failed, set_failed) = signal(false);
    let (copied, set_copied) = signal(false);
    // One request at a time: a double click reveals (and is audited) once.
    let (pending, set_pending) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let action = format!("/integrations/{integration_id}/webhook/reveal");
    // One button, Reveal then Copy: the keyboard's focus stays where it was.
    let submitted = {
        let (action, csrf) = (action.clone(), csrf_token.clone());
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if let Some(text) = secret.get_untracked() {
                leptos::task::spawn_local(async move {
                    if super::browser::copy_text(&text).await {
                        set_copied.set(true);
                    }
                });
                return;
            }
            if pending.get_untracked() {
                return;
            }
            set_pending.set(true);
            let (action, csrf) = (action.clone(), csrf.clone());
            leptos::task::spawn_local(async move {
                match super::browser::post_text(&action, "", &csrf).await {
                    Ok(revealed) => set_secret.set(Some(revealed)),
                    Err(()) => set_failed.set(true),
                }
                set_pending.set(false);
            });
        }
    };
    view! {
        <div class="reveal-secret" data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
            <form method="post" action=action class="copy-value" on:submit=submitted>
                <input type="hidden" name="csrf_token" value=csrf_token />
                <code aria-hidden=move || secret.get().is_none().then_some("true")>
                    {move || secret.get().unwrap_or_else(|| "••••••••••••".to_owned())}
                </code>
                <span class="visually-hidden" hidden=move || secret.get().is_some()>"The secret is hidden."</span>
                <button type="submit" class="button secondary">
                    {move || match (secret.get().is_some(), copied.get()) {
                        (false, _) => "Reveal secret",
                        (true, false) => "Copy",
                        (true, true) => "Copied",
                    }}
                </button>
            </form>
            <p class="field-error" role="alert" hidden=move || !failed.get()>
                "The secret could not be revealed right now: reload the page and try again."
            </p>
        </div>
    }
}
