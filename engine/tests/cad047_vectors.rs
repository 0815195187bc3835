#![allow(clippy::unwrap_used)]
//! The Etch files written by the Convex reference (tests/vectors/etch): every cell reads back,
//! and writing the same cells in the same order reproduces the reference's bytes.

use etch_engine::store::cad047::{EtchFile, DATA_START};
use std::collections::HashMap;
use std::path::PathBuf;

fn etch_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/etch")
}

fn manifest(name: &str) -> HashMap<String, String> {
    std::fs::read_to_string(etch_dir().join(format!("{name}.manifest.txt")))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Row {
    key: [u8; 32],
    offset: u64,
    flags: u8,
    memory_size: u64,
    encoding: Vec<u8>,
}

fn cells(name: &str) -> Vec<Row> {
    std::fs::read_to_string(etch_dir().join(format!("{name}.cells.tsv")))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                key: hex::decode(f[0]).unwrap().try_into().unwrap(),
                offset: f[1].parse().unwrap(),
                flags: u8::from_str_radix(f[2], 16).unwrap(),
                memory_size: f[3].parse().unwrap(),
                encoding: hex::decode(f[4]).unwrap(),
            }
        })
        .collect()
}

fn check_reads(name: &str) {
    let m = manifest(name);
    let path = etch_dir().join(format!("{name}.etch"));
    let before = std::fs::read(&path).unwrap();
    let f = EtchFile::open(&path, false).unwrap();
    assert_eq!(f.data_len().to_string(), m["data_length"]);
    assert_eq!(hex::encode(f.root()), m["root_hash"]);
    let rows = cells(name);
    assert_eq!(rows.len().to_string(), m["cell_count"]);
    assert_eq!(f.record_offsets().unwrap().len(), rows.len());
    for r in &rows {
        let rec = f
            .get(&r.key)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: {} missing", hex::encode(r.key)));
        assert_eq!(rec.offset, r.offset);
        assert_eq!(rec.flags, r.flags);
        assert_eq!(rec.memory_size, r.memory_size);
        assert_eq!(&rec.encoding[..], &r.encoding[..]);
        assert_eq!(etch_formats::ValueId::of(&rec.encoding).0, r.key);
        let cell = etch_formats::decode_cell(rec.encoding.to_vec()).unwrap();
        assert_eq!(cell.id().0, r.key);
    }
    let root: [u8; 32] = hex::decode(&m["root_hash"]).unwrap().try_into().unwrap();
    assert!(f.get(&root).unwrap().is_some(), "root record present");
    // The branch cells reachable from the root, counted through the store.
    let store = etch_engine::store::EtchStore::open(&path, false).unwrap();
    let root_cell = etch_engine::store::CellStore::get(&store, &etch_formats::ValueId(root))
        .unwrap()
        .unwrap();
    let branches = etch_formats::branches_preorder(&root_cell, &store).unwrap();
    assert_eq!(branches.len().to_string(), m["root_branch_cells"]);
    etch_formats::structure::verify_tree(&root_cell, &store).unwrap();
    drop(store);
    let mut absent = root;
    absent[31] ^= 1;
    assert!(f.get(&absent).unwrap().is_none());
    drop(f);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "opening to read never changes the file"
    );
}

#[test]
fn reads_small() {
    check_reads("small");
}

#[test]
fn reads_mixed() {
    check_reads("mixed");
}

fn check_rewrite(name: &str) {
    let m = manifest(name);
    let reference = std::fs::read(etch_dir().join(format!("{name}.etch"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.etch");
    let mut f = EtchFile::create(&path).unwrap();
    let mut rows = cells(name);
    rows.sort_by_key(|r| r.offset);
    for r in &rows {
        f.write(&r.key, &r.encoding, r.flags, r.memory_size)
            .unwrap();
    }
    f.set_root(hex::decode(&m["root_hash"]).unwrap().try_into().unwrap())
        .unwrap();
    f.commit().unwrap();
    let len = f.data_len() as usize;
    assert_eq!(len.to_string(), m["data_length"]);
    let ours = std::fs::read(&path).unwrap();
    assert_eq!(ours.len(), len);
    assert!(
        ours[..len] == reference[..len],
        "{name}: the first {len} bytes must equal the reference file's"
    );
    assert!(len > DATA_START as usize);
}

#[test]
fn rewrite_small_is_byte_identical() {
    check_rewrite("small");
}

#[test]
fn rewrite_mixed_is_byte_identical() {
    check_rewrite("mixed");
}

/// Java's `java.util.Random`, enough for `nextInt(bound)` with a power-of-two bound.
struct JavaRandom(u64);

impl JavaRandom {
    fn new(seed: u64) -> Self {
        JavaRandom((seed ^ 0x5DEECE66D) & ((1 << 48) - 1))
    }
    fn next_int_pow2(&mut self, bound: u64) -> usize {
        self.0 = (self.0.wrapping_mul(0x5DEECE66D).wrapping_add(0xB)) & ((1 << 48) - 1);
        ((bound * (self.0 >> 17)) >> 31) as usize
    }
}

#[test]
fn chain_fill_scenario_gives_40_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = EtchFile::create(dir.path().join("chain.etch")).unwrap();
    let enc = [0x10u8];
    let mut keys: Vec<[u8; 32]> = vec![[0u8; 32]];
    for pos in 0..8 {
        let mut k = [0u8; 32];
        k[pos / 2] = if pos % 2 == 0 { 0x10 } else { 0x01 };
        keys.push(k);
    }
    let f_key = |i: u32| {
        let mut k = [0u8; 32];
        k[3..5].copy_from_slice(&(i as u16).to_be_bytes());
        k[31] = 0xff;
        k
    };
    let mut order: Vec<u32> = (0..512).collect();
    let mut rng = JavaRandom::new(5657);
    for i in 0..512 {
        let j = rng.next_int_pow2(512);
        order.swap(i, j);
    }
    keys.extend(order.iter().map(|&i| f_key(i)));
    for k in &keys {
        f.write(k, &enc, 1, 0).unwrap();
    }
    assert_eq!(f.block_count().unwrap(), 40);
    for k in &keys {
        assert!(f.lookup(k).unwrap().is_some());
    }
    assert!(f.lookup(&f_key(512)).unwrap().is_none());
    f.commit().unwrap();
    assert_eq!(f.block_count().unwrap(), 40);
    for k in &keys {
        assert!(f.lookup(k).unwrap().is_some());
    }
}

#[test]
fn one_writer_excludes_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.etch");
    let w = EtchFile::create(&path).unwrap();
    assert!(matches!(
        EtchFile::open(&path, true),
        Err(etch_engine::store::cad047::EtchError::Locked { .. })
    ));
    assert!(matches!(
        EtchFile::open(&path, false),
        Err(etch_engine::store::cad047::EtchError::Locked { .. })
    ));
    drop(w);
    let r1 = EtchFile::open(&path, false).unwrap();
    let _r2 = EtchFile::open(&path, false).unwrap();
    assert!(matches!(
        EtchFile::open(&path, true),
        Err(etch_engine::store::cad047::EtchError::Locked { .. })
    ));
    drop(r1);
}

/// Storing the reference's root value through the store (what `etch put` and a root commit
/// do) writes what Convex's `storeTopRef` wrote: the same records in the same order with the
/// same flag bytes (branches 0x23, the top record 0x03), so the same bytes.
fn check_store_value(name: &str) {
    use etch_engine::store::{CellStore, EtchStore};
    let m = manifest(name);
    let reference = std::fs::read(etch_dir().join(format!("{name}.etch"))).unwrap();
    let rows = cells(name);
    let root_key: [u8; 32] = hex::decode(&m["root_hash"]).unwrap().try_into().unwrap();
    let decoded: Vec<etch_formats::Cell> = rows
        .iter()
        .map(|r| etch_formats::decode_cell(r.encoding.clone()).unwrap())
        .collect();
    let top = decoded.iter().find(|c| c.id().0 == root_key).unwrap();
    let body =
        etch_formats::body::encode_body(top, decoded.iter().filter(|c| c.id().0 != root_key));
    let root = etch_formats::body::Body::decode(body).unwrap().top;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stored.etch");
    let store = EtchStore::create(&path).unwrap();
    store.set_root(&root).unwrap();
    drop(store);
    let ours = std::fs::read(&path).unwrap();
    let len: usize = m["data_length"].parse().unwrap();
    assert_eq!(ours.len(), len, "{name}: data length");
    let first_diff = ours.iter().zip(&reference).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "{name}: first byte that differs from the reference"
    );
}

#[test]
fn storing_small_root_is_byte_identical() {
    check_store_value("small");
}

#[test]
fn storing_mixed_root_is_byte_identical() {
    check_store_value("mixed");
}

/// Convex never writes a record for nil: `put` of nil stores nothing.
#[test]
fn nil_has_no_record() {
    use etch_engine::store::{CellStore, EtchStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nil.etch");
    let store = EtchStore::create(&path).unwrap();
    let nil = etch_formats::Cell::nil();
    assert_eq!(store.put(&nil).unwrap(), *nil.id());
    store.commit().unwrap();
    assert!(!store.contains(nil.id()).unwrap());
    assert_eq!(store.stats().unwrap().cells, 0);
}
