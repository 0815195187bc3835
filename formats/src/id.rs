//! Value IDs: SHA3-256 (FIPS 202) of a cell's canonical encoding.

use sha3::{Digest, Sha3_256};
use std::fmt;

/// The 32-byte identity of a cell: SHA3-256 of its complete encoding, tag included.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ValueId(pub [u8; 32]);

impl ValueId {
    /// Hashes an encoding.
    pub fn of(encoding: &[u8]) -> ValueId {
        ValueId(Sha3_256::digest(encoding).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case, optional `0x`).
    pub fn from_hex(text: &str) -> Option<ValueId> {
        let text = text.strip_prefix("0x").unwrap_or(text);
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(ValueId(out))
    }

    /// Hex digit `i` (0-based, high nibble first) of the ID.
    pub fn digit(&self, i: usize) -> u8 {
        hex_digit(&self.0, i)
    }
}

/// Hex digit `i` of a byte string: byte ⌊i/2⌋, high nibble when `i` is even.
/// Callers guarantee `i < 2 * bytes.len()`.
pub fn hex_digit(bytes: &[u8], i: usize) -> u8 {
    let b = bytes[i / 2];
    if i.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    }
}

/// Number of leading hex digits `a` and `b` share, up to `limit`.
pub fn common_hex_prefix(a: &[u8], b: &[u8], limit: usize) -> usize {
    let limit = limit.min(2 * a.len()).min(2 * b.len());
    let mut i = 0;
    while i < limit {
        if i % 2 == 0 && i + 1 < limit && a[i / 2] == b[i / 2] {
            i += 2;
            continue;
        }
        if hex_digit(a, i) != hex_digit(b, i) {
            return i;
        }
        i += 1;
    }
    limit
}

impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueId({})", self.to_hex())
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nil_id() {
        assert_eq!(
            ValueId::of(&[0]).to_hex(),
            "5d53469f20fef4f8eab52b88044ede69c77a6a68a60728609fc4a65ff531e7d0"
        );
    }

    #[test]
    fn prefix() {
        assert_eq!(common_hex_prefix(&[0x12, 0x34], &[0x12, 0x35], 64), 3);
        assert_eq!(common_hex_prefix(&[0x12, 0x34], &[0x22, 0x34], 64), 0);
        assert_eq!(common_hex_prefix(&[0x12], &[0x12, 0x35], 64), 2);
        assert_eq!(common_hex_prefix(&[0x12, 0x34], &[0x12, 0x34], 3), 3);
    }
}
