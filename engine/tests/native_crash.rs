#![allow(clippy::unwrap_used)]
//! Durability of the native store under SIGKILL during a W1-like load: a writer process puts
//! batches of 1,000 small blobs and commits after each (small memtable, so index runs are
//! written and merged too), and is killed at a random moment, 100 times over the same store.
//! After every kill the store must open (writable, so recovery cuts the tail), its root must
//! be the last root whose commit returned (or a newer one), and every cell of every reported
//! batch must be there. Nothing of a batch whose commit was never reported may be half-served:
//! its cells are either all present or the batch's commit is absent.
//!
//! The writer is this same test binary re-run with `ETCH_NATIVE_CRASH_CHILD` set.

use etch_engine::store::native::IoMode;
use etch_engine::store::{CellStore, NativeOptions, NativeStore, Root};
use etch_formats::gen::SplitMix64;
use etch_formats::Cell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BATCH: u64 = 1000;

fn options() -> NativeOptions {
    NativeOptions {
        io: if std::env::var("ETCH_CRASH_PWRITE").is_ok() {
            IoMode::Pwrite
        } else {
            IoMode::Uring
        },
        memtable_flush_entries: 2500,
        ..NativeOptions::default()
    }
}

/// Batch `b` of round `round`: 1,000 Blobs of 97 bytes, as in W1.
fn batch(round: u64, b: u64) -> Vec<Cell> {
    let mut rng = SplitMix64(round << 32 | b);
    (0..BATCH).map(|_| Cell::blob(&rng.bytes(97))).collect()
}

#[test]
fn native_writer_child() {
    let Ok(path) = std::env::var("ETCH_NATIVE_CRASH_CHILD") else {
        return;
    };
    let round: u64 = std::env::var("ETCH_CRASH_ROUND").unwrap().parse().unwrap();
    let store = if std::path::Path::new(&path).exists() {
        NativeStore::open(&path, true, options()).unwrap()
    } else {
        NativeStore::create(&path, options()).unwrap()
    };
    for b in 0.. {
        let cells = batch(round, b);
        for c in &cells {
            store.put(c).unwrap();
        }
        store.set_root(&cells[cells.len() - 1]).unwrap();
        println!("COMMIT {round} {b}");
    }
}

#[test]
fn killed_native_writers_lose_no_committed_cell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash-native");
    let exe = std::env::current_exe().unwrap();
    let mut rng = SplitMix64(4242);
    let mut reported: Vec<(u64, u64)> = Vec::new();
    let mut kills_mid_run = 0;
    for round in 0..100u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "native_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ETCH_NATIVE_CRASH_CHILD", &path)
            .env("ETCH_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + rng.next_u64() % 150));
        child.kill().unwrap(); // SIGKILL
        let out = child.stdout.take().unwrap();
        if !child.wait().unwrap().success() {
            kills_mid_run += 1;
        }
        let printed: Vec<(u64, u64)> = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| {
                let mut w = l.strip_prefix("COMMIT ")?.split(' ');
                Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
            })
            .collect();
        reported.extend(printed.iter().copied());
        if !path.exists() {
            continue; // killed before it created the store
        }
        let store = NativeStore::open(&path, true, options())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        match store.root().unwrap() {
            Root::Unset => assert!(reported.is_empty(), "round {round}: root lost"),
            Root::Value(root) => {
                if let Some(&(r, b)) = printed.last() {
                    let last = batch(r, b);
                    let newer = batch(r, b + 1);
                    let ok = root == last[last.len() - 1] || root == newer[newer.len() - 1];
                    assert!(
                        ok,
                        "round {round}: root is neither the last reported nor the next"
                    );
                }
            }
        }
        // Every cell of the last reported batch of this round is there.
        if let Some(&(r, b)) = printed.last() {
            for c in batch(r, b) {
                assert!(
                    store.contains(c.id()).unwrap(),
                    "round {round}: lost a cell"
                );
            }
        }
        // An unreported batch is all or nothing as far as commits go: if its commit is the
        // root, all its cells are present.
        if let Root::Value(root) = store.root().unwrap() {
            let (r, b) = printed.last().map_or((round, 0), |&(r, b)| (r, b + 1));
            let next = batch(r, b);
            if root == next[next.len() - 1] {
                for c in &next {
                    assert!(
                        store.contains(c.id()).unwrap(),
                        "round {round}: half a commit"
                    );
                }
            }
        }
    }
    assert!(
        kills_mid_run >= 90,
        "the writer must be killed while running"
    );
    assert!(
        reported.len() >= 100,
        "only {} commits reported",
        reported.len()
    );
    // At the end, every cell of every reported batch, read and checked against its ID.
    let store = NativeStore::open(&path, false, options()).unwrap();
    for &(r, b) in &reported {
        for c in batch(r, b) {
            assert_eq!(store.get(c.id()).unwrap().as_ref(), Some(&c));
        }
    }
    eprintln!(
        "{} commits reported over 100 kills; {} runs in use",
        reported.len(),
        store.runs().len()
    );
}
