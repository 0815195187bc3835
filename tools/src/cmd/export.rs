//! `etch export` and `etch import`: the snapshot file of docs/EXPORT.md.

use super::copy::{post_order, Overlay, Sink, Source};
use super::failed;
use super::scan::{bar, branch_children, EXIT_OK, EXIT_PROBLEMS};
use super::FormatArg;
use etch_engine::lattice::stored_value;
use etch_formats::cell::ENCODING_BYTES_MAX;
use etch_formats::{decode_cell, Cell, Resolver, ValueId};
use rayon::prelude::*;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// First bytes of an export file.
pub const MAGIC: &[u8; 8] = b"ETCHEXP1";
/// The format version.
pub const VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_BYTES: usize = 64;
/// Bytes of a cell's length and id.
pub const CELL_HEADER_BYTES: usize = 36;

/// Arguments of `etch export`.
#[derive(clap::Args)]
#[command(
    long_about = "Writes every cell reachable from a root into one streamable, checksummed \
file (docs/EXPORT.md): a 64-byte header naming the root, then each cell once as length, Value ID \
and encoding, children before parents in a fixed order (the root last), then an end marker, the \
counts and a CRC-32C of everything before it. Exporting the same root gives the same bytes every \
time, from either store format. `etch import` loads it into any store.\n\n\
The root is the store's root unless --root names another stored cell. -o - writes to stdout. \
The file is written beside OUTPUT under a temporary name, synced and then renamed, so OUTPUT is \
only ever absent or complete; an existing OUTPUT is refused unless --force.\n\n\
Exit status 0; 1 when the export failed (missing cells included: see etch verify); 2 on a usage \
mistake (a malformed --root, OUTPUT exists)."
)]
pub struct ExportArgs {
    /// The store (either format).
    path: PathBuf,
    /// Export this cell's tree (a Value ID, 64 hex digits) instead of the root's.
    #[arg(long)]
    root: Option<String>,
    /// The file to write (`-`: stdout).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Replace OUTPUT if it exists (only once the new file is complete).
    #[arg(long)]
    force: bool,
    /// Print the summary as one JSON object (keys file, root, cells, bytes, seconds).
    #[arg(long)]
    json: bool,
}

/// Arguments of `etch import`.
#[derive(clap::Args)]
#[command(
    long_about = "Loads an export file (docs/EXPORT.md) into a store, creating the store \
if there is none (--format), and keeps what it loaded reachable. A store with no root (or an \
empty #Index {}) takes the file's root as its root; when the store's root and the file's are \
both lattice roots (#Index), the file's is merged into the store's by the root lattice \
(lattice.md: :data values are united, drives and signed slots merge as replicas do), so nothing \
either held becomes unreachable; any other pair of differing roots is refused (exit 1, the \
store's root unchanged, the loaded cells kept for compaction's grace period). With \
--no-set-root the store's root stays as it is and the file's root value is kept in its :data \
(as (store v) does). The file is read \
twice: the first pass checks everything — header, every cell's length, Value ID (SHA3-256 of its \
encoding) and canonical encoding, that every cell's children come before it, the end marker, \
counts and checksum — and the second writes. A damaged or truncated file writes nothing: the \
command names the byte offset of the first problem and exits 1. Cells the store already holds \
are skipped. With FILE `-` the file is read from stdin, kept in a temporary file beside the store \
for the two passes, and removed afterwards.\n\n\
Exit status 0 imported; 1 when nothing was imported (a damaged file, no store at --store's \
folder, an I/O error); 2 on a usage mistake. --json \
prints one object with the keys file, store, root, cells, new_cells, bytes, seconds (or ok false \
and error, offset)."
)]
pub struct ImportArgs {
    /// The export file (`-`: stdin, e.g. from `etch export ... -o -` on another machine).
    file: PathBuf,
    /// The store to load it into.
    #[arg(long)]
    store: PathBuf,
    /// Format of a store created here.
    #[arg(long, value_enum, default_value_t)]
    format: FormatArg,
    /// Keep the store's root; keep the file's root value in its :data instead.
    #[arg(long)]
    no_set_root: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A writer that keeps a CRC-32C of what went through it.
struct CrcWriter<W: Write> {
    inner: W,
    crc: u32,
    bytes: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The 64-byte header for `root`.
pub fn header(root: Option<&ValueId>) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    if let Some(r) = root {
        h[12] = 1;
        h[16..48].copy_from_slice(&r.0);
    }
    let crc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Runs `etch export`.
pub fn export(args: ExportArgs) -> io::Result<ExitCode> {
    let start = Instant::now();
    let to_stdout = args.output.as_os_str() == "-";
    if !to_stdout && !args.force && std::fs::symlink_metadata(&args.output).is_ok() {
        return super::usage(format!(
            "{}: already exists; name a new file, or add --force to replace it",
            args.output.display()
        ));
    }
    let src = match Source::open(&args.path, false) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let root = match &args.root {
        Some(t) => match ValueId::from_hex(t.trim_start_matches("0x")) {
            Some(id) => id,
            None => return super::usage(format!("'{t}' is not a Value ID (64 hex digits)")),
        },
        None => match src.root() {
            Some(r) => r,
            None => {
                return failed(format!(
                    "{}: the store has no root (use --root)",
                    args.path.display()
                ))
            }
        },
    };
    let partial = partial_path(&args.output);
    let (sink, file): (Box<dyn Write>, Option<File>) = if to_stdout {
        (Box::new(io::stdout().lock()), None)
    } else {
        match File::create(&partial).and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((f, sync)) => (Box::new(f), Some(sync)),
            Err(e) => return failed(format!("{}: {e}", partial.display())),
        }
    };
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, sink),
        crc: 0,
        bytes: 0,
    };
    // At most every record (the tree is usually most of the store).
    let pb = bar(src.record_count().unwrap_or(0), "export", false);
    let (mut cells, mut enc_bytes) = (0u64, 0u64);
    let result = (|| -> Result<(), String> {
        w.write_all(&header(Some(&root)))
            .map_err(|e| e.to_string())?;
        let nil = *Cell::nil().id();
        let nil_without_record = root == nil && src.resolve(&root).ok().flatten().is_none();
        // A value small enough to embed has no record: it lives in the root's :data.
        let top = match src.resolve(&root) {
            Ok(Some(c)) => c,
            _ => src
                .root()
                .and_then(|r| src.resolve(&r).ok().flatten())
                .and_then(|r| stored_value(&r, &root, &src).ok().flatten())
                .unwrap_or_else(Cell::nil),
        };
        let overlay = Overlay::new(&top, &src);
        if !nil_without_record {
            let mut seen = HashSet::new();
            post_order(&overlay, &root, &mut seen, &mut |cell| {
                let enc = cell.encoding();
                w.write_all(&(enc.len() as u32).to_le_bytes())
                    .and_then(|_| w.write_all(&cell.id().0))
                    .and_then(|_| w.write_all(enc))
                    .map_err(|e| e.to_string())?;
                cells += 1;
                enc_bytes += enc.len() as u64;
                pb.inc(1);
                Ok(())
            })?;
        }
        w.write_all(&0u32.to_le_bytes())
            .map_err(|e| e.to_string())?;
        w.write_all(&cells.to_le_bytes())
            .map_err(|e| e.to_string())?;
        w.write_all(&enc_bytes.to_le_bytes())
            .map_err(|e| e.to_string())?;
        let crc = w.crc;
        w.inner
            .write_all(&crc.to_le_bytes())
            .map_err(|e| e.to_string())?;
        w.inner
            .write_all(&0u32.to_le_bytes())
            .map_err(|e| e.to_string())?;
        w.inner.flush().map_err(|e| e.to_string())?;
        match &file {
            Some(f) => publish(f, &partial, &args.output),
            None => Ok(()),
        }
    })();
    pb.finish_and_clear();
    drop(w);
    if let Err(e) = result {
        if !to_stdout {
            let _ = std::fs::remove_file(&partial);
        }
        return failed(e);
    }
    let secs = start.elapsed().as_secs_f64();
    let summary = if args.json {
        serde_json::json!({
            "file": args.output.display().to_string(),
            "root": root.to_hex(),
            "cells": cells,
            "bytes": enc_bytes,
            "seconds": secs,
        })
        .to_string()
    } else {
        format!(
            "exported {cells} cells ({enc_bytes} bytes of encodings) under root {root} to {} in {secs:.2} s",
            args.output.display()
        )
    };
    // The summary goes to stderr when the export itself goes to stdout.
    if to_stdout {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// Where an export to `output` is written until it is complete: a hidden name beside it.
fn partial_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!(".{name}.etch-partial"))
}

/// Makes the complete export at `partial` durable and gives it its name `output`, so a crash
/// leaves `output` absent (or as it was) or complete, never partly written.
fn publish(file: &File, partial: &Path, output: &Path) -> Result<(), String> {
    let at = |p: &Path, e: io::Error| format!("{}: {e}", p.display());
    file.sync_all().map_err(|e| at(partial, e))?;
    std::fs::rename(partial, output).map_err(|e| at(output, e))?;
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| at(dir, e))
}

/// Why an export file was refused: where and what.
#[derive(Debug)]
pub struct Damage {
    /// Byte offset in the file.
    pub offset: u64,
    /// What is wrong.
    pub detail: String,
}

/// What reading an export file gives: the root, counts.
pub struct ReadSummary {
    /// The header's root.
    pub root: Option<ValueId>,
    /// Cells in the file.
    pub cells: u64,
    /// Bytes of their encodings.
    pub bytes: u64,
}

enum ReadError {
    Io(String),
    Damaged(Damage),
}

/// A reader that counts bytes and keeps a CRC-32C.
struct CrcReader<R: Read> {
    inner: R,
    crc: u32,
    pos: u64,
}

impl<R: Read> CrcReader<R> {
    /// Reads exactly `buf.len()` bytes; a short file is damage at the current offset.
    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), ReadError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.crc = crc32c::crc32c_append(self.crc, buf);
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Damaged(Damage {
                offset: self.pos,
                detail: format!("the file ends inside {what} (truncated)"),
            })),
            Err(e) => Err(ReadError::Io(e.to_string())),
        }
    }
}

const BATCH_CELLS: usize = 4096;

/// Streams the cells of an export file in batches, each cell's hash and canonical encoding
/// checked (in parallel), and the framing, order, counts and checksum checked as it goes.
/// What `read_export` hands each batch of checked cells to: (offset, cell) pairs.
type OnBatch<'a> = &'a mut dyn FnMut(&[(u64, Cell)]) -> Result<(), String>;

fn read_export(
    path: &Path,
    on_batch: OnBatch<'_>,
    progress: &indicatif::ProgressBar,
) -> Result<ReadSummary, ReadError> {
    let f = File::open(path).map_err(|e| ReadError::Io(format!("{}: {e}", path.display())))?;
    let mut r = CrcReader {
        inner: BufReader::with_capacity(1 << 20, f),
        crc: 0,
        pos: 0,
    };
    let damaged = |offset: u64, detail: String| ReadError::Damaged(Damage { offset, detail });
    let mut h = [0u8; HEADER_BYTES];
    r.exact(&mut h, "the header")?;
    if &h[0..8] != MAGIC {
        return Err(damaged(0, "not an Etch export file (bad magic)".into()));
    }
    if crc32c::crc32c(&h[..60]).to_le_bytes() != h[60..64] {
        return Err(damaged(60, "header checksum mismatch".into()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(damaged(8, format!("version {version}, not {VERSION}")));
    }
    if h[12] > 1 || h[13..16] != [0, 0, 0] || h[48..60].iter().any(|&b| b != 0) {
        return Err(damaged(12, "unknown flags or reserved bytes set".into()));
    }
    let root = (h[12] == 1).then(|| ValueId(h[16..48].try_into().unwrap_or([0u8; 32])));
    let mut seen: HashSet<ValueId> = HashSet::new();
    let (mut cells, mut bytes) = (0u64, 0u64);
    let mut last: Option<ValueId> = None;
    let mut batch: Vec<(u64, [u8; 32], Vec<u8>)> = Vec::with_capacity(BATCH_CELLS);
    let mut finish_batch = |batch: &mut Vec<(u64, [u8; 32], Vec<u8>)>,
                            seen: &mut HashSet<ValueId>|
     -> Result<(), ReadError> {
        let decoded: Vec<Result<(u64, Cell), ReadError>> = batch
            .par_drain(..)
            .map(|(off, id, enc)| {
                let got = ValueId::of(&enc);
                if got.0 != id {
                    return Err(damaged(
                        off + 4,
                        format!("cell {} hashes to {got}: damaged", ValueId(id)),
                    ));
                }
                let cell = decode_cell(enc).map_err(|e| {
                    damaged(
                        off + CELL_HEADER_BYTES as u64 + e.offset as u64,
                        format!("cell {}: not a canonical encoding: {e}", ValueId(id)),
                    )
                })?;
                cell.set_known_id(ValueId(id));
                Ok((off, cell))
            })
            .collect();
        let mut ok = Vec::with_capacity(decoded.len());
        for d in decoded {
            let (off, cell) = d?;
            let mut kids = Vec::new();
            branch_children(&cell, &mut kids);
            if let Some(k) = kids.iter().find(|k| !seen.contains(k)) {
                return Err(damaged(
                    off,
                    format!(
                        "cell {} refers to {k}, which does not come before it",
                        cell.id()
                    ),
                ));
            }
            if !seen.insert(*cell.id()) {
                return Err(damaged(off, format!("cell {} appears twice", cell.id())));
            }
            ok.push((off, cell));
        }
        on_batch(&ok).map_err(ReadError::Io)
    };
    loop {
        let at = r.pos;
        let mut lb = [0u8; 4];
        r.exact(&mut lb, "a cell's length")?;
        let len = u32::from_le_bytes(lb) as usize;
        if len == 0 {
            break;
        }
        if len > ENCODING_BYTES_MAX {
            return Err(damaged(
                at,
                format!("cell length {len} is over {ENCODING_BYTES_MAX}"),
            ));
        }
        let mut id = [0u8; 32];
        r.exact(&mut id, "a cell's Value ID")?;
        let mut enc = vec![0u8; len];
        r.exact(&mut enc, "a cell's encoding")?;
        cells += 1;
        bytes += len as u64;
        last = Some(ValueId(id));
        batch.push((at, id, enc));
        progress.set_position(r.pos);
        if batch.len() >= BATCH_CELLS {
            finish_batch(&mut batch, &mut seen)?;
        }
    }
    finish_batch(&mut batch, &mut seen)?;
    let marker_end = r.pos;
    let mut t = [0u8; 16];
    r.exact(&mut t, "the trailer")?;
    let crc_expected = r.crc;
    let mut c = [0u8; 8];
    r.exact(&mut c, "the trailer")?;
    let n = u64::from_le_bytes(t[0..8].try_into().unwrap_or([0; 8]));
    let b = u64::from_le_bytes(t[8..16].try_into().unwrap_or([0; 8]));
    let crc = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    if crc != crc_expected || c[4..8] != [0, 0, 0, 0] {
        return Err(damaged(marker_end + 16, "file checksum mismatch".into()));
    }
    if n != cells || b != bytes {
        return Err(damaged(
            marker_end,
            format!("the trailer counts {n} cells of {b} bytes, the file holds {cells} of {bytes}"),
        ));
    }
    let mut extra = [0u8; 1];
    match r.inner.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => return Err(damaged(r.pos, "bytes follow the trailer".into())),
        Err(e) => return Err(ReadError::Io(e.to_string())),
    }
    let nil = *Cell::nil().id();
    match root {
        Some(rt) if cells == 0 && rt != nil => {
            return Err(damaged(
                16,
                format!("the header names root {rt} but the file holds no cell"),
            ));
        }
        Some(rt) if cells > 0 && last != Some(rt) => {
            return Err(damaged(
                16,
                format!("the header names root {rt} but the last cell is another"),
            ));
        }
        None if cells > 0 => {
            return Err(damaged(12, "cells without a root".into()));
        }
        _ => {}
    }
    Ok(ReadSummary { root, cells, bytes })
}

/// Runs `etch import`.
pub fn import(mut args: ImportArgs) -> io::Result<ExitCode> {
    let start = Instant::now();
    // The import reads its file twice (check, then write): stdin is kept in a temporary file
    // beside the store (same disk, removed on every exit path when `_spool` drops).
    let name = if args.file.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        args.file.display().to_string()
    };
    let _spool = if args.file.as_os_str() == "-" {
        let dir = match args.store.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let spooled = tempfile::Builder::new()
            .prefix(".etch-import-")
            .tempfile_in(&dir)
            .and_then(|mut t| {
                io::copy(&mut io::stdin().lock(), &mut t)?;
                t.as_file().sync_data()?;
                Ok(t)
            });
        match spooled {
            Ok(t) => {
                args.file = t.path().to_path_buf();
                Some(t)
            }
            Err(e) => return failed(format!("stdin (kept in {}): {e}", dir.display())),
        }
    } else {
        None
    };
    let size = match std::fs::metadata(&args.file) {
        Ok(m) if m.is_dir() => {
            return failed(format!(
                "{name}: a folder; etch import loads one export file (made by etch export -o \
                 FILE); `etch drive import {name} DRIVE/PATH` copies a folder into a drive"
            ))
        }
        Ok(m) => m.len(),
        Err(e) => return failed(format!("{}: {e}", name)),
    };
    let report_damage = |d: Damage| -> io::Result<ExitCode> {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"file": name.clone(), "ok": false,
                    "error": d.detail, "offset": d.offset})
            );
        } else {
            eprintln!(
                "etch: {}: damaged at byte offset {}: {}; nothing imported",
                name, d.offset, d.detail
            );
        }
        Ok(ExitCode::from(EXIT_PROBLEMS))
    };
    // Pass 1: check everything.
    let pb = bar(size, "check", true);
    let checked = read_export(&args.file, &mut |_| Ok(()), &pb);
    pb.finish_and_clear();
    let summary = match checked {
        Ok(s) => s,
        Err(ReadError::Io(e)) => return failed(e),
        Err(ReadError::Damaged(d)) => return report_damage(d),
    };
    // Pass 2: write.
    let mut sink = match Sink::open_or_create(&args.store, args.format.into()) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let mut new_cells = 0u64;
    let pb = bar(size, "import", true);
    let written = read_export(
        &args.file,
        &mut |batch| {
            for (_, cell) in batch {
                if sink.put(cell, true, None)? {
                    new_cells += 1;
                }
            }
            Ok(())
        },
        &pb,
    );
    pb.finish_and_clear();
    match written {
        Ok(_) => {}
        Err(ReadError::Io(e)) => return failed(e),
        Err(ReadError::Damaged(d)) => return report_damage(d),
    }
    if let Err(e) = sink.finish() {
        return failed(e);
    }
    // Make what was loaded reachable, without making anything the store held unreachable.
    let new_root = match keep_reachable(&args.store, summary.root, args.no_set_root) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let secs = start.elapsed().as_secs_f64();
    let root = summary.root.map(|r| r.to_hex());
    let store_root = new_root.map(|r| r.to_hex());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "file": name.clone(),
                "store": args.store.display().to_string(),
                "ok": true,
                "root": root,
                "store_root": store_root,
                "cells": summary.cells,
                "new_cells": new_cells,
                "bytes": summary.bytes,
                "seconds": secs,
            })
        );
    } else {
        println!(
            "imported {} cells ({} new, {} bytes of encodings) into {}; the file's root {}, the store's root now {} ({secs:.2} s)",
            summary.cells,
            new_cells,
            summary.bytes,
            args.store.display(),
            root.as_deref().unwrap_or("(none)"),
            store_root.as_deref().unwrap_or("(none)"),
        );
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// After an import: makes the file's root `imported` reachable in the store at `path` without
/// making anything reachable before unreachable (see `etch import --help`). Returns the store's
/// root afterwards.
fn keep_reachable(
    path: &Path,
    imported: Option<ValueId>,
    no_set_root: bool,
) -> Result<Option<ValueId>, String> {
    use etch_engine::node::LocalNode;
    use etch_engine::store::Root;
    let store = super::open_any(path, super::Access::Write)?.cell_store();
    let at = |e: &dyn std::fmt::Display| super::with_path(path, e);
    let current = match store.root().map_err(|e| at(&e))? {
        Root::Unset => None,
        Root::Value(c) => Some(c),
    };
    let Some(imported) = imported else {
        return Ok(current.map(|c| *c.id()));
    };
    let value = store
        .get(&imported)
        .map_err(|e| at(&e))?
        .or_else(|| (imported == *Cell::nil().id()).then(Cell::nil))
        .ok_or_else(|| at(&format!("the imported root {imported} is not in the store")))?;
    let is_lattice = |c: &Cell| c.kind() == etch_formats::Kind::Index;
    let empty = |c: &Option<Cell>| c.as_ref().is_none_or(|c| is_lattice(c) && c.count() == 0);
    let refuse = |cur: &Cell, what: &str| -> String {
        at(&format!(
            "the store's root {} and the file's root {imported} differ and {what}: {} (the \
             store's root is unchanged; the imported cells are kept for compaction's grace \
             period). Import into a new store, or with --no-set-root into a store whose root is \
             a lattice root",
            cur.id(),
            if no_set_root {
                "the file's root cannot be kept in the store's :data"
            } else {
                "cannot be merged"
            }
        ))
    };
    if current.as_ref().is_some_and(|c| *c.id() == imported) {
        return Ok(Some(imported));
    }
    if no_set_root {
        if value.is_nil() {
            return Ok(current.map(|c| *c.id()));
        }
        return match &current {
            Some(c) if !is_lattice(c) => Err(refuse(c, "the store's root is not a lattice root")),
            _ => {
                let node = LocalNode::open(store.clone(), None).map_err(|e| at(&e))?;
                let root = node.store_values(&[value]).map_err(|e| at(&e))?;
                Ok(Some(*root.id()))
            }
        };
    }
    if empty(&current) {
        store.set_root(&value).map_err(|e| at(&e))?;
        return Ok(Some(imported));
    }
    match &current {
        Some(c) if is_lattice(c) && is_lattice(&value) => {
            let node = LocalNode::open(store.clone(), None).map_err(|e| at(&e))?;
            let root = node.merge(&[], &value).map_err(|e| at(&e))?;
            Ok(Some(*root.id()))
        }
        Some(c) => Err(refuse(c, "they are not both lattice roots (#Index)")),
        None => Ok(None),
    }
}
