//! The XML request bodies of WebDAV (RFC 4918 §14): `propfind`, `propertyupdate` and
//! `lockinfo`, read with quick-xml's namespace-aware reader. Anything not namespace-well-formed
//! (an unknown prefix, `xmlns:p=""`, two roots, an unclosed element) is a [`BadXml`] (400).
//!
//! A property value is kept as its whole element, re-declaring every namespace binding in scope
//! on it, so it can be pasted verbatim into a PROPFIND answer anywhere (a value holding elements
//! of other namespaces survives the round trip).

use quick_xml::events::Event;
use quick_xml::name::{PrefixDeclaration, ResolveResult};
use quick_xml::reader::NsReader;

/// The WebDAV namespace.
pub(super) const DAV: &str = "DAV:";
/// Bytes of an XML request body read at most.
pub(super) const XML_BODY_BYTES_MAX: usize = 1 << 20;
/// Elements one body may name at most (properties asked for, set or removed).
const ELEMENTS_MAX: usize = 10_000;

/// A body that is not what RFC 4918 asks for: why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BadXml(pub String);

fn bad(m: impl std::fmt::Display) -> BadXml {
    BadXml(m.to_string())
}

/// What a PROPFIND asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Propfind {
    /// Every property (an empty body too).
    AllProp,
    /// The names of every property.
    PropName,
    /// These properties: (namespace, local name).
    Prop(Vec<(String, String)>),
}

/// One PROPPATCH operation, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PatchOp {
    /// Set (namespace, local name) to this whole element.
    Set(String, String, String),
    /// Remove (namespace, local name).
    Remove(String, String),
}

/// A LOCK request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LockInfo {
    /// `<shared/>` rather than `<exclusive/>`.
    pub shared: bool,
    /// The `<owner>` element's content, as sent (echoed back verbatim).
    pub owner: String,
}

/// The body without a leading byte-order mark: the reader skips one, and the values sliced out
/// of the body by the reader's positions must line up with what it read (found by fuzzing).
fn without_bom(body: &str) -> &str {
    body.strip_prefix('\u{feff}').unwrap_or(body)
}

fn ns_of(r: &ResolveResult) -> Result<String, BadXml> {
    match r {
        ResolveResult::Bound(ns) => Ok(ns.0.to_string()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(bad(format!("unknown prefix {p}"))),
    }
}

/// A callback of [`walk`]: the reader (for positions and bindings), the event, its depth, and
/// its element's namespace and local name.
type Visit<'a, 'f> =
    dyn FnMut(&NsReader<&'a [u8]>, &Event<'a>, usize, &str, &str) -> Result<(), BadXml> + 'f;

/// Walks the whole document, handing every start, empty and end tag to `f`.
fn walk<'a>(body: &'a str, f: &mut Visit<'a, '_>) -> Result<(), BadXml> {
    let mut r = NsReader::from_str(body);
    r.config_mut().check_end_names = true;
    let (mut depth, mut roots, mut elements) = (0usize, 0usize, 0usize);
    loop {
        let (res, ev) = r.read_resolved_event().map_err(bad)?;
        let ns = ns_of(&res);
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                elements += 1;
                if elements > ELEMENTS_MAX {
                    return Err(bad(format!("more than {ELEMENTS_MAX} elements")));
                }
                for a in e.attributes() {
                    let a = a.map_err(bad)?;
                    // An attribute value must be well-formed text (no bare `&`, known entities).
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(bad)?;
                    if a.key.0.starts_with("xmlns:") && a.value.is_empty() {
                        return Err(bad("xmlns:prefix=\"\" is not allowed"));
                    }
                    if let Some(p) = a.key.prefix() {
                        if p.as_ref() != "xmlns" && p.as_ref() != "xml" {
                            if let (ResolveResult::Unknown(p), _) =
                                r.resolver().resolve_attribute(a.key)
                            {
                                return Err(bad(format!("unknown prefix {p}")));
                            }
                        }
                    }
                }
                if depth == 0 {
                    roots += 1;
                    if roots > 1 {
                        return Err(bad("two root elements"));
                    }
                }
                let local = e.local_name().as_ref().to_string();
                f(&r, &ev, depth, &ns?, &local)?;
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let local = e.local_name().as_ref().to_string();
                f(&r, &ev, depth, &ns?, &local)?;
            }
            Event::Text(t) if depth == 0 && !t.trim().is_empty() => {
                return Err(bad("text outside the root element"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err(bad("an element is not closed"));
    }
    if roots == 0 {
        return Err(bad("no root element"));
    }
    Ok(())
}

/// A PROPFIND body (empty: allprop). Unknown children of `propfind` are ignored (RFC 4918 §17).
pub(super) fn parse_propfind(body: &str) -> Result<Propfind, BadXml> {
    let body = without_bom(body);
    if body.trim().is_empty() {
        return Ok(Propfind::AllProp);
    }
    let mut kind: Option<Propfind> = None;
    let mut in_prop = false;
    walk(body, &mut |_, ev, depth, ns, local| {
        let end = matches!(ev, Event::End(_));
        match (depth, end) {
            (0, false) if !(ns == DAV && local == "propfind") => {
                return Err(bad("the root element is not DAV:propfind"))
            }
            (1, false) if ns == DAV => match local {
                "allprop" => kind = Some(Propfind::AllProp),
                "propname" => kind = Some(Propfind::PropName),
                "prop" => {
                    if kind.is_none() {
                        kind = Some(Propfind::Prop(Vec::new()));
                    }
                    in_prop = matches!(ev, Event::Start(_));
                }
                _ => {}
            },
            (1, true) => in_prop = false,
            (2, false) if in_prop => {
                if let Some(Propfind::Prop(v)) = &mut kind {
                    v.push((ns.to_string(), local.to_string()));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    kind.ok_or_else(|| bad("propfind names no allprop, propname or prop"))
}

/// A namespace declaration (` xmlns="…"` or ` xmlns:p="…"`) for a namespace name as it was
/// written in a request (quick-xml gives names unexpanded: `&amp;` stays `&amp;`), so that it
/// reads back as the same name: written as it was, in quotes it cannot contain.
pub(super) fn xmlns_attr(prefix: Option<&str>, raw: &str) -> String {
    match prefix {
        None => attr("xmlns", raw),
        Some(p) => attr(&format!("xmlns:{p}"), raw),
    }
}

/// An attribute ` name="value"` with its value as written in the request (still escaped), in
/// quotes it does not contain (a value written in single quotes may hold double ones).
fn attr(name: &str, raw: &str) -> String {
    let q = if raw.contains('"') { '\'' } else { '"' };
    format!(" {name}={q}{raw}{q}")
}

/// Escapes text for an attribute value in double quotes (or element content).
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A PROPPATCH body: its operations in document order (applied all or none).
pub(super) fn parse_proppatch(body: &str) -> Result<Vec<PatchOp>, BadXml> {
    let body = without_bom(body);
    let mut ops = Vec::new();
    let mut mode: Option<bool> = None;
    let mut in_prop = false;
    // The property being read: namespace, local name, qualified name, opening tag, start.
    let mut cur: Option<(String, String, String, String, usize)> = None;
    walk(body, &mut |r, ev, depth, ns, local| {
        let dav = ns == DAV;
        match (ev, depth) {
            (Event::Start(_) | Event::Empty(_), 0) if !(dav && local == "propertyupdate") => {
                return Err(bad("the root element is not DAV:propertyupdate"));
            }
            (Event::Start(_), 1) if dav && (local == "set" || local == "remove") => {
                mode = Some(local == "set")
            }
            (Event::End(_), 1) => mode = None,
            (Event::Start(_), 2) if dav && local == "prop" && mode.is_some() => in_prop = true,
            (Event::End(_), 2) => in_prop = false,
            (Event::Start(e) | Event::Empty(e), 3) if in_prop => {
                let qname = e.name().0.to_string();
                let mut open = format!("<{qname}");
                let mut default_bound = false;
                for (p, uri) in r.resolver().bindings() {
                    match p {
                        PrefixDeclaration::Default => {
                            default_bound = true;
                            open.push_str(&xmlns_attr(None, uri.0));
                        }
                        PrefixDeclaration::Named(p) => open.push_str(&xmlns_attr(Some(p), uri.0)),
                    }
                }
                if !default_bound {
                    open.push_str(" xmlns=\"\"");
                }
                for a in e.attributes().flatten() {
                    let k = a.key.0;
                    if k != "xmlns" && !k.starts_with("xmlns:") {
                        open.push_str(&attr(k, &a.value));
                    }
                }
                if matches!(ev, Event::Empty(_)) {
                    ops.push(match mode {
                        Some(true) => PatchOp::Set(ns.into(), local.into(), format!("{open}/>")),
                        _ => PatchOp::Remove(ns.into(), local.into()),
                    });
                } else {
                    let start = usize::try_from(r.buffer_position()).unwrap_or(usize::MAX);
                    cur = Some((ns.into(), local.into(), qname, open + ">", start));
                }
            }
            (Event::End(_), 3) if in_prop => {
                if let Some((ns, local, qname, open, start)) = cur.take() {
                    let end_tag = format!("</{qname}>");
                    let here = usize::try_from(r.buffer_position()).unwrap_or(0);
                    let stop = here.saturating_sub(end_tag.len()).max(start);
                    let inner = body.get(start..stop).unwrap_or("");
                    ops.push(match mode {
                        Some(true) => PatchOp::Set(ns, local, format!("{open}{inner}{end_tag}")),
                        _ => PatchOp::Remove(ns, local),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(ops)
}

/// A LOCK body: `lockinfo` with `lockscope` (exclusive or shared), `locktype` (write) and an
/// optional `owner`, kept as sent.
pub(super) fn parse_lockinfo(body: &str) -> Result<LockInfo, BadXml> {
    let body = without_bom(body);
    let mut info = LockInfo {
        shared: false,
        owner: String::new(),
    };
    let (mut in_scope, mut scope_seen, mut owner_start) = (false, false, None::<usize>);
    walk(body, &mut |r, ev, depth, ns, local| {
        let dav = ns == DAV;
        match (ev, depth) {
            (Event::Start(_) | Event::Empty(_), 0) if !(dav && local == "lockinfo") => {
                return Err(bad("the root element is not DAV:lockinfo"));
            }
            (Event::Start(_), 1) if dav && local == "lockscope" => in_scope = true,
            (Event::End(_), 1) if dav && local == "lockscope" => in_scope = false,
            (Event::Start(_) | Event::Empty(_), 2) if in_scope && dav => {
                scope_seen = true;
                info.shared = local == "shared";
            }
            (Event::Start(_), 1) if dav && local == "owner" => {
                owner_start = usize::try_from(r.buffer_position()).ok();
            }
            (Event::End(_), 1) if dav && local == "owner" => {
                if let Some(start) = owner_start.take() {
                    let here = usize::try_from(r.buffer_position()).unwrap_or(0);
                    let end_tag = ev_name_len(ev);
                    let stop = here.saturating_sub(end_tag).max(start);
                    info.owner = body.get(start..stop).unwrap_or("").to_string();
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    if !scope_seen {
        return Err(bad("lockinfo has no lockscope"));
    }
    Ok(info)
}

/// The length of an end tag as written (`</D:owner>`).
fn ev_name_len(ev: &Event) -> usize {
    match ev {
        Event::End(e) => e.name().0.len() + 3,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "http://example.com/neon/litmus/";

    #[test]
    fn propfind_bodies() {
        assert!(parse_propfind("<foo>").is_err());
        assert!(parse_propfind(
            "<D:propfind xmlns:D=\"DAV:\"><D:prop><bar:foo xmlns:bar=\"\"/></D:prop></D:propfind>"
        )
        .is_err());
        assert_eq!(
            parse_propfind("<propfind xmlns=\"DAV:\"><foobar/><allprop/></propfind>"),
            Ok(Propfind::AllProp)
        );
        assert_eq!(
            parse_propfind(&format!(
                "<propfind xmlns=\"DAV:\"><prop>\n<nonamespace xmlns=\"\"/><p0 xmlns=\"{NS}\"/></prop></propfind>"
            )),
            Ok(Propfind::Prop(vec![
                (String::new(), "nonamespace".into()),
                (NS.into(), "p0".into())
            ]))
        );
        assert_eq!(parse_propfind(""), Ok(Propfind::AllProp));
        assert!(parse_propfind("<D:propfind xmlns:D=\"DAV:\"><D:prop></D:propfind>").is_err());
    }

    #[test]
    fn proppatch_keeps_values_with_their_namespaces() {
        let ops = parse_proppatch(&format!(
            "<propertyupdate xmlns='DAV:'><remove><prop><r xmlns='{NS}'/></prop></remove>\
             <set><prop><t:v xmlns:t='{NS}'><foo xmlns='http://bar'/>&#65536;</t:v></prop></set>\
             </propertyupdate>"
        ))
        .expect("valid");
        assert_eq!(
            ops,
            vec![
                PatchOp::Remove(NS.into(), "r".into()),
                PatchOp::Set(
                    NS.into(),
                    "v".into(),
                    format!(
                        "<t:v xmlns=\"DAV:\" xmlns:t=\"{NS}\"><foo xmlns='http://bar'/>&#65536;</t:v>"
                    )
                ),
            ]
        );
    }

    /// Found by fuzzing: a bare `&` in a namespace was taken, and an escaped one stored so that
    /// it read back as another namespace.
    #[test]
    fn namespace_names_round_trip_or_are_refused() {
        let bare = "<propertyupdate xmlns='DAV:'><set><prop><p xmlns='urn:a&'>v</p></prop></set>\
                    </propertyupdate>";
        assert!(parse_proppatch(bare).is_err());
        // After a byte-order mark, the value is cut out where it lies.
        let ops = parse_proppatch(
            "\u{feff}<propertyupdate xmlns='DAV:'><set><prop><p xmlns='u'>\
                                   <x/>v</p></prop></set></propertyupdate>",
        )
        .expect("valid");
        assert_eq!(
            ops,
            vec![PatchOp::Set(
                "u".into(),
                "p".into(),
                "<p xmlns=\"u\"><x/>v</p>".into()
            )]
        );
        // And an attribute value holding a double quote (written in single quotes).
        let ops = parse_proppatch(
            "<propertyupdate xmlns='DAV:'><set><prop><p xmlns='urn:a&amp;\"' q='x\"y'>v</p>\
             </prop></set></propertyupdate>",
        )
        .expect("valid");
        let PatchOp::Set(ns, _, element) = &ops[0] else {
            panic!("{ops:?}")
        };
        let again = format!(
            "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>{element}</D:prop></D:set>\
             </D:propertyupdate>"
        );
        match parse_proppatch(&again).as_deref() {
            Ok([PatchOp::Set(n2, l2, _)]) => assert_eq!((n2, l2.as_str()), (ns, "p")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lockinfo_scope_and_owner() {
        let info = parse_lockinfo(
            "<?xml version=\"1.0\"?><lockinfo xmlns='DAV:'> <lockscope><shared/></lockscope>\
             <locktype><write/></locktype><owner>litmus test suite</owner></lockinfo>",
        )
        .expect("valid");
        assert_eq!(
            info,
            LockInfo {
                shared: true,
                owner: "litmus test suite".into()
            }
        );
        assert!(parse_lockinfo("<lockinfo xmlns='DAV:'/>").is_err());
    }
}
