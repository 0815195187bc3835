//! Acquisition (protocol.md §8.1): completing a value whose tree has branches neither in
//! memory nor in the store, by DATA_REQUEST to the node that sent it.

use crate::budget::Held;
use crate::conn::{Conn, RequestError};
use etch_engine::lattice::hold::{held_refs, Zone};
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

/// Makes every branch of `value` that this node holds reachable in memory or in `store`:
/// branches that are neither are fetched from the other end of `conn` (254 per request),
/// checked against their hashes and attached in place. `zone` says where `value` lies in the
/// root: `Zone::Full` holds the whole tree; a partial replica passes the value's zone
/// (`lattice::hold`) and fetches only the skeleton. Cells in `arrived` (see [`detached`]) are
/// used before anything is asked for. The bytes fetched are counted in the node's memory budget
/// into `held` (the caller keeps it until the value is merged), and no request is sent while
/// the node is over its budget. Returns the number of cells fetched.
pub async fn complete_tree(
    conn: &Conn,
    value: &Cell,
    zone: Zone,
    store: &dyn CellStore,
    arrived: &mut HashMap<ValueId, Cell>,
    limits: AcquireLimits,
    held: &mut Held,
) -> Result<usize, AcquireError> {
    let deadline = Instant::now() + limits.timeout;
    let mut fetched = 0usize;
    let mut bytes = 0usize;
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut stack = vec![(value.clone(), zone)];
    let mut missing: HashMap<ValueId, (Zone, Vec<Ref>)> = HashMap::new();
    let mut got: HashMap<ValueId, Cell> = HashMap::new();
    loop {
        // Walk what is in memory; collect branches we lack.
        while let Some((cell, zone)) = stack.pop() {
            for (r, zone) in held_refs(&cell, zone) {
                match &r {
                    Ref::Embedded(c) => {
                        if !c.refs().is_empty() {
                            stack.push((c.clone(), zone));
                        }
                    }
                    Ref::Branch(b) => {
                        let id = *b.id();
                        if let Some(t) = b.target() {
                            if seen.insert(id) {
                                stack.push((t.clone(), zone));
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
                        // Came with the message: attached now, walked like a fetched cell.
                        if let Some(c) = arrived.remove(&id) {
                            b.attach(c.clone())
                                .map_err(|_| AcquireError::Mismatch(id))?;
                            got.insert(id, c.clone());
                            if seen.insert(id) {
                                stack.push((c, zone));
                            }
                            continue;
                        }
                        if let Some((_, refs)) = missing.get_mut(&id) {
                            refs.push(r.clone());
                            continue;
                        }
                        // A stored cell heads a complete stored subtree.
                        if store
                            .contains(&id)
                            .map_err(|e| AcquireError::Store(e.to_string()))?
                        {
                            continue;
                        }
                        missing.insert(id, (zone, vec![r.clone()]));
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(fetched);
        }
        let batch: Vec<ValueId> = missing.keys().take(limits.batch).copied().collect();
        if let Some(m) = conn.memory() {
            if !m.room(deadline).await {
                return Err(AcquireError::Timeout);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AcquireError::Timeout);
        }
        let cells = data_request(conn, &batch, limits.request_timeout.min(left)).await?;
        if let Some(m) = conn.memory() {
            held.absorb(m.force(cells.iter().flatten().map(Cell::len).sum()));
        }
        for (h, cell) in batch.iter().zip(cells) {
            let cell = cell.ok_or(AcquireError::Missing(*h))?;
            bytes += cell.len();
            if bytes > limits.bytes {
                return Err(AcquireError::TooBig(limits.bytes));
            }
            let (zone, refs) = missing.remove(h).unwrap_or((Zone::Full, Vec::new()));
            for rf in refs {
                if let Ref::Branch(b) = rf {
                    b.attach(cell.clone())
                        .map_err(|_| AcquireError::Mismatch(*h))?;
                }
            }
            fetched += 1;
            got.insert(*h, cell.clone());
            if seen.insert(*h) {
                stack.push((cell, zone));
            }
        }
    }
}

/// One DATA_REQUEST (protocol.md §7.5) for `ids` over `conn`: the cells in the order asked,
/// `None` where the other end does not hold one. A cell that does not hash to its ID is an
/// error (dropped, never used).
pub(crate) async fn data_request(
    conn: &Conn,
    ids: &[ValueId],
    timeout: Duration,
) -> Result<Vec<Option<Cell>>, AcquireError> {
    let reply = conn
        .request(
            |id| {
                let (body, _) = message::encode_complete(
                    &message::data_request(id, ids),
                    &etch_formats::NoResolver,
                    usize::MAX,
                );
                body
            },
            timeout,
        )
        .await?;
    let r = ResultRecord::parse(reply.payload())
        .ok_or_else(|| AcquireError::Refused("UNEXPECTED".into()))?;
    if let Some(code) = r.error_code() {
        return Err(AcquireError::Refused(code));
    }
    let mut out = Vec::with_capacity(ids.len());
    for (i, h) in ids.iter().enumerate() {
        let cell = element(&r.value, i as u64).filter(|c| !c.is_nil());
        if cell.as_ref().is_some_and(|c| c.id() != h) {
            return Err(AcquireError::Mismatch(*h));
        }
        out.push(cell);
    }
    Ok(out)
}

/// For a partial replica: `value` and every branch cell that arrived attached to it, each
/// decoded afresh from its encoding with no children attached. A message may carry whole
/// values the replica does not hold; after this, only what [`complete_tree`] attaches (the
/// skeleton) is in memory to be written.
pub fn detached(value: &Cell) -> (Cell, HashMap<ValueId, Cell>) {
    let fresh = |c: &Cell| {
        etch_formats::decode::decode_cell(bytes::Bytes::copy_from_slice(c.encoding()))
            .unwrap_or_else(|_| c.clone())
    };
    let mut arrived = HashMap::new();
    let mut stack = vec![value.clone()];
    while let Some(cell) = stack.pop() {
        for r in cell.refs() {
            match r {
                Ref::Embedded(c) if !c.refs().is_empty() => stack.push(c.clone()),
                Ref::Embedded(_) => {}
                Ref::Branch(b) => {
                    if let Some(t) = b.target() {
                        if !arrived.contains_key(b.id()) {
                            arrived.insert(*b.id(), fresh(t));
                            stack.push(t.clone());
                        }
                    }
                }
            }
        }
    }
    (fresh(value), arrived)
}
