use leptos::prelude::*;

use crate::components::layout::TableScroll;
use crate::{
    components::layout::Page,
    context::{FieldDoc, OperationDoc, SchemaDoc, TypeRef},
};

/// `/api/reference`: the REST API, read from the same OpenAPI document that
/// `/api/v1/openapi.json` serves. Plain HTML: no script, no asset from
/// elsewhere.
#[component]
pub fn ApiReferencePage(reference: crate::context::ApiReference) -> impl IntoView {
    let contents = reference
        .sections
        .iter()
        .map(|section| {
            let operations = section
                .operations
                .iter()
                .map(|op| {
                    view! {
                        <li>
                            <a href=format!("#{}", op.id)>
                                <span class=format!("method {}", op.method.to_lowercase())>{op.method.clone()}</span>
                                " "
                                <code>{op.path.clone()}</code>
                            </a>
                        </li>
                    }
                })
                .collect_view();
            view! {
                <li>
                    <a href=format!("#tag-{}", section.tag)>{section.tag.clone()}</a>
                    <ul>{operations}</ul>
                </li>
            }
        })
        .collect_view();
    let sections = reference
        .sections
        .into_iter()
        .map(|section| {
            let anchor = format!("tag-{}", section.tag);
            view! {
                <section class="api-section" id=anchor>
                    <h2>{section.tag}</h2>
                    <p class="muted">{section.description}</p>
                    {section.operations.into_iter().map(|op| view! { <Operation op /> }).collect_view()}
                </section>
            }
        })
        .collect_view();
    let schemas = reference.schemas.into_iter().map(|schema| view! { <Schema schema /> }).collect_view();
    view! {
        <Page title="API reference" lede="The REST API under /api/v1, for automation.">
            <p>
                "The machine-readable description is at "
                <a href="/api/v1/openapi.json"><code>"/api/v1/openapi.json"</code></a>
                " (OpenAPI 3.1): load it into any OpenAPI tool to generate a client."
            </p>
            <div class="prose" inner_html=reference.intro_html></div>
            <nav class="api-contents" aria-label="Operations">
                <ul>{contents.into_any()}</ul>
            </nav>
            {sections.into_any()}
            <section class="api-section" id="schemas">
                <h2>"Schemas"</h2>
                {schemas.into_any()}
            </section>
        </Page>
    }
}

#[component]
fn Operation(op: OperationDoc) -> impl IntoView {
    // Each table's region is named after its operation: the page has dozens.
    let named = |what: &str| format!("{what} of {} {}", op.method, op.path);
    let (parameters_label, responses_label) = (named("Parameters"), named("Responses"));
    let parameters = (!op.parameters.is_empty()).then(|| {
        view! {
            <h4>"Parameters"</h4>
            <FieldTable fields=op.parameters show_location=true label=parameters_label />
        }
    });
    let request = op.request.map(|kind| {
        view! {
            <h4>"Request body"</h4>
            <p>"JSON: " <TypeLink kind /></p>
        }
    });
    let responses = op
        .responses
        .into_iter()
        .map(|response| {
            view! {
                <tr>
                    <td><code>{response.status}</code></td>
                    <td inner_html=response.description_html></td>
                    <td>{response.body.map(|kind| view! { <TypeLink kind /> })}</td>
                </tr>
            }
        })
        .collect_view();
    let method_class = format!("method {}", op.method.to_lowercase());
    view! {
        <article class="api-operation" id=op.id>
            <h3>
                <span class=method_class>{op.method}</span>
                " "
                <code>{op.path}</code>
            </h3>
            <p class="summary">{op.summary}</p>
            <div class="prose" inner_html=op.description_html></div>
            {(!op.authenticated).then(|| view! { <p class="muted">"No authentication."</p> })}
            {parameters}
            {request}
            <h4>"Responses"</h4>
            <TableScroll label=responses_label><table class="compact">
                <thead>
                    <tr>
                        <th>"Status"</th>
                        <th>"Meaning"</th>
                        <th>"Body"</th>
                    </tr>
                </thead>
                <tbody>{responses}</tbody>
            </table></TableScroll>
        </article>
    }
    .into_any()
}

#[component]
fn Schema(schema: SchemaDoc) -> impl IntoView {
    let values = (!schema.values.is_empty()).then(|| {
        view! {
            <p>
                "One of: "
                {schema
                    .values
                    .into_iter()
                    .map(|value| view! { <code>{value}</code> " " })
                    .collect_view()}
            </p>
        }
    });
    let properties = (!schema.properties.is_empty()).then(|| {
        let label = format!("Fields of {}", schema.name);
        view! { <FieldTable fields=schema.properties show_location=false label /> }
    });
    let anchor = format!("schema-{}", schema.name);
    view! {
        <article class="api-schema" id=anchor>
            <h3><code>{schema.name}</code></h3>
            <p>{schema.description}</p>
            {values}
            {properties}
        </article>
    }
    .into_any()
}

#[component]
fn FieldTable(fields: Vec<FieldDoc>, show_location: bool, label: String) -> impl IntoView {
    view! {
        <TableScroll label><table class="compact">
            <thead>
                <tr>
                    <th>"Name"</th>
                    {show_location.then(|| view! { <th>"In"</th> })}
                    <th>"Type"</th>
                    <th>"Required"</th>
                    <th>"Description"</th>
                </tr>
            </thead>
            <tbody>
                {fields
                    .into_iter()
                    .map(|field| {
                        view! {
                            <tr>
                                <td><code>{field.name}</code></td>
                                {show_location.then(|| view! { <td>{field.location.clone()}</td> })}
                                <td><TypeLink kind=field.kind /></td>
                                <td>{if field.required { "yes" } else { "" }}</td>
                                <td inner_html=field.description_html></td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table></TableScroll>
    }
    .into_any()
}

#[component]
fn TypeLink(kind: TypeRef) -> impl IntoView {
    match kind.schema {
        Some(name) => view! { <a href=format!("#schema-{name}")><code>{kind.text}</code></a> }.into_any(),
        None => view! { <code>{kind.text}</code> }.into_any(),
    }
}
