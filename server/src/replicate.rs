//! Replication with a configured peer (protocol.md §7.7, §8.3): one session task per peer
//! connects (reconnecting with backoff), proves the peer's key by CHALLENGE, pulls the
//! peer's root on connect and every sync interval, and pushes our root whenever it changes
//! (at most every push interval) with only the cells the peer is not known to hold.
//! The receiver of a push fetches whatever else it lacks by DATA_REQUEST over the same
//! connection, so a node that was down catches up from both sides.

use crate::conn::{connect_as, Conn, Host, Role};
use crate::handler::merge_value;
use crate::metrics::Metrics;
use crate::prove::challenge;
use crate::shared::{PeerSpec, Shared};
use etch_formats::message::{self, encode_delta};
use etch_formats::{Cell, NoResolver, ResultRecord, ValueId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// First wait after a failed or lost connection.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Cell IDs remembered per peer as held by it; the set is cleared when it grows past this
/// (pushes then send more than needed, never less).
const KNOWN_IDS_MAX: usize = 1 << 20;

/// Runs the replication session with `peer` until shutdown.
pub(crate) async fn peer_session(shared: Arc<Shared>, peer: PeerSpec) {
    let mut shutdown = shared.shutdown.clone();
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let params = shared.conn_params(true);
        match connect_as(
            &peer.address,
            params,
            Role::Peer,
            Some(shared.clone() as Arc<dyn Host>),
        )
        .await
        {
            Ok((conn, reader)) => {
                Metrics::inc(&shared.metrics.peer_connects);
                tracing::info!(peer = %peer.address, "connected to peer");
                backoff = BACKOFF_MIN;
                {
                    let mut conns = lock(&shared.peer_conns);
                    conns.retain(|c| c.strong_count() > 0);
                    conns.push(Arc::downgrade(&conn));
                }
                lock(&shared.peer_connected).insert(peer.address.clone());
                run(&shared, &conn, &peer).await;
                lock(&shared.peer_connected).remove(&peer.address);
                conn.close();
                let _ = reader.await;
                tracing::info!(peer = %peer.address, "peer connection closed");
            }
            Err(e) => tracing::debug!(peer = %peer.address, error = %e, "connect failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn run(shared: &Arc<Shared>, conn: &Arc<Conn>, peer: &PeerSpec) {
    let limits = &shared.config.limits;
    if let Some(key) = &shared.key {
        conn.challenged
            .store(true, std::sync::atomic::Ordering::SeqCst);
        match challenge(conn, key, peer.key, limits.request_timeout).await {
            Ok(pk) => {
                conn.set_verified(pk, limits.peer_frame_bytes);
                tracing::info!(peer = %peer.address, key = %hex::encode(pk), "peer key verified");
            }
            Err(e) if peer.key.is_some() => {
                tracing::warn!(peer = %peer.address, error = %e, "peer failed its challenge: dropped");
                return;
            }
            Err(e) => tracing::info!(peer = %peer.address, error = %e, "peer identity unproven"),
        }
    }
    let mut shutdown = shared.shutdown.clone();
    let mut known: HashSet<ValueId> = HashSet::new();
    let mut last_pushed: Option<ValueId> = None;
    let mut next_sync = Instant::now();
    let mut tick = tokio::time::interval(shared.config.push_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = conn.closed() => return,
            _ = shutdown.changed() => return,
        }
        if conn.is_closed() {
            return;
        }
        if Instant::now() >= next_sync {
            match pull(shared, conn).await {
                Ok(()) => {
                    Metrics::inc(&shared.metrics.pulls);
                    lock(&shared.peer_synced)
                        .insert(peer.address.clone(), etch_engine::node::wall_clock_ms());
                }
                Err(e) => tracing::info!(peer = %peer.address, error = %e, "pull failed"),
            }
            next_sync = Instant::now() + shared.config.sync_interval;
            // Root sync: push the root again even if unchanged (the divergence detector).
            last_pushed = None;
        }
        // A partial replica does not push: its root names values it does not hold, which a
        // peer completing the push would ask for and not get (a Java node would refuse the
        // update). Its peers pull it, and it pulls them.
        if shared.config.hold.is_some() {
            continue;
        }
        let root = shared.committed_root();
        if last_pushed == Some(*root.id()) {
            continue;
        }
        // A peer whose queue is full is skipped (a later push or sync catches up).
        if conn.queued_bytes() > limits.queued_bytes / 2 {
            continue;
        }
        known = push(shared, conn, &root, known).await;
        last_pushed = Some(*root.id());
    }
}

/// Sends `[:LV [] root]` with the cells of `root` not in `known`; returns `known` with the
/// cells sent added.
async fn push(
    shared: &Arc<Shared>,
    conn: &Conn,
    root: &Cell,
    mut known: HashSet<ValueId>,
) -> HashSet<ValueId> {
    if known.len() > KNOWN_IDS_MAX {
        known.clear();
    }
    // Walking the root reads the store: off the runtime threads.
    let (s, r) = (shared.clone(), root.clone());
    let encoded = tokio::task::spawn_blocking(move || {
        let served = etch_engine::lattice::incoming::served_root(&r, s.local.as_ref());
        let payload = message::lattice_value(&[], served, None);
        let (body, sent) = encode_delta(
            &payload,
            s.local.as_ref(),
            &|id: &ValueId| known.contains(id),
            s.config.limits.response_bytes,
        );
        (body, sent, known)
    })
    .await;
    let Ok((body, sent, mut known)) = encoded else {
        return HashSet::new();
    };
    if conn.send_body(&body) {
        Metrics::inc(&shared.metrics.pushes);
        tracing::debug!(peer = %conn.addr(), root = %root.id(), cells = sent.len(), "root pushed");
        known.extend(sent);
    }
    known
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error(transparent)]
    Request(#[from] crate::conn::RequestError),
    #[error("bad answer")]
    BadAnswer,
    #[error("peer error :{0}")]
    Refused(String),
    #[error("merge refused: :{0} {1}")]
    Merge(&'static str, String),
}

/// Pulls the peer's root (protocol.md §8.3): LATTICE_QUERY `[]`, complete it from the peer,
/// merge it into ours and commit.
async fn pull(shared: &Arc<Shared>, conn: &Arc<Conn>) -> Result<(), PullError> {
    let reply = conn
        .request(
            |id| {
                message::encode_complete(&message::lattice_query(id, &[]), &NoResolver, usize::MAX)
                    .0
            },
            shared.config.limits.request_timeout,
        )
        .await?;
    let r = ResultRecord::parse(reply.payload()).ok_or(PullError::BadAnswer)?;
    if let Some(code) = r.error_code() {
        return Err(PullError::Refused(code));
    }
    merge_value(shared, conn, Vec::new(), r.value, false, None)
        .await
        .map_err(|e| PullError::Merge(e.code, e.message))?;
    Ok(())
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
