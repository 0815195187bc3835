//! Pins (issue 15, docs/PROVIDER.md): values a node keeps whatever else it lets go of — a
//! value by its ID, or the state of a drive path when it was pinned.
//!
//! The pin set is the node's own state, kept in its root under `:pins`: an Index from the
//! pinned value's ID to a record `{:value v :label "…" :source "…" :time t}`.
//! - `:pins` is a key of no lattice (lattice.md §4): a merge leaves it as it is (a KeyedLattice
//!   changes only its configured keys of `own`), and the node never serves it (the server
//!   serves only the propagated lattice keys), so pins are never merged into anyone's lattice.
//! - The record holds the value itself, so the pinned tree is reachable from the root: every
//!   compaction keeps it, and a restart finds the pins in the committed root.

use crate::dlfs::kw;
use crate::lattice::value_at_path;
use etch_formats::coll::{self, MapKind};
use etch_formats::value::{blob_bytes, for_each_index_entry};
use etch_formats::{Cell, Kind, ResolveError, Resolver, ValueId};

/// The root key of the pin set.
pub const PINS_KEY: &str = "pins";
/// Bytes of a pin's label at most.
pub const LABEL_BYTES_MAX: usize = 1024;

/// One pin, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The pinned value's ID.
    pub id: ValueId,
    /// What the operator called it ("" for none).
    pub label: String,
    /// Where it came from: `id` for a value pinned by ID, else the drive location pinned.
    pub source: String,
    /// When it was pinned (ms since the epoch).
    pub time: i64,
}

/// The pin set of `root` (an empty Index when there is none).
pub fn pin_set(root: &Cell, r: &dyn Resolver) -> Result<Cell, ResolveError> {
    let pins = value_at_path(root, &[kw(PINS_KEY)], r)?;
    Ok(if pins.kind() == Kind::Index {
        pins
    } else {
        MapKind::Index.empty()
    })
}

/// The pins of `root`, in ID order.
pub fn pins(root: &Cell, r: &dyn Resolver) -> Result<Vec<Pin>, ResolveError> {
    let set = pin_set(root, r)?;
    let mut out = Vec::new();
    for_each_index_entry(&set, r, &mut |k, rec| {
        let Some(id) = k.flat_bytes().and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
            return Ok(());
        };
        let text = |name: &'static str| -> Result<String, ResolveError> {
            let v = value_at_path(&rec, &[kw(name)], r)?;
            Ok(if v.kind() == Kind::String {
                String::from_utf8_lossy(&blob_bytes(&v, r)?).into_owned()
            } else {
                String::new()
            })
        };
        out.push(Pin {
            id: ValueId(id),
            label: text("label")?,
            source: text("source")?,
            time: value_at_path(&rec, &[kw("time")], r)?
                .as_long()
                .unwrap_or(0),
        });
        Ok(())
    })?;
    Ok(out)
}

/// The pin record of `value`.
pub fn record(value: &Cell, label: &str, source: &str, time: i64) -> Cell {
    Cell::map(vec![
        (kw("value"), value.clone()),
        (kw("label"), Cell::string(label)),
        (kw("source"), Cell::string(source)),
        (kw("time"), Cell::long(time)),
    ])
}

/// The pin record of a value a client stored: as [`record`], with the writer (`owner`: key
/// bytes, empty for anonymous) and the bytes charged to it (`crate::quota`).
pub fn owned_record(value: &Cell, source: &str, time: i64, owner: &Cell, bytes: u64) -> Cell {
    Cell::map(vec![
        (kw("value"), value.clone()),
        (kw("label"), Cell::string("")),
        (kw("source"), Cell::string(source)),
        (kw("time"), Cell::long(time)),
        (kw("owner"), owner.clone()),
        (kw("bytes"), Cell::long(bytes.min(i64::MAX as u64) as i64)),
    ])
}

/// The writer and charged bytes of `id`'s pin, when a client's write made it.
pub fn owner_of(
    root: &Cell,
    id: &ValueId,
    r: &dyn Resolver,
) -> Result<Option<(Cell, u64)>, ResolveError> {
    let set = pin_set(root, r)?;
    let rec = value_at_path(&set, &[Cell::blob(id.as_bytes())], r)?;
    if rec.is_nil() {
        return Ok(None);
    }
    let owner = value_at_path(&rec, &[kw("owner")], r)?;
    let bytes = value_at_path(&rec, &[kw("bytes")], r)?.as_long();
    Ok(match bytes {
        Some(b) if owner.kind() == Kind::Blob => Some((owner, b.max(0) as u64)),
        _ => None,
    })
}

/// `root` with its pin set changed: `id` set to `record` (or removed when `None`).
pub fn with_pin(
    root: &Cell,
    id: &ValueId,
    record: Option<Cell>,
    r: &dyn Resolver,
) -> Result<Cell, ResolveError> {
    let set = pin_set(root, r)?;
    let set = coll::index_set(&set, Cell::blob(id.as_bytes()), record, r)?;
    coll::index_set(root, kw(PINS_KEY), Some(set), r)
}
