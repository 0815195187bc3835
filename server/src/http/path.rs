//! Drive paths in URLs (gateway.md "Paths"): the one parser of `/dlfs/{drive}/{path}` into
//! DLFS names, refusing what a drive cannot hold, and the one writer of paths back into hrefs.

use super::error;
use axum::http::StatusCode;
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
