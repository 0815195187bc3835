//! Counters of a node, dumped in the STATUS answer under `:metrics` and on `/metrics`, and the
//! HTTP latency histogram (`/metrics` only).

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
    owner_slots_refused: "Owner slots left out of an incoming value (bad signature, wrong signer); the rest merged.",
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
    http_bytes_out: "HTTP response body bytes announced (Content-Length; streamed bodies without one are not counted).",
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

/// Upper bounds (seconds) of the latency histogram's buckets (the last, `+Inf`, is implied).
pub const LATENCY_BUCKETS_S: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// A latency histogram in the Prometheus sense: cumulative buckets, a sum and a count.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound of [`LATENCY_BUCKETS_S`] (not cumulative here).
    buckets: [AtomicU64; 11],
    /// Observations above the last bound.
    over: AtomicU64,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        match LATENCY_BUCKETS_S.iter().position(|b| s <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram in the Prometheus text format, as metric `name` with `help`.
    pub fn prometheus(&self, name: &str, help: &str) -> String {
        use std::fmt::Write;
        let mut out = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut total = 0u64;
        for (b, n) in LATENCY_BUCKETS_S.iter().zip(&self.buckets) {
            total += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {total}");
        }
        total += self.over.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
        out
    }
}
