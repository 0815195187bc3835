//! Lattice merges (lattice.md): the worked examples of §10 with exact outcomes, owner and
//! signature rules (§6), DLFS (§7), merges at a path (§6.4) and the lattice laws (§1).

use ed25519_dalek::SigningKey;
use etch_engine::lattice::dlfs::{self, directory, file, tombstone};
use etch_engine::lattice::{
    did_key, merge_at_path, sign, signature_valid, value_at_path, Lattice, MergeContext,
    MergeError, OwnerPolicy,
};
use etch_formats::text::read::read_one;
use etch_formats::{decode_cell, Cell, NoResolver, ResolveError, Resolver, ValueId};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn v(text: &str) -> Cell {
    read_one(text).unwrap_or_else(|e| panic!("reading {text}: {e}"))
}

fn kw(name: &str) -> Cell {
    Cell::keyword(name).expect("keyword")
}

fn s(text: &str) -> Cell {
    Cell::string(text)
}

fn idx(entries: Vec<(Cell, Cell)>) -> Cell {
    Cell::index(entries).expect("index")
}

fn ctx() -> MergeContext {
    MergeContext::new()
}

fn merge(l: &Lattice, own: &Cell, other: &Cell) -> Cell {
    l.merge(&ctx(), own, other, &NoResolver).expect("merge")
}

fn merge_ctx(l: &Lattice, c: &MergeContext, own: &Cell, other: &Cell) -> Cell {
    l.merge(c, own, other, &NoResolver).expect("merge")
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The AccountKey owner of a signing key: its 32-byte public key as a Blob.
fn account(k: &SigningKey) -> Cell {
    Cell::blob(&k.verifying_key().to_bytes())
}

/// `H(x)` as a 32-byte Blob key.
fn h(x: &Cell) -> Cell {
    Cell::blob(&x.id().0)
}

/// `F(d, t)` with `d` given as bytes.
fn f(d: &[u8], t: i64) -> Cell {
    file(Cell::blob(d), t)
}

/// `D({name node ...}, t)`.
fn d(entries: Vec<(&str, Cell)>, t: i64) -> Cell {
    directory(
        idx(entries.into_iter().map(|(n, c)| (s(n), c)).collect()),
        t,
    )
}

/// A resolver over a set of cells that counts lookups.
struct MapResolver {
    cells: HashMap<ValueId, Cell>,
    lookups: AtomicUsize,
}

impl MapResolver {
    fn of(roots: &[&Cell]) -> MapResolver {
        let mut cells = HashMap::new();
        for root in roots {
            for c in etch_formats::branches_preorder(root, &NoResolver).expect("branches") {
                // Stored cells come back with their own children detached, as from a store.
                cells.insert(*c.id(), detached(&c));
            }
        }
        MapResolver {
            cells,
            lookups: AtomicUsize::new(0),
        }
    }

    fn lookups(&self) -> usize {
        self.lookups.load(AtomicOrdering::Relaxed)
    }
}

impl Resolver for MapResolver {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        self.lookups.fetch_add(1, AtomicOrdering::Relaxed);
        Ok(self.cells.get(id).cloned())
    }
}

/// The same value with no child attached (as if read from a store).
fn detached(c: &Cell) -> Cell {
    decode_cell(c.encoding().to_vec()).expect("decode")
}

// ---------------------------------------------------------------------------------------------
// §10.1 generic lattices
// ---------------------------------------------------------------------------------------------

#[test]
fn max_and_min() {
    assert_eq!(merge(&Lattice::Max, &v("3"), &v("5")), v("5"));
    assert_eq!(merge(&Lattice::Max, &v("5"), &v("3")), v("5"));
    assert_eq!(merge(&Lattice::Min, &v("5"), &v("3")), v("3"));
    assert_eq!(merge(&Lattice::Min, &v("3"), &v("5")), v("3"));
    // BigInt and Long compare numerically.
    let big = v("100000000000000000000000");
    assert_eq!(merge(&Lattice::Max, &v("5"), &big), big);
    assert_eq!(merge(&Lattice::Min, &big, &v("-5")), v("-5"));
    // Nil handling and fail-closed.
    assert_eq!(merge(&Lattice::Max, &v("5"), &Cell::nil()), v("5"));
    assert_eq!(merge(&Lattice::Max, &Cell::nil(), &v("7")), v("7"));
    assert_eq!(merge(&Lattice::Max, &v("5"), &v("\"x\"")), v("5"));
    assert_eq!(merge(&Lattice::Max, &Cell::nil(), &v("\"x\"")), Cell::nil());
    assert_eq!(Lattice::Max.zero(), v("0"));
    assert_eq!(Lattice::Min.zero(), Cell::nil());
}

#[test]
fn set_union() {
    let got = merge(&Lattice::Set, &v("#{1 2}"), &v("#{2 3}"));
    assert_eq!(got, v("#{1 2 3}"));
    // Subsets give the superset itself.
    assert_eq!(
        merge(&Lattice::Set, &v("#{1 2 3}"), &v("#{2}")),
        v("#{1 2 3}")
    );
    assert_eq!(
        merge(&Lattice::Set, &v("#{2}"), &v("#{1 2 3}")),
        v("#{1 2 3}")
    );
    assert_eq!(merge(&Lattice::Set, &v("#{1}"), &v("[2]")), v("#{1}"));
    assert_eq!(Lattice::Set.zero(), v("#{}"));
    // Large sets (hash trees) union correctly.
    let a = Cell::set((0..100).map(Cell::long).collect());
    let b = Cell::set((50..170).map(Cell::long).collect());
    let want = Cell::set((0..170).map(Cell::long).collect());
    assert_eq!(merge(&Lattice::Set, &a, &b), want);
}

#[test]
fn map_of_max() {
    let l = Lattice::map(Lattice::Max);
    assert_eq!(
        merge(&l, &v("{:a 1 :b 5}"), &v("{:a 3 :c 2}")),
        v("{:a 3 :b 5 :c 2}")
    );
    // A malformed entry of other keeps own's entry; a malformed new entry is not added.
    assert_eq!(
        merge(&l, &v("{:a 1 :b 5}"), &v("{:a \"x\" :c \"y\" :d 4}")),
        v("{:a 1 :b 5 :d 4}")
    );
    assert_eq!(merge(&l, &v("{:a 1}"), &v("[1 2]")), v("{:a 1}"));
    assert_eq!(merge(&l, &Cell::nil(), &v("{:a 1}")), v("{:a 1}"));
    assert_eq!(l.zero(), v("{}"));
}

#[test]
fn index_of_max() {
    let l = Lattice::index(Lattice::Max);
    assert_eq!(
        merge(&l, &v("#Index {:a 1 :b 5}"), &v("#Index {:a 3 :c 2}")),
        v("#Index {:a 3 :b 5 :c 2}")
    );
    // A hash map is not an Index.
    assert_eq!(
        merge(&l, &v("#Index {:a 1}"), &v("{:a 3}")),
        v("#Index {:a 1}")
    );
    assert_eq!(l.zero(), v("#Index {}"));
}

#[test]
fn lww_newer_wins_and_ties_keep_own() {
    let l = Lattice::lww();
    let x = v("{:timestamp 10 :v \"x\"}");
    let y12 = v("{:timestamp 12 :v \"y\"}");
    let y10 = v("{:timestamp 10 :v \"y\"}");
    assert_eq!(merge(&l, &x, &y12), y12);
    assert_eq!(merge(&l, &y12, &x), y12);
    assert_eq!(merge(&l, &x, &y10), x);
    assert_eq!(merge(&l, &y10, &x), y10);
    // Values without a timestamp count as 0.
    assert_eq!(
        merge(&l, &v("5"), &v("{:timestamp 1}")),
        v("{:timestamp 1}")
    );
    assert_eq!(merge(&l, &v("5"), &v("6")), v("5"));
    assert_eq!(merge(&l, &Cell::nil(), &v("6")), v("6"));
}

#[test]
fn lwp_of_json() {
    let l = Lattice::lwp(Lattice::JsonValue);
    assert_eq!(
        merge(
            &l,
            &v("{:timestamp 5 :a 1 :c \"old\"}"),
            &v("{:timestamp 9 :b 2 :c \"new\"}")
        ),
        v("{:timestamp 9 :a 1 :b 2 :c \"new\"}")
    );
    // Own newer: own wins the inner leaf conflicts.
    assert_eq!(
        merge(
            &l,
            &v("{:timestamp 9 :b 2 :c \"new\"}"),
            &v("{:timestamp 5 :a 1 :c \"old\"}")
        ),
        v("{:timestamp 9 :a 1 :b 2 :c \"new\"}")
    );
}

#[test]
fn json_value() {
    let l = Lattice::JsonValue;
    // Leaves tie: own.
    assert_eq!(merge(&l, &v("{:a 1}"), &v("{:a 2}")), v("{:a 1}"));
    assert_eq!(merge(&l, &v("{:a 2}"), &v("{:a 1}")), v("{:a 2}"));
    // Nested maps merge recursively.
    assert_eq!(
        merge(&l, &v("{:a {:x 1} :b 1}"), &v("{:a {:y 2} :c 3}")),
        v("{:a {:x 1 :y 2} :b 1 :c 3}")
    );
    // A hash map against an Index: own.
    assert_eq!(merge(&l, &v("{:a 1}"), &v("#Index {:b 1}")), v("{:a 1}"));
    assert_eq!(
        merge(
            &Lattice::JsonValueIndex,
            &v("#Index {:a 1}"),
            &v("#Index {:b 1}")
        ),
        v("#Index {:a 1 :b 1}")
    );
    assert_eq!(Lattice::JsonValue.zero(), v("{}"));
    assert_eq!(Lattice::JsonValueIndex.zero(), v("#Index {}"));
}

#[test]
fn keyed_ignores_unconfigured_keys() {
    let l = Lattice::Keyed(vec![("data".into(), Lattice::Max)]);
    assert_eq!(
        merge(&l, &v("#Index {:data 1}"), &v("#Index {:data 2 :zzz 1}")),
        v("#Index {:data 2}")
    );
    // Own's unconfigured keys are kept.
    assert_eq!(
        merge(
            &l,
            &v("#Index {:data 3 :own 1}"),
            &v("#Index {:data 2 :zzz 1}")
        ),
        v("#Index {:data 3 :own 1}")
    );
    // Index keys are compared by their bytes: a String "data" is the same entry as :data, and
    // own's spelling is kept.
    assert_eq!(
        merge(&l, &v("#Index {:data 1}"), &v("#Index {\"data\" 2}")),
        v("#Index {:data 2}")
    );
    assert_eq!(
        merge(&l, &v("#Index {}"), &v("#Index {\"data\" 2}")),
        v("#Index {:data 2}")
    );
    // With the DataLattice as in the spec's example.
    let l = Lattice::Keyed(vec![("data".into(), Lattice::Data)]);
    let x = idx(vec![(h(&s("a")), s("a"))]);
    let y = idx(vec![(h(&s("b")), s("b"))]);
    let own = idx(vec![(kw("data"), x.clone())]);
    let other = idx(vec![(kw("data"), y.clone()), (kw("zzz"), v("1"))]);
    let want = idx(vec![(kw("data"), merge(&Lattice::Data, &x, &y))]);
    assert_eq!(merge(&l, &own, &other), want);
    assert_eq!(l.zero(), v("#Index {}"));
}

#[test]
fn string_keyed() {
    let l = Lattice::StringKeyed(vec![("n".into(), Lattice::Max)]);
    assert_eq!(
        merge(&l, &v("{\"n\" 1 \"m\" 1}"), &v("{\"n\" 4 \"z\" 9}")),
        v("{\"n\" 4 \"m\" 1}")
    );
    assert_eq!(l.zero(), v("{}"));
}

#[test]
fn vector_and_tuple() {
    let l = Lattice::vector(Lattice::Max);
    assert_eq!(merge(&l, &v("[1 5]"), &v("[3 2 7]")), v("[3 5 7]"));
    assert_eq!(merge(&l, &v("[3 2 7]"), &v("[1 5]")), v("[3 5 7]"));
    assert_eq!(l.zero(), v("[]"));
    let t = Lattice::Tuple(vec![Lattice::Max, Lattice::Set]);
    assert_eq!(t.zero(), v("[0 #{}]"));
    assert_eq!(merge(&t, &v("[1 #{1}]"), &v("[2 #{2}]")), v("[2 #{1 2}]"));
    // Wrong arity is rejected.
    assert_eq!(merge(&t, &v("[1 #{1}]"), &v("[2 #{2} 3]")), v("[1 #{1}]"));
    assert!(!t.check_foreign(&v("[1]"), &NoResolver).unwrap());
    assert!(t.check_foreign(&v("[1 2]"), &NoResolver).unwrap());
}

#[test]
fn cas_other_replaces() {
    assert_eq!(
        merge(
            &Lattice::Cas,
            &v("#Index {0x01 :a}"),
            &v("#Index {0x01 :b 0x02 :c}")
        ),
        v("#Index {0x01 :b 0x02 :c}")
    );
    assert_eq!(
        merge(
            &Lattice::Cas,
            &v("#Index {0x01 :a 0x03 :d}"),
            &v("#Index {0x01 :b}")
        ),
        v("#Index {0x01 :b 0x03 :d}")
    );
}

#[test]
fn compare_and_function() {
    let l = Lattice::compare(|a, b, _| {
        Ok(a.as_long()
            .unwrap_or(0)
            .abs()
            .cmp(&b.as_long().unwrap_or(0).abs()))
    });
    assert_eq!(merge(&l, &v("-5"), &v("3")), v("-5"));
    assert_eq!(merge(&l, &v("3"), &v("-5")), v("-5"));
    // Tie (|3| = |-3|): own.
    assert_eq!(merge(&l, &v("3"), &v("-3")), v("3"));
    assert_eq!(merge(&l, &v("-3"), &v("3")), v("-3"));
    assert_eq!(merge(&l, &Cell::nil(), &v("3")), v("3"));
    let f = Lattice::Function(etch_engine::lattice::MergeFn::new(|_, a, b, _| {
        Ok(Cell::long(
            a.as_long().unwrap_or(0) + b.as_long().unwrap_or(0),
        ))
    }));
    assert_eq!(merge(&f, &v("3"), &v("4")), v("7"));
    assert_eq!(merge(&f, &v("3"), &Cell::nil()), v("3"));
}

// ---------------------------------------------------------------------------------------------
// §10.2 DataLattice
// ---------------------------------------------------------------------------------------------

#[test]
fn data_lattice_rekeys_by_value_id() {
    assert_eq!(
        s("a").id().to_hex(),
        "d07de1415ff1448fb0a125c5ba41276ed097edd984971e36cc8af9fa786d9f27"
    );
    assert_eq!(
        s("b").id().to_hex(),
        "042ffc6223bbc4dd051d5dc0ab96cfe9b3801de5c5c32ed8e079bea86a883515"
    );
    assert_eq!(
        s("c").id().to_hex(),
        "4ca69a17575840cf0a6655f4142ae95f2b184bc9131af11d8e531575e4fb5492"
    );
    assert_eq!(s("a").encoding(), [0x30, 0x01, 0x61]);
    let own = idx(vec![(h(&s("a")), s("a"))]);
    let other = idx(vec![(h(&s("b")), s("b")), (Cell::blob(&[0; 32]), s("c"))]);
    let want = idx(vec![
        (h(&s("a")), s("a")),
        (h(&s("b")), s("b")),
        (h(&s("c")), s("c")),
    ]);
    assert_eq!(merge(&Lattice::Data, &own, &other), want);
    // Entries in both keep own's value (own's mis-keyed entry stays).
    let own = idx(vec![(h(&s("a")), s("z"))]);
    let other = idx(vec![(h(&s("a")), s("a"))]);
    assert_eq!(merge(&Lattice::Data, &own, &other), own);
    // Nil values are not stored; nil own starts from #Index {}.
    let other = idx(vec![(h(&s("a")), Cell::nil()), (h(&s("b")), s("b"))]);
    assert_eq!(
        merge(&Lattice::Data, &Cell::nil(), &other),
        idx(vec![(h(&s("b")), s("b"))])
    );
    assert_eq!(
        merge(&Lattice::Data, &Cell::nil(), &Cell::nil()),
        v("#Index {}")
    );
    // A well-keyed superset is returned as it is.
    let sup = idx(vec![(h(&s("a")), s("a")), (h(&s("b")), s("b"))]);
    assert_eq!(
        merge(&Lattice::Data, &idx(vec![(h(&s("a")), s("a"))]), &sup),
        sup
    );
    assert!(Lattice::Data.child(&h(&s("a"))).is_none());
}

#[test]
fn data_store_into_large_index_reads_little() {
    // 3000 values of ~200 bytes each (branch cells), stored: own is read through a resolver.
    let values: Vec<Cell> = (0..3000)
        .map(|i| Cell::blob(format!("{i:0>200}").as_bytes()))
        .collect();
    let big = idx(values.iter().map(|x| (h(x), x.clone())).collect());
    let r = MapResolver::of(&[&big]);
    let own = detached(&big);
    let new = Cell::blob(&[7u8; 300]);
    let other = idx(vec![(h(&new), new.clone())]);
    let got = Lattice::Data.merge(&ctx(), &own, &other, &r).unwrap();
    let lookups = r.lookups();
    assert!(lookups < 20, "{lookups} lookups to add one entry");
    let mut all: Vec<(Cell, Cell)> = values.iter().map(|x| (h(x), x.clone())).collect();
    all.push((h(&new), new));
    assert_eq!(got, idx(all));
    // Merging the root with itself reads nothing.
    let r2 = MapResolver::of(&[&big]);
    let same = Lattice::Data
        .merge(&ctx(), &own, &detached(&big), &r2)
        .unwrap();
    assert_eq!(same, own);
    assert_eq!(r2.lookups(), 0);
}

#[test]
fn missing_cells_propagate() {
    let big = Cell::blob(&[1u8; 300]);
    let own = d(vec![("a", file(big.clone(), 100))], 100);
    let other_full = d(vec![("a", file(Cell::blob(&[2u8; 300]), 200))], 200);
    let other = detached(&other_full);
    let err = Lattice::Dlfs
        .merge(&ctx(), &own, &other, &NoResolver)
        .unwrap_err();
    assert!(matches!(err, ResolveError::Missing(_)), "{err:?}");
    // With the cells available the merge completes.
    let r = MapResolver::of(&[&other_full]);
    assert_eq!(
        Lattice::Dlfs.merge(&ctx(), &own, &other, &r).unwrap(),
        other_full
    );
}

// ---------------------------------------------------------------------------------------------
// §10.3 owner maps and signatures
// ---------------------------------------------------------------------------------------------

/// The `:fs` lattice: owner → signed drives map.
fn fs() -> Lattice {
    Lattice::owner(Lattice::map(Lattice::Dlfs))
}

fn drives(entries: Vec<(&str, Cell)>) -> Cell {
    Cell::map(entries.into_iter().map(|(n, c)| (s(n), c)).collect())
}

#[test]
fn signatures() {
    let k1 = key(1);
    let value = drives(vec![("home", d(vec![], 5))]);
    let slot = sign(&k1, value.clone());
    assert!(signature_valid(&slot));
    assert!(fs()
        .child(&account(&k1))
        .unwrap()
        .check_foreign(&slot, &NoResolver)
        .unwrap());
    // A flipped signature bit fails.
    let mut sig = slot.signed_signature().unwrap().to_vec();
    sig[0] ^= 1;
    let bad = Cell::signed(
        &k1.verifying_key().to_bytes(),
        &sig.try_into().unwrap(),
        value.clone(),
    );
    assert!(!signature_valid(&bad));
    // A big value is signed over its ref encoding.
    let big = Cell::blob(&[9u8; 1000]);
    let slot = sign(&k1, big.clone());
    assert_eq!(slot.signed_message().unwrap().len(), 33);
    assert!(signature_valid(&slot));
    assert!(!signature_valid(&v("1")));
}

#[test]
fn owner_map_spec_example() {
    let (k1, k2, k3) = (key(1), key(2), key(3));
    let home = d(vec![("a.txt", f(b"a", 10))], 10);
    let work = d(vec![("b.txt", f(b"b", 20))], 20);
    let s1 = sign(&k1, drives(vec![("home", home.clone())]));
    let s1b = sign(
        &k1,
        drives(vec![("home", home.clone()), ("work", work.clone())]),
    );
    let s2 = sign(&k3, drives(vec![("x", home.clone())]));
    let own = Cell::map(vec![(account(&k1), s1.clone())]);
    let other = Cell::map(vec![
        (account(&k1), s1b.clone()),
        (account(&k2), s2.clone()),
    ]);
    let want = Cell::map(vec![(account(&k1), s1b.clone())]);
    assert_eq!(merge(&fs(), &own, &other), want);
    // Nil own: the same per-entry checks (no bulk accept).
    assert_eq!(merge(&fs(), &Cell::nil(), &other), want);
    // Concurrent change without the owner's key: own kept.
    let s1c = sign(&k1, drives(vec![("work", work.clone())]));
    let other = Cell::map(vec![(account(&k1), s1c.clone())]);
    assert_eq!(merge(&fs(), &own, &other), own);
    // Another node's key does not help.
    let c3 = MergeContext::with_signing_key(k3.clone());
    assert_eq!(merge_ctx(&fs(), &c3, &own, &other), own);
    // With the owner's key: re-signed, and the result verifies.
    let c1 = MergeContext::with_signing_key(k1.clone());
    let got = merge_ctx(&fs(), &c1, &own, &other);
    let slot = value_at_path(&got, &[account(&k1)], &NoResolver).unwrap();
    assert!(signature_valid(&slot));
    assert_eq!(
        slot.signed_public_key().unwrap(),
        k1.verifying_key().to_bytes()
    );
    assert_eq!(
        value_at_path(&slot, &[kw("value")], &NoResolver).unwrap(),
        drives(vec![("home", home), ("work", work)])
    );
    // The re-signed slot is accepted by a node without the key.
    assert_eq!(merge(&fs(), &own, &got), got);
}

#[test]
fn owner_map_rejections() {
    let (k1, k3) = (key(1), key(3));
    let value = drives(vec![("home", d(vec![], 5))]);
    let own = Cell::map(vec![]);
    // Forged signer: signed by K3 under K1.
    let forged = Cell::map(vec![(account(&k1), sign(&k3, value.clone()))]);
    assert_eq!(merge(&fs(), &own, &forged), own);
    assert_eq!(merge(&fs(), &Cell::nil(), &forged), v("{}"));
    // Invalid signature under the right key.
    let good = sign(&k1, value.clone());
    let mut sig = good.signed_signature().unwrap().to_vec();
    sig[10] ^= 0x40;
    let bad = Cell::signed(
        &k1.verifying_key().to_bytes(),
        &sig.try_into().unwrap(),
        value.clone(),
    );
    let other = Cell::map(vec![(account(&k1), bad.clone())]);
    assert_eq!(merge(&fs(), &own, &other), own);
    assert_eq!(merge(&fs(), &Cell::nil(), &other), v("{}"));
    let old = Cell::map(vec![(account(&k1), sign(&k1, drives(vec![])))]);
    assert_eq!(merge(&fs(), &old, &other), old);
    // Not SignedData at all.
    let other = Cell::map(vec![(account(&k1), value.clone())]);
    assert_eq!(merge(&fs(), &own, &other), own);
    // Not a map.
    assert_eq!(merge(&fs(), &own, &v("[1]")), own);
    // The right key is accepted.
    let other = Cell::map(vec![(account(&k1), good.clone())]);
    assert_eq!(merge(&fs(), &own, &other), other);
}

#[test]
fn owner_identity_types() {
    let (k1, k3) = (key(1), key(3));
    let value = drives(vec![]);
    let did1 = s(&did_key(&k1.verifying_key().to_bytes()));
    assert!(did_key(&k1.verifying_key().to_bytes()).starts_with("did:key:z6Mk"));
    let lenient = ctx();
    let strict = MergeContext {
        owner_policy: OwnerPolicy::Reject,
        ..MergeContext::new()
    };
    let pk1 = k1.verifying_key().to_bytes();
    let pk3 = k3.verifying_key().to_bytes();
    // did:key owners are checked under both policies.
    assert!(lenient.verify_owner(&did1, &pk1));
    assert!(!lenient.verify_owner(&did1, &pk3));
    assert!(!lenient.verify_owner(&s("did:key:zNotBase58!"), &pk1));
    assert!(strict.verify_owner(&did1, &pk1));
    let good = Cell::map(vec![(did1.clone(), sign(&k1, value.clone()))]);
    let forged = Cell::map(vec![(did1.clone(), sign(&k3, value.clone()))]);
    assert_eq!(merge(&fs(), &v("{}"), &good), good);
    assert_eq!(merge(&fs(), &v("{}"), &forged), v("{}"));
    // Addresses, other DIDs and other types follow the policy.
    for owner in [
        Cell::address(12),
        s("did:web:example.com"),
        kw("bob"),
        Cell::blob(&[1; 31]),
    ] {
        assert!(lenient.verify_owner(&owner, &pk3), "{owner:?}");
        assert!(!strict.verify_owner(&owner, &pk3), "{owner:?}");
        let other = Cell::map(vec![(owner.clone(), sign(&k3, value.clone()))]);
        assert_eq!(merge_ctx(&fs(), &lenient, &v("{}"), &other), other);
        assert_eq!(merge_ctx(&fs(), &strict, &v("{}"), &other), v("{}"));
    }
    // AccountKeys are always enforced.
    assert!(!lenient.verify_owner(&account(&k1), &pk3));
    assert!(strict.verify_owner(&account(&k1), &pk1));
}

#[test]
fn standalone_signed_resigns_with_node_key() {
    let l = Lattice::signed(Lattice::Set);
    let (k1, k3) = (key(1), key(3));
    let a = sign(&k1, v("#{1}"));
    let b = sign(&k3, v("#{2}"));
    // No key: own.
    assert_eq!(merge(&l, &a, &b), a);
    // Subsumed: the subsuming side unchanged.
    let ab = sign(&k3, v("#{1 2}"));
    assert_eq!(merge(&l, &a, &ab), ab);
    assert_eq!(merge(&l, &ab, &a), ab);
    // With a key: re-signed by it.
    let got = merge_ctx(&l, &MergeContext::with_signing_key(key(9)), &a, &b);
    assert!(signature_valid(&got));
    assert_eq!(
        got.signed_public_key().unwrap(),
        key(9).verifying_key().to_bytes()
    );
    assert_eq!(
        value_at_path(&got, &[kw("value")], &NoResolver).unwrap(),
        v("#{1 2}")
    );
    // Nil own: other only if valid.
    assert_eq!(merge(&l, &Cell::nil(), &b), b);
    let bad = Cell::signed(&[0; 32], &[0; 64], v("#{3}"));
    assert_eq!(merge(&l, &Cell::nil(), &bad), Cell::nil());
    assert_eq!(merge(&l, &a, &bad), a);
}

#[test]
fn p2p_nodes_and_local() {
    let root = Lattice::root();
    let k1 = key(1);
    let info = |t: i64| {
        v(&format!(
            "{{:timestamp {t} :transports [\"tcp://a:18888\"] :type \"Convex Lattice Node\" :version \"1\"}}"
        ))
    };
    let nodes = |slot: Cell| {
        idx(vec![(
            kw("p2p"),
            idx(vec![(kw("nodes"), Cell::map(vec![(account(&k1), slot)]))]),
        )])
    };
    let r1 = merge(&root, &v("#Index {}"), &nodes(sign(&k1, info(100))));
    assert_eq!(r1, nodes(sign(&k1, info(100))));
    // A newer NodeInfo replaces, an older one does not.
    let r2 = merge(&root, &r1, &nodes(sign(&k1, info(200))));
    assert_eq!(r2, nodes(sign(&k1, info(200))));
    assert_eq!(merge(&root, &r2, &nodes(sign(&k1, info(150)))), r2);
    // Forged NodeInfo under K1, even when the root has no :p2p yet.
    assert_eq!(
        merge(&root, &v("#Index {}"), &nodes(sign(&key(2), info(300)))),
        idx(vec![(kw("p2p"), idx(vec![(kw("nodes"), v("{}"))]))])
    );
    // :local: per-owner map of LWW values.
    let local = |m: Cell| {
        idx(vec![(
            kw("local"),
            Cell::map(vec![(account(&k1), sign(&k1, m))]),
        )])
    };
    let a = local(v("{:x {:timestamp 1 :v 1} :y {:timestamp 5 :v 1}}"));
    let b = local(v("{:x {:timestamp 2 :v 2} :y {:timestamp 4 :v 2}}"));
    // Concurrent: the owner's node re-signs the LWW merge; others keep own.
    assert_eq!(merge(&root, &a, &b), a);
    let got = merge_ctx(&root, &MergeContext::with_signing_key(k1.clone()), &a, &b);
    let inner =
        value_at_path(&got, &[kw("local"), account(&k1), kw("value")], &NoResolver).unwrap();
    assert_eq!(inner, v("{:x {:timestamp 2 :v 2} :y {:timestamp 5 :v 1}}"));
}

// ---------------------------------------------------------------------------------------------
// §10.4 DLFS
// ---------------------------------------------------------------------------------------------

fn dl(own: &Cell, other: &Cell) -> Cell {
    merge(&Lattice::Dlfs, own, other)
}

#[test]
fn dlfs_case_1_newer_file_wins() {
    assert_eq!(dl(&f(&[1], 100), &f(&[2], 200)), f(&[2], 200));
    assert_eq!(dl(&f(&[2], 200), &f(&[1], 100)), f(&[2], 200));
}

#[test]
fn dlfs_case_2_tie_favours_own() {
    assert_eq!(dl(&f(&[1], 100), &f(&[2], 100)), f(&[1], 100));
    assert_eq!(dl(&f(&[2], 100), &f(&[1], 100)), f(&[2], 100));
}

#[test]
fn dlfs_case_3_disjoint_directories() {
    let own = d(vec![("x.txt", f(&[1], 100))], 100);
    let other = d(vec![("y.txt", f(&[2], 150))], 150);
    let want = d(vec![("x.txt", f(&[1], 100)), ("y.txt", f(&[2], 150))], 150);
    assert_eq!(dl(&own, &other), want);
    assert_eq!(dl(&other, &own), want);
}

#[test]
fn dlfs_case_4_deletion_propagates() {
    let own = d(vec![("x.txt", f(&[1], 100))], 100);
    let other = d(vec![("x.txt", tombstone(200))], 200);
    assert_eq!(dl(&own, &other), other);
}

#[test]
fn dlfs_case_5_resurrection() {
    let own = d(vec![("x.txt", tombstone(200))], 200);
    let other = d(vec![("x.txt", f(&[3], 250))], 250);
    assert_eq!(dl(&own, &other), other);
}

#[test]
fn dlfs_case_6_tombstone_vs_newer_directory() {
    let other = d(vec![("new.txt", f(&[4], 300))], 300);
    assert_eq!(dl(&tombstone(200), &other), other);
    assert_eq!(dl(&other, &tombstone(200)), other);
    // An older directory loses to a newer tombstone.
    assert_eq!(dl(&other, &tombstone(400)), tombstone(400));
}

#[test]
fn dlfs_case_7_metadata_loss() {
    let entries_a = idx(vec![(s("a"), f(&[1], 10))]);
    let entries_ab = idx(vec![(s("a"), f(&[1], 10)), (s("b"), f(&[2], 120))]);
    let own = Cell::vector(vec![
        entries_a.clone(),
        Cell::nil(),
        s("m"),
        Cell::long(100),
    ]);
    let other = Cell::vector(vec![
        entries_ab.clone(),
        Cell::nil(),
        Cell::nil(),
        Cell::long(120),
    ]);
    let want = Cell::vector(vec![
        entries_ab.clone(),
        Cell::nil(),
        Cell::nil(),
        Cell::long(120),
    ]);
    assert_eq!(dl(&own, &other), want);
    // Own newer but missing "b": rebuilt with own's time, metadata dropped.
    let own130 = Cell::vector(vec![
        entries_a.clone(),
        Cell::nil(),
        s("m"),
        Cell::long(130),
    ]);
    assert_eq!(
        dl(&own130, &other),
        Cell::vector(vec![
            entries_ab.clone(),
            Cell::nil(),
            Cell::nil(),
            Cell::long(130)
        ])
    );
    // Own newer and other adds nothing own lacks: own intact, metadata included.
    let own_full = Cell::vector(vec![
        entries_ab.clone(),
        Cell::nil(),
        s("m"),
        Cell::long(130),
    ]);
    let other_less = Cell::vector(vec![
        entries_a.clone(),
        Cell::nil(),
        Cell::nil(),
        Cell::long(120),
    ]);
    assert_eq!(dl(&own_full, &other_less), own_full);
    // Extra elements beyond index 3 are dropped by a rebuild and kept when passed through.
    let five = Cell::vector(vec![
        entries_ab.clone(),
        Cell::nil(),
        Cell::nil(),
        Cell::long(120),
        v("#Index {}"),
    ]);
    assert_eq!(dl(&own, &five), want);
    assert_eq!(dl(&Cell::nil(), &five), five);
    // Files with equal data but different metadata: newer node.
    let fm = Cell::vector(vec![
        Cell::nil(),
        Cell::blob(&[1]),
        s("meta"),
        Cell::long(50),
    ]);
    assert_eq!(dl(&f(&[1], 40), &fm), fm);
    assert_eq!(dl(&fm, &f(&[1], 60)), f(&[1], 60));
}

#[test]
fn dlfs_case_8_new_drive_from_peer() {
    let l = Lattice::map(Lattice::Dlfs);
    let x = d(vec![("a", f(&[1], 10))], 10);
    assert_eq!(
        merge(&l, &v("{}"), &drives(vec![("home", x.clone())])),
        drives(vec![("home", x)])
    );
    assert_eq!(
        merge(&l, &v("{}"), &drives(vec![("home", v("[1 2 3]"))])),
        drives(vec![("home", dlfs::zero())])
    );
    assert_eq!(
        merge(&l, &v("{}"), &drives(vec![("home", v("[nil nil nil :t]"))])),
        drives(vec![("home", dlfs::zero())])
    );
}

#[test]
fn dlfs_fails_closed_for_the_whole_drive() {
    let own = d(vec![("x", f(&[1], 100)), ("k", f(&[1], 1))], 100);
    // A malformed child met in the merge: own for the whole drive (y is not added either).
    let other = d(vec![("x", v("[1 2]")), ("y", f(&[2], 150))], 150);
    assert_eq!(dl(&own, &other), own);
    // Element 0 not an Index, element 1 not a Blob, element 3 not a Long.
    for bad in [
        v("[[1] nil nil 200]"),
        v("[nil \"text\" nil 200]"),
        v("[nil 0x01 nil \"200\"]"),
        v("[nil 0x01 nil]"),
        v("{:a 1}"),
    ] {
        assert_eq!(dl(&own, &bad), own, "{bad:?}");
        let nested = d(vec![("x", bad.clone())], 300);
        assert_eq!(dl(&own, &nested), own, "{bad:?}");
    }
    // Own nil: check_foreign or zero.
    assert_eq!(dl(&Cell::nil(), &v("[1 2]")), dlfs::zero());
    assert_eq!(dl(&Cell::nil(), &own), own);
    assert_eq!(dl(&own, &Cell::nil()), own);
}

#[test]
fn dlfs_node_helpers() {
    let r = &NoResolver;
    let dir = d(vec![], 1);
    assert!(dlfs::is_directory(&dir, r).unwrap());
    assert!(!dlfs::is_file(&dir, r).unwrap());
    assert!(dlfs::is_file(&f(b"x", 1), r).unwrap());
    assert!(!dlfs::is_tombstone(&f(b"", 1), r).unwrap());
    assert!(dlfs::is_tombstone(&tombstone(1), r).unwrap());
    assert_eq!(dlfs::update_time(&tombstone(7), r).unwrap(), Some(7));
    assert!(dlfs::check_foreign(&tombstone(7), r).unwrap());
    assert!(!dlfs::check_foreign(&v("[nil nil nil]"), r).unwrap());
    assert!(!dlfs::check_foreign(&v("[nil nil nil 1.5]"), r).unwrap());
    assert!(dlfs::check_foreign(&v("[nil nil nil 1 :extra]"), r).unwrap());
    assert_eq!(Lattice::Dlfs.zero(), dlfs::zero());
}

#[test]
fn dlfs_derived_encodings() {
    let hello = file(Cell::blob(b"Hello"), 1000);
    assert_eq!(
        hex::encode(hello.encoding()),
        "80040031054865 6c6c6f001203e8".replace(' ', "")
    );
    let dir = d(vec![("hello.txt", hello)], 1000);
    assert_eq!(
        hex::encode(dir.encoding()),
        "800484013009 68656c6c6f2e747874 80040031054865 6c6c6f001203e8 0000 1203e8"
            .replace(' ', "")
    );
    assert_eq!(dir.len(), 34);
    assert_eq!(
        dir.id().to_hex(),
        "f6553b798079c80de9d84b681f2953a829b853ebff3e5600fe5745718d8f9af9"
    );
    assert_eq!(hex::encode(tombstone(2000).encoding()), "80040000001207d0");
    let zero = dlfs::zero();
    assert_eq!(hex::encode(zero.encoding()), "80048400000010");
    assert_eq!(
        zero.id().to_hex(),
        "f47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918"
    );
}

#[test]
fn dlfs_deep_trees_merge_without_walking_shared_parts() {
    // A drive with many files in many directories, detached (store-backed); the other side
    // changes one file.
    let mut dirs = Vec::new();
    for i in 0..40 {
        let files: Vec<(String, Cell)> = (0..40)
            .map(|j| (format!("f{j}"), f(format!("{i}-{j}").as_bytes(), 10)))
            .collect();
        dirs.push((
            format!("d{i}"),
            directory(
                idx(files.into_iter().map(|(n, c)| (s(&n), c)).collect()),
                10,
            ),
        ));
    }
    let own_full = directory(
        idx(dirs.iter().map(|(n, c)| (s(n), c.clone())).collect()),
        10,
    );
    let mut dirs2 = dirs.clone();
    let files: Vec<(Cell, Cell)> = vec![(s("new"), f(b"new", 20))];
    let d7 = dirs2[7].1.clone();
    let entries7 = value_at_path(&d7, &[Cell::long(0)], &NoResolver).unwrap();
    let entries7 = Lattice::Cas
        .merge(&ctx(), &entries7, &idx(files), &NoResolver)
        .unwrap();
    dirs2[7].1 = directory(entries7, 20);
    let other_full = directory(
        idx(dirs2.iter().map(|(n, c)| (s(n), c.clone())).collect()),
        20,
    );
    let r = MapResolver::of(&[&own_full, &other_full]);
    let got = Lattice::Dlfs
        .merge(&ctx(), &detached(&own_full), &detached(&other_full), &r)
        .unwrap();
    assert_eq!(got, other_full);
    assert!(r.lookups() < 30, "{} lookups", r.lookups());
}

// ---------------------------------------------------------------------------------------------
// Root lattice, paths (§4, §4.1, §6.4)
// ---------------------------------------------------------------------------------------------

#[test]
fn root_lattice_shape() {
    let root = Lattice::root();
    assert_eq!(root.zero(), v("#Index {}"));
    assert!(matches!(root.child(&kw("data")), Some(Lattice::Data)));
    assert!(matches!(root.child(&s("data")), Some(Lattice::Data)));
    assert!(root.child(&kw("kv")).is_none());
    assert!(root.child(&kw("queue")).is_none());
    let k = account(&key(1));
    let p = [kw("fs"), k.clone(), kw("value"), s("home")];
    assert!(matches!(root.at_path(&p), Some(Lattice::Dlfs)));
    assert!(matches!(root.at_path(&p[..3]), Some(Lattice::Map(_))));
    assert!(matches!(root.at_path(&p[..2]), Some(Lattice::Signed(_))));
    assert!(matches!(root.at_path(&p[..1]), Some(Lattice::Owner(_))));
    assert!(root.at_path(&[kw("fs"), k.clone(), kw("other")]).is_none());
    assert!(root
        .at_path(&[kw("fs"), k.clone(), kw("value"), s("home"), Cell::long(0)])
        .is_none());
    assert!(matches!(
        root.at_path(&[kw("p2p"), kw("nodes"), k.clone(), kw("value")]),
        Some(Lattice::Lww(_))
    ));
    assert!(matches!(
        root.at_path(&[kw("local"), k, kw("value"), kw("x")]),
        Some(Lattice::Lww(_))
    ));
    assert_eq!(root.resolve_key(&s("fs")), Some(kw("fs")));
    assert_eq!(root.resolve_key(&s("zzz")), None);
}

fn root_with_fs(owner: &Cell, slot: Cell) -> Cell {
    idx(vec![(kw("fs"), Cell::map(vec![(owner.clone(), slot)]))])
}

#[test]
fn root_merge_of_everything() {
    let root = Lattice::root();
    let k1 = key(1);
    let home = d(vec![("a", f(&[1], 10))], 10);
    let data = idx(vec![(h(&s("a")), s("a"))]);
    let other = idx(vec![
        (kw("data"), data.clone()),
        (
            kw("fs"),
            Cell::map(vec![(
                account(&k1),
                sign(&k1, drives(vec![("home", home.clone())])),
            )]),
        ),
        (kw("kv"), v("{:x 1}")),
        (kw("zzz"), v("1")),
    ]);
    let got = merge(&root, &v("#Index {}"), &other);
    let want = idx(vec![
        (kw("data"), data),
        (
            kw("fs"),
            Cell::map(vec![(
                account(&k1),
                sign(&k1, drives(vec![("home", home)])),
            )]),
        ),
    ]);
    assert_eq!(got, want);
    assert_eq!(merge(&root, &got, &got), got);
    assert_eq!(merge(&root, &got, &v("#Index {}")), got);
    assert_eq!(merge(&root, &Cell::nil(), &got), got);
}

#[test]
fn root_merge_reads_only_what_differs() {
    let root = Lattice::root();
    let values: Vec<Cell> = (0..2000)
        .map(|i| Cell::blob(format!("{i:0>200}").as_bytes()))
        .collect();
    let data = idx(values.iter().map(|x| (h(x), x.clone())).collect());
    let keys: Vec<SigningKey> = (1..=20).map(key).collect();
    let slot = |k: &SigningKey, t: i64| {
        let files: Vec<(Cell, Cell)> = (0..30)
            .map(|j| {
                (
                    s(&format!("file{j}")),
                    f(format!("{j:0>150}").as_bytes(), 10),
                )
            })
            .collect();
        let mut files = files;
        files.push((s("latest"), f(b"x", t)));
        sign(k, drives(vec![("home", directory(idx(files), t))]))
    };
    let fs_of = |t7: i64| {
        Cell::map(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (account(k), slot(k, if i == 7 { t7 } else { 10 })))
                .collect(),
        )
    };
    let own_full = idx(vec![(kw("data"), data.clone()), (kw("fs"), fs_of(10))]);
    let other_full = idx(vec![(kw("data"), data), (kw("fs"), fs_of(20))]);
    let r = MapResolver::of(&[&own_full, &other_full]);
    let (own, other) = (detached(&own_full), detached(&other_full));
    assert_eq!(root.merge(&ctx(), &own, &own, &r).unwrap(), own);
    assert_eq!(r.lookups(), 0);
    let got = root.merge(&ctx(), &own, &other, &r).unwrap();
    assert_eq!(got, other_full);
    assert!(r.lookups() < 30, "{} lookups", r.lookups());
}

#[test]
fn merge_at_path_rules() {
    let root = Lattice::root();
    let k1 = key(1);
    let owner = account(&k1);
    let home = d(vec![("a", f(&[1], 10))], 10);
    let slot = sign(&k1, drives(vec![("home", home.clone())]));
    let base = root_with_fs(&owner, slot.clone());
    let r = &NoResolver;
    let c = ctx();

    // Below :value of a foreign owner: rejected.
    let newer = d(vec![("b", f(&[2], 20))], 20);
    let p = [kw("fs"), owner.clone(), kw("value"), s("home")];
    assert_eq!(
        merge_at_path(&root, &c, &base, &p, &newer, r),
        Err(MergeError::BelowForeignOwner {
            owner: owner.clone()
        })
    );
    assert_eq!(
        merge_at_path(&root, &c, &base, &p[..3], &drives(vec![]), r),
        Err(MergeError::BelowForeignOwner {
            owner: owner.clone()
        })
    );
    // Another node's key is still foreign.
    let c3 = MergeContext::with_signing_key(key(3));
    assert!(matches!(
        merge_at_path(&root, &c3, &base, &p, &newer, r),
        Err(MergeError::BelowForeignOwner { .. })
    ));
    // With the owner's key: merged into the drive and re-signed.
    let c1 = MergeContext::with_signing_key(k1.clone());
    let got = merge_at_path(&root, &c1, &base, &p, &newer, r).unwrap();
    let new_slot = value_at_path(&got, &p[..2], r).unwrap();
    assert!(signature_valid(&new_slot));
    assert_eq!(
        value_at_path(&got, &p, r).unwrap(),
        Lattice::Dlfs.merge(&c, &home, &newer, r).unwrap()
    );
    // Merging what is already there changes nothing.
    assert_eq!(
        merge_at_path(&root, &c1, &base, &p, &home, r).unwrap(),
        base
    );

    // At [:fs] with a valid signed slot: merged; with a forged one: ignored.
    let other_k = key(2);
    let slot2 = sign(&other_k, drives(vec![("w", d(vec![], 1))]));
    let fs_val = Cell::map(vec![(account(&other_k), slot2.clone())]);
    let got = merge_at_path(&root, &c, &base, &[kw("fs")], &fs_val, r).unwrap();
    assert_eq!(
        got,
        idx(vec![(
            kw("fs"),
            Cell::map(vec![
                (owner.clone(), slot.clone()),
                (account(&other_k), slot2.clone())
            ])
        )])
    );
    let forged = Cell::map(vec![(account(&other_k), sign(&k1, drives(vec![])))]);
    assert_eq!(
        merge_at_path(&root, &c, &base, &[kw("fs")], &forged, r).unwrap(),
        base
    );
    // At [:fs K] with the slot itself.
    let got2 = merge_at_path(&root, &c, &base, &[kw("fs"), account(&other_k)], &slot2, r).unwrap();
    assert_eq!(got2, got);
    let bad = merge_at_path(
        &root,
        &c,
        &base,
        &[kw("fs"), account(&other_k)],
        &sign(&k1, drives(vec![])),
        r,
    )
    .unwrap();
    assert_eq!(bad, base);

    // [:data] with an Index: the DataLattice re-keys.
    let data = idx(vec![(Cell::blob(&[0; 32]), s("c"))]);
    let got = merge_at_path(&root, &c, &base, &[kw("data")], &data, r).unwrap();
    assert_eq!(
        value_at_path(&got, &[kw("data")], r).unwrap(),
        idx(vec![(h(&s("c")), s("c"))])
    );
    // Unknown root key: ignored.
    assert_eq!(
        merge_at_path(&root, &c, &base, &[kw("zzz")], &v("1"), r).unwrap(),
        base
    );
    assert_eq!(
        merge_at_path(&root, &c, &base, &[kw("kv"), s("x")], &v("1"), r).unwrap(),
        base
    );
    // Below a value lattice: no lattice.
    assert!(matches!(
        merge_at_path(&root, &c, &base, &[kw("data"), h(&s("c"))], &s("c"), r),
        Err(MergeError::NoLattice(_))
    ));
    // The empty path merges the whole root.
    assert_eq!(
        merge_at_path(&root, &c, &base, &[], &got, r).unwrap(),
        merge(&root, &base, &got)
    );
    // [:p2p :nodes K] with a signed NodeInfo.
    let info = sign(&k1, v("{:timestamp 5}"));
    let got = merge_at_path(
        &root,
        &c,
        &base,
        &[kw("p2p"), kw("nodes"), owner.clone()],
        &info,
        r,
    )
    .unwrap();
    assert_eq!(
        value_at_path(&got, &[kw("p2p"), kw("nodes"), owner.clone()], r).unwrap(),
        info
    );
    // The owner creates a drive from nothing.
    let got = merge_at_path(&root, &c1, &v("#Index {}"), &p, &home, r).unwrap();
    assert_eq!(value_at_path(&got, &p, r).unwrap(), home);
    assert!(signature_valid(&value_at_path(&got, &p[..2], r).unwrap()));
}

// ---------------------------------------------------------------------------------------------
// Laws (§1, §11) on tie-free random inputs
// ---------------------------------------------------------------------------------------------

fn laws(l: &Lattice, a: &Cell, b: &Cell, c: &Cell) -> Result<(), TestCaseError> {
    let m = |x: &Cell, y: &Cell| merge(l, x, y);
    prop_assert_eq!(m(a, a), a.clone(), "idempotent");
    prop_assert_eq!(m(a, b), m(b, a), "commutative");
    prop_assert_eq!(m(&m(a, b), c), m(a, &m(b, c)), "associative");
    prop_assert_eq!(m(&l.zero(), a), a.clone(), "identity");
    Ok(())
}

fn small_set() -> impl Strategy<Value = Cell> {
    prop::collection::vec(0i64..40, 0..30)
        .prop_map(|xs| Cell::set(xs.into_iter().map(Cell::long).collect()))
}

fn max_map() -> impl Strategy<Value = Cell> {
    prop::collection::vec((0i64..30, 0i64..1000), 0..40).prop_map(|kv| {
        Cell::map(
            kv.into_iter()
                .map(|(k, x)| (Cell::long(k), Cell::long(x)))
                .collect(),
        )
    })
}

fn data_index() -> impl Strategy<Value = Cell> {
    prop::collection::vec(0i64..60, 0..30).prop_map(|xs| {
        idx(xs
            .into_iter()
            .map(|x| {
                let c = Cell::long(x);
                (h(&c), c)
            })
            .collect())
    })
}

/// A random drive tree whose every node has update time `t * 3 + phase` for distinct `t`, so
/// that nodes of different inputs never tie. `kinds` true: a name's kind is fixed by the name
/// (directories "d…", files "f…"), which DLFS needs for associativity.
#[derive(Debug, Clone)]
enum Shape {
    File(u8),
    Tomb,
    Dir(Vec<(u8, Shape)>),
}

fn shape(depth: u32) -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![(0u8..3).prop_map(Shape::File), Just(Shape::Tomb)];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop::collection::vec((0u8..4, inner), 0..4).prop_map(Shape::Dir)
    })
}

fn build(shape: &Shape, phase: i64, counter: &mut i64, kinds: bool) -> Cell {
    *counter += 1;
    let t = *counter * 3 + phase;
    match shape {
        Shape::File(x) => f(&[*x], t),
        Shape::Tomb if kinds => f(&[9], t),
        Shape::Tomb => tombstone(t),
        Shape::Dir(entries) => {
            let mut out: Vec<(Cell, Cell)> = Vec::new();
            for (name, sub) in entries {
                let is_dir = matches!(sub, Shape::Dir(_));
                let n = if kinds {
                    format!("{}{name}", if is_dir { "d" } else { "f" })
                } else {
                    format!("n{name}")
                };
                out.push((s(&n), build(sub, phase, counter, kinds)));
            }
            // The directory's own time is the newest of its subtree (as local writes do).
            *counter += 1;
            directory(idx(out), *counter * 3 + phase)
        }
    }
}

fn drive(kinds: bool) -> impl Strategy<Value = (Cell, Cell, Cell)> {
    (
        prop::collection::vec((0u8..4, shape(3)), 0..4),
        prop::collection::vec((0u8..4, shape(3)), 0..4),
        prop::collection::vec((0u8..4, shape(3)), 0..4),
        0i64..1000,
    )
        .prop_map(move |(a, b, c, start)| {
            let mut counter = start;
            let a = build(&Shape::Dir(a), 0, &mut counter, kinds);
            let mut counter = start / 2;
            let b = build(&Shape::Dir(b), 1, &mut counter, kinds);
            let mut counter = start / 3;
            let c = build(&Shape::Dir(c), 2, &mut counter, kinds);
            (a, b, c)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn laws_max(a in 0..i64::MAX, b in 0..i64::MAX, c in any::<i64>()) {
        // Max's zero is 0, an identity only for non-negative values.
        let c = c.max(0);
        laws(&Lattice::Max, &Cell::long(a), &Cell::long(b), &Cell::long(c))?;
        laws(&Lattice::Min, &Cell::long(a), &Cell::long(b), &Cell::long(c))?;
    }

    #[test]
    fn laws_set(a in small_set(), b in small_set(), c in small_set()) {
        laws(&Lattice::Set, &a, &b, &c)?;
    }

    #[test]
    fn laws_map_of_max(a in max_map(), b in max_map(), c in max_map()) {
        laws(&Lattice::map(Lattice::Max), &a, &b, &c)?;
    }

    #[test]
    fn laws_index_of_max(
        a in prop::collection::vec((prop::collection::vec(0u8..3, 0..4), 0i64..1000), 0..30),
        b in prop::collection::vec((prop::collection::vec(0u8..3, 0..4), 0i64..1000), 0..30),
        c in prop::collection::vec((prop::collection::vec(0u8..3, 0..4), 0i64..1000), 0..30),
    ) {
        let mk = |e: &Vec<(Vec<u8>, i64)>| idx(e.iter().map(|(k, x)| (Cell::blob(k), Cell::long(*x))).collect());
        laws(&Lattice::index(Lattice::Max), &mk(&a), &mk(&b), &mk(&c))?;
    }

    #[test]
    fn laws_data(a in data_index(), b in data_index(), c in data_index()) {
        laws(&Lattice::Data, &a, &b, &c)?;
    }

    #[test]
    fn laws_dlfs((a, b, c) in drive(true)) {
        laws(&Lattice::Dlfs, &a, &b, &c)?;
    }

    #[test]
    fn dlfs_commutes_with_kind_changes((a, b, _c) in drive(false)) {
        let m = |x: &Cell, y: &Cell| merge(&Lattice::Dlfs, x, y);
        prop_assert_eq!(m(&a, &a), a.clone());
        prop_assert_eq!(m(&a, &b), m(&b, &a));
        prop_assert_eq!(m(&m(&a, &b), &b), m(&a, &b));
    }
}

#[test]
fn dlfs_is_not_associative_across_kind_changes() {
    // lattice.md §7.5: whole-node LWW between a directory and a file is not associative.
    let a = d(vec![("x", f(&[1], 1))], 5);
    let b = f(&[2], 3);
    let c = d(vec![("y", f(&[3], 1))], 1);
    let left = dl(&dl(&a, &b), &c);
    let right = dl(&a, &dl(&b, &c));
    assert_eq!(left, d(vec![("x", f(&[1], 1)), ("y", f(&[3], 1))], 5));
    assert_eq!(right, a);
}

#[test]
fn dlfs_deep_trees_stay_within_the_stack() {
    // A chain of directories `depth` deep ending in one file, on both sides with a conflict at
    // the bottom.
    fn chain(depth: usize, leaf: Cell, t: i64) -> Cell {
        let mut node = leaf;
        for _ in 0..depth {
            node = d(vec![("d", node)], t);
        }
        node
    }
    let within = dlfs::MAX_DEPTH - 1;
    let own = chain(within, f(&[1], 10), 10);
    let other = chain(within, f(&[2], 20), 20);
    assert_eq!(dl(&own, &other), other);
    // Beyond the limit: fail closed.
    let own = chain(dlfs::MAX_DEPTH + 5, f(&[1], 10), 10);
    let other = chain(dlfs::MAX_DEPTH + 5, f(&[2], 20), 20);
    assert_eq!(dl(&own, &other), own);
    // JSON nesting is bounded the same way.
    let mut a = v("{:x 1}");
    let mut b = v("{:y 2}");
    for _ in 0..400 {
        a = Cell::map(vec![(kw("k"), a)]);
        b = Cell::map(vec![(kw("k"), b)]);
    }
    assert_eq!(merge(&Lattice::JsonValue, &a, &b), a);
}
