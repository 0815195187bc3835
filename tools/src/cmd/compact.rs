//! `etch compact PATH [--keep-snapshots N]`: copy what is reachable into a new store and swap
//! it in atomically (engine `store::swap`).

use super::copy::{post_order, Sink, Source};
use super::scan::{bar, disk_bytes, EXIT_OK};
use etch_engine::store::swap::{remove_any, replace_with, tmp_path, SwapStep};
use etch_engine::store::StoreFormat;
use etch_formats::{Cell, ValueId};
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `etch compact`.
#[derive(clap::Args)]
#[command(
    long_about = "Rewrites a store keeping what is reachable from its root (and, for a native \
store, from its N newest earlier commits), parents next to their children, and replaces the \
original atomically.\n\n\
Records no kept root reaches are dropped only once they are older than the grace period \
(--grace-days, 14 by default, like git's prune): a value stored a moment ago by a tool that \
has not yet linked it to a root is never lost. Native stores know when each record was \
committed; a CAD047 file keeps no times, so its unreachable records are kept unless \
--prune-now is given. Values stored with `etch put`, `etch import` or the shell's (store v) \
are in the root's :data and always kept. Before anything is replaced, the command states how \
many records it drops; --dry-run prints the Value ID of each record that would be dropped and \
the counts, and changes nothing.\n\n\
The copy is built at PATH.compact-tmp and synced; then a CAD047 file is renamed over PATH, and a \
native directory is renamed to PATH.compact-old, the copy renamed to PATH, and the old one \
deleted. Opening the store completes a swap a crash interrupted, so PATH always holds the \
original or the complete copy. The store is locked against writers throughout.\n\n\
A native copy keeps the kept commits as its commits 1, 2, … (new numbers and times). Prints the \
bytes before and after and what was reclaimed; --json prints one object with the keys path, \
format, bytes_before, bytes_after, reclaimed, cells, cell_bytes, dropped (records dropped), \
kept_young (unreachable records kept for the grace period), roots, seconds, dry_run. Exit \
status 0, or 2 on an error (a store with missing cells cannot be compacted: see etch verify / \
recover)."
)]
pub struct CompactArgs {
    /// The store (either format).
    path: PathBuf,
    /// Native stores: also keep the roots of the N newest commits before the current one.
    #[arg(long, default_value_t = 0)]
    keep_snapshots: usize,
    /// Unreachable records younger than this many days are kept.
    #[arg(long, value_name = "DAYS", default_value_t = 14.0)]
    grace_days: f64,
    /// Drop every unreachable record now, whatever its age (grace period 0; CAD047 too).
    #[arg(long, conflicts_with = "grace_days")]
    prune_now: bool,
    /// Print what would be dropped and change nothing.
    #[arg(long)]
    dry_run: bool,
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
        Err(e) => super::failed(e),
    }
}

/// What the walk of a store found to keep and to drop.
struct Plan {
    /// Cells copied (reachable, or beneath a young unreachable record).
    cells: u64,
    /// Their encoding bytes.
    bytes: u64,
    /// Unreachable records kept for the grace period.
    kept_young: u64,
    /// Records dropped.
    dropped: Vec<ValueId>,
}

/// Walks the kept roots, then the unreachable records young enough to keep, calling `emit`
/// for each cell to copy (children first) and `root_done` after each root.
fn walk_plan(
    src: &Source,
    roots: &[Option<ValueId>],
    args: &CompactArgs,
    emit: &mut dyn FnMut(&Cell) -> Result<(), String>,
    root_done: &mut dyn FnMut(Option<ValueId>) -> Result<(), String>,
) -> Result<Plan, String> {
    let mut plan = Plan {
        cells: 0,
        bytes: 0,
        kept_young: 0,
        dropped: Vec::new(),
    };
    let mut seen: HashSet<ValueId> = HashSet::new();
    let nil = *Cell::nil().id();
    let mut count = |cell: &Cell, plan: &mut Plan| -> Result<(), String> {
        plan.cells += 1;
        plan.bytes += cell.len() as u64;
        emit(cell)
    };
    for (i, root) in roots.iter().enumerate() {
        // A CAD047 nil root has no record (etch.md §12).
        let stored = |r: &ValueId| *r != nil || matches!(src, Source::Native(_));
        if let Some(r) = root.filter(stored) {
            post_order(src, &r, &mut seen, &mut |cell| count(cell, &mut plan))?;
        }
        // The last root is committed after the young records, in the same commit.
        if i + 1 < roots.len() {
            root_done(*root)?;
        }
    }
    let cutoff = if args.prune_now {
        i64::MAX
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        now - (args.grace_days.max(0.0) * 86_400_000.0) as i64
    };
    let times = src.record_times()?;
    for id in src.all_ids()? {
        if seen.contains(&id) {
            continue;
        }
        let young = match &times {
            Some(t) => src.record_time(t, &id).is_none_or(|ms| ms > cutoff),
            None => !args.prune_now,
        };
        if young {
            plan.kept_young += 1;
            post_order(src, &id, &mut seen, &mut |cell| count(cell, &mut plan))?;
        } else {
            plan.dropped.push(id);
        }
    }
    // A dropped record may lie beneath a young one kept after it was listed.
    plan.dropped.retain(|id| !seen.contains(id));
    if let Some(last) = roots.last() {
        root_done(*last)?;
    }
    Ok(plan)
}

fn compact(args: &CompactArgs) -> Result<(), String> {
    let start = Instant::now();
    let path = &args.path;
    let src = Source::open(path, true)?;
    if src.is_partial() {
        return Err(format!(
            "{}: a partial replica's store (served with --hold pinned) lacks the values it does \
             not pin, so an offline copy of all its root reaches cannot be made; compact it while \
             it serves with etch gc --connect (or etch serve --gc-interval)",
            path.display()
        ));
    }
    let format = src.format();
    let tmp = tmp_path(path);
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
    if args.dry_run {
        let plan = walk_plan(&src, &roots, args, &mut |_| Ok(()), &mut |_| Ok(()))?;
        return report_dry_run(args, format.name(), &plan, roots.len());
    }
    remove_any(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    // Both callbacks write the one copy, one at a time.
    let sink = std::cell::RefCell::new(Sink::create(&tmp, format)?);
    let pb = bar(records_before, "copy", false);
    let result = walk_plan(
        &src,
        &roots,
        args,
        &mut |cell| {
            sink.borrow_mut().put(cell, true, src.flags(cell.id()))?;
            pb.inc(1);
            Ok(())
        },
        &mut |root| sink.borrow_mut().commit_root(root),
    );
    pb.finish_and_clear();
    let sink = sink.into_inner();
    let plan = match result {
        Ok(p) => p,
        Err(e) => {
            drop(sink);
            let _ = remove_any(&tmp);
            return Err(e);
        }
    };
    let (cells, bytes) = (plan.cells, plan.bytes);
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
    if !args.json {
        eprintln!(
            "{}: dropping {} records that no kept root reaches and are older than the grace \
             period; keeping {} cells, {} of them unreachable but younger",
            path.display(),
            plan.dropped.len(),
            cells,
            plan.kept_young
        );
    }
    // Tails a crash left, set aside by earlier opens (log.aside-*), go along: compaction never
    // deletes bytes it did not read.
    if format == StoreFormat::Native {
        let kept = carry_aside_files(path, &tmp).map_err(|e| {
            let _ = remove_any(&tmp);
            format!("{}: keeping set-aside log tails: {e}", path.display())
        })?;
        if kept > 0 && !args.json {
            eprintln!(
                "{}: {kept} set-aside log tail file(s) (log.aside-*) kept in the compacted store",
                path.display()
            );
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
            "dropped": plan.dropped.len(),
            "kept_young": plan.kept_young,
            "roots": roots.len(),
            "dry_run": false,
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
            if plan.dropped.is_empty() && plan.kept_young == 0 {
                return Ok(());
            }
            writeln!(
                out,
                "dropped {} records that no kept root reaches; kept {} such records younger than the grace period",
                plan.dropped.len(),
                plan.kept_young
            )
        })
    };
    res.map_err(|e| e.to_string())
}

/// Copies the `log.aside-*` files of the native store at `from` into `to` (synced, then the
/// directory); how many.
fn carry_aside_files(from: &std::path::Path, to: &std::path::Path) -> io::Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with("log.aside-") {
            let target = to.join(e.file_name());
            std::fs::copy(e.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
            n += 1;
        }
    }
    if n > 0 {
        std::fs::File::open(to)?.sync_all()?;
    }
    Ok(n)
}

/// `--dry-run`: each record that would go, then the counts; nothing changes.
fn report_dry_run(
    args: &CompactArgs,
    format: &str,
    plan: &Plan,
    roots: usize,
) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let res = if args.json {
        let v = serde_json::json!({
            "path": args.path.display().to_string(),
            "format": format,
            "cells": plan.cells,
            "cell_bytes": plan.bytes,
            "dropped": plan.dropped.len(),
            "dropped_ids": plan.dropped.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "kept_young": plan.kept_young,
            "roots": roots,
            "dry_run": true,
        });
        writeln!(out, "{v}")
    } else {
        plan.dropped
            .iter()
            .try_for_each(|id| writeln!(out, "would drop {}", id.to_hex()))
            .and_then(|_| {
                writeln!(
                    out,
                    "{}: dry run: would keep {} cells ({} bytes of encodings) reachable from {roots} root{} or younger than the grace period ({} unreachable records kept), would drop {} records; nothing changed",
                    args.path.display(),
                    plan.cells,
                    plan.bytes,
                    if roots == 1 { "" } else { "s" },
                    plan.kept_young,
                    plan.dropped.len()
                )
            })
    };
    res.map_err(|e| e.to_string())
}
