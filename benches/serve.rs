//! Load benchmark of `etch serve` (not a test): a node on loopback with a store of random
//! cells, N client connections each with P requests in flight, issuing DATA_REQUESTs for
//! random stored cells and (one request in ten) a small QUERY. Prints requests/s, cells/s and
//! latency percentiles.
//!
//! `cargo bench -p etch-benches --bench serve -- [--secs S] [--clients N] [--in-flight P]
//! [--hashes H] [--cells C]`

use etch_engine::node::LocalNode;
use etch_engine::store::{open_store, OpenOptions, StoreFormat};
use etch_formats::{Cell, ValueId};
use etch_server::client::Client;
use etch_server::{Config, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    secs: u64,
    clients: usize,
    in_flight: usize,
    hashes: usize,
    cells: usize,
}

fn options() -> Options {
    let mut o = Options {
        secs: 10,
        clients: 4,
        in_flight: 8,
        hashes: 64,
        cells: 200_000,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--secs", Some(v)) => o.secs = v,
            ("--clients", Some(v)) => o.clients = v as usize,
            ("--in-flight", Some(v)) => o.in_flight = v as usize,
            ("--hashes", Some(v)) => o.hashes = (v as usize).clamp(1, 254),
            ("--cells", Some(v)) => o.cells = v as usize,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// xorshift64*: cheap, deterministic choices of cells.
fn next(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() {
    let o = options();
    let dir = tempfile::tempdir().expect("tmp");
    let store = open_store(
        &dir.path().join("store"),
        &OpenOptions::writable(StoreFormat::Native),
    )
    .expect("store")
    .cell_store();
    // Cells of 150–650 bytes (branches, as replication serves them).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let values: Vec<Cell> = (0..o.cells)
        .map(|i| {
            let len = 150 + (next(&mut x) % 500) as usize;
            let mut b = vec![0u8; len];
            b[..8].copy_from_slice(&(i as u64).to_be_bytes());
            Cell::blob(&b)
        })
        .collect();
    store.put_many(&values).expect("put");
    store.commit().expect("commit");
    let ids: Arc<Vec<ValueId>> = Arc::new(values.iter().map(|c| *c.id()).collect());
    drop(values);
    let node = Arc::new(LocalNode::open(store, None).expect("node"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = Server::start(listener, node, None, Config::default()).expect("start");
        let addr = server.local_addr().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let cells = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for c in 0..o.clients {
            let client = Arc::new(Client::connect(&addr, None).await.expect("connect"));
            for t in 0..o.in_flight {
                let (client, ids, stop) = (client.clone(), ids.clone(), stop.clone());
                let (requests, cells) = (requests.clone(), cells.clone());
                let hashes = o.hashes;
                tasks.push(tokio::spawn(async move {
                    let mut x = 0x1234_5678u64 + (c * 1000 + t) as u64;
                    let mut lat: Vec<u32> = Vec::new();
                    let mut n = 0u64;
                    let query = etch_formats::text::read::read_one("(count [1 2 3])").expect("q");
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let started = Instant::now();
                        if n.is_multiple_of(10) {
                            let r = client.query(query.clone()).await.expect("query");
                            assert_eq!(r.value.as_long(), Some(3));
                        } else {
                            let want: Vec<ValueId> = (0..hashes)
                                .map(|_| ids[(next(&mut x) % ids.len() as u64) as usize])
                                .collect();
                            let got = client.data_request(&want).await.expect("data");
                            assert!(got.iter().all(Option::is_some));
                            cells.fetch_add(want.len() as u64, Ordering::Relaxed);
                        }
                        lat.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                    lat
                }));
            }
        }
        // Warm-up second, then the measured window.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (r0, c0) = (requests.load(Ordering::SeqCst), cells.load(Ordering::SeqCst));
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(o.secs)).await;
        let (r1, c1) = (requests.load(Ordering::SeqCst), cells.load(Ordering::SeqCst));
        let elapsed = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.expect("task"));
        }
        lat.sort_unstable();
        println!(
            "serve load: {} cells stored, {} clients x {} in flight, {} hashes per DATA_REQUEST, 1 in 10 a QUERY, {} s",
            o.cells, o.clients, o.in_flight, o.hashes, o.secs
        );
        println!("| requests/s | cells/s | p50 ms | p99 ms | p99.9 ms |");
        println!("|---|---|---|---|---|");
        println!(
            "| {:.0} | {:.0} | {:.3} | {:.3} | {:.3} |",
            (r1 - r0) as f64 / elapsed,
            (c1 - c0) as f64 / elapsed,
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            percentile(&lat, 0.999)
        );
        server.shutdown(Duration::from_secs(5)).await;
    });
}
