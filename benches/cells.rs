//! Small-cell throughput: build+encode, decode, and Value ID (cells per second).
//!
//! Run: `cargo bench -p etch-benches --bench cells`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etch_formats::{decode_cell, Cell, ValueId};

const N: usize = 10_000;

/// A mix of small cells like those a store holds: integers, short strings, keywords, small
/// vectors and maps, 97-byte blobs (W1's cell size).
fn sample() -> Vec<Cell> {
    let mut rng = etch_formats::gen::SplitMix64(42);
    (0..N)
        .map(|i| match i % 5 {
            0 => Cell::long(rng.next_u64() as i64),
            1 => Cell::string(&format!("value-{i}")),
            2 => Cell::blob(&rng.bytes(97)),
            3 => Cell::vector(vec![
                Cell::long(i as i64),
                Cell::keyword("k").expect("kw"),
                Cell::bool(true),
            ]),
            _ => Cell::map(vec![
                (Cell::keyword("a").expect("kw"), Cell::long(i as i64)),
                (Cell::long(1), Cell::string("x")),
            ]),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cells = sample();
    let encodings: Vec<Vec<u8>> = cells.iter().map(|c| c.encoding().to_vec()).collect();
    let mut g = c.benchmark_group("small_cells");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("encode", |b| {
        let mut rng = etch_formats::gen::SplitMix64(7);
        let blobs: Vec<Vec<u8>> = (0..N).map(|_| rng.bytes(97)).collect();
        b.iter(|| {
            for (i, blob) in blobs.iter().enumerate() {
                let cell = match i % 3 {
                    0 => Cell::blob(blob),
                    1 => Cell::long(i as i64),
                    _ => Cell::vector(vec![Cell::long(i as i64), Cell::bool(false)]),
                };
                black_box(cell.encoding().len());
            }
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            for e in &encodings {
                black_box(decode_cell(e.clone()).expect("valid"));
            }
        })
    });
    g.bench_function("value_id", |b| {
        b.iter_batched(
            || {
                encodings
                    .iter()
                    .map(|e| decode_cell(e.clone()).expect("valid"))
                    .collect::<Vec<_>>()
            },
            |fresh| {
                for c in &fresh {
                    black_box(c.id());
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("sha3_only", |b| {
        b.iter(|| {
            for e in &encodings {
                black_box(ValueId::of(e));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
