//! Core functions [std] (`query.md` §5), a first slice, and the collection helpers they share.

use etch_formats::value::vector_get;
use etch_formats::{Cell, Kind, ValueId};
use num_bigint::BigInt;

use super::{
    limit_error, name_of, print_cell, truthy, type_name, value_type_name, EvalError, Evaluator,
    Res, Value, PRINT_TEXT_MAX_BYTES, RESULT_SIZE_MAX_BYTES,
};

/// Every built-in function name.
pub(crate) const BUILTINS: &[&str] = &[
    "count",
    "get",
    "get-in",
    "contains-key?",
    "empty?",
    "keys",
    "values",
    "vals",
    "first",
    "second",
    "last",
    "nth",
    "next",
    "rest",
    "empty",
    "vector",
    "list",
    "hash-set",
    "hash-map",
    "vec",
    "set",
    "assoc",
    "dissoc",
    "conj",
    "cons",
    "concat",
    "into",
    "merge",
    "reverse",
    "str",
    "print",
    "name",
    "+",
    "-",
    "*",
    "/",
    "inc",
    "dec",
    "min",
    "max",
    "=",
    "==",
    "<",
    ">",
    "<=",
    ">=",
    "!=",
    "not",
    "boolean",
    "nil?",
    "boolean?",
    "number?",
    "long?",
    "int?",
    "double?",
    "str?",
    "blob?",
    "keyword?",
    "symbol?",
    "address?",
    "vector?",
    "list?",
    "map?",
    "set?",
    "coll?",
    "countable?",
    "fn?",
    "zero?",
    "disj",
    "assoc-in",
    "keyword",
    "symbol",
    "encoding",
    "hash",
    "value-id",
    "fetch",
    "index",
    "slice",
    "cat",
    "blob",
    "print-full",
    "store",
    "root",
    "merge!",
    "set-root!",
    "lattice-merge",
    "set-owner!",
    "drives",
    "mkdrive",
    "rmdrive",
    "ls",
    "read-file",
    "put",
    "mkdir",
    "rm",
    "stat",
    "pin",
    "unpin",
    "pins",
    "gc",
];

/// The static name of a built-in function, if `name` is one.
pub(crate) fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS.iter().copied().find(|b| *b == name)
}

fn arity_exact(name: &str, n: usize, m: usize) -> EvalError {
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

fn is_seq(c: &Cell) -> bool {
    matches!(c.kind(), Kind::Vector | Kind::List)
}

fn is_hash(c: &Cell) -> bool {
    matches!(c.kind(), Kind::Map | Kind::Set)
}

fn is_coll(c: &Cell) -> bool {
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

/// Looks a key up in a Map or Set hash tree, descending one path: `Some(value)` (Sets: the key).
fn hash_lookup(ev: &mut Evaluator, coll: &Cell, key: &Cell) -> Res<Option<Cell>> {
    let id: ValueId = *key.id();
    let per = if coll.kind() == Kind::Map { 2 } else { 1 };
    let mut node = coll.clone();
    loop {
        ev.step(1)?;
        match node.hash_tree_header() {
            None => {
                for pair in node.refs().chunks(per) {
                    if pair[0].id() == id {
                        let r = pair.get(1).unwrap_or(&pair[0]);
                        return Ok(Some(r.fetch(ev.resolver())?));
                    }
                }
                return Ok(None);
            }
            Some((shift, _)) if shift >= 64 => return Ok(None),
            Some((shift, mask)) => {
                let d = id.digit(shift as usize);
                if mask & (1 << d) == 0 {
                    return Ok(None);
                }
                let idx = (mask & ((1u16 << d) - 1)).count_ones() as usize;
                let Some(child) = node.refs().get(idx) else {
                    return Ok(None);
                };
                node = child.fetch(ev.resolver())?;
            }
        }
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
fn countable_elements(ev: &mut Evaluator, c: &Cell) -> Res<Option<Vec<Cell>>> {
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
fn print_num(c: &Cell) -> String {
    c.to_bigint().map_or_else(String::new, |i| i.to_string())
}

/// Whether `c` is a countable that is not a collection (see [`countable_elements`]).
fn is_countable(c: &Cell) -> bool {
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
        Kind::Index => {
            ev.step(coll.count())?;
            let mut found = None;
            etch_formats::value::for_each_index_entry(coll, ev.resolver(), &mut |ek, ev2| {
                if found.is_none() && ek == *k {
                    found = Some(ev2);
                }
                Ok(())
            })?;
            Ok(found.unwrap_or(nf))
        }
        _ => Err(cast_val(coll, "DataStructure")),
    }
}

fn contains_key(ev: &mut Evaluator, coll: &Cell, k: &Cell) -> Res<bool> {
    match coll.kind() {
        Kind::Map | Kind::Set => Ok(hash_lookup(ev, coll, k)?.is_some()),
        Kind::Vector | Kind::List => {
            Ok(matches!(k.as_long(), Some(i) if i >= 0 && (i as u64) < coll.count()))
        }
        Kind::Index => {
            let marker = Cell::keyword("etch.query/absent").unwrap_or_else(|_| Cell::nil());
            Ok(get(ev, coll, k, marker.clone())? != marker)
        }
        _ => Ok(false),
    }
}

/// The entries of an Index, in key order, one step each.
fn index_entries(ev: &mut Evaluator, c: &Cell) -> Res<Vec<(Cell, Cell)>> {
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
fn index_of(entries: Vec<(Cell, Cell)>) -> Res<Cell> {
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
fn same_seq(like: &Cell, items: Vec<Cell>) -> Res<Cell> {
    check_size(&items)?;
    Ok(if like.kind() == Kind::List {
        Cell::list(items)
    } else {
        Cell::vector(items)
    })
}

fn assoc1(ev: &mut Evaluator, coll: Cell, k: Cell, v: Cell) -> Res<Cell> {
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

fn conj1(ev: &mut Evaluator, coll: Cell, x: Cell, p: usize) -> Res<Cell> {
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

fn big_to_f64(i: &BigInt) -> f64 {
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

fn arith(args: &[Value], op: char) -> Res<Num> {
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

fn cmp_num(a: &Num, b: &Num) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(y)),
        _ => a.f64().partial_cmp(&b.f64()),
    }
}

/// `str`'s rendering of one value.
fn str_part(ev: &mut Evaluator, c: &Cell, out: &mut Vec<u8>) -> Res<()> {
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

fn bool_v(b: bool) -> Res<Value> {
    Ok(Value::Data(Cell::bool(b)))
}

pub(super) fn data_v(c: Cell) -> Res<Value> {
    Ok(Value::Data(c))
}

/// A step of `(root path)` into SignedData (the owner slots of `:fs`, `:p2p`, `:local`), as
/// LATTICE_QUERY navigates (protocol.md §7.6): `:value`, `:public-key`, `:signature`; any
/// other key gives nil.
fn signed_get(ev: &mut Evaluator, s: &Cell, k: &Cell) -> Res<Cell> {
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

/// Calls built-in `name` on evaluated arguments.
pub(crate) fn call(ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
    // Predicates: one argument each.
    if let Some(pred) = predicate(name) {
        if args.len() != 1 {
            return Err(EvalError::new(
                "ARITY",
                format!("{name} requires exactly one argument"),
            ));
        }
        return bool_v(pred(&args[0]));
    }
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    match name {
        "count" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "DataStructure")?;
            match c.kind() {
                Kind::Nil => data_v(Cell::long(0)),
                Kind::Vector
                | Kind::List
                | Kind::Map
                | Kind::Set
                | Kind::Index
                | Kind::Blob
                | Kind::String => data_v(Cell::long(c.count() as i64)),
                Kind::Keyword | Kind::Symbol => {
                    data_v(Cell::long(c.name_bytes().map_or(0, <[u8]>::len) as i64))
                }
                _ => Err(cast_pos(1, &args[0], "DataStructure")),
            }
        }
        "empty?" => {
            if args.len() != 1 {
                return Err(EvalError::new(
                    "ARITY",
                    "empty? requires exactly one argument",
                ));
            }
            let c = data(&args, 1, "DataStructure")?;
            match c.kind() {
                Kind::Nil => bool_v(true),
                _ if is_coll(&c) || matches!(c.kind(), Kind::Blob | Kind::String) => {
                    bool_v(c.count() == 0)
                }
                // Convex: anything else (numbers, booleans, names) is not empty.
                _ => bool_v(false),
            }
        }
        "get" => {
            if !(2..=3).contains(&args.len()) {
                return Err(EvalError::new(
                    "ARITY",
                    "get requires exactly 2 or 3 arguments",
                ));
            }
            let a = cells();
            data_v(get_or(ev, &a[0], &a[1], a.get(2).cloned())?)
        }
        "get-in" => {
            check_range(name, 2, 3, &args)?;
            let a = cells();
            let nf = a.get(2).cloned().unwrap_or_else(Cell::nil);
            if !(is_seq(&a[1]) || a[1].is_nil()) {
                return Err(cast_val(&a[1], "Sequence"));
            }
            let ks = seq_elements(ev, &a[1], 2, "Sequence")?;
            let absent = Cell::keyword("etch.query/absent").unwrap_or_else(|_| Cell::nil());
            let mut cur = a[0].clone();
            for k in &ks {
                if cur.is_nil() {
                    return data_v(nf);
                }
                cur = get_or(ev, &cur, k, Some(absent.clone()))?;
                if cur == absent {
                    return data_v(nf);
                }
            }
            data_v(cur)
        }
        "contains-key?" => {
            check_exact(name, 2, &args)?;
            let a = cells();
            if !(a[0].is_nil() || is_coll(&a[0])) {
                return Err(cast_pos(1, &args[0], "DataStructure"));
            }
            bool_v(contains_key(ev, &a[0], &a[1])?)
        }
        "keys" | "values" | "vals" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "Map")?;
            let out: Vec<Cell> = match c.kind() {
                Kind::Map => ev
                    .entries(&c)?
                    .into_iter()
                    .map(|(k, v)| if name == "keys" { k } else { v })
                    .collect(),
                // An Index is a map too (the root is one, query.md §10): keys in byte order.
                Kind::Index => {
                    ev.step(c.count())?;
                    let mut out = Vec::new();
                    etch_formats::value::for_each_index_entry(&c, ev.resolver(), &mut |k, v| {
                        out.push(if name == "keys" { k } else { v });
                        Ok(())
                    })?;
                    out
                }
                _ => return Err(cast_pos(1, &args[0], "Map")),
            };
            check_size(&out)?;
            data_v(Cell::vector(out))
        }
        "first" | "second" | "last" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "Sequence")?;
            if !(is_seq(&c) || is_hash(&c) || is_countable(&c) || c.is_nil()) {
                return Err(cast_pos(1, &args[0], "Sequence"));
            }
            let n = if is_countable(&c) {
                countable_elements(ev, &c)?.map_or(0, |v| v.len())
            } else {
                c.count() as usize
            };
            let (i, shown) = match name {
                "first" => (0, 0),
                "second" => (1, 1),
                _ => (n as i64 - 1, -1),
            };
            match seq_get(ev, &c, i)? {
                Some(v) => data_v(v),
                None => Err(bounds(shown)),
            }
        }
        "nth" => {
            check_exact(name, 2, &args)?;
            let c = data(&args, 1, "Sequence")?;
            let k = args[1].to_cell();
            // An integer beyond a Long is out of every sequence's bounds.
            if k.as_long().is_none() && k.to_bigint().is_some() && k.as_double().is_none() {
                return Err(EvalError::new(
                    "BOUNDS",
                    format!("Index: {}", self::print_num(&k)),
                ));
            }
            let i = index_arg(&k, 2)?;
            if !(is_seq(&c) || is_hash(&c) || is_countable(&c) || c.is_nil()) {
                return Err(cast_pos(1, &args[0], "Sequence"));
            }
            match seq_get(ev, &c, i)? {
                Some(v) => data_v(v),
                None => Err(bounds(i)),
            }
        }
        "next" | "rest" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "Sequence")?;
            if !(is_seq(&c) || is_hash(&c) || c.is_nil()) {
                return Err(cast_pos(1, &args[0], "Sequence"));
            }
            if name == "next" && c.count() <= 1 {
                return data_v(Cell::nil());
            }
            let items = seq_elements(ev, &c, 1, "Sequence")?;
            let tail = items.into_iter().skip(1).collect();
            if c.kind() == Kind::List {
                data_v(Cell::list(tail))
            } else {
                data_v(Cell::vector(tail))
            }
        }
        "empty" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "DataStructure")?;
            data_v(match c.kind() {
                Kind::Nil => Cell::nil(),
                Kind::Vector => Cell::vector(vec![]),
                Kind::List => Cell::list(vec![]),
                Kind::Map => Cell::map(vec![]),
                Kind::Set => Cell::set(vec![]),
                Kind::Index => Cell::index(vec![]).map_err(|_| limit_error())?,
                Kind::String => Cell::string(""),
                Kind::Blob => Cell::blob(&[]),
                Kind::Keyword | Kind::Symbol => Cell::nil(),
                _ => return Err(cast_pos(1, &args[0], "DataStructure")),
            })
        }
        "vector" | "list" | "hash-set" => {
            let a = cells();
            check_size(&a)?;
            data_v(match name {
                "vector" => Cell::vector(a),
                "list" => Cell::list(a),
                _ => Cell::set(a),
            })
        }
        "hash-map" => {
            if !args.len().is_multiple_of(2) {
                return Err(EvalError::new(
                    "ARITY",
                    "hash-map requires an even number of arguments",
                ));
            }
            let a = cells();
            check_size(&a)?;
            let entries = a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            data_v(Cell::map(entries))
        }
        "vec" | "set" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "Sequence")?;
            let items = seq_elements(ev, &c, 1, "Sequence")?;
            check_size(&items)?;
            data_v(if name == "vec" {
                Cell::vector(items)
            } else {
                Cell::set(items)
            })
        }
        "reverse" => {
            // Convex: a Vector reversed is a List and a List a Vector (each keeps its cheap
            // end); nil is the empty List; anything else is not a sequence.
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "Sequence")?;
            if !(is_seq(&c) || c.is_nil()) {
                return Err(cast_pos(1, &args[0], "Sequence"));
            }
            let mut items = seq_elements(ev, &c, 1, "Sequence")?;
            items.reverse();
            if c.kind() == Kind::List {
                data_v(Cell::vector(items))
            } else {
                data_v(Cell::list(items))
            }
        }
        "assoc" => {
            if args.is_empty() {
                return Err(EvalError::new(
                    "ARITY",
                    format!(
                        "assoc requires minimum arity 1 but called with: {}",
                        args.len()
                    ),
                ));
            }
            if args.len().is_multiple_of(2) {
                return Err(EvalError::new(
                    "ARITY",
                    "assoc requires key/value pairs as successive args",
                ));
            }
            let a = cells();
            // Convex: only data structures (and nil, an empty Map) take keys.
            let mut coll = match a[0].kind() {
                Kind::Nil => Cell::map(vec![]),
                _ if is_coll(&a[0]) => a[0].clone(),
                _ => return Err(cast_pos(1, &args[0], "DataStructure")),
            };
            for kv in a[1..].chunks(2) {
                coll = assoc1(ev, coll, kv[0].clone(), kv[1].clone())?;
            }
            data_v(coll)
        }
        "dissoc" => {
            check_range(name, 1, usize::MAX, &args)?;
            let a = cells();
            match a[0].kind() {
                Kind::Nil => data_v(Cell::map(vec![])),
                Kind::Map => {
                    let mut entries = ev.entries(&a[0])?;
                    entries.retain(|(k, _)| !a[1..].contains(k));
                    data_v(Cell::map(entries))
                }
                Kind::Index => {
                    let mut entries = index_entries(ev, &a[0])?;
                    entries.retain(|(k, _)| !a[1..].contains(k));
                    data_v(index_of(entries)?)
                }
                _ => Err(cast_pos(1, &args[0], "Map")),
            }
        }
        "conj" => {
            check_range(name, 1, usize::MAX, &args)?;
            let a = cells();
            let mut coll = a[0].clone();
            if !(coll.is_nil() || is_coll(&coll)) {
                return Err(cast_pos(1, &args[0], "DataStructure"));
            }
            for (j, x) in a[1..].iter().enumerate() {
                coll = conj1(ev, coll, x.clone(), j + 2)?;
            }
            data_v(coll)
        }
        "into" => {
            check_exact(name, 2, &args)?;
            let a = cells();
            let mut coll = a[0].clone();
            if !(coll.is_nil() || is_coll(&coll)) {
                return Err(cast_pos(1, &args[0], "DataStructure"));
            }
            let items = seq_elements(ev, &a[1], 2, "Sequence")?;
            // One rebuild: collect the additions, then conj them in a single pass.
            match coll.kind() {
                Kind::Nil | Kind::Vector => {
                    let mut all = if coll.is_nil() {
                        Vec::new()
                    } else {
                        ev.elements(&coll)?
                    };
                    all.extend(items);
                    check_size(&all)?;
                    data_v(Cell::vector(all))
                }
                _ => {
                    for x in items {
                        coll = conj1(ev, coll, x, 2)?;
                    }
                    data_v(coll)
                }
            }
        }
        "merge" => {
            // The result is of the first argument's kind (an Index stays an Index).
            let mut entries = Vec::new();
            let mut index = None;
            for (j, v) in args.iter().enumerate() {
                let c = v.to_cell();
                match c.kind() {
                    Kind::Nil => {}
                    Kind::Map => entries.extend(ev.entries(&c)?),
                    Kind::Index => entries.extend(index_entries(ev, &c)?),
                    _ => return Err(cast_pos(j + 1, v, "Map")),
                }
                if index.is_none() && !c.is_nil() {
                    index = Some(c.kind() == Kind::Index);
                }
            }
            check_size(&entries.iter().map(|e| e.1.clone()).collect::<Vec<_>>())?;
            data_v(if index == Some(true) {
                index_of(entries)?
            } else {
                Cell::map(entries)
            })
        }
        "cons" => {
            check_range(name, 2, usize::MAX, &args)?;
            let a = cells();
            let last = a.len() - 1;
            let mut items: Vec<Cell> = a[..last].to_vec();
            items.extend(seq_elements(ev, &a[last], a.len(), "Sequence")?);
            check_size(&items)?;
            data_v(Cell::list(items))
        }
        "concat" => {
            let a = cells();
            let mut kind = None;
            let mut items = Vec::new();
            for (j, c) in a.iter().enumerate() {
                if c.is_nil() {
                    continue;
                }
                if !is_seq(c) {
                    return Err(cast_pos(j + 1, &args[j], "Sequence"));
                }
                kind.get_or_insert(c.kind());
                items.extend(ev.elements(c)?);
                check_size(&items)?;
            }
            data_v(match kind {
                None => Cell::nil(),
                Some(Kind::List) => Cell::list(items),
                Some(_) => Cell::vector(items),
            })
        }
        "str" => {
            let mut out = Vec::new();
            for c in cells() {
                str_part(ev, &c, &mut out)?;
            }
            data_v(Cell::string_bytes(&out))
        }
        "print" => {
            check_exact(name, 1, &args)?;
            let s = print_cell(&args[0].to_cell(), ev.resolver(), PRINT_TEXT_MAX_BYTES)?;
            data_v(Cell::string(&s))
        }
        "name" => {
            check_exact(name, 1, &args)?;
            let c = args[0].to_cell();
            match c.kind() {
                Kind::Keyword | Kind::Symbol => {
                    data_v(Cell::string(&name_of(&c).unwrap_or_default()))
                }
                Kind::String => data_v(c),
                _ => Err(cast_pos(1, &args[0], "String")),
            }
        }
        "+" | "*" => data_v(num_cell(arith(
            &args,
            if name == "+" { '+' } else { '*' },
        )?)?),
        "-" => {
            check_range(name, 1, usize::MAX, &args)?;
            data_v(num_cell(arith(&args, '-')?)?)
        }
        "/" => {
            check_range(name, 1, usize::MAX, &args)?;
            data_v(num_cell(arith(&args, '/')?)?)
        }
        "inc" | "dec" => {
            check_exact(name, 1, &args)?;
            let i = match &args[0] {
                Value::Data(c) => c.as_long(),
                _ => None,
            }
            .ok_or_else(|| cast_pos(1, &args[0], "Long"))?;
            let r = if name == "inc" {
                i.checked_add(1)
            } else {
                i.checked_sub(1)
            };
            match r {
                Some(r) => data_v(Cell::long(r)),
                None => {
                    let b = BigInt::from(i) + if name == "inc" { 1 } else { -1 };
                    data_v(num_cell(Num::Int(b))?)
                }
            }
        }
        "min" | "max" => {
            check_range(name, 1, usize::MAX, &args)?;
            let mut best = num_arg(&args, 1)?;
            let mut best_cell = args[0].to_cell();
            for p in 2..=args.len() {
                let n = num_arg(&args, p)?;
                let better = match cmp_num(&n, &best) {
                    Some(o) => {
                        if name == "min" {
                            o.is_lt()
                        } else {
                            o.is_gt()
                        }
                    }
                    None => n.f64().is_nan(),
                };
                if better {
                    best = n;
                    best_cell = args[p - 1].to_cell();
                }
            }
            data_v(best_cell)
        }
        "=" => {
            let a = cells();
            bool_v(a.windows(2).all(|w| w[0] == w[1]))
        }
        "==" | "<" | ">" | "<=" | ">=" | "!=" => {
            let nums: Vec<Num> = (1..=args.len())
                .map(|p| num_arg(&args, p))
                .collect::<Res<_>>()?;
            if name == "!=" {
                if nums.len() == 1 {
                    return bool_v(false);
                }
                let all_eq = nums
                    .windows(2)
                    .all(|w| cmp_num(&w[0], &w[1]) == Some(std::cmp::Ordering::Equal));
                return bool_v(!all_eq);
            }
            let ok = nums.windows(2).all(|w| {
                let o = cmp_num(&w[0], &w[1]);
                match (name, o) {
                    (_, None) => false,
                    ("==", Some(o)) => o.is_eq(),
                    ("<", Some(o)) => o.is_lt(),
                    (">", Some(o)) => o.is_gt(),
                    ("<=", Some(o)) => o.is_le(),
                    (_, Some(o)) => o.is_ge(),
                }
            });
            bool_v(ok)
        }
        "disj" => {
            check_range(name, 1, usize::MAX, &args)?;
            let a = cells();
            match a[0].kind() {
                Kind::Nil => data_v(Cell::set(vec![])),
                Kind::Set => {
                    let mut items: Vec<Cell> =
                        ev.entries(&a[0])?.into_iter().map(|e| e.0).collect();
                    items.retain(|x| !a[1..].contains(x));
                    data_v(Cell::set(items))
                }
                _ => Err(cast_pos(1, &args[0], "Set")),
            }
        }
        "assoc-in" => {
            check_exact(name, 3, &args)?;
            let a = cells();
            if !(is_seq(&a[1]) || a[1].is_nil()) {
                return Err(cast_pos(2, &args[1], "Sequence"));
            }
            let ks = seq_elements(ev, &a[1], 2, "Sequence")?;
            // Down: the collection at each level (nil where absent).
            let mut levels = vec![a[0].clone()];
            for k in ks.iter().take(ks.len().saturating_sub(1)) {
                let cur = levels.last().cloned().unwrap_or_else(Cell::nil);
                levels.push(get(ev, &cur, k, Cell::nil())?);
            }
            // Up: assoc each level's new child.
            let mut v = a[2].clone();
            for (k, coll) in ks.iter().zip(levels).rev() {
                v = assoc1(ev, coll, k.clone(), v)?;
            }
            data_v(v)
        }
        "keyword" | "symbol" => {
            check_exact(name, 1, &args)?;
            let to = if name == "keyword" {
                "Keyword"
            } else {
                "Symbol"
            };
            let c = data(&args, 1, to)?;
            let text = match c.kind() {
                Kind::Keyword | Kind::Symbol => name_of(&c),
                Kind::String if c.count() <= 128 => {
                    let mut b = Vec::new();
                    etch_formats::value::blob_bytes_into(&c, ev.resolver(), &mut b)?;
                    String::from_utf8(b).ok()
                }
                _ => None,
            };
            let built = text.and_then(|t| {
                if name == "keyword" {
                    Cell::keyword(&t).ok()
                } else {
                    Cell::symbol(&t).ok()
                }
            });
            built
                .map(Value::Data)
                .ok_or_else(|| cast_pos(1, &args[0], to))
        }
        "encoding" => {
            check_exact(name, 1, &args)?;
            data_v(Cell::blob(args[0].to_cell().encoding()))
        }
        "value-id" => {
            check_exact(name, 1, &args)?;
            let c = args[0].to_cell();
            data_v(Cell::blob(c.id().as_bytes()))
        }
        "fetch" => {
            check_exact(name, 1, &args)?;
            let c = args[0].to_cell();
            let id = match (c.kind(), c.flat_bytes()) {
                (Kind::Blob, Some(b)) if b.len() == 32 => {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(b);
                    ValueId(id)
                }
                _ => {
                    return Err(EvalError::new(
                        "ARGUMENT",
                        "Value ID must be a 32-byte Blob",
                    ))
                }
            };
            ev.step(1)?;
            let root = match ev.node_opt() {
                Some(node) => node.root()?,
                None => Cell::nil(),
            };
            if let Some(c) = crate::lattice::stored_value(&root, &id, ev.resolver())? {
                return data_v(c);
            }
            // Unknown IDs give nil (query.md §6.1).
            data_v(Cell::nil())
        }
        "hash" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "Blob")?;
            if c.kind() != Kind::Blob {
                return Err(cast_pos(1, &args[0], "Blob"));
            }
            if c.count() > RESULT_SIZE_MAX_BYTES {
                return Err(limit_error());
            }
            ev.step(c.count() / 4096 + 1)?;
            let b = etch_formats::value::blob_bytes(&c, ev.resolver())?;
            data_v(Cell::blob(ValueId::of(&b).as_bytes()))
        }
        "index" => {
            if !args.len().is_multiple_of(2) {
                return Err(EvalError::new(
                    "ARITY",
                    "index requires an even number of arguments",
                ));
            }
            let a = cells();
            check_size(&a)?;
            let mut entries = Vec::with_capacity(a.len() / 2);
            for kv in a.chunks(2) {
                if Cell::index(vec![(kv[0].clone(), Cell::nil())]).is_err() {
                    return Err(EvalError::new(
                        "ARGUMENT",
                        format!("Cannot have a key of Type {} in Index", type_name(&kv[0])),
                    ));
                }
                entries.push((kv[0].clone(), kv[1].clone()));
            }
            Cell::index(entries)
                .map(Value::Data)
                .map_err(|e| EvalError::new("ARGUMENT", e.0))
        }
        "slice" => {
            check_range(name, 2, 3, &args)?;
            let a = cells();
            let c = &a[0];
            let n = c.count() as i64;
            let start = index_arg(&a[1], 2)?;
            let end = match a.get(2) {
                Some(e) => index_arg(e, 3)?,
                None => n,
            };
            if start < 0 || start > n {
                return Err(bounds(start));
            }
            if end < 0 || end > n {
                return Err(bounds(end));
            }
            if end < start {
                return Err(EvalError::new("BOUNDS", "End before start"));
            }
            let (s, e) = (start as usize, end as usize);
            match c.kind() {
                Kind::Vector | Kind::List => {
                    let items = ev.elements(c)?;
                    same_seq(c, items[s..e].to_vec()).map(Value::Data)
                }
                Kind::Blob | Kind::String => {
                    if c.count() > RESULT_SIZE_MAX_BYTES {
                        return Err(limit_error());
                    }
                    ev.step(c.count() / 4096 + 1)?;
                    let b = etch_formats::value::blob_bytes(c, ev.resolver())?;
                    data_v(if c.kind() == Kind::Blob {
                        Cell::blob(&b[s..e])
                    } else {
                        Cell::string_bytes(&b[s..e])
                    })
                }
                Kind::Nil => data_v(Cell::nil()),
                _ => Err(cast_pos(1, &args[0], "Sequence")),
            }
        }
        "cat" => {
            let mut out = Vec::new();
            let mut string = None;
            for (j, v) in args.iter().enumerate() {
                let c = v.to_cell();
                match c.kind() {
                    Kind::Nil => continue,
                    Kind::Blob | Kind::String => {
                        string.get_or_insert(c.kind() == Kind::String);
                        if out.len() as u64 + c.count() > RESULT_SIZE_MAX_BYTES {
                            return Err(limit_error());
                        }
                        ev.step(c.count() / 4096 + 1)?;
                        etch_formats::value::blob_bytes_into(&c, ev.resolver(), &mut out)?;
                    }
                    Kind::Char => {
                        string.get_or_insert(true);
                        let ch = c
                            .as_char_code()
                            .and_then(char::from_u32)
                            .ok_or_else(|| cast_pos(j + 1, v, "Blob"))?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(cast_pos(j + 1, v, "Blob")),
                }
            }
            data_v(if string == Some(true) {
                Cell::string_bytes(&out)
            } else {
                Cell::blob(&out)
            })
        }
        "blob" => {
            check_exact(name, 1, &args)?;
            let c = data(&args, 1, "Blob")?;
            let fail = || cast_pos(1, &args[0], "Blob");
            let bytes: Vec<u8> = match c.kind() {
                Kind::Blob => return data_v(c),
                Kind::String => {
                    if c.count() > 2 * RESULT_SIZE_MAX_BYTES {
                        return Err(limit_error());
                    }
                    ev.step(c.count() / 4096 + 1)?;
                    let text = etch_formats::value::blob_bytes(&c, ev.resolver())?;
                    hex::decode(text).map_err(|_| fail())?
                }
                Kind::Keyword | Kind::Symbol => c.name_bytes().unwrap_or_default().to_vec(),
                Kind::Extension(etch_formats::tag::ADDRESS) => {
                    c.extension_value().unwrap_or(0).to_be_bytes().to_vec()
                }
                Kind::Long | Kind::BigInt => c.integer_bytes().ok_or_else(fail)?.to_vec(),
                Kind::Char => {
                    let ch = c.as_char_code().and_then(char::from_u32).ok_or_else(fail)?;
                    ch.to_string().into_bytes()
                }
                Kind::ByteFlag(_) if c.as_bool().is_some() => {
                    vec![u8::from(c.as_bool() == Some(true))]
                }
                _ => return Err(fail()),
            };
            data_v(Cell::blob(&bytes))
        }
        "print-full" => {
            check_exact(name, 1, &args)?;
            ev.request_full_print();
            Ok(args[0].clone())
        }
        "store" => {
            check_exact(name, 1, &args)?;
            ev.require(false)?;
            let v = args[0].to_cell();
            if v.is_nil() {
                return Err(EvalError::new("ARGUMENT", "Cannot store nil"));
            }
            let id = ev.node(name)?.store(&v)?;
            data_v(Cell::blob(id.as_bytes()))
        }
        "root" => {
            check_range(name, 0, 1, &args)?;
            let root = ev.node(name)?.root()?;
            match args.first() {
                None => data_v(root),
                Some(path) => {
                    let path = path.to_cell();
                    let keys = seq_elements(ev, &path, 1, "Sequence")?;
                    let mut cur = root;
                    for k in &keys {
                        if cur.is_nil() {
                            break;
                        }
                        cur = if cur.kind() == Kind::Signed {
                            signed_get(ev, &cur, k)?
                        } else {
                            get(ev, &cur, k, Cell::nil())?
                        };
                    }
                    data_v(cur)
                }
            }
        }
        "lattice-merge" => {
            check_range(name, 2, 3, &args)?;
            let (a, b) = (args[0].to_cell(), args[1].to_cell());
            let root = crate::lattice::Lattice::root();
            let lattice = match args.get(2) {
                None => &root,
                Some(p) => {
                    let path = p.to_cell();
                    let keys = seq_elements(ev, &path, 3, "Sequence")?;
                    match root.at_path(&keys) {
                        Some(l) => l,
                        None => {
                            return Err(EvalError::new(
                                "ARGUMENT",
                                format!("No lattice at path: {}", ev.print(&path)?),
                            ))
                        }
                    }
                }
            };
            ev.step(1 + a.count().max(b.count()))?;
            // A pure merge: no clock, no key (nothing is signed or stamped).
            let ctx = crate::lattice::MergeContext::default();
            data_v(lattice.merge(&ctx, &a, &b, ev.resolver())?)
        }
        "merge!" => {
            check_exact(name, 2, &args)?;
            ev.require(false)?;
            let path = args[0].to_cell();
            let keys = seq_elements(ev, &path, 1, "Sequence")?;
            let v = args[1].to_cell();
            data_v(ev.node(name)?.merge_at(&keys, &v)?)
        }
        "set-root!" => {
            check_exact(name, 1, &args)?;
            ev.require(true)?;
            let id = ev.node(name)?.set_root(&args[0].to_cell())?;
            data_v(Cell::blob(id.as_bytes()))
        }
        "set-owner!" | "drives" | "mkdrive" | "rmdrive" | "ls" | "read-file" | "put" | "mkdir"
        | "rm" | "stat" => super::dlfs::call(ev, name, &args),
        "pin" | "unpin" | "pins" | "gc" => super::pins::call(ev, name, &args),
        "not" => {
            check_exact(name, 1, &args)?;
            bool_v(!truthy(&args[0]))
        }
        "boolean" => {
            check_exact(name, 1, &args)?;
            bool_v(truthy(&args[0]))
        }
        _ => Err(EvalError::new("UNDECLARED", name)),
    }
}

type Pred = fn(&Value) -> bool;

fn cell_of(v: &Value) -> Option<&Cell> {
    match v {
        Value::Data(c) => Some(c),
        _ => None,
    }
}

fn kind_is(v: &Value, f: fn(&Cell) -> bool) -> bool {
    cell_of(v).map(f).unwrap_or(false)
}

fn predicate(name: &str) -> Option<Pred> {
    let p: Pred = match name {
        "nil?" => |v| kind_is(v, |c| c.is_nil()),
        "boolean?" => |v| kind_is(v, |c| c.as_bool().is_some()),
        "number?" => |v| {
            kind_is(v, |c| {
                matches!(c.kind(), Kind::Long | Kind::BigInt | Kind::Double)
            })
        },
        "long?" => |v| kind_is(v, |c| c.kind() == Kind::Long),
        "int?" => |v| kind_is(v, |c| matches!(c.kind(), Kind::Long | Kind::BigInt)),
        "double?" => |v| kind_is(v, |c| c.kind() == Kind::Double),
        "str?" => |v| kind_is(v, |c| c.kind() == Kind::String),
        "blob?" => |v| kind_is(v, |c| c.kind() == Kind::Blob),
        "keyword?" => |v| kind_is(v, |c| c.kind() == Kind::Keyword),
        "symbol?" => |v| kind_is(v, |c| c.kind() == Kind::Symbol),
        "address?" => |v| kind_is(v, |c| type_name(c) == "Address"),
        "vector?" => |v| kind_is(v, |c| c.kind() == Kind::Vector),
        "list?" => |v| kind_is(v, |c| c.kind() == Kind::List),
        "map?" => |v| kind_is(v, |c| matches!(c.kind(), Kind::Map | Kind::Index)),
        "set?" => |v| kind_is(v, |c| c.kind() == Kind::Set),
        "coll?" => |v| kind_is(v, is_coll),
        "countable?" => |v| {
            kind_is(v, |c| {
                is_coll(c) || matches!(c.kind(), Kind::Blob | Kind::String)
            })
        },
        "fn?" => |v| v.is_fn(),
        "zero?" => |v| kind_is(v, |c| c.as_long() == Some(0) || c.as_double() == Some(0.0)),
        _ => return None,
    };
    Some(p)
}
