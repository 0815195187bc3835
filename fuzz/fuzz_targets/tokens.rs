//! Arbitrary text → bearer tokens and UCAN chains (`etch_server::token`): no panic, and the text
//! as the payload of a token signed for another payload never verifies
//! (`etch_server::fuzzing::tokens`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        etch_server::fuzzing::tokens(text);
    }
});
