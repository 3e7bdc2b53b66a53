use leptos::prelude::*;

/// A password input with a Show/Hide toggle and, when a minimum length is
/// given, a live count of what is still missing. Without JavaScript it is a
/// plain password input with a static hint.
#[island]
pub fn PasswordField(
    name: String,
    label: String,
    autocomplete: String,
    #[prop(optional)] min_length: Option<usize>,
    /// The error to show under the field (from the posted form).
    error: Option<String>,
) -> impl IntoView {
    let (visible, set_visible) = signal(false);
    let (hydrated, set_hydrated) = signal(false);
    let (length, set_length) = signal(0usize);
    Effect::new(move |_| set_hydrated.set(true));

    let id = format!("field-{name}");
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let has_error = error.is_some();
    let hint = min_length.map(|min| {
        view! {
            // The error of the last submission says it already until the user types.
            <p class="hint" id=hint_id.clone() aria-live="polite" hidden=move || has_error && length.get() == 0>
                {move || {
                    let typed = length.get();
                    if !hydrated.get() || typed == 0 {
                        format!("Use at least {min} characters.")
                    } else if typed >= min {
                        "Long enough.".to_owned()
                    } else {
                        format!("{} more characters needed (at least {min}).", min - typed)
                    }
                }}
            </p>
        }
    });
    view! {
        <div
            class="field password-field"
            class:has-error=has_error
            data-hydrated=move || if hydrated.get() { "true" } else { "false" }
        >
            <label for=id.clone()>{label}</label>
            <div class="input-with-action">
                <input
                    id=id
                    name=name
                    type=move || if visible.get() { "text" } else { "password" }
                    autocomplete=autocomplete
                    required=true
                    aria-invalid=has_error.then_some("true")
                    aria-describedby=min_length.map(|_| hint_id.clone())
                    on:input=move |event| set_length.set(event_target_value(&event).chars().count())
                />
                <button
                    type="button"
                    class="button secondary"
                    hidden=move || !hydrated.get()
                    aria-pressed=move || if visible.get() { "true" } else { "false" }
                    on:click=move |_| set_visible.update(|shown| *shown = !*shown)
                >
                    {move || if visible.get() { "Hide" } else { "Show" }}
                </button>
            </div>
            {hint}
            {error.map(|error| view! { <p class="field-error" id=error_id>{error}</p> })}
        </div>
    }
}
