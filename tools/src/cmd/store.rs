//! `etch info`, `etch get`, `etch put`: a store from the command line.

use etch_engine::store::{CellStore, EtchStore, Root};
use etch_formats::text::print;
use etch_formats::text::read::read_one;
use etch_formats::ValueId;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn fail(msg: impl std::fmt::Display) -> io::Result<ExitCode> {
    eprintln!("etch: {msg}");
    Ok(ExitCode::FAILURE)
}

/// Arguments of `etch info`.
#[derive(clap::Args)]
#[command(
    long_about = "Shows what a store file holds: its format and version, the root Value ID, \
the number of cell records and the data length. Opening a store to read never changes it.\n\n\
With --json, prints one JSON object with the keys format, version, root (hex or null), cells, \
length (logical data length) and file_size."
)]
pub struct InfoArgs {
    /// The store file.
    path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `etch info`.
pub fn info(args: InfoArgs) -> io::Result<ExitCode> {
    let store = match EtchStore::open(&args.path, false) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let stats = match store.stats() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let root = match store.root() {
        Ok(Root::Unset) => None,
        Ok(Root::Value(c)) => Some(c.id().to_hex()),
        Err(e) => return fail(format!("root: {e}")),
    };
    let mut out = io::stdout().lock();
    if args.json {
        let root_json = root
            .as_ref()
            .map(|r| format!("\"{r}\""))
            .unwrap_or_else(|| "null".into());
        writeln!(
            out,
            "{{\"format\":\"etch\",\"version\":1,\"root\":{root_json},\"cells\":{},\"length\":{},\"file_size\":{}}}",
            stats.cells, stats.data_len, stats.file_len
        )?;
    } else {
        writeln!(out, "format:      Etch (CAD047), version 1")?;
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
            "data length: {} bytes (file {} bytes)",
            stats.data_len, stats.file_len
        )?;
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
    /// The store file.
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
        return fail(format!("'{}' is not a Value ID (64 hex digits)", args.id));
    };
    let store = match EtchStore::open(&args.path, false) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let cell = match store.get(&id) {
        Ok(Some(c)) => c,
        Ok(None) => return fail(format!("no cell {id} in {}", args.path.display())),
        Err(e) => return fail(e),
    };
    let mut out = io::stdout().lock();
    if args.encoding {
        writeln!(out, "{} {}", cell.id(), hex::encode(cell.encoding()))?;
    } else {
        match print(&cell, &store) {
            Ok(text) => writeln!(out, "{text}")?,
            Err(e) => return fail(e),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `etch put`.
#[derive(clap::Args)]
#[command(
    long_about = "Reads one value per line from stdin (Convex-Lisp text) and stores each \
with all its branch cells, printing its Value ID. The store is created if it does not exist. \
Everything is durable when the command exits 0. A line that cannot be read prints \
`error: <kind>: <detail>`; the command goes on and exits 1."
)]
pub struct PutArgs {
    /// The store file (created if missing).
    path: PathBuf,
}

/// Runs `etch put`.
pub fn put(args: PutArgs) -> io::Result<ExitCode> {
    let store = match EtchStore::open_or_create(&args.path) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let code = super::per_line(|line, out| {
        let cell = read_one(line).map_err(|e| ("syntax".to_string(), e.to_string()))?;
        let id = store
            .put(&cell)
            .map_err(|e| ("store".to_string(), e.to_string()))?;
        writeln!(out, "{id}").map_err(|e| ("io".to_string(), e.to_string()))
    })?;
    if let Err(e) = store.commit() {
        return fail(e);
    }
    Ok(code)
}
