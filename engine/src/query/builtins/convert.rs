//! Casts, bit operations, hashes and text splitting (Convex `Core.java` long, int, double,
//! byte, char, bit-and/or/xor/not, sha256, keccak256, split, join, nan?).

use super::Builtin;
use crate::query::core::{cast_pos, check_exact, data};
use crate::query::docs::{d, Group::Numbers, Group::Text};
use crate::query::{limit_error, EvalError, Evaluator, Res, Value, RESULT_SIZE_MAX_BYTES};
use etch_formats::{Cell, Kind};
use num_bigint::BigInt;

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d("long", "x", "x as a Long: integers in range, Doubles truncated, chars their code, a Blob's last 8 bytes", Numbers),
        examples: &[("(long 3.9)", "3"), ("(long \\a)", "97"), ("(long 0x0102)", "258"), ("(long 0xff)", "-1"), ("(long 9223372036854775809.0)", "9223372036854775807"), ("(long 1e30)", "!ARGUMENT"), ("(long ##Inf)", "!ARGUMENT"), ("(long :a)", "!CAST"), ("(long true)", "!CAST")],
        run: long,
    },
    Builtin {
        doc: d("int", "x", "x as an Integer (big if need be); a Blob as two's complement", Numbers),
        examples: &[("(int 2.5)", "2"), ("(int 0xff)", "-1"), ("(int :a)", "!CAST")],
        run: int,
    },
    Builtin {
        doc: d("double", "x", "x as a Double", Numbers),
        examples: &[("(double 3)", "3.0"), ("(double 1.5)", "1.5"), ("(double \"1\")", "!CAST")],
        run: double,
    },
    Builtin {
        doc: d("byte", "x", "the low 8 bits of an integer as a Long 0-255; a Blob's last byte", Numbers),
        examples: &[("(byte 257)", "1"), ("(byte -1)", "255"), ("(byte 0x0a0b)", "11"), ("(byte :a)", "!CAST")],
        run: byte,
    },
    Builtin {
        doc: d("char", "x", "the character with code point x (or a character, or a UTF-8 Blob)", Text),
        examples: &[("(char 97)", "\\a"), ("(char 0xc3a9)", "\\\u{e9}"), ("(char -1)", "!ARGUMENT"), ("(char :a)", "!CAST")],
        run: char,
    },
    Builtin {
        doc: d("bit-and", "a b", "bitwise and of two Longs", Numbers),
        examples: &[("(bit-and 12 10)", "8"), ("(bit-and 1 1.0)", "!CAST")],
        run: bit_and,
    },
    Builtin {
        doc: d("bit-or", "a b", "bitwise or of two Longs", Numbers),
        examples: &[("(bit-or 12 10)", "14")],
        run: bit_or,
    },
    Builtin {
        doc: d("bit-xor", "a b", "bitwise exclusive or of two Longs", Numbers),
        examples: &[("(bit-xor 12 10)", "6")],
        run: bit_xor,
    },
    Builtin {
        doc: d("bit-not", "a", "bitwise complement of a Long", Numbers),
        examples: &[("(bit-not 0)", "-1"), ("(bit-not 1 2)", "!ARITY")],
        run: bit_not,
    },
    Builtin {
        doc: d("address", "x", "the Address #x of a Long (or of a Blob of at most 8 bytes)", Text),
        examples: &[("(address 12)", "#12"), ("(address 0x0c)", "#12"), ("(address -1)", "!ARGUMENT"), ("(address :a)", "!CAST"), ("(address)", "!ARITY")],
        run: address,
    },
    Builtin {
        doc: d("nan?", "x", "whether x is the Double ##NaN", Numbers),
        examples: &[("(nan? ##NaN)", "true"), ("(nan? 1)", "false"), ("(nan? :a)", "false")],
        run: nan_q,
    },
    Builtin {
        doc: d("sha256", "blob", "SHA-256 of the bytes of blob", Text),
        examples: &[("(sha256 0x)", "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), ("(sha256 \"a\")", "!CAST")],
        run: sha256,
    },
    Builtin {
        doc: d("keccak256", "blob", "Keccak-256 (Ethereum's) of the bytes of blob", Text),
        examples: &[("(keccak256 0x)", "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")],
        run: keccak256,
    },
    Builtin {
        doc: d("split", "s ch", "the parts of String s between the character ch", Text),
        examples: &[("(split \"a,b,,c\" \\,)", "[\"a\" \"b\" \"\" \"c\"]"), ("(split \"\" \\,)", "[\"\"]"), ("(split :a \\,)", "!CAST")],
        run: split,
    },
    Builtin {
        doc: d("join", "strings ch", "the Strings of a sequence joined with the character ch", Text),
        examples: &[("(join [\"a\" \"b\"] \\,)", "\"a,b\""), ("(join [] \\,)", "\"\""), ("(join [1] \\,)", "!CAST")],
        run: join,
    },
];

/// The bytes of a Blob or String argument, bounded by the result size limit.
fn bytes_of(ev: &mut Evaluator, c: &Cell) -> Res<Vec<u8>> {
    if c.count() > RESULT_SIZE_MAX_BYTES {
        return Err(limit_error());
    }
    ev.step(c.count() / 4096 + 1)?;
    Ok(etch_formats::value::blob_bytes(c, ev.resolver())?)
}

fn long_v(n: i64) -> Res<Value> {
    Ok(Value::Data(Cell::long(n)))
}

/// Convex `RT.castLong`: `None` where it refuses.
fn as_long(ev: &mut Evaluator, c: &Cell) -> Res<Option<Result<i64, ()>>> {
    Ok(Some(match c.kind() {
        // A Double within ±2^63 truncates, saturating at the Long range (Java's cast, as
        // Convex's CVMDouble.toInteger); a larger one, or one not finite, is out of range.
        _ if c.as_double().is_some() => {
            let d = c.as_double().unwrap_or(f64::NAN);
            const TWO_63: f64 = 9_223_372_036_854_775_808.0;
            if d.is_finite() && (-TWO_63..=TWO_63).contains(&d) {
                Ok(d as i64)
            } else {
                Err(())
            }
        }
        _ if c.to_bigint().is_some() => c.as_long().ok_or(()),
        _ if c.as_char_code().is_some() => Ok(i64::from(c.as_char_code().unwrap_or(0))),
        // The last 8 bytes (fewer: sign-extended from the first), two's complement.
        Kind::Blob => {
            let b = bytes_of(ev, c)?;
            let last = &b[b.len().saturating_sub(8)..];
            let fill = if last.first().is_some_and(|x| x & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut full = [fill; 8];
            full[8 - last.len()..].copy_from_slice(last);
            Ok(i64::from_be_bytes(full))
        }
        _ => return Ok(None),
    }))
}

fn long(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("long", 1, &args)?;
    let c = data(&args, 1, "Long")?;
    match as_long(ev, &c)? {
        Some(Ok(n)) => long_v(n),
        Some(Err(())) => Err(EvalError::new("ARGUMENT", "Out of range")),
        None => Err(cast_pos(1, &args[0], "Long")),
    }
}

fn int(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("int", 1, &args)?;
    let c = data(&args, 1, "Integer")?;
    if let Some(i) = c.to_bigint().filter(|_| c.as_double().is_none()) {
        return Ok(Value::Data(Cell::integer(&i).map_err(|_| limit_error())?));
    }
    if let Some(d) = c.as_double() {
        // As Convex: a finite Double truncates to a Long, saturating.
        if !d.is_finite() {
            return Err(EvalError::new("ARGUMENT", "Out of range"));
        }
        return long_v(d as i64);
    }
    if c.kind() == Kind::Blob {
        let b = bytes_of(ev, &c)?;
        let i = BigInt::from_signed_bytes_be(&b);
        return Ok(Value::Data(Cell::integer(&i).map_err(|_| limit_error())?));
    }
    match as_long(ev, &c)? {
        Some(Ok(n)) => long_v(n),
        _ => Err(cast_pos(1, &args[0], "Integer")),
    }
}

fn double(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("double", 1, &args)?;
    let c = data(&args, 1, "Double")?;
    let d = match (c.as_double(), c.to_bigint()) {
        (Some(d), _) => d,
        (None, Some(i)) => i.to_string().parse::<f64>().unwrap_or(f64::NAN),
        _ => return Err(cast_pos(1, &args[0], "Double")),
    };
    Ok(Value::Data(Cell::double(if d.is_nan() {
        f64::NAN
    } else {
        d
    })))
}

fn byte(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("byte", 1, &args)?;
    let c = data(&args, 1, "Long")?;
    if c.kind() == Kind::Blob {
        let b = bytes_of(ev, &c)?;
        return long_v(b.last().map_or(0, |x| i64::from(*x)));
    }
    match c.to_bigint().filter(|_| c.as_double().is_none()) {
        Some(i) => {
            let low = i.to_signed_bytes_le().first().copied().unwrap_or(0);
            long_v(i64::from(low))
        }
        None => Err(cast_pos(1, &args[0], "Long")),
    }
}

fn char(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("char", 1, &args)?;
    let c = data(&args, 1, "Character")?;
    if c.as_char_code().is_some() {
        return Ok(Value::Data(c));
    }
    let code: i64 = if c.kind() == Kind::Blob {
        let b = bytes_of(ev, &c)?;
        let s = std::str::from_utf8(&b)
            .ok()
            .filter(|s| s.chars().count() == 1)
            .ok_or_else(|| EvalError::new("ARGUMENT", "Not a valid UTF-8 character"))?;
        s.chars().next().map_or(-1, |ch| i64::from(u32::from(ch)))
    } else {
        match c.to_bigint().filter(|_| c.as_double().is_none()) {
            Some(i) => i64::try_from(i.clone())
                .map_err(|_| EvalError::new("ARGUMENT", format!("Invalid code point: {i}")))?,
            None => return Err(cast_pos(1, &args[0], "Character")),
        }
    };
    u32::try_from(code)
        .ok()
        .and_then(Cell::char)
        .map(Value::Data)
        .ok_or_else(|| EvalError::new("ARGUMENT", format!("Invalid code point: {code}")))
}

/// A Long argument (no Doubles, no big integers): `:CAST` at position `p`.
fn long_arg(args: &[Value], p: usize) -> Res<i64> {
    match &args[p - 1] {
        Value::Data(c) if c.as_double().is_none() => c.as_long(),
        _ => None,
    }
    .ok_or_else(|| cast_pos(p, &args[p - 1], "Long"))
}

fn bits(name: &str, args: &[Value], f: fn(i64, i64) -> i64) -> Res<Value> {
    check_exact(name, 2, args)?;
    long_v(f(long_arg(args, 1)?, long_arg(args, 2)?))
}

fn bit_and(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    bits("bit-and", &args, |a, b| a & b)
}

fn bit_or(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    bits("bit-or", &args, |a, b| a | b)
}

fn bit_xor(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    bits("bit-xor", &args, |a, b| a ^ b)
}

fn bit_not(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("bit-not", 1, &args)?;
    long_v(!long_arg(&args, 1)?)
}

fn nan_q(_: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("nan?", 1, &args)?;
    let nan = matches!(&args[0], Value::Data(c) if c.as_double().is_some_and(f64::is_nan));
    Ok(Value::Data(Cell::bool(nan)))
}

/// The bytes of a Blob argument (`:CAST` for anything else, Strings included).
fn blob_arg(ev: &mut Evaluator, args: &[Value], name: &str) -> Res<Vec<u8>> {
    check_exact(name, 1, args)?;
    match &args[0] {
        Value::Data(c) if c.kind() == Kind::Blob => bytes_of(ev, c),
        v => Err(cast_pos(1, v, "Blob")),
    }
}

fn sha256(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    use sha2::Digest;
    let b = blob_arg(ev, &args, "sha256")?;
    Ok(Value::Data(Cell::blob(&sha2::Sha256::digest(&b))))
}

fn keccak256(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    use sha3::Digest;
    let b = blob_arg(ev, &args, "keccak256")?;
    Ok(Value::Data(Cell::blob(&sha3::Keccak256::digest(&b))))
}

/// A character argument (a Character, a Long code point, a one-character String).
fn char_arg(args: &[Value], p: usize) -> Res<char> {
    let c = match &args[p - 1] {
        Value::Data(c) => c.clone(),
        v => return Err(cast_pos(p, v, "Character")),
    };
    let code = c
        .as_char_code()
        .or_else(|| c.as_long().and_then(|n| u32::try_from(n).ok()))
        .or_else(|| {
            let b = c.flat_bytes().filter(|_| c.kind() == Kind::String)?;
            let s = std::str::from_utf8(b).ok()?;
            let mut it = s.chars();
            let ch = it.next()?;
            it.next().is_none().then_some(u32::from(ch))
        });
    code.and_then(char::from_u32)
        .ok_or_else(|| cast_pos(p, &args[p - 1], "Character"))
}

fn split(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("split", 2, &args)?;
    let s = match &args[0] {
        Value::Data(c) if c.kind() == Kind::String => bytes_of(ev, c)?,
        v => return Err(cast_pos(1, v, "String")),
    };
    let ch = char_arg(&args, 2)?;
    let mut sep = [0u8; 4];
    let sep = ch.encode_utf8(&mut sep).as_bytes();
    let mut parts = Vec::new();
    let mut rest = s.as_slice();
    loop {
        match rest.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                parts.push(Cell::string_bytes(&rest[..i]));
                rest = &rest[i + sep.len()..];
            }
            None => {
                parts.push(Cell::string_bytes(rest));
                break;
            }
        }
    }
    ev.step(parts.len() as u64)?;
    Ok(Value::Data(Cell::vector(parts)))
}

fn join(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("join", 2, &args)?;
    let coll = match &args[0] {
        Value::Data(c) if matches!(c.kind(), Kind::Vector | Kind::List) => c.clone(),
        v => return Err(cast_pos(1, v, "Sequence")),
    };
    let ch = char_arg(&args, 2)?;
    let mut out = Vec::new();
    for (i, s) in ev.elements(&coll)?.iter().enumerate() {
        if s.kind() != Kind::String {
            return Err(EvalError::new("CAST", "Element in join is not a String."));
        }
        if i > 0 {
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        out.extend(bytes_of(ev, s)?);
        if out.len() as u64 > RESULT_SIZE_MAX_BYTES {
            return Err(limit_error());
        }
    }
    Ok(Value::Data(Cell::string_bytes(&out)))
}

fn address(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    check_exact("address", 1, &args)?;
    let c = data(&args, 1, "Address")?;
    let n: i64 = match c.kind() {
        _ if c.as_double().is_none() && c.to_bigint().is_some() => c
            .as_long()
            .ok_or_else(|| EvalError::new("ARGUMENT", "Address out of range"))?,
        Kind::Blob if c.count() <= 8 => {
            let b = bytes_of(ev, &c)?;
            let mut full = [0u8; 8];
            full[8 - b.len()..].copy_from_slice(&b);
            i64::from_be_bytes(full)
        }
        Kind::Blob => return Err(EvalError::new("ARGUMENT", "Blob too long for an Address")),
        _ if c.kind() == Kind::Extension(etch_formats::tag::ADDRESS) => return Ok(Value::Data(c)),
        _ => return Err(cast_pos(1, &args[0], "Address")),
    };
    u64::try_from(n)
        .map(|n| Value::Data(Cell::address(n)))
        .map_err(|_| EvalError::new("ARGUMENT", format!("Invalid address: {n}")))
}
