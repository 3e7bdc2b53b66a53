use leptos::prelude::*;

use crate::components::layout::TableScroll;
use crate::{
    components::{
        form::{CsrfField, FormError, SubmissionField, TextField},
        layout::{EmptyState, Page},
    },
    context::{page_context, MemberRow, SpaceRow},
};

/// `/spaces`: the spaces the viewer can see, and a form to create a child
/// space under one they administer.
#[component]
pub fn SpacesPage(page: crate::context::SpacesPage) -> impl IntoView {
    let context = page_context();
    let spaces = page.spaces;
    let parents: Vec<SpaceRow> = spaces.iter().filter(|s| s.role == "admin").cloned().collect();
    let posted_parent = context.form.as_ref().map(|f| f.value("parent_id")).unwrap_or_default();
    let create = (!parents.is_empty()).then(|| {
        view! {
            <section class="panel">
                <h2>"Create a space"</h2>
                <FormError />
                <form method="post" action="/spaces" class="inline-form">
                    <CsrfField />
                    <SubmissionField />
                    <TextField name="name" label="Name" required=true hint="Unique in the account." />
                    <div class="field">
                        <label for="field-parent_id">"Inside"</label>
                        <select id="field-parent_id" name="parent_id">
                            {parents
                                .into_iter()
                                .map(|p| {
                                    let selected = p.id == posted_parent;
                                    view! { <option value=p.id selected=selected>{p.name}</option> }
                                })
                                .collect_view()}
                        </select>
                    </div>
                    <button type="submit" class="button primary">"Create space"</button>
                </form>
            </section>
        }
    });
    let list = if spaces.is_empty() {
        view! {
            <EmptyState title="No spaces">
                <p>"You have no role in any space yet. An administrator can add you to one."</p>
            </EmptyState>
        }
        .into_any()
    } else {
        view! {
            <TableScroll label="Spaces"><table>
                <thead>
                    <tr>
                        <th>"Space"</th>
                        <th>"Inside"</th>
                        <th>"Your role"</th>
                        <th>"Description"</th>
                    </tr>
                </thead>
                <tbody>
                    {spaces
                        .into_iter()
                        .map(|s| {
                            view! {
                                <tr>
                                    <td><a href=format!("/spaces/{}", s.id)>{s.name}</a></td>
                                    <td>{s.parent.unwrap_or_else(|| "—".to_owned())}</td>
                                    <td>{s.role}</td>
                                    <td>{s.description}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table></TableScroll>
        }
        .into_any()
    };
    view! {
        <Page title="Spaces" lede="Spaces group stacks and integrations; a role on a space holds on the spaces inside it.">
            {create}
            {list}
        </Page>
    }
}

/// `/spaces/{id}`: a space, and for its admins its members.
#[component]
pub fn SpacePage(page: crate::context::SpacePage) -> impl IntoView {
    let space = page.space;
    let is_admin = page.members.is_some();
    let settings = is_admin.then(|| view! { <SpaceSettings space=space.clone() is_root=page.is_root /> });
    let audit_link = is_admin.then(|| {
        view! { <p><a href=format!("/audit?space_id={}", space.id)>"Audit log of this space"</a></p> }
    });
    let members = page.members.map(|members| {
        let action = format!("/spaces/{}/members", space.id);
        let space_id = space.id.clone();
        view! {
            <section class="panel">
                <h2>"Add a member"</h2>
                <FormError />
                <form method="post" action=action class="inline-form">
                    <CsrfField />
                    <TextField name="email" label="Email" kind="email" required=true hint="The user must exist already." />
                    <div class="field">
                        <label for="field-role">"Role"</label>
                        <select id="field-role" name="role">
                            <option value="read">"read: sees it"</option>
                            <option value="write">"write: manages stacks"</option>
                            <option value="admin">"admin: manages everything"</option>
                        </select>
                    </div>
                    <button type="submit" class="button primary">"Add member"</button>
                </form>
            </section>
            <TableScroll label="Members"><table>
                <thead>
                    <tr>
                        <th>"Member"</th>
                        <th>"Email"</th>
                        <th>"Role"</th>
                        <th><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {members.is_empty().then(|| view! {
                        <tr class="empty"><td colspan="4">"No member yet: account admins see it; add the people who work here above."</td></tr>
                    })}
                    {members.into_iter().map(|m| view! { <MemberLine member=m space_id=space_id.clone() /> }).collect_view()}
                </tbody>
            </table></TableScroll>
        }
    });
    view! {
        <Page title=format!("Space {}", space.name) lede=space.description.clone()>
            <p class="muted">{format!("Your role here: {}", space.role)}</p>
            {audit_link}
            {members}
            {settings}
        </Page>
    }
    .into_any()
}

/// Rename the space or change its description (its admins).
#[component]
fn SpaceSettings(space: SpaceRow, is_root: bool) -> impl IntoView {
    let form = page_context().form.clone().unwrap_or_default();
    let description = match form.value("description") {
        posted if form.values.iter().any(|(k, _)| k == "description") => posted,
        _ => space.description.clone(),
    };
    let description_error = form.error("description");
    let has_description_error = description_error.is_some();
    let name_field = if is_root {
        view! { <p class="hint">"The root space keeps its name."</p> }.into_any()
    } else {
        view! {
            <TextField name="name" label="Name" required=true value=space.name.clone() hint="Unique in the account." />
        }
        .into_any()
    };
    view! {
        <section class="panel">
            <h2>"Settings"</h2>
            <form method="post" action=format!("/spaces/{}", space.id) class="stacked-form">
                <CsrfField />
                {name_field}
                <div class="field" class:has-error=has_description_error>
                    <label for="field-description">"Description"</label>
                    <textarea id="field-description" name="description" rows="3">{description}</textarea>
                    {description_error.map(|e| view! { <p class="field-error">{e}</p> })}
                </div>
                <button type="submit" class="button primary">"Save"</button>
            </form>
        </section>
    }
}

#[component]
fn MemberLine(member: MemberRow, space_id: String) -> impl IntoView {
    let action = format!("/spaces/{space_id}/members/{}/remove", member.user_id);
    view! {
        <tr>
            <td>{member.name}</td>
            <td>{member.email.clone()}</td>
            <td>{member.role}</td>
            <td class="actions">
                <form method="post" action=action class="inline">
                    <CsrfField />
                    <button type="submit" class="button secondary" aria-label=format!("Remove {}", member.email)>
                        "Remove"
                    </button>
                </form>
            </td>
        </tr>
    }
}
