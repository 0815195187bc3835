//! `etch serve` as a process: `etch eval --connect` prints exactly what `etch eval --store`
//! prints on the same store content (stdout, stderr, exit code); SIGTERM stops it cleanly;
//! `etch key new` / `etch key show`.

mod common;

use common::{etch, missing, serve_both, serve_with_http, Served, ETCH};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// SIGTERM to `child`; its exit code.
fn sigterm(mut child: Child) -> Option<i32> {
    // SAFETY: kill() with a pid of a child we spawned and still own.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    child.wait().expect("wait").code()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn eval_connect_prints_what_a_local_eval_prints() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let local = tmp.path().join("local");
    let served = tmp.path().join("served");
    let long = "abcdefghij".repeat(3000);
    // The same content in two stores: written once, then copied.
    for setup in [
        "(store [1 2 3])".to_string(),
        format!("(store \"{long}\")"),
        "(merge! [:data] (index (value-id \"x\") \"x\"))".to_string(),
        "(mkdrive \"d\")".to_string(),
        "(put \"d/a.txt\" \"hello\")".to_string(),
        "(mkdir \"d/sub\")".to_string(),
    ] {
        let r = etch(
            &home,
            &[
                "eval",
                "--create",
                "--store",
                local.to_str().expect("utf-8"),
                &setup,
            ],
        );
        assert_eq!(r.code, 0, "{setup}: {}", r.err);
    }
    copy_dir(&local, &served);
    let server = Served::start(&home, &served);
    let big_id = etch(&home, &["eval", &format!("(value-id \"{long}\")")])
        .out
        .trim()
        .to_string();
    let queries: Vec<String> = vec![
        "(+ 1 2)".into(),
        "(count [1 2 3])".into(),
        "(count 1 2)".into(),
        "(str \"a\" \"b\" 3)".into(),
        "(fetch (value-id [1 2 3]))".into(),
        format!("(fetch {big_id})"),
        format!("(count (fetch {big_id}))"),
        "(get-in (root) [:data])".into(),
        "(store \"stored over the wire\")".into(),
        "(fetch (store [4 5 6]))".into(),
        "(merge! [:data] (index (value-id :k) :k))".into(),
        "(value-id {:a 1})".into(),
        "(encoding [1 :x])".into(),
        "(drives)".into(),
        "(ls \"d\")".into(),
        "(read-file \"d/a.txt\")".into(),
        "(stat \"d/a.txt\")".into(),
        "(read-file \"d/missing.txt\")".into(),
        "(def a 5) (* a a)".into(),
        "undefined-name".into(),
        "(+ 1".into(),
        "".into(),
        "(assoc {:a 1} :b [1 2])".into(),
        "(contains-key? (get-in (root) [:data]) (value-id \"x\"))".into(),
        "(fetch 0x0000000000000000000000000000000000000000000000000000000000000000)".into(),
    ];
    assert!(queries.len() >= 19);
    let local_arg = local.to_str().expect("utf-8").to_string();
    for q in &queries {
        let here = etch(&home, &["eval", "--store", &local_arg, q]);
        let there = etch(&home, &["eval", "--connect", &server.addr, q]);
        assert_eq!(
            (there.code, &there.out, &there.err),
            (here.code, &here.out, &here.err),
            "query {q:?}"
        );
    }
    // Scripts from stdin go the same way.
    let script = "(def b 2)\n(+ b 40)\n";
    let run_stdin = |args: &[&str]| {
        let mut c = Command::new(ETCH)
            .args(args)
            .env("ETCH_HOME", &home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::io::Write::write_all(&mut c.stdin.take().expect("stdin"), script.as_bytes())
            .expect("write");
        String::from_utf8(c.wait_with_output().expect("wait").stdout).expect("utf-8")
    };
    assert_eq!(
        run_stdin(&["eval", "--connect", &server.addr, "-"]),
        run_stdin(&["eval", "--store", &local_arg, "-"])
    );
    // Admin functions: refused to a client with another key ...
    let stranger = tmp.path().join("stranger");
    assert_eq!(etch(&stranger, &["key", "new"]).code, 0);
    let r = etch(
        &stranger,
        &["eval", "--connect", &server.addr, "(set-root! (root))"],
    );
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "Exception: :TRUST Operation requires admin rights\n")
    );
    let r = etch(&stranger, &["eval", "--connect", &server.addr, "(+ 1 2)"]);
    assert_eq!((r.code, r.out.as_str()), (0, "3\n"));
    // ... and run for the holder of the node's key (same Etch directory as the server).
    let r = etch(
        &home,
        &["eval", "--connect", &server.addr, "(put \"d/c.txt\" \"C\")"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let r = etch(
        &home,
        &["eval", "--connect", &server.addr, "(read-file \"d/c.txt\")"],
    );
    assert_eq!((r.code, r.out.as_str()), (0, "0x43\n"));
    // The shell over a connection: one QUERY per input.
    let mut sh = Command::new(ETCH)
        .args(["shell", "--connect", &server.addr])
        .env("ETCH_HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shell");
    std::io::Write::write_all(
        &mut sh.stdin.take().expect("stdin"),
        b"(def z 20) (inc z)\n(ls \"d\")\n",
    )
    .expect("write");
    let out = String::from_utf8(sh.wait_with_output().expect("wait").stdout).expect("utf-8");
    assert_eq!(out, "=> 21\n=> [\"a.txt\" \"c.txt\" \"sub\"]\n");

    // SIGTERM: a clean stop; the store opens again and holds what clients stored.
    assert_eq!(server.terminate(), 0);
    let r = etch(
        &home,
        &[
            "eval",
            "--store",
            served.to_str().expect("utf-8"),
            "(fetch (value-id \"stored over the wire\"))",
        ],
    );
    assert_eq!((r.code, r.out.as_str()), (0, "\"stored over the wire\"\n"));
}

#[test]
fn connect_to_nothing_fails_cleanly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = etch(tmp.path(), &["eval", "--connect", "127.0.0.1:1", "(+ 1 2)"]);
    assert_eq!(r.code, 1);
    assert!(
        r.err.starts_with("etch: cannot connect: 127.0.0.1:1:"),
        "{}",
        r.err
    );
}

#[test]
fn key_new_and_show() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("k").join("node.key");
    let f = file.to_str().expect("utf-8");
    let new = etch(tmp.path(), &["key", "new", "--key-file", f]);
    assert_eq!(new.code, 0, "{}", new.err);
    let lines: Vec<&str> = new.out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("public key: 0x") && lines[0].len() == 14 + 64);
    assert!(lines[1].starts_with("did: did:key:z6Mk"), "{}", lines[1]);
    assert_eq!(std::fs::read(&file).expect("key").len(), 32);
    let show = etch(tmp.path(), &["key", "show", "--key-file", f]);
    assert_eq!((show.code, &show.out), (0, &new.out));
    // No silent replacement of an identity.
    let again = etch(tmp.path(), &["key", "new", "--key-file", f]);
    assert_eq!(again.code, 1);
    assert!(
        again
            .err
            .contains("a key is already there, so nothing was changed: public key 0x"),
        "{}",
        again.err
    );
    let forced = etch(tmp.path(), &["key", "new", "--key-file", f, "--force"]);
    assert_eq!(forced.code, 0);
    assert_ne!(forced.out, new.out);
    // A known seed shows its known public key (RFC 8032 test 1).
    let rfc = tmp.path().join("rfc.key");
    std::fs::write(
        &rfc,
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .expect("hex"),
    )
    .expect("write");
    let show = etch(
        tmp.path(),
        &["key", "show", "--key-file", rfc.to_str().expect("utf-8")],
    );
    assert!(show.out.starts_with(
        "public key: 0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\n"
    ));
    // The default file lives in the Etch directory and is made on first use, by `key show` as
    // by the shell; `key new` then changes nothing and says which key is there.
    let home = tmp.path().join("home");
    let created = etch(&home, &["key", "show"]);
    assert_eq!(created.code, 0, "{}", created.err);
    assert!(home.join("node.key").exists());
    assert_eq!(etch(&home, &["key", "show"]).out, created.out);
    let refused = etch(&home, &["key", "new"]);
    assert_eq!(refused.code, 1);
    let public = created.out.lines().next().expect("public key line");
    assert!(
        refused.err.contains(&format!(
            "node.key: a key is already there, so nothing was changed: {}",
            public.replace("public key: ", "public key ")
        )),
        "{}",
        refused.err
    );
    assert!(refused.err.contains("it is already this node's identity"));
    assert_eq!(etch(&home, &["key", "show"]).out, created.out);
}

/// `etch serve --http`: the second line names the HTTP address, and `curl` (a client we did not
/// write) reads a stored String whole and by range, with the Value ID as its ETag.
#[test]
fn serve_http_answers_curl() {
    if missing("curl", "--version", "the HTTP test against curl") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let store = tmp.path().join("s");
    let text: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut put = Command::new(ETCH)
        .args(["put"])
        .arg(&store)
        .env("ETCH_HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn put");
    std::io::Write::write_all(
        &mut put.stdin.take().expect("stdin"),
        format!("\"{text}\"\n").as_bytes(),
    )
    .expect("write");
    let id = String::from_utf8(put.wait_with_output().expect("put").stdout).expect("utf-8");
    let id = id.trim();
    let (child, http) = serve_with_http(&home, &store);
    let curl = |args: &[&str]| -> String {
        let o = Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let url = format!("http://{http}/blob/{id}");
    assert!(curl(&[&url]) == text, "the whole String");
    assert_eq!(curl(&["-r", "10-19", &url]), &text[10..20]);
    let head = curl(&["-I", &url]).to_ascii_lowercase();
    assert!(head.contains(&format!("etag: \"{id}\"")), "{head}");
    assert!(head.contains("content-length: 20000"), "{head}");
    let status = curl(&[&format!("http://{http}/status")]);
    assert!(status.contains("\"root\":"), "{status}");
    assert_eq!(sigterm(child), Some(0), "a clean stop");
}

/// `rclone` (a WebDAV client we did not write) copies a drive down from `etch serve --http`:
/// it lists by PROPFIND and reads by GET; the copy is byte-identical to the tree imported.
#[test]
fn rclone_copies_a_drive_down_over_webdav() {
    if missing("rclone", "version", "the WebDAV test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, store, tree, out) = (
        tmp.path().join("home"),
        tmp.path().join("s"),
        tmp.path().join("tree"),
        tmp.path().join("out"),
    );
    std::fs::create_dir_all(tree.join("sub/deep")).expect("mkdir");
    for i in 0..60u32 {
        let bytes: Vec<u8> = (0..i * 997)
            .map(|j| (j.wrapping_mul(31) ^ i) as u8)
            .collect();
        let dir = if i % 3 == 0 {
            tree.join("sub")
        } else {
            tree.clone()
        };
        std::fs::write(dir.join(format!("file {i}.bin")), bytes).expect("write");
    }
    std::fs::write(tree.join("sub/deep/ünï.txt"), "deep").expect("write");
    for args in [
        vec!["drive", "mkdrive", "home"],
        vec!["drive", "import", tree.to_str().expect("utf-8"), "home"],
    ] {
        let r = etch(
            &home,
            &[
                args.clone(),
                vec!["--create", "--store", store.to_str().expect("utf-8")],
            ]
            .concat(),
        );
        assert_eq!(r.code, 0, "{args:?}: {}", r.err);
    }
    let (child, http) = serve_with_http(&home, &store);
    let o = Command::new("rclone")
        .args([
            "copy",
            "--config",
            "/dev/null",
            "--contimeout",
            "10s",
            "--timeout",
            "30s",
        ])
        .arg(format!(":webdav,url='http://{http}/dlfs/':home"))
        .arg(&out)
        .output()
        .expect("rclone");
    assert!(
        o.status.success(),
        "rclone: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let listing = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(root)
                        .expect("under root")
                        .display()
                        .to_string();
                    files.push((rel, std::fs::read(&p).expect("read")));
                }
            }
        }
        files.sort();
        files
    };
    let (want, got) = (listing(&tree), listing(&out));
    assert_eq!(want.len(), 61);
    assert!(want == got, "the copy differs from the tree");
    // A 1,000-file tree synced up (PUT, MKCOL, PROPFIND) and back down: byte-identical.
    let up = tmp.path().join("up");
    for i in 0..1000u32 {
        let dir = up.join(format!("d{}", i % 10)).join(format!("e{}", i % 7));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let bytes: Vec<u8> = (0..(i * 37) % 5000).map(|j| (j ^ i) as u8).collect();
        std::fs::write(dir.join(format!("f{i}.dat")), bytes).expect("write");
    }
    let remote = format!(":webdav,url='http://{http}/dlfs/':home/up");
    let back = tmp.path().join("back");
    for (from, to) in [
        (up.display().to_string(), remote.clone()),
        (remote, back.display().to_string()),
    ] {
        let o = Command::new("rclone")
            .args([
                "copy",
                "--config",
                "/dev/null",
                "--contimeout",
                "10s",
                "--timeout",
                "60s",
            ])
            .args([&from, &to])
            .output()
            .expect("rclone");
        assert!(
            o.status.success(),
            "rclone {from} -> {to}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (sent, came_back) = (listing(&up), listing(&back));
    assert_eq!(sent.len(), 1000);
    assert!(sent == came_back, "the tree synced up and back differs");
    assert_eq!(sigterm(child), Some(0), "a clean stop");
}

/// `litmus` (the WebDAV conformance suite) against a drive of `etch serve --http`: its `basic`,
/// `copymove`, `props` (dead properties) and `locks` (class 2) groups pass in full.
#[test]
fn litmus_passes_basic_copymove_props_and_locks() {
    if missing("litmus", "--version", "the WebDAV suite") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, store) = (tmp.path().join("home"), tmp.path().join("s"));
    let r = etch(
        &home,
        &[
            "drive",
            "mkdrive",
            "lit",
            "--create",
            "--store",
            store.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let (child, http) = serve_with_http(&home, &store);
    let o = Command::new("litmus")
        .arg(format!("http://{http}/dlfs/lit/"))
        .env("TESTS", "basic copymove props locks")
        .current_dir(tmp.path())
        .output()
        .expect("litmus");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for group in [
        "basic': of 16 tests run: 16 passed",
        "copymove': of 13 tests run: 13 passed",
        "props': of 30 tests run: 30 passed",
        "locks': of 41 tests run: 41 passed",
    ] {
        assert!(out.contains(group), "litmus: {group} missing in\n{out}");
    }
    assert!(o.status.success(), "{out}");
    assert_eq!(sigterm(child), Some(0), "a clean stop");
}

/// A Python with the official MCP SDK (`pip install mcp`): `ETCH_TEST_PYTHON` or `python3`;
/// `None` (the test says it skips) when `import mcp` fails there.
fn python_with_mcp() -> Option<String> {
    let python = std::env::var("ETCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("{python} has no `mcp` package (pip install mcp): skipping the MCP client test");
        return None;
    }
    Some(python)
}

/// Runs the SDK client script (`tests/mcp/client.py`) with `args`; asserts it printed `ok`.
fn mcp_client(python: &str, home: &Path, args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
    let o = Command::new(python)
        .arg(script)
        .args(args)
        .env("ETCH_HOME", home)
        .output()
        .expect("run the MCP client");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && out.lines().last() == Some("ok"),
        "MCP client {args:?} failed:\n{out}\n{err}"
    );
}

/// The official Python MCP SDK drives `etch mcp --store` over stdio, `/mcp` of `etch serve
/// --http` (anonymous on loopback, then with the node key's bearer token) and `etch mcp
/// --connect` over stdio: initialize, list the tools, make a drive, write, list, read back,
/// query, fetch, store, delete.
#[test]
fn mcp_tools_answer_the_python_sdk() {
    let Some(python) = python_with_mcp() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, store) = (tmp.path().join("home"), tmp.path().join("s"));
    let store_arg = store.to_str().expect("utf-8");
    mcp_client(&python, &home, &["stdio", ETCH, store_arg]);
    let (child, http, peer) = serve_both(&home, &store);
    let url = format!("http://{http}/mcp");
    mcp_client(&python, &home, &["http", &url]);
    // `etch mcp --connect`: the same tools over stdio, each a QUERY to the running node (admin
    // rights: this Etch directory holds the node's key).
    mcp_client(&python, &home, &["stdio-connect", ETCH, &peer]);
    let did = etch(&home, &["key", "show"]);
    let node_did = did
        .out
        .lines()
        .find_map(|l| l.strip_prefix("did: "))
        .expect("did line")
        .to_string();
    let token = etch(&home, &["key", "token", "--aud", &node_did]);
    assert_eq!(token.code, 0, "{}", token.err);
    mcp_client(&python, &home, &["http", &url, token.out.trim()]);
    assert_eq!(sigterm(child), Some(0), "a clean stop");
}

/// A headless browser (Debian's Chromium) renders a drive's HTML listing from `etch serve
/// --http`: its DOM holds every file name as a link, and a screenshot lands in
/// `target/test-output/drive-listing.png` for people to look at.
#[test]
fn chromium_renders_a_drive_listing() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        eprintln!("no Chromium (apt-get install chromium): skipping the listing screenshot test");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, store) = (tmp.path().join("home"), tmp.path().join("s"));
    let host = tmp.path().join("photos");
    std::fs::create_dir_all(host.join("2026")).expect("mkdir");
    let names = ["beach.jpg", "notes (draft).txt", "ünïcode.md"];
    for n in names {
        std::fs::write(host.join(n), n.as_bytes()).expect("write");
    }
    let s = store.to_str().expect("utf-8");
    assert_eq!(
        etch(
            &home,
            &["drive", "mkdrive", "pics", "--create", "--store", s]
        )
        .code,
        0
    );
    let r = etch(
        &home,
        &[
            "drive",
            "import",
            host.to_str().expect("utf-8"),
            "pics",
            "--store",
            s,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let (child, http) = serve_with_http(&home, &store);
    let url = format!("http://{http}/dlfs/pics/");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-output");
    std::fs::create_dir_all(&out_dir).expect("output folder");
    let shot = out_dir.join("drive-listing.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tmp.path().join("chromium-profile");
    let browser = |extra: &[&str]| {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
            ])
            .args(["--no-first-run", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium")
    };
    let dom = String::from_utf8_lossy(&browser(&["--dump-dom"]).stdout).into_owned();
    for n in names.iter().chain(&["2026/"]) {
        let shown = n.replace('&', "&amp;");
        assert!(
            dom.contains(&format!(">{shown}</a>")),
            "{n} not in the rendered DOM:\n{dom}"
        );
    }
    let o = browser(&[
        "--window-size=900,500",
        &format!("--screenshot={}", shot.display()),
    ]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2000,
        "a PNG image"
    );
    eprintln!("screenshot of {url}: {}", shot.display());
    assert_eq!(sigterm(child), Some(0), "a clean stop");
}
