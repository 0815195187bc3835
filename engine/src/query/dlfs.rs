//! The DLFS functions of query.md §6.3: `set-owner!`, `drives`, `mkdrive`, `rmdrive` (Etch's:
//! deletes a whole drive, as Convex's `dlfs_delete_drive` does), `ls`, `read-file`,
//! `put`, `mkdir`, `rm`, `stat`, with the rights of §6.5.
//!
//! Locations are a String `"drive/path"` in the drives of the session's default owner (the
//! node's own key unless `set-owner!` changed it) or a vector `[owner "drive/path"]`. Reads go
//! to the committed root; writes go through [`QueryNode::edit_drive`], which signs and commits.

use super::core::{cast_pos, check_exact, check_range, data, data_v};
use super::{EvalError, Evaluator, Res, Value};
use crate::dlfs::{self, DrivePath};
use etch_formats::value::{blob_bytes, elements};
use etch_formats::{Cell, Kind};

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

/// Calls DLFS built-in `name`.
pub(super) fn call(ev: &mut Evaluator, name: &'static str, args: &[Value]) -> Res<Value> {
    match name {
        "set-owner!" => {
            check_exact(name, 1, args)?;
            ev.require(true)?;
            let o = owner_arg(&data(args, 1, "Blob")?)?;
            ev.env.set_owner(Some(o.clone()));
            data_v(o)
        }
        "drives" => {
            check_range(name, 0, 1, args)?;
            let owner = match args.first() {
                Some(_) => owner_arg(&data(args, 1, "Blob")?)?,
                None => default_owner(ev, name)?,
            };
            let root = ev.node(name)?.root()?;
            let names = dlfs::drive_names(&root, &owner, ev.resolver())?;
            ev.step(names.len() as u64)?;
            data_v(Cell::vector(
                names.iter().map(|n| Cell::string(n)).collect(),
            ))
        }
        "mkdrive" => {
            check_exact(name, 1, args)?;
            ev.require(true)?;
            let (owner, drive) = location_text(ev, args, 1, name)?;
            let new = ev
                .node(name)?
                .edit_drive(&owner, &drive, &mut |cur, _, _| dlfs::mkdrive(cur, &drive))?;
            hash_v(&new)
        }
        "rmdrive" => {
            check_exact(name, 1, args)?;
            ev.require(true)?;
            let (owner, drive) = location_text(ev, args, 1, name)?;
            let new = ev
                .node(name)?
                .edit_drive(&owner, &drive, &mut |cur, now, r| {
                    dlfs::rmdrive(cur, &drive, now, r)
                })?;
            hash_v(&new)
        }
        "ls" => {
            check_exact(name, 1, args)?;
            let (owner, p) = location(ev, args, 1, name)?;
            let drive = drive_of(ev, name, &owner, &p)?;
            let names = dlfs::ls(&drive, &p, ev.resolver())?;
            ev.step(names.len() as u64)?;
            data_v(Cell::vector(
                names.iter().map(|n| Cell::string(n)).collect(),
            ))
        }
        "read-file" => {
            check_exact(name, 1, args)?;
            let (owner, p) = location(ev, args, 1, name)?;
            let drive = drive_of(ev, name, &owner, &p)?;
            data_v(dlfs::read(&drive, &p, ev.resolver())?)
        }
        "stat" => {
            check_exact(name, 1, args)?;
            let (owner, p) = location(ev, args, 1, name)?;
            let drive = drive_of(ev, name, &owner, &p)?;
            data_v(dlfs::stat(&drive, &p, ev.resolver())?.to_cell())
        }
        "put" => {
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
        "mkdir" => {
            check_exact(name, 1, args)?;
            ev.require(true)?;
            let (owner, p) = location(ev, args, 1, name)?;
            let new = ev
                .node(name)?
                .edit_drive(&owner, &p.drive, &mut |cur, now, r| {
                    dlfs::mkdir(cur, &p, now, r)
                })?;
            hash_v(&new)
        }
        "rm" => {
            check_exact(name, 1, args)?;
            ev.require(true)?;
            let (owner, p) = location(ev, args, 1, name)?;
            let new = ev
                .node(name)?
                .edit_drive(&owner, &p.drive, &mut |cur, now, r| {
                    dlfs::rm(cur, &p, now, r)
                })?;
            hash_v(&new)
        }
        _ => Err(EvalError::new("UNDECLARED", name)),
    }
}
