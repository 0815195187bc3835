//! Values and merges at a path (lattice.md §4.1, §6.4).

use super::coll;
use super::generic::wrap;
use super::owner::sign;
use super::{Lattice, MergeContext};
use etch_formats::value::vector_get;
use etch_formats::{Cell, Kind, ResolveError, Resolver};

/// Why a merge at a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A cell could not be resolved (`Missing`: fetch it and retry).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// No lattice governs this path (it addresses plain data, or a key does not fit a level).
    #[error("no lattice at path {0:?}")]
    NoLattice(Vec<Cell>),
    /// The path goes below the signed `:value` of an owner whose key this node does not hold.
    #[error("path goes below the signed value of foreign owner {owner:?}")]
    BelowForeignOwner {
        /// The owner key of the slot.
        owner: Cell,
    },
    /// The path goes below the `:value` of a standalone Signed value and no signing key is set.
    #[error("path goes below a signed value and no signing key is set")]
    NoSigningKey,
}

/// The value stored under `id`: its record in the store (`r`), or else the entry of the
/// root's `:data` Index under that key (lattice.md §5), or else the node's pin of it (`:pins`,
/// `crate::pins`). A value small enough to embed has no record of its own, only its place in
/// `:data` or a pin, so every place must be looked at; the query `fetch`, `etch get` and
/// recovery share this one lookup. `None` when none has it.
pub fn stored_value(
    root: &Cell,
    id: &etch_formats::ValueId,
    r: &dyn Resolver,
) -> Result<Option<Cell>, ResolveError> {
    if let Some(c) = r.resolve(id)? {
        return Ok(Some(c));
    }
    if root.kind() != Kind::Index {
        return Ok(None);
    }
    let key = |k: &str| Cell::keyword(k).map_err(|e| ResolveError::Store(e.to_string()));
    let v = value_at_path(root, &[key("data")?, Cell::blob(id.as_bytes())], r)?;
    if !v.is_nil() && v.id() == id {
        return Ok(Some(v));
    }
    // A pinned value (`crate::pins`): the record under `:pins` holds it.
    let path = [key("pins")?, Cell::blob(id.as_bytes()), key("value")?];
    let v = value_at_path(root, &path, r)?;
    Ok((!v.is_nil() && v.id() == id).then_some(v))
}

/// The value at a path by generic lookup (lattice.md §4.1): Index and Map entries by key,
/// Vector elements by Integer index, a SignedData's value under `:value`; nil where absent.
pub fn value_at_path(value: &Cell, path: &[Cell], r: &dyn Resolver) -> Result<Cell, ResolveError> {
    let mut v = value.clone();
    for key in path {
        v = step(&v, key, r)?.unwrap_or_else(Cell::nil);
        if v.is_nil() {
            break;
        }
    }
    Ok(v)
}

/// The generic lookup of a LATTICE_QUERY path (protocol.md §7.6): like [`value_at_path`] (maps
/// by key, vectors by integer index, Index by blob-like key, SignedData by `:value`), and also
/// SignedData by `:public-key` (a 32-byte Blob) and `:signature` (a 64-byte Blob), and a Set
/// answers membership of the key as a boolean. A step that finds `nil` or a value it cannot
/// look into gives `nil`.
pub fn lookup_path(value: &Cell, path: &[Cell], r: &dyn Resolver) -> Result<Cell, ResolveError> {
    let mut v = value.clone();
    for key in path {
        v = match v.kind() {
            Kind::Set => Cell::bool(coll::hash_get(&v, key.id(), r)?.is_some()),
            Kind::Signed if is_keyword(key, b"public-key") => match v.signed_public_key() {
                Some(k) => Cell::blob(k),
                None => Cell::nil(),
            },
            Kind::Signed if is_keyword(key, b"signature") => match v.signed_signature() {
                Some(s) => Cell::blob(s),
                None => Cell::nil(),
            },
            _ => step(&v, key, r)?.unwrap_or_else(Cell::nil),
        };
        if v.is_nil() {
            break;
        }
    }
    Ok(v)
}

fn is_keyword(key: &Cell, name: &[u8]) -> bool {
    key.kind() == Kind::Keyword && key.name_bytes() == Some(name)
}

fn step(v: &Cell, key: &Cell, r: &dyn Resolver) -> Result<Option<Cell>, ResolveError> {
    match v.kind() {
        Kind::Index => coll::index_get_value(v, key, r),
        Kind::Map => coll::map_get(v, key, r),
        Kind::Vector => match key.as_long().and_then(|i| u64::try_from(i).ok()) {
            Some(i) => vector_get(v, i, r),
            None => Ok(None),
        },
        Kind::Signed if is_value_key(key) => match v.refs().first() {
            Some(x) => x.fetch(r).map(Some),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

fn is_value_key(key: &Cell) -> bool {
    is_keyword(key, b"value")
}

/// Merges `value` at `path` into `root_value` (whose lattice is `root`) and returns the new
/// root value (lattice.md §6.4):
///
/// - a path that stays above every signing boundary (e.g. `[:data]`, `[:fs]`, `[:fs K]`) is
///   merged as a whole-root merge of a value containing only that sub-value, so every check on
///   the way (owner checks included) runs;
/// - a path through the `:value` of an owner slot is accepted only when the context's signing
///   key passes the owner check for that owner: the sub-value is merged into the slot's value,
///   which is re-signed and merged back as the owner slot; otherwise
///   [`MergeError::BelowForeignOwner`];
/// - a key the root (or another keyed level) does not configure is ignored: the root value is
///   returned unchanged (selective attention, lattice.md §4);
/// - a path with no lattice (below a value lattice) is [`MergeError::NoLattice`].
pub fn merge_at_path(
    root: &Lattice,
    ctx: &MergeContext,
    root_value: &Cell,
    path: &[Cell],
    value: &Cell,
    r: &dyn Resolver,
) -> Result<Cell, MergeError> {
    let mut lat = root;
    let mut parent: Option<&Lattice> = None;
    for (i, key) in path.iter().enumerate() {
        if let Lattice::Signed(inner) = lat {
            if is_value_key(key) {
                return merge_below_signature(
                    root, ctx, root_value, path, i, inner, parent, value, r,
                );
            }
        }
        match lat.child(key) {
            Some(c) => {
                parent = Some(lat);
                lat = c;
            }
            None if matches!(lat, Lattice::Keyed(_) | Lattice::StringKeyed(_)) => {
                return Ok(root_value.clone());
            }
            None => return Err(MergeError::NoLattice(path[..=i].to_vec())),
        }
    }
    // Wrap the value in single-entry containers up to the root, then merge the whole root.
    let mut w = value.clone();
    for i in (0..path.len()).rev() {
        let level = root
            .at_path(&path[..i])
            .ok_or_else(|| MergeError::NoLattice(path[..i].to_vec()))?;
        w = wrap(level, &path[i], w, r)?
            .ok_or_else(|| MergeError::NoLattice(path[..=i].to_vec()))?;
    }
    Ok(root.merge(ctx, root_value, &w, r)?)
}

/// The part of [`merge_at_path`] for a path that crosses the `:value` of a Signed lattice at
/// position `i`.
#[allow(clippy::too_many_arguments)]
fn merge_below_signature(
    root: &Lattice,
    ctx: &MergeContext,
    root_value: &Cell,
    path: &[Cell],
    i: usize,
    inner: &Lattice,
    parent: Option<&Lattice>,
    value: &Cell,
    r: &dyn Resolver,
) -> Result<Cell, MergeError> {
    let owner = match parent {
        Some(Lattice::Owner(_)) if i >= 1 => Some(&path[i - 1]),
        _ => None,
    };
    let key = match (&ctx.signing_key, owner) {
        (Some(k), Some(o)) if ctx.verify_owner(o, &k.verifying_key().to_bytes()) => k,
        (Some(k), None) => k,
        (_, Some(o)) => return Err(MergeError::BelowForeignOwner { owner: o.clone() }),
        (None, None) => return Err(MergeError::NoSigningKey),
    };
    let slot = value_at_path(root_value, &path[..i], r)?;
    let own_inner = if slot.kind() == Kind::Signed {
        value_at_path(&slot, &path[i..=i], r)?
    } else {
        Cell::nil()
    };
    let new_inner = merge_at_path(inner, ctx, &own_inner, &path[i + 1..], value, r)?;
    if new_inner == own_inner {
        return Ok(root_value.clone());
    }
    let new_slot = sign(key, new_inner);
    merge_at_path(root, ctx, root_value, &path[..i], &new_slot, r)
}
