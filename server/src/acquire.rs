//! Acquisition (protocol.md §8.1): completing a value whose tree has branches neither in
//! memory nor in the store, by DATA_REQUEST to the node that sent it.

use crate::conn::{Conn, RequestError};
use etch_engine::store::CellStore;
use etch_formats::message::{self, element};
use etch_formats::{Cell, Ref, ResultRecord, ValueId};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// Why a value could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// The request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The other end answered with an error.
    #[error("data request refused: :{0}")]
    Refused(String),
    /// The other end does not have a cell (`:MISSING`).
    #[error("Missing data: 0x{0}")]
    Missing(ValueId),
    /// A cell did not hash to the ID asked for (dropped, never stored).
    #[error("cell for 0x{0} does not match its hash")]
    Mismatch(ValueId),
    /// The value needs more bytes than allowed.
    #[error("value needs more than {0} bytes of missing cells")]
    TooBig(usize),
    /// Acquisition took too long.
    #[error("acquisition timed out")]
    Timeout,
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

/// Bounds of one acquisition.
#[derive(Debug, Clone, Copy)]
pub struct AcquireLimits {
    /// Most bytes of cells fetched.
    pub bytes: usize,
    /// Time allowed in all.
    pub timeout: Duration,
    /// Wait for one answer.
    pub request_timeout: Duration,
    /// Hashes per DATA_REQUEST (≤ 254).
    pub batch: usize,
}

/// Makes every branch of `value` reachable in memory or in `store`: branches that are
/// neither are fetched from the other end of `conn` (254 per request), checked against
/// their hashes and attached in place. Returns the number of cells fetched.
pub async fn complete_tree(
    conn: &Conn,
    value: &Cell,
    store: &dyn CellStore,
    limits: AcquireLimits,
) -> Result<usize, AcquireError> {
    let deadline = Instant::now() + limits.timeout;
    let mut fetched = 0usize;
    let mut bytes = 0usize;
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut stack = vec![value.clone()];
    let mut missing: HashMap<ValueId, Vec<Ref>> = HashMap::new();
    let mut got: HashMap<ValueId, Cell> = HashMap::new();
    loop {
        // Walk what is in memory; collect branches we lack.
        while let Some(cell) = stack.pop() {
            for r in cell.refs() {
                match r {
                    Ref::Embedded(c) => {
                        if !c.refs().is_empty() {
                            stack.push(c.clone());
                        }
                    }
                    Ref::Branch(b) => {
                        let id = *b.id();
                        if let Some(t) = b.target() {
                            if seen.insert(id) {
                                stack.push(t.clone());
                            }
                            continue;
                        }
                        // Fetched earlier for another parent (shared subtrees, e.g. equal
                        // files of a drive): attach it, no second request, counted once.
                        if let Some(c) = got.get(&id) {
                            b.attach(c.clone())
                                .map_err(|_| AcquireError::Mismatch(id))?;
                            continue;
                        }
                        if missing.contains_key(&id) {
                            missing.entry(id).or_default().push(r.clone());
                            continue;
                        }
                        // A stored cell heads a complete stored subtree.
                        if store
                            .contains(&id)
                            .map_err(|e| AcquireError::Store(e.to_string()))?
                        {
                            continue;
                        }
                        missing.entry(id).or_default().push(r.clone());
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(fetched);
        }
        let batch: Vec<ValueId> = missing.keys().take(limits.batch).copied().collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AcquireError::Timeout);
        }
        let reply = conn
            .request(
                |id| {
                    let (body, _) = message::encode_complete(
                        &message::data_request(id, &batch),
                        &etch_formats::NoResolver,
                        usize::MAX,
                    );
                    body
                },
                limits.request_timeout.min(left),
            )
            .await?;
        let r = ResultRecord::parse(reply.payload())
            .ok_or_else(|| AcquireError::Refused("UNEXPECTED".into()))?;
        if let Some(code) = r.error_code() {
            return Err(AcquireError::Refused(code));
        }
        for (i, h) in batch.iter().enumerate() {
            let cell = element(&r.value, i as u64)
                .filter(|c| !c.is_nil())
                .ok_or(AcquireError::Missing(*h))?;
            if cell.id() != h {
                return Err(AcquireError::Mismatch(*h));
            }
            bytes += cell.len();
            if bytes > limits.bytes {
                return Err(AcquireError::TooBig(limits.bytes));
            }
            for rf in missing.remove(h).unwrap_or_default() {
                if let Ref::Branch(b) = rf {
                    b.attach(cell.clone())
                        .map_err(|_| AcquireError::Mismatch(*h))?;
                }
            }
            fetched += 1;
            got.insert(*h, cell.clone());
            if seen.insert(*h) {
                stack.push(cell);
            }
        }
    }
}
