//! Etch server: a lattice node speaking the Convex peer protocol (protocol.md) over TCP.
//!
//! - [`Server::start`] runs the node on a bound listener: one reader and one writer task per
//!   connection ([`conn`]), request work in spawned tasks, replication sessions to the
//!   configured peers ([`replicate`]).
//! - [`client`] is the requester side (used by the replication sessions, `etch shell
//!   --connect` and `etch eval --connect`).
//! - Every resource is bounded by [`Limits`]; bad input gets an error RESULT or a closed
//!   connection, never a crash, and never slows other connections.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod acquire;
pub mod budget;
pub mod challenge;
pub mod client;
pub mod conn;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod holders;
mod http;
mod listen;
pub mod metrics;
pub mod prove;
pub mod rate;
pub mod replicate;
mod shared;
pub mod token;

pub use http::mcp;
pub(crate) use shared::{watch_root, Shared};
pub use shared::{Config, Limits, PeerSpec, MEMORY_BUDGET_BYTES_DEFAULT};

use ed25519_dalek::SigningKey;
use etch_engine::node::LocalNode;
use metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// A running node.
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts a node on `listener` over `node` (whose store is `store`), with the node key
    /// `key` (answers challenges, signs its own slots). Must run inside a tokio runtime.
    pub fn start(
        listener: TcpListener,
        node: Arc<LocalNode>,
        key: Option<SigningKey>,
        config: Config,
    ) -> std::io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let (stop, shutdown) = watch::channel(false);
        let root = node.root_value();
        let local = match &config.hold {
            Some(h) => h.local().clone(),
            None => node.store().clone(),
        };
        let shared = Arc::new(Shared {
            store: node.store().clone(),
            local,
            node,
            key,
            work: Arc::new(Semaphore::new(config.limits.work_slots)),
            data_reads: Arc::new(Semaphore::new(config.limits.data_read_slots)),
            peer_conns: std::sync::Mutex::new(Vec::new()),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            memory: budget::MemoryBudget::new(config.limits.memory_bytes),
            acquiring: tokio::sync::Mutex::new(()),
            upload: config
                .limits
                .upload_bytes_per_sec
                .map(|r| Arc::new(rate::UploadRate::new(r))),
            metrics: Metrics::default(),
            config,
            shutdown,
            cancel: std::sync::atomic::AtomicBool::new(false),
            root: watch::channel(root).0,
            http_latency: metrics::Histogram::default(),
            peer_synced: std::sync::Mutex::new(std::collections::HashMap::new()),
            peer_connected: std::sync::Mutex::new(std::collections::HashSet::new()),
        });
        if let Some(h) = &shared.config.hold {
            h.set_source(Arc::new(holders::PeerSource::new(&shared)));
        }
        let watcher = shared.clone();
        tokio::task::spawn_blocking(move || watch_root(watcher));
        let mut tasks = vec![tokio::spawn(listen::accept_loop(listener, shared.clone()))];
        for peer in shared.config.peers.clone() {
            tasks.push(tokio::spawn(replicate::peer_session(shared.clone(), peer)));
        }
        tracing::info!(%local_addr, peers = shared.config.peers.len(), "node listening");
        Ok(Server {
            shared,
            local_addr,
            stop,
            tasks,
        })
    }

    /// Serves the HTTP front door (content reads, `/status`, `/metrics`: see `http`) on
    /// `listener` beside the peer protocol, until the node shuts down.
    pub fn serve_http(&mut self, listener: TcpListener) {
        self.tasks
            .push(tokio::spawn(http::serve(listener, self.shared.clone())));
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node.
    pub fn node(&self) -> &Arc<LocalNode> {
        &self.shared.node
    }

    /// The metrics counters (also in the STATUS answer).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Stops the node: no new connections or requests; every connection says GOODBYE and
    /// closes; work already running (a commit included) finishes; returns once every task
    /// has let go of the node (or `grace` has passed), so the store can be reopened.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        handler::cancel_queries(&self.shared);
        for t in std::mem::take(&mut self.tasks) {
            t.abort();
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while Arc::strong_count(&self.shared) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = self.shared.store.commit() {
            tracing::warn!(error = %e, "final commit failed");
        }
        tracing::info!(
            still_running = Arc::strong_count(&self.shared) - 1,
            "node stopped"
        );
    }
}

impl Drop for Server {
    /// A node dropped without [`Server::shutdown`] still stops: every task sees the stop
    /// signal and ends (the root watcher thread included, so a runtime can shut down).
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        handler::cancel_queries(&self.shared);
        for t in &self.tasks {
            t.abort();
        }
    }
}
