//! Password hashing with argon2id, on blocking threads, a bounded number at a
//! time so that a burst of logins cannot starve the server of CPU and memory.

use std::{fmt, sync::Arc};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString},
    Argon2,
};
use tokio::sync::Semaphore;

/// A password as typed. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Why a new password is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("Use at least {MIN_LENGTH} characters.")]
    TooShort,
    #[error("Use at most {MAX_LENGTH} characters.")]
    TooLong,
}

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 256;

impl Password {
    /// A password being set: checked against the policy (length, as NIST
    /// 800-63B advises, rather than character classes).
    pub fn new(raw: String) -> Result<Self, PasswordError> {
        let length = raw.chars().count();
        if length < MIN_LENGTH {
            Err(PasswordError::TooShort)
        } else if length > MAX_LENGTH {
            Err(PasswordError::TooLong)
        } else {
            Ok(Self(raw))
        }
    }

    /// A password offered at login: not checked against the policy, which may
    /// have changed since it was set, only bounded in size.
    pub fn offered(raw: String) -> Self {
        Self(raw.chars().take(MAX_LENGTH * 4).collect())
    }
}

/// The argon2id hasher, shared by the whole process.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when an email is unknown, so that an unknown email
    /// costs the same time as a wrong password.
    dummy_hash: Arc<String>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").field("available", &self.permits.available_permits()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashingError(String);

impl PasswordHasher {
    /// `concurrency` hashes at most run at once (argon2id with the default
    /// parameters uses 19 MiB each).
    pub fn new(concurrency: usize) -> Result<Self, HashingError> {
        let dummy = hash_blocking(&Password("dummy password for unknown accounts".into()))?;
        Ok(Self { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy_hash: Arc::new(dummy) })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let password = password.clone();
        self.run(move || hash_blocking(&password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when there is none, so that both paths take the same time.
    pub async fn verify(&self, password: &Password, stored_hash: Option<&str>) -> Result<bool, HashingError> {
        let password = password.clone();
        let known = stored_hash.is_some();
        let hash = stored_hash.map(str::to_owned).unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash).map_err(|e| HashingError(e.to_string()))?;
                Ok::<_, HashingError>(Argon2::default().verify_password(password.0.as_bytes(), &parsed).is_ok())
            })
            .await??;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashingError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashingError(e.to_string()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| HashingError(e.to_string()))
    }
}

fn hash_blocking(password: &Password) -> Result<String, HashingError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.0.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashingError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = PasswordHasher::new(2).unwrap();
        let password = Password::new("correct horse battery".into()).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        assert!(!hasher.verify(&Password::offered("wrong horse battery".into()), Some(&hash)).await.unwrap());
        // No stored hash: always false, after the same work.
        assert!(!hasher.verify(&password, None).await.unwrap());
    }

    #[test]
    fn the_policy_is_about_length() {
        assert_eq!(Password::new("short".into()).unwrap_err(), PasswordError::TooShort);
        assert_eq!(Password::new("x".repeat(MAX_LENGTH + 1)).unwrap_err(), PasswordError::TooLong);
        assert!(Password::new("twelve chars".into()).is_ok());
        assert_eq!(format!("{:?}", Password::offered("hunter2hunter2".into())), "Password(***)");
    }
}
