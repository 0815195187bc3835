//! Many-source fetch (`acquire::complete_tree`): a fresh node pulls a value held by several
//! peers from all of them at once; a slow peer's share moves to the others; a peer that goes
//! away mid-fetch leaves the rest to the others; the upload cap paces a node's answers.

mod common;

use common::{kw, open_node, start};
use etch_engine::lattice::value_at_path;
use etch_formats::Cell;
use etch_server::{Config, Limits, PeerSpec, Server};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// 16 values of 256 KiB (about 1,100 cells): several DATA_REQUEST batches.
fn values() -> Vec<Cell> {
    (0..16u64)
        .map(|i| {
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i + 1);
            let bytes: Vec<u8> = (0..256 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Cell::blob(&bytes)
        })
        .collect()
}

/// A node holding `values` under `:data`, sending at most `rate` bytes per second.
async fn holder(dir: &Path, values: &[Cell], rate: Option<u64>) -> Server {
    open_node(dir, None)
        .store_values(values)
        .expect("store values");
    let limits = Limits {
        upload_bytes_per_sec: rate,
        ..Limits::default()
    };
    start(
        dir,
        None,
        Config {
            limits,
            ..Config::default()
        },
    )
    .await
}

/// A fresh node pulling from `peers`.
async fn fetcher(dir: &Path, peers: &[&Server]) -> Server {
    let config = Config {
        peers: peers
            .iter()
            .map(|s| PeerSpec::parse(&s.local_addr().to_string()).expect("peer"))
            .collect(),
        sync_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    start(dir, None, config).await
}

/// Waits until `node`'s `:data` is `want`, every cell stored; the time it took.
async fn holds(node: &Server, want: &Cell, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let n = node.node().clone();
        let id = tokio::task::spawn_blocking(move || {
            value_at_path(&n.root_value(), &[kw("data")], n.store().as_ref()).map(|v| *v.id())
        })
        .await
        .expect("poll");
        if id.is_ok_and(|id| id == *want.id()) {
            break;
        }
        assert!(started.elapsed() < within, "not fetched within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every cell of the value is in the fetching node's own store.
    let n = node.node().clone();
    let want = want.clone();
    tokio::task::spawn_blocking(move || {
        let store = n.store();
        let mut stack = vec![want];
        let mut cells = 0;
        while let Some(c) = stack.pop() {
            for r in c.refs() {
                if r.is_branch() {
                    let child = store
                        .get(&r.id())
                        .expect("read")
                        .unwrap_or_else(|| panic!("cell {} not stored", r.id()));
                    cells += 1;
                    stack.push(child);
                } else if let Some(e) = r.cell() {
                    stack.push(e.clone());
                }
            }
        }
        assert!(cells > 1000, "{cells} cells");
    })
    .await
    .expect("walk");
    started.elapsed()
}

fn served(s: &Server) -> u64 {
    s.metrics().cells_served.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_comes_from_all_peers_and_a_slow_ones_share_moves() {
    let dir = tempfile::tempdir().expect("tmp");
    let values = values();
    // Two peers at 2 MB/s each (so that bandwidth, not this machine, sets the pace) ...
    let a = holder(&dir.path().join("a"), &values, Some(2_000_000)).await;
    let b = holder(&dir.path().join("b"), &values, Some(2_000_000)).await;
    // ... and one at 20 kB/s: one batch of 254 cells from it alone takes 50 s.
    let slow = holder(&dir.path().join("c"), &values, Some(20_000)).await;
    let want = value_at_path(
        &a.node().root_value(),
        &[kw("data")],
        a.node().store().as_ref(),
    )
    .expect(":data");
    let f = fetcher(&dir.path().join("f"), &[&slow, &a, &b]).await;
    // Had a batch waited for the slow peer, this would take 50 s or more.
    let took = holds(&f, &want, Duration::from_secs(40)).await;
    let (sa, sb) = (served(&a), served(&b));
    println!(
        "in {took:?}, cells served: a {sa}, b {sb}, slow {}",
        served(&slow)
    );
    // Both capped peers gave a share (who answered the pull first gives more).
    assert!(
        sa * 10 > sa + sb && sb * 10 > sa + sb,
        "shares not split: a {sa}, b {sb}"
    );
    f.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_goes_away_mid_fetch_leaves_the_rest_to_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let values = values();
    // 1 MB/s each: the fetch takes about 2 s with both.
    let a = holder(&dir.path().join("a"), &values, Some(1_000_000)).await;
    let b = holder(&dir.path().join("b"), &values, Some(1_000_000)).await;
    let want = value_at_path(
        &a.node().root_value(),
        &[kw("data")],
        a.node().store().as_ref(),
    )
    .expect(":data");
    let f = fetcher(&dir.path().join("f"), &[&a, &b]).await;
    // Once `a` has served part of the value, it stops.
    let deadline = Instant::now() + Duration::from_secs(20);
    while served(&a) == 0 {
        assert!(Instant::now() < deadline, "a never served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let a_served = served(&a);
    a.shutdown(Duration::from_secs(5)).await;
    holds(&f, &want, Duration::from_secs(60)).await;
    assert!(served(&b) > 500, "b served the rest: {}", served(&b));
    println!("a served {a_served} before it stopped; b {}", served(&b));
    f.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_cap_paces_a_nodes_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let values = values();
    let capped = holder(&dir.path().join("a"), &values, Some(2_000_000)).await;
    let want = value_at_path(
        &capped.node().root_value(),
        &[kw("data")],
        capped.node().store().as_ref(),
    )
    .expect(":data");
    let f = fetcher(&dir.path().join("f"), &[&capped]).await;
    let took = holds(&f, &want, Duration::from_secs(60)).await;
    let sent = capped.metrics().bytes_out.load(Ordering::Relaxed);
    // More than 4 MB at 2 MB/s cannot take less than 2 s, however fast the machine.
    assert!(sent > 4_000_000, "{sent} bytes sent");
    assert!(
        took.as_secs_f64() >= (sent as f64 / 2e6) * 0.9,
        "{sent} bytes in {took:?}"
    );
    f.shutdown(Duration::from_secs(5)).await;
}
