//! A store that can be replaced while it serves (online compaction, `crate::gc`): readers and
//! writers go to the current store; after a replacement, a read the new store cannot answer
//! is answered by the one it replaced for [`RETIRED_GRACE`], so a reader that was walking an
//! older root when the swap happened never sees a missing cell. Writes wait while a compaction
//! copies ([`LiveStore::pause_writes`]): a cell written to the old store after the copy read it
//! would otherwise be left behind (an HTTP PUT streams its contents into the store before its
//! commit, outside the node's commit lock).

use super::{CellStore, Root, StoreError, StoreStats};
use etch_formats::cell::ResolveError;
use etch_formats::{Cell, Resolver, ValueId};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// How long a replaced store keeps answering reads the new one cannot.
pub const RETIRED_GRACE: Duration = Duration::from_secs(60);

/// The current store, and the one it replaced while that still answers.
pub struct LiveStore {
    current: RwLock<Arc<dyn CellStore>>,
    /// Held shared by every write, exclusively by a compaction.
    writes: RwLock<()>,
    retired: Mutex<Option<(Instant, Arc<dyn CellStore>)>>,
}

impl LiveStore {
    /// Serves `store`.
    pub fn new(store: Arc<dyn CellStore>) -> LiveStore {
        LiveStore {
            current: RwLock::new(store),
            writes: RwLock::new(()),
            retired: Mutex::new(None),
        }
    }

    /// The store serving now.
    pub fn current(&self) -> Arc<dyn CellStore> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Holds every write (put, commit, root) until the guard is dropped.
    pub fn pause_writes(&self) -> RwLockWriteGuard<'_, ()> {
        self.writes.write().unwrap_or_else(|p| p.into_inner())
    }

    fn writing(&self) -> RwLockReadGuard<'_, ()> {
        self.writes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `store` in place of the current one, which answers what `store` cannot for
    /// [`RETIRED_GRACE`] and is then closed.
    pub fn replace(&self, store: Arc<dyn CellStore>) {
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            store,
        );
        *self.retired.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), old));
    }

    fn retired(&self) -> Option<Arc<dyn CellStore>> {
        let mut r = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        match &*r {
            Some((at, s)) if at.elapsed() < RETIRED_GRACE => Some(s.clone()),
            Some(_) => {
                *r = None;
                None
            }
            None => None,
        }
    }
}

impl Resolver for LiveStore {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        self.get(id).map_err(Into::into)
    }
}

impl CellStore for LiveStore {
    fn put(&self, value: &Cell) -> Result<ValueId, StoreError> {
        let _w = self.writing();
        self.current().put(value)
    }

    fn put_partial(&self, value: &Cell) -> Result<ValueId, StoreError> {
        let _w = self.writing();
        self.current().put_partial(value)
    }

    fn put_many(&self, values: &[Cell]) -> Result<(), StoreError> {
        let _w = self.writing();
        self.current().put_many(values)
    }

    fn get(&self, id: &ValueId) -> Result<Option<Cell>, StoreError> {
        match self.current().get(id)? {
            Some(c) => Ok(Some(c)),
            None => match self.retired() {
                Some(old) => old.get(id),
                None => Ok(None),
            },
        }
    }

    fn contains(&self, id: &ValueId) -> Result<bool, StoreError> {
        self.current().contains(id)
    }

    fn root(&self) -> Result<Root, StoreError> {
        self.current().root()
    }

    fn set_root(&self, value: &Cell) -> Result<(), StoreError> {
        let _w = self.writing();
        self.current().set_root(value)
    }

    fn commit(&self) -> Result<(), StoreError> {
        let _w = self.writing();
        self.current().commit()
    }

    fn for_each_id(
        &self,
        f: &mut dyn FnMut(ValueId) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.current().for_each_id(f)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.current().stats()
    }
}
