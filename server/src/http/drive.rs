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
use super::path::{components, destination, href, html_escape};
use crate::shared::Shared;
use crate::token::{delegated_owner, CRUD_DELETE, CRUD_READ, CRUD_WRITE};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use etch_engine::dlfs::host::is_encrypted;
use etch_engine::dlfs::{self, DrivePath, StatKind};
use etch_engine::lattice::{did_key, value_at_path};
use etch_engine::node::{http_date, iso_time};
use etch_formats::{Cell, Kind};
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
const ALLOW: &str = "GET, HEAD, OPTIONS, PROPFIND, PUT, MKCOL, DELETE, COPY, MOVE";

/// `/dlfs/` (the drive list), any method.
pub(super) async fn drives(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    dispatch(shared, method, String::new(), query, headers, body).await
}

/// `/dlfs/{*path}`, any method.
pub(super) async fn path(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    dispatch(shared, method, path, query, headers, body).await
}

async fn dispatch(
    shared: Arc<Shared>,
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(node_key) = shared.public_key() else {
        return error(
            StatusCode::NOT_FOUND,
            "this node has no key, so no drives of its own",
        );
    };
    // A token names whose drives are meant; without one, the node's own (anonymous) ones.
    let node_did = did_key(&node_key);
    let now_s = shared.node.now().div_euclid(1000);
    let caller = match caller(&headers, &node_did, now_s) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let write = ["PUT", "MKCOL", "DELETE", "COPY", "MOVE"].contains(&method.as_str());
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
                     drives: write them on a node that holds the key (etch serve --key), or \
                     sign the drive yourself and push it over the peer protocol",
                    did_key(&owner_key)
                ),
            );
        }
    }
    let comps = if write {
        match components(&path) {
            Ok(c) => c,
            Err(r) => return r,
        }
    } else {
        Vec::new()
    };
    match method.as_str() {
        "PUT" => return super::dav::put(shared, owner, comps, body).await,
        "MKCOL" => return super::dav::mkcol(shared, owner, comps, &headers).await,
        "DELETE" => return super::dav::delete(shared, owner, comps).await,
        "COPY" => return super::dav::copy_move(shared, owner, comps, &headers, false).await,
        "MOVE" => return super::dav::copy_move(shared, owner, comps, &headers, true).await,
        _ => {}
    }
    match method.as_str() {
        "GET" | "HEAD" => answer(shared, owner, path, query, headers).await,
        "OPTIONS" => Response::builder()
            .header("dav", "1")
            .header(header::ALLOW, ALLOW)
            .header("ms-author-via", "DAV")
            .body(Body::empty())
            .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        "PROPFIND" => propfind(shared, owner, path, &headers).await,
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

/// One resource of a PROPFIND answer: its path and what it is (`None`: the drive list).
type DavEntry = (Vec<String>, Option<(dlfs::Stat, String)>);

/// `PROPFIND` (RFC 4918 §9.1): the resource and, at depth 1 (also asked for as `infinity`,
/// which is answered as 1), its children, each with `resourcetype`, `displayname`,
/// `getlastmodified`, `creationdate`, and for files `getcontentlength`, `getcontenttype` and
/// `getetag`. The request body (which properties) is not read: all of them are sent.
async fn propfind(shared: Arc<Shared>, owner: Cell, path: String, headers: &HeaderMap) -> Response {
    let comps = match components(&path) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let depth1 = headers
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|d| d.trim() != "0");
    let s = shared.clone();
    let found = tokio::task::spawn_blocking(move || dav_entries(&s, &owner, &comps, depth1)).await;
    let entries = match found {
        Ok(Ok(e)) => e,
        Ok(Err(r)) => return r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n",
    );
    for (comps, what) in &entries {
        let collection = what
            .as_ref()
            .is_none_or(|(s, _)| s.kind == StatKind::Directory);
        let mut href = href(comps);
        if collection && !href.ends_with('/') {
            href.push('/');
        }
        let name = comps.last().map_or("dlfs", String::as_str);
        let _ = write!(
            xml,
            "<D:response><D:href>{}</D:href><D:propstat><D:prop>\
             <D:displayname>{}</D:displayname>",
            html_escape(&href),
            html_escape(name)
        );
        if collection {
            xml.push_str("<D:resourcetype><D:collection/></D:resourcetype>");
        } else {
            xml.push_str("<D:resourcetype/>");
        }
        if let Some((stat, media)) = what {
            let _ = write!(
                xml,
                "<D:getlastmodified>{}</D:getlastmodified><D:creationdate>{}</D:creationdate>",
                http_date(stat.utime),
                iso_time(stat.utime)
            );
            if stat.kind == StatKind::File {
                let _ = write!(
                    xml,
                    "<D:getcontentlength>{}</D:getcontentlength>\
                     <D:getcontenttype>{}</D:getcontenttype><D:getetag>\"{}\"</D:getetag>",
                    stat.size,
                    html_escape(media),
                    stat.hash.to_hex()
                );
            }
        }
        xml.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n");
    }
    xml.push_str("</D:multistatus>\n");
    Response::builder()
        .status(StatusCode::MULTI_STATUS)
        .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
        .body(Body::from(xml))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn dav_entries(
    shared: &Shared,
    owner: &Cell,
    comps: &[String],
    depth1: bool,
) -> Result<Vec<DavEntry>, Response> {
    let fail = |e: &dyn std::fmt::Display| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let r = shared.store.as_ref();
    let stat_of = |comps: &[String]| -> Result<Option<(dlfs::Stat, String)>, Response> {
        let drive = shared.node.drive(owner, &comps[0]).map_err(|e| fail(&e))?;
        if drive.is_nil() {
            return Ok(None);
        }
        let p = DrivePath::parse(&comps.join("/"))
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
        match dlfs::stat(&drive, &p, r) {
            Ok(s) => {
                let media = media_type(&s.metadata, comps.last().map_or("", String::as_str), r);
                Ok(Some((s, media)))
            }
            Err(dlfs::DlfsError::NotFound(_)) => Ok(None),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
        }
    };
    let mut out: Vec<DavEntry> = Vec::new();
    if comps.is_empty() {
        out.push((Vec::new(), None));
        if depth1 {
            for name in shared.node.drive_names(owner).map_err(|e| fail(&e))? {
                let c = vec![name];
                if let Some(st) = stat_of(&c)? {
                    out.push((c, Some(st)));
                }
            }
        }
        return Ok(out);
    }
    let Some(me) = stat_of(comps)? else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no file or directory /dlfs/{}", comps.join("/")),
        ));
    };
    let dir = me.0.kind == StatKind::Directory;
    out.push((comps.to_vec(), Some(me)));
    if dir && depth1 {
        let drive = shared.node.drive(owner, &comps[0]).map_err(|e| fail(&e))?;
        let p = DrivePath::parse(&comps.join("/"))
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
        for (name, stat) in dlfs::ls_long(&drive, &p, r).map_err(|e| fail(&e))? {
            let media = media_type(&stat.metadata, &name, r);
            let mut c = comps.to_vec();
            c.push(name);
            out.push((c, Some((stat, media))));
        }
    }
    Ok(out)
}

async fn answer(
    shared: Arc<Shared>,
    owner: Cell,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let comps = match components(&path) {
        Ok(c) => c,
        Err(r) => return r,
    };
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
            let tag = format!("\"{}\"", stat.hash.to_hex());
            Ok(Found::File { data, media, tag })
        }
    }
}

/// The media type from the metadata's `"content-type"` (or `:content-type`), else the name.
fn media_type(meta: &Cell, name: &str, r: &dyn etch_formats::Resolver) -> String {
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
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<table>\n<tr><th>name</th><th>size</th><th>modified (UTC)</th></tr>\n"
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
            Some(s) if s.kind == StatKind::File => (s.size.to_string(), iso_time(s.utime)),
            Some(s) => (format!("{} entries", s.size), iso_time(s.utime)),
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}\">{shown}</a></td><td>{size}</td><td>{time}</td></tr>",
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
