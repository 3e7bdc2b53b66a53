use leptos::prelude::*;

use crate::components::layout::TableScroll;
use crate::components::when::When;
use crate::{
    components::layout::{EmptyState, Page},
    context::AuditRow,
};

/// `/audit`: the audit log, newest first, with filters. Account admins see
/// everything; space admins the events of the spaces they administer.
#[component]
pub fn AuditPage(page: crate::context::AuditPage) -> impl IntoView {
    let filters = page.filters.clone();
    let action_options = page
        .actions
        .iter()
        .map(|action| {
            let selected = *action == filters.action;
            view! { <option value=action.clone() selected=selected>{action.clone()}</option> }
        })
        .collect_view();
    let space_options = page
        .spaces
        .iter()
        .map(|(id, name)| {
            let selected = *id == filters.space_id;
            view! { <option value=id.clone() selected=selected>{name.clone()}</option> }
        })
        .collect_view();
    let error =
        page.filter_error.clone().map(|message| view! { <div class="flash error" role="alert">{message}</div> });
    let list = if page.events.is_empty() {
        view! {
            <EmptyState title="No events">
                <p>"Nothing matches these filters."</p>
            </EmptyState>
        }
        .into_any()
    } else {
        view! {
            <TableScroll label="Audit events"><table class="audit">
                <thead>
                    <tr>
                        <th>"When (UTC)"</th>
                        <th>"Actor"</th>
                        <th>"Action"</th>
                        <th>"Target"</th>
                        <th>"Space"</th>
                        <th>"From"</th>
                        <th>"Details"</th>
                    </tr>
                </thead>
                <tbody>{page.events.into_iter().map(|event| view! { <AuditLine event /> }).collect_view()}</tbody>
            </table></TableScroll>
        }
        .into_any()
    };
    let older = page.older.map(|href| view! { <a class="button secondary" href=href>"Older events"</a> });
    view! {
        <Page title="Audit log" lede="Who did what, when, and from where. Secrets are never recorded.">
            <form method="get" action="/audit" class="filters">
                <div class="field">
                    <label for="filter-actor">"Actor"</label>
                    <input id="filter-actor" name="actor" value=filters.actor placeholder="email or cli" />
                </div>
                <div class="field">
                    <label for="filter-action">"Action"</label>
                    <select id="filter-action" name="action">
                        <option value="">"any"</option>
                        {action_options}
                    </select>
                </div>
                <div class="field">
                    <label for="filter-since">"Since"</label>
                    <input id="filter-since" name="since" type="date" value=filters.since />
                </div>
                <div class="field">
                    <label for="filter-space">"Space"</label>
                    <select id="filter-space" name="space_id">
                        <option value="">"any"</option>
                        {space_options}
                    </select>
                </div>
                <button type="submit" class="button secondary">"Filter"</button>
                <a class="button secondary" href="/audit">"Clear"</a>
            </form>
            {error}
            {list}
            {older}
        </Page>
    }
}

#[component]
fn AuditLine(event: AuditRow) -> impl IntoView {
    let actor = match event.actor_kind.as_str() {
        "token" => format!("{} (API token)", event.actor),
        _ => event.actor,
    };
    view! {
        <tr>
            <td><When at=event.occurred_at.clone() /></td>
            <td>{actor}</td>
            <td><code>{event.action}</code></td>
            <td>{event.target.unwrap_or_default()}</td>
            <td>{event.space.unwrap_or_else(|| "—".to_owned())}</td>
            <td>{event.client_address.unwrap_or_default()}</td>
            <td>{(!event.details.is_empty()).then(|| view! { <code class="details">{event.details.clone()}</code> })}</td>
        </tr>
    }
}
