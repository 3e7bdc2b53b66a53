//! `/integrations/import`: integrations as code in the browser. Choose a
//! file (or paste it), see what it would create, change and leave alone,
//! then apply it; and download what you administer as the same YAML.
//! Plain forms, no island: both steps post the file to the server, which
//! checks everything (Bitbucket connections included) each time.

use leptos::prelude::*;

use crate::{
    components::{form::CsrfField, layout::Page},
    context::{ImportPage, ImportPreview},
};

#[component]
pub fn ImportIntegrationsPage(page: ImportPage) -> impl IntoView {
    // Multipart forms carry the CSRF token in a field (the middleware reads
    // it there), never in the action's URL.
    let action = "/integrations/import";
    let problems = (!page.problems.is_empty()).then(|| problem_list(&page.problems));
    let preview = page.preview.clone().map(|preview| preview_section(preview, &page, action));
    let space_options = page
        .spaces
        .iter()
        .map(|(id, name)| {
            let selected = *id == page.space_id || (page.space_id.is_empty() && name == "root");
            view! { <option value=id.clone() selected=selected>{name.clone()}</option> }
        })
        .collect_view();
    let text = if page.preview.is_some() { String::new() } else { page.text.clone() };
    view! {
        <Page
            title="Import integrations"
            lede="Create or update integrations from a YAML file: the one Bitgate exports, or CDS bitbucketserver entries. Nothing is written until you apply the preview."
        >
            {problems}
            {preview}
            <form method="post" action=action enctype="multipart/form-data" class="stacked-form" aria-label="Choose a file">
                <CsrfField />
                <input type="hidden" name="step" value="preview" />
                <div class="field">
                    <label for="field-file">"Integrations file"</label>
                    <input id="field-file" name="file" type="file" accept=".yaml,.yml,application/yaml,text/yaml" />
                    <p class="hint">"YAML, at most 1 MiB. Secrets left as their \u{201c}<fill in\u{2026}>\u{201d} placeholder keep the stored ones."</p>
                </div>
                <div class="field">
                    <label for="field-text">"Or paste it"</label>
                    <textarea id="field-text" name="text" rows="12" class="code" spellcheck="false">{text}</textarea>
                </div>
                <div class="field">
                    <label for="field-space">"Entries that name no space go to"</label>
                    <select id="field-space" name="space_id">{space_options}</select>
                    <p class="hint">"CDS entries never name one."</p>
                </div>
                <button type="submit" class="button primary">"Preview"</button>
            </form>
            <section class="panel">
                <h2>"Export"</h2>
                <p>"The integrations you administer, as the same YAML (secrets left as placeholders): keep it in a repository, or import it into another Bitgate."</p>
                <p><a class="button secondary" href="/integrations/export" download="bitgate-integrations.yaml">"Download YAML"</a></p>
            </section>
        </Page>
    }
}

fn problem_list(problems: &[(String, String)]) -> impl IntoView {
    let heading = match problems.len() {
        1 => "Nothing was imported: fix this problem and try again.".to_owned(),
        n => format!("Nothing was imported: fix these {n} problems and try again."),
    };
    let items = problems
        .iter()
        .map(|(place, message)| view! { <li><code>{place.clone()}</code>": "{message.clone()}</li> })
        .collect_view();
    view! {
        <div class="flash error" role="alert">
            <p>{heading}</p>
            <ul class="problems">{items}</ul>
        </div>
    }
}

fn preview_section(preview: ImportPreview, page: &ImportPage, action: &'static str) -> impl IntoView {
    let changes_nothing = preview.created.is_empty() && preview.updated.is_empty();
    let group = |title: &'static str, class: &'static str, names: Vec<String>| {
        let body = if names.is_empty() {
            view! { <p class="muted">"None."</p> }.into_any()
        } else {
            view! { <ul>{names.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul> }.into_any()
        };
        view! {
            <div class=format!("import-group {class}")>
                <h3>{title}</h3>
                {body}
            </div>
        }
    };
    let apply = if changes_nothing {
        view! { <p class="flash info">"Nothing to change: every integration is as the file says."</p> }.into_any()
    } else {
        view! {
            <form method="post" action=action enctype="multipart/form-data" aria-label="Apply the import">
                <CsrfField />
                <input type="hidden" name="step" value="apply" />
                <input type="hidden" name="space_id" value=page.space_id.clone() />
                <textarea name="text" hidden>{page.text.clone()}</textarea>
                <button type="submit" class="button primary">"Apply import"</button>
                " "
                <a href="/integrations/import">"Cancel"</a>
            </form>
        }
        .into_any()
    };
    view! {
        <section class="panel" aria-label="Preview">
            <h2>"Preview"</h2>
            <p>"Every entry passed its checks, Bitbucket connections included. Applying writes all of it, or nothing."</p>
            <div class="import-groups">
                {group("Will be created", "created", preview.created)}
                {group("Will be changed", "updated", preview.updated)}
                {group("Left alone", "unchanged", preview.unchanged)}
            </div>
            {apply}
        </section>
    }
}
