//! Form building blocks: labelled fields with their inline error, and the
//! hidden CSRF field every plain form post of a logged-in user carries.

use leptos::prelude::*;

use crate::context::page_context;

/// A labelled text input with its hint and its error (from the posted form
/// being answered, if any). Keeps the posted value, except for passwords.
#[component]
pub fn TextField(
    #[prop(into)] name: String,
    #[prop(into)] label: String,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional, into)] hint: Option<String>,
    #[prop(optional, into)] autocomplete: Option<&'static str>,
    #[prop(optional)] required: bool,
    #[prop(optional)] autofocus: bool,
    #[prop(optional, into)] value: Option<String>,
) -> impl IntoView {
    let form = page_context().form.clone().unwrap_or_default();
    let error = form.error(&name);
    let posted = form.value(&name);
    let value = if posted.is_empty() { value.unwrap_or_default() } else { posted };
    let id = format!("field-{name}");
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described_by = match (&hint, &error) {
        (Some(_), Some(_)) => Some(format!("{hint_id} {error_id}")),
        (Some(_), None) => Some(hint_id.clone()),
        (None, Some(_)) => Some(error_id.clone()),
        (None, None) => None,
    };
    let has_error = error.is_some();
    view! {
        <div class="field" class:has-error=has_error>
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                value=value
                autocomplete=autocomplete
                required=required
                autofocus=autofocus
                aria-invalid=has_error.then_some("true")
                aria-describedby=described_by
            />
            {hint.map(|hint| view! { <p class="hint" id=hint_id>{hint}</p> })}
            {error.map(|error| view! { <p class="field-error" id=error_id>{error}</p> })}
        </div>
    }
}

/// The error about the whole form, if the posted form had one.
#[component]
pub fn FormError() -> impl IntoView {
    page_context().form.as_ref().and_then(|form| form.form_error.clone()).map(|message| {
        view! {
            <div class="flash error" role="alert">
                {message}
            </div>
        }
    })
}

/// The session's CSRF token, for plain HTML form posts.
#[component]
pub fn CsrfField() -> impl IntoView {
    page_context()
        .viewer
        .as_ref()
        .map(|viewer| view! { <input type="hidden" name="csrf_token" value=viewer.csrf_token.clone() /> })
}

/// This page's one-submission token, for the form that creates something:
/// a double click or a reload of the answer creates once, and the repeat
/// is sent to what the first made (core's `submissions`).
#[component]
pub fn SubmissionField() -> impl IntoView {
    view! { <input type="hidden" name="submission" value=page_context().submission.clone() /> }
}
