//! What a partial replica holds (issue 15; docs/PROVIDER.md, "Partial replicas"): the
//! *skeleton* of the root, i.e. every cell a merge of the root lattice reads (lattice.md §4–§8),
//! and not the values of `:data`, which no merge opens (the DataLattice unions entries by key,
//! and a key is its value's ID, §5).
//!
//! The skeleton is: the root Index's nodes; everything under `:fs` (signed owner slots and the
//! drives in them, whose merges read every directory level and whose signatures cover them),
//! `:p2p` and any other key; and under `:data` the Index nodes and their keys. A value under
//! `:data` is held only when something else keeps it (a pin, the node's own write) or a reader
//! asked for it (the read cache).

use super::value_at_path;
use etch_formats::coll::{self, index_slots};
use etch_formats::{Cell, Kind, Ref, ResolveError, Resolver, ValueId};

/// The root key that marks a partial replica's store: `:hold "pinned"`. The node's own state
/// (like `:pins`): a key of no lattice, never served. Offline tools read it to know that the
/// store holds only the skeleton and the pinned trees (`etch verify` does not report the
/// values it lacks as missing), and `etch serve --hold all` refuses such a store, which it
/// would otherwise take for complete.
pub const HOLD_KEY: &str = "hold";

fn hold_key() -> Cell {
    Cell::keyword(HOLD_KEY).unwrap_or_else(|_| Cell::nil())
}

/// Whether `root` is a partial replica's (marked `:hold "pinned"`).
pub fn is_partial(root: &Cell, r: &dyn Resolver) -> Result<bool, ResolveError> {
    if root.kind() != Kind::Index {
        return Ok(false);
    }
    let v = value_at_path(root, &[hold_key()], r)?;
    Ok(v.kind() == Kind::String && v.flat_bytes() == Some(b"pinned".as_slice()))
}

/// `root` marked as a partial replica's.
pub fn with_partial_mark(root: &Cell, r: &dyn Resolver) -> Result<Cell, ResolveError> {
    coll::index_set(root, hold_key(), Some(Cell::string("pinned")), r)
}

/// The branch cells beneath `cell` (in `zone`) that a store holding `zone`'s share keeps, each
/// with its zone, looking through embedded children.
pub fn held_branches(cell: &Cell, zone: Zone, out: &mut Vec<(ValueId, Zone)>) {
    out.extend(
        held_branch_refs(cell, zone)
            .into_iter()
            .map(|(r, z)| (r.id(), z)),
    );
}

/// As [`held_branches`], the branch refs themselves (a ref may have its cell attached).
pub fn held_branch_refs(cell: &Cell, zone: Zone) -> Vec<(Ref, Zone)> {
    let mut out = Vec::new();
    let mut stack = vec![(cell.clone(), zone)];
    while let Some((c, zone)) = stack.pop() {
        for (r, z) in held_refs(&c, zone) {
            match &r {
                Ref::Branch(_) => out.push((r, z)),
                Ref::Embedded(e) => {
                    if !e.refs().is_empty() {
                        stack.push((e.clone(), z));
                    }
                }
            }
        }
    }
    out
}

/// Where a cell lies in the root, for deciding which of its children a partial replica holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Held whole: every child.
    Full,
    /// A node of the root Index: the `:data` entry's value is a [`Zone::Data`] node.
    Root,
    /// A node of the `:data` Index: child nodes and keys are held, values are not.
    Data,
}

/// The zone of the value at `path` of the root; `None` for a value under a `:data` key (a value
/// a partial replica does not hold unless pinned).
pub fn zone_at(path: &[Cell]) -> Option<Zone> {
    match path {
        [] => Some(Zone::Root),
        [k] if is_data_key(k) => Some(Zone::Data),
        [k, ..] if is_data_key(k) => None,
        _ => Some(Zone::Full),
    }
}

fn is_data_key(k: &Cell) -> bool {
    k.kind() == Kind::Keyword && k.name_bytes() == Some(b"data".as_slice())
}

/// The child slots of `cell` (in `zone`) that a partial replica holds, each with its own zone.
/// With `Zone::Full` that is every slot.
pub fn held_refs(cell: &Cell, zone: Zone) -> Vec<(Ref, Zone)> {
    let all = |z: Zone| cell.refs().iter().map(|r| (r.clone(), z)).collect();
    if zone == Zone::Full || cell.kind() != Kind::Index {
        return all(Zone::Full);
    }
    let (entry, children) = index_slots(cell);
    let mut out: Vec<(Ref, Zone)> = children.iter().map(|c| (c.clone(), zone)).collect();
    if let Some((k, v)) = entry {
        out.push((k.clone(), Zone::Full));
        match zone {
            Zone::Root => {
                let value_zone = match k.cell() {
                    Some(key) if is_data_key(key) => Zone::Data,
                    _ => Zone::Full,
                };
                out.push((v.clone(), value_zone));
            }
            // A :data value: held only if something else keeps it.
            Zone::Data | Zone::Full => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlfs::kw;
    use crate::node::LocalNode;
    use crate::store::{CellStore, NativeStore};
    use std::sync::Arc;

    /// The held refs of a root with 40 large values under `:data` never include a value, and
    /// do include every `:data` Index node and everything else of the root.
    #[test]
    fn skeleton_leaves_out_data_values_only() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CellStore> =
            Arc::new(NativeStore::create(dir.path().join("s"), Default::default()).unwrap());
        let node = LocalNode::open(store.clone(), None).unwrap();
        let values: Vec<Cell> = (0..40u8).map(|i| Cell::blob(&vec![i; 5000])).collect();
        node.store_values(&values).unwrap();
        node.merge(
            &[kw("p2p")],
            &Cell::index(vec![(kw("nodes"), Cell::map(vec![]))]).unwrap(),
        )
        .unwrap();
        let root = node.root_value();
        let value_ids: std::collections::HashSet<_> = values.iter().map(|v| *v.id()).collect();
        let mut stack = vec![(root, Zone::Root)];
        let (mut held, mut data_nodes) = (0, 0);
        while let Some((cell, zone)) = stack.pop() {
            if zone == Zone::Data {
                data_nodes += 1;
            }
            for (r, z) in held_refs(&cell, zone) {
                assert!(!value_ids.contains(&r.id()), "a :data value is held");
                held += 1;
                stack.push((r.fetch(store.as_ref()).unwrap(), z));
            }
        }
        assert!(data_nodes >= 2, "the :data Index has several nodes");
        assert!(held > data_nodes);
        assert_eq!(zone_at(&[]), Some(Zone::Root));
        assert_eq!(zone_at(&[kw("data")]), Some(Zone::Data));
        assert_eq!(zone_at(&[kw("data"), Cell::long(1)]), None);
        assert_eq!(zone_at(&[kw("fs")]), Some(Zone::Full));
    }
}
