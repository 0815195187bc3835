//! Text, bytes and identity (query.md §5.3): `str`, `print`, names, keywords and symbols, encodings,
//! hashes and Value IDs, Blob building.

use super::Builtin;
use crate::query::core::{cast_pos, check_exact, data, data_v, str_part};
use crate::query::docs::{
    d,
    Group::{Storage, Text},
};
use crate::query::{
    limit_error, name_of, print_cell, EvalError, Evaluator, Res, Value, PRINT_TEXT_MAX_BYTES,
    RESULT_SIZE_MAX_BYTES,
};
use etch_formats::Cell;
use etch_formats::Kind;
use etch_formats::ValueId;

pub(super) const TABLE: &[Builtin] = &[
    Builtin {
        doc: d(
            "str",
            "x ...",
            "concatenated text (Strings raw, Blobs as hex)",
            Text,
        ),
        examples: &[
            ("(str)", "\"\""),
            ("(str 1)", "\"1\""),
            ("(str \\a)", "\"a\""),
        ],
        run: str_concat,
    },
    Builtin {
        doc: d("print", "x", "the printed form of x as a String", Text),
        examples: &[
            ("(print 1)", "\"1\""),
            ("(print \\a)", "\"\\\\a\""),
            ("(print nil)", "\"nil\""),
            ("(print)", "!ARITY"),
        ],
        run: print_text,
    },
    Builtin {
        doc: d(
            "name",
            "x",
            "the name of a Keyword or Symbol as a String",
            Text,
        ),
        examples: &[
            ("(name 'bar)", "\"bar\""),
            ("(name \"foo\")", "\"foo\""),
            ("(name :count)", "\"count\""),
            ("(name)", "!ARITY"),
            ("(name [])", "!CAST"),
        ],
        run: name_text,
    },
    Builtin {
        doc: d(
            "keyword",
            "x",
            "a Keyword named by a String, Keyword or Symbol",
            Text,
        ),
        examples: &[
            ("(keyword 'state)", ":state"),
            ("(keyword (str 'state))", ":state"),
            ("(keyword (name :state))", ":state"),
            ("(keyword)", "!ARITY"),
            ("(keyword 1)", "!CAST"),
        ],
        run: |ev, a| keyword_or_symbol(ev, "keyword", a),
    },
    Builtin {
        doc: d(
            "symbol",
            "x",
            "a Symbol named by a String, Keyword or Symbol",
            Text,
        ),
        examples: &[
            ("(symbol :count)", "count"),
            ("(symbol (str 'count))", "count"),
            ("(symbol (name 'count))", "count"),
            ("(symbol)", "!ARITY"),
            ("(symbol [])", "!CAST"),
        ],
        run: |ev, a| keyword_or_symbol(ev, "symbol", a),
    },
    Builtin {
        doc: d(
            "encoding",
            "x",
            "the CAD3 encoding of x's top cell as a Blob",
            Text,
        ),
        examples: &[
            ("(encoding 1)", "0x1101"),
            ("(encoding [1])", "0x80011101"),
            ("(encoding)", "!ARITY"),
        ],
        run: encoding_of,
    },
    Builtin {
        doc: d(
            "value-id",
            "x",
            "the 32-byte value ID of x: (hash (encoding x))",
            Storage,
        ),
        examples: &[
            (
                "(value-id 1)",
                "0xf38ddbe695dc96e72b09546f22cb841ad14d86b4ec879eab4afc44235e867166",
            ),
            ("(= (value-id [1 2]) (hash (encoding [1 2])))", "true"),
        ],
        run: value_id,
    },
    Builtin {
        doc: d("hash", "b", "SHA3-256 of the bytes of Blob b", Text),
        examples: &[
            (
                "(hash 0x)",
                "0xa7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
            ),
            ("(hash 1)", "!CAST"),
        ],
        run: hash_of,
    },
    Builtin {
        doc: d(
            "cat",
            "x ...",
            "raw byte concatenation of Blobs, Strings and Characters",
            Text,
        ),
        examples: &[
            ("(cat 0x01 0x0203)", "0x010203"),
            ("(cat)", "0x"),
            ("(cat 0x01 1)", "!CAST"),
        ],
        run: cat_bytes,
    },
    Builtin {
        doc: d("blob", "x", "bytes of x (a String is read as hex)", Text),
        examples: &[
            ("(blob -1)", "0xff"),
            ("(blob :A)", "0x41"),
            ("(blob :foo)", "0x666f6f"),
            ("(blob)", "!ARITY"),
            ("(blob \"f\")", "!CAST"),
        ],
        run: blob_of,
    },
    Builtin {
        doc: d(
            "print-full",
            "x",
            "x, shown in full by the shell (no shortening)",
            Text,
        ),
        examples: &[
            ("(print-full [1 \"a\"])", "[1 \"a\"]"),
            ("(print-full)", "!ARITY"),
        ],
        run: print_full,
    },
];

/// `str`.
fn str_concat(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let cells = || -> Vec<Cell> { args.iter().map(Value::to_cell).collect() };
    let mut out = Vec::new();
    for c in cells() {
        str_part(ev, &c, &mut out)?;
    }
    data_v(Cell::string_bytes(&out))
}

/// `print`.
fn print_text(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "print";
    check_exact(name, 1, &args)?;
    let s = print_cell(&args[0].to_cell(), ev.resolver(), PRINT_TEXT_MAX_BYTES)?;
    data_v(Cell::string(&s))
}

/// `name`.
fn name_text(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "name";
    check_exact(name, 1, &args)?;
    let c = args[0].to_cell();
    match c.kind() {
        Kind::Keyword | Kind::Symbol => data_v(Cell::string(&name_of(&c).unwrap_or_default())),
        Kind::String => data_v(c),
        _ => Err(cast_pos(1, &args[0], "String")),
    }
}

/// `keyword`, `symbol`.
fn keyword_or_symbol(ev: &mut Evaluator, name: &'static str, args: Vec<Value>) -> Res<Value> {
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
    if text.as_deref() == Some("") {
        return Err(EvalError::new(
            "ARGUMENT",
            format!("A {to} needs a name of 1 to 128 bytes, not an empty one"),
        ));
    }
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

/// `encoding`.
fn encoding_of(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "encoding";
    check_exact(name, 1, &args)?;
    data_v(Cell::blob(args[0].to_cell().encoding()))
}

/// `value-id`.
fn value_id(_ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "value-id";
    check_exact(name, 1, &args)?;
    let c = args[0].to_cell();
    data_v(Cell::blob(c.id().as_bytes()))
}

/// `hash`.
fn hash_of(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "hash";
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

/// `cat`.
fn cat_bytes(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
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

/// `blob`.
fn blob_of(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "blob";
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

/// `print-full`.
fn print_full(ev: &mut Evaluator, args: Vec<Value>) -> Res<Value> {
    let name = "print-full";
    check_exact(name, 1, &args)?;
    ev.request_full_print();
    Ok(args[0].clone())
}
