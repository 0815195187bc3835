//! One module per subcommand.

pub mod decode;
pub mod encode;
pub mod eval;
pub mod shell;
pub mod store;

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

/// Runs `handle` on each non-blank line of stdin, writing its output lines (or one
/// `error: <kind>: <detail>` line) to stdout. Exits 1 at the end if any line failed.
pub fn per_line(
    mut handle: impl FnMut(&str, &mut dyn Write) -> Result<(), (String, String)>,
) -> io::Result<ExitCode> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    for line in stdin.lock().lines() {
        let line = line?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut buf: Vec<u8> = Vec::new();
        match handle(line, &mut buf) {
            Ok(()) => out.write_all(&buf)?,
            Err((kind, detail)) => {
                failed = true;
                let detail = detail.replace('\n', " ");
                writeln!(out, "error: {kind}: {detail}")?;
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
