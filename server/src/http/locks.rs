//! WebDAV class 2 (RFC 4918 §6, §7, §9.10, §9.11, §10.4): write locks on drive paths, the
//! `If` header, and the check every write passes before it touches a drive.
//!
//! Locks live in memory, per node and HTTP door: they guard one client's edit against another
//! client of this node (what Finder, Explorer and davfs2 take before writing), not replicas on
//! other nodes, which merge as CRDTs anyway. A restart drops them, as a crash of the holder
//! would; each expires after its timeout (at most [`LOCK_SECONDS_MAX`]).
//!
//! Order of checks for a write (as Apache's mod_dav): the `If` header first (false: 412), then
//! every lock guarding what the method changes must have its token among those the `If` header
//! submits (else 423).

use super::error;
use super::xml::escape;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Locks held at once on a node, in all (more: 503 until some expire or are released).
pub(super) const LOCKS_MAX: usize = 10_000;
/// The longest timeout granted; `Infinite` and longer requests get this.
pub(super) const LOCK_SECONDS_MAX: u64 = 86_400;
/// The timeout granted when the request names none.
const LOCK_SECONDS_DEFAULT: u64 = 3_600;

/// One lock.
#[derive(Debug, Clone)]
pub(super) struct Lock {
    /// `opaquelocktoken:<uuid>`.
    pub token: String,
    /// Whose drives the path is in.
    pub owner: [u8; 32],
    /// The locked path: drive, then names.
    pub root: Vec<String>,
    /// Depth infinity (the whole subtree) rather than 0.
    pub infinite: bool,
    /// Shared rather than exclusive.
    pub shared: bool,
    /// The `<owner>` the client sent, echoed back.
    pub owner_xml: String,
    /// Seconds granted.
    pub seconds: u64,
    expires: Instant,
}

impl Lock {
    /// Whether this lock guards `path` itself.
    fn covers(&self, owner: &[u8; 32], path: &[String]) -> bool {
        &self.owner == owner
            && (self.root == path || (self.infinite && path.starts_with(&self.root)))
    }

    /// Whether this lock is rooted at `path` or below it.
    fn under(&self, owner: &[u8; 32], path: &[String]) -> bool {
        &self.owner == owner && self.root.starts_with(path)
    }
}

/// The node's locks.
#[derive(Debug, Default)]
pub(super) struct LockTable {
    locks: Mutex<Vec<Lock>>,
}

/// Why a LOCK was not granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refused {
    /// Another lock conflicts (423).
    Conflict,
    /// The table is full (503).
    Full,
}

impl LockTable {
    /// The live locks, expired ones dropped first.
    fn live(&self) -> std::sync::MutexGuard<'_, Vec<Lock>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        locks.retain(|l| l.expires > now);
        locks
    }

    /// The locks guarding `path` itself.
    pub fn covering(&self, owner: &[u8; 32], path: &[String]) -> Vec<Lock> {
        self.live()
            .iter()
            .filter(|l| l.covers(owner, path))
            .cloned()
            .collect()
    }

    fn under(&self, owner: &[u8; 32], path: &[String]) -> Vec<Lock> {
        self.live()
            .iter()
            .filter(|l| l.under(owner, path))
            .cloned()
            .collect()
    }

    /// Takes a new lock on `path` unless one conflicts: an exclusive lock conflicts with any
    /// lock guarding the path (or, at depth infinity, rooted below it); a shared one only with
    /// exclusive ones.
    #[allow(clippy::too_many_arguments)]
    pub fn lock(
        &self,
        owner: [u8; 32],
        path: Vec<String>,
        infinite: bool,
        shared: bool,
        owner_xml: String,
        seconds: u64,
    ) -> Result<Lock, Refused> {
        let mut locks = self.live();
        let conflicts = locks.iter().any(|l| {
            let overlaps = l.covers(&owner, &path) || (infinite && l.under(&owner, &path));
            overlaps && (!shared || !l.shared)
        });
        if conflicts {
            return Err(Refused::Conflict);
        }
        if locks.len() >= LOCKS_MAX {
            return Err(Refused::Full);
        }
        let lock = Lock {
            token: format!("opaquelocktoken:{}", uuid_v4()),
            owner,
            root: path,
            infinite,
            shared,
            owner_xml,
            seconds,
            expires: Instant::now() + Duration::from_secs(seconds),
        };
        locks.push(lock.clone());
        Ok(lock)
    }

    /// Refreshes the lock `token` if it guards `path`: its new state.
    pub fn refresh(
        &self,
        token: &str,
        owner: &[u8; 32],
        path: &[String],
        seconds: u64,
    ) -> Option<Lock> {
        let mut locks = self.live();
        let l = locks
            .iter_mut()
            .find(|l| l.token == token && l.covers(owner, path))?;
        l.seconds = seconds;
        l.expires = Instant::now() + Duration::from_secs(seconds);
        Some(l.clone())
    }

    /// Removes the lock `token` if it guards `path`.
    pub fn unlock(&self, token: &str, owner: &[u8; 32], path: &[String]) -> bool {
        let mut locks = self.live();
        let before = locks.len();
        locks.retain(|l| !(l.token == token && l.covers(owner, path)));
        locks.len() < before
    }

    /// Drops the locks rooted at `path` or below it (the resources are gone or moved).
    pub fn drop_under(&self, owner: &[u8; 32], path: &[String]) {
        self.live().retain(|l| !l.under(owner, path));
    }

    fn token_guards(&self, token: &str, owner: &[u8; 32], path: &[String]) -> bool {
        self.live()
            .iter()
            .any(|l| l.token == token && l.covers(owner, path))
    }
}

/// A random version-4 UUID (RFC 4122), from the challenge tokens' randomness.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&crate::challenge::fresh_token()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The `Timeout` header's first usable value (RFC 4918 §10.7), capped.
pub(super) fn timeout_seconds(headers: &HeaderMap) -> u64 {
    let Some(v) = headers.get("timeout").and_then(|v| v.to_str().ok()) else {
        return LOCK_SECONDS_DEFAULT;
    };
    for t in v.split(',').map(str::trim) {
        if t.eq_ignore_ascii_case("infinite") {
            return LOCK_SECONDS_MAX;
        }
        if let Some(n) = t
            .strip_prefix("Second-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            return n.clamp(1, LOCK_SECONDS_MAX);
        }
    }
    LOCK_SECONDS_DEFAULT
}

/// One condition of an `If` list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    Token(String),
    ETag(String),
}

/// A parsed `If` header: (tag, lists), each list a conjunction of (negated, condition).
type IfHeader = Vec<(Option<String>, Vec<Vec<(bool, Cond)>>)>;

/// Parses an `If` header (RFC 4918 §10.4); `Err` is a 400.
fn parse_if(s: &str) -> Result<IfHeader, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: IfHeader = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1
        }
    };
    let until = |i: &mut usize, end: u8| -> Result<String, String> {
        let start = *i;
        while *i < b.len() && b[*i] != end {
            *i += 1;
        }
        if *i >= b.len() {
            return Err(format!("missing {}", char::from(end)));
        }
        let v = s.get(start..*i).unwrap_or("").to_string();
        *i += 1;
        Ok(v)
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        match b[i] {
            b'<' => {
                i += 1;
                let tag = until(&mut i, b'>')?;
                out.push((Some(tag), Vec::new()));
            }
            b'(' => {
                i += 1;
                if out.is_empty() {
                    out.push((None, Vec::new()));
                }
                let mut list = Vec::new();
                loop {
                    skip_ws(&mut i);
                    let mut not = false;
                    if b.len() >= i + 3 && b[i..i + 3].eq_ignore_ascii_case(b"not") {
                        not = true;
                        i += 3;
                        skip_ws(&mut i);
                    }
                    match b.get(i) {
                        Some(b'<') => {
                            i += 1;
                            list.push((not, Cond::Token(until(&mut i, b'>')?)));
                        }
                        Some(b'[') => {
                            i += 1;
                            list.push((not, Cond::ETag(until(&mut i, b']')?)));
                        }
                        Some(b')') if !not && !list.is_empty() => {
                            i += 1;
                            break;
                        }
                        _ => return Err("a condition is not <token> or [etag]".into()),
                    }
                }
                if let Some(last) = out.last_mut() {
                    last.1.push(list);
                }
            }
            _ => return Err("expected < or (".into()),
        }
    }
    if out.is_empty() || out.iter().any(|(_, l)| l.is_empty()) {
        return Err("no condition list".into());
    }
    if out.len() > 1 && out.iter().any(|(t, _)| t.is_none()) {
        return Err("tagged and untagged lists mixed".into());
    }
    Ok(out)
}

/// The drive path a tag (an absolute URL or a path) names, when it lies under `/dlfs/`.
fn tag_path(tag: &str) -> Option<Vec<String>> {
    let path = match tag.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => tag,
    };
    let rest = path.strip_prefix("/dlfs/")?;
    let decoded = super::path::percent_decode(rest)?;
    super::path::components(&decoded).ok()
}

/// What a write is about to change, for the lock check.
pub(super) struct Change<'a> {
    /// The method.
    pub method: &'a str,
    /// The request path (drive, then names).
    pub path: &'a [String],
    /// Whether the request path exists now.
    pub exists: bool,
    /// COPY and MOVE: the destination path.
    pub destination: Option<&'a [String]>,
}

fn parent(path: &[String]) -> &[String] {
    &path[..path.len().saturating_sub(1)]
}

/// The locks guarding what `change` alters (module docs; RFC 4918 §7).
fn guarding(table: &LockTable, owner: &[u8; 32], change: &Change) -> Vec<Lock> {
    let p = change.path;
    let mut out = Vec::new();
    let with_parent = |out: &mut Vec<Lock>, path: &[String]| {
        out.extend(table.covering(owner, path));
        if path.len() > 1 {
            out.extend(table.covering(owner, parent(path)));
        }
    };
    match change.method {
        "PUT" | "PROPPATCH" | "MKCOL" if change.exists => out.extend(table.covering(owner, p)),
        "PUT" | "PROPPATCH" | "MKCOL" => with_parent(&mut out, p),
        "LOCK" if !change.exists => out.extend(table.covering(owner, parent(p))),
        "DELETE" | "MOVE" => {
            with_parent(&mut out, p);
            out.extend(table.under(owner, p));
        }
        _ => {}
    }
    if let Some(d) = change.destination {
        with_parent(&mut out, d);
        out.extend(table.under(owner, d));
    }
    out
}

/// The `If` header check and the lock check of a write (module docs), for `owner`'s drives.
/// `etag_of` gives a path's current ETag (`"…"`), `None` when nothing is there. Returns the
/// tokens the `If` header submitted; `Err` is the answer (400, 412 or 423).
pub(super) fn check(
    table: &LockTable,
    owner: &[u8; 32],
    headers: &HeaderMap,
    change: &Change,
    etag_of: &dyn Fn(&[String]) -> Option<String>,
) -> Result<Vec<String>, Response> {
    let mut submitted = Vec::new();
    if let Some(v) = headers.get("if") {
        let text = v
            .to_str()
            .map_err(|_| error(StatusCode::BAD_REQUEST, "the If header is not text"))?;
        let parsed = parse_if(text).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("the If header is malformed: {e}"),
            )
        })?;
        let mut any_true = false;
        for (tag, lists) in &parsed {
            let path = match tag {
                None => Some(change.path.to_vec()),
                Some(t) => tag_path(t),
            };
            for list in lists {
                for (not, c) in list {
                    if let (false, Cond::Token(t)) = (not, c) {
                        submitted.push(t.clone());
                    }
                }
                let holds = path.as_ref().is_some_and(|p| {
                    list.iter().all(|(not, c)| {
                        let v = match c {
                            Cond::Token(t) => table.token_guards(t, owner, p),
                            Cond::ETag(e) => etag_of(p).is_some_and(|mine| {
                                mine == *e
                                    || mine.trim_start_matches("W/") == e.trim_start_matches("W/")
                            }),
                        };
                        v != *not
                    })
                });
                any_true |= holds;
            }
        }
        if !any_true {
            return Err(error(
                StatusCode::PRECONDITION_FAILED,
                "the If header's conditions do not hold",
            ));
        }
    }
    let missing = guarding(table, owner, change)
        .into_iter()
        .find(|l| !submitted.contains(&l.token));
    if let Some(l) = missing {
        return Err(error(
            StatusCode::LOCKED,
            format!(
                "/dlfs/{} is locked ({}): send its lock token in an If header",
                l.root.join("/"),
                if l.shared { "shared" } else { "exclusive" }
            ),
        ));
    }
    Ok(submitted)
}

/// The `activelock` element of `lock` (RFC 4918 §14.1).
pub(super) fn activelock_xml(lock: &Lock) -> String {
    let href = super::path::href(&lock.root);
    format!(
        "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{}/></D:lockscope>\
         <D:depth>{}</D:depth><D:owner>{}</D:owner><D:timeout>Second-{}</D:timeout>\
         <D:locktoken><D:href>{}</D:href></D:locktoken><D:lockroot><D:href>{}</D:href>\
         </D:lockroot></D:activelock>",
        if lock.shared { "shared" } else { "exclusive" },
        if lock.infinite { "infinity" } else { "0" },
        lock.owner_xml,
        lock.seconds,
        escape(&lock.token),
        escape(&href)
    )
}

/// The `lockdiscovery` property of `path`: the locks guarding it.
pub(super) fn lockdiscovery_xml(table: &LockTable, owner: &[u8; 32], path: &[String]) -> String {
    let locks = table.covering(owner, path);
    if locks.is_empty() {
        return "<D:lockdiscovery/>".into();
    }
    let mut out = String::from("<D:lockdiscovery>");
    for l in &locks {
        out.push_str(&activelock_xml(l));
    }
    out.push_str("</D:lockdiscovery>");
    out
}

/// The `supportedlock` property: exclusive and shared write locks.
pub(super) const SUPPORTEDLOCK_XML: &str = "<D:supportedlock><D:lockentry><D:lockscope>\
    <D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry><D:lockentry>\
    <D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>\
    </D:supportedlock>";

/// Fuzzing entry: the `If` header parser and tag paths on `text`.
pub(super) fn fuzz_if(text: &str) {
    if let Ok(parsed) = parse_if(text) {
        for (tag, _) in parsed {
            if let Some(t) = tag {
                let _ = tag_path(&t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_headers_litmus_sends() {
        let t = "opaquelocktoken:e4aeb572-a292-489b-a924-49a2005c0d03";
        for h in [
            format!("(<{t}> [\"abc\"])"),
            "(<DAV:no-lock> [W/\"20-66\"])".to_string(),
            format!("(<{t}>) (Not <DAV:no-lock>)"),
            format!("(<{t}> [\"abd\"]) (Not <DAV:no-lock> [\"abd\"])"),
            format!("<http://127.0.0.1:8080/dlfs/d/litmus/lockcoll/> (<{t}>)"),
        ] {
            assert!(parse_if(&h).is_ok(), "{h}");
        }
        assert_eq!(
            parse_if(&format!("(Not <{t}>)")),
            Ok(vec![(None, vec![vec![(true, Cond::Token(t.into()))]])])
        );
        assert!(parse_if("(").is_err());
        assert!(parse_if("garbage").is_err());
        assert!(parse_if("(<a>) <http://x/> (<b>)").is_err());
    }

    #[test]
    fn exclusive_and_shared_conflicts() {
        let table = LockTable::default();
        let o = [1u8; 32];
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        let a = table.lock(o, p("d/x"), false, true, String::new(), 60);
        assert!(a.is_ok());
        assert!(table
            .lock(o, p("d/x"), false, true, String::new(), 60)
            .is_ok());
        assert_eq!(
            table
                .lock(o, p("d/x"), false, false, String::new(), 60)
                .err(),
            Some(Refused::Conflict)
        );
        assert_eq!(
            table.lock(o, p("d"), true, false, String::new(), 60).err(),
            Some(Refused::Conflict)
        );
        assert!(table
            .lock(o, p("d/y"), false, false, String::new(), 60)
            .is_ok());
        assert!(table
            .lock([2u8; 32], p("d/x"), false, false, String::new(), 60)
            .is_ok());
    }
}
