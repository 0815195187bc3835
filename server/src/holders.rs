//! Fetching the cells a partial replica does not hold (issue 15; docs/PROVIDER.md, "Partial
//! replicas"): the [`CellSource`] of the node's `HoldStore`.
//!
//! Ask-and-see: a cell is asked of each connected configured peer in turn by DATA_REQUEST
//! (protocol.md §7.5), each given [`PEER_ANSWER_WAIT`]; the first that holds it answers. With
//! the cell come its children, asked of the same peer in one more request (a value's tree is
//! usually held whole by one node), so reading a 100 KB blob takes two round trips, not 27.
//! Peers answer DATA_REQUEST from what they hold themselves (never by asking further), so two
//! partial replicas can never wait on each other in a circle, and a dead peer costs at most
//! one wait.

use crate::acquire::data_request;
use crate::conn::Conn;
use crate::shared::Shared;
use etch_engine::store::hold::CellSource;
use etch_formats::{Cell, Ref, ValueId};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long one peer gets to answer before the next is asked.
pub(crate) const PEER_ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Children fetched ahead with a cell, at most (one DATA_REQUEST's worth).
const PREFETCH_MAX: usize = 254;

/// The node's peers as a source of cells.
pub(crate) struct PeerSource {
    runtime: tokio::runtime::Handle,
    /// Weak: the shared state holds the store that holds this source.
    shared: Weak<Shared>,
}

impl PeerSource {
    /// A source asking the peers of `shared`; must be made inside the node's runtime.
    pub(crate) fn new(shared: &Arc<Shared>) -> PeerSource {
        PeerSource {
            runtime: tokio::runtime::Handle::current(),
            shared: Arc::downgrade(shared),
        }
    }
}

impl CellSource for PeerSource {
    /// Blocks the calling thread (a store read runs on a blocking thread) while a task on the
    /// node's runtime asks the peers.
    fn fetch(&self, ids: &[ValueId]) -> Result<Vec<Cell>, String> {
        let shared = self.shared.upgrade().ok_or("the node is stopping")?;
        let peers = live_peers(&shared);
        if peers.is_empty() {
            return Err("no peer is connected to fetch it from".into());
        }
        let wait = PEER_ANSWER_WAIT * (2 * peers.len() as u32 + 1);
        let (tx, rx) = std::sync::mpsc::channel();
        let ids = ids.to_vec();
        self.runtime.spawn(async move {
            let _ = tx.send(ask(&shared, &peers, &ids).await);
        });
        rx.recv_timeout(wait)
            .map_err(|_| "the peers did not answer in time".to_string())
    }
}

/// Our open connections to configured peers.
fn live_peers(shared: &Shared) -> Vec<Arc<Conn>> {
    shared
        .peer_conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|c| !c.is_closed())
        .collect()
}

/// Asks each peer in turn; the first that holds any of `ids` also sends their children.
async fn ask(shared: &Shared, peers: &[Arc<Conn>], ids: &[ValueId]) -> Vec<Cell> {
    for conn in peers {
        let found: Vec<Cell> = match data_request(conn, ids, PEER_ANSWER_WAIT).await {
            Ok(cells) => cells.into_iter().flatten().collect(),
            Err(e) => {
                tracing::debug!(peer = %conn.addr(), error = %e, "fetch from peer failed");
                continue;
            }
        };
        if found.is_empty() {
            continue;
        }
        let children: Vec<ValueId> = found
            .iter()
            .flat_map(|c| c.refs().iter())
            .filter_map(|r| match r {
                Ref::Branch(b) => Some(*b.id()),
                Ref::Embedded(_) => None,
            })
            .filter(|id| !shared.local.contains(id).unwrap_or(false))
            .take(PREFETCH_MAX)
            .collect();
        let mut out = found;
        if !children.is_empty() {
            if let Ok(cells) = data_request(conn, &children, PEER_ANSWER_WAIT).await {
                out.extend(cells.into_iter().flatten());
            }
        }
        return out;
    }
    Vec::new()
}
