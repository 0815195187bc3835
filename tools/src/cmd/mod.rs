//! One module per subcommand.

pub mod bench;
pub mod compact;
pub mod completions;
pub mod convert;
pub mod copy;
pub mod decode;
pub mod disk;
pub mod disk_env;
pub mod disk_load;
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

impl From<etch_engine::store::StoreFormat> for FormatArg {
    fn from(f: etch_engine::store::StoreFormat) -> Self {
        match f {
            etch_engine::store::StoreFormat::Native => FormatArg::Native,
            etch_engine::store::StoreFormat::Cad047 => FormatArg::Cad047,
        }
    }
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

/// Exit status of a command that could not do what it was asked (no store, a locked store,
/// damage found, an I/O error). Usage mistakes caught before anything is touched exit with
/// [`EXIT_USAGE`], as clap's own argument errors do.
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a usage mistake: an argument that cannot be right (a malformed Value ID, an
/// output that already exists without --force).
pub const EXIT_USAGE: u8 = 2;

/// Prints `etch: msg` and returns [`EXIT_FAILED`].
pub fn failed(msg: impl std::fmt::Display) -> std::io::Result<ExitCode> {
    eprintln!("etch: {msg}");
    Ok(ExitCode::from(EXIT_FAILED))
}

/// Prints `etch: msg` and returns [`EXIT_USAGE`].
pub fn usage(msg: impl std::fmt::Display) -> std::io::Result<ExitCode> {
    eprintln!("etch: {msg}");
    Ok(ExitCode::from(EXIT_USAGE))
}

/// What a command does with the store it names, which decides what it says about a path that
/// holds no store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only: the store must exist. A native store is shared with a writer.
    Read,
    /// Writes to a store that must exist.
    Write,
    /// Writes, making a new store of this format where nothing is yet (never the folders
    /// above it).
    Create(FormatArg),
}

/// Checks `path` before a store is opened there, so that every command says the same thing
/// about the same mistake: nothing there, a folder that is not a store, a file that is not one.
/// A replacement by compaction that a crash interrupted is completed first, so a store that is
/// only mid-swap is found.
pub fn check_store_path(path: &std::path::Path, access: Access) -> Result<(), String> {
    let shown = path.display();
    etch_engine::store::swap::recover_replace(path).map_err(|e| format!("{shown}: {e}"))?;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match access {
                Access::Create(_) => {
                    let parent = path
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(std::path::Path::new("."));
                    if parent.is_dir() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{shown}: the folder {} does not exist; create it first (etch \
                             makes a store, never the folders above it)",
                            parent.display()
                        ))
                    }
                }
                Access::Read | Access::Write => Err(format!(
                    "{shown}: no store here; check the path (commands that read or change a \
                     store never create one: `etch put {shown}` or --create makes a new store)"
                )),
            };
        }
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    let empty_dir = || std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
    if meta.is_dir() {
        if etch_engine::store::native::is_native_store(path) {
            return Ok(());
        }
        if !empty_dir() {
            return Err(format!(
                "{shown}: a folder that is not an Etch store (a native store's folder holds a \
                 FORMAT file); name the store itself, or a new path to create one"
            ));
        }
        return match access {
            Access::Create(FormatArg::Native) => Ok(()),
            Access::Create(FormatArg::Cad047) => Err(format!(
                "{shown}: an empty folder; a CAD047 store is a file, so name a file path"
            )),
            Access::Read | Access::Write => Err(format!(
                "{shown}: an empty folder, not an Etch store (`etch put {shown}` or --create \
                 makes a new store in it)"
            )),
        };
    }
    if !meta.is_file() {
        return Err(format!(
            "{shown}: neither a folder nor a file, so not an Etch store"
        ));
    }
    match etch_engine::store::detect(path) {
        Some(_) => Ok(()),
        None => {
            let [m0, m1] = etch_engine::store::cad047::MAGIC;
            Err(format!(
                "{shown}: not an Etch store: a file that does not start with the CAD047 magic \
                 0x{m0:02X}{m1:02X} (and a native store is a folder); if it is a damaged store, \
                 `etch verify` and `etch recover` read what is left"
            ))
        }
    }
}

/// Opens the store at `path` in whatever format it has, after [`check_store_path`]; `access`
/// says whether it is opened for writing and whether a missing store is made. Errors are
/// ready to print.
pub fn open_any(
    path: &std::path::Path,
    access: Access,
) -> Result<etch_engine::store::AnyStore, String> {
    open_any_with(path, access, IoArg::default())
}

/// [`open_any`] with a chosen way of writing a native store's log.
pub fn open_any_with(
    path: &std::path::Path,
    access: Access,
    io: IoArg,
) -> Result<etch_engine::store::AnyStore, String> {
    open_checked(path, access, io).map_err(|e| match e {
        OpenError::Path(text) => text,
        OpenError::Store(e) => with_path(path, &e),
    })
}

/// [`open_any_with`] for a command that writes when it can and reads otherwise (`etch eval`,
/// `etch shell`): when another process holds a native store's write lock, the store is opened
/// read-only beside it, with a note on stderr. Returns the store and whether it is read-only
/// for that reason.
pub fn open_any_or_shared(
    path: &std::path::Path,
    access: Access,
    io: IoArg,
) -> Result<(etch_engine::store::AnyStore, bool), String> {
    use etch_engine::store::{native::NativeError, StoreError};
    match open_checked(path, access, io) {
        Ok(s) => Ok((s, false)),
        Err(OpenError::Store(StoreError::Native(NativeError::Locked { .. }))) => {
            let s = open_any_with(path, Access::Read, io)?;
            eprintln!(
                "etch: {}: another process is writing to this store; opened read-only beside \
                 it (reading works; writing fails until that process closes the store)",
                path.display()
            );
            Ok((s, true))
        }
        Err(OpenError::Path(text)) => Err(text),
        Err(OpenError::Store(e)) => Err(with_path(path, &e)),
    }
}

/// Why [`open_checked`] opened nothing.
enum OpenError {
    /// [`check_store_path`]'s message.
    Path(String),
    /// The store's own error.
    Store(etch_engine::store::StoreError),
}

fn open_checked(
    path: &std::path::Path,
    access: Access,
    io: IoArg,
) -> Result<etch_engine::store::AnyStore, OpenError> {
    check_store_path(path, access).map_err(OpenError::Path)?;
    let (writable, create) = match access {
        Access::Read => (false, None),
        Access::Write => (true, None),
        Access::Create(f) => (true, Some(f.into())),
    };
    let mut options = etch_engine::store::OpenOptions::read_only();
    options.writable = writable;
    options.create = create;
    options.native.io = io.into();
    etch_engine::store::open_store(path, &options).map_err(OpenError::Store)
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
