//! The query evaluator over values held in an Etch store: evaluation reads only what it needs.
#![allow(clippy::unwrap_used)]

use etch_engine::query::{eval_text, Env};
use etch_engine::store::{CellStore, EtchStore};
use etch_formats::text::print;
use etch_formats::Cell;

/// True if no branch ref of `c` has its target attached.
fn no_branch_attached(c: &Cell) -> bool {
    c.refs()
        .iter()
        .all(|r| !r.is_branch() || r.cell().is_none())
}

#[test]
fn count_and_lookups_on_a_large_stored_vector_do_not_attach_branches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.etch");
    let n: i64 = 100_000;
    let id = {
        let store = EtchStore::create(&path).unwrap();
        let v = Cell::vector((0..n).map(Cell::long).collect());
        let id = store.put(&v).unwrap();
        store.commit().unwrap();
        id
    };
    let store = EtchStore::open(&path, false).unwrap();
    let v = store.get(&id).unwrap().unwrap();
    assert!(v.refs().iter().any(|r| r.is_branch()));
    assert!(no_branch_attached(&v));

    let mut env = Env::new();
    env.define("v", v.clone());
    let r = eval_text("(count v)", &mut env, &store).unwrap();
    assert_eq!(print(&r, &store).unwrap(), "100000");
    assert!(no_branch_attached(&v), "count attached a branch");

    for (q, want) in [
        ("(nth v 12345)", "12345"),
        ("(v 99999)", "99999"),
        ("(get v 500)", "500"),
        ("(first v)", "0"),
        ("(last v)", "99999"),
        ("(get-in [v] [0 77])", "77"),
        ("(empty? v)", "false"),
        ("(vector? v)", "true"),
        ("(nth v 100000)", "!BOUNDS Index: 100000"),
    ] {
        let got = match eval_text(q, &mut env, &store) {
            Ok(c) => print(&c, &store).unwrap(),
            Err(e) => format!("!{} {}", e.code, e.message),
        };
        assert_eq!(got, want, "{q}");
    }
    assert!(no_branch_attached(&v), "lookups attached a branch");
}

#[test]
fn map_lookup_descends_stored_hash_trees() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.etch");
    let n: i64 = 5_000;
    let id = {
        let store = EtchStore::create(&path).unwrap();
        let m = Cell::map(
            (0..n)
                .map(|i| (Cell::long(i), Cell::long(i * 10)))
                .collect(),
        );
        let id = store.put(&m).unwrap();
        store.commit().unwrap();
        id
    };
    let store = EtchStore::open(&path, false).unwrap();
    let m = store.get(&id).unwrap().unwrap();
    let mut env = Env::new();
    env.define("m", m.clone());
    for i in [0, 1, 17, 255, 4096, 4999] {
        let r = eval_text(&format!("(get m {i})"), &mut env, &store).unwrap();
        assert_eq!(print(&r, &store).unwrap(), format!("{}", i * 10));
    }
    for q in ["(get m 5000 :nf)", "(m -1 :nf)"] {
        let r = eval_text(q, &mut env, &store).unwrap();
        assert_eq!(print(&r, &store).unwrap(), ":nf");
    }
    let r = eval_text("(count m)", &mut env, &store).unwrap();
    assert_eq!(print(&r, &store).unwrap(), "5000");
    let r = eval_text("(contains-key? m 4321)", &mut env, &store).unwrap();
    assert_eq!(print(&r, &store).unwrap(), "true");
    // Sets use the same descent.
    let r = eval_text("(get (set (keys m)) 4321)", &mut env, &store).unwrap();
    assert_eq!(print(&r, &store).unwrap(), "true");
    assert!(no_branch_attached(&m));
}

#[test]
fn missing_branches_are_missing_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.etch");
    let v = Cell::vector((0..1000).map(Cell::long).collect());
    // Only the top cell is known: its children are absent from this (empty) store.
    let store = EtchStore::create(&path).unwrap();
    let top = etch_formats::decode_cell(v.encoding_bytes().clone()).unwrap();
    let mut env = Env::new();
    env.define("v", top);
    let r = eval_text("(count v)", &mut env, &store).unwrap();
    assert_eq!(print(&r, &store).unwrap(), "1000");
    let e = eval_text("(nth v 3)", &mut env, &store).unwrap_err();
    assert_eq!(e.code, "MISSING");
    assert!(e.message.starts_with("Missing data: 0x"), "{}", e.message);
    assert_eq!(e.message.len(), "Missing data: 0x".len() + 64);
}

#[test]
fn the_deepest_evaluation_fits_whatever_stack_the_caller_has() {
    // An evaluation gets its own stack (EVAL_STACK_BYTES) however little the calling thread
    // has: a server's worker threads have small stacks. Recursion reaches the depth limit and
    // fails with :DEPTH, it does not overflow. (Run inline on this 64 KiB stack, the same
    // recursion aborts the process with a stack overflow.)
    let h = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut env = Env::new();
            let store = etch_formats::NoResolver;
            eval_text(
                "(defn f [n] (if (= n 0) 0 (inc (f (dec n)))))",
                &mut env,
                &store,
            )
            .unwrap();
            let shallow = eval_text("(f 40)", &mut env, &store).unwrap();
            let deep = eval_text("(f 100000)", &mut env, &store).unwrap_err();
            (print(&shallow, &store).unwrap(), deep.code)
        })
        .unwrap();
    let (shallow, deep) = h.join().unwrap();
    assert_eq!(shallow, "40");
    assert_eq!(deep, "DEPTH");
}
