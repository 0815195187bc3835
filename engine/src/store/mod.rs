//! Cell stores: the [`CellStore`] interface every backend implements (etch.md, FORMAT.md), its
//! errors and [`Root`]; the backends ([`cad047`], [`native`]) and what they share: the I/O seam
//! ([`io`]), the decoded-cell cache ([`cache`]), the walk that finds a tree's new cells
//! ([`walk`]); the partial replica's store ([`hold`]); opening either format ([`open`]) and replacing a store by its compacted copy
//! ([`swap`]).

pub mod cache;
pub mod cad047;
pub mod hold;
pub mod io;
pub mod live;
pub mod native;
pub mod open;
pub mod swap;
pub mod walk;

pub use cad047::store::EtchStore;
pub use native::{NativeError, NativeOptions, NativeStore};
pub use open::{detect, open_store, AnyStore, OpenOptions, StoreFormat};

use cad047::EtchError;
use etch_formats::cell::ResolveError;
use etch_formats::{Cell, Resolver, ValueId};

/// Errors of a cell store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file layer failed (I/O, corruption, lock).
    #[error(transparent)]
    Etch(#[from] EtchError),
    /// A stored record does not hold the cell its key names.
    #[error("corrupt record for {id}: {detail}")]
    BadRecord {
        /// The key.
        id: ValueId,
        /// What is wrong.
        detail: String,
    },
    /// The native store failed.
    #[error(transparent)]
    Native(native::NativeError),
    /// A cell needed to complete a tree is neither in the store nor in memory.
    #[error("missing cell {0}")]
    Missing(ValueId),
    /// A partial replica could not fetch a cell it does not hold (`hold`).
    #[error("fetching from peers: {0}")]
    Source(String),
    /// The store cannot do what was asked.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl From<StoreError> for ResolveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Missing(id) => ResolveError::Missing(id),
            other => ResolveError::Store(other.to_string()),
        }
    }
}

/// Figures about a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Records in the index.
    pub cells: u64,
    /// Sum of the stored encodings' lengths.
    pub encoding_bytes: u64,
    /// Logical data length.
    pub data_len: u64,
    /// Physical file size.
    pub file_len: u64,
}

/// The root of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// No root was ever set.
    Unset,
    /// The root value.
    Value(Cell),
}

/// A content-addressed store of cells.
pub trait CellStore: Resolver + Send + Sync {
    /// Persists a value: every branch cell of its tree not yet stored (subtrees already stored
    /// complete are skipped) and the top cell itself. Returns its Value ID. Durable only after
    /// [`CellStore::commit`] or [`CellStore::set_root`].
    fn put(&self, value: &Cell) -> Result<ValueId, StoreError>;
    /// As `put`, for a partial replica (`store::hold`): branches of the tree that are neither in
    /// memory nor stored are passed over instead of failing with [`StoreError::Missing`] (the
    /// replica does not hold them, by design). Stores that cannot hold a partial tree refuse.
    fn put_partial(&self, value: &Cell) -> Result<ValueId, StoreError> {
        let _ = value;
        Err(StoreError::Unsupported(
            "this store format cannot hold a partial replica; use a native store",
        ))
    }
    /// Persists several values, as `put` on each; a backend may hash them in parallel first.
    fn put_many(&self, values: &[Cell]) -> Result<(), StoreError> {
        for v in values {
            self.put(v)?;
        }
        Ok(())
    }
    /// The cell with this ID, decoded, with child refs that resolve lazily from the store.
    fn get(&self, id: &ValueId) -> Result<Option<Cell>, StoreError>;
    /// True if a record for this ID exists.
    fn contains(&self, id: &ValueId) -> Result<bool, StoreError>;
    /// The root value.
    fn root(&self) -> Result<Root, StoreError>;
    /// Persists `value` and makes it the root; returns once data, index and root are durable.
    fn set_root(&self, value: &Cell) -> Result<(), StoreError>;
    /// Makes every write so far durable.
    fn commit(&self) -> Result<(), StoreError>;
    /// Calls `f` for the ID of every stored record.
    fn for_each_id(
        &self,
        f: &mut dyn FnMut(ValueId) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Figures about the store.
    fn stats(&self) -> Result<StoreStats, StoreError>;
}
