//! The bytes of the native format (docs/FORMAT.md): frames, records, commits, snapshot records.
//! Pure functions over byte slices; no I/O.

/// Contents of the `FORMAT` file: magic and version 1.
pub const FORMAT_MAGIC: &[u8; 16] = b"ETCH-NATIVE\0\0\0\0\x01";
/// First four bytes of every frame: "EFRM".
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"EFRM");
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Largest frame payload recovery accepts.
pub const FRAME_PAYLOAD_MAX: usize = 16 << 20;
/// Payload size at which the writer seals a DATA frame and hands it to the I/O thread.
pub const FRAME_TARGET_BYTES: usize = 4 << 20;
/// Largest cell encoding a record may hold.
pub const RECORD_ENCODING_MAX: usize = 1 << 20;
/// Bytes of a record before its encoding: id (32), length (4), CRC (4).
pub const RECORD_HEADER_BYTES: usize = 40;
/// Frame kind of cell records.
pub const KIND_DATA: u8 = 1;
/// Frame kind of a commit.
pub const KIND_COMMIT: u8 = 2;
/// Payload bytes of a COMMIT frame.
pub const COMMIT_PAYLOAD_BYTES: usize = 120;
/// Bytes of a snapshot record.
pub const SNAPSHOT_RECORD_BYTES: usize = 128;
/// First four bytes of a snapshot record: "ESNP".
pub const SNAPSHOT_MAGIC: u32 = u32::from_le_bytes(*b"ESNP");

/// Rounds a frame's total size up to the 8-byte alignment frames keep.
pub fn padded(len: usize) -> usize {
    (len + 7) & !7
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// CRC of a frame: over bytes 4..12 of the header (kind, pad, len) and the payload.
pub fn frame_crc(header: &[u8], payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&header[4..12]);
    crc32c::crc32c_append(c, payload)
}

/// Fills in the header of a frame whose payload follows it in `frame` (which starts with
/// [`FRAME_HEADER_BYTES`] reserved bytes), and pads the frame to 8 bytes.
pub fn seal_frame(frame: &mut Vec<u8>, kind: u8) {
    let len = frame.len() - FRAME_HEADER_BYTES;
    frame[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    frame[4] = kind;
    frame[5..8].fill(0);
    frame[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = frame_crc(&frame[..FRAME_HEADER_BYTES], &frame[FRAME_HEADER_BYTES..]);
    frame[12..16].copy_from_slice(&crc.to_le_bytes());
    frame.resize(padded(frame.len()), 0);
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Frame kind.
    pub kind: u8,
    /// Payload length.
    pub len: usize,
    /// The stored CRC.
    pub crc: u32,
}

impl FrameHeader {
    /// Total bytes the frame occupies in the log, padding included.
    pub fn total(&self) -> usize {
        padded(FRAME_HEADER_BYTES + self.len)
    }
}

/// Parses a frame header; `None` if it is not one (wrong magic, unknown kind, oversized).
pub fn parse_frame_header(b: &[u8]) -> Option<FrameHeader> {
    if b.len() < FRAME_HEADER_BYTES || u32_at(b, 0) != FRAME_MAGIC {
        return None;
    }
    let kind = b[4];
    let len = u32_at(b, 8) as usize;
    if !(kind == KIND_DATA || kind == KIND_COMMIT)
        || b[5..8] != [0, 0, 0]
        || len > FRAME_PAYLOAD_MAX
    {
        return None;
    }
    if kind == KIND_COMMIT && len != COMMIT_PAYLOAD_BYTES {
        return None;
    }
    Some(FrameHeader {
        kind,
        len,
        crc: u32_at(b, 12),
    })
}

/// The well-formed frame at `pos` of `log` (header, bounds, checksum): its header and payload.
pub fn frame_at(log: &[u8], pos: usize) -> Option<(FrameHeader, &[u8])> {
    let head = log.get(pos..pos.checked_add(FRAME_HEADER_BYTES)?)?;
    let h = parse_frame_header(head)?;
    let end = pos.checked_add(h.total())?;
    if end > log.len() {
        return None;
    }
    let payload = &log[pos + FRAME_HEADER_BYTES..pos + FRAME_HEADER_BYTES + h.len];
    (frame_crc(head, payload) == h.crc).then_some((h, payload))
}

/// The next 8-aligned offset ≥ `from` where a well-formed frame starts, or the log's end:
/// where reading resumes after damage (frames are 8-aligned, so nothing in between can start
/// one).
pub fn resync(log: &[u8], from: usize) -> usize {
    let mut p = from.saturating_add(7) & !7;
    let magic = FRAME_MAGIC.to_le_bytes();
    while p.saturating_add(FRAME_HEADER_BYTES) <= log.len() {
        if log[p..p + 4] == magic && frame_at(log, p).is_some() {
            return p;
        }
        p += 8;
    }
    log.len()
}

/// The CRC of a record: CRC-32C over its id, length and encoding.
pub fn record_crc(id: &[u8], len: &[u8], encoding: &[u8]) -> u32 {
    let c = crc32c::crc32c(id);
    let c = crc32c::crc32c_append(c, len);
    crc32c::crc32c_append(c, encoding)
}

/// Appends a record (id, length, CRC, encoding) to a DATA frame payload.
pub fn push_record(frame: &mut Vec<u8>, id: &[u8; 32], encoding: &[u8]) {
    let len = (encoding.len() as u32).to_le_bytes();
    frame.extend_from_slice(id);
    frame.extend_from_slice(&len);
    frame.extend_from_slice(&record_crc(id, &len, encoding).to_le_bytes());
    frame.extend_from_slice(encoding);
}

/// Checks one record's bytes (header and encoding): its CRC and that its id is `id`.
/// Returns the encoding.
pub fn check_record<'a>(rec: &'a [u8], id: &[u8; 32]) -> Result<&'a [u8], String> {
    if rec.len() < RECORD_HEADER_BYTES {
        return Err("record shorter than its header".into());
    }
    let len = u32_at(rec, 32) as usize;
    let enc = rec
        .get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len)
        .ok_or("record shorter than its length")?;
    if &rec[..32] != id {
        return Err("the record holds another id".into());
    }
    if record_crc(&rec[..32], &rec[32..36], enc) != u32_at(rec, 36) {
        return Err("record checksum mismatch".into());
    }
    Ok(enc)
}

/// A record inside a DATA payload: (offset within the payload, id, encoding).
pub type RecordRef<'a> = (usize, [u8; 32], &'a [u8]);

/// Splits a DATA payload into records: `(offset of the record within the payload, id,
/// encoding)`. `None` if the records do not tile the payload exactly.
pub fn records(payload: &[u8]) -> Option<Vec<RecordRef<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        if payload.len() - at < RECORD_HEADER_BYTES {
            return None;
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&payload[at..at + 32]);
        let len = u32_at(payload, at + 32) as usize;
        let start = at + RECORD_HEADER_BYTES;
        if len > RECORD_ENCODING_MAX || len == 0 || payload.len() - start < len {
            return None;
        }
        out.push((at, id, &payload[start..start + len]));
        at = start + len;
    }
    Some(out)
}

/// What a COMMIT frame records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Commit number, from 1.
    pub seq: u64,
    /// Wall clock at commit, ms since the epoch.
    pub time_ms: i64,
    /// The root's Value ID, if a root is set.
    pub root: Option<[u8; 32]>,
    /// Offset just past this commit's frame.
    pub log_end: u64,
    /// Records before this offset are in the index runs.
    pub indexed_end: u64,
    /// The newest run of the commit's run list (0: none).
    pub run_head: u64,
    /// Records in the store.
    pub cells: u64,
    /// Sum of the records' encoding lengths.
    pub data_bytes: u64,
    /// Log offset of the previous COMMIT frame (`u64::MAX` for the first).
    pub prev_commit: u64,
}

impl Commit {
    /// The COMMIT frame payload.
    pub fn encode(&self) -> [u8; COMMIT_PAYLOAD_BYTES] {
        let mut b = [0u8; COMMIT_PAYLOAD_BYTES];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.time_ms.to_le_bytes());
        if let Some(r) = &self.root {
            b[16] = 1;
            b[24..56].copy_from_slice(r);
        }
        b[56..64].copy_from_slice(&self.log_end.to_le_bytes());
        b[64..72].copy_from_slice(&self.indexed_end.to_le_bytes());
        b[72..80].copy_from_slice(&self.run_head.to_le_bytes());
        b[80..88].copy_from_slice(&self.cells.to_le_bytes());
        b[88..96].copy_from_slice(&self.data_bytes.to_le_bytes());
        b[96..104].copy_from_slice(&self.prev_commit.to_le_bytes());
        b
    }

    /// Parses a COMMIT payload; `None` when a field is out of its domain.
    pub fn decode(b: &[u8]) -> Option<Commit> {
        if b.len() != COMMIT_PAYLOAD_BYTES || b[17..24].iter().any(|&x| x != 0) {
            return None;
        }
        let root = match b[16] {
            0 => None,
            1 => {
                let mut r = [0u8; 32];
                r.copy_from_slice(&b[24..56]);
                Some(r)
            }
            _ => return None,
        };
        let c = Commit {
            seq: u64_at(b, 0),
            time_ms: u64_at(b, 8) as i64,
            root,
            log_end: u64_at(b, 56),
            indexed_end: u64_at(b, 64),
            run_head: u64_at(b, 72),
            cells: u64_at(b, 80),
            data_bytes: u64_at(b, 88),
            prev_commit: u64_at(b, 96),
        };
        if c.seq == 0 || c.indexed_end > c.log_end || b[104..].iter().any(|&x| x != 0) {
            return None;
        }
        Some(c)
    }
}

/// A snapshot record: a commit and where its frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The commit.
    pub commit: Commit,
    /// Log offset of its COMMIT frame.
    pub commit_addr: u64,
}

impl Snapshot {
    /// The 128-byte record.
    pub fn encode(&self) -> [u8; SNAPSHOT_RECORD_BYTES] {
        let c = &self.commit;
        let mut b = [0u8; SNAPSHOT_RECORD_BYTES];
        b[0..4].copy_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
        b[4..12].copy_from_slice(&c.seq.to_le_bytes());
        b[12..20].copy_from_slice(&c.time_ms.to_le_bytes());
        if let Some(r) = &c.root {
            b[20] = 1;
            b[24..56].copy_from_slice(r);
        }
        b[56..64].copy_from_slice(&self.commit_addr.to_le_bytes());
        b[64..72].copy_from_slice(&c.log_end.to_le_bytes());
        b[72..80].copy_from_slice(&c.cells.to_le_bytes());
        b[80..88].copy_from_slice(&c.data_bytes.to_le_bytes());
        b[88..96].copy_from_slice(&c.indexed_end.to_le_bytes());
        b[96..104].copy_from_slice(&c.run_head.to_le_bytes());
        b[104..112].copy_from_slice(&c.prev_commit.to_le_bytes());
        let crc = crc32c::crc32c(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a record; `None` if its magic or CRC is wrong.
    pub fn decode(b: &[u8]) -> Option<Snapshot> {
        if b.len() != SNAPSHOT_RECORD_BYTES
            || u32_at(b, 0) != SNAPSHOT_MAGIC
            || crc32c::crc32c(&b[..124]) != u32_at(b, 124)
        {
            return None;
        }
        let root = match b[20] {
            0 => None,
            1 => {
                let mut r = [0u8; 32];
                r.copy_from_slice(&b[24..56]);
                Some(r)
            }
            _ => return None,
        };
        Some(Snapshot {
            commit: Commit {
                seq: u64_at(b, 4),
                time_ms: u64_at(b, 12) as i64,
                root,
                log_end: u64_at(b, 64),
                indexed_end: u64_at(b, 88),
                run_head: u64_at(b, 96),
                cells: u64_at(b, 72),
                data_bytes: u64_at(b, 80),
                prev_commit: u64_at(b, 104),
            },
            commit_addr: u64_at(b, 56),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_damage() {
        let mut f = vec![0u8; FRAME_HEADER_BYTES];
        push_record(&mut f, &[7u8; 32], b"\x31\x02ab");
        seal_frame(&mut f, KIND_DATA);
        assert_eq!(f.len() % 8, 0);
        let h = parse_frame_header(&f).unwrap();
        assert_eq!(h.kind, KIND_DATA);
        assert_eq!(h.len, 44);
        let payload = &f[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + h.len];
        assert_eq!(check_record(payload, &[7u8; 32]), Ok(&b"\x31\x02ab"[..]));
        let mut bad = payload.to_vec();
        bad[42] ^= 1;
        assert_eq!(
            check_record(&bad, &[7u8; 32]),
            Err("record checksum mismatch".to_string())
        );
        assert_eq!(
            check_record(payload, &[8u8; 32]),
            Err("the record holds another id".to_string())
        );
        assert_eq!(frame_crc(&f, payload), h.crc);
        let recs = records(payload).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].2, b"\x31\x02ab");
        // A truncated payload does not tile.
        assert!(records(&payload[..payload.len() - 1]).is_none());
        let mut bad = f.clone();
        bad[0] ^= 1;
        assert!(parse_frame_header(&bad).is_none());
    }

    #[test]
    fn commits_and_snapshots_round_trip() {
        let c = Commit {
            seq: 3,
            time_ms: 1_700_000_000_000,
            root: Some([9u8; 32]),
            log_end: 4096,
            indexed_end: 1024,
            run_head: 2,
            cells: 10,
            data_bytes: 990,
            prev_commit: 512,
        };
        assert_eq!(Commit::decode(&c.encode()), Some(c));
        let s = Snapshot {
            commit: c,
            commit_addr: 3960,
        };
        let mut b = s.encode();
        assert_eq!(Snapshot::decode(&b), Some(s));
        b[30] ^= 0x10;
        assert_eq!(Snapshot::decode(&b), None);
    }
}
