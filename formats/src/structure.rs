//! Stage-B canonical-form checks (encoding.md §9): rules that relate a cell to its children.
//!
//! The rules read a child only through its [`Summary`]: its kind, count and headers, its first
//! slot (which the descents to a hash tree's first key or an Index node's key follow), a hash
//! leaf's keys, and what it gives as an Index key. [`check_structure`] summarises the children
//! at hand. Without a resolver, children that are neither embedded nor attached are skipped
//! (the decoder calls it on every cell; a multi-cell body calls it again once refs are
//! attached). With a resolver, a missing child is an S4 error: that is tree verification. A
//! verifier of a whole store keeps one summary per stored cell instead of the cells, and checks
//! through [`check_structure_with`].

use crate::cell::{
    tag, Branch, Cell, Kind, Ref, ResolveError, Resolver, HASH_LEAF_MAX, VECTOR_LEAF_MAX,
};
use crate::error::{DecodeError, Rule};
use crate::id::{common_hex_prefix, hex_digit, ValueId};
use crate::shape;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

type Res<T> = Result<T, DecodeError>;

fn err(rule: Rule, detail: impl Into<String>) -> DecodeError {
    DecodeError::new(0, rule, detail)
}

/// A child slot as a [`Summary`] keeps it. A summary made for the check at hand holds the
/// slot as it is; a kept one ([`Summary::kept`]) holds no cell.
#[derive(Clone)]
pub enum Slot {
    /// An embedded cell.
    Embedded(Cell),
    /// An embedded cell, summarised.
    Summarised(Box<Summary>),
    /// A branch ref (its target attached, when it was).
    Branch(Arc<Branch>),
    /// A branch known by its Value ID.
    Id(ValueId),
}

/// What the stage-B rules read of a child cell, without the child's own children: about 160
/// bytes in place of a decoded cell and its refs.
#[derive(Clone)]
pub struct Summary {
    kind: Kind,
    tag: u8,
    count: u64,
    hash_header: Option<(u8, u16)>,
    index_header: Option<(bool, u8, u16)>,
    /// The first child slot (the descents follow it).
    first: Option<Slot>,
    /// A Map/Set leaf's keys, in order.
    leaf_keys: Box<[ValueId]>,
    /// As an Index key: its hex length (at most 64; `None`: not blob-like).
    key_hex_len: Option<u8>,
    /// As an Index key: its first (up to) 32 bytes, where its own encoding holds them.
    key_prefix: Option<Prefix>,
    /// What a descent along first slots found beneath this node, remembered when the summary
    /// is kept (a store's verifier asks for each node's once, not once per ancestor).
    beneath: OnceLock<Beneath>,
}

/// The first (up to) 32 bytes of an Index key.
#[derive(Clone, Copy)]
struct Prefix([u8; 32], u8);

impl Prefix {
    fn of(p: &[u8]) -> Prefix {
        let mut bytes = [0u8; 32];
        let n = p.len().min(32);
        bytes[..n].copy_from_slice(&p[..n]);
        Prefix(bytes, n as u8)
    }

    fn bytes(&self) -> &[u8] {
        &self.0[..usize::from(self.1)]
    }
}

/// What lies beneath a tree node along its first slots.
#[derive(Clone, Copy)]
enum Beneath {
    /// A Map/Set node's first key.
    FirstKey(Option<ValueId>),
    /// An Index node's representative key: its hex length and first bytes.
    RepKey(Option<(Option<u8>, Prefix)>),
}

/// Which [`Beneath`] a descent looks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    FirstKey,
    RepKey,
}

impl Beneath {
    fn answers(&self, want: Want) -> bool {
        match self {
            Beneath::FirstKey(_) => want == Want::FirstKey,
            Beneath::RepKey(_) => want == Want::RepKey,
        }
    }
}

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summary")
            .field("kind", &self.kind)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Summary {
    /// The summary of `cell`.
    pub fn of(cell: &Cell) -> Summary {
        let kind = cell.kind();
        let count = cell.count();
        let hash_header = cell.hash_tree_header();
        let refs = cell.refs();
        let leaf_keys: Box<[ValueId]> =
            if matches!(kind, Kind::Map | Kind::Set) && hash_header.is_none() {
                let per = if cell.tag() == tag::MAP { 2 } else { 1 };
                refs.iter().step_by(per).map(Ref::id).collect()
            } else {
                Box::new([])
            };
        Summary {
            kind,
            tag: cell.tag(),
            count,
            hash_header,
            index_header: cell.index_header(),
            first: refs.first().map(|r| match r {
                Ref::Embedded(c) => Slot::Embedded(c.clone()),
                Ref::Branch(b) => Slot::Branch(b.clone()),
            }),
            leaf_keys,
            key_hex_len: shape::index_key_hex_len(cell).and_then(|n| u8::try_from(n).ok()),
            key_prefix: shape::index_key_own_prefix(cell).map(|p| Prefix::of(&p)),
            beneath: OnceLock::new(),
        }
    }

    /// As [`Summary::of`], holding no cell (nor any part of one): for a summary kept long
    /// after the cell, one per stored cell.
    pub fn kept(cell: &Cell) -> Summary {
        let mut s = Summary::of(cell);
        s.first = match s.first {
            Some(Slot::Embedded(c)) => Some(Slot::Summarised(Box::new(Summary::kept(&c)))),
            Some(Slot::Branch(b)) => Some(Slot::Id(*b.id())),
            other => other,
        };
        s
    }
}

/// Where the rules get the summaries of branch children.
pub trait Summaries {
    /// The summary of branch `id` (`target`: the cell, when the ref has it attached): `Ok(None)`
    /// when it is not at hand and need not be; an S4 error when it must be and is missing; the
    /// ref's error (S2, S5) when the target is not a branch of that ID.
    fn branch(&self, id: &ValueId, target: Option<&Cell>) -> Res<Option<Cow<'_, Summary>>>;
}

/// Summaries of the cells at hand: attached targets, else through a resolver if there is one.
pub struct Resolved<'a>(pub Option<&'a dyn Resolver>);

impl Summaries for Resolved<'_> {
    fn branch(&self, id: &ValueId, target: Option<&Cell>) -> Res<Option<Cow<'_, Summary>>> {
        if let Some(c) = target {
            return Ok(Some(Cow::Owned(Summary::of(c))));
        }
        let Some(resolver) = self.0 else {
            return Ok(None);
        };
        let r = Ref::unresolved(*id);
        Ok(child_cell(&r, Some(resolver))?.map(|c| Cow::Owned(Summary::of(&c))))
    }
}

impl Slot {
    /// The slot's summary: borrowed where the slot holds one that lives as long as `kids`.
    fn summary<'k>(&'k self, kids: &'k dyn Summaries) -> Res<Option<Cow<'k, Summary>>> {
        match self {
            Slot::Embedded(c) => Ok(Some(Cow::Owned(Summary::of(c)))),
            Slot::Summarised(s) => Ok(Some(Cow::Borrowed(s))),
            Slot::Branch(b) => kids.branch(b.id(), b.target()),
            Slot::Id(id) => kids.branch(id, None),
        }
    }
}

/// Gets a child: embedded or attached; else through the resolver (missing → S4); else `None`.
fn child_cell(r: &Ref, resolver: Option<&dyn Resolver>) -> Res<Option<Cell>> {
    if let Some(c) = r.cell() {
        return Ok(Some(c.clone()));
    }
    match resolver {
        None => Ok(None),
        Some(res) => match r.fetch(res) {
            Ok(c) => Ok(Some(c)),
            Err(e) => Err(resolve_error(e)),
        },
    }
}

/// A resolver's failure as a stage-B error: a missing cell is S4.
pub fn resolve_error(e: ResolveError) -> DecodeError {
    match e {
        ResolveError::Missing(id) => err(Rule::S4, format!("missing cell {id}")),
        ResolveError::Invalid(e) => e,
        ResolveError::Store(s) => err(Rule::S4, format!("store error: {s}")),
    }
}

/// A child slot of the cell being checked, summarised.
fn child<'k>(r: &Ref, kids: &'k dyn Summaries) -> Res<Option<Cow<'k, Summary>>> {
    match r {
        Ref::Embedded(c) => Ok(Some(Cow::Owned(Summary::of(c)))),
        Ref::Branch(b) => kids.branch(b.id(), b.target()),
    }
}

/// The summary of a node's first slot. Borrowed from `kids` (or from the node, when that is
/// borrowed from them): a descent copies nothing.
fn first_of<'k>(node: &Cow<'k, Summary>, kids: &'k dyn Summaries) -> Res<Option<Cow<'k, Summary>>> {
    match node {
        Cow::Borrowed(n) => match &n.first {
            None => Ok(None),
            Some(slot) => slot.summary(kids),
        },
        Cow::Owned(n) => match &n.first {
            None => Ok(None),
            Some(Slot::Embedded(c)) => Ok(Some(Cow::Owned(Summary::of(c)))),
            Some(Slot::Summarised(s)) => Ok(Some(Cow::Owned((**s).clone()))),
            Some(Slot::Branch(b)) => kids.branch(b.id(), b.target()),
            Some(Slot::Id(id)) => kids.branch(id, None),
        },
    }
}

/// Checks the stage-B rules between `cell` and its available children (offsets are 0: the
/// caller shifts them to the cell's position).
pub fn check_structure(cell: &Cell, resolver: Option<&dyn Resolver>) -> Res<()> {
    check_structure_with(cell, &Resolved(resolver))
}

/// As [`check_structure`], with the children's summaries from `kids`.
pub fn check_structure_with(cell: &Cell, kids: &dyn Summaries) -> Res<()> {
    match cell.kind() {
        Kind::Blob | Kind::String => check_blob_tree(cell, kids),
        Kind::Vector | Kind::List | Kind::Record(_) => check_vector(cell, kids),
        Kind::Map | Kind::Set => check_hash_tree(cell, kids),
        Kind::Index => check_index(cell, kids),
        _ => Ok(()),
    }
}
fn check_blob_tree(cell: &Cell, kids: &dyn Summaries) -> Res<()> {
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
        if let Some(ch) = child(r, kids)? {
            if ch.tag != tag::BLOB || ch.count != size {
                return Err(err(
                    Rule::B3,
                    format!(
                        "Blob tree child {i} must be a Blob of {size} bytes, found {} of count {}",
                        ch.kind.name(),
                        ch.count
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn vector_child_ok(ch: &Summary, size: u64) -> bool {
    ch.tag == tag::VECTOR && ch.count == size
}

fn check_vector(cell: &Cell, kids: &dyn Summaries) -> Res<()> {
    let n = cell.count();
    if n <= VECTOR_LEAF_MAX {
        return Ok(());
    }
    if !n.is_multiple_of(16) {
        let size = n - n % 16;
        if let Some(prefix) = cell.refs().last() {
            if let Some(ch) = child(prefix, kids)? {
                if !vector_child_ok(&ch, size) {
                    return Err(err(
                        Rule::VC3,
                        format!(
                            "prefix must be a Vector of {size} elements, found {} of count {}",
                            ch.kind.name(),
                            ch.count
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
        if let Some(ch) = child(r, kids)? {
            if !vector_child_ok(&ch, size) {
                return Err(err(
                    Rule::VC3,
                    format!(
                        "tree child {i} must be a Vector of {size} elements, found {} of count {}",
                        ch.kind.name(),
                        ch.count
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Follows first slots down from `node` to what `want` looks for: a Map/Set node's first key
/// (at a leaf), or an Index node's representative key (the entry key of the first node that has
/// one) with its first bytes. Each kept summary passed on the way remembers the answer, which
/// is theirs too. A child not at hand ends the descent with no answer.
fn descend<'k>(mut node: Cow<'k, Summary>, kids: &'k dyn Summaries, want: Want) -> Res<Beneath> {
    let mut passed: Vec<&'k Summary> = Vec::new();
    let answer = loop {
        if let Cow::Borrowed(n) = node {
            if let Some(b) = n.beneath.get().filter(|b| b.answers(want)) {
                break *b;
            }
            passed.push(n);
        }
        match want {
            Want::FirstKey if node.count <= HASH_LEAF_MAX => {
                // A leaf's first key (a child that is not a Map/Set leaf fails its own check).
                break Beneath::FirstKey(node.leaf_keys.first().copied());
            }
            Want::RepKey if node.index_header.is_none_or(|(has_entry, _, _)| has_entry) => {
                let key = match first_of(&node, kids)? {
                    Some(k) => Some((k.key_hex_len, k)),
                    None => None,
                };
                break Beneath::RepKey(match key {
                    Some((hex_len, k)) => key_prefix(k, kids)?.map(|p| (hex_len, p)),
                    None => None,
                });
            }
            _ => {}
        }
        match first_of(&node, kids)? {
            Some(c) => node = c,
            None => {
                break match want {
                    Want::FirstKey => Beneath::FirstKey(None),
                    Want::RepKey => Beneath::RepKey(None),
                }
            }
        }
    };
    for n in passed {
        // Another thread may have set it meanwhile: the same answer.
        let _ = n.beneath.set(answer);
    }
    Ok(answer)
}

fn check_hash_tree(cell: &Cell, kids: &dyn Summaries) -> Res<()> {
    let Some((shift, mask)) = cell.hash_tree_header() else {
        return Ok(());
    };
    let s = usize::from(shift);
    let digits = (0..16u8).filter(|d| mask & (1 << d) != 0);
    let mut reference: Option<ValueId> = None;
    let mut total: u64 = 0;
    let mut all_present = true;
    for (r, d) in cell.refs().iter().zip(digits) {
        let Some(ch) = child(r, kids)? else {
            all_present = false;
            continue;
        };
        if ch.tag != cell.tag() || ch.count == 0 {
            return Err(err(
                Rule::H5,
                format!(
                    "hash tree child for digit {d:x} is {} of count {}",
                    ch.kind.name(),
                    ch.count
                ),
            ));
        }
        total = total.saturating_add(ch.count);
        let beneath;
        let keys: &[ValueId] = match ch.hash_header {
            None => &ch.leaf_keys,
            Some((child_shift, _)) => {
                if child_shift <= shift {
                    return Err(err(
                        Rule::H5,
                        format!("child tree shift {child_shift} not deeper than {shift}"),
                    ));
                }
                beneath = match descend(ch.clone(), kids, Want::FirstKey)? {
                    Beneath::FirstKey(k) => k,
                    Beneath::RepKey(_) => None,
                };
                beneath.as_slice()
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
                None => reference = Some(*k),
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

/// Depth of an Index node: its depth byte, or for a single entry its key's hex length.
fn index_depth(node: &Summary, kids: &dyn Summaries) -> Res<Option<usize>> {
    if let Some((_, d, _)) = node.index_header {
        return Ok(Some(usize::from(d)));
    }
    let key = match &node.first {
        None => return Ok(None),
        Some(slot) => slot.summary(kids)?,
    };
    Ok(key.and_then(|k| k.key_hex_len.map(usize::from)))
}

/// The first (up to) 32 bytes of a blob-like key, following a Blob tree's first chunks.
fn key_prefix<'k>(mut key: Cow<'k, Summary>, kids: &'k dyn Summaries) -> Res<Option<Prefix>> {
    loop {
        if let Some(p) = key.key_prefix {
            return Ok(Some(p));
        }
        if !matches!(key.kind, Kind::Blob | Kind::String) {
            return Ok(None);
        }
        match first_of(&key, kids)? {
            Some(c) => key = c,
            None => return Ok(None),
        }
    }
}

fn check_index(cell: &Cell, kids: &dyn Summaries) -> Res<()> {
    let n = cell.count();
    if n == 0 {
        return Ok(());
    }
    if n == 1 {
        if let Some(k) = child(&cell.refs()[0], kids)? {
            if k.key_hex_len.is_none() {
                return Err(err(
                    Rule::I4,
                    format!("Index key of type {} is not blob-like", k.kind.name()),
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
        if let Some(k) = child(&cell.refs()[0], kids)? {
            match k.key_hex_len {
                None => return Err(err(Rule::I4, "Index entry key is not blob-like")),
                Some(len) if usize::from(len) != depth => {
                    return Err(err(
                        Rule::I4,
                        format!("Index entry key has {len} hex digits at depth {depth}"),
                    ))
                }
                Some(_) => reference = key_prefix(k, kids)?.map(|p| p.bytes().to_vec()),
            }
        }
        &cell.refs()[2..]
    } else {
        cell.refs()
    };
    let digits = (0..16u8).filter(|d| mask & (1 << d) != 0);
    for (r, d) in children.iter().zip(digits) {
        let Some(ch) = child(r, kids)? else {
            all_present = false;
            continue;
        };
        if ch.tag != tag::INDEX || ch.count == 0 {
            return Err(err(
                Rule::I5,
                format!(
                    "Index child for digit {d:x} is {} of count {}",
                    ch.kind.name(),
                    ch.count
                ),
            ));
        }
        total = total.saturating_add(ch.count);
        match index_depth(&ch, kids)? {
            Some(cd) if cd <= depth => {
                return Err(err(
                    Rule::I5,
                    format!("Index child depth {cd} not deeper than {depth}"),
                ))
            }
            _ => {}
        }
        let Beneath::RepKey(Some((key_hex_len, kb))) = descend(ch, kids, Want::RepKey)? else {
            continue;
        };
        let kb = kb.bytes();
        let hex_len = key_hex_len.map_or(0, usize::from).min(2 * kb.len());
        if hex_len <= depth || hex_digit(kb, depth) != d {
            return Err(err(
                Rule::I5,
                format!("Index child key does not have digit {d:x} at {depth}"),
            ));
        }
        match &reference {
            None => reference = Some(kb.to_vec()),
            Some(r0) => {
                if common_hex_prefix(r0, kb, depth) < depth {
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
            let c = child_cell(r, Some(resolver))?
                .ok_or_else(|| err(Rule::S4, format!("missing cell {}", r.id())))?;
            if r.is_branch() && !seen.insert(r.id()) {
                continue;
            }
            stack.push(c);
        }
    }
    Ok(())
}
