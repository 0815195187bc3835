//! `etch serve`: run a lattice node on a store (the server crate), until SIGINT or SIGTERM.

use super::{open_any_with, Access, FormatArg, IoArg};
use etch_engine::gc::GcTarget;
use etch_engine::node::LocalNode;
use etch_engine::quota::Quotas;
use etch_engine::store::hold::HoldStore;
use etch_engine::store::live::LiveStore;
use etch_engine::store::NativeOptions;
use etch_engine::store::{CellStore, StoreFormat};
use etch_server::{Config, Limits, PeerSpec, Server};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Threads that run store work at once (tokio's blocking pool; its default is 512).
const BLOCKING_THREADS_MAX: usize = 64;

/// Arguments of `etch serve`.
#[derive(clap::Args)]
#[command(
    long_about = "Runs a lattice node on a store: the Convex binary peer protocol over TCP \
(length-prefixed multi-cell messages) with PING, STATUS, QUERY (the shell's query language, \
client rights), DATA_REQUEST (cells by Value ID), LATTICE_QUERY (the committed value at a path), \
LATTICE_VALUE (merge a value at a path; cells the sender left out are fetched from it by \
DATA_REQUEST and checked against their hashes, the merge is committed durably, and an optional \
acknowledgement ID in element 3 gets a RESULT), CHALLENGE (Ed25519 proof of the node key) and \
GOODBYE.\n\n\
The node's root is the lattice root: :data (Value ID → value, union), :fs (owner → signed map of \
DLFS drives; each owner slot must be signed by its owner, drives merge by timestamps), :p2p \
(:nodes → owner → signed NodeInfo, last write wins) and :local (owner → signed map, last write \
wins; this node's own: neither pushed nor served to others). Every signed value is verified before it is merged: an owner slot with a bad signature (or \
signed by another key) is left out and logged with its owner, and the other slots merge; an \
update with no valid slot is refused. Other root keys are ignored.\n\n\
With --peer (repeatable; HOST:PORT, optionally @HEX of the peer's public key, which it must \
prove), the node replicates: it pushes its root to each peer when it changes (at most every \
50 ms, with only the cells the peer is not known to hold; the peer fetches the rest), pulls \
each peer's root on connect and every --sync-interval, and reconnects with backoff, so a node \
that was down catches up.\n\n\
Limits: --max-connections (more are closed at once), 8 MiB frames from clients and 50 MB from \
verified peers, 16 MiB of queued replies and 16 requests in flight per connection (reading \
pauses beyond), 254 hashes per DATA_REQUEST and 64 DATA_REQUESTs read at once node-wide, --idle-timeout, a 30 s limit to finish a started \
frame, --request-timeout per QUERY; when all work slots stay busy for 8 s a request gets :LOAD. \
STATUS answers the node's status with its counters under :metrics.\n\n\
Rights: QUERY clients may read, `store` and `merge!` (not with --read-only-clients); a client \
whose query needs admin rights (set-root!, DLFS writes) is challenged, and if it proves the node's \
own key or one given with --admin, the query runs with admin rights. A `def` lasts for its own \
QUERY only.\n\n\
With --http HOST:PORT the node also answers HTTP on the same store: \
GET /v/{value-id} prints a value (?format=json gives JSON as Convex writes it, ?format=cad3 its \
CAD3 bytes); GET /blob/{value-id} streams a Blob or String as raw bytes with Range, ETag = the \
Value ID and immutable caching; /dlfs/{drive}/{path} serves drives: a folder as an HTML listing \
(JSON with ?format=json), a file as bytes with Range, and WebDAV class 1 and 2 (PROPFIND, \
PROPPATCH with dead properties kept in the file's metadata, PUT, MKCOL, DELETE, COPY, MOVE, LOCK, \
UNLOCK), so rclone, davfs2 or a file manager can mount and sync them; POST /mcp serves the MCP \
tools (as `etch mcp` does over stdio) over streamable HTTP; GET /status answers JSON (root, store \
figures, key and did, peers) and GET /metrics the counters, latencies, commits and replication \
lag in the Prometheus text format. It then also prints `http on ADDR`.\n\n\
Who may write over HTTP: without a token, only when --http binds a loopback address or with \
--anonymous-writes (else 401). A bearer token (`Authorization: Bearer JWT`, an EdDSA JWT naming a \
did:key, audience this node's did: `etch key token --aud DID`) selects that identity's drives; a \
token that is present but invalid (expired, wrong audience, bad signature) is 401 on every \
request. The node signs only its own drives: another identity reads its namespace and may write \
the node's drives only through a UCAN grant from the node's key (`etch key grant`, sent in a \
`ucans` header or MCP argument).\n\n\
Prints `listening on ADDR` on stdout once ready; logs go to stderr (--log error|warn|info|debug|trace \
or a tracing filter). SIGINT or SIGTERM stops it gracefully: connections get GOODBYE, running \
commits finish, the store is closed."
)]
pub struct ServeArgs {
    /// The store (either format; created if missing).
    #[arg(long)]
    store: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:18888", value_name = "HOST:PORT")]
    listen: String,
    /// The address other nodes reach this one at, published in its NodeInfo as
    /// tcp://HOST:PORT. Without it the listen address is published, unless it is unspecified
    /// (0.0.0.0 or ::), which no one can connect to: then none is.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// A peer to replicate with: HOST:PORT or HOST:PORT@<public key hex>.
    #[arg(long = "peer", value_name = "HOST:PORT[@KEY]")]
    peers: Vec<String>,
    /// The node key file (32-byte seed); default: node.key in the Etch directory.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Also serve HTTP here (content reads, drives over WebDAV, MCP at /mcp, /status,
    /// /metrics); off unless given.
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
    /// Let HTTP clients without a token write the node's own drives (always so when --http
    /// binds a loopback address).
    #[arg(long)]
    anonymous_writes: bool,
    /// Log level or tracing filter.
    #[arg(long, default_value = "info")]
    log: String,
    /// Seconds between pulls from each peer.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    sync_interval: u64,
    /// Clients may only read: QUERY without `store`/`merge!`, LATTICE_VALUE only from peers
    /// that proved a key given with --peer HOST:PORT@KEY.
    #[arg(long)]
    read_only_clients: bool,
    /// A public key (hex) whose holder gets admin rights in QUERY (set-root!, DLFS writes)
    /// once proven by CHALLENGE; repeatable. The node's own key always has them.
    #[arg(long = "admin", value_name = "KEY")]
    admins: Vec<String>,
    /// Most inbound connections at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a connection may stay without a message.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    idle_timeout: u64,
    /// Seconds a QUERY may run.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    request_timeout: u64,
    /// Memory the node may hold for its connections, all together: answers queued for
    /// clients, large frames being received, cells fetched to complete incoming values. Past
    /// it, connections with unread answers are not read, large answers wait (then :LOAD) and
    /// large frames wait (then the connection closes). The process needs this plus its fixed
    /// part (caches, per-connection buffers). K, M, G suffixes.
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_bytes)]
    memory_budget: u64,
    /// Most megabytes (10^6 bytes) per second this node sends to peers and clients on the peer
    /// protocol, all connections together (a provider's bandwidth cap). A node fetching a value
    /// asks all its peers at once, so capped providers add up. Default: no cap.
    #[arg(long, value_name = "MB/s", value_parser = parse_rate)]
    max_upload_rate: Option<u64>,
    /// Format of a store created here.
    #[arg(long, value_enum, default_value_t)]
    format: FormatArg,
    /// How a native store writes its log.
    #[arg(long, value_enum, default_value_t)]
    io: IoArg,
    /// What this node keeps on disk: `all` (every value it merges: a full replica) or
    /// `pinned` (a partial replica: the lattice skeleton, its pins and what clients write
    /// through it; other values are fetched from the peers when read). Needs a native store.
    #[arg(long, value_enum, default_value_t = Hold::All)]
    hold: Hold,
    /// With --hold pinned: bytes of values fetched from peers kept in memory for readers
    /// (K, M, G suffixes: powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_bytes)]
    cache_bytes: u64,
    /// Most bytes each client (a proven key, or the anonymous bucket) may write through this
    /// node: QUERY store/merge!, LATTICE_VALUE from non-peers, HTTP PUT; past it :QUOTA (HTTP
    /// 507). K, M, G suffixes.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    quota: Option<u64>,
    /// Most bytes all clients together may write through this node.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    quota_total: Option<u64>,
    /// Compact the store while serving every SECS seconds (native stores; 0: only when asked,
    /// with `etch gc --connect` or the query `(gc)`).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    gc_interval: u64,
}

/// The transports a node publishes in its NodeInfo: `--advertise` when given (never an
/// unspecified address), else the listen address unless it is unspecified.
fn advertised(
    advertise: Option<&str>,
    listening: std::net::SocketAddr,
) -> Result<Vec<String>, String> {
    match advertise {
        Some(a) => {
            let (host, port) = a
                .rsplit_once(':')
                .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
                .ok_or_else(|| format!("--advertise {a}: expected HOST:PORT"))?;
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified())
            {
                return Err(format!(
                    "--advertise {a}: an unspecified address cannot be reached; give the host \
                     name or address other nodes connect to"
                ));
            }
            Ok(vec![format!("tcp://{host}:{port}")])
        }
        None if listening.ip().is_unspecified() => {
            tracing::warn!(
                listen = %listening,
                "listening on all interfaces: no address is published in NodeInfo; give \
                 --advertise HOST:PORT so that other nodes can find this one"
            );
            Ok(Vec::new())
        }
        None => Ok(vec![format!("tcp://{listening}")]),
    }
}

/// What a node keeps (`--hold`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Hold {
    /// Every value it merges.
    All,
    /// The skeleton, the pins and its clients' writes.
    Pinned,
}

/// Parses a rate in megabytes (10^6 bytes) per second, e.g. `12.5`; into bytes per second.
fn parse_rate(text: &str) -> Result<u64, String> {
    let mb: f64 = text
        .trim()
        .trim_end_matches("MB/s")
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: expected megabytes per second, e.g. 12.5"))?;
    if !(mb.is_finite() && mb >= 0.001) {
        return Err(format!("{text:?}: the rate must be at least 0.001 MB/s"));
    }
    Ok((mb * 1e6) as u64)
}

/// Parses a byte count: digits with an optional K, M, G or T suffix (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{text:?}: expected a number with K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of bytes, e.g. 500M"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// Runs `etch serve`.
pub fn run(args: ServeArgs) -> io::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--log: {e}")))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .try_init();
    let fail = super::failed;
    let mut peers = Vec::new();
    for p in &args.peers {
        match PeerSpec::parse(p) {
            Ok(s) => peers.push(s),
            Err(e) => return fail(e),
        }
    }
    let mut admins = Vec::new();
    for a in &args.admins {
        let parsed = hex::decode(a.trim_start_matches("0x"))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        match parsed {
            Some(k) => admins.push(k),
            None => return fail(format!("--admin {a}: expected 64 hex digits")),
        }
    }
    let key_path = match &args.key_file {
        Some(p) => p.clone(),
        None => super::key::default_key_file()?,
    };
    let key = if args.key_file.is_some() {
        super::key::read_key_file(&key_path)
    } else {
        key_path
            .parent()
            .map_or_else(etch_shell::paths::node_key, etch_shell::paths::node_key_in)
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => return fail(format!("node key: {e}")),
    };
    let store = match open_any_with(&args.store, Access::Create(args.format), args.io) {
        Ok(s) if args.hold == Hold::Pinned && s.format() != StoreFormat::Native => {
            return fail(format!(
                "{}: --hold pinned needs a native store (this one is {}); convert it with \
                 etch export and etch import --format native",
                args.store.display(),
                s.format().name()
            ))
        }
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // A native store can be compacted while it serves: it sits in a LiveStore.
    let (store, gc_target) = match store.format() {
        StoreFormat::Native => {
            let live = Arc::new(LiveStore::new(store.cell_store()));
            let options = NativeOptions {
                io: args.io.into(),
                ..NativeOptions::default()
            };
            let target = GcTarget {
                live: live.clone(),
                path: args.store.clone(),
                options,
                partial: args.hold == Hold::Pinned,
            };
            (live as Arc<dyn CellStore>, Some(target))
        }
        StoreFormat::Cad047 => (store.cell_store(), None),
    };
    let hold = (args.hold == Hold::Pinned)
        .then(|| Arc::new(HoldStore::new(store.clone(), args.cache_bytes as usize)));
    let node_store: Arc<dyn CellStore> = match &hold {
        Some(h) => h.clone(),
        None => store,
    };
    let quotas = Quotas {
        per_key_bytes: args.quota,
        total_bytes: args.quota_total,
    };
    let node = match LocalNode::open(node_store, Some(key.clone())) {
        Ok(n) => {
            let n = n.with_quotas(quotas);
            Arc::new(match gc_target {
                Some(t) => n.with_gc(t),
                None => n,
            })
        }
        Err(e) => return fail(format!("{}: {e}", args.store.display())),
    };
    // A partial replica's store says so (offline tools read it); a full replica must not be
    // started on one, which it would take for complete.
    let marked = etch_engine::lattice::hold::is_partial(&node.root_value(), node.store().as_ref());
    match (args.hold, marked) {
        (Hold::Pinned, Ok(false)) => {
            if let Err(e) = node.mark_partial() {
                return fail(format!("{}: {e}", args.store.display()));
            }
        }
        (Hold::All, Ok(true)) => {
            return fail(format!(
                "{}: this store is a partial replica's (it was served with --hold pinned and \
                 lacks the values it did not pin); serve it with --hold pinned, or start a full \
                 replica on a new store and let it sync from its peers",
                args.store.display()
            ))
        }
        (_, Err(e)) => return fail(format!("{}: {e}", args.store.display())),
        _ => {}
    }
    if args.gc_interval > 0 {
        let (n, every) = (Arc::downgrade(&node), Duration::from_secs(args.gc_interval));
        std::thread::spawn(move || loop {
            std::thread::sleep(every);
            let Some(node) = n.upgrade() else { return };
            match node.gc() {
                Ok(r) => tracing::info!(
                    before = r.bytes_before,
                    after = r.bytes_after,
                    cells = r.cells,
                    seconds = r.seconds,
                    "store compacted"
                ),
                Err(e) => tracing::warn!(error = %e, "scheduled compaction failed"),
            }
        });
    }
    let mut config = Config {
        peers,
        read_only_clients: args.read_only_clients,
        admins,
        sync_interval: Duration::from_secs(args.sync_interval.max(1)),
        limits: Limits {
            max_connections: args.max_connections.max(1),
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            request_timeout: Duration::from_secs(args.request_timeout.max(1)),
            memory_bytes: usize::try_from(args.memory_budget).unwrap_or(usize::MAX),
            upload_bytes_per_sec: args.max_upload_rate,
            ..Limits::default()
        },
        hold,
        ..Config::default()
    };
    // Store reads and writes run on blocking threads; a bounded pool keeps a burst of
    // requests from growing hundreds of threads (and malloc arenas with them): past it, work
    // queues (measured in benches/RESULTS.md, "100 clients reading ranges").
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .build()?;
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&args.listen).await {
            Ok(l) => l,
            Err(e) => return fail(format!("--listen {}: {e}", args.listen)),
        };
        let addr = listener.local_addr()?;
        // Announce this node in its own root (lattice.md §8.1); only a change is committed.
        let n = node.clone();
        let transports = match advertised(args.advertise.as_deref(), addr) {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        match tokio::task::spawn_blocking(move || n.publish_node_info(&transports)).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "NodeInfo not published"),
            Err(e) => tracing::warn!(error = %e, "NodeInfo not published"),
            Ok(Ok(_)) => {}
        }
        let http = match &args.http {
            Some(a) => match tokio::net::TcpListener::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => return fail(format!("--http {a}: {e}")),
            },
            None => None,
        };
        if let Some(l) = &http {
            config.http_anonymous_writes =
                args.anonymous_writes || l.local_addr().is_ok_and(|a| a.ip().is_loopback());
        }
        let mut server = Server::start(listener, node, Some(key), config)?;
        let http_addr = match http {
            Some(l) => {
                let a = l.local_addr()?;
                server.serve_http(l);
                Some(a)
            }
            None => None,
        };
        {
            let mut out = io::stdout().lock();
            writeln!(out, "listening on {addr}")?;
            if let Some(a) = http_addr {
                writeln!(out, "http on {a}")?;
            }
            out.flush()?;
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        }
        server.shutdown(Duration::from_secs(10)).await;
        Ok(ExitCode::SUCCESS)
    })
}
