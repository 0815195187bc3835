//! Replacing a store by a new copy of itself (compaction) so that a crash at any instant leaves,
//! at the store's path, either the old store intact or the new one complete.
//!
//! The new store is built beside the old one at `PATH.compact-tmp` and synced completely first.
//! Then:
//!
//! - a CAD047 file is renamed over `PATH` in one step (`rename(2)` replaces a file atomically);
//! - a native store (a directory, which `rename(2)` cannot put over a non-empty directory) takes
//!   three: rename `PATH` to `PATH.compact-old`, rename `PATH.compact-tmp` to `PATH`, delete
//!   `PATH.compact-old`, with the parent directory synced after each rename.
//!
//! A crash between those steps leaves one of these states, which [`recover_replace`] (called by
//! [`super::open_store`] before it looks at `PATH`) completes:
//!
//! | found | meaning | recovery |
//! |---|---|---|
//! | `PATH`, maybe `PATH.compact-tmp` | not swapped yet: the old store is live | none (a leftover temporary is removed by the next compaction, which holds the store's lock) |
//! | `PATH.compact-old` and `PATH.compact-tmp`, no `PATH` | between the renames; the new store was complete before the old one moved | rename `PATH.compact-tmp` to `PATH`, delete the old one |
//! | `PATH` and `PATH.compact-old` | swapped, old not yet (fully) deleted | delete `PATH.compact-old` |
//! | `PATH.compact-old` only | (not produced by the protocol) | rename it back to `PATH` |

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The steps of [`replace_with`], reported to its observer after each one is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapStep {
    /// The old directory store was renamed to `PATH.compact-old`.
    OldAside,
    /// The new store was renamed to `PATH` (the replacement is now in effect).
    NewIn,
    /// The old store was deleted.
    OldDeleted,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Where a replacement for the store at `path` is built: `PATH.compact-tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".compact-tmp")
}

/// Where the old directory store waits during a replacement: `PATH.compact-old`.
pub fn old_path(path: &Path) -> PathBuf {
    with_suffix(path, ".compact-old")
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Deletes a file or a directory tree; a path that is already gone is fine.
pub fn remove_any(p: &Path) -> io::Result<()> {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Syncs the directory holding `path`, so renames in it are durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)?.sync_all()
}

/// Completes (or, where the new store cannot be complete, undoes) a replacement of the store
/// at `path` that a crash interrupted; does nothing when none was under way. Idempotent.
pub fn recover_replace(path: &Path) -> io::Result<()> {
    let (tmp, old) = (tmp_path(path), old_path(path));
    if !exists(path) && exists(&old) {
        let from = if exists(&tmp) { &tmp } else { &old };
        match fs::rename(from, path) {
            // Another process finished it meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound && exists(path) => {}
            other => other?,
        }
        sync_parent(path)?;
    }
    if exists(path) && exists(&old) {
        remove_any(&old)?;
    }
    Ok(())
}

/// Replaces the store at `path` by the complete, synced store at [`tmp_path`]`(path)`, as the
/// module documentation says; `observe` is called after each step (tests crash there).
pub fn replace_with(path: &Path, observe: &mut dyn FnMut(SwapStep)) -> io::Result<()> {
    let (tmp, old) = (tmp_path(path), old_path(path));
    if fs::symlink_metadata(path)?.is_dir() {
        remove_any(&old)?;
        fs::rename(path, &old)?;
        sync_parent(path)?;
        observe(SwapStep::OldAside);
        match fs::rename(&tmp, path) {
            // A reader's recovery moved it in meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound && exists(path) => {}
            other => other?,
        }
        sync_parent(path)?;
        observe(SwapStep::NewIn);
        remove_any(&old)?;
        observe(SwapStep::OldDeleted);
    } else {
        fs::rename(&tmp, path)?;
        sync_parent(path)?;
        observe(SwapStep::NewIn);
        observe(SwapStep::OldDeleted);
    }
    Ok(())
}

/// [`replace_with`] without an observer.
pub fn replace(path: &Path) -> io::Result<()> {
    replace_with(path, &mut |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interrupted_state_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store");
        let mk = |at: &Path, tag: &str| {
            fs::create_dir_all(at).unwrap();
            fs::write(at.join("FORMAT"), tag).unwrap();
        };
        let tag = |at: &Path| fs::read_to_string(at.join("FORMAT")).unwrap();
        // Between the renames: roll forward.
        mk(&old_path(&p), "old");
        mk(&tmp_path(&p), "new");
        recover_replace(&p).unwrap();
        assert_eq!(tag(&p), "new");
        assert!(!exists(&old_path(&p)) && !exists(&tmp_path(&p)));
        // Swapped, old left over.
        mk(&old_path(&p), "old");
        recover_replace(&p).unwrap();
        assert_eq!(tag(&p), "new");
        assert!(!exists(&old_path(&p)));
        // Not swapped: a temporary is left alone.
        mk(&tmp_path(&p), "newer");
        recover_replace(&p).unwrap();
        assert_eq!(tag(&p), "new");
        // A full replacement, observed.
        let mut steps = Vec::new();
        replace_with(&p, &mut |s| steps.push(s)).unwrap();
        assert_eq!(tag(&p), "newer");
        assert_eq!(
            steps,
            [SwapStep::OldAside, SwapStep::NewIn, SwapStep::OldDeleted]
        );
        // Only the old one: rolled back.
        fs::rename(&p, old_path(&p)).unwrap();
        recover_replace(&p).unwrap();
        assert_eq!(tag(&p), "newer");
        // A file store.
        let f = dir.path().join("s.etch");
        fs::write(&f, "old").unwrap();
        fs::write(tmp_path(&f), "new").unwrap();
        replace(&f).unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "new");
    }
}
