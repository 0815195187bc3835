//! The `CellStore` interface every backend implements, and its CAD047 implementation.

use super::cad047::{self, EtchError, EtchFile, FLAG_NON_EMBEDDED};
use etch_formats::cell::ResolveError;
use etch_formats::value::memory_size;
use etch_formats::{decode_cell, Cell, Ref, Resolver, ValueId};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Mutex, RwLock};

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
    Native(super::native::NativeError),
    /// A cell needed to complete a tree is neither in the store nor in memory.
    #[error("missing cell {0}")]
    Missing(ValueId),
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

/// A hasher for maps keyed by Value IDs (or their bytes): the keys are already uniform SHA3
/// output, so their first 8 bytes are a perfect hash; SipHash would only cost time.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Arrays hash their length first (a usize write), then the bytes: take the first 8
        // bytes of the id, mixed with whatever came before.
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(w);
    }
}

/// `BuildHasher` of [`IdHasher`].
pub(crate) type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// Calls `emit` on every cell of `value`'s tree that a store must write, children before
/// parents (so a stored record never precedes the cells beneath it): the top cell always (a
/// top-level record, even when small enough to embed), and every branch cell that is not yet
/// complete in the store. `complete(id)` says whether a cell and everything beneath it are
/// already stored; such subtrees are not descended into. A branch known only by its ID must be
/// complete, else the walk fails with [`StoreError::Missing`].
pub(crate) fn walk_new_cells(
    value: &Cell,
    complete: &dyn Fn(&ValueId) -> Result<bool, StoreError>,
    emit: &mut dyn FnMut(&Cell) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    // Post-order with an explicit stack (trees can be deep).
    let mut stack: Vec<(Cell, bool, bool)> = vec![(value.clone(), true, false)];
    while let Some((cell, top, expanded)) = stack.pop() {
        if !expanded {
            if (top || !cell.is_embedded()) && complete(cell.id())? {
                continue;
            }
            stack.push((cell.clone(), top, true));
            for r in cell.refs().iter().rev() {
                match r {
                    Ref::Embedded(c) if !c.refs().is_empty() => {
                        stack.push((c.clone(), false, false))
                    }
                    Ref::Embedded(_) => {}
                    Ref::Branch(_) => match r.cell() {
                        Some(c) => stack.push((c.clone(), false, false)),
                        None if complete(&r.id())? => {}
                        None => return Err(StoreError::Missing(r.id())),
                    },
                }
            }
            continue;
        }
        if !top && cell.is_embedded() {
            continue;
        }
        emit(&cell)?;
    }
    Ok(())
}

/// Default budget of the decoded-cell cache of a store.
pub const CACHE_BYTES_DEFAULT: usize = 64 << 20;
/// Accounting overhead of one cached cell beyond its encoding (Arc, refs, map entry).
const CACHE_ENTRY_OVERHEAD_BYTES: usize = 160;

/// A bounded cache of decoded cells: FIFO eviction by bytes. Cheap, lock-held briefly, and
/// enough to keep the upper levels of trees being walked (which are read again and again) hot.
pub(crate) struct CellCache {
    budget_bytes: usize,
    used_bytes: usize,
    cells: HashMap<ValueId, Cell, IdHash>,
    order: VecDeque<ValueId>,
}

impl CellCache {
    pub(crate) fn new(budget_bytes: usize) -> CellCache {
        CellCache {
            budget_bytes,
            used_bytes: 0,
            cells: HashMap::default(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn set_budget(&mut self, bytes: usize) {
        self.budget_bytes = bytes;
        while self.used_bytes > bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(cell) = self.cells.remove(&old) {
                self.used_bytes -= cell.len() + CACHE_ENTRY_OVERHEAD_BYTES;
            }
        }
    }

    pub(crate) fn used(&self) -> usize {
        self.used_bytes
    }

    pub(crate) fn get(&self, id: &ValueId) -> Option<Cell> {
        self.cells.get(id).cloned()
    }

    pub(crate) fn insert(&mut self, cell: &Cell) {
        let cost = cell.len() + CACHE_ENTRY_OVERHEAD_BYTES;
        if cost > self.budget_bytes || self.cells.contains_key(cell.id()) {
            return;
        }
        while self.used_bytes + cost > self.budget_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(c) = self.cells.remove(&old) {
                self.used_bytes -= c.len() + CACHE_ENTRY_OVERHEAD_BYTES;
            }
        }
        self.used_bytes += cost;
        self.order.push_back(*cell.id());
        self.cells.insert(*cell.id(), cell.clone());
    }
}

/// A [`CellStore`] over a CAD047 Etch file.
pub struct EtchStore {
    file: RwLock<EtchFile>,
    cache: Mutex<CellCache>,
}

impl EtchStore {
    /// Opens an existing Etch file (read-only or for writing).
    pub fn open(path: impl AsRef<Path>, writable: bool) -> Result<EtchStore, StoreError> {
        Ok(EtchStore::with_file(EtchFile::open(path, writable)?))
    }

    /// Creates a new Etch file.
    pub fn create(path: impl AsRef<Path>) -> Result<EtchStore, StoreError> {
        Ok(EtchStore::with_file(EtchFile::create(path)?))
    }

    /// Opens an existing Etch file on a given disk (tests use a simulated one).
    pub fn open_on(
        disk: &dyn super::io::Disk,
        path: impl AsRef<Path>,
        writable: bool,
    ) -> Result<EtchStore, StoreError> {
        Ok(EtchStore::with_file(EtchFile::open_on(
            disk, path, writable,
        )?))
    }

    /// Creates a new Etch file on a given disk.
    pub fn create_on(
        disk: &dyn super::io::Disk,
        path: impl AsRef<Path>,
    ) -> Result<EtchStore, StoreError> {
        Ok(EtchStore::with_file(EtchFile::create_on(disk, path)?))
    }

    fn with_file(file: EtchFile) -> EtchStore {
        EtchStore {
            file: RwLock::new(file),
            cache: Mutex::new(CellCache::new(CACHE_BYTES_DEFAULT)),
        }
    }

    /// Sets the byte budget of the decoded-cell cache (0 disables it).
    pub fn set_cache_budget(&self, bytes: usize) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_budget(bytes);
    }

    /// Bytes the cache holds now (for tests and stats).
    pub fn cache_bytes(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).used()
    }

    /// Opens the file for writing, creating it when it does not exist.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<EtchStore, StoreError> {
        if path.as_ref().exists() {
            EtchStore::open(path, true)
        } else {
            EtchStore::create(path)
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, EtchFile> {
        self.file.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, EtchFile> {
        self.file.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Status of the record for `id`, if any.
    fn status(&self, id: &ValueId) -> Result<Option<u8>, StoreError> {
        let f = self.read();
        Ok(f.get(&id.0)?.map(|r| r.flags & 0x0f))
    }
}

impl Resolver for EtchStore {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        self.get(id).map_err(Into::into)
    }
}

impl CellStore for EtchStore {
    fn put(&self, value: &Cell) -> Result<ValueId, StoreError> {
        // Convex never writes a record for nil (every store knows it) and its validation
        // rejects one (etch.md §12).
        if value.is_nil() {
            return Ok(*value.id());
        }
        let complete = |id: &ValueId| -> Result<bool, StoreError> {
            Ok(self
                .status(id)?
                .is_some_and(|s| s >= cad047::status::PERSISTED))
        };
        walk_new_cells(value, &complete, &mut |cell| {
            let mem = memory_size(cell, self).map_err(|e| match e {
                ResolveError::Missing(id) => StoreError::Missing(id),
                other => StoreError::BadRecord {
                    id: *cell.id(),
                    detail: other.to_string(),
                },
            })?;
            // As the reference writes them (Etch.appendData with the Ref's lazily set bits):
            // a branch record is NON_EMBEDDED (0x23 once PERSISTED); the top-level record has
            // neither embedding bit (0x03) whether or not it would embed, as in both reference
            // files. Clear bits only under-claim, which is safe.
            let flags = cad047::status::PERSISTED
                | if cell.id() == value.id() {
                    0
                } else {
                    FLAG_NON_EMBEDDED
                };
            self.write()
                .write(&cell.id().0, cell.encoding(), flags, mem)?;
            Ok(())
        })?;
        Ok(*value.id())
    }

    fn get(&self, id: &ValueId) -> Result<Option<Cell>, StoreError> {
        if let Some(c) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(Some(c));
        }
        let f = self.read();
        let Some(rec) = f.get(&id.0)? else {
            return Ok(None);
        };
        let bad = |detail: String| StoreError::BadRecord {
            id: *id,
            detail: format!("record at offset {}: {detail}", rec.offset),
        };
        let cell = decode_cell(rec.encoding.to_vec()).map_err(|e| bad(e.to_string()))?;
        if cell.id() != id {
            return Err(bad(format!("encoding hashes to {}", cell.id())));
        }
        drop(f);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(&cell);
        Ok(Some(cell))
    }

    fn contains(&self, id: &ValueId) -> Result<bool, StoreError> {
        Ok(self.read().lookup(&id.0)?.is_some())
    }

    fn root(&self) -> Result<Root, StoreError> {
        let root = self.read().root();
        if root == [0u8; 32] {
            return Ok(Root::Unset);
        }
        let id = ValueId(root);
        if id == *Cell::nil().id() {
            return Ok(Root::Value(Cell::nil()));
        }
        match self.get(&id)? {
            Some(c) => Ok(Root::Value(c)),
            None => Err(StoreError::Missing(id)),
        }
    }

    fn set_root(&self, value: &Cell) -> Result<(), StoreError> {
        if !value.is_nil() {
            self.put(value)?;
        }
        let mut f = self.write();
        f.set_root(value.id().0)?;
        f.commit()?;
        Ok(())
    }

    fn commit(&self) -> Result<(), StoreError> {
        self.write().commit()?;
        Ok(())
    }

    fn for_each_id(
        &self,
        f: &mut dyn FnMut(ValueId) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let file = self.read();
        for off in file.record_offsets()? {
            let rec = file.record_at(off)?;
            f(ValueId(rec.key))?;
        }
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let file = self.read();
        let offsets = file.record_offsets()?;
        let mut encoding_bytes = 0;
        for off in &offsets {
            encoding_bytes += file.record_at(*off)?.encoding.len() as u64;
        }
        let file_len = std::fs::metadata(file.path()).map(|m| m.len()).unwrap_or(0);
        Ok(StoreStats {
            cells: offsets.len() as u64,
            encoding_bytes,
            data_len: file.data_len(),
            file_len,
        })
    }
}
