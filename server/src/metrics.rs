//! Counters of a node, dumped in the STATUS answer under `:metrics`.

use etch_formats::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Monotone counters (and two gauges: `connections_open`, `in_flight`).
        #[derive(Default, Debug)]
        pub struct Metrics {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// Every counter as `(name, value)`.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }

            /// Every counter's name and what it counts.
            pub fn help() -> Vec<(&'static str, &'static str)> {
                vec![$((stringify!($name), $doc),)*]
            }
        }
    };
}

counters! {
    connections_accepted: "Inbound connections accepted.",
    connections_refused: "Inbound connections closed at once: the connection limit was reached.",
    connections_open: "Connections open now (inbound and outbound).",
    frames_in: "Frames received.",
    frames_out: "Frames sent.",
    bytes_in: "Frame bytes received.",
    bytes_out: "Frame bytes sent.",
    bad_frames: "Connections closed for a bad frame header (0x80, 0, over the limit).",
    bad_messages: "Frames whose body did not decode.",
    timeouts: "Connections closed by the idle or frame timeout.",
    pings: "PING answered.",
    statuses: "STATUS answered.",
    queries: "QUERY evaluated.",
    query_errors: "QUERY answered with an error.",
    data_requests: "DATA_REQUEST answered.",
    cells_served: "Cells sent in DATA_REQUEST answers.",
    cells_not_found: "Hashes asked for that this node does not hold.",
    lattice_queries: "LATTICE_QUERY answered.",
    lattice_values: "LATTICE_VALUE received.",
    lattice_merges: "LATTICE_VALUE merges that changed the root.",
    lattice_rejected: "LATTICE_VALUE refused (bad signature, stale, no lattice, missing data).",
    cells_acquired: "Cells fetched from peers to complete values.",
    challenges: "CHALLENGE answered.",
    load_refused: "Requests refused with :LOAD (no work slot in time).",
    format_errors: "Requests answered with :FORMAT or :ARGUMENT.",
    pushes: "Root pushes (LATTICE_VALUE) sent to peers.",
    pulls: "Pulls (LATTICE_QUERY of the root) from peers completed.",
    peer_connects: "Outbound peer connections made.",
    peers_verified: "Inbound connections verified by CHALLENGE as configured peers.",
    in_flight: "Requests being worked on now.",
    http_requests: "HTTP requests answered.",
    http_errors: "HTTP requests answered with a 4xx or 5xx status.",
    http_refused: "HTTP connections closed at once: the HTTP connection limit was reached.",
    http_timeouts: "HTTP connections closed for sending no request (first byte) in time.",
}

/// The counters that are gauges (they go down as well as up).
pub const GAUGES: [&str; 2] = ["connections_open", "in_flight"];

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds 1 to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes 1 from a gauge.
    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// The counters as a hash map of keyword → Long, for STATUS.
    pub fn to_cell(&self) -> Cell {
        Cell::map(
            self.snapshot()
                .into_iter()
                .filter_map(|(k, v)| {
                    let key = Cell::keyword(&k.replace('_', "-")).ok()?;
                    Some((key, Cell::long(i64::try_from(v).unwrap_or(i64::MAX))))
                })
                .collect(),
        )
    }
}
