//! Content-addressed reads (gateway.md, "Etch adds"): `GET /v/{id}` a value by Value ID, as
//! printed text (`?format=text`, the default, or `Accept: text/plain`), JSON as Convex writes it
//! (`?format=json` or `Accept: application/json`: `text::print_json`) or CAD3 bytes
//! (`?format=cad3` or `Accept: application/cad3`: the top cell and as many branch cells as fit
//! the answer budget, as a multi-cell body; the rest are fetched by their own IDs); and
//! `GET /blob/{id}` a Blob or String as raw bytes with `Range` (one range; 206), so media plays
//! and seeks. Both are immutable: `ETag` is the Value ID, `If-None-Match` answers 304, and
//! `Cache-Control: immutable`. A value is found as `fetch` finds it: its record, or the root's
//! `:data` (`lattice::stored_value`).

use super::error;
use crate::shared::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use etch_engine::dlfs::blob::BlobReader;
use etch_engine::lattice::stored_value;
use etch_formats::message::encode_complete;
use etch_formats::text::{print_json, print_limited};
use etch_formats::{Cell, Kind, ValueId};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

/// Bytes of a CAD3 answer: the top cell and the branch cells that fit (the rest by their IDs).
const VALUE_BODY_BYTES_MAX: usize = 8 << 20;
/// Bytes of a printed answer; a longer print is refused (413) with a hint.
const VALUE_TEXT_BYTES_MAX: usize = 8 << 20;
/// Bytes per chunk of a streamed Blob.
const BLOB_CHUNK_BYTES: usize = 64 << 10;
/// Chunks a Blob answer reads ahead of a slow client: its memory, whatever the Blob's size.
const BLOB_CHUNKS_AHEAD: usize = 4;
/// What an ID-addressed answer may be cached as: it can never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The media type of CAD3 bytes.
const CAD3_TYPE: &str = "application/cad3";

fn parse_id(text: &str) -> Result<ValueId, Response> {
    ValueId::from_hex(text.trim_start_matches("0x")).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not a Value ID (64 hex digits)"),
        )
    })
}

/// The value `id` (its record, or the root's `:data`), read on a blocking thread.
async fn lookup(shared: &Arc<Shared>, id: ValueId) -> Result<Cell, Response> {
    let s = shared.clone();
    let root = shared.committed_root();
    let found =
        tokio::task::spawn_blocking(move || stored_value(&root, &id, s.store.as_ref())).await;
    match found {
        Ok(Ok(Some(c))) => Ok(c),
        Ok(Ok(None)) => Err(error(
            StatusCode::NOT_FOUND,
            format!("no value {id} on this node"),
        )),
        Ok(Err(e)) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading {id}: {e}"),
        )),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn etag(id: &ValueId) -> String {
    format!("\"{}\"", id.to_hex())
}

/// True when the client's `If-None-Match` already names `tag` (or `*`).
pub(super) fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == tag
            })
        })
}

/// A response with the headers every ID-addressed answer carries.
fn immutable(status: StatusCode, tag: &str) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::ETAG, tag)
        .header(header::CACHE_CONTROL, IMMUTABLE)
}

fn built(b: Result<Response, axum::http::Error>) -> Response {
    b.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The Value ID a request names and its ETag; the answer instead when the ID is malformed
/// (400) or the client holds it already (304: an ID-addressed answer never changes).
fn requested(text: &str, headers: &HeaderMap) -> Result<(ValueId, String), Response> {
    let id = parse_id(text)?;
    let tag = etag(&id);
    if not_modified(headers, &tag) {
        return Err(built(
            immutable(StatusCode::NOT_MODIFIED, &tag).body(Body::empty()),
        ));
    }
    Ok((id, tag))
}

/// `GET /v/{id}`.
pub(super) async fn value(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (id, tag) = match requested(&id, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match query.get("format") {
        Some(f) => f.clone(),
        None if accept.contains(CAD3_TYPE) => "cad3".into(),
        None if accept.contains("application/json") => "json".into(),
        None => "text".into(),
    };
    if !["text", "json", "cad3"].contains(&format.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown format {format:?}: text, json or cad3"),
        );
    }
    let cell = match lookup(&shared, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let s = shared.clone();
    let answer = tokio::task::spawn_blocking(move || {
        if format == "cad3" {
            let (body, omitted) = encode_complete(&cell, s.store.as_ref(), VALUE_BODY_BYTES_MAX);
            Ok((body, CAD3_TYPE, omitted))
        } else if format == "json" {
            print_json(&cell, s.store.as_ref(), VALUE_TEXT_BYTES_MAX)
                .map(|t| (t.into_bytes(), "application/json", false))
                .map_err(|e| e.to_string())
        } else {
            print_limited(&cell, s.store.as_ref(), VALUE_TEXT_BYTES_MAX)
                .map(|t| (t.into_bytes(), "text/plain; charset=utf-8", false))
                .map_err(|e| e.to_string())
        }
    })
    .await;
    match answer {
        Ok(Ok((body, media, omitted))) => built(
            immutable(StatusCode::OK, &tag)
                .header(header::CONTENT_TYPE, media)
                .header(
                    "x-etch-branches-omitted",
                    if omitted { "true" } else { "false" },
                )
                .body(Body::from(body)),
        ),
        Ok(Err(e)) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{id} does not print within {VALUE_TEXT_BYTES_MAX} bytes ({e}): read it as \
                 ?format=cad3, or a Blob as /blob/{id}"
            ),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The one range of a `Range: bytes=…` header over `len` bytes: `Ok(None)` for no header or
/// one this server ignores (several ranges, another unit, bad syntax: RFC 9110 lets it send the
/// whole), `Err(())` when it cannot be satisfied (416).
pub(super) fn range_of(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let parse = |t: &str| t.trim().parse::<u64>().ok();
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match parse(b) {
            Some(0) => return Err(()),
            Some(n) => (len.saturating_sub(n), len),
            None => return Ok(None),
        },
        (false, true) => match parse(a) {
            Some(s) => (s, len),
            None => return Ok(None),
        },
        (false, false) => match (parse(a), parse(b)) {
            (Some(s), Some(e)) if s <= e => (s, e.saturating_add(1).min(len)),
            _ => return Ok(None),
        },
        (true, true) => return Ok(None),
    };
    if start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// `GET /blob/{id}` (and HEAD).
pub(super) async fn blob(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (id, tag) = match requested(&id, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let cell = match lookup(&shared, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let media = match cell.kind() {
        Kind::Blob => "application/octet-stream",
        Kind::String => "text/plain; charset=utf-8",
        other => {
            return error(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "{id} is a {}, not a Blob or String: GET /v/{id} prints it",
                    other.name()
                ),
            )
        }
    };
    bytes_answer(shared, cell, media, &headers, &|status| {
        immutable(status, &tag)
    })
}

/// The bytes of a Blob (or String) as a GET answer: the whole (200), the one `Range` asked for
/// (206), or 416; `base(status)` starts the answer with its caching headers.
pub(super) fn bytes_answer(
    shared: Arc<Shared>,
    cell: Cell,
    media: &str,
    headers: &HeaderMap,
    base: &dyn Fn(StatusCode) -> axum::http::response::Builder,
) -> Response {
    let len = cell.count();
    let (start, end, status) = match range_of(headers, len) {
        Ok(None) => (0, len, StatusCode::OK),
        Ok(Some((s, e))) => (s, e, StatusCode::PARTIAL_CONTENT),
        Err(()) => {
            return built(
                base(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .body(Body::empty()),
            )
        }
    };
    let mut answer = base(status)
        .header(header::CONTENT_TYPE, media)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        answer = answer.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    built(answer.body(stream_blob(shared, cell, start, end)))
}

/// The bytes `[start, end)` of a Blob, read on a blocking thread a chunk at a time and handed
/// over a bounded channel.
pub(super) fn stream_blob(shared: Arc<Shared>, cell: Cell, start: u64, end: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(BLOB_CHUNKS_AHEAD);
    let handle = tokio::runtime::Handle::current();
    let stall = shared.config.limits.http_stall_timeout;
    tokio::task::spawn_blocking(move || {
        let store = shared.store.clone();
        let mut reader = match BlobReader::starting_at(&cell, store.as_ref(), start) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e)));
                return;
            }
        };
        let mut left = end - start;
        let mut buf = vec![0u8; BLOB_CHUNK_BYTES];
        while left > 0 {
            let want = (left as usize).min(buf.len());
            let chunk = match reader.read(&mut buf[..want]) {
                Ok(0) => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                Ok(n) => {
                    left -= n as u64;
                    Ok(Bytes::copy_from_slice(&buf[..n]))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            // A client that went away closes the channel, and one that stops reading for the
            // stall timeout is cut off: stop reading either way.
            let sent = handle.block_on(tokio::time::timeout(stall, tx.send(chunk)));
            if !matches!(sent, Ok(Ok(()))) || failed {
                return;
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_range(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn ranges() {
        let r = |v: &str| range_of(&with_range(v), 1000);
        assert_eq!(r("bytes=0-99"), Ok(Some((0, 100))));
        assert_eq!(r("bytes=990-2000"), Ok(Some((990, 1000))));
        assert_eq!(r("bytes=900-"), Ok(Some((900, 1000))));
        assert_eq!(r("bytes=-10"), Ok(Some((990, 1000))));
        assert_eq!(r("bytes=-5000"), Ok(Some((0, 1000))));
        assert_eq!(r("bytes=1000-"), Err(()));
        assert_eq!(r("bytes=-0"), Err(()));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("bytes=5-1"), Ok(None));
        assert_eq!(r("items=0-1"), Ok(None));
        assert_eq!(range_of(&HeaderMap::new(), 1000), Ok(None));
    }
}
