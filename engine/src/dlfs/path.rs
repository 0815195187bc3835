//! Paths and locations (lattice.md §7.8, query.md §6.3).

use super::DlfsError;

/// Is `name` usable as a directory entry or drive name (lattice.md §7.4): non-empty, no `/`,
/// and not one of the path operators `.` and `..`?
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

/// Normalises a `/`-separated path (lattice.md §7.8): returns whether it is absolute (leading
/// `/`) and its components. Empty components (`a//b`, a trailing `/`, which counts as `/.`)
/// and `.` are dropped; `..` removes the previous component, and at the start it is dropped in
/// an absolute path and kept in a relative one. The empty string is invalid.
///
/// ```
/// use etch_engine::dlfs::normalise;
/// assert_eq!(normalise("/a/./b/../c/").unwrap(), (true, vec!["a".to_string(), "c".to_string()]));
/// assert_eq!(normalise("../a").unwrap(), (false, vec!["..".to_string(), "a".to_string()]));
/// assert!(normalise("").is_err());
/// ```
pub fn normalise(path: &str) -> Result<(bool, Vec<String>), DlfsError> {
    if path.is_empty() {
        return Err(DlfsError::InvalidPath(String::new()));
    }
    let absolute = path.starts_with('/');
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => match out.last() {
                Some(last) if last != ".." => {
                    out.pop();
                }
                _ if absolute => {}
                _ => out.push("..".to_string()),
            },
            name => out.push(name.to_string()),
        }
    }
    Ok((absolute, out))
}

/// A location in the drives of one owner: `"drive/path/in/drive"` (query.md §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrivePath {
    /// The drive name (the first component).
    pub drive: String,
    /// The components inside the drive; empty for the drive root.
    pub path: Vec<String>,
    /// The location as written, for messages.
    pub text: String,
}

impl DrivePath {
    /// Parses a location: the whole string is normalised as an absolute path (a leading `/` is
    /// optional, so `..` never climbs above the owner's drives) and its first component is the
    /// drive. A location that normalises to nothing (`""`, `"/"`, `"home/.."`) is
    /// [`DlfsError::InvalidPath`].
    pub fn parse(text: &str) -> Result<DrivePath, DlfsError> {
        let invalid = || DlfsError::InvalidPath(text.to_string());
        let (_, mut comps) = normalise(&format!("/{text}")).map_err(|_| invalid())?;
        if text.is_empty() || comps.is_empty() {
            return Err(invalid());
        }
        let drive = comps.remove(0);
        Ok(DrivePath {
            drive,
            path: comps,
            text: text.to_string(),
        })
    }

    /// The normalised location: `drive/a/b` (no leading `/`).
    pub fn normalised(&self) -> String {
        join(&self.drive, &self.path)
    }

    /// The normalised location of the parent directory (`drive` for a top-level entry, and for
    /// the drive root itself).
    pub fn parent_text(&self) -> String {
        let n = self.path.len().saturating_sub(1);
        join(&self.drive, &self.path[..n])
    }

    /// The last component (the drive for the drive root).
    pub fn name(&self) -> &str {
        self.path.last().unwrap_or(&self.drive)
    }
}

fn join(drive: &str, comps: &[String]) -> String {
    let mut s = drive.to_string();
    for c in comps {
        s.push('/');
        s.push_str(c);
    }
    s
}

/// A `dlfs:` URI (lattice.md §7.9), parsed: who owns the drive, where it resolves, and the
/// location in it. The owner is kept as written (a user name, a `did:key:…`, a hex key); what
/// it names is for the caller to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlfsUri {
    /// The host of `dlfs://host/…`; `None` for the other forms.
    pub host: Option<String>,
    /// True for `dlfs:local:…` (a local drive, not publicly resolvable).
    pub local: bool,
    /// The owner component as written.
    pub owner: String,
    /// The drive and the path in it.
    pub location: DrivePath,
}

impl DlfsUri {
    /// Parses `dlfs:owner/drive/path`, `dlfs://host/owner/drive/path`,
    /// `dlfs:local:owner/drive/path`, `https://host/dlfs/owner/drive/path` and
    /// `did:key:z…/dlfs/drive/path` (the DID is the owner). `None` when `text` is none of
    /// these; [`DlfsError::InvalidPath`] when it is one but names no drive.
    pub fn parse(text: &str) -> Option<Result<DlfsUri, DlfsError>> {
        let invalid = || DlfsError::InvalidPath(text.to_string());
        let (host, local, rest) = if let Some(rest) = text.strip_prefix("dlfs://") {
            let (host, rest) = rest.split_once('/').unwrap_or((rest, ""));
            (Some(host.to_string()), false, rest)
        } else if let Some(rest) = text.strip_prefix("dlfs:local:") {
            (None, true, rest)
        } else if let Some(rest) = text.strip_prefix("dlfs:") {
            (None, false, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            let (host, rest) = rest.split_once("/dlfs/")?;
            (Some(host.to_string()), false, rest)
        } else if text.starts_with("did:") {
            let (did, rest) = text.split_once("/dlfs/")?;
            return Some(
                DrivePath::parse(rest)
                    .map_err(|_| invalid())
                    .map(|location| DlfsUri {
                        host: None,
                        local: false,
                        owner: did.to_string(),
                        location,
                    }),
            );
        } else {
            return None;
        };
        let Some((owner, loc)) = rest.split_once('/') else {
            return Some(Err(invalid()));
        };
        if owner.is_empty() {
            return Some(Err(invalid()));
        }
        Some(
            DrivePath::parse(loc)
                .map_err(|_| invalid())
                .map(|location| DlfsUri {
                    host,
                    local,
                    owner: owner.to_string(),
                    location,
                }),
        )
    }
}
