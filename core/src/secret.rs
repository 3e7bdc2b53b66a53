//! A secret held in memory: an access token, a consumer secret, a webhook
//! secret. Its `Debug` never shows the value and it has no `Display`, so a
//! `{:?}` of a struct holding one, or a log line, cannot leak it; the value
//! comes out only through [`Secret::expose`], where it is sent or sealed.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret value; `T` is `String` for tokens and `Vec<u8>` for the webhook
/// secrets that verify deliveries (no copy: the wrapper is the value).
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, for where it is sent, sealed or compared.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Compared in constant time: how long a comparison takes tells nothing of
/// where two secrets differ.
impl<T: AsRef<[u8]>> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().ct_eq(other.0.as_ref()).into()
    }
}

impl<T: AsRef<[u8]>> Eq for Secret<T> {}

impl Secret<String> {
    /// The value's bytes (to seal it, or to sign with it).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The value without surrounding white space.
    pub fn trimmed(&self) -> Self {
        Self(self.0.trim().to_owned())
    }

    /// The value trimmed; `None` when nothing is left (a form's empty field).
    pub fn filled(&self) -> Option<Self> {
        Some(self.trimmed()).filter(|s| !s.0.is_empty())
    }
}

impl Secret<Vec<u8>> {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[expect(dead_code, reason = "read only through Debug")]
    struct Holder {
        name: &'static str,
        token: Secret<String>,
        bytes: Option<Secret<Vec<u8>>>,
    }

    #[test]
    fn debug_output_never_holds_the_value() {
        let holder = Holder {
            name: "visible",
            token: Secret::new("s3cret-token".into()),
            bytes: Some(b"b1t3s".to_vec().into()),
        };
        let shown = format!("{holder:?} {holder:#?}");
        assert!(shown.contains("visible") && shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("s3cret") && !shown.contains("b1t3s"), "{shown}");
        // Nor the bytes as numbers.
        assert!(!shown.contains("98, 49"), "{shown}");
    }

    #[test]
    fn equal_values_compare_equal() {
        let a = Secret::new("abc".to_owned());
        assert_eq!(a, Secret::new("abc".to_owned()));
        assert_ne!(a, Secret::new("abd".to_owned()));
        assert_ne!(a, Secret::new("ab".to_owned()));
        assert_eq!(a.expose(), "abc");
    }
}
