//! `etch recover PATH -o NEW`: salvage every intact cell of a damaged store.

use super::copy::{post_order, Overlay, Sink};
use super::scan::{self, bar, branch_children, deep_cad_records, Format, Kind, Rec, Scan};
use super::FormatArg;
use etch_engine::lattice::value_at_path;
use etch_engine::store::StoreFormat;
use etch_formats::value::for_each_surviving_index_entry;
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
Records past the last commit (what a crash or a cut left uncommitted) are salvaged too. When \
the newest root lost cells, the new store's root is rebuilt from what survived of it: every \
value of its :data whose tree is whole (united with the newest whole root's), and its other \
parts where whole (else the newest whole root's), so every value stored with (store v) or \
`etch put` that survived stays readable by its ID.\n\n\
Reports the roots found, what was lost (damaged records with offset and Value ID, the newer \
roots whose trees are incomplete and a missing cell of each) and the cells kept. The source is \
only read. Exit status 0 when nothing was lost (damage only to what points at records — index, \
snapshots list, header — loses nothing once every record is salvaged), 1 when something was, 2 \
on an error. --json prints one object with the keys path, output, format, records, good, \
damaged, root, root_seq, salvaged_from, roots_found, lost_roots, problems, cells, seconds."
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

/// A root rebuilt from what survived of a damaged one.
struct Salvaged {
    root: Cell,
    /// `:data` entries kept (their values' trees are whole).
    data_kept: usize,
    /// Cells found missing while walking it.
    cells_lost: usize,
    /// Keys of the root whose subtree was not whole (replaced from `whole`, or dropped).
    dropped: Vec<String>,
}

/// True when every branch beneath `cell` is among the good records.
fn value_complete(scan: &Scan, cell: &Cell, complete: &mut HashSet<[u8; 32]>) -> bool {
    let mut kids = Vec::new();
    branch_children(cell, &mut kids);
    kids.iter()
        .all(|k| tree_complete(scan, &k.0, complete).is_ok())
}

/// Rebuilds the lattice root `newest` from what survived (lattice.md §4, §5): each of its keys
/// whose subtree is whole is kept; of `:data` (a union of values by ID), every entry whose value
/// is whole is kept, with the entries of the newest whole root `whole` added; any other key
/// that lost cells is taken from `whole` (or dropped). `None` when `newest` is not a readable
/// lattice root.
fn salvage_root(
    scan: &Scan,
    newest: &[u8; 32],
    whole: Option<[u8; 32]>,
    complete: &mut HashSet<[u8; 32]>,
) -> Option<Salvaged> {
    let res = scan.resolver();
    let (top, _) = res.get(newest)?;
    if top.kind() != etch_formats::Kind::Index {
        return None;
    }
    let whole_root = whole.and_then(|w| res.get(&w)).map(|(c, _)| c);
    let data_key = Cell::keyword("data").ok()?;
    let mut cells_lost = 0usize;
    let mut keys: Vec<(Cell, Cell)> = Vec::new();
    let mut dropped = Vec::new();
    let _ = for_each_surviving_index_entry(
        &top,
        &res,
        &mut |k, v| {
            keys.push((k, v));
            Ok(())
        },
        &mut |_| {
            cells_lost += 1;
            Ok(())
        },
    );
    let from_whole = |k: &Cell| -> Option<Cell> {
        let w = whole_root.as_ref()?;
        value_at_path(w, std::slice::from_ref(k), &res)
            .ok()
            .filter(|v| !v.is_nil())
    };
    let mut out: Vec<(Cell, Cell)> = Vec::new();
    let mut data_kept = 0;
    for (k, v) in keys {
        if value_complete(scan, &v, complete) {
            if k == data_key {
                data_kept = v.count() as usize;
            }
            out.push((k, v));
            continue;
        }
        if k != data_key {
            dropped.push(etch_formats::text::print(&k, &res).unwrap_or_default());
            if let Some(w) = from_whole(&k) {
                out.push((k, w));
            }
            continue;
        }
        let mut entries: std::collections::BTreeMap<Vec<u8>, (Cell, Cell)> = Default::default();
        for data in [Some(v.clone()), from_whole(&k)].into_iter().flatten() {
            let mut incomplete = 0usize;
            let _ = for_each_surviving_index_entry(
                &data,
                &res,
                &mut |id, value| {
                    if value_complete(scan, &value, complete) {
                        entries.insert(id.encoding().to_vec(), (id, value));
                    } else {
                        incomplete += 1;
                    }
                    Ok(())
                },
                &mut |_| {
                    cells_lost += 1;
                    Ok(())
                },
            );
            cells_lost += incomplete;
        }
        data_kept = entries.len();
        let index = Cell::index(entries.into_values().collect()).ok()?;
        out.push((k, index));
    }
    let root = Cell::index(out).ok()?;
    Some(Salvaged {
        root,
        data_kept,
        cells_lost,
        dropped,
    })
}

/// Runs `etch recover`.
pub fn run(args: RecoverArgs) -> io::Result<ExitCode> {
    let start = Instant::now();
    let show = !args.json;
    if std::fs::symlink_metadata(&args.output).is_ok() {
        return super::usage(format!(
            "{}: already exists; recover writes a new store, so name a path that is free",
            args.output.display()
        ));
    }
    let recognised = super::check_store_path(&args.path, super::Access::Read).is_ok();
    let mut scan = match Scan::run(&args.path, show) {
        Ok(s) => s,
        Err(e) => return super::failed(e),
    };
    // Records past the last commit hash and decode like any other: salvage them too.
    let uncommitted = std::mem::take(&mut scan.uncommitted);
    scan.recs.extend(uncommitted);
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
                summary: None,
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
    let mut named = HashSet::new();
    for r in scan.roots.iter().rev() {
        if named.insert(r.id) {
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
    // The newest root lost cells: keep what survived of it (every :data value whose tree is
    // whole stays reachable by its ID) over the newest whole root.
    let salvaged = match candidates.first() {
        Some((seq, Some(r))) if lost.first().is_some_and(|l| l.1 == *r) => {
            salvage_root(&scan, r, chosen.and_then(|c| c.1), &mut complete).map(|s| (*seq, *r, s))
        }
        _ => None,
    };
    let to: StoreFormat = match args.format {
        Some(f) => f.into(),
        None => match scan.format {
            Format::Native => StoreFormat::Native,
            Format::Cad047 => StoreFormat::Cad047,
        },
    };
    let mut sink = match Sink::create(&args.output, to) {
        Ok(s) => s,
        Err(e) => return super::failed(e),
    };
    let pb = bar(scan.recs.len() as u64, "salvage", false);
    let (mut cells, mut bytes) = (0u64, 0u64);
    let result = (|| -> Result<(), String> {
        let res = scan.resolver();
        let mut seen: HashSet<ValueId> = HashSet::new();
        // The root to write first: the salvaged one (built in memory), else the chosen one.
        let (walk, built, root) = match (&salvaged, chosen) {
            (Some((_, _, s)), _) => (Some(*s.root.id()), s.root.clone(), Some(*s.root.id())),
            (None, Some((_, r))) => {
                let present = |r: &[u8; 32]| res.resolve(&ValueId(*r)).ok().flatten().is_some();
                (r.filter(present).map(ValueId), Cell::nil(), r.map(ValueId))
            }
            (None, None) => (None, Cell::nil(), None),
        };
        let overlay = Overlay::new(&built, &res);
        if let Some(r) = walk {
            post_order(&overlay, &r, &mut seen, &mut |cell| {
                if sink.put(cell, true, None)? {
                    cells += 1;
                    bytes += cell.len() as u64;
                }
                pb.inc(1);
                Ok(())
            })?;
        }
        if salvaged.is_some() || chosen.is_some() {
            sink.commit_root(root)?;
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
            // A good record: its bytes hash to its id and are one canonical cell.
            if sink.put_encoding(&ValueId(r.id), scan.encoding(r), false)? {
                cells += 1;
                bytes += u64::from(r.len);
            }
            pb.inc(1);
        }
        Ok(())
    })();
    pb.finish_and_clear();
    let finished = result.and_then(|_| sink.finish());
    if let Err(e) = finished {
        let _ = etch_engine::store::swap::remove_any(&args.output);
        return super::failed(e);
    }
    let secs = start.elapsed().as_secs_f64();
    // Lost: a damaged record, a root whose tree is not whole, or bytes where records lay that
    // could not be read. Damage to what only points at records (index, snapshots, header,
    // commit chain) loses nothing once every record is salvaged.
    let something_lost = !damaged.is_empty()
        || !lost.is_empty()
        || scan.problems.iter().any(|p| {
            matches!(
                p.kind,
                Kind::Frame | Kind::Truncated | Kind::Record | Kind::Hash | Kind::Encoding
            )
        });
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
            "root": match &salvaged {
                Some((_, _, sv)) => Some(sv.root.id().to_hex()),
                None => chosen.and_then(|c| c.1).map(|r| hexs(&r)),
            },
            "salvaged_from": salvaged.as_ref().map(|(seq, r, sv)| serde_json::json!({"seq": seq, "root": hexs(r), "data_kept": sv.data_kept, "cells_lost": sv.cells_lost})),
            "root_seq": chosen.map(|c| c.0),
            "roots_found": candidates.len(),
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
        writeln!(
            out,
            "roots found: {} ({})",
            candidates.len(),
            if scan.format == Format::Native {
                "each commit's, distinct"
            } else {
                "the header's"
            }
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
        if let Some((seq, old, sv)) = &salvaged {
            let which = if scan.format == Format::Native {
                format!("commit {seq}'s root")
            } else {
                "the header's root".into()
            };
            writeln!(
                out,
                "root: {} salvaged from {which} {}: {} :data values kept, {} cells of it lost{}",
                sv.root.id().to_hex(),
                hexs(old),
                sv.data_kept,
                sv.cells_lost,
                if sv.dropped.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} taken from the newest whole root or dropped",
                        sv.dropped.join(", ")
                    )
                }
            )?;
        } else {
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
        }
        writeln!(
            out,
            "wrote {cells} cells ({bytes} bytes of encodings) to {} ({}) in {secs:.2} s",
            args.output.display(),
            to.name()
        )?;
    }
    Ok(ExitCode::from(
        if something_lost || (!recognised && cells == 0) {
            scan::EXIT_PROBLEMS
        } else {
            scan::EXIT_OK
        },
    ))
}
