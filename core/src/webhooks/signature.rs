//! Bitbucket's webhook signature: `X-Hub-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the raw body keyed with the integration's secret,
//! compared in constant time before the body is parsed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the signature header says about a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Signed with the current secret.
    Valid,
    /// Signed with the previous secret, within its grace period.
    ValidPrevious,
    /// No `X-Hub-Signature` header.
    Missing,
    /// A header that matches neither secret (or is not `sha256=<hex>`).
    Mismatch,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::ValidPrevious => "valid_previous",
            Verdict::Missing => "missing",
            Verdict::Mismatch => "mismatch",
        }
    }

    pub fn verified(self) -> bool {
        matches!(self, Verdict::Valid | Verdict::ValidPrevious)
    }
}

/// `sha256=<hex>` for a body, as Bitbucket (and the simulator's sender) signs it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    #[allow(clippy::expect_used, reason = "HMAC takes keys of any length: new_from_slice cannot fail for it")]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` with `secret`, in constant time.
fn matches(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else { return false };
    let Ok(digest) = hex::decode(hex_digest) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// Checks a body's signature header against the current secret and, during
/// a rotation's grace period, the previous one.
pub fn verify(header: Option<&str>, body: &[u8], current: &[u8], previous: Option<&[u8]>) -> Verdict {
    let Some(header) = header else { return Verdict::Missing };
    if matches(current, body, header) {
        Verdict::Valid
    } else if previous.is_some_and(|previous| matches(previous, body, header)) {
        Verdict::ValidPrevious
    } else {
        Verdict::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_answer() {
        let signature = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(signature, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(verify(Some(&signature), b"Hello, World!", b"It's a Secret to Everybody", None), Verdict::Valid);
    }

    #[test]
    fn the_previous_secret_counts_only_as_previous() {
        let body = b"{}";
        let old = sign(b"old", body);
        assert_eq!(verify(Some(&old), body, b"new", Some(b"old")), Verdict::ValidPrevious);
        assert_eq!(verify(Some(&old), body, b"new", None), Verdict::Mismatch);
        assert_eq!(verify(None, body, b"new", Some(b"old")), Verdict::Missing);
        for garbage in ["", "sha256=", "sha256=zz", "sha1=abc", &old.replace("sha256=", "sha512=")] {
            assert_eq!(verify(Some(garbage), body, b"new", Some(b"old")), Verdict::Mismatch, "{garbage:?}");
        }
    }

    #[test]
    fn any_changed_byte_of_body_or_signature_is_rejected() {
        // A property over many bodies and every byte position: flipping any
        // bit of the body or of the signature's digest never verifies.
        let secret = b"It's a Secret to Everybody";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..64 {
            let len = (next() % 200) as usize + 1;
            let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let signature = sign(secret, &body);
            assert_eq!(verify(Some(&signature), &body, secret, None), Verdict::Valid);
            for position in 0..body.len() {
                let mut changed = body.clone();
                changed[position] ^= 1 << (next() % 8);
                assert_eq!(verify(Some(&signature), &changed, secret, None), Verdict::Mismatch);
            }
            let digest = hex::decode(&signature["sha256=".len()..]).unwrap();
            for position in 0..digest.len() {
                let mut changed = digest.clone();
                changed[position] ^= 1 << (next() % 8);
                let forged = format!("sha256={}", hex::encode(changed));
                assert_eq!(verify(Some(&forged), &body, secret, None), Verdict::Mismatch);
            }
        }
    }
}
