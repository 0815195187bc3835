//! The native store (docs/FORMAT.md): an append-only log of cell records and commits, immutable
//! sorted index runs, group commit, O(1) snapshots. The default format for new stores.

pub mod format;
pub mod run;
pub mod writer;

use super::cell_store::{walk_new_cells, CellCache, IdHash, CACHE_BYTES_DEFAULT};
use super::io::{os_disk, Disk, OpenMode, StorageFile};
use super::{CellStore, Root, StoreError, StoreStats};
use crossbeam_channel::Sender;
use etch_formats::cell::ResolveError;
use etch_formats::{decode_cell, Cell, Resolver, ValueId};
use format::{
    push_record, records, seal_frame, Commit, Snapshot, COMMIT_PAYLOAD_BYTES, FORMAT_MAGIC,
    FRAME_HEADER_BYTES, FRAME_TARGET_BYTES, KIND_COMMIT, KIND_DATA, RECORD_ENCODING_MAX,
    RECORD_HEADER_BYTES, SNAPSHOT_RECORD_BYTES,
};
use memmap2::{Mmap, MmapOptions};
use run::{merge_runs, parse_run_file_name, write_run, Run, RunError, RunSpec};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
pub use writer::IoMode;
use writer::{Progress, WriteRequest};

/// Records the memtable holds before a commit writes them out as an index run.
pub const MEMTABLE_FLUSH_ENTRIES: usize = 1 << 20;
/// Initial capacity of a DATA frame buffer: small commits (W1: ~140 KB per 1,000 cells) should
/// not pay for zeroing a full 4 MiB frame each; bigger frames grow by doubling.
const FRAME_INITIAL_BYTES: usize = 256 << 10;
/// Batches smaller than this are hashed on the calling thread (rayon's hand-off costs more).
const PARALLEL_HASH_MIN: usize = 64;
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

const LOG_FILE: &str = "log";
const FORMAT_FILE: &str = "FORMAT";
const SNAPSHOTS_FILE: &str = "snapshots";
const LOCK_FILE: &str = "LOCK";

/// Errors of the native store.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The operating system refused an operation.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The path is not a native store.
    #[error("{path}: not a native Etch store: {detail}")]
    NotNative {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The log breaks an invariant of FORMAT.md.
    #[error("{path}: corrupt log at offset {offset}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What was found.
        detail: String,
    },
    /// An index run is damaged or missing.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Another process holds the store's write lock.
    #[error("{path}: the store is locked by another writer")]
    Locked {
        /// The store.
        path: PathBuf,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// A log write or sync failed earlier; the store must be reopened.
    #[error("{0}; reopen the store (recovery returns it to the last commit)")]
    WriterFailed(String),
    /// The log is damaged where acknowledged commits lie: writing on would bury the damage.
    #[error(
        "{path}: the log is damaged at offset {offset}: {detail}. The store is not opened for \
         writing; read-only commands still read what is intact. Run `etch verify {path}` to see \
         the damage and `etch recover {path} --output NEW` to salvage every intact record and the \
         newest complete root into a new store"
    )]
    Damaged {
        /// The store.
        path: PathBuf,
        /// Where the first damage is.
        offset: u64,
        /// What is damaged.
        detail: String,
    },
    /// No commit with this sequence number.
    #[error("no snapshot {0}")]
    NoSnapshot(u64),
    /// The log reached the length a store can read back (16 TiB); nothing more is appended.
    #[error("{path}: the log is full ({bytes} bytes); compact the store or start a new one")]
    Full {
        /// The store.
        path: PathBuf,
        /// The log's readable length.
        bytes: u64,
    },
}

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

/// Index shards: readers of different ids take different locks, so reader threads do not
/// all write one lock word (measured: one `RwLock` capped W3 near 2.5M reads/s from 4 to 16
/// threads on a 16-core machine).
const INDEX_SHARDS: usize = 16;

/// A memtable entry: a record's id and log address.
type MemtableEntry = ([u8; 32], u64);

/// One shard of the index: the memtable entries of the ids of this shard, and the runs
/// (newest first; every shard holds the same list).
struct IndexShard {
    memtable: HashMap<[u8; 32], u64, IdHash>,
    runs: Vec<Arc<Run>>,
}

/// The in-memory part of the index plus the runs, sharded by an id's last byte (the cache
/// shards by the one before). Inserts and run changes happen with the appender locked, so they
/// never race each other; a run change swaps each shard's runs and clears its memtable part
/// in one step, so a reader finds every id either in the memtable or in the new runs.
struct Index {
    shards: Vec<RwLock<IndexShard>>,
    memtable_len: AtomicUsize,
}

impl Index {
    fn new(memtable: HashMap<[u8; 32], u64, IdHash>, runs: Vec<Arc<Run>>) -> Index {
        let mut parts: Vec<HashMap<[u8; 32], u64, IdHash>> =
            (0..INDEX_SHARDS).map(|_| HashMap::default()).collect();
        let len = memtable.len();
        for (id, addr) in memtable {
            parts[Self::shard_of(&id)].insert(id, addr);
        }
        Index {
            shards: parts
                .into_iter()
                .map(|memtable| {
                    RwLock::new(IndexShard {
                        memtable,
                        runs: runs.clone(),
                    })
                })
                .collect(),
            memtable_len: AtomicUsize::new(len),
        }
    }

    fn shard_of(id: &[u8; 32]) -> usize {
        // Not a byte the maps hash (the `IdHasher` of `IdHash` uses the first 8): a shard's keys would all
        // share those hash bits and crowd a fraction of its buckets (measured: W1 12% slower).
        id[31] as usize % INDEX_SHARDS
    }

    fn shard(&self, id: &[u8; 32]) -> std::sync::RwLockReadGuard<'_, IndexShard> {
        self.shards[Self::shard_of(id)]
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &[u8; 32]) -> Option<u64> {
        let s = self.shard(id);
        if let Some(a) = s.memtable.get(id) {
            return Some(*a);
        }
        s.runs.iter().find_map(|r| r.get(id))
    }

    fn memtable_has(&self, id: &[u8; 32]) -> bool {
        self.shard(id).memtable.contains_key(id)
    }

    /// Adds a memtable entry (appender locked); returns the memtable's size.
    fn insert(&self, id: [u8; 32], addr: u64) -> usize {
        let new = self.shards[Self::shard_of(&id)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .memtable
            .insert(id, addr)
            .is_none();
        if new {
            self.memtable_len.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.memtable_len.load(Ordering::Relaxed)
        }
    }

    fn memtable_len(&self) -> usize {
        self.memtable_len.load(Ordering::Relaxed)
    }

    fn runs(&self) -> Vec<Arc<Run>> {
        self.shard(&[0; 32]).runs.clone()
    }

    /// The memtable's entries (unordered) and the runs.
    fn snapshot(&self) -> (Vec<MemtableEntry>, Vec<Arc<Run>>) {
        let mut entries = Vec::with_capacity(self.memtable_len());
        for s in &self.shards {
            let s = s.read().unwrap_or_else(|p| p.into_inner());
            entries.extend(s.memtable.iter().map(|(k, v)| (*k, *v)));
        }
        (entries, self.runs())
    }

    /// Installs runs that cover every memtable entry, and empties the memtable (appender locked).
    fn install_runs(&self, runs: &[Arc<Run>]) {
        for s in &self.shards {
            let mut s = s.write().unwrap_or_else(|p| p.into_inner());
            s.runs = runs.to_vec();
            s.memtable.clear();
        }
        self.memtable_len.store(0, Ordering::Relaxed);
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

fn io_at(path: &Path) -> impl Fn(io::Error) -> NativeError + '_ {
    move |source| NativeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What recovery found in a log.
struct Recovered {
    commit: Option<(Commit, u64)>,
    memtable: HashMap<[u8; 32], u64, IdHash>,
    /// Commits found in the log that the snapshots file lacks, in order.
    unlisted: Vec<Snapshot>,
    /// Length of the log's valid prefix (the last commit's end).
    valid_end: u64,
    /// Damage before the last acknowledged commit's end.
    damage: Option<LogDamage>,
    /// Intact COMMIT frames past `valid_end`.
    tail_commits: u64,
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
        let mut frame = std::mem::replace(&mut a.frame, {
            let mut f = Vec::with_capacity(FRAME_INITIAL_BYTES);
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
        a.inflight.push_back((offset, bytes.clone()));
        let written = self.progress.written_end.load(Ordering::Acquire);
        while a
            .inflight
            .front()
            .is_some_and(|(o, b)| o + b.len() as u64 <= written)
        {
            a.inflight.pop_front();
        }
        self.sender()?
            .send(WriteRequest::Frame { offset, bytes })
            .map_err(|_| NativeError::WriterFailed("the log writer stopped".into()))
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

    /// Appends one record of a cell known to be absent from the runs, unless the memtable
    /// already has it.
    fn append_new(&self, a: &mut Appender, cell: &Cell) -> Result<(), NativeError> {
        if self.index.memtable_has(&cell.id().0) {
            return Ok(());
        }
        self.append_record(a, cell)
    }

    fn append_record(&self, a: &mut Appender, cell: &Cell) -> Result<(), NativeError> {
        self.append_encoding(a, &cell.id().0, cell.encoding())
    }

    /// Appends the record `(id, enc)` to the frame being filled.
    fn append_encoding(
        &self,
        a: &mut Appender,
        id: &[u8; 32],
        enc: &[u8],
    ) -> Result<(), NativeError> {
        let id = *id;
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
        push_record(&mut a.frame, &id, enc);
        a.cells += 1;
        a.data_bytes += enc.len() as u64;
        let n = self.index.insert(id, addr);
        // Bound the memtable even inside one huge put: its records go to a run now, and the
        // next commit names it.
        if n >= self.options.memtable_flush_entries {
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

    /// The record bytes at `addr`: (id, encoding).
    fn read_record(&self, addr: u64) -> Result<Vec<u8>, NativeError> {
        let corrupt = |detail: String| NativeError::Corrupt {
            path: self.dir.join(LOG_FILE),
            offset: addr,
            detail,
        };
        let written = self.progress.written_end.load(Ordering::Acquire);
        if addr + RECORD_HEADER_BYTES as u64 <= written && self.log.os_file().is_none() {
            return self.read_record_at(addr, written);
        }
        if addr + RECORD_HEADER_BYTES as u64 <= written {
            let w = self.window(addr / WINDOW_BYTES)?;
            let at = (addr % WINDOW_BYTES) as usize;
            let head = w
                .get(at..at + RECORD_HEADER_BYTES)
                .ok_or_else(|| corrupt("record header outside the log".into()))?;
            let len = u32::from_le_bytes([head[32], head[33], head[34], head[35]]) as usize;
            if len == 0
                || len > RECORD_ENCODING_MAX
                || addr + (RECORD_HEADER_BYTES + len) as u64 > written
            {
                return Err(corrupt(format!("record length {len} out of bounds")));
            }
            return w
                .get(at..at + RECORD_HEADER_BYTES + len)
                .map(|b| b.to_vec())
                .ok_or_else(|| corrupt("record outside the log".into()));
        }
        // Not written yet: in a sealed frame on its way, or in the frame being filled.
        let a = lock(&self.appender);
        let (base, bytes): (u64, &[u8]) = if addr >= a.frame_offset {
            (a.frame_offset, &a.frame)
        } else {
            match a
                .inflight
                .iter()
                .find(|(o, b)| *o <= addr && addr < o + b.len() as u64)
            {
                Some((o, b)) => (*o, b.as_slice()),
                None => {
                    drop(a);
                    // Written meanwhile: read it from the file.
                    if self.progress.written_end.load(Ordering::Acquire) > written {
                        return self.read_record(addr);
                    }
                    return Err(corrupt("record address not in the log".into()));
                }
            }
        };
        let at = (addr - base) as usize;
        let head = bytes
            .get(at..at + RECORD_HEADER_BYTES)
            .ok_or_else(|| corrupt("record header outside its frame".into()))?;
        let len = u32::from_le_bytes([head[32], head[33], head[34], head[35]]) as usize;
        bytes
            .get(at..at + RECORD_HEADER_BYTES + len)
            .map(|b| b.to_vec())
            .ok_or_else(|| corrupt("record outside its frame".into()))
    }

    /// [`NativeStore::read_record`] of a written record through `read_at` (a log with no OS
    /// file behind it, to map).
    fn read_record_at(&self, addr: u64, written: u64) -> Result<Vec<u8>, NativeError> {
        let path = self.dir.join(LOG_FILE);
        let mut head = [0u8; RECORD_HEADER_BYTES];
        self.log.read_at(&mut head, addr).map_err(io_at(&path))?;
        let len = u32::from_le_bytes([head[32], head[33], head[34], head[35]]) as usize;
        if len == 0
            || len > RECORD_ENCODING_MAX
            || addr + (RECORD_HEADER_BYTES + len) as u64 > written
        {
            return Err(NativeError::Corrupt {
                path,
                offset: addr,
                detail: format!("record length {len} out of bounds"),
            });
        }
        let mut rec = vec![0u8; RECORD_HEADER_BYTES + len];
        self.log.read_at(&mut rec, addr).map_err(io_at(&path))?;
        Ok(rec)
    }

    fn window(&self, k: u64) -> Result<&Mmap, NativeError> {
        let slot = self
            .windows
            .get(k as usize)
            .ok_or_else(|| NativeError::Corrupt {
                path: self.dir.join(LOG_FILE),
                offset: k * WINDOW_BYTES,
                detail: format!(
                    "the log is longer than a store reads ({LOG_WINDOWS_MAX} windows of {WINDOW_BYTES} bytes)"
                ),
            })?;
        if let Some(w) = slot.get() {
            return Ok(w);
        }
        let _mapping = lock(&self.mapping);
        if let Some(w) = slot.get() {
            return Ok(w);
        }
        // SAFETY: the log is append-only: bytes below the written end never change while the
        // store is open, and we only read below it. Pages past the end of the file are mapped
        // but never touched (reading them would fault).
        let file = self.log.os_file().ok_or_else(|| NativeError::Io {
            path: self.dir.join(LOG_FILE),
            source: io::Error::other("the log has no file to map"),
        })?;
        let map = unsafe {
            MmapOptions::new()
                .offset(k * WINDOW_BYTES)
                .len((WINDOW_BYTES + WINDOW_OVERLAP) as usize)
                .map(file)
        }
        .map_err(io_at(&self.dir))?;
        Ok(slot.get_or_init(|| map))
    }

    fn get_cell(&self, id: &ValueId) -> Result<Option<Cell>, NativeError> {
        if let Some(c) = lock(self.cache(id)).get(id) {
            return Ok(Some(c));
        }
        let Some(addr) = self.index.get(&id.0) else {
            return Ok(None);
        };
        let rec = self.read_record(addr)?;
        let corrupt = |detail: String| NativeError::Corrupt {
            path: self.dir.join(LOG_FILE),
            offset: addr,
            detail,
        };
        let enc = format::check_record(&rec, &id.0)
            .map_err(|e| corrupt(format!("record of {id}: {e}")))?;
        let cell =
            decode_cell(enc.to_vec()).map_err(|e| corrupt(format!("record of {id}: {e}")))?;
        if self.options.verify_hashes {
            if cell.id() != id {
                return Err(corrupt(format!("record of {id} hashes to {}", cell.id())));
            }
        } else {
            cell.set_known_id(*id);
        }
        // Cache cells with children (tree nodes, read again on every walk through them);
        // decoding a leaf again costs less than caching it.
        if cell.refs().iter().any(|r| r.is_branch()) {
            lock(self.cache(id)).insert(&cell);
        }
        Ok(Some(cell))
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

fn sync_dir(dir: &Path) -> Result<(), NativeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
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

/// The valid snapshot records, oldest first (stops at the first damaged one).
fn read_snapshots(f: &dyn StorageFile, dir: &Path) -> Result<Vec<Snapshot>, NativeError> {
    let len = f.len().map_err(io_at(dir))?;
    let n = len / SNAPSHOT_RECORD_BYTES as u64;
    let mut buf = vec![0u8; (n as usize) * SNAPSHOT_RECORD_BYTES];
    f.read_at(&mut buf, 0).map_err(io_at(dir))?;
    let mut out: Vec<Snapshot> = Vec::with_capacity(n as usize);
    for chunk in buf.chunks_exact(SNAPSHOT_RECORD_BYTES) {
        match Snapshot::decode(chunk) {
            Some(s) if out.last().is_none_or(|p| p.commit.seq < s.commit.seq) => out.push(s),
            _ => break,
        }
    }
    Ok(out)
}

/// Damage found in the part of the log that acknowledged commits cover: a writable open
/// refuses the store (writing on would bury the damage under new commits).
#[derive(Debug, Clone)]
struct LogDamage {
    offset: u64,
    detail: String,
}

/// Reads frames forward from a trusted start, as FORMAT.md §5 says. `listed` is the snapshots
/// file's valid records: each was written only after its commit was durable, so every commit it
/// lists was acknowledged and must still be in the log; a frame that fails its checks before
/// the newest such commit's end is damage (reading resumes past it, so a read-only open still
/// finds every intact record). Past the last commit whose chain checks out lies only what a
/// crash can leave: frames of commits never acknowledged, whole, torn or missing.
fn recover(
    log: &dyn StorageFile,
    dir: &Path,
    listed: &[Snapshot],
) -> Result<Recovered, NativeError> {
    let path = dir.join(LOG_FILE);
    let len = log.len().map_err(io_at(&path))?;
    let (map, read) = match log.os_file() {
        _ if len == 0 => (None, Vec::new()),
        // SAFETY: read-only map of the log; bytes are only read through bounds-checked
        // slices, and writers only append past what is mapped here.
        Some(f) => (
            Some(unsafe { Mmap::map(f) }.map_err(io_at(&path))?),
            Vec::new(),
        ),
        None => {
            let mut b = vec![0u8; len as usize];
            log.read_at(&mut b, 0).map_err(io_at(&path))?;
            (None, b)
        }
    };
    let bytes: &[u8] = map.as_deref().unwrap_or(&read);
    let commit_at = |at: u64| -> Option<Commit> {
        let (h, p) = format::frame_at(bytes, usize::try_from(at).ok()?)?;
        (h.kind == KIND_COMMIT).then(|| Commit::decode(p)).flatten()
    };
    // Trust the hint only if the log holds exactly that commit frame where it says.
    let hint = listed
        .last()
        .copied()
        .filter(|s| commit_at(s.commit_addr) == Some(s.commit));
    let mut cur: Option<(Commit, u64)> = hint.map(|s| (s.commit, s.commit_addr));
    // What the hint vouches for: damage before this is not a crash's doing.
    let covered = cur.map_or(0, |(c, _)| c.log_end) as usize;
    let mut pos = cur.map_or(0, |(c, _)| c.indexed_end) as usize;
    let mut found: Vec<([u8; 32], u64)> = Vec::new();
    let mut unlisted = Vec::new();
    let mut damage: Option<LogDamage> = None;
    while pos < bytes.len() {
        let frame = format::frame_at(bytes, pos);
        let good = match frame {
            Some((h, payload)) if h.kind == KIND_DATA => match records(payload) {
                Some(recs) => {
                    for (off, id, _) in recs {
                        found.push((id, (pos + FRAME_HEADER_BYTES + off) as u64));
                    }
                    true
                }
                None => false,
            },
            Some((h, payload)) => match (Commit::decode(payload), cur) {
                // An older commit between indexed_end and the hint: already known.
                (Some(c), Some((p, _))) if c.seq <= p.seq => true,
                (Some(c), _) => {
                    let next = (pos + h.total()) as u64;
                    let follows = match cur {
                        Some((p, paddr)) => c.seq == p.seq + 1 && c.prev_commit == paddr,
                        None => c.seq == 1 && c.prev_commit == u64::MAX,
                    };
                    let ok = follows && c.log_end == next && c.indexed_end <= pos as u64;
                    if ok {
                        cur = Some((c, pos as u64));
                        unlisted.push(Snapshot {
                            commit: c,
                            commit_addr: pos as u64,
                        });
                    }
                    ok
                }
                (None, _) => false,
            },
            None => false,
        };
        if good {
            pos += frame.map_or(0, |(h, _)| h.total());
            continue;
        }
        if pos >= covered {
            break;
        }
        damage.get_or_insert(LogDamage {
            offset: pos as u64,
            detail: format!(
                "a damaged frame lies inside commit {} (which ends at {covered})",
                cur.map_or(0, |(c, _)| c.seq)
            ),
        });
        // A frame whose header still holds: each record carries its own CRC, so the intact
        // ones stay readable; then go on after it if a frame starts there.
        let intact_header = format::parse_frame_header(&bytes[pos..])
            .map(|h| (h, pos + h.total()))
            .filter(|(_, end)| *end <= bytes.len());
        if let Some((h, end)) = intact_header {
            let payload = &bytes[pos + FRAME_HEADER_BYTES..pos + FRAME_HEADER_BYTES + h.len];
            if h.kind == KIND_DATA {
                for (off, id, _) in records(payload).unwrap_or_default() {
                    if format::check_record(&payload[off..], &id).is_ok() {
                        found.push((id, (pos + FRAME_HEADER_BYTES + off) as u64));
                    }
                }
            }
            if format::frame_at(bytes, end).is_some() {
                pos = end;
                continue;
            }
        }
        pos = format::resync(bytes, pos + 8);
    }
    let seq = cur.map_or(0, |(c, _)| c.seq);
    if let Some(s) = listed.iter().find(|s| s.commit.seq > seq) {
        damage.get_or_insert(LogDamage {
            offset: s.commit_addr,
            detail: format!(
                "commit {} was acknowledged (the snapshots file lists it at log offset {}), \
                 but the log ({len} bytes) no longer holds it whole",
                s.commit.seq, s.commit_addr
            ),
        });
    }
    let _ = path;
    let (valid_end, memtable) = match cur {
        Some((c, _)) => {
            let m: HashMap<[u8; 32], u64, IdHash> = found
                .into_iter()
                .filter(|(_, a)| *a >= c.indexed_end && *a < c.log_end)
                .collect();
            (c.log_end, m)
        }
        None => (0, HashMap::default()),
    };
    // Intact commits past the end: never acknowledged (a crash left them without the frames
    // before them), or cut off by damage. Counted for the notice; the bytes are kept aside.
    let mut tail_commits = 0u64;
    let mut p = valid_end as usize;
    while p < bytes.len() {
        match format::frame_at(bytes, p) {
            Some((h, payload)) => {
                if h.kind == KIND_COMMIT && Commit::decode(payload).is_some_and(|c| c.seq > seq) {
                    tail_commits += 1;
                }
                p += h.total();
            }
            None => p = format::resync(bytes, p + 8),
        }
    }
    Ok(Recovered {
        commit: cur,
        memtable,
        unlisted,
        valid_end,
        damage,
        tail_commits,
    })
}

/// Moves the log's bytes past `valid_end` (what a crash left after the last commit) into a
/// side file beside it, synced, before the log is cut there: an open never destroys bytes it
/// cannot read. Returns the side file's path.
fn set_aside_tail(
    log: &dyn StorageFile,
    disk: &dyn Disk,
    dir: &Path,
    valid_end: u64,
    len: u64,
) -> Result<PathBuf, NativeError> {
    let mut aside = dir.join(format!("{LOG_FILE}.aside-{valid_end}"));
    let mut n = 1;
    while disk.exists(&aside) {
        aside = dir.join(format!("{LOG_FILE}.aside-{valid_end}.{n}"));
        n += 1;
    }
    let io = |e: io::Error| NativeError::Io {
        path: aside.clone(),
        source: e,
    };
    let out = disk.open(&aside, OpenMode::CreateNew).map_err(&io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = valid_end;
    let log_path = dir.join(LOG_FILE);
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        log.read_at(&mut buf[..n], at).map_err(io_at(&log_path))?;
        out.write_at(&buf[..n], at - valid_end).map_err(&io)?;
        at += n as u64;
    }
    out.sync().map_err(&io)?;
    sync_dir(dir)?;
    log.set_len(valid_end).map_err(io_at(&log_path))?;
    log.sync().map_err(io_at(&log_path))?;
    Ok(aside)
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

impl CellStore for NativeStore {
    fn put(&self, value: &Cell) -> Result<ValueId, StoreError> {
        if !self.writable {
            return Err(NativeError::ReadOnly.into());
        }
        let complete = |id: &ValueId| -> Result<bool, StoreError> { Ok(self.contains_id(&id.0)) };
        let mut a = lock(&self.appender);
        walk_new_cells(value, &complete, &mut |cell| {
            self.append_cell(&mut a, cell).map_err(StoreError::from)
        })?;
        Ok(*value.id())
    }

    /// Hashes the values on every core first (their IDs are cached in the cells), then appends
    /// them in order under one lock: the hashing of a batch no longer waits for one core.
    fn put_many(&self, values: &[Cell]) -> Result<(), StoreError> {
        use rayon::prelude::*;
        if !self.writable {
            return Err(NativeError::ReadOnly.into());
        }
        // Held throughout: runs change only under this lock, so a cell found absent below
        // stays absent from the runs until it is appended.
        let mut a = lock(&self.appender);
        let absent: Vec<bool> = if values.len() >= PARALLEL_HASH_MIN {
            values
                .par_iter()
                .map(|v| !self.contains_id(&v.id().0))
                .collect()
        } else {
            values
                .iter()
                .map(|v| !self.contains_id(&v.id().0))
                .collect()
        };
        let complete = |id: &ValueId| -> Result<bool, StoreError> { Ok(self.contains_id(&id.0)) };
        for (v, absent) in values.iter().zip(absent) {
            if !absent {
                continue;
            }
            if v.refs().is_empty() {
                // A leaf: one record; only this batch can have added it meanwhile.
                self.append_new(&mut a, v)?;
            } else {
                walk_new_cells(v, &complete, &mut |cell| {
                    self.append_cell(&mut a, cell).map_err(StoreError::from)
                })?;
            }
        }
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
