//! The node's HTTP front door (gateway.md), beside the peer protocol, on the same [`Shared`]
//! state: content-addressed reads ([`content`]: a value by Value ID, a Blob as raw bytes with
//! `Range`), drives by path ([`drive`]: listings and files, read-only), and the operator
//! endpoints ([`status`]: `/status` JSON, `/metrics` Prometheus). WebDAV writes, JWT auth and
//! MCP come next (issue 16); nothing here writes.
//!
//! Store reads run on blocking threads (they may touch the disk); a Blob streams through a
//! bounded channel, so a response holds a few chunks in memory whatever the Blob's size.

mod auth;
mod content;
mod dav;
mod drive;
mod locks;
pub mod mcp;
mod path;
mod props;
mod status;
mod xml;

use crate::metrics::Metrics;
use crate::shared::Shared;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The routes of the HTTP front door.
fn router(shared: Arc<Shared>, loopback: bool) -> Router {
    let backend = Arc::new(mcp::NodeBackend::new(
        shared.node.clone(),
        shared.config.limits.request_timeout,
    ));
    let policy = mcp::HttpPolicy {
        node_key: shared.public_key(),
        anonymous_writes: shared.config.http_anonymous_writes,
    };
    let tools = mcp::Tools::http(backend, policy);
    let mcp_routes = Router::new()
        .nest_service("/mcp", mcp::http_service(tools, loopback))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            token_gate,
        ));
    Router::new()
        .merge(mcp_routes)
        .route("/v/{id}", get(content::value))
        .route("/blob/{id}", get(content::blob))
        .route("/dlfs", any(drive::drives))
        .route("/dlfs/", any(drive::drives))
        .route("/dlfs/{*path}", any(drive::path))
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .layer(axum::Extension(Arc::new(locks::LockTable::default())))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), count))
        .with_state(shared)
}

/// Refuses a request whose bearer token is present but invalid (401, as every endpoint does)
/// before it reaches a handler that reads the token itself (MCP).
async fn token_gate(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let node_did = shared
        .public_key()
        .map(|k| etch_engine::lattice::did_key(&k));
    let now_s = shared.node.now().div_euclid(1000);
    if let Err(r) = auth::caller(request.headers(), node_did.as_deref().unwrap_or(""), now_s) {
        return r;
    }
    next.run(request).await
}

/// Counts every answer in the node's metrics.
async fn count(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    shared.http_latency.observe(started.elapsed());
    Metrics::inc(&shared.metrics.http_requests);
    if let Some(n) = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        Metrics::add(&shared.metrics.http_bytes_out, n);
    }
    if response.status().is_client_error() || response.status().is_server_error() {
        Metrics::inc(&shared.metrics.http_errors);
    }
    response
}

/// Resolves once the node is shutting down.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Serves HTTP on `listener` until the node shuts down. Every connection takes one of
/// `http_connections` slots (none free: closed at once), must start its request within
/// `http_header_timeout` and send its header within that time again, and serves one request
/// (no keep-alive, so an idle connection holds no slot); a streamed body that stalls for
/// `http_stall_timeout` is cut off.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.shutdown.clone();
    let limits = shared.config.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.http_connections));
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let app = router(shared.clone(), loopback);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut stop) => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors or the like: let the condition pass, keep serving.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            Metrics::inc(&shared.metrics.http_refused);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let (s, mut stop) = (shared.clone(), shared.shutdown.clone());
        let wait = limits.http_header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(wait, stream.peek(&mut first)).await, Ok(Ok(n)) if n > 0)
            {
                Metrics::inc(&s.metrics.http_timeouts);
                return;
            }
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(wait)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// A plain-text error answer: the status and a line that says what to do.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut text = message.into();
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: GET /v/{value-id}, /blob/{value-id}, /dlfs/{drive}/{path}, /status \
         or /metrics; POST /mcp (MCP, streamable HTTP)",
    )
}

/// Fuzzing entry (`crate::fuzzing`): every WebDAV request-body and header parser on `text`.
/// A PROPPATCH value, pasted back into a body as it is stored, must parse to the same property.
pub(crate) fn fuzz_webdav(text: &str) {
    let _ = xml::parse_propfind(text);
    let _ = xml::parse_lockinfo(text);
    if let Ok(ops) = xml::parse_proppatch(text) {
        for op in ops {
            if let xml::PatchOp::Set(ns, name, element) = op {
                let again = format!(
                    "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>{element}</D:prop>\
                     </D:set></D:propertyupdate>"
                );
                match xml::parse_proppatch(&again).as_deref() {
                    Ok([xml::PatchOp::Set(n2, l2, _)]) => {
                        assert!(
                            n2 == &ns && l2 == &name,
                            "{element:?} came back as {{{n2}}}{l2}"
                        )
                    }
                    other => panic!("stored element {element:?} does not parse back: {other:?}"),
                }
            }
        }
    }
    locks::fuzz_if(text);
    let _ = path::components(text);
}
