//! `etch stats PATH` and `etch dump PATH`.

use super::copy::post_order;
use super::scan::{walk_trees, Format, Scan, EXIT_OK};
use etch_formats::{Kind as CellKind, ValueId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `etch stats`.
#[derive(clap::Args)]
#[command(
    long_about = "Figures about a store's contents: records by cell type (count and \
bytes), a histogram of encoding sizes, and for the tree under the current root its distinct \
cells, depth (branch cells on the longest path) and dedup ratio (bytes of the tree written out \
with every shared subtree repeated, over the bytes stored once); also what is reachable from \
any commit (native) and what is garbage that `etch compact` would reclaim. Records are hashed \
and checked on every core; damaged ones are counted apart.\n\n\
--json prints one object with the keys path, format, file_bytes, records, record_bytes, \
damaged, types (name → {count, bytes}), sizes ([upper bound, count]), root, tree (cells, bytes, \
depth, logical_cells, logical_bytes, dedup_ratio), live_cells, live_bytes, garbage_cells, \
garbage_bytes."
)]
pub struct StatsArgs {
    /// The store (either format).
    path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `etch dump`.
#[derive(clap::Args)]
#[command(
    long_about = "Lists the records of a store in file order: byte offset, Value ID, \
encoding length and cell type (CAD047: also the flags byte; native: commits appear as lines \
`commit <seq> root <id>`). Records are found as `etch verify` finds them (through the index for \
CAD047, frame by frame for native) but not hashed: use verify for that.\n\n\
--json prints one object per line: offset, id, length, type (and flags), or offset, commit, \
root."
)]
pub struct DumpArgs {
    /// The store (either format).
    path: PathBuf,
    /// Stop after this many lines.
    #[arg(long)]
    limit: Option<usize>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

fn type_name(enc: &[u8]) -> &'static str {
    enc.first()
        .and_then(|t| CellKind::of_tag(*t))
        .map_or("invalid", |k| k.name())
}

/// Runs `etch stats`.
pub fn stats(args: StatsArgs) -> io::Result<ExitCode> {
    let start = Instant::now();
    if let Err(e) = super::check_store_path(&args.path, super::Access::Read) {
        return super::failed(e);
    }
    let mut scan = match Scan::run(&args.path, !args.json) {
        Ok(s) => s,
        Err(e) => return super::failed(e),
    };
    scan.check_records(!args.json);
    let mut types: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut records, mut record_bytes, mut damaged) = (0u64, 0u64, 0u64);
    for r in &scan.recs {
        if !r.good {
            damaged += 1;
            continue;
        }
        records += 1;
        record_bytes += r.len as u64;
        let t = types.entry(type_name(scan.encoding(r))).or_default();
        t.0 += 1;
        t.1 += r.len as u64;
        *sizes
            .entry((r.len as u64).next_power_of_two().max(16))
            .or_default() += 1;
    }
    let res = scan.resolver();
    let root = scan
        .roots
        .iter()
        .rev()
        .find(|r| r.reachable)
        .and_then(|r| r.id)
        .filter(|r| scan.good(r).is_some());
    // The root's tree: (depth, logical cells, logical bytes) per cell, children first.
    let mut memo: HashMap<ValueId, (u32, u64, u64)> = HashMap::new();
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut tree = (0u64, 0u64, 0u32, 0u64, 0u64);
    let mut notes = Vec::new();
    if let Some(r) = root {
        let walked = post_order(&res, &ValueId(r), &mut seen, &mut |cell| {
            let mut kids = Vec::new();
            super::scan::branch_children(cell, &mut kids);
            let (mut depth, mut lc, mut lb) = (0u32, 1u64, cell.len() as u64);
            for k in &kids {
                if let Some((d, c, b)) = memo.get(k) {
                    depth = depth.max(*d);
                    lc = lc.saturating_add(*c);
                    lb = lb.saturating_add(*b);
                }
            }
            memo.insert(*cell.id(), (depth + 1, lc, lb));
            tree.0 += 1;
            tree.1 += cell.len() as u64;
            Ok(())
        });
        if let Err(e) = walked {
            notes.push(format!("the root's tree is incomplete: {e}"));
        }
        if let Some((d, c, b)) = memo.get(&ValueId(r)) {
            tree.2 = *d;
            tree.3 = *c;
            tree.4 = *b;
        }
    }
    // Everything any commit's root reaches (native); the rest is garbage. Each cell once, on
    // every core, however many commits share it.
    let mut named = HashSet::new();
    let roots: Vec<([u8; 32], u64)> = scan
        .roots
        .iter()
        .filter_map(|r| r.id.map(|id| (id, r.offset)))
        .filter(|(id, _)| named.insert(*id))
        .collect();
    let reached = walk_trees(&scan, &roots, false, !args.json);
    let (live, live_bytes) = (reached.cells, reached.bytes);
    let ratio = if tree.1 > 0 {
        tree.4 as f64 / tree.1 as f64
    } else {
        1.0
    };
    let secs = start.elapsed().as_secs_f64();
    let mut out = io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "path": args.path.display().to_string(),
            "format": scan.format.name(),
            "file_bytes": scan.file_bytes,
            "records": records,
            "record_bytes": record_bytes,
            "damaged": damaged,
            "types": types.iter().map(|(k, (c, b))| (k.to_string(), serde_json::json!({"count": c, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "sizes": sizes.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
            "root": root.map(hex::encode),
            "tree": {"cells": tree.0, "bytes": tree.1, "depth": tree.2, "logical_cells": tree.3, "logical_bytes": tree.4, "dedup_ratio": ratio},
            "live_cells": live,
            "live_bytes": live_bytes,
            "garbage_cells": records.saturating_sub(live),
            "garbage_bytes": record_bytes.saturating_sub(live_bytes),
            "notes": notes,
            "seconds": secs,
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    writeln!(
        out,
        "{}: {} store, {} bytes in its files",
        args.path.display(),
        scan.format.name(),
        scan.file_bytes
    )?;
    writeln!(
        out,
        "records: {records} ({record_bytes} bytes of encodings){}",
        if damaged > 0 {
            format!(", {damaged} damaged (etch verify)")
        } else {
            String::new()
        }
    )?;
    writeln!(out, "\nby type:")?;
    let mut by: Vec<_> = types.iter().collect();
    by.sort_by_key(|x| std::cmp::Reverse(x.1 .1));
    for (k, (c, b)) in by {
        writeln!(out, "  {k:<12} {c:>12} cells {b:>15} bytes")?;
    }
    writeln!(out, "\nencoding sizes:")?;
    let most = sizes.values().copied().max().unwrap_or(1).max(1);
    let mut lo = 1u64;
    for (hi, c) in &sizes {
        let bar = "#".repeat(((*c as f64 / most as f64) * 40.0).ceil() as usize);
        writeln!(out, "  {lo:>6}..{hi:<6} {c:>12}  {bar}")?;
        lo = hi + 1;
    }
    match root {
        Some(r) => {
            writeln!(out, "\nroot {}:", hex::encode(r))?;
            writeln!(
                out,
                "  {} distinct cells ({} bytes), depth {}; written out in full {} cells ({} bytes): dedup ratio {ratio:.2}",
                tree.0, tree.1, tree.2, tree.3, tree.4
            )?;
        }
        None => writeln!(out, "\nno root")?,
    }
    writeln!(
        out,
        "live (reachable from {}): {live} cells ({live_bytes} bytes); garbage: {} cells ({} bytes)",
        if scan.format == Format::Native {
            "any commit"
        } else {
            "the root"
        },
        records.saturating_sub(live),
        record_bytes.saturating_sub(live_bytes)
    )?;
    for n in notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// Runs `etch dump`.
pub fn dump(args: DumpArgs) -> io::Result<ExitCode> {
    if let Err(e) = super::check_store_path(&args.path, super::Access::Read) {
        return super::failed(e);
    }
    let mut scan = match Scan::run(&args.path, false) {
        Ok(s) => s,
        Err(e) => return super::failed(e),
    };
    scan.sort_by_offset();
    let mut out = BufWriter::new(io::stdout().lock());
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut commits = scan
        .roots
        .iter()
        .filter(|_| scan.format == Format::Native)
        .peekable();
    let mut lines = 0usize;
    let commit_line = |out: &mut dyn Write, r: &super::scan::RootRef| -> io::Result<()> {
        let root = r.id.map(hex::encode);
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"offset": r.offset, "commit": r.seq, "root": root})
            )
        } else {
            writeln!(
                out,
                "{:>12}  commit {} root {}",
                r.offset,
                r.seq,
                root.as_deref().unwrap_or("(none)")
            )
        }
    };
    for r in &scan.recs {
        while let Some(c) = commits.next_if(|c| c.offset < r.offset) {
            if lines >= limit {
                break;
            }
            commit_line(&mut out, c)?;
            lines += 1;
        }
        if lines >= limit {
            break;
        }
        let ty = type_name(scan.encoding(r));
        if args.json {
            let mut v = serde_json::json!({"offset": r.offset, "id": hex::encode(r.id), "length": r.len, "type": ty});
            if scan.format == Format::Cad047 {
                v["flags"] = serde_json::json!(format!("{:02x}", r.flags));
            }
            writeln!(out, "{v}")?;
        } else if scan.format == Format::Cad047 {
            writeln!(
                out,
                "{:>12}  {}  {:>5}  {:<10}  flags {:02x}",
                r.offset,
                hex::encode(r.id),
                r.len,
                ty,
                r.flags
            )?;
        } else {
            writeln!(
                out,
                "{:>12}  {}  {:>5}  {}",
                r.offset,
                hex::encode(r.id),
                r.len,
                ty
            )?;
        }
        lines += 1;
    }
    for c in commits {
        if lines >= limit {
            break;
        }
        commit_line(&mut out, c)?;
        lines += 1;
    }
    out.flush()?;
    Ok(ExitCode::from(EXIT_OK))
}
