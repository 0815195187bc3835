//! Arbitrary UTF-8 text → `read_all`. Every value read that prints must read back from its
//! printed text to the same Value ID; raw forms (`#[hex]`, printed for cells with refs and
//! unprintable values) may fail to read back.
#![no_main]

use etch_formats::text::{self, read::read_all, read::read_one};
use etch_formats::NoResolver;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(values) = read_all(src) else {
        return;
    };
    for v in &values {
        let Ok(printed) = text::print(v, &NoResolver) else {
            continue;
        };
        match read_one(&printed) {
            Ok(back) => assert_eq!(
                back.id(),
                v.id(),
                "printed text {printed:?} reads back as another value (input {src:?})"
            ),
            Err(e) => assert!(
                printed.contains("#["),
                "printed text {printed:?} does not read back: {e} (input {src:?})"
            ),
        }
    }
});
