//! The CAD047 file itself: a 44-byte header, a radix index of 8-byte slots (65,536 / 256 / 16
//! per block by level) and data records, appended in write order.
//!
//! All I/O goes through the store seam ([`crate::store::io`]). Reads go through a read-only
//! memory map of the durable part of the file (or `read_at` on a simulated disk). Writes follow
//! the reference's insertion algorithm exactly (§6), so the same writes in the same order produce
//! the same bytes as a Convex peer; they are staged in memory (appended bytes, changed slots and
//! labels, the root) and made durable by [`EtchFile::commit`] in the group-commit order of §14,
//! with its redo journal ([`super::journal`]):
//!
//! 1. the append region, then the journal of the in-place writes just past it, then the header
//!    length *L* (the end of the append region), then sync: every slot about to be published
//!    points below a durable *L*, and the journal that completes the commit is durable;
//! 2. the changed slots and labels and the root, in place, then sync; then the file is cut back
//!    to *L* (unsynced: a journal that survives a crash is merely applied again).
//!
//! A crash before step 1 completes leaves the old *L*: the new records are garbage beyond it and
//! the old index never points at them. A crash or power loss in step 2 may leave any subset of its
//! writes on disk; the next open finds the journal at *L* and applies it again, so the file holds
//! the whole commit. A commit whose write or sync fails leaves the file failed: nothing more is
//! written until it is reopened (no retry after `EIO`).

use super::journal::Journal;
use crate::store::io::{os_disk, Disk, OpenMode, StorageFile};
use memmap2::Mmap;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Magic bytes at offset 0.
pub const MAGIC: [u8; 2] = [0xe7, 0xc6];
/// The only format version.
pub const VERSION: u16 = 1;
/// Header size; the root index block starts here.
pub const ROOT_BLOCK_OFFSET: u64 = 44;
/// Logical length of a new file: header plus the 65,536-slot root block.
pub const DATA_START: u64 = 44 + 65_536 * 8;
/// Deepest index level (0-based).
pub const LEVEL_MAX: usize = 59;
/// Bytes before the encoding in a data record: key, flags, memory size, length.
pub const RECORD_HEADER_BYTES: u64 = 43;

/// Record status values (low nibble of the flags byte).
pub mod status {
    /// The record exists; cells it references may be missing.
    pub const STORED: u8 = 1;
    /// Tree validated.
    pub const VALIDATED: u8 = 2;
    /// Every branch beneath is present with status ≥ PERSISTED.
    pub const PERSISTED: u8 = 3;
    /// PERSISTED and already broadcast.
    pub const ANNOUNCED: u8 = 4;
}

/// Flag bit: the encoding is ≤ 140 bytes.
pub const FLAG_EMBEDDED: u8 = 0x10;
/// Flag bit: the encoding is > 140 bytes.
pub const FLAG_NON_EMBEDDED: u8 = 0x20;

const PTR_MASK: u64 = (1 << 62) - 1;
const TYPE_INDEX: u64 = 1 << 62;
const TYPE_START: u64 = 2 << 62;
const TYPE_CHAIN: u64 = 3 << 62;

/// The kind of a non-empty slot (top two bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotType {
    /// A data record.
    Plain,
    /// An index block of the next level.
    Index,
    /// The first record of a chain.
    Start,
    /// A later record of a chain.
    Chain,
}

fn slot_type(s: u64) -> SlotType {
    match s >> 62 {
        0 => SlotType::Plain,
        1 => SlotType::Index,
        2 => SlotType::Start,
        _ => SlotType::Chain,
    }
}

fn ptr(s: u64) -> u64 {
    s & PTR_MASK
}

/// Number of slots in an index block of this level.
pub fn level_slots(level: usize) -> usize {
    match level {
        0 => 65_536,
        1 => 256,
        _ => 16,
    }
}

/// The digit of `key` that selects a slot at `level` (§2).
pub fn digit(key: &[u8; 32], level: usize) -> usize {
    match level {
        0 => (usize::from(key[0]) << 8) | usize::from(key[1]),
        1 => usize::from(key[2]),
        k => {
            let b = key[(k + 4) / 2];
            usize::from(if k % 2 == 0 { b >> 4 } else { b & 0x0f })
        }
    }
}

/// Errors of the Etch file layer.
#[derive(Debug, thiserror::Error)]
pub enum EtchError {
    /// The operating system refused an operation.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not an Etch file of a version we read.
    #[error("{path}: not an Etch file: {detail}")]
    NotEtch {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The file breaks an integrity invariant (etch.md §8).
    #[error(
        "corrupt Etch file at offset {offset}: {detail} (etch.md §8, invariant {invariant}); \
         `etch verify` lists the damage and `etch recover` salvages what is intact"
    )]
    Corrupt {
        /// Where.
        offset: u64,
        /// The invariant of §8 that failed.
        invariant: u8,
        /// What was found.
        detail: String,
    },
    /// A write that the format cannot hold (e.g. a key collision past level 59).
    #[error("cannot write: {0}")]
    Unwritable(String),
    /// Another process (an Etch writer or a Convex peer) holds the file's lock.
    #[error(
        "{path}: the file is locked by another process (an etch writer or a Convex peer); a \
         CAD047 file is read only while no one writes it, so stop that process and retry (a \
         native store lets readers share it with a writer)"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The file was opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// An earlier commit's write or sync failed: what reached the disk is unknown, so nothing
    /// more is written until the file is reopened.
    #[error(
        "{path}: an earlier write or sync failed ({cause}); nothing more is written: reopen the \
         store (it opens at its last durable commit)"
    )]
    Failed {
        /// The file.
        path: PathBuf,
        /// The first failure.
        cause: String,
    },
}

/// Takes an open-file-description lock over the whole file: a write lock for writers, a read
/// lock for readers. OFD locks conflict with the classic POSIX `fcntl` locks a Java peer takes
/// (`FileChannel.tryLock`), so neither side can write while the other has the file open.
pub(crate) fn lock(file: &File, write: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain old data; zeroed is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if write { libc::F_WRLCK } else { libc::F_RDLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: the descriptor is open for the lifetime of `file`, and `fl` is a valid flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn corrupt(offset: u64, invariant: u8, detail: impl Into<String>) -> EtchError {
    EtchError::Corrupt {
        offset,
        invariant,
        detail: detail.into(),
    }
}

/// A data record as read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// File offset of the record.
    pub offset: u64,
    /// The key (Value ID of the encoding).
    pub key: [u8; 32],
    /// Flags byte: status in the low nibble, embedding/verified/bad bits above.
    pub flags: u8,
    /// Memory size (0 until PERSISTED).
    pub memory_size: u64,
    /// The cell's encoding.
    pub encoding: Cow<'a, [u8]>,
}

/// An open Etch file.
pub struct EtchFile {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    writable: bool,
    /// Set when a commit's write or sync failed: the cause.
    failed: Option<String>,
    map: Option<Mmap>,
    /// *L* as durable on disk.
    durable_len: u64,
    /// *L* including staged appends.
    len: u64,
    root: [u8; 32],
    root_dirty: bool,
    /// Staged bytes at [durable_len, len).
    appends: Vec<u8>,
    /// Staged slot values at offsets below durable_len.
    slots: BTreeMap<u64, u64>,
    /// Staged labels (flags, memory size) of records below durable_len.
    labels: BTreeMap<u64, (u8, u64)>,
}

impl EtchFile {
    /// Creates a new, empty Etch file (fails if it exists).
    pub fn create(path: impl AsRef<Path>) -> Result<EtchFile, EtchError> {
        EtchFile::create_on(&*os_disk(), path)
    }

    /// [`EtchFile::create`] on a given disk.
    pub fn create_on(disk: &dyn Disk, path: impl AsRef<Path>) -> Result<EtchFile, EtchError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| EtchError::Io {
            path: path.clone(),
            source,
        };
        let file = disk.open(&path, OpenMode::CreateNew).map_err(io)?;
        let mut header = [0u8; 44];
        header[0..2].copy_from_slice(&MAGIC);
        header[2..4].copy_from_slice(&VERSION.to_be_bytes());
        header[4..12].copy_from_slice(&DATA_START.to_be_bytes());
        file.set_len(DATA_START).map_err(io)?;
        file.write_at(&header, 0).map_err(io)?;
        file.sync().map_err(io)?;
        drop(file);
        EtchFile::open_on(disk, &path, true)
    }

    /// Opens an existing Etch file, read-only or for writing. A read-only open never changes the
    /// file; a writable one first completes a commit a crash interrupted (its redo journal).
    pub fn open(path: impl AsRef<Path>, writable: bool) -> Result<EtchFile, EtchError> {
        EtchFile::open_on(&*os_disk(), path, writable)
    }

    /// [`EtchFile::open`] on a given disk.
    pub fn open_on(
        disk: &dyn Disk,
        path: impl AsRef<Path>,
        writable: bool,
    ) -> Result<EtchFile, EtchError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| EtchError::Io {
            path: path.clone(),
            source,
        };
        let mode = if writable {
            OpenMode::Write
        } else {
            OpenMode::Read
        };
        let file = disk.open(&path, mode).map_err(io)?;
        let physical = file.len().map_err(io)?;
        let not_etch = |detail: String| EtchError::NotEtch {
            path: path.clone(),
            detail,
        };
        if physical < 44 {
            return Err(not_etch(format!(
                "file is {physical} bytes, shorter than the 44-byte header"
            )));
        }
        if let Some(f) = file.os_file() {
            lock(f, writable).map_err(|e| match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EACCES) => EtchError::Locked { path: path.clone() },
                _ => EtchError::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
        }
        let mut header = [0u8; 44];
        file.read_at(&mut header, 0).map_err(io)?;
        if header[0..2] != MAGIC {
            return Err(not_etch(format!(
                "bad magic number {}",
                hex::encode(&header[0..2])
            )));
        }
        let version = u16::from_be_bytes([header[2], header[3]]);
        if version != VERSION {
            return Err(not_etch(format!(
                "bad Etch version {version} (only 1 is known)"
            )));
        }
        let len = i64::from_be_bytes(header[4..12].try_into().unwrap_or_default());
        if len < DATA_START as i64 {
            return Err(corrupt(
                4,
                1,
                format!("data length {len} is below the minimum {DATA_START}"),
            ));
        }
        let stated = len as u64;
        // A header L past the file's end: a power loss kept the new L of a commit whose append
        // region it lost (no in-place write had started). Read to the file's end; the index
        // decides below whether anything is really missing.
        let len = stated.min(physical);
        let mut root = [0u8; 32];
        root.copy_from_slice(&header[12..44]);
        let journal = Journal::read(&*file, len, physical);
        let mut f = EtchFile {
            path,
            file,
            writable,
            failed: None,
            map: None,
            durable_len: len,
            len,
            root,
            root_dirty: false,
            appends: Vec::new(),
            slots: BTreeMap::new(),
            labels: BTreeMap::new(),
        };
        if let Some(j) = journal {
            if writable {
                f.apply_in_place(&j)?;
            } else {
                // Read as if applied; the file is not touched.
                f.root = j.root.unwrap_or(f.root);
                f.slots = j.slots;
                f.labels = j.labels;
            }
        }
        f.remap()?;
        if stated > physical {
            f.cut_length_to_index(stated)?;
        } else if writable {
            f.repair_stale_length(physical)?;
        }
        Ok(f)
    }

    /// The header's L (`stated`) lies past the file's end. If the index references nothing
    /// past the end, L becomes the end of the furthest object it references (written back by a
    /// writable open: only unreferenced bytes of a commit that never completed are given up);
    /// otherwise the file really is cut short and the open fails.
    fn cut_length_to_index(&mut self, stated: u64) -> Result<(), EtchError> {
        let physical = self.len;
        let furthest = self.furthest_end().map_err(|e| {
            corrupt(
                4,
                1,
                format!(
                    "data length {stated} is beyond the end of the file ({physical} bytes), and \
                     the index references what is not there: {e}"
                ),
            )
        })?;
        if furthest > physical {
            return Err(corrupt(
                4,
                1,
                format!(
                    "data length {stated} is beyond the end of the file ({physical} bytes), and \
                     the index references bytes up to {furthest}"
                ),
            ));
        }
        self.len = furthest;
        self.durable_len = furthest;
        if self.writable {
            let io = |source| EtchError::Io {
                path: self.path.clone(),
                source,
            };
            self.file.write_at(&furthest.to_be_bytes(), 4).map_err(io)?;
            self.file.sync().map_err(io)?;
            eprintln!(
                "etch: {}: the data length {stated} lay past the end of the file ({physical} \
                 bytes), left by a commit a power loss interrupted; set to {furthest}, the end \
                 of what the index references (nothing committed is lost)",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Writes a commit's in-place changes (slots, labels, root) and syncs: step 2 of a commit,
    /// and the replay of its journal.
    fn apply_in_place(&mut self, j: &Journal) -> Result<(), EtchError> {
        let io = |source| EtchError::Io {
            path: self.path.clone(),
            source,
        };
        for (off, v) in &j.slots {
            self.file.write_at(&v.to_be_bytes(), *off).map_err(io)?;
        }
        for (off, (flags, mem)) in &j.labels {
            let mut label = [0u8; 9];
            label[0] = *flags;
            label[1..].copy_from_slice(&mem.to_be_bytes());
            self.file.write_at(&label, off + 32).map_err(io)?;
        }
        if let Some(root) = &j.root {
            self.file.write_at(root, 12).map_err(io)?;
            self.root = *root;
        }
        self.file.sync().map_err(io)
    }

    /// Maps the file for reading (where it is an OS file).
    fn remap(&mut self) -> Result<(), EtchError> {
        self.map = None;
        if let Some(f) = self.file.os_file() {
            // SAFETY: the map is read-only and private to this process's view; Etch files are
            // append-only below *L* except for slot and label words, which this process only
            // writes through `pwrite` at commit time and re-maps afterwards. Another writer is
            // excluded by the store's lock (a concurrent external writer is outside the
            // supported use).
            let map = unsafe { Mmap::map(f) }.map_err(|source| EtchError::Io {
                path: self.path.clone(),
                source,
            })?;
            self.map = Some(map);
        }
        Ok(())
    }

    /// The stale-length repair of etch.md §10: a writer that crashed between appending and
    /// rewriting the header (the reference never syncs *L* until close) leaves slots pointing at
    /// or past *L*. Appending at that *L* would overwrite records the index still names, so a
    /// writer first walks the index and moves *L* to the end of the furthest object it
    /// references (only within the physical file; anything else is real corruption).
    fn repair_stale_length(&mut self, physical: u64) -> Result<(), EtchError> {
        let stated = self.len;
        self.len = physical;
        self.durable_len = physical;
        let furthest = self.furthest_end();
        self.len = stated;
        self.durable_len = stated;
        let furthest = furthest?;
        if furthest > stated {
            let io = |source| EtchError::Io {
                path: self.path.clone(),
                source,
            };
            self.file.write_at(&furthest.to_be_bytes(), 4).map_err(io)?;
            self.file.sync().map_err(io)?;
            self.len = furthest;
            self.durable_len = furthest;
        }
        Ok(())
    }

    /// The end of the furthest block or record referenced from the index.
    pub fn furthest_end(&self) -> Result<u64, EtchError> {
        let mut end = DATA_START;
        let mut stack = vec![(ROOT_BLOCK_OFFSET, 0usize)];
        while let Some((block, level)) = stack.pop() {
            if level > LEVEL_MAX {
                return Err(corrupt(block, 3, "index level exceeded"));
            }
            for d in 0..level_slots(level) {
                let s = self.slot(block, d)?;
                if s == 0 {
                    continue;
                }
                if slot_type(s) == SlotType::Index {
                    if level + 1 > LEVEL_MAX {
                        return Err(corrupt(
                            block + 8 * d as u64,
                            3,
                            "index block below level 59",
                        ));
                    }
                    end = end.max(ptr(s) + 8 * level_slots(level + 1) as u64);
                    stack.push((ptr(s), level + 1));
                } else {
                    let r = self.record_at(ptr(s))?;
                    end = end.max(ptr(s) + RECORD_HEADER_BYTES + r.encoding.len() as u64);
                }
            }
        }
        Ok(end)
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logical data length *L* (including staged writes).
    pub fn data_len(&self) -> u64 {
        self.len
    }

    /// The root hash in the header (32 zero bytes when never set).
    pub fn root(&self) -> [u8; 32] {
        self.root
    }

    /// True when staged writes await [`EtchFile::commit`].
    pub fn is_dirty(&self) -> bool {
        !self.appends.is_empty()
            || !self.slots.is_empty()
            || !self.labels.is_empty()
            || self.root_dirty
    }

    /// Bytes at `[off, off + n)` of the logical file.
    fn bytes(&self, off: u64, n: u64) -> Result<Cow<'_, [u8]>, EtchError> {
        let end = off
            .checked_add(n)
            .ok_or_else(|| corrupt(off, 2, "offset overflow"))?;
        if end > self.len {
            return Err(corrupt(
                off,
                2,
                format!(
                    "object of {n} bytes at {off} runs past the data length {}",
                    self.len
                ),
            ));
        }
        if off >= self.durable_len {
            let s = (off - self.durable_len) as usize;
            return Ok(Cow::Borrowed(&self.appends[s..s + n as usize]));
        }
        if end > self.durable_len {
            // Straddles the durable end and the staged appends (never happens for one object).
            let mut v = self.bytes(off, self.durable_len - off)?.into_owned();
            v.extend_from_slice(&self.bytes(self.durable_len, end - self.durable_len)?);
            return Ok(Cow::Owned(v));
        }
        match &self.map {
            Some(m) if end as usize <= m.len() => Ok(Cow::Borrowed(&m[off as usize..end as usize])),
            _ => {
                let mut v = vec![0u8; n as usize];
                self.file
                    .read_at(&mut v, off)
                    .map_err(|source| EtchError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
                Ok(Cow::Owned(v))
            }
        }
    }

    fn read_u64(&self, off: u64) -> Result<u64, EtchError> {
        if let Some(v) = self.slots.get(&off) {
            return Ok(*v);
        }
        let b = self.bytes(off, 8)?;
        Ok(u64::from_be_bytes(b[..8].try_into().unwrap_or_default()))
    }

    fn slot(&self, block: u64, d: usize) -> Result<u64, EtchError> {
        let s = self.read_u64(block + 8 * d as u64)?;
        if s != 0 {
            let p = ptr(s);
            if p < DATA_START || p >= self.len {
                return Err(corrupt(
                    block + 8 * d as u64,
                    2,
                    format!("slot points at {p}, outside [{DATA_START}, {})", self.len),
                ));
            }
        }
        Ok(s)
    }

    fn set_slot(&mut self, block: u64, d: usize, value: u64) {
        let off = block + 8 * d as u64;
        if off >= self.durable_len {
            let s = (off - self.durable_len) as usize;
            self.appends[s..s + 8].copy_from_slice(&value.to_be_bytes());
        } else {
            self.slots.insert(off, value);
        }
    }

    fn key_at(&self, rec: u64) -> Result<[u8; 32], EtchError> {
        let b = self.bytes(rec, 32)?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&b[..32]);
        Ok(k)
    }

    /// The record at `offset`.
    pub fn record_at(&self, offset: u64) -> Result<Record<'_>, EtchError> {
        let head = self.bytes(offset, RECORD_HEADER_BYTES)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&head[..32]);
        let (mut flags, mut memory_size) = (
            head[32],
            u64::from_be_bytes(head[33..41].try_into().unwrap_or_default()),
        );
        if let Some((f, m)) = self.labels.get(&offset) {
            flags = *f;
            memory_size = *m;
        }
        let n = i16::from_be_bytes([head[41], head[42]]);
        if n < 1 {
            return Err(corrupt(
                offset + 41,
                6,
                format!("record length {n} is not positive"),
            ));
        }
        let encoding = self.bytes(offset + RECORD_HEADER_BYTES, n as u64)?;
        Ok(Record {
            offset,
            key,
            flags,
            memory_size,
            encoding,
        })
    }

    /// Finds the record of `key` (§5).
    pub fn lookup(&self, key: &[u8; 32]) -> Result<Option<u64>, EtchError> {
        let mut block = ROOT_BLOCK_OFFSET;
        for level in 0..=LEVEL_MAX {
            let n = level_slots(level);
            let d = digit(key, level);
            let s = self.slot(block, d)?;
            if s == 0 {
                return Ok(None);
            }
            match slot_type(s) {
                SlotType::Index => {
                    block = ptr(s);
                    continue;
                }
                SlotType::Plain => return Ok((self.key_at(ptr(s))? == *key).then_some(ptr(s))),
                SlotType::Chain => return Ok(None),
                SlotType::Start => {
                    for i in 0..n {
                        let si = self.slot(block, (d + i) % n)?;
                        if self.key_at(ptr(si))? == *key {
                            return Ok(Some(ptr(si)));
                        }
                        if i + 1 < n
                            && slot_type(self.slot(block, (d + i + 1) % n)?) != SlotType::Chain
                        {
                            return Ok(None);
                        }
                    }
                    return Ok(None);
                }
            }
        }
        Err(corrupt(block, 3, "index level exceeded"))
    }

    /// The record of `key`, if present.
    pub fn get(&self, key: &[u8; 32]) -> Result<Option<Record<'_>>, EtchError> {
        match self.lookup(key)? {
            Some(off) => self.record_at(off).map(Some),
            None => Ok(None),
        }
    }

    fn append(&mut self, bytes: &[u8]) -> u64 {
        let at = self.len;
        self.appends.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        at
    }

    fn append_block(&mut self, level: usize, entry: Option<(usize, u64)>) -> u64 {
        let at = self.append(&vec![0u8; level_slots(level) * 8]);
        if let Some((d, v)) = entry {
            self.set_slot(at, d, v);
        }
        at
    }

    fn append_record(
        &mut self,
        key: &[u8; 32],
        encoding: &[u8],
        flags: u8,
        memory_size: u64,
    ) -> u64 {
        let flags = if flags & 0x0f < status::STORED {
            (flags & 0xf0) | status::STORED
        } else {
            flags
        };
        let mem = if flags & 0x0f >= status::PERSISTED {
            memory_size
        } else {
            0
        };
        let mut rec = Vec::with_capacity(RECORD_HEADER_BYTES as usize + encoding.len());
        rec.extend_from_slice(key);
        rec.push(flags);
        rec.extend_from_slice(&mem.to_be_bytes());
        rec.extend_from_slice(&(encoding.len() as u16).to_be_bytes());
        rec.extend_from_slice(encoding);
        self.append(&rec)
    }

    fn merge_label(&mut self, rec: u64, req: u8, memory_size: u64) -> Result<(), EtchError> {
        let r = self.record_at(rec)?;
        let (old, old_mem) = (r.flags, r.memory_size);
        let new = (old & 0x0f).max(req & 0x0f) | ((old | req) & 0xf0);
        if new == old {
            return Ok(());
        }
        let mem = if old_mem == 0 && new & 0x0f >= status::PERSISTED {
            memory_size
        } else {
            old_mem
        };
        if rec >= self.durable_len {
            let s = (rec - self.durable_len) as usize;
            self.appends[s + 32] = new;
            self.appends[s + 33..s + 41].copy_from_slice(&mem.to_be_bytes());
        } else {
            self.labels.insert(rec, (new, mem));
        }
        Ok(())
    }

    /// Writes a record for `key` with the reference's exact algorithm (§6), or merges the label
    /// of an existing one (§7). Staged until [`EtchFile::commit`].
    pub fn write(
        &mut self,
        key: &[u8; 32],
        encoding: &[u8],
        flags: u8,
        memory_size: u64,
    ) -> Result<(), EtchError> {
        if !self.writable {
            return Err(EtchError::ReadOnly);
        }
        self.check_failed()?;
        if encoding.is_empty() || encoding.len() > 16383 {
            return Err(EtchError::Unwritable(format!(
                "encoding of {} bytes",
                encoding.len()
            )));
        }
        let mut block = ROOT_BLOCK_OFFSET;
        let mut level = 0;
        loop {
            if level > LEVEL_MAX {
                return Err(EtchError::Unwritable(
                    "max level exceeded (key collision?)".into(),
                ));
            }
            let n = level_slots(level);
            let d = digit(key, level);
            let s = self.slot(block, d)?;
            if s == 0 {
                let p = self.append_record(key, encoding, flags, memory_size);
                self.set_slot(block, d, p);
                return Ok(());
            }
            match slot_type(s) {
                SlotType::Index => {
                    block = ptr(s);
                    level += 1;
                }
                SlotType::Plain => {
                    if self.key_at(ptr(s))? == *key {
                        return self.merge_label(ptr(s), flags, memory_size);
                    }
                    if self.slot(block, (d + 1) % n)? == 0 {
                        self.set_slot(block, d, TYPE_START | ptr(s));
                        let p = self.append_record(key, encoding, flags, memory_size);
                        self.set_slot(block, (d + 1) % n, TYPE_CHAIN | p);
                        return Ok(());
                    }
                    if level + 1 > LEVEL_MAX {
                        return Err(EtchError::Unwritable(
                            "overflowing key size (key collision?)".into(),
                        ));
                    }
                    let existing = self.key_at(ptr(s))?;
                    let nb =
                        self.append_block(level + 1, Some((digit(&existing, level + 1), ptr(s))));
                    self.set_slot(block, d, TYPE_INDEX | nb);
                    block = nb;
                    level += 1;
                }
                SlotType::Start => {
                    if self.key_at(ptr(s))? == *key {
                        return self.merge_label(ptr(s), flags, memory_size);
                    }
                    let mut i = 1;
                    while i < n {
                        let si = self.slot(block, (d + i) % n)?;
                        if si == 0 {
                            let p = self.append_record(key, encoding, flags, memory_size);
                            self.set_slot(block, (d + i) % n, TYPE_CHAIN | p);
                            return Ok(());
                        }
                        if slot_type(si) != SlotType::Chain {
                            break;
                        }
                        if self.key_at(ptr(si))? == *key {
                            return self.merge_label(ptr(si), flags, memory_size);
                        }
                        i += 1;
                    }
                    if level + 1 > LEVEL_MAX {
                        return Err(EtchError::Unwritable(
                            "overflowing key size (key collision?)".into(),
                        ));
                    }
                    // Collapse the full chain of length i into a new block.
                    let p = self.append_record(key, encoding, flags, memory_size);
                    let nb = self.append_block(level + 1, Some((digit(key, level + 1), p)));
                    for j in 0..i {
                        let sj = self.slot(block, (d + j) % n)?;
                        self.rewrite(nb, level + 1, ptr(sj))?;
                        if j != 0 {
                            self.set_slot(block, (d + j) % n, 0);
                        }
                    }
                    self.set_slot(block, d, TYPE_INDEX | nb);
                    return Ok(());
                }
                SlotType::Chain => {
                    self.evict(block, level, d)?;
                    let p = self.append_record(key, encoding, flags, memory_size);
                    self.set_slot(block, d, p);
                    return Ok(());
                }
            }
        }
    }

    /// Moves the chain that borrows slot `d` into a new block of the next level.
    fn evict(&mut self, block: u64, level: usize, d: usize) -> Result<(), EtchError> {
        let n = level_slots(level);
        let mut a = d;
        let mut steps = 0;
        loop {
            a = (a + n - 1) % n;
            steps += 1;
            if steps > n {
                return Err(corrupt(
                    block,
                    5,
                    "infinite chain: CHAIN slots with no START",
                ));
            }
            if slot_type(self.slot(block, a)?) == SlotType::Start {
                break;
            }
        }
        let mut e = d;
        loop {
            let s = self.slot(block, e)?;
            if s == 0 || slot_type(s) != SlotType::Chain {
                break;
            }
            e = (e + 1) % n;
            if e == d {
                break;
            }
        }
        let len = if e == a { n } else { (e + n - a) % n };
        if level + 1 > LEVEL_MAX {
            return Err(EtchError::Unwritable(
                "overflowing key size (key collision?)".into(),
            ));
        }
        let nb = self.append_block(level + 1, None);
        for j in 0..len {
            let sj = self.slot(block, (a + j) % n)?;
            self.rewrite(nb, level + 1, ptr(sj))?;
            if j != 0 {
                self.set_slot(block, (a + j) % n, 0);
            }
        }
        self.set_slot(block, a, TYPE_INDEX | nb);
        Ok(())
    }

    /// Places an existing record into a block without chaining.
    fn rewrite(&mut self, mut block: u64, mut level: usize, rec: u64) -> Result<(), EtchError> {
        let key = self.key_at(rec)?;
        loop {
            if level > LEVEL_MAX {
                return Err(EtchError::Unwritable(
                    "max level exceeded while rewriting".into(),
                ));
            }
            let d = digit(&key, level);
            let s = self.slot(block, d)?;
            if s == 0 {
                self.set_slot(block, d, rec);
                return Ok(());
            }
            match slot_type(s) {
                SlotType::Index => {
                    block = ptr(s);
                    level += 1;
                }
                SlotType::Plain => {
                    let nb = self.append_block(level + 1, None);
                    self.rewrite(nb, level + 1, ptr(s))?;
                    self.rewrite(nb, level + 1, rec)?;
                    self.set_slot(block, d, TYPE_INDEX | nb);
                    return Ok(());
                }
                _ => {
                    return Err(corrupt(
                        block + 8 * d as u64,
                        5,
                        "unexpected chain while rewriting existing data",
                    ))
                }
            }
        }
    }

    /// Stages a new root hash (written by the next commit).
    pub fn set_root(&mut self, root: [u8; 32]) -> Result<(), EtchError> {
        if !self.writable {
            return Err(EtchError::ReadOnly);
        }
        self.check_failed()?;
        self.root = root;
        self.root_dirty = true;
        Ok(())
    }

    /// Makes every staged write durable in the order described in the module docs. After a
    /// failure the file is failed: this and every later write returns [`EtchError::Failed`].
    pub fn commit(&mut self) -> Result<(), EtchError> {
        self.check_failed()?;
        if !self.is_dirty() {
            return Ok(());
        }
        if !self.writable {
            // Only a journal read over a read-only open: nothing of ours to write.
            return if self.appends.is_empty() && !self.root_dirty {
                Ok(())
            } else {
                Err(EtchError::ReadOnly)
            };
        }
        let result = self.commit_steps();
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn check_failed(&self) -> Result<(), EtchError> {
        match &self.failed {
            Some(cause) => Err(EtchError::Failed {
                path: self.path.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn commit_steps(&mut self) -> Result<(), EtchError> {
        let io = |source| EtchError::Io {
            path: self.path.clone(),
            source,
        };
        let journal = Journal {
            data_len: self.len,
            from: self.durable_len,
            region_crc: crc32c::crc32c(&self.appends),
            root: self.root_dirty.then_some(self.root),
            slots: self.slots.clone(),
            labels: self.labels.clone(),
        };
        // 1. Append region and journal in one write, the new L, sync. (The staged state stays
        // as it is until the commit succeeded, so a failed file still reads consistently.)
        let appended = self.appends.len();
        if !journal.is_empty() {
            self.appends.extend_from_slice(&journal.encode());
        }
        let written = self.file.write_at(&self.appends, self.durable_len);
        self.appends.truncate(appended);
        written.map_err(io)?;
        if self.len != self.durable_len {
            self.file.write_at(&self.len.to_be_bytes(), 4).map_err(io)?;
        }
        self.file.sync().map_err(io)?;
        // 2. The in-place writes, sync; then the journal is cut off again (not synced: should
        // the cut be lost, reopening repeats the same in-place writes, which changes nothing),
        // so the file ends at L as the reference's does.
        if !journal.is_empty() {
            self.apply_in_place(&journal)?;
            self.file
                .set_len(self.len)
                .map_err(|source| EtchError::Io {
                    path: self.path.clone(),
                    source,
                })?;
        }
        self.durable_len = self.len;
        self.appends.clear();
        self.slots.clear();
        self.labels.clear();
        self.root_dirty = false;
        self.remap()
    }

    /// The offsets of every record reachable from the index (in no particular order).
    pub fn record_offsets(&self) -> Result<Vec<u64>, EtchError> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT_BLOCK_OFFSET, 0usize)];
        while let Some((block, level)) = stack.pop() {
            if level > LEVEL_MAX {
                return Err(corrupt(block, 3, "index level exceeded"));
            }
            for d in (0..level_slots(level)).rev() {
                let s = self.slot(block, d)?;
                if s == 0 {
                    continue;
                }
                match slot_type(s) {
                    SlotType::Index => stack.push((ptr(s), level + 1)),
                    _ => out.push(ptr(s)),
                }
            }
        }
        Ok(out)
    }

    /// Number of index blocks, the root included.
    pub fn block_count(&self) -> Result<usize, EtchError> {
        let mut count = 0;
        let mut stack = vec![(ROOT_BLOCK_OFFSET, 0usize)];
        while let Some((block, level)) = stack.pop() {
            count += 1;
            if level > LEVEL_MAX {
                return Err(corrupt(block, 3, "index level exceeded"));
            }
            for d in 0..level_slots(level) {
                let s = self.slot(block, d)?;
                if s != 0 && slot_type(s) == SlotType::Index {
                    stack.push((ptr(s), level + 1));
                }
            }
        }
        Ok(count)
    }
}
