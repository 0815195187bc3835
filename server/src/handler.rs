//! The server side of the requests that need the node: STATUS, QUERY, DATA_REQUEST,
//! LATTICE_QUERY and LATTICE_VALUE (protocol.md §7, §10).

use crate::acquire::{complete_tree, detached, AcquireError, AcquireLimits, Keep, Source};
use crate::budget::Held;
use crate::conn::{Conn, Host, Role};
use crate::metrics::Metrics;
use crate::shared::Shared;
use etch_engine::lattice::hold::{zone_at, Zone};
use etch_engine::lattice::incoming::{check_signed, crosses_signature, served_root};
use etch_engine::lattice::{lookup_path, value_at_path, MergeError};
use etch_engine::node::{wall_clock_ms, ClientNode, NodeError};
use etch_engine::query::QueryNode;
use etch_engine::query::{eval_form, Env, EvalContext, EvalError, Rights};
use etch_engine::quota::Charge;
use etch_engine::store::CellStore;
use etch_formats::message::{encode_complete, encode_data_result};
use etch_formats::value::elements;
use etch_formats::{Cell, Kind, Message, MessageType, NoResolver, ResultRecord, ValueId};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// The `:type` of our STATUS answer (protocol.md §7.2).
pub const STATUS_TYPE: &str = "Convex Storage Node";

fn kw(name: &str) -> Cell {
    Cell::keyword(name).unwrap_or_else(|_| Cell::nil())
}

/// The node serves its connections: they read its counters, shutdown signal and buffer budget,
/// and hand it the requests they do not answer themselves.
impl Host for Shared {
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.clone()
    }

    fn memory(&self) -> Arc<crate::budget::MemoryBudget> {
        self.memory.clone()
    }

    fn upload(&self) -> Option<Arc<crate::rate::UploadRate>> {
        self.upload.clone()
    }

    fn dispatch(
        self: Arc<Self>,
        conn: Arc<Conn>,
        msg: Message,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(dispatch(self, conn, msg))
    }
}

/// Handles a request message. STATUS is answered inline; other requests take one of the
/// connection's in-flight slots (waiting for one pauses reading this connection) and run in
/// their own task. A LATTICE_VALUE takes a slot of its own kind and never waits.
pub(crate) async fn dispatch(shared: Arc<Shared>, conn: Arc<Conn>, msg: Message) {
    if msg.kind == MessageType::Status {
        if let Some(id) = msg.id() {
            Metrics::inc(&shared.metrics.statuses);
            conn.send_result(&ResultRecord::ok(id, status(&shared)));
        }
        return;
    }
    if msg.kind != MessageType::LatticeValue && msg.id().is_none() {
        // No ID: no answer can be correlated; drop it (protocol.md §5).
        tracing::debug!(addr = %conn.addr(), kind = msg.kind.name(), "request without an id dropped");
        return;
    }
    let permit = if msg.kind == MessageType::LatticeValue {
        // A LATTICE_VALUE may wait for DATA_REQUEST answers that this very reader must read:
        // it never pauses the reader. With every slot busy it is refused (:LOAD when it asked
        // for an acknowledgement) or dropped; lattice values are monotone, so the sender's
        // next push, root sync or our pull brings the same data.
        match conn.lattice_values.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                Metrics::inc(&shared.metrics.load_refused);
                if let Some(id) = lv_ack_id(&msg) {
                    send_load(&conn, id);
                }
                return;
            }
        }
    } else {
        let Ok(p) = conn.in_flight.clone().acquire_owned().await else {
            return;
        };
        p
    };
    tokio::spawn(async move {
        Metrics::inc(&shared.metrics.in_flight);
        let (kind, id, started) = (msg.kind.name(), msg.id(), std::time::Instant::now());
        work(&shared, &conn, msg, permit).await;
        Metrics::dec(&shared.metrics.in_flight);
        tracing::debug!(
            addr = %conn.addr(),
            kind,
            id,
            micros = started.elapsed().as_micros() as u64,
            "request done"
        );
    });
}

/// The STATUS value (protocol.md §7.2) with our counters under `:metrics`.
fn status(shared: &Shared) -> Cell {
    let root = shared.committed_root();
    Cell::map(vec![
        (kw("type"), Cell::string(STATUS_TYPE)),
        (kw("version"), Cell::string(etch_engine::node::NODE_VERSION)),
        (
            kw("peer"),
            shared
                .public_key()
                .map_or_else(Cell::nil, |k| Cell::blob(&k)),
        ),
        (kw("root"), Cell::blob(root.id().as_bytes())),
        (kw("timestamp"), Cell::long(wall_clock_ms())),
        (
            kw("regions"),
            Cell::vector(vec![kw("data"), kw("fs"), kw("p2p"), kw("local")]),
        ),
        (kw("metrics"), shared.metrics.to_cell()),
        (kw("operator"), operator_view(shared, &root)),
    ])
}

/// Etch's operator figures in STATUS (`etch status`): the store, commits, pins and each
/// configured peer's session (connected, last completed pull).
fn operator_view(shared: &Shared, root: &Cell) -> Cell {
    let long = |n: u64| Cell::long(i64::try_from(n).unwrap_or(i64::MAX));
    let store = match shared.store.stats() {
        Ok(st) => Cell::map(vec![
            (kw("cells"), long(st.cells)),
            (kw("encoding-bytes"), long(st.encoding_bytes)),
            (kw("file-bytes"), long(st.file_len)),
        ]),
        Err(_) => Cell::nil(),
    };
    let pins = value_at_path(
        root,
        &[kw(etch_engine::pins::PINS_KEY)],
        shared.store.as_ref(),
    )
    .map_or(0, |p| if p.is_nil() { 0 } else { p.count() });
    let synced = shared
        .peer_synced
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let connected = shared
        .peer_connected
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let peers = shared
        .config
        .peers
        .iter()
        .map(|p| {
            Cell::map(vec![
                (kw("address"), Cell::string(&p.address)),
                (kw("key"), p.key.map_or_else(Cell::nil, |k| Cell::blob(&k))),
                (kw("connected"), Cell::bool(connected.contains(&p.address))),
                (
                    kw("last-pull"),
                    synced
                        .get(&p.address)
                        .map_or_else(Cell::nil, |t| Cell::long(*t)),
                ),
            ])
        })
        .collect();
    Cell::map(vec![
        (
            kw("did"),
            shared.public_key().map_or_else(Cell::nil, |k| {
                Cell::string(&etch_engine::lattice::did_key(&k))
            }),
        ),
        (kw("store"), store),
        (kw("commits"), long(shared.node.commits())),
        (kw("pins"), long(pins)),
        (kw("peers"), Cell::vector(peers)),
        (kw("hold"), hold_view(shared)),
        (kw("quota"), quota_view(shared, root)),
        (kw("gc"), gc_view(shared)),
        (
            kw("memory"),
            Cell::map(vec![
                (kw("budget"), long(shared.memory.limit() as u64)),
                (kw("used"), long(shared.memory.used() as u64)),
            ]),
        ),
        (
            kw("http-requests"),
            long(shared.metrics.http_requests.load(Ordering::Relaxed)),
        ),
    ])
}

fn long_cell(n: u64) -> Cell {
    Cell::long(i64::try_from(n).unwrap_or(i64::MAX))
}

/// What the node keeps (`--hold`) and, on a partial replica, its read cache.
fn hold_view(shared: &Shared) -> Cell {
    match &shared.config.hold {
        None => Cell::map(vec![(kw("mode"), Cell::string("all"))]),
        Some(h) => {
            let st = h.hold_stats();
            Cell::map(vec![
                (kw("mode"), Cell::string("pinned")),
                (kw("cache-bytes"), long_cell(st.cache_bytes)),
                (kw("cache-budget"), long_cell(st.cache_budget)),
                (kw("fetched-cells"), long_cell(st.fetched_cells)),
                (kw("fetched-bytes"), long_cell(st.fetched_bytes)),
            ])
        }
    }
}

/// The quotas and what client writes used of them (etch_engine::quota).
fn quota_view(shared: &Shared, root: &Cell) -> Cell {
    let q = shared.node.quotas();
    let limit = |b: Option<u64>| b.map_or_else(Cell::nil, long_cell);
    let ledger = etch_engine::quota::ledger(root, shared.store.as_ref()).unwrap_or_default();
    Cell::map(vec![
        (kw("per-key"), limit(q.per_key_bytes)),
        (kw("total"), limit(q.total_bytes)),
        (kw("used"), long_cell(ledger.iter().map(|(_, n)| n).sum())),
        (kw("writers"), long_cell(ledger.len() as u64)),
    ])
}

/// Compaction while serving: available, and the last run.
fn gc_view(shared: &Shared) -> Cell {
    let (available, last) = shared.node.gc_state();
    let last = last.map_or_else(Cell::nil, |(t, r)| {
        Cell::map(vec![
            (kw("time"), Cell::long(t)),
            (kw("bytes-before"), long_cell(r.bytes_before)),
            (kw("bytes-after"), long_cell(r.bytes_after)),
            (kw("seconds"), Cell::double(r.seconds)),
        ])
    });
    Cell::map(vec![
        (kw("available"), Cell::bool(available)),
        (kw("last"), last),
    ])
}

async fn work(shared: &Arc<Shared>, conn: &Arc<Conn>, msg: Message, _permit: OwnedSemaphorePermit) {
    let id = msg.id();
    if msg.kind == MessageType::DataRequest {
        // Store reads on a blocking thread (a read may go to the disk), a bounded number at
        // once for the whole node so that many connections cannot fill the blocking pool.
        if let Some(id) = id {
            let n = msg.arg_count().saturating_sub(2) as usize;
            let reserve = data_answer_bytes(n.min(shared.config.limits.data_request_hashes));
            let Some((slot, held)) = node_slot(shared, &shared.data_reads, reserve).await else {
                send_load(conn, id);
                return;
            };
            let (s, c) = (shared.clone(), conn.clone());
            let body = tokio::task::spawn_blocking(move || serve_data(&s, &c, id, &msg)).await;
            if let Ok(Some(body)) = body {
                answer(conn, &body, held);
            }
            drop(slot);
        }
        return;
    }
    if msg.kind == MessageType::LatticeValue {
        // Takes a node-wide slot only for its merge: waiting for the sender's cells must not
        // hold one (a sender that never answers would starve everyone else).
        lattice_value(shared, conn, msg).await;
        return;
    }
    // Heavier work takes a node-wide slot and its answer's room in the memory budget; none in
    // time → :LOAD (protocol.md §10).
    let reserve = shared.config.limits.response_bytes + ANSWER_TOP_BYTES;
    let Some((_slot, held)) = node_slot(shared, &shared.work, reserve).await else {
        if let Some(id) = id {
            send_load(conn, id);
        }
        return;
    };
    match msg.kind {
        MessageType::Query => {
            if let Some(id) = id {
                query(shared, conn, id, msg, held).await;
            }
        }
        MessageType::LatticeQuery => {
            if let Some(id) = id {
                lattice_query(shared, conn, id, msg, held).await;
            }
        }
        _ => {}
    }
}

fn format_error(shared: &Shared, conn: &Conn, id: i64, code: &str, text: &str) {
    Metrics::inc(&shared.metrics.format_errors);
    conn.send_result(&ResultRecord::error(Some(id), code, text, "PEER"));
}

/// DATA_REQUEST (protocol.md §7.5): the answer holding the cells asked for, nil where not held;
/// `None` when a format error was answered instead.
fn serve_data(shared: &Shared, conn: &Conn, id: i64, msg: &Message) -> Option<Vec<u8>> {
    let n = msg.arg_count().saturating_sub(2);
    let max = shared.config.limits.data_request_hashes;
    if n as usize > max {
        format_error(
            shared,
            conn,
            id,
            "FORMAT",
            &format!("Too many hashes in DATA_REQUEST: {n} (at most {max})"),
        );
        return None;
    }
    let mut cells = Vec::with_capacity(n as usize);
    let mut served = 0u64;
    for i in 0..n {
        let hash = msg
            .arg(i + 2)
            .filter(|h| h.kind() == Kind::Blob && h.count() == 32)
            .and_then(|h| h.flat_bytes().and_then(|b| <[u8; 32]>::try_from(b).ok()));
        let Some(hash) = hash else {
            format_error(
                shared,
                conn,
                id,
                "FORMAT",
                &format!("DATA_REQUEST element {} is not a 32-byte hash", i + 2),
            );
            return None;
        };
        // What this node holds: a partial replica never asks further for a peer.
        match shared.local.get(&ValueId(hash)) {
            Ok(Some(c)) => {
                served += 1;
                cells.push(Some(c));
            }
            Ok(None) => cells.push(None),
            Err(e) => {
                tracing::warn!(error = %e, "store read failed while serving data");
                cells.push(None);
            }
        }
    }
    Metrics::inc(&shared.metrics.data_requests);
    Metrics::add(&shared.metrics.cells_served, served);
    Metrics::add(&shared.metrics.cells_not_found, n - served);
    Some(encode_data_result(id, &cells))
}

/// How long a client may take to answer the challenge for admin rights (the Java liveness
/// probe allows 2 s).
const CLIENT_CHALLENGE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The message of the rights check that a verified admin key would pass (query.md §6.5).
const ADMIN_REQUIRED: &str = "Operation requires admin rights";

/// Whether the other end proved an admin key: one given with `--admin`, or the node's own.
fn is_admin(shared: &Shared, conn: &Conn) -> bool {
    conn.verified_key()
        .is_some_and(|k| Some(k) == shared.public_key() || shared.config.admins.contains(&k))
}

/// Evaluates a QUERY form with `rights` in a fresh environment (a `def` affects only its own
/// QUERY, query.md §6.5), on a blocking thread; returns the record and its encoded body.
async fn evaluate(
    shared: &Arc<Shared>,
    id: i64,
    form: Cell,
    rights: Rights,
    charge: Option<Charge>,
) -> Option<(ResultRecord, Vec<u8>)> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || {
        let mut env = Env::new();
        // A client's writes are pinned for it and charged to it (etch_engine::quota).
        let client = charge.map(|charge| ClientNode {
            node: s.node.as_ref(),
            charge,
        });
        let node: &dyn QueryNode = match &client {
            Some(c) => c,
            None => s.node.as_ref(),
        };
        let ctx = EvalContext {
            resolver: s.store.as_ref(),
            node: Some(node),
            rights,
            cancel: Some(&s.cancel),
            deadline: Some(std::time::Instant::now() + s.config.limits.request_timeout),
            steps_max: etch_engine::query::EVAL_STEPS_MAX,
        };
        Metrics::inc(&s.metrics.queries);
        // A partial replica answers :MISSING for a value it cannot get whole, rather than a
        // top cell whose branches nobody can then supply.
        let result = eval_form(&form, &mut env, &ctx).and_then(|v| {
            if s.config.hold.is_some() {
                readable(&v, s.store.as_ref(), s.config.limits.response_bytes)?;
            }
            Ok(v)
        });
        let record = match result {
            Ok(v) => ResultRecord::ok(id, v),
            Err(e) => {
                Metrics::inc(&s.metrics.query_errors);
                ResultRecord::error(Some(id), e.code, &e.message, "CODE")
            }
        };
        let (body, _) = encode_complete(
            &record.to_cell(),
            s.store.as_ref(),
            s.config.limits.response_bytes,
        );
        (record, body)
    })
    .await
    .map_err(|e| tracing::error!(error = %e, "query task failed"))
    .ok()
}

/// Checks that the branches of `value` an answer would carry (up to `budget` bytes) can be
/// read: fetched from the peers where this node does not hold them.
fn readable(value: &Cell, store: &dyn CellStore, budget: usize) -> Result<(), EvalError> {
    let mut stack = vec![value.clone()];
    let mut bytes = 0usize;
    while let Some(cell) = stack.pop() {
        for r in cell.refs() {
            if bytes > budget {
                return Ok(());
            }
            let c = r.fetch(store).map_err(|e| match e {
                etch_formats::ResolveError::Missing(id) => EvalError::new(
                    "MISSING",
                    format!(
                        "Missing data: 0x{} (this node does not hold it and no connected peer does)",
                        id.to_hex()
                    ),
                ),
                other => EvalError::new("IO", other.to_string()),
            })?;
            if r.is_branch() {
                bytes += c.len();
            }
            if !c.refs().is_empty() {
                stack.push(c);
            }
        }
    }
    Ok(())
}

/// QUERY (protocol.md §7.3): evaluate the form with the request deadline and the sender's
/// rights. A connection that has not proved a key gets client rights; when its query needs
/// admin rights and the node has a key, the node challenges it once (protocol.md §9, query.md
/// §6.5) and, if it proves an admin key, runs the query again with admin rights. (What the
/// first run did before the rights check were lattice merges, which repeat harmlessly.)
async fn query(shared: &Arc<Shared>, conn: &Arc<Conn>, id: i64, msg: Message, held: Held) {
    if msg.arg_count() < 3 {
        return format_error(shared, conn, id, "FORMAT", "Wrong element count");
    }
    let Some(form) = msg.arg(2) else {
        return format_error(shared, conn, id, "FORMAT", "Query form not in the message");
    };
    let client = Rights::Client {
        may_write_data: !shared.config.read_only_clients,
    };
    let rights = if is_admin(shared, conn) {
        Rights::Admin
    } else {
        client
    };
    let charge = (rights == client).then(|| writer(conn));
    let Some(mut evaluated) = evaluate(shared, id, form.clone(), rights, charge).await else {
        conn.send_result(&ResultRecord::error(
            Some(id),
            "EXCEPTION",
            "Query failed",
            "PEER",
        ));
        return;
    };
    let needs_admin = evaluated.0.error_code().as_deref() == Some("TRUST")
        && evaluated.0.value.flat_bytes() == Some(ADMIN_REQUIRED.as_bytes());
    if needs_admin && rights == client {
        if let Some(key) = shared.key.clone() {
            if conn.verified_key().is_none() && !conn.challenged.swap(true, Ordering::SeqCst) {
                // Clients answer challenges at once; one that does not keeps client rights.
                let t = shared
                    .config
                    .limits
                    .request_timeout
                    .min(CLIENT_CHALLENGE_WAIT);
                match crate::prove::challenge(conn, &key, None, t).await {
                    Ok(pk) => conn.set_verified(pk, 0),
                    Err(e) => {
                        tracing::debug!(addr = %conn.addr(), error = %e, "client key unproven")
                    }
                }
            }
            if is_admin(shared, conn) {
                tracing::info!(addr = %conn.addr(), "admin key verified");
                if let Some(again) = evaluate(shared, id, form, Rights::Admin, None).await {
                    evaluated = again;
                }
            }
        }
    }
    let (record, body) = evaluated;
    drop(record);
    answer(conn, &body, held);
}

/// Who a client's writes on `conn` are charged to: the key it proved, else anonymous.
fn writer(conn: &Conn) -> Charge {
    conn.verified_key()
        .map_or_else(Charge::anonymous, |k| Charge::key(&k))
}

/// The path of a LATTICE_QUERY or LATTICE_VALUE: nil → root, a vector → its elements,
/// (for LATTICE_VALUE) a single key → `[key]`.
fn path_of(v: Option<Cell>, single_key_ok: bool) -> Option<Vec<Cell>> {
    match v {
        None => Some(Vec::new()),
        Some(p) if p.is_nil() => Some(Vec::new()),
        Some(p) if p.kind() == Kind::Vector => elements(&p, &NoResolver).ok(),
        Some(p) if single_key_ok => Some(vec![p]),
        Some(_) => None,
    }
}

/// Branch bytes a LATTICE_QUERY answer carries at most. A puller completes the rest by
/// DATA_REQUEST, which it spreads over all its peers (`acquire::complete_tree`); a larger
/// answer would come from this one node only, and each of a node's peers pulled at once would
/// send the same bytes (measured: 8 MiB answers made a 3-peer fetch of 64 MiB send 27 % twice).
const LATTICE_ANSWER_BYTES: usize = 1024 * 1024;

/// LATTICE_QUERY (protocol.md §7.6): the committed value at the path, complete up to
/// `LATTICE_ANSWER_BYTES` of branches; nil where the path leads nowhere. `:local` is not served.
async fn lattice_query(shared: &Arc<Shared>, conn: &Arc<Conn>, id: i64, msg: Message, held: Held) {
    let Some(path) = path_of(msg.arg(2), false) else {
        return format_error(shared, conn, id, "ARGUMENT", "Invalid LATTICE_QUERY format");
    };
    let s = shared.clone();
    let body = tokio::task::spawn_blocking(move || {
        // What this node holds (a partial replica answers with its skeleton).
        let r = s.local.as_ref();
        let root = served_root(&s.node.root_value(), r);
        let record = match lookup_path(&root, &path, r) {
            Ok(v) => ResultRecord::ok(id, v),
            Err(e) => ResultRecord::error(Some(id), "MISSING", &e.to_string(), "PEER"),
        };
        let budget = s.config.limits.response_bytes.min(LATTICE_ANSWER_BYTES);
        encode_complete(&record.to_cell(), r, budget).0
    })
    .await;
    Metrics::inc(&shared.metrics.lattice_queries);
    if let Ok(b) = body {
        answer(conn, &b, held);
    }
}

/// The acknowledgement ID of a LATTICE_VALUE (our extension: element 3, a Long).
fn lv_ack_id(msg: &Message) -> Option<i64> {
    msg.arg(3)
        .filter(|c| c.kind() == Kind::Long)
        .and_then(|c| c.as_long())
}

/// Why an incoming value was refused: an error code and a message.
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl From<etch_engine::lattice::incoming::Refused> for Refusal {
    fn from(r: etch_engine::lattice::incoming::Refused) -> Refusal {
        Refusal {
            code: r.code,
            message: r.message,
        }
    }
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<NodeError> for Refusal {
    fn from(e: NodeError) -> Refusal {
        match e {
            NodeError::Merge(MergeError::BelowForeignOwner { .. })
            | NodeError::Merge(MergeError::NoSigningKey) => Refusal::new("TRUST", e.to_string()),
            other => {
                let e = EvalError::from(other);
                Refusal::new(e.code, e.message)
            }
        }
    }
}

/// LATTICE_VALUE (protocol.md §7.7): complete the value from the sender, check it (shape,
/// every signature, and for acknowledged updates staleness), merge at the path, commit, then
/// acknowledge when asked.
async fn lattice_value(shared: &Arc<Shared>, conn: &Arc<Conn>, msg: Message) {
    Metrics::inc(&shared.metrics.lattice_values);
    verify_sender(shared, conn);
    let ack = lv_ack_id(&msg);
    let outcome = if shared.config.read_only_clients && !is_peer(shared, conn) {
        Err(Refusal::new(
            "TRUST",
            "This node takes lattice values only from its verified peers",
        ))
    } else {
        merge_incoming(shared, conn, &msg, ack.is_some()).await
    };
    match (&outcome, ack) {
        (Ok(root), Some(id)) => {
            conn.send_result(&ResultRecord::ok(id, Cell::blob(root.id().as_bytes())));
        }
        (Err(r), Some(id)) => {
            conn.send_result(&ResultRecord::error(Some(id), r.code, &r.message, "PEER"));
        }
        _ => {}
    }
    if let Err(r) = outcome {
        Metrics::inc(&shared.metrics.lattice_rejected);
        tracing::info!(addr = %conn.addr(), code = r.code, reason = %r.message, "LATTICE_VALUE refused");
    }
}

/// Whether the other end is one of our peers: our own connection to a configured peer, or an
/// inbound connection that proved a configured peer key.
fn is_peer(shared: &Shared, conn: &Conn) -> bool {
    conn.role() == crate::conn::Role::Peer
        || conn
            .verified_key()
            .is_some_and(|k| shared.config.peers.iter().any(|p| p.key == Some(k)))
}

/// A connection that pushes lattice values is probably a peer: when the node has a key and
/// peers configured with keys, challenge it once (in the background); if it proves one of
/// those keys it is a verified peer, and may send frames up to the peer limit (§2.2, §9.4).
fn verify_sender(shared: &Arc<Shared>, conn: &Arc<Conn>) {
    let Some(key) = shared.key.clone() else {
        return;
    };
    let trusted: Vec<[u8; 32]> = shared.config.peers.iter().filter_map(|p| p.key).collect();
    if trusted.is_empty()
        || conn.verified_key().is_some()
        || conn.challenged.swap(true, Ordering::SeqCst)
    {
        return;
    }
    let (shared, conn) = (shared.clone(), conn.clone());
    tokio::spawn(async move {
        let limits = &shared.config.limits;
        match crate::prove::challenge(&conn, &key, None, limits.request_timeout).await {
            Ok(pk) if trusted.contains(&pk) => {
                conn.set_verified(pk, limits.peer_frame_bytes);
                Metrics::inc(&shared.metrics.peers_verified);
                tracing::info!(addr = %conn.addr(), key = %hex::encode(pk), "inbound peer verified");
            }
            Ok(pk) => {
                tracing::debug!(addr = %conn.addr(), key = %hex::encode(pk), "sender is not a configured peer")
            }
            Err(e) => tracing::debug!(addr = %conn.addr(), error = %e, "sender not verified"),
        }
    });
}

/// Merges the value of a LATTICE_VALUE message (or of a pull, with `path` empty); returns the
/// new committed root.
pub(crate) async fn merge_incoming(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    msg: &Message,
    refuse_stale: bool,
) -> Result<Cell, Refusal> {
    if msg.arg_count() < 3 {
        return Err(Refusal::new("FORMAT", "Wrong element count"));
    }
    let path = path_of(msg.arg(1), true).ok_or_else(|| Refusal::new("FORMAT", "Bad path"))?;
    if crosses_signature(shared.node.lattice(), &path)
        && !is_peer(shared, conn)
        && !is_admin(shared, conn)
    {
        // Below a signature the node would re-sign with its own key: a write in its name,
        // which only its peers and admins may cause (the engine alone would allow it for
        // any sender, as protocol.md §7.7 permits when the node holds the owner's key).
        return Err(Refusal::new(
            "TRUST",
            "Writing below a signed value needs a verified peer or admin key",
        ));
    }
    let value = msg
        .arg(2)
        .ok_or_else(|| Refusal::new("FORMAT", "Value not in the message"))?;
    // A client's value is charged to it (etch_engine::quota); a peer's or an admin's is not.
    let charge = (!is_peer(shared, conn) && !is_admin(shared, conn)).then(|| writer(conn));
    merge_value(shared, conn, path, value, refuse_stale, charge).await
}

/// How long the sender of a value gets to answer a DATA_REQUEST before its missing cells are
/// asked of our peers instead.
const SENDER_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Completes `value` from the other end of `conn` (else from our peers), checks and merges it
/// at `path`.
pub(crate) async fn merge_value(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    path: Vec<Cell>,
    value: Cell,
    refuse_stale: bool,
    charge: Option<Charge>,
) -> Result<Cell, Refusal> {
    if value.is_nil() {
        return Ok(shared.committed_root());
    }
    // A path with no lattice is refused before anything is fetched for it.
    if shared.node.lattice().at_path(&path).is_none() {
        return Err(Refusal::new("ARGUMENT", "No lattice at this path"));
    }
    let limits = &shared.config.limits;
    let acquire = AcquireLimits {
        bytes: limits.acquire_bytes,
        timeout: limits.acquire_timeout,
        request_timeout: limits.request_timeout,
        batch: limits.data_request_hashes,
    };
    // The sender, and our other peers, which hold what it holds if they are in sync: all are
    // asked at once (acquire::complete_tree), those that connect meanwhile too. With others to
    // ask, a sender that pushed to us is not waited on long: a Java node ignores requests on
    // the connection it pushed over (§8.4).
    let peers = || -> Vec<Source> {
        shared
            .peer_conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .filter(|c| !Arc::ptr_eq(c, conn) && !c.is_closed())
            .map(|conn| Source {
                conn,
                request_timeout: acquire.request_timeout,
            })
            .collect()
    };
    let others = peers();
    let sender_wait = if conn.role() == Role::Inbound && !others.is_empty() {
        acquire.request_timeout.min(SENDER_ANSWER_WAIT)
    } else {
        acquire.request_timeout
    };
    let mut sources = vec![Source {
        conn: conn.clone(),
        request_timeout: sender_wait,
    }];
    sources.extend(others);
    // A partial replica fetches only the skeleton (nothing for a value under a :data key).
    let zone = match &shared.config.hold {
        None => Some(Zone::Full),
        Some(_) => zone_at(&path),
    };
    let Some(zone) = zone else {
        return merge_checked(shared, path, value, refuse_stale, charge).await;
    };
    // A partial replica keeps of what arrived only what the skeleton walk attaches.
    let (value, mut arrived) = match &shared.config.hold {
        Some(_) => detached(&value),
        None => (value, std::collections::HashMap::new()),
    };
    // A charged value is kept in memory until merged, so that the merge measures what it adds;
    // a partial replica's skeleton too. Anything else is written as it completes.
    let keep = if charge.is_none() && shared.config.hold.is_none() {
        Keep::Store
    } else {
        Keep::Memory
    };
    // One acquisition written to the store at a time: pulls from several peers on connect
    // would otherwise fetch the same tree each; the next finds it stored.
    let _turn = match keep {
        Keep::Store => match tokio::time::timeout(acquire.timeout, shared.acquiring.lock()).await {
            Ok(g) => Some(g),
            Err(_) => return Err(Refusal::new("MISSING", AcquireError::Timeout.to_string())),
        },
        Keep::Memory => None,
    };
    // The cells fetched and still in memory are counted in the node's budget until merged.
    let mut held = crate::budget::Held::none();
    let result = complete_tree(
        &sources,
        Some(&peers),
        &value,
        zone,
        &shared.store,
        &mut arrived,
        acquire,
        keep,
        &mut held,
    )
    .await;
    let fetched = result.map_err(|e| Refusal::new("MISSING", e.to_string()))?;
    Metrics::add(&shared.metrics.cells_acquired, fetched as u64);
    let merged = merge_checked(shared, path, value, refuse_stale, charge).await;
    drop(held);
    merged
}

/// Checks a completed incoming value (foreign check, signatures) and merges it at `path`.
async fn merge_checked(
    shared: &Arc<Shared>,
    path: Vec<Cell>,
    value: Cell,
    refuse_stale: bool,
    charge: Option<Charge>,
) -> Result<Cell, Refusal> {
    let Some(_slot) = node_slot(shared, &shared.work, 0).await else {
        return Err(Refusal::new("LOAD", LOAD_MESSAGE));
    };
    let s = shared.clone();
    let merged = tokio::task::spawn_blocking(move || -> Result<(Cell, bool), Refusal> {
        let node = &s.node;
        let r = s.store.as_ref();
        let lattice = node.lattice();
        let Some(sub) = lattice.at_path(&path) else {
            return Err(Refusal::new("ARGUMENT", "No lattice at this path"));
        };
        let io = |e: etch_formats::ResolveError| Refusal::new("MISSING", e.to_string());
        if !sub.check_foreign(&value, r).map_err(io)? {
            return Err(Refusal::new(
                "ARGUMENT",
                "Invalid lattice value for this path",
            ));
        }
        let before = node.root_value();
        let own = value_at_path(&before, &path, r).map_err(io)?;
        // A bad owner slot is left out alone (the merge drops it: lattice.md §6.1); the
        // valid ones merge.
        let refused = check_signed(sub, &value, &own, refuse_stale, r).map_err(Refusal::from)?;
        for (owner, why) in &refused {
            tracing::warn!(owner = %owner, reason = %why, "owner slot refused; the other slots merge");
        }
        Metrics::add(&s.metrics.owner_slots_refused, refused.len() as u64);
        let after = node.merge_charged(&path, &value, charge.as_ref())?;
        Ok((after.clone(), after.id() != before.id()))
    })
    .await
    .map_err(|_| Refusal::new("EXCEPTION", "merge task failed"))??;
    shared.note_root(&merged.0);
    if merged.1 {
        Metrics::inc(&shared.metrics.lattice_merges);
        tracing::debug!(root = %merged.0.id(), "root changed by an incoming value");
    }
    Ok(merged.0)
}

/// Sets the flag every running QUERY checks (shutdown cancels evaluations).
pub(crate) fn cancel_queries(shared: &Shared) {
    shared.cancel.store(true, Ordering::SeqCst);
}

/// The message of a `:LOAD` refusal (Java's text).
const LOAD_MESSAGE: &str = "Trx overload";

/// A node-wide slot of `slots` and `reserve` bytes of the memory budget (the most the work's
/// answer can take), waiting at most the load wait for both (protocol.md §10); `None`, counted
/// as a refusal, when they did not come in time. Reserving before the work starts bounds what
/// the work in the slots can add to the queued answers: when clients do not read theirs, new
/// work waits, rather than making answers that would wait.
async fn node_slot(
    shared: &Shared,
    slots: &Arc<tokio::sync::Semaphore>,
    reserve: usize,
) -> Option<(OwnedSemaphorePermit, Held)> {
    let deadline = tokio::time::Instant::now() + shared.config.limits.load_wait;
    let slot = match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => Some(p),
        _ => None,
    };
    let taken = match slot {
        Some(p) => shared.memory.take(reserve, deadline).await.map(|h| (p, h)),
        None => None,
    };
    if taken.is_none() {
        Metrics::inc(&shared.metrics.load_refused);
    }
    taken
}

/// What an answer carries beyond its response budget (the record and the cells that are always
/// sent whole), reserved with the budget before a QUERY or LATTICE_QUERY starts.
const ANSWER_TOP_BYTES: usize = 64 * 1024;

/// Queues `body`, the answer to a request, with `held` (its reservation) set to its size.
fn answer(conn: &Conn, body: &[u8], mut held: Held) {
    held.fit(body.len());
    conn.send_held(body, held);
}

/// The most bytes a DATA_REQUEST answer for `n` hashes can take: each cell at its largest.
fn data_answer_bytes(n: usize) -> usize {
    n.saturating_mul(etch_formats::cell::ENCODING_BYTES_MAX + 8)
        .saturating_add(64)
}

/// Tells the requester of `id` that the node is overloaded (`:LOAD`).
fn send_load(conn: &Conn, id: i64) {
    conn.send_result(&ResultRecord::error(Some(id), "LOAD", LOAD_MESSAGE, "PEER"));
}
