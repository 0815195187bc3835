//! Cell stores: the [`CellStore`] interface and its backends.

pub mod cad047;
pub mod cell_store;

pub use cell_store::{CellStore, EtchStore, Root, StoreError, StoreStats};
