//! One module per subcommand.

pub mod bench;
pub mod compact;
pub mod convert;
pub mod copy;
pub mod decode;
pub mod disk;
pub mod drive;
pub mod encode;
pub mod eval;
pub mod export;
pub mod gc;
pub mod inspect;
pub mod key;
pub mod mcp;
pub mod pin;
pub mod recover;
pub mod scan;
pub mod serve;
pub mod shell;
pub mod status;
pub mod store;
pub mod verify;

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

/// The `--format` of a store a command may create.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatArg {
    /// Etch's own append-only log (docs/FORMAT.md): fastest, with snapshots. The default.
    #[default]
    Native,
    /// The Convex-compatible CAD047 Etch file, readable by Convex peers.
    Cad047,
}

impl From<FormatArg> for etch_engine::store::StoreFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Native => etch_engine::store::StoreFormat::Native,
            FormatArg::Cad047 => etch_engine::store::StoreFormat::Cad047,
        }
    }
}

/// How a native store writes its log (`--io`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoArg {
    /// io_uring with registered buffers; falls back to pwrite (with a note) where the kernel
    /// or a container refuses io_uring.
    #[default]
    Uring,
    /// Plain pwrite + fdatasync.
    Pwrite,
}

impl From<IoArg> for etch_engine::store::native::IoMode {
    fn from(i: IoArg) -> Self {
        match i {
            IoArg::Uring => etch_engine::store::native::IoMode::Uring,
            IoArg::Pwrite => etch_engine::store::native::IoMode::Pwrite,
        }
    }
}

/// Opens the store at `path` in whatever format it has; a writable open creates a store of
/// `create` when nothing is there. Errors are ready to print.
pub fn open_any(
    path: &std::path::Path,
    writable: bool,
    create: FormatArg,
) -> Result<etch_engine::store::AnyStore, String> {
    open_any_with(path, writable, create, IoArg::default())
}

/// [`open_any`] with a chosen way of writing a native store's log.
pub fn open_any_with(
    path: &std::path::Path,
    writable: bool,
    create: FormatArg,
    io: IoArg,
) -> Result<etch_engine::store::AnyStore, String> {
    let mut options = etch_engine::store::OpenOptions::writable(create.into());
    options.writable = writable;
    options.native.io = io.into();
    etch_engine::store::open_store(path, &options).map_err(|e| with_path(path, &e))
}

/// An error's text starting with the path it concerns (errors that already name it first are
/// left as they are, so no message says the path twice).
pub fn with_path(path: &std::path::Path, e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let shown = path.display().to_string();
    if text.starts_with(&shown) {
        text
    } else {
        format!("{shown}: {text}")
    }
}

pub use etch_engine::node::iso_time;
