//! Streaming file contents into and out of a store as Blob trees (lattice.md §7.3,
//! encoding.md §6.6), in constant memory for any file size.
//!
//! A Blob of more than 4096 bytes is a tree: its children cover consecutive byte ranges of
//! `c = 4096·16^k` bytes (the smallest such `c` with `16c ≥ n`), every child full except the
//! last. So a Blob tree is a left-packed 16-ary tree over 4096-byte leaves: every aligned run
//! of `4096·16^k` bytes is a complete subtree, and only the tail differs. [`BlobWriter`] keeps
//! one pending list per level (at most 15 finished subtrees each), combines 16 into the next
//! level as soon as they exist, and stores every finished cell at once, keeping only its ID;
//! at the end the tail is folded upwards. The result is the same cell [`Cell::blob`] builds
//! from the whole byte string (tested), without ever holding more than one batch of bytes.

use etch_formats::cell::{tag, Encoder, CHUNK_BYTES};
use etch_formats::{Cell, Ref, ResolveError, Resolver};
use rayon::prelude::*;
use std::io::{self, Read, Write};

use crate::store::{CellStore, StoreError};

/// Bytes buffered before a batch of leaves is hashed (on every core) and stored: large enough
/// that the parallel hashing and the store's batch insert pay off, small enough to be cache
/// and memory friendly.
pub const BATCH_BYTES: usize = 8 << 20;

const CHUNK: usize = CHUNK_BYTES as usize;

/// The batch buffer's first size: small files never need more.
const INITIAL_BUFFER_BYTES: usize = 16 << 10;

/// Builds a Blob tree from bytes written to it, storing each finished cell at once.
pub struct BlobWriter<'a> {
    store: &'a dyn CellStore,
    /// The batch buffer: `buffer[..filled]` are bytes not yet cut into leaves. It starts small
    /// and doubles up to [`BATCH_BYTES`] as a stream proves long, and is zeroed only when it
    /// grows (zeroing a whole batch per read made small files cost megabytes of memset each).
    buffer: Vec<u8>,
    filled: usize,
    /// `pending[k]`: finished complete subtrees of `4096·16^k` bytes, at most 15.
    pending: Vec<Vec<Cell>>,
    /// Bytes written so far.
    total: u64,
    /// Bytes per batch: [`BATCH_BYTES`] unless a test asks for less.
    batch_bytes: usize,
}

impl<'a> BlobWriter<'a> {
    /// A writer that stores into `store`.
    pub fn new(store: &'a dyn CellStore) -> BlobWriter<'a> {
        BlobWriter {
            store,
            buffer: Vec::new(),
            filled: 0,
            pending: vec![Vec::new()],
            total: 0,
            batch_bytes: BATCH_BYTES,
        }
    }

    /// A writer with smaller batches (a multiple of 4096 bytes, at least one chunk): the same
    /// result, more batch boundaries — for tests.
    pub fn with_batch_bytes(store: &'a dyn CellStore, batch_bytes: usize) -> BlobWriter<'a> {
        let mut w = BlobWriter::new(store);
        w.batch_bytes = (batch_bytes / CHUNK).max(1) * CHUNK;
        w
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Makes room for more bytes: grows the buffer, or, when it is a full batch, cuts it into
    /// leaves.
    fn make_room(&mut self) -> Result<(), StoreError> {
        if self.filled < self.buffer.len() {
            return Ok(());
        }
        let batch = self.batch_bytes;
        if self.buffer.len() == batch {
            return self.flush_leaves(batch);
        }
        let size = (self.buffer.len() * 2).clamp(INITIAL_BUFFER_BYTES.min(batch), batch);
        self.buffer.resize(size, 0);
        Ok(())
    }

    /// Appends bytes.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        self.total += data.len() as u64;
        while !data.is_empty() {
            self.make_room()?;
            let take = (self.buffer.len() - self.filled).min(data.len());
            self.buffer[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
        }
        Ok(())
    }

    /// Appends everything `reader` yields; returns the number of bytes read.
    pub fn read_from(&mut self, reader: &mut dyn Read) -> io::Result<u64> {
        let start = self.total;
        loop {
            self.make_room().map_err(io::Error::other)?;
            // Read straight into the batch buffer: no intermediate copy.
            let n = match reader.read(&mut self.buffer[self.filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(self.total - start);
            }
            self.filled += n;
            self.total += n as u64;
        }
    }

    /// Cuts the first `upto` bytes of the buffer (a multiple of 4096) into leaves, hashes them
    /// in parallel, stores them and files them at level 0.
    fn flush_leaves(&mut self, upto: usize) -> Result<(), StoreError> {
        debug_assert_eq!(upto % CHUNK, 0);
        debug_assert!(upto <= self.filled);
        let leaves: Vec<Cell> = self.buffer[..upto]
            .par_chunks(CHUNK)
            .map(|chunk| {
                let leaf = Cell::blob(chunk);
                leaf.id();
                leaf
            })
            .collect();
        self.buffer.copy_within(upto..self.filled, 0);
        self.filled -= upto;
        self.store.put_many(&leaves)?;
        for leaf in leaves {
            self.push_subtree(0, leaf)?;
        }
        Ok(())
    }

    /// Files a complete subtree at `level`; 16 of them become one at the next level.
    fn push_subtree(&mut self, level: usize, cell: Cell) -> Result<(), StoreError> {
        if self.pending.len() <= level {
            self.pending.push(Vec::new());
        }
        self.pending[level].push(cell);
        if self.pending[level].len() == 16 {
            let children = std::mem::take(&mut self.pending[level]);
            let size = CHUNK_BYTES << (4 * (level + 1));
            let node = self.node(size, &children)?;
            self.push_subtree(level + 1, node)?;
        }
        Ok(())
    }

    /// A tree node of `size` bytes over stored `children`, stored itself. Branch children are
    /// referenced by ID only, so the node does not keep their subtrees in memory.
    fn node(&self, size: u64, children: &[Cell]) -> Result<Cell, StoreError> {
        let mut e = Encoder::new(tag::BLOB);
        e.vlq(size);
        for c in children {
            if c.is_embedded() {
                e.child(c.clone());
            } else {
                e.slot(Ref::unresolved(*c.id()));
            }
        }
        let node = e.finish();
        self.store.put(&node)?;
        Ok(node)
    }

    /// Finishes the Blob: the remaining bytes become leaves, the tail is folded upwards, and
    /// the top cell (stored) is returned.
    pub fn finish(mut self) -> Result<Cell, StoreError> {
        let full = self.filled / CHUNK * CHUNK;
        if self.total <= CHUNK_BYTES {
            // A flat Blob, never a tree.
            let leaf = Cell::blob(&self.buffer[..self.filled]);
            self.store.put(&leaf)?;
            return Ok(leaf);
        }
        if full > 0 {
            self.flush_leaves(full)?;
        }
        // The tail: a partial leaf, then at each level the pending complete subtrees plus the
        // tail so far. One item passes up as it is; several make a node of their total size.
        let mut carry: Option<(Cell, u64)> = None;
        if self.filled > 0 {
            let leaf = Cell::blob(&self.buffer[..self.filled]);
            self.store.put(&leaf)?;
            carry = Some((leaf, self.filled as u64));
        }
        let pending = std::mem::take(&mut self.pending);
        for (level, items) in pending.into_iter().enumerate() {
            let unit = CHUNK_BYTES << (4 * level);
            let mut size = items.len() as u64 * unit;
            let mut cells = items;
            if let Some((c, s)) = carry.take() {
                cells.push(c);
                size += s;
            }
            carry = match cells.len() {
                0 => None,
                1 => cells.pop().map(|c| (c, size)),
                _ => Some((self.node(size, &cells)?, size)),
            };
        }
        // More than 4096 bytes always leave at least one item to carry.
        let (top, size) = carry.ok_or_else(|| StoreError::BadRecord {
            id: etch_formats::ValueId([0; 32]),
            detail: "Blob writer: no tail after more than one chunk".into(),
        })?;
        debug_assert_eq!(size, self.total);
        Ok(top)
    }
}

/// Stores everything `reader` yields as a Blob; returns the Blob and its length.
pub fn store_reader(store: &dyn CellStore, reader: &mut dyn Read) -> io::Result<(Cell, u64)> {
    let mut w = BlobWriter::new(store);
    let n = w.read_from(reader)?;
    Ok((w.finish().map_err(io::Error::other)?, n))
}

/// Writes the bytes of a Blob (any size) to `out`, one leaf at a time: memory stays at one
/// path of the tree. `on_bytes` is called with the length of every leaf written.
pub fn write_blob(
    blob: &Cell,
    r: &dyn Resolver,
    out: &mut dyn Write,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<(), BlobIoError> {
    if let Some(b) = blob.flat_bytes() {
        out.write_all(b)?;
        on_bytes(b.len() as u64);
        return Ok(());
    }
    for child in blob.refs() {
        write_blob(&child.fetch(r)?, r, out, on_bytes)?;
    }
    Ok(())
}

/// Reading a Blob out failed: the store or the destination.
#[derive(Debug, thiserror::Error)]
pub enum BlobIoError {
    /// A cell of the Blob could not be read.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The destination failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A reader over the bytes of a Blob, fetching one leaf at a time.
pub struct BlobReader<'a> {
    r: &'a dyn Resolver,
    /// Tree cells still to visit, in reverse order (the next one last).
    stack: Vec<Ref>,
    /// The current leaf and the read position in it.
    leaf: Option<(Cell, usize)>,
}

impl<'a> BlobReader<'a> {
    /// A reader over `blob`.
    pub fn new(blob: &Cell, r: &'a dyn Resolver) -> BlobReader<'a> {
        BlobReader {
            r,
            stack: vec![Ref::to(blob.clone())],
            leaf: None,
        }
    }

    /// A reader over `blob` from byte `offset` on (the end when `offset` is past it): whole
    /// subtrees before the offset are skipped by their byte counts, so a read from the middle of
    /// a large Blob fetches one path of the tree, not what lies before it (HTTP `Range`).
    pub fn starting_at(
        blob: &Cell,
        r: &'a dyn Resolver,
        mut offset: u64,
    ) -> Result<BlobReader<'a>, ResolveError> {
        let mut reader = BlobReader::new(blob, r);
        while offset > 0 {
            let Some(next) = reader.stack.pop() else {
                break;
            };
            let cell = next.fetch(r)?;
            if cell.count() <= offset {
                offset -= cell.count();
            } else if cell.flat_bytes().is_some() {
                reader.leaf = Some((cell, offset as usize));
                offset = 0;
            } else {
                reader.stack.extend(cell.refs().iter().rev().cloned());
            }
        }
        Ok(reader)
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((leaf, pos)) = &mut self.leaf {
                let bytes = leaf.flat_bytes().unwrap_or(&[]);
                if *pos < bytes.len() {
                    let n = (bytes.len() - *pos).min(buf.len());
                    buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                self.leaf = None;
            }
            let Some(next) = self.stack.pop() else {
                return Ok(0);
            };
            let cell = next.fetch(self.r).map_err(io::Error::other)?;
            if cell.flat_bytes().is_some() {
                self.leaf = Some((cell, 0));
            } else {
                self.stack.extend(cell.refs().iter().rev().cloned());
            }
        }
    }
}
