//! The node's HTTP front door (gateway.md), beside the peer protocol, on the same [`Shared`]
//! state: content-addressed reads ([`content`]: a value by Value ID, a Blob as raw bytes with
//! `Range`), drives by path ([`drive`]: listings and files, read-only), and the operator
//! endpoints ([`status`]: `/status` JSON, `/metrics` Prometheus). WebDAV writes, JWT auth and
//! MCP come next (issue 16); nothing here writes.
//!
//! Store reads run on blocking threads (they may touch the disk); a Blob streams through a
//! bounded channel, so a response holds a few chunks in memory whatever the Blob's size.

mod content;
mod drive;
mod status;

use crate::metrics::Metrics;
use crate::Shared;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The routes of the HTTP front door.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v/{id}", get(content::value))
        .route("/blob/{id}", get(content::blob))
        .route("/dlfs", get(drive::drives))
        .route("/dlfs/", get(drive::drives))
        .route("/dlfs/{*path}", get(drive::path))
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), count))
        .with_state(shared)
}

/// Counts every answer in the node's metrics.
async fn count(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    Metrics::inc(&shared.metrics.http_requests);
    if response.status().is_client_error() || response.status().is_server_error() {
        Metrics::inc(&shared.metrics.http_errors);
    }
    response
}

/// Serves HTTP on `listener` until the node shuts down.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.shutdown.clone();
    let app = router(shared);
    let done = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(done)
        .await
    {
        tracing::warn!(error = %e, "HTTP server stopped");
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
         or /metrics",
    )
}
