//! `etch bench disk`: profile a disk as the engine uses it — sequential appends (pwrite and
//! io_uring, several block sizes and queue depths, each ended by `fdatasync`), the latency of
//! small appends each made durable (a commit), random 4 KiB reads (direct I/O where the file
//! system allows it), and the engine's own W1 ingest. Prints a table and writes JSON and an
//! SVG chart.

use etch_engine::store::{CellStore, NativeOptions, NativeStore};
use etch_formats::gen::SplitMix64;
use etch_formats::Cell;
use io_uring::{opcode, types, IoUring};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The queue depths of the io_uring random-read sweep.
const READ_QUEUE_DEPTHS: [usize; 6] = [1, 4, 16, 32, 64, 256];

/// etch's figure over fio's for each measurement both made (1.0: the same), or `null`.
fn versus_fio(
    seq: &[SeqResult],
    sync: &Lat,
    reads: &[ReadResult],
    fio: Option<&serde_json::Value>,
) -> serde_json::Value {
    let Some(fio) = fio else {
        return serde_json::Value::Null;
    };
    let ratio = |etch: Option<f64>, theirs: Option<f64>| match (etch, theirs) {
        (Some(a), Some(b)) if b > 0.0 => serde_json::json!(a / b),
        _ => serde_json::Value::Null,
    };
    let seq_1m = seq
        .iter()
        .find(|s| s.method == "pwrite" && s.block == 1 << 20)
        .map(SeqResult::mb_s);
    let iops = |method: &str, qd: usize| {
        reads
            .iter()
            .find(|r| r.method == method && r.qd == qd)
            .map(|r| r.iops)
    };
    serde_json::json!({
        "seq_write_1m": ratio(seq_1m, fio["seq_write_1m_mb_s"].as_f64()),
        "randread_4k_qd1": ratio(iops("io_uring", 1), fio["randread_4k_qd1"]["iops"].as_f64()),
        "randread_4k_qd32": ratio(iops("io_uring", 32), fio["randread_4k_qd32"]["iops"].as_f64()),
        "fdatasync_4k_p50": ratio(Some(sync.p50), fio["fdatasync_4k"]["p50_us"].as_f64()),
    })
}

/// Arguments of `etch bench disk`.
#[derive(clap::Args)]
#[command(
    long_about = "Profiles the disk under --dir the way the engine uses it, for judging \
a drive (e.g. an NVMe for a storage provider):\n\n\
- sequential appends of --size MiB to a new file, by pwrite (4 KiB to 4 MiB blocks) and by \
io_uring (64 KiB to 4 MiB blocks, 1 to 16 writes in flight), each ended by fdatasync and timed \
with it: what the native log's writer does;\n\
- commit latency: 4 KiB appended and fdatasync'ed, repeatedly for --seconds: p50, p99, p99.9, \
max — what one durable commit costs;\n\
- random 4 KiB reads of that file with O_DIRECT (page cache bypassed; buffered after dropping \
the file's cache where O_DIRECT is refused): pread at 1 in flight and io_uring at 32, each for \
--seconds: IOPS and latency — what reads of cold cells cost; io_uring is swept over queue depths \
1, 4, 16, 32, 64 and 256;\n\
- engine ingest: --cells small blobs into a new native store with a durable commit per 1,000 \
(the W1 workload of `etch bench ingest`);\n\
- engine commits: 1, 4, 16 and 64 committers each storing a small cell and committing it \
durably, into one native store (its group commit): commits per second and latency;\n\
- with --sustained GIB, that many GiB written sequentially, each 256 MiB window timed, to find \
where a drive's write cache runs out;\n\
- SHA3-256 hashing on 1, 2, 4 … all cores (the engine hashes every cell it stores), so the \
report shows whether the disk or the CPU bounds ingest;\n\
- when fio is installed, fio on a file in the same folder for the measurements both make \
(sequential 1 MiB writes with a final fsync, random 4 KiB direct reads at queue depth 1 and \
32, 4 KiB write+fdatasync latency), side by side with etch's and their ratio.\n\n\
The report names the device model, file system, mount options and kernel, and calls out a \
folder that is memory (tmpfs, ramfs, /dev/shm) rather than a disk. --dir must exist: the \
profile makes a scratch folder inside it and removes it afterwards.\n\n\
Prints a table, and writes disk-profile.json, disk-profile.svg (throughput and latency \
charts) and disk-profile.html (one self-contained page: the table and the charts) into --out; \
--repeat N runs every disk test N times (median, min, max); --compare OLD.json shows each \
figure beside an earlier run's, with new/old. Files are removed afterwards. With the defaults it takes well under two \
minutes on a drive of 200 MB/s or more."
)]
pub struct DiskArgs {
    /// Directory on the disk to profile (a scratch directory is made inside it).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// MiB written by each sequential test (and read by the random tests).
    #[arg(long, default_value_t = 256)]
    size: u64,
    /// Seconds for each latency and random-read test.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Cells for the engine ingest (0: skip it).
    #[arg(long, default_value_t = 200_000)]
    cells: usize,
    /// Where to write disk-profile.json and disk-profile.svg.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Print the JSON to stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Run every disk test this many times: each figure is the median run, with the minimum
    /// and maximum beside it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
    /// An earlier run's disk-profile.json: each figure is shown beside it, with new / old.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
    /// Also write this many GiB sequentially (1 MiB blocks, fdatasync every 256 MiB) and show
    /// each 256 MiB window's speed: long enough, a drive's write cache fills and it slows.
    #[arg(long, value_name = "GIB", default_value_t = 0)]
    sustained: u64,
}

/// The run of `runs` whose `key` is the median, with the smallest and largest `key`.
fn median_of<T>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> Option<(T, f64, f64)> {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let (min, max) = (key(runs.first()?), key(runs.last()?));
    let mid = runs.len() / 2;
    Some((runs.swap_remove(mid), min, max))
}

/// Measurements of one profile run.
type Run = (Vec<SeqResult>, Lat, Vec<ReadResult>, Option<IngestResult>);

/// The runs of each measurement gathered: position `i` of every run is the same test.
struct Repeated {
    seq: Vec<(SeqResult, f64, f64)>,
    sync: (Lat, f64, f64),
    reads: Vec<(ReadResult, f64, f64)>,
    ingest: Option<(IngestResult, f64, f64)>,
}

/// Rows of runs turned into columns: column `i` holds test `i` of every run.
fn columns<T>(rows: Vec<Vec<T>>) -> Vec<Vec<T>> {
    let width = rows.iter().map(Vec::len).min().unwrap_or(0);
    let mut cols: Vec<Vec<T>> = (0..width).map(|_| Vec::with_capacity(rows.len())).collect();
    for row in rows {
        for (c, x) in cols.iter_mut().zip(row) {
            c.push(x);
        }
    }
    cols
}

fn repeated(runs: Vec<Run>) -> Option<Repeated> {
    let (mut seqs, mut syncs, mut reads, mut ingests) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (s, l, r, i) in runs {
        seqs.push(s);
        syncs.push(l);
        reads.push(r);
        ingests.extend(i);
    }
    Some(Repeated {
        seq: columns(seqs)
            .into_iter()
            .filter_map(|c| median_of(c, SeqResult::mb_s))
            .collect(),
        sync: median_of(syncs, |l: &Lat| l.p50)?,
        reads: columns(reads)
            .into_iter()
            .filter_map(|c| median_of(c, |r: &ReadResult| r.iops))
            .collect(),
        ingest: median_of(ingests, |i: &IngestResult| i.cells as f64 / i.secs),
    })
}

/// Rows comparing this run's JSON with an earlier one's: (measurement, old, new, new / old).
fn compare_rows(old: &serde_json::Value, new: &serde_json::Value) -> Vec<(String, f64, f64)> {
    let mut rows = Vec::new();
    let mut pair = |name: String, o: Option<f64>, n: Option<f64>| {
        if let (Some(o), Some(n)) = (o, n) {
            rows.push((name, o, n));
        }
    };
    let list = |v: &serde_json::Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
    for n in list(new, "sequential_writes") {
        let same = list(old, "sequential_writes")
            .into_iter()
            .find(|o| o["method"] == n["method"] && o["block"] == n["block"] && o["qd"] == n["qd"]);
        if let Some(o) = same {
            let name = format!(
                "seq {} {} qd{} MB/s",
                n["method"].as_str().unwrap_or(""),
                human_block(n["block"].as_u64().unwrap_or(0) as usize),
                n["qd"]
            );
            pair(name, o["mb_s"].as_f64(), n["mb_s"].as_f64());
        }
    }
    for n in list(new, "random_reads_4k") {
        let same = list(old, "random_reads_4k")
            .into_iter()
            .find(|o| o["method"] == n["method"] && o["qd"] == n["qd"]);
        if let Some(o) = same {
            let name = format!(
                "rand 4K {} qd{} IOPS",
                n["method"].as_str().unwrap_or(""),
                n["qd"]
            );
            pair(name, o["iops"].as_f64(), n["iops"].as_f64());
        }
    }
    pair(
        "4K append+fdatasync p50 µs".into(),
        old["fdatasync_4k"]["p50_us"].as_f64(),
        new["fdatasync_4k"]["p50_us"].as_f64(),
    );
    pair(
        "engine ingest W1 cells/s".into(),
        old["ingest_w1"]["cells_s"].as_f64(),
        new["ingest_w1"]["cells_s"].as_f64(),
    );
    rows
}

/// One sequential-write run.
#[derive(Clone)]
struct SeqResult {
    method: &'static str,
    block: usize,
    qd: usize,
    write_s: f64,
    sync_s: f64,
    bytes: u64,
}

impl SeqResult {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / (self.write_s + self.sync_s) / 1e6
    }
    fn label(&self) -> String {
        if self.method == "pwrite" {
            format!("pwrite {}", human_block(self.block))
        } else {
            format!("io_uring {} qd{}", human_block(self.block), self.qd)
        }
    }
}

/// Latency figures in microseconds.
#[derive(Default, Clone)]
struct Lat {
    count: usize,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn lat_of(mut us: Vec<f64>) -> Lat {
    us.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if us.is_empty() {
            0.0
        } else {
            us[((us.len() - 1) as f64 * p).round() as usize]
        }
    };
    Lat {
        count: us.len(),
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        max: us.last().copied().unwrap_or(0.0),
    }
}

#[derive(Clone)]
struct ReadResult {
    method: &'static str,
    qd: usize,
    direct: bool,
    iops: f64,
    lat: Lat,
}

#[derive(Clone)]
struct IngestResult {
    cells: usize,
    secs: f64,
    commit_ms: Lat,
}

fn human_block(b: usize) -> String {
    if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    SplitMix64(seed).bytes(len)
}

fn fresh(path: &Path) -> io::Result<File> {
    let _ = std::fs::remove_file(path);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

fn seq_pwrite(path: &Path, total: u64, block: usize) -> io::Result<SeqResult> {
    let f = fresh(path)?;
    let buf = pattern(block, block as u64);
    let start = Instant::now();
    let mut off = 0u64;
    while off < total {
        let n = (block as u64).min(total - off) as usize;
        f.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    let write_s = start.elapsed().as_secs_f64();
    let t = Instant::now();
    f.sync_data()?;
    Ok(SeqResult {
        method: "pwrite",
        block,
        qd: 1,
        write_s,
        sync_s: t.elapsed().as_secs_f64(),
        bytes: total,
    })
}

fn seq_uring(path: &Path, total: u64, block: usize, qd: usize) -> io::Result<SeqResult> {
    let f = fresh(path)?;
    let mut ring = IoUring::new((qd * 2).next_power_of_two() as u32)?;
    let fd = types::Fd(f.as_raw_fd());
    let bufs: Vec<Vec<u8>> = (0..qd).map(|i| pattern(block, i as u64 + 7)).collect();
    let mut free: Vec<usize> = (0..qd).collect();
    let (mut off, mut inflight) = (0u64, 0usize);
    let start = Instant::now();
    while off < total || inflight > 0 {
        while off < total {
            let Some(b) = free.pop() else { break };
            let n = (block as u64).min(total - off) as u32;
            let e = opcode::Write::new(fd, bufs[b].as_ptr(), n)
                .offset(off)
                .build()
                .user_data(((n as u64) << 32) | b as u64);
            // SAFETY: the buffer lives in `bufs` until the completion is reaped below.
            if unsafe { ring.submission().push(&e) }.is_err() {
                free.push(b);
                break;
            }
            off += n as u64;
            inflight += 1;
        }
        ring.submit_and_wait(1)?;
        for cqe in ring.completion() {
            let want = (cqe.user_data() >> 32) as i32;
            if cqe.result() < 0 {
                return Err(io::Error::from_raw_os_error(-cqe.result()));
            }
            if cqe.result() != want {
                return Err(io::Error::other(format!(
                    "short write: {} of {want} bytes",
                    cqe.result()
                )));
            }
            free.push((cqe.user_data() & 0xffff_ffff) as usize);
            inflight -= 1;
        }
    }
    let write_s = start.elapsed().as_secs_f64();
    let t = Instant::now();
    f.sync_data()?;
    Ok(SeqResult {
        method: "io_uring",
        block,
        qd,
        write_s,
        sync_s: t.elapsed().as_secs_f64(),
        bytes: total,
    })
}

fn fsync_latency(path: &Path, secs: f64) -> io::Result<Lat> {
    let f = fresh(path)?;
    let buf = pattern(4096, 3);
    let mut us = Vec::new();
    let start = Instant::now();
    let mut off = 0u64;
    while start.elapsed().as_secs_f64() < secs && us.len() < 200_000 {
        let t = Instant::now();
        f.write_all_at(&buf, off)?;
        f.sync_data()?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        off += 4096;
    }
    Ok(lat_of(us))
}

/// An aligned 4 KiB-multiple buffer region inside a vector (O_DIRECT needs alignment).
struct Aligned {
    v: Vec<u8>,
    at: usize,
}

impl Aligned {
    fn new(bytes: usize) -> Aligned {
        let v = vec![0u8; bytes + 4096];
        let at = v.as_ptr().align_offset(4096);
        Aligned { v, at }
    }
    fn ptr(&mut self, i: usize) -> *mut u8 {
        self.v[self.at + i * 4096..].as_mut_ptr()
    }
    fn slice(&mut self, i: usize) -> &mut [u8] {
        let s = self.at + i * 4096;
        &mut self.v[s..s + 4096]
    }
}

/// Opens `path` for reads bypassing the page cache (O_DIRECT); where the file system refuses,
/// opens it normally and drops its cached pages.
fn open_cold(path: &Path) -> io::Result<(File, bool)> {
    if let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        // Probe: some file systems accept the flag and fail the read.
        let mut a = Aligned::new(4096);
        if f.read_exact_at(a.slice(0), 0).is_ok() {
            return Ok((f, true));
        }
    }
    let f = File::open(path)?;
    // SAFETY: plain advice call on an open descriptor.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    Ok((f, false))
}

fn random_pread(path: &Path, blocks: u64, secs: f64) -> io::Result<ReadResult> {
    let (f, direct) = open_cold(path)?;
    let mut a = Aligned::new(4096);
    let mut rng = SplitMix64(11);
    let mut us = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs && us.len() < 2_000_000 {
        let off = (rng.next_u64() % blocks) * 4096;
        let t = Instant::now();
        f.read_exact_at(a.slice(0), off)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let n = us.len();
    Ok(ReadResult {
        method: "pread",
        qd: 1,
        direct,
        iops: n as f64 / start.elapsed().as_secs_f64(),
        lat: lat_of(us),
    })
}

fn random_uring(path: &Path, blocks: u64, secs: f64, qd: usize) -> io::Result<ReadResult> {
    let (f, direct) = open_cold(path)?;
    let mut ring = IoUring::new((qd * 2).next_power_of_two() as u32)?;
    let fd = types::Fd(f.as_raw_fd());
    let mut a = Aligned::new(4096 * qd);
    let mut rng = SplitMix64(13);
    let mut sent: Vec<Instant> = vec![Instant::now(); qd];
    let mut us = Vec::new();
    let mut free: Vec<usize> = (0..qd).collect();
    let mut inflight = 0usize;
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        let running = start.elapsed().as_secs_f64() < secs && us.len() < 4_000_000;
        if running {
            while let Some(b) = free.pop() {
                let off = (rng.next_u64() % blocks) * 4096;
                let e = opcode::Read::new(fd, a.ptr(b), 4096)
                    .offset(off)
                    .build()
                    .user_data(b as u64);
                // SAFETY: the buffer slot `b` is not reused until its completion is reaped.
                if unsafe { ring.submission().push(&e) }.is_err() {
                    free.push(b);
                    break;
                }
                sent[b] = Instant::now();
                inflight += 1;
            }
        }
        if inflight == 0 {
            break;
        }
        ring.submit_and_wait(1)?;
        for cqe in ring.completion() {
            if cqe.result() < 0 {
                return Err(io::Error::from_raw_os_error(-cqe.result()));
            }
            let b = cqe.user_data() as usize;
            us.push(sent[b].elapsed().as_secs_f64() * 1e6);
            free.push(b);
            inflight -= 1;
            done += 1;
        }
    }
    Ok(ReadResult {
        method: "io_uring",
        qd,
        direct,
        iops: done as f64 / start.elapsed().as_secs_f64(),
        lat: lat_of(us),
    })
}

/// W1 of the bench README on a new native store: `cells` blobs of 97 bytes, a durable commit
/// per 1,000 (as `etch bench ingest` runs it).
pub fn ingest_w1(dir: &Path, cells: usize) -> Result<(f64, Vec<f64>), String> {
    let mut rng = SplitMix64(1);
    let data: Vec<u8> = (0..cells).flat_map(|_| rng.bytes(97)).collect();
    let store = NativeStore::create(dir, NativeOptions::default()).map_err(|e| e.to_string())?;
    let mut commit_ms = Vec::new();
    let start = Instant::now();
    for first in (0..cells).step_by(1000) {
        let end = (first + 1000).min(cells);
        let mut last = None;
        for i in first..end {
            let c = Cell::blob(&data[i * 97..(i + 1) * 97]);
            store.put(&c).map_err(|e| e.to_string())?;
            last = Some(c);
        }
        if let Some(root) = last {
            let t = Instant::now();
            store.set_root(&root).map_err(|e| e.to_string())?;
            commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((start.elapsed().as_secs_f64(), commit_ms))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart panel: (label, value) rows, the value axis from 0 to the maximum
/// (`log`: from 1 to the maximum on a log scale, for latencies spanning decades).
#[allow(clippy::too_many_arguments)]
fn panel(
    svg: &mut String,
    x: f64,
    y: f64,
    w: f64,
    title: &str,
    unit: &str,
    log: bool,
    rows: &[(String, f64)],
) -> f64 {
    let row_h = 22.0;
    let label_w = 150.0;
    let max = rows.iter().map(|r| r.1).fold(0.0f64, f64::max).max(1e-9);
    let scale = if log { " (log scale)" } else { "" };
    svg.push_str(&format!(
        "<text x=\"{x}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{}{scale}</text>\n",
        y + 14.0,
        esc(title)
    ));
    let bar_w = w - label_w - 90.0;
    for (i, (label, v)) in rows.iter().enumerate() {
        let ry = y + 24.0 + i as f64 * row_h;
        let frac = if log {
            (v.max(1.0).log10() / max.max(10.0).log10()).clamp(0.0, 1.0)
        } else {
            v / max
        };
        let bw = (frac * bar_w).max(1.0);
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
            x + label_w - 6.0,
            ry + 14.0,
            esc(label)
        ));
        svg.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{bw:.1}\" height=\"16\" fill=\"#3b7dd8\"/>\n",
            x + label_w,
            ry + 2.0
        ));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{} {}</text>\n",
            x + label_w + bw + 4.0,
            ry + 14.0,
            fmt_num(*v),
            esc(unit)
        ));
    }
    24.0 + rows.len() as f64 * row_h + 16.0
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One bar panel of a chart: title, unit, log scale, rows (label, value).
type Panel = (String, &'static str, bool, Vec<(String, f64)>);

/// The panels drawn from the profile's JSON: random-read IOPS and latency by queue depth (the
/// io_uring sweep), durable commits and their latency by concurrent committers, and SHA3-256
/// by threads: side by side they show which resource bounds the engine on this machine.
fn engine_panels(profile: &serde_json::Value) -> Vec<Panel> {
    let rows = |key: &str,
                filter: &dyn Fn(&serde_json::Value) -> bool,
                label: &dyn Fn(&serde_json::Value) -> String,
                field: &str|
     -> Vec<(String, f64)> {
        profile[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|v| filter(v))
                    .filter_map(|v| Some((label(v), v[field].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let uring = |v: &serde_json::Value| v["method"] == "io_uring";
    let any = |_: &serde_json::Value| true;
    let qd = |v: &serde_json::Value| format!("qd {}", v["qd"]);
    let committers = |v: &serde_json::Value| format!("{} committers", v["committers"]);
    let mut lat_qd = Vec::new();
    for (l, p50) in rows("random_reads_4k", &uring, &qd, "p50_us") {
        lat_qd.push((format!("{l} p50"), p50));
    }
    for (l, p99) in rows("random_reads_4k", &uring, &qd, "p99_us") {
        lat_qd.push((format!("{l} p99"), p99));
    }
    let mut lat_commit = Vec::new();
    for (l, p50) in rows("group_commit", &any, &committers, "p50_us") {
        lat_commit.push((format!("{l} p50"), p50));
    }
    for (l, p99) in rows("group_commit", &any, &committers, "p99_us") {
        lat_commit.push((format!("{l} p99"), p99));
    }
    let threads = |v: &serde_json::Value| format!("{} threads", v["threads"]);
    let panels: Vec<Panel> = vec![
        (
            "Random 4 KiB reads by queue depth (io_uring, O_DIRECT)".into(),
            "IOPS",
            false,
            rows("random_reads_4k", &uring, &qd, "iops"),
        ),
        ("Read latency by queue depth".into(), "µs", true, lat_qd),
        (
            "Engine: durable commits by concurrent committers (group commit)".into(),
            "commits/s",
            false,
            rows("group_commit", &any, &committers, "commits_s"),
        ),
        (
            "Engine: commit latency by committers".into(),
            "µs",
            true,
            lat_commit,
        ),
        (
            "CPU: SHA3-256 hashing by threads (every cell's Value ID)".into(),
            "MB/s",
            false,
            rows("hashing_sha3", &any, &threads, "mb_s"),
        ),
    ];
    panels.into_iter().filter(|p| !p.3.is_empty()).collect()
}

fn svg_chart(
    title: &str,
    seq: &[SeqResult],
    sync: &Lat,
    reads: &[ReadResult],
    ingest: Option<&IngestResult>,
    profile: &serde_json::Value,
) -> String {
    let w = 1000.0;
    let mut body = String::new();
    let mut y = 40.0;
    let mut tp: Vec<(String, f64)> = seq.iter().map(|s| (s.label(), s.mb_s())).collect();
    for r in reads {
        tp.push((
            format!("rand 4K {} qd{}", r.method, r.qd),
            r.iops * 4096.0 / 1e6,
        ));
    }
    if let Some(i) = ingest {
        tp.push((
            "engine ingest (W1)".into(),
            i.cells as f64 * 99.0 / i.secs / 1e6,
        ));
    }
    y += panel(
        &mut body,
        20.0,
        y,
        w - 40.0,
        "Throughput",
        "MB/s",
        false,
        &tp,
    );
    let mut lat: Vec<(String, f64)> = vec![
        ("fdatasync p50".into(), sync.p50),
        ("fdatasync p99".into(), sync.p99),
        ("fdatasync p99.9".into(), sync.p999),
    ];
    for r in reads {
        lat.push((format!("read {} qd{} p50", r.method, r.qd), r.lat.p50));
        lat.push((format!("read {} qd{} p99", r.method, r.qd), r.lat.p99));
    }
    if let Some(i) = ingest {
        lat.push(("commit p50".into(), i.commit_ms.p50 * 1000.0));
        lat.push(("commit p99".into(), i.commit_ms.p99 * 1000.0));
    }
    y += panel(&mut body, 20.0, y, w - 40.0, "Latency", "µs", true, &lat);
    for (title, unit, log, rows) in engine_panels(profile) {
        y += panel(&mut body, 20.0, y, w - 40.0, &title, unit, log, &rows);
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{y:.0}\" viewBox=\"0 0 {w} {y:.0}\" font-family=\"sans-serif\">\n\
<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{y:.0}\" fill=\"white\"/>\n\
<text x=\"20\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n{body}</svg>\n",
        esc(title)
    )
}

/// The tests run once whatever `--repeat` says: durable commits from 1…64 committers (each
/// for half the test time), and the sustained write when asked for.
fn run_once(
    args: &DiskArgs,
    scratch: &Path,
) -> Result<(serde_json::Value, serde_json::Value), String> {
    let point = (args.seconds / 2.0).max(0.3);
    let mut group = Vec::new();
    for n in super::disk_load::COMMITTERS {
        let dir = scratch.join(format!("commit{n}"));
        group.push(super::disk_load::group_commit(&dir, n, point)?);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let sustained = if args.sustained > 0 {
        super::disk_load::sustained(scratch, args.sustained)?
    } else {
        serde_json::Value::Null
    };
    Ok((serde_json::Value::Array(group), sustained))
}

/// A ratio for the table: `0.97×`, or `n/a`.
fn ratio_text(v: &serde_json::Value) -> String {
    v.as_f64().map_or("n/a".into(), |r| format!("{r:.2}×"))
}

/// Runs `etch bench disk`.
pub fn run(args: DiskArgs) -> io::Result<ExitCode> {
    match profile(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => super::failed(format!("bench disk: {e}")),
    }
}

fn profile(args: &DiskArgs) -> Result<(), String> {
    let start = Instant::now();
    if !args.dir.is_dir() {
        return Err(format!(
            "--dir {}: no such folder; name a folder on the disk to profile (a scratch folder \
             is made inside it and removed afterwards)",
            args.dir.display()
        ));
    }
    let system = super::disk_env::system_info(&args.dir);
    let old = match &args.compare {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("--compare {}: {e}", p.display()))
                .and_then(|t| {
                    serde_json::from_str::<serde_json::Value>(&t)
                        .map_err(|e| format!("--compare {}: not a disk profile: {e}", p.display()))
                })?,
        ),
        None => None,
    };
    let scratch = args.dir.join(format!("etch-disk-{}", std::process::id()));
    std::fs::create_dir(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut runs = Vec::new();
    for i in 0..args.repeat {
        // Each run in a folder of its own (and removed after), so runs start alike.
        let run_dir = scratch.join(format!("run{i}"));
        let run = std::fs::create_dir(&run_dir)
            .map_err(|e| format!("{}: {e}", run_dir.display()))
            .and_then(|()| profile_in(args, &run_dir));
        let _ = std::fs::remove_dir_all(&run_dir);
        match run {
            Ok(r) => runs.push(r),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e);
            }
        }
    }
    let fio = super::disk_env::fio(&scratch, args.size, args.seconds);
    let once = run_once(args, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let (group, sustained) = once?;
    let Some(rep) = repeated(runs) else {
        return Err("no run completed".into());
    };
    let seq: Vec<SeqResult> = rep.seq.iter().map(|(s, _, _)| s.clone()).collect();
    let reads: Vec<ReadResult> = rep.reads.iter().map(|(r, _, _)| r.clone()).collect();
    let sync = rep.sync.0.clone();
    let ingest = rep.ingest.as_ref().map(|(i, _, _)| i.clone());
    let cpus = system["cpus"].as_u64().unwrap_or(1) as usize;
    let hashing = super::disk_env::hashing(cpus, (args.seconds / 4.0).clamp(0.2, 1.0));
    let versus = versus_fio(&seq, &sync, &reads, fio.as_ref().ok());
    let total = start.elapsed().as_secs_f64();
    let json = serde_json::json!({
        "dir": args.dir.display().to_string(),
        "system": system,
        "size_mib": args.size,
        "seconds": total,
        "hashing_sha3": hashing.iter().map(|(t, mb)| serde_json::json!({
            "threads": t, "mb_s": mb,
        })).collect::<Vec<_>>(),
        "fio": match &fio {
            Ok(v) => v.clone(),
            Err(why) => serde_json::json!({"skipped": why}),
        },
        "versus_fio": versus,
        "group_commit": group,
        "sustained_write": sustained,
        "repeats": args.repeat,
        "sequential_writes": rep.seq.iter().map(|(s, min, max)| serde_json::json!({
            "method": s.method, "block": s.block, "qd": s.qd, "bytes": s.bytes,
            "write_s": s.write_s, "sync_s": s.sync_s, "mb_s": s.mb_s(),
            "mb_s_min": min, "mb_s_max": max,
        })).collect::<Vec<_>>(),
        "fdatasync_4k": {"count": sync.count, "p50_us": sync.p50, "p99_us": sync.p99,
            "p999_us": sync.p999, "max_us": sync.max,
            "p50_us_min": rep.sync.1, "p50_us_max": rep.sync.2},
        "random_reads_4k": rep.reads.iter().map(|(r, min, max)| serde_json::json!({
            "method": r.method, "qd": r.qd, "direct": r.direct, "iops": r.iops,
            "iops_min": min, "iops_max": max,
            "mb_s": r.iops * 4096.0 / 1e6, "p50_us": r.lat.p50, "p99_us": r.lat.p99,
            "p999_us": r.lat.p999, "max_us": r.lat.max,
        })).collect::<Vec<_>>(),
        "ingest_w1": ingest.as_ref().map(|i| serde_json::json!({
            "cells": i.cells, "seconds": i.secs, "cells_s": i.cells as f64 / i.secs,
            "mb_s": i.cells as f64 * 99.0 / i.secs / 1e6,
            "commit_p50_ms": i.commit_ms.p50, "commit_p99_ms": i.commit_ms.p99,
            "commit_max_ms": i.commit_ms.max,
            "cells_s_min": rep.ingest.as_ref().map(|r| r.1),
            "cells_s_max": rep.ingest.as_ref().map(|r| r.2),
        })),
    });
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let jpath = args.out.join("disk-profile.json");
    let spath = args.out.join("disk-profile.svg");
    let shown = std::fs::canonicalize(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let title = format!(
        "etch bench disk: {} ({} MiB per test)",
        shown.display(),
        args.size
    );
    std::fs::write(
        &spath,
        svg_chart(&title, &seq, &sync, &reads, ingest.as_ref(), &json),
    )
    .map_err(|e| format!("{}: {e}", spath.display()))?;
    let compare = old.as_ref().map(|o| compare_rows(o, &json));
    let mut json = json;
    if let (Some(rows), Some(p)) = (&compare, &args.compare) {
        json["compare"] = serde_json::json!({
            "file": p.display().to_string(),
            "rows": rows.iter().map(|(name, o, n)| serde_json::json!({
                "measurement": name, "old": o, "new": n, "ratio": n / o,
            })).collect::<Vec<_>>(),
        });
    }
    std::fs::write(&jpath, format!("{json:#}\n"))
        .map_err(|e| format!("{}: {e}", jpath.display()))?;
    // The report as text: printed, and the body of the HTML report.
    let mut text = String::new();
    let w = |out: &mut String, s: String| -> Result<(), String> {
        out.push_str(&s);
        out.push('\n');
        Ok(())
    };
    w(
        &mut text,
        format!(
            "disk profile of {} ({} MiB per sequential test{})\n{}",
            args.dir.display(),
            args.size,
            if args.repeat > 1 {
                format!(
                    "; each figure the median of {} runs, min and max in the JSON",
                    args.repeat
                )
            } else {
                String::new()
            },
            super::disk_env::system_line(&json["system"])
        ),
    )?;
    w(
        &mut text,
        format!(
            "\n{:<24} {:>10} {:>10} {:>10}",
            "sequential append", "MB/s", "write s", "fdatasync s"
        ),
    )?;
    for s in &seq {
        w(
            &mut text,
            format!(
                "{:<24} {:>10.0} {:>10.3} {:>10.3}",
                s.label(),
                s.mb_s(),
                s.write_s,
                s.sync_s
            ),
        )?;
    }
    w(
        &mut text,
        format!(
            "\n{:<24} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency (µs)", "count", "p50", "p99", "p99.9", "max"
        ),
    )?;
    w(
        &mut text,
        format!(
            "{:<24} {:>10} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
            "4 KiB append+fdatasync", sync.count, sync.p50, sync.p99, sync.p999, sync.max
        ),
    )?;
    for r in &reads {
        w(
            &mut text,
            format!(
                "{:<24} {:>10} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
                format!("rand 4K {} qd{}", r.method, r.qd),
                r.lat.count,
                r.lat.p50,
                r.lat.p99,
                r.lat.p999,
                r.lat.max
            ),
        )?;
    }
    w(
        &mut text,
        format!(
            "\n{:<24} {:>10} {:>10} {:>10}",
            "random 4 KiB reads", "IOPS", "MB/s", "cache"
        ),
    )?;
    for r in &reads {
        w(
            &mut text,
            format!(
                "{:<24} {:>10.0} {:>10.1} {:>10}",
                format!("{} qd{}", r.method, r.qd),
                r.iops,
                r.iops * 4096.0 / 1e6,
                if r.direct { "bypassed" } else { "dropped" }
            ),
        )?;
    }
    if let Some(i) = &ingest {
        w(&mut text, format!(
            "\nengine ingest (W1, {} cells, durable commit per 1,000): {:.0} cells/s, {:.1} MB/s, commit p50 {:.2} ms, p99 {:.2} ms",
            i.cells,
            i.cells as f64 / i.secs,
            i.cells as f64 * 99.0 / i.secs / 1e6,
            i.commit_ms.p50,
            i.commit_ms.p99
        ))?;
    }
    for g in group.as_array().into_iter().flatten() {
        w(
            &mut text,
            format!(
                "engine commits, {:>2} committer(s): {:>8.0} durable commits/s, p50 {:.0} µs, p99 {:.0} µs",
                g["committers"].as_u64().unwrap_or(0),
                g["commits_s"].as_f64().unwrap_or(0.0),
                g["p50_us"].as_f64().unwrap_or(0.0),
                g["p99_us"].as_f64().unwrap_or(0.0)
            ),
        )?;
    }
    if !sustained.is_null() {
        w(
            &mut text,
            format!(
                "sustained write of {} GiB: {:.0} MB/s median per 256 MiB window (min {:.0}, max {:.0}; first {:.0}, last {:.0})",
                sustained["gib"],
                sustained["median_mb_s"].as_f64().unwrap_or(0.0),
                sustained["min_mb_s"].as_f64().unwrap_or(0.0),
                sustained["max_mb_s"].as_f64().unwrap_or(0.0),
                sustained["windows_mb_s"][0].as_f64().unwrap_or(0.0),
                sustained["windows_mb_s"]
                    .as_array()
                    .and_then(|w| w.last())
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0)
            ),
        )?;
    }
    let hashed: Vec<String> = hashing
        .iter()
        .map(|(t, mb)| format!("{t} thread(s) {mb:.0} MB/s"))
        .collect();
    w(
        &mut text,
        format!("\nSHA3-256 hashing: {}", hashed.join(", ")),
    )?;
    match &fio {
        Ok(f) => w(
            &mut text,
            format!(
                "\nfio {} on the same folder (etch / fio): seq write 1 MiB {:.0} MB/s ({}), \
                 rand read 4K qd1 {:.0} IOPS ({}), qd32 {:.0} IOPS ({}), 4K write+fdatasync \
                 p50 {:.0} µs ({})",
                f["version"].as_str().unwrap_or(""),
                f["seq_write_1m_mb_s"].as_f64().unwrap_or(0.0),
                ratio_text(&json["versus_fio"]["seq_write_1m"]),
                f["randread_4k_qd1"]["iops"].as_f64().unwrap_or(0.0),
                ratio_text(&json["versus_fio"]["randread_4k_qd1"]),
                f["randread_4k_qd32"]["iops"].as_f64().unwrap_or(0.0),
                ratio_text(&json["versus_fio"]["randread_4k_qd32"]),
                f["fdatasync_4k"]["p50_us"].as_f64().unwrap_or(0.0),
                ratio_text(&json["versus_fio"]["fdatasync_4k_p50"]),
            ),
        )?,
        Err(why) => w(&mut text, format!("\nfio: not run: {why}"))?,
    }
    if let Some(rows) = &compare {
        w(
            &mut text,
            format!(
                "\n{:<34} {:>12} {:>12} {:>9}",
                "compared with an earlier run", "old", "new", "new/old"
            ),
        )?;
        for (name, o, n) in rows {
            w(
                &mut text,
                format!("{name:<34} {o:>12.1} {n:>12.1} {:>8.2}×", n / o),
            )?;
        }
    }
    let hpath = args.out.join("disk-profile.html");
    std::fs::write(
        &hpath,
        html_report(
            &title,
            &text,
            &std::fs::read_to_string(&spath).unwrap_or_default(),
        ),
    )
    .map_err(|e| format!("{}: {e}", hpath.display()))?;
    w(
        &mut text,
        format!(
            "\nwrote {}, {} and {} in {total:.1} s",
            jpath.display(),
            spath.display(),
            hpath.display()
        ),
    )?;
    let mut out = io::stdout().lock();
    let shown = if args.json {
        json.to_string() + "\n"
    } else {
        text
    };
    out.write_all(shown.as_bytes()).map_err(|e| e.to_string())
}

/// One self-contained HTML page: the report's text and its charts (inline SVG).
fn html_report(title: &str, text: &str, svg: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
<style>body{{font-family:sans-serif;margin:2em;max-width:72em}}pre{{background:#f6f6f6;\
padding:1em;overflow-x:auto}}svg{{max-width:100%;height:auto}}</style></head>\n\
<body><h1>{t}</h1>\n<pre>{body}</pre>\n{svg}\n</body></html>\n",
        t = esc(title),
        body = esc(text),
    )
}

#[allow(clippy::type_complexity)]
fn profile_in(
    args: &DiskArgs,
    scratch: &Path,
) -> Result<(Vec<SeqResult>, Lat, Vec<ReadResult>, Option<IngestResult>), String> {
    let total = args.size.max(1) << 20;
    let file = scratch.join("seq");
    let io = |e: io::Error| format!("{}: {e}", file.display());
    let mut seq = Vec::new();
    let pb = super::scan::bar(15, "disk", false);
    for block in [4 << 10, 64 << 10, 1 << 20, 4 << 20] {
        seq.push(seq_pwrite(&file, total, block).map_err(io)?);
        pb.inc(1);
    }
    let mut uring_ok = true;
    for (block, qd) in [
        (64 << 10, 1),
        (64 << 10, 16),
        (1 << 20, 1),
        (1 << 20, 4),
        (1 << 20, 16),
        (4 << 20, 4),
    ] {
        if !uring_ok {
            break;
        }
        match seq_uring(&file, total, block, qd) {
            Ok(r) => seq.push(r),
            Err(e) => {
                eprintln!("etch bench disk: io_uring unavailable ({e}); skipping its tests");
                uring_ok = false;
            }
        }
        pb.inc(1);
    }
    // The file of the last run stays for the random reads.
    let blocks = total / 4096;
    let secs = args.seconds.max(0.1);
    let mut reads = vec![random_pread(&file, blocks, secs).map_err(io)?];
    pb.inc(1);
    if uring_ok {
        // Queue depths swept, each for half the test time (at least 0.3 s).
        let point = (secs / 2.0).max(0.3);
        for qd in READ_QUEUE_DEPTHS {
            match random_uring(&file, blocks, point, qd) {
                Ok(r) => reads.push(r),
                Err(e) => {
                    eprintln!("etch bench disk: io_uring reads failed ({e}); skipped");
                    break;
                }
            }
        }
    }
    pb.inc(1);
    let _ = std::fs::remove_file(&file);
    let sync =
        fsync_latency(&scratch.join("sync"), secs).map_err(|e| format!("fdatasync test: {e}"))?;
    pb.inc(1);
    let ingest = if args.cells > 0 {
        let (secs, ms) = ingest_w1(&scratch.join("store"), args.cells)?;
        Some(IngestResult {
            cells: args.cells,
            secs,
            commit_ms: lat_of(ms),
        })
    } else {
        None
    };
    pb.finish_and_clear();
    Ok((seq, sync, reads, ingest))
}
