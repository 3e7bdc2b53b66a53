//! Encryption of secrets at rest (AES-256-GCM).
//!
//! Each sealed value carries the id of the key that sealed it, and the table,
//! column and row id are bound as associated data, so a ciphertext copied to
//! another row or column does not open. `BITGATE_SECRET_KEYS` holds several
//! keys: the first seals, all open, which is what lets keys rotate.

use std::{fmt, io::Write, path::Path};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use rand::RngCore;
use uuid::Uuid;

use crate::secret::Secret;

const NONCE_LEN: usize = 12;

/// A 256-bit key with its id. `Debug` never shows the key.
#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The keys Bitgate knows; the first one seals.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("no key is given")]
    Empty,
    #[error("entry {0} is not of the form id:base64-of-32-bytes")]
    Malformed(usize),
    #[error("the key \"{0}\" is not 32 bytes of base64")]
    BadKey(String),
    #[error("the key id \"{0}\" appears twice")]
    DuplicateId(String),
}

/// What a sealed value is bound to: moving it elsewhere breaks it.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: Uuid,
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!("bitgate:{}:{}:{}", self.table, self.column, self.row).into_bytes()
    }
}

/// A sealed secret as stored: the key id beside nonce and ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("the secret was sealed with key \"{0}\", which BITGATE_SECRET_KEYS no longer holds")]
    UnknownKey(String),
    #[error("the secret does not open: it was altered or moved to another row")]
    Corrupt,
}

impl Keyring {
    /// Parses `id:base64,id:base64,...`.
    pub fn parse(raw: &str) -> Result<Self, KeyringError> {
        let mut keys: Vec<Key> = Vec::new();
        for (index, entry) in raw.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let (id, encoded) = entry.split_once(':').ok_or(KeyringError::Malformed(index + 1))?;
            let id = id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(KeyringError::Malformed(index + 1));
            }
            let bytes = BASE64.decode(encoded.trim()).map_err(|_| KeyringError::BadKey(id.to_owned()))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyringError::BadKey(id.to_owned()))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyringError::DuplicateId(id.to_owned()));
            }
            keys.push(Key { id: id.to_owned(), cipher });
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys })
    }

    /// A fresh `id:base64` entry with 256 random bits.
    pub fn generate_entry(id: &str) -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        format!("{id}:{}", BASE64.encode(bytes))
    }

    /// Development only: reads the key file, creating it (mode 0600) on first use.
    pub fn load_or_generate(path: &Path) -> std::io::Result<Self> {
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            match file.open(path) {
                Ok(mut f) => f.write_all(Self::generate_entry("dev1").as_bytes())?,
                // Another process created it between our check and open.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let raw = std::fs::read_to_string(path)?;
        Self::parse(&raw)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn seal(&self, plaintext: &[u8], binding: Binding<'_>) -> Sealed {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = binding.associated_data();
        // AES-GCM encryption cannot fail for inputs under 64 GiB.
        let Ok(ciphertext) = key.cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
        else {
            unreachable!("AES-GCM refuses only inputs of more than 64 GiB")
        };
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&ciphertext);
        Sealed { key_id: key.id.clone(), ciphertext: stored }
    }

    pub fn open(&self, sealed: &Sealed, binding: Binding<'_>) -> Result<Vec<u8>, OpenError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.ciphertext.len() < NONCE_LEN {
            return Err(OpenError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.ciphertext.split_at(NONCE_LEN);
        let aad = binding.associated_data();
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| OpenError::Corrupt)
    }

    /// Opens a sealed text secret (a token, a consumer or webhook secret).
    pub fn open_text(&self, sealed: &Sealed, binding: Binding<'_>) -> Result<Secret<String>, OpenError> {
        let plain = self.open(sealed, binding)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| OpenError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(row: Uuid) -> Binding<'static> {
        Binding { table: "integrations", column: "access_token", row }
    }

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let ring = Keyring::parse(&Keyring::generate_entry("k1")).unwrap();
        let row = Uuid::new_v4();
        let sealed = ring.seal(b"s3cret", binding(row));
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(ring.open(&sealed, binding(row)).unwrap(), b"s3cret");

        assert_eq!(ring.open(&sealed, binding(Uuid::new_v4())), Err(OpenError::Corrupt));
        let other_column = Binding { column: "client_secret", ..binding(row) };
        assert_eq!(ring.open(&sealed, other_column), Err(OpenError::Corrupt));

        let mut tampered = sealed.clone();
        let last = tampered.ciphertext.len() - 1;
        tampered.ciphertext[last] ^= 1;
        assert_eq!(ring.open(&tampered, binding(row)), Err(OpenError::Corrupt));
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old_entry = Keyring::generate_entry("old");
        let new_entry = Keyring::generate_entry("new");
        let old = Keyring::parse(&old_entry).unwrap();
        let row = Uuid::new_v4();
        let sealed_by_old = old.seal(b"value", binding(row));

        let both = Keyring::parse(&format!("{new_entry}, {old_entry}")).unwrap();
        assert_eq!(both.current_key_id(), "new");
        assert_eq!(both.open(&sealed_by_old, binding(row)).unwrap(), b"value");
        assert_eq!(both.seal(b"value", binding(row)).key_id, "new");

        let only_new = Keyring::parse(&new_entry).unwrap();
        assert_eq!(only_new.open(&sealed_by_old, binding(row)), Err(OpenError::UnknownKey("old".into())));
    }

    #[test]
    fn bad_key_lists_are_refused() {
        assert_eq!(Keyring::parse("").unwrap_err(), KeyringError::Empty);
        assert_eq!(Keyring::parse("nokey").unwrap_err(), KeyringError::Malformed(1));
        assert_eq!(Keyring::parse("k1:c2hvcnQ=").unwrap_err(), KeyringError::BadKey("k1".into()));
        let entry = Keyring::generate_entry("k1");
        assert_eq!(Keyring::parse(&format!("{entry},{entry}")).unwrap_err(), KeyringError::DuplicateId("k1".into()));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let entry = Keyring::generate_entry("k1");
        let ring = Keyring::parse(&entry).unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains("k1") && !shown.contains(entry.split_once(':').unwrap().1));
    }
}
