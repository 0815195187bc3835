//! Moving files between the host file system and drives: one file (`put`, `cat`) or a whole
//! folder tree (`import`, `export`), in constant memory per file, hashing on every core.
//!
//! Import is a sync into the drive: a host file whose contents equal the drive's file keeps
//! the drive's node untouched (same update time, same hash), and a directory where nothing
//! changed keeps its node, so importing the same tree twice writes nothing new. Entries the
//! drive has and the host lacks are kept (import never deletes). Identical files and chunks
//! are stored once because cells are content-addressed.

use super::blob::{BlobReader, BlobWriter};
use super::crypt::{self, ContentKey, CryptError, DecryptReader};
use super::ops::name_kid;
use super::{find, is_valid_name, kw, update, write_time, DlfsError, DrivePath};
use crate::lattice::dlfs as node;
use crate::lattice::value_at_path;
use crate::store::{CellStore, StoreError};
use etch_formats::cell::{tag, Encoder};
use etch_formats::coll::{self, Change, MapKind};
use etch_formats::value::{elements, vector_get};
use etch_formats::{Cell, Kind, Ref, ResolveError, Resolver};
use rayon::prelude::*;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A host file or directory could not be read or written.
    #[error("{path}: {source}")]
    Host {
        /// The host path.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A drive operation failed.
    #[error(transparent)]
    Dlfs(#[from] DlfsError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Decryption failed (wrong key, altered contents) or a key is needed.
    #[error("{loc}: {source}")]
    Crypt {
        /// The drive location.
        loc: String,
        /// What went wrong.
        source: CryptError,
    },
    /// An encrypted file was read without a key.
    #[error("{0}: the file is encrypted; give the owner's key to read it")]
    NeedKey(String),
}

impl From<ResolveError> for TransferError {
    fn from(e: ResolveError) -> Self {
        TransferError::Dlfs(e.into())
    }
}

fn host_err(path: &Path) -> impl FnOnce(io::Error) -> TransferError + '_ {
    move |source| TransferError::Host {
        path: path.to_path_buf(),
        source,
    }
}

type Res<T> = Result<T, TransferError>;

/// How a file is stored: plain, or encrypted with a content key.
#[derive(Clone, Copy)]
pub struct PutOptions<'a> {
    /// Encrypt the contents with this key (docs/DLFS.md, "Private files").
    pub encrypt: Option<&'a ContentKey>,
}

/// The metadata that marks an encrypted file:
/// `{:encrypted "<algorithm>" :key-id 0x<8 bytes> :size <plaintext bytes>}`.
pub fn encryption_metadata(key: &ContentKey, plaintext_len: u64) -> Cell {
    Cell::map(vec![
        (kw("encrypted"), Cell::string(crypt::ALGORITHM)),
        (kw("key-id"), Cell::blob(&key.id())),
        (kw("size"), Cell::long(plaintext_len as i64)),
    ])
}

/// The metadata key that marks an encrypted file: `:encrypted`.
pub fn encryption_marker_key() -> Cell {
    kw("encrypted")
}

/// Is a file with this metadata encrypted (its metadata is a Map with `:encrypted`)?
pub fn is_encrypted(metadata: &Cell, r: &dyn Resolver) -> Result<bool, ResolveError> {
    Ok(metadata.kind() == Kind::Map && !value_at_path(metadata, &[kw("encrypted")], r)?.is_nil())
}

/// Counts bytes read through it.
struct Counting<'a, R> {
    inner: R,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

/// Stores what `reader` yields as file contents: returns the Blob to put in the file node,
/// the metadata (the encryption marker, or nil), and the plaintext length.
pub fn store_contents(
    store: &dyn CellStore,
    reader: &mut dyn Read,
    options: PutOptions<'_>,
) -> io::Result<(Cell, Cell, u64)> {
    let mut w = BlobWriter::new(store);
    match options.encrypt {
        None => {
            let n = w.read_from(reader)?;
            Ok((w.finish().map_err(io::Error::other)?, Cell::nil(), n))
        }
        Some(key) => {
            let prefix = crypt::random_prefix()?;
            let n = crypt::encrypt_stream(key, prefix, reader, &mut |b| {
                w.push(b).map_err(io::Error::other)
            })?;
            let blob = w.finish().map_err(io::Error::other)?;
            Ok((blob, encryption_metadata(key, n), n))
        }
    }
}

/// Stores one host file: small files in one piece, large ones streamed.
fn store_host_file(
    store: &dyn CellStore,
    path: &Path,
    options: PutOptions<'_>,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Res<(Cell, Cell, u64)> {
    let f = std::fs::File::open(path).map_err(host_err(path))?;
    let mut reader = Counting { inner: f, on_bytes };
    store_contents(store, &mut reader, options).map_err(host_err(path))
}

/// A reader of a file node's contents: decrypted when the metadata marks it encrypted (then
/// `key` is needed), the stored bytes otherwise. `loc` names the file in errors.
pub fn file_reader<'a>(
    file_node: &Cell,
    loc: &str,
    key: Option<&ContentKey>,
    r: &'a dyn Resolver,
) -> Res<Box<dyn Read + 'a>> {
    let data = vector_get(file_node, 1, r)?.unwrap_or_else(Cell::nil);
    if data.kind() != Kind::Blob {
        return Err(DlfsError::IsADirectory(loc.to_string()).into());
    }
    let meta = vector_get(file_node, 2, r)?.unwrap_or_else(Cell::nil);
    let plain = BlobReader::new(&data, r);
    if !is_encrypted(&meta, r)? {
        return Ok(Box::new(plain));
    }
    let Some(key) = key else {
        return Err(TransferError::NeedKey(loc.to_string()));
    };
    let reader = DecryptReader::new(key, plain, data.count()).map_err(|e| crypt_err(loc, e))?;
    Ok(Box::new(reader))
}

/// Turns an I/O error from a decrypting reader back into [`TransferError::Crypt`] when it is
/// one.
fn crypt_err(loc: &str, e: io::Error) -> TransferError {
    match e.get_ref().and_then(|i| i.downcast_ref::<CryptError>()) {
        Some(c) => TransferError::Crypt {
            loc: loc.to_string(),
            source: c.clone(),
        },
        None => TransferError::Host {
            path: PathBuf::from(loc),
            source: e,
        },
    }
}

/// Copies a file node's contents (decrypted if need be) to `out`; returns the bytes written.
pub fn copy_file_to(
    file_node: &Cell,
    loc: &str,
    key: Option<&ContentKey>,
    r: &dyn Resolver,
    out: &mut dyn Write,
    out_name: &Path,
) -> Res<u64> {
    let mut reader = file_reader(file_node, loc, key, r)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crypt_err(loc, e)),
        };
        out.write_all(&buf[..n]).map_err(host_err(out_name))?;
        total += n as u64;
    }
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

/// A host directory, read before anything is stored.
pub struct HostDir {
    entries: Vec<(String, HostNode)>,
}

enum HostNode {
    File { path: PathBuf, len: u64 },
    Dir(HostDir),
}

/// What a host scan found.
#[derive(Debug, Default, Clone)]
pub struct HostScan {
    /// Regular files.
    pub files: u64,
    /// Directories (the top one included).
    pub directories: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Entries left out by design, with why: symbolic links (not followed) and special files.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files and folders whose names a drive cannot hold as given, with the error that says
    /// why (not UTF-8, not a valid DLFS name, or the same first 32 bytes as another name in
    /// the folder: DLFS identifies names by those, lattice.md §7.4). An import copies the rest
    /// and must report these as failures.
    pub refused: Vec<(PathBuf, String)>,
}

/// Reads the tree under `dir` (names sorted, so the work order is deterministic).
pub fn scan_host(dir: &Path) -> Res<(HostDir, HostScan)> {
    let mut scan = HostScan::default();
    let tree = scan_dir(dir, &mut scan, 0)?;
    Ok((tree, scan))
}

fn scan_dir(dir: &Path, scan: &mut HostScan, depth: usize) -> Res<HostDir> {
    if depth > node::MAX_DEPTH {
        return Err(TransferError::Host {
            path: dir.to_path_buf(),
            source: io::Error::other("directories nested too deep for a drive"),
        });
    }
    scan.directories += 1;
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir).map_err(host_err(dir))? {
        let e = e.map_err(host_err(dir))?;
        let path = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            scan.refused
                .push((path, "name is not UTF-8 (DLFS names are text)".into()));
            continue;
        };
        if !is_valid_name(&name) {
            scan.refused.push((path, "not a valid DLFS name".into()));
            continue;
        }
        let ft = e.file_type().map_err(host_err(&path))?;
        if ft.is_dir() {
            let sub = scan_dir(&path, scan, depth + 1)?;
            entries.push((name, HostNode::Dir(sub)));
        } else if ft.is_file() {
            let len = e.metadata().map_err(host_err(&path))?.len();
            scan.files += 1;
            scan.bytes += len;
            entries.push((name, HostNode::File { path, len }));
        } else if ft.is_symlink() {
            scan.skipped
                .push((path, "symbolic link (not followed)".into()));
        } else {
            scan.skipped
                .push((path, "not a regular file or directory".into()));
        }
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // Names sharing their first 32 bytes are neighbours in byte order: the first is kept, the
    // others refused with the error a shell `put` of the same name gives.
    let mut kept: Vec<(String, HostNode)> = Vec::with_capacity(entries.len());
    for (name, node) in entries {
        match kept.last() {
            Some((prev, _)) if name_kid(prev) == name_kid(&name) => {
                let path = dir.join(&name);
                if let HostNode::Dir(sub) = &node {
                    uncount(sub, scan);
                    scan.directories -= 1;
                } else if let HostNode::File { len, .. } = &node {
                    scan.files -= 1;
                    scan.bytes -= len;
                }
                let why = DlfsError::NameCollision {
                    loc: path.display().to_string(),
                    existing: prev.clone(),
                };
                scan.refused.push((path, why.to_string()));
            }
            _ => kept.push((name, node)),
        }
    }
    Ok(HostDir { entries: kept })
}

/// Takes a refused folder's contents back out of the scan's counts.
fn uncount(d: &HostDir, scan: &mut HostScan) {
    for (_, n) in &d.entries {
        match n {
            HostNode::File { len, .. } => {
                scan.files -= 1;
                scan.bytes -= len;
            }
            HostNode::Dir(sub) => {
                scan.directories -= 1;
                uncount(sub, scan);
            }
        }
    }
}

fn collect_files<'a>(d: &'a HostDir, out: &mut Vec<(&'a Path, u64)>) {
    for (_, n) in &d.entries {
        match n {
            HostNode::File { path, len } => out.push((path, *len)),
            HostNode::Dir(sub) => collect_files(sub, out),
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Files read.
    pub files: u64,
    /// Bytes read from the host.
    pub bytes_read: u64,
    /// Files whose node in the drive was kept because the contents were the same.
    pub files_unchanged: u64,
    /// Entries not imported because the drive already holds a different name with the same
    /// first 32 bytes in that folder: (location in the drive, the error).
    pub refused: Vec<(String, String)>,
}

/// Imports the host tree `dir` (scanned with [`scan_host`]) into `drive` at `p` (the drive
/// root or a directory; created when absent, with its parent existing). Files are stored on
/// every core; `on_bytes` is called as bytes are read. Returns the new drive value (equal to
/// `drive` when nothing changed) and the report. The caller commits.
pub fn import_tree(
    store: &dyn CellStore,
    drive: &Cell,
    p: &DrivePath,
    dir: &HostDir,
    now: i64,
    options: PutOptions<'_>,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Res<(Cell, ImportReport)> {
    let r: &dyn Resolver = store;
    let drive = if drive.is_nil() {
        node::zero()
    } else {
        drive.clone()
    };
    let t = write_time(&drive, now, r)?;
    let existing = find(&drive, &p.path, r)?.unwrap_or_else(Cell::nil);
    if !existing.is_nil() && !node::is_directory(&existing, r)? {
        return Err(DlfsError::NotADirectory(p.text.clone()).into());
    }
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    // Each file's contents are stored at once and then held by ID only (a slot), so memory
    // grows by a few dozen bytes per file, not by the files' leaves.
    let stored: Vec<Res<(Ref, Cell, u64)>> = files
        .par_iter()
        .map(|(path, _)| {
            store_host_file(store, path, options, on_bytes)
                .map(|(blob, meta, n)| (detach(blob), meta, n))
        })
        .collect();
    let mut report = ImportReport::default();
    let mut stored = stored.into_iter();
    let new = import_dir(&existing, dir, &p.text, &mut stored, t, r, &mut report)?;
    if new == existing {
        return Ok((drive, report));
    }
    if p.path.is_empty() {
        return Ok((new, report));
    }
    let parent = &p.path[..p.path.len() - 1];
    match find(&drive, parent, r)? {
        Some(n) if node::is_directory(&n, r)? => {}
        _ => return Err(DlfsError::NoSuchDirectory(p.parent_text()).into()),
    }
    Ok((update(&drive, &p.path, new, t, r)?, report))
}

/// The directory node for `dir` given the drive's node there (`existing`: a directory, or
/// nil); `stored` yields the stored contents of the host files in [`collect_files`] order.
fn import_dir(
    existing: &Cell,
    dir: &HostDir,
    loc: &str,
    stored: &mut dyn Iterator<Item = Res<(Ref, Cell, u64)>>,
    t: i64,
    r: &dyn Resolver,
    report: &mut ImportReport,
) -> Res<Cell> {
    let entries = if existing.is_nil() {
        MapKind::Index.empty()
    } else {
        vector_get(existing, 0, r)?.unwrap_or_else(|| MapKind::Index.empty())
    };
    let mut changes = Vec::new();
    for (name, host) in &dir.entries {
        let (old, had) = match coll::index_get(&entries, &name_kid(name), r)? {
            Some((k, v)) => {
                let stored_name = etch_formats::value::blob_bytes(&k, r)?;
                if stored_name != name.as_bytes() {
                    let at = format!("{}/{name}", loc.trim_end_matches('/'));
                    let why = DlfsError::NameCollision {
                        loc: at.clone(),
                        existing: String::from_utf8_lossy(&stored_name).into_owned(),
                    };
                    report.refused.push((at, why.to_string()));
                    // Its contents were stored (unreferenced): step past them.
                    let mut files = Vec::new();
                    match host {
                        HostNode::File { path, len } => files.push((path.as_path(), *len)),
                        HostNode::Dir(sub) => collect_files(sub, &mut files),
                    }
                    for _ in &files {
                        stored.next().transpose()?;
                    }
                    continue;
                }
                (v.fetch(r)?, true)
            }
            None => (Cell::nil(), false),
        };
        let live = |n: &Cell| -> Result<bool, ResolveError> {
            Ok(!n.is_nil() && !node::is_tombstone(n, r)?)
        };
        let new = match host {
            HostNode::File { .. } => {
                let (blob, meta, n) = stored.next().unwrap_or_else(|| {
                    Err(DlfsError::Malformed("import: file list out of step".into()).into())
                })?;
                report.files += 1;
                report.bytes_read += n;
                let old_is_file = live(&old)? && node::is_file(&old, r)?;
                let old_data = vector_get(&old, 1, r)?.unwrap_or_else(Cell::nil);
                let old_meta = vector_get(&old, 2, r)?.unwrap_or_else(Cell::nil);
                if old_is_file
                    && meta.is_nil()
                    && *old_data.id() == blob.id()
                    && !is_encrypted(&old_meta, r)?
                {
                    report.files_unchanged += 1;
                    continue;
                }
                // A plain file keeps the metadata the user set (lattice.md §7.7), but not an
                // old encryption marker.
                let meta = if meta.is_nil() && old_is_file && !is_encrypted(&old_meta, r)? {
                    old_meta
                } else {
                    meta
                };
                file_node(blob, meta, t)
            }
            HostNode::Dir(sub) => {
                let base = if live(&old)? && node::is_directory(&old, r)? {
                    old.clone()
                } else {
                    Cell::nil()
                };
                let sub_loc = format!("{}/{name}", loc.trim_end_matches('/'));
                let n = import_dir(&base, sub, &sub_loc, stored, t, r, report)?;
                if n == old {
                    continue;
                }
                n
            }
        };
        changes.push(Change {
            key: Cell::string(name),
            kid: Some(name_kid(name)),
            had,
            value: Some(new),
        });
    }
    if changes.is_empty() && !existing.is_nil() {
        return Ok(existing.clone());
    }
    let entries = coll::apply_changes(MapKind::Index, &entries, changes, r)?;
    if existing.is_nil() {
        return Ok(node::directory(entries, t));
    }
    let mut items = elements(existing, r)?;
    items[0] = entries;
    items[3] = Cell::long(t);
    Ok(Cell::vector(items))
}

/// A stored cell held by reference only: a branch cell becomes an unresolved ref (the store
/// has it), an embedded one stays inline.
fn detach(c: Cell) -> Ref {
    if c.is_embedded() {
        Ref::Embedded(c)
    } else {
        Ref::unresolved(*c.id())
    }
}

/// The file node `[nil data meta t]` with its contents given as a slot: the same cell as
/// `Cell::vector` builds from the contents cell.
fn file_node(data: Ref, meta: Cell, t: i64) -> Cell {
    let mut e = Encoder::new(tag::VECTOR);
    e.vlq(4)
        .slot(Ref::nil())
        .slot(data)
        .child(meta)
        .child(Cell::long(t));
    e.finish()
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// What an export did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Files written.
    pub files: u64,
    /// Directories created (the top one included).
    pub directories: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The sizes of what [`export_tree`] would write: (files, stored bytes).
pub fn tree_size(node: &Cell, r: &dyn Resolver) -> Res<(u64, u64)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    collect_nodes(node, PathBuf::new(), r, &mut files, &mut dirs, 0)?;
    let bytes = files
        .iter()
        .map(|(_, n)| vector_get(n, 1, r).map(|d| d.map_or(0, |d| d.count())))
        .sum::<Result<u64, ResolveError>>()?;
    Ok((files.len() as u64, bytes))
}

type FileList = Vec<(PathBuf, Cell)>;

fn collect_nodes(
    n: &Cell,
    rel: PathBuf,
    r: &dyn Resolver,
    files: &mut FileList,
    dirs: &mut Vec<PathBuf>,
    depth: usize,
) -> Res<()> {
    if depth > node::MAX_DEPTH {
        return Err(DlfsError::Malformed("directory nesting too deep".into()).into());
    }
    dirs.push(rel.clone());
    let entries = vector_get(n, 0, r)?.unwrap_or_else(Cell::nil);
    for (name, child) in super::entries_live(&entries, r)? {
        if !is_valid_name(&name) {
            return Err(DlfsError::Malformed(format!("entry name {name:?}")).into());
        }
        if node::is_directory(&child, r)? {
            collect_nodes(&child, rel.join(&name), r, files, dirs, depth + 1)?;
        } else if node::is_file(&child, r)? {
            files.push((rel.join(&name), child));
        }
    }
    Ok(())
}

/// Writes the directory at `p` of `drive` to the host directory `out` (created; it must not
/// exist or be empty, so nothing on the host is ever overwritten). Files are written on every
/// core; encrypted files are decrypted with `key` (an error without it). Returns the report.
pub fn export_tree(
    drive: &Cell,
    p: &DrivePath,
    out: &Path,
    key: Option<&ContentKey>,
    r: &(dyn Resolver + Sync),
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Res<ExportReport> {
    let Some(top) = find(drive, &p.path, r)? else {
        return Err(DlfsError::NotFound(p.text.clone()).into());
    };
    if !node::is_directory(&top, r)? {
        return Err(DlfsError::NotADirectory(p.text.clone()).into());
    }
    if out.exists() {
        let mut it = std::fs::read_dir(out).map_err(host_err(out))?;
        if it.next().is_some() {
            return Err(TransferError::Host {
                path: out.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not empty (export never overwrites)",
                ),
            });
        }
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    collect_nodes(&top, PathBuf::new(), r, &mut files, &mut dirs, 0)?;
    for d in &dirs {
        let path = out.join(d);
        std::fs::create_dir_all(&path).map_err(host_err(&path))?;
    }
    let base = p.normalised();
    let written: Vec<Res<u64>> = files
        .par_iter()
        .map(|(rel, n)| {
            let path = out.join(rel);
            let loc = format!("{base}/{}", rel.display());
            let f = std::fs::File::create_new(&path).map_err(host_err(&path))?;
            let mut w = Counted {
                inner: io::BufWriter::with_capacity(1 << 20, f),
                on_bytes,
            };
            let n = copy_file_to(n, &loc, key, r, &mut w, &path)?;
            w.inner.flush().map_err(host_err(&path))?;
            Ok(n)
        })
        .collect();
    let mut report = ExportReport {
        files: 0,
        directories: dirs.len() as u64,
        bytes: 0,
    };
    for w in written {
        report.bytes += w?;
        report.files += 1;
    }
    Ok(report)
}

/// Counts bytes written through it.
struct Counted<'a, W> {
    inner: W,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
