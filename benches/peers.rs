//! Side-by-side peer benchmark: workloads W1, W1-nosync, W2 and W3 of `../shared/bench/README.md`
//! run on our CAD047 `EtchStore` and on peer stores (redb, fjall, LMDB via heed, and a raw
//! append-only file as the floor), each (store, workload) in a fresh child process so that each
//! gets its own peak RSS and I/O counters.
//!
//! Run: `cargo bench -p etch-benches --bench peers -- [--workloads w1,w1nosync,w2,w3,w4]
//! [--stores etch-cad047,redb,fjall,lmdb,raw] [--cells N] [--w2-mib M] [--dir D] [--json FILE]
//! [--repeat R] [--busy B] [--keep]`. With `--repeat`, every (store, workload) runs R times in
//! interleaved rounds and the tables show medians (the JSON keeps every run, medians, minima and
//! maxima). With `--busy B`, B other processes spin on the CPU for the whole run (each keeps one
//! core busy), to measure how each store copes with a machine it does not have to itself.
//!
//! Every store keeps key = 32-byte Value ID → value = the cell's CAD3 encoding, plus its root
//! (the last cell's ID) under a key of its own, set at every commit. The same durability per
//! workload everywhere:
//! - W1: after every 1,000 cells, one commit that returns once everything is on disk;
//! - W1-nosync: the same commits without forcing, then one forcing commit at the end;
//! - W2: the whole 1 GiB Blob tree (every chunk and node), then one forcing commit;
//! - W3: the W1 store of the same store reopened (page cache warm), every key read once in
//!   insertion order, then `--cells` random reads by Value ID per thread, with 1 thread and with
//!   all threads; every read returns a decoded [`Cell`].
//! - W4: the W2 store reopened, every cell of the W2 tree walked from the root (depth first,
//!   each cell read by Value ID and decoded, its branch children followed).
//!
//! A new backend plugs in with [`BenchWriter`] (write side) and [`BenchRead`] / [`ReadSession`]
//! (read side, after a reopen) plus one arm in [`create_writer`] and one in [`open_reader`]; any
//! [`CellStore`] already works through [`CellStoreWriter`] and [`CellStoreRead`].

use etch_engine::store::{CellStore, EtchStore, NativeOptions, NativeStore};
use etch_formats::gen::SplitMix64;
use etch_formats::{branches_preorder, decode_cell, Cell, NoResolver, ValueId};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Every store the harness knows, in table order (the first is the reference for ratios).
const STORES: &[&str] = &["etch-native", "etch-cad047", "redb", "fjall", "lmdb", "raw"];
/// Every workload, in run order (W3 reads the store W1 wrote).
const WORKLOADS: &[&str] = &["w1", "w1nosync", "w2", "w3", "w4"];
/// Cells per commit in W1 (and per write batch elsewhere).
const BATCH: usize = 1000;
/// Bytes of data of one W1 Blob (encoding: `31 61` + data = 99 bytes).
const W1_DATA: usize = 97;
/// Value ID of W1's blob #999,999 (README).
const W1_ROOT: &str = "ad2a25d5cff411c4ed25628c1dc81639f12b524b59848c8d1e4eb1028bda2020";
/// Root of W2's 1 GiB Blob tree (README), and its cell count.
const W2_ROOT: &str = "3c56fad6bd06d27a668608111f7fa96b669323994ea25a0183bc3aa68b33555b";
const W2_CELLS: usize = 279_621;
/// Key under which the peer key-value stores keep the root ID (not 32 bytes: cannot collide).
const ROOT_KEY: &[u8] = b"root";
/// LMDB map size (an upper bound on the file, not allocated up front).
const LMDB_MAP_BYTES: usize = 8 << 30;

// ------------------------------------------------------------------------------------------------
// The adapter traits: what a backend provides.

/// When a store may force data to disk (LMDB needs to know at open time).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SyncMode {
    /// Every commit called with `durable = true` forces (W1, W2).
    EveryCommit,
    /// Only the last commit forces (W1-nosync); earlier ones may stay in OS buffers.
    AtEnd,
}

/// Write side of a store under test. One writer per process; calls come from one thread.
pub trait BenchWriter {
    /// Stores each cell as a top-level record (key = Value ID, value = encoding). Not yet
    /// durable nor necessarily visible: a later [`BenchWriter::commit`] makes it so.
    fn put_cells(&mut self, cells: &[Cell]);

    /// Stores a value and every branch cell of its tree. The default enumerates the cells
    /// (root first, then branches in pre-order) and hands them to `put_cells` 1,000 at a time.
    fn put_tree(&mut self, root: &Cell) {
        let mut cells = vec![root.clone()];
        cells.extend(branches_preorder(root, &NoResolver).expect("tree held in memory"));
        for chunk in cells.chunks(BATCH) {
            self.put_cells(chunk);
        }
    }

    /// Makes `root` the root and commits every write so far; with `durable`, returns only once
    /// data and root are on disk.
    fn commit(&mut self, root: &Cell, durable: bool);

    /// Closes the store (flushes whatever the store flushes on close).
    fn close(self: Box<Self>) {}
}

/// Read side of a store under test, opened on an existing store; shared by reader threads.
pub trait BenchRead: Sync {
    /// A per-thread read handle (a read transaction where the store has them).
    fn session(&self) -> Box<dyn ReadSession + '_>;
}

/// Reads of one thread.
pub trait ReadSession {
    /// The stored cell with this ID, decoded.
    fn get(&mut self, id: &ValueId) -> Option<Cell>;
}

/// Opens a fresh, empty store of kind `store` in the (existing, empty) directory `dir`.
fn create_writer(store: &str, dir: &Path, mode: SyncMode) -> Box<dyn BenchWriter> {
    match store {
        "etch-native" => Box::new(NativeWriter(
            NativeStore::create(dir.join("store.native"), NativeOptions::default())
                .expect("create NativeStore"),
        )),
        "etch-cad047" => Box::new(CellStoreWriter(
            EtchStore::create(dir.join("store.etch")).expect("create EtchStore"),
        )),
        "redb" => Box::new(RedbWriter::create(dir)),
        "fjall" => Box::new(FjallWriter::create(dir)),
        "lmdb" => Box::new(LmdbWriter::create(dir, mode)),
        "raw" => Box::new(RawWriter::create(dir)),
        other => panic!("unknown store {other}"),
    }
}

/// Reopens the store of kind `store` written in `dir`, for reading.
fn open_reader(store: &str, dir: &Path) -> Box<dyn BenchRead> {
    match store {
        "etch-native" => Box::new(CellStoreRead(
            NativeStore::open(dir.join("store.native"), false, NativeOptions::default())
                .expect("open NativeStore"),
        )),
        "etch-cad047" => Box::new(CellStoreRead(
            EtchStore::open(dir.join("store.etch"), false).expect("open EtchStore"),
        )),
        "redb" => Box::new(RedbRead::open(dir)),
        "fjall" => Box::new(FjallRead::open(dir)),
        "lmdb" => Box::new(LmdbRead::open(dir)),
        "raw" => Box::new(RawRead::open(dir)),
        other => panic!("unknown store {other}"),
    }
}

// ------------------------------------------------------------------------------------------------
// Any CellStore (our CAD047 EtchStore today).

/// Writes through the [`CellStore`] API: `put` per cell, `set_root` as the durable commit. The
/// API has no non-durable root update, so a non-durable commit only puts the root cell (already
/// stored): W1-nosync sets the root once, at the final durable commit.
pub struct CellStoreWriter<S: CellStore>(pub S);

impl<S: CellStore> BenchWriter for CellStoreWriter<S> {
    fn put_cells(&mut self, cells: &[Cell]) {
        self.0.put_many(cells).expect("CellStore::put_many");
    }

    /// `put` walks the whole tree itself (one lookup per cell).
    fn put_tree(&mut self, root: &Cell) {
        self.0.put(root).expect("CellStore::put of a tree");
    }

    fn commit(&mut self, root: &Cell, durable: bool) {
        if durable {
            self.0.set_root(root).expect("CellStore::set_root");
        } else {
            self.0.put(root).expect("CellStore::put of the root");
        }
    }
}

/// The native store: like [`CellStoreWriter`], but a non-durable commit really sets the root
/// (a COMMIT frame without waiting for its sync), as W1-nosync asks.
pub struct NativeWriter(pub NativeStore);

impl BenchWriter for NativeWriter {
    fn put_cells(&mut self, cells: &[Cell]) {
        self.0.put_many(cells).expect("NativeStore::put_many");
    }

    fn put_tree(&mut self, root: &Cell) {
        self.0.put(root).expect("NativeStore::put of a tree");
    }

    fn commit(&mut self, root: &Cell, durable: bool) {
        if durable {
            self.0.set_root(root).expect("NativeStore::set_root");
        } else {
            self.0
                .set_root_unsynced(root)
                .expect("NativeStore::set_root_unsynced");
        }
    }
}

/// Reads through `CellStore::get` (decodes and checks the record's ID; the store's own cell
/// cache is left at its default).
pub struct CellStoreRead<S: CellStore>(pub S);

struct CellStoreSession<'a, S: CellStore>(&'a S);

impl<S: CellStore> BenchRead for CellStoreRead<S> {
    fn session(&self) -> Box<dyn ReadSession + '_> {
        Box::new(CellStoreSession(&self.0))
    }
}

impl<S: CellStore> ReadSession for CellStoreSession<'_, S> {
    fn get(&mut self, id: &ValueId) -> Option<Cell> {
        self.0.get(id).expect("CellStore::get")
    }
}

/// Decodes a value read from a peer store (the fastest correct decode we have: validating).
fn decode(bytes: &[u8]) -> Cell {
    decode_cell(bytes.to_vec()).expect("stored encoding decodes")
}

// ------------------------------------------------------------------------------------------------
// redb: one table; one write transaction per commit (Durability::Immediate when durable,
// Durability::None otherwise; a later Immediate commit makes None commits durable).

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("cells");

struct RedbWriter {
    db: redb::Database,
    txn: Option<redb::WriteTransaction>,
}

impl RedbWriter {
    fn create(dir: &Path) -> RedbWriter {
        let db = redb::Database::create(dir.join("store.redb")).expect("create redb database");
        RedbWriter { db, txn: None }
    }

    fn txn(&mut self) -> &mut redb::WriteTransaction {
        let db = &self.db;
        self.txn
            .get_or_insert_with(|| db.begin_write().expect("redb begin_write"))
    }
}

impl BenchWriter for RedbWriter {
    fn put_cells(&mut self, cells: &[Cell]) {
        let txn = self.txn();
        let mut table = txn.open_table(REDB_TABLE).expect("redb open_table");
        for c in cells {
            table
                .insert(&c.id().0[..], c.encoding())
                .expect("redb insert");
        }
    }

    fn commit(&mut self, root: &Cell, durable: bool) {
        let mut txn = match self.txn.take() {
            Some(txn) => txn,
            None => self.db.begin_write().expect("redb begin_write"),
        };
        {
            let mut table = txn.open_table(REDB_TABLE).expect("redb open_table");
            table
                .insert(ROOT_KEY, &root.id().0[..])
                .expect("redb insert root");
        }
        let durability = if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        txn.set_durability(durability).expect("redb set_durability");
        txn.commit().expect("redb commit");
    }
}

struct RedbRead {
    db: redb::Database,
}

impl RedbRead {
    fn open(dir: &Path) -> RedbRead {
        RedbRead {
            db: redb::Database::open(dir.join("store.redb")).expect("open redb database"),
        }
    }
}

struct RedbSession {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl BenchRead for RedbRead {
    fn session(&self) -> Box<dyn ReadSession + '_> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().expect("redb begin_read");
        let table = txn.open_table(REDB_TABLE).expect("redb open_table");
        Box::new(RedbSession { table })
    }
}

impl ReadSession for RedbSession {
    fn get(&mut self, id: &ValueId) -> Option<Cell> {
        let guard = self.table.get(&id.0[..]).expect("redb get")?;
        Some(decode(guard.value()))
    }
}

// ------------------------------------------------------------------------------------------------
// fjall: one keyspace; one atomic write batch per `put_cells`/commit, then
// `persist(PersistMode::SyncData)` (fdatasync of the journal) for a durable commit. Block cache
// 1 GiB, redb's default (fjall's own default is 32 MiB; its docs advise 20–25 % of RAM): with
// 32 MiB, W3 measures the cache misses rather than the store.

const FJALL_CACHE_BYTES: u64 = 1 << 30;

fn fjall_open(dir: &Path) -> (fjall::Database, fjall::Keyspace) {
    let db = fjall::Database::builder(dir.join("store.fjall"))
        .cache_size(FJALL_CACHE_BYTES)
        .open()
        .expect("open fjall database");
    let cells = db
        .keyspace("cells", fjall::KeyspaceCreateOptions::default)
        .expect("fjall keyspace");
    (db, cells)
}

struct FjallWriter {
    db: fjall::Database,
    cells: fjall::Keyspace,
}

impl FjallWriter {
    fn create(dir: &Path) -> FjallWriter {
        let (db, cells) = fjall_open(dir);
        FjallWriter { db, cells }
    }
}

impl BenchWriter for FjallWriter {
    fn put_cells(&mut self, cells: &[Cell]) {
        let mut batch = self.db.batch();
        for c in cells {
            batch.insert(&self.cells, &c.id().0[..], c.encoding());
        }
        batch.commit().expect("fjall batch commit");
    }

    fn commit(&mut self, root: &Cell, durable: bool) {
        self.cells
            .insert(ROOT_KEY, &root.id().0[..])
            .expect("fjall insert root");
        if durable {
            self.db
                .persist(fjall::PersistMode::SyncData)
                .expect("fjall persist");
        }
    }

    fn close(self: Box<Self>) {
        drop(self.cells);
        drop(self.db);
    }
}

struct FjallRead {
    _db: fjall::Database,
    cells: fjall::Keyspace,
}

impl FjallRead {
    fn open(dir: &Path) -> FjallRead {
        let (db, cells) = fjall_open(dir);
        FjallRead { _db: db, cells }
    }
}

struct FjallSession<'a>(&'a fjall::Keyspace);

impl BenchRead for FjallRead {
    fn session(&self) -> Box<dyn ReadSession + '_> {
        Box::new(FjallSession(&self.cells))
    }
}

impl ReadSession for FjallSession<'_> {
    fn get(&mut self, id: &ValueId) -> Option<Cell> {
        let v = self.0.get(id.0).expect("fjall get")?;
        Some(decode(&v))
    }
}

// ------------------------------------------------------------------------------------------------
// LMDB (heed): the unnamed database; one write transaction per commit. LMDB fsyncs on commit by
// default; for W1-nosync the environment is opened with MDB_NOSYNC and the final durable commit
// calls `force_sync` (fdatasync) after committing.

type LmdbDb = heed::Database<'static, heed::types::Bytes, heed::types::Bytes>;

fn lmdb_env(dir: &Path, mode: SyncMode) -> heed::Env {
    let path = dir.join("store.lmdb");
    std::fs::create_dir_all(&path).expect("create LMDB directory");
    let mut options = heed::EnvOpenOptions::new();
    options.map_size(LMDB_MAP_BYTES);
    if mode == SyncMode::AtEnd {
        // SAFETY: MDB_NOSYNC only drops the fsync at commit; the workload forces the data with
        // `force_sync` before it reports the store durable, and nothing else opens this file.
        unsafe {
            options.flags(heed::EnvFlags::NO_SYNC);
        }
    }
    // SAFETY: the environment's files are created by this process for this run and no other
    // process or handle modifies them while the map is open (LMDB's own lock file guards it).
    unsafe { options.open(&path) }.expect("open LMDB environment")
}

struct LmdbWriter {
    env: &'static heed::Env,
    db: LmdbDb,
    txn: Option<heed::RwTxn<'static>>,
    mode: SyncMode,
}

impl LmdbWriter {
    fn create(dir: &Path, mode: SyncMode) -> LmdbWriter {
        // A write transaction borrows its environment: the writer lives until the process ends,
        // so the environment is leaked to keep the open transaction in the struct.
        let env: &'static heed::Env = Box::leak(Box::new(lmdb_env(dir, mode)));
        let wtxn = env.write_txn().expect("LMDB write_txn");
        let db = env
            .create_databases_and_commit(wtxn, |wdo, wtxn| {
                let db: LmdbDb = wdo.create_database(wtxn, None)?;
                heed::Result::Ok(heed::CommitOrAbort::<_, ()>::Commit(db))
            })
            .expect("LMDB create database")
            .unwrap_commit();
        LmdbWriter {
            env,
            db,
            txn: None,
            mode,
        }
    }

    fn txn(&mut self) -> &mut heed::RwTxn<'static> {
        let env = self.env;
        self.txn
            .get_or_insert_with(|| env.write_txn().expect("LMDB write_txn"))
    }
}

impl BenchWriter for LmdbWriter {
    fn put_cells(&mut self, cells: &[Cell]) {
        let db = self.db;
        let txn = self.txn();
        for c in cells {
            db.put(txn, &c.id().0[..], c.encoding()).expect("LMDB put");
        }
    }

    fn commit(&mut self, root: &Cell, durable: bool) {
        let db = self.db;
        let txn = self.txn();
        db.put(txn, ROOT_KEY, &root.id().0[..])
            .expect("LMDB put root");
        let txn = self.txn.take().expect("open LMDB transaction");
        txn.commit().expect("LMDB commit");
        if durable && self.mode == SyncMode::AtEnd {
            self.env.force_sync().expect("LMDB force_sync");
        }
    }
}

struct LmdbRead {
    env: heed::Env,
    db: LmdbDb,
}

impl LmdbRead {
    fn open(dir: &Path) -> LmdbRead {
        let env = lmdb_env(dir, SyncMode::EveryCommit);
        let rtxn = env.read_txn().expect("LMDB read_txn");
        let db = env
            .open_databases_and_commit(rtxn, |dbo, rtxn| {
                let db = dbo.open_database::<heed::types::Bytes, heed::types::Bytes>(rtxn, None)?;
                heed::Result::Ok(heed::CommitOrAbort::<_, ()>::Commit(db))
            })
            .expect("LMDB open database")
            .unwrap_commit()
            .expect("the unnamed LMDB database exists");
        LmdbRead { env, db }
    }
}

struct LmdbSession<'e> {
    txn: heed::RoTxn<'e, heed::WithTls>,
    db: LmdbDb,
}

impl BenchRead for LmdbRead {
    fn session(&self) -> Box<dyn ReadSession + '_> {
        let txn = self.env.read_txn().expect("LMDB read_txn");
        Box::new(LmdbSession { txn, db: self.db })
    }
}

impl ReadSession for LmdbSession<'_> {
    fn get(&mut self, id: &ValueId) -> Option<Cell> {
        let v = self.db.get(&self.txn, &id.0[..]).expect("LMDB get")?;
        Some(decode(v))
    }
}

// ------------------------------------------------------------------------------------------------
// raw: the floor. Records `[u32 LE length][encoding]` appended to one file; a commit appends
// `[u32::MAX][32-byte root ID]`, writes the pending bytes with one `write` and, when durable,
// `fdatasync`s. It hashes every encoding (the Value ID, as every store must) and keeps an
// in-memory HashMap ID → (offset, length). A reopen rebuilds that map by reading the file up to
// its last commit record and hashing every encoding again; reads are one `pread` each. No
// checksums and no ordering between data and commit record: a floor, not a crash-safe store.

const RAW_COMMIT: u32 = u32::MAX;

struct RawWriter {
    file: File,
    pending: Vec<u8>,
    len: u64,
    index: HashMap<[u8; 32], (u64, u32)>,
}

impl RawWriter {
    fn create(dir: &Path) -> RawWriter {
        let file = File::create(dir.join("store.raw")).expect("create raw file");
        RawWriter {
            file,
            pending: Vec::with_capacity(1 << 20),
            len: 0,
            index: HashMap::new(),
        }
    }
}

impl BenchWriter for RawWriter {
    fn put_cells(&mut self, cells: &[Cell]) {
        for c in cells {
            let enc = c.encoding();
            let at = self.len + self.pending.len() as u64 + 4;
            self.index.insert(c.id().0, (at, enc.len() as u32));
            self.pending
                .extend_from_slice(&(enc.len() as u32).to_le_bytes());
            self.pending.extend_from_slice(enc);
        }
    }

    fn commit(&mut self, root: &Cell, durable: bool) {
        self.pending.extend_from_slice(&RAW_COMMIT.to_le_bytes());
        self.pending.extend_from_slice(&root.id().0);
        self.file.write_all(&self.pending).expect("raw write");
        self.len += self.pending.len() as u64;
        self.pending.clear();
        if durable {
            self.file.sync_data().expect("raw fdatasync");
        }
    }
}

struct RawRead {
    file: File,
    index: HashMap<[u8; 32], (u64, u32)>,
}

impl RawRead {
    fn open(dir: &Path) -> RawRead {
        let path = dir.join("store.raw");
        let file = File::open(&path).expect("open raw file");
        let mut r = BufReader::with_capacity(1 << 20, File::open(&path).expect("open raw file"));
        let mut index = HashMap::new();
        let mut pending = Vec::new();
        let mut at = 0u64;
        let mut word = [0u8; 4];
        let mut buf = Vec::new();
        while r.read_exact(&mut word).is_ok() {
            let n = u32::from_le_bytes(word);
            if n == RAW_COMMIT {
                let mut root = [0u8; 32];
                r.read_exact(&mut root).expect("raw commit record");
                index.extend(pending.drain(..));
                at += 36;
                continue;
            }
            buf.resize(n as usize, 0);
            r.read_exact(&mut buf).expect("raw record");
            pending.push((ValueId::of(&buf).0, (at + 4, n)));
            at += 4 + n as u64;
        }
        RawRead { file, index }
    }
}

struct RawSession<'a> {
    store: &'a RawRead,
    buf: Vec<u8>,
}

impl BenchRead for RawRead {
    fn session(&self) -> Box<dyn ReadSession + '_> {
        Box::new(RawSession {
            store: self,
            buf: Vec::new(),
        })
    }
}

impl ReadSession for RawSession<'_> {
    fn get(&mut self, id: &ValueId) -> Option<Cell> {
        let &(at, n) = self.store.index.get(&id.0)?;
        self.buf.resize(n as usize, 0);
        self.store
            .file
            .read_exact_at(&mut self.buf, at)
            .expect("raw pread");
        Some(decode(&self.buf))
    }
}

// ------------------------------------------------------------------------------------------------
// Process figures.

/// A `/proc/self/status` figure in KiB (`VmHWM:`, `VmRSS:`).
fn status_kib(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `write_bytes` of `/proc/self/io` (bytes this process caused to be written to storage: pages
/// dirtied in the page cache, counted when they become dirty), if the kernel reports it.
fn io_write_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/io")
        .ok()?
        .lines()
        .find(|l| l.starts_with("write_bytes:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Bytes written to the block device holding `path` so far (sectors written, field 7 of
/// `/sys/dev/block/MAJ:MIN/stat`): exact for the device, but system-wide (other processes'
/// writes count too).
fn device_write_bytes(path: &Path) -> Option<u64> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    let sectors: u64 = stat.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// (apparent bytes, allocated bytes) of everything under `path`.
fn disk_usage(path: &Path) -> (u64, u64) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (0, 0);
    };
    if meta.is_dir() {
        let mut total = (0, 0);
        for entry in std::fs::read_dir(path).expect("read store directory") {
            let (a, b) = disk_usage(&entry.expect("directory entry").path());
            total.0 += a;
            total.1 += b;
        }
        total
    } else {
        (meta.len(), meta.blocks() * 512)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

/// W1's data: `cells` strings of 97 bytes, each from fresh SplitMix64 outputs of seed 1.
fn w1_data(cells: usize) -> Vec<u8> {
    let mut rng = SplitMix64(1);
    let mut data = Vec::with_capacity(cells * W1_DATA);
    for _ in 0..cells {
        data.extend_from_slice(&rng.bytes(W1_DATA));
    }
    data
}

/// Figures measured in a child, by name.
type Figures = Map<String, Value>;

/// Sets the figures every workload reports: process I/O, memory and the store's size.
fn finish_figures(
    f: &mut Figures,
    (io0, dev0): (Option<u64>, Option<u64>),
    logical: u64,
    store_dir: &Path,
) {
    let (apparent, allocated) = disk_usage(store_dir);
    if let (Some(a), Some(b)) = (dev0, device_write_bytes(store_dir)) {
        f.insert("device_write_bytes".into(), json!(b - a));
        f.insert(
            "device_write_amp".into(),
            json!((b - a) as f64 / logical.max(1) as f64),
        );
    }
    f.insert("disk_apparent_bytes".into(), json!(apparent));
    f.insert("disk_allocated_bytes".into(), json!(allocated));
    f.insert("logical_bytes".into(), json!(logical));
    match (io0, io_write_bytes()) {
        (Some(a), Some(b)) => {
            f.insert("io_write_bytes".into(), json!(b - a));
            f.insert(
                "write_amp".into(),
                json!((b - a) as f64 / logical.max(1) as f64),
            );
            f.insert("write_amp_source".into(), json!("proc_io_write_bytes"));
        }
        _ => {
            f.insert(
                "write_amp".into(),
                json!(allocated as f64 / logical.max(1) as f64),
            );
            f.insert("write_amp_source".into(), json!("disk_size"));
        }
    }
    f.insert("peak_rss_kib".into(), json!(status_kib("VmHWM:")));
}

// ------------------------------------------------------------------------------------------------
// Workloads (run in the child).

struct Params {
    cells: usize,
    w2_mib: usize,
}

fn run_w1(store: &str, dir: &Path, p: &Params, nosync: bool) -> Figures {
    let cells = p.cells;
    let data = w1_data(cells);
    let mode = if nosync {
        SyncMode::AtEnd
    } else {
        SyncMode::EveryCommit
    };
    let mut writer = create_writer(store, dir, mode);
    let rss_base = status_kib("VmRSS:");
    let io0 = (io_write_bytes(), device_write_bytes(dir));
    let mut commit_ms = Vec::with_capacity(cells / BATCH + 1);
    let mut batch_ms = Vec::with_capacity(cells / BATCH + 1);
    let mut last: Option<Cell> = None;
    let start = Instant::now();
    for first in (0..cells).step_by(BATCH) {
        let t_batch = Instant::now();
        let end = (first + BATCH).min(cells);
        let batch: Vec<Cell> = (first..end)
            .map(|i| Cell::blob(&data[i * W1_DATA..(i + 1) * W1_DATA]))
            .collect();
        writer.put_cells(&batch);
        let root = batch.last().expect("non-empty batch");
        let t_commit = Instant::now();
        writer.commit(root, !nosync);
        commit_ms.push(t_commit.elapsed().as_secs_f64() * 1e3);
        batch_ms.push(t_batch.elapsed().as_secs_f64() * 1e3);
        last = Some(root.clone());
    }
    let last = last.expect("at least one cell");
    let mut final_sync_ms = None;
    if nosync {
        let t = Instant::now();
        writer.commit(&last, true);
        final_sync_ms = Some(t.elapsed().as_secs_f64() * 1e3);
    }
    let secs = start.elapsed().as_secs_f64();
    let t_close = Instant::now();
    writer.close();
    let close_s = t_close.elapsed().as_secs_f64();
    let root = last.id().to_hex();
    if cells == 1_000_000 && root != W1_ROOT {
        eprintln!("W1 ROOT MISMATCH: got {root}, README says {W1_ROOT}");
        std::process::exit(3);
    }
    commit_ms.sort_by(f64::total_cmp);
    batch_ms.sort_by(f64::total_cmp);
    let logical = (cells * (W1_DATA + 2)) as u64;
    let mut f = Figures::new();
    f.insert("cells".into(), json!(cells));
    f.insert("wall_s".into(), json!(secs));
    f.insert("cells_per_s".into(), json!(cells as f64 / secs));
    f.insert("mb_per_s".into(), json!(logical as f64 / secs / 1e6));
    f.insert("commit_ms_p50".into(), json!(percentile(&commit_ms, 0.50)));
    f.insert("commit_ms_p99".into(), json!(percentile(&commit_ms, 0.99)));
    f.insert("batch_ms_p50".into(), json!(percentile(&batch_ms, 0.50)));
    f.insert("batch_ms_p99".into(), json!(percentile(&batch_ms, 0.99)));
    if let Some(ms) = final_sync_ms {
        f.insert("final_sync_ms".into(), json!(ms));
    }
    f.insert("close_s".into(), json!(close_s));
    f.insert("root".into(), json!(root));
    f.insert("root_checked".into(), json!(cells == 1_000_000));
    f.insert("rss_base_kib".into(), json!(rss_base));
    finish_figures(&mut f, io0, logical, dir);
    f
}

fn run_w2(store: &str, dir: &Path, p: &Params) -> Figures {
    let data = SplitMix64(2).bytes(p.w2_mib << 20);
    let mut writer = create_writer(store, dir, SyncMode::EveryCommit);
    let rss_base = status_kib("VmRSS:");
    let io0 = (io_write_bytes(), device_write_bytes(dir));
    let start = Instant::now();
    let root = Cell::blob(&data);
    writer.put_tree(&root);
    let t_commit = Instant::now();
    writer.commit(&root, true);
    let commit_ms = t_commit.elapsed().as_secs_f64() * 1e3;
    let secs = start.elapsed().as_secs_f64();
    let t_close = Instant::now();
    writer.close();
    let close_s = t_close.elapsed().as_secs_f64();
    drop(data);
    let branches = branches_preorder(&root, &NoResolver).expect("tree held in memory");
    let cells = branches.len() + 1;
    let logical = root.len() as u64 + branches.iter().map(|c| c.len() as u64).sum::<u64>();
    let id = root.id().to_hex();
    if p.w2_mib == 1024 && (id != W2_ROOT || cells != W2_CELLS) {
        eprintln!(
            "W2 MISMATCH: root {id} with {cells} cells; README says {W2_ROOT} with {W2_CELLS}"
        );
        std::process::exit(3);
    }
    let mut f = Figures::new();
    f.insert("cells".into(), json!(cells));
    f.insert("data_bytes".into(), json!(p.w2_mib << 20));
    f.insert("wall_s".into(), json!(secs));
    f.insert("cells_per_s".into(), json!(cells as f64 / secs));
    f.insert("mb_per_s".into(), json!(logical as f64 / secs / 1e6));
    f.insert("commit_ms".into(), json!(commit_ms));
    f.insert("close_s".into(), json!(close_s));
    f.insert("root".into(), json!(id));
    f.insert("root_checked".into(), json!(p.w2_mib == 1024));
    f.insert("rss_base_kib".into(), json!(rss_base));
    finish_figures(&mut f, io0, logical, dir);
    f
}

/// `reads` random reads of W1's cells from one session; returns the bytes of the cells read.
fn random_reads(read: &dyn BenchRead, ids: &[ValueId], seed: u64, reads: usize) -> u64 {
    let mut session = read.session();
    let mut rng = SplitMix64(seed);
    let mut bytes = 0u64;
    for _ in 0..reads {
        let i = (rng.next_u64() % ids.len() as u64) as usize;
        let c = session.get(&ids[i]).expect("W1 cell present");
        bytes += c.len() as u64;
    }
    bytes
}

/// Runs `threads` reader threads (seeds 1017, 1018, ...); returns reads per second.
fn timed_random_reads(read: &dyn BenchRead, ids: &[ValueId], threads: usize, reads: usize) -> f64 {
    let start = Instant::now();
    let bytes: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || random_reads(read, ids, 1017 + t as u64, reads)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reader thread"))
            .sum()
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        bytes,
        (threads * reads * (W1_DATA + 2)) as u64,
        "every random read returns a 99-byte W1 cell"
    );
    (threads * reads) as f64 / secs
}

fn run_w3(store: &str, w1_dir: &Path, p: &Params) -> Figures {
    // The IDs, regenerated deterministically (not timed).
    let ids: Vec<ValueId> = {
        let data = w1_data(p.cells);
        data.chunks_exact(W1_DATA)
            .map(|d| *Cell::blob(d).id())
            .collect()
    };
    let rss_base = status_kib("VmRSS:");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let t_open = Instant::now();
    let read = open_reader(store, w1_dir);
    let open_s = t_open.elapsed().as_secs_f64();
    // Every key once, in insertion order.
    let t_scan = Instant::now();
    {
        let mut session = read.session();
        for (i, id) in ids.iter().enumerate() {
            let c = session.get(id).expect("W1 cell present");
            assert_eq!(c.len(), W1_DATA + 2, "W1 cell {i} has a 99-byte encoding");
            if i % 1024 == 0 {
                assert_eq!(c.id(), id, "W1 cell {i} read back under its own ID");
            }
        }
    }
    let scan_s = t_scan.elapsed().as_secs_f64();
    let reads = p.cells;
    let rate1 = timed_random_reads(read.as_ref(), &ids, 1, reads);
    let rate_n = timed_random_reads(read.as_ref(), &ids, threads, reads);
    let mut f = Figures::new();
    f.insert("cells".into(), json!(p.cells));
    f.insert("open_s".into(), json!(open_s));
    f.insert("scan_s".into(), json!(scan_s));
    f.insert("scan_reads_per_s".into(), json!(p.cells as f64 / scan_s));
    f.insert("reads_per_thread".into(), json!(reads));
    f.insert("threads".into(), json!(threads));
    f.insert("reads_per_s_1".into(), json!(rate1));
    f.insert("reads_per_s_n".into(), json!(rate_n));
    f.insert("rss_base_kib".into(), json!(rss_base));
    f.insert("peak_rss_kib".into(), json!(status_kib("VmHWM:")));
    drop(read);
    let (apparent, allocated) = disk_usage(w1_dir);
    f.insert("disk_apparent_bytes".into(), json!(apparent));
    f.insert("disk_allocated_bytes".into(), json!(allocated));
    f
}

/// W4: reopen the store W2 wrote and walk every cell of its tree from the root, depth first,
/// reading each cell by Value ID and decoding it (the reader holds only its stack).
fn run_w4(store: &str, w2_dir: &Path, p: &Params) -> Figures {
    let root_id = *Cell::blob(&SplitMix64(2).bytes(p.w2_mib << 20)).id();
    let rss_base = status_kib("VmRSS:");
    let t_open = Instant::now();
    let read = open_reader(store, w2_dir);
    let open_s = t_open.elapsed().as_secs_f64();
    let mut session = read.session();
    let start = Instant::now();
    let mut stack = vec![root_id];
    let (mut cells, mut bytes) = (0u64, 0u64);
    while let Some(id) = stack.pop() {
        let c = session.get(&id).expect("W2 cell present");
        cells += 1;
        bytes += c.len() as u64;
        for r in c.refs().iter().rev() {
            if r.is_branch() {
                stack.push(r.id());
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if p.w2_mib == 1024 {
        assert_eq!(
            cells as usize, W2_CELLS,
            "W4 visits every cell of the W2 tree"
        );
    }
    let mut f = Figures::new();
    f.insert("cells".into(), json!(cells));
    f.insert("open_s".into(), json!(open_s));
    f.insert("wall_s".into(), json!(secs));
    f.insert("cells_per_s".into(), json!(cells as f64 / secs));
    f.insert("mb_per_s".into(), json!(bytes as f64 / secs / 1e6));
    f.insert("rss_base_kib".into(), json!(rss_base));
    f.insert("peak_rss_kib".into(), json!(status_kib("VmHWM:")));
    f
}

/// The 1-minute load average (how busy the shared machine was).
fn load_1min() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn child(store: &str, workload: &str, dir: &Path, p: &Params) {
    let load_start = load_1min();
    let mut figures = match workload {
        "w1" => run_w1(store, &dir.join(store).join("w1"), p, false),
        "w1nosync" => run_w1(store, &dir.join(store).join("w1nosync"), p, true),
        "w2" => run_w2(store, &dir.join(store).join("w2"), p),
        "w3" => run_w3(store, &dir.join(store).join("w1"), p),
        "w4" => run_w4(store, &dir.join(store).join("w2"), p),
        other => panic!("unknown workload {other}"),
    };
    figures.insert("load_1min_start".into(), json!(load_start));
    figures.insert("load_1min_end".into(), json!(load_1min()));
    println!("PEERS-RESULT {}", Value::Object(figures));
}

// ------------------------------------------------------------------------------------------------
// Parent: runs the children, prints the tables, writes the JSON.

struct Args {
    workloads: Vec<String>,
    stores: Vec<String>,
    params: Params,
    dir: Option<PathBuf>,
    json: Option<PathBuf>,
    keep: bool,
    repeat: usize,
    /// Spinning processes kept running beside the children.
    busy: usize,
    child: Option<(String, String)>,
    /// This process is a spinner (`--spin`): keep a core busy until the parent goes away.
    spin: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        workloads: WORKLOADS.iter().map(|s| s.to_string()).collect(),
        stores: STORES.iter().map(|s| s.to_string()).collect(),
        params: Params {
            cells: 1_000_000,
            w2_mib: 1024,
        },
        dir: None,
        json: None,
        keep: false,
        repeat: 1,
        busy: 0,
        child: None,
        spin: false,
    };
    let mut it = std::env::args().skip(1);
    let list = |v: Option<String>, known: &[&str], what: &str| -> Vec<String> {
        let v = v.unwrap_or_else(|| panic!("--{what} needs a value"));
        let out: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
        for s in &out {
            assert!(
                known.contains(&s.as_str()),
                "unknown {what} '{s}' (known: {known:?})"
            );
        }
        out
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--workloads" => a.workloads = list(it.next(), WORKLOADS, "workloads"),
            "--stores" => a.stores = list(it.next(), STORES, "stores"),
            "--cells" => {
                a.params.cells = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .expect("--cells N (N > 0)")
            }
            "--w2-mib" => {
                a.params.w2_mib = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .expect("--w2-mib M (M > 0)")
            }
            "--dir" => a.dir = Some(it.next().expect("--dir D").into()),
            "--json" => a.json = Some(it.next().expect("--json FILE").into()),
            "--keep" => a.keep = true,
            "--repeat" => {
                a.repeat = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .expect("--repeat R (R > 0)")
            }
            "--busy" => {
                a.busy = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--busy B (processes kept spinning)")
            }
            "--spin" => a.spin = true,
            "--child" => {
                let s = it.next().expect("--child STORE WORKLOAD");
                let w = it.next().expect("--child STORE WORKLOAD");
                a.child = Some((s, w));
            }
            // cargo bench appends `--bench` to the arguments of a harness = false target.
            "--bench" => {}
            other => panic!("unknown argument '{other}' (see the header of benches/peers.rs)"),
        }
    }
    a
}

/// The filesystem type of the mount holding `path` (from /proc/mounts).
fn fs_type(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let _dev = parts.next()?;
            let at = parts.next()?;
            let ty = parts.next()?;
            path.starts_with(at).then(|| (at.len(), ty.to_string()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, ty)| ty)
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "mem_gib": mem_kib as f64 / (1 << 20) as f64,
        "kernel": kernel.trim(),
    })
}

fn run_child(
    exe: &Path,
    store: &str,
    workload: &str,
    dir: &Path,
    p: &Params,
) -> Result<Figures, String> {
    let out = Command::new(exe)
        .args(["--child", store, workload, "--dir"])
        .arg(dir)
        .args([
            "--cells",
            &p.cells.to_string(),
            "--w2-mib",
            &p.w2_mib.to_string(),
        ])
        .output()
        .map_err(|e| format!("cannot start child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("PEERS-RESULT "));
    match (out.status.success(), line) {
        (true, Some(line)) => match serde_json::from_str(line) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(format!("unreadable child output: {line}")),
        },
        _ => Err(format!(
            "child {store}/{workload} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

fn num(f: &Figures, key: &str) -> Option<f64> {
    f.get(key).and_then(Value::as_f64)
}

/// Groups a number with thousands separators (`1234567` → `1,234,567`).
fn grouped(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

/// Keeps one core busy until the parent process goes away (a `--busy` spinner).
fn spin() {
    let parent = std::os::unix::process::parent_id();
    let mut x = 1u64;
    loop {
        let until = Instant::now() + std::time::Duration::from_millis(200);
        while Instant::now() < until {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}

/// The `--busy` spinners; killed when dropped (also when the parent panics).
struct Spinners(Vec<std::process::Child>);

impl Spinners {
    fn start(exe: &Path, n: usize) -> Spinners {
        Spinners(
            (0..n)
                .map(|_| {
                    Command::new(exe)
                        .arg("--spin")
                        .spawn()
                        .expect("start a --busy spinner")
                })
                .collect(),
        )
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() {
    let args = parse_args();
    if args.spin {
        spin();
        return;
    }
    if let Some((store, workload)) = &args.child {
        let dir = args.dir.as_deref().expect("--dir for a child");
        std::fs::create_dir_all(dir.join(store).join(workload)).expect("create store directory");
        child(store, workload, dir, &args.params);
        return;
    }
    let exe = std::env::current_exe().expect("path of this benchmark binary");
    let temp;
    let dir: PathBuf = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).expect("create --dir");
            tempfile::tempdir_in(d)
                .expect("run directory in --dir")
                .keep()
        }
        None => {
            temp = tempfile::tempdir().expect("temporary directory");
            temp.path().to_path_buf()
        }
    };
    let fs = fs_type(&dir);
    if fs == "tmpfs" || fs == "ramfs" {
        eprintln!(
            "WARNING: {} is on {fs}: syncs cost nothing there; use --dir on a disk",
            dir.display()
        );
    }
    // W3 reads the store W1 wrote: run W1 for it when it was not asked for.
    let mut workloads: Vec<String> = WORKLOADS
        .iter()
        .filter(|w| args.workloads.iter().any(|a| a == *w))
        .map(|w| w.to_string())
        .collect();
    if workloads.iter().any(|w| w == "w3") && !workloads.iter().any(|w| w == "w1") {
        workloads.insert(0, "w1".into());
    }
    // W4 walks the store W2 wrote.
    if workloads.iter().any(|w| w == "w4") && !workloads.iter().any(|w| w == "w2") {
        let at = workloads.iter().position(|w| w == "w4").unwrap_or(0);
        workloads.insert(at, "w2".into());
    }
    eprintln!(
        "peers: stores {:?}, workloads {:?}, {} W1 cells, W2 {} MiB, in {} ({fs})",
        args.stores,
        workloads,
        args.params.cells,
        args.params.w2_mib,
        dir.display()
    );
    let spinners = Spinners::start(&exe, args.busy);
    if args.busy > 0 {
        eprintln!("  {} spinning process(es) keep cores busy", args.busy);
    }
    // Rounds are interleaved (every store and workload once per round) so that a slow spell of
    // the machine spreads over all stores instead of hitting one.
    let mut runs: Vec<(usize, String, String, Result<Figures, String>)> = Vec::new();
    for round in 0..args.repeat {
        for w in &workloads {
            for s in &args.stores {
                eprint!("  round {} {w:<9} {s:<12} ", round + 1);
                if w != "w3" && w != "w4" {
                    let _ = std::fs::remove_dir_all(dir.join(s).join(w));
                }
                let t = Instant::now();
                let r = run_child(&exe, s, w, &dir, &args.params);
                match &r {
                    Ok(_) => eprintln!("done in {:.1} s", t.elapsed().as_secs_f64()),
                    Err(e) => eprintln!("FAILED: {e}"),
                }
                let keep_for_w4 = w == "w2" && workloads.iter().any(|x| x == "w4");
                if w != "w1" && w != "w3" && !keep_for_w4 && !args.keep {
                    let _ = std::fs::remove_dir_all(dir.join(s).join(w));
                }
                runs.push((round, w.clone(), s.clone(), r));
            }
        }
    }
    drop(spinners);
    let results = medians(&workloads, &args.stores, &runs);
    if !args.keep {
        for s in &args.stores {
            let _ = std::fs::remove_dir_all(dir.join(s));
        }
    }
    let m = machine();
    println!(
        "\nMachine: {}, {} cores, {:.1} GiB RAM, kernel {}; --dir on {fs}. {} W1 cells, W2 {} MiB.{}",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["mem_gib"].as_f64().unwrap_or(0.0),
        m["kernel"].as_str().unwrap_or("?"),
        args.params.cells,
        args.params.w2_mib,
        if args.busy > 0 {
            format!(" {} other process(es) kept cores busy throughout (--busy).", args.busy)
        } else {
            String::new()
        }
    );
    print_tables(&args, &workloads, &results);
    let json_path = args.json.clone().unwrap_or_else(|| dir.join("peers.json"));
    let mut out = Map::new();
    out.insert("machine".into(), m);
    out.insert("dir".into(), json!(dir.display().to_string()));
    out.insert("fs".into(), json!(fs));
    out.insert("cells".into(), json!(args.params.cells));
    out.insert("w2_mib".into(), json!(args.params.w2_mib));
    out.insert(
        "args".into(),
        json!(std::env::args().skip(1).collect::<Vec<_>>()),
    );
    out.insert("repeat".into(), json!(args.repeat));
    out.insert("busy".into(), json!(args.busy));
    let mut all = Vec::new();
    for (round, w, s, r) in &runs {
        all.push(match r {
            Ok(f) => json!({"round": round + 1, "workload": w, "store": s, "figures": f}),
            Err(e) => json!({"round": round + 1, "workload": w, "store": s, "error": e}),
        });
    }
    out.insert("runs".into(), json!(all));
    let mut med = Vec::new();
    for (w, s, r) in &results {
        if let Some((m, lo, hi)) = r {
            med.push(json!({"workload": w, "store": s, "median": m, "min": lo, "max": hi}));
        }
    }
    out.insert("medians".into(), json!(med));
    let text = serde_json::to_string_pretty(&Value::Object(out)).expect("JSON text");
    if args.json.is_none() && args.dir.is_none() {
        // The temporary run directory goes away: print the figures instead.
        println!("\nJSON:\n{text}");
    } else {
        std::fs::write(&json_path, text).expect("write the JSON file");
        println!("\nfigures written to {}", json_path.display());
    }
    if runs.iter().any(|(_, _, _, r)| r.is_err()) {
        eprintln!("some runs FAILED (see above)");
        std::process::exit(1);
    }
}

/// Median, minimum and maximum figures of one (workload, store) over its successful rounds.
type Summary = (Figures, Figures, Figures);

/// Per (workload, store): the median of every numeric figure over the successful rounds (other
/// figures from the first), with the minimum and maximum; `None` when every round failed.
fn medians(
    workloads: &[String],
    stores: &[String],
    runs: &[(usize, String, String, Result<Figures, String>)],
) -> Vec<(String, String, Option<Summary>)> {
    let mut out = Vec::new();
    for w in workloads {
        for s in stores {
            let ok: Vec<&Figures> = runs
                .iter()
                .filter(|(_, rw, rs, _)| rw == w && rs == s)
                .filter_map(|(_, _, _, r)| r.as_ref().ok())
                .collect();
            let Some(first) = ok.first() else {
                out.push((w.clone(), s.clone(), None));
                continue;
            };
            let (mut med, mut lo, mut hi) = ((*first).clone(), Figures::new(), Figures::new());
            for (k, v) in first.iter() {
                if v.is_f64() || v.is_u64() || v.is_i64() {
                    let mut xs: Vec<f64> = ok.iter().filter_map(|f| num(f, k)).collect();
                    xs.sort_by(f64::total_cmp);
                    if xs.is_empty() {
                        continue;
                    }
                    med.insert(k.clone(), json!(xs[xs.len() / 2]));
                    lo.insert(k.clone(), json!(xs[0]));
                    hi.insert(k.clone(), json!(xs[xs.len() - 1]));
                }
            }
            out.push((w.clone(), s.clone(), Some((med, lo, hi))));
        }
    }
    out
}

fn print_tables(args: &Args, workloads: &[String], results: &[(String, String, Option<Summary>)]) {
    let summary = |w: &str, s: &str| -> Option<&Summary> {
        results
            .iter()
            .find(|(rw, rs, _)| rw == w && rs == s)
            .and_then(|(_, _, r)| r.as_ref())
    };
    let get = |w: &str, s: &str| summary(w, s).map(|(m, _, _)| m);
    let reference = args.stores.first().cloned().unwrap_or_default();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let header = |first: &str| {
        println!("| {first} | {} |", args.stores.join(" | "));
        println!("|---|{}", "---|".repeat(args.stores.len()));
    };
    // Headline: one row per workload, one column per store, ratio to the first store.
    let of = if args.repeat > 1 {
        format!("median of {} interleaved runs; ", args.repeat)
    } else {
        String::new()
    };
    println!("\n### Headline ({of}ratio to {reference}: higher is faster)\n");
    header("workload");
    let rows: Vec<(&str, &str, String)> = vec![
        ("w1", "cells_per_s", "W1 cells/s".into()),
        ("w1nosync", "cells_per_s", "W1-nosync cells/s".into()),
        ("w2", "mb_per_s", "W2 MB/s".into()),
        ("w3", "reads_per_s_1", "W3 reads/s, 1 thread".into()),
        (
            "w3",
            "reads_per_s_n",
            format!("W3 reads/s, {threads} threads"),
        ),
        (
            "w4",
            "cells_per_s",
            "W4 walk of the W2 tree, cells/s".into(),
        ),
    ];
    for (w, key, label) in &rows {
        if !workloads.iter().any(|x| x == w) {
            continue;
        }
        let base = get(w, &reference).and_then(|f| num(f, key));
        let cells: Vec<String> = args
            .stores
            .iter()
            .map(|s| match get(w, s).and_then(|f| num(f, key)) {
                Some(v) => match base {
                    Some(b) if b > 0.0 => format!("{} ({:.2}×)", grouped(v), v / b),
                    _ => grouped(v),
                },
                None => "failed".into(),
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    if args.repeat > 1 {
        println!(
            "\n### Spread of the headline figures (min – max over {} runs)\n",
            args.repeat
        );
        header("workload");
        for (w, key, label) in &rows {
            if !workloads.iter().any(|x| x == w) {
                continue;
            }
            let cells: Vec<String> = args
                .stores
                .iter()
                .map(|s| match summary(w, s) {
                    Some((_, lo, hi)) => match (num(lo, key), num(hi, key)) {
                        (Some(a), Some(b)) => format!("{} – {}", grouped(a), grouped(b)),
                        _ => "–".into(),
                    },
                    None => "failed".into(),
                })
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
    }
    // Details.
    println!("\n### Details\n");
    header("workload: figure");
    type Show = fn(f64) -> String;
    let details: Vec<(&str, &str, &str, f64, Show)> = vec![
        ("w1", "wall_s", "W1: wall s", 1.0, |v| format!("{v:.2}")),
        ("w1", "mb_per_s", "W1: MB/s", 1.0, |v| format!("{v:.1}")),
        ("w1", "commit_ms_p50", "W1: commit ms p50", 1.0, |v| {
            format!("{v:.2}")
        }),
        ("w1", "commit_ms_p99", "W1: commit ms p99", 1.0, |v| {
            format!("{v:.2}")
        }),
        (
            "w1",
            "batch_ms_p50",
            "W1: 1,000 puts + commit ms p50",
            1.0,
            |v| format!("{v:.2}"),
        ),
        (
            "w1",
            "batch_ms_p99",
            "W1: 1,000 puts + commit ms p99",
            1.0,
            |v| format!("{v:.2}"),
        ),
        (
            "w1",
            "device_write_amp",
            "W1: device bytes written / logical",
            1.0,
            |v| format!("{v:.2}"),
        ),
        (
            "w1",
            "write_amp",
            "W1: /proc write_bytes / logical",
            1.0,
            |v| format!("{v:.2}"),
        ),
        ("w1", "disk_allocated_bytes", "W1: on disk MB", 1e-6, |v| {
            format!("{v:.1}")
        }),
        (
            "w1",
            "peak_rss_kib",
            "W1: peak RSS MiB",
            1.0 / 1024.0,
            |v| format!("{v:.0}"),
        ),
        ("w1nosync", "wall_s", "W1-nosync: wall s", 1.0, |v| {
            format!("{v:.2}")
        }),
        (
            "w1nosync",
            "final_sync_ms",
            "W1-nosync: final commit ms",
            1.0,
            |v| format!("{v:.1}"),
        ),
        (
            "w1nosync",
            "device_write_amp",
            "W1-nosync: device bytes written / logical",
            1.0,
            |v| format!("{v:.2}"),
        ),
        (
            "w1nosync",
            "write_amp",
            "W1-nosync: /proc write_bytes / logical",
            1.0,
            |v| format!("{v:.2}"),
        ),
        (
            "w1nosync",
            "disk_allocated_bytes",
            "W1-nosync: on disk MB",
            1e-6,
            |v| format!("{v:.1}"),
        ),
        (
            "w1nosync",
            "peak_rss_kib",
            "W1-nosync: peak RSS MiB",
            1.0 / 1024.0,
            |v| format!("{v:.0}"),
        ),
        ("w2", "wall_s", "W2: wall s", 1.0, |v| format!("{v:.2}")),
        ("w2", "cells_per_s", "W2: cells/s", 1.0, grouped),
        ("w2", "commit_ms", "W2: final commit ms", 1.0, |v| {
            format!("{v:.0}")
        }),
        (
            "w2",
            "device_write_amp",
            "W2: device bytes written / logical",
            1.0,
            |v| format!("{v:.2}"),
        ),
        (
            "w2",
            "write_amp",
            "W2: /proc write_bytes / logical",
            1.0,
            |v| format!("{v:.2}"),
        ),
        ("w2", "disk_allocated_bytes", "W2: on disk MB", 1e-6, |v| {
            format!("{v:.1}")
        }),
        (
            "w2",
            "peak_rss_kib",
            "W2: peak RSS MiB",
            1.0 / 1024.0,
            |v| format!("{v:.0}"),
        ),
        ("w3", "open_s", "W3: reopen s", 1.0, |v| format!("{v:.3}")),
        (
            "w3",
            "scan_reads_per_s",
            "W3: every key once, reads/s",
            1.0,
            grouped,
        ),
        (
            "w3",
            "peak_rss_kib",
            "W3: peak RSS MiB",
            1.0 / 1024.0,
            |v| format!("{v:.0}"),
        ),
    ];
    for (w, key, label, scale, show) in &details {
        if !workloads.iter().any(|x| x == w) {
            continue;
        }
        let cells: Vec<String> = args
            .stores
            .iter()
            .map(|s| match get(w, s).and_then(|f| num(f, key)) {
                Some(v) => show(v * scale),
                None => "–".into(),
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    let sources: Vec<String> = results
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().map(|(m, _, _)| m))
        .filter_map(|f| {
            f.get("write_amp_source")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    if sources.iter().all(|s| s == "proc_io_write_bytes") {
        println!("\nDevice bytes written: sectors written to the block device holding --dir during the child (exact, but system-wide: other processes' writes count too). /proc write_bytes: the child's `write_bytes` of /proc/self/io (pages dirtied, counted per dirtied page or folio when it becomes dirty).");
    } else {
        println!("\nDevice bytes written: sectors written to the block device holding --dir during the child (system-wide). The kernel does not report /proc/self/io write_bytes here: that row is on-disk size / logical bytes instead.");
    }
    println!("Peak RSS includes the workload's data generated before the timer (W1 ≈ 93 MiB of 97-byte strings per 1M cells; W2 the 1 GiB input and the 1 GiB tree).");
}
