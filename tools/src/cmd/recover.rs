//! `etch recover PATH -o NEW`: salvage every intact cell of a damaged store.

use super::copy::{post_order, Sink};
use super::scan::{
    self, bar, branch_children, deep_cad_records, error_exit, Format, Kind, Rec, Scan,
};
use super::FormatArg;
use etch_engine::store::StoreFormat;
use etch_formats::{decode_cell, Cell, Resolver, ValueId};
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `etch recover`.
#[derive(clap::Args)]
#[command(
    long_about = "Salvages a damaged store into a new one: every record whose encoding \
still hashes to its Value ID and decodes is copied, and the new store's root is the newest root \
whose whole tree survived — for a native store, the commits are tried newest first (also commits \
past the damage, which opening the store would lose); for a CAD047 file, the header's root, else \
none. Native logs are read frame by frame, resynchronising after damage and searching damaged \
frames record by record; a CAD047 file is read through its index, and also byte by byte \
(--deep, automatic when the index is damaged) for records whose slots were lost.\n\n\
Reports what was lost: damaged records (offset, Value ID), the newer roots whose trees are \
incomplete and a missing cell of each. The source is only read. Exit status 0 when nothing was \
lost, 1 when something was, 2 on an error. --json prints one object with the keys path, output, \
format, records, good, damaged, root, root_seq, lost_roots, cells, seconds."
)]
pub struct RecoverArgs {
    /// The damaged store (either format).
    path: PathBuf,
    /// The new store (must not exist).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Format of the new store (default: the source's).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// CAD047: also search every byte offset for records the index lost.
    #[arg(long)]
    deep: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Checks that the whole tree of `root` is among the good records; `Err(first missing id)`.
/// Subtrees found complete go into `complete` and are not walked again.
fn tree_complete(
    scan: &Scan,
    root: &[u8; 32],
    complete: &mut HashSet<[u8; 32]>,
) -> Result<(), [u8; 32]> {
    let mut visited: Vec<[u8; 32]> = Vec::new();
    let mut local: HashSet<[u8; 32]> = HashSet::new();
    let mut stack = vec![*root];
    let res = scan.resolver();
    while let Some(id) = stack.pop() {
        if complete.contains(&id) || !local.insert(id) {
            continue;
        }
        let Some((cell, _)) = res.get(&id) else {
            return Err(id);
        };
        visited.push(id);
        let mut kids = Vec::new();
        branch_children(&cell, &mut kids);
        stack.extend(kids.iter().map(|k| k.0));
    }
    complete.extend(visited);
    Ok(())
}

/// Runs `etch recover`.
pub fn run(args: RecoverArgs) -> io::Result<ExitCode> {
    let start = Instant::now();
    let show = !args.json;
    if std::fs::symlink_metadata(&args.output).is_ok() {
        return error_exit(format!("{}: already exists", args.output.display()));
    }
    let mut scan = match Scan::run(&args.path, show) {
        Ok(s) => s,
        Err(e) => return error_exit(e),
    };
    scan.check_records(show);
    let index_damaged = scan.problems.iter().any(|p| {
        matches!(
            p.kind,
            Kind::Index | Kind::Record | Kind::Header | Kind::Truncated
        )
    });
    if scan.format == Format::Cad047 && (args.deep || index_damaged) {
        let known: HashSet<u64> = scan.recs.iter().map(|r| r.offset).collect();
        let len = scan.map.bytes().len() as u64;
        for (offset, id, flags, mem, n) in deep_cad_records(scan.map.bytes(), len) {
            if known.contains(&offset) {
                continue;
            }
            let enc_at = offset + etch_engine::store::cad047::RECORD_HEADER_BYTES;
            let good = decode_cell(
                scan.map.bytes()[enc_at as usize..enc_at as usize + n as usize].to_vec(),
            )
            .is_ok();
            scan.recs.push(Rec {
                id,
                offset,
                enc_at,
                len: n,
                flags,
                mem,
                good,
            });
        }
        scan.sort_by_id();
    }
    let damaged: Vec<(u64, [u8; 32])> = scan
        .recs
        .iter()
        .filter(|r| !r.good)
        .map(|r| (r.offset, r.id))
        .collect();
    // Candidate roots, newest first.
    let mut candidates: Vec<(u64, Option<[u8; 32]>)> = Vec::new();
    for r in scan.roots.iter().rev() {
        if !candidates.iter().any(|c| c.1 == r.id) {
            candidates.push((r.seq, r.id));
        }
    }
    let nil = Cell::nil().id().0;
    let mut complete: HashSet<[u8; 32]> = HashSet::new();
    let mut chosen: Option<(u64, Option<[u8; 32]>)> = None;
    let mut lost: Vec<(u64, [u8; 32], [u8; 32])> = Vec::new();
    for (seq, id) in &candidates {
        match id {
            None => {
                chosen = Some((*seq, None));
                break;
            }
            Some(r) if *r == nil && scan.good(r).is_none() => {
                chosen = Some((*seq, Some(*r)));
                break;
            }
            Some(r) => match tree_complete(&scan, r, &mut complete) {
                Ok(()) => {
                    chosen = Some((*seq, Some(*r)));
                    break;
                }
                Err(missing) => lost.push((*seq, *r, missing)),
            },
        }
    }
    let to: StoreFormat = match args.format {
        Some(f) => f.into(),
        None => match scan.format {
            Format::Native => StoreFormat::Native,
            Format::Cad047 => StoreFormat::Cad047,
        },
    };
    let mut sink = match Sink::create(&args.output, to) {
        Ok(s) => s,
        Err(e) => return error_exit(e),
    };
    let pb = bar(scan.recs.len() as u64, "salvage", false);
    let (mut cells, mut bytes) = (0u64, 0u64);
    let result = (|| -> Result<(), String> {
        let res = scan.resolver();
        let mut seen: HashSet<ValueId> = HashSet::new();
        if let Some((_, Some(r))) = chosen {
            if res.resolve(&ValueId(r)).ok().flatten().is_some() {
                post_order(&res, &ValueId(r), &mut seen, &mut |cell| {
                    if sink.put(cell, true, None)? {
                        cells += 1;
                        bytes += cell.len() as u64;
                    }
                    pb.inc(1);
                    Ok(())
                })?;
            }
        }
        if let Some((_, root)) = chosen {
            sink.commit_root(root.map(ValueId))?;
        }
        // Every other intact record, in file order.
        let mut rest: Vec<&Rec> = scan
            .recs
            .iter()
            .filter(|r| r.good && !seen.contains(&ValueId(r.id)))
            .collect();
        rest.sort_by_key(|r| r.offset);
        let mut done: HashSet<[u8; 32]> = HashSet::new();
        for r in rest {
            if !done.insert(r.id) {
                continue;
            }
            if let Some((cell, _)) = res.get(&r.id) {
                if sink.put(&cell, false, None)? {
                    cells += 1;
                    bytes += cell.len() as u64;
                }
            }
            pb.inc(1);
        }
        Ok(())
    })();
    pb.finish_and_clear();
    let finished = result.and_then(|_| sink.finish());
    if let Err(e) = finished {
        let _ = etch_engine::store::swap::remove_any(&args.output);
        return error_exit(e);
    }
    let secs = start.elapsed().as_secs_f64();
    let something_lost = !damaged.is_empty()
        || !lost.is_empty()
        || scan.problems.iter().any(|p| p.kind != Kind::Structure);
    let hexs = |b: &[u8; 32]| hex::encode(b);
    let mut out = io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "path": args.path.display().to_string(),
            "output": args.output.display().to_string(),
            "format": to.name(),
            "records": scan.recs.len(),
            "good": scan.recs.iter().filter(|r| r.good).count(),
            "damaged": damaged.iter().map(|(o, id)| serde_json::json!({"offset": o, "id": hexs(id)})).collect::<Vec<_>>(),
            "root": chosen.and_then(|c| c.1).map(|r| hexs(&r)),
            "root_seq": chosen.map(|c| c.0),
            "lost_roots": lost.iter().map(|(s, r, m)| serde_json::json!({"seq": s, "root": hexs(r), "missing": hexs(m)})).collect::<Vec<_>>(),
            "problems": scan.problems.len(),
            "cells": cells,
            "seconds": secs,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "{}: {} records found, {} intact, {} damaged; {} structural problems (etch verify lists them)",
            args.path.display(),
            scan.recs.len(),
            scan.recs.len() - damaged.len(),
            damaged.len(),
            scan.problems.len()
        )?;
        for (o, id) in damaged.iter().take(20) {
            writeln!(out, "lost: damaged record at offset {o}, id {}", hexs(id))?;
        }
        if damaged.len() > 20 {
            writeln!(
                out,
                "lost: … and {} more damaged records",
                damaged.len() - 20
            )?;
        }
        for (s, r, m) in lost.iter().take(20) {
            let which = if scan.format == Format::Native {
                format!("commit {s}'s root")
            } else {
                "the header's root".into()
            };
            writeln!(out, "lost: {which} {} (cell {} is gone)", hexs(r), hexs(m))?;
        }
        match chosen {
            Some((seq, Some(r))) => writeln!(
                out,
                "root: {}{}",
                hexs(&r),
                if scan.format == Format::Native {
                    format!(" (commit {seq})")
                } else {
                    String::new()
                }
            )?,
            Some((_, None)) => writeln!(out, "root: none was set")?,
            None => writeln!(out, "root: none survived: the new store has no root")?,
        }
        writeln!(
            out,
            "wrote {cells} cells ({bytes} bytes of encodings) to {} ({}) in {secs:.2} s",
            args.output.display(),
            to.name()
        )?;
    }
    Ok(ExitCode::from(if something_lost {
        scan::EXIT_PROBLEMS
    } else {
        scan::EXIT_OK
    }))
}
