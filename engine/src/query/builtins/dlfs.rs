//! The DLFS functions of query.md §6.3: `set-owner!`, `drives`, `mkdrive`, `rmdrive` (Etch's:
//! deletes a whole drive, as Convex's `dlfs_delete_drive` does), `ls`, `read-file`,
//! `put`, `mkdir`, `rm`, `stat`, with the rights of §6.5.
//!
//! Locations are a String `"drive/path"` in the drives of the session's default owner (the
//! node's own key unless `set-owner!` changed it) or a vector `[owner "drive/path"]`. Reads go
//! to the committed root; writes go through [`QueryNode::edit_drive`], which signs and commits.

use super::Builtin;
use crate::dlfs::{self, DrivePath};
use crate::query::core::{cast_pos, check_exact, check_range, data, data_v};
use crate::query::docs::{d, Group::Dlfs};
use crate::query::{EvalError, Evaluator, Res, Value};
use etch_formats::value::{blob_bytes, elements};
use etch_formats::{Cell, Kind, Resolver};

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d(
            "set-owner!",
            "owner",
            "sets the session's default DLFS owner (key Blob, Address or DID)",
            Dlfs,
        ),
        examples: &[
            (
                "(set-owner! 0x1111111111111111111111111111111111111111111111111111111111111111)",
                "0x1111111111111111111111111111111111111111111111111111111111111111",
            ),
            ("(set-owner! 5)", "!ARGUMENT"),
        ],
        run: set_owner,
    },
    Builtin {
        doc: d(
            "drives",
            "owner?",
            "drive names of the default (or given) owner",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"docs\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            ("(drives)", "[\"docs\"]"),
        ],
        run: drives,
    },
    Builtin {
        doc: d(
            "mkdrive",
            "name",
            "creates an empty drive, commits; its drive state hash",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"docs\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            ("(drives)", "[\"docs\"]"),
            ("(mkdrive 1)", "!CAST"),
        ],
        run: mkdrive,
    },
    Builtin {
        doc: d(
            "rmdrive",
            "name",
            "deletes a whole drive (a tombstone that replicates), commits; the tombstone's hash",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"old\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            (
                "(rmdrive \"old\")",
                "0xcc00b5b4242737d8363595df556a2381449e646793ee32773a3e967ba7a0de56",
            ),
            ("(drives)", "[]"),
        ],
        run: rmdrive,
    },
    Builtin {
        doc: d(
            "ls",
            "loc",
            "live entry names of a directory, in byte order",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"d\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            (
                "(put \"d/a.txt\" \"hi\")",
                "0x160065c7e325395b670400be99345ed5043722b9fcec75fc856bcef1d07d213f",
            ),
            ("(ls \"d\")", "[\"a.txt\"]"),
            ("(ls \"nodrive\")", "!ARGUMENT"),
        ],
        run: ls,
    },
    Builtin {
        doc: d("read-file", "loc", "contents of a file as a Blob", Dlfs),
        examples: &[
            (
                "(mkdrive \"d\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            (
                "(put \"d/a.txt\" \"hi\")",
                "0x160065c7e325395b670400be99345ed5043722b9fcec75fc856bcef1d07d213f",
            ),
            ("(read-file \"d/a.txt\")", "0x6869"),
            ("(read-file \"d/none\")", "!ARGUMENT"),
        ],
        run: read_file,
    },
    Builtin {
        doc: d(
            "stat",
            "loc",
            "{:type :size :utime :hash :metadata} of a file or directory",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"d\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            (
                "(put \"d/a.txt\" \"hi\")",
                "0x160065c7e325395b670400be99345ed5043722b9fcec75fc856bcef1d07d213f",
            ),
            ("(get (stat \"d/a.txt\") :size)", "2"),
        ],
        run: stat,
    },
    Builtin {
        doc: d(
            "put",
            "loc data",
            "creates or replaces a file (Blob or String), commits; new drive state hash",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"d\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            (
                "(put \"d/a.txt\" \"hi\")",
                "0x160065c7e325395b670400be99345ed5043722b9fcec75fc856bcef1d07d213f",
            ),
            ("(read-file \"d/a.txt\")", "0x6869"),
        ],
        run: put,
    },
    Builtin {
        doc: d(
            "mkdir",
            "loc",
            "creates a directory, commits; new drive state hash",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"d\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            (
                "(mkdir \"d/x\")",
                "0xa60399929b61b4930bd09a421c90d8c04080985029085569dd8d7f5cfbc4cd6d",
            ),
            ("(get (stat \"d/x\") :type)", ":directory"),
        ],
        run: mkdir,
    },
    Builtin {
        doc: d(
            "rm",
            "loc",
            "deletes a file or empty directory (tombstone), commits; new drive state hash",
            Dlfs,
        ),
        examples: &[
            (
                "(mkdrive \"d\")",
                "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918",
            ),
            (
                "(put \"d/a.txt\" \"hi\")",
                "0x160065c7e325395b670400be99345ed5043722b9fcec75fc856bcef1d07d213f",
            ),
            (
                "(rm \"d/a.txt\")",
                "0x52f85daa507a51192f7f6d7d727e0938f7aea9e0eb64ad503a156e2f5586f3ed",
            ),
            ("(ls \"d\")", "[]"),
        ],
        run: rm,
    },
];

/// The message for an owner of the wrong type.
const BAD_OWNER: &str = "Owner must be a 32-byte key Blob, an Address or a DID String";

/// Checks an explicit owner (`:ARGUMENT` otherwise).
pub(super) fn owner_arg(c: &Cell) -> Res<Cell> {
    if dlfs::is_valid_owner(c) {
        Ok(c.clone())
    } else {
        Err(EvalError::new("ARGUMENT", BAD_OWNER))
    }
}

/// The session's default owner: the one `set-owner!` chose, else the node's own key.
fn default_owner(ev: &Evaluator, name: &str) -> Res<Cell> {
    if let Some(o) = ev.env.owner() {
        return Ok(o.clone());
    }
    match ev.node(name)?.public_key() {
        Some(pk) => Ok(Cell::blob(&pk)),
        None => Err(EvalError::new(
            "STATE",
            "No default owner: the node has no key (use set-owner!)",
        )),
    }
}

/// The text of a String cell (any size).
pub(super) fn text_of(ev: &Evaluator, c: &Cell) -> Res<String> {
    Ok(String::from_utf8_lossy(&blob_bytes(c, ev.resolver())?).into_owned())
}

/// A location argument at position `p`: `"drive/path"` (default owner) or
/// `[owner "drive/path"]`. Returns the owner and the String.
fn location_text(ev: &mut Evaluator, args: &[Value], p: usize, name: &str) -> Res<(Cell, String)> {
    let c = data(args, p, "String")?;
    match c.kind() {
        Kind::String => Ok((default_owner(ev, name)?, text_of(ev, &c)?)),
        Kind::Vector if c.count() == 2 => {
            let items = elements(&c, ev.resolver())?;
            let owner = owner_arg(&items[0])?;
            if items[1].kind() != Kind::String {
                return Err(EvalError::new(
                    "ARGUMENT",
                    format!("Invalid location: {}", ev.print(&c)?),
                ));
            }
            Ok((owner, text_of(ev, &items[1])?))
        }
        Kind::Vector => Err(EvalError::new(
            "ARGUMENT",
            format!("Invalid location: {}", ev.print(&c)?),
        )),
        _ => Err(cast_pos(p, &args[p - 1], "String")),
    }
}

/// A parsed location argument.
pub(super) fn location(
    ev: &mut Evaluator,
    args: &[Value],
    p: usize,
    name: &str,
) -> Res<(Cell, DrivePath)> {
    let (owner, text) = location_text(ev, args, p, name)?;
    Ok((owner, DrivePath::parse(&text)?))
}

/// The drive a location is in, from the committed root.
pub(super) fn drive_of(ev: &mut Evaluator, name: &str, owner: &Cell, p: &DrivePath) -> Res<Cell> {
    let root = ev.node(name)?.root()?;
    ev.step(1 + p.path.len() as u64)?;
    Ok(dlfs::drive(&root, owner, &p.drive, ev.resolver())?)
}

/// A value ID as a Blob.
fn hash_v(c: &Cell) -> Res<Value> {
    data_v(Cell::blob(c.id().as_bytes()))
}

/// `set-owner!`.
fn set_owner(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "set-owner!";
    let args = &args[..];
    check_exact(name, 1, args)?;
    ev.require(true)?;
    let o = owner_arg(&data(args, 1, "Blob")?)?;
    ev.env.set_owner(Some(o.clone()));
    data_v(o)
}

/// `drives`.
fn drives(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "drives";
    let args = &args[..];
    check_range(name, 0, 1, args)?;
    let owner = match args.first() {
        Some(_) => owner_arg(&data(args, 1, "Blob")?)?,
        None => default_owner(ev, name)?,
    };
    let root = ev.node(name)?.root()?;
    let names = dlfs::drive_names(&root, &owner, ev.resolver())?;
    names_v(ev, &names)
}

/// Names as a Vector of Strings, a step each.
fn names_v(ev: &mut Evaluator, names: &[String]) -> Res<Value> {
    ev.step(names.len() as u64)?;
    data_v(Cell::vector(
        names.iter().map(|n| Cell::string(n)).collect(),
    ))
}

/// A write of a whole drive named by the one argument of `name` (a drive name, or
/// `[owner name]`): rights, `edit` of the drive at the node's time (signed and committed by
/// the node), the drive's new state hash.
fn edit_named_drive(
    ev: &mut Evaluator,
    name: &str,
    args: Vec<Value>,
    edit: fn(&Cell, &str, i64, &dyn Resolver) -> Result<Cell, dlfs::DlfsError>,
) -> Res<Value> {
    check_exact(name, 1, &args)?;
    ev.require(true)?;
    let (owner, drive) = location_text(ev, &args, 1, name)?;
    let new = ev
        .node(name)?
        .edit_drive(&owner, &drive, &mut |cur, now, r| edit(cur, &drive, now, r))?;
    hash_v(&new)
}

/// `mkdrive`.
fn mkdrive(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    edit_named_drive(ev, "mkdrive", args, |cur, drive, _, _| {
        dlfs::mkdrive(cur, drive)
    })
}

/// `rmdrive`.
fn rmdrive(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    edit_named_drive(ev, "rmdrive", args, dlfs::rmdrive)
}

/// The committed drive and the path of the one location argument of a reading function.
fn read_at(ev: &mut Evaluator, name: &str, args: &[Value]) -> Res<(Cell, DrivePath)> {
    check_exact(name, 1, args)?;
    let (owner, p) = location(ev, args, 1, name)?;
    let drive = drive_of(ev, name, &owner, &p)?;
    Ok((drive, p))
}

/// `ls`.
fn ls(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let (drive, p) = read_at(ev, "ls", &args)?;
    let names = dlfs::ls(&drive, &p, ev.resolver())?;
    names_v(ev, &names)
}

/// `read-file`.
fn read_file(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let (drive, p) = read_at(ev, "read-file", &args)?;
    data_v(dlfs::read(&drive, &p, ev.resolver())?)
}

/// `stat`.
fn stat(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let (drive, p) = read_at(ev, "stat", &args)?;
    data_v(dlfs::stat(&drive, &p, ev.resolver())?.to_cell())
}

/// `put`.
fn put(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "put";
    let args = &args[..];
    check_exact(name, 2, args)?;
    ev.require(true)?;
    let (owner, p) = location(ev, args, 1, name)?;
    let d = data(args, 2, "Blob")?;
    let bytes = match d.kind() {
        Kind::Blob => d,
        Kind::String => Cell::blob(&blob_bytes(&d, ev.resolver())?),
        _ => return Err(cast_pos(2, &args[1], "Blob")),
    };
    let new = ev
        .node(name)?
        .edit_drive(&owner, &p.drive, &mut |cur, now, r| {
            dlfs::put(cur, &p, bytes.clone(), now, r)
        })?;
    hash_v(&new)
}

/// A DLFS write at the one location argument of `name`: rights, `edit` of that drive at the
/// node's time (signed and committed by the node), the drive's new state hash.
fn edit_path(
    ev: &mut Evaluator,
    name: &str,
    args: Vec<Value>,
    edit: fn(&Cell, &DrivePath, i64, &dyn Resolver) -> Result<Cell, dlfs::DlfsError>,
) -> Res<Value> {
    check_exact(name, 1, &args)?;
    ev.require(true)?;
    let (owner, p) = location(ev, &args, 1, name)?;
    let new = ev
        .node(name)?
        .edit_drive(&owner, &p.drive, &mut |cur, now, r| edit(cur, &p, now, r))?;
    hash_v(&new)
}

/// `mkdir`.
fn mkdir(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    edit_path(ev, "mkdir", args, dlfs::mkdir)
}

/// `rm`.
fn rm(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    edit_path(ev, "rm", args, dlfs::rm)
}
