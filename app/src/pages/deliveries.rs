//! The delivery log of an integration, and one delivery: what Bitbucket
//! sent, whether its signature held, what Bitgate made of it, and the
//! stacks it matched. Plain server-rendered pages; the filters are a GET
//! form, so that a filtered log has its own address.

use crate::components::when::{exact_text, When};
use leptos::prelude::*;

use crate::components::{
    badge,
    layout::{EmptyState, Page, TableScroll},
    pager::Pager,
};

#[component]
pub fn DeliveriesPage(page: crate::context::DeliveriesPage) -> impl IntoView {
    let outcomes = ["accepted", "ignored", "duplicate", "rejected"]
        .into_iter()
        .map(|o| view! { <option value=o selected=page.outcome == o>{o}</option> })
        .collect_view();
    let filtered = !(page.outcome.is_empty() && page.event.is_empty());
    let rows = page
        .rows
        .iter()
        .map(|row| {
            let reason = if row.reason.is_empty() { String::new() } else { format!(" ({})", row.reason) };
            view! {
                <tr>
                    <td><a href=format!("/deliveries/{}", row.id)><When at=row.received_at.clone() /></a></td>
                    <td><code class="token">{row.event_key.clone()}</code></td>
                    <td>{row.repository.clone()}</td>
                    <td><code class="muted">{row.request_id.clone()}</code></td>
                    <td>{badge::signature(&row.signature)}</td>
                    <td>{badge::delivery_outcome(&row.outcome)} {reason}</td>
                    <td>{row.stacks}</td>
                </tr>
            }
        })
        .collect_view();
    let table = if page.rows.is_empty() && filtered {
        view! { <p class="muted">"No delivery matches these filters. " <a href=format!("/integrations/{}/deliveries", page.integration_id)>"Show all"</a></p> }.into_any()
    } else if page.rows.is_empty() {
        view! {
            <EmptyState title="No delivery yet">
                <p>"Bitbucket has not called this integration's webhook endpoint yet. Set the webhook up as its page says; Bitbucket's Test connection sends a ping that shows up here."</p>
            </EmptyState>
        }
        .into_any()
    } else {
        view! {
            <TableScroll label="Deliveries"><table>
                <thead><tr><th>"Received"</th><th>"Event"</th><th>"Repository"</th><th>"Request id"</th><th>"Signature"</th><th>"Outcome"</th><th>"Stacks"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table></TableScroll>
        }
        .into_any()
    };
    let dropped = (page.dropped_today > 0).then(|| {
        view! { <p class="muted">{format!("{} more rejected requests in the last day were counted but not recorded (at most 60 a minute are).", page.dropped_today)}</p> }
    });
    view! {
        <Page title=format!("Deliveries of {}", page.integration_name) lede="Every request Bitbucket made to its webhook endpoint, newest first.">
            <p><a href=format!("/integrations/{}", page.integration_id)>"Back to the integration"</a></p>
            <form method="get" action=format!("/integrations/{}/deliveries", page.integration_id) class="filters" aria-label="Filter deliveries">
                <label>"Outcome " <select name="outcome"><option value="">"Any"</option>{outcomes}</select></label>
                <label>"Event " <input type="text" name="event" value=page.event.clone() placeholder="repo:push" /></label>
                <button type="submit" class="button secondary">"Filter"</button>
            </form>
            {dropped}
            {table}
            <Pager next=page.next_page.clone() first=page.first_page.clone() />
        </Page>
    }
    .into_any()
}

#[component]
pub fn DeliveryDetailsPage(page: crate::context::DeliveryPage) -> impl IntoView {
    let row = page.row.clone();
    let headers = page
        .headers
        .iter()
        .map(|(name, value)| view! { <tr><td><code>{name.clone()}</code></td><td><code>{value.clone()}</code></td></tr> })
        .collect_view();
    let stacks = if page.stacks.is_empty() {
        view! { <span class="muted">"none"</span> }.into_any()
    } else {
        page.stacks
            .iter()
            .map(|(id, name)| view! { <a href=format!("/stacks/{id}")>{name.clone()}</a> " " })
            .collect_view()
            .into_any()
    };
    let body = match page.body.clone() {
        // Focusable and named: a keyboard can scroll a long body too.
        Some(body) => {
            view! { <pre class="json" role="region" tabindex="0" aria-label="The delivery's body">{body}</pre> }
                .into_any()
        }
        None => view! { <p class="muted">"Bodies are kept for accepted deliveries only."</p> }.into_any(),
    };
    view! {
        <Page title=format!("Delivery {}", row.event_key) lede=format!("Received {} by {}", exact_text(&row.received_at), page.integration_name)>
            <p><a href=format!("/integrations/{}/deliveries", page.integration_id)>"Back to the delivery log"</a></p>
            <section class="panel">
                <dl class="facts">
                    <dt>"Outcome"</dt>
                    <dd>{badge::delivery_outcome(&row.outcome)} " " {row.reason.clone()}</dd>
                    <dt>"Signature"</dt>
                    <dd>{badge::signature(&row.signature)}</dd>
                    <dt>"Repository"</dt>
                    <dd>{row.repository.clone()}</dd>
                    <dt>"Request id"</dt>
                    <dd><code>{row.request_id.clone()}</code></dd>
                    <dt>"Sent again"</dt>
                    <dd>{sent_again(row.duplicate_count)}</dd>
                    <dt>"Stacks matched"</dt>
                    <dd>{stacks}</dd>
                </dl>
            </section>
            <section class="panel">
                <h2>"Headers"</h2>
                <TableScroll label="Headers"><table class="compact"><tbody>{headers}</tbody></table></TableScroll>
            </section>
            <section class="panel">
                <h2>"Body"</h2>
                {body}
            </section>
        </Page>
    }
    .into_any()
}

/// How many times Bitbucket sent the delivery again, as a sentence.
fn sent_again(count: i32) -> String {
    match count {
        0 => "never".to_owned(),
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sent_again_reads_as_a_sentence() {
        let said: Vec<String> = [0, 1, 2, 7].into_iter().map(super::sent_again).collect();
        assert_eq!(said, ["never", "once", "twice", "7 times"]);
    }
}
