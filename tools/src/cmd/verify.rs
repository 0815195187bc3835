//! `etch verify PATH`: structure, every record, every tree.

use super::copy::memory_size;
use super::scan::{self, walk_trees, Format, Kind, Problem, Scan};
use etch_engine::store::cad047;
use etch_formats::{decode_cell, ValueId};
use rayon::prelude::*;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `etch verify`.
#[derive(clap::Args)]
#[command(
    long_about = "Checks a store of either format (a directory is taken as a native \
store, a file as a CAD047 file, whatever their magic says) and reports every problem with its \
file, byte offset, Value ID and kind:\n\n\
1. structure: native — the FORMAT file, every frame's magic, length and CRC, the commit chain, \
the snapshots file against the log, every index run of the current commit (header, CRCs, order, \
bucket table, every entry pointing at its record, every indexed record in the runs); CAD047 — \
the header, every index slot and block (etch.md §8 invariants 1–5, 8), every record within the \
data length;\n\
2. every record: its key is the SHA3-256 of its encoding, the encoding is one canonical cell; \
CAD047 labels (status, embedding bits, §8.6; PERSISTED children present and memory sizes, §8.7);\n\
3. every cell reachable from the root (native: from every commit's root) is stored, and every \
cell passes the stage-B rules against its children.\n\n\
Records and trees are checked on every core. Damage a crash leaves past the last commit of a \
native log is reported as a note (a writable open cuts it off), not a problem.\n\n\
Kinds: header, frame, commit, snapshot, index, record, hash, encoding, missing, structure, \
truncated. Exit status: 0 sound, 1 problems found or the store could not be read, 2 a usage mistake. --json prints one \
object: path, format, ok, records, record_bytes, file_bytes, roots, reachable_cells, \
reachable_bytes, seconds, problems (file, offset, id, kind, detail), notes."
)]
pub struct VerifyArgs {
    /// The store (either format).
    path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print at most this many problems in text mode (all are counted).
    #[arg(long, default_value_t = 100)]
    max_problems: usize,
}

/// The CAD047 invariant 7 and memory sizes: a PERSISTED record's branch children are stored
/// PERSISTED, and a non-zero memory size is what the children's give.
fn cad_labels(scan: &Scan) -> Vec<Problem> {
    let persisted = |f: u8| f & 0x0f >= cad047::status::PERSISTED;
    scan.recs
        .par_iter()
        .filter(|r| r.good && persisted(r.flags))
        .flat_map_iter(|r| {
            let mut out = Vec::new();
            let Ok(cell) = decode_cell(scan.encoding(r).to_vec()) else {
                return out;
            };
            let mut kids = Vec::new();
            scan::branch_children(&cell, &mut kids);
            for k in &kids {
                match scan.good(&k.0) {
                    Some(c) if persisted(c.flags) => {}
                    Some(_) => out.push(
                        Problem::new(
                            &scan.rec_file,
                            r.offset + 32,
                            Kind::Record,
                            format!("labelled PERSISTED but its child {k} is not (§8.7)"),
                        )
                        .with_id(r.id),
                    ),
                    None => out.push(
                        Problem::new(
                            &scan.rec_file,
                            r.offset + 32,
                            Kind::Missing,
                            format!("labelled PERSISTED but its child {k} is not stored (§8.7)"),
                        )
                        .with_id(r.id),
                    ),
                }
            }
            if r.mem != 0 {
                let got = memory_size(&cell, false, &|id: &ValueId| {
                    scan.good(&id.0).map(|c| c.mem).filter(|m| *m > 0)
                });
                if let Some(m) = got.filter(|m| *m != r.mem) {
                    out.push(
                        Problem::new(
                            &scan.rec_file,
                            r.offset + 33,
                            Kind::Record,
                            format!("memory size {} but its tree gives {m} (§8.7)", r.mem),
                        )
                        .with_id(r.id),
                    );
                }
            }
            out
        })
        .collect()
}

/// Runs `etch verify`.
pub fn run(args: VerifyArgs) -> io::Result<ExitCode> {
    let start = Instant::now();
    let show = !args.json;
    let mut scan = match Scan::run(&args.path, show) {
        Ok(s) => s,
        Err(e) => return super::failed(e),
    };
    scan.check_records_keeping_summaries(show);
    // Every root (native: every commit's; CAD047: the header's, named at offset 12, §8.9).
    let mut roots: Vec<([u8; 32], u64)> = Vec::new();
    let mut named = std::collections::HashSet::new();
    for r in &scan.roots {
        if let Some(id) = r.id {
            if named.insert(id) {
                roots.push((id, r.offset));
            }
        }
    }
    let walk = walk_trees(&scan, &roots, true, show);
    let mut problems = std::mem::take(&mut scan.problems);
    problems.extend(walk.problems);
    if scan.format == Format::Cad047 {
        problems.extend(cad_labels(&scan));
    }
    problems.sort_by(|a, b| (&a.file, a.offset, a.kind).cmp(&(&b.file, b.offset, b.kind)));
    problems.dedup();
    let secs = start.elapsed().as_secs_f64();
    let record_bytes: u64 = scan.recs.iter().map(|r| r.len as u64).sum();
    let mut out = io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "path": args.path.display().to_string(),
            "format": scan.format.name(),
            "ok": problems.is_empty(),
            "records": scan.recs.len(),
            "record_bytes": record_bytes,
            "file_bytes": scan.file_bytes,
            "roots": roots.len(),
            "reachable_cells": walk.cells,
            "reachable_bytes": walk.bytes,
            "partial_roots": walk.partial_roots,
            "seconds": secs,
            "problems": problems.iter().map(Problem::json).collect::<Vec<_>>(),
            "notes": scan.notes,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "{}: {} store, {} bytes in its files",
            args.path.display(),
            scan.format.name(),
            scan.file_bytes
        )?;
        writeln!(
            out,
            "records:   {} ({} bytes of encodings), {} bad",
            scan.recs.len(),
            record_bytes,
            scan.recs.iter().filter(|r| !r.good).count()
        )?;
        writeln!(
            out,
            "trees:     {} root{} ({}), {} cells reachable ({} bytes)",
            roots.len(),
            if roots.len() == 1 { "" } else { "s" },
            match scan.format {
                Format::Native => "every commit",
                Format::Cad047 => "the header's root",
            },
            walk.cells,
            walk.bytes
        )?;
        writeln!(
            out,
            "time:      {secs:.2} s ({:.0} MB/s of store files, {:.0} records/s)",
            scan.file_bytes as f64 / secs / 1e6,
            scan.recs.len() as f64 / secs
        )?;
        if walk.partial_roots > 0 {
            writeln!(
                out,
                "note: {} root{} of a partial replica (etch serve --hold pinned): its skeleton and \
                 pinned trees are checked; the :data values it does not hold are not missing",
                walk.partial_roots,
                if walk.partial_roots == 1 { " is" } else { "s are" }
            )?;
        }
        for n in &scan.notes {
            writeln!(out, "note: {n}")?;
        }
        for p in problems.iter().take(args.max_problems) {
            writeln!(out, "problem: {}", p.line())?;
        }
        if problems.len() > args.max_problems {
            writeln!(
                out,
                "… and {} more problems",
                problems.len() - args.max_problems
            )?;
        }
        if problems.is_empty() {
            writeln!(out, "OK: no problems found")?;
        } else {
            let mut kinds: Vec<(&str, usize)> = Vec::new();
            for p in &problems {
                match kinds.iter_mut().find(|k| k.0 == p.kind.name()) {
                    Some(k) => k.1 += 1,
                    None => kinds.push((p.kind.name(), 1)),
                }
            }
            let summary: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            writeln!(
                out,
                "DAMAGED: {} problems ({})",
                problems.len(),
                summary.join(", ")
            )?;
        }
    }
    // The process ends next, and freeing half a million summaries one at a time takes a
    // noticeable part of a second the operating system spends at once on the whole heap.
    std::mem::forget(scan);
    Ok(ExitCode::from(if problems.is_empty() {
        scan::EXIT_OK
    } else {
        scan::EXIT_PROBLEMS
    }))
}
