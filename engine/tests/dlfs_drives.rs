//! DLFS drives beyond the basic operations: streamed Blob trees, import/export, private
//! (encrypted) files, mv, metadata, tombstone expiry, `dlfs:` URIs, replicas that converge
//! in either merge order, and signed drives that refuse forged updates on merge.

use ed25519_dalek::SigningKey;
use etch_engine::dlfs::blob::{store_reader, write_blob, BlobReader, BlobWriter, BATCH_BYTES};
use etch_engine::dlfs::crypt::ContentKey;
use etch_engine::dlfs::host::{
    export_tree, file_reader, import_tree, scan_host, store_contents, PutOptions, TransferError,
};
use etch_engine::dlfs::{self, DlfsUri, DrivePath};
use etch_engine::lattice::dlfs::{directory, file, tombstone, zero};
use etch_engine::lattice::{sign, value_at_path, Lattice, MergeContext};
use etch_engine::node::LocalNode;
use etch_engine::store::native::IoMode;
use etch_engine::store::{CellStore, NativeOptions, NativeStore};
use etch_formats::text::read::read_one;
use etch_formats::value::{blob_bytes, vector_get};
use etch_formats::{Cell, NoResolver, Resolver};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const R: &NoResolver = &NoResolver;

fn p(text: &str) -> DrivePath {
    DrivePath::parse(text).unwrap_or_else(|e| panic!("parsing {text}: {e}"))
}

fn kw(name: &str) -> Cell {
    Cell::keyword(name).unwrap()
}

fn native(dir: &Path) -> Arc<dyn CellStore> {
    let options = NativeOptions {
        io: IoMode::Pwrite,
        ..NativeOptions::default()
    };
    Arc::new(NativeStore::create(dir, options).expect("store"))
}

/// Deterministic bytes from a seed (splitmix64).
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------------
// Streamed Blob trees
// ---------------------------------------------------------------------------------------------

#[test]
fn streamed_blobs_equal_the_blob_of_the_whole_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = native(&tmp.path().join("s"));
    // Batch boundaries with small batches (cheap in debug builds); the real 8 MiB batch in
    // release builds.
    let mut cases: Vec<(usize, usize)> = [
        0usize,
        1,
        4095,
        4096,
        4097,
        65536,
        65537,
        16 * 65536,
        16 * 65536 + 1,
        3 * 65536 * 16 + 4096 * 5 + 17,
    ]
    .iter()
    .flat_map(|&n| [(n, 20_480), (n, 65_536)])
    .collect();
    if !cfg!(debug_assertions) {
        cases.push(((8 << 20) + 4096 * 17 + 5, BATCH_BYTES));
        cases.push((17 << 20, BATCH_BYTES));
    }
    for (i, &(n, batch)) in cases.iter().enumerate() {
        let data = bytes(i as u64, n);
        let expected = Cell::blob(&data);
        // In uneven pieces, and straight from a reader.
        let mut w = BlobWriter::with_batch_bytes(store.as_ref(), batch);
        for piece in data.chunks(7919) {
            w.push(piece).unwrap();
        }
        assert_eq!(w.len(), n as u64);
        let top = w.finish().unwrap();
        assert_eq!(top.id(), expected.id(), "pushed, n = {n}");
        let mut w = BlobWriter::with_batch_bytes(store.as_ref(), batch);
        let len = w.read_from(&mut &data[..]).unwrap();
        let top2 = w.finish().unwrap();
        assert_eq!((top2.id(), len), (expected.id(), n as u64), "read, n = {n}");
        // Everything is in the store: read back through it, by leaf and as a reader.
        let fresh = store.get(top.id()).unwrap();
        let back = match fresh {
            Some(c) => c,
            None => top.clone(), // embedded (≤ 140 bytes): not a record of its own
        };
        let mut out = Vec::new();
        let mut seen = 0u64;
        write_blob(&back, store.as_ref(), &mut out, &mut |k| seen += k).unwrap();
        assert_eq!((out.len(), seen), (n, n as u64));
        assert!(out == data, "n = {n}");
        let mut out2 = Vec::new();
        BlobReader::new(&back, store.as_ref())
            .read_to_end(&mut out2)
            .unwrap();
        assert!(out2 == data, "reader, n = {n}");
    }
    // The plain constructor and `store_reader` use the real batch size.
    let data = bytes(99, 200_000);
    let (top, len) = store_reader(store.as_ref(), &mut &data[..]).unwrap();
    assert_eq!((top.id(), len), (Cell::blob(&data).id(), 200_000));
}

// ---------------------------------------------------------------------------------------------
// Import and export
// ---------------------------------------------------------------------------------------------

fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("a/one.txt"), b"one").unwrap();
    std::fs::write(root.join("a/b/empty"), b"").unwrap();
    std::fs::write(root.join("a/b/c/big"), bytes(1, 300_000)).unwrap();
    std::fs::write(root.join("a/b/c/big-copy"), bytes(1, 300_000)).unwrap();
    std::fs::write(root.join("top"), bytes(2, 5000)).unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    let mut ea: Vec<_> = std::fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut eb: Vec<_> = std::fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    ea.sort();
    eb.sort();
    assert_eq!(ea, eb, "{} vs {}", a.display(), b.display());
    for name in ea {
        let (pa, pb) = (a.join(&name), b.join(&name));
        if pa.is_dir() {
            assert!(pb.is_dir());
            same_tree(&pa, &pb);
        } else {
            assert!(
                std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap(),
                "{}",
                pa.display()
            );
        }
    }
}

#[test]
fn import_export_round_trip_and_a_second_import_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = native(&tmp.path().join("s"));
    let host = tmp.path().join("host");
    write_tree(&host);
    std::os::unix::fs::symlink(host.join("top"), host.join("link")).unwrap();
    let odd: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(b"bad-\xff");
    std::fs::write(host.join(odd), b"x").unwrap();
    let (tree, scan) = scan_host(&host).unwrap();
    assert_eq!(
        (scan.files, scan.directories, scan.bytes),
        (5, 5, 3 + 600_000 + 5000)
    );
    let listed = |l: &[(std::path::PathBuf, String)]| -> Vec<String> {
        l.iter()
            .map(|(p, why)| format!("{}: {why}", p.file_name().unwrap().to_string_lossy()))
            .collect()
    };
    assert_eq!(
        listed(&scan.skipped),
        ["link: symbolic link (not followed)"]
    );
    assert_eq!(
        listed(&scan.refused),
        ["bad-\u{fffd}: name is not UTF-8 (DLFS names are text)"]
    );
    std::fs::remove_file(host.join("link")).unwrap();
    std::fs::remove_file(host.join(odd)).unwrap();
    let opts = PutOptions { encrypt: None };
    let before = store.stats().unwrap().encoding_bytes;
    let (d1, rep) = import_tree(
        store.as_ref(),
        &Cell::nil(),
        &p("home"),
        &tree,
        1000,
        opts,
        &|_| {},
    )
    .unwrap();
    assert_eq!(
        (rep.files, rep.bytes_read, rep.files_unchanged),
        (5, 605_003, 0)
    );
    let written = store.stats().unwrap().encoding_bytes - before;
    // The copy of `big` costs nothing: about 305 kB of contents stored, plus the tree cells.
    assert!(written > 305_003 && written < 320_000, "{written}");
    store.put(&d1).unwrap();
    assert_eq!(
        dlfs::ls(&d1, &p("home"), store.as_ref()).unwrap(),
        ["a", "empty-dir", "top"]
    );
    let st = dlfs::stat(&d1, &p("home/a/b/c/big"), store.as_ref()).unwrap();
    assert_eq!((st.size, st.utime), (300_000, 1000));

    let out = tmp.path().join("out");
    let rep = export_tree(&d1, &p("home"), &out, None, store.as_ref(), &|_| {}).unwrap();
    assert_eq!((rep.files, rep.directories, rep.bytes), (5, 5, 605_003));
    same_tree(&host, &out);
    // Export never overwrites.
    let e = export_tree(&d1, &p("home"), &out, None, store.as_ref(), &|_| {}).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("exists and is not empty (export never overwrites)"),
        "{e}"
    );

    // Again: nothing new, the same drive value.
    let before = store.stats().unwrap().encoding_bytes;
    let (d2, rep) =
        import_tree(store.as_ref(), &d1, &p("home"), &tree, 2000, opts, &|_| {}).unwrap();
    assert_eq!((rep.files, rep.files_unchanged), (5, 5));
    assert_eq!(d2, d1);
    assert_eq!(store.stats().unwrap().encoding_bytes, before);

    // One changed file: only its node and its ancestors get the new time.
    std::fs::write(host.join("a/one.txt"), b"uno").unwrap();
    let (tree, _) = scan_host(&host).unwrap();
    let (d3, rep) =
        import_tree(store.as_ref(), &d1, &p("home"), &tree, 3000, opts, &|_| {}).unwrap();
    assert_eq!(rep.files_unchanged, 4);
    let r: &dyn Resolver = store.as_ref();
    assert_eq!(
        dlfs::stat(&d3, &p("home/a/one.txt"), r).unwrap().utime,
        3000
    );
    assert_eq!(dlfs::stat(&d3, &p("home/a"), r).unwrap().utime, 3000);
    assert_eq!(dlfs::stat(&d3, &p("home/a/b"), r).unwrap().utime, 1000);
    assert_eq!(dlfs::stat(&d3, &p("home/top"), r).unwrap().utime, 1000);

    // Into a subdirectory: the parent must exist.
    let e = import_tree(
        store.as_ref(),
        &d3,
        &p("home/x/y"),
        &tree,
        4000,
        opts,
        &|_| {},
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "No such directory: home/x");
    let (d4, _) = import_tree(
        store.as_ref(),
        &d3,
        &p("home/copy"),
        &tree,
        4000,
        opts,
        &|_| {},
    )
    .unwrap();
    assert_eq!(
        dlfs::ls(&d4, &p("home/copy"), r).unwrap(),
        ["a", "empty-dir", "top"]
    );
}

// ---------------------------------------------------------------------------------------------
// Private files
// ---------------------------------------------------------------------------------------------

#[test]
fn private_files_are_stored_encrypted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = native(&tmp.path().join("s"));
    let r: &dyn Resolver = store.as_ref();
    let key = ContentKey::from_owner_seed(&[1; 32]);
    let plain: Vec<u8> = b"top secret plans; ".repeat(20_000);
    let (blob, meta, n) = store_contents(
        store.as_ref(),
        &mut &plain[..],
        PutOptions {
            encrypt: Some(&key),
        },
    )
    .unwrap();
    assert_eq!(n, plain.len() as u64);
    let stored = blob_bytes(&blob, r).unwrap();
    assert!(!stored.windows(10).any(|w| w == b"top secret"));
    assert_eq!(&stored[..8], b"ETCHENC1");
    assert_eq!(
        value_at_path(&meta, &[kw("size")], r).unwrap(),
        Cell::long(plain.len() as i64)
    );
    let d = dlfs::put(&zero(), &p("h/s"), blob.clone(), 100, r).unwrap();
    let d = dlfs::set_metadata(&d, &p("h/s"), meta.clone(), 100, r).unwrap();
    let node = dlfs::find(&d, &["s".to_string()], r).unwrap().unwrap();

    let mut back = Vec::new();
    file_reader(&node, "h/s", Some(&key), r)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == plain);
    // Without a key, with the wrong key.
    let e = file_reader(&node, "h/s", None, r).err().unwrap();
    assert_eq!(
        e.to_string(),
        "h/s: the file is encrypted; give the owner's key to read it"
    );
    let wrong = ContentKey::from_owner_seed(&[2; 32]);
    let e = file_reader(&node, "h/s", Some(&wrong), r).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "h/s: wrong key: the file was encrypted with key {}, this key is {}",
            hex::encode(key.id()),
            hex::encode(wrong.id())
        )
    );
    assert!(matches!(e, TransferError::Crypt { .. }));
    // A storage node alters one byte of the ciphertext.
    let mut altered = stored.clone();
    altered[70_000] ^= 0x20;
    let forged = Cell::vector(vec![
        Cell::nil(),
        Cell::blob(&altered),
        meta,
        Cell::long(100),
    ]);
    store.put(&forged).unwrap();
    let mut out = Vec::new();
    let e = file_reader(&forged, "h/s", Some(&key), r)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "encrypted contents damaged or altered (segment 1 fails authentication)"
    );
    // A plain write over a private file drops the marker (its new contents are plain).
    let plain_again = dlfs::put(&d, &p("h/s"), Cell::blob(b"open"), 300, r).unwrap();
    assert_eq!(
        dlfs::stat(&plain_again, &p("h/s"), r).unwrap().metadata,
        Cell::nil()
    );
    // The same plaintext encrypts differently each time (fresh nonces): no equality leak.
    let (blob2, _, _) = store_contents(
        store.as_ref(),
        &mut &plain[..],
        PutOptions {
            encrypt: Some(&key),
        },
    )
    .unwrap();
    assert_ne!(blob2.id(), blob.id());
}

// ---------------------------------------------------------------------------------------------
// mv, metadata, tombstone expiry, URIs
// ---------------------------------------------------------------------------------------------

fn blob(s: &str) -> Cell {
    Cell::blob(s.as_bytes())
}

#[test]
fn mv_leaves_a_tombstone_and_stamps_the_moved_node() {
    let d = dlfs::mkdir(&zero(), &p("h/a"), 100, R).unwrap();
    let d = dlfs::put(&d, &p("h/a/f"), blob("F"), 110, R).unwrap();
    let d = dlfs::mkdir(&d, &p("h/b"), 120, R).unwrap();
    let m = dlfs::mv(&d, &p("h/a/f"), &p("h/b/g"), 200, R).unwrap();
    assert_eq!(
        m,
        directory(
            Cell::index(vec![
                (
                    Cell::string("a"),
                    directory(
                        Cell::index(vec![(Cell::string("f"), tombstone(200))]).unwrap(),
                        200
                    )
                ),
                (
                    Cell::string("b"),
                    directory(
                        Cell::index(vec![(Cell::string("g"), file(blob("F"), 200))]).unwrap(),
                        200
                    )
                ),
            ])
            .unwrap(),
            200
        )
    );
    // A directory moves with its contents.
    let m2 = dlfs::mv(&d, &p("h/a"), &p("h/b/a2"), 300, R).unwrap();
    assert_eq!(dlfs::ls(&m2, &p("h/b/a2"), R).unwrap(), ["f"]);
    assert_eq!(dlfs::ls(&m2, &p("h"), R).unwrap(), ["b"]);
    let err = |from: &str, to: &str| {
        dlfs::mv(&d, &p(from), &p(to), 300, R)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(err("h/a/x", "h/b/x"), "No such file or directory: h/a/x");
    assert_eq!(err("h/a/f", "h/b"), "Already exists: h/b");
    assert_eq!(
        err("h/a", "h/a/in"),
        "Invalid path: h/a/in (inside the moved h/a)"
    );
    assert_eq!(err("h/a/f", "h/none/f"), "No such directory: h/none");
    assert_eq!(
        err("h/a/f", "w/f"),
        "Invalid path: w/f (a move stays within one drive)"
    );
    assert_eq!(err("h", "h/z"), "Cannot delete drive root");
}

#[test]
fn metadata_is_set_and_kept_by_writes() {
    let d = dlfs::put(&zero(), &p("h/f"), blob("1"), 100, R).unwrap();
    let meta = read_one("{:mime \"text/plain\"}").unwrap();
    let d = dlfs::set_metadata(&d, &p("h/f"), meta.clone(), 150, R).unwrap();
    let st = dlfs::stat(&d, &p("h/f"), R).unwrap();
    assert_eq!((st.metadata.clone(), st.utime), (meta.clone(), 150));
    let d = dlfs::put(&d, &p("h/f"), blob("2"), 200, R).unwrap();
    assert_eq!(dlfs::stat(&d, &p("h/f"), R).unwrap().metadata, meta);
    let d = dlfs::set_metadata(&d, &p("h"), Cell::long(7), 300, R).unwrap();
    assert_eq!(vector_get(&d, 2, R).unwrap(), Some(Cell::long(7)));
    assert_eq!(
        dlfs::set_metadata(&d, &p("h/nope"), Cell::nil(), 300, R)
            .unwrap_err()
            .to_string(),
        "No such file or directory: h/nope"
    );
}

#[test]
fn tombstones_older_than_the_cutoff_are_purged() {
    let d = dlfs::mkdir(&zero(), &p("h/a"), 100, R).unwrap();
    let d = dlfs::put(&d, &p("h/a/old"), blob("1"), 100, R).unwrap();
    let d = dlfs::put(&d, &p("h/a/new"), blob("2"), 100, R).unwrap();
    let d = dlfs::put(&d, &p("h/keep"), blob("3"), 100, R).unwrap();
    let d = dlfs::rm(&d, &p("h/a/old"), 1000, R).unwrap();
    let d = dlfs::rm(&d, &p("h/a/new"), 5000, R).unwrap();
    let (same, n) = dlfs::purge_tombstones(&d, 1000, R).unwrap();
    assert_eq!((same, n.tombstones), (d.clone(), 0));
    let (purged, n) = dlfs::purge_tombstones(&d, 1001, R).unwrap();
    assert_eq!(n.tombstones, 1);
    // Times are kept; the old tombstone's name is gone, the newer one stays.
    let a = dlfs::lookup(&purged, &["a".to_string()], R)
        .unwrap()
        .unwrap();
    assert_eq!(
        a,
        directory(
            Cell::index(vec![(Cell::string("new"), tombstone(5000))]).unwrap(),
            5000
        )
    );
    assert_eq!(vector_get(&purged, 3, R).unwrap(), Some(Cell::long(5000)));
    let (all, n) = dlfs::purge_tombstones(&d, i64::MAX, R).unwrap();
    assert_eq!(n.tombstones, 2);
    assert_eq!(dlfs::ls(&all, &p("h/a"), R).unwrap(), Vec::<String>::new());
    // A replica that still has the tombstones merges them back: nothing resurrects.
    let l = Lattice::Dlfs;
    let ctx = MergeContext::new();
    let back = l.merge(&ctx, &all, &d, R).unwrap();
    assert_eq!(dlfs::ls(&back, &p("h/a"), R).unwrap(), Vec::<String>::new());
}

#[test]
fn dlfs_uris_of_the_spec() {
    let u = |t: &str| DlfsUri::parse(t).map(|r| r.map_err(|e| e.to_string()));
    let ok = |host: Option<&str>, local: bool, owner: &str, loc: &str| {
        Some(Ok(DlfsUri {
            host: host.map(str::to_string),
            local,
            owner: owner.to_string(),
            location: p(loc),
        }))
    };
    assert_eq!(
        u("dlfs:bob/shared/images/photo.png"),
        ok(None, false, "bob", "shared/images/photo.png")
    );
    assert_eq!(
        u("dlfs://host.example.com/bob/shared/images/photo.png"),
        ok(
            Some("host.example.com"),
            false,
            "bob",
            "shared/images/photo.png"
        )
    );
    assert_eq!(
        u("dlfs:local:bob/private/report.pdf"),
        ok(None, true, "bob", "private/report.pdf")
    );
    assert_eq!(
        u("https://host.example.com/dlfs/bob/shared/images/photo.png"),
        ok(
            Some("host.example.com"),
            false,
            "bob",
            "shared/images/photo.png"
        )
    );
    assert_eq!(
        u("did:key:z6MkTest/dlfs/docs/specs"),
        ok(None, false, "did:key:z6MkTest", "docs/specs")
    );
    assert_eq!(u("home/a"), None);
    assert_eq!(u("https://example.com/x"), None);
    assert_eq!(
        u("dlfs:bob"),
        Some(Err("Invalid path: dlfs:bob".to_string()))
    );
    assert_eq!(
        u("dlfs:bob/"),
        Some(Err("Invalid path: dlfs:bob/".to_string()))
    );
}

// ---------------------------------------------------------------------------------------------
// Replicas
// ---------------------------------------------------------------------------------------------

#[test]
fn a_newer_delete_beats_a_write_and_a_newer_write_beats_a_delete() {
    let l = Lattice::Dlfs;
    let ctx = MergeContext::new();
    let base = dlfs::put(&zero(), &p("h/f"), blob("0"), 100, R).unwrap();
    let written = dlfs::put(&base, &p("h/f"), blob("1"), 200, R).unwrap();
    let deleted = dlfs::rm(&base, &p("h/f"), 300, R).unwrap();
    for (a, b) in [(&written, &deleted), (&deleted, &written)] {
        let m = l.merge(&ctx, a, b, R).unwrap();
        assert_eq!(m, deleted);
    }
    let deleted = dlfs::rm(&base, &p("h/f"), 200, R).unwrap();
    let written = dlfs::put(&base, &p("h/f"), blob("1"), 300, R).unwrap();
    for (a, b) in [(&written, &deleted), (&deleted, &written)] {
        let m = l.merge(&ctx, a, b, R).unwrap();
        assert_eq!(m, written);
        assert_eq!(dlfs::read(&m, &p("h/f"), R).unwrap(), blob("1"));
    }
}

/// One random edit at time `t` on a replica; edits that the drive refuses are skipped.
fn random_edit(d: &Cell, rng: &mut Rng, t: i64) -> Cell {
    random_edit_in(d, rng, t, R)
}

fn random_edit_in(d: &Cell, rng: &mut Rng, t: i64, r: &dyn Resolver) -> Cell {
    const NAMES: [&str; 4] = ["a", "b", "c", "d"];
    let dir = ["h", "h/a", "h/b", "h/a/c"][rng.below(4) as usize];
    let loc = p(&format!("{dir}/{}", NAMES[rng.below(4) as usize]));
    let edited = match rng.below(5) {
        0 | 1 => dlfs::put(d, &loc, Cell::blob(&rng.next().to_le_bytes()[..2]), t, r),
        2 => dlfs::mkdir(d, &loc, t, r),
        3 => dlfs::rm(d, &loc, t, r),
        _ => {
            let to = p(&format!("{dir}/{}", NAMES[rng.below(4) as usize]));
            dlfs::mv(d, &loc, &to, t, r)
        }
    };
    edited.unwrap_or_else(|_| d.clone())
}

#[test]
fn seeded_replicas_converge_in_either_merge_order() {
    let l = Lattice::Dlfs;
    let ctx = MergeContext::new();
    let mut differing = 0;
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let mut base = zero();
        for i in 0..12 {
            base = random_edit(&base, &mut rng, 100 + i);
        }
        // Two replicas edit offline; their clocks never show the same millisecond (A even,
        // B odd), the condition under which the DLFS merge is commutative (lattice.md §7.5).
        let (mut a, mut b) = (base.clone(), base.clone());
        for i in 0..15 {
            a = random_edit(&a, &mut rng, 1000 + 2 * i);
            b = random_edit(&b, &mut rng, 1001 + 2 * i);
        }
        let ab = l.merge(&ctx, &a, &b, R).unwrap();
        let ba = l.merge(&ctx, &b, &a, R).unwrap();
        assert_eq!(ab.id(), ba.id(), "seed {seed}");
        // Idempotent, and absorbing either side again changes nothing.
        assert_eq!(l.merge(&ctx, &ab, &ab, R).unwrap(), ab);
        assert_eq!(l.merge(&ctx, &ab, &a, R).unwrap(), ab, "seed {seed}");
        assert_eq!(l.merge(&ctx, &ab, &b, R).unwrap(), ab, "seed {seed}");
        assert_eq!(l.merge(&ctx, &base, &ab, R).unwrap(), ab, "seed {seed}");
        if a != b {
            differing += 1;
        }
    }
    assert!(differing > 250, "{differing}");
}

// ---------------------------------------------------------------------------------------------
// Signed drives
// ---------------------------------------------------------------------------------------------

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node_in(dir: &Path, seed: u8) -> (LocalNode, Arc<AtomicI64>) {
    let store = native(dir);
    let clock = Arc::new(AtomicI64::new(1000));
    let c = clock.clone();
    let node = LocalNode::open(store, Some(key(seed)))
        .unwrap()
        .with_clock(move || c.load(Ordering::SeqCst));
    (node, clock)
}

fn fs_of(node: &LocalNode) -> Cell {
    value_at_path(&node.root_value(), &[kw("fs")], node.store().as_ref()).unwrap()
}

/// Gives `to` every cell of `value` (as a peer would have received them) and merges it at
/// `[:fs]`, returning the peer's `[:fs]` after.
fn offer(to: &LocalNode, value: &Cell) -> Cell {
    to.store().put(value).unwrap();
    to.merge(&[kw("fs")], value).unwrap();
    fs_of(to)
}

#[test]
fn forged_updates_to_a_signed_drive_are_rejected_on_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let (owner_node, clock) = node_in(&tmp.path().join("owner"), 1);
    let owner = Cell::blob(&key(1).verifying_key().to_bytes());
    let put = |node: &LocalNode, loc: &str, data: &str| {
        let lp = p(loc);
        node.write_drive(&owner, &lp.drive, |cur, now, r| {
            let cur = if cur.is_nil() { zero() } else { cur.clone() };
            dlfs::put(&cur, &lp, blob(data), now, r)
        })
        .unwrap();
    };
    put(&owner_node, "home/f", "v1");
    let old_fs = fs_of(&owner_node);
    clock.store(2000, Ordering::SeqCst);
    put(&owner_node, "home/f", "v2");
    let fs = fs_of(&owner_node);

    // A storage node (another key) takes the owner's signed drive as it is.
    let (peer, _) = node_in(&tmp.path().join("peer"), 9);
    assert_eq!(offer(&peer, &fs), fs);
    let drives_path = [kw("fs"), owner.clone(), kw("value")];
    let drives = value_at_path(&peer.root_value(), &drives_path, peer.store().as_ref()).unwrap();

    // 1. The right owner slot, signed by the wrong key.
    let evil_drive = dlfs::put(&zero(), &p("home/f"), blob("evil"), 9000, R).unwrap();
    let evil_drives = Cell::map(vec![(Cell::string("home"), evil_drive.clone())]);
    let forged = Cell::map(vec![(owner.clone(), sign(&key(2), evil_drives.clone()))]);
    assert_eq!(offer(&peer, &forged), fs);

    // 2. The owner's signature over other content.
    let good = sign(&key(1), drives.clone());
    let altered = Cell::signed(
        good.signed_public_key().unwrap().try_into().unwrap(),
        good.signed_signature().unwrap().try_into().unwrap(),
        evil_drives.clone(),
    );
    assert_eq!(
        offer(&peer, &Cell::map(vec![(owner.clone(), altered.clone())])),
        fs
    );

    // 3. A replayed older state, validly signed: the drive does not go back.
    assert_eq!(offer(&peer, &old_fs), fs);
    let r: &dyn Resolver = peer.store().as_ref();
    let d = dlfs::drive(&peer.root_value(), &owner, "home", r).unwrap();
    assert_eq!(dlfs::read(&d, &p("home/f"), r).unwrap(), blob("v2"));

    // A fresh node refuses the forgeries too (a nil own is no excuse), and takes the real one.
    let (fresh, _) = node_in(&tmp.path().join("fresh"), 8);
    let slot_of = |fs: &Cell| value_at_path(fs, std::slice::from_ref(&owner), R).unwrap();
    assert_eq!(slot_of(&offer(&fresh, &forged)), Cell::nil());
    let altered_map = Cell::map(vec![(owner.clone(), altered)]);
    assert_eq!(slot_of(&offer(&fresh, &altered_map)), Cell::nil());
    assert_eq!(offer(&fresh, &fs), fs);

    // A concurrent valid edit by the owner elsewhere: a node without the owner's key cannot
    // sign the merge of the two, so it keeps its own; the owner's node merges and re-signs.
    let (laptop, lclock) = node_in(&tmp.path().join("laptop"), 1);
    offer(&laptop, &old_fs);
    lclock.store(3000, Ordering::SeqCst);
    put(&laptop, "home/g", "laptop");
    let laptop_fs = fs_of(&laptop);
    assert_eq!(offer(&peer, &laptop_fs), fs);
    let merged = offer(&owner_node, &laptop_fs);
    let d = dlfs::drive(
        &owner_node.root_value(),
        &owner,
        "home",
        owner_node.store().as_ref(),
    )
    .unwrap();
    let r: &dyn Resolver = owner_node.store().as_ref();
    assert_eq!(dlfs::ls(&d, &p("home"), r).unwrap(), ["f", "g"]);
    assert_eq!(dlfs::read(&d, &p("home/f"), r).unwrap(), blob("v2"));
    // ... and now every node takes the owner's merge.
    assert_eq!(offer(&peer, &merged), merged);
    assert_eq!(offer(&laptop, &merged), merged);
}

#[test]
fn imported_file_nodes_equal_the_nodes_put_builds() {
    // Import holds contents by reference; the nodes must be the very cells `put` makes.
    let tmp = tempfile::tempdir().unwrap();
    let store = native(&tmp.path().join("s"));
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let big = bytes(5, 70_000);
    std::fs::write(host.join("big"), &big).unwrap();
    std::fs::write(host.join("small"), b"tiny").unwrap();
    let (tree, _) = scan_host(&host).unwrap();
    let (d, _) = import_tree(
        store.as_ref(),
        &Cell::nil(),
        &p("h"),
        &tree,
        500,
        PutOptions { encrypt: None },
        &|_| {},
    )
    .unwrap();
    let r: &dyn Resolver = store.as_ref();
    let expected = dlfs::put(&zero(), &p("h/big"), Cell::blob(&big), 500, r).unwrap();
    let expected = dlfs::put(&expected, &p("h/small"), blob("tiny"), 500, r).unwrap();
    assert_eq!(d.id(), expected.id());
}

#[test]
fn two_nodes_of_one_owner_edit_offline_and_converge_to_the_same_signed_root() {
    let owner = Cell::blob(&key(1).verifying_key().to_bytes());
    let mut both_sides = 0;
    for seed in 0..12u64 {
        let tmp = tempfile::tempdir().unwrap();
        let (a, ca) = node_in(&tmp.path().join("a"), 1);
        let (b, cb) = node_in(&tmp.path().join("b"), 1);
        let mut rng = Rng(seed);
        let edit = |n: &LocalNode, rng: &mut Rng| {
            n.write_drive(&owner, "h", |cur, now, r| {
                let cur = if cur.is_nil() { zero() } else { cur.clone() };
                Ok(random_edit_in(&cur, rng, now, r))
            })
            .unwrap();
        };
        for i in 0..8 {
            ca.store(100 + i, Ordering::SeqCst);
            edit(&a, &mut rng);
        }
        offer(&b, &fs_of(&a));
        // Offline: A's clock shows even milliseconds, B's odd ones.
        for i in 0..12 {
            ca.store(1000 + 2 * i, Ordering::SeqCst);
            cb.store(1001 + 2 * i, Ordering::SeqCst);
            edit(&a, &mut rng);
            edit(&b, &mut rng);
        }
        let (fa, fb) = (fs_of(&a), fs_of(&b));
        let merged_a = offer(&a, &fb);
        let merged_b = offer(&b, &fa);
        assert_eq!(merged_a.id(), merged_b.id(), "seed {seed}");
        // Both hold the same drive, and the same signed slot (Ed25519 signatures are
        // deterministic), so the roots' :fs regions are equal.
        let ra: &dyn Resolver = a.store().as_ref();
        let slot = value_at_path(&merged_a, std::slice::from_ref(&owner), ra).unwrap();
        assert!(etch_engine::lattice::signature_valid(&slot), "seed {seed}");
        if merged_a != fa && merged_a != fb {
            both_sides += 1;
        }
    }
    // Most seeds need a real merge (new entries from both replicas), re-signed by the owner.
    assert!(both_sides >= 8, "{both_sides}");
}

/// A read from any offset of a multi-level Blob gives the bytes from there on (HTTP `Range`).
#[test]
fn blob_reader_starts_at_any_offset() {
    use std::io::Read;
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let blob = Cell::blob(&bytes);
    assert!(blob.refs().len() > 1, "a tree, not one leaf");
    let r = etch_formats::NoResolver;
    for offset in [
        0u64, 1, 4095, 4096, 4097, 65_535, 65_536, 65_537, 69_999, 70_000, 80_000,
    ] {
        let mut out = Vec::new();
        BlobReader::starting_at(&blob, &r, offset)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        let from = (offset as usize).min(bytes.len());
        assert_eq!(out, &bytes[from..], "offset {offset}");
    }
}
