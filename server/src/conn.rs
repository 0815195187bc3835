//! One connection, either direction (protocol.md §2): a reader task that splits frames,
//! decodes messages in arrival order and dispatches them, and a writer task that sends queued
//! frames. Both ends may send requests; RESULTs are matched to pending requests by ID.
//!
//! Bounds: the frame limit (checked while the length prefix arrives), the idle timeout
//! (no frame started), the frame timeout (a started frame must complete), the queued reply
//! bytes (reading pauses while the writer is behind), and the requests in flight (reading
//! pauses while they are all taken).

use crate::budget::{Held, MemoryBudget};
use crate::challenge;
use crate::metrics::Metrics;
use crate::rate::{UploadRate, PACE_SLICE_BYTES};
use bytes::BytesMut;
use ed25519_dalek::SigningKey;
use etch_formats::message::{encode_complete, frame, next_frame};
use etch_formats::{Cell, Message, MessageType, NoResolver, ResultRecord};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No RESULT within the time allowed (`:TIMEOUT`).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection is closed (`:CONNECT` "Connection Closed").
    #[error("Connection Closed")]
    Closed,
}

/// Per-connection settings.
#[derive(Clone)]
pub struct ConnParams {
    /// Largest frame accepted from the other end.
    pub frame_bytes: usize,
    /// Close when no frame starts for this long.
    pub idle_timeout: Duration,
    /// Close when a started frame is not complete within this time.
    pub frame_timeout: Duration,
    /// Queued outgoing bytes beyond which reading pauses.
    pub queued_bytes: usize,
    /// Requests worked on at once for this connection.
    pub in_flight: usize,
    /// Undecodable messages tolerated before closing.
    pub bad_messages: u32,
    /// The key that answers CHALLENGE on this connection.
    pub key: Option<SigningKey>,
}

impl ConnParams {
    /// Settings for a client connection to a server we chose (its answers may be large).
    pub fn client(key: Option<SigningKey>) -> ConnParams {
        ConnParams {
            frame_bytes: etch_formats::message::FRAME_BYTES_MAX,
            idle_timeout: Duration::from_secs(365 * 24 * 3600),
            frame_timeout: Duration::from_secs(120),
            queued_bytes: 64 * 1024 * 1024,
            in_flight: 16,
            bad_messages: 16,
            key,
        }
    }
}

/// Frames larger than this take their size from the node-wide buffer budget while they arrive.
const LARGE_FRAME_BYTES: usize = 64 * 1024;

/// The node a connection serves: what the connection reads of it (metrics, shutdown, the
/// buffer budget) and where it hands the requests it does not answer itself. Implemented by the
/// node's shared state; a client connection has none.
pub(crate) trait Host: Send + Sync {
    /// The node's counters.
    fn metrics(&self) -> &Metrics;
    /// Turns true at shutdown.
    fn shutdown(&self) -> watch::Receiver<bool>;
    /// The node-wide memory budget (queued replies, large frames being received).
    fn memory(&self) -> Arc<MemoryBudget>;
    /// The node's upload cap, if it has one.
    fn upload(&self) -> Option<Arc<UploadRate>>;
    /// Serves a request message (STATUS, QUERY, DATA_REQUEST, LATTICE_QUERY, LATTICE_VALUE).
    fn dispatch(
        self: Arc<Self>,
        conn: Arc<Conn>,
        msg: Message,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

enum Outgoing {
    /// A frame and the memory budget it holds until written.
    Frame(Vec<u8>, Held),
    Close,
}

/// The shared handle of a connection: send frames, make requests, close.
pub struct Conn {
    addr: SocketAddr,
    params: ConnParams,
    out: mpsc::UnboundedSender<Outgoing>,
    queued: AtomicUsize,
    drained: Notify,
    pending: Mutex<HashMap<i64, oneshot::Sender<Message>>>,
    next_id: AtomicI64,
    closed: AtomicBool,
    closed_notify: Notify,
    /// The key the other end proved it holds (CHALLENGE), if any.
    verified_key: Mutex<Option<[u8; 32]>>,
    frame_bytes: AtomicUsize,
    pub(crate) in_flight: Arc<Semaphore>,
    /// Slots of LATTICE_VALUEs being merged, apart from `in_flight`: a merge may wait for
    /// DATA_REQUEST answers that only this connection's reader reads, so the reader must never
    /// wait for a slot a merge holds (it would stall both until the request timeout).
    pub(crate) lattice_values: Arc<Semaphore>,
    host: Option<Arc<dyn Host>>,
    /// The node's memory budget (none on a client's connection).
    memory: Option<Arc<MemoryBudget>>,
    bad: AtomicU32,
    /// Set once this end has challenged the other (at most one challenge per connection).
    pub(crate) challenged: AtomicBool,
    role: Role,
}

impl Conn {
    /// The other end's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which end of the connection we are.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Waits until the connection is closed.
    pub async fn closed(&self) {
        loop {
            let n = self.closed_notify.notified();
            if self.is_closed() {
                return;
            }
            n.await;
        }
    }

    /// Reply bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// The key the other end proved it holds.
    pub fn verified_key(&self) -> Option<[u8; 32]> {
        *self.verified_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the proven key; a verified peer may send frames up to `frame_bytes`.
    pub fn set_verified(&self, key: [u8; 32], frame_bytes: usize) {
        *self.verified_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
        self.frame_bytes.fetch_max(frame_bytes, Ordering::SeqCst);
    }

    fn metrics(&self) -> Option<&Metrics> {
        self.host.as_deref().map(|h| h.metrics())
    }

    /// Queues a frame holding `body`, counted in the node's memory budget at once (however full
    /// it is: for answers that are small or already in memory); `false` when the connection is
    /// closed.
    pub fn send_body(&self, body: &[u8]) -> bool {
        let held = match &self.memory {
            Some(m) => m.force(body.len()),
            None => Held::none(),
        };
        self.send_held(body, held)
    }

    /// The node's memory budget, if this connection belongs to a node.
    pub(crate) fn memory(&self) -> Option<&Arc<MemoryBudget>> {
        self.memory.as_ref()
    }

    /// Queues a frame holding `body`, which `held` already counts in the memory budget.
    pub(crate) fn send_held(&self, body: &[u8], held: Held) -> bool {
        if self.is_closed() {
            return false;
        }
        let f = frame(body);
        self.queued.fetch_add(f.len(), Ordering::SeqCst);
        if let Some(m) = self.metrics() {
            Metrics::inc(&m.frames_out);
            Metrics::add(&m.bytes_out, f.len() as u64);
        }
        self.out.send(Outgoing::Frame(f, held)).is_ok()
    }

    /// Sends a Result record with all its branches (up to the frame limit of the protocol).
    pub fn send_result(&self, r: &ResultRecord) -> bool {
        let (body, _) = encode_complete(
            &r.to_cell(),
            &NoResolver,
            etch_formats::message::FRAME_BYTES_MAX,
        );
        self.send_body(&body)
    }

    /// Sends a payload with every branch held in memory.
    pub fn send_payload(&self, payload: &Cell) -> bool {
        let (body, _) = encode_complete(payload, &NoResolver, self.params.frame_bytes);
        self.send_body(&body)
    }

    /// Closes the connection: the writer flushes what is queued and shuts the socket; every
    /// pending request fails at once with [`RequestError::Closed`].
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.out.send(Outgoing::Close);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.closed_notify.notify_waiters();
        self.drained.notify_waiters();
    }

    /// Sends the request `build(id)` (a fresh per-connection ID) and waits up to `timeout`
    /// for its RESULT. The ID is registered before sending (the answer may come first).
    pub async fn request(
        &self,
        build: impl FnOnce(i64) -> Vec<u8>,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        if self.is_closed() || !self.send_body(&build(id)) {
            self.forget(id);
            return Err(RequestError::Closed);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err(RequestError::Closed),
            Err(_) => {
                self.forget(id);
                Err(RequestError::Timeout(timeout))
            }
        }
    }

    fn forget(&self, id: i64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Hands a RESULT to the request waiting for its ID; unmatched results are ignored
    /// (protocol.md §7.10).
    fn deliver(&self, m: Message) {
        let Some(id) = m.id() else {
            tracing::debug!(addr = %self.addr, "RESULT without an id ignored");
            return;
        };
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(m);
            }
            None => tracing::debug!(addr = %self.addr, id, "unexpected RESULT ignored"),
        }
    }

    /// Waits until the queued reply bytes are under the limit, and, while the node is over its
    /// memory budget, until none are queued (the pause-reading rule: a client that does not read
    /// its answers is not read either); `false` when the connection closed or the writer made
    /// no progress within `stall`.
    async fn wait_writable(&self, stall: Duration) -> bool {
        let deadline = Instant::now() + stall;
        loop {
            let n = self.drained.notified();
            if self.is_closed() {
                return false;
            }
            let queued = self.queued_bytes();
            let over = self.memory.as_ref().is_some_and(|m| m.over());
            if queued <= self.params.queued_bytes && (queued == 0 || !over) {
                return true;
            }
            let freed = async {
                match &self.memory {
                    Some(m) => m.released().await,
                    None => std::future::pending().await,
                }
            };
            let woke = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    _ = n => {}
                    _ = freed => {}
                }
            });
            if woke.await.is_err() {
                return false;
            }
        }
    }
}

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A connection a node accepted.
    Inbound,
    /// A node's connection to a configured peer (requests are served on it too).
    Peer,
    /// A client's connection (answers only CHALLENGE and PING).
    Client,
}

/// Starts the reader and writer tasks of `stream`; returns the handle and the reader task,
/// which ends when the connection closes.
pub(crate) fn start(
    stream: TcpStream,
    params: ConnParams,
    role: Role,
    host: Option<Arc<dyn Host>>,
    permit: Option<OwnedSemaphorePermit>,
) -> (Arc<Conn>, tokio::task::JoinHandle<()>) {
    let addr = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_nodelay(true);
    let _ = socket_keepalive(&stream);
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let memory = host.as_ref().map(|h| h.memory());
    let conn = Arc::new(Conn {
        addr,
        frame_bytes: AtomicUsize::new(params.frame_bytes),
        in_flight: Arc::new(Semaphore::new(params.in_flight)),
        lattice_values: Arc::new(Semaphore::new(params.in_flight)),
        params,
        out: tx,
        queued: AtomicUsize::new(0),
        drained: Notify::new(),
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicI64::new(1),
        closed: AtomicBool::new(false),
        closed_notify: Notify::new(),
        verified_key: Mutex::new(None),
        host,
        memory,
        bad: AtomicU32::new(0),
        challenged: AtomicBool::new(false),
        role,
    });
    if let Some(m) = conn.metrics() {
        Metrics::inc(&m.connections_open);
    }
    let upload = conn.host.as_ref().and_then(|h| h.upload());
    tokio::spawn(writer(w, rx, conn.clone(), upload));
    let c = conn.clone();
    let reader = tokio::spawn(async move {
        let _permit = permit;
        reader(r, c.clone(), role).await;
        c.close();
        if let Some(m) = c.metrics() {
            Metrics::dec(&m.connections_open);
        }
    });
    (conn, reader)
}

/// Opens a connection to `address` (8 s connect timeout, protocol.md §2.1).
pub async fn connect(
    address: &str,
    params: ConnParams,
) -> std::io::Result<(Arc<Conn>, tokio::task::JoinHandle<()>)> {
    connect_as(address, params, Role::Client, None).await
}

pub(crate) async fn connect_as(
    address: &str,
    params: ConnParams,
    role: Role,
    host: Option<Arc<dyn Host>>,
) -> std::io::Result<(Arc<Conn>, tokio::task::JoinHandle<()>)> {
    let stream = tokio::time::timeout(Duration::from_secs(8), TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    Ok(start(stream, params, role, host, None))
}

/// Turns TCP keepalive on (protocol.md §2.1: the Java peer does on both sides), so a peer
/// that vanished without a FIN is eventually noticed even on a connection kept open.
fn socket_keepalive(stream: &TcpStream) -> std::io::Result<()> {
    socket2::SockRef::from(stream).set_keepalive(true)
}

async fn writer(
    w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    conn: Arc<Conn>,
    upload: Option<Arc<UploadRate>>,
) {
    let mut w = tokio::io::BufWriter::with_capacity(64 * 1024, w);
    // A peer that stops reading cannot hold the writer forever.
    let stall = conn.params.idle_timeout.min(Duration::from_secs(60));
    'outer: while let Some(item) = rx.recv().await {
        let mut next = Some(item);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(f, held) => {
                    let n = f.len();
                    let wrote = match &upload {
                        None => tokio::time::timeout(stall, w.write_all(&f)).await,
                        Some(rate) => paced_write(&mut w, &f, rate, stall).await,
                    };
                    drop((f, held));
                    conn.queued.fetch_sub(n, Ordering::SeqCst);
                    conn.drained.notify_waiters();
                    if !matches!(wrote, Ok(Ok(()))) {
                        conn.close();
                        break 'outer;
                    }
                }
                Outgoing::Close => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), w.flush()).await;
                    break 'outer;
                }
            }
            next = rx.try_recv().ok();
        }
        if !matches!(tokio::time::timeout(stall, w.flush()).await, Ok(Ok(()))) {
            conn.close();
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), w.shutdown()).await;
    // Frames left in the queue are dropped with the connection.
    conn.queued.store(0, Ordering::SeqCst);
    conn.drained.notify_waiters();
}

/// Writes `f` in slices, each when the node's upload cap allows; the stall limit applies to
/// each slice's write, not to the waits for the cap.
async fn paced_write(
    w: &mut tokio::io::BufWriter<OwnedWriteHalf>,
    f: &[u8],
    rate: &UploadRate,
    stall: Duration,
) -> Result<std::io::Result<()>, tokio::time::error::Elapsed> {
    for slice in f.chunks(PACE_SLICE_BYTES) {
        rate.pace(slice.len()).await;
        let sent = async {
            w.write_all(slice).await?;
            // A slice let through is sent now, not when the buffer next fills.
            w.flush().await
        };
        if let Err(e) = tokio::time::timeout(stall, sent).await? {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// What the reader does after a message.
enum Flow {
    Continue,
    Close,
}

async fn reader(mut r: OwnedReadHalf, conn: Arc<Conn>, role: Role) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut shutdown = conn.host.as_ref().map(|h| h.shutdown());
    let mut frame_started = Instant::now();
    // Memory budget held for the large frame being received (released once it is handled).
    let mut frame_budget: Option<Held> = None;
    loop {
        // Every complete frame already buffered is handled before reading more (§10).
        loop {
            let limit = conn.frame_bytes.load(Ordering::SeqCst);
            match next_frame(&buf, limit) {
                Err(e) => {
                    tracing::info!(addr = %conn.addr, error = %e, "bad frame: closing");
                    if let Some(m) = conn.metrics() {
                        Metrics::inc(&m.bad_frames);
                    }
                    return;
                }
                Ok(Some(range)) => {
                    let whole = buf.split_to(range.end).freeze();
                    let held = frame_budget.take();
                    let body = whole.slice(range.start..);
                    if let Some(m) = conn.metrics() {
                        Metrics::inc(&m.frames_in);
                        Metrics::add(&m.bytes_in, whole.len() as u64);
                    }
                    // Pause before each buffered request, not only before the next read: a
                    // single read may hold thousands of small requests with large replies.
                    if !conn.wait_writable(conn.params.idle_timeout).await {
                        return;
                    }
                    let flow = handle(&conn, role, body).await;
                    drop(held);
                    if let Flow::Close = flow {
                        return;
                    }
                    // A frame already partly buffered gets its full time from here (handling
                    // may have waited for an in-flight slot).
                    frame_started = Instant::now();
                }
                Ok(None) => break,
            }
        }
        // A large frame has begun: its bytes count against the node-wide memory budget, so
        // many connections announcing big frames cannot exhaust memory together.
        if frame_budget.is_none() {
            if let (Some(host), Ok(Some((_, n)))) = (
                conn.host.as_ref(),
                etch_formats::message::frame_header(&buf, conn.frame_bytes.load(Ordering::SeqCst)),
            ) {
                if n > LARGE_FRAME_BYTES {
                    let deadline = frame_started + conn.params.frame_timeout;
                    match host.memory().take(n, deadline).await {
                        Some(h) => frame_budget = Some(h),
                        None => {
                            tracing::info!(addr = %conn.addr, bytes = n, "no buffer budget for a large frame: closing");
                            Metrics::inc(&host.metrics().timeouts);
                            return;
                        }
                    }
                    buf.reserve(n.saturating_sub(buf.len()) + 16);
                }
            }
        }
        // Pause reading while the replies of this connection are not being taken.
        if !conn.wait_writable(conn.params.idle_timeout).await {
            return;
        }
        let deadline = if buf.is_empty() {
            Instant::now() + conn.params.idle_timeout
        } else {
            frame_started + conn.params.frame_timeout
        };
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        let was_empty = buf.is_empty();
        let read = async {
            match shutdown.as_mut() {
                Some(s) => {
                    tokio::select! {
                        r = tokio::time::timeout_at(deadline, r.read_buf(&mut buf)) => Some(r),
                        _ = s.changed() => None,
                    }
                }
                None => Some(tokio::time::timeout_at(deadline, r.read_buf(&mut buf)).await),
            }
        };
        match read.await {
            None => {
                // Shutdown: say goodbye politely, then close.
                conn.send_payload(&etch_formats::message::goodbye(None));
                return;
            }
            Some(Err(_)) => {
                tracing::debug!(addr = %conn.addr, partial = !was_empty, "timeout: closing");
                if let Some(m) = conn.metrics() {
                    Metrics::inc(&m.timeouts);
                }
                return;
            }
            Some(Ok(Ok(0))) | Some(Ok(Err(_))) => return,
            Some(Ok(Ok(_))) => {
                if was_empty {
                    frame_started = Instant::now();
                }
            }
        }
    }
}

async fn handle(conn: &Arc<Conn>, role: Role, body: bytes::Bytes) -> Flow {
    // Decoding hashes every cell: a large body is decoded off the runtime threads, so one
    // connection's big frames do not hold up the others' small ones.
    let decoded = if body.len() > LARGE_FRAME_BYTES {
        match tokio::task::spawn_blocking(move || Message::decode(body)).await {
            Ok(d) => d,
            Err(_) => return Flow::Close,
        }
    } else {
        Message::decode(body)
    };
    let msg = match decoded {
        Ok(m) => m,
        Err(e) => {
            if let Some(m) = conn.metrics() {
                Metrics::inc(&m.bad_messages);
            }
            tracing::debug!(addr = %conn.addr, error = %e, "undecodable message");
            // No ID can be read from it; the error still tells the sender what happened.
            conn.send_result(&ResultRecord::error(None, "FORMAT", &e.to_string(), "PEER"));
            let bad = conn.bad.fetch_add(1, Ordering::SeqCst) + 1;
            return if bad > conn.params.bad_messages {
                Flow::Close
            } else {
                Flow::Continue
            };
        }
    };
    match msg.kind {
        MessageType::Result => conn.deliver(msg),
        MessageType::Goodbye => return Flow::Close,
        MessageType::Ping => {
            if let Some(id) = msg.id() {
                if let Some(m) = conn.metrics() {
                    Metrics::inc(&m.pings);
                }
                let now = etch_engine::node::wall_clock_ms();
                conn.send_result(&ResultRecord::ok(id, Cell::long(now)));
            }
        }
        MessageType::Challenge => {
            if let Some(id) = msg.id() {
                if let Some(m) = conn.metrics() {
                    Metrics::inc(&m.challenges);
                }
                conn.send_result(&challenge::answer(conn.params.key.as_ref(), id, &msg));
            }
        }
        MessageType::Transact => {
            if let Some(id) = msg.id() {
                conn.send_result(&ResultRecord::error(
                    Some(id),
                    "FORMAT",
                    "Unrecognised message type",
                    "PEER",
                ));
            }
        }
        MessageType::Belief | MessageType::Unknown => {
            tracing::debug!(addr = %conn.addr, kind = msg.kind.name(), "message ignored");
        }
        MessageType::Status
        | MessageType::Query
        | MessageType::DataRequest
        | MessageType::LatticeQuery
        | MessageType::LatticeValue => match (&conn.host, role) {
            (Some(host), Role::Inbound | Role::Peer) => {
                host.clone().dispatch(conn.clone(), msg).await;
            }
            _ => tracing::debug!(addr = %conn.addr, kind = msg.kind.name(), "not served here"),
        },
    }
    Flow::Continue
}
