//! Recovery of the native log on open (FORMAT.md §5, "Recovery"): the forward scan from the
//! snapshot hint, damage told apart from a crash's tail, and the tail set aside, never cut away
//! unread.

use super::dir::{io_at, sync_dir, NativeError, LOG_FILE};
use super::format::{
    self, records, Commit, Snapshot, FRAME_HEADER_BYTES, KIND_COMMIT, KIND_DATA,
    SNAPSHOT_RECORD_BYTES,
};
use crate::store::cache::IdHash;
use crate::store::io::{Disk, OpenMode, StorageFile};
use memmap2::Mmap;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// What recovery found in a log.
pub(super) struct Recovered {
    pub(super) commit: Option<(Commit, u64)>,
    pub(super) memtable: HashMap<[u8; 32], u64, IdHash>,
    /// Commits found in the log that the snapshots file lacks, in order.
    pub(super) unlisted: Vec<Snapshot>,
    /// Length of the log's valid prefix (the last commit's end).
    pub(super) valid_end: u64,
    /// Damage before the last acknowledged commit's end.
    pub(super) damage: Option<LogDamage>,
    /// Intact COMMIT frames past `valid_end`.
    pub(super) tail_commits: u64,
}

/// The valid snapshot records, oldest first (stops at the first damaged one).
pub(super) fn read_snapshots(
    f: &dyn StorageFile,
    dir: &Path,
) -> Result<Vec<Snapshot>, NativeError> {
    let len = f.len().map_err(io_at(dir))?;
    let n = len / SNAPSHOT_RECORD_BYTES as u64;
    let mut buf = vec![0u8; (n as usize) * SNAPSHOT_RECORD_BYTES];
    f.read_at(&mut buf, 0).map_err(io_at(dir))?;
    let mut out: Vec<Snapshot> = Vec::with_capacity(n as usize);
    for chunk in buf.chunks_exact(SNAPSHOT_RECORD_BYTES) {
        match Snapshot::decode(chunk) {
            Some(s) if out.last().is_none_or(|p| p.commit.seq < s.commit.seq) => out.push(s),
            _ => break,
        }
    }
    Ok(out)
}

/// Damage found in the part of the log that acknowledged commits cover: a writable open
/// refuses the store (writing on would bury the damage under new commits).
#[derive(Debug, Clone)]
pub(super) struct LogDamage {
    pub(super) offset: u64,
    pub(super) detail: String,
}

/// Reads frames forward from a trusted start, as FORMAT.md §5 says. `listed` is the snapshots
/// file's valid records: each was written only after its commit was durable, so every commit it
/// lists was acknowledged and must still be in the log; a frame that fails its checks before
/// the newest such commit's end is damage (reading resumes past it, so a read-only open still
/// finds every intact record). Past the last commit whose chain checks out lies only what a
/// crash can leave: frames of commits never acknowledged, whole, torn or missing.
pub(super) fn recover(
    log: &dyn StorageFile,
    dir: &Path,
    listed: &[Snapshot],
) -> Result<Recovered, NativeError> {
    let path = dir.join(LOG_FILE);
    let len = log.len().map_err(io_at(&path))?;
    let (map, read) = match log.os_file() {
        _ if len == 0 => (None, Vec::new()),
        // SAFETY: read-only map of the log; bytes are only read through bounds-checked
        // slices, and writers only append past what is mapped here.
        Some(f) => (
            Some(unsafe { Mmap::map(f) }.map_err(io_at(&path))?),
            Vec::new(),
        ),
        None => {
            let mut b = vec![0u8; len as usize];
            log.read_at(&mut b, 0).map_err(io_at(&path))?;
            (None, b)
        }
    };
    let bytes: &[u8] = map.as_deref().unwrap_or(&read);
    let commit_at = |at: u64| -> Option<Commit> {
        let (h, p) = format::frame_at(bytes, usize::try_from(at).ok()?)?;
        (h.kind == KIND_COMMIT).then(|| Commit::decode(p)).flatten()
    };
    // Trust the hint only if the log holds exactly that commit frame where it says.
    let hint = listed
        .last()
        .copied()
        .filter(|s| commit_at(s.commit_addr) == Some(s.commit));
    let mut cur: Option<(Commit, u64)> = hint.map(|s| (s.commit, s.commit_addr));
    // What the hint vouches for: damage before this is not a crash's doing.
    let covered = cur.map_or(0, |(c, _)| c.log_end) as usize;
    let mut pos = cur.map_or(0, |(c, _)| c.indexed_end) as usize;
    let mut found: Vec<([u8; 32], u64)> = Vec::new();
    let mut unlisted = Vec::new();
    let mut damage: Option<LogDamage> = None;
    while pos < bytes.len() {
        let frame = format::frame_at(bytes, pos);
        let good = match frame {
            Some((h, payload)) if h.kind == KIND_DATA => match records(payload) {
                Some(recs) => {
                    for (off, id, _) in recs {
                        found.push((id, (pos + FRAME_HEADER_BYTES + off) as u64));
                    }
                    true
                }
                None => false,
            },
            Some((h, payload)) => match (Commit::decode(payload), cur) {
                // An older commit between indexed_end and the hint: already known.
                (Some(c), Some((p, _))) if c.seq <= p.seq => true,
                (Some(c), _) => {
                    let next = (pos + h.total()) as u64;
                    let follows = match cur {
                        Some((p, paddr)) => c.seq == p.seq + 1 && c.prev_commit == paddr,
                        None => c.seq == 1 && c.prev_commit == u64::MAX,
                    };
                    let ok = follows && c.log_end == next && c.indexed_end <= pos as u64;
                    if ok {
                        cur = Some((c, pos as u64));
                        unlisted.push(Snapshot {
                            commit: c,
                            commit_addr: pos as u64,
                        });
                    }
                    ok
                }
                (None, _) => false,
            },
            None => false,
        };
        if good {
            pos += frame.map_or(0, |(h, _)| h.total());
            continue;
        }
        if pos >= covered {
            break;
        }
        damage.get_or_insert(LogDamage {
            offset: pos as u64,
            detail: format!(
                "a damaged frame lies inside commit {} (which ends at {covered})",
                cur.map_or(0, |(c, _)| c.seq)
            ),
        });
        // A frame whose header still holds: each record carries its own CRC, so the intact
        // ones stay readable; then go on after it if a frame starts there.
        let intact_header = format::parse_frame_header(&bytes[pos..])
            .map(|h| (h, pos + h.total()))
            .filter(|(_, end)| *end <= bytes.len());
        if let Some((h, end)) = intact_header {
            let payload = &bytes[pos + FRAME_HEADER_BYTES..pos + FRAME_HEADER_BYTES + h.len];
            if h.kind == KIND_DATA {
                for (off, id, _) in records(payload).unwrap_or_default() {
                    if format::check_record(&payload[off..], &id).is_ok() {
                        found.push((id, (pos + FRAME_HEADER_BYTES + off) as u64));
                    }
                }
            }
            if format::frame_at(bytes, end).is_some() {
                pos = end;
                continue;
            }
        }
        pos = format::resync(bytes, pos + 8);
    }
    let seq = cur.map_or(0, |(c, _)| c.seq);
    if let Some(s) = listed.iter().find(|s| s.commit.seq > seq) {
        damage.get_or_insert(LogDamage {
            offset: s.commit_addr,
            detail: format!(
                "commit {} was acknowledged (the snapshots file lists it at log offset {}), \
                 but the log ({len} bytes) no longer holds it whole",
                s.commit.seq, s.commit_addr
            ),
        });
    }
    let _ = path;
    let (valid_end, memtable) = match cur {
        Some((c, _)) => {
            let m: HashMap<[u8; 32], u64, IdHash> = found
                .into_iter()
                .filter(|(_, a)| *a >= c.indexed_end && *a < c.log_end)
                .collect();
            (c.log_end, m)
        }
        None => (0, HashMap::default()),
    };
    // Intact commits past the end: never acknowledged (a crash left them without the frames
    // before them), or cut off by damage. Counted for the notice; the bytes are kept aside.
    let mut tail_commits = 0u64;
    let mut p = valid_end as usize;
    while p < bytes.len() {
        match format::frame_at(bytes, p) {
            Some((h, payload)) => {
                if h.kind == KIND_COMMIT && Commit::decode(payload).is_some_and(|c| c.seq > seq) {
                    tail_commits += 1;
                }
                p += h.total();
            }
            None => p = format::resync(bytes, p + 8),
        }
    }
    Ok(Recovered {
        commit: cur,
        memtable,
        unlisted,
        valid_end,
        damage,
        tail_commits,
    })
}

/// Moves the log's bytes past `valid_end` (what a crash left after the last commit) into a
/// side file beside it, synced, before the log is cut there: an open never destroys bytes it
/// cannot read. Returns the side file's path.
pub(super) fn set_aside_tail(
    log: &dyn StorageFile,
    disk: &dyn Disk,
    dir: &Path,
    valid_end: u64,
    len: u64,
) -> Result<PathBuf, NativeError> {
    let mut aside = dir.join(format!("{LOG_FILE}.aside-{valid_end}"));
    let mut n = 1;
    while disk.exists(&aside) {
        aside = dir.join(format!("{LOG_FILE}.aside-{valid_end}.{n}"));
        n += 1;
    }
    let io = |e: io::Error| NativeError::Io {
        path: aside.clone(),
        source: e,
    };
    let out = disk.open(&aside, OpenMode::CreateNew).map_err(&io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = valid_end;
    let log_path = dir.join(LOG_FILE);
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        log.read_at(&mut buf[..n], at).map_err(io_at(&log_path))?;
        out.write_at(&buf[..n], at - valid_end).map_err(&io)?;
        at += n as u64;
    }
    out.sync().map_err(&io)?;
    sync_dir(dir)?;
    log.set_len(valid_end).map_err(io_at(&log_path))?;
    log.sync().map_err(io_at(&log_path))?;
    Ok(aside)
}
