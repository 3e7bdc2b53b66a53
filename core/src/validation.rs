//! Reading input the way every door needs: each problem collected, named
//! by its field (`datacenter.api_url`) with a code of its own, rather than
//! stopping at the first; the doors say them next to their fields.

use crate::{secret::Secret, users::FieldError};

/// Problems found so far, in the order met.
#[derive(Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// The value, or its problem noted.
    pub fn check<T>(&mut self, parsed: Result<T, FieldError>) -> Option<T> {
        parsed.map_err(|e| self.0.push(e)).ok()
    }

    /// A value that must be given: `"name" is required.` when it is not.
    pub fn required(&mut self, field: &str, value: Option<String>) -> Option<String> {
        if value.is_none() {
            let name = field.rsplit('.').next().unwrap_or(field);
            self.push(field, "required", format!("\"{name}\" is required."));
        }
        value
    }

    /// A value that must be given and not blank (`message` when blank), trimmed.
    pub fn filled(&mut self, field: &str, value: Option<String>, message: &str) -> Option<String> {
        let value = self.required(field, value)?;
        if value.trim().is_empty() {
            self.push(field, "required", message);
            None
        } else {
            Some(value.trim().to_owned())
        }
    }

    /// A secret that must be given and not blank (`message` when blank), trimmed.
    pub fn filled_secret(
        &mut self,
        field: &str,
        value: Option<Secret<String>>,
        message: &str,
    ) -> Option<Secret<String>> {
        self.filled(field, value.map(Secret::into_exposed), message).map(Secret::new)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
