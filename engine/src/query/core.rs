//! What the built-in functions (`builtins/`, query.md §5) share: arity checks, argument casts and
//! their Convex error messages, and the collection semantics (lookup, sequence access, assoc,
//! conj, numbers) that several functions build on.

use etch_formats::value::vector_get;
use etch_formats::{Cell, Kind};
use num_bigint::BigInt;

use super::{
    limit_error, print_cell, type_name, value_type_name, EvalError, Evaluator, Res, Value,
    RESULT_SIZE_MAX_BYTES,
};

pub(crate) fn arity_exact(name: &str, n: usize, m: usize) -> EvalError {
    EvalError::new(
        "ARITY",
        format!("{name} requires arity {n} but called with: {m}"),
    )
}

pub(crate) fn check_exact(name: &str, n: usize, args: &[Value]) -> Res<()> {
    if args.len() != n {
        return Err(arity_exact(name, n, args.len()));
    }
    Ok(())
}

pub(crate) fn check_range(name: &str, min: usize, max: usize, args: &[Value]) -> Res<()> {
    let m = args.len();
    if m < min {
        return Err(EvalError::new(
            "ARITY",
            format!("{name} requires minimum arity {min} but called with: {m}"),
        ));
    }
    if m > max {
        return Err(EvalError::new(
            "ARITY",
            format!("{name} requires maximum arity {max} but called with: {m}"),
        ));
    }
    Ok(())
}

pub(crate) fn cast_pos(p: usize, v: &Value, to: &str) -> EvalError {
    EvalError::new(
        "CAST",
        format!(
            "Can't convert argument at position {p} (with type {}) to type {to}",
            value_type_name(v)
        ),
    )
}

pub(crate) fn cast_val(c: &Cell, to: &str) -> EvalError {
    EvalError::new(
        "CAST",
        format!("Can't convert value of type {} to type {to}", type_name(c)),
    )
}

pub(crate) fn bounds(i: i64) -> EvalError {
    EvalError::new("BOUNDS", format!("Index: {i}"))
}

/// The data cell of argument `p` (1-based); functions are not data (`:CAST` to `to`).
pub(crate) fn data(args: &[Value], p: usize, to: &str) -> Res<Cell> {
    match &args[p - 1] {
        Value::Data(c) => Ok(c.clone()),
        v => Err(cast_pos(p, v, to)),
    }
}

/// An index argument: an Integer that fits a Long (`:CAST` position `p` to `Integer`).
pub(crate) fn index_arg(c: &Cell, p: usize) -> Res<i64> {
    c.as_long()
        .ok_or_else(|| cast_pos(p, &Value::Data(c.clone()), "Integer"))
}

pub(crate) fn is_seq(c: &Cell) -> bool {
    matches!(c.kind(), Kind::Vector | Kind::List)
}

pub(crate) fn is_hash(c: &Cell) -> bool {
    matches!(c.kind(), Kind::Map | Kind::Set)
}

pub(crate) fn is_coll(c: &Cell) -> bool {
    matches!(
        c.kind(),
        Kind::Vector | Kind::List | Kind::Map | Kind::Set | Kind::Index
    )
}

/// Charges the size budget for a cell about to be built from `parts`.
pub(crate) fn check_size(parts: &[Cell]) -> Res<()> {
    let total: u64 = parts.iter().map(|c| c.len() as u64).sum();
    if total > RESULT_SIZE_MAX_BYTES {
        return Err(limit_error());
    }
    Ok(())
}

/// The value under `key` in a hash Map (a Set: the member itself), or `None`: one path from the
/// root (`etch_formats::coll`), one step.
pub(crate) fn hash_lookup(ev: &mut Evaluator, coll: &Cell, key: &Cell) -> Res<Option<Cell>> {
    ev.step(1)?;
    match etch_formats::coll::hash_get(coll, key.id(), ev.resolver())? {
        Some((_, v)) => Ok(Some(v.fetch(ev.resolver())?)),
        None => Ok(None),
    }
}

/// The value under `key` in an Index, or `None`: one path from the root by the key's identity
/// (`etch_formats::coll`), so a lookup in an Index of millions of entries reads a few cells;
/// the key found there must equal `key` itself (two long keys may share an identity).
pub(crate) fn index_lookup(ev: &mut Evaluator, index: &Cell, key: &Cell) -> Res<Option<Cell>> {
    ev.step(1)?;
    let r = ev.resolver();
    let Some(kid) = etch_formats::coll::key_id(key, r)? else {
        return Ok(None);
    };
    match etch_formats::coll::index_get(index, &kid, r)? {
        Some((k, v)) if k == *key => Ok(Some(v.fetch(r)?)),
        _ => Ok(None),
    }
}

/// Element `i` of a sequence (Vector, List; Maps give `[k v]`, Sets their members), or `None`
/// when out of range. Vectors and Lists descend one path; Maps and Sets walk.
pub(crate) fn seq_get(ev: &mut Evaluator, c: &Cell, i: i64) -> Res<Option<Cell>> {
    if is_countable(c) {
        let items = countable_elements(ev, c)?.unwrap_or_default();
        return Ok(usize::try_from(i).ok().and_then(|i| items.get(i).cloned()));
    }
    let n = c.count();
    if i < 0 || i as u64 >= n {
        return Ok(None);
    }
    let i = i as u64;
    match c.kind() {
        Kind::Vector => Ok(vector_get(c, i, ev.resolver())?),
        Kind::List => Ok(vector_get(c, n - 1 - i, ev.resolver())?),
        Kind::Map | Kind::Set => {
            let entries = ev.entries(c)?;
            Ok(entries.into_iter().nth(i as usize).map(|(k, v)| {
                if c.kind() == Kind::Map {
                    Cell::vector(vec![k, v])
                } else {
                    k
                }
            }))
        }
        _ => Ok(None),
    }
}

/// The elements of a sequence-like value: Vector, List, Map and Index (`[k v]` entries), Set;
/// the countables (Blob: its bytes as Longs; String, Keyword, Symbol: their characters);
/// nil → [].
pub(crate) fn seq_elements(ev: &mut Evaluator, c: &Cell, p: usize, to: &str) -> Res<Vec<Cell>> {
    match c.kind() {
        Kind::Nil => Ok(Vec::new()),
        Kind::Vector | Kind::List => ev.elements(c),
        Kind::Map => Ok(ev
            .entries(c)?
            .into_iter()
            .map(|(k, v)| Cell::vector(vec![k, v]))
            .collect()),
        Kind::Set => Ok(ev.entries(c)?.into_iter().map(|(k, _)| k).collect()),
        Kind::Index => {
            ev.step(c.count())?;
            let mut out = Vec::new();
            etch_formats::value::for_each_index_entry(c, ev.resolver(), &mut |k, v| {
                out.push(Cell::vector(vec![k, v]));
                Ok(())
            })?;
            Ok(out)
        }
        _ => match countable_elements(ev, c)? {
            Some(items) => Ok(items),
            None => Err(cast_pos(p, &Value::Data(c.clone()), to)),
        },
    }
}

/// The elements of a countable that is not a collection: a Blob's bytes (Longs), the
/// characters of a String, Keyword or Symbol name; `None` for anything else.
pub(crate) fn countable_elements(ev: &mut Evaluator, c: &Cell) -> Res<Option<Vec<Cell>>> {
    let text = |b: &[u8]| -> Vec<Cell> {
        String::from_utf8_lossy(b)
            .chars()
            .filter_map(|ch| Cell::char(u32::from(ch)))
            .collect()
    };
    Ok(match c.kind() {
        Kind::Blob | Kind::String => {
            if c.count() > RESULT_SIZE_MAX_BYTES / 16 {
                return Err(limit_error());
            }
            ev.step(c.count())?;
            let b = etch_formats::value::blob_bytes(c, ev.resolver())?;
            Some(if c.kind() == Kind::Blob {
                b.iter().map(|x| Cell::long(i64::from(*x))).collect()
            } else {
                text(&b)
            })
        }
        Kind::Keyword | Kind::Symbol => c.name_bytes().map(text),
        _ => None,
    })
}

/// An integer's decimal digits.
pub(crate) fn print_num(c: &Cell) -> String {
    c.to_bigint().map_or_else(String::new, |i| i.to_string())
}

/// Whether `c` is a countable that is not a collection (see [`countable_elements`]).
pub(crate) fn is_countable(c: &Cell) -> bool {
    matches!(
        c.kind(),
        Kind::Blob | Kind::String | Kind::Keyword | Kind::Symbol
    )
}

/// `(get coll k)` or, with `nf`, `(get coll k nf)`: a Set gives true for a member, and for
/// anything else `nf` when given, false when not (Convex).
pub(crate) fn get_or(ev: &mut Evaluator, coll: &Cell, k: &Cell, nf: Option<Cell>) -> Res<Cell> {
    match (coll.kind(), nf) {
        (Kind::Set, Some(nf)) => Ok(match hash_lookup(ev, coll, k)? {
            Some(_) => Cell::bool(true),
            None => nf,
        }),
        (_, nf) => get(ev, coll, k, nf.unwrap_or_else(Cell::nil)),
    }
}

/// `(get coll k nf)`.
pub(crate) fn get(ev: &mut Evaluator, coll: &Cell, k: &Cell, nf: Cell) -> Res<Cell> {
    match coll.kind() {
        Kind::Nil => Ok(nf),
        Kind::Map => Ok(hash_lookup(ev, coll, k)?.unwrap_or(nf)),
        Kind::Set => Ok(Cell::bool(hash_lookup(ev, coll, k)?.is_some())),
        Kind::Vector | Kind::List => match k.as_long() {
            Some(i) => Ok(seq_get(ev, coll, i)?.unwrap_or(nf)),
            None => Ok(nf),
        },
        Kind::Index => Ok(index_lookup(ev, coll, k)?.unwrap_or(nf)),
        _ => Err(cast_val(coll, "DataStructure")),
    }
}

pub(crate) fn contains_key(ev: &mut Evaluator, coll: &Cell, k: &Cell) -> Res<bool> {
    match coll.kind() {
        Kind::Map | Kind::Set => Ok(hash_lookup(ev, coll, k)?.is_some()),
        Kind::Vector | Kind::List => {
            Ok(matches!(k.as_long(), Some(i) if i >= 0 && (i as u64) < coll.count()))
        }
        Kind::Index => Ok(index_lookup(ev, coll, k)?.is_some()),
        _ => Ok(false),
    }
}

/// The entries of an Index, in key order, one step each.
pub(crate) fn index_entries(ev: &mut Evaluator, c: &Cell) -> Res<Vec<(Cell, Cell)>> {
    ev.step(c.count())?;
    let mut out = Vec::new();
    etch_formats::value::for_each_index_entry(c, ev.resolver(), &mut |k, v| {
        out.push((k, v));
        Ok(())
    })?;
    Ok(out)
}

/// An Index of `entries` (a later entry replaces an earlier one with the same key); a key that
/// is not blob-like is `:ARGUMENT`, as Convex says it.
pub(crate) fn index_of(entries: Vec<(Cell, Cell)>) -> Res<Cell> {
    let bad = entries
        .iter()
        .find(|(k, _)| etch_formats::shape::index_key_hex_len(k).is_none());
    if let Some((k, _)) = bad {
        return Err(EvalError::new(
            "ARGUMENT",
            format!("Cannot have a key of Type {} in Index", type_name(k)),
        ));
    }
    Cell::index(entries).map_err(|e| EvalError::new("ARGUMENT", e.to_string()))
}

/// Rebuilds a sequence of the same kind as `like` (List or otherwise Vector).
pub(crate) fn same_seq(like: &Cell, items: Vec<Cell>) -> Res<Cell> {
    check_size(&items)?;
    Ok(if like.kind() == Kind::List {
        Cell::list(items)
    } else {
        Cell::vector(items)
    })
}

pub(crate) fn assoc1(ev: &mut Evaluator, coll: Cell, k: Cell, v: Cell) -> Res<Cell> {
    let fail = |k: &Cell| {
        EvalError::new(
            "ARGUMENT",
            format!(
                "Cannot assoc value - invalid (key type {} is invalid or out of bounds)",
                type_name(k)
            ),
        )
    };
    match coll.kind() {
        Kind::Nil => Ok(Cell::map(vec![(k, v)])),
        Kind::Map => {
            let mut entries = ev.entries(&coll)?;
            entries.push((k, v));
            Ok(Cell::map(entries))
        }
        Kind::Index => {
            let mut entries = index_entries(ev, &coll)?;
            entries.push((k, v));
            index_of(entries)
        }
        Kind::Vector | Kind::List => {
            let n = coll.count();
            let i = match k.as_long() {
                Some(i) if i >= 0 && i as u64 <= n => i as usize,
                _ => return Err(fail(&k)),
            };
            let mut items = ev.elements(&coll)?;
            if i == items.len() {
                items.push(v);
            } else {
                items[i] = v;
            }
            same_seq(&coll, items)
        }
        Kind::Set => {
            // Convex: (assoc #{} k true) adds, (assoc s k false) removes.
            let mut items: Vec<Cell> = ev.entries(&coll)?.into_iter().map(|e| e.0).collect();
            match v.as_bool() {
                Some(true) => items.push(k),
                Some(false) => items.retain(|x| *x != k),
                None => return Err(fail(&k)),
            }
            Ok(Cell::set(items))
        }
        _ => Err(fail(&k)),
    }
}

pub(crate) fn conj1(ev: &mut Evaluator, coll: Cell, x: Cell, p: usize) -> Res<Cell> {
    let fail = || {
        EvalError::new(
            "ARGUMENT",
            format!(
                "Failure to 'conj' argument at position {p} (with Type {}). Probably not a legal value for this data structure?",
                type_name(&x)
            ),
        )
    };
    match coll.kind() {
        Kind::Nil => Ok(Cell::vector(vec![x])),
        Kind::Vector => {
            let mut items = ev.elements(&coll)?;
            items.push(x);
            same_seq(&coll, items)
        }
        Kind::List => {
            let mut items = ev.elements(&coll)?;
            items.insert(0, x);
            same_seq(&coll, items)
        }
        Kind::Set => {
            let mut items: Vec<Cell> = ev.entries(&coll)?.into_iter().map(|e| e.0).collect();
            items.push(x);
            Ok(Cell::set(items))
        }
        Kind::Map => {
            if x.kind() != Kind::Vector || x.count() != 2 {
                return Err(fail());
            }
            let kv = ev.elements(&x)?;
            let mut entries = ev.entries(&coll)?;
            entries.push((kv[0].clone(), kv[1].clone()));
            Ok(Cell::map(entries))
        }
        Kind::Index => {
            if x.kind() != Kind::Vector || x.count() != 2 {
                return Err(fail());
            }
            let kv = ev.elements(&x)?;
            let mut entries = index_entries(ev, &coll)?;
            entries.push((kv[0].clone(), kv[1].clone()));
            index_of(entries)
        }
        _ => Err(cast_pos(1, &Value::Data(coll), "DataStructure")),
    }
}

/// A number argument.
#[derive(Clone, Debug)]
pub(crate) enum Num {
    /// An integer (Long or big).
    Int(BigInt),
    /// A Double.
    Dbl(f64),
}

impl Num {
    pub(crate) fn f64(&self) -> f64 {
        match self {
            Num::Int(i) => big_to_f64(i),
            Num::Dbl(d) => *d,
        }
    }
}

pub(crate) fn big_to_f64(i: &BigInt) -> f64 {
    i.to_string().parse::<f64>().unwrap_or(f64::NAN)
}

pub(crate) fn num_arg(args: &[Value], p: usize) -> Res<Num> {
    let v = &args[p - 1];
    if let Value::Data(c) = v {
        if let Some(d) = c.as_double() {
            return Ok(Num::Dbl(d));
        }
        if let Some(i) = c.to_bigint() {
            return Ok(Num::Int(i));
        }
    }
    Err(cast_pos(p, v, "Number"))
}

pub(crate) fn num_cell(n: Num) -> Res<Cell> {
    match n {
        // One NaN: the canonical 0x7ff8000000000000 (Convex's `##NaN`).
        Num::Dbl(d) if d.is_nan() => Ok(Cell::double(f64::NAN)),
        Num::Dbl(d) => Ok(Cell::double(d)),
        Num::Int(i) => Cell::integer(&i).map_err(|_| limit_error()),
    }
}

pub(crate) fn arith(args: &[Value], op: char) -> Res<Num> {
    let nums: Vec<Num> = (1..=args.len())
        .map(|p| num_arg(args, p))
        .collect::<Res<_>>()?;
    let any_double = nums.iter().any(|n| matches!(n, Num::Dbl(_)));
    if op == '/' || any_double {
        let fs: Vec<f64> = nums.iter().map(Num::f64).collect();
        let r = match op {
            '+' => fs.iter().sum(),
            '*' => fs.iter().product(),
            '-' if fs.len() == 1 => -fs[0],
            '-' => fs[1..].iter().fold(fs[0], |a, b| a - b),
            _ if fs.len() == 1 => 1.0 / fs[0],
            _ => fs[1..].iter().fold(fs[0], |a, b| a / b),
        };
        return Ok(Num::Dbl(r));
    }
    let is: Vec<BigInt> = nums
        .into_iter()
        .map(|n| match n {
            Num::Int(i) => i,
            Num::Dbl(_) => BigInt::from(0),
        })
        .collect();
    let r = match op {
        '+' => is.iter().fold(BigInt::from(0), |a, b| a + b),
        '*' => is.iter().fold(BigInt::from(1), |a, b| a * b),
        _ if is.len() == 1 => -is[0].clone(),
        _ => is[1..].iter().fold(is[0].clone(), |a, b| a - b),
    };
    // Bound intermediate growth: an Integer is at most 4096 bytes.
    if r.bits() > 4096 * 8 {
        return Err(limit_error());
    }
    Ok(Num::Int(r))
}

pub(crate) fn cmp_num(a: &Num, b: &Num) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(y)),
        _ => a.f64().partial_cmp(&b.f64()),
    }
}

/// `str`'s rendering of one value.
pub(crate) fn str_part(ev: &mut Evaluator, c: &Cell, out: &mut Vec<u8>) -> Res<()> {
    match c.kind() {
        Kind::String => {
            etch_formats::value::blob_bytes_into(c, ev.resolver(), out)?;
        }
        Kind::Blob => {
            let mut b = Vec::new();
            etch_formats::value::blob_bytes_into(c, ev.resolver(), &mut b)?;
            out.extend_from_slice(hex::encode(b).as_bytes());
        }
        Kind::Nil => out.extend_from_slice(b"nil"),
        // A character is itself in a string (Convex: `(str \a)` is "a").
        _ if c.as_char_code().is_some() => {
            let ch = c
                .as_char_code()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        _ => {
            let limit = (RESULT_SIZE_MAX_BYTES as usize).saturating_sub(out.len());
            let s = print_cell(c, ev.resolver(), limit).map_err(|e| {
                if e.code == "LIMIT" {
                    limit_error()
                } else {
                    e
                }
            })?;
            out.extend_from_slice(s.as_bytes());
        }
    }
    if out.len() as u64 > RESULT_SIZE_MAX_BYTES {
        return Err(limit_error());
    }
    Ok(())
}

pub(crate) fn bool_v(b: bool) -> Res<Value> {
    Ok(Value::Data(Cell::bool(b)))
}

pub(crate) fn data_v(c: Cell) -> Res<Value> {
    Ok(Value::Data(c))
}

/// A step of `(root path)` into SignedData (the owner slots of `:fs`, `:p2p`, `:local`), as
/// LATTICE_QUERY navigates (protocol.md §7.6): `:value`, `:public-key`, `:signature`; any
/// other key gives nil.
pub(crate) fn signed_get(ev: &mut Evaluator, s: &Cell, k: &Cell) -> Res<Cell> {
    ev.step(1)?;
    let name = (k.kind() == Kind::Keyword)
        .then(|| k.name_bytes())
        .flatten();
    Ok(match name {
        Some(b"value") => match s.refs().first() {
            Some(r) => r.fetch(ev.resolver())?,
            None => Cell::nil(),
        },
        Some(b"public-key") => s.signed_public_key().map_or_else(Cell::nil, Cell::blob),
        Some(b"signature") => s.signed_signature().map_or_else(Cell::nil, Cell::blob),
        _ => Cell::nil(),
    })
}
