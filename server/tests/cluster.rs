//! Three nodes on loopback, each peered with the other two: values and drives written at
//! each converge to one root on all; a node stopped and restarted catches up.

mod common;

use common::{admin_eval, key, start_on};
use etch_formats::{Cell, NoResolver};
use etch_server::{Config, PeerSpec, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;

fn config(peers: &[SocketAddr], keys: &[[u8; 32]]) -> Config {
    Config {
        peers: peers
            .iter()
            .zip(keys)
            .map(|(a, k)| PeerSpec {
                address: a.to_string(),
                key: Some(*k),
            })
            .collect(),
        sync_interval: Duration::from_secs(1),
        ..Config::default()
    }
}

fn public(n: u8) -> [u8; 32] {
    key(n).verifying_key().to_bytes()
}

/// What a node replicates: its root's :data, :fs and :p2p (its :pins and :quota are its own).
fn replicated(server: &Server) -> Cell {
    let root = server.node().root_value();
    let r = server.node().store().as_ref();
    Cell::vector(
        ["data", "fs", "p2p"]
            .iter()
            .map(|k| {
                let key = Cell::keyword(k).expect("keyword");
                etch_engine::lattice::value_at_path(&root, &[key], r).expect("read")
            })
            .collect(),
    )
}

/// Waits until every node replicates the same root; returns the first node's root.
async fn converged(nodes: &[&Server], within: Duration) -> Cell {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let roots: Vec<Cell> = nodes.iter().map(|s| replicated(s)).collect();
        if roots.windows(2).all(|w| w[0].id() == w[1].id()) {
            return nodes[0].node().root_value();
        }
        if tokio::time::Instant::now() > deadline {
            let ids: Vec<String> = roots.iter().map(|r| r.id().to_hex()).collect();
            panic!("no convergence within {within:?}: {ids:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn text(c: &Cell) -> String {
    etch_formats::text::print(c, &NoResolver).expect("print")
}

struct Cluster {
    dirs: Vec<PathBuf>,
    addrs: Vec<SocketAddr>,
}

impl Cluster {
    fn peers_of(&self, i: usize) -> Config {
        let others: Vec<usize> = (0..3).filter(|j| *j != i).collect();
        let addrs: Vec<SocketAddr> = others.iter().map(|j| self.addrs[*j]).collect();
        let keys: Vec<[u8; 32]> = others.iter().map(|j| public(*j as u8 + 1)).collect();
        config(&addrs, &keys)
    }

    fn start(&self, i: usize, listener: TcpListener) -> Server {
        start_on(
            listener,
            &self.dirs[i],
            Some(key(i as u8 + 1)),
            self.peers_of(i),
        )
    }
}

async fn listeners(n: usize) -> Vec<TcpListener> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    out
}

fn write_at(server: &Server, tag: &str) {
    let long = tag.repeat(300 / tag.len() + 1);
    admin_eval(server.node(), &format!("(store \"{long}\")"));
    admin_eval(server.node(), &format!("(mkdrive \"{tag}\")"));
    admin_eval(
        server.node(),
        &format!("(put \"{tag}/file.txt\" \"{long}\")"),
    );
}

fn read_drive_of(reader: &Server, owner: u8, tag: &str) -> String {
    let owner = hex::encode(public(owner));
    text(&admin_eval(
        reader.node(),
        &format!("(read-file [0x{owner} \"{tag}/file.txt\"])"),
    ))
}

fn dirs(base: &Path) -> Vec<PathBuf> {
    (0..3).map(|i| base.join(format!("node{i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_and_a_restarted_node_catches_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ls = listeners(3).await;
    let cluster = Cluster {
        dirs: dirs(tmp.path()),
        addrs: ls.iter().map(|l| l.local_addr().expect("addr")).collect(),
    };
    let mut servers: Vec<Option<Server>> = ls
        .into_iter()
        .enumerate()
        .map(|(i, l)| Some(cluster.start(i, l)))
        .collect();
    for (i, tag) in ["alpha", "beta", "gamma"].iter().enumerate() {
        write_at(servers[i].as_ref().expect("running"), tag);
    }
    let refs: Vec<&Server> = servers.iter().map(|s| s.as_ref().expect("up")).collect();
    let root = converged(&refs, Duration::from_secs(20)).await;
    // Every node reads every other node's drive.
    for reader in &refs {
        for (i, tag) in ["alpha", "beta", "gamma"].iter().enumerate() {
            assert!(read_drive_of(reader, i as u8 + 1, tag).starts_with("0x"));
        }
    }
    assert_eq!(root.kind(), etch_formats::Kind::Index);
    // Replication did its work: pushes, pulls, merges, and each node
    // proved its key to the others in both directions.
    let total = |f: fn(&etch_server::metrics::Metrics) -> u64| -> u64 {
        refs.iter().map(|s| f(s.metrics())).sum()
    };
    use std::sync::atomic::Ordering::SeqCst;
    assert!(total(|m| m.pushes.load(SeqCst)) >= 3);
    assert!(total(|m| m.pulls.load(SeqCst)) >= 3);
    assert!(total(|m| m.lattice_merges.load(SeqCst)) > 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while total(|m| m.peers_verified.load(SeqCst)) < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "inbound peers not verified"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stop node 2; write at 0 and 1; restart 2 on its store: it catches up.
    let stopped = servers[2].take().expect("up");
    stopped.shutdown(Duration::from_secs(10)).await;
    write_at(servers[0].as_ref().expect("up"), "delta");
    write_at(servers[1].as_ref().expect("up"), "epsilon");
    let listener = match TcpListener::bind(cluster.addrs[2]).await {
        Ok(l) => l,
        Err(_) => TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    };
    servers[2] = Some(cluster.start(2, listener));
    let refs: Vec<&Server> = servers.iter().map(|s| s.as_ref().expect("up")).collect();
    converged(&refs, Duration::from_secs(20)).await;
    let restarted = servers[2].as_ref().expect("up");
    assert!(read_drive_of(restarted, 1, "delta").starts_with("0x"));
    assert!(read_drive_of(restarted, 2, "epsilon").starts_with("0x"));
    // And what it writes now reaches the others.
    write_at(restarted, "zeta");
    converged(&refs, Duration::from_secs(20)).await;
    assert!(read_drive_of(servers[0].as_ref().expect("up"), 3, "zeta").starts_with("0x"));
    // /metrics gives each configured peer's replication lag: both pulled from recently.
    let first = servers[0].as_mut().expect("up");
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = l.local_addr().expect("addr");
    first.serve_http(l);
    let metrics = http_get(http, "/metrics").await;
    let lags: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("etch_replication_lag_seconds{peer="))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .expect("value")
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(lags.len(), 2, "{metrics}");
    assert!(lags.iter().all(|s| *s < 30.0), "{metrics}");
    // Pins are the node's own: node 0's pin set is never replicated, while its new drive is.
    let first = servers[0].as_ref().expect("up");
    admin_eval(first.node(), "(pin \"alpha/file.txt\" \"mine\")");
    write_at(first, "eta");
    let second = servers[1].as_ref().expect("up");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let drives_of_0 = format!("(drives 0x{})", hex::encode(public(1)));
    while !text(&admin_eval(second.node(), &drives_of_0)).contains("\"eta\"") {
        assert!(tokio::time::Instant::now() < deadline, "eta never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys = |s: &Server| text(&admin_eval(s.node(), "(keys (root))"));
    assert!(keys(first).contains(":pins"), "{}", keys(first));
    assert!(!keys(second).contains(":pins"), "{}", keys(second));
    assert_eq!(
        text(&admin_eval(first.node(), "(count (pins))")),
        "1",
        "the pin is listed"
    );
    for s in servers.into_iter().flatten() {
        s.shutdown(Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_beyond_the_budget_are_completed_by_data_requests() {
    // With a 2 KiB budget per push and per answer, almost every cell of a 200 KB value must be
    // fetched by the receiver with DATA_REQUESTs.
    let tmp = tempfile::tempdir().expect("tmp");
    let ls = listeners(2).await;
    let addrs: Vec<SocketAddr> = ls.iter().map(|l| l.local_addr().expect("addr")).collect();
    let mut servers = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        let other = 1 - i;
        let mut c = config(&[addrs[other]], &[public(other as u8 + 1)]);
        c.limits.response_bytes = 2048;
        servers.push(start_on(
            l,
            &tmp.path().join(format!("n{i}")),
            Some(key(i as u8 + 1)),
            c,
        ));
    }
    // 200,000 bytes that never repeat a 4 KiB chunk (so ~50 distinct leaf cells).
    let mut x: u32 = 1;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    let id = admin_eval(
        servers[0].node(),
        &format!("(store 0x{})", hex::encode(&bytes)),
    );
    let refs: Vec<&Server> = servers.iter().collect();
    converged(&refs, Duration::from_secs(20)).await;
    let fetched = servers[1]
        .metrics()
        .cells_acquired
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(fetched >= 40, "cells fetched by DATA_REQUEST: {fetched}");
    assert_eq!(
        text(&admin_eval(
            servers[1].node(),
            &format!("(count (fetch {}))", text(&id))
        )),
        "200000"
    );
    for s in servers {
        s.shutdown(Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_cannot_prove_its_key_is_not_replicated_with() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ls = listeners(2).await;
    let addrs: Vec<SocketAddr> = ls.iter().map(|l| l.local_addr().expect("addr")).collect();
    let mut ls = ls.into_iter();
    // Node 0 expects key 7 at node 1's address; node 1 holds key 2.
    let n0 = start_on(
        ls.next().expect("l"),
        &tmp.path().join("n0"),
        Some(key(1)),
        config(&[addrs[1]], &[public(7)]),
    );
    let n1 = start_on(
        ls.next().expect("l"),
        &tmp.path().join("n1"),
        Some(key(2)),
        Config::default(),
    );
    admin_eval(n1.node(), "(store \"only at node 1\")");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = admin_eval(n0.node(), "(fetch (value-id \"only at node 1\"))");
    assert_eq!(text(&r), "nil", "nothing pulled from an impostor");
    use std::sync::atomic::Ordering::SeqCst;
    assert!(
        n0.metrics().peer_connects.load(SeqCst) >= 2,
        "it keeps trying"
    );
    assert_eq!(n0.metrics().pulls.load(SeqCst), 0);
    assert_eq!(n0.metrics().pushes.load(SeqCst), 0);
    n0.shutdown(Duration::from_secs(5)).await;
    n1.shutdown(Duration::from_secs(5)).await;
}

/// A sender that never answers our DATA_REQUEST (as a Java node on the connection it pushed
/// over, protocol.md §8.4): the missing cells are fetched from a configured peer instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_cells_come_from_a_peer_when_the_sender_is_silent() {
    use etch_formats::message;
    use std::sync::atomic::Ordering;
    let base = tempfile::tempdir().expect("tmp");
    let [lb, la]: [TcpListener; 2] = listeners(2).await.try_into().expect("two");
    let b_addr = lb.local_addr().expect("addr");
    let b = start_on(lb, &base.path().join("b"), Some(key(2)), Config::default());
    let x = Cell::blob(&[4u8; 300]);
    b.node().store().put(&x).expect("put");
    let a = start_on(
        la,
        &base.path().join("a"),
        Some(key(1)),
        Config {
            sync_interval: Duration::from_secs(600),
            ..config(&[b_addr], &[public(2)])
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.metrics().peer_connects.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "A never reached B");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pusher = common::Raw::connect(a.local_addr()).await;
    let v = Cell::index(vec![(Cell::blob(x.id().as_bytes()), x.clone())]).expect("index");
    let lv = message::lattice_value(&[common::kw("data")], v.clone(), Some(21));
    pusher.send_body(lv.encoding()).await; // top cell only; X is left out
                                           // A asks us for X (and may challenge us): we never answer.
    let mut asked = 0;
    let r = loop {
        let m = pusher.recv().await;
        match m.kind {
            etch_formats::MessageType::DataRequest => asked += 1,
            etch_formats::MessageType::Challenge => {}
            _ => break etch_formats::ResultRecord::parse(m.payload()).expect("a Result"),
        }
    };
    assert!(asked >= 1);
    assert_eq!((r.id, r.error_code()), (Some(21), None));
    assert!(a.node().store().contains(x.id()).expect("contains"));
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

/// The body of `GET path` from an HTTP door at `addr`.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}
