//! `etch pin` (issue 15): a pinned value survives `compact --prune-now` while an unpinned one
//! of the same kind goes; a drive path pins its state at the time; pins are listed, removed
//! (twice: exit 1 the second time), refused for values not held; and the same over --connect.

mod common;

use common::{etch_with_input as etch, serve_both};

#[test]
fn pins_keep_values_through_compaction() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let s = tmp.path().join("s");
    let s = s.to_str().expect("utf-8");
    // Two bare records (no root reaches them) of more than embedding size.
    let big = |c: char| format!("\"{}\"\n", c.to_string().repeat(500));
    let keep = etch(&home, &["put", "--no-root", s], &big('k'));
    let drop = etch(&home, &["put", "--no-root", s], &big('d'));
    assert_eq!((keep.code, drop.code), (0, 0), "{}{}", keep.err, drop.err);
    let (keep, drop) = (keep.out.trim().to_string(), drop.out.trim().to_string());
    let r = etch(
        &home,
        &["pin", "add", &keep, "--label", "invoices", "--store", s],
        "",
    );
    assert_eq!(
        (r.code, r.out.trim()),
        (0, format!("0x{keep}").as_str()),
        "{}",
        r.err
    );
    // A drive path pins its state now: it outlives the file's deletion.
    assert_eq!(
        etch(&home, &["drive", "mkdrive", "home", "--store", s], "").code,
        0
    );
    let file = tmp.path().join("f.txt");
    std::fs::write(&file, "x".repeat(9000)).expect("write");
    let f = file.to_str().expect("utf-8");
    assert_eq!(
        etch(&home, &["drive", "put", f, "home/f.txt", "--store", s], "").code,
        0
    );
    let r = etch(&home, &["pin", "add", "home/f.txt", "--store", s], "");
    assert_eq!(r.code, 0, "{}", r.err);
    let node_id = r.out.trim().trim_start_matches("0x").to_string();
    assert_eq!(
        etch(&home, &["drive", "rm", "home/f.txt", "--store", s], "").code,
        0
    );
    let r = etch(&home, &["pin", "ls", "--json", "--store", s], "");
    let lines: Vec<serde_json::Value> = r
        .out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.out);
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["id"] == id)
            .expect("listed")
            .clone()
    };
    assert_eq!(by_id(&keep)["label"], "invoices");
    assert_eq!(by_id(&keep)["source"], "id");
    assert_eq!(by_id(&node_id)["source"], "home/f.txt");

    let r = etch(&home, &["compact", "--prune-now", s], "");
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        etch(&home, &["get", s, &keep], "").code,
        0,
        "the pinned value is kept"
    );
    assert_ne!(
        etch(&home, &["get", s, &drop], "").code,
        0,
        "the unpinned one is gone"
    );
    let r = etch(&home, &["get", s, &node_id], "");
    assert_eq!(
        r.code, 0,
        "the pinned file node outlives its deletion: {}",
        r.err
    );

    let r = etch(&home, &["pin", "rm", &keep, "--store", s], "");
    assert_eq!(r.code, 0, "{}", r.err);
    let r = etch(&home, &["pin", "rm", &keep, "--store", s], "");
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no pin"), "{}", r.err);
    let r = etch(&home, &["pin", "add", &drop, "--store", s], "");
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains(":MISSING Not held by this node"),
        "{}",
        r.err
    );
    let r = etch(&home, &["compact", "--prune-now", s], "");
    assert_eq!(r.code, 0, "{}", r.err);
    assert_ne!(
        etch(&home, &["get", s, &keep], "").code,
        0,
        "unpinned, then compacted away"
    );
}

/// `etch pin --connect`: pins a running node's drive path (admin: the same Etch directory as
/// the server) and lists it; `etch status` reports it; a client without the node's key may look
/// but not pin.
#[test]
fn pins_over_connect() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let s = tmp.path().join("s");
    let s = s.to_str().expect("utf-8");
    assert_eq!(
        etch(
            &home,
            &["drive", "mkdrive", "home", "--create", "--store", s],
            ""
        )
        .code,
        0
    );
    let (mut child, _, addr) = serve_both(&home, std::path::Path::new(s));
    let r = etch(
        &home,
        &[
            "pin",
            "add",
            "home",
            "--label",
            "all of home",
            "--connect",
            &addr,
        ],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let r = etch(&home, &["pin", "ls", "--connect", &addr], "");
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("  home  all of home"), "{}", r.out);
    // `etch status` shows it, and any client may ask.
    let stranger = tmp.path().join("stranger");
    let r = etch(
        &stranger,
        &["status", "--connect", &addr, "--interval", "0.1"],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("\npins       1\n"), "{}", r.out);
    assert!(r.out.contains("# rates (per second"), "{}", r.out);
    let r = etch(
        &home,
        &["status", "--connect", &addr, "--interval", "0", "--json"],
        "",
    );
    let v: serde_json::Value = serde_json::from_str(r.out.trim()).expect("one JSON object");
    assert_eq!(v["operator"]["pins"], 1, "{v}");
    assert!(v["operator"]["commits"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert!(v["rates"]["statuses"].is_number(), "{v}");
    let r = etch(&stranger, &["pin", "add", "home", "--connect", &addr], "");
    assert_eq!(r.code, 1);
    assert!(r.err.contains(":TRUST"), "{}", r.err);
    let _ = child.kill();
    let _ = child.wait();
}
