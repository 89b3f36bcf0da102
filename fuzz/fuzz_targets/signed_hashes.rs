//! The origin's signed-hashes file comes from the CDN, so through anyone who can tamper with a
//! response: parsing never panics, never allocates beyond the bound, and what parses lists only
//! well-formed entries.

#![no_main]

use f2f_core::integrity::SignedHashes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = SignedHashes::parse(text, 64 * 1024) {
        for e in &parsed.entries {
            assert!(!e.uri.is_empty() && !e.uri.contains(char::is_whitespace));
        }
    }
});
