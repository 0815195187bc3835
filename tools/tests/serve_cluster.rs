//! Three `etch serve` processes replicating on loopback: values stored at each reach all;
//! a node killed with SIGKILL and restarted on its store catches up.

mod common;

use common::{Served, ETCH};
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
    // The roots (data and every NodeInfo, the restarted node's new one included) become equal
    // everywhere.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let roots: Vec<String> = [&a, &b, &c]
            .iter()
            .map(|n| eval(&home, &n.addr, "(value-id (root))"))
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
