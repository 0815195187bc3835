//! Set algebra (Convex `Core.java` union, intersection, difference, subset?): nil is the empty
//! set; anything else that is not a Set is `:CAST`.

use super::Builtin;
use crate::query::core::{cast_pos, cast_val, check_exact, check_range};
use crate::query::docs::{d, Group::Construction};
use crate::query::{Evaluator, Res, Value};
use etch_formats::{Cell, Kind, ValueId};
use std::collections::HashSet;

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d(
            "union",
            "sets...",
            "every member of any of the sets",
            Construction,
        ),
        examples: &[
            ("(union #{1 2} #{2 3})", "#{2,3,1}"),
            ("(union)", "#{}"),
            ("(union #{1} nil)", "#{1}"),
            ("(union [1] #{2})", "!CAST"),
        ],
        run: union,
    },
    Builtin {
        doc: d(
            "intersection",
            "set & sets",
            "the members in all of the sets",
            Construction,
        ),
        examples: &[
            ("(intersection #{1 2 3} #{2 3 4})", "#{2,3}"),
            ("(intersection #{1} nil)", "#{}"),
            ("(intersection)", "!ARITY"),
        ],
        run: intersection,
    },
    Builtin {
        doc: d(
            "difference",
            "set & sets",
            "the members of set in none of the others",
            Construction,
        ),
        examples: &[
            ("(difference #{1 2 3} #{2 4} #{1 5})", "#{3}"),
            ("(difference nil #{1})", "#{}"),
        ],
        run: difference,
    },
    Builtin {
        doc: d(
            "subset?",
            "a b",
            "whether every member of a is in b",
            Construction,
        ),
        examples: &[
            ("(subset? #{1} #{1 2})", "true"),
            ("(subset? nil #{1})", "true"),
            ("(subset? #{1} nil)", "false"),
            ("(subset? 1 #{})", "!CAST"),
        ],
        run: subset,
    },
];

/// The members of set argument `p` (nil: none).
fn members(ev: &mut Evaluator, args: &[Value], p: usize, by_value: bool) -> Res<Vec<Cell>> {
    let v = &args[p - 1];
    let c = v.to_cell();
    match (v, c.kind()) {
        (Value::Data(_), Kind::Nil) => Ok(Vec::new()),
        (Value::Data(_), Kind::Set) => Ok(ev.entries(&c)?.into_iter().map(|e| e.0).collect()),
        _ if by_value => Err(cast_val(&c, "Set")),
        _ => Err(cast_pos(p, v, "Set")),
    }
}

fn set_v(items: Vec<Cell>) -> Res<Value> {
    crate::query::core::check_size(&items)?;
    Ok(Value::Data(Cell::set(items)))
}

fn union(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let mut out = Vec::new();
    for p in 1..=args.len() {
        out.extend(members(ev, &args, p, false)?);
    }
    set_v(out)
}

/// The Value IDs of set argument `p`'s members.
fn ids(ev: &mut Evaluator, args: &[Value], p: usize, by_value: bool) -> Res<HashSet<ValueId>> {
    Ok(members(ev, args, p, by_value)?
        .iter()
        .map(|c| *c.id())
        .collect())
}

/// The first set's members kept where `keep(in every other set?)`.
fn sift(ev: &mut Evaluator, name: &str, args: &[Value], keep: bool) -> Res<Value> {
    check_range(name, 1, usize::MAX, args)?;
    let mut out = members(ev, args, 1, false)?;
    for p in 2..=args.len() {
        let other = ids(ev, args, p, false)?;
        out.retain(|x| other.contains(x.id()) == keep);
    }
    set_v(out)
}

fn intersection(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    sift(ev, "intersection", &args, true)
}

fn difference(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    sift(ev, "difference", &args, false)
}

fn subset(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("subset?", 2, &args)?;
    let a = ids(ev, &args, 1, true)?;
    let b = ids(ev, &args, 2, true)?;
    Ok(Value::Data(Cell::bool(a.is_subset(&b))))
}
