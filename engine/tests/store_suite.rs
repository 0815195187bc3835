#![allow(clippy::unwrap_used)]
//! The `CellStore` contract, run on both backends (native and CAD047): put, get with lazy refs,
//! roots, reopening, read-only opens, concurrency.

use etch_engine::store::{open_store, CellStore, OpenOptions, Root, StoreFormat};
use etch_formats::text::print;
use etch_formats::{Cell, NoResolver, ValueId};
use std::path::Path;
use std::sync::Arc;

const FORMATS: [StoreFormat; 2] = [StoreFormat::Native, StoreFormat::Cad047];

fn create(path: &Path, f: StoreFormat) -> Arc<dyn CellStore> {
    open_store(path, &OpenOptions::writable(f))
        .unwrap()
        .cell_store()
}

fn reopen(path: &Path, writable: bool) -> Arc<dyn CellStore> {
    let mut o = OpenOptions::read_only();
    o.writable = writable;
    open_store(path, &o).unwrap().cell_store()
}

fn sample_value() -> Cell {
    let v = Cell::vector((0..1000).map(Cell::long).collect());
    let m = Cell::map(
        (0..1000)
            .map(|i| (Cell::keyword(&format!("k{i}")).unwrap(), Cell::long(i)))
            .collect(),
    );
    Cell::vector(vec![
        v,
        m,
        Cell::string(&"x".repeat(10_000)),
        Cell::blob(&vec![7u8; 100_000]),
    ])
}

#[test]
fn values_read_back_lazily_after_reopen() {
    for f in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let value = sample_value();
        let text = print(&value, &NoResolver).unwrap();
        {
            let store = create(&path, f);
            assert!(matches!(store.root().unwrap(), Root::Unset), "{f:?}");
            store.set_root(&value).unwrap();
            // Putting it again writes nothing new.
            let before = store.stats().unwrap();
            store.put(&value).unwrap();
            store.commit().unwrap();
            let after = store.stats().unwrap();
            assert_eq!(after.cells, before.cells, "{f:?}");
            assert_eq!(after.encoding_bytes, before.encoding_bytes, "{f:?}");
        }
        let store = reopen(&path, false);
        let Root::Value(root) = store.root().unwrap() else {
            panic!("{f:?}: root set")
        };
        assert_eq!(root.id(), value.id(), "{f:?}");
        assert!(
            root.refs()
                .iter()
                .filter(|r| r.is_branch())
                .all(|r| r.cell().is_none()),
            "{f:?}: children load lazily"
        );
        assert_eq!(print(&root, store.as_ref()).unwrap(), text, "{f:?}");
        etch_formats::structure::verify_tree(&root, store.as_ref()).unwrap();
        assert!(store.contains(value.id()).unwrap());
        assert!(!store.contains(&ValueId([9; 32])).unwrap());
        assert!(store.get(&ValueId([9; 32])).unwrap().is_none());
        // Every stored ID is listed once.
        let mut ids = Vec::new();
        store
            .for_each_id(&mut |id| {
                ids.push(id);
                Ok(())
            })
            .unwrap();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{f:?}: an ID listed twice");
        assert_eq!(n as u64, store.stats().unwrap().cells, "{f:?}");
    }
}

#[test]
fn nil_root_and_read_only_stores() {
    for f in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        create(&path, f).set_root(&Cell::nil()).unwrap();
        let store = reopen(&path, false);
        assert_eq!(store.root().unwrap(), Root::Value(Cell::nil()), "{f:?}");
        assert!(store.set_root(&Cell::long(1)).is_err(), "{f:?}: read-only");
        assert!(store.put(&Cell::long(1)).is_err() || store.commit().is_err());
    }
}

#[test]
fn second_writer_is_refused() {
    for f in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let _w = create(&path, f);
        let mut o = OpenOptions::read_only();
        o.writable = true;
        let err = open_store(&path, &o).err().expect("locked");
        assert!(err.to_string().contains("locked"), "{f:?}: {err}");
    }
}

#[test]
fn many_roots_and_small_values_survive_reopen() {
    for f in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut ids = Vec::new();
        {
            let store = create(&path, f);
            for i in 0..300i64 {
                let v = Cell::vector(vec![Cell::long(i), Cell::blob(&[i as u8; 200])]);
                store.put(&v).unwrap();
                ids.push(*v.id());
                if i % 50 == 49 {
                    store.set_root(&v).unwrap();
                }
            }
            store.commit().unwrap();
        }
        let store = reopen(&path, true);
        for id in &ids {
            let c = store
                .get(id)
                .unwrap()
                .unwrap_or_else(|| panic!("{f:?}: lost {id}"));
            assert_eq!(c.id(), id);
        }
        let Root::Value(r) = store.root().unwrap() else {
            panic!("root")
        };
        assert_eq!(*r.id(), ids[299], "{f:?}");
        // The store goes on after reopening.
        let more = Cell::string("after reopen");
        store.set_root(&more).unwrap();
        drop(store);
        let store = reopen(&path, false);
        assert_eq!(store.root().unwrap(), Root::Value(more), "{f:?}");
    }
}

#[test]
fn concurrent_readers_and_writers() {
    for f in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let store = create(&dir.path().join("c"), f);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = store.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..200u64 {
                        let v = Cell::blob(&etch_formats::gen::SplitMix64(t * 1000 + i).bytes(300));
                        s.put(&v).unwrap();
                        mine.push(v);
                        if i % 20 == 0 {
                            s.commit().unwrap();
                        }
                        // Read back something written moments ago, maybe not yet on disk.
                        let back = &mine[(i / 2) as usize];
                        assert_eq!(s.get(back.id()).unwrap().as_ref(), Some(back));
                    }
                    s.commit().unwrap();
                    mine
                })
            })
            .collect();
        let all: Vec<Cell> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        for v in &all {
            assert_eq!(store.get(v.id()).unwrap().as_ref(), Some(v), "{f:?}");
        }
        assert_eq!(store.stats().unwrap().cells, all.len() as u64, "{f:?}");
    }
}

#[test]
fn put_many_stores_each_cell_once() {
    for f in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let store = create(&dir.path().join("pm"), f);
        let leaves: Vec<Cell> = (0..300)
            .map(|i| Cell::blob(&etch_formats::gen::SplitMix64(i).bytes(120)))
            .collect();
        let tree = Cell::vector(leaves[..50].to_vec());
        store.put(&leaves[0]).unwrap();
        // Duplicates inside the batch, a cell stored before, and a tree of stored leaves.
        let mut batch = leaves.clone();
        batch.extend_from_slice(&leaves[..10]);
        batch.push(tree.clone());
        store.put_many(&batch).unwrap();
        store.set_root(&tree).unwrap();
        let mut n = 0u64;
        store
            .for_each_id(&mut |_| {
                n += 1;
                Ok(())
            })
            .unwrap();
        // The same as putting each value alone, in a fresh store.
        let dir2 = tempfile::tempdir().unwrap();
        let one_by_one = create(&dir2.path().join("pm"), f);
        for v in &batch {
            one_by_one.put(v).unwrap();
        }
        one_by_one.commit().unwrap();
        let expected = one_by_one.stats().unwrap().cells;
        assert!(expected > 300, "{f:?}: the tree adds its inner nodes");
        assert_eq!(n, expected, "{f:?}");
        assert_eq!(store.stats().unwrap().cells, expected, "{f:?}");
        for c in leaves.iter().chain(std::iter::once(&tree)) {
            assert_eq!(store.get(c.id()).unwrap().as_ref(), Some(c), "{f:?}");
        }
    }
}
