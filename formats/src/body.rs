//! Multi-cell encodings (encoding.md §8): a top cell followed by VLQ-length-prefixed branch
//! cells, as used by messages and snapshot files.

use crate::cell::{Cell, Ref, ResolveError, Resolver};
use crate::decode::{decode_at, decode_cell, Depth};
use crate::error::{DecodeError, Rule};
use crate::id::ValueId;
use crate::structure::check_structure;
use crate::vlq::{read_vlq, write_vlq};
use bytes::Bytes;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// Largest multi-cell body accepted (the reference caps messages at 50,000,000 bytes).
pub const BODY_BYTES_MAX: usize = 50_000_000;

/// Below this many trailing cells, decoding stays on the calling thread.
const PARALLEL_CELLS_MIN: usize = 64;

/// A decoded multi-cell encoding: the top cell with its refs attached to the supplied cells.
#[derive(Clone, Debug)]
pub struct Body {
    /// The top-level value.
    pub top: Cell,
    /// Every supplied branch cell by Value ID (including any that nothing references).
    pub cells: HashMap<ValueId, Cell>,
}

impl Resolver for Body {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        Ok(self.cells.get(id).cloned())
    }
}

impl Body {
    /// Decodes a multi-cell body: the top cell, then `(VLQ length, cell)*`. Trailing cells are
    /// validated and hashed in parallel; refs are then attached from them and stage-B rules
    /// checked on every cell whose children are present. Refs to cells not supplied stay
    /// unresolved (see [`Body::missing`]).
    pub fn decode(input: impl Into<Bytes>) -> Result<Body, DecodeError> {
        let input: Bytes = input.into();
        if input.is_empty() {
            return Err(DecodeError::new(0, Rule::G1, "input is empty"));
        }
        if input.len() > BODY_BYTES_MAX {
            return Err(DecodeError::new(
                0,
                Rule::Limit,
                format!("body of {} bytes exceeds {BODY_BYTES_MAX}", input.len()),
            ));
        }
        let (top, top_end) = decode_at(&input, 0, Depth::TOP)?;
        if top.is_nil() && top_end < input.len() {
            return Err(DecodeError::new(
                top_end,
                Rule::G3,
                "bytes follow a top-level nil",
            ));
        }
        // Split the trailing cells by their length prefixes (cheap, sequential).
        let mut spans = Vec::new();
        let mut p = top_end;
        while p < input.len() {
            let (len, l) = read_vlq(&input, p, 0).map_err(|e| {
                DecodeError::new(
                    e.offset,
                    Rule::M1,
                    format!("bad cell length prefix: {}", e.detail),
                )
            })?;
            let start = p + l;
            if len > (input.len() - start) as u64 {
                return Err(DecodeError::new(
                    p,
                    Rule::M1,
                    format!("cell length {len} runs past the end of the input"),
                ));
            }
            if len > crate::cell::ENCODING_BYTES_MAX as u64 {
                return Err(DecodeError::new(
                    p,
                    Rule::G4,
                    format!("trailing cell of {len} bytes is longer than any cell encoding"),
                ));
            }
            if len == 0 {
                return Err(DecodeError::new(p, Rule::M3, "a trailing cell is empty"));
            }
            spans.push((start, start + len as usize));
            p = start + len as usize;
        }
        let decode_one = |&(start, end): &(usize, usize)| -> Result<Cell, DecodeError> {
            let slice = input.slice(start..end);
            let first = slice[0];
            let cell = match decode_at(&slice, 0, Depth::TOP) {
                Ok((c, used)) if used == slice.len() => c,
                Ok((_, used)) => {
                    return Err(DecodeError::new(
                        start + used,
                        Rule::M2,
                        format!("cell uses {used} of its {} bytes", slice.len()),
                    ))
                }
                Err(e) if e.rule == Rule::G2 => {
                    return Err(DecodeError::new(
                        start + e.offset,
                        Rule::M2,
                        format!("cell is longer than its {} bytes", slice.len()),
                    ))
                }
                Err(e) => return Err(e.shifted(start)),
            };
            if first == 0 {
                return Err(DecodeError::new(start, Rule::M3, "a trailing cell is nil"));
            }
            if cell.is_embedded() {
                return Err(DecodeError::new(
                    start,
                    Rule::M4,
                    format!("a trailing cell of {} bytes is embedded", cell.len()),
                ));
            }
            cell.id();
            Ok(cell)
        };
        let cells: Vec<Cell> = if spans.len() >= PARALLEL_CELLS_MIN {
            spans.par_iter().map(decode_one).collect::<Result<_, _>>()?
        } else {
            spans.iter().map(decode_one).collect::<Result<_, _>>()?
        };
        let mut map = HashMap::with_capacity(cells.len());
        for c in cells {
            map.entry(*c.id()).or_insert(c);
        }
        let body = Body { top, cells: map };
        body.attach()?;
        Ok(body)
    }

    /// Attaches refs reachable from the top to supplied cells and re-checks stage-B rules.
    fn attach(&self) -> Result<(), DecodeError> {
        let mut seen: HashSet<ValueId> = HashSet::new();
        let mut stack = vec![self.top.clone()];
        while let Some(cell) = stack.pop() {
            let mut attached_any = false;
            for r in cell.refs() {
                match r {
                    Ref::Embedded(c) => {
                        if !c.refs().is_empty() {
                            stack.push(c.clone());
                        }
                    }
                    Ref::Branch(b) => {
                        if let Some(target) = b
                            .target()
                            .cloned()
                            .or_else(|| self.cells.get(b.id()).cloned())
                        {
                            b.attach(target.clone()).map_err(|e| match e {
                                ResolveError::Invalid(d) => d,
                                other => DecodeError::new(0, Rule::S5, other.to_string()),
                            })?;
                            attached_any = true;
                            if seen.insert(*b.id()) {
                                stack.push(target);
                            }
                        }
                    }
                }
            }
            if attached_any || !cell.refs().is_empty() {
                check_structure(&cell, None)?;
            }
        }
        Ok(())
    }

    /// Value IDs of refs reachable from the top whose cells were not supplied (a partial value).
    pub fn missing(&self) -> Vec<ValueId> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![self.top.clone()];
        while let Some(cell) = stack.pop() {
            for r in cell.refs() {
                match r.cell() {
                    Some(c) => {
                        if !r.is_branch() || seen.insert(r.id()) {
                            stack.push(c.clone());
                        }
                    }
                    None => {
                        if seen.insert(r.id()) {
                            out.push(r.id());
                        }
                    }
                }
            }
        }
        out
    }
}

/// Encodes `top` followed by the given branch cells, each with its VLQ length.
pub fn encode_body<'a>(top: &Cell, branches: impl IntoIterator<Item = &'a Cell>) -> Vec<u8> {
    let mut out = top.encoding().to_vec();
    for c in branches {
        write_vlq(&mut out, c.len() as u64);
        out.extend_from_slice(c.encoding());
    }
    out
}

/// Encodes `top` with every branch cell reachable from it (attached refs), in the
/// depth-first pre-order of [`branches_preorder`].
pub fn encode_full_body(top: &Cell) -> Result<Vec<u8>, ResolveError> {
    let branches = branches_preorder(top, &crate::cell::NoResolver)?;
    Ok(encode_body(top, branches.iter()))
}

/// Every distinct branch cell reachable from `root`, in the depth-first pre-order of the
/// vectors README: refs in encoding order, embedded children stepped into in place, a branch
/// emitted when first met and walked before going on. Iterative (ref chains are unbounded).
pub fn branches_preorder(root: &Cell, resolver: &dyn Resolver) -> Result<Vec<Cell>, ResolveError> {
    let mut out = Vec::new();
    let mut seen: HashSet<ValueId> = HashSet::new();
    // Stack of (cell, index of next ref to visit).
    let mut stack: Vec<(Cell, usize)> = vec![(root.clone(), 0)];
    while let Some((cell, i)) = stack.last_mut() {
        let Some(r) = cell.refs().get(*i).cloned() else {
            stack.pop();
            continue;
        };
        *i += 1;
        match &r {
            Ref::Embedded(c) => {
                if !c.refs().is_empty() {
                    stack.push((c.clone(), 0));
                }
            }
            Ref::Branch(_) => {
                if seen.insert(r.id()) {
                    let c = r.fetch(resolver)?;
                    out.push(c.clone());
                    stack.push((c, 0));
                }
            }
        }
    }
    Ok(out)
}

/// Decodes a body from lowercase or uppercase hex (convenience for tools and tests).
pub fn decode_hex_body(text: &str) -> Result<Body, HexBodyError> {
    let bytes = hex::decode(text.trim()).map_err(|e| HexBodyError::Hex(e.to_string()))?;
    Body::decode(bytes).map_err(HexBodyError::Decode)
}

/// Decodes a single cell from hex.
pub fn decode_hex_cell(text: &str) -> Result<Cell, HexBodyError> {
    let bytes = hex::decode(text.trim()).map_err(|e| HexBodyError::Hex(e.to_string()))?;
    decode_cell(bytes).map_err(HexBodyError::Decode)
}

/// A hex body that is not hex, or not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexBodyError {
    /// Not valid hex.
    #[error("invalid hex: {0}")]
    Hex(String),
    /// Valid hex, invalid encoding.
    #[error("{0}")]
    Decode(DecodeError),
}
