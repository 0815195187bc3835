//! Quotas on client writes (issue 15, docs/PROVIDER.md "Quotas"): what a client writes through a
//! node is charged to the writer's key (or to the anonymous bucket) and refused with `:QUOTA`
//! beyond `--quota` bytes per key or `--quota-total` bytes for all writers together.
//!
//! - A write is charged the bytes it adds to the store: the encodings of the cells of its new
//!   tree that the store does not hold yet, measured before the commit (so a value stored
//!   twice, or by two writers, costs once). The check and the charge run under the node's
//!   commit lock with the write itself, in the same commit: a refused write stores nothing,
//!   and usage can never pass a quota.
//! - The ledger is the node's own state, kept in its root under `:quota` (an Index from the
//!   writer's key bytes, empty for anonymous, to the bytes charged), never served or merged,
//!   so usage survives restarts.
//! - A value stored by a client is pinned for it (`crate::pins`, with `:owner` and `:bytes`);
//!   removing the pin refunds those bytes. Drive writes are charged what they add and not
//!   refunded (the space comes back only when the node compacts).

use crate::dlfs::kw;
use crate::lattice::value_at_path;
use crate::store::walk::walk_new_cells;
use crate::store::{CellStore, StoreError};
use etch_formats::coll::{self, MapKind};
use etch_formats::value::for_each_index_entry;
use etch_formats::{Cell, Kind, ResolveError, Resolver, ValueId};
use std::collections::HashSet;

/// The root key of the ledger.
pub const QUOTA_KEY: &str = "quota";

/// Limits on client writes, in bytes; `None`: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Most bytes one writer (key, or the anonymous bucket) may be charged.
    pub per_key_bytes: Option<u64>,
    /// Most bytes all writers together may be charged.
    pub total_bytes: Option<u64>,
}

/// Who a write is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The ledger key: the writer's 32-byte public key, or the empty blob for anonymous.
    pub owner: Cell,
    /// Bytes the write stored before its commit (an HTTP PUT streams a file's contents into
    /// the store first), charged with what the commit adds.
    pub stored_bytes: u64,
}

impl Charge {
    /// A write by the holder of `key`.
    pub fn key(key: &[u8; 32]) -> Charge {
        Charge {
            owner: Cell::blob(key),
            stored_bytes: 0,
        }
    }

    /// A write by someone who proved no key.
    pub fn anonymous() -> Charge {
        Charge {
            owner: Cell::blob(&[]),
            stored_bytes: 0,
        }
    }

    /// The writer as people read it: the key in hex, or `anonymous`.
    pub fn name(&self) -> String {
        match self.owner.flat_bytes() {
            Some(b) if !b.is_empty() => hex::encode(b),
            _ => "anonymous".into(),
        }
    }
}

/// The ledger of `root`: each writer's key bytes (empty: anonymous) and the bytes charged.
pub fn ledger(root: &Cell, r: &dyn Resolver) -> Result<Vec<(Vec<u8>, u64)>, ResolveError> {
    let set = value_at_path(root, &[kw(QUOTA_KEY)], r)?;
    let mut out = Vec::new();
    if set.kind() != Kind::Index {
        return Ok(out);
    }
    for_each_index_entry(&set, r, &mut |k, v| {
        if let (Some(key), Some(n)) = (k.flat_bytes(), v.as_long()) {
            out.push((key.to_vec(), n.max(0) as u64));
        }
        Ok(())
    })?;
    Ok(out)
}

/// The bytes charged to `owner` in `root`.
pub fn used(root: &Cell, owner: &Cell, r: &dyn Resolver) -> Result<u64, ResolveError> {
    let v = value_at_path(root, &[kw(QUOTA_KEY), owner.clone()], r)?;
    Ok(v.as_long().map_or(0, |n| n.max(0) as u64))
}

/// `root` with `owner`'s charge set to `bytes`.
pub fn with_used(
    root: &Cell,
    owner: &Cell,
    bytes: u64,
    r: &dyn Resolver,
) -> Result<Cell, ResolveError> {
    let key = kw(QUOTA_KEY);
    let set = value_at_path(root, std::slice::from_ref(&key), r)?;
    let set = if set.kind() == Kind::Index {
        set
    } else {
        MapKind::Index.empty()
    };
    let charged = Cell::long(bytes.min(i64::MAX as u64) as i64);
    let set = coll::index_set(&set, owner.clone(), Some(charged), r)?;
    coll::index_set(root, key, Some(set), r)
}

/// The bytes `value`'s tree would add to `store`: encodings of its cells the store lacks,
/// each counted once across calls sharing `seen`. Branches not held (a partial replica's
/// merged root) are passed over: they are not written either.
pub fn new_bytes(
    value: &Cell,
    store: &dyn CellStore,
    seen: &mut HashSet<ValueId>,
) -> Result<u64, StoreError> {
    let mut bytes = 0u64;
    let complete = |id: &ValueId| -> Result<bool, StoreError> { store.contains(id) };
    walk_new_cells(value, true, &complete, &mut |cell| {
        if seen.insert(*cell.id()) {
            bytes += cell.len() as u64;
        }
        Ok(())
    })?;
    Ok(bytes)
}

/// Why a write is over quota, or `None` when `bytes` more fit for `charge` in `root`.
pub fn refusal(
    quotas: &Quotas,
    root: &Cell,
    charge: &Charge,
    bytes: u64,
    r: &dyn Resolver,
) -> Result<Option<String>, ResolveError> {
    if bytes == 0 || *quotas == Quotas::default() {
        return Ok(None);
    }
    if let Some(q) = quotas.per_key_bytes {
        let u = used(root, &charge.owner, r)?;
        if u.saturating_add(bytes) > q {
            return Ok(Some(format!(
                "Quota exceeded: {} has used {u} of its {q} bytes and this write needs {bytes} more",
                charge.name()
            )));
        }
    }
    if let Some(q) = quotas.total_bytes {
        let u: u64 = ledger(root, r)?.iter().map(|(_, n)| n).sum();
        if u.saturating_add(bytes) > q {
            return Ok(Some(format!(
                "Quota exceeded: client writes on this node have used {u} of {q} bytes and this write needs {bytes} more"
            )));
        }
    }
    Ok(None)
}
