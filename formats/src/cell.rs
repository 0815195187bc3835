//! The cell model: immutable, reference-counted cells with their canonical encoding, a cached
//! Value ID and their direct child slots ([`Ref`]s), which resolve lazily.

use crate::error::{DecodeError, Rule};
use crate::id::ValueId;
use crate::vlq;
use bytes::Bytes;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Largest encoding written inline in a parent (encoding.md §1).
pub const EMBED_BYTES_MAX: usize = 140;
/// Largest encoding of any cell (encoding.md §2, G4).
pub const ENCODING_BYTES_MAX: usize = 16383;
/// Blob/String chunk size: flat up to this many bytes.
pub const CHUNK_BYTES: u64 = 4096;
/// Largest Map/Set leaf.
pub const HASH_LEAF_MAX: u64 = 15;
/// Largest Vector leaf (without prefix).
pub const VECTOR_LEAF_MAX: u64 = 16;
/// Largest Symbol/Keyword name in bytes.
pub const NAME_BYTES_MAX: usize = 128;
/// Largest BigInt body in bytes.
pub const BIGINT_BYTES_MAX: u64 = 4096;

/// Tag bytes (encoding.md §4).
#[allow(missing_docs)]
pub mod tag {
    pub const NIL: u8 = 0x00;
    pub const LONG0: u8 = 0x10;
    pub const BIGINT: u8 = 0x19;
    pub const DOUBLE: u8 = 0x1d;
    pub const REF: u8 = 0x20;
    pub const STRING: u8 = 0x30;
    pub const BLOB: u8 = 0x31;
    pub const SYMBOL: u8 = 0x32;
    pub const KEYWORD: u8 = 0x33;
    pub const CHAR1: u8 = 0x3c;
    pub const VECTOR: u8 = 0x80;
    pub const LIST: u8 = 0x81;
    pub const MAP: u8 = 0x82;
    pub const SET: u8 = 0x83;
    pub const INDEX: u8 = 0x84;
    pub const SYNTAX: u8 = 0x88;
    pub const SIGNED: u8 = 0x90;
    pub const SIGNED_SHORT: u8 = 0x91;
    pub const FALSE: u8 = 0xb0;
    pub const TRUE: u8 = 0xb1;
    pub const ADDRESS: u8 = 0xea;
    pub const RESULT: u8 = 0xdd;
}

/// What kind of value a cell is, from its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `00`
    Nil,
    /// `10`–`18`: a 64-bit Integer.
    Long,
    /// `19`: an Integer outside the 64-bit range.
    BigInt,
    /// `1d`
    Double,
    /// `30`
    String,
    /// `31`
    Blob,
    /// `32`
    Symbol,
    /// `33`
    Keyword,
    /// `3c`–`3e`
    Char,
    /// `80`
    Vector,
    /// `81`
    List,
    /// `82`
    Map,
    /// `83`
    Set,
    /// `84`
    Index,
    /// `88`
    Syntax,
    /// `90` or `91`
    Signed,
    /// `b0`–`bf` (the tag; `b0` false, `b1` true)
    ByteFlag(u8),
    /// `c0`–`cf`
    Coded(u8),
    /// `d0`–`df`
    Record(u8),
    /// `e0`–`ef` (`ea` is an Address)
    Extension(u8),
}

impl Kind {
    /// The kind of a valid tag, or `None` for tags that are invalid as a cell.
    pub fn of_tag(t: u8) -> Option<Kind> {
        Some(match t {
            0x00 => Kind::Nil,
            0x10..=0x18 => Kind::Long,
            0x19 => Kind::BigInt,
            0x1d => Kind::Double,
            0x30 => Kind::String,
            0x31 => Kind::Blob,
            0x32 => Kind::Symbol,
            0x33 => Kind::Keyword,
            0x3c..=0x3e => Kind::Char,
            0x80 => Kind::Vector,
            0x81 => Kind::List,
            0x82 => Kind::Map,
            0x83 => Kind::Set,
            0x84 => Kind::Index,
            0x88 => Kind::Syntax,
            0x90 | 0x91 => Kind::Signed,
            0xb0..=0xbf => Kind::ByteFlag(t),
            0xc0..=0xcf => Kind::Coded(t),
            0xd0..=0xdf => Kind::Record(t),
            0xe0..=0xef => Kind::Extension(t),
            _ => return None,
        })
    }

    /// A short type name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nil => "Nil",
            Kind::Long | Kind::BigInt => "Integer",
            Kind::Double => "Double",
            Kind::String => "String",
            Kind::Blob => "Blob",
            Kind::Symbol => "Symbol",
            Kind::Keyword => "Keyword",
            Kind::Char => "Character",
            Kind::Vector => "Vector",
            Kind::List => "List",
            Kind::Map => "Map",
            Kind::Set => "Set",
            Kind::Index => "Index",
            Kind::Syntax => "Syntax",
            Kind::Signed => "SignedData",
            Kind::ByteFlag(0xb0 | 0xb1) => "Boolean",
            Kind::ByteFlag(_) => "ByteFlag",
            Kind::Coded(_) => "CodedValue",
            Kind::Record(_) => "Record",
            Kind::Extension(0xea) => "Address",
            Kind::Extension(_) => "Extension",
        }
    }
}

/// Something that can find a branch cell by its Value ID: a store, a message body, or both.
pub trait Resolver: Sync {
    /// Returns the cell with this ID, `Ok(None)` if it is not known here.
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError>;
}

/// A resolver that knows no cells: only refs that are already attached can be followed.
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(&self, _id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        Ok(None)
    }
}

/// Why a ref could not be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The target cell is not available (a partial value, rule S4).
    #[error("missing cell {0}")]
    Missing(ValueId),
    /// The target was found but is not a valid branch for this ref (S2, S5, or malformed).
    #[error("{0}")]
    Invalid(DecodeError),
    /// The backing store failed.
    #[error("store error: {0}")]
    Store(String),
}

/// A child slot: an embedded cell (written inline, nil included) or a branch named by its ID.
#[derive(Clone)]
pub enum Ref {
    /// A cell whose encoding is written inline in the parent (≤ 140 bytes, or nil).
    Embedded(Cell),
    /// A branch cell, written as `20` + Value ID; its target is attached when known.
    Branch(Arc<Branch>),
}

/// The target of a branch ref: the ID always, the cell once resolved.
pub struct Branch {
    id: ValueId,
    target: OnceLock<Cell>,
}

impl Branch {
    /// The ref's Value ID.
    pub fn id(&self) -> &ValueId {
        &self.id
    }
    /// The target, if attached.
    pub fn target(&self) -> Option<&Cell> {
        self.target.get()
    }
}

impl Ref {
    /// The slot for a child cell: inline when its encoding is ≤ 140 bytes, a ref otherwise.
    pub fn to(cell: Cell) -> Ref {
        if cell.is_embedded() {
            Ref::Embedded(cell)
        } else {
            let id = *cell.id();
            let target = OnceLock::new();
            let _ = target.set(cell);
            Ref::Branch(Arc::new(Branch { id, target }))
        }
    }

    /// An unresolved ref to a branch cell known only by its ID.
    pub fn unresolved(id: ValueId) -> Ref {
        Ref::Branch(Arc::new(Branch {
            id,
            target: OnceLock::new(),
        }))
    }

    /// The nil slot.
    pub fn nil() -> Ref {
        Ref::Embedded(Cell::nil())
    }

    /// The Value ID of the child (hashes an embedded child on first use).
    pub fn id(&self) -> ValueId {
        match self {
            Ref::Embedded(c) => *c.id(),
            Ref::Branch(b) => b.id,
        }
    }

    /// True for a branch ref (`20` + ID in the encoding).
    pub fn is_branch(&self) -> bool {
        matches!(self, Ref::Branch(_))
    }

    /// True for the nil slot.
    pub fn is_nil(&self) -> bool {
        matches!(self, Ref::Embedded(c) if c.tag() == tag::NIL)
    }

    /// The child cell if it is embedded or its ref is already attached.
    pub fn cell(&self) -> Option<&Cell> {
        match self {
            Ref::Embedded(c) => Some(c),
            Ref::Branch(b) => b.target.get(),
        }
    }

    /// The child cell, looking an unattached ref up in `resolver` and attaching it.
    /// A target that does not hash to the ref (S5) or is ≤ 140 bytes (S2) is rejected.
    pub fn resolve(&self, resolver: &dyn Resolver) -> Result<Cell, ResolveError> {
        let cell = self.fetch(resolver)?;
        match self {
            Ref::Branch(b) => Ok(b.target.get_or_init(|| cell).clone()),
            Ref::Embedded(_) => Ok(cell),
        }
    }

    /// The child cell without attaching it: an embedded or already attached child is returned
    /// as is; otherwise it is looked up in `resolver` (and checked, as in [`Ref::resolve`]) but
    /// not kept in the parent, so walking a tree larger than memory through a store holds only
    /// the path being walked. The store's cache decides what stays hot.
    pub fn fetch(&self, resolver: &dyn Resolver) -> Result<Cell, ResolveError> {
        match self {
            Ref::Embedded(c) => Ok(c.clone()),
            Ref::Branch(b) => {
                if let Some(c) = b.target.get() {
                    return Ok(c.clone());
                }
                let cell = resolver
                    .resolve(&b.id)?
                    .ok_or(ResolveError::Missing(b.id))?;
                b.check(&cell)?;
                Ok(cell)
            }
        }
    }

    /// Writes the slot form: the inline encoding, or `20` + ID.
    pub fn write_slot(&self, out: &mut Vec<u8>) {
        match self {
            Ref::Embedded(c) => out.extend_from_slice(c.encoding()),
            Ref::Branch(b) => {
                out.push(tag::REF);
                out.extend_from_slice(&b.id.0);
            }
        }
    }

    /// Length of the slot form in bytes.
    pub fn slot_len(&self) -> usize {
        match self {
            Ref::Embedded(c) => c.len(),
            Ref::Branch(_) => 33,
        }
    }
}

impl Branch {
    /// Attaches `cell` as the target after checking it is the right one (S5) and a branch (S2).
    pub fn attach(&self, cell: Cell) -> Result<Cell, ResolveError> {
        self.check(&cell)?;
        Ok(self.target.get_or_init(|| cell).clone())
    }

    /// Checks that `cell` is this ref's target (S5) and a branch (S2).
    fn check(&self, cell: &Cell) -> Result<(), ResolveError> {
        if cell.id() != &self.id {
            return Err(ResolveError::Invalid(DecodeError::new(
                0,
                Rule::S5,
                format!("cell {} does not hash to its ref {}", cell.id(), self.id),
            )));
        }
        if cell.is_embedded() {
            return Err(ResolveError::Invalid(DecodeError::new(
                0,
                Rule::S2,
                format!(
                    "ref {} names a cell of {} bytes, which must be inline",
                    self.id,
                    cell.len()
                ),
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Embedded(c) => write!(f, "Embedded({c:?})"),
            Ref::Branch(b) => write!(f, "Branch({}, attached={})", b.id, b.target.get().is_some()),
        }
    }
}

/// An immutable value node. Cloning is cheap (reference counted).
#[derive(Clone)]
pub struct Cell(Arc<CellInner>);

struct CellInner {
    encoding: Bytes,
    id: OnceLock<ValueId>,
    refs: Box<[Ref]>,
    memory_size: OnceLock<u64>,
}

static NIL: OnceLock<Cell> = OnceLock::new();

impl Cell {
    /// Makes a cell from a canonical encoding and its direct child slots, in encoding order.
    /// Callers (the decoder and the builders) guarantee the two agree.
    pub(crate) fn from_parts(encoding: Bytes, refs: Vec<Ref>) -> Cell {
        Cell(Arc::new(CellInner {
            encoding,
            id: OnceLock::new(),
            refs: refs.into_boxed_slice(),
            memory_size: OnceLock::new(),
        }))
    }

    /// The nil value.
    pub fn nil() -> Cell {
        NIL.get_or_init(|| Cell::from_parts(Bytes::from_static(&[0]), Vec::new()))
            .clone()
    }

    /// The tag byte.
    pub fn tag(&self) -> u8 {
        self.0.encoding[0]
    }

    /// The kind of value.
    pub fn kind(&self) -> Kind {
        // Cells are only made from valid tags.
        Kind::of_tag(self.tag()).unwrap_or(Kind::Nil)
    }

    /// The canonical encoding (refs written as `20` + ID).
    pub fn encoding(&self) -> &[u8] {
        &self.0.encoding
    }

    /// The canonical encoding as shared bytes.
    pub fn encoding_bytes(&self) -> &Bytes {
        &self.0.encoding
    }

    /// Encoding length in bytes.
    pub fn len(&self) -> usize {
        self.0.encoding.len()
    }

    /// Never true: an encoding has at least a tag byte. (Provided for API symmetry.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True when the cell is written inline in a parent (encoding ≤ 140 bytes).
    pub fn is_embedded(&self) -> bool {
        self.len() <= EMBED_BYTES_MAX
    }

    /// The Value ID, computed on first use and cached.
    pub fn id(&self) -> &ValueId {
        self.0.id.get_or_init(|| ValueId::of(&self.0.encoding))
    }

    /// Sets a Value ID known to be right (e.g. a store key already checked), avoiding a hash.
    pub fn set_known_id(&self, id: ValueId) {
        debug_assert_eq!(id, ValueId::of(&self.0.encoding));
        let _ = self.0.id.set(id);
    }

    /// True once the ID has been computed.
    pub fn has_id(&self) -> bool {
        self.0.id.get().is_some()
    }

    /// The direct child slots in encoding order (for Syntax: datum, then the metadata map).
    pub fn refs(&self) -> &[Ref] {
        &self.0.refs
    }

    /// The cached memory size, if computed.
    pub(crate) fn memory_size_cache(&self) -> &OnceLock<u64> {
        &self.0.memory_size
    }

    /// True when this is the nil value.
    pub fn is_nil(&self) -> bool {
        self.tag() == tag::NIL
    }

    /// Body bytes after the tag.
    fn body(&self) -> &[u8] {
        &self.0.encoding[1..]
    }

    /// The VLQ count of a counted type (Blob, String, BigInt length, Vector, List, Map, Set,
    /// Index, record, extension value); 0 for others.
    pub fn count(&self) -> u64 {
        match self.kind() {
            Kind::Blob
            | Kind::String
            | Kind::Vector
            | Kind::List
            | Kind::Map
            | Kind::Set
            | Kind::Index
            | Kind::Record(_)
            | Kind::Extension(_) => self.header_vlq().0,
            _ => 0,
        }
    }

    /// The VLQ right after the tag and the position after it.
    fn header_vlq(&self) -> (u64, usize) {
        match vlq::read_vlq(&self.0.encoding, 1, 0) {
            Ok((v, n)) => (v, 1 + n),
            Err(_) => (0, 1),
        }
    }

    /// The value of a Long (`10`–`18`).
    pub fn as_long(&self) -> Option<i64> {
        if self.kind() != Kind::Long {
            return None;
        }
        let body = self.body();
        if body.is_empty() {
            return Some(0);
        }
        let mut v: i64 = if body[0] & 0x80 != 0 { -1 } else { 0 };
        for b in body {
            v = (v << 8) | i64::from(*b);
        }
        Some(v)
    }

    /// Two's-complement big-endian bytes of an Integer (Long or BigInt).
    pub fn integer_bytes(&self) -> Option<&[u8]> {
        match self.kind() {
            Kind::Long => Some(self.body()),
            Kind::BigInt => {
                let (_, pos) = self.header_vlq();
                Some(&self.0.encoding[pos..])
            }
            _ => None,
        }
    }

    /// The value of a Double.
    pub fn as_double(&self) -> Option<f64> {
        if self.kind() != Kind::Double {
            return None;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.body()[..8]);
        Some(f64::from_bits(u64::from_be_bytes(b)))
    }

    /// The value of a Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.tag() {
            tag::TRUE => Some(true),
            tag::FALSE => Some(false),
            _ => None,
        }
    }

    /// The code point of a Character.
    pub fn as_char_code(&self) -> Option<u32> {
        if self.kind() != Kind::Char {
            return None;
        }
        Some(
            self.body()
                .iter()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
        )
    }

    /// The name bytes of a Symbol or Keyword.
    pub fn name_bytes(&self) -> Option<&[u8]> {
        match self.kind() {
            Kind::Symbol | Kind::Keyword => Some(&self.0.encoding[2..]),
            _ => None,
        }
    }

    /// The number of an extension value (Address for `ea`).
    pub fn extension_value(&self) -> Option<u64> {
        match self.kind() {
            Kind::Extension(_) => Some(self.header_vlq().0),
            _ => None,
        }
    }

    /// The bytes of a flat Blob or String (count ≤ 4096); `None` for trees and other types.
    pub fn flat_bytes(&self) -> Option<&[u8]> {
        match self.kind() {
            Kind::Blob | Kind::String => {
                let (n, pos) = self.header_vlq();
                if n <= CHUNK_BYTES {
                    Some(&self.0.encoding[pos..])
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The flat payload as shared bytes (zero-copy).
    pub fn flat_bytes_shared(&self) -> Option<Bytes> {
        match self.kind() {
            Kind::Blob | Kind::String => {
                let (n, pos) = self.header_vlq();
                if n <= CHUNK_BYTES {
                    Some(self.0.encoding.slice(pos..))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Map/Set tree: (shift, mask). `None` for leaves and other types.
    pub fn hash_tree_header(&self) -> Option<(u8, u16)> {
        match self.kind() {
            Kind::Map | Kind::Set => {
                let (n, pos) = self.header_vlq();
                if n <= HASH_LEAF_MAX {
                    return None;
                }
                let e = &self.0.encoding;
                Some((e[pos], u16::from_be_bytes([e[pos + 1], e[pos + 2]])))
            }
            _ => None,
        }
    }

    /// Index node layout: (has entry, depth, mask) for count ≥ 2; `None` otherwise.
    /// Depth and mask are read after the entry slots.
    pub fn index_header(&self) -> Option<(bool, u8, u16)> {
        if self.kind() != Kind::Index {
            return None;
        }
        let (n, pos) = self.header_vlq();
        if n < 2 {
            return None;
        }
        let e = &self.0.encoding;
        let has_entry = e[pos] == 0x80;
        let mut p = pos + 1;
        if has_entry {
            p += self.0.refs[0].slot_len() + self.0.refs[1].slot_len();
        }
        Some((has_entry, e[p], u16::from_be_bytes([e[p + 1], e[p + 2]])))
    }

    /// SignedData: the 32-byte public key (`None` for the short `91` form).
    pub fn signed_public_key(&self) -> Option<&[u8]> {
        (self.tag() == tag::SIGNED).then(|| &self.0.encoding[1..33])
    }

    /// SignedData: the 64-byte signature.
    pub fn signed_signature(&self) -> Option<&[u8]> {
        match self.tag() {
            tag::SIGNED => Some(&self.0.encoding[33..97]),
            tag::SIGNED_SHORT => Some(&self.0.encoding[1..65]),
            _ => None,
        }
    }

    /// SignedData: the signed message (the value slot's bytes as encoded).
    pub fn signed_message(&self) -> Option<&[u8]> {
        match self.tag() {
            tag::SIGNED => Some(&self.0.encoding[97..]),
            tag::SIGNED_SHORT => Some(&self.0.encoding[65..]),
            _ => None,
        }
    }
}

impl PartialEq for Cell {
    /// Cells are equal when their encodings are equal (equivalently, their Value IDs).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.encoding() == other.encoding()
    }
}

impl Eq for Cell {}

impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.encoding().hash(state)
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = self.encoding();
        if enc.len() <= 48 {
            write!(f, "Cell({})", hex::encode(enc))
        } else {
            write!(
                f,
                "Cell({}… {} bytes, id {})",
                hex::encode(&enc[..32]),
                enc.len(),
                self.id()
            )
        }
    }
}

/// Writes an encoding piece by piece: raw bytes and child slots.
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
    refs: Vec<Ref>,
}

impl Encoder {
    /// Starts an encoding with a tag.
    pub fn new(t: u8) -> Encoder {
        let mut buf = Vec::with_capacity(64);
        buf.push(t);
        Encoder {
            buf,
            refs: Vec::new(),
        }
    }
    /// Appends one raw byte.
    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.buf.push(b);
        self
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    /// Appends a VLQ count.
    pub fn vlq(&mut self, v: u64) -> &mut Self {
        vlq::write_vlq(&mut self.buf, v);
        self
    }
    /// Appends a child slot.
    pub fn slot(&mut self, r: Ref) -> &mut Self {
        r.write_slot(&mut self.buf);
        self.refs.push(r);
        self
    }
    /// Appends a child cell as a slot (inline if small, ref otherwise).
    pub fn child(&mut self, c: Cell) -> &mut Self {
        self.slot(Ref::to(c))
    }
    /// Appends a child's full encoding inline whatever its size (Syntax metadata).
    pub fn inline_full(&mut self, c: Cell) -> &mut Self {
        self.buf.extend_from_slice(c.encoding());
        self.refs.push(Ref::Embedded(c));
        self
    }
    /// Finishes the cell.
    pub fn finish(&mut self) -> Cell {
        let buf = std::mem::take(&mut self.buf);
        let refs = std::mem::take(&mut self.refs);
        Cell::from_parts(Bytes::from(buf), refs)
    }
}
