use leptos::prelude::*;

/// A value shown in full with a button that copies it to the clipboard and
/// says so. Without JavaScript the value is still there to select.
#[island]
pub fn CopyValue(value: String, #[prop(optional)] label: Option<String>) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    let (copied, set_copied) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let label = label.unwrap_or_else(|| "Copy".to_owned());
    let to_copy = value.clone();
    let copy = move |_| {
        let text = to_copy.clone();
        leptos::task::spawn_local(async move {
            if super::browser::copy_text(&text).await {
                set_copied.set(true);
            }
        });
    };
    view! {
        <div class="copy-value" data-hydrated=move || if hydrated.get() { "true" } else { "false" }>
            <code>{value}</code>
            <button type="button" class="button secondary" hidden=move || !hydrated.get() on:click=copy>
                {move || if copied.get() { "Copied".to_owned() } else { label.clone() }}
            </button>
        </div>
    }
}
