//! Constructors: build canonical cells (and whole trees) from Rust values. Large Blobs,
//! Strings, Vectors, Maps and Sets are built bottom-up with the children of big nodes encoded
//! and hashed in parallel (rayon).

use crate::cell::{tag, Cell, Encoder, Kind, Ref, BIGINT_BYTES_MAX, CHUNK_BYTES};
use crate::cell::{NAME_BYTES_MAX, VECTOR_LEAF_MAX};
use crate::coll;

use crate::shape;
use num_bigint::BigInt;
use rayon::prelude::*;

/// A value that cannot be represented as a cell (too long a name, a non-blob-like Index key…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Byte counts above which tree children are built in parallel.
const PARALLEL_BLOB_BYTES_MIN: usize = 256 * 1024;
const PARALLEL_ELEMENTS_MIN: usize = 4096;

impl Cell {
    /// An Integer in the Long form.
    pub fn long(v: i64) -> Cell {
        if v == 0 {
            return Encoder::new(tag::LONG0).finish();
        }
        let bytes = v.to_be_bytes();
        let mut skip = 0;
        while skip < 7 {
            let (b, next) = (bytes[skip], bytes[skip + 1]);
            if (b == 0x00 && next < 0x80) || (b == 0xff && next >= 0x80) {
                skip += 1;
            } else {
                break;
            }
        }
        let body = &bytes[skip..];
        Encoder::new(tag::LONG0 + body.len() as u8)
            .bytes(body)
            .finish()
    }

    /// An Integer of any size (Long form when it fits 64 bits; at most 4096 bytes).
    pub fn integer(v: &BigInt) -> Result<Cell, BuildError> {
        if let Ok(small) = i64::try_from(v) {
            return Ok(Cell::long(small));
        }
        let bytes = v.to_signed_bytes_be();
        if bytes.len() as u64 > BIGINT_BYTES_MAX {
            return Err(BuildError(format!(
                "integer needs {} bytes (max 4096)",
                bytes.len()
            )));
        }
        Ok(Encoder::new(tag::BIGINT)
            .vlq(bytes.len() as u64)
            .bytes(&bytes)
            .finish())
    }

    /// The Integer value of a Long or BigInt cell.
    pub fn to_bigint(&self) -> Option<BigInt> {
        self.integer_bytes().map(BigInt::from_signed_bytes_be)
    }

    /// A Double from its bits (every pattern is a distinct value).
    pub fn double(v: f64) -> Cell {
        Encoder::new(tag::DOUBLE)
            .bytes(&v.to_bits().to_be_bytes())
            .finish()
    }

    /// `true` or `false`.
    pub fn bool(v: bool) -> Cell {
        Cell::byte_flag(if v { tag::TRUE } else { tag::FALSE })
    }

    /// A byte flag `b0`–`bf`.
    pub fn byte_flag(t: u8) -> Cell {
        debug_assert!((0xb0..=0xbf).contains(&t));
        Encoder::new(t).finish()
    }

    /// A Character; `None` above U+10FFFF.
    pub fn char(code: u32) -> Option<Cell> {
        if code > 0x10ffff {
            return None;
        }
        let b = code.to_be_bytes();
        let body: &[u8] = if code < 0x100 {
            &b[3..]
        } else if code < 0x10000 {
            &b[2..]
        } else {
            &b[1..]
        };
        Some(
            Encoder::new(tag::CHAR1 + body.len() as u8 - 1)
                .bytes(body)
                .finish(),
        )
    }

    /// A String holding these UTF-8 bytes.
    pub fn string(s: &str) -> Cell {
        Cell::string_bytes(s.as_bytes())
    }

    /// A String from raw bytes (not validated, as the format allows).
    pub fn string_bytes(b: &[u8]) -> Cell {
        blob_node(tag::STRING, b)
    }

    /// A Blob.
    pub fn blob(b: &[u8]) -> Cell {
        blob_node(tag::BLOB, b)
    }

    /// A Symbol (1–128 bytes).
    pub fn symbol(name: &str) -> Result<Cell, BuildError> {
        named(tag::SYMBOL, name.as_bytes())
    }

    /// A Keyword (1–128 bytes, without the colon).
    pub fn keyword(name: &str) -> Result<Cell, BuildError> {
        named(tag::KEYWORD, name.as_bytes())
    }

    /// An Address `#n`.
    pub fn address(n: u64) -> Cell {
        Cell::extension(tag::ADDRESS, n)
    }

    /// An extension value `e0`–`ef` with its number (≤ 2^63−1).
    pub fn extension(t: u8, n: u64) -> Cell {
        debug_assert!((0xe0..=0xef).contains(&t));
        Encoder::new(t).vlq(n.min(crate::vlq::VLQ_MAX)).finish()
    }

    /// A Vector.
    pub fn vector(elements: Vec<Cell>) -> Cell {
        vector_node(tag::VECTOR, &elements)
    }

    /// A List (stored as the Vector of its elements reversed, tag `81` on the top cell).
    pub fn list(mut elements: Vec<Cell>) -> Cell {
        elements.reverse();
        vector_node(tag::LIST, &elements)
    }

    /// A dense record `d0`–`df` with these fields.
    pub fn record(t: u8, fields: Vec<Cell>) -> Cell {
        debug_assert!((0xd0..=0xdf).contains(&t));
        vector_node(t, &fields)
    }

    /// A hash Map; for duplicate keys the last entry wins.
    pub fn map(entries: Vec<(Cell, Cell)>) -> Cell {
        let entries = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
        hash_root(tag::MAP, entries)
    }

    /// A hash Set; duplicates collapse.
    pub fn set(elements: Vec<Cell>) -> Cell {
        hash_root(tag::SET, elements.into_iter().map(|k| (k, None)).collect())
    }

    /// An Index (radix map over blob-like keys); for duplicate keys the last entry wins.
    pub fn index(entries: Vec<(Cell, Cell)>) -> Result<Cell, BuildError> {
        let mut keyed = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let hex = shape::index_key_hex_len(&k).ok_or_else(|| {
                BuildError(format!(
                    "Index key must be blob-like, not {}",
                    k.kind().name()
                ))
            })?;
            let bytes = shape::index_key_prefix(&k)
                .ok_or_else(|| BuildError("Index key bytes unavailable".into()))?;
            keyed.push((coll::KeyId { bytes, hex }, Ref::to(k), Ref::to(v)));
        }
        Ok(coll::index_build(keyed))
    }

    /// A Syntax object: `datum` with metadata (nil or a Map; an empty Map means none).
    pub fn syntax(datum: Cell, meta: Cell) -> Result<Cell, BuildError> {
        let mut e = Encoder::new(tag::SYNTAX);
        e.child(datum);
        match meta.kind() {
            Kind::Nil => {
                e.slot(Ref::nil());
            }
            Kind::Map if meta.count() == 0 => {
                e.slot(Ref::nil());
            }
            Kind::Map => {
                e.inline_full(meta);
            }
            other => {
                return Err(BuildError(format!(
                    "Syntax metadata must be a Map, not {}",
                    other.name()
                )))
            }
        }
        Ok(e.finish())
    }

    /// SignedData (`90`) over `value` with a public key and signature (not checked).
    pub fn signed(public_key: &[u8; 32], signature: &[u8; 64], value: Cell) -> Cell {
        Encoder::new(tag::SIGNED)
            .bytes(public_key)
            .bytes(signature)
            .child(value)
            .finish()
    }

    /// A coded value `c0`–`cf`.
    pub fn coded(t: u8, code: Cell, value: Cell) -> Cell {
        debug_assert!((0xc0..=0xcf).contains(&t));
        Encoder::new(t).child(code).child(value).finish()
    }

    /// A Result record (`dd`): id, result, error, log, info.
    pub fn result_record(id: Cell, result: Cell, error: Cell, log: Cell, info: Cell) -> Cell {
        Cell::record(tag::RESULT, vec![id, result, error, log, info])
    }
}

fn named(t: u8, name: &[u8]) -> Result<Cell, BuildError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(BuildError(format!(
            "name of {} bytes (must be 1..=128)",
            name.len()
        )));
    }
    Ok(Encoder::new(t).byte(name.len() as u8).bytes(name).finish())
}

/// Makes a child's ID ready (inside a parallel worker, so parents never hash serially).
fn hashed(c: Cell) -> Cell {
    if !c.is_embedded() {
        c.id();
    }
    c
}

fn blob_node(t: u8, data: &[u8]) -> Cell {
    let n = data.len() as u64;
    if n <= CHUNK_BYTES {
        return Encoder::new(t).vlq(n).bytes(data).finish();
    }
    let (c, _) = shape::blob_tree(n);
    let children: Vec<Cell> = if data.len() >= PARALLEL_BLOB_BYTES_MIN {
        data.par_chunks(c as usize)
            .map(|ch| hashed(blob_node(tag::BLOB, ch)))
            .collect()
    } else {
        data.chunks(c as usize)
            .map(|ch| blob_node(tag::BLOB, ch))
            .collect()
    };
    let mut e = Encoder::new(t);
    e.vlq(n);
    for ch in children {
        e.child(ch);
    }
    e.finish()
}

fn vector_node(t: u8, elements: &[Cell]) -> Cell {
    let n = elements.len() as u64;
    let mut e = Encoder::new(t);
    e.vlq(n);
    if n <= VECTOR_LEAF_MAX {
        for x in elements {
            e.child(x.clone());
        }
    } else if !n.is_multiple_of(16) {
        let split = elements.len() - (n % 16) as usize;
        let prefix = vector_node(tag::VECTOR, &elements[..split]);
        for x in &elements[split..] {
            e.child(x.clone());
        }
        e.child(prefix);
    } else {
        let (c, _) = shape::vector_tree(n);
        let children: Vec<Cell> = if elements.len() >= PARALLEL_ELEMENTS_MIN {
            elements
                .par_chunks(c as usize)
                .map(|ch| hashed(vector_node(tag::VECTOR, ch)))
                .collect()
        } else {
            elements
                .chunks(c as usize)
                .map(|ch| vector_node(tag::VECTOR, ch))
                .collect()
        };
        for ch in children {
            e.child(ch);
        }
    }
    e.finish()
}

/// The hash Map or Set (`t`) of these entries through [`coll::hash_build`], the keys' IDs
/// computed on every core for large collections.
fn hash_root(t: u8, entries: Vec<(Cell, Option<Cell>)>) -> Cell {
    let slot = |(k, v): (Cell, Option<Cell>)| (*k.id(), Ref::to(k), v.map(Ref::to));
    let keyed: Vec<coll::HashEntry> = if entries.len() >= PARALLEL_ELEMENTS_MIN {
        entries.into_par_iter().map(slot).collect()
    } else {
        entries.into_iter().map(slot).collect()
    };
    coll::hash_build(t, keyed)
}
