//! Storage (query.md §6): `store`, `fetch`, the committed root and its lattice merges. Writes need a
//! store and the rights of §6.5; each commits.

use super::Builtin;
use crate::query::core::{check_exact, check_range, data_v, get, seq_elements, signed_get};
use crate::query::docs::{d, Group::Storage};
use crate::query::{EvalError, Evaluator, Res, Value};
use etch_formats::Cell;
use etch_formats::Kind;
use etch_formats::ValueId;

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d(
            "fetch",
            "id",
            "the stored value with this value ID, or nil",
            Storage,
        ),
        examples: &[
            ("(fetch (store [1 2 3]))", "[1 2 3]"),
            ("(fetch 0x01)", "!ARGUMENT"),
        ],
        run: fetch_value,
    },
    Builtin {
        doc: d(
            "store",
            "v",
            "persists v under :data, commits; its value ID",
            Storage,
        ),
        examples: &[
            (
                "(store [1 2 3])",
                "0xb95de281d42f565cc3551b3ef7070f89c2290789bc63ce28fcc7969ac2fba4ae",
            ),
            ("(count (root [:data]))", "1"),
            ("(store)", "!ARITY"),
        ],
        run: store_value,
    },
    Builtin {
        doc: d(
            "root",
            "path?",
            "the committed root value (or the value at path)",
            Storage,
        ),
        examples: &[
            ("(root [:data])", "nil"),
            (
                "(store \"a text too long to be embedded in its parent cell\")",
                "0x07fbf369ce293d8aa19b8efb7e08060ac67e5dc4433ef7914b170be926092517",
            ),
            ("(count (root [:data]))", "1"),
        ],
        run: root_value,
    },
    Builtin {
        doc: d(
            "lattice-merge",
            "a b path?",
            "pure lattice merge by the root lattice (or the one at path)",
            Storage,
        ),
        examples: &[
            ("(count (lattice-merge (index (value-id [1]) [1]) (index (value-id [2]) [2]) [:data]))", "2"),
            ("(lattice-merge 1)", "!ARITY"),
        ],
        run: lattice_merge,
    },
    Builtin {
        doc: d(
            "merge!",
            "path v",
            "lattice-merges v into the root at path, commits",
            Storage,
        ),
        examples: &[
            ("(merge! [:data] (index (value-id [1 2 3]) [1 2 3]))", "#Index {0xb95de281d42f565cc3551b3ef7070f89c2290789bc63ce28fcc7969ac2fba4ae [1 2 3]}"),
            ("(merge! [:data])", "!ARITY"),
        ],
        run: merge_into_root,
    },
    Builtin {
        doc: d(
            "set-root!",
            "v",
            "replaces the root (admin), commits; its value ID",
            Storage,
        ),
        examples: &[
            (
                "(set-root! #Index {})",
                "0x0b4e0fb4b58a5da5adbe9e2ae76cda2fc51391dd30bca057083ca1d8155e5833",
            ),
            ("(root)", "#Index {}"),
        ],
        run: set_root,
    },
];

/// `fetch`.
fn fetch_value(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "fetch";
    check_exact(name, 1, &args)?;
    let c = args[0].to_cell();
    let id = match (c.kind(), c.flat_bytes()) {
        (Kind::Blob, Some(b)) if b.len() == 32 => {
            let mut id = [0u8; 32];
            id.copy_from_slice(b);
            ValueId(id)
        }
        _ => {
            return Err(EvalError::new(
                "ARGUMENT",
                "Value ID must be a 32-byte Blob",
            ))
        }
    };
    ev.step(1)?;
    let root = match ev.node_opt() {
        Some(node) => node.root()?,
        None => Cell::nil(),
    };
    if let Some(c) = crate::lattice::stored_value(&root, &id, ev.resolver())? {
        return data_v(c);
    }
    // Unknown IDs give nil (query.md §6.1).
    data_v(Cell::nil())
}

/// `store`.
fn store_value(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "store";
    check_exact(name, 1, &args)?;
    ev.require(false)?;
    let v = args[0].to_cell();
    if v.is_nil() {
        return Err(EvalError::new("ARGUMENT", "Cannot store nil"));
    }
    let id = ev.node(name)?.store(&v)?;
    data_v(Cell::blob(id.as_bytes()))
}

/// `root`.
fn root_value(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "root";
    check_range(name, 0, 1, &args)?;
    let root = ev.node(name)?.root()?;
    match args.first() {
        None => data_v(root),
        Some(path) => {
            let path = path.to_cell();
            let keys = seq_elements(ev, &path, 1, "Sequence")?;
            let mut cur = root;
            for k in &keys {
                if cur.is_nil() {
                    break;
                }
                cur = if cur.kind() == Kind::Signed {
                    signed_get(ev, &cur, k)?
                } else {
                    get(ev, &cur, k, Cell::nil())?
                };
            }
            data_v(cur)
        }
    }
}

/// `lattice-merge`.
fn lattice_merge(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "lattice-merge";
    check_range(name, 2, 3, &args)?;
    let (a, b) = (args[0].to_cell(), args[1].to_cell());
    let root = crate::lattice::Lattice::root();
    let lattice = match args.get(2) {
        None => &root,
        Some(p) => {
            let path = p.to_cell();
            let keys = seq_elements(ev, &path, 3, "Sequence")?;
            match root.at_path(&keys) {
                Some(l) => l,
                None => {
                    return Err(EvalError::new(
                        "ARGUMENT",
                        format!("No lattice at path: {}", ev.print(&path)?),
                    ))
                }
            }
        }
    };
    ev.step(1 + a.count().max(b.count()))?;
    // A pure merge: no clock, no key (nothing is signed or stamped).
    let ctx = crate::lattice::MergeContext::default();
    data_v(lattice.merge(&ctx, &a, &b, ev.resolver())?)
}

/// `merge!`.
fn merge_into_root(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "merge!";
    check_exact(name, 2, &args)?;
    ev.require(false)?;
    let path = args[0].to_cell();
    let keys = seq_elements(ev, &path, 1, "Sequence")?;
    let v = args[1].to_cell();
    data_v(ev.node(name)?.merge_at(&keys, &v)?)
}

/// `set-root!`.
fn set_root(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "set-root!";
    check_exact(name, 1, &args)?;
    ev.require(true)?;
    let id = ev.node(name)?.set_root(&args[0].to_cell())?;
    data_v(Cell::blob(id.as_bytes()))
}
