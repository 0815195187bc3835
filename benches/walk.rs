//! Bounded memory when walking a stored tree: builds a large Blob (default 1 GiB, W2's data:
//! SplitMix64 seed 2) into an Etch store, then in a fresh process walks every chunk of it through
//! the store and reports the walking process's anonymous (heap) and file-backed resident memory.
//!
//! Run: `cargo bench -p etch-benches --bench walk` (`ETCH_WALK_MIB` sets the size, `ETCH_WALK_DIR`
//! where the store goes). The walking process is this binary re-run with `ETCH_WALK_STORE` set.

use etch_engine::store::{CellStore, EtchStore, Root};
use etch_formats::{Cell, Resolver};
use std::time::Instant;

/// A `/proc/self/status` figure in KiB (e.g. `VmHWM`, `RssAnon`, `RssFile`).
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Sums the bytes of a Blob tree through the store without keeping what it visits.
fn walk(cell: &Cell, store: &dyn Resolver) -> u64 {
    if let Some(b) = cell.flat_bytes() {
        return b.len() as u64;
    }
    cell.refs()
        .iter()
        .map(|r| walk(&r.fetch(store).expect("stored child"), store))
        .sum()
}

fn main() {
    if let Ok(path) = std::env::var("ETCH_WALK_STORE") {
        let store = EtchStore::open(&path, false).expect("open");
        let Root::Value(root) = store.root().expect("root") else {
            panic!("no root")
        };
        let start = Instant::now();
        let n = walk(&root, &store);
        // The file is memory-mapped: its pages count as RssFile (page cache, reclaimable). What
        // the walk itself holds is anonymous memory.
        println!(
            "walked {n} bytes in {:.2} s; walking process: RssAnon {} MiB (heap: cells, cache), RssFile {} MiB (mapped file pages), VmHWM {} MiB",
            start.elapsed().as_secs_f64(),
            status_kib("RssAnon:") / 1024,
            status_kib("RssFile:") / 1024,
            status_kib("VmHWM:") / 1024
        );
        return;
    }
    let mib: usize = std::env::var("ETCH_WALK_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = match std::env::var("ETCH_WALK_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let path = dir.path().join("walk.etch");
    {
        let data = etch_formats::gen::SplitMix64(2).bytes(mib << 20);
        let start = Instant::now();
        let blob = Cell::blob(&data);
        let store = EtchStore::create(&path).expect("create");
        store.set_root(&blob).expect("set_root");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "stored a {mib} MiB Blob ({}) in {secs:.2} s = {:.0} MB/s incl. hashing and sync",
            blob.id(),
            (mib << 20) as f64 / secs / 1e6
        );
    }
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env("ETCH_WALK_STORE", &path)
        .output()
        .expect("walker");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
}
