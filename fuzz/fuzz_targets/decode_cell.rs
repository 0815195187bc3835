//! Arbitrary bytes → `decode_cell`. An accepted cell must be canonical (its encoding is exactly
//! the input), and printing it must not panic (it may fail, e.g. on unresolved branch refs).
#![no_main]

use etch_formats::{decode_cell, text, NoResolver};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cell) = decode_cell(data.to_vec()) else {
        return;
    };
    assert_eq!(
        cell.encoding(),
        data,
        "decoded cell re-encodes differently from its input"
    );
    let _ = text::print(&cell, &NoResolver);
});
