//! Hashing a 256 MiB Blob tree: 1 core vs all cores (MB/s), next to one flat SHA3-256 pass over
//! the same bytes (the per-core limit).
//!
//! Run: `cargo bench -p etch-benches --bench hashing`. `ETCH_BENCH_MIB` changes the size.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use etch_formats::Cell;
use sha3::{Digest, Sha3_256};

fn bench(c: &mut Criterion) {
    let mib: usize = std::env::var("ETCH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let data = etch_formats::gen::SplitMix64(1).bytes(mib << 20);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut g = c.benchmark_group(format!("blob_tree_{mib}MiB"));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha3_flat_1core", |b| {
        b.iter(|| black_box(Sha3_256::digest(&data)))
    });
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    g.bench_function("tree_1core", |b| {
        b.iter(|| one.install(|| black_box(*Cell::blob(&data).id())))
    });
    let all = rayon::ThreadPoolBuilder::new()
        .num_threads(cores)
        .build()
        .expect("pool");
    g.bench_function(format!("tree_{cores}cores"), |b| {
        b.iter(|| all.install(|| black_box(*Cell::blob(&data).id())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
