//! DLFS, the Data Lattice File System (lattice.md §7): node helpers and the drive merge.
//!
//! A node is a Vector `[directory-contents file-contents metadata update-time]` (§7.2):
//! a directory has an Index of String names → nodes at 0; a file a Blob at 1; a tombstone
//! neither. The merge (§7.5) is the reference `DLFSNode.merge`, except that it fails closed:
//! any malformed node met while merging makes the whole drive merge return own.

use super::Res;
use etch_formats::coll::{self, MapKind};
use etch_formats::value::vector_get;
use etch_formats::{Cell, Kind, ResolveError, Resolver};

/// Directory nesting depth beyond which a drive merge fails closed (keeps own), so that a
/// hostile tree cannot exhaust the stack.
pub const MAX_DEPTH: usize = 256;

/// The lattice zero, an empty drive: `[#Index {} nil nil 0]`.
pub fn zero() -> Cell {
    directory(MapKind::Index.empty(), 0)
}

/// A directory node `[entries nil nil t]` (`entries`: an Index of names → nodes).
pub fn directory(entries: Cell, t: i64) -> Cell {
    Cell::vector(vec![entries, Cell::nil(), Cell::nil(), Cell::long(t)])
}

/// A file node `[nil data nil t]` (`data`: a Blob).
pub fn file(data: Cell, t: i64) -> Cell {
    Cell::vector(vec![Cell::nil(), data, Cell::nil(), Cell::long(t)])
}

/// A tombstone `[nil nil nil t]`.
pub fn tombstone(t: i64) -> Cell {
    Cell::vector(vec![Cell::nil(), Cell::nil(), Cell::nil(), Cell::long(t)])
}

/// Element `i` of a node, nil when absent or when `n` is not a Vector.
fn elem(n: &Cell, i: u64, r: &dyn Resolver) -> Res<Cell> {
    if n.kind() != Kind::Vector {
        return Ok(Cell::nil());
    }
    Ok(vector_get(n, i, r)?.unwrap_or_else(Cell::nil))
}

/// The foreign check (`DLFSLattice.check_foreign`): a Vector of at least 4 elements whose
/// element 3 is a Long.
pub fn check_foreign(v: &Cell, r: &dyn Resolver) -> Res<bool> {
    Ok(v.kind() == Kind::Vector && v.count() >= 4 && elem(v, 3, r)?.kind() == Kind::Long)
}

/// `is_directory(n)`: element 0 is not nil.
pub fn is_directory(n: &Cell, r: &dyn Resolver) -> Res<bool> {
    Ok(!elem(n, 0, r)?.is_nil())
}

/// `is_file(n)`: element 1 is a Blob.
pub fn is_file(n: &Cell, r: &dyn Resolver) -> Res<bool> {
    Ok(elem(n, 1, r)?.kind() == Kind::Blob)
}

/// `is_tombstone(n)`: neither a directory nor a file.
pub fn is_tombstone(n: &Cell, r: &dyn Resolver) -> Res<bool> {
    Ok(!is_directory(n, r)? && !is_file(n, r)?)
}

/// The update time (element 3) when it is a Long.
pub fn update_time(n: &Cell, r: &dyn Resolver) -> Res<Option<i64>> {
    Ok(elem(n, 3, r)?.as_long())
}

/// Why a node merge stopped.
enum Fail {
    /// A malformed node: the drive merge keeps own.
    Malformed,
    /// A cell could not be resolved: propagated.
    Resolve(ResolveError),
}

impl From<ResolveError> for Fail {
    fn from(e: ResolveError) -> Fail {
        Fail::Resolve(e)
    }
}

/// The parts of a well-formed node.
struct Node {
    dir: Cell,
    file: Cell,
    time: i64,
}

/// Parses a node: a Vector of ≥ 4 elements with element 0 nil or an Index, element 1 nil or
/// a Blob and element 3 a Long; anything else is malformed.
fn parse(n: &Cell, r: &dyn Resolver) -> Result<Node, Fail> {
    if n.kind() != Kind::Vector || n.count() < 4 {
        return Err(Fail::Malformed);
    }
    let dir = elem(n, 0, r)?;
    let file = elem(n, 1, r)?;
    let time = elem(n, 3, r)?.as_long().ok_or(Fail::Malformed)?;
    if !(dir.is_nil() || dir.kind() == Kind::Index) || !(file.is_nil() || file.kind() == Kind::Blob)
    {
        return Err(Fail::Malformed);
    }
    Ok(Node { dir, file, time })
}

/// Drive-level merge (`DLFSLattice.merge`; the context is unused):
/// own nil → other if it passes the foreign check, else the zero (not nil); other nil → own;
/// otherwise the node merge, or own if a malformed node is met anywhere in it.
pub(crate) fn merge(own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    if own.is_nil() {
        return Ok(if check_foreign(other, r)? {
            other.clone()
        } else {
            zero()
        });
    }
    if other.is_nil() || own == other {
        return Ok(own.clone());
    }
    match node_merge(own, other, r, 0) {
        Ok(c) => Ok(c),
        Err(Fail::Malformed) => Ok(own.clone()),
        Err(Fail::Resolve(e)) => Err(e),
    }
}

/// `node_merge(a, b)` of lattice.md §7.5, with `a` own and `b` other.
fn node_merge(a: &Cell, b: &Cell, r: &dyn Resolver, depth: usize) -> Result<Cell, Fail> {
    if a == b {
        return Ok(a.clone());
    }
    if depth > MAX_DEPTH {
        return Err(Fail::Malformed);
    }
    let (na, nb) = (parse(a, r)?, parse(b, r)?);
    let own_wins = na.time >= nb.time;
    let newer = if own_wins { a } else { b };
    if na.dir == nb.dir && na.file == nb.file {
        // Same content: the newer node (own on a tie).
        return Ok(newer.clone());
    }
    if !na.dir.is_nil() && !nb.dir.is_nil() {
        let m = coll::map_merge::<Fail>(MapKind::Index, &na.dir, &nb.dir, r, &mut |_, x, y| {
            let m = match x {
                Some(x) if !x.is_nil() && !y.is_nil() => node_merge(&x, &y, r, depth + 1)?,
                Some(x) if y.is_nil() => x,
                _ => y,
            };
            // A nil result removes the name (map-merge mechanics, §3).
            Ok((!m.is_nil()).then_some(m))
        })?;
        if m == na.dir && own_wins {
            return Ok(a.clone());
        }
        // Rebuilt: metadata and elements beyond 3 are dropped.
        return Ok(directory(m, na.time.max(nb.time)));
    }
    Ok(newer.clone())
}
