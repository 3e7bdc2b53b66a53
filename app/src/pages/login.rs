use leptos::prelude::*;

use crate::{
    components::{
        form::{CsrfField, FormError, TextField},
        layout::CardPage,
    },
    context::page_context,
    islands::password_field::PasswordField,
};

/// `/login`. The form posts to the same path; the server answers a failed
/// attempt with this page again, the email kept and the error above the form.
#[component]
pub fn LoginPage(page: crate::context::LoginPage) -> impl IntoView {
    let form = page_context().form.clone().unwrap_or_default();
    let next = {
        let posted = form.value("next");
        if posted.is_empty() {
            page.next
        } else {
            posted
        }
    };
    let notice = match page.reason.as_deref() {
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
