#![allow(clippy::unwrap_used)]
//! Durability under process crashes: a writer process commits roots in a loop and is killed
//! with SIGKILL at a random moment, 100 times over the same file. After every kill the store must
//! reopen, its root must be the last root whose `set_root` returned (or a later one), and that
//! root's whole tree must be present and valid. Every root ever reported stays readable.
//!
//! The writer is this same test binary re-run with `ETCH_CRASH_CHILD` set (see `writer_child`).

use etch_engine::store::{CellStore, EtchStore, Root};
use etch_formats::gen::SplitMix64;
use etch_formats::structure::verify_tree;
use etch_formats::{Cell, ValueId};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn round_value(round: u64, i: u64) -> Cell {
    let mut rng = SplitMix64(round * 1_000_003 + i);
    let size = (rng.next_u64() % 30_000) as usize + 1;
    let blob = Cell::blob(&rng.bytes(size));
    let entries = (0..(rng.next_u64() % 40))
        .map(|k| {
            (
                Cell::long(k as i64),
                Cell::string(&format!("r{round}-{i}-{k}-{}", "p".repeat(150))),
            )
        })
        .collect();
    Cell::vector(vec![Cell::long(i as i64), blob, Cell::map(entries)])
}

/// The writer: commits a new root over and over, printing each ID once `set_root` returned.
#[test]
fn writer_child() {
    let Ok(path) = std::env::var("ETCH_CRASH_CHILD") else {
        return;
    };
    let round: u64 = std::env::var("ETCH_CRASH_ROUND").unwrap().parse().unwrap();
    let store = EtchStore::open_or_create(&path).unwrap();
    for i in 0.. {
        let v = round_value(round, i);
        store.set_root(&v).unwrap();
        println!("ROOT {}", v.id());
    }
}

#[test]
fn killed_writers_never_lose_committed_roots() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.etch");
    let exe = std::env::current_exe().unwrap();
    let mut rng = SplitMix64(2026);
    let mut all_roots: Vec<ValueId> = Vec::new();
    let mut kills_mid_run = 0;
    for round in 0..100u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env("ETCH_CRASH_CHILD", &path)
            .env("ETCH_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + rng.next_u64() % 60));
        child.kill().unwrap(); // SIGKILL
        let out = child.stdout.take().unwrap();
        let status = child.wait().unwrap();
        if !status.success() {
            kills_mid_run += 1;
        }
        let printed: Vec<ValueId> = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ROOT ").and_then(ValueId::from_hex))
            .collect();
        all_roots.extend(printed.iter().copied());
        let store = EtchStore::open(&path, false)
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        match store.root().unwrap() {
            Root::Unset => assert!(all_roots.is_empty(), "round {round}: root lost"),
            Root::Value(root) => {
                if let Some(last) = printed.last() {
                    // Either the last reported root, or one committed after it before the kill.
                    let newer_unreported = !all_roots.contains(root.id());
                    assert!(
                        root.id() == last || newer_unreported,
                        "round {round}: root went back to an older one"
                    );
                }
                verify_tree(&root, &store)
                    .unwrap_or_else(|e| panic!("round {round}: root tree incomplete: {e}"));
            }
        }
        // Every root ever reported is still there, whole (spot-check the latest few).
        for id in all_roots.iter().rev().take(3) {
            let cell = store
                .get(id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: committed root {id} lost"));
            verify_tree(&cell, &store).unwrap();
        }
    }
    assert!(
        kills_mid_run >= 90,
        "the writer must be killed while running, not exit on its own"
    );
    assert!(
        all_roots.len() > 100,
        "the writer must have committed roots ({} seen)",
        all_roots.len()
    );
    // And all of them at the end.
    let store = EtchStore::open(&path, false).unwrap();
    for id in &all_roots {
        verify_tree(&store.get(id).unwrap().unwrap(), &store).unwrap();
    }
}
