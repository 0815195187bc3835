//! Lookup and the local operations over a drive value (lattice.md §7.6, §7.7).

use super::{is_valid_name, DlfsError, DrivePath};
use crate::lattice::dlfs as node;
use etch_formats::coll::{self, Change, KeyId, MapKind};
use etch_formats::value::{blob_bytes, elements, for_each_index_entry, vector_get};
use etch_formats::{Cell, Kind, ResolveError, Resolver, ValueId};

type Res<T> = Result<T, DlfsError>;

/// What a node is (lattice.md §7.2).
enum Node {
    /// A directory, with its entries Index.
    Directory(Cell),
    /// A file, with its contents Blob.
    File(Cell),
    /// Neither: a deletion marker.
    Tombstone,
    /// Not a Vector of at least 4 elements with element 3 a Long, element 0 nil or an Index and
    /// element 1 nil or a Blob.
    Malformed,
}

fn classify(n: &Cell, r: &dyn Resolver) -> Result<Node, ResolveError> {
    if n.kind() != Kind::Vector || n.count() < 4 {
        return Ok(Node::Malformed);
    }
    let get =
        |i| -> Result<Cell, ResolveError> { Ok(vector_get(n, i, r)?.unwrap_or_else(Cell::nil)) };
    if get(3)?.kind() != Kind::Long {
        return Ok(Node::Malformed);
    }
    let (dir, file) = (get(0)?, get(1)?);
    Ok(match (dir.kind(), file.kind()) {
        (Kind::Index, Kind::Nil | Kind::Blob) => Node::Directory(dir),
        (Kind::Nil, Kind::Blob) => Node::File(file),
        (Kind::Nil, Kind::Nil) => Node::Tombstone,
        _ => Node::Malformed,
    })
}

/// The Index identity of a name: its first 32 bytes (lattice.md §7.4).
pub(crate) fn name_kid(name: &str) -> KeyId {
    let n = name.len();
    KeyId {
        bytes: name.as_bytes()[..n.min(32)].to_vec(),
        hex: (n.saturating_mul(2)).min(64),
    }
}

/// The text of a String key (any size).
fn key_text(k: &Cell, r: &dyn Resolver) -> Result<String, ResolveError> {
    Ok(match k.flat_bytes() {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => String::from_utf8_lossy(&blob_bytes(k, r)?).into_owned(),
    })
}

/// The entry of a directory whose Index identity is that of `name`: `(stored name, node)`.
/// The stored name differs from `name` only when both are 32 bytes or longer with the same
/// first 32 bytes.
fn entry(
    entries: &Cell,
    name: &str,
    r: &dyn Resolver,
) -> Result<Option<(String, Cell)>, ResolveError> {
    match coll::index_get(entries, &name_kid(name), r)? {
        Some((k, v)) => Ok(Some((key_text(&k, r)?, v.fetch(r)?))),
        None => Ok(None),
    }
}

/// The child named exactly `name` of a directory's entries (tombstones included).
fn child(entries: &Cell, name: &str, r: &dyn Resolver) -> Result<Option<Cell>, ResolveError> {
    Ok(entry(entries, name, r)?.and_then(|(k, n)| (k == name).then_some(n)))
}

/// The raw navigator (lattice.md §7.8): the node at `path` in `drive` (a nil drive has
/// nothing), walking directory Indexes by name; `None` for a missing name or a step through a
/// non-directory. A tombstone at the final step is returned as it is.
pub fn lookup(
    drive: &Cell,
    path: &[String],
    r: &dyn Resolver,
) -> Result<Option<Cell>, ResolveError> {
    if drive.is_nil() {
        return Ok(None);
    }
    let mut n = drive.clone();
    for name in path {
        let Node::Directory(entries) = classify(&n, r)? else {
            return Ok(None);
        };
        match child(&entries, name, r)? {
            Some(c) => n = c,
            None => return Ok(None),
        }
    }
    Ok(Some(n))
}

/// The user-facing lookup: as [`lookup`], with a tombstone reported as not found.
pub fn find(drive: &Cell, path: &[String], r: &dyn Resolver) -> Result<Option<Cell>, ResolveError> {
    match lookup(drive, path, r)? {
        Some(n) if matches!(classify(&n, r)?, Node::Tombstone) => Ok(None),
        found => Ok(found),
    }
}

/// The live (non-tombstone) entries of a directory's entries Index, in Index (byte) order.
pub fn entries_live(entries: &Cell, r: &dyn Resolver) -> Result<Vec<(String, Cell)>, ResolveError> {
    let mut out = Vec::new();
    if entries.kind() != Kind::Index {
        return Ok(out);
    }
    for_each_index_entry(entries, r, &mut |k, v| {
        if !matches!(classify(&v, r)?, Node::Tombstone) {
            out.push((key_text(&k, r)?, v));
        }
        Ok(())
    })?;
    Ok(out)
}

/// The timestamp of a write to `drive` at wall-clock `now` (lattice.md §7.7):
/// `max(now, drive[3])`, so that a drive's time never goes backwards.
pub fn write_time(drive: &Cell, now: i64, r: &dyn Resolver) -> Result<i64, ResolveError> {
    Ok(node::update_time(drive, r)?.map_or(now, |t| t.max(now)))
}

/// `node` with element 0 set to `entries` and element 3 to `t`; every other element (metadata,
/// elements beyond 3) kept.
fn with_entries(n: &Cell, entries: Cell, t: i64, r: &dyn Resolver) -> Result<Cell, ResolveError> {
    let mut items = elements(n, r)?;
    items[0] = entries;
    items[3] = Cell::long(t);
    Ok(Cell::vector(items))
}

/// `update(root, path, new_node, t)` (lattice.md §7.7, reference `DLFSNode.updateNode`): the
/// tree with `new_node` at `path` and every ancestor's update time set to `t`. A nil
/// `new_node` removes a direct entry physically (never used for deletion, which writes a
/// tombstone). Fails with [`DlfsError::NotADirectory`] when an ancestor is not a directory.
pub fn update(root: &Cell, path: &[String], new_node: Cell, t: i64, r: &dyn Resolver) -> Res<Cell> {
    update_at(root, path, 0, new_node, t, r)
}

/// [`update`] of `path[depth..]` under `root`, the node at `path[..depth]`.
fn update_at(
    root: &Cell,
    path: &[String],
    depth: usize,
    new_node: Cell,
    t: i64,
    r: &dyn Resolver,
) -> Res<Cell> {
    let Some(name) = path.get(depth) else {
        return Ok(new_node);
    };
    let not_dir = |n: usize| {
        let at = path[..n].join("/");
        DlfsError::NotADirectory(if at.is_empty() { "/".to_string() } else { at })
    };
    let Node::Directory(entries) = classify(root, r)? else {
        return Err(not_dir(depth));
    };
    let old = child(&entries, name, r)?.unwrap_or_else(Cell::nil);
    if depth + 1 < path.len() && old.is_nil() {
        return Err(not_dir(depth + 1));
    }
    let new_child = update_at(&old, path, depth + 1, new_node, t, r)?;
    let had = coll::index_get(&entries, &name_kid(name), r)?.is_some();
    let change = Change {
        key: Cell::string(name),
        kid: Some(name_kid(name)),
        had,
        value: (!new_child.is_nil()).then_some(new_child),
    };
    let entries = coll::apply_changes(MapKind::Index, &entries, vec![change], r)?;
    Ok(with_entries(root, entries, t, r)?)
}

/// The parent directory's entries of `p`, or [`DlfsError::NoSuchDirectory`].
fn parent_entries(drive: &Cell, p: &DrivePath, r: &dyn Resolver) -> Res<Cell> {
    let n = p.path.len().saturating_sub(1);
    match find(drive, &p.path[..n], r)? {
        Some(parent) => match classify(&parent, r)? {
            Node::Directory(entries) => Ok(entries),
            _ => Err(DlfsError::NoSuchDirectory(p.parent_text())),
        },
        None => Err(DlfsError::NoSuchDirectory(p.parent_text())),
    }
}

/// The existing live node under the name of `p` in `entries`: `None` when absent or a
/// tombstone; [`DlfsError::NameCollision`] when a different name has the same Index identity.
fn existing(entries: &Cell, p: &DrivePath, r: &dyn Resolver) -> Res<Option<Cell>> {
    let name = p.name();
    match entry(entries, name, r)? {
        None => Ok(None),
        Some((stored, _)) if stored != name => Err(DlfsError::NameCollision {
            loc: p.text.clone(),
            existing: stored,
        }),
        Some((_, n)) => Ok(match classify(&n, r)? {
            Node::Tombstone => None,
            _ => Some(n),
        }),
    }
}

/// Checks that a new entry's name is usable (a location's components always are).
fn check_name(p: &DrivePath) -> Res<()> {
    if is_valid_name(p.name()) {
        Ok(())
    } else {
        Err(DlfsError::InvalidPath(p.text.clone()))
    }
}

/// `mkdrive`: the value of a new drive named `name` given the drive's current value `current`
/// (nil when absent): the DLFS zero `[#Index {} nil nil 0]`.
pub fn mkdrive(current: &Cell, name: &str) -> Res<Cell> {
    if !is_valid_name(name) {
        return Err(DlfsError::InvalidDriveName(name.to_string()));
    }
    if !current.is_nil() {
        return Err(DlfsError::AlreadyExists(name.to_string()));
    }
    Ok(node::zero())
}

/// Deletes a whole drive: its value becomes a tombstone `[nil nil nil t]` (lattice.md §7.6), which
/// replicates and beats older versions of the drive as any tombstone does, while a newer write
/// in a drive of that name on another replica beats it. `NotFound` when there is no drive.
pub fn rmdrive(current: &Cell, name: &str, now: i64, r: &dyn Resolver) -> Res<Cell> {
    if current.is_nil() || node::is_tombstone(current, r)? {
        return Err(DlfsError::NotFound(name.to_string()));
    }
    Ok(node::tombstone(write_time(current, now, r)?))
}

/// `mkdir`: `drive` with a new empty directory `[#Index {} nil nil t]` at `p`. The parent must
/// be a directory; the name must be absent or a tombstone (which it replaces).
pub fn mkdir(drive: &Cell, p: &DrivePath, now: i64, r: &dyn Resolver) -> Res<Cell> {
    if p.path.is_empty() {
        return Err(if drive.is_nil() {
            DlfsError::NotFound(p.text.clone())
        } else {
            DlfsError::AlreadyExists(p.text.clone())
        });
    }
    check_name(p)?;
    let entries = parent_entries(drive, p, r)?;
    if existing(&entries, p, r)?.is_some() {
        return Err(DlfsError::AlreadyExists(p.text.clone()));
    }
    let t = write_time(drive, now, r)?;
    let empty = MapKind::Index.empty();
    update(drive, &p.path, node::directory(empty, t), t, r)
}

/// `put`: `drive` with the file at `p` created (`[nil data nil t]`, also over a tombstone) or
/// its contents replaced (element 1 = `data`, element 3 = `t`, metadata kept). The parent must
/// be a directory; a directory at `p` is [`DlfsError::IsADirectory`]. `data` must be a Blob.
pub fn put(drive: &Cell, p: &DrivePath, data: Cell, now: i64, r: &dyn Resolver) -> Res<Cell> {
    if p.path.is_empty() {
        return Err(if drive.is_nil() {
            DlfsError::NoSuchDirectory(p.parent_text())
        } else {
            DlfsError::IsADirectory(p.text.clone())
        });
    }
    check_name(p)?;
    let entries = parent_entries(drive, p, r)?;
    let t = write_time(drive, now, r)?;
    let new = match existing(&entries, p, r)? {
        None => node::file(data, t),
        Some(n) => match classify(&n, r)? {
            Node::File(_) => {
                let mut items = elements(&n, r)?;
                items[1] = data;
                items[3] = Cell::long(t);
                // New contents are not encrypted by this write: a private file's marker
                // (docs/DLFS.md) would make readers try to decrypt them. Other metadata stays.
                if super::host::is_encrypted(&items[2], r)? {
                    items[2] = Cell::nil();
                }
                Cell::vector(items)
            }
            Node::Directory(_) => return Err(DlfsError::IsADirectory(p.text.clone())),
            Node::Tombstone => node::file(data, t),
            Node::Malformed => return Err(DlfsError::Malformed(p.text.clone())),
        },
    };
    update(drive, &p.path, new, t, r)
}

/// `rm`: `drive` with the node at `p` replaced by a tombstone `[nil nil nil t]` (lattice.md
/// §7.6). A directory must have no live entries; the drive root cannot be deleted.
pub fn rm(drive: &Cell, p: &DrivePath, now: i64, r: &dyn Resolver) -> Res<Cell> {
    if p.path.is_empty() {
        return Err(DlfsError::CannotDeleteRoot);
    }
    let Some(n) = find(drive, &p.path, r)? else {
        return Err(DlfsError::NotFound(p.text.clone()));
    };
    if let Node::Directory(entries) = classify(&n, r)? {
        if !entries_live(&entries, r)?.is_empty() {
            return Err(DlfsError::DirectoryNotEmpty(p.text.clone()));
        }
    }
    let t = write_time(drive, now, r)?;
    update(drive, &p.path, node::tombstone(t), t, r)
}

/// The live node at `p`, classified; not found for absent names and tombstones.
fn found(drive: &Cell, p: &DrivePath, r: &dyn Resolver) -> Res<(Cell, Node)> {
    let Some(n) = find(drive, &p.path, r)? else {
        return Err(DlfsError::NotFound(p.text.clone()));
    };
    let kind = classify(&n, r)?;
    if matches!(kind, Node::Malformed) {
        return Err(DlfsError::Malformed(p.text.clone()));
    }
    Ok((n, kind))
}

/// `ls`: the live entry names of the directory at `p`, in Index (byte) order.
pub fn ls(drive: &Cell, p: &DrivePath, r: &dyn Resolver) -> Res<Vec<String>> {
    match found(drive, p, r)? {
        (_, Node::Directory(entries)) => Ok(entries_live(&entries, r)?
            .into_iter()
            .map(|(name, _)| name)
            .collect()),
        _ => Err(DlfsError::NotADirectory(p.text.clone())),
    }
}

/// `read`: the contents (a Blob) of the file at `p`.
pub fn read(drive: &Cell, p: &DrivePath, r: &dyn Resolver) -> Res<Cell> {
    match found(drive, p, r)? {
        (_, Node::File(data)) => Ok(data),
        _ => Err(DlfsError::IsADirectory(p.text.clone())),
    }
}

/// The kind of a node in [`Stat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// What `stat` reports of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// File or directory.
    pub kind: StatKind,
    /// Bytes of a file; live entries of a directory.
    pub size: u64,
    /// The update time (element 3).
    pub utime: i64,
    /// The node's value ID (for the drive root: the drive state hash).
    pub hash: ValueId,
    /// Element 2 (nil when unset).
    pub metadata: Cell,
}

impl Stat {
    /// The query value: `{:type :file/:directory, :size n, :utime t, :hash 0x…, :metadata m}`.
    pub fn to_cell(&self) -> Cell {
        let kw = |n: &str| Cell::keyword(n).unwrap_or_else(|_| Cell::nil());
        let kind = match self.kind {
            StatKind::File => kw("file"),
            StatKind::Directory => kw("directory"),
        };
        Cell::map(vec![
            (kw("type"), kind),
            (kw("size"), Cell::long(self.size as i64)),
            (kw("utime"), Cell::long(self.utime)),
            (kw("hash"), Cell::blob(self.hash.as_bytes())),
            (kw("metadata"), self.metadata.clone()),
        ])
    }
}

/// `stat`: kind, size, update time, value ID and metadata of the node at `p`.
pub fn stat(drive: &Cell, p: &DrivePath, r: &dyn Resolver) -> Res<Stat> {
    let (n, kind) = found(drive, p, r)?;
    let (kind, size) = match kind {
        Node::File(data) => (StatKind::File, data.count()),
        Node::Directory(entries) => (StatKind::Directory, entries_live(&entries, r)?.len() as u64),
        Node::Tombstone | Node::Malformed => return Err(DlfsError::NotFound(p.text.clone())),
    };
    Ok(Stat {
        kind,
        size,
        utime: node::update_time(&n, r)?.unwrap_or(0),
        hash: *n.id(),
        metadata: vector_get(&n, 2, r)?.unwrap_or_else(Cell::nil),
    })
}

/// `ls` with details: every live entry of the directory at `p` with its [`Stat`], in Index
/// (byte) order.
pub fn ls_long(drive: &Cell, p: &DrivePath, r: &dyn Resolver) -> Res<Vec<(String, Stat)>> {
    let (_, kind) = found(drive, p, r)?;
    let Node::Directory(entries) = kind else {
        return Err(DlfsError::NotADirectory(p.text.clone()));
    };
    let mut out = Vec::new();
    for (name, n) in entries_live(&entries, r)? {
        let (kind, size) = match classify(&n, r)? {
            Node::File(data) => (StatKind::File, data.count()),
            Node::Directory(e) => (StatKind::Directory, entries_live(&e, r)?.len() as u64),
            Node::Tombstone | Node::Malformed => continue,
        };
        out.push((
            name,
            Stat {
                kind,
                size,
                utime: node::update_time(&n, r)?.unwrap_or(0),
                hash: *n.id(),
                metadata: vector_get(&n, 2, r)?.unwrap_or_else(Cell::nil),
            },
        ));
    }
    Ok(out)
}

/// `mv`: `drive` with the node at `from` moved to `to` (same drive): a tombstone is left at
/// `from` (so the move replicates as a delete plus a create), and the node is placed at `to`
/// with its update time set to `t`, so that it beats an older tombstone or entry there. `to`
/// must be absent (or a tombstone) in an existing directory, and not inside `from`.
pub fn mv(drive: &Cell, from: &DrivePath, to: &DrivePath, now: i64, r: &dyn Resolver) -> Res<Cell> {
    if from.path.is_empty() {
        return Err(DlfsError::CannotDeleteRoot);
    }
    if from.drive != to.drive {
        return Err(DlfsError::InvalidPath(format!(
            "{} (a move stays within one drive)",
            to.text
        )));
    }
    if to.path.len() >= from.path.len() && to.path[..from.path.len()] == from.path[..] {
        return Err(DlfsError::InvalidPath(format!(
            "{} (inside the moved {})",
            to.text, from.text
        )));
    }
    let (n, kind) = found(drive, from, r)?;
    if to.path.is_empty() {
        return Err(DlfsError::AlreadyExists(to.text.clone()));
    }
    check_name(to)?;
    let entries = parent_entries(drive, to, r)?;
    if existing(&entries, to, r)?.is_some() {
        return Err(DlfsError::AlreadyExists(to.text.clone()));
    }
    let t = write_time(drive, now, r)?;
    let moved = match kind {
        Node::Directory(_) | Node::File(_) => {
            let mut items = elements(&n, r)?;
            items[3] = Cell::long(t);
            Cell::vector(items)
        }
        Node::Tombstone | Node::Malformed => return Err(DlfsError::NotFound(from.text.clone())),
    };
    let without = update(drive, &from.path, node::tombstone(t), t, r)?;
    update(&without, &to.path, moved, t, r)
}

/// `set-metadata`: `drive` with element 2 of the node at `p` (file or directory, the drive
/// root included) set to `metadata` (nil clears it), the node's and its ancestors' times set
/// to `t`. A directory's metadata survives merges only while no merge rebuilds it
/// (lattice.md §7.5 consequence 3).
pub fn set_metadata(
    drive: &Cell,
    p: &DrivePath,
    metadata: Cell,
    now: i64,
    r: &dyn Resolver,
) -> Res<Cell> {
    let (n, _) = found(drive, p, r)?;
    let t = write_time(drive, now, r)?;
    let mut items = elements(&n, r)?;
    items[2] = metadata;
    items[3] = Cell::long(t);
    update(drive, &p.path, Cell::vector(items), t, r)
}

/// What [`purge_tombstones`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Tombstones removed.
    pub tombstones: u64,
}

/// Tombstone expiry (lattice.md §7.6): `drive` without the tombstones whose update time is
/// before `cutoff` (ms since the epoch), anywhere in the tree. Directories keep their update
/// times: purging is housekeeping, not a write that should win merges, and a replica that
/// still has a purged tombstone simply merges it back. The risk the spec names applies: a
/// replica that kept an older live version and did not sync since `cutoff` resurrects the name.
pub fn purge_tombstones(drive: &Cell, cutoff: i64, r: &dyn Resolver) -> Res<(Cell, Purged)> {
    let mut purged = Purged::default();
    let out = purge_in(drive, cutoff, r, &mut purged, 0)?;
    Ok((out, purged))
}

fn purge_in(
    n: &Cell,
    cutoff: i64,
    r: &dyn Resolver,
    purged: &mut Purged,
    depth: usize,
) -> Res<Cell> {
    if depth > node::MAX_DEPTH {
        return Err(DlfsError::Malformed("directory nesting too deep".into()));
    }
    let Node::Directory(entries) = classify(n, r)? else {
        return Ok(n.clone());
    };
    let mut changes = Vec::new();
    let mut walk_err = None;
    for_each_index_entry(&entries, r, &mut |k, v| {
        let name = key_text(&k, r)?;
        match classify(&v, r)? {
            Node::Tombstone if node::update_time(&v, r)?.is_some_and(|t| t < cutoff) => {
                purged.tombstones += 1;
                changes.push(Change {
                    key: k.clone(),
                    kid: Some(name_kid(&name)),
                    had: true,
                    value: None,
                });
            }
            Node::Directory(_) => match purge_in(&v, cutoff, r, purged, depth + 1) {
                Ok(new) if new != v => changes.push(Change {
                    key: k.clone(),
                    kid: Some(name_kid(&name)),
                    had: true,
                    value: Some(new),
                }),
                Ok(_) => {}
                Err(e) => walk_err = Some(e),
            },
            _ => {}
        }
        Ok(())
    })?;
    if let Some(e) = walk_err {
        return Err(e);
    }
    if changes.is_empty() {
        return Ok(n.clone());
    }
    let entries = coll::apply_changes(MapKind::Index, &entries, changes, r)?;
    let mut items = elements(n, r)?;
    items[0] = entries;
    Ok(Cell::vector(items))
}
