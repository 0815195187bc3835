//! The pin functions (issue 15, docs/PROVIDER.md; Etch's, not Convex's): `(pin target)` /
//! `(pin target label)` keeps a value on this node whatever else it lets go of — `target` a
//! Value ID (a 32-byte Blob), a drive location (`"drive/path"`, `[owner "drive/path"]`) or a
//! `dlfs:` URI, whose current state is pinned; `(unpin id)`; `(pins)` lists them. Pinning and
//! unpinning need admin rights (query.md §6.5) and commit; listing is a read. `(gc)` (admin)
//! compacts the node's store while it serves (`crate::gc`), dropping what no pin or root keeps.

use super::dlfs::{drive_of, location, owner_arg, text_of};
use super::Builtin;
use crate::dlfs::{self, DlfsUri, DrivePath};
use crate::lattice::did_key_public_key;
use crate::query::core::{check_exact, check_range, data, data_v};
use crate::query::docs::{d, Group::Dlfs};
use crate::query::{EvalError, Evaluator, Res, Value};
use etch_formats::{Cell, Kind, ValueId};

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d("pin", "target [label]", "keeps a value here whatever else the node drops: a Value ID, a drive location or dlfs: URI (its current state); admin; commits; the pinned ID", Dlfs),
        examples: &[
            ("(pin (store \"a text too long to be embedded in its parent cell\"))", "0x07fbf369ce293d8aa19b8efb7e08060ac67e5dc4433ef7914b170be926092517"),
            ("(count (pins))", "1"),
        ],
        run: pin,
    },
    Builtin {
        doc: d("unpin", "id", "drops the pin of a Value ID; admin; commits; whether there was one", Dlfs),
        examples: &[
            ("(def id (pin (store \"a text too long to be embedded in its parent cell\")))", "0x07fbf369ce293d8aa19b8efb7e08060ac67e5dc4433ef7914b170be926092517"),
            ("(unpin id)", "true"),
            ("(unpin id)", "false"),
        ],
        run: unpin,
    },
    Builtin {
        doc: d("pins", "", "the node's pins: [{:id :label :source :time} ...]", Dlfs),
        examples: &[
            ("(pins)", "[]"),
        ],
        run: pins,
    },
    Builtin {
        doc: d("gc", "", "compact the serving node's store, keeping the root's tree and the pins (admin): {:bytes-before :bytes-after :cells :seconds}", Dlfs),
        examples: &[
            ("(gc)", "!ARGUMENT"),
        ],
        run: gc,
    },
];

/// A 32-byte Blob argument as a Value ID.
fn id_arg(c: &Cell) -> Option<ValueId> {
    match (c.kind(), c.flat_bytes()) {
        (Kind::Blob, Some(b)) => <[u8; 32]>::try_from(b).ok().map(ValueId),
        _ => None,
    }
}

/// The owner a `dlfs:` URI names: a did:key or a key in hex.
fn uri_owner(owner: &str) -> Res<Cell> {
    if let Some(k) = did_key_public_key(owner) {
        return Ok(Cell::blob(&k));
    }
    let hex_key = owner.trim_start_matches("0x");
    match hex::decode(hex_key) {
        Ok(k) if k.len() == 32 => Ok(Cell::blob(&k)),
        _ => owner_arg(&Cell::string(owner)).map_err(|_| {
            EvalError::new(
                "ARGUMENT",
                format!("The owner of a dlfs: URI to pin must be a did:key or a key: {owner}"),
            )
        }),
    }
}

/// What `(pin target)` pins: the value and where it came from.
fn target(ev: &mut Evaluator, args: &[Value], name: &str) -> Res<(Cell, String)> {
    let c = data(args, 1, "Blob")?;
    if let Some(id) = id_arg(&c) {
        let root = ev.node(name)?.root()?;
        return match crate::lattice::stored_value(&root, &id, ev.resolver())? {
            Some(v) => Ok((v, "id".into())),
            None => Err(EvalError::new(
                "MISSING",
                format!("Not held by this node: 0x{}", id.to_hex()),
            )),
        };
    }
    let (owner, p): (Cell, DrivePath) = match c.kind() {
        Kind::String if text_of(ev, &c)?.starts_with("dlfs:") => {
            let text = text_of(ev, &c)?;
            let uri = DlfsUri::parse(&text)
                .unwrap_or_else(|| Err(dlfs::DlfsError::InvalidPath(text.clone())))?;
            (uri_owner(&uri.owner)?, uri.location)
        }
        _ => location(ev, args, 1, name)?,
    };
    let drive = drive_of(ev, name, &owner, &p)?;
    match dlfs::find(&drive, &p.path, ev.resolver())? {
        Some(node) => Ok((node, p.text.clone())),
        None => Err(dlfs::DlfsError::NotFound(p.text.clone()).into()),
    }
}

/// `pin`.
fn pin(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "pin";
    let args = &args[..];
    check_range(name, 1, 2, args)?;
    ev.require(true)?;
    let label = match args.get(1) {
        Some(_) => {
            let l = data(args, 2, "String")?;
            if l.kind() != Kind::String {
                return Err(EvalError::new("CAST", "A pin label must be a String"));
            }
            text_of(ev, &l)?
        }
        None => String::new(),
    };
    let (value, source) = target(ev, args, name)?;
    let id = ev.node(name)?.pin(&value, &label, &source)?;
    data_v(Cell::blob(id.as_bytes()))
}

/// `unpin`.
fn unpin(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "unpin";
    let args = &args[..];
    check_exact(name, 1, args)?;
    ev.require(true)?;
    let id = id_arg(&data(args, 1, "Blob")?)
        .ok_or_else(|| EvalError::new("ARGUMENT", "Value ID must be a 32-byte Blob"))?;
    data_v(Cell::bool(ev.node(name)?.unpin(&id)?))
}

/// `pins`.
fn pins(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "pins";
    let args = &args[..];
    check_exact(name, 0, args)?;
    let root = ev.node(name)?.root()?;
    let pins = crate::pins::pins(&root, ev.resolver())?;
    ev.step(pins.len() as u64)?;
    let kw = |n: &str| Cell::keyword(n).unwrap_or_else(|_| Cell::nil());
    data_v(Cell::vector(
        pins.iter()
            .map(|p| {
                Cell::map(vec![
                    (kw("id"), Cell::blob(p.id.as_bytes())),
                    (kw("label"), Cell::string(&p.label)),
                    (kw("source"), Cell::string(&p.source)),
                    (kw("time"), Cell::long(p.time)),
                ])
            })
            .collect(),
    ))
}

/// `gc`.
fn gc(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "gc";
    let args = &args[..];
    check_exact(name, 0, args)?;
    ev.require(true)?;
    let r = ev.node(name)?.gc()?;
    let kw = |n: &str| Cell::keyword(n).unwrap_or_else(|_| Cell::nil());
    let long = |n: u64| Cell::long(n.min(i64::MAX as u64) as i64);
    data_v(Cell::map(vec![
        (kw("bytes-before"), long(r.bytes_before)),
        (kw("bytes-after"), long(r.bytes_after)),
        (kw("cells"), long(r.cells)),
        (kw("seconds"), Cell::double(r.seconds)),
    ]))
}
