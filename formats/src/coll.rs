//! The one home of the keyed collection trees (encoding.md §6.10–§6.14): lookup, walk, build,
//! assoc and diff for hash Maps and Sets and for Indexes, used by the codec's builders
//! ([`crate::build`]), the evaluator (`get`, `contains-key?` in O(depth)) and the lattice merges:
//! keyed lookups, structural diffs that skip identical subtrees, path-copying Index insertion,
//! and canonical rebuilds over child slots (so values are never fetched just to be copied).
//!
//! Everything reads children through a [`Resolver`]; a missing cell surfaces as
//! [`ResolveError::Missing`].

use crate::cell::{tag, Encoder, HASH_LEAF_MAX};
use crate::id::{common_hex_prefix, hex_digit};
use crate::{Cell, Kind, Ref, ResolveError, Resolver, ValueId};
use std::collections::HashMap;

/// A tree operation's result: a child that cannot be read is [`ResolveError`].
pub type Res<T> = Result<T, ResolveError>;

/// The identity of an Index key (encoding.md §6.14): its first (up to) 32 bytes and its hex
/// length capped at 64. Two keys with the same identity are the same entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId {
    /// The key's first (up to) 32 bytes.
    pub bytes: Vec<u8>,
    /// Its length in hex digits, at most 64.
    pub hex: usize,
}

impl KeyId {
    /// Hex digit `i` (0 past the end, which callers avoid: `i < hex`).
    fn digit(&self, i: usize) -> u8 {
        if i / 2 < self.bytes.len() {
            hex_digit(&self.bytes, i)
        } else {
            0
        }
    }
}

/// The Index identity of a blob-like key, `None` for other kinds.
pub fn key_id(key: &Cell, r: &dyn Resolver) -> Res<Option<KeyId>> {
    let (bytes, len) = match key.kind() {
        Kind::Blob | Kind::String => {
            let len = key.count();
            let mut c = key.clone();
            loop {
                if let Some(b) = c.flat_bytes() {
                    break (b[..b.len().min(32)].to_vec(), len);
                }
                // A tree's first child holds at least 4096 bytes.
                match c.refs().first() {
                    Some(first) => c = first.fetch(r)?,
                    None => return Ok(None),
                }
            }
        }
        Kind::Symbol | Kind::Keyword => match key.name_bytes() {
            Some(n) => (n[..n.len().min(32)].to_vec(), n.len() as u64),
            None => return Ok(None),
        },
        Kind::Extension(_) => match key.extension_value() {
            Some(v) => (v.to_be_bytes().to_vec(), 8),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(KeyId {
        bytes,
        hex: len.saturating_mul(2).min(64) as usize,
    }))
}

/// [`key_id`] of a key that sits in a valid Index (always blob-like); a default identity
/// otherwise, which matches nothing real.
fn stored_key_id(key: &Cell, r: &dyn Resolver) -> Res<KeyId> {
    Ok(key_id(key, r)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Index nodes
// ---------------------------------------------------------------------------------------------

/// The parts of an Index node.
struct INode<'a> {
    count: u64,
    /// The entry at this node (count 1: the only entry).
    entry: Option<(&'a Ref, &'a Ref)>,
    /// Depth for count ≥ 2 nodes.
    depth: Option<usize>,
    mask: u16,
    children: &'a [Ref],
}

fn inode(c: &Cell) -> INode<'_> {
    let refs = c.refs();
    let count = c.count();
    match count {
        0 => INode {
            count,
            entry: None,
            depth: None,
            mask: 0,
            children: &[],
        },
        1 if refs.len() >= 2 => INode {
            count,
            entry: Some((&refs[0], &refs[1])),
            depth: None,
            mask: 0,
            children: &[],
        },
        _ => match c.index_header() {
            Some((has, depth, mask)) if !has || refs.len() >= 2 => INode {
                count,
                entry: has.then(|| (&refs[0], &refs[1])),
                depth: Some(depth as usize),
                mask,
                children: if has { &refs[2..] } else { refs },
            },
            _ => INode {
                count,
                entry: None,
                depth: None,
                mask: 0,
                children: &[],
            },
        },
    }
}

/// `index` with `key` set to `value` (removed when `None`): one entry changed through
/// [`apply_changes`]. The node's own root keys (`:pins`, `:quota`, `:hold`) and their Indexes
/// are written this way.
pub fn index_set(index: &Cell, key: Cell, value: Option<Cell>, r: &dyn Resolver) -> Res<Cell> {
    let kid = key_id(&key, r)?;
    let had = match &kid {
        Some(k) => index_get(index, k, r)?.is_some(),
        None => false,
    };
    apply_changes(
        MapKind::Index,
        index,
        vec![Change {
            kid,
            key,
            had,
            value,
        }],
        r,
    )
}

/// The slots of an Index node: its entry `(key, value)` if it has one, and its child nodes.
pub fn index_slots(c: &Cell) -> (Option<(&Ref, &Ref)>, &[Ref]) {
    let n = inode(c);
    (n.entry, n.children)
}

/// The child slot for hex digit `d` of a node with `mask`.
fn child_at(mask: u16, children: &[Ref], d: u8) -> Option<&Ref> {
    if mask & (1 << d) == 0 {
        return None;
    }
    let idx = (mask & ((1u16 << d) - 1)).count_ones() as usize;
    children.get(idx)
}

/// Looks an entry up by key identity: `(stored key, value slot)`.
pub fn index_get(idx: &Cell, kid: &KeyId, r: &dyn Resolver) -> Res<Option<(Cell, Ref)>> {
    if idx.kind() != Kind::Index {
        return Ok(None);
    }
    let mut node = idx.clone();
    loop {
        let n = inode(&node);
        if let Some((k, v)) = n.entry {
            let key = k.fetch(r)?;
            if stored_key_id(&key, r)? == *kid {
                return Ok(Some((key, v.clone())));
            }
        }
        let Some(depth) = n.depth else {
            return Ok(None);
        };
        if kid.hex <= depth {
            return Ok(None);
        }
        let Some(child) = child_at(n.mask, n.children, kid.digit(depth)) else {
            return Ok(None);
        };
        node = child.fetch(r)?;
    }
}

/// Looks a value up by an Index key cell; `None` when the key is not blob-like or absent.
pub fn index_get_value(idx: &Cell, key: &Cell, r: &dyn Resolver) -> Res<Option<Cell>> {
    let Some(kid) = key_id(key, r)? else {
        return Ok(None);
    };
    match index_get(idx, &kid, r)? {
        Some((_, v)) => Ok(Some(v.fetch(r)?)),
        None => Ok(None),
    }
}

/// Calls `f(key slot, value slot)` for each entry of an Index in key order.
pub fn index_walk(
    cell: &Cell,
    r: &dyn Resolver,
    f: &mut dyn FnMut(&Ref, &Ref) -> Res<()>,
) -> Res<()> {
    let n = inode(cell);
    if let Some((k, v)) = n.entry {
        f(k, v)?;
    }
    for ch in n.children {
        index_walk(&ch.fetch(r)?, r, f)?;
    }
    Ok(())
}

/// All entries of an Index as `(identity, key slot, value slot)`.
fn index_entries(cell: &Cell, r: &dyn Resolver) -> Res<Vec<(KeyId, Ref, Ref)>> {
    let mut out = Vec::new();
    index_walk(cell, r, &mut |k, v| {
        let kid = stored_key_id(&k.fetch(r)?, r)?;
        out.push((kid, k.clone(), v.clone()));
        Ok(())
    })?;
    Ok(out)
}

/// A count-1 Index.
fn index_single(key: Ref, val: Ref) -> Cell {
    Encoder::new(tag::INDEX).vlq(1).slot(key).slot(val).finish()
}

/// An Index node with count ≥ 2 from its parts (children sorted by digit, non-empty).
fn index_node(count: u64, entry: Option<(Ref, Ref)>, depth: usize, children: &[(u8, Ref)]) -> Cell {
    let mut e = Encoder::new(tag::INDEX);
    e.vlq(count);
    match entry {
        Some((k, v)) => {
            e.byte(0x80).slot(k).slot(v);
        }
        None => {
            e.byte(0x00);
        }
    }
    let mask = children.iter().fold(0u16, |m, (d, _)| m | (1 << d));
    e.byte(depth as u8).bytes(&mask.to_be_bytes());
    for (_, ch) in children {
        e.slot(ch.clone());
    }
    e.finish()
}

/// The canonical Index of these entries (any order; for equal identities the last wins).
pub fn index_build(mut entries: Vec<(KeyId, Ref, Ref)>) -> Cell {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut dedup: Vec<(KeyId, Ref, Ref)> = Vec::with_capacity(entries.len());
    for e in entries {
        match dedup.last_mut() {
            Some(last) if last.0 == e.0 => *last = e,
            _ => dedup.push(e),
        }
    }
    index_build_sorted(&dedup)
}

fn index_build_sorted(entries: &[(KeyId, Ref, Ref)]) -> Cell {
    match entries {
        [] => Encoder::new(tag::INDEX).vlq(0).finish(),
        [(_, k, v)] => index_single(k.clone(), v.clone()),
        [first, .., last] => {
            let depth =
                common_hex_prefix(&first.0.bytes, &last.0.bytes, first.0.hex.min(last.0.hex));
            let (entry, rest) = if first.0.hex == depth {
                (Some((first.1.clone(), first.2.clone())), &entries[1..])
            } else {
                (None, entries)
            };
            let mut groups = Vec::new();
            let mut start = 0;
            for i in 1..=rest.len() {
                if i == rest.len() || rest[i].0.digit(depth) != rest[start].0.digit(depth) {
                    groups.push((rest[start].0.digit(depth), &rest[start..i]));
                    start = i;
                }
            }
            let built = build_groups(rest.len(), &groups, |(_, g)| index_build_sorted(g));
            let children: Vec<(u8, Ref)> = groups
                .iter()
                .zip(built)
                .map(|((d, _), c)| (*d, Ref::to(c)))
                .collect();
            index_node(entries.len() as u64, entry, depth, &children)
        }
    }
}

/// The identity of some key below a node (the node's prefix is its first `depth` digits).
fn leftmost_key_id(node: &Cell, r: &dyn Resolver) -> Res<KeyId> {
    let mut node = node.clone();
    loop {
        let n = inode(&node);
        if let Some((k, _)) = n.entry {
            return stored_key_id(&k.fetch(r)?, r);
        }
        match n.children.first() {
            Some(ch) => node = ch.fetch(r)?,
            None => return Ok(KeyId::default()),
        }
    }
}

/// `idx` with `key → val` (replacing the value of an entry with the same identity and keeping
/// that entry's key spelling). Rebuilds only the nodes on the key's path.
pub fn index_assoc(idx: &Cell, key: &Cell, kid: &KeyId, val: Ref, r: &dyn Resolver) -> Res<Cell> {
    Ok(assoc(idx, &Ref::to(key.clone()), kid, val, r)?.0)
}

fn assoc(node: &Cell, key: &Ref, kid: &KeyId, val: Ref, r: &dyn Resolver) -> Res<(Cell, bool)> {
    let n = inode(node);
    let count = n.count;
    if count == 0 {
        return Ok((index_single(key.clone(), val), true));
    }
    let Some(depth) = n.depth else {
        // A single entry.
        let Some((ek, ev)) = n.entry else {
            return Ok((index_single(key.clone(), val), true));
        };
        let eid = stored_key_id(&ek.fetch(r)?, r)?;
        if eid == *kid {
            if ev.id() == val.id() {
                return Ok((node.clone(), false));
            }
            return Ok((index_single(ek.clone(), val), false));
        }
        let built = index_build(vec![
            (eid, ek.clone(), ev.clone()),
            (kid.clone(), key.clone(), val),
        ]);
        return Ok((built, true));
    };
    let sample = match n.entry {
        Some((k, _)) => stored_key_id(&k.fetch(r)?, r)?,
        None => leftmost_key_id(node, r)?,
    };
    let c = common_hex_prefix(&kid.bytes, &sample.bytes, kid.hex.min(depth));
    let mut children: Vec<(u8, Ref)> = (0..16u8)
        .filter_map(|d| child_at(n.mask, n.children, d).map(|ch| (d, ch.clone())))
        .collect();
    let entry = n.entry.map(|(k, v)| (k.clone(), v.clone()));
    if c < depth {
        // The key leaves this node's prefix at digit c: a new parent at depth c.
        let here = (sample.digit(c), Ref::to(node.clone()));
        let built = if kid.hex == c {
            index_node(count + 1, Some((key.clone(), val)), c, &[here])
        } else {
            let new = (kid.digit(c), Ref::to(index_single(key.clone(), val)));
            let mut kids = vec![here, new];
            kids.sort_by_key(|x| x.0);
            index_node(count + 1, None, c, &kids)
        };
        return Ok((built, true));
    }
    if kid.hex == depth {
        // The entry slot of this node.
        return Ok(match entry {
            Some((k, v)) => {
                if v.id() == val.id() {
                    (node.clone(), false)
                } else {
                    (index_node(count, Some((k, val)), depth, &children), false)
                }
            }
            None => (
                index_node(count + 1, Some((key.clone(), val)), depth, &children),
                true,
            ),
        });
    }
    let d = kid.digit(depth);
    match children.iter().position(|x| x.0 == d) {
        Some(i) => {
            let child = children[i].1.fetch(r)?;
            let (child2, added) = assoc(&child, key, kid, val, r)?;
            if !added && child2 == child {
                return Ok((node.clone(), false));
            }
            children[i].1 = Ref::to(child2);
            let count = count + u64::from(added);
            Ok((index_node(count, entry, depth, &children), added))
        }
        None => {
            children.push((d, Ref::to(index_single(key.clone(), val))));
            children.sort_by_key(|x| x.0);
            Ok((index_node(count + 1, entry, depth, &children), true))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hash Maps and Sets
// ---------------------------------------------------------------------------------------------

/// Slots per entry: 2 for a Map, 1 for a Set.
fn per(c: &Cell) -> usize {
    if c.tag() == tag::MAP {
        2
    } else {
        1
    }
}

/// Looks up a hash Map/Set entry by the key's Value ID: `(key slot, value slot)` (Sets: the
/// value slot is the element itself).
pub fn hash_get(map: &Cell, id: &ValueId, r: &dyn Resolver) -> Res<Option<(Ref, Ref)>> {
    if !matches!(map.kind(), Kind::Map | Kind::Set) {
        return Ok(None);
    }
    let per = per(map);
    let mut node = map.clone();
    loop {
        match node.hash_tree_header() {
            None => {
                for pair in node.refs().chunks(per) {
                    if pair[0].id() == *id {
                        let v = pair.get(1).unwrap_or(&pair[0]);
                        return Ok(Some((pair[0].clone(), v.clone())));
                    }
                }
                return Ok(None);
            }
            Some((shift, _)) if shift >= 64 => return Ok(None),
            Some((shift, mask)) => {
                let Some(child) = child_at(mask, node.refs(), id.digit(shift as usize)) else {
                    return Ok(None);
                };
                node = child.fetch(r)?;
            }
        }
    }
}

/// The value under `key` in a hash Map.
pub fn map_get(map: &Cell, key: &Cell, r: &dyn Resolver) -> Res<Option<Cell>> {
    if map.kind() != Kind::Map {
        return Ok(None);
    }
    match hash_get(map, key.id(), r)? {
        Some((_, v)) => Ok(Some(v.fetch(r)?)),
        None => Ok(None),
    }
}

/// Calls `f(key slot, value slot)` for each entry of a Map or Set (Sets: `None`).
pub fn hash_walk(
    cell: &Cell,
    r: &dyn Resolver,
    f: &mut dyn FnMut(&Ref, Option<&Ref>) -> Res<()>,
) -> Res<()> {
    if cell.hash_tree_header().is_none() {
        for pair in cell.refs().chunks(per(cell)) {
            f(&pair[0], pair.get(1))?;
        }
        return Ok(());
    }
    for ch in cell.refs() {
        hash_walk(&ch.fetch(r)?, r, f)?;
    }
    Ok(())
}

/// A hash Map or Set entry for [`hash_build`]: the key's ID, the key and (Maps) the value.
pub type HashEntry = (ValueId, Ref, Option<Ref>);

/// Entries from which a tree's subtrees are built and hashed on every core (rayon).
const PARALLEL_ENTRIES_MIN: usize = 4096;

/// Builds one subtree per group, on every core when there are `n` ≥ [`PARALLEL_ENTRIES_MIN`]
/// entries in all, each with its ID computed there (so a parent never hashes serially).
fn build_groups<G: Sync>(n: usize, groups: &[G], build: impl Fn(&G) -> Cell + Sync) -> Vec<Cell> {
    use rayon::prelude::*;
    if n < PARALLEL_ENTRIES_MIN {
        return groups.iter().map(build).collect();
    }
    groups
        .par_iter()
        .map(|g| {
            let c = build(g);
            if !c.is_embedded() {
                c.id();
            }
            c
        })
        .collect()
}

fn hash_entries(cell: &Cell, r: &dyn Resolver) -> Res<Vec<HashEntry>> {
    let mut out = Vec::new();
    hash_walk(cell, r, &mut |k, v| {
        out.push((k.id(), k.clone(), v.cloned()));
        Ok(())
    })?;
    Ok(out)
}

/// The canonical Map (`t` = Map tag, values present) or Set of these entries; for equal keys
/// the last wins.
pub fn hash_build(t: u8, mut entries: Vec<HashEntry>) -> Cell {
    entries.sort_by_key(|a| a.0);
    let mut dedup: Vec<HashEntry> = Vec::with_capacity(entries.len());
    for e in entries {
        match dedup.last_mut() {
            Some(last) if last.0 == e.0 => *last = e,
            _ => dedup.push(e),
        }
    }
    hash_node(t, &dedup)
}

fn hash_node(t: u8, entries: &[HashEntry]) -> Cell {
    let n = entries.len() as u64;
    let mut e = Encoder::new(t);
    e.vlq(n);
    if n <= HASH_LEAF_MAX {
        for (_, k, v) in entries {
            e.slot(k.clone());
            if let Some(v) = v {
                e.slot(v.clone());
            }
        }
        return e.finish();
    }
    let first = &entries[0].0;
    let last = &entries[entries.len() - 1].0;
    let shift = common_hex_prefix(&first.0, &last.0, 64);
    let mut mask = 0u16;
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        if i == entries.len() || entries[i].0.digit(shift) != entries[start].0.digit(shift) {
            mask |= 1 << entries[start].0.digit(shift);
            groups.push(&entries[start..i]);
            start = i;
        }
    }
    e.byte(shift as u8).bytes(&mask.to_be_bytes());
    for ch in build_groups(entries.len(), &groups, |g| hash_node(t, g)) {
        e.child(ch);
    }
    e.finish()
}

// ---------------------------------------------------------------------------------------------
// Diffs
// ---------------------------------------------------------------------------------------------

/// An entry of the other side that is absent from own or differs from own's.
pub struct Pair {
    /// The key as stored in own when present there, else as in other.
    pub key: Cell,
    /// Own's value slot (absent: `None`).
    pub a: Option<Ref>,
    /// Other's value slot (for Sets: the element).
    pub b: Ref,
    /// Index identity of the key (Indexes only).
    pub kid: Option<KeyId>,
}

/// The difference between own and other, computed without walking identical subtrees.
#[derive(Default)]
pub struct Diff {
    /// Other's entries that own lacks or holds with a different value.
    pub pairs: Vec<Pair>,
    /// Own has entries other lacks.
    pub a_only: bool,
    /// Some entry is in both with equal identity but different key spelling (Index).
    pub spelling_differs: bool,
}

/// Above this ratio of sizes a mismatched subtree pair is diffed by lookups into the larger
/// side instead of by collecting both.
const LOOKUP_RATIO: u64 = 4;

/// Diff of two Indexes.
pub fn index_diff(a: &Cell, b: &Cell, r: &dyn Resolver) -> Res<Diff> {
    let mut out = Diff::default();
    idiff(a, b, r, &mut out)?;
    Ok(out)
}

fn idiff(a: &Cell, b: &Cell, r: &dyn Resolver, out: &mut Diff) -> Res<()> {
    if a == b {
        return Ok(());
    }
    let (na, nb) = (inode(a), inode(b));
    match (na.depth, nb.depth) {
        (Some(da), Some(db)) if da == db => {
            match (na.entry, nb.entry) {
                (Some((ka, va)), Some((kb, vb))) => {
                    let (ka, kb) = (ka.fetch(r)?, kb.fetch(r)?);
                    let (ia, ib) = (stored_key_id(&ka, r)?, stored_key_id(&kb, r)?);
                    if ia == ib {
                        pair_both(out, ka, kb, ia, va, vb);
                    } else {
                        out.a_only = true;
                        push_b_only(out, kb, ib, vb);
                    }
                }
                (Some(_), None) => out.a_only = true,
                (None, Some((kb, vb))) => {
                    let kb = kb.fetch(r)?;
                    let ib = stored_key_id(&kb, r)?;
                    push_b_only(out, kb, ib, vb);
                }
                (None, None) => {}
            }
            for d in 0..16u8 {
                match (
                    child_at(na.mask, na.children, d),
                    child_at(nb.mask, nb.children, d),
                ) {
                    (Some(ca), Some(cb)) => {
                        if ca.id() != cb.id() {
                            idiff(&ca.fetch(r)?, &cb.fetch(r)?, r, out)?;
                        }
                    }
                    (Some(_), None) => out.a_only = true,
                    (None, Some(cb)) => {
                        for (ib, kb, vb) in index_entries(&cb.fetch(r)?, r)? {
                            push_b_only(out, kb.fetch(r)?, ib, &vb);
                        }
                    }
                    (None, None) => {}
                }
            }
            Ok(())
        }
        _ => {
            if nb.count.saturating_mul(LOOKUP_RATIO) <= na.count {
                // Small other: look each entry up in own.
                let mut matched = 0u64;
                for (ib, kb, vb) in index_entries(b, r)? {
                    let kb = kb.fetch(r)?;
                    match index_get(a, &ib, r)? {
                        Some((ka, va)) => {
                            matched += 1;
                            pair_both(out, ka, kb, ib, &va, &vb);
                        }
                        None => push_b_only(out, kb, ib, &vb),
                    }
                }
                if matched < na.count {
                    out.a_only = true;
                }
            } else {
                let mut own: HashMap<KeyId, (Ref, Ref)> = index_entries(a, r)?
                    .into_iter()
                    .map(|(i, k, v)| (i, (k, v)))
                    .collect();
                for (ib, kb, vb) in index_entries(b, r)? {
                    let kb = kb.fetch(r)?;
                    match own.remove(&ib) {
                        Some((ka, va)) => pair_both(out, ka.fetch(r)?, kb, ib, &va, &vb),
                        None => push_b_only(out, kb, ib, &vb),
                    }
                }
                if !own.is_empty() {
                    out.a_only = true;
                }
            }
            Ok(())
        }
    }
}

fn pair_both(out: &mut Diff, ka: Cell, kb: Cell, kid: KeyId, va: &Ref, vb: &Ref) {
    if ka != kb {
        out.spelling_differs = true;
    }
    if va.id() != vb.id() {
        out.pairs.push(Pair {
            key: ka,
            a: Some(va.clone()),
            b: vb.clone(),
            kid: Some(kid),
        });
    }
}

fn push_b_only(out: &mut Diff, kb: Cell, kid: KeyId, vb: &Ref) {
    out.pairs.push(Pair {
        key: kb,
        a: None,
        b: vb.clone(),
        kid: Some(kid),
    });
}

/// Diff of two hash Maps or two Sets (for Sets, `Pair::b` is the element).
pub fn hash_diff(a: &Cell, b: &Cell, r: &dyn Resolver) -> Res<Diff> {
    let mut out = Diff::default();
    hdiff(a, b, r, &mut out)?;
    Ok(out)
}

fn hdiff(a: &Cell, b: &Cell, r: &dyn Resolver, out: &mut Diff) -> Res<()> {
    if a == b {
        return Ok(());
    }
    match (a.hash_tree_header(), b.hash_tree_header()) {
        (Some((sa, ma)), Some((sb, mb))) if sa == sb => {
            for d in 0..16u8 {
                match (child_at(ma, a.refs(), d), child_at(mb, b.refs(), d)) {
                    (Some(ca), Some(cb)) => {
                        if ca.id() != cb.id() {
                            hdiff(&ca.fetch(r)?, &cb.fetch(r)?, r, out)?;
                        }
                    }
                    (Some(_), None) => out.a_only = true,
                    (None, Some(cb)) => {
                        for (_, kb, vb) in hash_entries(&cb.fetch(r)?, r)? {
                            hash_b_only(out, &kb, vb.as_ref(), r)?;
                        }
                    }
                    (None, None) => {}
                }
            }
            Ok(())
        }
        _ => {
            let (na, nb) = (a.count(), b.count());
            if nb.saturating_mul(LOOKUP_RATIO) <= na {
                let mut matched = 0u64;
                for (id, kb, vb) in hash_entries(b, r)? {
                    match hash_get(a, &id, r)? {
                        Some((ka, va)) => {
                            matched += 1;
                            let vb = vb.unwrap_or_else(|| kb.clone());
                            if va.id() != vb.id() {
                                out.pairs.push(Pair {
                                    key: ka.fetch(r)?,
                                    a: Some(va),
                                    b: vb,
                                    kid: None,
                                });
                            }
                        }
                        None => hash_b_only(out, &kb, vb.as_ref(), r)?,
                    }
                }
                if matched < na {
                    out.a_only = true;
                }
            } else {
                let mut own: HashMap<ValueId, (Ref, Option<Ref>)> = hash_entries(a, r)?
                    .into_iter()
                    .map(|(i, k, v)| (i, (k, v)))
                    .collect();
                for (id, kb, vb) in hash_entries(b, r)? {
                    match own.remove(&id) {
                        Some((ka, va)) => {
                            let va = va.unwrap_or_else(|| ka.clone());
                            let vb = vb.unwrap_or_else(|| kb.clone());
                            if va.id() != vb.id() {
                                out.pairs.push(Pair {
                                    key: ka.fetch(r)?,
                                    a: Some(va),
                                    b: vb,
                                    kid: None,
                                });
                            }
                        }
                        None => hash_b_only(out, &kb, vb.as_ref(), r)?,
                    }
                }
                if !own.is_empty() {
                    out.a_only = true;
                }
            }
            Ok(())
        }
    }
}

fn hash_b_only(out: &mut Diff, kb: &Ref, vb: Option<&Ref>, r: &dyn Resolver) -> Res<()> {
    out.pairs.push(Pair {
        key: kb.fetch(r)?,
        a: None,
        b: vb.unwrap_or(kb).clone(),
        kid: None,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Map merge mechanics (lattice.md §3)
// ---------------------------------------------------------------------------------------------

/// Which keyed collection a map merge runs over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapKind {
    /// A hash Map (`82`).
    Hash,
    /// An Index (`84`).
    Index,
}

impl MapKind {
    /// The kind of a cell, if it is one of these collections.
    pub fn of(c: &Cell) -> Option<MapKind> {
        match c.kind() {
            Kind::Map => Some(MapKind::Hash),
            Kind::Index => Some(MapKind::Index),
            _ => None,
        }
    }

    /// The empty collection.
    pub fn empty(self) -> Cell {
        match self {
            MapKind::Hash => Cell::map(Vec::new()),
            MapKind::Index => index_build(Vec::new()),
        }
    }
}

/// The per-key function of a map merge: `(key, own value, other value) → merged value`
/// (`None` removes the key).
pub type EntryMerge<'a, E> = dyn FnMut(&Cell, Option<Cell>, Cell) -> Result<Option<Cell>, E> + 'a;

/// A change to apply to own: set (`Some`) or remove (`None`) the value under a key.
pub struct Change {
    /// The key.
    pub key: Cell,
    /// Its Index identity (Indexes only; `None` for a hash Map).
    pub kid: Option<KeyId>,
    /// Whether own has an entry under the key now.
    pub had: bool,
    /// The new value; `None` removes the entry.
    pub value: Option<Cell>,
}

/// The per-key map merge of §3 over two collections of the same `kind`: for every key of
/// other that own lacks or holds with a different value, `f(key, own value, other value)`
/// gives the merged value (`None` removes the key). Keys only in own are kept. The result is
/// `own` itself when nothing changes and `other` itself when the merge equals it.
pub fn map_merge<E: From<ResolveError>>(
    kind: MapKind,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
    f: &mut EntryMerge<'_, E>,
) -> Result<Cell, E> {
    if own == other {
        return Ok(own.clone());
    }
    let diff = match kind {
        MapKind::Hash => hash_diff(own, other, r)?,
        MapKind::Index => index_diff(own, other, r)?,
    };
    let mut changes = Vec::new();
    let mut all_b = !diff.a_only && !diff.spelling_differs;
    for p in diff.pairs {
        let a = match &p.a {
            Some(a) => Some(a.fetch(r)?),
            None => None,
        };
        let b = p.b.fetch(r)?;
        let m = f(&p.key, a.clone(), b.clone())?;
        if m.as_ref() != Some(&b) {
            all_b = false;
        }
        if m != a {
            changes.push(Change {
                key: p.key,
                kid: p.kid,
                had: a.is_some(),
                value: m,
            });
        }
    }
    if changes.is_empty() {
        return Ok(own.clone());
    }
    if all_b {
        return Ok(other.clone());
    }
    Ok(apply_changes(kind, own, changes, r)?)
}

/// Own with these changes applied.
pub fn apply_changes(
    kind: MapKind,
    own: &Cell,
    changes: Vec<Change>,
    r: &dyn Resolver,
) -> Res<Cell> {
    match kind {
        MapKind::Index => {
            if changes.iter().all(|c| c.value.is_some() || !c.had) {
                let mut out = own.clone();
                for c in changes {
                    let (Some(v), Some(kid)) = (c.value, c.kid) else {
                        continue;
                    };
                    out = index_assoc(&out, &c.key, &kid, Ref::to(v), r)?;
                }
                return Ok(out);
            }
            let mut entries: HashMap<KeyId, (Ref, Ref)> = index_entries(own, r)?
                .into_iter()
                .map(|(i, k, v)| (i, (k, v)))
                .collect();
            for c in changes {
                let Some(kid) = c.kid else { continue };
                match c.value {
                    Some(v) => {
                        let key = match entries.remove(&kid) {
                            Some((k, _)) => k,
                            None => Ref::to(c.key),
                        };
                        entries.insert(kid, (key, Ref::to(v)));
                    }
                    None => {
                        entries.remove(&kid);
                    }
                }
            }
            Ok(index_build(
                entries.into_iter().map(|(i, (k, v))| (i, k, v)).collect(),
            ))
        }
        MapKind::Hash => {
            let mut entries: HashMap<ValueId, (Ref, Option<Ref>)> = hash_entries(own, r)?
                .into_iter()
                .map(|(i, k, v)| (i, (k, v)))
                .collect();
            for c in changes {
                let id = *c.key.id();
                match c.value {
                    Some(v) => {
                        entries.insert(id, (Ref::to(c.key), Some(Ref::to(v))));
                    }
                    None => {
                        entries.remove(&id);
                    }
                }
            }
            Ok(hash_build(
                tag::MAP,
                entries.into_iter().map(|(i, (k, v))| (i, k, v)).collect(),
            ))
        }
    }
}

/// Set union; own itself when other adds nothing, other itself when it contains own.
pub fn set_union(own: &Cell, other: &Cell, r: &dyn Resolver) -> Res<Cell> {
    if own == other {
        return Ok(own.clone());
    }
    let diff = hash_diff(own, other, r)?;
    if diff.pairs.is_empty() {
        return Ok(own.clone());
    }
    if !diff.a_only {
        return Ok(other.clone());
    }
    let mut entries = hash_entries(own, r)?;
    for p in diff.pairs {
        entries.push((p.b.id(), p.b, None));
    }
    Ok(hash_build(tag::SET, entries))
}

/// A Map or Index with one key set, for wrapping a value at a path.
pub fn singleton(kind: MapKind, key: &Cell, value: Cell, r: &dyn Resolver) -> Res<Option<Cell>> {
    Ok(match kind {
        MapKind::Hash => Some(Cell::map(vec![(key.clone(), value)])),
        MapKind::Index => key_id(key, r)?
            .map(|kid| index_build(vec![(kid, Ref::to(key.clone()), Ref::to(value))])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoResolver;
    use proptest::prelude::*;

    fn keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(0u8..4, 0..5), 0..40)
    }

    fn index_of(ks: &[Vec<u8>]) -> Cell {
        let entries = ks
            .iter()
            .enumerate()
            .map(|(i, k)| (Cell::blob(k), Cell::long(i as i64)))
            .collect();
        Cell::index(entries).unwrap()
    }

    proptest! {
        #[test]
        fn index_build_is_canonical(ks in keys()) {
            let entries: Vec<(KeyId, Ref, Ref)> = ks
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let key = Cell::blob(k);
                    (key_id(&key, &NoResolver).unwrap().unwrap(), Ref::to(key), Ref::to(Cell::long(i as i64)))
                })
                .collect();
            prop_assert_eq!(index_build(entries), index_of(&ks));
        }

        #[test]
        fn index_assoc_is_canonical(ks in keys(), extra in keys()) {
            let mut idx = index_of(&ks);
            let mut all = ks.clone();
            for (j, k) in extra.iter().enumerate() {
                let key = Cell::blob(k);
                let kid = key_id(&key, &NoResolver).unwrap().unwrap();
                let v = Cell::long((ks.len() + j) as i64);
                idx = index_assoc(&idx, &key, &kid, Ref::to(v), &NoResolver).unwrap();
                all.push(k.clone());
            }
            prop_assert_eq!(idx, index_of(&all));
        }

        #[test]
        fn index_get_finds(ks in keys(), probe in prop::collection::vec(0u8..4, 0..5)) {
            let idx = index_of(&ks);
            let key = Cell::blob(&probe);
            let kid = key_id(&key, &NoResolver).unwrap().unwrap();
            let want = ks.iter().rposition(|k| *k == probe).map(|i| Cell::long(i as i64));
            let got = index_get(&idx, &kid, &NoResolver).unwrap().map(|(_, v)| v.fetch(&NoResolver).unwrap());
            prop_assert_eq!(got, want);
        }

        #[test]
        fn hash_build_is_canonical(ks in prop::collection::vec(0i64..100, 0..60)) {
            let entries: Vec<HashEntry> = ks
                .iter()
                .map(|k| { let c = Cell::long(*k); (*c.id(), Ref::to(c), Some(Ref::to(Cell::long(k * 2)))) })
                .collect();
            let want = Cell::map(ks.iter().map(|k| (Cell::long(*k), Cell::long(k * 2))).collect());
            prop_assert_eq!(hash_build(tag::MAP, entries), want);
        }

        #[test]
        fn index_diff_matches_naive(a in keys(), b in keys()) {
            let (ia, ib) = (index_of(&a), index_of(&b));
            let d = index_diff(&ia, &ib, &NoResolver).unwrap();
            let mut ea = std::collections::BTreeMap::new();
            crate::value::for_each_index_entry(&ia, &NoResolver, &mut |k, v| { ea.insert(k.encoding().to_vec(), v); Ok(()) }).unwrap();
            let mut eb = std::collections::BTreeMap::new();
            crate::value::for_each_index_entry(&ib, &NoResolver, &mut |k, v| { eb.insert(k.encoding().to_vec(), v); Ok(()) }).unwrap();
            let want: std::collections::BTreeSet<Vec<u8>> = eb.iter().filter(|(k, v)| ea.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
            let got: std::collections::BTreeSet<Vec<u8>> = d.pairs.iter().map(|p| p.key.encoding().to_vec()).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(d.a_only, ea.keys().any(|k| !eb.contains_key(k)));
        }

        #[test]
        fn long_keys_follow_index_identity(ks in long_keys(), extra in long_keys()) {
            // index_build: the last of equal identities wins, as in Cell::index.
            prop_assert_eq!(index_build(entries_of(&ks, 0)), index_of(&ks));
            // index_assoc: the first spelling stays, the last value wins.
            let mut idx = index_of(&ks);
            let mut want: std::collections::BTreeMap<KeyId, (Cell, Cell)> = Default::default();
            crate::value::for_each_index_entry(&idx, &NoResolver, &mut |k, v| {
                want.insert(key_id(&k, &NoResolver)?.unwrap(), (k, v));
                Ok(())
            }).unwrap();
            for (j, k) in extra.iter().enumerate() {
                let key = Cell::blob(k);
                let kid = key_id(&key, &NoResolver).unwrap().unwrap();
                let v = Cell::long(1000 + j as i64);
                idx = index_assoc(&idx, &key, &kid, Ref::to(v.clone()), &NoResolver).unwrap();
                let spelled = want.get(&kid).map(|e| e.0.clone()).unwrap_or(key);
                want.insert(kid, (spelled, v));
            }
            prop_assert_eq!(idx, Cell::index(want.into_values().collect()).unwrap());
        }

        #[test]
        fn index_merge_matches_naive(a in keys(), b in keys(), seed in 0i64..7) {
            let ia = index_with_values(&a, seed);
            let ib = index_with_values(&b, seed + 3);
            let got = map_merge::<ResolveError>(MapKind::Index, &ia, &ib, &NoResolver, &mut |_, x, y| {
                Ok(Some(match x { Some(x) if x.as_long() >= y.as_long() => x, _ => y }))
            }).unwrap();
            let mut want: std::collections::BTreeMap<Vec<u8>, (Cell, Cell)> = Default::default();
            for c in [&ia, &ib] {
                crate::value::for_each_index_entry(c, &NoResolver, &mut |k, v| {
                    let e = want.entry(k.encoding().to_vec()).or_insert((k, v.clone()));
                    if v.as_long() > e.1.as_long() { e.1 = v; }
                    Ok(())
                }).unwrap();
            }
            prop_assert_eq!(got, Cell::index(want.into_values().collect()).unwrap());
        }

        #[test]
        fn hash_merge_matches_naive(
            a in prop::collection::vec((0i64..50, 0i64..9), 0..45),
            b in prop::collection::vec((0i64..50, 0i64..9), 0..45),
        ) {
            let ma = Cell::map(a.iter().map(|(k, v)| (Cell::long(*k), Cell::long(*v))).collect());
            let mb = Cell::map(b.iter().map(|(k, v)| (Cell::long(*k), Cell::long(*v))).collect());
            let got = map_merge::<ResolveError>(MapKind::Hash, &ma, &mb, &NoResolver, &mut |_, x, y| {
                Ok(Some(match x { Some(x) if x.as_long() >= y.as_long() => x, _ => y }))
            }).unwrap();
            let mut want: std::collections::BTreeMap<i64, i64> = Default::default();
            for (k, v) in a.iter().map(|e| (e.0, e.1)).collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .chain(b.iter().map(|e| (e.0, e.1)).collect::<std::collections::BTreeMap<_, _>>())
            {
                let e = want.entry(k).or_insert(v);
                *e = (*e).max(v);
            }
            let want = Cell::map(want.into_iter().map(|(k, v)| (Cell::long(k), Cell::long(v))).collect());
            prop_assert_eq!(got, want);
        }

        #[test]
        fn set_union_matches_naive(
            a in prop::collection::vec(0i64..60, 0..50),
            b in prop::collection::vec(0i64..60, 0..50),
        ) {
            let sa = Cell::set(a.iter().copied().map(Cell::long).collect());
            let sb = Cell::set(b.iter().copied().map(Cell::long).collect());
            let want = Cell::set(a.iter().chain(&b).copied().map(Cell::long).collect());
            prop_assert_eq!(set_union(&sa, &sb, &NoResolver).unwrap(), want);
        }
    }

    /// Keys sharing a 30-byte prefix, 30–35 bytes long: identities collide past 32 bytes.
    fn long_keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(
            prop::collection::vec(0u8..2, 0..6).prop_map(|tail| {
                let mut k = vec![5u8; 30];
                k.extend(tail);
                k
            }),
            0..30,
        )
    }

    fn entries_of(ks: &[Vec<u8>], base: i64) -> Vec<(KeyId, Ref, Ref)> {
        ks.iter()
            .enumerate()
            .map(|(i, k)| {
                let key = Cell::blob(k);
                (
                    key_id(&key, &NoResolver).unwrap().unwrap(),
                    Ref::to(key),
                    Ref::to(Cell::long(base + i as i64)),
                )
            })
            .collect()
    }

    /// An Index of these keys with pseudo-random small values.
    fn index_with_values(ks: &[Vec<u8>], seed: i64) -> Cell {
        Cell::index(
            ks.iter()
                .enumerate()
                .map(|(i, k)| (Cell::blob(k), Cell::long((i as i64 * 7 + seed) % 5)))
                .collect(),
        )
        .unwrap()
    }
}
