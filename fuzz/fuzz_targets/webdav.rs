//! Arbitrary text → the WebDAV parsers of the HTTP door (PROPFIND, PROPPATCH and LOCK bodies,
//! the `If` header, drive paths): no panic, and every stored PROPPATCH value parses back as the
//! same property (`etch_server::fuzzing::webdav`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        etch_server::fuzzing::webdav(text);
    }
});
