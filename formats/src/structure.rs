//! Stage-B canonical-form checks (encoding.md §9): rules that relate a cell to its children.
//!
//! [`check_structure`] checks one cell against whichever children are at hand. Without a
//! resolver, children that are neither embedded nor attached are skipped (the decoder calls it on
//! every cell; a multi-cell body calls it again once refs are attached). With a resolver, a
//! missing child is an S4 error: that is tree verification.

use crate::cell::{tag, Cell, Kind, Ref, ResolveError, Resolver, HASH_LEAF_MAX, VECTOR_LEAF_MAX};
use crate::error::{DecodeError, Rule};
use crate::id::{common_hex_prefix, hex_digit, ValueId};
use crate::shape;

type Res<T> = Result<T, DecodeError>;

fn err(rule: Rule, detail: impl Into<String>) -> DecodeError {
    DecodeError::new(0, rule, detail)
}

/// Gets a child: embedded or attached; else through the resolver (missing → S4); else `None`.
fn child(r: &Ref, resolver: Option<&dyn Resolver>) -> Res<Option<Cell>> {
    if let Some(c) = r.cell() {
        return Ok(Some(c.clone()));
    }
    match resolver {
        None => Ok(None),
        Some(res) => match r.fetch(res) {
            Ok(c) => Ok(Some(c)),
            Err(ResolveError::Missing(id)) => Err(err(Rule::S4, format!("missing cell {id}"))),
            Err(ResolveError::Invalid(e)) => Err(e),
            Err(ResolveError::Store(s)) => Err(err(Rule::S4, format!("store error: {s}"))),
        },
    }
}

/// Checks the stage-B rules between `cell` and its available children (offsets are 0: the
/// caller shifts them to the cell's position).
pub fn check_structure(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<()> {
    match cell.kind() {
        Kind::Blob | Kind::String => check_blob_tree(cell, resolver),
        Kind::Vector | Kind::List | Kind::Record(_) => check_vector(cell, resolver),
        Kind::Map | Kind::Set => check_hash_tree(cell, resolver),
        Kind::Index => check_index(cell, resolver),
        _ => Ok(()),
    }
}

fn check_blob_tree(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<()> {
    let n = cell.count();
    if cell.flat_bytes().is_some() {
        return Ok(());
    }
    let (c, m) = shape::blob_tree(n);
    for (i, (r, size)) in cell
        .refs()
        .iter()
        .zip(shape::child_sizes(n, c, m))
        .enumerate()
    {
        if let Some(ch) = child(r, resolver)? {
            if ch.tag() != tag::BLOB || ch.count() != size {
                return Err(err(
                    Rule::B3,
                    format!(
                        "Blob tree child {i} must be a Blob of {size} bytes, found {} of count {}",
                        ch.kind().name(),
                        ch.count()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn vector_child_ok(ch: &Cell, size: u64) -> bool {
    ch.tag() == tag::VECTOR && ch.count() == size
}

fn check_vector(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<()> {
    let n = cell.count();
    if n <= VECTOR_LEAF_MAX {
        return Ok(());
    }
    if !n.is_multiple_of(16) {
        let size = n - n % 16;
        if let Some(prefix) = cell.refs().last() {
            if let Some(ch) = child(prefix, resolver)? {
                if !vector_child_ok(&ch, size) {
                    return Err(err(
                        Rule::VC3,
                        format!(
                            "prefix must be a Vector of {size} elements, found {} of count {}",
                            ch.kind().name(),
                            ch.count()
                        ),
                    ));
                }
            }
        }
        return Ok(());
    }
    let (c, m) = shape::vector_tree(n);
    for (i, (r, size)) in cell
        .refs()
        .iter()
        .zip(shape::child_sizes(n, c, m))
        .enumerate()
    {
        if let Some(ch) = child(r, resolver)? {
            if !vector_child_ok(&ch, size) {
                return Err(err(
                    Rule::VC3,
                    format!(
                        "tree child {i} must be a Vector of {size} elements, found {} of count {}",
                        ch.kind().name(),
                        ch.count()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The Value ID of the first key beneath a Map/Set node, following available children.
fn first_key_id(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<Option<ValueId>> {
    let mut node = cell.clone();
    loop {
        let Some(first) = node.refs().first() else {
            return Ok(None);
        };
        if node.count() <= HASH_LEAF_MAX {
            return Ok(Some(first.id()));
        }
        match child(first, resolver)? {
            Some(c) => node = c,
            None => return Ok(None),
        }
    }
}

fn check_hash_tree(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<()> {
    let Some((shift, mask)) = cell.hash_tree_header() else {
        return Ok(());
    };
    let s = usize::from(shift);
    let digits = (0..16u8).filter(|d| mask & (1 << d) != 0);
    let mut reference: Option<ValueId> = None;
    let mut total: u64 = 0;
    let mut all_present = true;
    let per = if cell.tag() == tag::MAP { 2 } else { 1 };
    for (r, d) in cell.refs().iter().zip(digits) {
        let Some(ch) = child(r, resolver)? else {
            all_present = false;
            continue;
        };
        if ch.tag() != cell.tag() || ch.count() == 0 {
            return Err(err(
                Rule::H5,
                format!(
                    "hash tree child for digit {d:x} is {} of count {}",
                    ch.kind().name(),
                    ch.count()
                ),
            ));
        }
        total = total.saturating_add(ch.count());
        let keys: Vec<ValueId> = match ch.hash_tree_header() {
            None => ch.refs().iter().step_by(per).map(|k| k.id()).collect(),
            Some((child_shift, _)) => {
                if child_shift <= shift {
                    return Err(err(
                        Rule::H5,
                        format!("child tree shift {child_shift} not deeper than {shift}"),
                    ));
                }
                match first_key_id(&ch, resolver)? {
                    Some(k) => vec![k],
                    None => Vec::new(),
                }
            }
        };
        for k in keys {
            if k.digit(s) != d {
                return Err(err(
                    Rule::H5,
                    format!(
                        "key {k} under digit {d:x} has digit {:x} at {s}",
                        k.digit(s)
                    ),
                ));
            }
            match &reference {
                None => reference = Some(k),
                Some(r0) => {
                    if common_hex_prefix(&r0.0, &k.0, s) < s {
                        return Err(err(
                            Rule::H5,
                            format!("key {k} does not share the node's first {s} digits"),
                        ));
                    }
                }
            }
        }
    }
    if all_present && total != cell.count() {
        return Err(err(
            Rule::H5,
            format!("children hold {total} entries, node says {}", cell.count()),
        ));
    }
    Ok(())
}

/// A representative key beneath an Index node (its entry key, or the first child's).
fn index_rep_key(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<Option<Cell>> {
    let mut node = cell.clone();
    loop {
        let has_entry = match node.index_header() {
            None => true,
            Some((e, _, _)) => e,
        };
        let Some(first) = node.refs().first() else {
            return Ok(None);
        };
        if has_entry {
            return child(first, resolver);
        }
        match child(first, resolver)? {
            Some(c) => node = c,
            None => return Ok(None),
        }
    }
}

/// Depth of an Index node: its depth byte, or for a single entry its key's hex length.
fn index_depth(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<Option<usize>> {
    if let Some((_, d, _)) = cell.index_header() {
        return Ok(Some(usize::from(d)));
    }
    let Some(k) = cell.refs().first() else {
        return Ok(None);
    };
    Ok(child(k, resolver)?.and_then(|k| shape::index_key_hex_len(&k)))
}

fn key_prefix(key: &Cell, resolver: Option<&dyn Resolver>) -> Res<Option<Vec<u8>>> {
    if resolver.is_some() {
        // Make sure the first chunk of a Blob tree key is attached.
        let mut node = key.clone();
        while matches!(node.kind(), Kind::Blob | Kind::String) && node.flat_bytes().is_none() {
            match node.refs().first() {
                Some(r) => match child(r, resolver)? {
                    Some(c) => node = c,
                    None => break,
                },
                None => break,
            }
        }
    }
    Ok(shape::index_key_prefix(key))
}

fn check_index(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<()> {
    let n = cell.count();
    if n == 0 {
        return Ok(());
    }
    if n == 1 {
        if let Some(k) = child(&cell.refs()[0], resolver)? {
            if shape::index_key_hex_len(&k).is_none() {
                return Err(err(
                    Rule::I4,
                    format!("Index key of type {} is not blob-like", k.kind().name()),
                ));
            }
        }
        return Ok(());
    }
    let Some((has_entry, depth, mask)) = cell.index_header() else {
        return Ok(());
    };
    let depth = usize::from(depth);
    let mut reference: Option<Vec<u8>> = None;
    let mut total: u64 = 0;
    let mut all_present = true;
    let children = if has_entry {
        total = 1;
        if let Some(k) = child(&cell.refs()[0], resolver)? {
            match shape::index_key_hex_len(&k) {
                None => return Err(err(Rule::I4, "Index entry key is not blob-like")),
                Some(len) if len != depth => {
                    return Err(err(
                        Rule::I4,
                        format!("Index entry key has {len} hex digits at depth {depth}"),
                    ))
                }
                Some(_) => reference = key_prefix(&k, resolver)?,
            }
        }
        &cell.refs()[2..]
    } else {
        cell.refs()
    };
    let digits = (0..16u8).filter(|d| mask & (1 << d) != 0);
    for (r, d) in children.iter().zip(digits) {
        let Some(ch) = child(r, resolver)? else {
            all_present = false;
            continue;
        };
        if ch.tag() != tag::INDEX || ch.count() == 0 {
            return Err(err(
                Rule::I5,
                format!(
                    "Index child for digit {d:x} is {} of count {}",
                    ch.kind().name(),
                    ch.count()
                ),
            ));
        }
        total = total.saturating_add(ch.count());
        match index_depth(&ch, resolver)? {
            Some(cd) if cd <= depth => {
                return Err(err(
                    Rule::I5,
                    format!("Index child depth {cd} not deeper than {depth}"),
                ))
            }
            _ => {}
        }
        let Some(k) = index_rep_key(&ch, resolver)? else {
            continue;
        };
        let Some(kb) = key_prefix(&k, resolver)? else {
            continue;
        };
        let hex_len = shape::index_key_hex_len(&k).unwrap_or(0).min(2 * kb.len());
        if hex_len <= depth || hex_digit(&kb, depth) != d {
            return Err(err(
                Rule::I5,
                format!("Index child key does not have digit {d:x} at {depth}"),
            ));
        }
        match &reference {
            None => reference = Some(kb),
            Some(r0) => {
                if common_hex_prefix(r0, &kb, depth) < depth {
                    return Err(err(
                        Rule::I5,
                        format!("Index child key does not share the node's first {depth} digits"),
                    ));
                }
            }
        }
    }
    if all_present && total != n {
        return Err(err(
            Rule::I5,
            format!("Index children hold {total} entries, node says {n}"),
        ));
    }
    Ok(())
}

/// Full verification of a tree: every cell reachable from `root` (embedded or through refs,
/// resolved from `resolver`) passes every stage-B rule and every ref resolves (S4), hashes to
/// its ID (S5) and names a branch (S2). Walks with an explicit stack; shared cells are checked
/// once.
pub fn verify_tree(root: &Cell, resolver: &dyn Resolver) -> Res<()> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(cell) = stack.pop() {
        check_structure(&cell, Some(resolver))?;
        for r in cell.refs() {
            let c = child(r, Some(resolver))?
                .ok_or_else(|| err(Rule::S4, format!("missing cell {}", r.id())))?;
            if r.is_branch() && !seen.insert(r.id()) {
                continue;
            }
            stack.push(c);
        }
    }
    Ok(())
}
