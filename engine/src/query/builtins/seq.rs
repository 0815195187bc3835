//! Functions over collections and over functions: `map`, `filter`, `reduce`, `apply`,
//! `comp`, `update` and their kin (Convex `Core.java` map/reduce/apply, `core.cvx` for the rest).

use super::{binding_arity, no_arity, Builtin};
use crate::query::core::{self, cast_pos, cast_val, check_exact, check_range, data, seq_elements};
use crate::query::docs::{d, Group::Functions};
use crate::query::{EvalError, Evaluator, Res, Value, REDUCED_SIGNAL};
use etch_formats::{Cell, Kind};

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d(
            "map",
            "f coll & colls",
            "f on each element (on the i-th of each coll); the first coll's kind, shortest length",
            Functions,
        ),
        examples: &[
            ("(map inc [1 2])", "[2 3]"),
            ("(map inc '(1 2))", "(2 3)"),
            ("(map + [1 2] [3 4 5])", "[4 6]"),
            ("(map inc nil)", "nil"),
            ("(map inc [1 2] nil)", "[]"),
            ("(map (fn [e] [(second e) (first e)]) {1 2})", "{2 1}"),
            ("(map inc 1)", "!CAST"),
            ("(map inc)", "!ARITY"),
        ],
        run: map,
    },
    Builtin {
        doc: d("mapv", "f coll & colls", "map into a vector", Functions),
        examples: &[
            ("(mapv inc '(1 2))", "[2 3]"),
            ("(mapv + nil)", "[]"),
            ("(mapv inc)", "!ARITY"),
        ],
        run: mapv,
    },
    Builtin {
        doc: d(
            "mapcat",
            "f coll & colls",
            "map, then concat the results",
            Functions,
        ),
        examples: &[
            ("(mapcat (fn [x] [x x]) [1 2])", "[1 1 2 2]"),
            ("(mapcat vector [1 2] [3 4])", "[1 3 2 4]"),
            ("(mapcat identity nil)", "nil"),
        ],
        run: mapcat,
    },
    Builtin {
        doc: d(
            "filter",
            "pred coll",
            "the elements for which pred is truthy, in a collection of the same kind",
            Functions,
        ),
        examples: &[
            ("(filter number? [1 :a 2])", "[1 2]"),
            ("(filter keyword? '(:a 2 :b))", "(:a :b)"),
            ("(filter (fn [e] (> (second e) 1)) {:a 1 :b 2})", "{:b 2}"),
            ("(filter keyword? nil)", "nil"),
            ("(filter number? 1)", "!CAST"),
            ("(filter number?)", "!ARITY"),
        ],
        run: filter,
    },
    Builtin {
        doc: d("filterv", "pred coll", "filter into a vector", Functions),
        examples: &[
            ("(filterv keyword? '(:a 2 :b))", "[:a :b]"),
            ("(filterv keyword? nil)", "[]"),
        ],
        run: filterv,
    },
    Builtin {
        doc: d(
            "reduce",
            "f init? coll",
            "(f (f init e1) e2)...; without init the first element starts; reduced stops early",
            Functions,
        ),
        examples: &[
            ("(reduce + [1 2 3])", "6"),
            ("(reduce + 10 [1 2 3])", "16"),
            ("(reduce + [])", "0"),
            ("(reduce + 2 nil)", "2"),
            ("(reduce conj '() '(1 2 3))", "(3 2 1)"),
            (
                "(reduce (fn [a x] (if (= x 3) (reduced a) (+ a x))) 0 [1 2 3 4])",
                "3",
            ),
            ("(reduce + 1 :a)", "!CAST"),
            ("(reduce +)", "!ARITY"),
        ],
        run: reduce,
    },
    Builtin {
        doc: d(
            "reduced",
            "x",
            "inside reduce: stop, with x as the result",
            Functions,
        ),
        examples: &[
            ("(reduce (fn [a x] (reduced x)) 0 [7 8])", "7"),
            ("(reduced 1)", "!EXCEPTION"),
        ],
        run: reduced,
    },
    Builtin {
        doc: d(
            "apply",
            "f args... coll",
            "f called with args followed by the elements of coll",
            Functions,
        ),
        examples: &[
            ("(apply + 1 2 [3 4])", "10"),
            ("(apply vector 1 [2 3])", "[1 2 3]"),
            ("(apply + 1 nil)", "1"),
            ("(apply + 1)", "!CAST"),
            ("(apply +)", "!ARITY"),
        ],
        run: apply,
    },
    Builtin {
        doc: d(
            "comp",
            "f & fs",
            "the function that applies the last of fs first and f last",
            Functions,
        ),
        examples: &[
            ("((comp inc inc) 1)", "3"),
            ("((comp str +) 1 2)", "\"3\""),
            ("(comp)", "!ARITY"),
        ],
        run: comp,
    },
    Builtin {
        doc: d("identity", "x & _", "x", Functions),
        examples: &[("(identity 7 8)", "7"), ("(identity)", "!ARITY")],
        run: identity,
    },
    Builtin {
        doc: d(
            "update",
            "m k f & args",
            "m with k's value v replaced by (f v args...)",
            Functions,
        ),
        examples: &[
            ("(update {:n 1} :n inc)", "{:n 2}"),
            ("(update [1 2 3] 2 + 10)", "[1 2 13]"),
            ("(update nil :s conj 1)", "{:s [1]}"),
            ("(update {})", "!ARITY"),
        ],
        run: update,
    },
    Builtin {
        doc: d(
            "update-in",
            "m ks f & args",
            "update along a path (an empty path updates m itself)",
            Functions,
        ),
        examples: &[
            ("(update-in {:a {:b 1}} [:a :b] inc)", "{:a {:b 2}}"),
            ("(update-in [1 2 3] [] count)", "3"),
        ],
        run: update_in,
    },
    Builtin {
        doc: d(
            "dissoc-in",
            "m ks",
            "m without the entry at path ks; maps left empty go too",
            Functions,
        ),
        examples: &[
            ("(dissoc-in {:a {:b 1 :c 2}} [:a :b])", "{:a {:c 2}}"),
            ("(dissoc-in {:a {:b 1}} [:a :b])", "{}"),
            ("(dissoc-in 3 [])", "3"),
            ("(dissoc-in [1] [0])", "!CAST"),
        ],
        run: dissoc_in,
    },
    Builtin {
        doc: d(
            "recur",
            "args...",
            "inside loop or fn: start it again with these values",
            Functions,
        ),
        examples: &[
            (
                "(loop [i 0 acc []] (if (< i 3) (recur (inc i) (conj acc i)) acc))",
                "[0 1 2]",
            ),
            (
                "((fn [n a] (if (> n 0) (recur (dec n) (* a n)) a)) 5 1)",
                "120",
            ),
            ("(loop [i 0] (if (< i 1) (recur 1 2) i))", "!ARITY"),
            ("(recur 1)", "!EXCEPTION"),
        ],
        run: recur,
    },
    Builtin {
        doc: d(
            "return",
            "x",
            "leave the enclosing function with x",
            Functions,
        ),
        examples: &[
            ("((fn [x] (+ 1 (return x))) [])", "[]"),
            ("(return 1)", "1"),
            ("(return)", "!ARITY"),
        ],
        run: return_,
    },
    Builtin {
        doc: d(
            "fail",
            "code? message?",
            "fails with :code (default :ASSERT) and message",
            Functions,
        ),
        examples: &[
            ("(fail)", "!ASSERT"),
            ("(fail \"no\")", "!ASSERT"),
            ("(fail :CAST \"bad\")", "!CAST"),
            ("(fail nil \"x\")", "!ARGUMENT"),
            ("(fail 1 2 3)", "!ARITY"),
        ],
        run: fail,
    },
    Builtin {
        doc: d("eval", "form", "evaluates form (data) as code", Functions),
        examples: &[
            ("(eval '(+ 3 7))", "10"),
            ("(eval (list 'str \\f \\o))", "\"fo\""),
            ("(eval)", "!ARITY"),
        ],
        run: eval,
    },
];

/// The error codes `fail` can raise: Convex's, and Etch's own. Another code fails with
/// `:ASSERT`, the code named in the message (codes are not open-ended here).
const FAIL_CODES: &[&str] = &[
    "ARGUMENT",
    "ARITY",
    "ASSERT",
    "BOUNDS",
    "CAST",
    "COMPILE",
    "DEPTH",
    "EXCEPTION",
    "EXPAND",
    "FUNDS",
    "JUICE",
    "MEMORY",
    "NOBODY",
    "STATE",
    "TODO",
    "TRUST",
    "UNDECLARED",
    "UNEXPECTED",
    "SYNTAX",
    "LOAD",
    "MISSING",
    "IO",
    "LIMIT",
    "QUOTA",
    "CANCELLED",
    "TIMEOUT",
    "SIGNATURE",
    "FORMAT",
    "PEER",
];

/// A value that can be called: a function, or data that looks up (Convex `RT.castFunction`).
fn callable(v: &Value, p: Option<usize>) -> Res<Value> {
    let ok = match v {
        Value::Data(c) => matches!(
            c.kind(),
            Kind::Map | Kind::Set | Kind::Vector | Kind::List | Kind::Keyword
        ),
        _ => true,
    };
    match (ok, p, v) {
        (true, _, _) => Ok(v.clone()),
        (false, Some(p), _) => Err(cast_pos(p, v, "Function")),
        (false, None, v) => Err(cast_val(&v.to_cell(), "Function")),
    }
}

fn is_structure(c: &Cell) -> bool {
    matches!(
        c.kind(),
        Kind::Vector | Kind::List | Kind::Map | Kind::Set | Kind::Index
    )
}

/// Builds a collection of `like`'s kind from results (a Map's results must be `[k v]` entries).
fn rebuild(ev: &mut Evaluator, like: &Cell, items: Vec<Cell>) -> Res<Cell> {
    core::check_size(&items)?;
    Ok(match like.kind() {
        Kind::List => Cell::list(items),
        Kind::Set => Cell::set(items),
        Kind::Map | Kind::Index => {
            let mut entries = Vec::with_capacity(items.len());
            for it in items {
                if it.kind() != Kind::Vector || it.count() != 2 {
                    return Err(EvalError::new(
                        "ARGUMENT",
                        format!("Invalid element type for {}", crate::query::type_name(like)),
                    ));
                }
                let kv = ev.elements(&it)?;
                entries.push((kv[0].clone(), kv[1].clone()));
            }
            if like.kind() == Kind::Index {
                Cell::index(entries).map_err(|e| EvalError::new("ARGUMENT", e.to_string()))?
            } else {
                Cell::map(entries)
            }
        }
        _ => Cell::vector(items),
    })
}

fn map(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_range("map", 2, usize::MAX, &args)?;
    let f = callable(&args[0], None)?;
    let first = data(&args, 2, "Sequence")?;
    let mut colls = Vec::new();
    for p in 2..=args.len() {
        let c = data(&args, p, "Sequence")?;
        if c.is_nil() {
            // nil anywhere: nothing to map (nil when the first is nil).
            return Ok(Value::Data(if first.is_nil() {
                first
            } else {
                rebuild(ev, &first, Vec::new())?
            }));
        }
        if !is_structure(&c) {
            return Err(cast_val(&c, "Sequence"));
        }
        colls.push(seq_elements(ev, &c, p, "Sequence")?);
    }
    let n = colls.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        ev.step(1)?;
        let call: Vec<Value> = colls.iter().map(|c| Value::Data(c[i].clone())).collect();
        out.push(ev.apply(&f, call)?.to_cell());
    }
    Ok(Value::Data(rebuild(ev, &first, out)?))
}

fn mapv(ev: &mut Evaluator, mut args: Vec<Value>) -> Res<Value> {
    if args.len() < 2 {
        return Err(binding_arity(args.len(), "[f fst & more]"));
    }
    args[1] = super::call(ev, "vec", vec![args[1].clone()])?;
    map(ev, args)
}

fn mapcat(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    if args.len() < 2 {
        return Err(binding_arity(args.len(), "[f coll & more]"));
    }
    let empty = super::call(ev, "empty", vec![args[1].clone()])?;
    let mapped = map(ev, args)?.to_cell();
    let mut parts = vec![empty];
    if !mapped.is_nil() {
        parts.extend(
            seq_elements(ev, &mapped, 2, "Sequence")?
                .into_iter()
                .map(Value::Data),
        );
    } else {
        parts.push(Value::Data(Cell::nil()));
    }
    super::call(ev, "concat", parts)
}

/// The elements of `filter`'s coll that pass `pred`.
fn passing(ev: &mut Evaluator, pred: &Value, items: Vec<Cell>) -> Res<Vec<Cell>> {
    let mut out = Vec::new();
    for it in items {
        ev.step(1)?;
        if crate::query::truthy(&ev.apply(pred, vec![Value::Data(it.clone())])?) {
            out.push(it);
        }
    }
    Ok(out)
}

fn filter_args(args: &[Value]) -> Res<Value> {
    if args.len() != 2 {
        return Err(EvalError::new(
            "ARITY",
            format!(
                "Expected 2 arguments but got {} for binding form: [pred coll]",
                args.len()
            ),
        ));
    }
    callable(&args[0], Some(1))
}

fn filter(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let pred = filter_args(&args)?;
    let coll = data(&args, 2, "DataStructure")?;
    match coll.kind() {
        Kind::Nil => Ok(Value::Data(coll)),
        Kind::String | Kind::Blob => Err(cast_pos(3, &args[1], "Sequence")),
        _ if !is_structure(&coll) => Err(cast_pos(1, &args[1], "DataStructure")),
        _ => {
            let items = seq_elements(ev, &coll, 2, "Sequence")?;
            let kept = passing(ev, &pred, items)?;
            Ok(Value::Data(rebuild(ev, &coll, kept)?))
        }
    }
}

fn filterv(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let pred = filter_args(&args)?;
    let coll = data(&args, 2, "Sequence")?;
    if !(coll.is_nil() || is_structure(&coll)) {
        return Err(cast_pos(3, &args[1], "Sequence"));
    }
    let items = seq_elements(ev, &coll, 2, "Sequence")?;
    let kept = passing(ev, &pred, items)?;
    core::check_size(&kept)?;
    Ok(Value::Data(Cell::vector(kept)))
}

fn reduce(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    if !(2..=3).contains(&args.len()) {
        return Err(EvalError::new(
            "ARITY",
            format!("reduce requires arity 3 but called with: {}", args.len()),
        ));
    }
    let f = callable(&args[0], Some(1))?;
    let last = args.len();
    let coll = data(&args, last, "Sequence")?;
    if !(coll.is_nil() || is_structure(&coll)) {
        return Err(cast_pos(last, &args[last - 1], "Sequence"));
    }
    let items = seq_elements(ev, &coll, last, "Sequence")?;
    let run = |ev: &mut Evaluator| -> Res<Value> {
        let mut items = items.into_iter();
        let mut acc = match (args.len(), items.len()) {
            (3, _) => args[1].clone(),
            (_, 0) => return ev.apply(&f, Vec::new()),
            (_, 1) => {
                let x = items
                    .next()
                    .map(Value::Data)
                    .unwrap_or(Value::Data(Cell::nil()));
                return ev.apply(&f, vec![x]);
            }
            _ => Value::Data(items.next().unwrap_or_else(Cell::nil)),
        };
        for it in items {
            ev.step(1)?;
            acc = ev.apply(&f, vec![acc, Value::Data(it)])?;
        }
        Ok(acc)
    };
    match run(ev) {
        Err(e) if e.code == REDUCED_SIGNAL => Ok(ev.take_reduced()),
        other => other,
    }
}

fn reduced(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("reduced", 1, &args)?;
    Err(ev.raise_reduced(args[0].clone()))
}

fn apply(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_range("apply", 2, usize::MAX, &args)?;
    let f = callable(&args[0], Some(1))?;
    let last = args.len();
    let coll = data(&args, last, "DataStructure")?;
    if !(coll.is_nil() || is_structure(&coll)) {
        return Err(cast_pos(last, &args[last - 1], "DataStructure"));
    }
    let mut call: Vec<Value> = args[1..last - 1].to_vec();
    call.extend(
        seq_elements(ev, &coll, last, "DataStructure")?
            .into_iter()
            .map(Value::Data),
    );
    ev.apply(&f, call)
}

fn comp(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    match args.len() {
        0 => Err(no_arity(0)),
        1 => Ok(args[0].clone()),
        n => {
            // (fn [& args] (f0 (f1 ... (apply fn-1 args)))), the functions captured.
            let names: Vec<String> = (0..n).map(|i| format!("comp-fn-{i}")).collect();
            let mut body = format!("(apply {} args)", names[n - 1]);
            for name in names[..n - 1].iter().rev() {
                body = format!("({name} {body})");
            }
            let captured = names.into_iter().zip(args).collect();
            ev.closure("[& args]", &body, captured)
        }
    }
}

fn identity(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    args.into_iter()
        .next()
        .ok_or_else(|| binding_arity(0, "[x & _]"))
}

fn update(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    if args.len() < 3 {
        return Err(no_arity(args.len()));
    }
    let old = super::call(ev, "get", vec![args[0].clone(), args[1].clone()])?;
    let mut call = vec![old];
    call.extend(args[3..].iter().cloned());
    let new = ev.apply(&args[2], call)?;
    super::call(ev, "assoc", vec![args[0].clone(), args[1].clone(), new])
}

fn update_in(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    if args.len() < 3 {
        return Err(no_arity(args.len()));
    }
    let path = args[1].to_cell();
    let old = if path.count() == 0 && matches!(path.kind(), Kind::Vector | Kind::List | Kind::Nil) {
        args[0].clone()
    } else {
        super::call(ev, "get-in", vec![args[0].clone(), args[1].clone()])?
    };
    let mut call = vec![old];
    call.extend(args[3..].iter().cloned());
    let new = ev.apply(&args[2], call)?;
    super::call(ev, "assoc-in", vec![args[0].clone(), args[1].clone(), new])
}

fn dissoc_in(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    if args.len() != 2 {
        return Err(no_arity(args.len()));
    }
    let ks = data(&args, 2, "Sequence")?;
    let ks = seq_elements(ev, &ks, 2, "Sequence")?;
    dissoc_path(ev, args[0].clone(), &ks)
}

fn dissoc_path(ev: &mut Evaluator, m: Value, ks: &[Cell]) -> Res<Value> {
    let Some((k, more)) = ks.split_first() else {
        return Ok(m);
    };
    let k = Value::Data(k.clone());
    if more.is_empty() {
        return super::call(ev, "dissoc", vec![m, k]);
    }
    let inner = super::call(ev, "get", vec![m.clone(), k.clone()])?;
    let inner = dissoc_path(ev, inner, more)?;
    if crate::query::truthy(&super::call(ev, "empty?", vec![inner.clone()])?) {
        super::call(ev, "dissoc", vec![m, k])
    } else {
        super::call(ev, "assoc", vec![m, k, inner])
    }
}

fn recur(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    Err(ev.raise_recur(args))
}

fn return_(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("return", 1, &args)?;
    Err(ev.raise_return(args[0].clone()))
}

fn fail(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_range("fail", 0, 2, &args)?;
    let text = |ev: &mut Evaluator, v: &Value| -> Res<String> {
        let c = v.to_cell();
        match c.kind() {
            Kind::String => Ok(String::from_utf8_lossy(&etch_formats::value::blob_bytes(
                &c,
                ev.resolver(),
            )?)
            .into_owned()),
            _ => ev.print(&c),
        }
    };
    let (code, message) = match args.as_slice() {
        [] => (Cell::nil(), "nil".to_string()),
        [m] => (Cell::nil(), text(ev, m)?),
        [c, m] => {
            let code = c.to_cell();
            if code.is_nil() {
                return Err(EvalError::new("ARGUMENT", "Error code cannot be nil"));
            }
            (code, text(ev, m)?)
        }
        _ => return Err(no_arity(args.len())),
    };
    if code.is_nil() {
        return Err(EvalError::new("ASSERT", message));
    }
    let name = crate::query::name_of(&code).unwrap_or_default();
    match FAIL_CODES.iter().find(|c| **c == name) {
        Some(c) => Err(EvalError::new(c, message)),
        None => Err(EvalError::new(
            "ASSERT",
            format!("{} {message}", ev.print(&code)?),
        )),
    }
}

fn eval(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("eval", 1, &args)?;
    ev.eval_data(&args[0].to_cell())
}
