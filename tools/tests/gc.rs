//! Compaction while a node serves (issue 15): a partial replica (`--hold pinned`) whose client
//! unpins half its data reclaims the space with `(gc)` while a reader reads on, without a
//! failed read, and every still-pinned value is intact.

mod common;

use common::{etch, Served};
use etch_formats::value::blob_bytes;
use etch_formats::{Cell, NoResolver, ValueId};
use etch_server::client::BlockingClient;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn value(tag: u64) -> Vec<u8> {
    common::noise(tag + 7, 100_000)
}

fn call(name: &str, arg: Cell) -> Cell {
    Cell::list(vec![Cell::symbol(name).expect("symbol"), arg])
}

fn read(c: &BlockingClient, id: &ValueId) -> Result<Vec<u8>, String> {
    let r = c
        .query(call("fetch", Cell::blob(id.as_bytes())))
        .map_err(|e| e.to_string())?;
    if let Some(code) = r.error_code() {
        let text = String::from_utf8_lossy(r.value.flat_bytes().unwrap_or_default()).into_owned();
        return Err(format!(":{code} {text}"));
    }
    blob_bytes(&r.value, &NoResolver).map_err(|e| e.to_string())
}

#[test]
fn gc_under_reads_reclaims_unpinned_values() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let path = tmp.path().join("s");
    assert_eq!(etch(&home, &["key", "new"]).code, 0);
    let extra: Vec<&OsStr> = ["--hold", "pinned"].iter().map(OsStr::new).collect();
    let node = Served::start_with(&home, &path, &extra);
    let c = BlockingClient::connect(&node.addr, None).expect("connect");
    let values: Vec<(ValueId, Vec<u8>)> = (0..40)
        .map(|t| {
            let bytes = value(t);
            let v = Cell::blob(&bytes);
            let r = c.query(call("store", v.clone())).expect("store");
            assert!(r.error_code().is_none());
            (*v.id(), bytes)
        })
        .collect();
    for (id, bytes) in &values {
        assert!(read(&c, id).expect("stored") == *bytes);
    }
    let (keep, drop_) = values.split_at(20);
    // A reader reads the kept values over and over meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (stop, reads, failed) = (stop.clone(), reads.clone(), failed.clone());
        let keep = keep.to_vec();
        let addr = node.addr.clone();
        std::thread::spawn(move || {
            let c = BlockingClient::connect(&addr, None).expect("connect");
            while !stop.load(Ordering::SeqCst) {
                for (id, bytes) in &keep {
                    match read(&c, id) {
                        Ok(got) if got == *bytes => {}
                        other => {
                            eprintln!("read of {id} failed: {:?}", other.map(|b| b.len()));
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    for (id, _) in drop_ {
        let r = etch(&home, &["pin", "rm", &id.to_hex(), "--connect", &node.addr]);
        assert_eq!(r.code, 0, "{}", r.err);
    }
    for (id, bytes) in keep {
        assert!(read(&c, id).expect("after unpin") == *bytes);
    }
    let r = etch(&home, &["gc", "--connect", &node.addr, "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let report: serde_json::Value = serde_json::from_str(r.out.trim()).expect("json");
    let field = |name: &str| report[name].as_u64().unwrap_or_else(|| panic!("{name}"));
    let (before, after) = (field("bytes_before"), field("bytes_after"));
    assert_eq!(field("reclaimed"), before - after);
    let unpinned = 20 * 100_000u64;
    eprintln!("gc: {before} -> {after} bytes; {} bytes unpinned", unpinned);
    assert!(
        before - after >= unpinned * 40 / 100,
        "reclaimed {} of {unpinned} unpinned bytes",
        before - after
    );
    // The operator view shows the mode, the quota ledger and the compaction.
    let st = etch(
        &home,
        &["status", "--connect", &node.addr, "--interval", "0.1"],
    );
    assert_eq!(st.code, 0, "{}", st.err);
    assert!(
        st.out.contains("holds      pinned values only"),
        "{}",
        st.out
    );
    assert!(st.out.contains("gc         last "), "{}", st.out);
    assert!(st.out.contains("by 1 writer(s)"), "{}", st.out);
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    reader.join().expect("reader");
    for (id, bytes) in keep {
        assert!(read(&c, id).expect("kept") == *bytes);
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "failed reads");
    assert!(reads.load(Ordering::SeqCst) > 20, "the reader read");
    // After a restart on the compacted store (the replaced store no longer answers), the kept
    // values are intact and the unpinned ones are gone from this partial replica.
    drop(c);
    assert_eq!(node.terminate(), 0);
    let node = Served::start_with(&home, &path, &extra);
    let c = BlockingClient::connect(&node.addr, None).expect("connect");
    for (id, bytes) in keep {
        assert!(read(&c, id).expect("kept after restart") == *bytes);
    }
    for (id, _) in drop_ {
        assert!(read(&c, id).is_err(), "{id} is still held");
    }
    drop(c);
    assert_eq!(node.terminate(), 0);
    // Offline: verify is clean (it knows a partial replica's store), compact refuses one, and
    // a full replica will not start on it.
    let p = path.to_str().expect("utf-8");
    let v = etch(&home, &["verify", p]);
    assert_eq!(v.code, 0, "{}{}", v.out, v.err);
    assert!(v.out.contains("partial replica"), "{}", v.out);
    let c = etch(&home, &["compact", p]);
    assert_ne!(c.code, 0);
    assert!(c.err.contains("etch gc --connect"), "{}", c.err);
    let o = std::process::Command::new(common::ETCH)
        .args(["serve", "--listen", "127.0.0.1:0", "--store", p])
        .env("ETCH_HOME", &home)
        .output()
        .expect("serve");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("partial replica"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
