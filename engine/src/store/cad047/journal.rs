//! The redo journal of a CAD047 commit (etch.md §14, "a side-car redo journal"), kept in the
//! file itself, just past the data length *L*.
//!
//! A commit changes slots and labels inside the existing file and the root in the header:
//! several small writes on different pages, which a power loss may persist in part (a torn
//! chain collapse leaves stray CHAIN slots). So, before any of them, the commit writes their new
//! values as one journal record at offset *L*new, in the same write and sync as the appended
//! region and the new *L*. Bytes past *L* are outside the format (readers, the reference
//! included, never look there), so the file stays a CAD047 file; once the in-place writes are
//! synced the commit cuts the file back to *L*, leaving the same bytes the reference would. An
//! opener that finds a valid journal at exactly *L*, naming that *L*, applies it again: every
//! write in it is idempotent, and a journal found at the current *L* is always the newest
//! commit's (a later commit either appends, overwriting it, or writes its own there), so
//! replaying can only repeat the last commit's in-place writes, never undo a newer one.
//!
//! A journal also names the append region it was written with, `[from, L)`, and that region's
//! CRC-32C: a power loss may persist the journal's pages and not some earlier ones of the same
//! write, and replaying slots that point at records that never reached the disk would corrupt
//! the index. A journal whose region does not check out is ignored (its commit never happened:
//! no in-place write starts before the region, the journal and *L* are synced).
//!
//! Layout (big-endian, as the rest of the file): magic `ETCHJRN1` (8), *L* (8), `from` (8), the
//! region's CRC (4), body length (4), body, CRC-32C of everything before it (4). Body: a byte (1 if a root follows), the root
//! (32, when present), the slot count (4) and `(offset 8, value 8)` per slot, the label count
//! (4) and `(record offset 8, flags 1, memory size 8)` per label.

use crate::store::io::StorageFile;
use std::collections::BTreeMap;

/// Marks a journal record.
pub const JOURNAL_MAGIC: [u8; 8] = *b"ETCHJRN1";
/// Bytes before the body: magic, *L*, `from`, region CRC, body length.
const JOURNAL_HEAD_BYTES: usize = 32;
/// Where a record's label ends, from the record's start: key (32), flags (1), memory size (8).
const LABEL_END_BYTES: u64 = 41;
/// Bytes of the region read at a time when checking it.
const REGION_CHUNK_BYTES: u64 = 1 << 20;
/// Bytes after the body: the CRC.
const JOURNAL_TAIL_BYTES: usize = 4;

/// The in-place writes of one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    /// The data length *L* the commit made durable (the journal lies there).
    pub data_len: u64,
    /// Where the commit's append region starts (the previous *L*).
    pub from: u64,
    /// CRC-32C of the append region `[from, data_len)`.
    pub region_crc: u32,
    /// The new root, when the commit sets one.
    pub root: Option<[u8; 32]>,
    /// Slot words to write: file offset → value.
    pub slots: BTreeMap<u64, u64>,
    /// Record labels to write: record offset → (flags, memory size).
    pub labels: BTreeMap<u64, (u8, u64)>,
}

/// CRC-32C of `[from, to)` of `file`; `None` if it cannot be read.
fn region_crc_of(file: &dyn StorageFile, from: u64, to: u64) -> Option<u32> {
    let mut crc = 0u32;
    let mut buf = vec![0u8; REGION_CHUNK_BYTES.min(to - from) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(REGION_CHUNK_BYTES) as usize;
        file.read_at(&mut buf[..n], at).ok()?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Some(crc)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Journal {
    /// True when the commit writes nothing in place.
    pub fn is_empty(&self) -> bool {
        self.root.is_none() && self.slots.is_empty() && self.labels.is_empty()
    }

    /// The journal record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(41 + self.slots.len() * 16 + self.labels.len() * 17);
        match &self.root {
            Some(r) => {
                body.push(1);
                body.extend_from_slice(r);
            }
            None => body.push(0),
        }
        body.extend_from_slice(&(self.slots.len() as u32).to_be_bytes());
        for (off, v) in &self.slots {
            body.extend_from_slice(&off.to_be_bytes());
            body.extend_from_slice(&v.to_be_bytes());
        }
        body.extend_from_slice(&(self.labels.len() as u32).to_be_bytes());
        for (off, (flags, mem)) in &self.labels {
            body.extend_from_slice(&off.to_be_bytes());
            body.push(*flags);
            body.extend_from_slice(&mem.to_be_bytes());
        }
        let mut out = Vec::with_capacity(JOURNAL_HEAD_BYTES + body.len() + JOURNAL_TAIL_BYTES);
        out.extend_from_slice(&JOURNAL_MAGIC);
        out.extend_from_slice(&self.data_len.to_be_bytes());
        out.extend_from_slice(&self.from.to_be_bytes());
        out.extend_from_slice(&self.region_crc.to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// The journal at offset `data_len` of `file` (physically `physical` bytes long), if a
    /// whole, valid one naming that same *L* lies there and every write in it falls below
    /// `data_len`: `None` otherwise (no journal, a torn one, or one left by another *L*).
    pub fn read(file: &dyn StorageFile, data_len: u64, physical: u64) -> Option<Journal> {
        let room = physical.checked_sub(data_len)?;
        if room < (JOURNAL_HEAD_BYTES + JOURNAL_TAIL_BYTES) as u64 {
            return None;
        }
        let mut head = [0u8; JOURNAL_HEAD_BYTES];
        file.read_at(&mut head, data_len).ok()?;
        if head[..8] != JOURNAL_MAGIC || u64_at(&head, 8)? != data_len {
            return None;
        }
        let (from, region_crc) = (u64_at(&head, 16)?, u32_at(&head, 24)?);
        let body_len = u64::from(u32_at(&head, 28)?);
        let total = JOURNAL_HEAD_BYTES as u64 + body_len + JOURNAL_TAIL_BYTES as u64;
        if total > room {
            return None;
        }
        let mut bytes = vec![0u8; total as usize];
        file.read_at(&mut bytes, data_len).ok()?;
        let crc_at = bytes.len() - JOURNAL_TAIL_BYTES;
        if crc32c::crc32c(&bytes[..crc_at]) != u32_at(&bytes, crc_at)? {
            return None;
        }
        if from > data_len || region_crc_of(file, from, data_len)? != region_crc {
            return None;
        }
        let mut j = Journal::decode_body(&bytes[JOURNAL_HEAD_BYTES..crc_at], data_len)?;
        j.from = from;
        j.region_crc = region_crc;
        Some(j)
    }

    fn decode_body(b: &[u8], data_len: u64) -> Option<Journal> {
        let mut j = Journal {
            data_len,
            ..Journal::default()
        };
        let mut at = 1;
        if *b.first()? == 1 {
            j.root = Some(b.get(1..33)?.try_into().ok()?);
            at = 33;
        }
        let n = u32_at(b, at)? as usize;
        at += 4;
        for _ in 0..n {
            let (off, v) = (u64_at(b, at)?, u64_at(b, at + 8)?);
            if off.checked_add(8)? > data_len {
                return None;
            }
            j.slots.insert(off, v);
            at += 16;
        }
        let n = u32_at(b, at)? as usize;
        at += 4;
        for _ in 0..n {
            let (off, flags, mem) = (u64_at(b, at)?, *b.get(at + 8)?, u64_at(b, at + 9)?);
            if off.checked_add(LABEL_END_BYTES)? > data_len {
                return None;
            }
            j.labels.insert(off, (flags, mem));
            at += 17;
        }
        (at == b.len()).then_some(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::io::{sim::SimDisk, Disk, OpenMode};
    use std::path::Path;

    #[test]
    fn round_trips_and_rejects_damage() {
        let disk = SimDisk::new();
        let f = disk.open(Path::new("f"), OpenMode::Create).unwrap();
        let j = Journal {
            data_len: 1000,
            from: 900,
            region_crc: crc32c::crc32c(&[0; 100]),
            root: Some([7; 32]),
            slots: [(44, 5), (52, 9)].into_iter().collect(),
            labels: [(600, (0x23, 99))].into_iter().collect(),
        };
        let bytes = j.encode();
        f.write_at(&[0; 1000], 0).unwrap();
        f.write_at(&bytes, 1000).unwrap();
        let len = 1000 + bytes.len() as u64;
        assert_eq!(Journal::read(&*f, 1000, len), Some(j.clone()));
        // Another L, a short file, any flipped byte, a region that did not reach the disk:
        // no journal.
        assert_eq!(Journal::read(&*f, 999, len), None);
        f.write_at(&[1], 950).unwrap();
        assert_eq!(Journal::read(&*f, 1000, len), None);
        f.write_at(&[0], 950).unwrap();
        assert_eq!(Journal::read(&*f, 1000, len - 1), None);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            f.write_at(&b, 1000).unwrap();
            assert_eq!(Journal::read(&*f, 1000, len), None, "byte {i}");
        }
    }
}
