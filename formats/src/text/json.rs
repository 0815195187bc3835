//! Values as JSON, the way Convex's `convex.core.util.JSON.appendJSON` writes them (compact: no
//! spaces). nil → `null`; booleans; integers (any size) as digits; a Double as Java's
//! `Double.toString` (NaN and ±Infinity → `null`: JSON has no such literals); a String as a
//! JSON string; a Keyword or Symbol as its name (`:foo` → `"foo"`); a Blob as `"0x…"`; an
//! Address as its number; a Char as a one-character string; a Vector, List or Set as an array;
//! a Map or Index as an object (records and SignedData too: `{"public-key":…,"signature":…,
//! "value":…}`), whose keys are a String's text, a Keyword's or Symbol's name, else the key's
//! printed text; anything else as its printed text in a string.
//!
//! Strings escape `\` and `"`, `\n`, `\r` and `\t`, and other control characters as `\u00xx`;
//! everything else, non-ASCII included, goes out as it is (UTF-8).

use super::print::{print_limited, PrintError};
use crate::cell::{tag, Cell, Kind, Resolver};
use crate::value;

/// Bytes the printed text of a key or an unconvertible value may take (Convex's
/// `PRINT_LIMIT`); beyond it a key reads `<<Print limit exceeded>>` and a value `null`.
const PRINT_LIMIT_BYTES: usize = 65_536;
/// Nesting the writer follows at most.
const JSON_DEPTH_MAX: usize = 200;

/// The value as JSON; fails with [`PrintError::Limit`] once the text passes `limit` bytes.
pub fn print_json(
    cell: &Cell,
    resolver: &dyn Resolver,
    limit: usize,
) -> Result<String, PrintError> {
    let mut w = Writer {
        out: String::new(),
        resolver,
        limit,
    };
    w.value(cell, 0)?;
    Ok(w.out)
}

struct Writer<'a> {
    out: String,
    resolver: &'a dyn Resolver,
    limit: usize,
}

impl Writer<'_> {
    fn push(&mut self, s: &str) -> Result<(), PrintError> {
        if self.out.len() + s.len() > self.limit {
            return Err(PrintError::Limit);
        }
        self.out.push_str(s);
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), PrintError> {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        for c in s.chars() {
            match c {
                '\\' => q.push_str("\\\\"),
                '"' => q.push_str("\\\""),
                '\n' => q.push_str("\\n"),
                '\r' => q.push_str("\\r"),
                '\t' => q.push_str("\\t"),
                c if (c as u32) < 0x20 => q.push_str(&format!("\\u{:04x}", c as u32)),
                c => q.push(c),
            }
        }
        q.push('"');
        self.push(&q)
    }

    fn text_of(&self, cell: &Cell) -> Result<String, PrintError> {
        let b = value::blob_bytes(cell, self.resolver)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// A map key's JSON string.
    fn key(&mut self, k: &Cell) -> Result<(), PrintError> {
        let text = match k.kind() {
            Kind::String => self.text_of(k)?,
            Kind::Keyword | Kind::Symbol => {
                String::from_utf8_lossy(k.name_bytes().unwrap_or_default()).into_owned()
            }
            _ => match print_limited(k, self.resolver, PRINT_LIMIT_BYTES) {
                Ok(t) => t,
                Err(PrintError::Limit) => "<<Print limit exceeded>>".to_string(),
                Err(e) => return Err(e),
            },
        };
        self.string(&text)
    }

    fn entries(&mut self, pairs: Vec<(Cell, Cell)>, depth: usize) -> Result<(), PrintError> {
        self.push("{")?;
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                self.push(",")?;
            }
            self.key(k)?;
            self.push(":")?;
            self.value(v, depth + 1)?;
        }
        self.push("}")
    }

    fn value(&mut self, cell: &Cell, depth: usize) -> Result<(), PrintError> {
        if depth > JSON_DEPTH_MAX {
            return Err(PrintError::TooDeep);
        }
        let r = self.resolver;
        match cell.kind() {
            Kind::Nil => self.push("null"),
            Kind::ByteFlag(0xb0) => self.push("false"),
            Kind::ByteFlag(0xb1) => self.push("true"),
            Kind::Long | Kind::BigInt => {
                let t = print_limited(cell, r, self.limit)?;
                self.push(&t)
            }
            Kind::Double => match cell.as_double() {
                Some(d) if d.is_finite() => {
                    let t = print_limited(cell, r, self.limit)?;
                    self.push(&t)
                }
                _ => self.push("null"),
            },
            Kind::String => {
                if cell.count() as usize > self.limit {
                    return Err(PrintError::Limit);
                }
                let t = self.text_of(cell)?;
                self.string(&t)
            }
            Kind::Keyword | Kind::Symbol => {
                let name =
                    String::from_utf8_lossy(cell.name_bytes().unwrap_or_default()).into_owned();
                self.string(&name)
            }
            Kind::Blob => {
                if (cell.count() as usize).saturating_mul(2) > self.limit {
                    return Err(PrintError::Limit);
                }
                let b = value::blob_bytes(cell, r)?;
                self.string(&format!("0x{}", hex::encode(b)))
            }
            Kind::Char => {
                let c = char::from_u32(cell.as_char_code().unwrap_or(0xfffd)).unwrap_or('\u{fffd}');
                self.string(&c.to_string())
            }
            Kind::Extension(tag::ADDRESS) => {
                let n = cell.extension_value().unwrap_or(0).to_string();
                self.push(&n)
            }
            Kind::Vector | Kind::List | Kind::Set => {
                let items = if cell.kind() == Kind::Set {
                    let mut v = Vec::new();
                    value::for_each_entry(cell, r, &mut |k, _| {
                        v.push(k);
                        Ok(())
                    })?;
                    v
                } else {
                    value::elements(cell, r)?
                };
                self.push("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(",")?;
                    }
                    self.value(item, depth + 1)?;
                }
                self.push("]")
            }
            Kind::Map => {
                let mut pairs = Vec::new();
                value::for_each_entry(cell, r, &mut |k, v| {
                    pairs.push((k, v.unwrap_or_else(Cell::nil)));
                    Ok(())
                })?;
                self.entries(pairs, depth)
            }
            Kind::Index => {
                let mut pairs = Vec::new();
                value::for_each_index_entry(cell, r, &mut |k, v| {
                    pairs.push((k, v));
                    Ok(())
                })?;
                self.entries(pairs, depth)
            }
            Kind::Signed => match (cell.signed_public_key(), cell.signed_signature()) {
                (Some(key), Some(sig)) => {
                    let v = cell.refs()[0].fetch(r)?;
                    let kw = |n: &str| Cell::keyword(n).unwrap_or_else(|_| Cell::nil());
                    let pairs = vec![
                        (kw("public-key"), Cell::blob(key)),
                        (kw("signature"), Cell::blob(sig)),
                        (kw("value"), v),
                    ];
                    self.entries(pairs, depth)
                }
                _ => self.printed(cell),
            },
            _ => self.printed(cell),
        }
    }

    /// Anything JSON has no form for: its printed text as a string (`null` past the limit).
    fn printed(&mut self, cell: &Cell) -> Result<(), PrintError> {
        match print_limited(cell, self.resolver, PRINT_LIMIT_BYTES) {
            Ok(t) => self.string(&t),
            Err(PrintError::Limit) => self.push("null"),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::NoResolver;
    use crate::text::read::read_one;

    fn json(text: &str) -> String {
        print_json(&read_one(text).unwrap(), &NoResolver, 1 << 20).unwrap()
    }

    #[test]
    fn values_as_convex_writes_them() {
        assert_eq!(json("nil"), "null");
        assert_eq!(json("[true false]"), "[true,false]");
        assert_eq!(json("-9223372036854775809"), "-9223372036854775809");
        assert_eq!(
            json("[1.0 1.0E10 -0.0 ##NaN ##Inf]"),
            "[1.0,1.0E10,-0.0,null,null]"
        );
        assert_eq!(json(":foo"), "\"foo\"");
        assert_eq!(json("0xcafebabe"), "\"0xcafebabe\"");
        assert_eq!(json("0x"), "\"0x\"");
        assert_eq!(json("#12"), "12");
        assert_eq!(json("\\a"), "\"a\"");
        assert_eq!(json("(1 2)"), "[1,2]");
        assert_eq!(json("\"a\\\"b\\\\c\\nd\\te\""), "\"a\\\"b\\\\c\\nd\\te\"");
        assert_eq!(json("{:a 1}"), "{\"a\":1}");
        assert_eq!(json("{1 2}"), "{\"1\":2}");
        assert_eq!(json("{\"s\" [1 {:b nil}]}"), "{\"s\":[1,{\"b\":null}]}");
        assert_eq!(json("#{7}"), "[7]");
        assert_eq!(json("{[1 2] 3}"), "{\"[1 2]\":3}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let s = Cell::string("a\u{8}b\u{1f}é");
        assert_eq!(
            print_json(&s, &NoResolver, 100).unwrap(),
            "\"a\\u0008b\\u001fé\""
        );
        assert!(matches!(
            print_json(&s, &NoResolver, 3),
            Err(PrintError::Limit)
        ));
    }
}
