//! The node's listener (protocol.md §2.4): accepts connections within the connection limit
//! and starts each one as an inbound connection served by the node.

use crate::conn::{start, Host, Role};
use crate::metrics::Metrics;
use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Accepts connections until shutdown; beyond the connection limit a new socket is closed
/// at once (protocol.md §2.4).
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            Metrics::inc(&shared.metrics.connections_refused);
            tracing::debug!(%addr, "connection limit reached: closed");
            drop(stream);
            continue;
        };
        Metrics::inc(&shared.metrics.connections_accepted);
        tracing::debug!(%addr, "connection accepted");
        let params = shared.conn_params(false);
        start(
            stream,
            params,
            Role::Inbound,
            Some(shared.clone() as Arc<dyn Host>),
            Some(permit),
        );
    }
}
