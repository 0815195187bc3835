//! Drive paths in URLs (gateway.md "Paths"): the one parser of `/dlfs/{drive}/{path}` into
//! DLFS names, refusing what a drive cannot hold, and the one writer of paths back into hrefs.

use super::error;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use etch_engine::dlfs::is_valid_name;
use etch_engine::lattice::value_at_path;
use etch_formats::{Cell, Kind};
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

pub(super) fn percent_decode(s: &str) -> Option<String> {
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

/// The media type from the metadata's `"content-type"` (or `:content-type`), else the name.
pub(super) fn media_type(meta: &Cell, name: &str, r: &dyn etch_formats::Resolver) -> String {
    if meta.kind() == Kind::Map || meta.kind() == Kind::Index {
        for key in [
            Cell::string("content-type"),
            Cell::keyword("content-type").unwrap_or_else(|_| Cell::nil()),
        ] {
            if let Ok(v) = value_at_path(meta, &[key], r) {
                if let Ok(b) = etch_formats::value::blob_bytes(&v, r) {
                    if v.kind() == Kind::String && !b.is_empty() && b.len() < 200 {
                        return String::from_utf8_lossy(&b).into_owned();
                    }
                }
            }
        }
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let t = match ext.as_deref() {
        Some("txt" | "md" | "csv" | "log") => "text/plain; charset=utf-8",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("mp4" | "m4v") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga") => "audio/ogg",
        Some("wav") => "audio/wav",
        Some("wasm") => "application/wasm",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        _ => "application/octet-stream",
    };
    t.to_string()
}

/// Hex digits of the file node's Value ID a path-addressed ETag carries.
const PATH_ETAG_HEX_DIGITS: usize = 48;

/// The ETag of a drive file read by path (GET, HEAD and PROPFIND's `getetag` alike): the first
/// 48 hex digits (192 bits) of its node's Value ID, quoted. It changes whenever the file does.
/// Not the whole ID: WebDAV clients copy ETags into `If` headers, and some cut those at 200
/// bytes (neon, used by litmus and davfs2), which two full IDs and a lock token overrun.
/// ID-addressed reads (`/blob/{id}`, `/v/{id}`) carry the whole Value ID.
pub(super) fn path_etag(id: &etch_formats::ValueId) -> String {
    format!("\"{}\"", &id.to_hex()[..PATH_ETAG_HEX_DIGITS])
}
