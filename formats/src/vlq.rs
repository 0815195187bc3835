//! VLQ counts (encoding.md §3.1): unsigned, big-endian groups of 7 bits, shortest form, ≤ 63 bits.

use crate::error::{DecodeError, Rule};

/// Largest value a VLQ count may hold (2^63 − 1).
pub const VLQ_MAX: u64 = i64::MAX as u64;
/// Longest VLQ count in bytes.
pub const VLQ_BYTES_MAX: usize = 9;

/// Appends the VLQ encoding of `value` (which must be ≤ [`VLQ_MAX`]) to `out`.
pub fn write_vlq(out: &mut Vec<u8>, value: u64) {
    debug_assert!(value <= VLQ_MAX, "VLQ value out of range");
    let bits = 64 - value.leading_zeros() as usize;
    let groups = bits.div_ceil(7).max(1);
    for g in (0..groups).rev() {
        let byte = ((value >> (7 * g)) & 0x7f) as u8;
        out.push(if g == 0 { byte } else { byte | 0x80 });
    }
}

/// Number of bytes [`write_vlq`] writes for `value`.
pub fn vlq_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Reads a VLQ count at `pos` in `input`. Returns the value and the number of bytes used.
/// `base` is added to positions in errors (the offset of `input` in the whole buffer).
pub fn read_vlq(input: &[u8], pos: usize, base: usize) -> Result<(u64, usize), DecodeError> {
    let first = match input.get(pos) {
        Some(b) => *b,
        None => {
            return Err(DecodeError::new(
                base + pos,
                Rule::G2,
                "input ends before a VLQ count",
            ))
        }
    };
    if first == 0x80 {
        return Err(DecodeError::new(
            base + pos,
            Rule::V1,
            "VLQ count has a leading zero group",
        ));
    }
    let mut value: u64 = 0;
    for i in 0..VLQ_BYTES_MAX {
        let b = match input.get(pos + i) {
            Some(b) => *b,
            None => {
                return Err(DecodeError::new(
                    base + pos + i,
                    Rule::V3,
                    "input ends inside a VLQ count (continuation bit set)",
                ))
            }
        };
        if value > (VLQ_MAX >> 7) {
            return Err(DecodeError::new(
                base + pos,
                Rule::V2,
                "VLQ count exceeds 2^63-1",
            ));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(DecodeError::new(
        base + pos,
        Rule::V2,
        "VLQ count longer than 9 bytes",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_vlq(&mut out, v);
        out
    }

    #[test]
    fn spec_table() {
        let table: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x81, 0x00]),
            (300, &[0x82, 0x2c]),
            (4096, &[0xa0, 0x00]),
            (4097, &[0xa0, 0x01]),
            (16383, &[0xff, 0x7f]),
            (16384, &[0x81, 0x80, 0x00]),
            (1 << 30, &[0x84, 0x80, 0x80, 0x80, 0x00]),
            (1 << 32, &[0x90, 0x80, 0x80, 0x80, 0x00]),
            (
                VLQ_MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            ),
        ];
        for (v, bytes) in table {
            assert_eq!(enc(*v), *bytes, "encoding {v}");
            assert_eq!(vlq_len(*v), bytes.len());
            assert_eq!(read_vlq(bytes, 0, 0).unwrap(), (*v, bytes.len()));
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(read_vlq(&[0x80, 0x01], 0, 0).unwrap_err().rule, Rule::V1);
        let ten = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(read_vlq(&ten, 0, 0).unwrap_err().rule, Rule::V2);
        // 2^63 needs 64 bits: 9 bytes starting 0x81 overflow.
        let big = [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(read_vlq(&big, 0, 0).unwrap_err().rule, Rule::V2);
        assert_eq!(read_vlq(&[0x81], 0, 0).unwrap_err().rule, Rule::V3);
        assert_eq!(read_vlq(&[], 0, 7).unwrap_err().offset, 7);
    }
}
