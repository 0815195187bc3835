//! Arbitrary bytes → `Body::decode`. An accepted top cell must decode again on its own to an
//! equal cell, and a complete body (nothing missing) must re-encode with `encode_full_body` to
//! bytes that decode to the same top Value ID.
#![no_main]

use etch_formats::{decode_cell, encode_full_body, Body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = Body::decode(data.to_vec()) else {
        return;
    };
    let top = &body.top;
    let again = decode_cell(top.encoding().to_vec())
        .unwrap_or_else(|e| panic!("top cell of an accepted body does not decode alone: {e}"));
    assert_eq!(again.encoding(), top.encoding(), "top cell decodes to other bytes");
    assert_eq!(again.id(), top.id(), "top cell decodes to another Value ID");

    if body.missing().is_empty() {
        let full = encode_full_body(top)
            .unwrap_or_else(|e| panic!("complete body cannot be re-encoded: {e}"));
        let back = Body::decode(full)
            .unwrap_or_else(|e| panic!("re-encoded complete body does not decode: {e}"));
        assert_eq!(back.top.id(), top.id(), "re-encoded body has another top Value ID");
        assert!(back.missing().is_empty(), "re-encoded complete body has missing cells");
    }
});
