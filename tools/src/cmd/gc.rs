//! `etch gc --connect HOST:PORT`: compacts a running node's store while it serves (issue 15;
//! `etch_engine::gc`, docs/PROVIDER.md "Reclaim space"), the query `(gc)` sent with admin rights.

use super::shell::client_key;
use etch_engine::lattice::value_at_path;
use etch_formats::{Cell, NoResolver};
use etch_server::client::BlockingClient;
use std::io::{self, Write};
use std::process::ExitCode;

/// Arguments of `etch gc`.
#[derive(clap::Args)]
#[command(
    long_about = "Compacts a running node's store while it serves: the cells the node keeps \
(everything its root reaches, the pins included; on a --hold pinned node only the lattice \
skeleton and the pinned trees) are copied into a new store beside the old one, which then \
replaces it (the renames of etch compact, safe at every instant). Writes wait while it runs; \
reads go on, and a read that was walking a dropped tree is answered by the old store for 60 s. \
Extra disk while it runs: the size of what is kept.\n\n\
Needs admin rights: this Etch directory's key must be the node's own or one it lists with \
--admin. A stopped store is compacted with etch compact; a node compacts itself every SECS with \
etch serve --gc-interval SECS.\n\n\
Prints the bytes before and after; --json prints {\"bytes_before\", \"bytes_after\", \
\"reclaimed\", \"cells\", \"seconds\"}. Exit status 0, or 1 when the node refused or failed."
)]
pub struct GcArgs {
    /// The node (`etch serve`).
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `etch gc`.
pub fn run(args: GcArgs) -> io::Result<ExitCode> {
    let client = match BlockingClient::connect(&args.connect, client_key()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("etch: cannot connect to {}: {e}", args.connect);
            return Ok(ExitCode::FAILURE);
        }
    };
    let form = Cell::list(vec![Cell::symbol("gc").map_err(io::Error::other)?]);
    let v = match etch_shell::remote::eval_remote_form(&client, form) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("etch: {}: :{} {}", args.connect, e.code, e.message);
            return Ok(ExitCode::FAILURE);
        }
    };
    let field = |name: &str| -> Cell {
        Cell::keyword(name)
            .ok()
            .and_then(|k| value_at_path(&v, &[k], &NoResolver).ok())
            .unwrap_or_else(Cell::nil)
    };
    let long = |name: &str| field(name).as_long().unwrap_or(0).max(0) as u64;
    let (before, after, cells) = (long("bytes-before"), long("bytes-after"), long("cells"));
    let seconds = field("seconds").as_double().unwrap_or(0.0);
    let reclaimed = before.saturating_sub(after);
    let mut out = io::stdout().lock();
    if args.json {
        let j = serde_json::json!({"bytes_before": before, "bytes_after": after,
            "reclaimed": reclaimed, "cells": cells, "seconds": seconds});
        writeln!(out, "{j}")?;
    } else {
        writeln!(
            out,
            "{}: compacted while serving: {before} bytes before, {after} after, reclaimed \
             {reclaimed} bytes; {cells} cells kept, {seconds:.2} s",
            args.connect
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
