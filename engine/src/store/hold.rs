//! The store of a partial replica (issue 15; docs/PROVIDER.md, "Partial replicas"): a node run
//! with `etch serve --hold pinned` keeps on disk only the lattice skeleton (what merges read:
//! `lattice::hold`) and the trees under its pins; any other cell a reader asks for is fetched
//! from a [`CellSource`] (the node's peers), checked against its ID and kept in a read cache
//! with a byte budget — in memory, never written, so reads cannot grow the store.
//!
//! [`HoldStore`] wraps the node's real store: writes go to it with
//! [`CellStore::put_partial`] (a merged root refers to values the node does not hold), reads
//! look in it, then in the cache, then at the source. `contains` answers for the real store
//! only: it says what this node holds, which is what acquisition and writes need to know.

use super::cache::CellCache;
use super::{CellStore, Root, StoreError, StoreStats};
use etch_formats::cell::ResolveError;
use etch_formats::{Cell, Ref, Resolver, ValueId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Where a partial replica gets the cells it does not hold (the server asks its peers).
pub trait CellSource: Send + Sync {
    /// Cells by ID, from whoever holds them: the cells found (the ones asked for, and possibly
    /// children fetched ahead), in any order; an ID nobody holds is simply absent. An error
    /// says why nobody could be asked.
    fn fetch(&self, ids: &[ValueId]) -> Result<Vec<Cell>, String>;
}

/// A partial replica's store: the real store plus a read cache and a source of the rest.
pub struct HoldStore {
    inner: Arc<dyn CellStore>,
    cache: Mutex<CellCache>,
    source: RwLock<Option<Arc<dyn CellSource>>>,
    fetched_cells: AtomicU64,
    fetched_bytes: AtomicU64,
}

/// Figures of a [`HoldStore`]'s read cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldStats {
    /// Bytes the read cache holds now (encodings plus bookkeeping).
    pub cache_bytes: u64,
    /// The cache's budget.
    pub cache_budget: u64,
    /// Cells fetched from the source since the node started.
    pub fetched_cells: u64,
    /// Their encoding bytes.
    pub fetched_bytes: u64,
}

impl HoldStore {
    /// A partial replica over `inner` (a store that supports `put_partial`: a native one) with
    /// a read cache of `cache_bytes`. Reads of cells it lacks fail as missing until a source is
    /// set.
    pub fn new(inner: Arc<dyn CellStore>, cache_bytes: usize) -> HoldStore {
        HoldStore {
            inner,
            cache: Mutex::new(CellCache::new(cache_bytes)),
            source: RwLock::new(None),
            fetched_cells: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
        }
    }

    /// Sets where cells not held are fetched from.
    pub fn set_source(&self, source: Arc<dyn CellSource>) {
        *self.source.write().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// The real store: what this node holds (serving peers reads only this, so that two
    /// partial replicas never ask each other round in circles).
    pub fn local(&self) -> &Arc<dyn CellStore> {
        &self.inner
    }

    /// The read cache's figures.
    pub fn hold_stats(&self) -> HoldStats {
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        HoldStats {
            cache_bytes: c.used() as u64,
            cache_budget: c.budget() as u64,
            fetched_cells: self.fetched_cells.load(Ordering::Relaxed),
            fetched_bytes: self.fetched_bytes.load(Ordering::Relaxed),
        }
    }

    fn cached(&self, id: &ValueId) -> Option<Cell> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id)
    }

    /// Fetches `id` from the source and caches what came back.
    fn fetch(&self, id: &ValueId) -> Result<Option<Cell>, StoreError> {
        let source = self
            .source
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(source) = source else {
            return Ok(None);
        };
        // A source that cannot be asked (no peer connected, none answering in time) leaves the
        // cell not found: callers report what is missing (`:MISSING`), and a lookup that has
        // another way to the value (an embedded value, found through the root's :data Index)
        // goes on to it.
        let cells = match source.fetch(std::slice::from_ref(id)) {
            Ok(cells) => cells,
            Err(_) => return Ok(None),
        };
        let mut found = None;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for cell in cells {
            self.fetched_cells.fetch_add(1, Ordering::Relaxed);
            self.fetched_bytes
                .fetch_add(cell.len() as u64, Ordering::Relaxed);
            cache.insert(&cell);
            if cell.id() == id {
                found = Some(cell);
            }
        }
        Ok(found)
    }
}

impl Resolver for HoldStore {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        self.get(id).map_err(Into::into)
    }
}

impl CellStore for HoldStore {
    fn put(&self, value: &Cell) -> Result<ValueId, StoreError> {
        self.inner.put_partial(value)
    }

    fn put_partial(&self, value: &Cell) -> Result<ValueId, StoreError> {
        self.inner.put_partial(value)
    }

    fn put_many(&self, values: &[Cell]) -> Result<(), StoreError> {
        for v in values {
            self.inner.put_partial(v)?;
        }
        Ok(())
    }

    fn get(&self, id: &ValueId) -> Result<Option<Cell>, StoreError> {
        if let Some(c) = self.inner.get(id)? {
            return Ok(Some(c));
        }
        if let Some(c) = self.cached(id) {
            return Ok(Some(c));
        }
        self.fetch(id)
    }

    fn contains(&self, id: &ValueId) -> Result<bool, StoreError> {
        self.inner.contains(id)
    }

    fn root(&self) -> Result<Root, StoreError> {
        self.inner.root()
    }

    fn set_root(&self, value: &Cell) -> Result<(), StoreError> {
        // The root's tree is written first with the partial walk; the store's own `set_root`
        // then finds it stored and only commits.
        self.inner.put_partial(value)?;
        self.inner.set_root(value)
    }

    fn commit(&self) -> Result<(), StoreError> {
        self.inner.commit()
    }

    fn for_each_id(
        &self,
        f: &mut dyn FnMut(ValueId) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.for_each_id(f)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
}

/// Makes the whole tree of `value` present in memory or in `store`, so that a `put` of it
/// writes every cell: each branch neither attached nor stored is read through `store` (for a
/// [`HoldStore`], fetched from its source) and attached. Pinning a value on a partial replica
/// does this first, so that a pin always holds its whole tree. Returns the cells read.
pub fn hold_tree(value: &Cell, store: &dyn CellStore) -> Result<u64, StoreError> {
    let mut read = 0u64;
    let mut stack = vec![value.clone()];
    while let Some(cell) = stack.pop() {
        for r in cell.refs() {
            match r {
                Ref::Embedded(c) => {
                    if !c.refs().is_empty() {
                        stack.push(c.clone());
                    }
                }
                Ref::Branch(b) => {
                    if let Some(t) = b.target() {
                        stack.push(t.clone());
                    } else if !store.contains(b.id())? {
                        let c = r.resolve(store).map_err(|e| match e {
                            ResolveError::Missing(id) => StoreError::Missing(id),
                            other => StoreError::Source(other.to_string()),
                        })?;
                        read += 1;
                        stack.push(c);
                    }
                }
            }
        }
    }
    Ok(read)
}
