//! Peer-protocol messages (protocol.md §2–§7): frames, message types inferred from the payload,
//! request IDs, Result records, payload builders and the multi-cell body encoders of §3.1.
//! Pure: no I/O. Every malformed input is a typed error.

use crate::body::Body;
use crate::cell::{tag, Cell, Kind, Ref, Resolver};
use crate::error::DecodeError;
use crate::id::ValueId;
use crate::vlq::{vlq_len, write_vlq};
use std::collections::HashSet;

/// Largest frame body the protocol allows (`MAX_MESSAGE_LENGTH`, protocol.md §2.2).
pub const FRAME_BYTES_MAX: usize = 50_000_000;
/// Recommended frame limit for connections that are not verified peers (protocol.md §2.2).
pub const CLIENT_FRAME_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most hashes one DATA_REQUEST may carry (`MISSING_LIMIT`, protocol.md §7.5).
pub const DATA_REQUEST_HASHES_MAX: usize = 254;
/// Budget for ordinary responses (protocol.md §3.1): branches beyond it are left out.
pub const RESPONSE_BYTES_BUDGET: usize = 8 * 1024 * 1024;

/// Why a frame header was refused (each closes the connection, protocol.md §2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first length byte is `0x80` (a non-minimal VLQ).
    #[error("frame length starts with a zero group (0x80)")]
    LeadingZero,
    /// The declared length is 0.
    #[error("frame length is 0")]
    Empty,
    /// The declared length (or the part of it read so far) exceeds the limit.
    #[error("frame length {declared} exceeds the limit of {limit} bytes")]
    TooLong {
        /// The length, or a lower bound of it when the prefix was cut short.
        declared: u64,
        /// The limit in force.
        limit: usize,
    },
}

/// Reads a frame header at the start of `buf`: `Ok(None)` when more bytes are needed, else
/// `(prefix length, body length)`. The limit is applied while the prefix is still incomplete.
pub fn frame_header(buf: &[u8], limit: usize) -> Result<Option<(usize, usize)>, FrameError> {
    let limit = limit.min(FRAME_BYTES_MAX);
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == 0x80 {
        return Err(FrameError::LeadingZero);
    }
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        value = (value << 7) | u64::from(b & 0x7f);
        // With the continuation bit set, the final length is at least `value << 7`: reject as
        // soon as even that lower bound passes the limit (no waiting for more prefix bytes).
        let lower_bound = if b & 0x80 == 0 { value } else { value << 7 };
        if lower_bound > limit as u64 {
            return Err(FrameError::TooLong {
                declared: lower_bound,
                limit,
            });
        }
        if b & 0x80 == 0 {
            if value == 0 {
                return Err(FrameError::Empty);
            }
            return Ok(Some((i + 1, value as usize)));
        }
    }
    Ok(None)
}

/// Splits the first complete frame off `buf`: `Ok(Some((body range start, end)))` or `None`.
pub fn next_frame(buf: &[u8], limit: usize) -> Result<Option<std::ops::Range<usize>>, FrameError> {
    match frame_header(buf, limit)? {
        Some((p, n)) if buf.len() >= p + n => Ok(Some(p..p + n)),
        _ => Ok(None),
    }
}

/// A frame: the minimal VLQ length of `body`, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + vlq_len(body.len() as u64));
    write_vlq(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// The message types (protocol.md §4.2; the numeric codes never travel on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `[:CH id signed-challenge]`.
    Challenge,
    /// `[:DR id hash+]`.
    DataRequest,
    /// `[:Q id form address?]`.
    Query,
    /// `[:TX id signed-transaction]`.
    Transact,
    /// A Result record (`0xDD`).
    Result,
    /// A Belief record or SignedData.
    Belief,
    /// `[:BYE reason?]`.
    Goodbye,
    /// `[:SR id]`.
    Status,
    /// Anything else.
    Unknown,
    /// `[:LV path value]`.
    LatticeValue,
    /// `[:LQ id path?]`.
    LatticeQuery,
    /// `[:PING id]`.
    Ping,
}

impl MessageType {
    /// Infers the type from the payload (protocol.md §4.1).
    pub fn of(payload: &Cell) -> MessageType {
        match payload.tag() {
            0xd4 | tag::SIGNED => return MessageType::Belief,
            tag::RESULT => return MessageType::Result,
            _ => {}
        }
        if payload.kind() != Kind::Vector || payload.count() == 0 {
            return MessageType::Unknown;
        }
        let Some(first) = element(payload, 0) else {
            return MessageType::Unknown;
        };
        if first.kind() != Kind::Keyword {
            return MessageType::Unknown;
        }
        match first.name_bytes() {
            Some(b"SR") => MessageType::Status,
            Some(b"Q") => MessageType::Query,
            Some(b"TX") => MessageType::Transact,
            Some(b"DR") => MessageType::DataRequest,
            Some(b"LV") => MessageType::LatticeValue,
            Some(b"LQ") => MessageType::LatticeQuery,
            Some(b"PING") => MessageType::Ping,
            Some(b"CH") => MessageType::Challenge,
            Some(b"BYE") => MessageType::Goodbye,
            _ => MessageType::Unknown,
        }
    }

    /// The internal numeric code (protocol.md §4.2).
    pub fn code(self) -> u8 {
        match self {
            MessageType::Challenge => 1,
            MessageType::DataRequest => 5,
            MessageType::Query => 6,
            MessageType::Transact => 7,
            MessageType::Result => 8,
            MessageType::Belief => 9,
            MessageType::Goodbye => 11,
            MessageType::Status => 12,
            MessageType::Unknown => 13,
            MessageType::LatticeValue => 14,
            MessageType::LatticeQuery => 15,
            MessageType::Ping => 16,
        }
    }

    /// The upper-case name used in the vectors and logs (`DATA_REQUEST`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Challenge => "CHALLENGE",
            MessageType::DataRequest => "DATA_REQUEST",
            MessageType::Query => "QUERY",
            MessageType::Transact => "TRANSACT",
            MessageType::Result => "RESULT",
            MessageType::Belief => "BELIEF",
            MessageType::Goodbye => "GOODBYE",
            MessageType::Status => "STATUS",
            MessageType::Unknown => "UNKNOWN",
            MessageType::LatticeValue => "LATTICE_VALUE",
            MessageType::LatticeQuery => "LATTICE_QUERY",
            MessageType::Ping => "PING",
        }
    }

    /// Whether messages of this type carry a request ID at element 1 (protocol.md §5).
    pub fn has_id(self) -> bool {
        matches!(
            self,
            MessageType::Status
                | MessageType::Query
                | MessageType::Transact
                | MessageType::DataRequest
                | MessageType::LatticeQuery
                | MessageType::Ping
                | MessageType::Challenge
        )
    }
}

/// Element `i` of a vector payload whose cells are in memory (the top cell of a message and
/// its attached children); `None` when absent or not resolvable without a store.
pub fn element(v: &Cell, i: u64) -> Option<Cell> {
    if v.kind() != Kind::Vector || i >= v.count() {
        return None;
    }
    crate::value::vector_get(v, i, &crate::cell::NoResolver)
        .ok()
        .flatten()
}

/// Field `i` of a record (e.g. a Result): the record's refs are its fields in order.
fn record_field(r: &Cell, i: usize) -> Option<Cell> {
    r.refs().get(i).and_then(|x| x.cell().cloned())
}

/// Why a body is not a usable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The body is not a valid multi-cell encoding.
    #[error("bad message format: {0}")]
    Format(#[from] DecodeError),
}

/// A decoded message: the body (payload + attached cells) and its inferred type.
#[derive(Debug, Clone)]
pub struct Message {
    /// The decoded body; `body.top` is the payload.
    pub body: Body,
    /// The type inferred from the payload.
    pub kind: MessageType,
}

impl Message {
    /// Decodes a frame body (protocol.md §3). References to cells not attached stay
    /// unresolved ([`Body::missing`]): the receiver may hold them.
    pub fn decode(body: impl Into<bytes::Bytes>) -> Result<Message, MessageError> {
        let body = Body::decode(body)?;
        let kind = MessageType::of(&body.top);
        Ok(Message { body, kind })
    }

    /// The payload.
    pub fn payload(&self) -> &Cell {
        &self.body.top
    }

    /// The request ID (protocol.md §5): element 1 of a request vector when it is a Long, or
    /// the `:id` field of a Result; `None` otherwise.
    pub fn id(&self) -> Option<i64> {
        match self.kind {
            MessageType::Result => record_field(&self.body.top, 0).and_then(|c| c.as_long()),
            k if k.has_id() => element(&self.body.top, 1).and_then(|c| long_value(&c)),
            _ => None,
        }
    }

    /// Element `i` of the payload vector (`None` past the end or when not in memory).
    pub fn arg(&self, i: u64) -> Option<Cell> {
        element(&self.body.top, i)
    }

    /// The number of elements of the payload vector (0 for other payloads).
    pub fn arg_count(&self) -> u64 {
        if self.body.top.kind() == Kind::Vector {
            self.body.top.count()
        } else {
            0
        }
    }
}

/// A Long's value: only a cell of kind Long (not a big integer) counts as an ID.
fn long_value(c: &Cell) -> Option<i64> {
    if c.kind() == Kind::Long {
        c.as_long()
    } else {
        None
    }
}

fn kw(name: &str) -> Cell {
    // Names here are fixed ASCII words well under the 128-byte limit.
    Cell::keyword(name).unwrap_or_else(|_| Cell::nil())
}

/// `[:PING id]`.
pub fn ping(id: i64) -> Cell {
    Cell::vector(vec![kw("PING"), Cell::long(id)])
}

/// `[:SR id]`.
pub fn status(id: i64) -> Cell {
    Cell::vector(vec![kw("SR"), Cell::long(id)])
}

/// `[:Q id form address]` (address `nil` when none: the Java client always sends 4 elements).
pub fn query(id: i64, form: Cell, address: Option<u64>) -> Cell {
    Cell::vector(vec![
        kw("Q"),
        Cell::long(id),
        form,
        address.map_or_else(Cell::nil, Cell::address),
    ])
}

/// `[:DR id h1 ... hn]`, each hash a 32-byte Blob.
pub fn data_request(id: i64, hashes: &[ValueId]) -> Cell {
    let mut v = Vec::with_capacity(hashes.len() + 2);
    v.push(kw("DR"));
    v.push(Cell::long(id));
    v.extend(hashes.iter().map(|h| Cell::blob(h.as_bytes())));
    Cell::vector(v)
}

/// `[:LQ id path]`.
pub fn lattice_query(id: i64, path: &[Cell]) -> Cell {
    Cell::vector(vec![kw("LQ"), Cell::long(id), Cell::vector(path.to_vec())])
}

/// `[:LV path value]`, or with an acknowledgement ID `[:LV path value id]` (our extension:
/// the receiver answers a RESULT once the merge is durable or refused; see ARCHITECTURE.md).
pub fn lattice_value(path: &[Cell], value: Cell, ack_id: Option<i64>) -> Cell {
    let mut v = vec![kw("LV"), Cell::vector(path.to_vec()), value];
    if let Some(id) = ack_id {
        v.push(Cell::long(id));
    }
    Cell::vector(v)
}

/// `[:CH id signed]`.
pub fn challenge(id: i64, signed: Cell) -> Cell {
    Cell::vector(vec![kw("CH"), Cell::long(id), signed])
}

/// `[:BYE]` or `[:BYE reason]`.
pub fn goodbye(reason: Option<Cell>) -> Cell {
    let mut v = vec![kw("BYE")];
    v.extend(reason);
    Cell::vector(v)
}

/// A Result record (protocol.md §6): `DD 05 id result error log info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    /// The request ID answered (`nil` → `None`).
    pub id: Option<i64>,
    /// The value, or the error message for errors.
    pub value: Cell,
    /// The error code keyword (`None`: success).
    pub error: Option<Cell>,
    /// The `:log` field (nil or a vector).
    pub log: Cell,
    /// The `:info` field (nil or a hash map).
    pub info: Cell,
}

impl ResultRecord {
    /// A success `{:id id, :result value}`.
    pub fn ok(id: i64, value: Cell) -> ResultRecord {
        ResultRecord {
            id: Some(id),
            value,
            error: None,
            log: Cell::nil(),
            info: Cell::nil(),
        }
    }

    /// An error with code `code` (keyword name, e.g. `FORMAT`), a message String and
    /// `:info {:source source}` (e.g. `PEER`).
    pub fn error(id: Option<i64>, code: &str, message: &str, source: &str) -> ResultRecord {
        ResultRecord {
            id,
            value: Cell::string(message),
            error: Some(Cell::keyword(code).unwrap_or_else(|_| kw("EXCEPTION"))),
            log: Cell::nil(),
            info: Cell::map(vec![(kw("source"), kw(source))]),
        }
    }

    /// The record cell.
    pub fn to_cell(&self) -> Cell {
        Cell::result_record(
            self.id.map_or_else(Cell::nil, Cell::long),
            self.value.clone(),
            self.error.clone().unwrap_or_else(Cell::nil),
            self.log.clone(),
            self.info.clone(),
        )
    }

    /// Reads a Result record: `None` unless the cell is a valid Result (5 fields, `:id` nil
    /// or Long, `:error` nil or a keyword, `:log` nil or a vector, `:info` nil or a map).
    /// Fields that are branches must be attached (they are, in a decoded message).
    pub fn parse(cell: &Cell) -> Option<ResultRecord> {
        if cell.tag() != tag::RESULT || cell.refs().len() != 5 {
            return None;
        }
        let field = |i| record_field(cell, i);
        let id = field(0)?;
        let id = if id.is_nil() {
            None
        } else {
            Some(long_value(&id)?)
        };
        let error = field(2)?;
        let error = match error.kind() {
            Kind::Nil => None,
            Kind::Keyword => Some(error),
            _ => return None,
        };
        let log = field(3)?;
        let info = field(4)?;
        if !matches!(log.kind(), Kind::Nil | Kind::Vector)
            || !matches!(info.kind(), Kind::Nil | Kind::Map)
        {
            return None;
        }
        Some(ResultRecord {
            id,
            value: field(1)?,
            error,
            log,
            info,
        })
    }

    /// The error code's name (`FORMAT`), if this is an error.
    pub fn error_code(&self) -> Option<String> {
        self.error
            .as_ref()
            .and_then(|e| e.name_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// A complete body (protocol.md §3.1): `top` and every branch reachable from it in depth-first
/// pre-order, read through `resolver` where not in memory, up to `budget` bytes in all: a cell
/// that would pass the budget is left out with its subtree (the receiver fetches it), and so is
/// a cell that cannot be resolved. Returns the body and whether anything was left out.
pub fn encode_complete(top: &Cell, resolver: &dyn Resolver, budget: usize) -> (Vec<u8>, bool) {
    let mut out = top.encoding().to_vec();
    let mut omitted = false;
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut stack: Vec<(Cell, usize)> = vec![(top.clone(), 0)];
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
                if !seen.insert(r.id()) {
                    continue;
                }
                let Ok(c) = r.fetch(resolver) else {
                    omitted = true;
                    continue;
                };
                let cost = c.len() + vlq_len(c.len() as u64);
                if out.len() + cost > budget {
                    omitted = true;
                    continue;
                }
                write_vlq(&mut out, c.len() as u64);
                out.extend_from_slice(c.encoding());
                stack.push((c, 0));
            }
        }
    }
    (out, omitted)
}

/// The body of a DATA_REQUEST answer (protocol.md §7.5, §3.1): the Result `{:id id, :result
/// [c1 ... cn]}` (nil for cells not held) with the vector's own branch cells and each
/// non-embedded `ci` attached, but not the children of the `ci`.
pub fn encode_data_result(id: i64, cells: &[Option<Cell>]) -> Vec<u8> {
    let elements: Vec<Cell> = cells
        .iter()
        .map(|c| c.clone().unwrap_or_else(Cell::nil))
        .collect();
    let wanted: HashSet<ValueId> = elements
        .iter()
        .filter(|c| !c.is_nil())
        .map(|c| *c.id())
        .collect();
    let top = ResultRecord::ok(id, Cell::vector(elements)).to_cell();
    let mut out = top.encoding().to_vec();
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut stack = vec![top];
    while let Some(cell) = stack.pop() {
        for r in cell.refs() {
            let Some(c) = r.cell() else { continue };
            let is_element = !c.is_nil() && wanted.contains(c.id());
            if r.is_branch() {
                if !seen.insert(r.id()) {
                    continue;
                }
                write_vlq(&mut out, c.len() as u64);
                out.extend_from_slice(c.encoding());
            }
            if !is_element && !c.refs().is_empty() {
                stack.push(c.clone());
            }
        }
    }
    out
}

/// A delta body (protocol.md §3.1, §7.7): `top` with the branches reachable from it that
/// `known` does not vouch for (a known branch is skipped with its whole subtree), read through
/// `resolver`, up to `budget` bytes. Returns the body and the IDs of the cells attached.
pub fn encode_delta(
    top: &Cell,
    resolver: &dyn Resolver,
    known: &dyn Fn(&ValueId) -> bool,
    budget: usize,
) -> (Vec<u8>, Vec<ValueId>) {
    let mut out = top.encoding().to_vec();
    let mut sent = Vec::new();
    let mut seen: HashSet<ValueId> = HashSet::new();
    let mut stack = vec![top.clone()];
    while let Some(cell) = stack.pop() {
        for r in cell.refs() {
            match r {
                Ref::Embedded(c) => {
                    if !c.refs().is_empty() {
                        stack.push(c.clone());
                    }
                }
                Ref::Branch(_) => {
                    let id = r.id();
                    if known(&id) || !seen.insert(id) {
                        continue;
                    }
                    let Ok(c) = r.fetch(resolver) else { continue };
                    let cost = c.len() + vlq_len(c.len() as u64);
                    if out.len() + cost > budget {
                        continue;
                    }
                    write_vlq(&mut out, c.len() as u64);
                    out.extend_from_slice(c.encoding());
                    sent.push(id);
                    stack.push(c);
                }
            }
        }
    }
    (out, sent)
}
