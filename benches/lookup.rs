//! `get` and `contains-key?` through the query evaluator on an Index and on a hash Map of the
//! same entries (keys: 8-byte Blobs of 0..n, values: the Longs), at 10,000 and 1,000,000
//! entries: each lookup follows one path from the root (`etch_formats::coll`), so the time per
//! call grows with the tree's depth, not with its size. The 1M collections are also read from a
//! store (CAD047 file, reopened: nodes are fetched and cached as the lookups reach them).
//!
//! Also the fixed cost of starting an evaluation (one lookup per evaluation).
//!
//! Run: `cargo bench -p etch-benches --bench lookup`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use etch_engine::query::{eval_form, Env, EvalContext};
use etch_engine::store::{CellStore, EtchStore};
use etch_formats::text::read::read_one;
use etch_formats::{Cell, NoResolver, Resolver};
use std::time::Duration;

/// Lookups per iteration, over keys spread across the collection (some absent).
const KEYS: u64 = 256;

fn key(i: u64) -> Cell {
    Cell::blob(&i.to_be_bytes())
}

fn entries(n: u64) -> Vec<(Cell, Cell)> {
    (0..n).map(|i| (key(i), Cell::long(i as i64))).collect()
}

/// One form `(do (f coll 0x…) …)` of `KEYS` lookups, keys spread over `0..n + n/8` (one in
/// nine absent). One form, so that the evaluation's fixed cost (its thread, ~0.1 ms) is shared.
fn forms(f: &str, n: u64) -> Vec<Cell> {
    let span = n + n / 8;
    let calls: String = (0..KEYS)
        .map(|j| format!(" ({f} coll 0x{:016x})", j * 2_654_435_761 % span))
        .collect();
    vec![read_one(&format!("(do{calls})")).expect("form")]
}

fn run(forms: &[Cell], env: &mut Env, r: &dyn Resolver) -> usize {
    let ctx = EvalContext::new(r);
    forms
        .iter()
        .filter(|f| !eval_form(f, env, &ctx).expect("lookup").is_nil())
        .count()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .throughput(criterion::Throughput::Elements(KEYS));
    let dir = tempfile::tempdir().expect("tmp");
    for n in [10_000u64, 1_000_000] {
        let colls = [
            ("index", Cell::index(entries(n)).expect("index")),
            ("map", Cell::map(entries(n))),
        ];
        for (kind, coll) in &colls {
            let mut env = Env::new();
            env.define("coll", coll.clone());
            for f in ["get", "contains-key?"] {
                let fs = forms(f, n);
                g.bench_function(format!("{kind} {f} n={n} memory"), |b| {
                    b.iter(|| black_box(run(&fs, &mut env, &NoResolver)))
                });
            }
            if n < 1_000_000 {
                continue;
            }
            // The same collection from a store: only the cells a lookup reaches are read.
            let path = dir.path().join(format!("{kind}.etch"));
            let id = {
                let store = EtchStore::create(&path).expect("store");
                let id = store.put(coll).expect("put");
                store.commit().expect("commit");
                id
            };
            let store = EtchStore::open(&path, false).expect("open");
            let stored = store.get(&id).expect("read").expect("stored");
            let mut env = Env::new();
            env.define("coll", stored);
            for f in ["get", "contains-key?"] {
                let fs = forms(f, n);
                g.bench_function(format!("{kind} {f} n={n} stored"), |b| {
                    b.iter(|| black_box(run(&fs, &mut env, &store)))
                });
            }
        }
    }
    g.finish();
    // The fixed cost of one evaluation: a single lookup per `eval_form` call, as a shell line
    // or one HTTP/MCP query is evaluated.
    let mut g = c.benchmark_group("evaluation");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .throughput(criterion::Throughput::Elements(1));
    let mut env = Env::new();
    env.define("coll", Cell::index(entries(10_000)).expect("index"));
    let one = vec![read_one("(get coll 0x0000000000000007)").expect("form")];
    g.bench_function("one get per evaluation, n=10000", |b| {
        b.iter(|| black_box(run(&one, &mut env, &NoResolver)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
