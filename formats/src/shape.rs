//! Tree shapes that depend only on a count (encoding.md §6.6, §6.10) and Index key forms (§6.14).

use crate::cell::{Cell, Kind, CHUNK_BYTES};

/// Blob/String tree for `n` > 4096 bytes: (bytes per full child, number of children).
pub fn blob_tree(n: u64) -> (u64, usize) {
    tree(n, CHUNK_BYTES)
}

/// Vector tree for `n` ≥ 32, n mod 16 = 0: (elements per full child, number of children).
pub fn vector_tree(n: u64) -> (u64, usize) {
    tree(n, 16)
}

/// Smallest child size `unit · 16^k` with 16 children covering `n`, and the child count.
fn tree(n: u64, unit: u64) -> (u64, usize) {
    let n = u128::from(n);
    let mut c = u128::from(unit);
    while c * 16 < n {
        c *= 16;
    }
    let m = n.div_ceil(c);
    // c ≤ 2^60 and m ≤ 16 because n < 2^63.
    (c as u64, m as usize)
}

/// Sizes of the children of a tree node: all `c` except the last, which holds the rest.
pub fn child_sizes(n: u64, c: u64, m: usize) -> impl Iterator<Item = u64> {
    (0..m).map(move |i| if i + 1 < m { c } else { n - (m as u64 - 1) * c })
}

/// Byte length of a blob-like Index key, or `None` when the cell is not blob-like.
pub fn index_key_byte_len(key: &Cell) -> Option<u64> {
    match key.kind() {
        Kind::Blob | Kind::String => Some(key.count()),
        Kind::Symbol | Kind::Keyword => key.name_bytes().map(|n| n.len() as u64),
        Kind::Extension(_) => Some(8),
        _ => None,
    }
}

/// Hex length of an Index key (twice its bytes, capped at 64), or `None` if not blob-like.
pub fn index_key_hex_len(key: &Cell) -> Option<usize> {
    index_key_byte_len(key).map(|n| n.saturating_mul(2).min(64) as usize)
}

/// The first (up to) 32 bytes of a blob-like key that its own encoding holds: `None` for a
/// Blob tree (its first chunk holds them) and for a key that is not blob-like.
pub fn index_key_own_prefix(key: &Cell) -> Option<Vec<u8>> {
    let first32 = |b: &[u8]| b[..b.len().min(32)].to_vec();
    match key.kind() {
        Kind::Blob | Kind::String => key.flat_bytes().map(first32),
        Kind::Symbol | Kind::Keyword => key.name_bytes().map(first32),
        Kind::Extension(_) => key.extension_value().map(|v| v.to_be_bytes().to_vec()),
        _ => None,
    }
}

/// The first (up to) 32 bytes of a blob-like key, following only attached refs of Blob trees.
/// `None` when the key is not blob-like or a needed child is not attached.
pub fn index_key_prefix(key: &Cell) -> Option<Vec<u8>> {
    let mut cell = key.clone();
    loop {
        if let Some(p) = index_key_own_prefix(&cell) {
            return Some(p);
        }
        if !matches!(cell.kind(), Kind::Blob | Kind::String) {
            return None;
        }
        // A tree's first child holds at least 4096 bytes.
        cell = cell.refs().first()?.cell()?.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_shapes() {
        assert_eq!(blob_tree(4097), (4096, 2));
        assert_eq!(blob_tree(65536), (4096, 16));
        assert_eq!(blob_tree(65537), (65536, 2));
        assert_eq!(blob_tree(69633), (65536, 2));
        assert_eq!(blob_tree(1 << 32), (1 << 28, 16));
        assert_eq!(blob_tree(i64::MAX as u64).1, 8);
    }

    #[test]
    fn vector_shapes() {
        assert_eq!(vector_tree(32), (16, 2));
        assert_eq!(vector_tree(256), (16, 16));
        assert_eq!(vector_tree(272), (256, 2));
        assert_eq!(vector_tree(4096), (256, 16));
        let sizes: Vec<u64> = child_sizes(272, 256, 2).collect();
        assert_eq!(sizes, vec![256, 16]);
    }
}
