//! `etch encode`: text → Value ID and encoding.

use etch_formats::text::read::read_one;
use etch_formats::{branches_preorder, gen, NoResolver};
use std::process::ExitCode;

/// Arguments of `etch encode`.
#[derive(clap::Args)]
#[command(
    long_about = "Reads one value per line from stdin in Convex-Lisp text (or a `gen:` \
generator spec of the reference vectors) and prints `<value-id-hex> <encoding-hex>` for each.\n\n\
With --cells, every distinct non-embedded cell reachable from the value follows, one per line as \
`  <value-id-hex> <encoding-hex>`, in depth-first pre-order.\n\n\
A line that cannot be encoded prints `error: <kind>: <detail>`; the command goes on and exits 1."
)]
pub struct EncodeArgs {
    /// Also print every branch cell reachable from each value.
    #[arg(long)]
    cells: bool,
}

/// Runs the command.
pub fn run(args: EncodeArgs) -> std::io::Result<ExitCode> {
    super::per_line(|line, out| {
        let cell = if line.starts_with("gen:") {
            gen::generate(line).map_err(|e| ("build".to_string(), e.to_string()))?
        } else {
            read_one(line).map_err(|e| ("syntax".to_string(), e.to_string()))?
        };
        let io = |e: std::io::Error| ("io".to_string(), e.to_string());
        writeln!(out, "{} {}", cell.id(), hex::encode(cell.encoding())).map_err(io)?;
        if args.cells {
            let branches = branches_preorder(&cell, &NoResolver)
                .map_err(|e| ("missing".to_string(), e.to_string()))?;
            for b in branches {
                writeln!(out, "  {} {}", b.id(), hex::encode(b.encoding())).map_err(io)?;
            }
        }
        Ok(())
    })
}
