#![allow(clippy::unwrap_used)]
//! The `CellStore` over a CAD047 file: put, get with lazy refs, roots, and byte-identity with a
//! store the Convex reference wrote for the same value.

use etch_engine::store::{CellStore, EtchStore, Root};
use etch_formats::text::print;
use etch_formats::{Cell, ValueId};
use std::path::PathBuf;

fn small_value() -> Cell {
    let v = Cell::vector((0..1000).map(Cell::long).collect());
    let m = Cell::map(
        (0..1000)
            .map(|i| (Cell::keyword(&format!("k{i}")).unwrap(), Cell::long(i)))
            .collect(),
    );
    Cell::vector(vec![v, m])
}

#[test]
fn set_root_writes_what_the_reference_wrote() {
    let root = small_value();
    assert_eq!(
        root.id().to_hex(),
        "df7c7e21435b0a1804e8f4e952c74fa6519998b33c188915081a6b5cea43fecd"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.etch");
    let store = EtchStore::create(&path).unwrap();
    store.set_root(&root).unwrap();
    let ours = std::fs::read(&path).unwrap();
    let reference = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/etch/small.etch"),
    )
    .unwrap();
    if let Some(i) = (0..ours.len().min(reference.len())).find(|&i| ours[i] != reference[i]) {
        panic!(
            "first difference at byte {i}: ours {:02x?} reference {:02x?}",
            &ours[i.saturating_sub(8)..i + 16],
            &reference[i.saturating_sub(8)..i + 16]
        );
    }
    assert_eq!(ours.len(), 538413);
    assert!(
        ours[..] == reference[..ours.len()],
        "same value, same bytes as the reference store"
    );
    assert_eq!(store.stats().unwrap().cells, 23);
}

#[test]
fn values_read_back_lazily_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.etch");
    let value = Cell::vector(vec![
        small_value(),
        Cell::string(&"x".repeat(10_000)),
        Cell::blob(&vec![7u8; 100_000]),
    ]);
    let text = print(&value, &etch_formats::NoResolver).unwrap();
    {
        let store = EtchStore::create(&path).unwrap();
        assert!(matches!(store.root().unwrap(), Root::Unset));
        store.set_root(&value).unwrap();
        // Putting it again writes nothing new.
        let before = store.stats().unwrap();
        store.put(&value).unwrap();
        store.commit().unwrap();
        assert_eq!(store.stats().unwrap(), before);
    }
    let store = EtchStore::open(&path, false).unwrap();
    let Root::Value(root) = store.root().unwrap() else {
        panic!("root set")
    };
    assert_eq!(root.id(), value.id());
    let blob_tree = root.refs()[2].cell().unwrap();
    assert!(
        blob_tree
            .refs()
            .iter()
            .all(|r| r.is_branch() && r.cell().is_none()),
        "children load lazily"
    );
    assert_eq!(print(&root, &store).unwrap(), text);
    etch_formats::structure::verify_tree(&root, &store).unwrap();
    assert!(store.contains(value.id()).unwrap());
    assert!(!store.contains(&ValueId([9; 32])).unwrap());
    assert!(store.get(&ValueId([9; 32])).unwrap().is_none());
}

#[test]
fn nil_root_and_readonly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.etch");
    {
        let store = EtchStore::create(&path).unwrap();
        store.set_root(&Cell::nil()).unwrap();
    }
    let store = EtchStore::open(&path, false).unwrap();
    assert_eq!(store.root().unwrap(), Root::Value(Cell::nil()));
    assert!(
        store.set_root(&Cell::long(1)).is_err(),
        "read-only stores refuse writes"
    );
}

#[test]
fn walking_a_stored_tree_keeps_nothing_attached() {
    use etch_formats::value::memory_size;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.etch");
    let value = Cell::vector((0..50).map(|i| Cell::blob(&vec![i as u8; 5000])).collect());
    let expected_mem = memory_size(&value, &etch_formats::NoResolver).unwrap();
    EtchStore::create(&path).unwrap().set_root(&value).unwrap();
    let store = EtchStore::open(&path, false).unwrap();
    let Root::Value(root) = store.root().unwrap() else {
        panic!("root set")
    };
    // Walk everything: print, verify, memory size through the store.
    assert_eq!(
        print(&root, &store).unwrap(),
        print(&value, &etch_formats::NoResolver).unwrap()
    );
    etch_formats::structure::verify_tree(&root, &store).unwrap();
    let fresh = store.get(value.id()).unwrap().unwrap();
    assert_eq!(memory_size(&fresh, &store).unwrap(), expected_mem);
    // Nothing beneath the root was pinned in memory by the walks.
    let mut stack = vec![root.clone()];
    while let Some(c) = stack.pop() {
        for r in c.refs() {
            match r {
                etch_formats::Ref::Embedded(e) => stack.push(e.clone()),
                etch_formats::Ref::Branch(b) => {
                    assert!(b.target().is_none(), "a walk attached {}", b.id())
                }
            }
        }
    }
}

#[test]
fn cache_stays_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.etch");
    let value = Cell::blob(&etch_formats::gen::SplitMix64(3).bytes(2 << 20));
    EtchStore::create(&path).unwrap().set_root(&value).unwrap();
    let store = EtchStore::open(&path, false).unwrap();
    store.set_cache_budget(64 * 1024);
    let Root::Value(root) = store.root().unwrap() else {
        panic!("root set")
    };
    let bytes = etch_formats::value::blob_bytes(&root, &store).unwrap();
    assert_eq!(bytes.len(), 2 << 20);
    assert!(
        store.cache_bytes() <= 64 * 1024,
        "cache holds {} bytes",
        store.cache_bytes()
    );
    assert!(store.cache_bytes() > 0);
}
