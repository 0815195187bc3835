//! Convex-Lisp text: the reader (text → value) and the printer (value → text), query.md §2, §7.

pub mod json;
pub mod print;
pub mod read;

pub use json::print_json;
pub use print::{print, print_limited, print_shortened, PrintError, Shorten, Shortened};
pub use read::{read_all, read_all_at, read_one, Located, SyntaxError};
