//! Generators of the reference vectors (`gen:` specs, tests/vectors/README.md §1.1): large or
//! unprintable values described in one line, e.g. `gen:blob len=70000 fill=mod251`.
//! `etch encode` accepts these lines too, so vector files can be replayed through the CLI.

use crate::build::BuildError;
use crate::cell::Cell;
use num_bigint::BigInt;
use num_traits::{One, Zero};

/// Largest generated value, in bytes or elements (keeps a typo from eating all memory).
pub const GEN_SIZE_MAX: u64 = 1 << 30;

fn bad(spec: &str, why: &str) -> BuildError {
    BuildError(format!("bad generator '{spec}': {why}"))
}

/// SplitMix64 as defined by the vectors README.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next output.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` bytes: successive outputs big-endian, the last one cut.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_be_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Bytes of a named fill (`mod251`, `lin7`, `zero`, `alpha`, `digits`, `splitmix`).
pub fn fill(kind: &str, len: usize, seed: u64) -> Option<Vec<u8>> {
    Some(match kind {
        "mod251" => (0..len).map(|i| (i % 251) as u8).collect(),
        "lin7" => (0..len).map(|i| ((7 * i + 3) % 256) as u8).collect(),
        "zero" => vec![0; len],
        "alpha" => (0..len).map(|i| b'a' + (i % 26) as u8).collect(),
        "digits" => (0..len).map(|i| b'0' + (i % 10) as u8).collect(),
        "splitmix" => SplitMix64(seed).bytes(len),
        _ => return None,
    })
}

fn params(rest: &str) -> Vec<(&str, &str)> {
    // Values may contain spaces inside parentheses: split on spaces at depth 0.
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = rest.as_bytes();
    for i in 0..=bytes.len() {
        let c = bytes.get(i).copied().unwrap_or(b' ');
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' if depth == 0 => {
                let part = &rest[start..i];
                if !part.is_empty() {
                    match part.split_once('=') {
                        Some((k, v)) => out.push((k, v)),
                        None => out.push((part, "")),
                    }
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

fn get<'a>(ps: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    ps.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn num(spec: &str, ps: &[(&str, &str)], key: &str) -> Result<u64, BuildError> {
    let v: u64 = get(ps, key)
        .ok_or_else(|| bad(spec, &format!("missing {key}=")))?
        .parse()
        .map_err(|_| bad(spec, &format!("{key} is not a number")))?;
    if v > GEN_SIZE_MAX {
        return Err(bad(spec, &format!("{key} larger than {GEN_SIZE_MAX}")));
    }
    Ok(v)
}

fn code_point(spec: &str, text: &str) -> Result<u32, BuildError> {
    let hex = text
        .strip_prefix("U+")
        .ok_or_else(|| bad(spec, "expected U+XXXX"))?;
    u32::from_str_radix(hex, 16).map_err(|_| bad(spec, "bad code point"))
}

/// Builds the value a `gen:` spec describes.
pub fn generate(spec: &str) -> Result<Cell, BuildError> {
    let body = spec
        .strip_prefix("gen:")
        .ok_or_else(|| bad(spec, "must start with gen:"))?;
    let (kind, rest) = body.split_once(' ').unwrap_or((body, ""));
    let ps = params(rest);
    match kind {
        "blob" | "string" => {
            if kind == "string" {
                if let Some(units) = get(&ps, "utf16") {
                    let mut cps = Vec::new();
                    for chunk in units.as_bytes().chunks(4) {
                        let s = std::str::from_utf8(chunk).map_err(|_| bad(spec, "bad utf16"))?;
                        cps.push(u16::from_str_radix(s, 16).map_err(|_| bad(spec, "bad utf16"))?);
                    }
                    let text = String::from_utf16(&cps).map_err(|_| bad(spec, "bad utf16"))?;
                    return Ok(Cell::string(&text));
                }
                if let Some(rep) = get(&ps, "repeat") {
                    let cp = code_point(spec, rep)?;
                    let ch = char::from_u32(cp).ok_or_else(|| bad(spec, "bad code point"))?;
                    let count = num(spec, &ps, "count")? as usize;
                    let mut text = get(&ps, "prefix").unwrap_or("").to_string();
                    text.extend(std::iter::repeat_n(ch, count));
                    return Ok(Cell::string(&text));
                }
            }
            let len = num(spec, &ps, "len")? as usize;
            let f = get(&ps, "fill").ok_or_else(|| bad(spec, "missing fill="))?;
            let seed: u64 = get(&ps, "seed")
                .map(|s| s.parse().unwrap_or(0))
                .unwrap_or(0);
            let bytes = fill(f, len, seed).ok_or_else(|| bad(spec, "unknown fill"))?;
            Ok(if kind == "blob" {
                Cell::blob(&bytes)
            } else {
                Cell::string_bytes(&bytes)
            })
        }
        "char" => {
            let cp = code_point(spec, rest.trim())?;
            Cell::char(cp).ok_or_else(|| bad(spec, "code point out of range"))
        }
        "integer" => Cell::integer(
            &int_expr(rest.trim()).ok_or_else(|| bad(spec, "bad integer expression"))?,
        ),
        "vector" | "list" | "set" => {
            let n = num(spec, &ps, "n")?;
            let e = get(&ps, "elem").ok_or_else(|| bad(spec, "missing elem="))?;
            let items = (0..n)
                .map(|i| element(e, i))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(match kind {
                "vector" => Cell::vector(items),
                "list" => Cell::list(items),
                _ => Cell::set(items),
            })
        }
        "map" | "index" => {
            let n = num(spec, &ps, "n")?;
            let k = get(&ps, "key").ok_or_else(|| bad(spec, "missing key="))?;
            let v = get(&ps, "value").ok_or_else(|| bad(spec, "missing value="))?;
            let entries = (0..n)
                .map(|i| Ok((element(k, i)?, element(v, i)?)))
                .collect::<Result<Vec<_>, BuildError>>()?;
            if kind == "map" {
                Ok(Cell::map(entries))
            } else {
                Cell::index(entries)
            }
        }
        _ => Err(bad(spec, "unknown generator")),
    }
}

/// An integer expression: `[-]B^E[(+|-)C]` or a plain decimal.
fn int_expr(text: &str) -> Option<BigInt> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let split = t.find(['+', '-']).unwrap_or(t.len());
    let (head, tail) = t.split_at(split);
    let mut v: BigInt = match head.split_once('^') {
        Some((b, e)) => {
            let b: BigInt = b.parse().ok()?;
            let e: u32 = e.parse().ok()?;
            if e > 40_000 {
                return None;
            }
            let mut acc = BigInt::one();
            for _ in 0..e {
                acc *= &b;
            }
            acc
        }
        None => head.parse().ok()?,
    };
    if neg {
        v = -v;
    }
    if !tail.is_empty() {
        let adj: BigInt = tail.trim_start_matches('+').parse().ok()?;
        v += adj;
    }
    Some(v)
}

/// An element or key expression of the vectors README evaluated at `i`.
pub fn element(expr: &str, i: u64) -> Result<Cell, BuildError> {
    let err = || BuildError(format!("unknown element expression '{expr}'"));
    let lin = |e: &str| -> Option<u64> {
        // `i`, `7*i`, `3*i+1`
        let (mul, add) = match e.split_once('+') {
            Some((m, a)) => (m, a.parse::<u64>().ok()?),
            None => (e, 0),
        };
        let k = match mul {
            "i" => 1,
            m => m.strip_suffix("*i")?.parse::<u64>().ok()?,
        };
        Some(k * i + add)
    };
    if let Some(v) = lin(expr) {
        return Ok(Cell::long(v as i64));
    }
    if let Some(prefix) = expr.strip_prefix(':').and_then(|e| e.strip_suffix("{i}")) {
        return Cell::keyword(&format!("{prefix}{i}"));
    }
    if let Some(inner) = expr.strip_prefix("str(").and_then(|e| e.strip_suffix(')')) {
        if inner == "i" {
            return Ok(Cell::string(&i.to_string()));
        }
        if let Some(p) = inner.strip_suffix("{i}") {
            return Ok(Cell::string(&format!("{p}{i}")));
        }
        for f in ["alpha", "digits"] {
            if let Some(rest) = inner.strip_prefix(f).and_then(|r| r.strip_prefix('(')) {
                let (n, _) = rest.split_once(")+i").ok_or_else(err)?;
                let n: usize = n.parse().map_err(|_| err())?;
                let head = fill(f, n, 0).ok_or_else(err)?;
                let mut s = String::from_utf8(head).map_err(|_| err())?;
                s.push_str(&i.to_string());
                return Ok(Cell::string(&s));
            }
        }
        return Err(err());
    }
    if expr == "vector(0..i-1)" {
        return Ok(Cell::vector((0..i).map(|j| Cell::long(j as i64)).collect()));
    }
    if expr == "vector(n=i+1, elem=2*j)" {
        return Ok(Cell::vector(
            (0..=i).map(|j| Cell::long(2 * j as i64)).collect(),
        ));
    }
    if let Some(inner) = expr
        .strip_prefix("blob(4-byte big-endian ")
        .and_then(|e| e.strip_suffix(')'))
    {
        let v = lin(inner).ok_or_else(err)?;
        return Ok(Cell::blob(&(v as u32).to_be_bytes()));
    }
    if expr == "nil" {
        return Ok(Cell::nil());
    }
    let _ = BigInt::zero();
    Err(err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_expressions() {
        assert_eq!(int_expr("2^63"), Some(BigInt::from(1u64 << 63)));
        assert_eq!(int_expr("-2^63-1"), Some(-BigInt::from(1u64 << 63) - 1));
        assert_eq!(
            int_expr("-10^40+7").map(|v| v.to_string()),
            Some("-9999999999999999999999999999999999999993".into())
        );
    }

    #[test]
    fn splitmix_first_output() {
        // Reference value of SplitMix64 seeded with 0.
        assert_eq!(SplitMix64(0).next_u64(), 0xe220a8397b1dcdaf);
    }
}
