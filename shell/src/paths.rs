//! Where the shell keeps its files: the default store and the history.
//!
//! The directory is, in order of preference: `$ETCH_HOME`; `$XDG_DATA_HOME/etch`;
//! `$HOME/.local/share/etch`. It is created on first use.

use std::path::PathBuf;

/// File name of the default store inside the Etch directory.
pub const DEFAULT_STORE_NAME: &str = "default.etch";
/// File name of the shell history inside the Etch directory.
pub const HISTORY_NAME: &str = "history";

/// The per-user Etch directory (not created).
pub fn etch_home() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(h) = nonempty("ETCH_HOME") {
        return Some(PathBuf::from(h));
    }
    if let Some(x) = nonempty("XDG_DATA_HOME") {
        return Some(PathBuf::from(x).join("etch"));
    }
    nonempty("HOME").map(|h| PathBuf::from(h).join(".local/share/etch"))
}

/// The default store's path, creating the Etch directory if needed.
pub fn default_store() -> std::io::Result<PathBuf> {
    let home = etch_home().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no home directory: set ETCH_HOME or HOME, or pass --store PATH",
        )
    })?;
    std::fs::create_dir_all(&home)?;
    Ok(home.join(DEFAULT_STORE_NAME))
}

/// The history file's path, if there is an Etch directory (created if needed).
pub fn history_file() -> Option<PathBuf> {
    let home = etch_home()?;
    std::fs::create_dir_all(&home).ok()?;
    Some(home.join(HISTORY_NAME))
}
