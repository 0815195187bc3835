//! Many-source fetch benchmark (not a test; issue 19): how fast a fresh node gets a large
//! value from its peers, by the peer protocol on loopback, all nodes in this process.
//!
//! 1. A drive file of `--mib` MiB held by 3 nodes, each capped at `--rate` MB/s
//!    (`Limits::upload_bytes_per_sec`, `etch serve --max-upload-rate`), fetched by a 4th node
//!    configured with all 3 as peers; then the same fetch from one capped node.
//! 2. The same file from one uncapped node, next to reading it from a local store (what
//!    `etch drive cat` does, to a sink).
//! 3. A fresh node's initial sync of a `--sync-mib` MiB lattice (1 MiB values under `:data`)
//!    from 1 and from 3 uncapped peers.
//!
//! A fetch ends when the fetching node's committed root holds the holders' value (its `:fs` or
//! `:data` equal, every cell stored). Each holder serves its own copy of one store.
//!
//! `cargo bench -p etch-benches --bench fetch -- [--mib N] [--rate MBPS] [--sync-mib N]`

use ed25519_dalek::SigningKey;
use etch_engine::dlfs::{self, host, DrivePath};
use etch_engine::lattice::value_at_path;
use etch_engine::node::LocalNode;
use etch_engine::store::{open_store, CellStore, OpenOptions, StoreFormat};
use etch_formats::Cell;
use etch_server::{Config, Limits, PeerSpec, Server};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    mib: u64,
    rate_mb: f64,
    sync_mib: u64,
}

fn options() -> Options {
    let mut o = Options {
        mib: 256,
        rate_mb: 16.0,
        sync_mib: 1024,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<f64>().ok());
        match (args[i].as_str(), value) {
            ("--mib", Some(v)) => o.mib = v as u64,
            ("--rate", Some(v)) => o.rate_mb = v,
            ("--sync-mib", Some(v)) => o.sync_mib = v as u64,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// Deterministic incompressible bytes (xorshift64), so nothing is shared between chunks.
struct Noise {
    x: u64,
    left: u64,
}

impl std::io::Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            b.copy_from_slice(&self.x.to_le_bytes()[..b.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn native(path: &Path) -> Arc<dyn CellStore> {
    open_store(path, &OpenOptions::writable(StoreFormat::Native))
        .expect("store")
        .cell_store()
}

fn kw(name: &str) -> Cell {
    Cell::keyword(name).expect("keyword")
}

/// A store holding drive `bench` of `key` with file `big` of `mib` MiB.
fn drive_store(path: &Path, key: &SigningKey, mib: u64) {
    let store = native(path);
    let node = LocalNode::open(store.clone(), Some(key.clone())).expect("node");
    let owner = Cell::blob(&key.verifying_key().to_bytes());
    let mut noise = Noise {
        x: 0x9E37_79B9_7F4A_7C15,
        left: mib << 20,
    };
    let (blob, _, n) = host::store_contents(
        store.as_ref(),
        &mut noise,
        host::PutOptions { encrypt: None },
    )
    .expect("contents");
    assert_eq!(n, mib << 20);
    let file = DrivePath::parse("bench/big").expect("path");
    node.write_drive(&owner, "bench", |cur, now, r| {
        let d = if cur.is_nil() {
            dlfs::mkdrive(cur, "bench")?
        } else {
            cur.clone()
        };
        dlfs::put(&d, &file, blob.clone(), now, r)
    })
    .expect("write drive");
}

/// A store whose `:data` holds `mib` values of 1 MiB each.
fn data_store(path: &Path, mib: u64) {
    let store = native(path);
    let node = LocalNode::open(store, None).expect("node");
    for chunk in (0..mib).collect::<Vec<_>>().chunks(64) {
        let values: Vec<Cell> = chunk
            .iter()
            .map(|i| {
                let mut noise = Noise {
                    x: 0x1234_5678 + i,
                    left: 1 << 20,
                };
                let mut b = vec![0u8; 1 << 20];
                std::io::Read::read_exact(&mut noise, &mut b).expect("noise");
                Cell::blob(&b)
            })
            .collect();
        node.store_values(&values).expect("store values");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// The store path of a copy: a native store is a directory or a file; both are copied.
fn copy_store(from: &Path, to: &Path) {
    if from.is_dir() {
        copy_dir(from, to);
    } else {
        std::fs::copy(from, to).expect("copy");
    }
}

/// Starts a node on `store` with `limits`, on loopback.
async fn holder(store: &Path, limits: Limits) -> Server {
    let node = Arc::new(LocalNode::open(native(store), None).expect("node"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    Server::start(
        listener,
        node,
        None,
        Config {
            limits,
            ..Config::default()
        },
    )
    .expect("start")
}

/// Starts a fresh node with `peers` and times how long until its root's value at `region`
/// equals `want`.
async fn fetch(dir: &Path, peers: &[String], region: &str, want: &Cell) -> Duration {
    let node = Arc::new(LocalNode::open(native(dir), None).expect("node"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = Config {
        peers: peers
            .iter()
            .map(|a| PeerSpec::parse(a).expect("peer"))
            .collect(),
        // One pull on connect does it; no second sync inside the window.
        sync_interval: Duration::from_secs(3600),
        limits: Limits {
            acquire_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(120),
            ..Limits::default()
        },
        ..Config::default()
    };
    let started = Instant::now();
    let server = Server::start(listener, node.clone(), None, config).expect("start");
    let path = [kw(region)];
    loop {
        let n = node.clone();
        let path = path.clone();
        let got = tokio::task::spawn_blocking(move || {
            value_at_path(&n.root_value(), &path, n.store().as_ref()).map(|v| *v.id())
        })
        .await
        .expect("poll");
        if got.is_ok_and(|id| id == *want.id()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    server.shutdown(Duration::from_secs(5)).await;
    took
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// The value at `region` of the root of the store at `path`.
fn region_of(path: &Path, region: &str) -> Cell {
    let store = native(path);
    let node = LocalNode::open(store.clone(), None).expect("node");
    value_at_path(&node.root_value(), &[kw(region)], store.as_ref()).expect("region")
}

/// Reads the file of the drive store at `path` to a sink, as `etch drive cat` does.
fn local_cat(path: &Path, key: &SigningKey) -> (u64, Duration) {
    let store = native(path);
    let node = LocalNode::open(store.clone(), None).expect("node");
    let owner = Cell::blob(&key.verifying_key().to_bytes());
    let r = store.as_ref();
    let root = node.root_value();
    let drive = value_at_path(
        &root,
        &[kw("fs"), owner, kw("value"), Cell::string("bench")],
        r,
    )
    .expect("drive");
    let started = Instant::now();
    let file = dlfs::find(&drive, &["big".to_string()], r)
        .expect("find")
        .expect("the file");
    let n = host::copy_file_to(
        &file,
        "bench/big",
        None,
        r,
        &mut std::io::sink(),
        Path::new("-"),
    )
    .expect("cat");
    (n, started.elapsed())
}

fn main() {
    let o = options();
    let dir = tempfile::tempdir_in(std::env::var_os("ETCH_BENCH_DIR").unwrap_or(".".into()))
        .expect("tmp");
    let key = SigningKey::from_bytes(&[7; 32]);
    let rate = (o.rate_mb * 1e6) as u64;
    let bytes = o.mib << 20;
    println!("# many-source fetch: a {} MiB drive file", o.mib);
    let source = dir.path().join("drive");
    drive_store(&source, &key, o.mib);
    let copies: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("drive-{i}"));
            copy_store(&source, &p);
            p
        })
        .collect();
    let want = region_of(&source, "fs");
    let (cat_bytes, cat) = local_cat(&source, &key);
    assert_eq!(cat_bytes, bytes);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let capped = Limits {
            upload_bytes_per_sec: Some(rate),
            ..Limits::default()
        };
        let mut holders = Vec::new();
        for p in &copies {
            holders.push(holder(p, capped.clone()).await);
        }
        let addrs: Vec<String> = holders.iter().map(|h| h.local_addr().to_string()).collect();
        let three = fetch(&dir.path().join("f3"), &addrs, "fs", &want).await;
        let sent: Vec<String> = holders
            .iter()
            .map(|h| {
                let b = h.metrics().bytes_out.load(std::sync::atomic::Ordering::Relaxed);
                format!("{:.1}", b as f64 / 1e6)
            })
            .collect();
        println!("MB sent by each of the 3 nodes: {}", sent.join(", "));
        let one = fetch(&dir.path().join("f1"), &addrs[..1], "fs", &want).await;
        for h in holders.drain(..) {
            h.shutdown(Duration::from_secs(5)).await;
        }
        println!(
            "capped at {:.1} MB/s each: 3 nodes {:.2} s ({:.1} MB/s), 1 node {:.2} s ({:.1} MB/s): {:.2}x",
            o.rate_mb,
            three.as_secs_f64(),
            mbps(bytes, three),
            one.as_secs_f64(),
            mbps(bytes, one),
            one.as_secs_f64() / three.as_secs_f64()
        );
        let h = holder(&copies[0], Limits::default()).await;
        let uncapped = fetch(
            &dir.path().join("fu"),
            &[h.local_addr().to_string()],
            "fs",
            &want,
        )
        .await;
        h.shutdown(Duration::from_secs(5)).await;
        println!(
            "uncapped, 1 node over loopback: {:.2} s ({:.1} MB/s); local drive cat to a sink: {:.2} s ({:.1} MB/s)",
            uncapped.as_secs_f64(),
            mbps(bytes, uncapped),
            cat.as_secs_f64(),
            mbps(bytes, cat)
        );
    });
    for p in copies.iter().chain([&source]) {
        let _ = std::fs::remove_dir_all(p);
        let _ = std::fs::remove_file(p);
    }
    if o.sync_mib == 0 {
        return;
    }
    println!(
        "# initial sync: {} MiB lattice (1 MiB values under :data)",
        o.sync_mib
    );
    let source = dir.path().join("lattice");
    data_store(&source, o.sync_mib);
    let copies: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("lattice-{i}"));
            copy_store(&source, &p);
            p
        })
        .collect();
    let want = region_of(&source, "data");
    let sync_bytes = o.sync_mib << 20;
    runtime.block_on(async {
        let mut holders = Vec::new();
        for p in &copies {
            holders.push(holder(p, Limits::default()).await);
        }
        let addrs: Vec<String> = holders.iter().map(|h| h.local_addr().to_string()).collect();
        let one = fetch(&dir.path().join("s1"), &addrs[..1], "data", &want).await;
        let three = fetch(&dir.path().join("s3"), &addrs, "data", &want).await;
        for h in holders {
            h.shutdown(Duration::from_secs(5)).await;
        }
        println!(
            "uncapped: 1 peer {:.2} s ({:.1} MB/s), 3 peers {:.2} s ({:.1} MB/s)",
            one.as_secs_f64(),
            mbps(sync_bytes, one),
            three.as_secs_f64(),
            mbps(sync_bytes, three)
        );
    });
}
