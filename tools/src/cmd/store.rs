//! `etch info`, `etch get`, `etch put`: a store from the command line.

use super::{iso_time, open_any, with_path, Access, FormatArg};
use etch_engine::lattice::stored_value;
use etch_engine::node::LocalNode;
use etch_engine::store::{AnyStore, Root};
use etch_formats::text::print;
use etch_formats::text::read::read_one;
use etch_formats::Cell;
use etch_formats::ValueId;
use std::io::BufRead;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::failed as fail;

/// Arguments of `etch info`.
#[derive(clap::Args)]
#[command(
    long_about = "Shows what a store holds: its format (native or cad047, detected) and \
version, the root Value ID, the number of cell records and the data length; for a native store \
also its commits and index runs. Opening a store to read never changes it.\n\n\
With --json, prints one JSON object with the keys format, version, root (hex or null), cells, \
length (logical data length) and file_size, plus commits and runs for a native store."
)]
pub struct InfoArgs {
    /// The store (either format).
    path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `etch info`.
pub fn info(args: InfoArgs) -> io::Result<ExitCode> {
    let any = match open_any(&args.path, Access::Read) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let store = any.cell_store();
    let stats = match store.stats() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let root = match store.root() {
        Ok(Root::Unset) => None,
        Ok(Root::Value(c)) => Some(c.id().to_hex()),
        Err(e) => return fail(format!("root: {e}")),
    };
    let native = match &any {
        AnyStore::Native(n) => Some((n.head(), n.runs())),
        AnyStore::Cad047(_) => None,
    };
    let mut out = io::stdout().lock();
    if args.json {
        let root_json = root
            .as_ref()
            .map(|r| format!("\"{r}\""))
            .unwrap_or_else(|| "null".into());
        let extra = match &native {
            Some((head, runs)) => format!(",\"commits\":{},\"runs\":{}", head.seq, runs.len()),
            None => String::new(),
        };
        writeln!(
            out,
            "{{\"format\":\"{}\",\"version\":1,\"root\":{root_json},\"cells\":{},\"length\":{},\"file_size\":{}{extra}}}",
            any.format().name(),
            stats.cells, stats.data_len, stats.file_len
        )?;
    } else {
        let format = match any.format() {
            etch_engine::store::StoreFormat::Native => "Etch native (docs/FORMAT.md), version 1",
            etch_engine::store::StoreFormat::Cad047 => "Etch CAD047 (Convex-compatible), version 1",
        };
        writeln!(out, "format:      {format}")?;
        writeln!(
            out,
            "root:        {}",
            root.as_deref().unwrap_or("(none set)")
        )?;
        writeln!(
            out,
            "cells:       {} records, {} bytes of encodings",
            stats.cells, stats.encoding_bytes
        )?;
        writeln!(
            out,
            "data length: {} bytes (files {} bytes)",
            stats.data_len, stats.file_len
        )?;
        if let Some((head, runs)) = &native {
            let last = if head.seq == 0 {
                String::new()
            } else {
                format!(", the last at {}", iso_time(head.time_ms))
            };
            writeln!(
                out,
                "commits:     {}{last} (etch snapshots lists them)",
                head.seq
            )?;
            let entries: usize = runs.iter().map(|r| r.1).sum();
            writeln!(
                out,
                "index:       {} runs holding {entries} entries; {} records since",
                runs.len(),
                stats.cells.saturating_sub(entries as u64)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `etch snapshots`.
#[derive(clap::Args)]
#[command(
    long_about = "Lists the commits of a native store, oldest first: sequence number, time \
(UTC), root Value ID, records and bytes of encodings at that commit. Every commit's root stays \
readable until compaction; `etch eval --store PATH --snapshot N` (or the shell's --snapshot) \
opens one read-only in constant time.\n\n\
With --json, prints one JSON object per line with the keys seq, time_ms, root (hex or null), \
cells and data_bytes."
)]
pub struct SnapshotsArgs {
    /// The store (a native store directory).
    path: PathBuf,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `etch snapshots`.
pub fn snapshots(args: SnapshotsArgs) -> io::Result<ExitCode> {
    let any = match open_any(&args.path, Access::Read) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let AnyStore::Native(store) = any else {
        return fail(format!(
            "{}: a CAD047 store keeps only its current root (no snapshots)",
            args.path.display()
        ));
    };
    let list = match store.snapshots() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let mut out = io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:>6}  {:<24}  {:<64}  {:>10}  {:>12}",
            "seq", "time (UTC)", "root", "cells", "bytes"
        )?;
    }
    for s in list {
        let c = s.commit;
        let root = c.root.map(hex::encode);
        if args.json {
            let r = root.map_or("null".to_string(), |r| format!("\"{r}\""));
            writeln!(
                out,
                "{{\"seq\":{},\"time_ms\":{},\"root\":{r},\"cells\":{},\"data_bytes\":{}}}",
                c.seq, c.time_ms, c.cells, c.data_bytes
            )?;
        } else {
            writeln!(
                out,
                "{:>6}  {:<24}  {:<64}  {:>10}  {:>12}",
                c.seq,
                iso_time(c.time_ms),
                root.as_deref().unwrap_or("(none)"),
                c.cells,
                c.data_bytes
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `etch get`.
#[derive(clap::Args)]
#[command(
    long_about = "Prints the value stored under a Value ID as Convex-Lisp text, loading \
its branch cells from the store. With --encoding, prints `<value-id-hex> <encoding-hex>` of that \
one cell instead."
)]
pub struct GetArgs {
    /// The store (either format).
    path: PathBuf,
    /// The Value ID (64 hex digits).
    id: String,
    /// Print the cell's encoding instead of the value.
    #[arg(long)]
    encoding: bool,
}

/// Runs `etch get`.
pub fn get(args: GetArgs) -> io::Result<ExitCode> {
    let Some(id) = ValueId::from_hex(&args.id) else {
        return super::usage(format!("'{}' is not a Value ID (64 hex digits)", args.id));
    };
    let store = match open_any(&args.path, Access::Read) {
        Ok(s) => s.cell_store(),
        Err(e) => return fail(e),
    };
    // An embedded value stored with (store v) or `etch put` lives only in the root's :data;
    // a root that cannot be read leaves the records themselves readable.
    let (root, root_error) = match store.root() {
        Ok(Root::Value(r)) => (r, None),
        Ok(Root::Unset) => (Cell::nil(), None),
        Err(e) => (Cell::nil(), Some(e)),
    };
    let cell = match stored_value(&root, &id, store.as_ref()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            let why = root_error.map_or(String::new(), |e| {
                format!(" (its root cannot be read, so its :data was not searched: {e})")
            });
            return fail(format!("no cell {id} in {}{why}", args.path.display()));
        }
        Err(e) => return fail(e),
    };
    let mut out = io::stdout().lock();
    if args.encoding {
        writeln!(out, "{} {}", cell.id(), hex::encode(cell.encoding()))?;
    } else {
        match print(&cell, store.as_ref()) {
            Ok(text) => writeln!(out, "{text}")?,
            Err(e) => return fail(e),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Values `etch put` stores per commit at most (`--batch`).
const PUT_BATCH_VALUES_DEFAULT: u64 = 100_000;
/// Bytes of input text after which `etch put` commits the values read so far.
const PUT_BATCH_TEXT_BYTES: usize = 64 << 20;
/// Longest `etch put` holds read values before it commits them.
const PUT_BATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Arguments of `etch put`.
#[derive(clap::Args)]
#[command(
    long_about = "Reads one value per line from stdin (Convex-Lisp text) and stores each \
with all its branch cells, printing its Value ID. The store is created if it does not exist.\n\n\
Each value is kept in the root's :data Index under its Value ID, as the shell's (store v) does, \
so it stays reachable: compaction keeps it, and `etch get` finds it even when it is small \
enough to be embedded (such a value has no record of its own). Values are committed in batches: \
whenever no more input is waiting (so a value typed or sent alone is committed at once), after \
1 s, every --batch values (100,000) or 64 MiB of text, and at the end of input. An ID is printed \
only once its batch is durable, so every ID printed survives a crash or kill.\n\n\
A line that cannot be read prints `error: <kind>: <detail>` in its place; the command goes on \
and exits 1. If a commit fails, the values of that batch are reported as not stored and the \
command stops with exit status 1.\n\n\
With --no-root, each value is written as a record only (what a Convex peer's store does): \
nothing in the root refers to it, so `etch compact` drops it once it is older than its grace \
period, and an embedded value cannot be read back by `etch get`."
)]
pub struct PutArgs {
    /// The store (created if missing).
    path: PathBuf,
    /// Format of a store created here.
    #[arg(long, value_enum, default_value_t)]
    format: FormatArg,
    /// Write records only; do not keep the values in the root's :data (see above).
    #[arg(long)]
    no_root: bool,
    /// Commit at least every N values.
    #[arg(long, value_name = "N", default_value_t = PUT_BATCH_VALUES_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
}

/// True when stdin has bytes to read right now (a pipe or terminal with input waiting, or a
/// file); false when reading would wait.
fn stdin_ready() -> bool {
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n != 0
}

/// What `etch put` prints for one input line once its batch is settled.
enum PutLine {
    Stored(ValueId),
    Failed(String, String),
}

/// Runs `etch put`.
pub fn put(args: PutArgs) -> io::Result<ExitCode> {
    let store = match open_any(&args.path, Access::Create(args.format)) {
        Ok(s) => s.cell_store(),
        Err(e) => return fail(e),
    };
    let node = if args.no_root {
        // Bare records still go on top of the store's root: refuse one that cannot be read.
        if let Err(e) = store.root() {
            return fail(format!(
                "{}: root: {e}; nothing written (etch verify, etch recover)",
                args.path.display()
            ));
        }
        None
    } else {
        match LocalNode::open(store.clone(), None) {
            Ok(n) => Some(n),
            Err(e) => return fail(with_path(&args.path, &e)),
        }
    };
    // Stores one batch durably; `Err` means none of it may be counted on.
    let commit = |values: &[Cell]| -> Result<(), String> {
        match &node {
            Some(n) => n
                .store_values(values)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => {
                for v in values {
                    store.put(v).map_err(|e| e.to_string())?;
                }
                store.commit().map_err(|e| e.to_string())
            }
        }
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let (mut lines, mut values, mut text_bytes) = (Vec::new(), Vec::new(), 0usize);
    let mut failed = false;
    let settle = |lines: &mut Vec<PutLine>,
                  values: &mut Vec<Cell>,
                  out: &mut dyn Write|
     -> io::Result<Result<(), String>> {
        let result = if values.is_empty() {
            Ok(())
        } else {
            commit(values)
        };
        for line in lines.drain(..) {
            match (&line, &result) {
                (PutLine::Stored(id), Ok(())) => writeln!(out, "{id}")?,
                (PutLine::Stored(id), Err(e)) => writeln!(
                    out,
                    "error: store: {id} not stored: {}",
                    e.replace('\n', " ")
                )?,
                (PutLine::Failed(kind, detail), _) => writeln!(out, "error: {kind}: {detail}")?,
            }
        }
        values.clear();
        out.flush()?;
        Ok(result)
    };
    let mut input = io::BufReader::with_capacity(1 << 16, io::stdin());
    let mut started = std::time::Instant::now();
    let mut buf = String::new();
    loop {
        buf.clear();
        if input.read_line(&mut buf)? == 0 {
            break;
        }
        let line = buf.trim_end_matches('\n');
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        text_bytes += line.len();
        match read_one(line) {
            Ok(cell) if cell.is_nil() && !args.no_root => {
                failed = true;
                lines.push(PutLine::Failed(
                    "argument".into(),
                    "nil cannot be stored (it has no record; its ID is known)".into(),
                ));
            }
            Ok(cell) => {
                lines.push(PutLine::Stored(*cell.id()));
                values.push(cell);
            }
            Err(e) => {
                failed = true;
                lines.push(PutLine::Failed(
                    "syntax".into(),
                    e.to_string().replace('\n', " "),
                ));
            }
        }
        let waiting = !input.buffer().is_empty() || stdin_ready();
        if !values.is_empty()
            && (!waiting
                || values.len() as u64 >= args.batch
                || text_bytes >= PUT_BATCH_TEXT_BYTES
                || started.elapsed() >= PUT_BATCH_WAIT)
        {
            text_bytes = 0;
            started = std::time::Instant::now();
            if let Err(e) = settle(&mut lines, &mut values, &mut out)? {
                return fail(format!(
                    "{}: commit failed, stopped: {e}",
                    args.path.display()
                ));
            }
        }
    }
    if let Err(e) = settle(&mut lines, &mut values, &mut out)? {
        return fail(format!(
            "{}: commit failed, stopped: {e}",
            args.path.display()
        ));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
