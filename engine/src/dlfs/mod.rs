//! DLFS local operations (lattice.md §7.4, §7.6–§7.8; query.md §6.3): locations and path
//! normalisation, node lookup, and the operations a node performs on its own drives —
//! `mkdir`, `put`, `rm`, `ls`, `stat`, `read` — as pure functions from a drive value (its root
//! directory node) to a new drive value.
//!
//! Node helpers and the drive merge live in [`crate::lattice::dlfs`]; where drives live in the
//! root (`[:fs owner :value drive]`) and how a new drive value is signed and committed is
//! [`crate::node::LocalNode::write_drive`].
//!
//! Rules that hold throughout:
//!
//! - Every write takes the timestamp `t = max(now, drive[3])` ([`write_time`]), stamps every
//!   ancestor of the written node with it (§7.7 `update`) and, for files, the file node too.
//! - Tombstones are "not found" for every user-facing operation; creating over one replaces it.
//! - Directory names are Index keys: a name of 32 bytes or more is identified by its first 32
//!   bytes, so creating a name that collides with a different existing name is refused
//!   ([`DlfsError::NameCollision`]).
//! - Messages carry the location as the caller wrote it (`<loc>`), and parents in their
//!   normalised form `drive/dir/...` (`<parent>`).

pub mod blob;
pub mod crypt;
pub mod host;
mod ops;
mod path;

pub use ops::{
    entries_live, find, lookup, ls, ls_long, mkdir, mkdrive, mv, purge_tombstones, put, read, rm,
    rmdrive, set_metadata, stat, update, write_time, Purged, Stat, StatKind,
};
pub use path::{is_valid_name, normalise, DlfsUri, DrivePath};

use etch_formats::ResolveError;

/// Why a DLFS operation failed. [`From<DlfsError> for EvalError`](crate::query::EvalError)
/// gives the query errors of query.md §6.3 with their exact messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DlfsError {
    /// Nothing (or only a tombstone) at the location: `:ARGUMENT`.
    #[error("No such file or directory: {0}")]
    NotFound(String),
    /// The location is a file where a directory is needed: `:ARGUMENT`.
    #[error("Not a directory: {0}")]
    NotADirectory(String),
    /// The location is a directory where a file is needed: `:ARGUMENT`.
    #[error("Is a directory: {0}")]
    IsADirectory(String),
    /// The parent of a new file or directory is missing or not a directory: `:ARGUMENT`.
    #[error("No such directory: {0}")]
    NoSuchDirectory(String),
    /// A drive, file or directory to be created exists: `:ARGUMENT`.
    #[error("Already exists: {0}")]
    AlreadyExists(String),
    /// `rm` of a directory with live entries: `:STATE`.
    #[error("Directory not empty: {0}")]
    DirectoryNotEmpty(String),
    /// `rm` of a drive root: `:ARGUMENT`.
    #[error("Cannot delete drive root")]
    CannotDeleteRoot,
    /// An empty path, or a location that names no drive: `:ARGUMENT`.
    #[error("Invalid path: {0}")]
    InvalidPath(String),
    /// A drive name that is empty, contains `/`, or is `.` or `..`: `:ARGUMENT`.
    #[error("Invalid drive name: {0}")]
    InvalidDriveName(String),
    /// A new name shares its first 32 bytes (its Index identity) with a different existing
    /// name in the same directory (lattice.md §7.4): `:ARGUMENT`.
    #[error("Name collides with existing name {existing} (same first 32 bytes): {loc}")]
    NameCollision {
        /// The location being created, as written.
        loc: String,
        /// The name already in the directory.
        existing: String,
    },
    /// A node on the way is not a well-formed DLFS node (lattice.md §7.2): `:STATE`.
    #[error("Malformed DLFS node: {0}")]
    Malformed(String),
    /// The node does not hold the key of the drive's owner (`owner` printed): `:TRUST`.
    #[error("Not authorised to write drive of owner {0}")]
    NotAuthorised(String),
    /// A cell could not be read (`Missing`: `:MISSING`).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl DlfsError {
    /// The query error code (without its colon) this error maps to (query.md §6.3, §8.1).
    pub fn code(&self) -> &'static str {
        match self {
            DlfsError::DirectoryNotEmpty(_) | DlfsError::Malformed(_) => "STATE",
            DlfsError::NotAuthorised(_) => "TRUST",
            DlfsError::Resolve(ResolveError::Missing(_)) => "MISSING",
            DlfsError::Resolve(_) => "IO",
            _ => "ARGUMENT",
        }
    }
}

use etch_formats::value::for_each_entry;
use etch_formats::{Cell, Kind, Resolver};

/// A keyword from a static, valid name.
pub(crate) fn kw(name: &'static str) -> Cell {
    Cell::keyword(name).unwrap_or_else(|_| Cell::nil())
}

/// Is `owner` a valid owner identity for the `:fs` region (lattice.md §4.1, §6.3): a 32-byte key
/// Blob, an Address, or a DID String (`did:…`)?
pub fn is_valid_owner(owner: &Cell) -> bool {
    match owner.kind() {
        Kind::Blob => owner.count() == 32,
        Kind::Extension(t) => t == etch_formats::tag::ADDRESS,
        Kind::String => owner.flat_bytes().is_some_and(|b| b.starts_with(b"did:")),
        _ => false,
    }
}

/// The path of an owner's drives map in the root: `[:fs owner :value]`.
pub fn drives_path(owner: &Cell) -> Vec<Cell> {
    vec![kw("fs"), owner.clone(), kw("value")]
}

/// The drives map (String name → drive node) of `owner` in `root`; nil when the owner has none.
pub fn drives_of(root: &Cell, owner: &Cell, r: &dyn Resolver) -> Result<Cell, ResolveError> {
    crate::lattice::value_at_path(root, &drives_path(owner), r)
}

/// The names of `owner`'s drives in `root`, in byte order.
pub fn drive_names(
    root: &Cell,
    owner: &Cell,
    r: &dyn Resolver,
) -> Result<Vec<String>, ResolveError> {
    let drives = drives_of(root, owner, r)?;
    let mut names = Vec::new();
    if drives.kind() == Kind::Map {
        for_each_entry(&drives, r, &mut |k, v| {
            let deleted = match v {
                Some(v) if !v.is_nil() => crate::lattice::dlfs::is_tombstone(&v, r)?,
                _ => false,
            };
            if k.kind() == Kind::String && !deleted {
                names.push(
                    String::from_utf8_lossy(&etch_formats::value::blob_bytes(&k, r)?).into_owned(),
                );
            }
            Ok(())
        })?;
    }
    names.sort();
    Ok(names)
}

/// The drive `name` of `owner` in `root` (its root directory node); nil when absent or
/// deleted (a tombstone).
pub fn drive(
    root: &Cell,
    owner: &Cell,
    name: &str,
    r: &dyn Resolver,
) -> Result<Cell, ResolveError> {
    let mut path = drives_path(owner);
    path.push(Cell::string(name));
    let d = crate::lattice::value_at_path(root, &path, r)?;
    if !d.is_nil() && crate::lattice::dlfs::is_tombstone(&d, r)? {
        return Ok(Cell::nil());
    }
    Ok(d)
}
