//! `etch convert SRC DST --to native|cad047`: every cell and the roots, into a new store.

use super::copy::{post_order, Sink, Source};
use super::scan::{bar, EXIT_OK};
use super::FormatArg;
use etch_engine::store::StoreFormat;
use etch_formats::{Cell, Resolver, ValueId};
use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `etch convert`.
#[derive(clap::Args)]
#[command(
    long_about = "Copies a store into a new store of the other format (or the format \
--to names): every cell, and the root. Trees reachable from roots are written first, children \
before parents (a CAD047 target labels them PERSISTED with their memory sizes, keeping \
ANNOUNCED), then every other record in the source (labelled STORED). From a native store, \
every commit's root is carried: a native target gets one commit per distinct root, oldest \
first, so its snapshots still open; a CAD047 target keeps only the current root, but every \
cell of every snapshot. Reads check every cell's hash. DST must not exist.\n\n\
Exit status 0; 1 on an error; 2 when DST exists. --json prints one object with the keys src, dst, from, to, \
root, roots, cells, bytes, seconds."
)]
pub struct ConvertArgs {
    /// The store to read (either format).
    src: PathBuf,
    /// The new store.
    dst: PathBuf,
    /// The new store's format (default: the other one).
    #[arg(long, value_enum)]
    to: Option<FormatArg>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `etch convert`.
pub fn run(args: ConvertArgs) -> io::Result<ExitCode> {
    if std::fs::symlink_metadata(&args.dst).is_ok() {
        return super::usage(format!(
            "{}: already exists; convert writes a new store, so name a path that is free",
            args.dst.display()
        ));
    }
    match convert(&args) {
        Ok(()) => Ok(ExitCode::from(EXIT_OK)),
        Err(e) => super::failed(e),
    }
}

fn convert(args: &ConvertArgs) -> Result<(), String> {
    let start = Instant::now();
    let src = Source::open(&args.src, false)?;
    let to: StoreFormat = match args.to {
        Some(f) => f.into(),
        None => match src.format() {
            StoreFormat::Native => StoreFormat::Cad047,
            StoreFormat::Cad047 => StoreFormat::Native,
        },
    };
    let mut sink = Sink::create(&args.dst, to)?;
    let result = copy_all(&src, &mut sink, to);
    let (cells, bytes, roots) = match result {
        Ok(x) => x,
        Err(e) => {
            drop(sink);
            let _ = etch_engine::store::swap::remove_any(&args.dst);
            return Err(e);
        }
    };
    sink.finish()?;
    let secs = start.elapsed().as_secs_f64();
    let root = src.root().map(|r| r.to_hex());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "src": args.src.display().to_string(),
                "dst": args.dst.display().to_string(),
                "from": src.format().name(),
                "to": to.name(),
                "root": root,
                "roots": roots,
                "cells": cells,
                "bytes": bytes,
                "seconds": secs,
            })
        );
    } else {
        println!(
            "{} ({}) -> {} ({}): {cells} cells ({bytes} bytes of encodings), {roots} root{}, root {} in {secs:.2} s ({:.0} cells/s)",
            args.src.display(),
            src.format().name(),
            args.dst.display(),
            to.name(),
            if roots == 1 { "" } else { "s" },
            root.as_deref().unwrap_or("(none)"),
            cells as f64 / secs
        );
    }
    Ok(())
}

/// Copies every root's tree (post-order, committing each root on a native target), then every
/// other record. Returns (cells, bytes, roots committed).
fn copy_all(src: &Source, sink: &mut Sink, to: StoreFormat) -> Result<(u64, u64, usize), String> {
    let ids = src.all_ids()?;
    let pb = bar(ids.len() as u64, "convert", false);
    let nil = *Cell::nil().id();
    // Roots oldest first, the current one last; a native target commits each distinct one, a
    // CAD047 target only the last (but keeps every snapshot's tree complete).
    let mut roots: Vec<Option<ValueId>> = src.snapshot_roots()?.into_iter().map(|s| s.1).collect();
    roots.dedup();
    if roots.last() != Some(&src.root()) {
        roots.push(src.root());
    }
    let (mut cells, mut bytes) = (0u64, 0u64);
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut committed = 0usize;
    for root in &roots {
        if let Some(r) = root {
            let stored = *r != nil || src.resolve(r).ok().flatten().is_some();
            if stored {
                post_order(src, r, &mut seen, &mut |cell| {
                    if sink.put(cell, true, src.flags(cell.id()))? {
                        cells += 1;
                        bytes += cell.len() as u64;
                    }
                    pb.inc(1);
                    Ok(())
                })?;
            }
        }
        if to == StoreFormat::Native || Some(root) == roots.last() {
            sink.commit_root(*root)?;
            committed += 1;
        }
    }
    // Everything else, in the source's order.
    for id in ids {
        if seen.contains(&id) || sink.contains(&id) {
            continue;
        }
        let cell = src
            .resolve(&id)
            .map_err(|e| format!("cell {id}: {e}"))?
            .ok_or_else(|| format!("cell {id} listed but not readable"))?;
        if sink.put(&cell, false, None)? {
            cells += 1;
            bytes += cell.len() as u64;
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok((cells, bytes, committed))
}
