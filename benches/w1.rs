//! Workload W1 of `../shared/bench/README.md` on the CAD047 `EtchStore`: 1,000,000 Blobs of 97
//! bytes (SplitMix64 seed 1), each stored as a top-level cell, with a durable commit (root set
//! to the last blob) after every 1,000 cells. Also W1-nosync (one sync at the end).
//!
//! Run: `cargo bench -p etch-benches --bench w1` (`ETCH_W1_CELLS` changes the count;
//! `ETCH_W1_DIR` the directory of the store, default a temporary one).

use etch_engine::store::cad047::{status, EtchFile};
use etch_engine::store::{CellStore, EtchStore};
use etch_formats::gen::SplitMix64;
use etch_formats::Cell;
use std::time::Instant;

fn main() {
    let cells: usize = std::env::var("ETCH_W1_CELLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = match std::env::var("ETCH_W1_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temporary directory");
    // Data is generated before the timer starts.
    let mut rng = SplitMix64(1);
    let data: Vec<Vec<u8>> = (0..cells)
        .map(|_| {
            let mut b = rng.bytes(97);
            b.shrink_to_fit();
            b
        })
        .collect();

    // W1: durable commit every 1,000 cells through the CellStore API.
    let path = dir.path().join("w1.etch");
    let store = EtchStore::create(&path).expect("create");
    let mut commit_ms = Vec::new();
    let start = Instant::now();
    let mut last = None;
    for (i, d) in data.iter().enumerate() {
        let c = Cell::blob(d);
        store.put(&c).expect("put");
        if (i + 1) % 1000 == 0 || i + 1 == cells {
            let t = Instant::now();
            store.set_root(&c).expect("set_root");
            commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        last = Some(c);
    }
    let secs = start.elapsed().as_secs_f64();
    commit_ms.sort_by(|a, b| a.total_cmp(b));
    let p50 = commit_ms[commit_ms.len() / 2];
    let root = last.map(|c| c.id().to_hex()).unwrap_or_default();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("W1 (durable commit per 1,000): {cells} cells in {secs:.2} s = {:.0} cells/s; commit p50 {p50:.2} ms; file {:.1} MB", cells as f64 / secs, size as f64 / 1e6);
    println!("W1 final root {root}");
    drop(store);

    // W1-nosync: same writes, root set every 1,000 cells, one sync at the end (file layer).
    let path = dir.path().join("w1-nosync.etch");
    let mut f = EtchFile::create(&path).expect("create");
    let start = Instant::now();
    for (i, d) in data.iter().enumerate() {
        let c = Cell::blob(d);
        f.write(&c.id().0, c.encoding(), status::PERSISTED, 0)
            .expect("write");
        if (i + 1) % 1000 == 0 {
            f.set_root(c.id().0).expect("root");
        }
    }
    f.commit().expect("commit");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "W1-nosync (one sync at the end): {:.0} cells/s",
        cells as f64 / secs
    );
}
