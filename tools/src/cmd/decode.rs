//! `etch decode`: hex multi-cell body → Convex-Lisp text.

use etch_formats::body::{decode_hex_body, HexBodyError};
use etch_formats::text::{print, PrintError};
use etch_formats::NoResolver;
use std::process::ExitCode;

/// Arguments of `etch decode`.
#[derive(clap::Args)]
#[command(
    long_about = "Reads one hex multi-cell body per line from stdin (the top cell, then \
VLQ-length-prefixed branch cells, as in peer messages) and prints each value in Convex-Lisp text \
on one line.\n\n\
A line that cannot be decoded prints `error: <kind>: <detail>` (kinds: hex, format, missing); \
the command goes on and exits 1. Format errors name the rule of the CAD003 spec and the byte offset."
)]
pub struct DecodeArgs {}

/// Runs the command.
pub fn run(_args: DecodeArgs) -> std::io::Result<ExitCode> {
    super::per_line(|line, out| {
        let body = decode_hex_body(line).map_err(|e| match e {
            HexBodyError::Hex(d) => ("hex".to_string(), d),
            HexBodyError::Decode(d) => ("format".to_string(), d.to_string()),
        })?;
        let text = print(&body.top, &NoResolver).map_err(|e| match e {
            PrintError::Missing(id) => {
                ("missing".to_string(), format!("cell {id} was not supplied"))
            }
            other => ("print".to_string(), other.to_string()),
        })?;
        writeln!(out, "{text}").map_err(|e| ("io".to_string(), e.to_string()))
    })
}
