//! Opening a store of either format: detection of existing stores, a chosen format for new ones.

use super::native::{is_native_store, NativeOptions, NativeStore};
use super::{CellStore, EtchStore, StoreError};
use std::path::Path;
use std::sync::Arc;

/// The on-disk formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFormat {
    /// Etch's own append-only log (docs/FORMAT.md): the default for new stores.
    Native,
    /// The Convex-compatible CAD047 Etch file (etch.md).
    Cad047,
}

impl StoreFormat {
    /// The name users type (`--format native|cad047`).
    pub fn name(self) -> &'static str {
        match self {
            StoreFormat::Native => "native",
            StoreFormat::Cad047 => "cad047",
        }
    }

    /// Parses a `--format` value.
    pub fn parse(s: &str) -> Option<StoreFormat> {
        match s {
            "native" => Some(StoreFormat::Native),
            "cad047" | "etch" => Some(StoreFormat::Cad047),
            _ => None,
        }
    }
}

/// The format of the store at `path`, if there is one: a native store is a directory with a
/// `FORMAT` file; a CAD047 store is a file starting with the Etch magic.
pub fn detect(path: &Path) -> Option<StoreFormat> {
    if path.is_dir() {
        return is_native_store(path).then_some(StoreFormat::Native);
    }
    let mut magic = [0u8; 2];
    let f = std::fs::File::open(path).ok()?;
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut magic, 0).ok()?;
    (magic == super::cad047::MAGIC).then_some(StoreFormat::Cad047)
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Open for writing (taking the store's write lock).
    pub writable: bool,
    /// Create the store in this format if nothing exists at the path (writable opens only).
    pub create: Option<StoreFormat>,
    /// Options of the native backend.
    pub native: NativeOptions,
}

impl OpenOptions {
    /// Read-only, no creation.
    pub fn read_only() -> OpenOptions {
        OpenOptions {
            writable: false,
            create: None,
            native: NativeOptions::default(),
        }
    }

    /// Writable, creating a store of `format` when the path does not exist.
    pub fn writable(create: StoreFormat) -> OpenOptions {
        OpenOptions {
            writable: true,
            create: Some(create),
            native: NativeOptions::default(),
        }
    }
}

/// An open store of either format.
pub enum AnyStore {
    /// A native store.
    Native(Arc<NativeStore>),
    /// A CAD047 store.
    Cad047(Arc<EtchStore>),
}

impl AnyStore {
    /// The store as the common interface.
    pub fn cell_store(&self) -> Arc<dyn CellStore> {
        match self {
            AnyStore::Native(s) => s.clone(),
            AnyStore::Cad047(s) => s.clone(),
        }
    }

    /// Its format.
    pub fn format(&self) -> StoreFormat {
        match self {
            AnyStore::Native(_) => StoreFormat::Native,
            AnyStore::Cad047(_) => StoreFormat::Cad047,
        }
    }
}

/// Opens the store at `path` in whatever format it has, or creates one as `options` say.
/// A replacement by compaction that a crash interrupted is completed first
/// ([`super::swap::recover_replace`]), so the path holds the old store or the complete new one.
pub fn open_store(path: &Path, options: &OpenOptions) -> Result<AnyStore, StoreError> {
    super::swap::recover_replace(path).map_err(|source| {
        StoreError::Native(super::native::NativeError::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    let not_found = || {
        StoreError::Native(super::native::NativeError::NotNative {
            path: path.to_path_buf(),
            detail: "no store here".into(),
        })
    };
    match detect(path) {
        Some(StoreFormat::Native) => Ok(AnyStore::Native(Arc::new(NativeStore::open(
            path,
            options.writable,
            options.native.clone(),
        )?))),
        Some(StoreFormat::Cad047) => Ok(AnyStore::Cad047(Arc::new(EtchStore::open(
            path,
            options.writable,
        )?))),
        None if path.exists() && !(path.is_dir() && dir_is_empty(path)) => {
            Err(StoreError::Native(super::native::NativeError::NotNative {
                path: path.to_path_buf(),
                detail: "neither a native store directory nor a CAD047 Etch file".into(),
            }))
        }
        None => match (options.writable, options.create) {
            (true, Some(StoreFormat::Native)) => Ok(AnyStore::Native(Arc::new(
                NativeStore::create(path, options.native.clone())?,
            ))),
            (true, Some(StoreFormat::Cad047)) => {
                Ok(AnyStore::Cad047(Arc::new(EtchStore::create(path)?)))
            }
            _ => Err(not_found()),
        },
    }
}

fn dir_is_empty(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}
