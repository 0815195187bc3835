//! The native store's index in memory: the memtable (recent records) and the run list, in
//! shards so that readers rarely share a lock (FORMAT.md §5, "Reads").

use super::run::Run;
use crate::store::cache::IdHash;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Index shards: readers of different ids take different locks, so reader threads do not
/// all write one lock word (measured: one `RwLock` capped W3 near 2.5M reads/s from 4 to 16
/// threads on a 16-core machine).
pub(super) const INDEX_SHARDS: usize = 16;

/// A memtable entry: a record's id and log address.
pub(super) type MemtableEntry = ([u8; 32], u64);

/// One shard of the index: the memtable entries of the ids of this shard, and the runs
/// (newest first; every shard holds the same list).
pub(super) struct IndexShard {
    memtable: HashMap<[u8; 32], u64, IdHash>,
    runs: Vec<Arc<Run>>,
}

/// The in-memory part of the index plus the runs, sharded by an id's last byte (the cache
/// shards by the one before). Inserts and run changes happen with the appender locked, so they
/// never race each other; a run change swaps each shard's runs and clears its memtable part
/// in one step, so a reader finds every id either in the memtable or in the new runs.
pub(super) struct Index {
    shards: Vec<RwLock<IndexShard>>,
    memtable_len: AtomicUsize,
}

impl Index {
    pub(super) fn new(memtable: HashMap<[u8; 32], u64, IdHash>, runs: Vec<Arc<Run>>) -> Index {
        let mut parts: Vec<HashMap<[u8; 32], u64, IdHash>> =
            (0..INDEX_SHARDS).map(|_| HashMap::default()).collect();
        let len = memtable.len();
        for (id, addr) in memtable {
            parts[Self::shard_of(&id)].insert(id, addr);
        }
        Index {
            shards: parts
                .into_iter()
                .map(|memtable| {
                    RwLock::new(IndexShard {
                        memtable,
                        runs: runs.clone(),
                    })
                })
                .collect(),
            memtable_len: AtomicUsize::new(len),
        }
    }

    pub(super) fn shard_of(id: &[u8; 32]) -> usize {
        // Not a byte the maps hash (the `IdHasher` of `IdHash` uses the first 8): a shard's keys would all
        // share those hash bits and crowd a fraction of its buckets (measured: W1 12% slower).
        id[31] as usize % INDEX_SHARDS
    }

    pub(super) fn shard(&self, id: &[u8; 32]) -> std::sync::RwLockReadGuard<'_, IndexShard> {
        self.shards[Self::shard_of(id)]
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(&self, id: &[u8; 32]) -> Option<u64> {
        let s = self.shard(id);
        if let Some(a) = s.memtable.get(id) {
            return Some(*a);
        }
        s.runs.iter().find_map(|r| r.get(id))
    }

    /// Adds a memtable entry unless the memtable already holds `id` (appender locked): one
    /// lock and one probe of the map. Returns the memtable's new size, or `None` when `id` was
    /// there (its address unchanged).
    pub(super) fn insert_new(&self, id: [u8; 32], addr: u64) -> Option<usize> {
        let mut shard = self.shards[Self::shard_of(&id)]
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let map = &mut shard.memtable;
        match map.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => return None,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(addr);
            }
        }
        Some(self.memtable_len.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// The positions in `ids` of the ids held neither by the memtable nor by a run, one for
    /// each distinct id (its first), grouped by shard for [`Index::insert_absent`]. One read
    /// lock per shard for the whole batch: each probe of a large memtable is a cache miss, and
    /// a lock taken and released per id keeps those misses from overlapping.
    pub(super) fn absent(&self, ids: &[[u8; 32]]) -> Vec<usize> {
        let mut starts = [0usize; INDEX_SHARDS + 1];
        for id in ids {
            starts[Self::shard_of(id) + 1] += 1;
        }
        for s in 0..INDEX_SHARDS {
            starts[s + 1] += starts[s];
        }
        let mut next = starts;
        let mut grouped = vec![0usize; ids.len()];
        for (p, id) in ids.iter().enumerate() {
            let s = Self::shard_of(id);
            grouped[next[s]] = p;
            next[s] += 1;
        }
        let mut absent = Vec::with_capacity(ids.len());
        for s in 0..INDEX_SHARDS {
            let group = &mut grouped[starts[s]..starts[s + 1]];
            if group.is_empty() {
                continue;
            }
            // Equal ids side by side, the first in `ids` first.
            group.sort_unstable_by(|&x, &y| ids[x].cmp(&ids[y]).then(x.cmp(&y)));
            let shard = self.shards[s].read().unwrap_or_else(|p| p.into_inner());
            let mut previous: Option<&[u8; 32]> = None;
            for &p in group.iter() {
                let id = &ids[p];
                if previous == Some(id) {
                    continue;
                }
                previous = Some(id);
                if !shard.memtable.contains_key(id)
                    && !shard.runs.iter().any(|r| r.get(id).is_some())
                {
                    absent.push(p);
                }
            }
        }
        absent
    }

    /// Adds the entries `(ids[p], addrs[p])` for the positions [`Index::absent`] gave, the
    /// appender locked since (so they are absent still): one write lock per shard. Returns the
    /// memtable's new size.
    pub(super) fn insert_absent(&self, ids: &[[u8; 32]], absent: &[usize], addrs: &[u64]) -> usize {
        let mut i = 0;
        while let Some(&first) = absent.get(i) {
            let s = Self::shard_of(&ids[first]);
            let mut shard = self.shards[s].write().unwrap_or_else(|p| p.into_inner());
            while let Some(&p) = absent.get(i) {
                if Self::shard_of(&ids[p]) != s {
                    break;
                }
                let old = shard.memtable.insert(ids[p], addrs[p]);
                debug_assert!(old.is_none(), "insert_absent of an id the memtable holds");
                i += 1;
            }
        }
        self.memtable_len.fetch_add(absent.len(), Ordering::Relaxed) + absent.len()
    }

    pub(super) fn memtable_len(&self) -> usize {
        self.memtable_len.load(Ordering::Relaxed)
    }

    pub(super) fn runs(&self) -> Vec<Arc<Run>> {
        self.shard(&[0; 32]).runs.clone()
    }

    /// The memtable's entries (unordered) and the runs.
    pub(super) fn snapshot(&self) -> (Vec<MemtableEntry>, Vec<Arc<Run>>) {
        let mut entries = Vec::with_capacity(self.memtable_len());
        for s in &self.shards {
            let s = s.read().unwrap_or_else(|p| p.into_inner());
            entries.extend(s.memtable.iter().map(|(k, v)| (*k, *v)));
        }
        (entries, self.runs())
    }

    /// Installs runs that cover every memtable entry, and empties the memtable (appender locked).
    pub(super) fn install_runs(&self, runs: &[Arc<Run>]) {
        for s in &self.shards {
            let mut s = s.write().unwrap_or_else(|p| p.into_inner());
            s.runs = runs.to_vec();
            s.memtable.clear();
        }
        self.memtable_len.store(0, Ordering::Relaxed);
    }
}
