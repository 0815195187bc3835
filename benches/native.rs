//! Criterion benchmarks of the native store's hot paths: a W1 batch (1,000 puts + a durable
//! commit), random reads by Value ID, and a read-only reopen (recovery from the snapshot hint).
//! The side-by-side workloads are in `peers.rs`; these track regressions of the pieces.
//!
//! Run: `cargo bench -p etch-benches --bench native`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etch_engine::store::native::IoMode;
use etch_engine::store::{CellStore, NativeOptions, NativeStore};
use etch_formats::gen::SplitMix64;
use etch_formats::{Cell, ValueId};

fn options(io: IoMode) -> NativeOptions {
    NativeOptions {
        io,
        ..NativeOptions::default()
    }
}

fn batch(seed: u64) -> Vec<Cell> {
    let mut rng = SplitMix64(seed);
    (0..1000).map(|_| Cell::blob(&rng.bytes(97))).collect()
}

fn commit_batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("native W1 batch (1,000 puts + durable commit)");
    g.throughput(Throughput::Elements(1000));
    for io in [IoMode::Uring, IoMode::Pwrite] {
        let dir = tempfile::tempdir_in(".").expect("tempdir");
        let store = NativeStore::create(dir.path().join("s"), options(io)).expect("create");
        let mut seed = 0u64;
        g.bench_function(format!("{io:?}"), |b| {
            b.iter_batched(
                || {
                    seed += 1;
                    batch(seed)
                },
                |cells| {
                    store.put_many(&cells).expect("put");
                    store.set_root(&cells[999]).expect("commit");
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn random_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let path = dir.path().join("r");
    let mut ids: Vec<ValueId> = Vec::new();
    {
        let store = NativeStore::create(&path, options(IoMode::Uring)).expect("create");
        for s in 0..200 {
            let cells = batch(10_000 + s);
            store.put_many(&cells).expect("put");
            ids.extend(cells.iter().map(|c| *c.id()));
        }
        store.commit().expect("commit");
    }
    let store = NativeStore::open(&path, false, options(IoMode::Uring)).expect("open");
    let mut g = c.benchmark_group("native reads (200k cells)");
    g.throughput(Throughput::Elements(1));
    let mut rng = SplitMix64(1017);
    g.bench_function("get random id", |b| {
        b.iter(|| {
            let id = &ids[(rng.next_u64() % ids.len() as u64) as usize];
            store.get(id).expect("get").expect("present")
        })
    });
    g.bench_function("reopen read-only", |b| {
        b.iter(|| NativeStore::open(&path, false, options(IoMode::Uring)).expect("open"))
    });
    g.finish();
}

criterion_group!(benches, commit_batches, random_reads);
criterion_main!(benches);
