//! Collections (query.md §5.1, §5.2; Convex `Core.java`): counting, access by key and index,
//! construction, assoc/dissoc/conj/into/merge, slices. Index and Map are both maps here.

use super::Builtin;
use crate::query::core::{
    assoc1, bool_v, bounds, cast_pos, cast_val, check_exact, check_range, check_size, conj1,
    contains_key, countable_elements, data, data_v, get, get_or, index_arg, index_entries,
    index_of, is_coll, is_countable, is_hash, is_seq, print_num, same_seq, seq_elements, seq_get,
};
use crate::query::docs::{
    d,
    Group::{Access, Construction, Predicates},
};
use crate::query::{
    limit_error, type_name, EvalError, Evaluator, Res, Value, RESULT_SIZE_MAX_BYTES,
};
use etch_formats::Cell;
use etch_formats::Kind;

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d(
            "count",
            "x",
            "elements of a collection, bytes of a Blob or String; nil is 0",
            Access,
        ),
        examples: &[
            ("(count [])", "0"),
            ("(count ())", "0"),
            ("(count 0x)", "0"),
            ("(count)", "!ARITY"),
            ("(count 1)", "!CAST"),
        ],
        run: count_of,
    },
    Builtin {
        doc: d("empty?", "x", "nil or count 0", Predicates),
        examples: &[
            ("(empty? 0)", "false"),
            ("(empty? {})", "true"),
            ("(empty? [])", "true"),
        ],
        run: is_empty,
    },
    Builtin {
        doc: d(
            "get",
            "coll k not-found?",
            "the value at a key or index (sets: membership)",
            Access,
        ),
        examples: &[
            ("(get [] 10)", "nil"),
            ("(get nil 10)", "nil"),
            ("(get '() 10)", "nil"),
            ("(get)", "!ARITY"),
            ("(get 1 1)", "!CAST"),
        ],
        run: get_value,
    },
    Builtin {
        doc: d(
            "get-in",
            "coll ks not-found?",
            "get along a path of keys",
            Access,
        ),
        examples: &[
            ("(get-in 3 [])", "3"),
            ("(get-in [] [])", "[]"),
            ("(get-in nil [])", "nil"),
            ("(get-in 1)", "!ARITY"),
            ("(get-in 1 2 3)", "!CAST"),
        ],
        run: get_in,
    },
    Builtin {
        doc: d(
            "contains-key?",
            "coll k",
            "whether a key or index is present",
            Access,
        ),
        examples: &[
            ("(contains-key? {} 1)", "false"),
            ("(contains-key? [] 1)", "false"),
            ("(contains-key? #{} 1)", "false"),
            ("(contains-key? 3)", "!ARITY"),
            ("(contains-key? 3 4)", "!CAST"),
        ],
        run: has_key,
    },
    Builtin {
        doc: d("keys", "m", "vector of a map's keys", Access),
        examples: &[
            ("(keys {})", "[]"),
            ("(keys {1 2})", "[1]"),
            ("(keys)", "!ARITY"),
            ("(keys 1)", "!CAST"),
        ],
        run: |ev, a| keys_or_values(ev, "keys", a),
    },
    Builtin {
        doc: d("values", "m", "vector of a map's values", Access),
        examples: &[
            ("(values {})", "[]"),
            ("(values {1 2})", "[2]"),
            ("(values)", "!ARITY"),
            ("(values 1)", "!CAST"),
        ],
        run: |ev, a| keys_or_values(ev, "values", a),
    },
    Builtin {
        doc: d("vals", "m", "alias of values", Access),
        examples: &[("(vals {:a 1 :b 2})", "[1 2]"), ("(vals [1])", "!CAST")],
        run: |ev, a| keys_or_values(ev, "vals", a),
    },
    Builtin {
        doc: d("first", "s", "element 0", Access),
        examples: &[
            ("(first :foo)", "\\f"),
            ("(first {1 2})", "[1 2]"),
            ("(first [1 2])", "1"),
            ("(first)", "!ARITY"),
            ("(first 1)", "!CAST"),
        ],
        run: |ev, a| nth_from_end(ev, "first", a),
    },
    Builtin {
        doc: d("second", "s", "element 1", Access),
        examples: &[
            ("(second [1 2])", "2"),
            ("(second \"abc\")", "\\b"),
            ("(second 0x1234)", "52"),
            ("(second)", "!ARITY"),
            ("(second 1)", "!CAST"),
        ],
        run: |ev, a| nth_from_end(ev, "second", a),
    },
    Builtin {
        doc: d("last", "s", "the last element", Access),
        examples: &[
            ("(last [4])", "4"),
            ("(last [1 2])", "2"),
            ("(last \"abc\")", "\\c"),
            ("(last)", "!ARITY"),
            ("(last 1)", "!CAST"),
        ],
        run: |ev, a| nth_from_end(ev, "last", a),
    },
    Builtin {
        doc: d("nth", "s i", "element i", Access),
        examples: &[
            ("(nth :abc 1)", "\\b"),
            ("(nth 'abc 0)", "\\a"),
            ("(nth 0xFF 0)", "255"),
            ("(nth)", "!ARITY"),
            ("(nth 0x 0)", "!BOUNDS"),
        ],
        run: nth_of,
    },
    Builtin {
        doc: d(
            "next",
            "s",
            "all but the first element; nil if none left",
            Access,
        ),
        examples: &[
            ("(next nil)", "nil"),
            ("(next [1])", "nil"),
            ("(next {1 2})", "nil"),
            ("(next)", "!ARITY"),
            ("(next 1)", "!CAST"),
        ],
        run: |ev, a| next_or_rest(ev, "next", a),
    },
    Builtin {
        doc: d(
            "rest",
            "s",
            "all but the first element; empty if none left",
            Access,
        ),
        examples: &[
            ("(rest [1 2 3])", "[2 3]"),
            ("(rest (list 1))", "()"),
            ("(rest 1)", "!CAST"),
        ],
        run: |ev, a| next_or_rest(ev, "rest", a),
    },
    Builtin {
        doc: d("empty", "x", "an empty collection of the same kind", Access),
        examples: &[
            ("(empty nil)", "nil"),
            ("(empty :foo)", "nil"),
            ("(empty 'nil)", "nil"),
            ("(empty)", "!ARITY"),
            ("(empty 1)", "!CAST"),
        ],
        run: empty_like,
    },
    Builtin {
        doc: d("vector", "x ...", "a vector of the arguments", Construction),
        examples: &[("(vector)", "[]"), ("(vector 1 2)", "[1 2]")],
        run: |ev, a| sequence_of(ev, "vector", a),
    },
    Builtin {
        doc: d("list", "x ...", "a list of the arguments", Construction),
        examples: &[
            ("(list)", "()"),
            ("(list 1 2)", "(1 2)"),
            ("(list 'list)", "(list)"),
        ],
        run: |ev, a| sequence_of(ev, "list", a),
    },
    Builtin {
        doc: d("hash-set", "x ...", "a set of the arguments", Construction),
        examples: &[
            ("(hash-set)", "#{}"),
            ("(hash-set nil)", "#{nil}"),
            ("(hash-set nil nil)", "#{nil}"),
        ],
        run: |ev, a| sequence_of(ev, "hash-set", a),
    },
    Builtin {
        doc: d(
            "hash-map",
            "k v ...",
            "a map of the key/value arguments",
            Construction,
        ),
        examples: &[
            ("(hash-map)", "{}"),
            ("(hash-map 1 2)", "{1 2}"),
            ("(hash-map nil nil)", "{nil nil}"),
            ("(hash-map 1)", "!ARITY"),
        ],
        run: hash_map,
    },
    Builtin {
        doc: d(
            "vec",
            "coll",
            "the elements of coll as a vector",
            Construction,
        ),
        examples: &[
            ("(vec [])", "[]"),
            ("(vec {})", "[]"),
            ("(vec nil)", "[]"),
            ("(vec)", "!ARITY"),
            ("(vec 1)", "!CAST"),
        ],
        run: |ev, a| vec_or_set(ev, "vec", a),
    },
    Builtin {
        doc: d("set", "coll", "the elements of coll as a set", Construction),
        examples: &[
            ("(set nil)", "#{}"),
            ("(set)", "!ARITY"),
            ("(set 1)", "!CAST"),
        ],
        run: |ev, a| vec_or_set(ev, "set", a),
    },
    Builtin {
        doc: d("reverse", "s", "the sequence reversed", Construction),
        examples: &[
            ("(reverse [])", "()"),
            ("(reverse ())", "[]"),
            ("(reverse nil)", "()"),
            ("(reverse)", "!ARITY"),
            ("(reverse #{})", "!CAST"),
        ],
        run: reverse_of,
    },
    Builtin {
        doc: d(
            "assoc",
            "coll k v ...",
            "coll with keys set to values",
            Construction,
        ),
        examples: &[
            ("(assoc {})", "{}"),
            ("(assoc [])", "[]"),
            ("(assoc nil)", "{}"),
            ("(assoc)", "!ARITY"),
            ("(assoc :foo)", "!CAST"),
        ],
        run: assoc_pairs,
    },
    Builtin {
        doc: d("dissoc", "m k ...", "m without the keys", Construction),
        examples: &[
            ("(dissoc {1 2})", "{1 2}"),
            ("(dissoc nil 1)", "{}"),
            ("(dissoc {1 2} 1)", "{}"),
            ("(dissoc)", "!ARITY"),
            ("(dissoc [])", "!CAST"),
        ],
        run: dissoc_keys,
    },
    Builtin {
        doc: d(
            "conj",
            "coll x ...",
            "adds elements (vectors: end, lists: front)",
            Construction,
        ),
        examples: &[
            ("(conj nil 1)", "[1]"),
            ("(conj #{} 3)", "#{3}"),
            ("(conj [1 2])", "[1 2]"),
            ("(conj)", "!ARITY"),
            ("(conj 1 2)", "!CAST"),
        ],
        run: conj_all,
    },
    Builtin {
        doc: d(
            "into",
            "to from",
            "conj every element of from into to",
            Construction,
        ),
        examples: &[
            ("(into {} [])", "{}"),
            ("(into nil [])", "[]"),
            ("(into [] {1 2})", "[[1 2]]"),
            ("(into)", "!ARITY"),
            ("(into 0 [])", "!CAST"),
        ],
        run: into_coll,
    },
    Builtin {
        doc: d(
            "merge",
            "m ...",
            "map merge, later maps win (not a lattice merge)",
            Construction,
        ),
        examples: &[
            ("(merge)", "{}"),
            ("(merge nil)", "{}"),
            ("(merge nil nil)", "{}"),
            ("(merge [])", "!CAST"),
        ],
        run: merge_maps,
    },
    Builtin {
        doc: d(
            "cons",
            "x ... seq",
            "a list with leading elements",
            Construction,
        ),
        examples: &[
            ("(cons 1 [])", "(1)"),
            ("(cons 3 nil)", "(3)"),
            ("(cons 1 #{3})", "(1 3)"),
            ("(cons)", "!ARITY"),
            ("(cons 1 2)", "!CAST"),
        ],
        run: cons_all,
    },
    Builtin {
        doc: d(
            "concat",
            "s ...",
            "the sequences one after another",
            Construction,
        ),
        examples: &[
            ("(concat)", "nil"),
            ("(concat [])", "[]"),
            ("(concat nil [])", "[]"),
            ("(concat 1 2)", "!CAST"),
        ],
        run: concat_seqs,
    },
    Builtin {
        doc: d(
            "disj",
            "set x ...",
            "the set without the members",
            Construction,
        ),
        examples: &[
            ("(disj #{})", "#{}"),
            ("(disj #{} 1)", "#{}"),
            ("(disj nil 1)", "#{}"),
            ("(disj)", "!ARITY"),
            ("(disj [] 1)", "!CAST"),
        ],
        run: disj_all,
    },
    Builtin {
        doc: d(
            "assoc-in",
            "coll ks v",
            "nested assoc along a path, creating maps",
            Construction,
        ),
        examples: &[
            ("(assoc-in {} [] 2)", "2"),
            ("(assoc-in nil [] 2)", "2"),
            ("(assoc-in 13 nil 2)", "2"),
            ("(assoc-in)", "!ARITY"),
            ("(assoc-in {} :foo 42)", "!CAST"),
        ],
        run: assoc_in,
    },
    Builtin {
        doc: d(
            "index",
            "k v ...",
            "an Index (Blob-like keys, kept in byte order)",
            Construction,
        ),
        examples: &[
            ("(index)", "#Index {}"),
            ("(index 0xabcd)", "!ARITY"),
            ("(index nil :bar)", "!ARGUMENT"),
        ],
        run: index_of_pairs,
    },
    Builtin {
        doc: d(
            "slice",
            "s start end?",
            "elements, bytes or characters [start, end)",
            Access,
        ),
        examples: &[
            ("(slice 0x1234 1 2)", "0x34"),
            ("(slice (list 1 2) 1)", "(2)"),
            ("(slice 0xcafebabe 2 2)", "0x"),
            ("(slice)", "!ARITY"),
            ("(slice 0x 1)", "!BOUNDS"),
        ],
        run: slice_of,
    },
];

/// `count`.
fn count_of(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "count";
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

/// `empty?`.
fn is_empty(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    if args.len() != 1 {
        return Err(EvalError::new(
            "ARITY",
            "empty? requires exactly one argument",
        ));
    }
    let c = data(&args, 1, "DataStructure")?;
    match c.kind() {
        Kind::Nil => bool_v(true),
        _ if is_coll(&c) || matches!(c.kind(), Kind::Blob | Kind::String) => bool_v(c.count() == 0),
        // Convex: anything else (numbers, booleans, names) is not empty.
        _ => bool_v(false),
    }
}

/// `get`.
fn get_value(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    if !(2..=3).contains(&args.len()) {
        return Err(EvalError::new(
            "ARITY",
            "get requires exactly 2 or 3 arguments",
        ));
    }
    let a = cells();
    data_v(get_or(ev, &a[0], &a[1], a.get(2).cloned())?)
}

/// `get-in`.
fn get_in(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "get-in";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
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

/// `contains-key?`.
fn has_key(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "contains-key?";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    check_exact(name, 2, &args)?;
    let a = cells();
    if !(a[0].is_nil() || is_coll(&a[0])) {
        return Err(cast_pos(1, &args[0], "DataStructure"));
    }
    bool_v(contains_key(ev, &a[0], &a[1])?)
}

/// `keys`, `values`, `vals`.
fn keys_or_values(ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
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

/// `first`, `second`, `last`.
fn nth_from_end(ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
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

/// `nth`.
fn nth_of(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "nth";
    check_exact(name, 2, &args)?;
    let c = data(&args, 1, "Sequence")?;
    let k = args[1].to_cell();
    // An integer beyond a Long is out of every sequence's bounds.
    if k.as_long().is_none() && k.to_bigint().is_some() && k.as_double().is_none() {
        return Err(EvalError::new(
            "BOUNDS",
            format!("Index: {}", print_num(&k)),
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

/// `next`, `rest`.
fn next_or_rest(ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
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

/// `empty`.
fn empty_like(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "empty";
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

/// `vector`, `list`, `hash-set`.
fn sequence_of(_ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    let a = cells();
    check_size(&a)?;
    data_v(match name {
        "vector" => Cell::vector(a),
        "list" => Cell::list(a),
        _ => Cell::set(a),
    })
}

/// `hash-map`.
fn hash_map(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
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

/// `vec`, `set`.
fn vec_or_set(ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
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

/// `reverse`.
fn reverse_of(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "reverse";
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

/// `assoc`.
fn assoc_pairs(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
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

/// `dissoc`.
fn dissoc_keys(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "dissoc";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
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
            // By key identity, as the Index stores them: "" and 0x are one key.
            let r = ev.resolver();
            let mut gone = Vec::new();
            for k in &a[1..] {
                gone.extend(etch_formats::coll::key_id(k, r)?);
            }
            let mut entries = index_entries(ev, &a[0])?;
            let r = ev.resolver();
            let mut kept = Vec::with_capacity(entries.len());
            for (k, v) in entries.drain(..) {
                let id = etch_formats::coll::key_id(&k, r)?;
                if !id.is_some_and(|id| gone.contains(&id)) {
                    kept.push((k, v));
                }
            }
            data_v(index_of(kept)?)
        }
        _ => Err(cast_pos(1, &args[0], "Map")),
    }
}

/// `conj`.
fn conj_all(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "conj";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
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

/// `into`.
fn into_coll(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "into";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    check_exact(name, 2, &args)?;
    let a = cells();
    let mut coll = a[0].clone();
    if !(coll.is_nil() || is_coll(&coll)) {
        return Err(cast_pos(1, &args[0], "DataStructure"));
    }
    // Convex: into nil gives the source itself, when it is a data structure (or nil).
    if coll.is_nil() {
        return match a[1].kind() {
            Kind::Nil => data_v(Cell::nil()),
            _ if is_coll(&a[1]) => data_v(a[1].clone()),
            _ => Err(cast_pos(2, &args[1], "DataStructure")),
        };
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

/// `merge`.
fn merge_maps(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
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

/// `cons`.
fn cons_all(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "cons";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    check_range(name, 2, usize::MAX, &args)?;
    let a = cells();
    let last = a.len() - 1;
    let mut items: Vec<Cell> = a[..last].to_vec();
    items.extend(seq_elements(ev, &a[last], a.len(), "Sequence")?);
    check_size(&items)?;
    data_v(Cell::list(items))
}

/// `concat`.
fn concat_seqs(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    let a = cells();
    let mut kind = None;
    let mut items = Vec::new();
    for (j, c) in a.iter().enumerate() {
        if c.is_nil() {
            continue;
        }
        if !(is_seq(c) || is_hash(c) || c.kind() == Kind::Index) {
            return Err(cast_pos(j + 1, &args[j], "Sequence"));
        }
        kind.get_or_insert(c.kind());
        // Maps, Sets and Indexes join as the sequences of their entries.
        items.extend(seq_elements(ev, c, j + 1, "Sequence")?);
        check_size(&items)?;
    }
    data_v(match kind {
        None => Cell::nil(),
        Some(Kind::List) => Cell::list(items),
        Some(_) => Cell::vector(items),
    })
}

/// `disj`.
fn disj_all(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "disj";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    check_range(name, 1, usize::MAX, &args)?;
    let a = cells();
    match a[0].kind() {
        Kind::Nil => data_v(Cell::set(vec![])),
        Kind::Set => {
            let mut items: Vec<Cell> = ev.entries(&a[0])?.into_iter().map(|e| e.0).collect();
            items.retain(|x| !a[1..].contains(x));
            data_v(Cell::set(items))
        }
        _ => Err(cast_pos(1, &args[0], "Set")),
    }
}

/// `assoc-in`.
fn assoc_in(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "assoc-in";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
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
        // Convex: only a data structure (or nil) on the path takes a key.
        if !(coll.is_nil() || is_coll(&coll)) {
            return Err(cast_val(&coll, "DataStructure"));
        }
        v = assoc1(ev, coll, k.clone(), v)?;
    }
    data_v(v)
}

/// `index`.
fn index_of_pairs(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
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

/// `slice`.
fn slice_of(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "slice";
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    check_range(name, 2, 3, &args)?;
    let a = cells();
    let c = &a[0];
    // Convex: a name has nothing to slice.
    if matches!(c.kind(), Kind::Keyword | Kind::Symbol) {
        return data_v(Cell::nil());
    }
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
        // Maps, Sets and Indexes slice in their own order and stay what they are.
        Kind::Set => {
            let members = ev.entries(c)?.into_iter().map(|(k, _)| k);
            data_v(Cell::set(members.skip(s).take(e - s).collect()))
        }
        Kind::Map => {
            let entries = ev.entries(c)?;
            data_v(Cell::map(entries[s..e].to_vec()))
        }
        Kind::Index => {
            let entries = index_entries(ev, c)?;
            data_v(index_of(entries[s..e].to_vec())?)
        }
        _ => Err(cast_pos(1, &args[0], "Sequence")),
    }
}
