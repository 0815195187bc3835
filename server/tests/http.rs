//! The HTTP front door (`Server::serve_http`): content reads by Value ID, Range, ETag and
//! If-None-Match, errors, `/status` and `/metrics`, over a real socket with a plain HTTP/1.1
//! client.

mod common;

use common::{key, start};
use etch_formats::body::Body;
use etch_formats::Cell;
use etch_server::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// One request on its own connection (`Connection: close`), the answer read to the end.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    exchange(addr, method, path, headers, None).await
}

/// A request with a body (and its `Content-Length`).
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    exchange(addr, method, path, headers, Some(body)).await
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    s.write_all(body.unwrap_or_default()).await.expect("body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).expect("headers are text");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// Serves HTTP for `server` on a fresh loopback port; its address.
async fn http_on(server: &mut etch_server::Server) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    server.serve_http(listener);
    addr
}

/// Makes drive `name` of the node's key (`key(n)`).
async fn mkdrive(server: &etch_server::Server, n: u8, name: &'static str) {
    let node = server.node().clone();
    tokio::task::spawn_blocking(move || {
        let owner = Cell::blob(&key(n).verifying_key().to_bytes());
        node.write_drive(&owner, name, |cur, _, _| {
            etch_engine::dlfs::mkdrive(cur, name)
        })
        .expect("mkdrive");
    })
    .await
    .unwrap();
}

/// The value of counter `etch_<name>` in a `/metrics` answer.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("etch_{name} ")))
        .expect("the counter is listed")
        .parse()
        .expect("a number")
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let n = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + n]);
        b = &b[line_end + 2 + n + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_reads_status_and_metrics() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = start(&dir.path().join("s"), Some(key(3)), Config::default()).await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let blob = Cell::blob(&bytes);
    let small = etch_formats::text::read::read_one("{:title \"Q3\" :scores [90 85 77]}").unwrap();
    let node = server.node().clone();
    let (b, s) = (blob.clone(), small.clone());
    tokio::task::spawn_blocking(move || node.store_values(&[b, s]).expect("store"))
        .await
        .unwrap();
    let addr = http_on(&mut server).await;
    // The HTTP task sees the committed root through the node's root watcher.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (bid, sid) = (blob.id().to_hex(), small.id().to_hex());

    // A value by ID, printed (an embedded one, kept only in :data).
    let a = request(addr, "GET", &format!("/v/{sid}"), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b"{:scores [90 85 77],:title \"Q3\"}");
    assert_eq!(a.headers["etag"], format!("\"{sid}\""));
    assert_eq!(
        a.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let a = request(
        addr,
        "GET",
        &format!("/v/{sid}"),
        &[("If-None-Match", &format!("\"{sid}\""))],
    )
    .await;
    assert_eq!((a.status, a.body.len()), (304, 0));
    // JSON as Convex writes it.
    let a = request(addr, "GET", &format!("/v/{sid}?format=json"), &[]).await;
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.body, b"{\"scores\":[90,85,77],\"title\":\"Q3\"}");
    // CAD3 bytes: a multi-cell body that decodes to the same value.
    let a = request(addr, "GET", &format!("/v/{bid}?format=cad3"), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/cad3");
    assert_eq!(a.headers["x-etch-branches-omitted"], "false");
    let decoded = Body::decode(a.body).expect("a CAD3 body");
    assert_eq!(decoded.top.id(), blob.id());
    assert!(decoded.missing().is_empty());
    let a = request(
        addr,
        "GET",
        &format!("/v/{sid}"),
        &[("Accept", "application/cad3")],
    )
    .await;
    assert_eq!(a.body, small.encoding().to_vec());

    // A Blob as raw bytes, whole and in ranges.
    let a = request(addr, "GET", &format!("/blob/{bid}"), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-length"], "300000");
    assert_eq!(a.headers["accept-ranges"], "bytes");
    assert!(a.body == bytes, "whole blob");
    for (range, from, to) in [
        ("bytes=1000-1999", 1000, 2000),
        ("bytes=-10", 299_990, 300_000),
        ("bytes=299990-", 299_990, 300_000),
        ("bytes=4095-70000", 4095, 70_001),
    ] {
        let a = request(addr, "GET", &format!("/blob/{bid}"), &[("Range", range)]).await;
        assert_eq!(a.status, 206, "{range}");
        assert_eq!(
            a.headers["content-range"],
            format!("bytes {from}-{}/300000", to - 1),
            "{range}"
        );
        assert!(a.body == bytes[from..to], "{range}: exact bytes");
    }
    let a = request(
        addr,
        "GET",
        &format!("/blob/{bid}"),
        &[("Range", "bytes=300000-")],
    )
    .await;
    assert_eq!(a.status, 416);
    assert_eq!(a.headers["content-range"], "bytes */300000");
    let a = request(addr, "HEAD", &format!("/blob/{bid}"), &[]).await;
    assert_eq!((a.status, a.body.len()), (200, 0));
    assert_eq!(a.headers["content-length"], "300000");

    // Errors say what is wrong.
    let a = request(addr, "GET", &format!("/blob/{sid}"), &[]).await;
    assert_eq!(a.status, 406);
    assert!(String::from_utf8_lossy(&a.body).contains("not a Blob or String"));
    let a = request(addr, "GET", "/v/0x1234", &[]).await;
    assert_eq!(a.status, 400);
    assert!(String::from_utf8_lossy(&a.body).contains("is not a Value ID"));
    let a = request(addr, "GET", &format!("/v/{}", "ab".repeat(32)), &[]).await;
    assert_eq!(a.status, 404);
    let a = request(addr, "GET", &format!("/v/{sid}?format=xml"), &[]).await;
    assert_eq!(a.status, 400);
    let a = request(addr, "GET", "/nothing", &[]).await;
    assert_eq!(a.status, 404);

    // Operator endpoints.
    let a = request(addr, "GET", "/status", &[]).await;
    assert_eq!(a.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("JSON");
    assert_eq!(v["root"], server.node().root_value().id().to_hex());
    assert_eq!(v["key"], hex::encode(key(3).verifying_key().to_bytes()));
    assert!(v["store"]["cells"].as_u64().unwrap() > 10);
    let a = request(addr, "GET", "/metrics", &[]).await;
    let text = String::from_utf8(a.body).unwrap();
    assert!(
        text.contains("# TYPE etch_http_requests counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE etch_connections_open gauge\n"),
        "{text}"
    );
    let count = |name: &str| metric(&text, name);
    // The 18 requests before this one (it is counted once answered).
    assert_eq!(count("http_requests"), 18, "{text}");
    assert_eq!(count("http_errors"), 6, "{text}");
    assert!(count("http_bytes_out") > 0, "{text}");
    // The latency histogram: every earlier request observed once, buckets cumulative.
    assert!(text.contains("# TYPE etch_http_request_duration_seconds histogram\n"));
    assert_eq!(count("http_request_duration_seconds_count"), 18, "{text}");
    assert_eq!(
        count("http_request_duration_seconds_bucket{le=\"+Inf\"}"),
        18,
        "{text}"
    );
    assert!(
        count("commits") >= 1,
        "the values stored above were committed: {text}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_by_path_list_and_serve_files() {
    use etch_engine::dlfs::{self, DrivePath};
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = start(&dir.path().join("s"), Some(key(4)), Config::default()).await;
    let node = server.node().clone();
    let video: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let v = video.clone();
    tokio::task::spawn_blocking(move || {
        let owner = Cell::blob(&key(4).verifying_key().to_bytes());
        let p = |t: &str| DrivePath::parse(t).unwrap();
        node.write_drive(&owner, "home", |cur, now, r| {
            let d = dlfs::mkdrive(cur, "home")?;
            let d = dlfs::put(&d, &p("home/a b.txt"), Cell::blob(b"Hello"), now, r)?;
            let d = dlfs::mkdir(&d, &p("home/docs"), now, r)?;
            dlfs::put(&d, &p("home/docs/v.mp4"), Cell::blob(&v), now, r)
        })
        .expect("write drive");
    })
    .await
    .unwrap();
    let addr = http_on(&mut server).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let a = request(addr, "GET", "/dlfs/", &[]).await;
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("<a href=\"/dlfs/home\">home/</a>"));
    let a = request(addr, "GET", "/dlfs/?format=json", &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        v["entries"],
        serde_json::json!([{"name": "home", "type": "drive"}])
    );

    let a = request(addr, "GET", "/dlfs/home", &[]).await;
    assert_eq!(a.headers["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(a.body).unwrap();
    assert!(
        html.contains("<a href=\"/dlfs/home/a%20b.txt\">a b.txt</a></td><td class=\"n\">5 B</td>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"/dlfs/home/docs\">docs/</a></td><td class=\"n\">1 entries</td>"),
        "{html}"
    );
    let a = request(
        addr,
        "GET",
        "/dlfs/home/docs",
        &[("Accept", "application/json")],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["entries"][0]["name"], "v.mp4");
    assert_eq!(v["entries"][0]["type"], "file");
    assert_eq!(v["entries"][0]["size"], 200_000);

    let a = request(addr, "GET", "/dlfs/home/a%20b.txt", &[]).await;
    assert_eq!((a.status, a.body.as_slice()), (200, b"Hello".as_slice()));
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    let tag = a.headers["etag"].clone();
    let a = request(
        addr,
        "GET",
        "/dlfs/home/a%20b.txt",
        &[("If-None-Match", &tag)],
    )
    .await;
    assert_eq!(a.status, 304);
    let a = request(
        addr,
        "GET",
        "/dlfs/home/docs/v.mp4",
        &[("Range", "bytes=150000-150099")],
    )
    .await;
    assert_eq!(a.status, 206);
    assert_eq!(a.headers["content-type"], "video/mp4");
    assert!(a.body == video[150_000..150_100]);

    // WebDAV reads: OPTIONS, PROPFIND at depth 1 and 0, the same ETag as GET; writes are 405.
    let a = request(addr, "OPTIONS", "/dlfs/home", &[]).await;
    assert_eq!((a.status, a.headers["dav"].as_str()), (200, "1, 2"));
    let a = request(addr, "PROPFIND", "/dlfs/home", &[("Depth", "1")]).await;
    assert_eq!(a.status, 207);
    let xml = String::from_utf8(a.body).unwrap();
    for want in [
        "<D:href>/dlfs/home/</D:href>",
        "<D:href>/dlfs/home/a%20b.txt</D:href>",
        "<D:href>/dlfs/home/docs/</D:href>",
        "<D:getcontentlength>5</D:getcontentlength>",
        "<D:resourcetype><D:collection/></D:resourcetype>",
        &format!("<D:getetag>{tag}</D:getetag>"),
    ] {
        assert!(xml.contains(want), "{want} in {xml}");
    }
    let a = request(addr, "PROPFIND", "/dlfs/home/docs", &[("Depth", "0")]).await;
    let xml = String::from_utf8(a.body).unwrap();
    assert_eq!(xml.matches("<D:response>").count(), 1, "{xml}");
    let a = request(addr, "PROPFIND", "/dlfs/", &[("Depth", "1")]).await;
    assert!(String::from_utf8_lossy(&a.body).contains("<D:href>/dlfs/home/</D:href>"));
    let a = request(
        addr,
        "PUT",
        "/dlfs/home/new.txt",
        &[("Content-Length", "0")],
    )
    .await;
    // Writes without a token are refused unless the node allows anonymous writes.
    assert_eq!(a.status, 401);
    assert_eq!(a.headers["www-authenticate"], "Bearer");

    for bad in [
        "/dlfs/home/../etc",
        "/dlfs/home/%2e%2e/x",
        "/dlfs/home/a%00b",
    ] {
        let a = request(addr, "GET", bad, &[]).await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(
            String::from_utf8_lossy(&a.body).contains("not a valid name"),
            "{bad}"
        );
    }
    let a = request(addr, "GET", "/dlfs/home/missing.txt", &[]).await;
    assert_eq!(a.status, 404);
    assert!(
        String::from_utf8_lossy(&a.body).contains("no file or directory /dlfs/home/missing.txt")
    );
    let a = request(addr, "GET", "/dlfs/nodrive/x", &[]).await;
    assert_eq!(a.status, 404);
    server.shutdown(Duration::from_secs(5)).await;
}

/// Silent and slow clients are closed after the header timeout, and connections past the limit
/// at once; the node keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_surplus_connections_are_closed() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = Config::default();
    config.limits.http_connections = 2;
    config.limits.http_header_timeout = Duration::from_millis(300);
    let mut server = start(&dir.path().join("s"), Some(key(5)), config).await;
    let addr = http_on(&mut server).await;
    /// Reads until the server closes the connection; how long that took.
    async fn closed_after(s: &mut tokio::net::TcpStream) -> Duration {
        let t = std::time::Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("not closed within 5 s"),
            }
        }
    }
    // Two silent connections take both slots; a third is closed at once.
    let mut silent1 = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut silent2 = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_after(&mut third).await < Duration::from_millis(250));
    // The silent ones are closed after the header timeout.
    let waited = closed_after(&mut silent1).await;
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    closed_after(&mut silent2).await;
    // A header that never ends is cut off too.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let waited = closed_after(&mut slow).await;
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // Slots are free again: the node answers.
    let a = request(addr, "GET", "/status", &[]).await;
    assert_eq!(a.status, 200);
    let a = request(addr, "GET", "/metrics", &[]).await;
    let text = String::from_utf8(a.body).unwrap();
    let count = |name: &str| metric(&text, name);
    assert!(count("http_refused") >= 1, "{text}");
    assert!(count("http_timeouts") >= 2, "{text}");
    server.shutdown(Duration::from_secs(5)).await;
}

/// WebDAV writes with anonymous writes allowed: each method's status codes, and a PUT whose
/// body is cut off changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_writes() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        http_anonymous_writes: true,
        ..Config::default()
    };
    let mut server = start(&dir.path().join("s"), Some(key(6)), config).await;
    mkdrive(&server, 6, "w").await;
    let addr = http_on(&mut server).await;
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let d1 = format!("http://{addr}/dlfs/w/d/c.bin");
    let to = [("Destination", d1.as_str())];
    let keep = [("Destination", d1.as_str()), ("Overwrite", "F")];
    // Each step in order: (method, path, headers, body, expected status, then a GET of
    // `read` expecting `read_body` (or a 404 when `None`)).
    type Step<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8], u16);
    type Then<'a> = Option<(&'a str, Option<&'a [u8]>)>;
    let steps: [(Step<'_>, Then<'_>); 13] = [
        (
            ("PUT", "/dlfs/w/a.bin", &[], &big, 201),
            Some(("/dlfs/w/a.bin", Some(&big))),
        ),
        (
            ("PUT", "/dlfs/w/a.bin", &[], b"new", 204),
            Some(("/dlfs/w/a.bin", Some(b"new"))),
        ),
        (("PUT", "/dlfs/w/no/b.txt", &[], b"x", 409), None),
        (("MKCOL", "/dlfs/w/d", &[], b"", 201), None),
        (("MKCOL", "/dlfs/w/d", &[], b"", 405), None),
        (("MKCOL", "/dlfs/w/x/y", &[], b"", 409), None),
        (("MKCOL", "/dlfs/w/e", &[], b"body", 415), None),
        (
            ("COPY", "/dlfs/w/a.bin", &to, b"", 201),
            Some(("/dlfs/w/d/c.bin", Some(b"new"))),
        ),
        (("MOVE", "/dlfs/w/a.bin", &keep, b"", 412), None),
        (
            ("MOVE", "/dlfs/w/a.bin", &to, b"", 204),
            Some(("/dlfs/w/a.bin", None)),
        ),
        (
            ("DELETE", "/dlfs/w/d", &[], b"", 204),
            Some(("/dlfs/w/d/c.bin", None)),
        ),
        (("DELETE", "/dlfs/w/d", &[], b"", 404), None),
        (("PUT", "/dlfs/w/%2e%2e/x", &[], b"x", 400), None),
    ];
    for ((method, path, headers, body, want), then) in steps {
        let a = send(addr, method, path, headers, body).await;
        assert_eq!(a.status, want, "{method} {path}");
        if let Some((read, expect)) = then {
            let got = request(addr, "GET", read, &[]).await;
            match expect {
                Some(bytes) => assert!(got.body == bytes, "{method} {path}: then GET {read}"),
                None => assert_eq!(got.status, 404, "{method} {path}: then GET {read}"),
            }
        }
    }
    // A body cut off mid-PUT: the file does not appear, nothing is committed.
    let root_before = server.node().root_value();
    {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PUT /dlfs/w/cut.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
            .await
            .unwrap();
        s.write_all(&big[..5000]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        request(addr, "GET", "/dlfs/w/cut.bin", &[]).await.status,
        404
    );
    assert_eq!(server.node().root_value(), root_before, "nothing committed");
    server.shutdown(Duration::from_secs(5)).await;
}

/// An EdDSA JWT as gateway.md describes: `iss`/`sub` the did:key of `iss_key`, signed by
/// `signer`, for audience `aud`, expiring at `exp` (seconds).
fn token(signer: &ed25519_dalek::SigningKey, iss_key: &[u8; 32], aud: &str, exp: i64) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let iss = etch_engine::lattice::did_key(iss_key);
    let kid = iss.trim_start_matches("did:key:");
    let head = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let body = serde_json::json!({"iss": iss, "sub": iss, "aud": aud, "iat": 0, "exp": exp});
    let (h, p) = (b64.encode(head.to_string()), b64.encode(body.to_string()));
    let sig = signer.sign(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", b64.encode(sig.to_bytes()))
}

/// The token matrix: a valid token of the node's key writes; a wrong audience, an expired
/// token, a bad signature or garbage is 401 and changes nothing; another identity reads its own
/// (empty) namespace and may not write (403), since the node never signs as someone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = start(&dir.path().join("s"), Some(key(7)), Config::default()).await;
    mkdrive(&server, 7, "t").await;
    let addr = http_on(&mut server).await;
    let me = key(7).verifying_key().to_bytes();
    let other = key(8).verifying_key().to_bytes();
    let node_did = etch_engine::lattice::did_key(&me);
    let later = etch_engine::node::wall_clock_ms() / 1000 + 600;
    let bearer = |t: &str| format!("Bearer {t}");
    let good = bearer(&token(&key(7), &me, &node_did, later));
    let a = send(
        addr,
        "PUT",
        "/dlfs/t/ok.txt",
        &[("Authorization", &good)],
        b"signed",
    )
    .await;
    assert_eq!(a.status, 201);
    assert_eq!(
        request(addr, "GET", "/dlfs/t/ok.txt", &[]).await.body,
        b"signed"
    );
    let root = server.node().root_value();
    let bad = [
        (
            "wrong audience",
            bearer(&token(&key(7), &me, "did:key:z6MkOther", later)),
        ),
        ("expired", bearer(&token(&key(7), &me, &node_did, 1000))),
        (
            "bad signature",
            bearer(&token(&key(8), &me, &node_did, later)),
        ),
        ("garbage", "Bearer not.a.token".to_string()),
        ("not bearer", "Basic dXNlcjpwYXNz".to_string()),
    ];
    for (what, auth) in &bad {
        for method in ["PUT", "GET"] {
            let a = send(
                addr,
                method,
                "/dlfs/t/x.txt",
                &[("Authorization", auth)],
                b"x",
            )
            .await;
            assert_eq!(a.status, 401, "{what} {method}");
            assert!(
                String::from_utf8_lossy(&a.body).starts_with("invalid token"),
                "{what}"
            );
        }
    }
    assert_eq!(server.node().root_value(), root, "nothing changed");
    // Another identity: its own namespace (no drives), and no writes the node would sign.
    let theirs = bearer(&token(&key(8), &other, &node_did, later));
    let a = request(
        addr,
        "GET",
        "/dlfs/?format=json",
        &[("Authorization", &theirs)],
    )
    .await;
    assert_eq!(a.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["entries"], serde_json::json!([]));
    let a = send(
        addr,
        "PUT",
        "/dlfs/t/x.txt",
        &[("Authorization", &theirs)],
        b"x",
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(String::from_utf8_lossy(&a.body).contains("does not hold the key of did:key:z"));
    assert_eq!(server.node().root_value(), root, "nothing changed");
    server.shutdown(Duration::from_secs(5)).await;
}

/// UCAN delegation over WebDAV (`ucans` header): the node's key grants another identity rights
/// over its drive; a write grant writes (the node signs its own drive), a read grant only
/// reads, and a grant used beyond its ability, outside its path, expired, forged or with a
/// broken chain link gives the caller nothing but its own (empty) namespace, the store unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucan_delegation_matrix() {
    use etch_server::token::{bearer, ucan};
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = start(&dir.path().join("s"), Some(key(7)), Config::default()).await;
    mkdrive(&server, 7, "t").await;
    let addr = http_on(&mut server).await;
    let did = |n: u8| etch_engine::lattice::did_key(&key(n).verifying_key().to_bytes());
    let (node, bob, carol) = (did(7), did(8), did(9));
    let now = etch_engine::node::wall_clock_ms() / 1000;
    let later = now + 600;
    let auth = |n: u8| format!("Bearer {}", bearer(&key(n), &node, now, 600));
    let a = send(
        addr,
        "PUT",
        "/dlfs/t/ok.txt",
        &[("Authorization", &auth(7))],
        b"mine",
    )
    .await;
    assert_eq!(a.status, 201);
    let read = ucan(
        &key(7),
        &bob,
        &format!("{node}/dlfs/t"),
        "crud/read",
        later,
        &[],
    );
    let write = ucan(&key(7), &bob, &format!("{node}/dlfs/t"), "crud", later, &[]);
    let get = |who: u8, grant: String| async move {
        let h = [("Authorization", auth(who)), ("ucans", grant)];
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(addr, "GET", "/dlfs/t/ok.txt", &h).await
    };
    let a = get(8, read.clone()).await;
    assert_eq!((a.status, a.body.as_slice()), (200, b"mine".as_slice()));
    let a = get(8, String::new()).await;
    assert_eq!(a.status, 404, "without a grant: Bob's own namespace");
    let root = server.node().root_value();
    // A read grant used to write.
    let h = [("Authorization", auth(8)), ("ucans", read.clone())];
    let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = send(addr, "PUT", "/dlfs/t/bob.txt", &hv, b"bob").await;
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(server.node().root_value(), root, "nothing changed");
    // A write grant writes the node's drive (signed by the node, the drive's owner).
    let h = [("Authorization", auth(8)), ("ucans", write.clone())];
    let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = send(addr, "PUT", "/dlfs/t/bob.txt", &hv, b"bob").await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        request(addr, "GET", "/dlfs/t/bob.txt", &[]).await.body,
        b"bob"
    );
    let root = server.node().root_value();
    // Chains: Bob passes on reading /dlfs/t/pub only.
    let sub = ucan(
        &key(8),
        &carol,
        &format!("{node}/dlfs/t/pub"),
        "crud/read",
        later,
        &[write],
    );
    let a = get(9, sub.clone()).await;
    assert_eq!(a.status, 404, "a path outside the grant");
    let wide = ucan(
        &key(8),
        &carol,
        &format!("{node}/dlfs/t"),
        "crud/read",
        later,
        std::slice::from_ref(&read),
    );
    assert_eq!(get(9, wide).await.status, 200, "a valid two-link chain");
    let stray = ucan(
        &key(7),
        &carol,
        &format!("{node}/dlfs/t"),
        "crud",
        later,
        &[],
    );
    let broken = ucan(
        &key(8),
        &carol,
        &format!("{node}/dlfs/t"),
        "crud/read",
        later,
        &[stray],
    );
    assert_eq!(
        get(9, broken).await.status,
        404,
        "a broken link (parent not for Bob)"
    );
    let forged = ucan(
        &key(8),
        &carol,
        &format!("{node}/dlfs/t"),
        "crud/read",
        later,
        &[],
    );
    assert_eq!(
        get(9, forged).await.status,
        404,
        "Bob cannot grant the node's drive alone"
    );
    let expired = ucan(
        &key(7),
        &bob,
        &format!("{node}/dlfs/t"),
        "crud",
        now - 1,
        &[],
    );
    assert_eq!(get(8, expired).await.status, 404, "expired");
    assert_eq!(get(9, read).await.status, 404, "a grant for someone else");
    assert_eq!(server.node().root_value(), root, "nothing changed");
    server.shutdown(Duration::from_secs(5)).await;
}

/// WebDAV class 2 and dead properties in brief (litmus covers them fully): an exclusive lock
/// refuses another client's write with 423 and admits the holder's; PROPPATCH sets a property
/// that PROPFIND returns and that moves with the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_dead_properties() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        http_anonymous_writes: true,
        ..Config::default()
    };
    let mut server = start(&dir.path().join("s"), Some(key(7)), config).await;
    mkdrive(&server, 7, "d").await;
    let addr = http_on(&mut server).await;
    assert_eq!(
        send(addr, "PUT", "/dlfs/d/f.txt", &[], b"one").await.status,
        201
    );
    let body = b"<?xml version=\"1.0\"?><lockinfo xmlns='DAV:'><lockscope><exclusive/></lockscope>\
<locktype><write/></locktype><owner>me</owner></lockinfo>";
    let a = send(addr, "LOCK", "/dlfs/d/f.txt", &[("Depth", "0")], body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let token = a.headers["lock-token"].clone();
    assert!(token.starts_with("<opaquelocktoken:"), "{token}");
    assert!(String::from_utf8_lossy(&a.body).contains("<D:owner>me</D:owner>"));
    assert_eq!(
        send(addr, "PUT", "/dlfs/d/f.txt", &[], b"two").await.status,
        423
    );
    assert_eq!(
        send(addr, "DELETE", "/dlfs/d/f.txt", &[], b"").await.status,
        423
    );
    let held = format!("({token})");
    let a = send(addr, "PUT", "/dlfs/d/f.txt", &[("If", &held)], b"two").await;
    assert_eq!(a.status, 204);
    assert_eq!(
        request(addr, "GET", "/dlfs/d/f.txt", &[]).await.body,
        b"two"
    );
    let a = request(addr, "UNLOCK", "/dlfs/d/f.txt", &[("Lock-Token", &token)]).await;
    assert_eq!(a.status, 204);
    assert_eq!(
        send(addr, "PUT", "/dlfs/d/f.txt", &[], b"three")
            .await
            .status,
        204
    );

    let patch = b"<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>\
<k:colour xmlns:k=\"urn:k\">blue</k:colour></D:prop></D:set></D:propertyupdate>";
    let a = send(addr, "PROPPATCH", "/dlfs/d/f.txt", &[], patch).await;
    assert_eq!(a.status, 207);
    assert!(String::from_utf8_lossy(&a.body).contains("200 OK"));
    let a = send(
        addr,
        "MOVE",
        "/dlfs/d/f.txt",
        &[("Destination", "/dlfs/d/g.txt")],
        b"",
    )
    .await;
    assert_eq!(a.status, 201);
    let find = b"<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><prop><colour xmlns=\"urn:k\"/>\
<missing xmlns=\"urn:k\"/></prop></propfind>";
    let a = send(addr, "PROPFIND", "/dlfs/d/g.txt", &[("Depth", "0")], find).await;
    let xml = String::from_utf8_lossy(&a.body).into_owned();
    assert_eq!(a.status, 207);
    // The element as sent, with the bindings in scope declared on it.
    assert!(
        xml.contains("<k:colour xmlns:D=\"DAV:\" xmlns:k=\"urn:k\" xmlns=\"\">blue</k:colour>"),
        "{xml}"
    );
    assert!(
        xml.contains("<missing xmlns=\"urn:k\"/></D:prop><D:status>HTTP/1.1 404"),
        "{xml}"
    );
    assert_eq!(
        send(addr, "PROPFIND", "/dlfs/d/g.txt", &[], b"<foo>")
            .await
            .status,
        400
    );
    server.shutdown(Duration::from_secs(5)).await;
}
