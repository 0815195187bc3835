//! What both front doors of a node stand on: its configuration and limits, and the state every
//! task shares (the node, the store, the key, the counters, the node-wide slots). The peer
//! protocol (`conn`, `handler`, `replicate`) and, later, HTTP use this and nothing above it.

use crate::conn::{Conn, ConnParams};
use crate::metrics::Metrics;
use ed25519_dalek::SigningKey;
use etch_engine::node::LocalNode;
use etch_engine::store::hold::HoldStore;
use etch_engine::store::CellStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// Resource limits of a node (protocol.md §2.2, §2.4, §10). Defaults follow the spec.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Concurrent inbound connections; more are closed at once (`MAX_CLIENT_CONNECTIONS`).
    pub max_connections: usize,
    /// Largest frame from a connection that is not a verified peer.
    pub client_frame_bytes: usize,
    /// Largest frame from a verified peer or on our own outbound peer connections.
    pub peer_frame_bytes: usize,
    /// Reply bytes queued for one connection before it stops being read.
    pub queued_bytes: usize,
    /// Requests of one connection being worked on at once; reading pauses beyond.
    pub in_flight: usize,
    /// Requests of all connections being worked on at once (queries, lattice work).
    pub work_slots: usize,
    /// How long a request waits for a work slot before it is refused with `:LOAD`.
    pub load_wait: Duration,
    /// A connection with no complete frame for this long is closed.
    pub idle_timeout: Duration,
    /// A frame that has started must be complete within this time, else the connection
    /// closes (slow senders cannot hold a connection's buffers forever).
    pub frame_timeout: Duration,
    /// Wall-clock limit of one QUERY evaluation, and the wait for a peer's answer.
    pub request_timeout: Duration,
    /// Most hashes per DATA_REQUEST (`MISSING_LIMIT`); more is a `:FORMAT` error.
    pub data_request_hashes: usize,
    /// DATA_REQUESTs of all connections being read from the store at once (each on a blocking
    /// thread); one that waits `load_wait` for its turn is refused with `:LOAD`.
    pub data_read_slots: usize,
    /// Budget of an ordinary response body; branches beyond are left for DATA_REQUEST.
    pub response_bytes: usize,
    /// Most bytes of cells fetched to complete one LATTICE_VALUE or pull.
    pub acquire_bytes: usize,
    /// Time allowed to fetch the missing cells of one LATTICE_VALUE or pull.
    pub acquire_timeout: Duration,
    /// Undecodable messages tolerated on one connection before it is closed.
    pub bad_messages: u32,
    /// The node-wide memory budget in bytes (`crate::budget`): replies queued, large frames
    /// (over 64 KiB) being received, cells acquired for incoming values, encoded answers. A
    /// large frame waits for its share within the frame timeout (else the connection closes),
    /// a request for its answer's share within the load wait (else `:LOAD`).
    pub memory_bytes: usize,
    /// Most bytes per second the node sends on the peer protocol, all connections together
    /// (`crate::rate`); `None`: no cap.
    pub upload_bytes_per_sec: Option<u64>,
    /// HTTP connections open at once; more are closed at once.
    pub http_connections: usize,
    /// An HTTP connection must send its request's first byte, and then its whole header,
    /// within this time each, else it is closed (slow or silent clients hold no slot long).
    pub http_header_timeout: Duration,
    /// A response that cannot hand its next chunk to a client for this long is cut off.
    pub http_stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            client_frame_bytes: etch_formats::message::CLIENT_FRAME_BYTES_MAX,
            peer_frame_bytes: etch_formats::message::FRAME_BYTES_MAX,
            queued_bytes: 16 * 1024 * 1024,
            in_flight: 16,
            work_slots: 64,
            load_wait: Duration::from_secs(8),
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            data_request_hashes: etch_formats::message::DATA_REQUEST_HASHES_MAX,
            data_read_slots: 64,
            response_bytes: etch_formats::message::RESPONSE_BYTES_BUDGET,
            acquire_bytes: 256 * 1024 * 1024,
            acquire_timeout: Duration::from_secs(30),
            bad_messages: 16,
            memory_bytes: MEMORY_BUDGET_BYTES_DEFAULT,
            upload_bytes_per_sec: None,
            http_connections: 256,
            http_header_timeout: Duration::from_secs(10),
            http_stall_timeout: Duration::from_secs(30),
        }
    }
}

/// The default node-wide memory budget (`etch serve --memory-budget`).
pub const MEMORY_BUDGET_BYTES_DEFAULT: usize = 1024 * 1024 * 1024;

/// A configured peer: where to connect, and optionally the key it must prove it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// `host:port`.
    pub address: String,
    /// The expected Ed25519 public key; the connection is dropped if the peer proves another.
    pub key: Option<[u8; 32]>,
}

impl PeerSpec {
    /// Parses `host:port` or `host:port@<64 hex digits of the public key>`.
    pub fn parse(text: &str) -> Result<PeerSpec, String> {
        let (address, key) = match text.rsplit_once('@') {
            Some((a, k)) => {
                let bytes = hex::decode(k).map_err(|e| format!("peer key {k:?}: {e}"))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| format!("peer key {k:?}: not 32 bytes"))?;
                (a, Some(key))
            }
            None => (text, None),
        };
        if !address.contains(':') {
            return Err(format!("peer {address:?}: expected host:port"));
        }
        Ok(PeerSpec {
            address: address.to_string(),
            key,
        })
    }
}

/// How a node runs.
#[derive(Clone)]
pub struct Config {
    /// Peers to replicate with.
    pub peers: Vec<PeerSpec>,
    /// Clients may only read: QUERY without `store` and `merge!`, and LATTICE_VALUE only from
    /// verified peers (our connections to configured peers, or inbound connections that proved
    /// a configured peer key).
    pub read_only_clients: bool,
    /// Keys whose holders get admin rights in QUERY once they prove them (CHALLENGE); the
    /// node's own key is always one.
    pub admins: Vec<[u8; 32]>,
    /// How often each peer is pulled (and sent a root sync) besides on connect.
    pub sync_interval: Duration,
    /// Least time between two pushes of the root to a peer (`MIN_BROADCAST_DELAY`).
    pub push_interval: Duration,
    /// Limits.
    pub limits: Limits,
    /// HTTP clients without a token may write the node's own drives (WebDAV PUT, MKCOL,
    /// DELETE, COPY, MOVE). `etch serve` sets it when `--http` binds a loopback address or
    /// with `--anonymous-writes`.
    pub http_anonymous_writes: bool,
    /// A partial replica (`etch serve --hold pinned`): the node's store, which holds the
    /// skeleton and the pins and fetches other cells from the peers (`etch_engine::store::hold`).
    /// `None`: the node holds everything it merges.
    pub hold: Option<Arc<HoldStore>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            peers: Vec::new(),
            read_only_clients: false,
            admins: Vec::new(),
            sync_interval: Duration::from_secs(30),
            push_interval: Duration::from_millis(50),
            limits: Limits::default(),
            http_anonymous_writes: false,
            hold: None,
        }
    }
}

/// What every task of a node shares.
pub(crate) struct Shared {
    pub node: Arc<LocalNode>,
    pub store: Arc<dyn CellStore>,
    /// What this node holds itself: `store` without fetching from peers (the same store unless
    /// the node is a partial replica). Peers are served from this only.
    pub local: Arc<dyn CellStore>,
    pub key: Option<SigningKey>,
    pub config: Config,
    pub metrics: Metrics,
    pub work: Arc<Semaphore>,
    /// Node-wide slots of DATA_REQUEST store reads.
    pub data_reads: Arc<Semaphore>,
    /// Our open connections to configured peers: where missing cells of a value are fetched
    /// when its sender does not answer (a Java node ignores requests on the connection it
    /// pushed over, protocol.md §8.4).
    /// Weak: a connection holds the node's shared state, so a strong reference here would be a
    /// cycle that outlives a replication task aborted at shutdown.
    pub peer_conns: std::sync::Mutex<Vec<std::sync::Weak<Conn>>>,
    pub connections: Arc<Semaphore>,
    /// The node-wide memory budget (`crate::budget`).
    pub memory: Arc<crate::budget::MemoryBudget>,
    /// The upload cap (`Limits::upload_bytes_per_sec`).
    pub upload: Option<Arc<crate::rate::UploadRate>>,
    /// Held by the acquisition that writes to the store as it goes (one at a time).
    pub acquiring: tokio::sync::Mutex<()>,
    pub shutdown: watch::Receiver<bool>,
    /// Set at shutdown: running queries stop with `:CANCELLED`.
    pub cancel: std::sync::atomic::AtomicBool,
    /// The committed root, for async code: reading `LocalNode::root_value` takes the commit
    /// lock, which a commit holds across its fsync, and must not stall a runtime thread.
    pub root: watch::Sender<etch_formats::Cell>,
    /// Time from an HTTP request to its answer's headers.
    pub http_latency: crate::metrics::Histogram,
    /// When each configured peer (by address) last completed a pull: ms since the epoch.
    pub peer_synced: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// The configured peers (by address) this node has a session with now.
    pub peer_connected: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Shared {
    /// The committed root as last seen (never blocks).
    pub fn committed_root(&self) -> etch_formats::Cell {
        self.root.borrow().clone()
    }

    /// Records a newer committed root (after a merge this node made).
    pub fn note_root(&self, root: &etch_formats::Cell) {
        self.root.send_if_modified(|r| {
            if r.id() == root.id() {
                false
            } else {
                *r = root.clone();
                true
            }
        });
    }
}

/// How often the root watcher looks at the node's committed root (writes made through QUERY
/// or directly on the node are seen within this time).
const ROOT_POLL: Duration = Duration::from_millis(10);

/// Keeps `Shared::root` current, on a blocking thread, until shutdown.
pub(crate) fn watch_root(shared: Arc<Shared>) {
    while !shared.cancel.load(std::sync::atomic::Ordering::SeqCst) {
        let root = shared.node.root_value();
        shared.note_root(&root);
        std::thread::sleep(ROOT_POLL);
    }
}

impl Shared {
    /// The node's public key.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.key.as_ref().map(|k| k.verifying_key().to_bytes())
    }
}

impl Shared {
    /// Connection settings for a connection this node accepted (`peer`: one to a configured
    /// peer, which may send larger frames).
    pub fn conn_params(&self, peer: bool) -> ConnParams {
        let l = &self.config.limits;
        ConnParams {
            frame_bytes: if peer {
                l.peer_frame_bytes
            } else {
                l.client_frame_bytes
            },
            idle_timeout: l.idle_timeout,
            frame_timeout: l.frame_timeout,
            queued_bytes: l.queued_bytes,
            in_flight: l.in_flight,
            bad_messages: l.bad_messages,
            key: self.key.clone(),
        }
    }
}
