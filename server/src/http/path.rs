//! Drive paths in URLs (gateway.md "Paths"): the one parser of `/dlfs/{drive}/{path}` into
//! DLFS names, refusing what a drive cannot hold, and the one writer of paths back into hrefs.

use super::error;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use etch_engine::dlfs::is_valid_name;
use std::fmt::Write;

/// The path's components, each a valid DLFS name: `.`, `..`, NUL and names a drive cannot hold
/// are refused (400), never resolved.
pub(super) fn components(path: &str) -> Result<Vec<String>, Response> {
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." || c.contains('\0') || !is_valid_name(c) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("{c:?} is not a valid name in a drive path (no ., .., / or NUL)"),
            ));
        }
        out.push(c.to_string());
    }
    Ok(out)
}

/// A path as a URL path: each component percent-encoded (RFC 3986 unreserved bytes kept).
pub(super) fn href(comps: &[String]) -> String {
    let mut out = String::from("/dlfs/");
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in c.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The drive path a `Destination` header names (an absolute URL or a path, under `/dlfs/`).
pub(super) fn destination(headers: &HeaderMap) -> Result<Vec<String>, Response> {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, m.to_string());
    let raw = headers
        .get("destination")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("COPY and MOVE need a Destination header"))?;
    let path = match raw.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => raw,
    };
    let rest = path
        .strip_prefix("/dlfs/")
        .ok_or_else(|| bad("the Destination must lie under /dlfs/"))?;
    let decoded = percent_decode(rest).ok_or_else(|| bad("the Destination is not valid UTF-8"))?;
    components(&decoded)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
