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

    /// True if a run (not the memtable) holds `id`.
    pub(super) fn in_runs(&self, id: &[u8; 32]) -> bool {
        self.shard(id).runs.iter().any(|r| r.get(id).is_some())
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
