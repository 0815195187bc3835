//! Acquisition (protocol.md §8.1): completing a value whose tree has branches neither in
//! memory nor in the store, by DATA_REQUEST to the node that sent it and to the node's other
//! peers, all at once ([`complete_tree`]).

use crate::budget::Held;
use crate::conn::{Conn, RequestError};
use etch_engine::lattice::hold::{held_branch_refs, Zone};
use etch_engine::store::CellStore;
use etch_formats::message::{self, element};
use etch_formats::{Cell, Ref, ResultRecord, ValueId};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
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
    /// Most bytes of cells fetched and kept in memory ([`Keep::Memory`]).
    pub bytes: usize,
    /// Time allowed in all.
    pub timeout: Duration,
    /// Wait for one answer.
    pub request_timeout: Duration,
    /// Hashes per DATA_REQUEST (≤ 254).
    pub batch: usize,
}

/// Where the cells fetched for a value are kept until it is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Attached in place in the value's tree, in memory (at most `AcquireLimits::bytes`): the
    /// store is untouched until the merge, which measures what the value adds (a client's
    /// value, charged to its quota; a partial replica's skeleton).
    Memory,
    /// Written to the store as each subtree completes (a cell once all its children are
    /// stored), then let go: memory holds only the subtrees still incomplete, so a value of any
    /// size can be fetched, and an acquisition cut short is resumed by the next (a stored cell
    /// heads a complete stored subtree, which is never asked for again).
    Store,
}

/// A node to fetch cells from, and how long to wait for each of its answers.
#[derive(Clone)]
pub struct Source {
    /// The connection to it.
    pub conn: Arc<Conn>,
    /// Wait for one answer.
    pub request_timeout: Duration,
}

/// DATA_REQUESTs in flight to one source at once: answers stream back to back instead of one
/// round trip each.
pub const PIPELINE_DEPTH: usize = 4;

/// A batch in flight this many times the usual answer time (a moving average over the
/// acquisition's answers), while another source stands idle, is asked of that source too (the
/// first answer is used): a slow source's share moves to the others.
const HEDGE_FACTOR: u32 = 4;
/// Bounds of that wait, and the wait before any answer came.
const HEDGE_MIN: Duration = Duration::from_millis(250);
const HEDGE_MAX: Duration = Duration::from_secs(5);
const HEDGE_FIRST: Duration = Duration::from_millis(1500);

/// Fewest hashes in a DATA_REQUEST while more are queued (smaller shares cost round trips).
const BATCH_MIN: usize = 16;

/// Most sources of one acquisition (who was asked for a cell is kept as a bit mask).
const SOURCES_MAX: usize = 64;

/// A cell the value needs that is not complete yet.
struct Wanted {
    zone: Zone,
    /// Its cell, when in memory (came with the message or attached); `None`: to be fetched.
    cell: Option<Cell>,
    /// The refs to attach it to ([`Keep::Memory`]).
    refs: Vec<Ref>,
    /// The cells waiting for it ([`Keep::Store`]); none for the top value.
    parents: Vec<ValueId>,
}

/// A cell in memory whose subtree is not complete yet ([`Keep::Store`]).
struct Waiting {
    cell: Cell,
    children: usize,
    parents: Vec<ValueId>,
}

/// One request in flight.
struct Flight {
    source: usize,
    batch: Vec<ValueId>,
    started: Instant,
    hedged: bool,
}

type Answer = (u64, usize, Result<Vec<Option<Cell>>, AcquireError>);

/// The state of one acquisition.
struct Acquisition<'a> {
    keep: Keep,
    store: &'a Arc<dyn CellStore>,
    arrived: &'a mut HashMap<ValueId, Cell>,
    wanted: HashMap<ValueId, Wanted>,
    /// Wanted cells to visit (in memory) and to ask for.
    stack: Vec<ValueId>,
    queue: VecDeque<ValueId>,
    /// Sources that answered "not held" for a cell (bit per source).
    lacking: HashMap<ValueId, u64>,
    in_flight: HashMap<ValueId, usize>,
    /// Cells done in this acquisition: the cell itself with [`Keep::Memory`] (to attach to
    /// further refs), `None` with [`Keep::Store`] (written).
    done: HashMap<ValueId, Option<Cell>>,
    waiting: HashMap<ValueId, Waiting>,
    /// Cells whose subtree is complete, children before parents, to be written.
    ready: Vec<Cell>,
    fetched: usize,
    fetched_bytes: usize,
    /// Bytes of fetched cells in memory now.
    memory_bytes: usize,
}

impl Acquisition<'_> {
    /// Looks at the children of `cell` (wanted as `id`, `None` for the top value): those
    /// neither stored nor done become wanted. With [`Keep::Store`] a cell whose children are
    /// all there is ready to be written, else it waits for them.
    fn visit(
        &mut self,
        id: Option<ValueId>,
        cell: Cell,
        zone: Zone,
        parents: Vec<ValueId>,
    ) -> Result<(), AcquireError> {
        let mut children = 0usize;
        for (r, zone) in held_branch_refs(&cell, zone) {
            let child = r.id();
            if let Some(w) = self.wanted.get_mut(&child) {
                w.refs.push(r);
                w.parents.extend(id);
                children += 1;
                continue;
            }
            if let Some(w) = self.waiting.get_mut(&child) {
                w.parents.extend(id);
                children += 1;
                continue;
            }
            if let Some(done) = self.done.get(&child) {
                if let (Some(c), Ref::Branch(b)) = (done, &r) {
                    if b.target().is_none() {
                        b.attach(c.clone())
                            .map_err(|_| AcquireError::Mismatch(child))?;
                    }
                }
                continue;
            }
            // A stored cell heads a complete stored subtree.
            if self
                .store
                .contains(&child)
                .map_err(|e| AcquireError::Store(e.to_string()))?
            {
                continue;
            }
            let in_memory = match &r {
                Ref::Branch(b) => b.target().cloned(),
                Ref::Embedded(_) => None,
            }
            .or_else(|| self.arrived.remove(&child));
            let known = in_memory.is_some();
            self.wanted.insert(
                child,
                Wanted {
                    zone,
                    cell: in_memory,
                    refs: vec![r],
                    parents: id.into_iter().collect(),
                },
            );
            if known {
                self.stack.push(child);
            } else {
                self.queue.push_back(child);
            }
            children += 1;
        }
        if let (Keep::Store, Some(id)) = (self.keep, id) {
            if children == 0 {
                self.complete(cell, parents);
            } else {
                self.waiting.insert(
                    id,
                    Waiting {
                        cell,
                        children,
                        parents,
                    },
                );
            }
        }
        Ok(())
    }

    /// [`Keep::Store`]: `cell`'s subtree is complete; so may its parents' be.
    fn complete(&mut self, cell: Cell, parents: Vec<ValueId>) {
        let mut next = vec![(cell, parents)];
        while let Some((cell, parents)) = next.pop() {
            self.done.insert(*cell.id(), None);
            self.ready.push(cell);
            for p in parents {
                let Some(w) = self.waiting.get_mut(&p) else {
                    continue;
                };
                w.children -= 1;
                if w.children == 0 {
                    if let Some(w) = self.waiting.remove(&p) {
                        next.push((w.cell, w.parents));
                    }
                }
            }
        }
    }

    /// Visits every wanted cell that is in memory.
    fn walk(&mut self) -> Result<(), AcquireError> {
        while let Some(id) = self.stack.pop() {
            let Some(w) = self.wanted.remove(&id) else {
                continue;
            };
            let Some(cell) = w.cell else {
                continue;
            };
            self.arrive(id, cell, w.zone, w.refs, w.parents)?;
        }
        Ok(())
    }

    /// A wanted cell is in memory: attach it where wanted ([`Keep::Memory`]) and visit it.
    fn arrive(
        &mut self,
        id: ValueId,
        cell: Cell,
        zone: Zone,
        refs: Vec<Ref>,
        parents: Vec<ValueId>,
    ) -> Result<(), AcquireError> {
        if self.keep == Keep::Memory {
            for r in refs {
                if let Ref::Branch(b) = r {
                    if b.target().is_none() {
                        b.attach(cell.clone())
                            .map_err(|_| AcquireError::Mismatch(id))?;
                    }
                }
            }
            self.done.insert(id, Some(cell.clone()));
        }
        self.visit(Some(id), cell, zone, parents)
    }

    /// An answer's cells: the wanted ones are attached or kept and visited; the ones a source
    /// does not hold are asked of another.
    fn answered(
        &mut self,
        source: usize,
        batch: &[ValueId],
        cells: Vec<Option<Cell>>,
        limits: &AcquireLimits,
    ) -> Result<(), AcquireError> {
        for (h, cell) in batch.iter().zip(cells) {
            let Some(cell) = cell else {
                *self.lacking.entry(*h).or_default() |= 1 << source;
                self.requeue(*h);
                continue;
            };
            let Some(w) = self.wanted.remove(h) else {
                continue; // an answer to a hedged request that came second
            };
            self.fetched += 1;
            self.fetched_bytes += cell.len();
            self.memory_bytes += cell.len();
            if self.keep == Keep::Memory && self.fetched_bytes > limits.bytes {
                return Err(AcquireError::TooBig(limits.bytes));
            }
            self.arrive(*h, cell, w.zone, w.refs, w.parents)?;
        }
        self.walk()
    }

    /// Puts `id` back in the queue if it is still wanted and no request for it is in flight.
    fn requeue(&mut self, id: ValueId) {
        let asked = self.in_flight.get(&id).copied().unwrap_or(0) > 0;
        if !asked && self.wanted.get(&id).is_some_and(|w| w.cell.is_none()) {
            self.queue.push_back(id);
        }
    }

    /// Up to `max` queued cells that `source` has not said it lacks.
    fn batch_for(&mut self, source: usize, max: usize) -> Vec<ValueId> {
        let mut batch = Vec::new();
        let mut passed = Vec::new();
        while batch.len() < max {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            if self.wanted.get(&id).is_none_or(|w| w.cell.is_some()) {
                continue;
            }
            if self.lacking.get(&id).copied().unwrap_or(0) & (1 << source) != 0 {
                passed.push(id);
                continue;
            }
            batch.push(id);
        }
        for id in passed.into_iter().rev() {
            self.queue.push_front(id);
        }
        batch
    }

    /// [`Keep::Store`]: writes the cells whose subtrees are complete (children first).
    async fn write_ready(&mut self) -> Result<(), AcquireError> {
        if self.ready.is_empty() {
            return Ok(());
        }
        let cells = std::mem::take(&mut self.ready);
        let bytes: usize = cells.iter().map(Cell::len).sum();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            for c in &cells {
                store.put(c)?;
            }
            Ok::<_, etch_engine::store::StoreError>(())
        })
        .await
        .map_err(|e| AcquireError::Store(e.to_string()))?
        .map_err(|e| AcquireError::Store(e.to_string()))?;
        self.memory_bytes = self.memory_bytes.saturating_sub(bytes);
        Ok(())
    }
}

/// Makes every branch of `value` that this node holds reachable in memory or in `store`:
/// branches that are neither are fetched from `sources` by DATA_REQUEST (254 per request),
/// checked against their hashes, and kept as `keep` says. `zone` says where `value` lies in
/// the root: `Zone::Full` holds the whole tree; a partial replica passes the value's zone
/// (`lattice::hold`) and fetches only the skeleton. Cells in `arrived` (see [`detached`]) are
/// used before anything is asked for. Returns the number of cells fetched.
///
/// Many sources at once: each gets up to [`PIPELINE_DEPTH`] requests in flight, and takes the
/// next batch of the frontier when an answer comes, so subtrees split between the sources in
/// proportion to their speed. A source that fails or times out is dropped and its batches
/// asked of the others; one still working on a batch after several usual answer times while another stands
/// idle has the batch asked of that one too. A cell a source does not hold is asked of the
/// next; missing from all, the acquisition fails.
///
/// `more`, when given, is asked for sources again as the acquisition goes: peers that connect
/// meanwhile (a node just started pulls from its first peer before the others are connected)
/// join it.
///
/// Memory: the bytes fetched and still in memory are counted in the node's budget in `held`
/// (the caller keeps it until the value is merged), and no request is sent while the node is
/// over its budget.
#[allow(clippy::too_many_arguments)]
pub async fn complete_tree(
    sources: &[Source],
    more: Option<&(dyn Fn() -> Vec<Source> + Sync)>,
    value: &Cell,
    zone: Zone,
    store: &Arc<dyn CellStore>,
    arrived: &mut HashMap<ValueId, Cell>,
    limits: AcquireLimits,
    keep: Keep,
    held: &mut Held,
) -> Result<usize, AcquireError> {
    let deadline = Instant::now() + limits.timeout;
    let mut sources: Vec<Source> = sources.iter().take(SOURCES_MAX).cloned().collect();
    let budget = sources.iter().find_map(|s| s.conn.memory().cloned());
    if let Some(b) = &budget {
        held.absorb(b.force(0));
    }
    let mut a = Acquisition {
        keep,
        store,
        arrived,
        wanted: HashMap::new(),
        stack: Vec::new(),
        queue: VecDeque::new(),
        lacking: HashMap::new(),
        in_flight: HashMap::new(),
        done: HashMap::new(),
        waiting: HashMap::new(),
        ready: Vec::new(),
        fetched: 0,
        fetched_bytes: 0,
        memory_bytes: 0,
    };
    a.visit(None, value.clone(), zone, Vec::new())?;
    a.walk()?;
    let mut alive = vec![true; sources.len()];
    let mut out = Requests {
        tasks: JoinSet::new(),
        flights: HashMap::new(),
        busy: vec![0; sources.len()],
        next_key: 0,
    };
    let mut last_error = None;
    // Moving average of the time from a request to its answer.
    let mut usual: Option<Duration> = None;
    loop {
        if let Some(more) = more {
            for s in more() {
                if sources.len() < SOURCES_MAX
                    && !sources.iter().any(|k| Arc::ptr_eq(&k.conn, &s.conn))
                {
                    sources.push(s);
                    alive.push(true);
                    out.busy.push(0);
                }
            }
        }
        a.write_ready().await?;
        if keep == Keep::Store {
            held.fit(a.memory_bytes);
        } else {
            held.fit(a.fetched_bytes);
        }
        if a.wanted.is_empty() {
            // Requests still in flight (a slow source's, already answered by another) are
            // dropped with `tasks`; their late answers are ignored by the connection.
            return Ok(a.fetched);
        }
        let over = budget.as_ref().is_some_and(|b| b.over());
        if over && out.tasks.is_empty() {
            if let Some(b) = &budget {
                if !b.room(deadline).await {
                    return Err(AcquireError::Timeout);
                }
            }
        }
        // Every source with room gets the next batch of the frontier.
        if !over {
            loop {
                let source = (0..sources.len())
                    .filter(|&i| alive[i] && out.busy[i] < PIPELINE_DEPTH)
                    .min_by_key(|&i| out.busy[i]);
                let Some(i) = source else { break };
                // The frontier is shared out over the free request slots: a small one goes
                // to several sources rather than whole to the first.
                let free: usize = (0..sources.len())
                    .filter(|&k| alive[k])
                    .map(|k| PIPELINE_DEPTH.saturating_sub(out.busy[k]))
                    .sum();
                let share = a.queue.len().div_ceil(free.max(1));
                let batch = a.batch_for(i, share.max(BATCH_MIN).min(limits.batch.max(1)));
                if batch.is_empty() {
                    break;
                }
                out.start(&mut a, i, &sources[i], batch, deadline, false);
            }
        }
        if out.tasks.is_empty() {
            // Wanted cells that no live source will give.
            let id = a.queue.front().copied();
            return Err(match (last_error, id) {
                (Some(e), _) if !alive.contains(&true) => e,
                (_, Some(id)) => AcquireError::Missing(id),
                (Some(e), None) => e,
                (None, None) => AcquireError::Timeout,
            });
        }
        // A batch that takes long while a source stands idle is asked of that one too.
        let hedge_after = usual.map_or(HEDGE_FIRST, |u| {
            (u * HEDGE_FACTOR).clamp(HEDGE_MIN, HEDGE_MAX)
        });
        let idle = (0..sources.len()).find(|&i| alive[i] && out.busy[i] == 0);
        let oldest = out
            .flights
            .iter()
            .filter(|(_, f)| !f.hedged && idle.is_some_and(|i| i != f.source))
            .min_by_key(|(_, f)| f.started)
            .map(|(k, f)| (*k, f.started));
        if let (Some(i), Some((k, started))) = (idle, oldest) {
            if started + hedge_after <= Instant::now() {
                let batch = out
                    .flights
                    .get(&k)
                    .map(|f| f.batch.clone())
                    .unwrap_or_default();
                if let Some(f) = out.flights.get_mut(&k) {
                    f.hedged = true;
                }
                out.start(&mut a, i, &sources[i], batch, deadline, true);
                continue;
            }
        }
        let wake = match (idle, oldest) {
            (Some(_), Some((_, started))) => (started + hedge_after).min(deadline),
            _ => deadline,
        };
        let joined = match tokio::time::timeout_at(wake, out.tasks.join_next()).await {
            Ok(Some(Ok(answer))) => answer,
            Ok(Some(Err(e))) => return Err(AcquireError::Store(e.to_string())),
            Ok(None) => continue,
            Err(_) if Instant::now() >= deadline => return Err(AcquireError::Timeout),
            Err(_) => continue,
        };
        let (key, i, result) = joined;
        out.busy[i] = out.busy[i].saturating_sub(1);
        let Some(flight) = out.flights.remove(&key) else {
            continue;
        };
        for id in &flight.batch {
            if let Some(n) = a.in_flight.get_mut(id) {
                *n = n.saturating_sub(1);
            }
        }
        match result {
            Ok(cells) => {
                let took = flight.started.elapsed();
                usual = Some(usual.map_or(took, |u| (u * 4 + took) / 5));
                a.answered(i, &flight.batch, cells, &limits)?
            }
            Err(e) => {
                tracing::debug!(source = %sources[i].conn.addr(), error = %e, "source dropped from an acquisition");
                alive[i] = false;
                last_error = Some(e);
                for id in flight.batch {
                    a.requeue(id);
                }
            }
        }
    }
}

/// The requests of an acquisition in flight: one task each, what each asked, how many each
/// source has.
struct Requests {
    tasks: JoinSet<Answer>,
    flights: HashMap<u64, Flight>,
    busy: Vec<usize>,
    next_key: u64,
}

impl Requests {
    /// Starts one DATA_REQUEST for `batch` to source `i`.
    fn start(
        &mut self,
        a: &mut Acquisition<'_>,
        i: usize,
        source: &Source,
        batch: Vec<ValueId>,
        deadline: Instant,
        hedged: bool,
    ) {
        let key = self.next_key;
        self.next_key += 1;
        let wait = source
            .request_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        for id in &batch {
            *a.in_flight.entry(*id).or_default() += 1;
        }
        let (conn, asked) = (source.conn.clone(), batch.clone());
        self.tasks
            .spawn(async move { (key, i, data_request(&conn, &asked, wait).await) });
        self.busy[i] += 1;
        let started = Instant::now();
        self.flights.insert(
            key,
            Flight {
                source: i,
                batch,
                started,
                hedged,
            },
        );
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
