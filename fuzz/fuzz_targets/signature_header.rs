//! The `X-Hub-Signature` check over any header and any body: it never
//! panics, and it says `Valid` only for the body's true HMAC.
#![no_main]

use bitgate_core::webhooks::signature::{sign, verify, Verdict};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"It's a Secret to Everybody";
const PREVIOUS: &[u8] = b"the previous secret";

fuzz_target!(|input: (&str, &[u8], bool)| {
    let (header, body, with_previous) = input;
    let previous = with_previous.then_some(PREVIOUS);
    let verdict = verify(Some(header), body, SECRET, previous);
    let digest_of = |secret| sign(secret, body)["sha256=".len()..].to_owned();
    // What the header claims, the way a verifier may read it: "sha256=",
    // then hex in either case, surrounding blanks ignored.
    let claimed = header.trim().strip_prefix("sha256=").map(str::to_ascii_lowercase);
    match verdict {
        Verdict::Valid => assert_eq!(claimed, Some(digest_of(SECRET))),
        Verdict::ValidPrevious => {
            assert!(with_previous);
            assert_eq!(claimed, Some(digest_of(PREVIOUS)));
        }
        Verdict::Mismatch => {
            assert_ne!(claimed, Some(digest_of(SECRET)));
            if with_previous {
                assert_ne!(claimed, Some(digest_of(PREVIOUS)));
            }
        }
        Verdict::Missing => panic!("a header was given"),
    }
    // The true signature of the same body always verifies.
    assert_eq!(verify(Some(&sign(SECRET, body)), body, SECRET, previous), Verdict::Valid);
});
