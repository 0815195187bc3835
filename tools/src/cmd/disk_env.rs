//! What `etch bench disk` reports beside its own measurements: the machine it ran on (device
//! model, file system, mount options, kernel, whether the folder is memory rather than a disk),
//! SHA3-256 hashing throughput on 1…N cores (the engine hashes every cell it stores), and
//! `fio` run on the same file for the measurements both make, when fio is installed.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn read_trim(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A mountinfo field with its octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The mount holding `dir`: (mount point, file system type, mount options, source device).
fn mount_of(dir: &Path) -> Option<(String, String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(String, String, String, String)> = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rest: Vec<&str> = right.split(' ').collect();
        if fields.len() < 6 || rest.len() < 2 {
            continue;
        }
        let point = unescape(fields[4]);
        let longer = best.as_ref().is_none_or(|b| point.len() >= b.0.len());
        if dir.starts_with(&point) && longer {
            best = Some((
                point,
                rest[0].to_string(),
                fields[5].to_string(),
                unescape(rest[1]),
            ));
        }
    }
    best
}

/// The whole disk behind a block device (a partition's parent), its model and whether it
/// spins.
fn device_of(source: &str) -> (Option<String>, Option<String>, Option<bool>) {
    let Some(name) = Path::new(source).file_name().and_then(|n| n.to_str()) else {
        return (None, None, None);
    };
    let class = PathBuf::from("/sys/class/block").join(name);
    let Ok(real) = std::fs::canonicalize(&class) else {
        return (None, None, None);
    };
    let disk = if real.join("partition").exists() {
        real.parent().map(Path::to_path_buf).unwrap_or(real)
    } else {
        real
    };
    let disk_name = disk.file_name().map(|n| n.to_string_lossy().into_owned());
    let model = read_trim(disk.join("device/model")).or_else(|| {
        // virtio and some NVMe report no model: say what bus the device is on instead.
        read_trim(disk.join("device/vendor")).map(|v| format!("vendor {v}"))
    });
    let rotational = read_trim(disk.join("queue/rotational")).map(|r| r == "1");
    (disk_name, model, rotational)
}

/// The machine and the place the profile ran on, as JSON.
pub fn system_info(dir: &Path) -> Value {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let (point, fs, options, source) = mount_of(&dir).unwrap_or_default();
    let (disk, model, rotational) = device_of(&source);
    let memory = matches!(fs.as_str(), "tmpfs" | "ramfs") || dir.starts_with("/dev/shm");
    json!({
        "path": dir.display().to_string(),
        "kernel": read_trim("/proc/sys/kernel/osrelease"),
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "mount_point": point,
        "filesystem": fs,
        "mount_options": options,
        "source": source,
        "disk": disk,
        "model": model,
        "rotational": rotational,
        "memory_backed": memory,
    })
}

/// One line describing [`system_info`] for the table.
pub fn system_line(info: &Value) -> String {
    let s = |k: &str| info[k].as_str().unwrap_or("unknown").to_string();
    let mut line = format!(
        "{} on {} ({}, {}), disk {} model {}, kernel {}, {} CPUs",
        s("path"),
        s("mount_point"),
        s("filesystem"),
        s("mount_options"),
        s("disk"),
        s("model"),
        s("kernel"),
        info["cpus"]
    );
    if info["memory_backed"] == json!(true) {
        line.push_str(
            "\nnote: this folder is in memory (tmpfs/ramfs//dev/shm), not on a disk: the figures \
             measure RAM and the kernel, not a drive",
        );
    }
    line
}

/// SHA3-256 throughput over 1 MiB buffers with 1, 2, 4 … `max` threads hashing at once, each
/// point for `secs`: (threads, MB/s in all).
pub fn hashing(max: usize, secs: f64) -> Vec<(usize, f64)> {
    use sha3::Digest;
    let mut counts = vec![1];
    while counts.last().is_some_and(|&n| n * 2 <= max) {
        counts.push(counts.last().copied().unwrap_or(1) * 2);
    }
    if counts.last() != Some(&max) {
        counts.push(max);
    }
    let buf = vec![0x5au8; 1 << 20];
    counts
        .into_iter()
        .map(|threads| {
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let start = Instant::now();
            let bytes: u64 = std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            let mut n = 0u64;
                            while Instant::now() < deadline {
                                std::hint::black_box(sha3::Sha3_256::digest(&buf));
                                n += buf.len() as u64;
                            }
                            n
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
            });
            (threads, bytes as f64 / start.elapsed().as_secs_f64() / 1e6)
        })
        .collect()
}

/// Runs one fio job (`args` after the common ones) and returns its first job's JSON.
fn fio_job(file: &Path, args: &[String]) -> Result<Value, String> {
    let out = Command::new("fio")
        .arg("--name=etch")
        .arg(format!("--filename={}", file.display()))
        .arg("--output-format=json")
        .args(args)
        .output()
        .map_err(|e| format!("fio: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "fio {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // fio may print notes before its JSON.
    let json_text = text.find('{').map_or("", |i| &text[i..]);
    let v: Value = serde_json::from_str(json_text).map_err(|e| format!("fio output: {e}"))?;
    Ok(v["jobs"][0].clone())
}

/// A latency percentile of a fio `clat_ns`/`lat_ns` object, in microseconds.
fn fio_pct(lat: &Value, p: &str) -> Option<f64> {
    lat["percentile"][p].as_f64().map(|ns| ns / 1e3)
}

/// fio's figures for the measurements `etch bench disk` also makes, on a file in `dir`, or
/// `None` (with why) when fio is not installed or fails: sequential 1 MiB writes ended by
/// fsync, random 4 KiB direct reads at queue depths 1 and 32 (io_uring), and 4 KiB writes each
/// followed by fdatasync.
pub fn fio(dir: &Path, size_mib: u64, secs: f64) -> Result<Value, String> {
    let version = Command::new("fio")
        .arg("--version")
        .output()
        .map_err(|_| "fio is not installed (e.g. apt-get install fio)".to_string())?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let file = dir.join("fio-file");
    let runtime = format!("--runtime={}", secs.max(1.0).round());
    let size = format!("--size={}m", size_mib.max(1));
    let result = (|| {
        let seq = fio_job(
            &file,
            &[
                "--rw=write".into(),
                "--bs=1m".into(),
                "--ioengine=psync".into(),
                "--end_fsync=1".into(),
                size.clone(),
            ],
        )?;
        let read = |qd: u32| {
            fio_job(
                &file,
                &[
                    "--rw=randread".into(),
                    "--bs=4k".into(),
                    "--direct=1".into(),
                    "--ioengine=io_uring".into(),
                    format!("--iodepth={qd}"),
                    "--time_based".into(),
                    runtime.clone(),
                    size.clone(),
                ],
            )
        };
        let (qd1, qd32) = (read(1)?, read(32)?);
        let sync = fio_job(
            &dir.join("fio-sync"),
            &[
                "--rw=write".into(),
                "--bs=4k".into(),
                "--ioengine=psync".into(),
                "--fdatasync=1".into(),
                "--time_based".into(),
                runtime.clone(),
                "--size=64m".into(),
            ],
        )?;
        let reads = |j: &Value| {
            json!({
                "iops": j["read"]["iops"],
                "p50_us": fio_pct(&j["read"]["clat_ns"], "50.000000"),
                "p99_us": fio_pct(&j["read"]["clat_ns"], "99.000000"),
            })
        };
        Ok(json!({
            "version": version,
            "seq_write_1m_mb_s": seq["write"]["bw_bytes"].as_f64().map(|b| b / 1e6),
            "randread_4k_qd1": reads(&qd1),
            "randread_4k_qd32": reads(&qd32),
            // A write and its fdatasync: fio times the sync on its own.
            "fdatasync_4k": {
                "p50_us": fio_pct(&sync["sync"]["lat_ns"], "50.000000")
                    .zip(fio_pct(&sync["write"]["clat_ns"], "50.000000"))
                    .map(|(s, w)| s + w),
                "p99_us": fio_pct(&sync["sync"]["lat_ns"], "99.000000")
                    .zip(fio_pct(&sync["write"]["clat_ns"], "99.000000"))
                    .map(|(s, w)| s + w),
            },
        }))
    })();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(dir.join("fio-sync"));
    result
}
