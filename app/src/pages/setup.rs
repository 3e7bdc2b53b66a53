use leptos::prelude::*;

use crate::{
    components::{
        form::{FormError, TextField},
        layout::CardPage,
    },
    context::page_context,
    islands::password_field::PasswordField,
};

/// The minimum password length, as the server enforces it.
pub const MIN_PASSWORD_LENGTH: usize = 12;

/// `/setup?token=…`: the one-time link printed on a fresh install, to create
/// the first admin.
#[component]
pub fn SetupPage() -> impl IntoView {
    let form = page_context().form.clone().unwrap_or_default();
    if let Some(why) = form.blocked.clone() {
        return view! {
            <CardPage title="Set up Bitgate">
                <div class="flash error" role="alert">{why}</div>
                <p><a href="/login">"Go to the login page"</a></p>
            </CardPage>
        }
        .into_any();
    }
    let password_error = form.error("password");
    view! {
        <CardPage title="Set up Bitgate">
            <p class="lede">
                "Create the first administrator. This account administers the whole Bitgate account: it can add users, spaces and integrations."
            </p>
            <FormError />
            <form method="post" action="/setup" class="stack">
                <input type="hidden" name="token" value=form.value("token") />
                <TextField name="name" label="Your name" autocomplete="name" required=true autofocus=true />
                <TextField name="email" label="Email" kind="email" autocomplete="username" required=true hint="You log in with it." />
                <PasswordField
                    name="password".to_owned()
                    label="Password".to_owned()
                    autocomplete="new-password".to_owned()
                    min_length=MIN_PASSWORD_LENGTH
                    error=password_error
                />
                <button type="submit" class="button primary wide">
                    "Create administrator"
                </button>
            </form>
        </CardPage>
    }
    .into_any()
}
