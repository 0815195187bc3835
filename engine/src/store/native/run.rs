//! Index runs (docs/FORMAT.md §3): immutable sorted files mapping Value IDs to record addresses,
//! with a bucket table so a lookup touches one bucket.

use memmap2::Mmap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of a run header.
pub const RUN_HEADER_BYTES: usize = 64;
/// Bytes of one entry: id (32) and address (8).
pub const RUN_ENTRY_BYTES: usize = 40;
const RUN_MAGIC: &[u8; 8] = b"ETCHRUN1";
/// Target average entries per bucket.
const BUCKET_ENTRIES: usize = 16;
/// Most bucket bits (a table of 2^28 buckets = 1 GiB: far beyond any run we write).
const BUCKET_BITS_MAX: u8 = 28;

/// The file name of run `number`.
pub fn run_file_name(number: u64) -> String {
    format!("run-{number:016x}.idx")
}

/// Parses a run file name back to its number.
pub fn parse_run_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("run-")?.strip_suffix(".idx")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Bucket bits for `count` entries.
fn bucket_bits(count: usize) -> u8 {
    let buckets = count.div_ceil(BUCKET_ENTRIES).max(1);
    (buckets.next_power_of_two().trailing_zeros() as u8).min(BUCKET_BITS_MAX)
}

fn bucket_of(id: &[u8; 32], bits: u8) -> usize {
    if bits == 0 {
        return 0;
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(&id[..8]);
    (u64::from_be_bytes(w) >> (64 - bits as u32)) as usize
}

/// Why a run file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading or mapping failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a well-formed run.
    #[error("{path}: corrupt index run: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// An open, memory-mapped run.
pub struct Run {
    /// Its number.
    pub number: u64,
    /// The next older run of the list it was written for (0: none).
    pub older: u64,
    /// Records at addresses below this are indexed by this run and older ones.
    pub covers_end: u64,
    count: usize,
    bits: u8,
    map: Mmap,
    path: PathBuf,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

impl Run {
    /// Opens run `number` in `dir`, checking its header, size and (if `verify`) the CRCs of its
    /// entries and table and that entries are strictly sorted.
    pub fn open(dir: &Path, number: u64, verify: bool) -> Result<Run, RunError> {
        let path = dir.join(run_file_name(number));
        let io_err = |source| RunError::Io {
            path: path.clone(),
            source,
        };
        let corrupt = |detail: String| RunError::Corrupt {
            path: path.clone(),
            detail,
        };
        let file = File::open(&path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len < RUN_HEADER_BYTES as u64 {
            return Err(corrupt(format!("{len} bytes is shorter than a header")));
        }
        // SAFETY: runs are never modified after they are written and synced (they are only
        // deleted, which keeps existing mappings valid), so the mapped bytes cannot change.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        let h = &map[..RUN_HEADER_BYTES];
        if &h[0..8] != RUN_MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        if crc32c::crc32c(&h[..52]) != le_u32(h, 52) {
            return Err(corrupt("header checksum mismatch".into()));
        }
        let stored_number = le_u64(h, 8);
        if stored_number != number {
            return Err(corrupt(format!("header names run {stored_number}")));
        }
        let count = le_u64(h, 24);
        let bits = h[32];
        if bits > BUCKET_BITS_MAX || h[33..40].iter().any(|&b| b != 0) {
            return Err(corrupt(format!("bad bucket bits {bits}")));
        }
        let want = (RUN_HEADER_BYTES as u64)
            .checked_add(count.saturating_mul(RUN_ENTRY_BYTES as u64))
            .and_then(|x| x.checked_add(((1u64 << bits) + 1) * 4));
        if want != Some(len) {
            return Err(corrupt(format!(
                "{count} entries and {bits} bucket bits do not fit {len} bytes"
            )));
        }
        let run = Run {
            number,
            older: le_u64(h, 16),
            covers_end: le_u64(h, 40),
            count: count as usize,
            bits,
            map,
            path,
        };
        if verify {
            run.verify()?;
        }
        Ok(run)
    }

    /// Checks the CRCs of entries and table, the entries' order and the table's consistency.
    pub fn verify(&self) -> Result<(), RunError> {
        match self.first_problem() {
            None => Ok(()),
            Some((_, detail)) => Err(RunError::Corrupt {
                path: self.path.clone(),
                detail,
            }),
        }
    }

    /// What [`Run::verify`] checks, with the file offset of the first problem found (the CRC
    /// field of a checksum mismatch, the later entry of two out of order, the table word of a
    /// bad bucket): `None` when the run is sound.
    pub fn first_problem(&self) -> Option<(u64, String)> {
        let h = &self.map[..RUN_HEADER_BYTES];
        let entries = &self.map[RUN_HEADER_BYTES..self.table_offset()];
        if crc32c::crc32c(entries) != le_u32(h, 48) {
            return Some((48, "entries checksum mismatch".into()));
        }
        if crc32c::crc32c(&self.map[self.table_offset()..]) != le_u32(h, 56) {
            return Some((56, "bucket table checksum mismatch".into()));
        }
        for i in 1..self.count {
            if self.id_at(i - 1) >= self.id_at(i) {
                return Some((
                    (RUN_HEADER_BYTES + i * RUN_ENTRY_BYTES) as u64,
                    format!("entries {} and {i} out of order", i - 1),
                ));
            }
        }
        for k in 0..(1usize << self.bits) {
            let (a, b) = (self.table(k), self.table(k + 1));
            let at = (self.table_offset() + 4 * k) as u64;
            if a > b || b > self.count {
                return Some((at, format!("bucket {k} spans {a}..{b}")));
            }
            if (a..b).any(|i| bucket_of(self.id_at(i), self.bits) != k) {
                return Some((at, format!("bucket {k} holds a foreign entry")));
            }
        }
        None
    }

    fn table_offset(&self) -> usize {
        RUN_HEADER_BYTES + self.count * RUN_ENTRY_BYTES
    }

    fn table(&self, k: usize) -> usize {
        le_u32(&self.map, self.table_offset() + 4 * k) as usize
    }

    fn id_at(&self, i: usize) -> &[u8; 32] {
        let at = RUN_HEADER_BYTES + i * RUN_ENTRY_BYTES;
        self.map[at..at + 32].try_into().unwrap_or(&[0u8; 32])
    }

    fn addr_at(&self, i: usize) -> u64 {
        le_u64(&self.map, RUN_HEADER_BYTES + i * RUN_ENTRY_BYTES + 32)
    }

    /// Entries in the run.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if the run has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The address of `id`'s record, if this run has it.
    pub fn get(&self, id: &[u8; 32]) -> Option<u64> {
        let k = bucket_of(id, self.bits);
        let (mut lo, mut hi) = (self.table(k), self.table(k + 1));
        // A damaged table must not send us outside the entries.
        if lo > hi || hi > self.count {
            return None;
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.id_at(mid).cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.addr_at(mid)),
            }
        }
        None
    }

    /// Every entry, in id order.
    pub fn iter(&self) -> impl Iterator<Item = ([u8; 32], u64)> + '_ {
        (0..self.count).map(|i| (*self.id_at(i), self.addr_at(i)))
    }
}

/// What a new run file records in its header.
pub struct RunSpec {
    /// Its number.
    pub number: u64,
    /// The next older run (0: none).
    pub older: u64,
    /// Records below this address are indexed by it and older runs.
    pub covers_end: u64,
}

/// Writes a run of `entries` (sorted by id, unique; at most `count_max` of them) to `dir`,
/// syncs it, and opens it. The file is complete and durable before any commit can name it.
pub fn write_run(
    dir: &Path,
    spec: &RunSpec,
    count_max: usize,
    entries: impl Iterator<Item = ([u8; 32], u64)>,
) -> Result<Run, RunError> {
    let path = dir.join(run_file_name(spec.number));
    let io_err = |source| RunError::Io {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err)?;
    let bits = bucket_bits(count_max);
    let mut table = vec![0u32; (1usize << bits) + 1];
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    w.write_all(&[0u8; RUN_HEADER_BYTES]).map_err(io_err)?;
    let mut crc = 0u32;
    let mut count = 0usize;
    let mut last: Option<[u8; 32]> = None;
    for (id, addr) in entries {
        if last.is_some_and(|l| l >= id) {
            return Err(RunError::Corrupt {
                path,
                detail: "entries given out of order".into(),
            });
        }
        last = Some(id);
        let mut e = [0u8; RUN_ENTRY_BYTES];
        e[..32].copy_from_slice(&id);
        e[32..].copy_from_slice(&addr.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &e);
        w.write_all(&e).map_err(io_err)?;
        table[bucket_of(&id, bits) + 1] += 1;
        count += 1;
    }
    // Counts per bucket → start indices.
    for k in 1..table.len() {
        table[k] += table[k - 1];
    }
    let table_bytes: Vec<u8> = table.iter().flat_map(|t| t.to_le_bytes()).collect();
    w.write_all(&table_bytes).map_err(io_err)?;
    w.flush().map_err(io_err)?;
    drop(w);
    let mut h = [0u8; RUN_HEADER_BYTES];
    h[0..8].copy_from_slice(RUN_MAGIC);
    h[8..16].copy_from_slice(&spec.number.to_le_bytes());
    h[16..24].copy_from_slice(&spec.older.to_le_bytes());
    h[24..32].copy_from_slice(&(count as u64).to_le_bytes());
    h[32] = bits;
    h[40..48].copy_from_slice(&spec.covers_end.to_le_bytes());
    h[48..52].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32c::crc32c(&h[..52]);
    h[52..56].copy_from_slice(&hcrc.to_le_bytes());
    h[56..60].copy_from_slice(&crc32c::crc32c(&table_bytes).to_le_bytes());
    // The header's checksum covers bytes 0..52, so the table CRC (56..60) is outside it.
    file.write_all_at(&h, 0).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Run::open(dir, spec.number, false)
}

/// Merges two runs (`newer` wins on equal ids) into a new run, written and synced.
pub fn merge_runs(dir: &Path, spec: &RunSpec, newer: &Run, older: &Run) -> Result<Run, RunError> {
    let mut a = newer.iter().peekable();
    let mut b = older.iter().peekable();
    let merged = std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match x.0.cmp(&y.0) {
            std::cmp::Ordering::Less => a.next(),
            std::cmp::Ordering::Greater => b.next(),
            std::cmp::Ordering::Equal => {
                b.next();
                a.next()
            }
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    });
    write_run(dir, spec, newer.len() + older.len(), merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> [u8; 32] {
        *etch_formats::ValueId::of(&i.to_le_bytes()).as_bytes()
    }

    #[test]
    fn write_lookup_merge_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mut a: Vec<([u8; 32], u64)> = (0..1000).map(|i| (id(i), i * 10)).collect();
        a.sort();
        let spec = RunSpec {
            number: 1,
            older: 0,
            covers_end: 10_000,
        };
        let r1 = write_run(dir.path(), &spec, a.len(), a.iter().copied()).unwrap();
        r1.verify().unwrap();
        for i in 0..1000 {
            assert_eq!(r1.get(&id(i)), Some(i * 10));
        }
        assert_eq!(r1.get(&id(5000)), None);
        let mut b: Vec<([u8; 32], u64)> = (1000..1500).map(|i| (id(i), i * 10)).collect();
        b.sort();
        let spec2 = RunSpec {
            number: 2,
            older: 1,
            covers_end: 15_000,
        };
        let r2 = write_run(dir.path(), &spec2, b.len(), b.iter().copied()).unwrap();
        let spec3 = RunSpec {
            number: 3,
            older: 0,
            covers_end: 15_000,
        };
        let m = merge_runs(dir.path(), &spec3, &r2, &r1).unwrap();
        m.verify().unwrap();
        assert_eq!(m.len(), 1500);
        for i in 0..1500 {
            assert_eq!(m.get(&id(i)), Some(i * 10));
        }
        let reopened = Run::open(dir.path(), 3, true).unwrap();
        assert_eq!(reopened.len(), 1500);
        // An empty run works too.
        let e = write_run(
            dir.path(),
            &RunSpec {
                number: 4,
                older: 0,
                covers_end: 0,
            },
            0,
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(e.get(&id(1)), None);
        e.verify().unwrap();
    }

    #[test]
    fn damaged_runs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<([u8; 32], u64)> = {
            let mut v: Vec<_> = (0..100).map(|i| (id(i), i)).collect();
            v.sort();
            v
        };
        let spec = RunSpec {
            number: 9,
            older: 0,
            covers_end: 100,
        };
        write_run(dir.path(), &spec, a.len(), a.into_iter()).unwrap();
        let path = dir.path().join(run_file_name(9));
        let good = std::fs::read(&path).unwrap();
        for at in [3usize, 30, RUN_HEADER_BYTES + 5, good.len() - 2] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let r = Run::open(dir.path(), 9, true);
            assert!(matches!(r, Err(RunError::Corrupt { .. })), "flip at {at}");
        }
        std::fs::write(&path, &good[..good.len() - 4]).unwrap();
        assert!(matches!(
            Run::open(dir.path(), 9, false),
            Err(RunError::Corrupt { .. })
        ));
        assert_eq!(parse_run_file_name(&run_file_name(0xabc)), Some(0xabc));
    }
}
