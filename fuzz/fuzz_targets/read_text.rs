//! Arbitrary UTF-8 text → `read_all`. Every value read that prints must read back from its
//! printed text to the same Value ID. Two kinds of value are exempt, as in the reference:
//! - raw forms (`#[hex]`, printed for cells with refs and unprintable values) may fail to read;
//! - a value holding a symbol whose name does not read back as that symbol. `@NAME` and
//!   `a/NAME` make a symbol of any NAME token (Convex.g4 `AT_SYMBOL`, `SLASH_SYMBOL`), so
//!   `@true`, `@nil` and `@-1` read as `(resolve <symbol>)`, and the printer writes a symbol's
//!   name as it is, which then reads as a boolean, nil or a number (as Convex does).
#![no_main]

use etch_formats::text::{self, read::read_all, read::read_one};
use etch_formats::{Cell, Kind, NoResolver};
use libfuzzer_sys::fuzz_target;

/// Whether `cell` (or any value inside it) is a symbol that its printed name does not give back.
fn has_unreadable_symbol(cell: &Cell) -> bool {
    let mut stack = vec![cell.clone()];
    while let Some(c) = stack.pop() {
        if c.kind() == Kind::Symbol {
            let name = String::from_utf8_lossy(c.name_bytes().unwrap_or_default()).into_owned();
            match read_one(&name) {
                Ok(back) if back.id() == c.id() => {}
                _ => return true,
            }
        }
        stack.extend(c.refs().iter().filter_map(|r| r.cell().cloned()));
    }
    false
}

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
            Ok(back) => assert!(
                back.id() == v.id() || has_unreadable_symbol(v),
                "printed text {printed:?} reads back as another value (input {src:?})"
            ),
            Err(e) => assert!(
                printed.contains("#[") || has_unreadable_symbol(v),
                "printed text {printed:?} does not read back: {e} (input {src:?})"
            ),
        }
    }
});
