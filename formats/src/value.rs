//! Logical views over multi-cell values: the elements of a Vector or List, the entries of a
//! Map, Set or Index, the bytes of a Blob or String, and memory sizes (encoding.md §10).
//! Children resolve through a [`Resolver`]; walks are bounded by the tree shapes of the format.

use crate::cell::{tag, Cell, Kind, Ref, ResolveError, Resolver, VECTOR_LEAF_MAX};
use crate::ValueId;

type Res<T> = Result<T, ResolveError>;

/// Calls `f` on each element of a Vector, List (in list order) or record (its fields).
pub fn for_each_element(
    cell: &Cell,
    r: &dyn Resolver,
    f: &mut dyn FnMut(Cell) -> Res<()>,
) -> Res<()> {
    if cell.tag() == tag::LIST {
        // Lists are stored reversed: collect, then replay backwards.
        let mut items = Vec::with_capacity(cell.count().min(1 << 20) as usize);
        vector_walk(cell, r, &mut |c| {
            items.push(c);
            Ok(())
        })?;
        for c in items.into_iter().rev() {
            f(c)?;
        }
        return Ok(());
    }
    vector_walk(cell, r, f)
}

/// The elements of a Vector, List or record, in order.
pub fn elements(cell: &Cell, r: &dyn Resolver) -> Res<Vec<Cell>> {
    let mut out = Vec::new();
    for_each_element(cell, r, &mut |c| {
        out.push(c);
        Ok(())
    })?;
    Ok(out)
}

fn vector_walk(cell: &Cell, r: &dyn Resolver, f: &mut dyn FnMut(Cell) -> Res<()>) -> Res<()> {
    let n = cell.count();
    let refs = cell.refs();
    if n <= VECTOR_LEAF_MAX {
        for x in refs {
            f(x.fetch(r)?)?;
        }
    } else if !n.is_multiple_of(16) {
        let (items, prefix) = refs.split_at(refs.len() - 1);
        vector_walk(&prefix[0].fetch(r)?, r, f)?;
        for x in items {
            f(x.fetch(r)?)?;
        }
    } else {
        for ch in refs {
            vector_walk(&ch.fetch(r)?, r, f)?;
        }
    }
    Ok(())
}

/// Element `i` of a Vector (stored order; for a List this is element `count-1-i`).
pub fn vector_get(cell: &Cell, i: u64, r: &dyn Resolver) -> Res<Option<Cell>> {
    let mut node = cell.clone();
    let mut i = i;
    loop {
        let n = node.count();
        if i >= n {
            return Ok(None);
        }
        let refs = node.refs();
        if n <= VECTOR_LEAF_MAX {
            return refs[i as usize].fetch(r).map(Some);
        }
        if !n.is_multiple_of(16) {
            let split = n - n % 16;
            if i >= split {
                return refs[(i - split) as usize].fetch(r).map(Some);
            }
            node = refs[refs.len() - 1].fetch(r)?;
            continue;
        }
        let (c, _) = crate::shape::vector_tree(n);
        node = refs[(i / c) as usize].fetch(r)?;
        i %= c;
    }
}

/// Calls `f(key, value)` for each entry of a Map in map order (Sets: value is `None`): the
/// walk of [`crate::coll::hash_walk`] with each slot read.
pub fn for_each_entry(
    cell: &Cell,
    r: &dyn Resolver,
    f: &mut dyn FnMut(Cell, Option<Cell>) -> Res<()>,
) -> Res<()> {
    crate::coll::hash_walk(cell, r, &mut |k, v| {
        let v = match v {
            Some(v) => Some(v.fetch(r)?),
            None => None,
        };
        f(k.fetch(r)?, v)
    })
}

/// Calls `f(key, value)` for each entry of an Index in key byte order: the walk of
/// [`crate::coll::index_walk`] with each slot read.
pub fn for_each_index_entry(
    cell: &Cell,
    r: &dyn Resolver,
    f: &mut dyn FnMut(Cell, Cell) -> Res<()>,
) -> Res<()> {
    crate::coll::index_walk(cell, r, &mut |k, v| f(k.fetch(r)?, v.fetch(r)?))
}

/// [`for_each_index_entry`] over a tree that may have lost cells: where a node or an entry's
/// key or value cannot be found, `lost(id)` is called instead (it may fail the walk) and the
/// walk goes on with the rest. Salvage uses it to keep every entry that survived.
pub fn for_each_surviving_index_entry(
    cell: &Cell,
    r: &dyn Resolver,
    f: &mut dyn FnMut(Cell, Cell) -> Res<()>,
    lost: &mut dyn FnMut(ValueId) -> Res<()>,
) -> Res<()> {
    let refs = cell.refs();
    let mut entry =
        |k: &Ref, v: &Ref, f: &mut dyn FnMut(Cell, Cell) -> Res<()>| match (k.fetch(r), v.fetch(r))
        {
            (Ok(k), Ok(v)) => f(k, v),
            (Err(ResolveError::Missing(id)), _) | (_, Err(ResolveError::Missing(id))) => lost(id),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
    match cell.count() {
        0 => Ok(()),
        1 => entry(&refs[0], &refs[1], f),
        _ => {
            let has_entry = cell.index_header().map(|h| h.0).unwrap_or(false);
            let children = if has_entry {
                entry(&refs[0], &refs[1], f)?;
                &refs[2..]
            } else {
                refs
            };
            for ch in children {
                match ch.fetch(r) {
                    Ok(c) => for_each_surviving_index_entry(&c, r, f, lost)?,
                    Err(ResolveError::Missing(id)) => lost(id)?,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }
}

/// Appends the bytes of a Blob or String (any size) to `out`.
pub fn blob_bytes_into(cell: &Cell, r: &dyn Resolver, out: &mut Vec<u8>) -> Res<()> {
    if let Some(b) = cell.flat_bytes() {
        out.extend_from_slice(b);
        return Ok(());
    }
    for ch in cell.refs() {
        blob_bytes_into(&ch.fetch(r)?, r, out)?;
    }
    Ok(())
}

/// The first `n` bytes of a Blob or String (fewer if it is shorter), reading only the chunks
/// that hold them: a prefix of a 10 GiB Blob costs one path of the tree.
pub fn blob_prefix(cell: &Cell, r: &dyn Resolver, n: usize) -> Res<Vec<u8>> {
    fn walk(cell: &Cell, r: &dyn Resolver, n: usize, out: &mut Vec<u8>) -> Res<()> {
        if let Some(b) = cell.flat_bytes() {
            let take = (n - out.len()).min(b.len());
            out.extend_from_slice(&b[..take]);
            return Ok(());
        }
        for ch in cell.refs() {
            if out.len() >= n {
                break;
            }
            walk(&ch.fetch(r)?, r, n, out)?;
        }
        Ok(())
    }
    let mut out = Vec::with_capacity(n.min(cell.count() as usize));
    walk(cell, r, n, &mut out)?;
    Ok(out)
}

/// The bytes of a Blob or String.
pub fn blob_bytes(cell: &Cell, r: &dyn Resolver) -> Res<Vec<u8>> {
    let mut out = Vec::with_capacity(cell.count().min(1 << 24) as usize);
    blob_bytes_into(cell, r, &mut out)?;
    Ok(out)
}

/// Memory size (encoding.md §10): the sum over direct slot children, plus encoding length + 64
/// for a branch cell. Cached per cell. Iterative post-order (ref chains are unbounded).
pub fn memory_size(cell: &Cell, r: &dyn Resolver) -> Res<u64> {
    if let Some(v) = cell.memory_size_cache().get() {
        return Ok(*v);
    }
    // Sizes of branch cells computed in this walk: fetched (unattached) children are fresh
    // objects, so their own caches do not survive; this memo does.
    let mut memo: std::collections::HashMap<crate::ValueId, u64> = std::collections::HashMap::new();
    let known = |x: &Ref, memo: &std::collections::HashMap<crate::ValueId, u64>| -> Option<u64> {
        match x {
            Ref::Embedded(c) => c.memory_size_cache().get().copied(),
            Ref::Branch(b) => b
                .target()
                .and_then(|c| c.memory_size_cache().get().copied())
                .or_else(|| memo.get(b.id()).copied()),
        }
    };
    // Stack of (cell, is the Syntax metadata map, children pushed?).
    let mut stack: Vec<(Cell, bool, bool)> = vec![(cell.clone(), false, false)];
    while let Some((c, meta, expanded)) = stack.pop() {
        if let Some(v) = c.memory_size_cache().get() {
            // A fetched child may come back already sized (a store's cache hands out the same
            // cell again): its parent reads the size from the memo.
            if !c.is_embedded() {
                memo.insert(*c.id(), *v);
            }
            continue;
        }
        if !expanded {
            stack.push((c.clone(), meta, true));
            for (i, x) in c.refs().iter().enumerate() {
                if known(x, &memo).is_none() {
                    let is_meta = c.kind() == Kind::Syntax && i == 1;
                    stack.push((x.fetch(r)?, is_meta, false));
                }
            }
            continue;
        }
        let mut total: u64 = 0;
        for x in c.refs() {
            total = total.saturating_add(known(x, &memo).unwrap_or(0));
        }
        // The Syntax metadata map is written inline whatever its size: it never counts as a
        // branch of its own.
        if !c.is_embedded() && !meta {
            total = total.saturating_add(c.len() as u64 + 64);
        }
        let total = total.min(i64::MAX as u64);
        let _ = c.memory_size_cache().set(total);
        if !c.is_embedded() {
            memo.insert(*c.id(), total);
        }
    }
    Ok(cell.memory_size_cache().get().copied().unwrap_or(0))
}

/// True when a slot is a nil placeholder (used by printers and walkers).
pub fn is_nil_ref(r: &Ref) -> bool {
    r.is_nil()
}
