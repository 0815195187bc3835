//! `etch compact PATH [--keep-snapshots N]`: copy what is reachable into a new store and swap
//! it in atomically (engine `store::swap`).

use super::copy::{post_order, Sink, Source};
use super::scan::{bar, disk_bytes, error_exit, EXIT_OK};
use etch_engine::store::swap::{remove_any, replace_with, tmp_path, SwapStep};
use etch_formats::{Cell, ValueId};
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `etch compact`.
#[derive(clap::Args)]
#[command(
    long_about = "Rewrites a store keeping only what is reachable from its root (and, for \
a native store, from its N newest earlier commits), parents next to their children, and \
replaces the original atomically. Cells reachable from no kept root are dropped: other \
applications that keep unrooted data in the store lose it.\n\n\
The copy is built at PATH.compact-tmp and synced; then a CAD047 file is renamed over PATH, and a \
native directory is renamed to PATH.compact-old, the copy renamed to PATH, and the old one \
deleted. Opening the store completes a swap a crash interrupted, so PATH always holds the \
original or the complete copy. The store is locked against writers throughout.\n\n\
A native copy keeps the kept commits as its commits 1, 2, … (new numbers and times). Prints the \
bytes before and after and what was reclaimed; --json prints one object with the keys path, \
format, bytes_before, bytes_after, reclaimed, cells, cell_bytes, dropped (records no kept root \
reaches), roots, seconds. Exit status 0, \
or 2 on an error (a store with missing cells cannot be compacted: see etch verify / recover)."
)]
pub struct CompactArgs {
    /// The store (either format).
    path: PathBuf,
    /// Native stores: also keep the roots of the N newest commits before the current one.
    #[arg(long, default_value_t = 0)]
    keep_snapshots: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Tests crash the process at a named step (`copied`, `aside`, `in`, `deleted`) with
/// `ETCH_COMPACT_CRASH_AT`: it sends itself SIGKILL.
fn crash_point(step: &str) {
    if std::env::var("ETCH_COMPACT_CRASH_AT").is_ok_and(|s| s == step) {
        // SAFETY: signalling this process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// Runs `etch compact`.
pub fn run(args: CompactArgs) -> io::Result<ExitCode> {
    match compact(&args) {
        Ok(()) => Ok(ExitCode::from(EXIT_OK)),
        Err(e) => error_exit(e),
    }
}

fn compact(args: &CompactArgs) -> Result<(), String> {
    let start = Instant::now();
    let path = &args.path;
    let src = Source::open(path, true)?;
    let format = src.format();
    let tmp = tmp_path(path);
    remove_any(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let before = disk_bytes(path);
    let records_before = src.record_count()?;
    // The roots to keep, oldest first; each becomes a commit of the copy.
    let mut roots: Vec<Option<ValueId>> = Vec::new();
    if args.keep_snapshots > 0 {
        let snaps = src.snapshot_roots()?;
        let older = &snaps[..snaps.len().saturating_sub(1)];
        let from = older.len().saturating_sub(args.keep_snapshots);
        roots.extend(older[from..].iter().map(|s| s.1));
    }
    roots.push(src.root());
    let mut sink = Sink::create(&tmp, format)?;
    let pb = bar(records_before, "copy", false);
    let (mut cells, mut bytes) = (0u64, 0u64);
    let mut seen: HashSet<ValueId> = HashSet::new();
    let nil = *Cell::nil().id();
    let result = (|| -> Result<(), String> {
        for root in &roots {
            // A CAD047 nil root has no record (etch.md §12).
            let stored = |r: &ValueId| *r != nil || matches!(src, Source::Native(_));
            if let Some(r) = root.filter(stored) {
                post_order(&src, &r, &mut seen, &mut |cell| {
                    sink.put(cell, true, src.flags(cell.id()))?;
                    cells += 1;
                    bytes += cell.len() as u64;
                    pb.inc(1);
                    Ok(())
                })?;
            }
            sink.commit_root(*root)?;
        }
        Ok(())
    })();
    pb.finish_and_clear();
    if let Err(e) = result {
        drop(sink);
        let _ = remove_any(&tmp);
        return Err(e);
    }
    sink.finish()?;
    // The copy must open with the same root before it replaces anything.
    {
        let check = Source::open(&tmp, false)?;
        if check.root() != src.root() {
            let _ = remove_any(&tmp);
            return Err(format!(
                "the copy's root {:?} differs from the original's {:?}; original kept",
                check.root().map(|r| r.to_hex()),
                src.root().map(|r| r.to_hex())
            ));
        }
    }
    crash_point("copied");
    replace_with(path, &mut |step| match step {
        SwapStep::OldAside => crash_point("aside"),
        SwapStep::NewIn => crash_point("in"),
        SwapStep::OldDeleted => crash_point("deleted"),
    })
    .map_err(|e| format!("{}: replacing the store: {e}", path.display()))?;
    drop(src);
    let after = disk_bytes(path);
    let secs = start.elapsed().as_secs_f64();
    let reclaimed = before.saturating_sub(after);
    let mut out = io::stdout().lock();
    let res = if args.json {
        let v = serde_json::json!({
            "path": path.display().to_string(),
            "format": format.name(),
            "bytes_before": before,
            "bytes_after": after,
            "reclaimed": reclaimed,
            "cells": cells,
            "cell_bytes": bytes,
            "dropped": records_before.saturating_sub(cells),
            "roots": roots.len(),
            "seconds": secs,
        });
        writeln!(out, "{v}")
    } else {
        writeln!(
            out,
            "{}: {} store compacted: {cells} cells ({bytes} bytes of encodings) reachable from {} root{}",
            path.display(),
            format.name(),
            roots.len(),
            if roots.len() == 1 { "" } else { "s" }
        )
        .and_then(|_| {
            writeln!(
                out,
                "before {before} bytes, after {after} bytes, reclaimed {reclaimed} bytes ({:.1}%) in {secs:.2} s ({:.0} MB/s read)",
                if before > 0 { reclaimed as f64 * 100.0 / before as f64 } else { 0.0 },
                before as f64 / secs / 1e6
            )
        })
        .and_then(|_| {
            let dropped = records_before.saturating_sub(cells);
            if dropped == 0 {
                return Ok(());
            }
            writeln!(
                out,
                "dropped {dropped} records that no kept root reaches (data stored without a root is gone)"
            )
        })
    };
    res.map_err(|e| e.to_string())
}
