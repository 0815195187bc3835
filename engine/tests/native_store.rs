#![allow(clippy::unwrap_used)]
//! The native store's own promises (docs/FORMAT.md): index runs and their merging, recovery
//! from torn and damaged tails, snapshots, group commit, both I/O modes.

use etch_engine::store::native::run::parse_run_file_name;
use etch_engine::store::native::IoMode;
use etch_engine::store::{CellStore, NativeOptions, NativeStore, Root};
use etch_formats::gen::SplitMix64;
use etch_formats::{Cell, ValueId};
use std::path::Path;
use std::sync::Arc;

fn opts(io: IoMode, flush: usize) -> NativeOptions {
    NativeOptions {
        io,
        memtable_flush_entries: flush,
        ..NativeOptions::default()
    }
}

fn blob(seed: u64, len: usize) -> Cell {
    Cell::blob(&SplitMix64(seed).bytes(len))
}

fn run_files(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()
                .and_then(parse_run_file_name)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn both_io_modes_write_readable_stores() {
    for io in [IoMode::Uring, IoMode::Pwrite] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let cells: Vec<Cell> = (0..2000).map(|i| blob(i, 97)).collect();
        {
            let s = NativeStore::create(&path, opts(io, 1 << 20)).unwrap();
            eprintln!("requested {io:?}, writing with {:?}", s.io_mode());
            if io == IoMode::Pwrite {
                assert_eq!(s.io_mode(), IoMode::Pwrite);
            }
            for (i, c) in cells.iter().enumerate() {
                s.put(c).unwrap();
                if i % 100 == 99 {
                    s.set_root(c).unwrap();
                }
            }
        }
        let s = NativeStore::open(&path, false, opts(io, 1 << 20)).unwrap();
        for c in &cells {
            assert_eq!(s.get(c.id()).unwrap().as_ref(), Some(c));
        }
        assert_eq!(s.head().seq, 20);
        assert_eq!(s.root().unwrap(), Root::Value(cells[1999].clone()));
    }
}

#[test]
fn runs_are_written_merged_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r");
    let flush = 64;
    let n = 5000u64;
    {
        let s = NativeStore::create(&path, opts(IoMode::Pwrite, flush)).unwrap();
        for i in 0..n {
            s.put(&blob(i, 50)).unwrap();
            if i % 100 == 99 {
                s.commit().unwrap();
            }
        }
        s.commit().unwrap();
        let runs = s.runs();
        // Sizes at least double down the list: at most log2(n / flush) + 1 runs.
        let bound = ((n as f64 / flush as f64).log2().ceil() as usize) + 1;
        assert!(runs.len() <= bound, "{} runs: {runs:?}", runs.len());
        for w in runs.windows(2) {
            assert!(
                w[0].1 * 2 < w[1].1,
                "run sizes must at least double: {runs:?}"
            );
        }
        // Only the runs in use are on disk once their replacements are durable.
        let mut live: Vec<u64> = runs.iter().map(|r| r.0).collect();
        live.sort();
        assert_eq!(run_files(&path), live);
    }
    let s = NativeStore::open(&path, true, opts(IoMode::Pwrite, flush)).unwrap();
    for i in 0..n {
        let c = blob(i, 50);
        assert_eq!(s.get(c.id()).unwrap().as_ref(), Some(&c), "cell {i}");
    }
    assert_eq!(s.stats().unwrap().cells, n);
}

#[test]
fn a_torn_tail_is_cut_off_and_the_last_commit_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let committed = blob(1, 5000);
    let uncommitted = blob(2, 5000);
    let log_len = {
        let s = NativeStore::create(&path, opts(IoMode::Pwrite, 1 << 20)).unwrap();
        s.set_root(&committed).unwrap();
        std::fs::metadata(path.join("log")).unwrap().len()
    };
    // Bytes of a half-written frame after the last commit.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path.join("log"))
            .unwrap();
        f.write_all(b"EFRM\x01\0\0\0\xff\0\0\0garbage").unwrap();
    }
    {
        // A reader sees the last commit and changes nothing.
        let r = NativeStore::open(&path, false, opts(IoMode::Pwrite, 1 << 20)).unwrap();
        assert_eq!(r.root().unwrap(), Root::Value(committed.clone()));
        assert!(std::fs::metadata(path.join("log")).unwrap().len() > log_len);
    }
    let s = NativeStore::open(&path, true, opts(IoMode::Pwrite, 1 << 20)).unwrap();
    assert_eq!(std::fs::metadata(path.join("log")).unwrap().len(), log_len);
    assert_eq!(s.root().unwrap(), Root::Value(committed.clone()));
    s.set_root(&uncommitted).unwrap();
    drop(s);
    let s = NativeStore::open(&path, false, opts(IoMode::Pwrite, 1 << 20)).unwrap();
    assert_eq!(s.root().unwrap(), Root::Value(uncommitted));
}

#[test]
fn a_damaged_frame_rolls_back_to_the_commit_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let first = blob(10, 3000);
    let second = blob(11, 3000);
    let first_end = {
        let s = NativeStore::create(&path, opts(IoMode::Pwrite, 1 << 20)).unwrap();
        s.set_root(&first).unwrap();
        let end = s.head().log_end;
        s.set_root(&second).unwrap();
        end
    };
    // Flip one bit inside the second commit's DATA frame (after the first commit's end).
    let mut log = std::fs::read(path.join("log")).unwrap();
    log[first_end as usize + 100] ^= 0x08;
    std::fs::write(path.join("log"), &log).unwrap();
    // Drop the snapshot hint too, so recovery must scan the whole log.
    std::fs::write(path.join("snapshots"), b"").unwrap();
    let s = NativeStore::open(&path, true, opts(IoMode::Pwrite, 1 << 20)).unwrap();
    assert_eq!(s.root().unwrap(), Root::Value(first.clone()));
    assert_eq!(s.head().seq, 1);
    // The damaged commit's cells are not served.
    assert_eq!(s.get(second.id()).unwrap(), None);
    assert_eq!(s.snapshots().unwrap().len(), 1);
}

#[test]
fn snapshots_list_every_commit_and_open_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap");
    let roots: Vec<Cell> = (0..5)
        .map(|i| Cell::vector(vec![Cell::long(i), blob(100 + i as u64, 6000)]))
        .collect();
    {
        let s = NativeStore::create(&path, opts(IoMode::Pwrite, 1 << 20)).unwrap();
        for r in &roots {
            s.set_root(r).unwrap();
        }
        let snaps = s.snapshots().unwrap();
        assert_eq!(snaps.len(), 5);
        for (i, sn) in snaps.iter().enumerate() {
            assert_eq!(sn.commit.seq, i as u64 + 1);
            assert_eq!(sn.commit.root, Some(roots[i].id().0));
        }
    }
    let old = NativeStore::open_snapshot(&path, 3, opts(IoMode::Pwrite, 1 << 20)).unwrap();
    assert_eq!(old.root().unwrap(), Root::Value(roots[2].clone()));
    etch_formats::structure::verify_tree(&roots[2], &old).unwrap();
    assert!(matches!(
        NativeStore::open_snapshot(&path, 9, opts(IoMode::Pwrite, 1 << 20)),
        Err(etch_engine::store::NativeError::NoSnapshot(9))
    ));
    // A lost hint file is rebuilt from the log by a writable open.
    std::fs::remove_file(path.join("snapshots")).unwrap();
    std::fs::write(path.join("snapshots"), b"").unwrap();
    let s = NativeStore::open(&path, true, opts(IoMode::Pwrite, 1 << 20)).unwrap();
    assert_eq!(s.snapshots().unwrap().len(), 5);
}

#[test]
fn concurrent_commits_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let s =
        Arc::new(NativeStore::create(dir.path().join("g"), opts(IoMode::Pwrite, 1 << 20)).unwrap());
    let threads = 8u64;
    let per = 40u64;
    let before = s.sync_count();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    let c = blob(t * 10_000 + i, 120);
                    s.put(&c).unwrap();
                    s.commit().unwrap();
                    // Durable on return: the cell is in a commit.
                    assert!(s.head().cells > 0);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let commits = threads * per;
    let syncs = s.sync_count() - before;
    eprintln!("{commits} commits, {syncs} fdatasyncs");
    assert!(
        syncs < commits,
        "{syncs} syncs for {commits} commits: no coalescing"
    );
    assert_eq!(s.head().seq, commits);
}

#[test]
fn garbage_logs_never_panic() {
    let mut rng = SplitMix64(77);
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        {
            let s = NativeStore::create(&path, opts(IoMode::Pwrite, 8)).unwrap();
            for i in 0..30 {
                s.set_root(&blob(round * 100 + i, 200)).unwrap();
            }
        }
        let mut log = std::fs::read(path.join("log")).unwrap();
        for _ in 0..3 {
            let at = (rng.next_u64() % log.len() as u64) as usize;
            log[at] ^= 1 << (rng.next_u64() % 8);
        }
        if round % 2 == 0 {
            log.truncate((rng.next_u64() % log.len() as u64) as usize);
        }
        std::fs::write(path.join("log"), &log).unwrap();
        if round % 3 == 0 {
            std::fs::write(path.join("snapshots"), b"").unwrap();
        }
        // Opening either works (at some earlier commit) or fails with an error; reads of what
        // the store names never panic.
        if let Ok(s) = NativeStore::open(&path, round % 4 == 0, opts(IoMode::Pwrite, 8)) {
            if let Ok(Root::Value(r)) = s.root() {
                let _ = etch_formats::structure::verify_tree(&r, &s);
            }
            let _ = s.get(&ValueId([1; 32]));
        }
    }
}

#[test]
fn a_damaged_record_is_an_error_never_a_wrong_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec");
    let cells: Vec<Cell> = (0..200).map(|i| blob(500 + i, 150)).collect();
    {
        // A tiny memtable: the records end up in index runs, so recovery does not re-read
        // their frames and the damage is met by the read itself.
        let s = NativeStore::create(&path, opts(IoMode::Pwrite, 16)).unwrap();
        for c in &cells {
            s.put(c).unwrap();
        }
        s.set_root(&cells[199]).unwrap();
        assert!(!s.runs().is_empty());
    }
    let mut log = std::fs::read(path.join("log")).unwrap();
    // The first record's encoding starts after the frame header (16) and record header (40).
    log[16 + 40 + 20] ^= 0x01;
    std::fs::write(path.join("log"), &log).unwrap();
    let s = NativeStore::open(&path, false, opts(IoMode::Pwrite, 16)).unwrap();
    let err = s.get(cells[0].id()).unwrap_err().to_string();
    assert!(err.contains("record checksum mismatch"), "{err}");
    // The others are fine.
    for c in &cells[1..] {
        assert_eq!(s.get(c.id()).unwrap().as_ref(), Some(c));
    }
}

/// Readers on other threads find every cell already put while the writer keeps flushing the
/// memtable into runs and merging them (the index is sharded: each shard's swap of runs and
/// memtable must never hide an id).
#[test]
fn readers_see_every_put_cell_through_flushes_and_merges() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(NativeStore::create(dir.path().join("c"), opts(IoMode::Pwrite, 32)).unwrap());
    let n = 6000u64;
    let done_upto = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (s, done_upto, stop) = (s.clone(), done_upto.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = SplitMix64(77 + t);
                let mut checked = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let upto = done_upto.load(Ordering::Acquire);
                    if upto == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    let i = rng.next_u64() % upto;
                    let c = blob(i, 40);
                    assert_eq!(
                        s.get(c.id()).unwrap().as_ref(),
                        Some(&c),
                        "cell {i} of {upto}"
                    );
                    assert!(s.contains(c.id()).unwrap());
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    // One cell at a time, then batches (whose leaves are indexed together).
    for i in 0..n / 2 {
        s.put(&blob(i, 40)).unwrap();
        done_upto.store(i + 1, Ordering::Release);
        if i % 500 == 499 {
            s.commit().unwrap();
        }
    }
    for from in (n / 2..n).step_by(300) {
        let batch: Vec<Cell> = (from..from + 300).map(|i| blob(i, 40)).collect();
        s.put_many(&batch).unwrap();
        done_upto.store(from + 300, Ordering::Release);
        s.commit().unwrap();
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(s.runs().len() > 1, "flushes happened: {:?}", s.runs());
}

#[test]
fn put_many_stores_each_leaf_once_through_runs_and_flushes() {
    // Batches that overlap: part of each batch is in a run already, part in the memtable,
    // part repeated inside the batch; a tree of the batch's own earlier leaves sits in the
    // middle of one; one batch is longer than a chunk of leaves and flushes inside it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let flush = 100;
    let leaf = |i: u64| blob(i, 60);
    let mut expected: Vec<Cell> = Vec::new();
    let distinct_cells;
    {
        let s = NativeStore::create(&path, opts(IoMode::Pwrite, flush)).unwrap();
        for (from, to) in [(0u64, 700u64), (350, 1050), (0, 6000)] {
            let mut batch: Vec<Cell> = (from..to).map(leaf).collect();
            // Repeats in the same run of leaves as the cells they repeat (after the tree).
            batch.extend((to - 20..to).map(leaf));
            let tree = Cell::vector((from + 5..from + 25).map(leaf).collect());
            batch.insert(batch.len() / 2, tree.clone());
            batch.push(leaf(to + 100_000));
            s.put_many(&batch).unwrap();
            expected.extend(batch);
            assert!(
                !s.runs().is_empty(),
                "the memtable was flushed inside put_many"
            );
            s.commit().unwrap();
        }
        // Each cell once, as when put one by one (the trees add their inner nodes).
        let one_by_one =
            NativeStore::create(dir.path().join("o"), opts(IoMode::Pwrite, flush)).unwrap();
        for c in &expected {
            one_by_one.put(c).unwrap();
        }
        one_by_one.commit().unwrap();
        distinct_cells = one_by_one.stats().unwrap().cells;
        assert_eq!(distinct_cells, 6000 + 3 + 2 * 2);
        assert_eq!(s.stats().unwrap().cells, distinct_cells);
        for c in &expected {
            assert_eq!(s.get(c.id()).unwrap().as_ref(), Some(c));
        }
    }
    let s = NativeStore::open(&path, true, opts(IoMode::Pwrite, flush)).unwrap();
    assert_eq!(s.stats().unwrap().cells, distinct_cells);
    for c in &expected {
        assert_eq!(s.get(c.id()).unwrap().as_ref(), Some(c));
    }
}
