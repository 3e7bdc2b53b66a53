//! The outbound log as the stack's and the integration's pages show it:
//! the latest calls Bitgate made to Bitbucket, newest first, and where the
//! API lists the rest.

use leptos::prelude::*;

use crate::{
    components::{
        badge::{Badge, Tone},
        layout::TableScroll,
        when::When,
    },
    context::{OutboundLog, OutboundRow},
};

/// The answer's status, in the colours the other logs use: Bitbucket took
/// it, or not.
fn answer(row: &OutboundRow) -> impl IntoView {
    let tone = if row.ok { Tone::Good } else { Tone::Bad };
    let status = row.status.map_or_else(|| "no answer".to_owned(), |status| status.to_string());
    view! { <Badge tone word=status /> }
}

/// The log's table; `with_stack` adds the stack each call was for (an
/// integration's log spans its stacks), and `empty` is said when there is
/// no call yet.
#[component]
pub fn OutboundTable(log: OutboundLog, with_stack: bool, #[prop(into)] empty: String) -> impl IntoView {
    if log.rows.is_empty() {
        return view! { <p class="muted">{empty}</p> }.into_any();
    }
    let shown = log.rows.len();
    let rows = log
        .rows
        .into_iter()
        .map(|row| {
            let stack = with_stack.then(|| {
                let cell = match row.stack.clone() {
                    Some((id, name)) => view! { <a href=format!("/stacks/{id}")>{name}</a> }.into_any(),
                    None => view! { <span class="muted">"\u{2014}"</span> }.into_any(),
                };
                view! { <td>{cell}</td> }
            });
            view! {
                <tr>
                    <td><When at=row.at.clone() /></td>
                    {stack}
                    <td>{row.what.clone()}</td>
                    <td><code>{format!("{} {}", row.method, row.path)}</code></td>
                    <td>{answer(&row)}</td>
                    <td>{row.message.clone().unwrap_or_else(|| "—".to_owned())}</td>
                    <td>{row.attempt}</td>
                </tr>
            }
        })
        .collect_view();
    let more = log.more.then(|| {
        view! {
            <p class="hint">
                {format!("The latest {shown} calls; the API lists them all: ")}
                <code>{format!("GET {}", log.api_path)}</code>
                " (" <a href="/api/reference#tag-runs">"reference"</a> ")."
            </p>
        }
    });
    view! {
        <TableScroll label="Calls to Bitbucket"><table class="compact">
            <thead>
                <tr>
                    <th>"Time"</th>
                    {with_stack.then(|| view! { <th>"Stack"</th> })}
                    <th>"What"</th>
                    <th>"Request"</th>
                    <th>"Answer"</th>
                    <th>"Bitbucket's message"</th>
                    <th>"Attempt"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table></TableScroll>
        {more}
    }
    .into_any()
}
