//! Crash consistency of both stores on the simulated disk of the I/O seam (`store::io::sim`),
//! after redb's crash tests: a store holds an acknowledged root A, then commits B; a fault is
//! injected at every write and sync point of that commit in turn (a crash, a torn write, `EIO`,
//! `ENOSPC`), and every disk image that can survive is reopened — what a process crash leaves,
//! what a power loss leaves (no unsynced write, all of them, and random subsets: pages reach the
//! disk in any order). Each time the store must open, its root must be the newest acknowledged
//! one (or the unacknowledged B), its whole tree must be readable, and it must take new commits.
//! A failed commit must leave the store refusing commits until it is reopened.

use etch_engine::store::io::sim::{Fault, Op, SimDisk};
use etch_engine::store::native::IoMode;
use etch_engine::store::{CellStore, EtchStore, NativeOptions, NativeStore, Root};
use etch_formats::body::branches_preorder;
use etch_formats::gen::SplitMix64;
use etch_formats::{Cell, ValueId};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Native,
    Cad047,
}

/// A tree with a few dozen branch cells; `seed` varies it, and consecutive seeds share cells.
fn value(seed: u64) -> Cell {
    let shared = Cell::vector(
        (0..20)
            .map(|i| Cell::string(&format!("shared {i} {}", "x".repeat(150))))
            .collect(),
    );
    let own = Cell::vector(
        (0..20)
            .map(|i| Cell::string(&format!("own {seed} {i} {}", "y".repeat(150))))
            .collect(),
    );
    let blob = Cell::blob(&SplitMix64(seed).bytes(9000));
    Cell::index(vec![
        (Cell::keyword("blob").unwrap(), blob),
        (Cell::keyword("own").unwrap(), own),
        (Cell::keyword("shared").unwrap(), shared),
        (Cell::keyword("seed").unwrap(), Cell::long(seed as i64)),
    ])
    .unwrap()
}

fn path(dir: &Path, format: Format) -> PathBuf {
    match format {
        Format::Native => dir.join("native"),
        Format::Cad047 => dir.join("store.etch"),
    }
}

fn native_options(disk: &SimDisk) -> NativeOptions {
    NativeOptions {
        disk: Arc::new(disk.clone()),
        io: IoMode::Pwrite,
        ..NativeOptions::default()
    }
}

fn create(format: Format, dir: &Path, disk: &SimDisk) -> Box<dyn CellStore> {
    let p = path(dir, format);
    match format {
        Format::Native => Box::new(NativeStore::create(&p, native_options(disk)).unwrap()),
        Format::Cad047 => Box::new(EtchStore::create_on(disk, &p).unwrap()),
    }
}

fn open(format: Format, dir: &Path, disk: &SimDisk) -> Result<Box<dyn CellStore>, String> {
    let p = path(dir, format);
    match format {
        Format::Native => NativeStore::open(&p, true, native_options(disk))
            .map(|s| Box::new(s) as Box<dyn CellStore>)
            .map_err(|e| e.to_string()),
        Format::Cad047 => EtchStore::open_on(disk, &p, true)
            .map(|s| Box::new(s) as Box<dyn CellStore>)
            .map_err(|e| e.to_string()),
    }
}

/// The root and the check that its whole tree reads back.
fn whole_root(store: &dyn CellStore) -> Result<Option<ValueId>, String> {
    match store.root().map_err(|e| format!("root: {e}"))? {
        Root::Unset => Ok(None),
        Root::Value(r) => {
            branches_preorder(&r, store).map_err(|e| format!("tree of {}: {e}", r.id()))?;
            Ok(Some(*r.id()))
        }
    }
}

/// What one run of the scenario left: the disk, which roots were acknowledged, B's outcome,
/// and whether C (tried after B failed) was refused.
struct Outcome {
    disk: SimDisk,
    acked_b: bool,
    b_error: Option<String>,
    c_refused_after_failure: bool,
}

/// A acknowledged, then B with `fault` at point `base + k` (counted from B's first point).
/// Returns the outcome and the number of points B took.
fn scenario(format: Format, dir: &Path, fault: Option<(usize, Fault)>) -> (Outcome, usize) {
    let disk = SimDisk::new();
    let store = create(format, dir, &disk);
    store.set_root(&value(1)).unwrap();
    let base = disk.points().len();
    if let Some((k, f)) = fault {
        disk.fail_at(base + k, f);
    }
    let b = store.set_root(&value(2));
    let b_points = disk.points().len() - base;
    let mut c_refused_after_failure = true;
    if b.is_err() && !disk.crashed() {
        // The disk works again; the store must not.
        c_refused_after_failure = store.set_root(&value(3)).is_err();
    }
    drop(store);
    (
        Outcome {
            disk,
            acked_b: b.is_ok(),
            b_error: b.err().map(|e| e.to_string()),
            c_refused_after_failure,
        },
        b_points,
    )
}

/// Reopens `image` and checks it: root A or B (B if acknowledged), whole, and a new commit
/// works and survives a clean reopen.
fn check_image(format: Format, dir: &Path, image: &SimDisk, acked_b: bool, what: &str) {
    let (a, b, d) = (*value(1).id(), *value(2).id(), value(4));
    let store = open(format, dir, image).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let root = whole_root(store.as_ref()).unwrap_or_else(|e| panic!("{what}: {e}"));
    if acked_b {
        assert_eq!(root, Some(b), "{what}: the acknowledged root B");
    } else {
        assert!(
            root == Some(a) || root == Some(b),
            "{what}: root {root:?} is neither A nor B"
        );
    }
    store
        .set_root(&d)
        .unwrap_or_else(|e| panic!("{what}: a commit after recovery: {e}"));
    drop(store);
    let store = open(format, dir, image).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    assert_eq!(whole_root(store.as_ref()).unwrap(), Some(*d.id()), "{what}");
}

/// Every image a crash can leave behind.
fn images(disk: &SimDisk, seed: u64) -> Vec<(String, SimDisk)> {
    let n = disk.unsynced_writes();
    let mut out = vec![
        ("process crash".to_string(), disk.after_process_crash()),
        (
            "power loss, no unsynced write kept".to_string(),
            disk.after_power_loss(&mut |_| false),
        ),
        (
            "power loss, every unsynced write kept".to_string(),
            disk.after_power_loss(&mut |_| true),
        ),
    ];
    if n > 1 {
        for r in 0..4u64 {
            let mut rng = SplitMix64(seed * 31 + r);
            out.push((
                format!("power loss, random subset {r} of {n} unsynced writes"),
                disk.after_power_loss(&mut |_| rng.next_u64() & 1 == 1),
            ));
        }
    }
    out
}

/// Crash (and torn writes) at every point of commit B.
fn crash_at_every_point(format: Format) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let (_, points) = scenario(format, &tmp.path().join("count"), None);
    let kinds: Vec<Op> = {
        let disk = SimDisk::new();
        let dir = tmp.path().join("kinds");
        let store = create(format, &dir, &disk);
        store.set_root(&value(1)).unwrap();
        let base = disk.points().len();
        store.set_root(&value(2)).unwrap();
        disk.points()[base..].iter().map(|p| p.op).collect()
    };
    assert_eq!(kinds.len(), points);
    let last_sync = (0..points).rev().find(|k| kinds[*k] == Op::Sync).unwrap();
    let mut checked = 0;
    for (k, kind) in kinds.iter().enumerate() {
        let mut faults = vec![Fault::Crash];
        if *kind == Op::Write {
            faults.extend([
                Fault::Torn(0),
                Fault::Torn(1),
                Fault::Torn(7),
                Fault::Torn(100),
            ]);
        }
        for fault in faults {
            let dir = tmp.path().join(format!("p{k}-{fault:?}"));
            let (o, _) = scenario(format, &dir, Some((k, fault)));
            // A crash after B's last sync (on the snapshots hint) leaves B durable and
            // acknowledged; anywhere before, B must not be acknowledged.
            if o.acked_b {
                assert!(
                    k > last_sync,
                    "{format:?}: B acknowledged despite {fault:?} at {k}"
                );
            }
            for (what, image) in images(&o.disk, k as u64) {
                let what = format!("{format:?}: {fault:?} at point {k} of {points}, {what}");
                check_image(format, &dir, &image, o.acked_b, &what);
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn native_survives_a_crash_at_every_point_of_a_commit() {
    let n = crash_at_every_point(Format::Native);
    eprintln!("native: {n} crash images checked");
}

#[test]
fn cad047_survives_a_crash_at_every_point_of_a_commit() {
    let n = crash_at_every_point(Format::Cad047);
    eprintln!("cad047: {n} crash images checked");
}

/// Bytes at the end of the last write torn at every byte (before them, every 37th).
const TORN_EVERY_BYTE_TAIL: usize = 1024;

/// The last write of commit B torn at every byte of its last KiB, and every 37th byte before.
fn torn_last_write_at_every_byte(format: Format) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let disk = SimDisk::new();
    let store = create(format, &tmp.path().join("count"), &disk);
    store.set_root(&value(1)).unwrap();
    let base = disk.points().len();
    store.set_root(&value(2)).unwrap();
    drop(store);
    let points = disk.points();
    // The last write to the log or the CAD047 file (not to the snapshots hint).
    let main = match format {
        Format::Native => tmp.path().join("count/native/log"),
        Format::Cad047 => tmp.path().join("count/store.etch"),
    };
    let last = (base..points.len())
        .rev()
        .find(|i| points[*i].op == Op::Write && points[*i].path == main)
        .unwrap();
    let len = points[last].bytes as usize;
    let mut checked = 0;
    // The native log's last write holds the commit's DATA frame and its COMMIT frame together
    // (small frames go out in one pwrite): every byte of its last KiB (the COMMIT frame and
    // the DATA frame's end), and every 37th byte before (a prime stride, so every offset
    // within the 8-byte frame alignment and every record's header is hit somewhere).
    let tail = len.saturating_sub(TORN_EVERY_BYTE_TAIL);
    let cuts = (0..tail).step_by(37).chain(tail..len);
    for n in cuts {
        let dir = tmp.path().join(format!("t{n}"));
        let (o, _) = scenario(format, &dir, Some((last - base, Fault::Torn(n))));
        assert!(!o.acked_b);
        for (what, image) in images(&o.disk, n as u64).into_iter().take(3) {
            let what = format!("{format:?}: last write torn at byte {n} of {len}, {what}");
            check_image(format, &dir, &image, false, &what);
            checked += 1;
        }
    }
    eprintln!("{format:?}: last write of {len} bytes torn, {checked} images");
    checked
}

#[test]
fn native_last_frame_torn_at_every_byte() {
    torn_last_write_at_every_byte(Format::Native);
}

#[test]
fn cad047_last_write_torn_at_every_byte() {
    torn_last_write_at_every_byte(Format::Cad047);
}

/// `EIO` from every sync (and every write) of commit B: B is reported failed, the store then
/// refuses commits, and a reopen holds A (or B) whole.
fn eio_and_enospc(format: Format) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let (_, points) = scenario(format, &tmp.path().join("count"), None);
    let mut checked = 0;
    for k in 0..points {
        for fault in [Fault::Eio, Fault::Enospc] {
            let dir = tmp.path().join(format!("f{k}-{fault:?}"));
            let (o, _) = scenario(format, &dir, Some((k, fault)));
            let what = format!("{format:?}: {fault:?} at point {k} of {points}");
            if o.acked_b {
                // A fault on a write the commit did not need to wait for (the snapshots hint).
                check_image(format, &dir, &o.disk.after_process_crash(), true, &what);
                checked += 1;
                continue;
            }
            let err = o.b_error.clone().unwrap_or_default();
            let expect = match fault {
                Fault::Eio => "Input/output error",
                _ => "No space left on device",
            };
            assert!(err.contains(expect), "{what}: error {err:?}");
            assert!(
                o.c_refused_after_failure,
                "{what}: a commit after the failure was taken"
            );
            for (w, image) in images(&o.disk, k as u64).into_iter().take(3) {
                check_image(format, &dir, &image, false, &format!("{what}, {w}"));
                checked += 1;
            }
        }
    }
    eprintln!("{format:?}: EIO and ENOSPC at each of {points} points, {checked} images");
    checked
}

#[test]
fn native_eio_and_enospc_at_every_point() {
    eio_and_enospc(Format::Native);
}

#[test]
fn cad047_eio_and_enospc_at_every_point() {
    eio_and_enospc(Format::Cad047);
}
