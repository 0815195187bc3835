//! WebDAV writes on the node's own drives (RFC 4918 over the DLFS operations the shell and
//! `etch drive` use, lattice.md §7): `PUT` (the body streamed into a Blob tree in constant
//! memory; nothing changes in the drive unless the whole body arrived), `MKCOL`, `DELETE`
//! (a tombstone, so the delete replicates; a folder goes with everything in it), `COPY` and
//! `MOVE` within a drive (`Destination`, `Overwrite`). Each write is one signed drive update,
//! durable before the answer. Who may write is decided before (by the drive dispatcher): anonymous
//! callers when the node allows it (`--http` on a loopback address, or `--anonymous-writes`),
//! and a token's identity only when it is the node's own key — the node signs drive updates
//! with its key and never as anyone else.

use super::error;
use super::locks::{activelock_xml, timeout_seconds, Lock, LockTable, Refused, LOCKS_MAX};
use super::path::destination;
use super::xml::parse_lockinfo;
use crate::shared::Shared;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use etch_engine::dlfs::host::{store_contents, PutOptions};
use etch_engine::dlfs::{self, DlfsError, DrivePath};
use etch_engine::lattice::dlfs as node;
use etch_engine::node::NodeError;
use etch_engine::quota::Charge;
use etch_formats::Cell;
use futures_util::StreamExt;
use std::io::Read;
use std::sync::Arc;

/// Body chunks a PUT buffers between the network and the store.
const PUT_CHUNKS_AHEAD: usize = 4;

/// The HTTP answer to a failed drive write.
fn refused(e: NodeError) -> Response {
    let status = match &e {
        NodeError::Dlfs(d) => match d {
            DlfsError::NotFound(_) => StatusCode::NOT_FOUND,
            DlfsError::NoSuchDirectory(_) => StatusCode::CONFLICT,
            DlfsError::NotADirectory(_) | DlfsError::IsADirectory(_) => StatusCode::CONFLICT,
            DlfsError::NameCollision { .. } => StatusCode::CONFLICT,
            DlfsError::AlreadyExists(_) => StatusCode::METHOD_NOT_ALLOWED,
            DlfsError::NotAuthorised(_) => StatusCode::FORBIDDEN,
            DlfsError::InvalidPath(_) | DlfsError::InvalidDriveName(_) => StatusCode::BAD_REQUEST,
            DlfsError::CannotDeleteRoot => StatusCode::FORBIDDEN,
            _ => StatusCode::CONFLICT,
        },
        // RFC 4918 §11.5: the request could not be stored.
        NodeError::Quota(_) => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// Runs one drive write on a blocking thread.
async fn write<F>(
    shared: &Arc<Shared>,
    owner: Cell,
    charge: Option<Charge>,
    drive: String,
    edit: F,
) -> Result<Cell, Response>
where
    F: FnOnce(&Cell, i64, &dyn etch_formats::Resolver) -> Result<Cell, DlfsError> + Send + 'static,
{
    let s = shared.clone();
    let written = tokio::task::spawn_blocking(move || {
        s.node
            .write_drive_charged(&owner, &drive, charge.as_ref(), edit)
    });
    match written.await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(refused(e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn location(comps: &[String]) -> Result<DrivePath, Response> {
    DrivePath::parse(&comps.join("/")).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
}

fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The body as a `Read`, fed from the network by the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = self.chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// `PUT`: the body becomes the file's contents (created or replaced).
pub(super) async fn put(
    shared: Arc<Shared>,
    owner: Cell,
    mut charge: Charge,
    comps: Vec<String>,
    body: Body,
) -> Response {
    if comps.len() < 2 {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "PUT needs a file path inside a drive",
        );
    }
    let p = match location(&comps) {
        Ok(p) => p,
        Err(r) => return r,
    };
    // The store reads the body on a blocking thread while the network side feeds it.
    let (tx, rx) = tokio::sync::mpsc::channel(PUT_CHUNKS_AHEAD);
    let s = shared.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            rx,
            chunk: Bytes::new(),
        };
        store_contents(s.store.as_ref(), &mut reader, PutOptions { encrypt: None })
    });
    let mut stream = body.into_data_stream();
    let mut cut_off = None;
    while let Some(chunk) = stream.next().await {
        let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
        let failed = item.is_err();
        if let Err(e) = &item {
            cut_off = Some(e.to_string());
        }
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let blob = match stored.await {
        Ok(Ok((blob, _, n))) => {
            charge.stored_bytes = n;
            blob
        }
        Ok(Err(e)) => {
            let why = cut_off.unwrap_or_else(|| e.to_string());
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body did not arrive whole ({why}); nothing was changed"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let existed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = existed.clone();
    let drive = p.drive.clone();
    let result = write(&shared, owner, Some(charge), drive, move |cur, now, r| {
        seen.store(
            dlfs::find(cur, &p.path, r)?.is_some(),
            std::sync::atomic::Ordering::Relaxed,
        );
        if cur.is_nil() {
            return Err(DlfsError::NoSuchDirectory(p.parent_text()));
        }
        dlfs::put(cur, &p, blob, now, r)
    })
    .await;
    match result {
        Ok(_) if existed.load(std::sync::atomic::Ordering::Relaxed) => {
            empty(StatusCode::NO_CONTENT)
        }
        Ok(_) => empty(StatusCode::CREATED),
        Err(r) => r,
    }
}

/// `MKCOL`: a new, empty folder (a request body is not understood: 415).
pub(super) async fn mkcol(
    shared: Arc<Shared>,
    owner: Cell,
    comps: Vec<String>,
    headers: &HeaderMap,
) -> Response {
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "MKCOL takes no body");
    }
    if comps.len() < 2 {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MKCOL makes folders inside a drive (drives are made with etch drive mkdrive)",
        );
    }
    let p = match location(&comps) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let drive = p.drive.clone();
    match write(&shared, owner, None, drive, move |cur, now, r| {
        if cur.is_nil() {
            return Err(DlfsError::NoSuchDirectory(p.parent_text()));
        }
        dlfs::mkdir(cur, &p, now, r)
    })
    .await
    {
        Ok(_) => empty(StatusCode::CREATED),
        Err(r) => r,
    }
}

/// `DELETE`: a tombstone where the file or folder was (a folder goes whole).
pub(super) async fn delete(shared: Arc<Shared>, owner: Cell, comps: Vec<String>) -> Response {
    if comps.len() < 2 {
        return error(StatusCode::FORBIDDEN, "a drive is not deleted over HTTP");
    }
    let p = match location(&comps) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let drive = p.drive.clone();
    match write(&shared, owner, None, drive, move |cur, now, r| {
        if dlfs::find(cur, &p.path, r)?.is_none() {
            return Err(DlfsError::NotFound(p.text.clone()));
        }
        let t = dlfs::write_time(cur, now, r)?;
        dlfs::update(cur, &p.path, node::tombstone(t), t, r)
    })
    .await
    {
        Ok(_) => empty(StatusCode::NO_CONTENT),
        Err(r) => r,
    }
}

/// `COPY` and `MOVE` within one drive. `Overwrite: F` refuses an existing destination (412);
/// otherwise it is replaced (204), or created (201).
pub(super) async fn copy_move(
    shared: Arc<Shared>,
    owner: Cell,
    comps: Vec<String>,
    headers: &HeaderMap,
    remove_source: bool,
) -> Response {
    let to = match destination(headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if comps.len() < 2 || to.len() < 2 {
        return error(
            StatusCode::FORBIDDEN,
            "whole drives are not copied or moved over HTTP",
        );
    }
    if comps[0] != to[0] {
        return error(
            StatusCode::BAD_GATEWAY,
            "COPY and MOVE stay within one drive",
        );
    }
    if to.starts_with(&comps) {
        return error(
            StatusCode::FORBIDDEN,
            "the Destination lies inside the source",
        );
    }
    let overwrite = headers
        .get("overwrite")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("F"));
    let (from, dest) = match (location(&comps), location(&to)) {
        (Ok(f), Ok(d)) => (f, d),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let existed = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let seen = existed.clone();
    let drive = from.drive.clone();
    let result = write(&shared, owner, None, drive, move |cur, now, r| {
        let Some(n) = dlfs::find(cur, &from.path, r)? else {
            return Err(DlfsError::NotFound(from.text.clone()));
        };
        let t = dlfs::write_time(cur, now, r)?;
        let mut d = cur.clone();
        if dlfs::find(&d, &dest.path, r)?.is_some() {
            if !overwrite {
                seen.store(2, std::sync::atomic::Ordering::Relaxed);
                return Ok(cur.clone());
            }
            seen.store(1, std::sync::atomic::Ordering::Relaxed);
            d = dlfs::update(&d, &dest.path, node::tombstone(t), t, r)?;
        }
        let parent = &dest.path[..dest.path.len() - 1];
        match dlfs::find(&d, parent, r)? {
            Some(p) if node::is_directory(&p, r)? => {}
            _ => return Err(DlfsError::NoSuchDirectory(dest.parent_text())),
        }
        let mut items = etch_formats::value::elements(&n, r)?;
        if items.len() > 3 {
            items[3] = Cell::long(t);
        }
        let d = dlfs::update(&d, &dest.path, Cell::vector(items), t, r)?;
        if remove_source {
            return dlfs::update(&d, &from.path, node::tombstone(t), t, r);
        }
        Ok(d)
    })
    .await;
    match (result, existed.load(std::sync::atomic::Ordering::Relaxed)) {
        (Err(r), _) => r,
        (Ok(_), 2) => error(
            StatusCode::PRECONDITION_FAILED,
            "the Destination exists and Overwrite is F",
        ),
        (Ok(_), 1) => empty(StatusCode::NO_CONTENT),
        (Ok(_), _) => empty(StatusCode::CREATED),
    }
}

/// A LOCK's particulars, from the dispatcher.
pub(super) struct LockRequest {
    /// Whose drives the path is in.
    pub owner_key: [u8; 32],
    /// The tokens the `If` header submitted (a refresh names its lock there).
    pub submitted: Vec<String>,
    /// The body: empty for a refresh, else a `lockinfo`.
    pub body: String,
}

fn lock_answer(status: StatusCode, lock: &Lock, new: bool) -> Response {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>{}\
         </D:lockdiscovery></D:prop>\n",
        activelock_xml(lock)
    );
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml; charset=utf-8");
    if new {
        b = b.header("lock-token", format!("<{}>", lock.token));
    }
    b.body(Body::from(xml))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `LOCK` (RFC 4918 §9.10): a new write lock (exclusive or shared, depth 0 or infinity) on a
/// path, which becomes an empty file when nothing is there (201); or, without a body, a refresh
/// of the lock the `If` header names.
pub(super) async fn lock(
    shared: Arc<Shared>,
    table: Arc<LockTable>,
    owner: Cell,
    comps: Vec<String>,
    headers: &HeaderMap,
    req: LockRequest,
) -> Response {
    let seconds = timeout_seconds(headers);
    if req.body.trim().is_empty() {
        let refreshed = req
            .submitted
            .iter()
            .find_map(|t| table.refresh(t, &req.owner_key, &comps, seconds));
        return match refreshed {
            Some(l) => lock_answer(StatusCode::OK, &l, false),
            None => error(
                StatusCode::PRECONDITION_FAILED,
                "a LOCK without a body refreshes a lock: name its token in an If header",
            ),
        };
    }
    let info = match parse_lockinfo(&req.body) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad LOCK body: {}", e.0)),
    };
    let infinite = match headers
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        None => true,
        Some(d) if d.eq_ignore_ascii_case("infinity") => true,
        Some("0") => false,
        Some(d) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Depth {d:?}: a LOCK is depth 0 or infinity"),
            )
        }
    };
    if comps.len() < 2 {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "LOCK needs a path inside a drive",
        );
    }
    let l = match table.lock(
        req.owner_key,
        comps.clone(),
        infinite,
        info.shared,
        info.owner,
        seconds,
    ) {
        Ok(l) => l,
        Err(Refused::Conflict) => {
            return error(
                StatusCode::LOCKED,
                format!("/dlfs/{} is locked by another lock", comps.join("/")),
            )
        }
        Err(Refused::Full) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{LOCKS_MAX} locks are held on this node: try again later"),
            )
        }
    };
    // A lock on an unmapped path makes an empty file there (RFC 4918 §7.3).
    let p = match location(&comps) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let made = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let m = made.clone();
    let written = write(
        &shared,
        owner,
        None,
        comps[0].clone(),
        move |cur, now, r| match dlfs::stat(cur, &p, r) {
            Ok(_) => Ok(cur.clone()),
            Err(DlfsError::NotFound(_)) => {
                m.store(true, std::sync::atomic::Ordering::SeqCst);
                dlfs::put(cur, &p, Cell::blob(&[]), now, r)
            }
            Err(e) => Err(e),
        },
    )
    .await;
    if let Err(r) = written {
        table.unlock(&l.token, &req.owner_key, &comps);
        return r;
    }
    let status = if made.load(std::sync::atomic::Ordering::SeqCst) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    lock_answer(status, &l, true)
}

/// `UNLOCK` (RFC 4918 §9.11): removes the lock the `Lock-Token` header names (204).
pub(super) fn unlock(
    table: &LockTable,
    owner_key: [u8; 32],
    comps: &[String],
    headers: &HeaderMap,
) -> Response {
    let Some(token) = headers
        .get("lock-token")
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    else {
        return error(StatusCode::BAD_REQUEST, "UNLOCK needs a Lock-Token header");
    };
    if table.unlock(&token, &owner_key, comps) {
        empty(StatusCode::NO_CONTENT)
    } else {
        error(
            StatusCode::CONFLICT,
            format!("no lock {token} on /dlfs/{}", comps.join("/")),
        )
    }
}
