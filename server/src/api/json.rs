//! Reading JSON bodies the way SPEC.md wants: 415 without a JSON content
//! type, 413 when too large, 400 when not JSON at all, and 422 listing every
//! problem with the fields of a well-formed body.

use axum::{
    body::Body,
    extract::{FromRequest, Request},
    http::header,
};
use bitgate_core::users::FieldError;
use serde_json::{Map, Value};
use utoipa::{
    openapi::{schema::Schema, RefOr},
    PartialSchema,
};

use crate::{error::AppError, http::limits::read_body};

const MAX_JSON_BYTES: usize = 256 * 1024;

/// The body's media type, lowercase and without its parameters.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// A JSON object body, to be read field by field with [`Fields`].
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = AppError;

    async fn from_request(request: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let is_json = media_type(request.headers()).is_some_and(|mime| {
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
        if !is_json {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = read_body(request.into_body(), MAX_JSON_BYTES).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(AppError::BadRequest("The body must be a JSON object.".into())),
            Err(e) => Err(AppError::BadRequest(format!("The body is not valid JSON: {e}."))),
        }
    }
}

/// Reads the fields of an object, collecting every problem rather than
/// stopping at the first.
pub struct Fields {
    map: Map<String, Value>,
    /// Prepended to field names in errors: `datacenter.` for a nested object.
    prefix: String,
    pub errors: Vec<FieldError>,
}

impl Fields {
    /// Reads a body documented by the schema of `T`: a field the schema
    /// does not name is refused (a typo must not be silently ignored), so the
    /// OpenAPI document and the parser cannot drift apart.
    pub fn new<T: PartialSchema>(JsonObject(map): JsonObject) -> Self {
        Self::with_prefix::<T>(map, String::new())
    }

    fn with_prefix<T: PartialSchema>(map: Map<String, Value>, prefix: String) -> Self {
        let known = property_names(&T::schema());
        let errors = map
            .keys()
            .filter(|key| !known.contains(key))
            .map(|key| {
                let field = format!("{prefix}{key}");
                FieldError::new(&field, "unknown_field", format!("\"{field}\" is not a field of this request."))
            })
            .collect();
        Self { map, prefix, errors }
    }

    fn error(&mut self, name: &str, code: &str, message: String) {
        let field = format!("{}{name}", self.prefix);
        self.errors.push(FieldError::new(&field, code, message));
    }

    /// The fields of a nested object (`None` when absent or null); its
    /// problems are named `name.field`. Give the child back with [`Fields::absorb`].
    pub fn nested<T: PartialSchema>(&mut self, name: &str) -> Option<Fields> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(Self::with_prefix::<T>(map.clone(), format!("{}{name}.", self.prefix))),
            Some(_) => {
                self.error(name, "invalid_type", format!("\"{name}\" must be an object."));
                None
            }
        }
    }

    /// Takes in a nested object's problems.
    pub fn absorb(&mut self, child: Fields) {
        self.errors.extend(child.errors);
    }

    /// Whether the nested object `object` names `field`.
    pub fn nested_has(&self, object: &str, field: &str) -> bool {
        self.map.get(object).and_then(Value::as_object).is_some_and(|o| o.contains_key(field))
    }

    /// Whether the body names this field at all (null included).
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// `None` when absent or null.
    pub fn optional_strings(&mut self, name: &str) -> Option<Vec<String>> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                Some(items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            }
            Some(_) => {
                self.error(name, "invalid_type", format!("\"{name}\" must be a list of strings."));
                None
            }
        }
    }

    pub fn required_string(&mut self, name: &str) -> Option<String> {
        match self.map.get(name) {
            None | Some(Value::Null) => {
                self.error(name, "required", format!("\"{name}\" is required."));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(name, "invalid_type", format!("\"{name}\" must be a string."));
                None
            }
        }
    }

    /// `Ok(None)` when absent or null.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(name, "invalid_type", format!("\"{name}\" must be a string."));
                None
            }
        }
    }

    /// `None` when absent or null.
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(name, "invalid_type", format!("\"{name}\" must be true or false."));
                None
            }
        }
    }

    /// `None` when absent or null; a number with a fraction, or past what
    /// 64 bits hold, is not a whole number.
    pub fn optional_integer(&mut self, name: &str) -> Option<i64> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(_) => {
                self.error(name, "invalid_type", format!("\"{name}\" must be a whole number."));
                None
            }
        }
    }

    /// Records the outcome of parsing a field's value.
    pub fn check<T>(&mut self, parsed: Result<T, FieldError>) -> Option<T> {
        parsed
            .map_err(|mut e| {
                if !self.prefix.is_empty() && !e.field.starts_with(&self.prefix) {
                    e.field = format!("{}{}", self.prefix, e.field);
                }
                self.errors.push(e)
            })
            .ok()
    }

    /// Records a problem with a field of this object.
    pub fn refuse(&mut self, name: &str, code: &str, message: impl Into<String>) {
        self.error(name, code, message.into());
    }

    /// 422 with every problem, or the values.
    pub fn finish(self) -> Result<(), AppError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.errors))
        }
    }
}

/// The property names of an object schema.
fn property_names(schema: &RefOr<Schema>) -> Vec<String> {
    match schema {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[derive(utoipa::ToSchema)]
    struct Example {
        name: String,
        size: Option<i64>,
    }

    #[test]
    fn fields_outside_the_schema_are_refused_by_name() {
        let body = |value: Value| JsonObject(value.as_object().cloned().unwrap_or_default());
        let fields = Fields::new::<Example>(body(serde_json::json!({"name": "a", "size": 1})));
        assert!(fields.errors.is_empty());
        let fields = Fields::new::<Example>(body(serde_json::json!({"name": "a", "nmae": "b"})));
        assert_eq!(fields.errors.len(), 1);
        assert_eq!((fields.errors[0].field.as_str(), fields.errors[0].code.as_str()), ("nmae", "unknown_field"));
    }
}
