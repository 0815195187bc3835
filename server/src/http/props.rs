//! WebDAV properties (RFC 4918 §9.1, §9.2): `PROPFIND` (allprop, propname or named
//! properties; depth 0 or 1) and `PROPPATCH`.
//!
//! Live properties: `resourcetype`, `displayname`, `getlastmodified`, `creationdate`, and for
//! files `getcontentlength`, `getcontenttype` and `getetag` (the file node's Value ID, as GET's
//! ETag), plus `lockdiscovery` and `supportedlock`. Dead properties (any other name, set by
//! PROPPATCH) are kept in the node's DLFS metadata (element 2, lattice.md §7.2) under the key
//! `"dav:props"`: a Map from `{namespace}name` to the property's element as sent, so they move
//! and copy with the file, replicate with the drive, and change its ETag like any write. A
//! directory's metadata is dropped when a merge rebuilds the directory (lattice.md §7.5
//! consequence 3); files keep theirs.

use super::error;
use super::locks::{lockdiscovery_xml, LockTable, SUPPORTEDLOCK_XML};
use super::path::{components, href, path_etag};
use super::xml::{escape, parse_propfind, parse_proppatch, xmlns_attr, PatchOp, Propfind, DAV};
use crate::shared::Shared;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use etch_engine::dlfs::{self, DrivePath, StatKind};
use etch_engine::node::{http_date, iso_time};
use etch_formats::value::{blob_bytes, for_each_entry};
use etch_formats::{Cell, Kind, Resolver};
use std::fmt::Write;
use std::sync::Arc;

/// The metadata key of the dead properties.
const DEAD_PROPS_KEY: &str = "dav:props";
/// Dead properties one resource may hold.
const DEAD_PROPS_MAX: usize = 1_000;
/// Bytes of one dead property's element.
const DEAD_PROP_BYTES_MAX: usize = 64 << 10;
/// The live properties (namespace `DAV:`), which PROPPATCH may not set or remove.
const LIVE: [&str; 9] = [
    "resourcetype",
    "displayname",
    "getlastmodified",
    "creationdate",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "lockdiscovery",
    "supportedlock",
];

/// One resource of a PROPFIND answer: its path and what it is (`None`: the drive list).
pub(super) type DavEntry = (Vec<String>, Option<(dlfs::Stat, String)>);

/// A property of a resource: namespace, name, and its element with its value.
struct Prop {
    ns: String,
    name: String,
    element: String,
}

fn live(name: &str, value: String) -> Prop {
    Prop {
        ns: DAV.into(),
        name: name.into(),
        element: if value.is_empty() {
            format!("<D:{name}/>")
        } else {
            format!("<D:{name}>{value}</D:{name}>")
        },
    }
}

/// An empty element naming a property (for propname and 404 answers).
fn name_only(ns: &str, name: &str) -> String {
    if ns == DAV {
        format!("<D:{name}/>")
    } else {
        format!("<{name}{}/>", xmlns_attr(None, ns))
    }
}

/// The dead properties in `meta`: (`{ns}name` key, element).
fn dead_props(meta: &Cell, r: &dyn Resolver) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !matches!(meta.kind(), Kind::Map) {
        return out;
    }
    let Ok(props) = etch_engine::lattice::value_at_path(meta, &[Cell::string(DEAD_PROPS_KEY)], r)
    else {
        return out;
    };
    let _ = for_each_entry(&props, r, &mut |k, v| {
        if let (Ok(k), Some(Ok(v))) = (blob_bytes(&k, r), v.map(|v| blob_bytes(&v, r))) {
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
        Ok(())
    });
    out
}

fn prop_key(ns: &str, name: &str) -> String {
    format!("{{{ns}}}{name}")
}

/// Every property of a resource.
fn props_of(
    table: &LockTable,
    owner: &[u8; 32],
    comps: &[String],
    what: &Option<(dlfs::Stat, String)>,
    r: &dyn Resolver,
) -> Vec<Prop> {
    let collection = what
        .as_ref()
        .is_none_or(|(s, _)| s.kind == StatKind::Directory);
    let name = comps.last().map_or("dlfs", String::as_str);
    let mut out = vec![
        live("displayname", escape(name)),
        live(
            "resourcetype",
            if collection {
                "<D:collection/>".into()
            } else {
                String::new()
            },
        ),
    ];
    if let Some((stat, media)) = what {
        out.push(live("getlastmodified", http_date(stat.utime)));
        out.push(live("creationdate", iso_time(stat.utime)));
        if stat.kind == StatKind::File {
            out.push(live("getcontentlength", stat.size.to_string()));
            out.push(live("getcontenttype", escape(media)));
            out.push(live("getetag", path_etag(&stat.hash)));
        }
        for (key, element) in dead_props(&stat.metadata, r) {
            if let Some((ns, name)) = key.strip_prefix('{').and_then(|k| k.split_once('}')) {
                out.push(Prop {
                    ns: ns.into(),
                    name: name.into(),
                    element,
                });
            }
        }
    }
    if !comps.is_empty() {
        out.push(Prop {
            ns: DAV.into(),
            name: "lockdiscovery".into(),
            element: lockdiscovery_xml(table, owner, comps),
        });
        out.push(Prop {
            ns: DAV.into(),
            name: "supportedlock".into(),
            element: SUPPORTEDLOCK_XML.into(),
        });
    }
    out
}

fn propstat(xml: &mut String, elements: &str, status: &str) {
    let _ = write!(
        xml,
        "<D:propstat><D:prop>{elements}</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
    );
}

fn multistatus(xml: String) -> Response {
    Response::builder()
        .status(StatusCode::MULTI_STATUS)
        .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
        .body(Body::from(xml))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

const MULTISTATUS_OPEN: &str =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n";

/// The href of a resource (collections end in `/`).
fn href_of(comps: &[String], collection: bool) -> String {
    let mut h = href(comps);
    if collection && !h.ends_with('/') {
        h.push('/');
    }
    h
}

/// `PROPFIND` at depth 0 or 1 (`infinity` is answered as 1).
pub(super) async fn propfind(
    shared: Arc<Shared>,
    table: Arc<LockTable>,
    owner: Cell,
    owner_key: [u8; 32],
    path: String,
    headers: &HeaderMap,
    body: String,
) -> Response {
    let comps = match components(&path) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let asked = match parse_propfind(&body) {
        Ok(a) => a,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad PROPFIND body: {}", e.0),
            )
        }
    };
    let depth1 = headers
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|d| d.trim() != "0");
    let s = shared.clone();
    let found = tokio::task::spawn_blocking(move || {
        let entries = dav_entries(&s, &owner, &comps, depth1)?;
        let r = s.store.as_ref();
        let mut xml = String::from(MULTISTATUS_OPEN);
        for (comps, what) in &entries {
            let props = props_of(&table, &owner_key, comps, what, r);
            let collection = what
                .as_ref()
                .is_none_or(|(st, _)| st.kind == StatKind::Directory);
            let _ = write!(
                xml,
                "<D:response><D:href>{}</D:href>",
                escape(&href_of(comps, collection))
            );
            match &asked {
                Propfind::AllProp => {
                    let all: String = props.iter().map(|p| p.element.as_str()).collect();
                    propstat(&mut xml, &all, "200 OK");
                }
                Propfind::PropName => {
                    let names: String = props.iter().map(|p| name_only(&p.ns, &p.name)).collect();
                    propstat(&mut xml, &names, "200 OK");
                }
                Propfind::Prop(wanted) => {
                    let (mut have, mut missing) = (String::new(), String::new());
                    for (ns, name) in wanted {
                        match props.iter().find(|p| &p.ns == ns && &p.name == name) {
                            Some(p) => have.push_str(&p.element),
                            None => missing.push_str(&name_only(ns, name)),
                        }
                    }
                    if !have.is_empty() {
                        propstat(&mut xml, &have, "200 OK");
                    }
                    if !missing.is_empty() {
                        propstat(&mut xml, &missing, "404 Not Found");
                    }
                }
            }
            xml.push_str("</D:response>\n");
        }
        xml.push_str("</D:multistatus>\n");
        Ok::<String, Response>(xml)
    })
    .await;
    match found {
        Ok(Ok(xml)) => multistatus(xml),
        Ok(Err(r)) => r,
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The resources a PROPFIND answers: the path and, at depth 1, its children.
fn dav_entries(
    shared: &Shared,
    owner: &Cell,
    comps: &[String],
    depth1: bool,
) -> Result<Vec<DavEntry>, Response> {
    let fail = |e: &dyn std::fmt::Display| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let r = shared.store.as_ref();
    let mut out: Vec<DavEntry> = Vec::new();
    if comps.is_empty() {
        out.push((Vec::new(), None));
        if depth1 {
            for name in shared.node.drive_names(owner).map_err(|e| fail(&e))? {
                let c = vec![name];
                if let Some(st) = stat_at(shared, owner, &c)? {
                    out.push((c, Some(st)));
                }
            }
        }
        return Ok(out);
    }
    let Some(me) = stat_at(shared, owner, comps)? else {
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
            let media = super::path::media_type(&stat.metadata, &name, r);
            let mut c = comps.to_vec();
            c.push(name);
            out.push((c, Some((stat, media))));
        }
    }
    Ok(out)
}

/// What is at `comps` in `owner`'s drives (with its media type), `None` when nothing is.
pub(super) fn stat_at(
    shared: &Shared,
    owner: &Cell,
    comps: &[String],
) -> Result<Option<(dlfs::Stat, String)>, Response> {
    let fail = |e: &dyn std::fmt::Display| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let r = shared.store.as_ref();
    let Some(drive_name) = comps.first() else {
        return Ok(None);
    };
    let drive = shared.node.drive(owner, drive_name).map_err(|e| fail(&e))?;
    if drive.is_nil() {
        return Ok(None);
    }
    let p = DrivePath::parse(&comps.join("/"))
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    match dlfs::stat(&drive, &p, r) {
        Ok(s) => {
            let media =
                super::path::media_type(&s.metadata, comps.last().map_or("", String::as_str), r);
            Ok(Some((s, media)))
        }
        Err(dlfs::DlfsError::NotFound(_)) | Err(dlfs::DlfsError::NoSuchDirectory(_)) => Ok(None),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// `meta` with the dead properties changed by `ops` in order; `Err` says why not.
fn patched(meta: &Cell, ops: &[PatchOp], r: &dyn Resolver) -> Result<Cell, String> {
    let mut entries: Vec<(Cell, Cell)> = Vec::new();
    match meta.kind() {
        Kind::Nil => {}
        Kind::Map => for_each_entry(meta, r, &mut |k, v| {
            entries.push((k, v.unwrap_or_else(Cell::nil)));
            Ok(())
        })
        .map_err(|e| e.to_string())?,
        other => {
            return Err(format!(
                "the node's metadata is a {}, not a Map: its properties cannot be set here",
                other.name()
            ))
        }
    }
    let mut props = dead_props(meta, r);
    for op in ops {
        match op {
            PatchOp::Set(ns, name, element) => {
                if element.len() > DEAD_PROP_BYTES_MAX {
                    return Err(format!("a property over {DEAD_PROP_BYTES_MAX} bytes"));
                }
                let key = prop_key(ns, name);
                props.retain(|(k, _)| k != &key);
                props.push((key, element.clone()));
            }
            PatchOp::Remove(ns, name) => {
                let key = prop_key(ns, name);
                props.retain(|(k, _)| k != &key);
            }
        }
    }
    if props.len() > DEAD_PROPS_MAX {
        return Err(format!(
            "more than {DEAD_PROPS_MAX} properties on one resource"
        ));
    }
    let key = Cell::string(DEAD_PROPS_KEY);
    entries.retain(|(k, _)| k != &key);
    if !props.is_empty() {
        let map = Cell::map(
            props
                .into_iter()
                .map(|(k, v)| (Cell::string(&k), Cell::string(&v)))
                .collect(),
        );
        entries.push((key, map));
    }
    Ok(if entries.is_empty() {
        Cell::nil()
    } else {
        Cell::map(entries)
    })
}

/// `PROPPATCH`: every operation applied in document order, all or none, as one signed drive
/// update; live properties are protected (403, the others 424, nothing changed).
pub(super) async fn proppatch(
    shared: Arc<Shared>,
    owner: Cell,
    comps: Vec<String>,
    body: String,
) -> Response {
    let ops = match parse_proppatch(&body) {
        Ok(o) => o,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad PROPPATCH body: {}", e.0),
            )
        }
    };
    let names: Vec<(String, String)> = ops
        .iter()
        .map(|op| match op {
            PatchOp::Set(ns, n, _) | PatchOp::Remove(ns, n) => (ns.clone(), n.clone()),
        })
        .collect();
    let all = |xml: &mut String, status: &str, skip: &dyn Fn(&(String, String)) -> bool| {
        let els: String = names
            .iter()
            .filter(|n| !skip(n))
            .map(|(ns, n)| name_only(ns, n))
            .collect();
        if !els.is_empty() {
            propstat(xml, &els, status);
        }
    };
    let mut xml = String::from(MULTISTATUS_OPEN);
    let _ = write!(
        xml,
        "<D:response><D:href>{}</D:href>",
        escape(&href(&comps))
    );
    let protected = |n: &(String, String)| n.0 == DAV && LIVE.contains(&n.1.as_str());
    if names.iter().any(protected) {
        all(&mut xml, "403 Forbidden", &|n| !protected(n));
        all(&mut xml, "424 Failed Dependency", &protected);
        xml.push_str("</D:response>\n</D:multistatus>\n");
        return multistatus(xml);
    }
    let p = match DrivePath::parse(&comps.join("/")) {
        Ok(p) if comps.len() > 1 || !comps.is_empty() => p,
        Ok(_) | Err(_) => return error(StatusCode::BAD_REQUEST, "PROPPATCH needs a drive path"),
    };
    let s = shared.clone();
    let drive = comps[0].clone();
    let written = tokio::task::spawn_blocking(move || {
        s.node.write_drive(&owner, &drive, |cur, now, r| {
            let st = dlfs::stat(cur, &p, r)?;
            let meta = patched(&st.metadata, &ops, r).map_err(dlfs::DlfsError::Malformed)?;
            dlfs::set_metadata(cur, &p, meta, now, r)
        })
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(etch_engine::node::NodeError::Dlfs(dlfs::DlfsError::NotFound(_)))) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no file or directory /dlfs/{}", comps.join("/")),
            )
        }
        Ok(Err(etch_engine::node::NodeError::Dlfs(dlfs::DlfsError::Malformed(m)))) => {
            return error(StatusCode::CONFLICT, m)
        }
        Ok(Err(e)) => return error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    all(&mut xml, "200 OK", &|_| false);
    xml.push_str("</D:response>\n</D:multistatus>\n");
    multistatus(xml)
}
