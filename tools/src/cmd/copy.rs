//! Copying cells between stores of either format, for `compact`, `convert`, `import` and
//! `recover`: a [`Source`] to read from (verified reads), a [`Sink`] to write records into
//! (children before parents, so a CAD047 target can label every copied tree PERSISTED with its
//! memory size), and the post-order walk that visits a tree once, children first.

use super::scan::branch_children;
use etch_engine::store::cad047::{self, EtchFile, FLAG_NON_EMBEDDED};
use etch_engine::store::{detect, NativeOptions, NativeStore, StoreFormat};
use etch_formats::cell::ResolveError;
use etch_formats::{decode_cell, decode_checked_cell, Cell, Kind, Ref, Resolver, ValueId};
use std::collections::HashSet;
use std::path::Path;

/// A store opened for reading cells.
#[allow(clippy::large_enum_variant)] // one per command
pub enum Source {
    /// A native store.
    Native(NativeStore),
    /// A CAD047 file.
    Cad(EtchFile),
}

impl Source {
    /// Opens the store at `path` (`writable`: with its write lock, so no one writes meanwhile).
    pub fn open(path: &Path, writable: bool) -> Result<Source, String> {
        let access = if writable {
            super::Access::Write
        } else {
            super::Access::Read
        };
        super::check_store_path(path, access)?;
        match detect(path) {
            Some(StoreFormat::Native) => {
                // Offline tools check every cell's hash as they read it.
                let options = NativeOptions {
                    verify_hashes: true,
                    ..NativeOptions::default()
                };
                NativeStore::open(path, writable, options)
                    .map(Source::Native)
                    .map_err(|e| e.to_string())
            }
            Some(StoreFormat::Cad047) => EtchFile::open(path, writable)
                .map(Source::Cad)
                .map_err(|e| e.to_string()),
            None => Err(format!("{}: not an Etch store", path.display())),
        }
    }

    /// Its format.
    pub fn format(&self) -> StoreFormat {
        match self {
            Source::Native(_) => StoreFormat::Native,
            Source::Cad(_) => StoreFormat::Cad047,
        }
    }

    /// The current root.
    pub fn root(&self) -> Option<ValueId> {
        match self {
            Source::Native(s) => s.head().root.map(ValueId),
            Source::Cad(f) => {
                let r = f.root();
                (r != [0u8; 32]).then_some(ValueId(r))
            }
        }
    }

    /// Whether the root is a partial replica's (`etch serve --hold pinned`).
    pub fn is_partial(&self) -> bool {
        self.root()
            .and_then(|id| self.resolve(&id).ok().flatten())
            .is_some_and(|root| {
                etch_engine::lattice::hold::is_partial(&root, self).unwrap_or(false)
            })
    }

    /// Native: every commit, oldest first, as (seq, root). CAD047: none.
    pub fn snapshot_roots(&self) -> Result<Vec<(u64, Option<ValueId>)>, String> {
        match self {
            Source::Native(s) => Ok(s
                .snapshots()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|x| (x.commit.seq, x.commit.root.map(ValueId)))
                .collect()),
            Source::Cad(_) => Ok(Vec::new()),
        }
    }

    /// For each record, when it was written (ms since the epoch): native stores know it from
    /// the commit that made the record durable; a CAD047 file keeps no times (`None`).
    pub fn record_times(&self) -> Result<Option<RecordTimes>, String> {
        match self {
            Source::Native(s) => {
                let ends = s
                    .snapshots()
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|x| (x.commit.log_end, x.commit.time_ms))
                    .collect();
                Ok(Some(RecordTimes { ends }))
            }
            Source::Cad(_) => Ok(None),
        }
    }

    /// The time the record of `id` was committed (see [`Source::record_times`]).
    pub fn record_time(&self, times: &RecordTimes, id: &ValueId) -> Option<i64> {
        let Source::Native(s) = self else {
            return None;
        };
        let addr = s.record_address(id)?;
        let i = times.ends.partition_point(|(end, _)| *end <= addr);
        times.ends.get(i).map(|(_, t)| *t)
    }

    /// The CAD047 flags of a record.
    pub fn flags(&self, id: &ValueId) -> Option<u8> {
        match self {
            Source::Native(_) => None,
            Source::Cad(f) => f.get(&id.0).ok().flatten().map(|r| r.flags),
        }
    }

    /// Records in the store.
    pub fn record_count(&self) -> Result<u64, String> {
        match self {
            Source::Native(s) => Ok(s.head().cells),
            Source::Cad(f) => f
                .record_offsets()
                .map(|o| o.len() as u64)
                .map_err(|e| e.to_string()),
        }
    }

    /// The Value ID of every record.
    pub fn all_ids(&self) -> Result<Vec<ValueId>, String> {
        match self {
            Source::Native(s) => {
                let mut out = Vec::new();
                etch_engine::store::CellStore::for_each_id(s, &mut |id| {
                    out.push(id);
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
                Ok(out)
            }
            Source::Cad(f) => {
                let mut offs = f.record_offsets().map_err(|e| e.to_string())?;
                offs.sort_unstable();
                offs.iter()
                    .map(|o| f.record_at(*o).map(|r| ValueId(r.key)))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The log end and time of every commit of a native store, oldest first.
pub struct RecordTimes {
    ends: Vec<(u64, i64)>,
}

impl Resolver for Source {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        match self {
            Source::Native(s) => etch_engine::store::CellStore::get(s, id).map_err(Into::into),
            Source::Cad(f) => {
                let Some(rec) = f
                    .get(&id.0)
                    .map_err(|e| ResolveError::Store(e.to_string()))?
                else {
                    return Ok(None);
                };
                let cell = decode_cell(rec.encoding.to_vec()).map_err(|e| {
                    ResolveError::Store(format!("record of {id} at {}: {e}", rec.offset))
                })?;
                if cell.id() != id {
                    return Err(ResolveError::Store(format!(
                        "record of {id} at {} hashes to {}",
                        rec.offset,
                        cell.id()
                    )));
                }
                Ok(Some(cell))
            }
        }
    }
}

/// Bytes a CAD047 sink stages before it commits (its writes are held in memory until then).
const CAD_STAGE_BYTES: u64 = 64 << 20;

/// A store being written record by record.
#[allow(clippy::large_enum_variant)] // one per command
pub enum Sink {
    /// A native store, and whether records were written since its last commit.
    Native(NativeStore, bool),
    /// A CAD047 file and the bytes staged since its last commit.
    Cad(EtchFile, u64),
}

/// The memory size (encoding.md §10) of `cell`, given those of the branch cells it refers to;
/// `None` if one is not known. `meta`: the cell is a Syntax's metadata map (always inline).
pub fn memory_size(
    cell: &Cell,
    meta: bool,
    branch: &dyn Fn(&ValueId) -> Option<u64>,
) -> Option<u64> {
    let mut total: u64 = 0;
    for (i, r) in cell.refs().iter().enumerate() {
        let m = match r {
            Ref::Embedded(c) => {
                if c.refs().is_empty() && c.is_embedded() {
                    0
                } else {
                    memory_size(c, cell.kind() == Kind::Syntax && i == 1, branch)?
                }
            }
            Ref::Branch(b) => branch(b.id())?,
        };
        total = total.saturating_add(m);
    }
    if !cell.is_embedded() && !meta {
        total = total.saturating_add(cell.len() as u64 + 64);
    }
    Some(total.min(i64::MAX as u64))
}

impl Sink {
    /// Creates a new store of `format` at `path` (nothing may be there).
    pub fn create(path: &Path, format: StoreFormat) -> Result<Sink, String> {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(format!(
                "{}: already exists; name a path that is free",
                path.display()
            ));
        }
        super::check_store_path(path, super::Access::Create(format.into()))?;
        match format {
            StoreFormat::Native => NativeStore::create(path, NativeOptions::default())
                .map(|s| Sink::Native(s, false))
                .map_err(|e| e.to_string()),
            StoreFormat::Cad047 => EtchFile::create(path)
                .map(|f| Sink::Cad(f, 0))
                .map_err(|e| e.to_string()),
        }
    }

    /// Opens the store at `path` for writing, creating one of `format` if nothing is there.
    pub fn open_or_create(path: &Path, format: StoreFormat) -> Result<Sink, String> {
        super::check_store_path(path, super::Access::Create(format.into()))?;
        match detect(path) {
            Some(StoreFormat::Native) => NativeStore::open(path, true, NativeOptions::default())
                .map(|s| Sink::Native(s, false))
                .map_err(|e| e.to_string()),
            Some(StoreFormat::Cad047) => EtchFile::open(path, true)
                .map(|f| Sink::Cad(f, 0))
                .map_err(|e| e.to_string()),
            None => {
                if path.is_dir() {
                    std::fs::remove_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
                }
                Sink::create(path, format)
            }
        }
    }

    /// True when the store holds this cell.
    pub fn contains(&self, id: &ValueId) -> bool {
        match self {
            Sink::Native(s, _) => etch_engine::store::CellStore::contains(s, id).unwrap_or(false),
            Sink::Cad(f, _) => f.lookup(&id.0).ok().flatten().is_some(),
        }
    }

    /// Writes the record of the cell whose Value ID is `id` and whose canonical encoding (checked
    /// by the caller) is `encoding`, as [`Sink::put`] does: a native store takes the bytes as they
    /// are, so only a CAD047 file, which labels its records, decodes the cell.
    pub fn put_encoding(
        &mut self,
        id: &ValueId,
        encoding: &[u8],
        complete: bool,
    ) -> Result<bool, String> {
        match self {
            Sink::Native(s, dirty) => {
                let new = s.put_record(id, encoding).map_err(|e| e.to_string())?;
                *dirty |= new;
                Ok(new)
            }
            Sink::Cad(..) => {
                let cell = decode_checked_cell(encoding.to_vec()).map_err(|e| e.to_string())?;
                cell.set_known_id(*id);
                self.put(&cell, complete, None)
            }
        }
    }

    /// Writes `cell`'s record. `complete`: every branch beneath it is already stored complete
    /// (a CAD047 target then labels it PERSISTED with its memory size, or keeps ANNOUNCED when
    /// `source_flags` says so); otherwise STORED. Returns false when it was there already.
    pub fn put(
        &mut self,
        cell: &Cell,
        complete: bool,
        source_flags: Option<u8>,
    ) -> Result<bool, String> {
        match self {
            Sink::Native(..) => self.put_encoding(cell.id(), cell.encoding(), complete),
            // Convex never writes a record for nil, and its validation rejects one.
            Sink::Cad(..) if cell.is_nil() => Ok(false),
            Sink::Cad(f, staged) => {
                let existed = f.lookup(&cell.id().0).map_err(|e| e.to_string())?.is_some();
                let mem = if complete {
                    memory_size(cell, false, &|id| {
                        f.get(&id.0)
                            .ok()
                            .flatten()
                            .filter(|r| r.flags & 0x0f >= cad047::status::PERSISTED)
                            .map(|r| r.memory_size)
                            .filter(|m| *m > 0)
                    })
                } else {
                    None
                };
                let status = match mem {
                    Some(_) => source_flags
                        .map(|s| s & 0x0f)
                        .filter(|s| *s == cad047::status::ANNOUNCED)
                        .unwrap_or(cad047::status::PERSISTED),
                    None => cad047::status::STORED,
                };
                // A CAD047 source's embedding bits are kept as they are, so a copy between
                // CAD047 files is byte-identical; otherwise branches are marked NON_EMBEDDED.
                let flags = status
                    | match source_flags {
                        Some(src) => src & (FLAG_NON_EMBEDDED | cad047::FLAG_EMBEDDED),
                        None if cell.is_embedded() => 0,
                        None => FLAG_NON_EMBEDDED,
                    };
                f.write(&cell.id().0, cell.encoding(), flags, mem.unwrap_or(0))
                    .map_err(|e| e.to_string())?;
                *staged += cell.len() as u64 + cad047::RECORD_HEADER_BYTES;
                if *staged >= CAD_STAGE_BYTES {
                    f.commit().map_err(|e| e.to_string())?;
                    *staged = 0;
                }
                Ok(!existed)
            }
        }
    }

    /// Makes `root` the root, durably (a native store gets a commit).
    pub fn commit_root(&mut self, root: Option<ValueId>) -> Result<(), String> {
        let nil = *Cell::nil().id();
        match self {
            Sink::Native(s, dirty) => {
                if root == Some(nil) {
                    s.put_record(&nil, Cell::nil().encoding())
                        .map_err(|e| e.to_string())?;
                }
                *dirty = false;
                s.set_root_id(root).map_err(|e| e.to_string())
            }
            Sink::Cad(f, staged) => {
                f.set_root(root.map_or([0u8; 32], |r| r.0))
                    .map_err(|e| e.to_string())?;
                *staged = 0;
                f.commit().map_err(|e| e.to_string())
            }
        }
    }

    /// Makes everything written durable and closes the store.
    pub fn finish(self) -> Result<(), String> {
        match self {
            Sink::Native(s, true) => {
                etch_engine::store::CellStore::commit(&s).map_err(|e| e.to_string())
            }
            Sink::Native(_, false) => Ok(()),
            Sink::Cad(mut f, _) => f.commit().map_err(|e| e.to_string()),
        }
    }
}

/// Visits every cell of the tree under `root` not yet in `seen`, children before parents
/// (branch refs in encoding order, through embedded children), `root` last; each once.
/// Deterministic: the same tree gives the same sequence. Iterative (trees can be deep).
pub fn post_order(
    src: &dyn Resolver,
    root: &ValueId,
    seen: &mut HashSet<ValueId>,
    emit: &mut dyn FnMut(&Cell) -> Result<(), String>,
) -> Result<(), String> {
    if !seen.insert(*root) {
        return Ok(());
    }
    let fetch = |id: &ValueId| -> Result<(Cell, Vec<ValueId>), String> {
        let c = src
            .resolve(id)
            .map_err(|e| format!("cell {id}: {e}"))?
            .ok_or_else(|| {
                format!("missing cell {id}: the store is damaged (see etch verify, etch recover)")
            })?;
        let mut kids = Vec::new();
        branch_children(&c, &mut kids);
        Ok((c, kids))
    };
    let (top, kids) = fetch(root)?;
    let mut stack: Vec<(Cell, Vec<ValueId>, usize)> = vec![(top, kids, 0)];
    loop {
        let next = match stack.last_mut() {
            None => break,
            Some((_, kids, i)) if *i < kids.len() => {
                *i += 1;
                Some(kids[*i - 1])
            }
            Some(_) => None,
        };
        match next {
            Some(k) => {
                if seen.insert(k) {
                    let (c, kk) = fetch(&k)?;
                    stack.push((c, kk, 0));
                }
            }
            None => {
                if let Some((cell, _, _)) = stack.pop() {
                    emit(&cell)?;
                }
            }
        }
    }
    Ok(())
}

/// Resolves the cells of a tree held in memory (attached branches, embedded ones included),
/// then those of `base`: a salvaged root, or a value kept only inside the root's `:data`.
pub struct Overlay<'a> {
    cells: std::collections::HashMap<ValueId, Cell>,
    base: &'a dyn Resolver,
}

impl<'a> Overlay<'a> {
    /// `root`'s in-memory cells over `base`.
    pub fn new(root: &Cell, base: &'a dyn Resolver) -> Overlay<'a> {
        let mut cells = std::collections::HashMap::new();
        let mut stack = vec![root.clone()];
        while let Some(c) = stack.pop() {
            for r in c.refs() {
                match r {
                    Ref::Embedded(e) => stack.push(e.clone()),
                    Ref::Branch(_) => {
                        if let Some(t) = r.cell() {
                            if cells.insert(r.id(), t.clone()).is_none() {
                                stack.push(t.clone());
                            }
                        }
                    }
                }
            }
        }
        cells.insert(*root.id(), root.clone());
        Overlay { cells, base }
    }
}

impl Resolver for Overlay<'_> {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        match self.cells.get(id) {
            Some(c) => Ok(Some(c.clone())),
            None => self.base.resolve(id),
        }
    }
}
