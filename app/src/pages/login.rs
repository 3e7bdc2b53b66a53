use leptos::prelude::*;

use crate::{
    components::{
        form::{CsrfField, FormError, TextField},
        layout::CardPage,
    },
    context::{page_context, query_param},
    islands::password_field::PasswordField,
};

/// `/login`. The form posts to the same path; the server answers a failed
/// attempt with this page again, the email kept and the error above the form.
#[component]
pub fn LoginPage() -> impl IntoView {
    let form = page_context().form.unwrap_or_default();
    let next = {
        let posted = form.value("next");
        if posted.is_empty() {
            query_param("next").unwrap_or_default()
        } else {
            posted
        }
    };
    let notice = match query_param("reason").as_deref() {
        Some("expired") => Some("Your session has expired. Log in again to continue."),
        Some("logged_out") => Some("You have logged out."),
        _ => None,
    };
    view! {
        <CardPage title="Log in">
            {notice.map(|text| view! { <div class="flash info" role="status">{text}</div> })}
            <FormError />
            <form method="post" action="/login" class="stack" novalidate=false>
                <CsrfField />
                <input type="hidden" name="next" value=next />
                <TextField name="email" label="Email" kind="email" autocomplete="username" required=true autofocus=true />
                <PasswordField
                    name="password".to_owned()
                    label="Password".to_owned()
                    autocomplete="current-password".to_owned()
                    error=None
                />
                <button type="submit" class="button primary wide">
                    "Log in"
                </button>
            </form>
        </CardPage>
    }
}
