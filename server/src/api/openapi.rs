//! `/api/v1/openapi.json`: the OpenAPI 3.1 document of the API, generated
//! from the handlers' `#[utoipa::path]` descriptions and the types they take
//! and return, then completed here with what every operation shares: the
//! security schemes, the error answers, unique operation ids.

use std::sync::Arc;

use serde_json::{json, Value};

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use utoipa::{
    openapi::{
        content::ContentBuilder,
        info::InfoBuilder,
        path::{HttpMethod, Operation, OperationBuilder, PathItem},
        response::{ResponseBuilder, Responses},
        schema::ObjectBuilder,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
        tag::TagBuilder,
        OpenApi, Ref, RefOr,
    },
    PartialSchema, ToSchema,
};

use super::error::ErrorBody;

const DESCRIPTION: &str = "\
The REST API of Bitgate: everything the browser console does, for automation.

**Authentication.** Send `Authorization: Bearer <api token>` (create tokens on the API tokens page, \
with `POST /api/v1/tokens`, or with `bitgate token create`). A token acts with its user's roles. \
Browsers may use their Bitgate session instead; then every request other than GET must carry an \
`Origin` header equal to Bitgate's public URL, or it is refused with 403 `csrf_failed`.

**Conventions.** Ids are UUIDs. Times are RFC 3339 in UTC. Lists answer \
`{\"items\": [...], \"next_cursor\": \"...\" | null}` and take `?limit=` (default 50, at most 500) \
and `?cursor=` (the `next_cursor` of the previous page). A POST that creates answers 201 with the \
created object; DELETE answers 204. PATCH takes the fields to change; fields left out stay as they are.

**Errors** answer `{\"error\": {\"code\", \"message\", \"details\": [{\"field\", \"code\", \"message\"}]}}`. \
Authorization is decided before validation: what you cannot see answers 404, what you can see but \
not change answers 403, and neither tells you whether the request would have been valid. A body \
with wrong fields answers 422 with every problem in `details`.";

/// The document of the API whose routes are `routes`.
pub fn finish(mut document: OpenApi) -> OpenApi {
    document.info = InfoBuilder::new()
        .title("Bitgate API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .build();
    document.tags = Some(
        [
            ("spaces", "Spaces, the tree that scopes integrations and stacks, and their members."),
            ("users", "The account's users. Account admins only."),
            ("tokens", "Your own API tokens."),
            ("audit", "Who did what, when, from where."),
            (
                "integrations",
                "Connections to Bitbucket: credentials checked before they are saved, the webhook endpoint and secret.",
            ),
            (
                "webhooks",
                "Bitbucket's deliveries to each integration's endpoint, and the rotation of the secret that signs them.",
            ),
            (
                "stacks",
                "The consumers of integrations: one repository and branch each, in a space; detached when their integration is deleted.",
            ),
            (
                "events",
                "What the stacks should react to, derived from Bitbucket's deliveries: the feed the platform follows.",
            ),
            ("runs", "The platform's reports of the work it does for a stack, under its own run id; states only move forward."),
            ("meta", "This document and the health probes; no authentication."),
        ]
        .into_iter()
        .map(|(name, description)| TagBuilder::new().name(name).description(Some(description)).build())
        .collect(),
    );
    add_meta_operations(&mut document);

    let components = document.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("bgt_ API token")
                .description(Some("An API token of a Bitgate user; it acts with the user's roles."))
                .build(),
        )
        .into(),
    );
    components.security_schemes.insert(
        "session".into(),
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "bitgate",
            "The browser session (`__Host-bitgate` when Bitgate is served over https). \
             Requests other than GET must carry Bitgate's own `Origin`.",
        )))
        .into(),
    );
    let (name, schema) = (ErrorBody::name().into_owned(), ErrorBody::schema());
    components.schemas.entry(name).or_insert(schema);
    for (name, status, description) in COMMON_RESPONSES {
        components.responses.insert(
            name.to_string(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(format!("{description} (HTTP {status})"))
                    .content("application/json", ContentBuilder::new().schema(Some(error_schema())).build())
                    .build(),
            ),
        );
    }
    document.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);

    for item in document.paths.paths.values_mut() {
        for (method, operation) in operations_mut(item) {
            complete_operation(method, operation);
        }
    }
    document
}

/// The error answers shared by many operations: (component name, status, description).
const COMMON_RESPONSES: [(&str, &str, &str); 7] = [
    ("BadRequest", "400", "The body is not a JSON object, or a query parameter is malformed (`bad_request`)"),
    ("Unauthenticated", "401", "No valid API token or session (`unauthenticated`)"),
    ("CsrfFailed", "403", "A session-authenticated write without Bitgate's own `Origin` (`csrf_failed`)"),
    ("PayloadTooLarge", "413", "The body is over 256 KiB (`payload_too_large`)"),
    ("UnsupportedMediaType", "415", "The body is not sent as `application/json` (`unsupported_media_type`)"),
    ("ValidationFailed", "422", "Some fields are invalid: every problem is in `details` (`validation_failed`)"),
    ("Unavailable", "503", "The database is unreachable; retry shortly (`unavailable`)"),
];

fn error_schema() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))
}

fn common(name: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::Ref(Ref::from_response_name(name))
}

/// Gives an operation a unique id and the shared answers that apply to it.
fn complete_operation(method: HttpMethod, operation: &mut Operation) {
    let tag = operation.tags.as_ref().and_then(|tags| tags.first()).cloned().unwrap_or_default();
    if let Some(id) = operation.operation_id.as_mut() {
        if !tag.is_empty() && !id.starts_with(&tag) {
            *id = format!("{tag}_{id}");
        }
    }
    if tag == "meta" {
        return;
    }
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, name: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| common(name));
    };
    add("401", "Unauthenticated");
    add("503", "Unavailable");
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query));
    if operation.request_body.is_some() || has_query {
        add("400", "BadRequest");
    }
    if operation.request_body.is_some() {
        add("413", "PayloadTooLarge");
        add("415", "UnsupportedMediaType");
        add("422", "ValidationFailed");
    }
    if method != HttpMethod::Get {
        // A 403 the handler documents already says why; the CSRF refusal is
        // one more reason, told in the shared description.
        match responses.get_mut("403") {
            Some(RefOr::T(forbidden)) => forbidden
                .description
                .push_str(" Also `csrf_failed`: a session-authenticated write without Bitgate's own `Origin`."),
            _ => {
                responses.insert("403".to_owned(), common("CsrfFailed"));
            }
        }
    }
}

fn operations_mut(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|o| (method, o)))
    .collect()
}

/// The routes outside the API's authentication: this document and the
/// health probes.
fn add_meta_operations(document: &mut OpenApi) {
    let json_answer = |description: &str, schema: RefOr<utoipa::openapi::schema::Schema>| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
            .build()
    };
    let status_object = || -> RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .property("status", String::schema())
            .required("status")
            .property("database", String::schema())
            .build()
            .into()
    };
    let meta = |id: &str, summary: &str, responses: Responses| {
        OperationBuilder::new()
            .tag("meta")
            .operation_id(Some(id))
            .summary(Some(summary))
            .responses(responses)
            .securities(Some(Vec::<SecurityRequirement>::new()))
            .build()
    };
    let mut responses = Responses::new();
    responses
        .responses
        .insert("200".into(), RefOr::T(json_answer("The OpenAPI 3.1 document.", ObjectBuilder::new().build().into())));
    document.paths.add_path_operation(
        "/api/v1/openapi.json",
        vec![HttpMethod::Get],
        meta("openapi", "This document", responses),
    );
    let mut responses = Responses::new();
    responses.responses.insert("200".into(), RefOr::T(json_answer("The process is up.", status_object())));
    document.paths.add_path_operation("/healthz", vec![HttpMethod::Get], meta("healthz", "Liveness", responses));
    let mut responses = Responses::new();
    responses.responses.insert("200".into(), RefOr::T(json_answer("The database is reachable.", status_object())));
    responses.responses.insert("503".into(), RefOr::T(json_answer("The database is unreachable.", status_object())));
    document.paths.add_path_operation("/readyz", vec![HttpMethod::Get], meta("readyz", "Readiness", responses));
}

/// The whole document, as served.
pub fn document() -> Value {
    let mut document = serde_json::to_value(finish(super::routes().split_for_parts().1)).unwrap_or_default();
    add_integrations_file(&mut document);
    add_links(&mut document);
    document
}

/// OpenAPI links from each creation (a POST on a collection answering 201
/// with the new object) to the operations on what it created
/// (`{collection}/{id}` and below), so that clients and Schemathesis's
/// stateful phase can follow them: create a space, then read, change,
/// list the members of, and delete that space.
fn add_links(document: &mut Value) {
    let Some(paths) = document["paths"].as_object() else { return };
    let mut found: Vec<(String, String, Value)> = Vec::new();
    for (collection, item) in paths {
        if item["post"]["responses"].get("201").is_none() {
            continue;
        }
        let prefix = format!("{collection}/{{id}}");
        for (path, operations) in paths.iter().filter(|(path, _)| path.starts_with(&prefix)) {
            for (method, operation) in operations.as_object().into_iter().flatten() {
                let Some(operation_id) = operation["operationId"].as_str() else { continue };
                let link = json!({
                    "operationId": operation_id,
                    "parameters": {"id": "$response.body#/id"},
                    "description": format!("{} {path} on what was created.", method.to_uppercase()),
                });
                found.push((collection.clone(), operation_id.to_owned(), link));
            }
        }
    }
    for (collection, operation_id, link) in found {
        document["paths"][&collection]["post"]["responses"]["201"]["links"][operation_id] = link;
    }
}

/// The integrations file's JSON Schema (`bitgate integrations schema`), as
/// the schema of the YAML that `/integrations/export` answers and
/// `/integrations/import` takes. utoipa cannot carry that schema (its
/// `oneOf`, `const`, `$defs`), so it is added to the serialized document:
/// the definitions become components, their references rewritten.
fn add_integrations_file(document: &mut Value) {
    let mut schema = bitgate_core::as_code::schema::schema();
    let Some(file) = schema.as_object_mut() else { return };
    file.remove("$schema");
    let definitions = file.remove("$defs").unwrap_or_default();
    let component = |name: &str| format!("IntegrationsFile{}", if name == "cds" { "CdsEntry" } else { "Entry" });
    let mut schemas = vec![("IntegrationsFile".to_owned(), schema)];
    if let Value::Object(definitions) = definitions {
        schemas.extend(definitions.into_iter().map(|(name, schema)| (component(&name), schema)));
    }
    let components = &mut document["components"]["schemas"];
    for (name, mut schema) in schemas {
        rewrite_references(&mut schema, &component);
        components[name] = schema;
    }
    let reference = json!({"$ref": "#/components/schemas/IntegrationsFile"});
    let paths = &mut document["paths"];
    let export = &mut paths["/api/v1/integrations/export"]["get"]["responses"]["200"]["content"]["application/yaml"];
    export["schema"] = reference.clone();
    paths["/api/v1/integrations/import"]["post"]["requestBody"]["content"]["application/yaml"]["schema"] = reference;
}

fn rewrite_references(schema: &mut Value, component: &dyn Fn(&str) -> String) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(name) = reference.strip_prefix("#/$defs/") {
                    *reference = format!("#/components/schemas/{}", component(name));
                }
            }
            map.values_mut().for_each(|v| rewrite_references(v, component));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_references(v, component)),
        _ => {}
    }
}

/// The handler of `/api/v1/openapi.json`: the document, serialized once.
pub fn serve(document: Value) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let body: Arc<str> = serde_json::to_string_pretty(&document).unwrap_or_default().into();
    move || {
        let mut response = body.to_string().into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        std::future::ready(response)
    }
}
