//! The operator endpoints: `GET /status` (JSON: root, store figures, key, peers, connections)
//! and `GET /metrics` (the node's counters, the HTTP latency histogram, commits and replication
//! lag per peer, in the Prometheus text format, version 0.0.4).

use super::error;
use crate::metrics::{Metrics, GAUGES};
use crate::shared::Shared;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `GET /status`.
pub(super) async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.clone();
    let stats = match tokio::task::spawn_blocking(move || s.store.stats()).await {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let live_peers = shared
        .peer_conns
        .lock()
        .map(|v| v.iter().filter(|w| w.strong_count() > 0).count())
        .unwrap_or(0);
    let body = serde_json::json!({
        "type": crate::handler::STATUS_TYPE,
        "version": env!("CARGO_PKG_VERSION"),
        "root": shared.committed_root().id().to_hex(),
        "key": shared.public_key().map(hex::encode),
        "did": shared.public_key().map(|k| etch_engine::lattice::did_key(&k)),
        "store": {
            "cells": stats.cells,
            "encoding_bytes": stats.encoding_bytes,
            "data_bytes": stats.data_len,
            "file_bytes": stats.file_len,
        },
        "peers": shared.config.peers.iter().map(|p| serde_json::json!({
            "address": p.address,
            "key": p.key.map(hex::encode),
        })).collect::<Vec<_>>(),
        "peer_connections": live_peers,
        "connections_open": shared.metrics.connections_open.load(Ordering::Relaxed),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

/// `GET /metrics`: each counter as `etch_<name>`, with its help line and type.
pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let help: std::collections::HashMap<_, _> = Metrics::help().into_iter().collect();
    let mut out = String::new();
    for (name, value) in shared.metrics.snapshot() {
        let kind = if GAUGES.contains(&name) {
            "gauge"
        } else {
            "counter"
        };
        let _ = writeln!(out, "# HELP etch_{name} {}", help.get(name).unwrap_or(&""));
        let _ = writeln!(out, "# TYPE etch_{name} {kind}");
        let _ = writeln!(out, "etch_{name} {value}");
    }
    out.push_str(&shared.http_latency.prometheus(
        "etch_http_request_duration_seconds",
        "Time from an HTTP request to its answer's headers.",
    ));
    let _ = writeln!(
        out,
        "# HELP etch_memory_used_bytes Bytes of the node's memory budget in use (queued \
         answers, large frames being received, acquired cells).\n\
         # TYPE etch_memory_used_bytes gauge\netch_memory_used_bytes {}\n\
         # HELP etch_memory_budget_bytes The node's memory budget (--memory-budget).\n\
         # TYPE etch_memory_budget_bytes gauge\netch_memory_budget_bytes {}",
        shared.memory.used(),
        shared.memory.limit()
    );
    let _ = writeln!(
        out,
        "# HELP etch_commits Roots committed to the store since the node started.\n\
         # TYPE etch_commits counter\netch_commits {}",
        shared.node.commits()
    );
    // Replication lag: seconds since each configured peer last completed a pull (+Inf: never).
    let _ = writeln!(
        out,
        "# HELP etch_replication_lag_seconds Seconds since the last completed pull from each \
         configured peer (+Inf: none yet).\n# TYPE etch_replication_lag_seconds gauge"
    );
    let now = etch_engine::node::wall_clock_ms();
    let synced = shared
        .peer_synced
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    for p in &shared.config.peers {
        let lag = synced.get(&p.address).map_or("+Inf".to_string(), |t| {
            format!("{}", (now - t).max(0) as f64 / 1000.0)
        });
        let _ = writeln!(
            out,
            "etch_replication_lag_seconds{{peer=\"{}\"}} {lag}",
            p.address.replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
