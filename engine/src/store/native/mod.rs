//! The native store (docs/FORMAT.md): an append-only log of cell records and commits, immutable
//! sorted index runs, group commit, O(1) snapshots. The default format for new stores.

mod dir;
pub mod format;
mod index;
mod read;
mod recovery;

pub use dir::NativeError;
use dir::{io_at, sync_dir, FORMAT_FILE, LOCK_FILE, LOG_FILE, SNAPSHOTS_FILE};
use index::Index;
use recovery::{read_snapshots, recover, set_aside_tail};
pub mod run;
pub mod writer;

use super::cache::{CellCache, CACHE_BYTES_DEFAULT};
use super::io::{os_disk, Disk, OpenMode, StorageFile};
use super::walk::walk_new_cells;
use super::{CellStore, Root, StoreError, StoreStats};
use crossbeam_channel::Sender;
use etch_formats::cell::ResolveError;
use etch_formats::{Cell, Resolver, ValueId};
use format::{
    push_record, seal_frame, Commit, Snapshot, COMMIT_PAYLOAD_BYTES, FORMAT_MAGIC,
    FRAME_HEADER_BYTES, FRAME_TARGET_BYTES, KIND_COMMIT, KIND_DATA, RECORD_ENCODING_MAX,
    RECORD_HEADER_BYTES, SNAPSHOT_RECORD_BYTES,
};
use memmap2::Mmap;
use run::{merge_runs, parse_run_file_name, write_run, Run, RunSpec};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
pub use writer::IoMode;
use writer::{Progress, WriteRequest};

/// Records the memtable holds before a commit writes them out as an index run.
pub const MEMTABLE_FLUSH_ENTRIES: usize = 1 << 20;
/// Initial capacity of a DATA frame buffer: small commits (W1: ~140 KB per 1,000 cells) should
/// not pay for zeroing a full 4 MiB frame each; bigger frames grow by doubling.
const FRAME_INITIAL_BYTES: usize = 256 << 10;
/// Smallest capacity a new frame buffer starts with.
const FRAME_MIN_BYTES: usize = 4 << 10;
/// Cells per helper thread hashing a batch: smaller batches are hashed on the calling thread
/// alone (waking a helper costs more than hashing them).
const PARALLEL_HASH_MIN: usize = 256;
/// Cells a thread hashing a batch takes at a time.
const HASH_CHUNK: usize = 32;
/// Leaves [`CellStore::put_many`] looks up and indexes together (one shard lock each per
/// chunk); also how far past `memtable_flush_entries` the memtable may grow inside one put.
const LEAF_CHUNK: usize = 4096;
/// An address no record has (a leaf of a chunk that is not appended).
const NO_ADDRESS: u64 = u64::MAX;
/// Shards of the decoded-cell cache.
const CACHE_SHARDS: usize = 64;
/// Most runs a commit's run list may hold (far above what merging leaves).
pub const RUNS_MAX: usize = 64;
/// Bytes of log each read-only map window covers (plus [`WINDOW_OVERLAP`]).
const WINDOW_BYTES: u64 = 1 << 30;
/// Windows a store maps at most: the log's readable length is 16 TiB.
const LOG_WINDOWS_MAX: usize = 16 * 1024;
const LOG_READABLE_BYTES: u64 = LOG_WINDOWS_MAX as u64 * WINDOW_BYTES;
/// Overlap of consecutive windows: more than any frame, so every record lies in one window.
const WINDOW_OVERLAP: u64 = (format::FRAME_PAYLOAD_MAX + 2 * FRAME_HEADER_BYTES) as u64;

/// How to open a native store.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    /// Where the log and snapshots file are read and written (the I/O seam): the OS file
    /// system, or a simulated disk in tests. Index runs and the FORMAT and LOCK files are always
    /// OS files in the store's directory.
    pub disk: Arc<dyn Disk>,
    /// How the log is written.
    pub io: IoMode,
    /// Byte budget of the decoded-cell cache.
    pub cache_bytes: usize,
    /// Also hash each record read and compare with its Value ID (SHA3-256). Off by default:
    /// every read already checks the record's CRC-32C, its id and its decoding, so a damaged
    /// record is an error, never a wrong value; the hash costs more than the rest of a read.
    pub verify_hashes: bool,
    /// Records the memtable holds before a commit writes an index run.
    pub memtable_flush_entries: usize,
}

impl Default for NativeOptions {
    fn default() -> Self {
        NativeOptions {
            disk: os_disk(),
            io: IoMode::Uring,
            cache_bytes: CACHE_BYTES_DEFAULT,
            verify_hashes: false,
            memtable_flush_entries: MEMTABLE_FLUSH_ENTRIES,
        }
    }
}

/// The append side: the frame being filled and what is sealed but maybe not yet written.
struct Appender {
    /// The DATA frame being filled (starts with the reserved header bytes).
    frame: Vec<u8>,
    /// Log offset where `frame` will go (= end of sealed frames).
    frame_offset: u64,
    /// Sealed frames not yet known to be written, for reads of recent records.
    inflight: VecDeque<(u64, Arc<Vec<u8>>)>,
    /// Their bytes (bounded by `writer::QUEUE_BYTES_MAX`).
    inflight_bytes: usize,
    /// The last commit appended (durable or not).
    last: Commit,
    /// Log offset of the last COMMIT frame appended.
    last_commit_addr: u64,
    /// Records and bytes so far.
    cells: u64,
    data_bytes: u64,
    /// Next run number to use.
    next_run: u64,
    /// Records below this address are in the runs (for the next commit).
    indexed_end: u64,
    /// The newest run (for the next commit).
    run_head: u64,
    /// Snapshots of commits appended but not yet written to the snapshots file.
    pending_snapshots: VecDeque<Snapshot>,
    /// Run files no longer named once the commit of this sequence number is durable.
    obsolete_runs: Vec<(u64, u64)>,
}

/// A native Etch store.
pub struct NativeStore {
    dir: PathBuf,
    log: Arc<dyn StorageFile>,
    writable: bool,
    options: NativeOptions,
    io_mode: IoMode,
    appender: Mutex<Appender>,
    index: Index,
    progress: Arc<Progress>,
    tx: Option<Sender<WriteRequest>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Read-only maps of the log, window `k` from byte `k * WINDOW_BYTES`, made on first use
    /// and kept while the store is open: a read takes no lock and no reference count.
    windows: Box<[OnceLock<Mmap>]>,
    /// Held while a window is mapped, so that two readers never map the same one twice.
    mapping: Mutex<()>,
    /// The decoded-cell cache, in shards by the first byte of the id so that reader threads
    /// rarely wait for each other.
    caches: Vec<Mutex<CellCache>>,
    /// The last durable commit, and the root readers see.
    head: RwLock<(Commit, Option<[u8; 32]>)>,
    snapshots: Mutex<Arc<dyn StorageFile>>,
    /// Set when a write of the snapshots list failed: it is not written again until reopened.
    hint_failed: std::sync::atomic::AtomicBool,
    _lock: Option<File>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// True if `path` is a native store directory.
pub fn is_native_store(path: &Path) -> bool {
    std::fs::read(path.join(FORMAT_FILE)).is_ok_and(|b| b == FORMAT_MAGIC)
}

impl NativeStore {
    /// Creates a new, empty store at `path` (a directory that must not exist or be empty).
    pub fn create(
        path: impl AsRef<Path>,
        options: NativeOptions,
    ) -> Result<NativeStore, NativeError> {
        let dir = path.as_ref();
        let io = io_at(dir);
        std::fs::create_dir_all(dir).map_err(&io)?;
        if std::fs::read_dir(dir).map_err(&io)?.next().is_some() {
            return Err(NativeError::NotNative {
                path: dir.to_path_buf(),
                detail: "directory exists and is not empty".into(),
            });
        }
        for name in [LOG_FILE, SNAPSHOTS_FILE] {
            let f = options
                .disk
                .open(&dir.join(name), OpenMode::CreateNew)
                .map_err(io_at(&dir.join(name)))?;
            f.sync().map_err(io_at(&dir.join(name)))?;
        }
        let mut f = File::create(dir.join(FORMAT_FILE)).map_err(&io)?;
        f.write_all(FORMAT_MAGIC).map_err(&io)?;
        f.sync_all().map_err(&io)?;
        sync_dir(dir)?;
        NativeStore::open(dir, true, options)
    }

    /// Opens an existing store, recovering to its last complete commit. A writable open takes
    /// the store's lock, cuts off any torn or uncommitted tail of the log and deletes index runs
    /// no commit names; a read-only open changes nothing and may run beside a writer.
    pub fn open(
        path: impl AsRef<Path>,
        writable: bool,
        options: NativeOptions,
    ) -> Result<NativeStore, NativeError> {
        let dir = path.as_ref().to_path_buf();
        let io = io_at(&dir);
        match std::fs::read(dir.join(FORMAT_FILE)) {
            Ok(b) if b == FORMAT_MAGIC => {}
            Ok(_) => {
                return Err(NativeError::NotNative {
                    path: dir.clone(),
                    detail: "FORMAT file has the wrong magic or version".into(),
                })
            }
            Err(e) => {
                return Err(NativeError::NotNative {
                    path: dir.clone(),
                    detail: format!("no FORMAT file ({e})"),
                })
            }
        }
        let lock_file = if writable {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(LOCK_FILE))
                .map_err(&io)?;
            if super::cad047::lock(&f, true).is_err() {
                return Err(NativeError::Locked { path: dir.clone() });
            }
            Some(f)
        } else {
            None
        };
        let mode = if writable {
            OpenMode::Write
        } else {
            OpenMode::Read
        };
        let log_path = dir.join(LOG_FILE);
        let log = options
            .disk
            .open(&log_path, mode)
            .map_err(io_at(&log_path))?;
        let snapshots_path = dir.join(SNAPSHOTS_FILE);
        let snapshots = options
            .disk
            .open(&snapshots_path, mode)
            .map_err(io_at(&snapshots_path))?;

        let listed = read_snapshots(&*snapshots, &dir)?;
        let rec = recover(&*log, &dir, &listed)?;
        let (commit, commit_addr) = rec.commit.unwrap_or((
            Commit {
                seq: 0,
                time_ms: 0,
                root: None,
                log_end: 0,
                indexed_end: 0,
                run_head: 0,
                cells: 0,
                data_bytes: 0,
                prev_commit: u64::MAX,
            },
            u64::MAX,
        ));
        // The run list of the commit, newest first.
        let mut runs = Vec::new();
        let mut next = commit.run_head;
        while next != 0 {
            if runs.len() >= RUNS_MAX {
                return Err(NativeError::Corrupt {
                    path: dir.join(LOG_FILE),
                    offset: commit_addr,
                    detail: format!("run list longer than {RUNS_MAX}"),
                });
            }
            let r = Run::open(&dir, next, false)?;
            next = r.older;
            runs.push(Arc::new(r));
        }
        let max_run = max_run_number(&dir)?;
        if writable {
            if let Some(d) = &rec.damage {
                return Err(NativeError::Damaged {
                    path: dir.clone(),
                    offset: d.offset,
                    detail: d.detail.clone(),
                });
            }
            let log_len = log.len().map_err(io_at(&log_path))?;
            if log_len > rec.valid_end {
                let aside = set_aside_tail(&*log, &*options.disk, &dir, rec.valid_end, log_len)?;
                let what = if rec.tail_commits > 0 {
                    format!(
                        "; they hold {} intact commit frame(s) that were never acknowledged or \
                         follow damage: to salvage them, append the file back to the log before \
                         any write (`cat FILE >> LOG`) and run `etch recover`",
                        rec.tail_commits
                    )
                } else {
                    " (writes a crash interrupted)".into()
                };
                eprintln!(
                    "etch: {}: {} bytes after the last commit ({} at offset {}) set aside in {}{what}",
                    dir.join(LOG_FILE).display(),
                    log_len - rec.valid_end,
                    commit.seq,
                    rec.valid_end,
                    aside.display(),
                );
            }
            // Runs written for a commit that never became durable, or merged away.
            let live: Vec<u64> = runs.iter().map(|r| r.number).collect();
            for entry in std::fs::read_dir(&dir).map_err(&io)? {
                let entry = entry.map_err(&io)?;
                if let Some(n) = entry.file_name().to_str().and_then(parse_run_file_name) {
                    if !live.contains(&n) {
                        std::fs::remove_file(entry.path()).map_err(&io)?;
                    }
                }
            }
            // Complete the snapshot list with commits only the log had.
            let io = io_at(&snapshots_path);
            let len = snapshots.len().map_err(&io)?;
            let whole = len - len % SNAPSHOT_RECORD_BYTES as u64;
            let keep = listed.len() as u64 * SNAPSHOT_RECORD_BYTES as u64;
            if keep != len {
                // A torn or damaged tail: keep the valid records only.
                snapshots.set_len(keep.min(whole)).map_err(&io)?;
            }
            let unlisted: Vec<u8> = rec.unlisted.iter().flat_map(|s| s.encode()).collect();
            if !unlisted.is_empty() {
                snapshots.append(&unlisted).map_err(&io)?;
            }
            if keep != len || !unlisted.is_empty() {
                snapshots.sync().map_err(&io)?;
            }
        }
        let progress = Arc::new(Progress::default());
        progress.written_end.store(rec.valid_end, Ordering::Release);
        progress.synced_end.store(rec.valid_end, Ordering::Release);
        let (tx, io_mode, handle) = if writable {
            let (tx, mode, h) =
                writer::start(log.clone(), options.io, progress.clone()).map_err(&io)?;
            (Some(tx), mode, Some(h))
        } else {
            (None, options.io, None)
        };
        let mut frame = Vec::with_capacity(FRAME_INITIAL_BYTES);
        frame.resize(FRAME_HEADER_BYTES, 0);
        let store = NativeStore {
            log,
            writable,
            io_mode,
            appender: Mutex::new(Appender {
                frame,
                frame_offset: rec.valid_end,
                inflight: VecDeque::new(),
                inflight_bytes: 0,
                last: commit,
                last_commit_addr: commit_addr,
                cells: commit.cells,
                data_bytes: commit.data_bytes,
                next_run: max_run + 1,
                indexed_end: commit.indexed_end,
                run_head: commit.run_head,
                pending_snapshots: VecDeque::new(),
                obsolete_runs: Vec::new(),
            }),
            index: Index::new(rec.memtable, runs),
            progress,
            tx,
            writer: Mutex::new(handle),
            windows: (0..LOG_WINDOWS_MAX).map(|_| OnceLock::new()).collect(),
            mapping: Mutex::new(()),
            caches: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(CellCache::new(options.cache_bytes / CACHE_SHARDS)))
                .collect(),
            head: RwLock::new((commit, commit.root)),
            snapshots: Mutex::new(snapshots),
            hint_failed: std::sync::atomic::AtomicBool::new(false),
            _lock: lock_file,
            options,
            dir: dir.clone(),
        };
        Ok(store)
    }

    /// The log address of the record of `id`, if the store has one. With the commits' log ends
    /// ([`NativeStore::snapshots`]) it tells which commit wrote a record, and so when.
    pub fn record_address(&self, id: &ValueId) -> Option<u64> {
        self.index.get(&id.0)
    }

    /// Opens the store read-only at an older commit: its root is that commit's root, read
    /// through the current index (records are never removed before compaction). O(1) in the
    /// store's size.
    pub fn open_snapshot(
        path: impl AsRef<Path>,
        seq: u64,
        options: NativeOptions,
    ) -> Result<NativeStore, NativeError> {
        let store = NativeStore::open(path, false, options)?;
        let snap = store
            .snapshots()?
            .into_iter()
            .find(|s| s.commit.seq == seq)
            .ok_or(NativeError::NoSnapshot(seq))?;
        store.head.write().unwrap_or_else(|p| p.into_inner()).1 = snap.commit.root;
        Ok(store)
    }

    /// Every commit, oldest first (from the snapshots file, completed by recovery).
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, NativeError> {
        let f = lock(&self.snapshots);
        let mut all = read_snapshots(&**f, &self.dir)?;
        let head = self.head.read().unwrap_or_else(|p| p.into_inner()).0;
        all.retain(|s| s.commit.seq <= head.seq);
        Ok(all)
    }

    /// How the log is being written (io_uring may have fallen back to pwrite).
    pub fn io_mode(&self) -> IoMode {
        self.io_mode
    }

    /// `fdatasync` calls of the log so far (fewer than commits when commits coalesce).
    pub fn sync_count(&self) -> u64 {
        self.progress.syncs.load(Ordering::Relaxed)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The last durable commit.
    pub fn head(&self) -> Commit {
        self.head.read().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Index runs in use (newest first): (number, entries).
    pub fn runs(&self) -> Vec<(u64, usize)> {
        self.index
            .runs()
            .iter()
            .map(|r| (r.number, r.len()))
            .collect()
    }

    /// Sets the byte budget of the decoded-cell cache.
    pub fn set_cache_budget(&self, bytes: usize) {
        for c in &self.caches {
            lock(c).set_budget(bytes / CACHE_SHARDS);
        }
    }

    fn cache(&self, id: &ValueId) -> &Mutex<CellCache> {
        // A byte the cache's map does not hash (see `Index::shard_of`).
        &self.caches[id.0[30] as usize % CACHE_SHARDS]
    }

    fn contains_id(&self, id: &[u8; 32]) -> bool {
        self.index.get(id).is_some()
    }

    fn sender(&self) -> Result<&Sender<WriteRequest>, NativeError> {
        self.tx.as_ref().ok_or(NativeError::ReadOnly)
    }

    /// Seals the current DATA frame (if it holds records) and hands it to the I/O thread.
    fn seal_data(&self, a: &mut Appender) -> Result<(), NativeError> {
        if a.frame.len() == FRAME_HEADER_BYTES {
            return Ok(());
        }
        // The next frame starts at what this one needed (a commit's worth), not more.
        let capacity = a
            .frame
            .len()
            .next_power_of_two()
            .clamp(FRAME_MIN_BYTES, FRAME_INITIAL_BYTES);
        let mut frame = std::mem::replace(&mut a.frame, {
            let mut f = Vec::with_capacity(capacity);
            f.resize(FRAME_HEADER_BYTES, 0);
            f
        });
        seal_frame(&mut frame, KIND_DATA);
        self.send_frame(a, frame)
    }

    fn send_frame(&self, a: &mut Appender, frame: Vec<u8>) -> Result<(), NativeError> {
        let offset = a.frame_offset;
        let bytes = Arc::new(frame);
        a.frame_offset += bytes.len() as u64;
        a.inflight_bytes += bytes.len();
        a.inflight.push_back((offset, bytes.clone()));
        self.forget_written(a);
        self.sender()?
            .send(WriteRequest::Frame { offset, bytes })
            .map_err(|_| NativeError::WriterFailed("the log writer stopped".into()))?;
        // Memory stays bounded whatever the ingest rate: past QUEUE_BYTES_MAX of unwritten
        // frames, wait (appender locked, as a full queue made senders wait) for the oldest.
        while a.inflight_bytes > writer::QUEUE_BYTES_MAX {
            let Some(oldest_end) = a.inflight.front().map(|(o, b)| o + b.len() as u64) else {
                break;
            };
            if !self.progress.wait_written(oldest_end) {
                return Err(NativeError::WriterFailed("the log writer stopped".into()));
            }
            self.forget_written(a);
        }
        Ok(())
    }

    /// Drops the in-flight frames the I/O thread has written (reads find them in the file).
    fn forget_written(&self, a: &mut Appender) {
        let written = self.progress.written_end.load(Ordering::Acquire);
        while let Some((o, b)) = a.inflight.front() {
            if o + b.len() as u64 > written {
                break;
            }
            a.inflight_bytes -= b.len();
            a.inflight.pop_front();
        }
    }

    /// Appends a record for one cell given by its Value ID and canonical encoding, without
    /// looking at the cells it references: for tools that copy a store record by record
    /// (compaction, conversion, import, recovery), which write children before parents or
    /// salvage partial trees on purpose. The caller has checked that `SHA3-256(encoding) = id`.
    /// Returns false when the store already holds the cell. Durable with the next commit.
    pub fn put_record(&self, id: &ValueId, encoding: &[u8]) -> Result<bool, NativeError> {
        if !self.writable {
            return Err(NativeError::ReadOnly);
        }
        debug_assert_eq!(ValueId::of(encoding), *id);
        let mut a = lock(&self.appender);
        if self.contains_id(&id.0) {
            return Ok(false);
        }
        self.append_encoding(&mut a, &id.0, encoding)?;
        Ok(true)
    }

    /// Commits with `root` as the root (`None`: no root) and waits until the commit is
    /// durable. Unlike [`CellStore::set_root`] it writes no cells: the root's record (and its
    /// tree, if readers are to find it) must already be stored, e.g. by [`Self::put_record`].
    pub fn set_root_id(&self, root: Option<ValueId>) -> Result<(), NativeError> {
        if !self.writable {
            return Err(NativeError::ReadOnly);
        }
        self.commit_with(Some(root.map(|r| r.0)))
    }

    /// Appends one record unless the cell is already stored.
    fn append_cell(&self, a: &mut Appender, cell: &Cell) -> Result<(), NativeError> {
        if self.contains_id(&cell.id().0) {
            return Ok(());
        }
        self.append_record(a, cell)
    }

    fn append_record(&self, a: &mut Appender, cell: &Cell) -> Result<(), NativeError> {
        self.append_encoding(a, &cell.id().0, cell.encoding())
    }

    /// Appends the record `(id, enc)` to the frame being filled, unless the memtable already
    /// holds `id` (callers have checked the runs).
    fn append_encoding(
        &self,
        a: &mut Appender,
        id: &[u8; 32],
        enc: &[u8],
    ) -> Result<(), NativeError> {
        let addr = self.next_record_address(a, enc)?;
        // The entry goes in first (one probe finds a duplicate and adds the new id): readers
        // that find it wait on the appender lock, held until the record is in the frame.
        let Some(n) = self.index.insert_new(*id, addr) else {
            return Ok(());
        };
        Self::push_to_frame(a, id, enc);
        self.bound_memtable(a, n)
    }

    /// Appends the records of the leaves (cells without refs) the store does not hold yet,
    /// [`LEAF_CHUNK`] at a time: the index is probed, then added to, one shard lock per chunk
    /// (not one per cell), so the cache misses of a large memtable's probes overlap.
    fn append_leaves(&self, a: &mut Appender, leaves: &[&Cell]) -> Result<(), NativeError> {
        for chunk in leaves.chunks(LEAF_CHUNK) {
            let ids: Vec<[u8; 32]> = chunk.iter().map(|c| c.id().0).collect();
            let absent = self.index.absent(&ids);
            if absent.is_empty() {
                continue;
            }
            let mut appended = vec![false; ids.len()];
            for &p in &absent {
                appended[p] = true;
            }
            // Records in the order given; readers find none of them before `insert_absent`.
            let mut addrs = vec![NO_ADDRESS; ids.len()];
            for (p, cell) in chunk.iter().enumerate() {
                if !appended[p] {
                    continue;
                }
                match self.next_record_address(a, cell.encoding()) {
                    Ok(addr) => addrs[p] = addr,
                    Err(e) => {
                        // The records already in the frame are indexed, as one by one they
                        // would have been: none is left in the log that the index does not name.
                        let pushed: Vec<usize> = absent
                            .iter()
                            .copied()
                            .filter(|&q| addrs[q] != NO_ADDRESS)
                            .collect();
                        self.index.insert_absent(&ids, &pushed, &addrs);
                        return Err(e);
                    }
                }
                Self::push_to_frame(a, &ids[p], cell.encoding());
            }
            let n = self.index.insert_absent(&ids, &absent, &addrs);
            self.bound_memtable(a, n)?;
        }
        Ok(())
    }

    /// Where a record of `enc` will go: at the end of the frame being filled, sealed first when
    /// the record would not fit. Checks the record and log limits.
    fn next_record_address(&self, a: &mut Appender, enc: &[u8]) -> Result<u64, NativeError> {
        if enc.is_empty() || enc.len() > RECORD_ENCODING_MAX {
            return Err(NativeError::Corrupt {
                path: self.dir.join(LOG_FILE),
                offset: a.frame_offset,
                detail: format!(
                    "a cell encoding of {} bytes is outside the record limits",
                    enc.len()
                ),
            });
        }
        if a.frame.len() + RECORD_HEADER_BYTES + enc.len() > FRAME_TARGET_BYTES + FRAME_HEADER_BYTES
        {
            self.seal_data(a)?;
        }
        let addr = a.frame_offset + a.frame.len() as u64;
        // Every record must stay readable through the windows (plus room for the frame's
        // trailer and the commit after it).
        if addr + (RECORD_HEADER_BYTES + enc.len()) as u64 + WINDOW_OVERLAP > LOG_READABLE_BYTES {
            return Err(NativeError::Full {
                path: self.dir.clone(),
                bytes: LOG_READABLE_BYTES,
            });
        }
        Ok(addr)
    }

    /// Puts the record at the end of the frame being filled (at [`Self::next_record_address`]).
    fn push_to_frame(a: &mut Appender, id: &[u8; 32], enc: &[u8]) {
        push_record(&mut a.frame, id, enc);
        a.cells += 1;
        a.data_bytes += enc.len() as u64;
    }

    /// Bounds the memtable even inside one huge put: at `memtable_len` entries or more its
    /// records go to a run now, and the next commit names it.
    fn bound_memtable(&self, a: &mut Appender, memtable_len: usize) -> Result<(), NativeError> {
        if memtable_len >= self.options.memtable_flush_entries {
            self.seal_data(a)?;
            self.flush_memtable(a)?;
        }
        Ok(())
    }

    /// Writes the memtable as a run and merges runs while the newest is at least half the size
    /// of the next (FORMAT.md §3). Called with the appender locked, after the last DATA frame
    /// is sealed, so every memtable address is below `a.frame_offset`.
    fn flush_memtable(&self, a: &mut Appender) -> Result<(), NativeError> {
        let covers_end = a.frame_offset;
        let (mut entries, mut runs) = self.index.snapshot();
        entries.sort_unstable_by_key(|e| e.0);
        let older = runs.first().map_or(0, |r| r.number);
        let number = a.next_run;
        a.next_run += 1;
        let spec = RunSpec {
            number,
            older,
            covers_end,
        };
        let mut head = Arc::new(write_run(
            &self.dir,
            &spec,
            entries.len(),
            entries.into_iter(),
        )?);
        let mut obsolete = Vec::new();
        while let Some(second) = runs.first() {
            if head.len() * 2 < second.len() {
                break;
            }
            let third = runs.get(1).map_or(0, |r| r.number);
            let number = a.next_run;
            a.next_run += 1;
            let spec = RunSpec {
                number,
                older: third,
                covers_end,
            };
            let merged = merge_runs(&self.dir, &spec, &head, second)?;
            obsolete.push(head.number);
            obsolete.push(second.number);
            head = Arc::new(merged);
            runs.remove(0);
        }
        sync_dir(&self.dir)?;
        runs.insert(0, head.clone());
        self.index.install_runs(&runs);
        // The runs become obsolete once the commit being built (seq + 1) is durable.
        let seq = a.last.seq + 1;
        a.obsolete_runs
            .extend(obsolete.into_iter().map(|n| (seq, n)));
        a.indexed_end = covers_end;
        a.run_head = head.number;
        Ok(())
    }

    /// Persists `value` and appends a commit naming it as the root, without waiting for it to
    /// be durable: it becomes durable with the next durable commit (or is lost, with everything
    /// after the last durable commit, in a crash). For bulk loads that need a consistent root
    /// every so often but durability only at the end (W1-nosync).
    pub fn set_root_unsynced(&self, value: &Cell) -> Result<(), StoreError> {
        self.put(value)?;
        self.append_commit(Some(Some(value.id().0)), false)?;
        Ok(())
    }

    /// Appends a COMMIT frame naming `root` and waits until it is durable.
    fn commit_with(&self, root: Option<Option<[u8; 32]>>) -> Result<(), NativeError> {
        let Some((reply, seq)) = self.append_commit(root, true)? else {
            return Ok(());
        };
        match reply.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(NativeError::WriterFailed(e.to_string())),
            Err(_) => return Err(NativeError::WriterFailed("the log writer stopped".into())),
        }
        self.after_durable(seq)
    }

    /// Appends a COMMIT frame naming `root` (None: the previous root); with `sync`, queues a
    /// sync request behind it and returns its reply channel and the commit's number.
    #[allow(clippy::type_complexity)]
    fn append_commit(
        &self,
        root: Option<Option<[u8; 32]>>,
        sync: bool,
    ) -> Result<Option<(crossbeam_channel::Receiver<io::Result<()>>, u64)>, NativeError> {
        {
            let mut a = lock(&self.appender);
            self.seal_data(&mut a)?;
            let n = self.index.memtable_len();
            if n >= self.options.memtable_flush_entries {
                self.flush_memtable(&mut a)?;
            }
            let (indexed_end, run_head) = (a.indexed_end, a.run_head);
            let addr = a.frame_offset;
            let commit = Commit {
                seq: a.last.seq + 1,
                time_ms: now_ms(),
                root: root.unwrap_or(a.last.root),
                log_end: addr + format::padded(FRAME_HEADER_BYTES + COMMIT_PAYLOAD_BYTES) as u64,
                indexed_end,
                run_head,
                cells: a.cells,
                data_bytes: a.data_bytes,
                prev_commit: a.last_commit_addr,
            };
            let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + COMMIT_PAYLOAD_BYTES + 8);
            frame.resize(FRAME_HEADER_BYTES, 0);
            frame.extend_from_slice(&commit.encode());
            seal_frame(&mut frame, KIND_COMMIT);
            self.send_frame(&mut a, frame)?;
            debug_assert_eq!(a.frame_offset, commit.log_end);
            a.last = commit;
            a.last_commit_addr = addr;
            a.pending_snapshots.push_back(Snapshot {
                commit,
                commit_addr: addr,
            });
            if !sync {
                return Ok(None);
            }
            let (tx, rx) = crossbeam_channel::bounded(1);
            self.sender()?
                .send(WriteRequest::Sync(tx))
                .map_err(|_| NativeError::WriterFailed("the log writer stopped".into()))?;
            Ok(Some((rx, commit.seq)))
        }
    }

    /// Bookkeeping once commit `seq` (and so every earlier one) is durable: the head, the
    /// snapshot records, obsolete runs.
    fn after_durable(&self, seq: u64) -> Result<(), NativeError> {
        let (snaps, dead) = {
            let mut a = lock(&self.appender);
            let mut snaps = Vec::new();
            while a
                .pending_snapshots
                .front()
                .is_some_and(|s| s.commit.seq <= seq)
            {
                if let Some(s) = a.pending_snapshots.pop_front() {
                    snaps.push(s);
                }
            }
            let dead: Vec<u64> = a
                .obsolete_runs
                .iter()
                .filter(|(s, _)| *s <= seq)
                .map(|(_, n)| *n)
                .collect();
            a.obsolete_runs.retain(|(s, _)| *s > seq);
            (snaps, dead)
        };
        if let Some(last) = snaps.last() {
            let mut head = self.head.write().unwrap_or_else(|p| p.into_inner());
            if last.commit.seq > head.0.seq {
                *head = (last.commit, last.commit.root);
            }
        }
        // The commit is durable: what follows only keeps the hint and the run files tidy, so a
        // failure here is reported, not returned (the commit must not be called failed).
        if !snaps.is_empty() && !self.hint_failed.load(Ordering::Acquire) {
            let f = lock(&self.snapshots);
            let bytes: Vec<u8> = snaps.iter().flat_map(|s| s.encode()).collect();
            // The list is a hint (the log is the truth): synced only when runs change, which
            // bounds how far back recovery may have to start.
            let r = f
                .append(&bytes)
                .and_then(|_| if dead.is_empty() { Ok(()) } else { f.sync() });
            if let Err(e) = r {
                // Its tail is unknown now: stop writing it, and keep the old runs a stale hint
                // may still name; the next writable open rebuilds the list from the log.
                self.hint_failed.store(true, Ordering::Release);
                eprintln!(
                    "etch: {}: writing the snapshots list failed ({e}); commit {seq} is durable, \
                     and the list is rebuilt from the log when the store is next opened",
                    self.dir.join(SNAPSHOTS_FILE).display()
                );
            }
        }
        if self.hint_failed.load(Ordering::Acquire) {
            return Ok(());
        }
        for n in dead {
            let p = self.dir.join(run::run_file_name(n));
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != io::ErrorKind::NotFound {
                    eprintln!(
                        "etch: {}: removing an index run no commit needs failed ({e}); the next \
                         writable open removes it",
                        p.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// Stops the I/O thread after it wrote everything queued (also done on drop).
    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(h) = lock(&self.writer).take() {
            let _ = h.join();
        }
    }
}

impl Drop for NativeStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn max_run_number(dir: &Path) -> Result<u64, NativeError> {
    let mut max = 0;
    for e in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let e = e.map_err(io_at(dir))?;
        if let Some(n) = e.file_name().to_str().and_then(parse_run_file_name) {
            max = max.max(n);
        }
    }
    Ok(max)
}

impl NativeStore {
    /// `put`, or with `partial` `put_partial` (the walk passes over branches not held).
    fn put_walk(&self, value: &Cell, partial: bool) -> Result<ValueId, StoreError> {
        if !self.writable {
            return Err(NativeError::ReadOnly.into());
        }
        let complete = |id: &ValueId| -> Result<bool, StoreError> { Ok(self.contains_id(&id.0)) };
        let mut a = lock(&self.appender);
        walk_new_cells(value, partial, &complete, &mut |cell| {
            self.append_cell(&mut a, cell).map_err(StoreError::from)
        })?;
        Ok(*value.id())
    }
}

impl Resolver for NativeStore {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        self.get_cell(id)
            .map_err(|e| ResolveError::Store(e.to_string()))
    }
}

impl From<NativeError> for StoreError {
    fn from(e: NativeError) -> Self {
        StoreError::Native(e)
    }
}

/// Computes the Value IDs of `values` (cached in the cells) on the calling thread and, for a
/// batch of [`PARALLEL_HASH_MIN`] cells or more, on the pool's other threads too: each takes
/// [`HASH_CHUNK`] cells at a time until none are left. The caller works as well: a rayon
/// `par_iter` started outside the pool parks it, and in W1 one woken worker then hashed nearly
/// the whole batch while the caller slept (measured with `perf`: 95 % of the hashing on one
/// worker thread).
fn hash_ids(values: &[Cell]) {
    let helpers = rayon::current_num_threads()
        .saturating_sub(1)
        .min(values.len() / PARALLEL_HASH_MIN);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let take = || {
        while let Some(chunk) = values
            .chunks(HASH_CHUNK)
            .nth(next.fetch_add(1, Ordering::Relaxed))
        {
            for v in chunk {
                v.id();
            }
        }
    };
    if helpers == 0 {
        return take();
    }
    rayon::in_place_scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| take());
        }
        take();
    });
}

impl CellStore for NativeStore {
    fn put(&self, value: &Cell) -> Result<ValueId, StoreError> {
        self.put_walk(value, false)
    }

    fn put_partial(&self, value: &Cell) -> Result<ValueId, StoreError> {
        self.put_walk(value, true)
    }

    /// Hashes the values on every core first (their IDs are cached in the cells), then appends
    /// them in order under one lock: the hashing of a batch no longer waits for one core.
    fn put_many(&self, values: &[Cell]) -> Result<(), StoreError> {
        if !self.writable {
            return Err(NativeError::ReadOnly.into());
        }
        // Hash first, without the appender lock (the IDs are cached in the cells): other
        // writers go on meanwhile.
        hash_ids(values);
        // Held throughout: runs change only under this lock (and by this batch's own flushes).
        let mut a = lock(&self.appender);
        let complete = |id: &ValueId| -> Result<bool, StoreError> { Ok(self.contains_id(&id.0)) };
        // Leaves go in together; the run of leaves before a cell with refs is appended first,
        // so that the walk below finds those of its children.
        let mut leaves: Vec<&Cell> = Vec::new();
        for v in values {
            if v.refs().is_empty() {
                leaves.push(v);
                continue;
            }
            self.append_leaves(&mut a, &leaves)?;
            leaves.clear();
            if !self.contains_id(&v.id().0) {
                walk_new_cells(v, false, &complete, &mut |cell| {
                    self.append_cell(&mut a, cell).map_err(StoreError::from)
                })?;
            }
        }
        self.append_leaves(&mut a, &leaves)?;
        Ok(())
    }

    fn get(&self, id: &ValueId) -> Result<Option<Cell>, StoreError> {
        Ok(self.get_cell(id)?)
    }

    fn contains(&self, id: &ValueId) -> Result<bool, StoreError> {
        Ok(self.contains_id(&id.0))
    }

    fn root(&self) -> Result<Root, StoreError> {
        let root = self.head.read().unwrap_or_else(|p| p.into_inner()).1;
        match root {
            None => Ok(Root::Unset),
            Some(r) => {
                let id = ValueId(r);
                match self.get_cell(&id)? {
                    Some(c) => Ok(Root::Value(c)),
                    None => Err(StoreError::Missing(id)),
                }
            }
        }
    }

    fn set_root(&self, value: &Cell) -> Result<(), StoreError> {
        self.put(value)?;
        Ok(self.commit_with(Some(Some(value.id().0)))?)
    }

    fn commit(&self) -> Result<(), StoreError> {
        if !self.writable {
            return Err(NativeError::ReadOnly.into());
        }
        Ok(self.commit_with(None)?)
    }

    fn for_each_id(
        &self,
        f: &mut dyn FnMut(ValueId) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let (mem, runs) = self.index.snapshot();
        for r in &runs {
            for (id, _) in r.iter() {
                f(ValueId(id))?;
            }
        }
        for (id, _) in mem {
            f(ValueId(id))?;
        }
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let (cells, encoding_bytes, data_len) = {
            let a = lock(&self.appender);
            (a.cells, a.data_bytes, a.frame_offset)
        };
        let mut file_len = self
            .log
            .len()
            .map_err(io_at(&self.dir))
            .map_err(StoreError::from)?;
        for r in &self.index.runs() {
            file_len += r.file_len();
        }
        Ok(StoreStats {
            cells,
            encoding_bytes,
            data_len,
            file_len,
        })
    }
}
