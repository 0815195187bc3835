//! DataLattice (`:data`, lattice.md §5): the content-addressed store `#Index {H(v) v}`.

use super::Res;
use etch_formats::coll::{self, MapKind};
use etch_formats::{Cell, Kind, Resolver};

/// `merge(own, other)`: every entry `(k, v)` of other whose key own lacks and whose value is not
/// nil is added under the value's real ID `H(v)` (other's keys are never trusted); entries
/// present in both keep own's value.
pub(crate) fn merge(own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    let result = if own.is_nil() {
        MapKind::Index.empty()
    } else if own.kind() == Kind::Index {
        own.clone()
    } else {
        return Ok(own.clone());
    };
    if other.kind() != Kind::Index || result == *other {
        return Ok(result);
    }
    let diff = coll::index_diff(&result, other, r)?;
    // The result is other itself when own adds nothing and other is well keyed.
    let mut is_other = !diff.a_only && !diff.spelling_differs;
    let mut adds = Vec::new();
    for p in diff.pairs {
        if p.a.is_some() || p.b.is_nil() {
            is_other = false;
            continue;
        }
        let key = Cell::blob(&p.b.id().0);
        if key != p.key {
            is_other = false;
        }
        adds.push((key, p.b));
    }
    if adds.is_empty() {
        return Ok(result);
    }
    if is_other {
        return Ok(other.clone());
    }
    let mut out = result;
    for (key, v) in adds {
        if let Some(kid) = coll::key_id(&key, r)? {
            out = coll::index_assoc(&out, &key, &kid, v, r)?;
        }
    }
    Ok(out)
}
