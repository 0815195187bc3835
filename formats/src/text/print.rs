//! The printer: writes a value exactly as the Convex printer does (query.md §7).

use crate::cell::{tag, Cell, Kind, ResolveError, Resolver};
use crate::id::ValueId;
use crate::value;
use std::fmt::Write as _;

/// Default print limit of the query language (query.md §7).
pub const PRINT_BYTES_LIMIT: usize = 65_536;
/// Deepest value nesting the printer follows.
pub const PRINT_DEPTH_MAX: usize = 2048;

/// Why a value could not be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    /// A branch cell is not available.
    #[error("missing cell {0}")]
    Missing(ValueId),
    /// A child could not be resolved for another reason.
    #[error("{0}")]
    Resolve(String),
    /// The output exceeded the requested limit.
    #[error("Print limit exceeded")]
    Limit,
    /// The value nests deeper than [`PRINT_DEPTH_MAX`].
    #[error("value nests too deeply to print")]
    TooDeep,
}

impl From<ResolveError> for PrintError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Missing(id) => PrintError::Missing(id),
            other => PrintError::Resolve(other.to_string()),
        }
    }
}

/// Prints a value in full, resolving branch refs through `resolver`.
pub fn print(cell: &Cell, resolver: &dyn Resolver) -> Result<String, PrintError> {
    print_limited(cell, resolver, usize::MAX)
}

/// Prints a value, failing with [`PrintError::Limit`] once the text passes `limit` bytes.
pub fn print_limited(
    cell: &Cell,
    resolver: &dyn Resolver,
    limit: usize,
) -> Result<String, PrintError> {
    let mut p = Printer {
        out: String::new(),
        resolver,
        limit,
        shorten: None,
        shortened: Shortened::default(),
    };
    p.value(cell, 0)?;
    Ok(p.out)
}

/// How a display shortens long values: Blobs and Strings past `bytes_max` bytes and
/// collections past `entries_max` entries show their beginning and a count of the rest, e.g.
/// `0x0102…(+4094 bytes)` or `[0 1 2 …(+997 more)]`. Shortened text is for people: it does not
/// read back as the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shorten {
    /// Longest Blob or String shown whole, in bytes.
    pub bytes_max: usize,
    /// Most entries of a Vector, List, Map, Set or Index shown.
    pub entries_max: usize,
}

impl Default for Shorten {
    /// The shell's defaults: 1 KiB of bytes, 100 entries.
    fn default() -> Self {
        Shorten {
            bytes_max: 1024,
            entries_max: 100,
        }
    }
}

/// What a shortened print left out: how many values of each sort were cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shortened {
    /// Blobs shown only in part.
    pub blobs: u64,
    /// Strings shown only in part.
    pub strings: u64,
    /// Collections shown only in part.
    pub collections: u64,
}

impl Shortened {
    /// Whether anything was left out.
    pub fn any(&self) -> bool {
        self.blobs + self.strings + self.collections > 0
    }
}

/// Prints a value for display, shortening long parts as `shorten` says; reads only what it
/// shows (a prefix of a huge Blob costs one path of its tree). Fails with
/// [`PrintError::Limit`] once the text passes `limit` bytes.
pub fn print_shortened(
    cell: &Cell,
    resolver: &dyn Resolver,
    limit: usize,
    shorten: Shorten,
) -> Result<(String, Shortened), PrintError> {
    let mut p = Printer {
        out: String::new(),
        resolver,
        limit,
        shorten: Some(shorten),
        shortened: Shortened::default(),
    };
    p.value(cell, 0)?;
    Ok((p.out, p.shortened))
}

struct Printer<'a> {
    out: String,
    resolver: &'a dyn Resolver,
    limit: usize,
    shorten: Option<Shorten>,
    shortened: Shortened,
}

/// A walk callback's way to stop early; told apart from real errors by a flag.
fn stop_walk() -> ResolveError {
    ResolveError::Store(String::new())
}

/// Field names of CVM records that the Convex printer shows as maps.
fn record_fields(t: u8) -> Option<&'static [&'static str]> {
    Some(match t {
        0xd0 => &["origin", "sequence", "command"],
        0xd1 => &["origin", "sequence", "target", "amount"],
        0xd2 => &["origin", "sequence", "target", "offer", "call", "args"],
        0xd3 => &["origin", "sequence", "mode", "txs"],
        0xd4 => &["orders"],
        0xd5 => &["accounts", "peers", "globals", "schedule"],
        0xd6 => &["timestamp", "transactions"],
        0xd7 => &["timestamp", "consensus", "blocks"],
        _ => return None,
    })
}

impl Printer<'_> {
    fn push(&mut self, s: &str) -> Result<(), PrintError> {
        self.out.push_str(s);
        self.check()
    }

    fn check(&self) -> Result<(), PrintError> {
        if self.out.len() > self.limit {
            Err(PrintError::Limit)
        } else {
            Ok(())
        }
    }

    fn raw(&mut self, cell: &Cell) -> Result<(), PrintError> {
        self.push("#[")?;
        self.push(&hex::encode(cell.encoding()))?;
        self.push("]")
    }

    fn value(&mut self, cell: &Cell, depth: usize) -> Result<(), PrintError> {
        if depth > PRINT_DEPTH_MAX {
            return Err(PrintError::TooDeep);
        }
        let d = depth + 1;
        match cell.kind() {
            Kind::Nil => self.push("nil"),
            Kind::ByteFlag(tag::TRUE) => self.push("true"),
            Kind::ByteFlag(tag::FALSE) => self.push("false"),
            Kind::ByteFlag(_) | Kind::Coded(_) => self.raw(cell),
            Kind::Long | Kind::BigInt => {
                let text = match cell.as_long() {
                    Some(v) => v.to_string(),
                    None => cell.to_bigint().map(|b| b.to_string()).unwrap_or_default(),
                };
                self.push(&text)
            }
            Kind::Double => match cell.as_double() {
                Some(x) if x.is_nan() && x.to_bits() != 0x7ff8_0000_0000_0000 => self.raw(cell),
                Some(x) => self.push(&java_double(x)),
                None => self.raw(cell),
            },
            Kind::String => {
                let total = cell.count();
                let cut = self
                    .shorten
                    .map(|s| s.bytes_max)
                    .filter(|&m| total > m as u64);
                let bytes = match cut {
                    Some(m) => {
                        let mut b = value::blob_prefix(cell, self.resolver, m)?;
                        // Do not end on part of a character.
                        if let Err(e) = std::str::from_utf8(&b) {
                            if e.error_len().is_none() {
                                b.truncate(e.valid_up_to());
                            }
                        }
                        b
                    }
                    None => value::blob_bytes(cell, self.resolver)?,
                };
                let text = String::from_utf8_lossy(&bytes);
                let mut s = String::with_capacity(text.len() + 2);
                s.push('"');
                for ch in text.chars() {
                    match ch {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        '\t' => s.push_str("\\t"),
                        '\u{8}' => s.push_str("\\b"),
                        '\n' => s.push_str("\\n"),
                        '\r' => s.push_str("\\r"),
                        '\u{c}' => s.push_str("\\f"),
                        c => s.push(c),
                    }
                }
                s.push('"');
                if let Some(m) = cut {
                    self.shortened.strings += 1;
                    s.push_str(&format!("…(+{} bytes)", total - bytes.len().min(m) as u64));
                }
                self.push(&s)
            }
            Kind::Blob => {
                self.push("0x")?;
                if let Some(m) = self.shorten.map(|s| s.bytes_max) {
                    let total = cell.count();
                    if total > m as u64 {
                        let b = value::blob_prefix(cell, self.resolver, m)?;
                        self.shortened.blobs += 1;
                        self.push(&hex::encode(&b))?;
                        return self.push(&format!("…(+{} bytes)", total - b.len() as u64));
                    }
                }
                if cell.count() as usize > self.limit {
                    return Err(PrintError::Limit);
                }
                let bytes = value::blob_bytes(cell, self.resolver)?;
                self.push(&hex::encode(bytes))
            }
            Kind::Symbol => {
                let name =
                    String::from_utf8_lossy(cell.name_bytes().unwrap_or_default()).into_owned();
                self.push(&name)
            }
            Kind::Keyword => {
                let name =
                    String::from_utf8_lossy(cell.name_bytes().unwrap_or_default()).into_owned();
                self.push(":")?;
                self.push(&name)
            }
            Kind::Char => {
                let code = cell.as_char_code().unwrap_or(0xfffd);
                let text = match code {
                    0x0a => "\\newline".to_string(),
                    0x0d => "\\return".to_string(),
                    0x20 => "\\space".to_string(),
                    0x09 => "\\tab".to_string(),
                    c => format!("\\{}", char::from_u32(c).unwrap_or('\u{fffd}')),
                };
                self.push(&text)
            }
            Kind::Extension(tag::ADDRESS) => {
                let text = format!("#{}", cell.extension_value().unwrap_or(0));
                self.push(&text)
            }
            Kind::Extension(_) => self.raw(cell),
            Kind::Vector | Kind::List => {
                let (open, close) = if cell.tag() == tag::LIST {
                    ("(", ")")
                } else {
                    ("[", "]")
                };
                self.push(open)?;
                let max = self.entries_max();
                let mut shown = 0usize;
                let r = self.resolver;
                let mut err = None;
                let res = value::for_each_element(cell, r, &mut |c| {
                    if shown == max {
                        return Err(stop_walk());
                    }
                    if shown > 0 {
                        self.out.push(' ');
                    }
                    shown += 1;
                    self.value(&c, d).map_err(|e| {
                        err = Some(e);
                        stop_walk()
                    })
                });
                self.finish_walk(res, err, cell, shown, " ")?;
                self.push(close)
            }
            Kind::Map | Kind::Set => {
                let is_map = cell.tag() == tag::MAP;
                self.push(if is_map { "{" } else { "#{" })?;
                self.entries(cell, d)?;
                self.push("}")
            }
            Kind::Index => {
                self.push("#Index {")?;
                let max = self.entries_max();
                let mut shown = 0usize;
                let r = self.resolver;
                let mut err = None;
                let res = value::for_each_index_entry(cell, r, &mut |k, v| {
                    if shown == max {
                        return Err(stop_walk());
                    }
                    if shown > 0 {
                        self.out.push(',');
                    }
                    shown += 1;
                    self.pair(&k, &v, d).map_err(|e| {
                        err = Some(e);
                        stop_walk()
                    })
                });
                self.finish_walk(res, err, cell, shown, ",")?;
                self.push("}")
            }
            Kind::Syntax => {
                let refs = cell.refs();
                self.push("^")?;
                match refs.get(1).and_then(|m| m.cell()).filter(|m| !m.is_nil()) {
                    Some(meta) => {
                        let meta = meta.clone();
                        self.value(&meta, d)?;
                    }
                    None => self.push("{}")?,
                }
                self.push(" ")?;
                let datum = refs[0].fetch(self.resolver)?;
                self.value(&datum, d)
            }
            Kind::Signed => {
                let (Some(key), Some(sig)) = (cell.signed_public_key(), cell.signed_signature())
                else {
                    return self.raw(cell);
                };
                let head = format!(
                    "#Signed {{:public-key 0x{},:signature 0x{},:value ",
                    hex::encode(key),
                    hex::encode(sig)
                );
                self.push(&head)?;
                let v = cell.refs()[0].fetch(self.resolver)?;
                self.value(&v, d)?;
                self.push("}")
            }
            Kind::Record(tag::RESULT) if cell.count() == 5 => {
                let fields = value::elements(cell, self.resolver)?;
                self.push("#Result {")?;
                let names = ["id", "result", "error", "log", "info"];
                let mut first = true;
                for (name, f) in names.iter().zip(fields.iter()) {
                    if f.is_nil() && *name != "result" {
                        continue;
                    }
                    if !first {
                        self.push(",")?;
                    }
                    first = false;
                    self.push(":")?;
                    self.push(name)?;
                    self.push(" ")?;
                    self.value(f, d)?;
                }
                self.push("}")
            }
            Kind::Record(t) => match record_fields(t) {
                Some(names) if names.len() as u64 == cell.count() => {
                    let fields = value::elements(cell, self.resolver)?;
                    self.push("{")?;
                    for (i, (name, f)) in names.iter().zip(fields.iter()).enumerate() {
                        if i > 0 {
                            self.push(",")?;
                        }
                        self.push(":")?;
                        self.push(name)?;
                        self.push(" ")?;
                        self.value(f, d)?;
                    }
                    self.push("}")
                }
                _ => self.raw(cell),
            },
        }
    }

    fn pair(&mut self, k: &Cell, v: &Cell, d: usize) -> Result<(), PrintError> {
        self.value(k, d)?;
        self.out.push(' ');
        self.value(v, d)
    }

    fn entries(&mut self, cell: &Cell, d: usize) -> Result<(), PrintError> {
        let max = self.entries_max();
        let mut shown = 0usize;
        let r = self.resolver;
        let mut err = None;
        let res = value::for_each_entry(cell, r, &mut |k, v| {
            if shown == max {
                return Err(stop_walk());
            }
            if shown > 0 {
                self.out.push(',');
            }
            shown += 1;
            let out = match &v {
                Some(v) => self.pair(&k, v, d),
                None => self.value(&k, d),
            };
            out.map_err(|e| {
                err = Some(e);
                stop_walk()
            })
        });
        self.finish_walk(res, err, cell, shown, ",")
    }

    fn entries_max(&self) -> usize {
        self.shorten.map_or(usize::MAX, |s| s.entries_max)
    }

    /// Ends a walk over a collection's entries: an early stop (after `shown` entries) notes
    /// how many were left out; other errors pass on.
    fn finish_walk(
        &mut self,
        res: Result<(), ResolveError>,
        inner: Option<PrintError>,
        cell: &Cell,
        shown: usize,
        sep: &str,
    ) -> Result<(), PrintError> {
        let total = cell.count();
        if inner.is_none() && res.is_err() && shown == self.entries_max() && total > shown as u64 {
            self.shortened.collections += 1;
            let sep = if shown == 0 { "" } else { sep };
            return self.push(&format!("{sep}…(+{} more)", total - shown as u64));
        }
        finish(res, inner)
    }
}

/// Merges an error raised inside a walk callback with the walk's own result.
fn finish(res: Result<(), ResolveError>, inner: Option<PrintError>) -> Result<(), PrintError> {
    match (res, inner) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(e.into()),
        (Ok(()), None) => Ok(()),
    }
}

/// Formats a double as Java's `Double.toString` (JDK ≥ 19) does.
pub fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "##NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "##Inf".into()
        } else {
            "##-Inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let neg = x < 0.0;
    let a = x.abs();
    // Shortest round-trip digits; Java picks the closest 2-digit decimal when 1 digit would do.
    let (mut digits, mut exp) = sci_parts(&format!("{a:e}"));
    if digits.len() == 1 {
        let (d2, e2) = sci_parts(&format!("{a:.1e}"));
        digits = d2;
        exp = e2;
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if (1e-3..1e7).contains(&a) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(&digits);
                s.extend(std::iter::repeat_n('0', int_len - digits.len()));
                s.push_str(".0");
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        } else {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            s.push_str(&digits);
        }
    } else {
        s.push_str(&digits[..1]);
        s.push('.');
        if digits.len() > 1 {
            s.push_str(&digits[1..]);
        } else {
            s.push('0');
        }
        let _ = write!(s, "E{exp}");
    }
    s
}

/// Splits Rust's `{:e}` output ("1.2345e-7") into significant digits and exponent.
fn sci_parts(text: &str) -> (String, i32) {
    let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits.to_string()
    };
    (digits, exp.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::java_double;

    #[test]
    fn doubles_like_java() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (1.5, "1.5"),
            (0.001, "0.001"),
            (1234567.0, "1234567.0"),
            (1e7, "1.0E7"),
            (1.23456789e8, "1.23456789E8"),
            (1e-4, "1.0E-4"),
            (-2.5e-10, "-2.5E-10"),
            (100.5, "100.5"),
            (std::f64::consts::PI, "3.141592653589793"),
            (4.9e-324, "4.9E-324"),
            (2.2250738585072014e-308, "2.2250738585072014E-308"),
            (0.1, "0.1"),
            (1e23, "1.0E23"),
            (f64::MAX, "1.7976931348623157E308"),
        ];
        for (x, want) in cases {
            assert_eq!(java_double(*x), *want, "{x:e}");
        }
    }
}
