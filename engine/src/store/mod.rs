//! Cell stores: the [`CellStore`] interface and its backends.

pub mod cad047;
pub mod cell_store;
pub mod io;
pub mod native;
pub mod open;
pub mod swap;

pub use cell_store::{CellStore, EtchStore, Root, StoreError, StoreStats};
pub use native::{NativeError, NativeOptions, NativeStore};
pub use open::{detect, open_store, AnyStore, OpenOptions, StoreFormat};
