//! Integer division and the maths functions (Convex `Core.java` quot/rem/mod/div, abs, signum,
//! floor, ceil, sqrt, pow, exp): integer results stay integers (growing into big integers),
//! the others are Doubles, as in Convex.

use super::Builtin;
use crate::query::core::{cast_val, check_exact, num_arg, num_cell, Num};
use crate::query::docs::{d, Group::Numbers};
use crate::query::{EvalError, Evaluator, Res, Value};
use num_bigint::{BigInt, Sign};

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d(
            "quot",
            "a b",
            "integer quotient, rounded toward zero",
            Numbers,
        ),
        examples: &[
            ("(quot 10 4)", "2"),
            ("(quot -10 4)", "-2"),
            ("(quot 1 0)", "!ARGUMENT"),
            ("(quot 1.0 2)", "!CAST"),
        ],
        run: quot,
    },
    Builtin {
        doc: d("rem", "a b", "remainder of quot: the sign of a", Numbers),
        examples: &[
            ("(rem 14 10)", "4"),
            ("(rem -1 7)", "-1"),
            ("(rem 1 0)", "!ARGUMENT"),
        ],
        run: rem,
    },
    Builtin {
        doc: d("mod", "a b", "modulus: never negative", Numbers),
        examples: &[
            ("(mod -1 7)", "6"),
            ("(mod -1 -7)", "6"),
            ("(mod 10000000000000000000000001 -2)", "1"),
            ("(mod 1 0)", "!ARGUMENT"),
        ],
        run: modulus,
    },
    Builtin {
        doc: d(
            "div",
            "a b",
            "integer division rounded down (for a positive b)",
            Numbers,
        ),
        examples: &[
            ("(div -10 3)", "-4"),
            ("(div 10 3)", "3"),
            ("(div 1 0)", "!ARGUMENT"),
        ],
        run: div,
    },
    Builtin {
        doc: d("abs", "x", "absolute value, of the same type", Numbers),
        examples: &[
            ("(abs -17)", "17"),
            ("(abs -9223372036854775808)", "9223372036854775808"),
            ("(abs -1.5)", "1.5"),
            ("(abs :a)", "!CAST"),
        ],
        run: abs,
    },
    Builtin {
        doc: d("signum", "x", "-1, 0 or 1, of the same type", Numbers),
        examples: &[
            ("(signum -5)", "-1"),
            ("(signum 2.5)", "1.0"),
            ("(signum 0)", "0"),
            ("(signum nil)", "!CAST"),
        ],
        run: signum,
    },
    Builtin {
        doc: d("floor", "x", "largest whole Double not above x", Numbers),
        examples: &[("(floor 1)", "1.0"), ("(floor -1.5)", "-2.0")],
        run: floor,
    },
    Builtin {
        doc: d("ceil", "x", "smallest whole Double not below x", Numbers),
        examples: &[("(ceil 1.2)", "2.0"), ("(ceil -1)", "-1.0")],
        run: ceil,
    },
    Builtin {
        doc: d(
            "sqrt",
            "x",
            "square root, a Double (##NaN below 0)",
            Numbers,
        ),
        examples: &[
            ("(sqrt 4)", "2.0"),
            ("(sqrt -1)", "##NaN"),
            ("(sqrt :a)", "!CAST"),
        ],
        run: sqrt,
    },
    Builtin {
        doc: d("pow", "x y", "x to the power y, a Double", Numbers),
        examples: &[
            ("(pow 2 10)", "1024.0"),
            ("(pow 2 0.5)", "1.4142135623730951"),
            ("(pow 2)", "!ARITY"),
        ],
        run: pow,
    },
    Builtin {
        doc: d("exp", "x", "e to the power x, a Double", Numbers),
        examples: &[("(exp 0)", "1.0"), ("(exp ##-Inf)", "0.0")],
        run: exp,
    },
];

/// The two integer arguments of a division; `:ARGUMENT` for a zero divisor.
fn int_pair(name: &str, args: &[Value]) -> Res<(BigInt, BigInt)> {
    check_exact(name, 2, args)?;
    let int = |v: &Value| match v {
        Value::Data(c) if c.as_double().is_none() => c.to_bigint(),
        _ => None,
    };
    let (Some(a), Some(b)) = (int(&args[0]), int(&args[1])) else {
        return Err(EvalError::new(
            "CAST",
            "Can't convert value(s) to type Integer",
        ));
    };
    if b.sign() == Sign::NoSign {
        return Err(EvalError::new(
            "ARGUMENT",
            format!("Division by zero in {name}"),
        ));
    }
    Ok((a, b))
}

fn int_v(i: BigInt) -> Res<Value> {
    Ok(Value::Data(num_cell(Num::Int(i))?))
}

fn quot(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let (a, b) = int_pair("quot", &args)?;
    int_v(a / b)
}

fn rem(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let (a, b) = int_pair("rem", &args)?;
    int_v(a % b)
}

fn modulus(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let (a, b) = int_pair("mod", &args)?;
    let m = BigInt::from(b.magnitude().clone());
    let r: BigInt = a % &m;
    int_v(if r.sign() == Sign::Minus { r + m } else { r })
}

fn div(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let (a, b) = int_pair("div", &args)?;
    // Convex: a negative dividend is moved down by b - 1 before truncating.
    let a = if a.sign() == Sign::Minus {
        a - (&b - 1)
    } else {
        a
    };
    int_v(a / b)
}

fn one(name: &str, args: &[Value]) -> Res<Num> {
    check_exact(name, 1, args)?;
    num_arg(args, 1)
}

fn double(x: f64) -> Res<Value> {
    Ok(Value::Data(num_cell(Num::Dbl(x))?))
}

fn abs(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    match one("abs", &args)? {
        Num::Int(i) => int_v(BigInt::from(i.magnitude().clone())),
        Num::Dbl(x) => double(x.abs()),
    }
}

fn signum(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("signum", 1, &args)?;
    let n = num_arg(&args, 1).map_err(|_| cast_val(&args[0].to_cell(), "Number"))?;
    match n {
        Num::Int(i) => int_v(BigInt::from(match i.sign() {
            Sign::Minus => -1,
            Sign::NoSign => 0,
            Sign::Plus => 1,
        })),
        // Zeros and NaN are their own sign.
        Num::Dbl(x) if x == 0.0 || x.is_nan() => double(x),
        Num::Dbl(x) => double(x.signum()),
    }
}

fn unary(name: &str, args: &[Value], f: fn(f64) -> f64) -> Res<Value> {
    double(f(one(name, args)?.f64()))
}

fn floor(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    unary("floor", &args, f64::floor)
}

fn ceil(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    unary("ceil", &args, f64::ceil)
}

fn sqrt(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    unary("sqrt", &args, f64::sqrt)
}

fn exp(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    unary("exp", &args, f64::exp)
}

fn pow(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("pow", 2, &args)?;
    let cast = |_| EvalError::new("CAST", "Can't convert value(s) to type Double");
    let x = num_arg(&args, 1).map_err(cast)?.f64();
    let y = num_arg(&args, 2).map_err(cast)?.f64();
    double(x.powf(y))
}
