//! The Convex-compatible CAD047 Etch file (`shared/spec/etch.md`): [`file`] reads and writes it
//! exactly as the reference does; [`journal`] makes its commits atomic against power loss.

mod file;
mod journal;

pub(crate) use file::lock;
pub use file::*;
