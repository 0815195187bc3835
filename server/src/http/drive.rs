//! Drives by path, read-only so far (gateway.md "Paths"): WebDAV class 1 reads (`OPTIONS`,
//! `PROPFIND` depth 0 and 1 with the live properties Convex serves), so file managers and
//! `rclone` can list and download. A bearer token ([`super::auth`]) selects its identity's
//! drives; without one the node's own drives are meant. `GET /dlfs/` lists the drives,
//! `GET /dlfs/{drive}/{path}` answers a directory as a plain HTML listing (names, sizes, times,
//! links; `?format=json` or `Accept: application/json` for JSON) and a file as its bytes, with
//! `Range`, `ETag` = the Value ID of its file node, `If-None-Match`, and `Content-Type` from its
//! metadata (`"content-type"` / `:content-type`) or its name. The drives are those of the
//! node's own key, the namespace the shell and `etch drive` use (the anonymous namespace until
//! auth comes). A private (encrypted) file is refused: only its owner's key can read it.

use super::auth::{caller, ucans, Caller};
use super::content::{bytes_answer, not_modified};
use super::error;
use super::locks::{check, Change, LockTable};
use super::path::{components, destination, href, html_escape, media_type, path_etag};
use super::props::stat_at;
use super::xml::XML_BODY_BYTES_MAX;
use crate::shared::Shared;
use crate::token::{delegated_owner, CRUD_DELETE, CRUD_READ, CRUD_WRITE};
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use etch_engine::dlfs::host::is_encrypted;
use etch_engine::dlfs::{self, DrivePath, StatKind};
use etch_engine::lattice::did_key;
use etch_engine::node::iso_time;
use etch_engine::quota::Charge;
use etch_formats::Cell;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// What a path names, found on a blocking thread.
enum Found {
    Drives(Vec<String>),
    Directory(Vec<(String, dlfs::Stat)>),
    File {
        data: Cell,
        media: String,
        /// The file node's Value ID (changes with its contents, metadata or time).
        tag: String,
    },
}

/// The methods a drive path answers.
const ALLOW: &str =
    "GET, HEAD, OPTIONS, PROPFIND, PROPPATCH, PUT, MKCOL, DELETE, COPY, MOVE, LOCK, UNLOCK";

/// The methods that change a drive (or its locks): they need write rights.
const WRITES: [&str; 8] = [
    "PUT",
    "MKCOL",
    "DELETE",
    "COPY",
    "MOVE",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
];

/// `/dlfs/` (the drive list), any method.
pub(super) async fn drives(
    State(shared): State<Arc<Shared>>,
    Extension(locks): Extension<Arc<LockTable>>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = Request {
        method,
        path: String::new(),
        query,
        headers,
    };
    dispatch(shared, locks, r, body).await
}

/// `/dlfs/{*path}`, any method.
pub(super) async fn path(
    State(shared): State<Arc<Shared>>,
    Extension(locks): Extension<Arc<LockTable>>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    dispatch(
        shared,
        locks,
        Request {
            method,
            path,
            query,
            headers,
        },
        body,
    )
    .await
}

/// A drive request, less its body.
struct Request {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
}

/// A small XML body (PROPFIND, PROPPATCH, LOCK), read whole within its limit.
async fn xml_body(body: Body) -> Result<String, Response> {
    let bytes = axum::body::to_bytes(body, XML_BODY_BYTES_MAX)
        .await
        .map_err(|e| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the XML body is over {XML_BODY_BYTES_MAX} bytes or cut off: {e}"),
            )
        })?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the XML body is not UTF-8"))
}

/// Who may do what, then the method's handler: reads for anyone, writes for callers the node
/// signs for, each write after the `If` header and lock checks (`locks`).
async fn dispatch(
    shared: Arc<Shared>,
    table: Arc<LockTable>,
    req: Request,
    body: Body,
) -> Response {
    let Some(node_key) = shared.public_key() else {
        return error(
            StatusCode::NOT_FOUND,
            "this node has no key, so no drives of its own",
        );
    };
    let Request {
        method,
        path,
        query,
        headers,
    } = req;
    // A token names whose drives are meant; without one, the node's own (anonymous) ones.
    let node_did = did_key(&node_key);
    let now_s = shared.node.now().div_euclid(1000);
    let caller = match caller(&headers, &node_did, now_s) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let write = WRITES.contains(&method.as_str());
    // Who a PUT's bytes are charged to (etch_engine::quota).
    let charge = match caller {
        Caller::Identity(k) => Charge::key(&k),
        Caller::Anonymous => Charge::anonymous(),
    };
    let owner_key =
        match owner_for(&shared, caller, node_key, &path, &method, &headers, now_s).await {
            Ok(k) => k,
            Err(r) => return r,
        };
    let owner = Cell::blob(&owner_key);
    if write {
        if caller == Caller::Anonymous && !shared.config.http_anonymous_writes {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "writes need a token, or --anonymous-writes on this node (or --http on a \
                 loopback address)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        if owner_key != node_key {
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "this node does not hold the key of {}, so it cannot sign that identity's \
                     drives: write them on a node whose key it is, or sign the drive with the \
                     key and push it over the peer protocol",
                    did_key(&owner_key)
                ),
            );
        }
    }
    let comps = match components(&path) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let small_body = ["PROPFIND", "PROPPATCH", "LOCK"].contains(&method.as_str());
    let (body, text) = if small_body {
        match xml_body(body).await {
            Ok(t) => (Body::empty(), t),
            Err(r) => return r,
        }
    } else {
        (body, String::new())
    };
    if write && method != "UNLOCK" {
        let submitted = match write_check(
            &shared, &table, &owner, owner_key, &method, &comps, &headers,
        )
        .await
        {
            Ok(s) => s,
            Err(r) => return r,
        };
        let m = method.as_str();
        let answer = match m {
            "PUT" => super::dav::put(shared, owner, charge, comps.clone(), body).await,
            "MKCOL" => super::dav::mkcol(shared, owner, comps.clone(), &headers).await,
            "DELETE" => super::dav::delete(shared, owner, comps.clone()).await,
            "COPY" | "MOVE" => {
                super::dav::copy_move(shared, owner, comps.clone(), &headers, m == "MOVE").await
            }
            "PROPPATCH" => super::props::proppatch(shared, owner, comps.clone(), text).await,
            _ => {
                let lock = super::dav::LockRequest {
                    owner_key,
                    submitted,
                    body: text,
                };
                super::dav::lock(shared, table.clone(), owner, comps.clone(), &headers, lock).await
            }
        };
        // Locks go with what was deleted or moved away.
        if answer.status().is_success() && (m == "DELETE" || m == "MOVE") {
            table.drop_under(&owner_key, &comps);
        }
        return answer;
    }
    match method.as_str() {
        "UNLOCK" => super::dav::unlock(&table, owner_key, &comps, &headers),
        "GET" | "HEAD" => answer(shared, owner, comps, query, headers).await,
        "OPTIONS" => Response::builder()
            .header("dav", "1, 2")
            .header(header::ALLOW, ALLOW)
            .header("ms-author-via", "DAV")
            .body(Body::empty())
            .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        "PROPFIND" => {
            super::props::propfind(shared, table, owner, owner_key, path, &headers, text).await
        }
        other => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{other} is not supported here ({ALLOW})"),
            );
            r.headers_mut()
                .insert(header::ALLOW, axum::http::HeaderValue::from_static(ALLOW));
            r
        }
    }
}

/// The `If` header and lock checks of a write (`locks::check`), on a blocking thread (they
/// read the drive for ETags and existence). The tokens the request submitted.
async fn write_check(
    shared: &Arc<Shared>,
    table: &Arc<LockTable>,
    owner: &Cell,
    owner_key: [u8; 32],
    method: &Method,
    comps: &[String],
    headers: &HeaderMap,
) -> Result<Vec<String>, Response> {
    let dest = if *method == "COPY" || *method == "MOVE" {
        Some(destination(headers)?)
    } else {
        None
    };
    let (s, t, o, m, c, h) = (
        shared.clone(),
        table.clone(),
        owner.clone(),
        method.to_string(),
        comps.to_vec(),
        headers.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let etag_of = |p: &[String]| -> Option<String> {
            let (stat, _) = stat_at(&s, &o, p).ok()??;
            Some(path_etag(&stat.hash))
        };
        let change = Change {
            method: &m,
            path: &c,
            exists: etag_of(&c).is_some(),
            destination: dest.as_deref(),
        };
        check(&t, &owner_key, &h, &change, &etag_of)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// The ability a method needs (gateway.md: `crud/read`, `crud/write`, `crud/delete`).
fn abilities(method: &Method) -> &'static [&'static str] {
    match method.as_str() {
        "GET" | "HEAD" | "OPTIONS" | "PROPFIND" => &[CRUD_READ],
        "DELETE" => &[CRUD_DELETE],
        "MOVE" => &[CRUD_DELETE, CRUD_WRITE],
        _ => &[CRUD_WRITE],
    }
}

/// Whose drive a request means: the caller's own (the node's for anonymous callers); or, when
/// the caller has no drive of that name and presents a UCAN (`ucans` header) granting it the
/// drive of another owner for this method, that owner's. A grant that does not hold is not an
/// error here: the caller's own namespace answers (404 for a drive it lacks, as for any drive
/// it lacks).
async fn owner_for(
    shared: &Arc<Shared>,
    caller: Caller,
    node_key: [u8; 32],
    path: &str,
    method: &Method,
    headers: &HeaderMap,
    now_s: i64,
) -> Result<[u8; 32], Response> {
    let Caller::Identity(me) = caller else {
        return Ok(node_key);
    };
    let tokens = ucans(headers);
    let Some(drive) = path.split('/').find(|c| !c.is_empty()) else {
        return Ok(me);
    };
    if tokens.is_empty() {
        return Ok(me);
    }
    let (s, d) = (shared.clone(), drive.to_string());
    let own = tokio::task::spawn_blocking(move || s.node.drive(&Cell::blob(&me), &d))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !own.is_nil() {
        return Ok(me);
    }
    let mut needs: Vec<(String, &str)> = abilities(method)
        .iter()
        .map(|a| (format!("/dlfs/{}", path.trim_matches('/')), *a))
        .collect();
    if ["COPY", "MOVE"].contains(&method.as_str()) {
        needs.push((
            format!("/dlfs/{}", destination(headers)?.join("/")),
            CRUD_WRITE,
        ));
    }
    let caller_did = did_key(&me);
    let mut granted = None;
    for (resource, ability) in &needs {
        match delegated_owner(&tokens, &caller_did, resource, ability, now_s) {
            Some(o) if granted.is_none_or(|g| g == o) => granted = Some(o),
            _ => return Ok(me),
        }
    }
    Ok(granted.unwrap_or(me))
}

async fn answer(
    shared: Arc<Shared>,
    owner: Cell,
    comps: Vec<String>,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let s = shared.clone();
    let c = comps.clone();
    let found = tokio::task::spawn_blocking(move || find(&s, &owner, &c)).await;
    let found = match found {
        Ok(Ok(f)) => f,
        Ok(Err(r)) => return r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let json = query.get("format").is_some_and(|f| f == "json")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
    match found {
        Found::Drives(names) => listing(&comps, names.into_iter().map(|n| (n, None)), json),
        Found::Directory(entries) => {
            listing(&comps, entries.into_iter().map(|(n, s)| (n, Some(s))), json)
        }
        Found::File { data, media, tag } => file(shared, data, media, tag, &headers),
    }
}

fn find(shared: &Shared, owner: &Cell, comps: &[String]) -> Result<Found, Response> {
    let fail = |e: &dyn std::fmt::Display| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let Some(drive_name) = comps.first() else {
        return shared
            .node
            .drive_names(owner)
            .map(Found::Drives)
            .map_err(|e| fail(&e));
    };
    let r = shared.store.as_ref();
    let drive = shared.node.drive(owner, drive_name).map_err(|e| fail(&e))?;
    let p = DrivePath::parse(&comps.join("/"))
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            format!("no file or directory /dlfs/{}", comps.join("/")),
        )
    };
    if drive.is_nil() {
        return Err(not_found());
    }
    let stat = match dlfs::stat(&drive, &p, r) {
        Ok(s) => s,
        Err(dlfs::DlfsError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(error(StatusCode::BAD_REQUEST, e.to_string())),
    };
    match stat.kind {
        StatKind::Directory => dlfs::ls_long(&drive, &p, r)
            .map(Found::Directory)
            .map_err(|e| fail(&e)),
        StatKind::File => {
            if is_encrypted(&stat.metadata, r).map_err(|e| fail(&e))? {
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "a private (encrypted) file: only its owner's key reads it (etch drive cat)",
                ));
            }
            let data = dlfs::read(&drive, &p, r).map_err(|e| fail(&e))?;
            let media = media_type(&stat.metadata, comps.last().map_or("", String::as_str), r);
            let tag = path_etag(&stat.hash);
            Ok(Found::File { data, media, tag })
        }
    }
}

/// A file's bytes: path-addressed, so revalidated (`no-cache`) against the file node's ID (the
/// same `getetag` PROPFIND gives).
fn file(
    shared: Arc<Shared>,
    data: Cell,
    media: String,
    tag: String,
    headers: &HeaderMap,
) -> Response {
    let base = |status: StatusCode| {
        Response::builder()
            .status(status)
            .header(header::ETAG, &tag)
            .header(header::CACHE_CONTROL, "no-cache")
    };
    if not_modified(headers, &tag) {
        return base(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
    }
    bytes_answer(shared, data, &media, headers, &base)
}

/// The listing's look: readable in any browser, no scripts, nothing fetched.
const LISTING_CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
    h1{font-size:1.4em;font-weight:600}table{border-collapse:collapse}\
    th,td{padding:.3em 1.2em .3em 0;text-align:left}th{border-bottom:1px solid #ccc}\
    .n{text-align:right}a{text-decoration:none;color:#0645ad}tr:hover td{background:#f4f6fa}";

/// A file size for people: bytes below 1 KiB, else KiB, MiB or GiB with one decimal.
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A directory (or the drive list) as HTML or JSON.
fn listing(
    comps: &[String],
    entries: impl Iterator<Item = (String, Option<dlfs::Stat>)>,
    json: bool,
) -> Response {
    let entries: Vec<(String, Option<dlfs::Stat>)> = entries.collect();
    if json {
        let items: Vec<serde_json::Value> = entries
            .iter()
            .map(|(name, s)| match s {
                None => serde_json::json!({"name": name, "type": "drive"}),
                Some(s) => serde_json::json!({
                    "name": name,
                    "type": if s.kind == StatKind::File { "file" } else { "directory" },
                    "size": s.size,
                    "utime": s.utime,
                }),
            })
            .collect();
        let body = serde_json::json!({ "path": href(comps), "entries": items });
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from(format!("{body}\n")))
            .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
    }
    let title = html_escape(&format!("/dlfs/{}", comps.join("/")));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{LISTING_CSS}</style>\
         </head>\n<body><h1>{title}</h1>\n<table>\n\
         <tr><th>name</th><th class=\"n\">size</th><th>modified (UTC)</th></tr>\n"
    );
    if !comps.is_empty() {
        let up = href(&comps[..comps.len() - 1]);
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{up}\">..</a></td><td></td><td></td></tr>"
        );
    }
    for (name, stat) in &entries {
        let mut path = comps.to_vec();
        path.push(name.clone());
        let dir = stat.as_ref().is_none_or(|s| s.kind == StatKind::Directory);
        let shown = html_escape(name) + if dir { "/" } else { "" };
        let (size, time) = match stat {
            Some(s) if s.kind == StatKind::File => (size_text(s.size), iso_time(s.utime)),
            Some(s) => (format!("{} entries", s.size), iso_time(s.utime)),
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}\">{shown}</a></td><td class=\"n\">{size}</td><td>{time}</td></tr>",
            href(&path)
        );
    }
    html.push_str("</table>\n</body></html>\n");
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(html))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
