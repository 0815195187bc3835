//! `etch bench ingest|read`: the engine's own workloads (W1, W2, W3 of the bench README) on
//! this machine's disk, for people judging a machine for a store. The side-by-side comparison
//! with other stores is `cargo bench -p etch-benches --bench peers`.

use super::{FormatArg, IoArg};
use etch_engine::store::{open_store, CellStore, OpenOptions, Root};
use etch_formats::gen::SplitMix64;
use etch_formats::{Cell, ValueId};
use indicatif::{ProgressBar, ProgressStyle};
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Cells per commit in W1.
const W1_BATCH: usize = 1000;
/// Bytes of each W1 blob.
const W1_DATA: usize = 97;
/// Value ID of W1's blob #999,999 (bench README).
const W1_ROOT: &str = "ad2a25d5cff411c4ed25628c1dc81639f12b524b59848c8d1e4eb1028bda2020";
/// Root of W2's 1 GiB blob (bench README).
const W2_ROOT: &str = "3c56fad6bd06d27a668608111f7fa96b669323994ea25a0183bc3aa68b33555b";

/// Arguments of `etch bench`.
#[derive(clap::Args)]
#[command(
    long_about = "Measures the engine on this machine's disk with the workloads of the \
bench README: `ingest` runs W1 (small cells, a durable commit per 1,000) or W2 (a 1 GiB blob in \
one durable commit) into a new store; `read` runs W3 (random reads by Value ID on all threads) \
on a store W1 wrote. Data is generated before the clock starts; building cells, hashing, writing \
and syncing are timed. Prints cells/s, MB/s, commit latency and peak memory.\n\n\
Examples:\n  etch bench ingest --dir /mnt/nvme/etch-bench\n  etch bench ingest --workload w2\n  \
etch bench read --dir /mnt/nvme/etch-bench --threads 16"
)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(clap::Subcommand)]
enum BenchCommand {
    /// Write a workload into a new store and time it.
    Ingest(IngestArgs),
    /// Random reads by Value ID from a store `ingest --workload w1` wrote.
    Read(ReadArgs),
    /// Profile the disk as the engine uses it (appends, fdatasync, random reads, ingest).
    Disk(super::disk::DiskArgs),
}

#[derive(clap::Args)]
struct IngestArgs {
    /// Directory for the store (created; must not already hold a store). Default: a new
    /// directory `etch-bench-<pid>` here, removed afterwards unless --keep.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// w1: small cells, durable commit per 1,000; w2: one 1 GiB blob, one commit.
    #[arg(long, default_value = "w1")]
    workload: String,
    /// Cells for W1.
    #[arg(long, default_value_t = 1_000_000)]
    cells: usize,
    /// MiB for W2.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Store format.
    #[arg(long, value_enum, default_value_t)]
    format: FormatArg,
    /// How a native store writes its log.
    #[arg(long, value_enum, default_value_t)]
    io: IoArg,
    /// Keep the store afterwards (for `etch bench read`).
    #[arg(long)]
    keep: bool,
}

#[derive(clap::Args)]
struct ReadArgs {
    /// A store written by `etch bench ingest --workload w1 --keep` (with the same --cells).
    #[arg(long)]
    dir: PathBuf,
    /// Cells W1 wrote there.
    #[arg(long, default_value_t = 1_000_000)]
    cells: usize,
    /// Reader threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Reads per thread.
    #[arg(long, default_value_t = 1_000_000)]
    reads: usize,
}

/// Runs `etch bench`.
pub fn run(args: BenchArgs) -> io::Result<ExitCode> {
    let r = match args.what {
        BenchCommand::Ingest(a) => ingest(a),
        BenchCommand::Read(a) => read(a),
        BenchCommand::Disk(a) => return super::disk::run(a),
    };
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("etch bench: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A `/proc/self/status` figure (`VmHWM:` peak, `VmRSS:` now) in MiB.
fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Samples the process's anonymous (heap) and file-backed (mapped files) resident memory every
/// 20 ms until dropped, keeping the peaks: VmHWM mixes both, and mapped store files are page
/// cache the kernel can drop, not memory the store holds.
struct MemorySampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(f64, f64)>>,
}

impl MemorySampler {
    fn start() -> MemorySampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut anon, mut file) = (0f64, 0f64);
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                anon = anon.max(status_mib("RssAnon:"));
                file = file.max(status_mib("RssFile:"));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (anon, file)
        });
        MemorySampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Peak (anonymous, file-backed) resident MiB.
    fn finish(mut self) -> (f64, f64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or((0.0, 0.0))
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn w1_data(cells: usize) -> Vec<u8> {
    let mut rng = SplitMix64(1);
    let mut data = Vec::with_capacity(cells * W1_DATA);
    for _ in 0..cells {
        data.extend_from_slice(&rng.bytes(W1_DATA));
    }
    data
}

fn ingest(a: IngestArgs) -> Result<(), String> {
    let (dir, remove) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (
            PathBuf::from(format!("etch-bench-{}", std::process::id())),
            !a.keep,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("store");
    let any = super::open_any_with(&path, super::Access::Create(a.format), a.io)?;
    let store = any.cell_store();
    let io_mode = match &any {
        etch_engine::store::AnyStore::Native(n) => format!("{:?}", n.io_mode()).to_lowercase(),
        etch_engine::store::AnyStore::Cad047(_) => "pwrite (cad047)".into(),
    };
    println!(
        "store {} ({}, writes: {io_mode})",
        path.display(),
        any.format().name()
    );
    let result = match a.workload.as_str() {
        "w1" => ingest_w1(store.as_ref(), a.cells),
        "w2" => ingest_w2(store.as_ref(), a.mib),
        other => Err(format!("unknown workload {other} (w1 or w2)")),
    };
    drop(store);
    drop(any);
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn ingest_w1(store: &dyn CellStore, cells: usize) -> Result<(), String> {
    if cells == 0 {
        return Err("--cells must be at least 1".into());
    }
    let data = w1_data(cells);
    // What the generated data holds, so the store's own memory can be told apart.
    let anon_with_data = status_mib("RssAnon:");
    let sampler = MemorySampler::start();
    let progress = bar(cells as u64, "W1");
    let mut commit_ms = Vec::with_capacity(cells / W1_BATCH + 1);
    let start = Instant::now();
    let mut last = None;
    for first in (0..cells).step_by(W1_BATCH) {
        let end = (first + W1_BATCH).min(cells);
        let batch: Vec<Cell> = (first..end)
            .map(|i| Cell::blob(&data[i * W1_DATA..(i + 1) * W1_DATA]))
            .collect();
        store.put_many(&batch).map_err(|e| e.to_string())?;
        last = batch.last().cloned();
        let root = last.as_ref().ok_or("no cell")?;
        let t = Instant::now();
        store.set_root(root).map_err(|e| e.to_string())?;
        commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        progress.set_position(end as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    commit_ms.sort_by(f64::total_cmp);
    let root = last.map(|c| c.id().to_hex()).unwrap_or_default();
    let check = if cells == 1_000_000 {
        if root == W1_ROOT {
            " (as the README says)"
        } else {
            " (WRONG: the README says ad2a25d5…)"
        }
    } else {
        ""
    };
    println!(
        "W1: {cells} cells of 99 bytes, durable commit per {W1_BATCH}: {secs:.2} s = {:.0} cells/s, {:.1} MB/s",
        cells as f64 / secs,
        (cells * (W1_DATA + 2)) as f64 / secs / 1e6
    );
    println!(
        "    commit latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&commit_ms, 0.5),
        percentile(&commit_ms, 0.99),
        commit_ms.last().copied().unwrap_or(0.0)
    );
    let (anon, file) = sampler.finish();
    println!("    final root {root}{check}");
    println!(
        "    memory: peak RSS {:.0} MiB; heap (RssAnon) peak {anon:.0} MiB, of which the generated \
data and program {anon_with_data:.0} MiB: the store's heap at most {:.0} MiB; mapped store \
files (RssFile, reclaimable page cache) peak {file:.0} MiB",
        peak_rss_mib(),
        (anon - anon_with_data).max(0.0)
    );
    Ok(())
}

fn ingest_w2(store: &dyn CellStore, mib: usize) -> Result<(), String> {
    let bytes = SplitMix64(2).bytes(mib << 20);
    let start = Instant::now();
    let blob = Cell::blob(&bytes);
    let built = start.elapsed().as_secs_f64();
    store.set_root(&blob).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let root = blob.id().to_hex();
    let check = match (mib, root == W2_ROOT) {
        (1024, true) => " (as the README says)",
        (1024, false) => " (WRONG: the README says 3c56fad6…)",
        _ => "",
    };
    println!(
        "W2: {mib} MiB blob, one durable commit: {secs:.2} s = {:.0} MB/s (building and hashing the tree {built:.2} s)",
        (mib << 20) as f64 / secs / 1e6
    );
    println!("    root {root}{check}; peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}

fn read(a: ReadArgs) -> Result<(), String> {
    let path = a.dir.join("store");
    let any = open_store(&path, &OpenOptions::read_only())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let store: Arc<dyn CellStore> = any.cell_store();
    if !matches!(store.root(), Ok(Root::Value(_))) {
        return Err(format!(
            "{}: no root: run `etch bench ingest --keep` first",
            path.display()
        ));
    }
    let data = w1_data(a.cells);
    let ids: Arc<Vec<ValueId>> = Arc::new(
        (0..a.cells)
            .map(|i| *Cell::blob(&data[i * W1_DATA..(i + 1) * W1_DATA]).id())
            .collect(),
    );
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, ids) = (store.clone(), ids.clone());
            let reads = a.reads;
            std::thread::spawn(move || -> Result<(), String> {
                let mut rng = SplitMix64(1017 + t as u64);
                for _ in 0..reads {
                    let id = &ids[(rng.next_u64() % ids.len() as u64) as usize];
                    match store.get(id) {
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(format!("cell {id} missing")),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a reader panicked".to_string())??;
    }
    let secs = start.elapsed().as_secs_f64();
    let total = threads * a.reads;
    println!(
        "W3: {total} random reads by Value ID on {threads} threads, each decoded and checked: {secs:.2} s = {:.0} reads/s",
        total as f64 / secs
    );
    Ok(())
}
