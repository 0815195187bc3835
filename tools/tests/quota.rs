//! Quotas on client writes (issue 15): `etch serve --quota` refuses a client's write that would
//! pass its quota with :QUOTA, stores nothing of it, and the ledger survives a restart.

mod common;

use common::Served;
use etch_formats::{Cell, ValueId};
use etch_server::client::BlockingClient;
use std::ffi::OsStr;
use std::path::Path;

fn store_form(v: &Cell) -> Cell {
    Cell::list(vec![Cell::symbol("store").expect("symbol"), v.clone()])
}

/// 300 KB that share no 4 KiB chunk with another tag's (stored bytes are deduplicated).
fn value_bytes(tag: u64) -> Vec<u8> {
    common::noise(tag, 300_000)
}

fn value(tag: u64) -> Cell {
    Cell::blob(&value_bytes(tag))
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}

/// Stores `v` through `c`: Ok, or the error code and message.
fn store(c: &BlockingClient, v: &Cell) -> Result<ValueId, (String, String)> {
    let r = c.query(store_form(v)).expect("query");
    match r.error_code() {
        None => Ok(*v.id()),
        Some(code) => Err((
            code,
            String::from_utf8_lossy(r.value.flat_bytes().unwrap_or_default()).into_owned(),
        )),
    }
}

#[test]
fn a_client_over_quota_is_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let path = tmp.path().join("s");
    let args = ["--quota", "1M", "--quota-total", "2M"];
    let extra: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let node = Served::start_with(&home, &path, &extra);
    let c = BlockingClient::connect(&node.addr, None).expect("connect");
    // Three 300 KB values fit in 1 MiB; the fourth does not.
    for t in 0..3 {
        store(&c, &value(t)).expect("within quota");
    }
    let before = disk_bytes(&path);
    let (code, message) = store(&c, &value(3)).expect_err("over quota");
    assert_eq!(code, "QUOTA");
    assert!(
        message.contains("anonymous has used") && message.contains("1048576"),
        "{message}"
    );
    // Nothing of it was stored: the value is not readable and the store did not grow by it.
    let fetch = Cell::list(vec![
        Cell::symbol("fetch").expect("symbol"),
        Cell::blob(value(3).id().as_bytes()),
    ]);
    let found = c.query(fetch).expect("fetch");
    assert!(
        found.error_code().is_some() || found.value.is_nil(),
        "the refused value is readable"
    );
    assert!(
        disk_bytes(&path) < before + 300_000,
        "the refused value was stored"
    );
    // Storing a value already held costs nothing more.
    store(&c, &value(0)).expect("a value already stored is free");
    // The client's stores are pinned for it; the ledger survives a restart.
    drop(c);
    assert_eq!(node.terminate(), 0);
    let node = Served::start_with(&home, &path, &extra);
    let c = BlockingClient::connect(&node.addr, None).expect("connect");
    let (code, _) = store(&c, &value(4)).expect_err("still over quota after a restart");
    assert_eq!(code, "QUOTA");
    let pins = c
        .query(Cell::list(vec![
            Cell::symbol("count").expect("symbol"),
            Cell::list(vec![Cell::symbol("pins").expect("symbol")]),
        ]))
        .expect("pins");
    assert_eq!(pins.value.as_long(), Some(3), "one pin per stored value");
}

/// An HTTP PUT past the writer's quota is refused with 507 Insufficient Storage and the file is
/// not created; one within it is stored.
#[test]
fn an_http_put_over_quota_gets_507() {
    if common::missing("curl", "--version", "the HTTP quota test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let path = tmp.path().join("s");
    let p = path.to_str().expect("utf-8");
    assert_eq!(
        common::etch(
            &home,
            &["drive", "mkdrive", "home", "--create", "--store", p]
        )
        .code,
        0
    );
    let args = ["--quota", "400K", "--http", "127.0.0.1:0"];
    let extra: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let node = Served::start_with(&home, &path, &extra);
    let file = |name: &str, tag: u64| {
        let p = tmp.path().join(name);
        std::fs::write(&p, value_bytes(tag)).expect("write");
        p
    };
    let curl = |args: &[&str]| -> String {
        let o = std::process::Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let http = node.http.clone().expect("http address");
    let base = format!("http://{http}/dlfs/home");
    let (a, b) = (file("a", 10), file("b", 11));
    let a_path = a.to_str().expect("utf-8");
    let b_path = b.to_str().expect("utf-8");
    assert_eq!(curl(&["-T", a_path, &format!("{base}/a.bin")]), "201");
    assert_eq!(curl(&["-T", b_path, &format!("{base}/b.bin")]), "507");
    assert_eq!(
        curl(&[&format!("{base}/b.bin")]),
        "404",
        "the refused file exists"
    );
    assert_eq!(curl(&[&format!("{base}/a.bin")]), "200");
    drop(node);
}
