//! The Convex-compatible CAD047 Etch file (`shared/spec/etch.md`): [`file`] reads and writes it
//! exactly as the reference does; [`journal`] makes its commits atomic against power loss;
//! [`store`] is the [`crate::store::CellStore`] over it.

mod file;
mod journal;
pub mod store;

pub(crate) use file::lock;
pub use file::*;
