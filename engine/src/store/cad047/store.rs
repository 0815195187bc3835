//! [`EtchStore`]: the [`CellStore`] over a CAD047 Etch file ([`super::EtchFile`]): put walks a
//! tree post-order and skips subtrees already PERSISTED, get decodes a record, checks its hash
//! and returns a cell whose refs resolve lazily; a bounded cache keeps decoded cells hot.

use super::{status, EtchFile, FLAG_NON_EMBEDDED};
use crate::store::cache::{CellCache, CACHE_BYTES_DEFAULT};
use crate::store::walk::walk_new_cells;
use crate::store::{CellStore, Root, StoreError, StoreStats};
use etch_formats::cell::ResolveError;
use etch_formats::value::memory_size;
use etch_formats::{decode_cell, Cell, Resolver, ValueId};
use std::path::Path;
use std::sync::{Mutex, RwLock};

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
        disk: &dyn crate::store::io::Disk,
        path: impl AsRef<Path>,
        writable: bool,
    ) -> Result<EtchStore, StoreError> {
        Ok(EtchStore::with_file(EtchFile::open_on(
            disk, path, writable,
        )?))
    }

    /// Creates a new Etch file on a given disk.
    pub fn create_on(
        disk: &dyn crate::store::io::Disk,
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
            Ok(self.status(id)?.is_some_and(|s| s >= status::PERSISTED))
        };
        walk_new_cells(value, false, &complete, &mut |cell| {
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
            let flags = status::PERSISTED
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
