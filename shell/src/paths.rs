//! Where the shell keeps its files: the default store, the history and the node key.
//!
//! The directory is, in order of preference: `$ETCH_HOME`; `$XDG_DATA_HOME/etch`;
//! `$HOME/.local/share/etch`. It is created on first use.

use ed25519_dalek::SigningKey;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// File name of the default store inside the Etch directory.
pub const DEFAULT_STORE_NAME: &str = "default.etch";
/// File name of the shell history inside the Etch directory.
pub const HISTORY_NAME: &str = "history";
/// File name of the node key inside the Etch directory: a 32-byte Ed25519 seed.
pub const NODE_KEY_NAME: &str = "node.key";

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

/// The node key: the Ed25519 key pair whose seed is kept in `<Etch directory>/node.key`
/// ([`node_key_in`]). Its public key is the node's identity: the default owner of DLFS drives
/// and the owner of its NodeInfo.
pub fn node_key() -> io::Result<SigningKey> {
    let home = etch_home().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no home directory for the node key: set ETCH_HOME or HOME",
        )
    })?;
    node_key_in(&home)
}

/// The node key kept in `dir/node.key`: 32 raw bytes (the Ed25519 seed), file mode 0600. On
/// first use (no file) a seed is read from `/dev/urandom` and the file created atomically (a
/// complete file appears under its name or none does; when two processes race, both use the
/// one that won). A file of any other size is an error: it is never replaced.
pub fn node_key_in(dir: &Path) -> io::Result<SigningKey> {
    let path = dir.join(NODE_KEY_NAME);
    match read_key(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    std::fs::create_dir_all(dir)?;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let tmp = dir.join(format!("{NODE_KEY_NAME}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(&seed)?;
        f.sync_all()?;
        // Publish the complete file under its name; fails if another process got there first.
        std::fs::hard_link(&tmp, &path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(&path),
        Err(e) => Err(e),
    }
}

/// Reads a node key file: exactly 32 bytes.
fn read_key(path: &Path) -> io::Result<SigningKey> {
    let bytes = std::fs::read(path)?;
    let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: a node key is 32 bytes, this file has {} (it is left as it is; move it \
                 away to create a new key)",
                path.display(),
                bytes.len()
            ),
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("etch");
        let k1 = node_key_in(&home).unwrap();
        let path = home.join(NODE_KEY_NAME);
        assert_eq!(std::fs::read(&path).unwrap(), k1.to_bytes().to_vec());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let k2 = node_key_in(&home).unwrap();
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(NODE_KEY_NAME)]);
        // Another directory, another key.
        let other = node_key_in(&dir.path().join("other")).unwrap();
        assert_ne!(other.to_bytes(), k1.to_bytes());
    }

    #[test]
    fn a_key_file_of_the_wrong_size_is_an_error_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NODE_KEY_NAME);
        for content in [&b""[..], &[1u8; 31][..], &[1u8; 33][..]] {
            std::fs::write(&path, content).unwrap();
            let e = node_key_in(dir.path()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(
                e.to_string()
                    .contains(&format!("this file has {}", content.len())),
                "{e}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), content);
        }
        // A seed written by hand is used as it is.
        std::fs::write(&path, [9u8; 32]).unwrap();
        assert_eq!(node_key_in(dir.path()).unwrap().to_bytes(), [9u8; 32]);
    }
}
