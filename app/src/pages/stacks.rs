//! Stacks: the list, creating one by picking a repository from what
//! Bitbucket shows the integration, and a stack's page (change, re-attach,
//! delete). Plain forms: every step has its own address and works without
//! script.

use leptos::prelude::*;

use crate::{
    components::{
        badge::{Badge, Tone},
        form::{CsrfField, FormError, SubmissionField, TextField},
        layout::{EmptyState, Page, TableScroll},
        outbound::OutboundTable,
        pager::Pager,
        when::When,
    },
    context::{page_context, RunRow, StackRow, StackTriggers},
    pages::integrations::hook_state_in_words,
};

/// A stack's triggers in the admin's words: (field, label, what it does, on).
fn trigger_list(triggers: StackTriggers) -> [(&'static str, &'static str, &'static str, bool); 4] {
    [
        (
            "build_pull_requests",
            "Build pull requests",
            "request a proposed run for pull requests into this branch",
            triggers.build_pull_requests,
        ),
        (
            "all_branches",
            "All branches",
            "request a tracked run for a push to any branch of the repository, not only this one",
            triggers.all_branches,
        ),
        (
            "prune_branches",
            "Prune branches",
            "tell the platform when this branch (with All branches: any branch) is deleted in Bitbucket",
            triggers.prune_branches,
        ),
        (
            "resync_pull_requests",
            "Resync pull requests",
            "request a pull request's proposed run again whenever a push moves its source branch (with Build pull requests)",
            triggers.resync_pull_requests,
        ),
    ]
}

/// The triggers' checkboxes, ticked as `shown` says (the defaults on a new
/// stack, the stored ones on a stack's page), or as posted when the form
/// is answered again.
#[component]
fn TriggerFields(shown: StackTriggers) -> impl IntoView {
    let form = page_context().form.clone().unwrap_or_default();
    let posted = form.value("triggers") == "shown";
    let boxes = trigger_list(shown)
        .into_iter()
        .map(|(field, label, explains, on)| {
            let checked = if posted { form.value(field) == "on" } else { on };
            view! {
                <div class="field checkbox">
                    <label>
                        <input type="checkbox" name=field checked=checked />
                        // One flex item: the name and its explanation read as a sentence.
                        <span><strong>{label}</strong> {format!(" \u{2014} {explains}")}</span>
                    </label>
                </div>
            }
        })
        .collect_view();
    view! {
        <fieldset class="field triggers">
            <legend>"Triggers"</legend>
            // A browser does not post an unticked box: this field says the
            // boxes were on the form, so that a missing one means off.
            <input type="hidden" name="triggers" value="shown" />
            {boxes}
        </fieldset>
    }
}

/// A table of stacks; `empty` is said when there is none.
#[component]
pub fn StackTable(rows: Vec<StackRow>, #[prop(into)] empty: String) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="muted">{empty}</p> }.into_any();
    }
    view! {
        <TableScroll label="Stacks"><table>
            <thead>
                <tr>
                    <th>"Stack"</th>
                    <th>"Space"</th>
                    <th>"Integration"</th>
                    <th>"Repository"</th>
                    <th>"Branch"</th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|row| {
                        let integration = match row.integration {
                            Some(name) => view! { <span>{name}</span> }.into_any(),
                            None => view! { <Badge tone=Tone::Bad word="detached" /> }.into_any(),
                        };
                        view! {
                            <tr>
                                <td><a href=format!("/stacks/{}", row.id)>{row.name}</a></td>
                                <td>{row.space}</td>
                                <td>{integration}</td>
                                <td><code>{row.repository}</code></td>
                                <td><code>{row.branch}</code></td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table></TableScroll>
    }
    .into_any()
}

/// `/stacks`.
#[component]
pub fn StacksPage(page: crate::context::StacksPage) -> impl IntoView {
    let create = page.can_create.then(|| view! { <p><a class="button primary" href="/stacks/new">"New stack"</a></p> });
    let list = if page.rows.is_empty() {
        view! {
            <EmptyState title="No stacks yet">
                <p>"A stack follows one branch of one Bitbucket repository, through an integration its space may use: a default integration, or one of its space or a space above."</p>
            </EmptyState>
        }
        .into_any()
    } else {
        view! { <StackTable rows=page.rows empty="" /> }.into_any()
    };
    view! {
        <Page title="Stacks" lede="Who uses the integrations: one repository and branch each.">
            {create}
            {list}
            <Pager next=page.next_page first=page.first_page />
        </Page>
    }
}

/// `/stacks/new`: space, then integration, then repository and branch.
#[component]
pub fn NewStackPage(page: crate::context::NewStackPage) -> impl IntoView {
    let form = page_context().form.clone().unwrap_or_default();
    let option = |(value, label): (String, String), chosen: &str| {
        let selected = value == chosen;
        view! { <option value=value selected=selected>{label}</option> }
    };
    let spaces = page.spaces.iter().cloned().map(|s| option(s, &page.space_id)).collect_view();
    let step_one = view! {
        <form method="get" action="/stacks/new" class="stacked-form">
            <h2>"1. Space and integration"</h2>
            <div class="field">
                <label for="field-space_id">"Space"</label>
                <select id="field-space_id" name="space_id">{spaces}</select>
            </div>
            {(!page.space_id.is_empty()).then(|| {
                let integrations = page.integrations.iter().cloned().map(|i| option(i, &page.integration_id)).collect_view();
                if page.integrations.is_empty() {
                    view! { <p class="field-error">"No integration may be used in this space: an admin creates a default one, or one for this space or a space above."</p> }.into_any()
                } else {
                    view! {
                        <div class="field">
                            <label for="field-integration_id">"Integration"</label>
                            <select id="field-integration_id" name="integration_id">{integrations}</select>
                            <p class="hint">"The defaults, and the integrations of this space and of the spaces above it."</p>
                        </div>
                    }
                    .into_any()
                }
            })}
            <button type="submit" class="button secondary">"Continue"</button>
        </form>
    };
    let step_two = (!page.integration_id.is_empty()).then(|| {
        let chosen = form.value("repository");
        let repositories = page
            .repositories
            .iter()
            .map(|(full_name, display)| {
                let checked = *full_name == chosen;
                view! {
                    <label class="choice">
                        <input type="radio" name="repository" value=full_name.clone() checked=checked required=true />
                        " " <code>{full_name.clone()}</code> " " <span class="muted">{display.clone()}</span>
                    </label>
                }
            })
            .collect_view();
        let more = page.more_href.clone().map(|href| view! { <p><a href=href>"More repositories"</a></p> });
        let repository_error = form.error("repository").or(page.repositories_error.clone());
        let has_repository_error = repository_error.is_some();
        view! {
            <form method="get" action="/stacks/new" class="inline search">
                <input type="hidden" name="space_id" value=page.space_id.clone() />
                <input type="hidden" name="integration_id" value=page.integration_id.clone() />
                <label for="field-query">"2. Find the repository "</label>
                <input id="field-query" name="query" type="search" value=page.query.clone() placeholder="Part of its name" />
                <button type="submit" class="button secondary">"Search"</button>
            </form>
            <form method="post" action="/stacks/new" class="stacked-form">
                <CsrfField />
                <SubmissionField />
                <input type="hidden" name="space_id" value=page.space_id.clone() />
                <input type="hidden" name="integration_id" value=page.integration_id.clone() />
                <fieldset class="field repositories" class:has-error=has_repository_error>
                    <legend>"Repository"</legend>
                    {if page.repositories.is_empty() && page.repositories_error.is_none() {
                        view! { <p class="muted">"Bitbucket shows no repository with this name to the integration."</p> }.into_any()
                    } else {
                        repositories.into_any()
                    }}
                    {more}
                    {repository_error.map(|e| view! { <p class="field-error">{e}</p> })}
                </fieldset>
                <h2>"3. Name and branch"</h2>
                <TextField name="name" label="Stack name" required=true hint="Unique in its space, such as web-production." />
                <TextField name="branch" label="Branch" required=true value="main" hint="The branch whose pushes and pull requests the stack follows." />
                <TriggerFields shown=page.triggers />
                <button type="submit" class="button primary">"Create stack"</button>
            </form>
        }
    });
    view! {
        <Page title="New stack" lede="Pick the repository from what Bitbucket shows the integration.">
            <FormError />
            {step_one}
            {step_two}
        </Page>
    }
}

/// `/stacks/{id}`.
#[component]
pub fn StackDetailsPage(page: crate::context::StackPage) -> impl IntoView {
    let integration = match (&page.integration, page.integration_link) {
        (Some((id, name)), true) => view! { <a href=format!("/integrations/{id}")>{name.clone()}</a> }.into_any(),
        (Some((_, name)), false) => view! { <span>{name.clone()}</span> }.into_any(),
        (None, _) => view! {
            <Badge tone=Tone::Bad word="detached" />
            " "
            <span>"Its integration was deleted: no webhooks, no runs, until it is attached to another one."</span>
        }
        .into_any(),
    };
    let writes = page.can_write.then(|| {
        let attach = if page.attachable.is_empty() {
            view! { <p class="muted">{format!("No other {} integration may be used in this space.", page.provider)}</p> }.into_any()
        } else {
            let options = page
                .attachable
                .iter()
                .map(|(id, name)| view! { <option value=id.clone()>{name.clone()}</option> })
                .collect_view();
            view! {
                <form method="post" action=format!("/stacks/{}", page.id) class="inline">
                    <CsrfField />
                    <label for="field-integration_id">{if page.integration.is_some() { "Move to integration " } else { "Attach to integration " }}</label>
                    <select id="field-integration_id" name="integration_id">{options}</select>
                    " "
                    <button type="submit" class="button primary">{if page.integration.is_some() { "Move" } else { "Attach" }}</button>
                </form>
                <p class="hint">"Its repository is looked up again through that integration."</p>
            }
            .into_any()
        };
        view! {
            <section class="panel">
                <h2>"Integration"</h2>
                {attach}
            </section>
            <section class="panel">
                <h2>"Change"</h2>
                <form method="post" action=format!("/stacks/{}", page.id) class="stacked-form">
                    <CsrfField />
                    <TextField name="name" label="Name" required=true value=page.name.clone() />
                    <TextField name="branch" label="Branch" required=true value=page.branch.clone() />
                    <TriggerFields shown=page.triggers />
                    <button type="submit" class="button primary">"Save"</button>
                </form>
            </section>
            <section class="panel">
                <h2>"Delete"</h2>
                <form method="post" action=format!("/stacks/{}/delete", page.id) class="inline">
                    <CsrfField />
                    <button type="submit" class="button danger">"Delete this stack"</button>
                </form>
            </section>
        }
    });
    view! {
        <Page title=page.name.clone() lede=format!("Stack in {}", page.space)>
            <FormError />
            <section class="panel">
                <dl class="facts">
                    <dt>"Integration"</dt>
                    <dd>{integration}</dd>
                    <dt>"Repository"</dt>
                    <dd><code>{page.repository.clone()}</code> <span class="muted">{format!(" (Bitbucket id {})", page.repository_id)}</span></dd>
                    <dt>"Webhook"</dt>
                    <dd>{match page.hook.clone() {
                        Some((state, message)) => view! {
                            <span class=format!("hook-state {state}")>{hook_state_in_words(&state)}</span>
                            " " {message}
                        }.into_any(),
                        None => view! { <span class="muted">"Not checked yet."</span> }.into_any(),
                    }}</dd>
                    <dt>"Branch"</dt>
                    <dd>
                        <code>{page.branch.clone()}</code>
                        {page.branch_deleted.then(|| view! { " " <Badge tone=Tone::Bad word="deleted in Bitbucket" /> " A push deleted this branch: no run until it exists again, or change the branch." })}
                    </dd>
                    <dt>"Last triggered"</dt>
                    <dd>{match (page.last_delivery.clone(), page.last_delivery_link) {
                        (Some((id, at)), true) => view! { <a href=format!("/deliveries/{id}")>{at}</a> }.into_any(),
                        (Some((_, at)), false) => view! { <span>{at}</span> }.into_any(),
                        (None, _) => view! { <span class="muted">"No delivery has triggered it yet."</span> }.into_any(),
                    }}</dd>
                    <dt>"Triggers"</dt>
                    <dd>
                        <ul class="triggers">
                            {trigger_list(page.triggers)
                                .into_iter()
                                .map(|(_, label, explains, on)| {
                                    view! {
                                        <li>
                                            <strong>{format!("{label}: {}", if on { "on" } else { "off" })}</strong>
                                            " "
                                            <span class="muted">{format!("\u{2014} {explains}")}</span>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    </dd>
                </dl>
                <p class="muted">{page.created.clone()}</p>
            </section>
            <section class="panel">
                <h2>"Runs"</h2>
                <RunTable stack_id=page.id.clone() runs=page.runs.clone() more=page.more_runs />
            </section>
            <section class="panel">
                <h2>"Outbound calls"</h2>
                <p class="hint">"What Bitgate sent Bitbucket for this stack's runs, newest first."</p>
                <OutboundTable
                    log=page.outbound.clone()
                    with_stack=false
                    empty="No call to Bitbucket yet: build statuses are sent when the platform reports this stack's runs."
                />
            </section>
            {writes}
        </Page>
    }
    .into_any()
}

/// A state as a badge: `good` done well, `bad` gone wrong, any other on its way.
fn badge(word: String, good: &str, bad: &str) -> impl IntoView {
    let tone = if word == good {
        Tone::Good
    } else if word == bad {
        Tone::Bad
    } else {
        Tone::Waiting
    };
    view! { <Badge tone word /> }
}

/// The build statuses and the pull-request comment that show a run in
/// Bitbucket, and whether each was sent.
fn run_statuses(run: &RunRow) -> impl IntoView {
    if run.statuses.is_empty() && run.comment.is_none() {
        return view! { <span class="muted">"No build status in Bitbucket for this run."</span> }.into_any();
    }
    let items = run
        .statuses
        .iter()
        .map(|status| {
            let message = status.message.clone().map(|m| format!(": {m}"));
            view! {
                <li>
                    <code>{status.key.clone()}</code>
                    " " {status.state.clone()} " "
                    {badge(status.sent.clone(), "sent", "failed")}
                    {message}
                </li>
            }
        })
        .collect_view();
    let comment = run.comment.as_ref().map(|comment| {
        let message = comment.message.clone().map(|m| format!(": {m}"));
        view! {
            <li>
                {format!("Comment on pull request #{} ", comment.pull_request_id)}
                {badge(comment.sent.clone(), "sent", "failed")}
                {message}
            </li>
        }
    });
    view! { <ul class="statuses">{items}{comment}</ul> }.into_any()
}

/// A stack's latest runs, each with its build statuses under it.
#[component]
fn RunTable(stack_id: String, runs: Vec<RunRow>, more: bool) -> impl IntoView {
    if runs.is_empty() {
        return view! {
            <p class="muted">
                "No run reported yet. The platform reports the work it does for this stack with "
                <code>{format!("PUT /api/v1/stacks/{stack_id}/runs/{{key}}")}</code>
                ", using an API token of a writer of this space; its runs show here, with the build statuses they put in Bitbucket."
            </p>
        }
        .into_any();
    }
    let shown = runs.len();
    let rows = runs
        .into_iter()
        .map(|run| {
            let key = match run.url.clone() {
                Some(url) => {
                    view! { <a href=url rel="noopener noreferrer"><code>{run.key.clone()}</code></a> }.into_any()
                }
                None => view! { <code>{run.key.clone()}</code> }.into_any(),
            };
            let statuses = run_statuses(&run);
            view! {
                <tr class="run">
                    <td>{key}</td>
                    <td>{run.title.clone().unwrap_or_default()}</td>
                    <td>{run.kind.clone()}</td>
                    <td>{badge(run.state.clone(), "succeeded", "failed")}</td>
                    <td><code>{run.commit.clone()}</code></td>
                    <td>{run.pull_request_id.map_or_else(|| "—".to_owned(), |id| format!("#{id}"))}</td>
                    <td><When at=run.updated_at.clone() /></td>
                </tr>
                <tr class="run-statuses">
                    <td colspan="7">{statuses}</td>
                </tr>
            }
        })
        .collect_view();
    let more = more.then(|| {
        view! {
            <p class="hint">
                {format!("The latest {shown} runs; the API lists them all: ")}
                <code>{format!("GET /api/v1/stacks/{stack_id}/runs")}</code>
                " (" <a href="/api/reference#tag-runs">"reference"</a> ")."
            </p>
        }
    });
    view! {
        <TableScroll label="Runs"><table class="compact runs">
            <thead>
                <tr>
                    <th>"Run"</th>
                    <th>"Title"</th>
                    <th>"Kind"</th>
                    <th>"State"</th>
                    <th>"Commit"</th>
                    <th>"Pull request"</th>
                    <th>"Updated"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table></TableScroll>
        {more}
    }
    .into_any()
}
