//! The loads of `etch bench disk` that run once rather than per repeat: durable commits from
//! many committers at once into one native store (the engine's group commit), and a sustained
//! sequential write long enough to exhaust a drive's write cache.

use etch_engine::store::{CellStore, NativeOptions, NativeStore};
use etch_formats::gen::SplitMix64;
use etch_formats::Cell;
use serde_json::{json, Value};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The numbers of concurrent committers of the group-commit test.
pub const COMMITTERS: [usize; 4] = [1, 4, 16, 64];

/// How long the committers are given to start before the clock does.
const COMMITTERS_START: Duration = Duration::from_millis(100);

/// Bytes of each cell a committer stores (W1's cell size).
const CELL_BYTES: usize = 97;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `committers` threads each storing one small cell and committing it durably, again and again
/// for `secs`, into one new native store at `dir`: how many commits a second the engine's group
/// commit gives, and each commit's latency.
pub fn group_commit(dir: &Path, committers: usize, secs: f64) -> Result<Value, String> {
    let store = NativeStore::create(dir, NativeOptions::default()).map_err(|e| e.to_string())?;
    // Every committer starts at the same moment, once all are running: starting 64 threads
    // must not count as commit time.
    let start = Instant::now() + COMMITTERS_START;
    let deadline = start + Duration::from_secs_f64(secs);
    let per_thread: Vec<Result<Vec<f64>, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..committers)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    let mut rng = SplitMix64(1000 + t as u64);
                    let mut lat = Vec::new();
                    std::thread::sleep(start.saturating_duration_since(Instant::now()));
                    while Instant::now() < deadline {
                        let cell = Cell::blob(&rng.bytes(CELL_BYTES));
                        let t0 = Instant::now();
                        store.put(&cell).map_err(|e| e.to_string())?;
                        store.commit().map_err(|e| e.to_string())?;
                        lat.push(t0.elapsed().as_secs_f64() * 1e6);
                    }
                    Ok(lat)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a committer panicked".into()))
            })
            .collect()
    });
    let secs = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let mut lat = Vec::new();
    for l in per_thread {
        lat.extend(l?);
    }
    lat.sort_by(f64::total_cmp);
    Ok(json!({
        "committers": committers,
        "commits": lat.len(),
        "commits_s": lat.len() as f64 / secs,
        "p50_us": percentile(&lat, 0.5),
        "p99_us": percentile(&lat, 0.99),
        "max_us": lat.last().copied().unwrap_or(0.0),
    }))
}

/// Bytes written between two measurements of the sustained write.
const WINDOW_BYTES: u64 = 256 << 20;

/// Writes `gib` GiB sequentially in 1 MiB blocks to a new file in `dir`, each 256 MiB window
/// ended by fdatasync and timed: a drive whose write cache fills shows its later windows
/// slower. The file is removed afterwards.
pub fn sustained(dir: &Path, gib: u64) -> Result<Value, String> {
    let path = dir.join("sustained");
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io)?;
    let mut rng = SplitMix64(3);
    let block = rng.bytes(1 << 20);
    let total = gib << 30;
    let mut windows = Vec::new();
    let mut off = 0u64;
    let result = (|| {
        while off < total {
            let t = Instant::now();
            let end = (off + WINDOW_BYTES).min(total);
            let start = off;
            while off < end {
                let n = (block.len() as u64).min(end - off) as usize;
                file.write_all_at(&block[..n], off).map_err(io)?;
                off += n as u64;
            }
            file.sync_data().map_err(io)?;
            windows.push((end - start) as f64 / t.elapsed().as_secs_f64() / 1e6);
        }
        Ok::<(), String>(())
    })();
    drop(file);
    let _ = std::fs::remove_file(&path);
    result?;
    let mut sorted = windows.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "gib": gib,
        "window_mib": WINDOW_BYTES >> 20,
        "windows_mb_s": windows,
        "min_mb_s": sorted.first(),
        "median_mb_s": percentile(&sorted, 0.5),
        "max_mb_s": sorted.last(),
    }))
}
