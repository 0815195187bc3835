//! Compaction while a node serves (issue 15, docs/PROVIDER.md "Reclaim space"): `(gc)`,
//! `etch gc --connect`, `etch serve --gc-interval`.
//!
//! Under the node's commit lock (writes wait; reads go on), the cells the node keeps are copied
//! into a new native store beside the old one (`PATH.compact-tmp`), children before parents:
//! everything reachable from the committed root — which holds the pins — or, on a partial
//! replica, the skeleton and the pins (`lattice::hold`). The copy is committed with the same
//! root and synced, then replaces the old store on disk by the crash-safe renames of
//! `store::swap`, and in memory through [`LiveStore::replace`]: reads the new store cannot
//! answer (a reader still walking a dropped tree) go to the old one for a grace period. Extra
//! disk while it runs: the size of what is kept.

use crate::lattice::hold::{held_refs, Zone};
use crate::store::live::LiveStore;
use crate::store::swap::{remove_any, replace, tmp_path};
use crate::store::{CellStore, NativeOptions, NativeStore, StoreError};
use etch_formats::{Cell, Ref};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What a node compacts: its live store, where it lies, how to open it, what it holds.
pub struct GcTarget {
    /// The node's store (under its `HoldStore` on a partial replica).
    pub live: Arc<LiveStore>,
    /// The native store's directory.
    pub path: PathBuf,
    /// How the new store is opened.
    pub options: NativeOptions,
    /// A partial replica: keep the skeleton and the pins only.
    pub partial: bool,
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct GcReport {
    /// Bytes of the store's files before.
    pub bytes_before: u64,
    /// And after.
    pub bytes_after: u64,
    /// Cells kept.
    pub cells: u64,
    /// Seconds it took.
    pub seconds: f64,
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Compacts `target` keeping what `root` (the committed root; the caller holds the commit lock)
/// reaches. Errors leave the old store serving and remove the copy.
pub fn compact_live(target: &GcTarget, root: &Cell) -> Result<GcReport, StoreError> {
    let start = Instant::now();
    // Writes made outside the commit lock (a PUT's streamed contents) wait for the swap.
    let _paused = target.live.pause_writes();
    let bytes_before = dir_bytes(&target.path);
    let tmp = tmp_path(&target.path);
    let io = |e: std::io::Error| StoreError::Source(format!("{}: {e}", tmp.display()));
    remove_any(&tmp).map_err(io)?;
    let copied = (|| {
        let dst = NativeStore::create(&tmp, target.options.clone())?;
        let cells = copy_kept(&target.current(), root, &dst, target.partial)?;
        dst.set_root(root)?;
        Ok::<u64, StoreError>(cells)
    })();
    let cells = match copied {
        Ok(c) => c,
        Err(e) => {
            let _ = remove_any(&tmp);
            return Err(e);
        }
    };
    replace(&target.path).map_err(|e| {
        StoreError::Source(format!(
            "{}: replacing the store: {e}",
            target.path.display()
        ))
    })?;
    let new = NativeStore::open(&target.path, true, target.options.clone())?;
    target.live.replace(Arc::new(new));
    Ok(GcReport {
        bytes_before,
        bytes_after: dir_bytes(&target.path),
        cells,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl GcTarget {
    fn current(&self) -> Arc<dyn CellStore> {
        self.live.current()
    }
}

/// Copies the kept cells of `root`'s tree from `src` to `dst`, children first; returns how
/// many. On a partial replica a cell not held is passed over (it is not held by design).
fn copy_kept(
    src: &Arc<dyn CellStore>,
    root: &Cell,
    dst: &NativeStore,
    partial: bool,
) -> Result<u64, StoreError> {
    let mut cells = 0u64;
    let top = if partial { Zone::Root } else { Zone::Full };
    // (cell, zone, children pushed)
    let mut stack: Vec<(Cell, Zone, bool)> = vec![(root.clone(), top, false)];
    while let Some((cell, zone, expanded)) = stack.pop() {
        if expanded {
            if !cell.is_embedded() || cell.id() == root.id() {
                dst.put_partial(&cell)?;
                cells += 1;
            }
            continue;
        }
        if !cell.is_embedded() && dst.contains(cell.id())? {
            continue;
        }
        stack.push((cell.clone(), zone, true));
        for (r, z) in held_refs(&cell, zone) {
            match &r {
                Ref::Embedded(c) => {
                    if !c.refs().is_empty() {
                        stack.push((c.clone(), z, false));
                    }
                }
                Ref::Branch(b) => {
                    if dst.contains(b.id())? {
                        continue;
                    }
                    match src.get(b.id())? {
                        Some(c) => stack.push((c, z, false)),
                        // Only a partial replica's :data values may be absent.
                        None if partial && zone != Zone::Full => {}
                        None => return Err(StoreError::Missing(*b.id())),
                    }
                }
            }
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::stored_value;
    use crate::node::LocalNode;
    use crate::quota::Charge;
    use crate::store::hold::HoldStore;
    use etch_formats::value::blob_bytes;

    fn bytes(seed: u64) -> Vec<u8> {
        let mut x = (seed + 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn partial_gc_keeps_pinned_values_and_drops_unpinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let native = NativeStore::create(&path, NativeOptions::default()).unwrap();
        let live = Arc::new(LiveStore::new(Arc::new(native)));
        let hold = Arc::new(HoldStore::new(live.clone(), 1 << 20));
        let target = GcTarget {
            live: live.clone(),
            path: path.clone(),
            options: NativeOptions::default(),
            partial: true,
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let node = LocalNode::open(hold.clone(), Some(key))
            .unwrap()
            .with_gc(target);
        node.publish_node_info(&["tcp://127.0.0.1:1".into()])
            .unwrap();
        let values: Vec<(Cell, Vec<u8>)> = (0..40)
            .map(|i| {
                let b = bytes(i);
                (Cell::blob(&b), b)
            })
            .collect();
        for (v, _) in &values {
            node.store_for(std::slice::from_ref(v), &Charge::anonymous())
                .unwrap();
        }
        for (v, _) in &values[20..] {
            assert!(node.unpin(v.id()).unwrap());
        }
        let report = node.gc().unwrap();
        assert!(
            report.bytes_before - report.bytes_after >= 400_000,
            "{report:?}"
        );
        // Read from the new store alone (not the replaced one, which answers for a while).
        let root = node.root_value();
        let new = live.current();
        for (v, b) in &values[..20] {
            let got = stored_value(&root, v.id(), new.as_ref()).unwrap().unwrap();
            assert_eq!(blob_bytes(&got, new.as_ref()).unwrap(), *b);
        }
    }
}
