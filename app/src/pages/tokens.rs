use crate::components::when::When;
use leptos::prelude::*;

use crate::components::layout::TableScroll;
use crate::{
    components::{
        form::{CsrfField, FormError, SubmissionField, TextField},
        layout::{EmptyState, Page},
        pager::Pager,
    },
    context::TokenRow,
    islands::copy_button::CopyValue,
};

/// `/tokens`: the viewer's API tokens: create one (shown once), see when
/// each was last used, revoke.
#[component]
pub fn TokensPage(data: crate::context::TokensPage) -> impl IntoView {
    let created = data.created.map(|(name, secret)| {
        view! {
            <section class="panel reveal" aria-live="polite">
                <h2>{format!("Token \u{201c}{name}\u{201d} created")}</h2>
                <p>"Copy it now: Bitgate stores only a digest of it and will not show it again."</p>
                <CopyValue value=secret />
            </section>
        }
    });
    // A repeat of the form (a double click) took the place of the page that
    // showed the secret, which the browser most likely dropped: say so, and
    // offer to revoke that token (names need not be unique).
    let sent_again = data.sent_again.map(|token| {
        let action = format!("/tokens/{}/revoke", token.id);
        view! {
            <section class="panel notice">
                <h2>{format!("Token \u{201c}{}\u{201d} was created; its secret cannot be shown again", token.name)}</h2>
                <p>
                    "The form was sent twice. Its first sending made this token, and only its answer showed the \
                     secret, which Bitgate does not keep; the browser most likely dropped that answer for this \
                     one. If you did not copy the secret, revoke this token and create another."
                </p>
                <form method="post" action=action class="inline">
                    <CsrfField />
                    <button type="submit" class="button secondary">{format!("Revoke \u{201c}{}\u{201d}", token.name)}</button>
                </form>
            </section>
        }
    });
    let (next_page, first_page) = (data.next_page, data.first_page);
    let rows = if data.tokens.is_empty() {
        view! {
            <EmptyState title="No API tokens">
                <p>"A token lets automation (a CI job, Terraform, scripts) call the REST API as you, with your roles."</p>
            </EmptyState>
        }
        .into_any()
    } else {
        view! {
            <form method="post" id="token-actions" action="/tokens" hidden>
                <CsrfField />
            </form>
            <TableScroll label="API tokens"><table>
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Token"</th>
                        <th>"Created"</th>
                        <th>"Expires"</th>
                        <th>"Last used"</th>
                        <th><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{data.tokens.into_iter().map(|token| view! { <TokenLine token /> }).collect_view()}</tbody>
            </table></TableScroll>
        }
        .into_any()
    };
    view! {
        <Page title="API tokens" lede="Tokens for the REST API. They act with your roles and stop working when you are disabled.">
            {created}
            {sent_again}
            <section class="panel">
                <h2>"Create a token"</h2>
                <FormError />
                <form method="post" action="/tokens" class="inline-form">
                    <CsrfField />
                    <SubmissionField />
                    <TextField name="name" label="Name" required=true hint="What uses it, such as \"terraform\"." />
                    <div class="field">
                        <label for="field-expires">"Expires"</label>
                        <select id="field-expires" name="expires">
                            <option value="30d">"In 30 days"</option>
                            <option value="90d" selected=true>"In 90 days"</option>
                            <option value="365d">"In a year"</option>
                            <option value="never">"Never"</option>
                        </select>
                    </div>
                    <button type="submit" class="button primary">"Create token"</button>
                </form>
            </section>
            {rows}
            <Pager next=next_page first=first_page />
        </Page>
    }
}

#[component]
fn TokenLine(token: TokenRow) -> impl IntoView {
    let action = format!("/tokens/{}/revoke", token.id);
    // The button posts the one form above the table: its CSRF field once, not once a row.
    view! {
        <tr>
            <td>{token.name.clone()}</td>
            <td><code>{format!("{}…", token.prefix)}</code></td>
            <td><When at=token.created_at /></td>
            <td><When at=token.expires_at.unwrap_or_else(|| "never".to_owned()) /></td>
            <td><When at=token.last_used_at.unwrap_or_else(|| "never".to_owned()) /></td>
            <td class="actions">
                <button type="submit" form="token-actions" formaction=action class="button secondary" aria-label=format!("Revoke {}", token.name)>
                    "Revoke"
                </button>
            </td>
        </tr>
    }
}
