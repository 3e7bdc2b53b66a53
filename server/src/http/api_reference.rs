//! `/api/reference`: the API reference page, digested from the OpenAPI
//! document that `/api/v1/openapi.json` serves, so the two cannot differ.

use std::sync::OnceLock;

use axum::{extract::State, http::StatusCode, response::Response, Extension};
use bitgate_app::context::{
    ApiReference, ApiSection, FieldDoc, OperationDoc, PageContext, PageData, ResponseDoc, SchemaDoc, TypeRef,
};
use serde_json::Value;

use crate::{api::openapi, state::AppState};

pub async fn page(State(state): State<AppState>, Extension(context): Extension<PageContext>) -> Response {
    static REFERENCE: OnceLock<ApiReference> = OnceLock::new();
    let reference = REFERENCE.get_or_init(|| {
        let document = openapi::document();
        digest(&document)
    });
    let context = PageContext { page: PageData::ApiReference(reference.clone()), ..context };
    state.pages.render(context, StatusCode::OK).await
}

use super::markdown::{inline as inline_markdown, to_html as markdown};

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The reference: operations grouped by tag in the document's tag order,
/// then the named schemas.
pub fn digest(document: &Value) -> ApiReference {
    let mut sections: Vec<ApiSection> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tag| ApiSection {
            tag: text(&tag["name"]),
            description: text(&tag["description"]),
            operations: Vec::new(),
        })
        .collect();
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in &paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else { continue };
            let tag = operation["tags"][0].as_str().unwrap_or("other").to_owned();
            let doc = operation_doc(document, path, method, operation);
            match sections.iter_mut().find(|s| s.tag == tag) {
                Some(section) => section.operations.push(doc),
                None => sections.push(ApiSection { tag, description: String::new(), operations: vec![doc] }),
            }
        }
    }
    let schemas = document["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| schema_doc(name, schema))
        .collect();
    ApiReference {
        intro_html: markdown(document["info"]["description"].as_str().unwrap_or_default()),
        sections,
        schemas,
    }
}

fn operation_doc(document: &Value, path: &str, method: &str, operation: &Value) -> OperationDoc {
    let parameters = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| FieldDoc {
            name: text(&p["name"]),
            location: text(&p["in"]),
            kind: type_ref(&p["schema"]),
            required: p["required"].as_bool().unwrap_or(false),
            description_html: inline_markdown(&text(&p["description"])),
        })
        .collect();
    let request = operation["requestBody"]["content"]["application/json"].get("schema").map(type_ref);
    let responses = operation["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(status, response)| {
            // Shared answers are references to `components/responses`.
            let response = match response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
                Some(name) => &document["components"]["responses"][name],
                None => response,
            };
            ResponseDoc {
                status: status.clone(),
                description_html: inline_markdown(&text(&response["description"])),
                body: response["content"]["application/json"].get("schema").map(type_ref),
            }
        })
        .collect();
    let authenticated = operation.get("security").and_then(Value::as_array).is_none_or(|s| !s.is_empty());
    OperationDoc {
        id: text(&operation["operationId"]),
        method: method.to_uppercase(),
        path: path.to_owned(),
        summary: text(&operation["summary"]),
        description_html: markdown(operation["description"].as_str().unwrap_or_default()),
        authenticated,
        parameters,
        request,
        responses,
    }
}

fn schema_doc(name: &str, schema: &Value) -> SchemaDoc {
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    // `allOf` (a flattened struct): the properties of every part.
    let parts: Vec<&Value> = match schema["allOf"].as_array() {
        Some(parts) => parts.iter().collect(),
        None => vec![schema],
    };
    let mut properties = Vec::new();
    for part in parts {
        if let Some(reference) = part["$ref"].as_str() {
            properties.push(FieldDoc {
                name: "…".into(),
                kind: type_ref(part),
                description_html: format!("Every field of {}.", reference.rsplit('/').next().unwrap_or_default()),
                ..FieldDoc::default()
            });
        }
        let part_required: Vec<&str> =
            part["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (field, property) in part["properties"].as_object().into_iter().flatten() {
            properties.push(FieldDoc {
                name: field.clone(),
                location: String::new(),
                kind: type_ref(property),
                required: required.contains(&field.as_str()) || part_required.contains(&field.as_str()),
                description_html: inline_markdown(&text(&property["description"])),
            });
        }
    }
    let values = schema["enum"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap_or_default().to_owned());
    SchemaDoc { name: name.to_owned(), description: text(&schema["description"]), properties, values: values.collect() }
}

/// How a schema reads in a table: `string (uuid)`, `Space`, `array of Member`, `string or null`.
fn type_ref(schema: &Value) -> TypeRef {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default().to_owned();
        return TypeRef { text: name.clone(), schema: Some(name) };
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(options) = schema[combinator].as_array() {
            let options: Vec<TypeRef> = options.iter().map(type_ref).collect();
            let schema = options.iter().find_map(|o| o.schema.clone());
            let text = options.into_iter().map(|o| o.text).collect::<Vec<_>>().join(" or ");
            return TypeRef { text, schema };
        }
    }
    let types: Vec<String> = match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts.iter().map(text).collect(),
        _ => vec!["any".into()],
    };
    let mut schema_link = None;
    let words: Vec<String> = types
        .iter()
        .map(|t| match t.as_str() {
            "array" => {
                let items = type_ref(&schema["items"]);
                schema_link = items.schema.clone();
                format!("array of {}", items.text)
            }
            "string" => match schema["format"].as_str() {
                Some(format) => format!("string ({format})"),
                None => "string".to_owned(),
            },
            other => other.to_owned(),
        })
        .collect();
    TypeRef { text: words.join(" or "), schema: schema_link }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_schema_of_the_document_is_on_the_page() {
        let document = openapi::document();
        let reference = digest(&document);
        let operations: usize = reference.sections.iter().map(|s| s.operations.len()).sum();
        let in_document: usize =
            document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
        assert_eq!(operations, in_document);
        assert_eq!(reference.schemas.len(), document["components"]["schemas"].as_object().unwrap().len());
        let create = reference
            .sections
            .iter()
            .flat_map(|s| &s.operations)
            .find(|o| o.method == "POST" && o.path == "/api/v1/spaces")
            .unwrap();
        assert_eq!(create.request.as_ref().and_then(|r| r.schema.as_deref()), Some("CreateSpace"));
        assert!(create.responses.iter().any(|r| r.status == "409"));
        assert!(create
            .responses
            .iter()
            .any(|r| r.status == "401" && r.description_html.contains("<code>unauthenticated</code>")));
    }

    #[test]
    fn types_read_as_words() {
        let read = |schema: Value| type_ref(&schema).text;
        assert_eq!(read(serde_json::json!({"type": "string", "format": "uuid"})), "string (uuid)");
        assert_eq!(read(serde_json::json!({"type": ["string", "null"]})), "string or null");
        assert_eq!(
            read(serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/Member"}})),
            "array of Member"
        );
    }
}
