//! Reading records from the native log: through read-only memory maps of the log in windows,
//! `read_at` where the log has no OS file (a simulated disk), or the frames still in flight
//! (FORMAT.md §5, "Reads").

use super::format::{RECORD_ENCODING_MAX, RECORD_HEADER_BYTES};
use super::*;
use etch_formats::{decode_cell, Cell, ValueId};
use memmap2::{Mmap, MmapOptions};

impl NativeStore {
    /// The record bytes at `addr`: (id, encoding).
    pub(super) fn read_record(&self, addr: u64) -> Result<Vec<u8>, NativeError> {
        let corrupt = |detail: String| NativeError::Corrupt {
            path: self.dir.join(LOG_FILE),
            offset: addr,
            detail,
        };
        let written = self.progress.written_end.load(Ordering::Acquire);
        if addr + RECORD_HEADER_BYTES as u64 <= written && self.log.os_file().is_none() {
            return self.read_record_at(addr, written);
        }
        if addr + RECORD_HEADER_BYTES as u64 <= written {
            let w = self.window(addr / WINDOW_BYTES)?;
            let at = (addr % WINDOW_BYTES) as usize;
            let head = w
                .get(at..at + RECORD_HEADER_BYTES)
                .ok_or_else(|| corrupt("record header outside the log".into()))?;
            let len = u32::from_le_bytes([head[32], head[33], head[34], head[35]]) as usize;
            if len == 0
                || len > RECORD_ENCODING_MAX
                || addr + (RECORD_HEADER_BYTES + len) as u64 > written
            {
                return Err(corrupt(format!("record length {len} out of bounds")));
            }
            return w
                .get(at..at + RECORD_HEADER_BYTES + len)
                .map(|b| b.to_vec())
                .ok_or_else(|| corrupt("record outside the log".into()));
        }
        // Not written yet: in a sealed frame on its way, or in the frame being filled.
        let a = lock(&self.appender);
        let (base, bytes): (u64, &[u8]) = if addr >= a.frame_offset {
            (a.frame_offset, &a.frame)
        } else {
            match a
                .inflight
                .iter()
                .find(|(o, b)| *o <= addr && addr < o + b.len() as u64)
            {
                Some((o, b)) => (*o, b.as_slice()),
                None => {
                    drop(a);
                    // Written meanwhile: read it from the file.
                    if self.progress.written_end.load(Ordering::Acquire) > written {
                        return self.read_record(addr);
                    }
                    return Err(corrupt("record address not in the log".into()));
                }
            }
        };
        let at = (addr - base) as usize;
        let head = bytes
            .get(at..at + RECORD_HEADER_BYTES)
            .ok_or_else(|| corrupt("record header outside its frame".into()))?;
        let len = u32::from_le_bytes([head[32], head[33], head[34], head[35]]) as usize;
        bytes
            .get(at..at + RECORD_HEADER_BYTES + len)
            .map(|b| b.to_vec())
            .ok_or_else(|| corrupt("record outside its frame".into()))
    }

    /// [`NativeStore::read_record`] of a written record through `read_at` (a log with no OS
    /// file behind it, to map).
    pub(super) fn read_record_at(&self, addr: u64, written: u64) -> Result<Vec<u8>, NativeError> {
        let path = self.dir.join(LOG_FILE);
        let mut head = [0u8; RECORD_HEADER_BYTES];
        self.log.read_at(&mut head, addr).map_err(io_at(&path))?;
        let len = u32::from_le_bytes([head[32], head[33], head[34], head[35]]) as usize;
        if len == 0
            || len > RECORD_ENCODING_MAX
            || addr + (RECORD_HEADER_BYTES + len) as u64 > written
        {
            return Err(NativeError::Corrupt {
                path,
                offset: addr,
                detail: format!("record length {len} out of bounds"),
            });
        }
        let mut rec = vec![0u8; RECORD_HEADER_BYTES + len];
        self.log.read_at(&mut rec, addr).map_err(io_at(&path))?;
        Ok(rec)
    }

    pub(super) fn window(&self, k: u64) -> Result<&Mmap, NativeError> {
        let slot = self
            .windows
            .get(k as usize)
            .ok_or_else(|| NativeError::Corrupt {
                path: self.dir.join(LOG_FILE),
                offset: k * WINDOW_BYTES,
                detail: format!(
                    "the log is longer than a store reads ({LOG_WINDOWS_MAX} windows of {WINDOW_BYTES} bytes)"
                ),
            })?;
        if let Some(w) = slot.get() {
            return Ok(w);
        }
        let _mapping = lock(&self.mapping);
        if let Some(w) = slot.get() {
            return Ok(w);
        }
        // SAFETY: the log is append-only: bytes below the written end never change while the
        // store is open, and we only read below it. Pages past the end of the file are mapped
        // but never touched (reading them would fault).
        let file = self.log.os_file().ok_or_else(|| NativeError::Io {
            path: self.dir.join(LOG_FILE),
            source: io::Error::other("the log has no file to map"),
        })?;
        let map = unsafe {
            MmapOptions::new()
                .offset(k * WINDOW_BYTES)
                .len((WINDOW_BYTES + WINDOW_OVERLAP) as usize)
                .map(file)
        }
        .map_err(io_at(&self.dir))?;
        Ok(slot.get_or_init(|| map))
    }

    pub(super) fn get_cell(&self, id: &ValueId) -> Result<Option<Cell>, NativeError> {
        if let Some(c) = lock(self.cache(id)).get(id) {
            return Ok(Some(c));
        }
        let Some(addr) = self.index.get(&id.0) else {
            return Ok(None);
        };
        let rec = self.read_record(addr)?;
        let corrupt = |detail: String| NativeError::Corrupt {
            path: self.dir.join(LOG_FILE),
            offset: addr,
            detail,
        };
        let enc = format::check_record(&rec, &id.0)
            .map_err(|e| corrupt(format!("record of {id}: {e}")))?;
        let cell =
            decode_cell(enc.to_vec()).map_err(|e| corrupt(format!("record of {id}: {e}")))?;
        if self.options.verify_hashes {
            if cell.id() != id {
                return Err(corrupt(format!("record of {id} hashes to {}", cell.id())));
            }
        } else {
            cell.set_known_id(*id);
        }
        // Cache cells with children (tree nodes, read again on every walk through them);
        // decoding a leaf again costs less than caching it.
        if cell.refs().iter().any(|r| r.is_branch()) {
            lock(self.cache(id)).insert(&cell);
        }
        Ok(Some(cell))
    }
}
