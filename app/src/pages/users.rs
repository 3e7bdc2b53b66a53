use leptos::prelude::*;

use crate::{
    components::{
        form::{CsrfField, FormError, SubmissionField, TextField},
        layout::{Page, TableScroll},
        pager::Pager,
        when::When,
    },
    context::{page_context, UserRow},
};

/// `/users`: account admins list, create, disable and re-enable users.
#[component]
pub fn UsersPage(page: crate::context::UsersPage) -> impl IntoView {
    let context = page_context();
    let users = page.users;
    let (next_page, first_page) = (page.next_page, page.first_page);
    let viewer_id = context.viewer.as_ref().map(|v| v.user_id.clone()).unwrap_or_default();
    let checked_admin = context.form.as_ref().is_some_and(|f| f.value("account_admin") == "on");
    view! {
        <Page title="Users" lede="Everyone who can log in to Bitgate. Disabling a user ends their sessions and API tokens at once.">
            <section class="panel">
                <h2>"Create a user"</h2>
                <FormError />
                <form method="post" action="/users" class="stacked-form">
                    <CsrfField />
                    <SubmissionField />
                    <TextField name="email" label="Email" kind="email" required=true autocomplete="off" />
                    <TextField name="name" label="Name" hint="Shown in the console; the part of the email before @ when left empty." />
                    <TextField
                        name="password"
                        label="Initial password"
                        kind="password"
                        required=true
                        autocomplete="new-password"
                        hint="At least 12 characters. Give it to the user over a channel you trust."
                    />
                    <div class="field checkbox">
                        <label>
                            <input type="checkbox" name="account_admin" checked=checked_admin />
                            " Account admin (admin of root: manages users, spaces and every integration)"
                        </label>
                    </div>
                    <p class="hint">"To give a role on one space, add the user as a member on that space's page."</p>
                    <button type="submit" class="button primary">"Create user"</button>
                </form>
            </section>
            <form method="post" id="user-actions" action="/users" hidden>
                <CsrfField />
            </form>
            <TableScroll label="Users"><table>
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Email"</th>
                        <th>"Account admin"</th>
                        <th>"Status"</th>
                        <th>"Created"</th>
                        <th><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {users
                        .into_iter()
                        .map(|user| {
                            let is_viewer = user.id == viewer_id;
                            view! { <UserLine user is_viewer /> }
                        })
                        .collect_view()}
                </tbody>
            </table></TableScroll>
            <Pager next=next_page first=first_page />
        </Page>
    }
}

#[component]
fn UserLine(user: UserRow, is_viewer: bool) -> impl IntoView {
    let (verb, label, class) =
        if user.disabled { ("enable", "Enable", "button secondary") } else { ("disable", "Disable", "button danger") };
    let action = format!("/users/{}/{verb}", user.id);
    let aria = format!("{label} {}", user.email);
    // An admin does not lock themselves out from this page. The button
    // posts the one form above the table (its CSRF field once, not once a row).
    let button = (!is_viewer).then(|| {
        view! {
            <button type="submit" form="user-actions" formaction=action class=class aria-label=aria>
                {label}
            </button>
        }
    });
    view! {
        <tr class:muted=user.disabled>
            <td>{user.name}{is_viewer.then_some(" (you)")}</td>
            <td>{user.email}</td>
            <td>{if user.account_admin { "yes" } else { "no" }}</td>
            <td>{if user.disabled { "disabled" } else { "active" }}</td>
            <td><When at=user.created_at.clone() /></td>
            <td class="actions">{button}</td>
        </tr>
    }
}
