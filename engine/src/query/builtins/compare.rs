//! Arithmetic, comparison, logic and type predicates (query.md §5.4, §5.5; Convex `Core.java`,
//! `NumericsTest.java`): integers grow into BigInts, `/` gives a Double, comparison of
//! non-numbers is `:CAST`.

use super::Builtin;
use crate::query::core::{
    arith, bool_v, cast_pos, check_exact, check_range, cmp_num, data_v, is_coll, num_arg, num_cell,
    Num,
};
use crate::query::docs::{
    d,
    Group::{Numbers, Predicates},
};
use crate::query::{truthy, type_name, EvalError, Evaluator, Res, Value};
use etch_formats::Cell;
use etch_formats::Kind;
use num_bigint::BigInt;

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d("+", "n ...", "sum", Numbers),
        examples: &[
            ("(+)", "0"),
            ("(+ 1)", "1"),
            ("(+ 1 2)", "3"),
            ("(+ nil)", "!CAST"),
        ],
        run: |ev, a| add_or_multiply(ev, "+", a),
    },
    Builtin {
        doc: d("*", "n ...", "product", Numbers),
        examples: &[
            ("(*)", "1"),
            ("(* 1.0)", "1.0"),
            ("(* 0 10)", "0"),
            ("(* nil)", "!CAST"),
        ],
        run: |ev, a| add_or_multiply(ev, "*", a),
    },
    Builtin {
        doc: d("-", "n ...", "negation or difference", Numbers),
        examples: &[
            ("(- -1)", "1"),
            ("(- 3 1)", "2"),
            ("(- -1.0)", "1.0"),
            ("(-)", "!ARITY"),
            ("(- nil)", "!CAST"),
        ],
        run: subtract,
    },
    Builtin {
        doc: d("/", "n d ...", "quotient, always a Double", Numbers),
        examples: &[
            ("(/ 2)", "0.5"),
            ("(/ 2.0)", "0.5"),
            ("(/ 1 0)", "##Inf"),
            ("(/)", "!ARITY"),
            ("(/ nil)", "!CAST"),
        ],
        run: divide,
    },
    Builtin {
        doc: d("inc", "i", "i + 1", Numbers),
        examples: &[
            ("(inc 1)", "2"),
            ("(inc (dec 4))", "4"),
            ("(inc (byte 1))", "2"),
            ("(inc)", "!ARITY"),
            ("(inc \\c)", "!CAST"),
        ],
        run: |ev, a| inc_or_dec(ev, "inc", a),
    },
    Builtin {
        doc: d("dec", "i", "i - 1", Numbers),
        examples: &[
            ("(dec 1)", "0"),
            ("(dec 4)", "3"),
            ("(dec -9)", "-10"),
            ("(dec)", "!ARITY"),
            ("(dec nil)", "!CAST"),
        ],
        run: |ev, a| inc_or_dec(ev, "dec", a),
    },
    Builtin {
        doc: d("min", "n ...", "the least", Numbers),
        examples: &[
            ("(min 7)", "7"),
            ("(min 1 2)", "1"),
            ("(min -0.0)", "-0.0"),
            ("(min)", "!ARITY"),
            ("(min \\c)", "!CAST"),
        ],
        run: |ev, a| min_or_max(ev, "min", a),
    },
    Builtin {
        doc: d("max", "n ...", "the greatest", Numbers),
        examples: &[
            ("(max 7)", "7"),
            ("(max -0.0)", "-0.0"),
            ("(max 1 2 3 4)", "4"),
            ("(max)", "!ARITY"),
        ],
        run: |ev, a| min_or_max(ev, "max", a),
    },
    Builtin {
        doc: d(
            "=",
            "x ...",
            "structural equality (identical encodings)",
            Numbers,
        ),
        examples: &[("(=)", "true"), ("(= \\a)", "true"), ("(= 1 1)", "true")],
        run: equal,
    },
    Builtin {
        doc: d("==", "n ...", "numeric equality", Numbers),
        examples: &[
            ("(==)", "true"),
            ("(== 1 2)", "false"),
            ("(== 3 3)", "true"),
            ("(== [])", "!CAST"),
        ],
        run: |ev, a| compare(ev, "==", a),
    },
    Builtin {
        doc: d("<", "n ...", "strictly increasing", Numbers),
        examples: &[
            ("(<)", "true"),
            ("(< 1)", "true"),
            ("(< 1 2)", "true"),
            ("(< 1 :foo)", "!CAST"),
        ],
        run: |ev, a| compare(ev, "<", a),
    },
    Builtin {
        doc: d(">", "n ...", "strictly decreasing", Numbers),
        examples: &[
            ("(>)", "true"),
            ("(> 1 2)", "false"),
            ("(> 3 2 1)", "true"),
            ("(> nil)", "!CAST"),
        ],
        run: |ev, a| compare(ev, ">", a),
    },
    Builtin {
        doc: d("<=", "n ...", "non-decreasing", Numbers),
        examples: &[
            ("(<=)", "true"),
            ("(<= 1 2)", "true"),
            ("(<= 0 -0)", "true"),
            ("(<= 1 3 \"hello\")", "!CAST"),
        ],
        run: |ev, a| compare(ev, "<=", a),
    },
    Builtin {
        doc: d(">=", "n ...", "non-increasing", Numbers),
        examples: &[
            ("(>=)", "true"),
            ("(>= 3 2)", "true"),
            ("(>= 0 0)", "true"),
            ("(>= 'foo)", "!CAST"),
        ],
        run: |ev, a| compare(ev, ">=", a),
    },
    Builtin {
        doc: d("!=", "n ...", "numeric inequality", Numbers),
        examples: &[
            ("(!= 1 2)", "true"),
            ("(!= 1 1.0)", "false"),
            ("(!= 1 :a)", "!CAST"),
        ],
        run: |ev, a| compare(ev, "!=", a),
    },
    Builtin {
        doc: d("not", "x", "true for nil and false, else false", Numbers),
        examples: &[
            ("(not 1)", "false"),
            ("(not [])", "false"),
            ("(not nil)", "true"),
            ("(not)", "!ARITY"),
        ],
        run: not,
    },
    Builtin {
        doc: d("boolean", "x", "x's truth as a Boolean", Numbers),
        examples: &[
            ("(boolean 1)", "true"),
            ("(boolean 0)", "true"),
            ("(boolean [])", "true"),
            ("(boolean)", "!ARITY"),
        ],
        run: boolean,
    },
    Builtin {
        doc: d("nil?", "x", "is x nil", Predicates),
        examples: &[
            ("(nil? 1)", "false"),
            ("(nil? [])", "false"),
            ("(nil? nil)", "true"),
        ],
        run: |_, a| test("nil?", a, |v| kind_is(v, |c| c.is_nil())),
    },
    Builtin {
        doc: d("boolean?", "x", "is x a Boolean", Predicates),
        examples: &[
            ("(boolean? false)", "true"),
            ("(boolean? nil)", "false"),
            ("(boolean? 1 2)", "!ARITY"),
        ],
        run: |_, a| test("boolean?", a, |v| kind_is(v, |c| c.as_bool().is_some())),
    },
    Builtin {
        doc: d("number?", "x", "is x a number", Predicates),
        examples: &[
            ("(number? 0)", "true"),
            ("(number? 0.5)", "true"),
            ("(number? nil)", "false"),
        ],
        run: |_, a| {
            test("number?", a, |v| {
                kind_is(v, |c| {
                    matches!(c.kind(), Kind::Long | Kind::BigInt | Kind::Double)
                })
            })
        },
    },
    Builtin {
        doc: d("long?", "x", "is x a 64-bit Integer", Predicates),
        examples: &[
            ("(long? 1)", "true"),
            ("(long? nil)", "false"),
            ("(long? 7.0)", "false"),
        ],
        run: |_, a| test("long?", a, |v| kind_is(v, |c| c.kind() == Kind::Long)),
    },
    Builtin {
        doc: d("int?", "x", "is x an Integer", Predicates),
        examples: &[
            ("(int? 0)", "true"),
            ("(int? 8.0)", "false"),
            ("(int? :foo)", "false"),
            ("(int?)", "!ARITY"),
        ],
        run: |_, a| {
            test("int?", a, |v| {
                kind_is(v, |c| matches!(c.kind(), Kind::Long | Kind::BigInt))
            })
        },
    },
    Builtin {
        doc: d("double?", "x", "is x a Double", Predicates),
        examples: &[
            ("(double? 0)", "false"),
            ("(double? [])", "false"),
            ("(double? 1.0)", "true"),
            ("(double?)", "!ARITY"),
        ],
        run: |_, a| test("double?", a, |v| kind_is(v, |c| c.kind() == Kind::Double)),
    },
    Builtin {
        doc: d("str?", "x", "is x a String", Predicates),
        examples: &[
            ("(str? 1)", "false"),
            ("(str? \"\")", "true"),
            ("(str? \\Q)", "false"),
        ],
        run: |_, a| test("str?", a, |v| kind_is(v, |c| c.kind() == Kind::String)),
    },
    Builtin {
        doc: d("blob?", "x", "is x a Blob", Predicates),
        examples: &[
            ("(blob? 17)", "false"),
            ("(blob? nil)", "false"),
            ("(blob? 0xFF)", "true"),
        ],
        run: |_, a| test("blob?", a, |v| kind_is(v, |c| c.kind() == Kind::Blob)),
    },
    Builtin {
        doc: d("keyword?", "x", "is x a Keyword", Predicates),
        examples: &[
            ("(keyword? 1)", "false"),
            ("(keyword? nil)", "false"),
            ("(keyword? :foo)", "true"),
        ],
        run: |_, a| test("keyword?", a, |v| kind_is(v, |c| c.kind() == Kind::Keyword)),
    },
    Builtin {
        doc: d("symbol?", "x", "is x a Symbol", Predicates),
        examples: &[
            ("(symbol? 1)", "false"),
            ("(symbol? nil)", "false"),
            ("(symbol? 'foo)", "true"),
        ],
        run: |_, a| test("symbol?", a, |v| kind_is(v, |c| c.kind() == Kind::Symbol)),
    },
    Builtin {
        doc: d("address?", "x", "is x an Address", Predicates),
        examples: &[
            ("(address? 1)", "false"),
            ("(address? nil)", "false"),
            ("(address? \"0a1b2c3d\")", "false"),
        ],
        run: |_, a| test("address?", a, |v| kind_is(v, |c| type_name(c) == "Address")),
    },
    Builtin {
        doc: d("vector?", "x", "is x a Vector", Predicates),
        examples: &[
            ("(vector? 1)", "false"),
            ("(vector? [])", "true"),
            ("(vector? nil)", "false"),
        ],
        run: |_, a| test("vector?", a, |v| kind_is(v, |c| c.kind() == Kind::Vector)),
    },
    Builtin {
        doc: d("list?", "x", "is x a List", Predicates),
        examples: &[
            ("(list? 1)", "false"),
            ("(list? nil)", "false"),
            ("(list? '())", "true"),
        ],
        run: |_, a| test("list?", a, |v| kind_is(v, |c| c.kind() == Kind::List)),
    },
    Builtin {
        doc: d("map?", "x", "is x a Map", Predicates),
        examples: &[
            ("(map? 1)", "false"),
            ("(map? {})", "true"),
            ("(map? nil)", "false"),
        ],
        run: |_, a| {
            test("map?", a, |v| {
                kind_is(v, |c| matches!(c.kind(), Kind::Map | Kind::Index))
            })
        },
    },
    Builtin {
        doc: d("set?", "x", "is x a Set", Predicates),
        examples: &[
            ("(set? 1)", "false"),
            ("(set? nil)", "false"),
            ("(set? #{})", "true"),
        ],
        run: |_, a| test("set?", a, |v| kind_is(v, |c| c.kind() == Kind::Set)),
    },
    Builtin {
        doc: d("coll?", "x", "is x a collection", Predicates),
        examples: &[
            ("(coll? 1)", "false"),
            ("(coll? {})", "true"),
            ("(coll? [])", "true"),
        ],
        run: |_, a| test("coll?", a, |v| kind_is(v, is_coll)),
    },
    Builtin {
        doc: d("countable?", "x", "does count work on x", Predicates),
        examples: &[
            ("(countable? \"abc\")", "true"),
            ("(countable? 1)", "false"),
        ],
        run: |_, a| {
            test("countable?", a, |v| {
                kind_is(v, |c| {
                    is_coll(c) || matches!(c.kind(), Kind::Blob | Kind::String)
                })
            })
        },
    },
    Builtin {
        doc: d("fn?", "x", "is x a function", Predicates),
        examples: &[
            ("(fn? 0)", "false"),
            ("(fn? {})", "false"),
            ("(fn? fn?)", "true"),
        ],
        run: |_, a| test("fn?", a, |v| v.is_fn()),
    },
    Builtin {
        doc: d("zero?", "x", "is x numerically zero", Predicates),
        examples: &[
            ("(zero? 0)", "true"),
            ("(zero? \\c)", "false"),
            ("(zero? 0.0)", "true"),
        ],
        run: |_, a| {
            test("zero?", a, |v| {
                kind_is(v, |c| c.as_long() == Some(0) || c.as_double() == Some(0.0))
            })
        },
    },
];

/// `+`, `*`.
fn add_or_multiply(_ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
    data_v(num_cell(arith(
        &args,
        if name == "+" { '+' } else { '*' },
    )?)?)
}

/// `-`.
fn subtract(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "-";
    check_range(name, 1, usize::MAX, &args)?;
    data_v(num_cell(arith(&args, '-')?)?)
}

/// `/`.
fn divide(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "/";
    check_range(name, 1, usize::MAX, &args)?;
    data_v(num_cell(arith(&args, '/')?)?)
}

/// `inc`, `dec`.
fn inc_or_dec(_ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
    check_exact(name, 1, &args)?;
    let one = if name == "inc" { 1 } else { -1 };
    // An integer past a Long steps as a BigInt (and may come back to a Long).
    if let Value::Data(c) = &args[0] {
        if c.kind() == Kind::BigInt {
            if let Some(b) = c.to_bigint() {
                return data_v(num_cell(Num::Int(b + one))?);
            }
        }
    }
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
            let b = BigInt::from(i) + one;
            data_v(num_cell(Num::Int(b))?)
        }
    }
}

/// `min`, `max`.
fn min_or_max(_ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
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

/// `=`.
fn equal(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    let a = cells();
    bool_v(a.windows(2).all(|w| w[0] == w[1]))
}

/// `==`, `<`, `>`, `<=`, `>=`, `!=`.
fn compare(_ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
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

/// `not`.
fn not(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "not";
    check_exact(name, 1, &args)?;
    bool_v(!truthy(&args[0]))
}

/// `boolean`.
fn boolean(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "boolean";
    check_exact(name, 1, &args)?;
    bool_v(truthy(&args[0]))
}

/// A type predicate: exactly one argument, any value.
fn test(name: &str, args: Vec<Value>, pred: fn(&Value) -> bool) -> Res<Value> {
    if args.len() != 1 {
        return Err(EvalError::new(
            "ARITY",
            format!("{name} requires exactly one argument"),
        ));
    }
    bool_v(pred(&args[0]))
}

fn cell_of(v: &Value) -> Option<&Cell> {
    match v {
        Value::Data(c) => Some(c),
        _ => None,
    }
}

fn kind_is(v: &Value, f: fn(&Cell) -> bool) -> bool {
    cell_of(v).map(f).unwrap_or(false)
}
