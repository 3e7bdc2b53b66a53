//! The OpenAPI document as a contract: it validates, and every API answer
//! the tests receive (through [`check`]) matches the schema it documents for
//! that operation and status. An undocumented status fails the test too.

use std::{collections::HashMap, sync::OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub struct Contract {
    pub document: Value,
}

pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| Contract { document: bitgate_server::api::openapi::document() })
}

/// Whether a concrete path (`/api/v1/spaces/5f…`) fits a template (`/api/v1/spaces/{id}`).
fn fits(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

impl Contract {
    /// The operation for a request, preferring literal segments over parameters.
    pub fn operation(&self, method: &Method, path: &str) -> Option<(&str, &Value)> {
        let path = path.split('?').next().unwrap_or(path);
        let mut candidates: Vec<(&str, &Value)> = self.document["paths"]
            .as_object()?
            .iter()
            .filter(|(template, _)| fits(template, path))
            .filter_map(|(template, item)| item.get(method.as_str().to_lowercase()).map(|op| (template.as_str(), op)))
            .collect();
        candidates.sort_by_key(|(template, _)| template.matches('{').count());
        candidates.into_iter().next()
    }

    /// A validator for `schema`, which may refer to the document's components.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.document["components"],
            "allOf": [schema],
        });
        jsonschema::options().should_validate_formats(true).build(&root).expect("the response schema compiles")
    }

    fn resolve_response<'a>(&'a self, response: &'a Value) -> &'a Value {
        match response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
            Some(name) => &self.document["components"]["responses"][name],
            None => response,
        }
    }
}

/// Checks an answer of the API against the document. Paths outside the
/// documented API (pages, unknown paths) are not checked.
pub fn check(method: &Method, path: &str, status: StatusCode, body: &Value) {
    let contract = contract();
    let Some((template, operation)) = contract.operation(method, path) else {
        assert!(
            !path.starts_with("/api/v1/")
                || status == StatusCode::NOT_FOUND
                || status == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} answered {status} but the OpenAPI document has no such operation"
        );
        return;
    };
    let Some(response) = operation["responses"].get(status.as_str()) else {
        panic!("{method} {template} answered {status}, which its OpenAPI operation does not document: {body}");
    };
    let response = contract.resolve_response(response);
    if response["content"].get("application/yaml").is_some() {
        assert!(body.is_string(), "{method} {template} {status} documents YAML but got {body}");
        return;
    }
    match response["content"]["application/json"].get("schema") {
        Some(schema) => {
            let validator = contract.validator(schema);
            let problems: Vec<String> =
                validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(
                problems.is_empty(),
                "{method} {template} {status}: the body does not match the document:\n{}\n{body}",
                problems.join("\n")
            );
        }
        None => assert!(body.is_null(), "{method} {template} {status} documents no body but got {body}"),
    }
}

/// Reads a response as JSON (null when empty) and checks it against the contract.
pub async fn checked(method: Method, path: &str, response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    check(&method, path, status, &body);
    (status, body)
}

#[test]
fn the_openapi_document_validates() {
    let document = &contract().document;
    assert_eq!(document["openapi"], "3.1.0");
    // It reads back as an OpenAPI document. (The integrations file's schemas
    // use JSON Schema that utoipa's model cannot hold, `oneOf` of `const`s
    // and the like: they are checked as JSON Schema below.)
    let mut readable = document.clone();
    let schemas = readable["components"]["schemas"].as_object_mut().unwrap();
    schemas.retain(|name, _| !name.starts_with("IntegrationsFile"));
    let parsed: Result<utoipa::openapi::OpenApi, _> = serde_json::from_value(readable);
    assert!(parsed.as_ref().err().is_none(), "{:?}", parsed.err());
    // Every schema is a valid JSON Schema (OpenAPI 3.1 uses draft 2020-12).
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        let mut schema = schema.clone();
        schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        assert!(jsonschema::meta::validate(&schema).is_ok(), "schema {name} is not valid JSON Schema");
    }
    // Every reference resolves.
    fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference);
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    references(document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference} is not local"));
        assert!(document.pointer(pointer).is_some(), "{reference} does not resolve");
    }
    // Operation ids are unique; every path parameter is declared; every
    // operation answers something in 2xx and documents its errors with the
    // error schema.
    let mut ids = HashMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned(), path.clone()).is_none(), "operationId {id} is used twice");
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                assert!(
                    declared.contains(&segment.trim_matches(|c| c == '{' || c == '}')),
                    "{path}: {segment} undeclared"
                );
            }
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} has no success answer");
            for (status, response) in responses {
                let response = contract().resolve_response(response);
                assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}");
                if status.starts_with('4') && path.starts_with("/api/v1/") {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status} must answer the error shape"
                    );
                }
            }
            if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
                assert!(responses.contains_key("401"), "{method} {path} must document 401");
                assert!(operation.get("security").is_none(), "{method} {path} uses the document's security");
            }
        }
    }
    let schemes = document["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    // Creations link to the operations on what they created, each link naming an operation that exists.
    let links = &document["paths"]["/api/v1/spaces"]["post"]["responses"]["201"]["links"];
    let space_get = document["paths"]["/api/v1/spaces/{id}"]["get"]["operationId"].as_str().unwrap();
    assert_eq!(links[space_get]["parameters"]["id"], "$response.body#/id", "{links}");
    let members = document["paths"]["/api/v1/spaces/{id}/members"]["put"]["operationId"].as_str().unwrap();
    assert!(links.get(members).is_some(), "{links}");
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for response in operation["responses"].as_object().unwrap().values() {
                for link in response["links"].as_object().into_iter().flat_map(|l| l.values()) {
                    assert!(ids.contains_key(link["operationId"].as_str().unwrap()), "{link}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_document_is_served_without_authentication_and_lists_every_route() {
    let app = crate::helpers::TestApp::spawn().await;
    let response = reqwest::get(format!("{}/api/v1/openapi.json", app.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, contract().document);
    // Each documented operation is routed: without credentials, 401 (or 200
    // for the open ones), never 404 or 405.
    let id = uuid::Uuid::new_v4().to_string();
    for (path, item) in served["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &id).replace("{user_id}", &id);
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Our Origin, so that writes pass the CSRF rule and reach authentication.
            let response = reqwest::Client::new()
                .request(method.clone(), format!("{}{concrete}", app.base))
                .header("origin", &app.base)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(matches!(status, 200 | 401), "{method} {path}: {status}");
        }
    }
}

#[test]
fn a_body_that_breaks_the_schema_is_caught() {
    // The checker itself must fail on a wrong answer, or it proves nothing.
    let wrong = json!({"id": "not-a-uuid", "name": 3});
    let result = std::panic::catch_unwind(|| check(&Method::GET, "/api/v1/spaces/5f0e", StatusCode::OK, &wrong));
    assert!(result.is_err());
    let undocumented =
        std::panic::catch_unwind(|| check(&Method::GET, "/api/v1/spaces", StatusCode::IM_A_TEAPOT, &Value::Null));
    assert!(undocumented.is_err());
    let right = json!({"error": {"code": "not_found", "message": "x", "details": []}});
    check(&Method::GET, "/api/v1/spaces/5f0e", StatusCode::NOT_FOUND, &right);
}
