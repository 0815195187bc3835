//! The generic lattices of lattice.md §3 (Signed and Owner live in `owner.rs`).
//!
//! Null handling (§1): `merge(x, nil) = x`; `merge(nil, y)` is `y` where `y` passes the
//! lattice's foreign check (collections merge `y` into an empty collection, so that nested
//! checks run). A malformed other keeps own; a malformed own is kept as it is.

use super::{Comparator, Lattice, MergeContext, MergeFn, Res, Timestamp};
use etch_formats::coll::{self, Change, MapKind};
use etch_formats::value::elements;
use etch_formats::{Cell, Kind, Resolver};
use std::cmp::Ordering;

/// Nesting limit for the lattices that recurse on their own values (JSON): deeper values are
/// merged as leaves (own kept), so a hostile value cannot exhaust the stack.
pub(crate) const MAX_NESTING: usize = 256;

fn is_integer(c: &Cell) -> bool {
    matches!(c.kind(), Kind::Long | Kind::BigInt)
}

fn integer_cmp(a: &Cell, b: &Cell) -> Ordering {
    match (a.as_long(), b.as_long()) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.to_bigint().cmp(&b.to_bigint()),
    }
}

/// Max (`want` = Greater) and Min (`want` = Less): other replaces own only when strictly
/// better.
pub(crate) fn max(own: &Cell, other: &Cell, want: Ordering, _r: &dyn Resolver) -> Res<Cell> {
    if other.is_nil() || !is_integer(other) {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return Ok(other.clone());
    }
    if !is_integer(own) {
        return Ok(own.clone());
    }
    Ok(if integer_cmp(other, own) == want {
        other.clone()
    } else {
        own.clone()
    })
}

/// CompareLattice: own if `cmp(own, other) ≥ 0`, else other.
pub(crate) fn compare(cmp: &Comparator, own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    if other.is_nil() {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return Ok(other.clone());
    }
    Ok(if (cmp.0)(own, other, r)? == Ordering::Less {
        other.clone()
    } else {
        own.clone()
    })
}

/// FunctionLattice: `f(own, other)` for two non-nil values.
pub(crate) fn function(
    f: &MergeFn,
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if other.is_nil() {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return Ok(other.clone());
    }
    (f.0)(ctx, own, other, r)
}

/// SetLattice: union.
pub(crate) fn set(own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    if other.kind() != Kind::Set {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return Ok(other.clone());
    }
    if own.kind() != Kind::Set {
        return Ok(own.clone());
    }
    coll::set_union(own, other, r)
}

/// Own as a collection of `kind` (nil → empty), or `None` when own is something else.
fn base(kind: MapKind, own: &Cell) -> Option<Cell> {
    if own.is_nil() {
        Some(kind.empty())
    } else if MapKind::of(own) == Some(kind) {
        Some(own.clone())
    } else {
        None
    }
}

/// MapLattice / IndexLattice: per key, `v.merge(ctx, own[k], other[k])`.
pub(crate) fn map(
    v: &Lattice,
    kind: MapKind,
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if MapKind::of(other) != Some(kind) {
        return Ok(own.clone());
    }
    let Some(own2) = base(kind, own) else {
        return Ok(own.clone());
    };
    coll::map_merge(kind, &own2, other, r, &mut |_, a, b| {
        let m = v.merge(ctx, &a.unwrap_or_else(Cell::nil), &b, r)?;
        Ok((!m.is_nil()).then_some(m))
    })
}

/// CASLattice: union; on a shared key other's value replaces own's.
pub(crate) fn cas(own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    if other.kind() != Kind::Index {
        return Ok(own.clone());
    }
    let Some(own2) = base(MapKind::Index, own) else {
        return Ok(own.clone());
    };
    coll::map_merge::<etch_formats::ResolveError>(
        MapKind::Index,
        &own2,
        other,
        r,
        &mut |_, _, b| Ok(Some(b)),
    )
}

/// KeyedLattice: each configured key present in other merges with its lattice; other's
/// unconfigured keys are ignored, own's kept.
///
/// Deviation (same reasoning as lattice.md §6.1): a nil own is treated as `#Index {}` and the
/// per-key merges run, instead of accepting other wholesale — so unconfigured keys of other are
/// dropped and nested owner checks apply. For well-formed values of configured keys the result
/// is the same.
pub(crate) fn keyed(
    ls: &[(String, Lattice)],
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if other.kind() != Kind::Index || own == other {
        return Ok(own.clone());
    }
    let Some(own2) = base(MapKind::Index, own) else {
        return Ok(own.clone());
    };
    let mut changes = Vec::new();
    for (name, l) in ls {
        let Ok(kw) = Cell::keyword(name) else {
            continue;
        };
        let Some(kid) = coll::key_id(&kw, r)? else {
            continue;
        };
        let Some((_, ob)) = coll::index_get(other, &kid, r)? else {
            continue;
        };
        let (key, oa) = match coll::index_get(&own2, &kid, r)? {
            Some((k, v)) => {
                if v.id() == ob.id() {
                    continue;
                }
                (k, v.fetch(r)?)
            }
            None => (kw, Cell::nil()),
        };
        let ob = ob.fetch(r)?;
        let m = l.merge(ctx, &oa, &ob, r)?;
        if m != oa {
            changes.push(Change {
                key,
                kid: Some(kid),
                had: !oa.is_nil(),
                value: (!m.is_nil()).then_some(m),
            });
        }
    }
    if changes.is_empty() {
        return Ok(own2);
    }
    coll::apply_changes(MapKind::Index, &own2, changes, r)
}

/// StringKeyedLattice: as [`keyed`] over a hash map with String keys.
pub(crate) fn string_keyed(
    ls: &[(String, Lattice)],
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if other.kind() != Kind::Map || own == other {
        return Ok(own.clone());
    }
    let Some(own2) = base(MapKind::Hash, own) else {
        return Ok(own.clone());
    };
    let mut changes = Vec::new();
    for (name, l) in ls {
        let key = Cell::string(name);
        let Some(ob) = coll::map_get(other, &key, r)? else {
            continue;
        };
        let oa = coll::map_get(&own2, &key, r)?.unwrap_or_else(Cell::nil);
        let m = l.merge(ctx, &oa, &ob, r)?;
        if m != oa {
            changes.push(Change {
                key,
                kid: None,
                had: !oa.is_nil(),
                value: (!m.is_nil()).then_some(m),
            });
        }
    }
    if changes.is_empty() {
        return Ok(own2);
    }
    coll::apply_changes(MapKind::Hash, &own2, changes, r)
}

/// Own unchanged if the merged elements equal own's, other if they equal other's, else a new
/// Vector.
fn pick_vector(own: &Cell, a: &[Cell], other: &Cell, b: &[Cell], merged: Vec<Cell>) -> Cell {
    if !own.is_nil() && merged.as_slice() == a {
        own.clone()
    } else if merged.as_slice() == b {
        other.clone()
    } else {
        Cell::vector(merged)
    }
}

/// TupleLattice: element-wise over exactly n elements (nil own: element-wise from nils).
pub(crate) fn tuple(
    ls: &[Lattice],
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    let n = ls.len() as u64;
    if other.kind() != Kind::Vector || other.count() != n || own == other {
        return Ok(own.clone());
    }
    let a = if own.is_nil() {
        vec![Cell::nil(); ls.len()]
    } else if own.kind() == Kind::Vector && own.count() == n {
        elements(own, r)?
    } else {
        return Ok(own.clone());
    };
    let b = elements(other, r)?;
    let mut merged = Vec::with_capacity(ls.len());
    for ((l, x), y) in ls.iter().zip(&a).zip(&b) {
        merged.push(if x == y {
            x.clone()
        } else {
            l.merge(ctx, x, y, r)?
        });
    }
    Ok(pick_vector(own, &a, other, &b, merged))
}

/// VectorLattice: element-wise over the longer length, missing elements nil.
pub(crate) fn vector(
    l: &Lattice,
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if other.kind() != Kind::Vector || own == other {
        return Ok(own.clone());
    }
    let a = if own.is_nil() {
        Vec::new()
    } else if own.kind() == Kind::Vector {
        elements(own, r)?
    } else {
        return Ok(own.clone());
    };
    let b = elements(other, r)?;
    let nil = Cell::nil();
    let len = a.len().max(b.len());
    let mut merged = Vec::with_capacity(len);
    for i in 0..len {
        let (x, y) = (a.get(i).unwrap_or(&nil), b.get(i).unwrap_or(&nil));
        merged.push(if x == y {
            x.clone()
        } else {
            l.merge(ctx, x, y, r)?
        });
    }
    Ok(pick_vector(own, &a, other, &b, merged))
}

/// LWWLattice: other only if strictly newer.
pub(crate) fn lww(ts: &Timestamp, own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    if other.is_nil() {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return Ok(other.clone());
    }
    Ok(if ts.of(other, r)? > ts.of(own, r)? {
        other.clone()
    } else {
        own.clone()
    })
}

/// LWPLattice: the strictly newer value becomes the inner "own". Other must pass the inner
/// lattice's foreign check.
pub(crate) fn lwp(
    l: &Lattice,
    ts: &Timestamp,
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if other.is_nil() || !l.check_foreign(other, r)? {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return l.merge(ctx, own, other, r);
    }
    if ts.of(other, r)? > ts.of(own, r)? {
        l.merge(ctx, other, own, r)
    } else {
        l.merge(ctx, own, other, r)
    }
}

/// JSONValueLattice: two maps of the same kind merge per key recursively; anything else keeps
/// own (including a hash map against an Index).
pub(crate) fn json(own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    json_at(own, other, r, 0)
}

fn json_at(own: &Cell, other: &Cell, r: &dyn Resolver, depth: usize) -> Res<Cell> {
    if other.is_nil() || own == other {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return Ok(other.clone());
    }
    match (MapKind::of(own), MapKind::of(other)) {
        (Some(ka), Some(kb)) if ka == kb && depth < MAX_NESTING => {
            coll::map_merge(ka, own, other, r, &mut |_, a, b| {
                let m = match a {
                    Some(a) => json_at(&a, &b, r, depth + 1)?,
                    None => b,
                };
                Ok((!m.is_nil()).then_some(m))
            })
        }
        _ => Ok(own.clone()),
    }
}

/// Wraps `value` as the only content under `key` of a value of lattice `l` (for merges at a
/// path): `None` when `l` has no such container or the key does not fit it.
pub(crate) fn wrap(l: &Lattice, key: &Cell, value: Cell, r: &dyn Resolver) -> Res<Option<Cell>> {
    Ok(match l {
        Lattice::Keyed(_) => match l.resolve_key(key) {
            Some(k) => coll::singleton(MapKind::Index, &k, value, r)?,
            None => None,
        },
        Lattice::StringKeyed(_) => l.resolve_key(key).map(|k| Cell::map(vec![(k, value)])),
        Lattice::Map(_) | Lattice::Owner(_) | Lattice::JsonValue => {
            Some(Cell::map(vec![(key.clone(), value)]))
        }
        Lattice::Index(_) | Lattice::JsonValueIndex => {
            coll::singleton(MapKind::Index, key, value, r)?
        }
        Lattice::Tuple(ls) => match key.as_long().and_then(|i| usize::try_from(i).ok()) {
            Some(i) if i < ls.len() => {
                let mut v = vec![Cell::nil(); ls.len()];
                v[i] = value;
                Some(Cell::vector(v))
            }
            _ => None,
        },
        Lattice::Vector(_) => match key.as_long().and_then(|i| usize::try_from(i).ok()) {
            Some(i) if i < (1 << 20) => {
                let mut v = vec![Cell::nil(); i + 1];
                v[i] = value;
                Some(Cell::vector(v))
            }
            _ => None,
        },
        Lattice::Lwp(inner, _) => wrap(inner, key, value, r)?,
        _ => None,
    })
}
