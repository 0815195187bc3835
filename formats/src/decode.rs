//! Stage-A decoding (encoding.md §9): one forward pass per cell that checks every rule needing
//! only the bytes of that cell, building embedded children in place (sharing the input buffer)
//! and leaving branch refs unresolved.

use crate::cell::{tag, Cell, Kind, Ref, BIGINT_BYTES_MAX, CHUNK_BYTES, EMBED_BYTES_MAX};
use crate::cell::{ENCODING_BYTES_MAX, HASH_LEAF_MAX, NAME_BYTES_MAX, VECTOR_LEAF_MAX};
use crate::error::{DecodeError, Rule};
use crate::id::ValueId;
use crate::shape;
use crate::structure;
use crate::vlq::read_vlq;
use bytes::Bytes;

/// Deepest nesting of inline children accepted (valid cells nest at most ~70 levels).
pub const NESTING_DEPTH_MAX: u32 = 100;

/// Decodes exactly one cell occupying the whole input (rules G1, G3 and all stage-A rules).
pub fn decode_cell(input: impl Into<Bytes>) -> Result<Cell, DecodeError> {
    decode_whole(input.into(), Depth::TOP)
}

/// As [`decode_cell`] without the stage-B rules between each cell and its inline children:
/// the same parsing and stage-A rules. For an encoding that passed [`decode_cell`] before (the
/// stage-B rules can only answer as they did then), or whose caller applies the stage-B rules
/// itself to every cell in it, inline ones included (`etch verify`'s walk, against each cell's
/// children's summaries). Not for bytes that neither has been or will be.
pub fn decode_checked_cell(input: impl Into<Bytes>) -> Result<Cell, DecodeError> {
    decode_whole(
        input.into(),
        Depth {
            stage_b: false,
            ..Depth::TOP
        },
    )
}

fn decode_whole(input: Bytes, depth: Depth) -> Result<Cell, DecodeError> {
    if input.is_empty() {
        return Err(DecodeError::new(0, Rule::G1, "input is empty"));
    }
    if input.len() > ENCODING_BYTES_MAX {
        return Err(DecodeError::new(
            0,
            Rule::G4,
            format!(
                "{} bytes is longer than any cell encoding ({ENCODING_BYTES_MAX})",
                input.len()
            ),
        ));
    }
    let (cell, end) = decode_at(&input, 0, depth)?;
    if end != input.len() {
        return Err(DecodeError::new(
            end,
            Rule::G3,
            format!("{} bytes remain after a complete cell", input.len() - end),
        ));
    }
    Ok(cell)
}

/// How deep a cell is nested inline, and whether its stage-B rules are checked.
#[derive(Clone, Copy)]
pub(crate) struct Depth {
    level: u32,
    stage_b: bool,
}

impl Depth {
    /// A cell on its own, every rule checked.
    pub(crate) const TOP: Depth = Depth {
        level: 0,
        stage_b: true,
    };

    fn deeper(self) -> Depth {
        Depth {
            level: self.level + 1,
            ..self
        }
    }
}

fn need(buf: &[u8], pos: usize, n: usize, what: &str) -> Result<(), DecodeError> {
    if buf.len() < pos || buf.len() - pos < n {
        Err(DecodeError::new(
            buf.len(),
            Rule::G2,
            format!("input ends inside {what}"),
        ))
    } else {
        Ok(())
    }
}

/// Decodes the cell starting at `pos`; returns it and the position after it.
pub(crate) fn decode_at(
    buf: &Bytes,
    pos: usize,
    depth: Depth,
) -> Result<(Cell, usize), DecodeError> {
    decode_inner(buf, pos, depth).and_then(|(cell, end)| {
        if end - pos > ENCODING_BYTES_MAX {
            return Err(DecodeError::new(
                pos,
                Rule::G4,
                format!(
                    "encoding of {} bytes exceeds {ENCODING_BYTES_MAX}",
                    end - pos
                ),
            ));
        }
        if depth.stage_b {
            structure::check_structure(&cell, None).map_err(|e| e.shifted(pos))?;
        }
        Ok((cell, end))
    })
}

fn decode_inner(buf: &Bytes, start: usize, depth: Depth) -> Result<(Cell, usize), DecodeError> {
    if depth.level > NESTING_DEPTH_MAX {
        return Err(DecodeError::new(
            start,
            Rule::Limit,
            "inline nesting too deep",
        ));
    }
    let b: &[u8] = buf;
    let t = match b.get(start) {
        Some(t) => *t,
        None => {
            return Err(DecodeError::new(
                start,
                Rule::G2,
                "input ends where a cell should start",
            ))
        }
    };
    let kind = match Kind::of_tag(t) {
        Some(k) => k,
        None if t == tag::REF => {
            return Err(DecodeError::new(
                start,
                Rule::T1,
                "a ref (tag 20) is not a cell",
            ))
        }
        None => {
            return Err(DecodeError::new(
                start,
                Rule::T1,
                format!("invalid tag {t:02x}"),
            ))
        }
    };
    if kind == Kind::Nil {
        return Ok((Cell::nil(), start + 1));
    }
    let mut p = start + 1;
    let mut refs: Vec<Ref> = Vec::new();
    match kind {
        Kind::Nil | Kind::ByteFlag(_) => {}
        Kind::Long => {
            let n = usize::from(t - tag::LONG0);
            need(b, p, n, "an Integer")?;
            check_minimal_int(&b[p..p + n], p)?;
            p += n;
        }
        Kind::BigInt => {
            let (n, l) = read_vlq(b, p, 0)?;
            if n <= 8 || n > BIGINT_BYTES_MAX {
                return Err(DecodeError::new(
                    p,
                    Rule::N3,
                    format!("BigInt length {n} outside 9..=4096"),
                ));
            }
            p += l;
            let n = n as usize;
            need(b, p, n, "a BigInt")?;
            check_minimal_int(&b[p..p + n], p)?;
            p += n;
        }
        Kind::Double => {
            need(b, p, 8, "a Double")?;
            p += 8;
        }
        Kind::String | Kind::Blob => {
            let (n, l) = read_vlq(b, p, 0)?;
            if kind == Kind::String && n > i32::MAX as u64 {
                return Err(DecodeError::new(
                    p,
                    Rule::B2,
                    format!("String count {n} exceeds 2^31-1"),
                ));
            }
            p += l;
            if n <= CHUNK_BYTES {
                need(b, p, n as usize, "Blob/String bytes")?;
                p += n as usize;
            } else {
                let (_, m) = shape::blob_tree(n);
                for i in 0..m {
                    let at = p;
                    p = slot(buf, p, depth, &mut refs)?;
                    if refs[i].is_nil() {
                        return Err(DecodeError::new(
                            at,
                            Rule::B1,
                            format!("Blob tree child {i} is nil"),
                        ));
                    }
                }
            }
        }
        Kind::Symbol | Kind::Keyword => {
            need(b, p, 1, "a name length")?;
            let n = usize::from(b[p]);
            if n == 0 || n > NAME_BYTES_MAX {
                return Err(DecodeError::new(
                    p,
                    Rule::Y1,
                    format!("name length {n} outside 1..=128"),
                ));
            }
            p += 1;
            need(b, p, n, "a name")?;
            p += n;
        }
        Kind::Char => {
            let k = usize::from(t - tag::CHAR1) + 1;
            need(b, p, k, "a Character")?;
            let bytes = &b[p..p + k];
            if k >= 2 && bytes[0] == 0 {
                return Err(DecodeError::new(
                    p,
                    Rule::C1,
                    "Character code point is not minimal",
                ));
            }
            let cp = bytes.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x));
            if cp > 0x10ffff {
                return Err(DecodeError::new(
                    p,
                    Rule::C1,
                    format!("code point {cp:x} exceeds 10ffff"),
                ));
            }
            p += k;
        }
        Kind::Vector | Kind::List | Kind::Record(_) => {
            let (n, l) = read_vlq(b, p, 0)?;
            p += l;
            p = vector_body(buf, p, depth, n, &mut refs)?;
        }
        Kind::Map | Kind::Set => {
            let (n, l) = read_vlq(b, p, 0)?;
            p += l;
            let per = if kind == Kind::Map { 2 } else { 1 };
            if n <= HASH_LEAF_MAX {
                let mut last: Option<ValueId> = None;
                for _ in 0..n {
                    let at = p;
                    p = slot(buf, p, depth, &mut refs)?;
                    let key = refs[refs.len() - 1].id();
                    if let Some(prev) = last {
                        if key <= prev {
                            return Err(DecodeError::new(
                                at,
                                Rule::H1,
                                "keys not in strictly increasing Value ID order",
                            ));
                        }
                    }
                    last = Some(key);
                    if per == 2 {
                        p = slot(buf, p, depth, &mut refs)?;
                    }
                }
            } else {
                need(b, p, 3, "a hash tree header")?;
                let shift = b[p];
                if shift > 63 {
                    return Err(DecodeError::new(
                        p,
                        Rule::H2,
                        format!("tree shift {shift} exceeds 63"),
                    ));
                }
                let mask = u16::from_be_bytes([b[p + 1], b[p + 2]]);
                if mask.count_ones() < 2 {
                    return Err(DecodeError::new(
                        p + 1,
                        Rule::H3,
                        "hash tree has fewer than 2 children",
                    ));
                }
                p += 3;
                for i in 0..mask.count_ones() as usize {
                    let at = p;
                    p = slot(buf, p, depth, &mut refs)?;
                    if refs[i].is_nil() {
                        return Err(DecodeError::new(at, Rule::H4, "hash tree child is nil"));
                    }
                }
            }
        }
        Kind::Index => {
            let (n, l) = read_vlq(b, p, 0)?;
            p += l;
            if n == 1 {
                let at = p;
                p = slot(buf, p, depth, &mut refs)?;
                check_index_key(&refs[0], None, at)?;
                p = slot(buf, p, depth, &mut refs)?;
            } else if n >= 2 {
                need(b, p, 1, "an Index marker")?;
                let marker = b[p];
                if marker != 0x00 && marker != 0x80 {
                    return Err(DecodeError::new(
                        p,
                        Rule::I1,
                        format!("Index marker {marker:02x}"),
                    ));
                }
                p += 1;
                let mut key_at = None;
                if marker == 0x80 {
                    key_at = Some(p);
                    p = slot(buf, p, depth, &mut refs)?;
                    p = slot(buf, p, depth, &mut refs)?;
                }
                need(b, p, 3, "an Index node header")?;
                let d = b[p];
                if d >= 64 {
                    return Err(DecodeError::new(
                        p,
                        Rule::I2,
                        format!("Index depth {d} ≥ 64"),
                    ));
                }
                let mask = u16::from_be_bytes([b[p + 1], b[p + 2]]);
                let children = mask.count_ones();
                if marker == 0x80 && children == 0 {
                    return Err(DecodeError::new(
                        p + 1,
                        Rule::I3,
                        "Index entry node without children",
                    ));
                }
                if marker == 0x00 && children < 2 {
                    return Err(DecodeError::new(
                        p + 1,
                        Rule::I3,
                        "Index node with fewer than 2 children",
                    ));
                }
                if let Some(at) = key_at {
                    check_index_key(&refs[0], Some(d), at)?;
                }
                p += 3;
                for _ in 0..children {
                    let at = p;
                    p = slot(buf, p, depth, &mut refs)?;
                    if refs[refs.len() - 1].is_nil() {
                        return Err(DecodeError::new(at, Rule::I5, "Index child is nil"));
                    }
                }
            }
        }
        Kind::Syntax => {
            p = slot(buf, p, depth, &mut refs)?;
            need(b, p, 1, "Syntax metadata")?;
            match b[p] {
                tag::NIL => {
                    refs.push(Ref::nil());
                    p += 1;
                }
                tag::MAP => {
                    let (meta, end) = decode_at(buf, p, depth.deeper())?;
                    if meta.count() == 0 {
                        return Err(DecodeError::new(
                            p,
                            Rule::X1,
                            "Syntax metadata is an empty map",
                        ));
                    }
                    refs.push(Ref::Embedded(meta));
                    p = end;
                }
                other => {
                    return Err(DecodeError::new(
                        p,
                        Rule::X1,
                        format!("Syntax metadata must be nil or a map, found tag {other:02x}"),
                    ))
                }
            }
        }
        Kind::Signed => {
            let fixed = if t == tag::SIGNED { 96 } else { 64 };
            need(b, p, fixed, "SignedData key and signature")?;
            p += fixed;
            p = slot(buf, p, depth, &mut refs)?;
        }
        Kind::Coded(_) => {
            p = slot(buf, p, depth, &mut refs)?;
            p = slot(buf, p, depth, &mut refs)?;
        }
        Kind::Extension(_) => {
            let (_, l) = read_vlq(b, p, 0)?;
            p += l;
        }
    }
    Ok((Cell::from_parts(buf.slice(start..p), refs), p))
}

/// Vector body (also List and dense records): leaf items, optional prefix, or tree children.
fn vector_body(
    buf: &Bytes,
    mut p: usize,
    depth: Depth,
    n: u64,
    refs: &mut Vec<Ref>,
) -> Result<usize, DecodeError> {
    if n <= VECTOR_LEAF_MAX {
        for _ in 0..n {
            p = slot(buf, p, depth, refs)?;
        }
    } else if !n.is_multiple_of(16) {
        for _ in 0..n % 16 {
            p = slot(buf, p, depth, refs)?;
        }
        let at = p;
        p = slot(buf, p, depth, refs)?;
        if refs[refs.len() - 1].is_nil() {
            return Err(DecodeError::new(at, Rule::VC1, "Vector prefix slot is nil"));
        }
    } else {
        let (_, m) = shape::vector_tree(n);
        for _ in 0..m {
            let at = p;
            p = slot(buf, p, depth, refs)?;
            if refs[refs.len() - 1].is_nil() {
                return Err(DecodeError::new(at, Rule::VC2, "Vector tree child is nil"));
            }
        }
    }
    Ok(p)
}

/// Reads one slot at `p`: nil, a ref, or an inline cell of at most 140 bytes.
fn slot(buf: &Bytes, p: usize, depth: Depth, refs: &mut Vec<Ref>) -> Result<usize, DecodeError> {
    let b: &[u8] = buf;
    match b.get(p) {
        None => Err(DecodeError::new(
            p,
            Rule::G2,
            "input ends where a child slot should start",
        )),
        Some(&tag::REF) => {
            need(b, p + 1, 32, "a ref")?;
            let mut id = [0u8; 32];
            id.copy_from_slice(&b[p + 1..p + 33]);
            refs.push(Ref::unresolved(ValueId(id)));
            Ok(p + 33)
        }
        Some(_) => {
            let (cell, end) = decode_at(buf, p, depth.deeper())?;
            if end - p > EMBED_BYTES_MAX {
                return Err(DecodeError::new(
                    p,
                    Rule::S1,
                    format!(
                        "inline child of {} bytes (more than 140 must be a ref)",
                        end - p
                    ),
                ));
            }
            refs.push(Ref::Embedded(cell));
            Ok(end)
        }
    }
}

/// Minimal two's complement (§3.3): N1 for `11 00`, N2 for a redundant sign byte.
fn check_minimal_int(bytes: &[u8], at: usize) -> Result<(), DecodeError> {
    match bytes {
        [0] => Err(DecodeError::new(at, Rule::N1, "zero must be encoded as 10")),
        [0x00, b, ..] if *b < 0x80 => Err(DecodeError::new(at, Rule::N2, "redundant leading 00")),
        [0xff, b, ..] if *b >= 0x80 => Err(DecodeError::new(at, Rule::N2, "redundant leading ff")),
        _ => Ok(()),
    }
}

/// I4 for an inline entry key: blob-like, and (in a node with a depth) hex length = depth.
fn check_index_key(key: &Ref, depth: Option<u8>, at: usize) -> Result<(), DecodeError> {
    let Some(cell) = key.cell() else {
        return Ok(());
    };
    match shape::index_key_hex_len(cell) {
        None => Err(DecodeError::new(
            at,
            Rule::I4,
            format!("Index key of type {} is not blob-like", cell.kind().name()),
        )),
        Some(len) => match depth {
            Some(d) if len != usize::from(d) => Err(DecodeError::new(
                at,
                Rule::I4,
                format!("Index entry key has {len} hex digits at depth {d}"),
            )),
            _ => Ok(()),
        },
    }
}
