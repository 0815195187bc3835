//! What the stores share to read fast: the hasher of maps keyed by Value IDs, and the bounded
//! cache of decoded cells.

use etch_formats::{Cell, ValueId};
use std::collections::{HashMap, VecDeque};

/// A hasher for maps keyed by Value IDs (or their bytes): the keys are already uniform SHA3
/// output, so their first 8 bytes are a perfect hash; SipHash would only cost time.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Arrays hash their length first (a usize write), then the bytes: take the first 8
        // bytes of the id, mixed with whatever came before.
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(w);
    }
}

/// `BuildHasher` of [`IdHasher`].
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// Default budget of the decoded-cell cache of a store.
pub const CACHE_BYTES_DEFAULT: usize = 64 << 20;
/// Accounting overhead of one cached cell beyond its encoding (Arc, refs, map entry).
const CACHE_ENTRY_OVERHEAD_BYTES: usize = 160;

/// A bounded cache of decoded cells: FIFO eviction by bytes. Cheap, lock-held briefly, and
/// enough to keep the upper levels of trees being walked (which are read again and again) hot.
pub struct CellCache {
    budget_bytes: usize,
    used_bytes: usize,
    cells: HashMap<ValueId, Cell, IdHash>,
    order: VecDeque<ValueId>,
}

impl CellCache {
    /// An empty cache that keeps at most `budget_bytes` (encodings and their overhead).
    pub fn new(budget_bytes: usize) -> CellCache {
        CellCache {
            budget_bytes,
            used_bytes: 0,
            cells: HashMap::default(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn set_budget(&mut self, bytes: usize) {
        self.budget_bytes = bytes;
        while self.used_bytes > bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(cell) = self.cells.remove(&old) {
                self.used_bytes -= cell.len() + CACHE_ENTRY_OVERHEAD_BYTES;
            }
        }
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget_bytes
    }

    pub(crate) fn used(&self) -> usize {
        self.used_bytes
    }

    /// The cell of `id`, if kept.
    pub fn get(&self, id: &ValueId) -> Option<Cell> {
        self.cells.get(id).cloned()
    }

    /// Keeps `cell`, evicting the oldest cells past the budget.
    pub fn insert(&mut self, cell: &Cell) {
        let cost = cell.len() + CACHE_ENTRY_OVERHEAD_BYTES;
        if cost > self.budget_bytes || self.cells.contains_key(cell.id()) {
            return;
        }
        while self.used_bytes + cost > self.budget_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(c) = self.cells.remove(&old) {
                self.used_bytes -= c.len() + CACHE_ENTRY_OVERHEAD_BYTES;
            }
        }
        self.used_bytes += cost;
        self.order.push_back(*cell.id());
        self.cells.insert(*cell.id(), cell.clone());
    }
}
