//! The files of a native store's directory (FORMAT.md §1): their names, the errors the store
//! reports about them, and syncing the directory itself.

use super::run::RunError;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub(super) const LOG_FILE: &str = "log";
pub(super) const FORMAT_FILE: &str = "FORMAT";
pub(super) const SNAPSHOTS_FILE: &str = "snapshots";
pub(super) const LOCK_FILE: &str = "LOCK";

/// Errors of the native store.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The operating system refused an operation.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The path is not a native store.
    #[error("{path}: not a native Etch store: {detail}")]
    NotNative {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The log breaks an invariant of FORMAT.md.
    #[error("{path}: corrupt log at offset {offset}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What was found.
        detail: String,
    },
    /// An index run is damaged or missing.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Another process holds the store's write lock.
    #[error(
        "{path}: the store is locked by another writer (an etch shell, serve or writing command); \
         close it and retry (commands that only read work meanwhile)"
    )]
    Locked {
        /// The store.
        path: PathBuf,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// A log write or sync failed earlier; the store must be reopened.
    #[error("{0}; reopen the store (recovery returns it to the last commit)")]
    WriterFailed(String),
    /// The log is damaged where acknowledged commits lie: writing on would bury the damage.
    #[error(
        "{path}: the log is damaged at offset {offset}: {detail}. The store is not opened for \
         writing; read-only commands still read what is intact. Run `etch verify {path}` to see \
         the damage and `etch recover {path} --output NEW` to salvage every intact record and the \
         newest complete root into a new store"
    )]
    Damaged {
        /// The store.
        path: PathBuf,
        /// Where the first damage is.
        offset: u64,
        /// What is damaged.
        detail: String,
    },
    /// No commit with this sequence number.
    #[error("no snapshot {0}")]
    NoSnapshot(u64),
    /// The log reached the length a store can read back (16 TiB); nothing more is appended.
    #[error("{path}: the log is full ({bytes} bytes); compact the store or start a new one")]
    Full {
        /// The store.
        path: PathBuf,
        /// The log's readable length.
        bytes: u64,
    },
}

pub(super) fn io_at(path: &Path) -> impl Fn(io::Error) -> NativeError + '_ {
    move |source| NativeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), NativeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}
