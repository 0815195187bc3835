//! Three `etch serve` processes replicating on loopback: values stored at each reach all;
//! a node killed with SIGKILL and restarted on its store catches up; partial replicas
//! (`--hold pinned`) add capacity (issue 15).

mod common;

use common::{Served, ETCH};
use etch_formats::value::blob_bytes;
use etch_formats::{Cell, NoResolver, ValueId};
use etch_server::client::BlockingClient;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `etch serve` on `store` with node key `key`, syncing every second with `peers`.
fn serve(home: &Path, store: &Path, key: &Path, peers: &[&str]) -> Served {
    let mut extra: Vec<&OsStr> = vec![
        OsStr::new("--sync-interval"),
        OsStr::new("1"),
        OsStr::new("--key-file"),
        key.as_os_str(),
    ];
    for p in peers {
        extra.push(OsStr::new("--peer"));
        extra.push(OsStr::new(p));
    }
    Served::start_with(home, store, &extra)
}

fn eval(home: &Path, addr: &str, expr: &str) -> String {
    let o = Command::new(ETCH)
        .args(["eval", "--connect", addr, expr])
        .env("ETCH_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("eval");
    assert!(
        o.status.success(),
        "{expr}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// The Value ID of what a node replicates: its root's :data, :fs and :p2p.
const REPLICATED_ROOT: &str = "(value-id [(get (root) :data) (get (root) :fs) (get (root) :p2p)])";

/// Waits until `expr` prints `want` on every node.
fn wait_all(home: &Path, nodes: &[&Served], expr: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in nodes {
        loop {
            if eval(home, &n.addr, expr) == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never printed {want} for {expr}",
                n.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn keys(dir: &Path) -> Vec<PathBuf> {
    (0..3)
        .map(|i| {
            let k = dir.join(format!("k{i}"));
            let o = Command::new(ETCH)
                .args(["key", "new", "--key-file"])
                .arg(&k)
                .output()
                .expect("key new");
            assert!(o.status.success());
            k
        })
        .collect()
}

#[test]
fn processes_replicate_and_a_killed_node_catches_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let k = keys(tmp.path());
    let store = |i: usize| tmp.path().join(format!("s{i}"));
    let a = serve(&home, &store(0), &k[0], &[]);
    let b = serve(&home, &store(1), &k[1], &[&a.addr]);
    let mut c = serve(&home, &store(2), &k[2], &[&a.addr, &b.addr]);
    // A value stored at each node reaches every node.
    for (i, n) in [&a, &b, &c].iter().enumerate() {
        eval(
            &home,
            &n.addr,
            &format!("(store \"value {i} {}\")", "x".repeat(200)),
        );
    }
    for i in 0..3 {
        let expr = format!(
            "(count (fetch (value-id \"value {i} {}\")))",
            "x".repeat(200)
        );
        wait_all(&home, &[&a, &b, &c], &expr, "208");
    }
    // SIGKILL node c; store at a and b meanwhile; restart c on its store: it catches up.
    c.child.kill().expect("kill");
    c.child.wait().expect("wait");
    eval(&home, &a.addr, "(store \"while c was down, at a\")");
    eval(&home, &b.addr, "(store \"while c was down, at b\")");
    c = serve(&home, &store(2), &k[2], &[&a.addr, &b.addr]);
    for tag in ["a", "b"] {
        let expr = format!("(fetch (value-id \"while c was down, at {tag}\"))");
        wait_all(
            &home,
            &[&c],
            &expr,
            &format!("\"while c was down, at {tag}\""),
        );
    }
    // What c had before the kill survived it.
    let expr = format!("(count (fetch (value-id \"value 2 {}\")))", "x".repeat(200));
    assert_eq!(eval(&home, &c.addr, &expr), "208");
    // The replicated roots (data, drives and every NodeInfo, the restarted node's new one
    // included) become equal everywhere; each node's own :pins and :quota stay its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let roots: Vec<String> = [&a, &b, &c]
            .iter()
            .map(|n| eval(&home, &n.addr, REPLICATED_ROOT))
            .collect();
        if roots.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "roots never converged: {roots:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free loopback port (bound and released: the node binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let m = e.metadata().expect("metadata");
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// `etch serve --hold pinned` on a fixed port with `peers`.
fn serve_pinned(home: &Path, store: &Path, key: &Path, port: u16, peers: &[String]) -> Served {
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--listen",
        &listen,
        "--hold",
        "pinned",
        "--cache-bytes",
        "1M",
        "--sync-interval",
        "1",
    ];
    let mut extra: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    extra.extend([OsStr::new("--key-file"), key.as_os_str()]);
    for p in peers {
        extra.extend([OsStr::new("--peer"), OsStr::new(p)]);
    }
    Served::start_with(home, store, &extra)
}

/// Reads `id` from `client` by QUERY `(fetch id)`: the bytes, or the error code.
fn fetch_bytes(client: &BlockingClient, id: &ValueId) -> Result<Vec<u8>, String> {
    let form = Cell::list(vec![
        Cell::symbol("fetch").expect("symbol"),
        Cell::blob(id.as_bytes()),
    ]);
    let r = client.query(form).map_err(|e| e.to_string())?;
    if let Some(code) = r.error_code() {
        return Err(code);
    }
    blob_bytes(&r.value, &NoResolver).map_err(|e| e.to_string())
}

/// Issue 15: three partial replicas, 300 values of ~100 KB each written through one of them
/// (and so pinned there): each store holds at most 45% of the bytes, every value reads back
/// byte-identical from every node, a killed node's values become unavailable with a clear
/// error and no hang while the others' stay readable, and they come back with it.
#[test]
fn pinned_replicas_add_capacity() {
    const PER_NODE: usize = 100;
    const VALUE_BYTES: usize = 100_000;
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let k = keys(tmp.path());
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let store = |i: usize| tmp.path().join(format!("s{i}"));
    let start = |i: usize| {
        let peers: Vec<String> = (0..3).filter(|&j| j != i).map(addr).collect();
        serve_pinned(&home, &store(i), &k[i], ports[i], &peers)
    };
    let mut nodes: Vec<Served> = (0..3).map(start).collect();
    let clients: Vec<BlockingClient> = (0..3)
        .map(|i| BlockingClient::connect(&addr(i), None).expect("connect"))
        .collect();
    // Write 100 values through each node.
    let mut ids: Vec<Vec<(ValueId, Vec<u8>)>> = vec![Vec::new(); 3];
    for (i, c) in clients.iter().enumerate() {
        for j in 0..PER_NODE {
            let bytes = common::noise((i * 1000 + j) as u64, VALUE_BYTES);
            let v = Cell::blob(&bytes);
            let form = Cell::list(vec![Cell::symbol("store").expect("symbol"), v.clone()]);
            let r = c.query(form).expect("store");
            assert!(r.error_code().is_none(), "store: {:?}", r.error_code());
            ids[i].push((*v.id(), bytes));
        }
    }
    // Every node's root gets all 300 keys.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..3 {
        loop {
            let n = eval(&home, &addr(i), "(count (get (root) :data))");
            if n == (3 * PER_NODE).to_string() {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} has {n} data keys");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Each store holds its own third and the skeleton, not the others' values.
    let total = (3 * PER_NODE * VALUE_BYTES) as u64;
    for i in 0..3 {
        let held = dir_bytes(&store(i));
        eprintln!("node {i}: {held} bytes on disk of {total} written in all");
        assert!(
            held * 100 <= total * 45,
            "node {i} holds {held} bytes, more than 45% of {total}"
        );
    }
    // Every value reads back byte-identical from every node.
    for c in &clients {
        for (id, bytes) in ids.iter().flatten() {
            let got = fetch_bytes(c, id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(got == *bytes, "{id} differs");
        }
    }
    // Kill node 2: its values are unavailable at once with a clear error (a few may still be
    // in the others' 1 MiB read caches), the others' values stay readable.
    nodes[2].child.kill().expect("kill");
    nodes[2].child.wait().expect("wait");
    std::thread::sleep(Duration::from_millis(300));
    let mut unavailable = 0;
    for (id, bytes) in &ids[2] {
        let t = Instant::now();
        match fetch_bytes(&clients[0], id) {
            Ok(got) => assert!(got == *bytes),
            Err(code) => {
                assert_eq!(code, "MISSING", "{id}: {code}");
                unavailable += 1;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(10), "a read hung");
    }
    assert!(
        unavailable >= PER_NODE - 20,
        "only {unavailable} of node 2's values became unavailable"
    );
    for (id, bytes) in ids[0].iter().chain(&ids[1]) {
        assert!(fetch_bytes(&clients[1], id).expect("read") == *bytes);
    }
    // Restart it on its store: its values are back everywhere.
    nodes[2] = start(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (id, bytes) in &ids[2] {
        loop {
            match fetch_bytes(&clients[0], id) {
                Ok(got) => {
                    assert!(got == *bytes);
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "{id} not back: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Issue 19: NodeInfo publishes `--advertise`, never an unspecified address.
#[test]
fn nodes_advertise_reachable_addresses() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let k = keys(tmp.path());
    let serve_with = |store: &str, args: &[&str]| {
        let mut extra: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        extra.extend([OsStr::new("--key-file"), k[0].as_os_str()]);
        Served::start_with(&home, &tmp.path().join(store), &extra)
    };
    let p2p = "(get (root) :p2p)";
    let a = serve_with("a", &["--advertise", "node.example.org:18888"]);
    let info = eval(&home, &a.addr, p2p);
    assert!(info.contains("\"tcp://node.example.org:18888\""), "{info}");
    assert!(!info.contains("127.0.0.1"), "{info}");
    drop(a);
    let b = serve_with("b", &["--listen", "0.0.0.0:0"]);
    let port = b.addr.rsplit_once(':').expect("port").1;
    let info = eval(&home, &format!("127.0.0.1:{port}"), p2p);
    assert!(info.contains(":transports []"), "{info}");
    assert!(!info.contains("0.0.0.0"), "{info}");
    drop(b);
    let o = Command::new(ETCH)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--advertise",
            "0.0.0.0:5",
            "--store",
        ])
        .arg(tmp.path().join("c"))
        .env("ETCH_HOME", &home)
        .output()
        .expect("serve");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--advertise 0.0.0.0:5: an unspecified address"),
        "{err}"
    );
}
