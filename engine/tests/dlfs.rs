//! DLFS local operations (lattice.md §7.4–§7.8) and the shell's DLFS functions (query.md
//! §6.3, §6.5) with exact outcomes: path normalisation, every operation and error message,
//! tombstones, timestamps, the derived encodings of lattice.md §10.4, owner keys, NodeInfo
//! (lattice.md §8.1) and persistence.

use ed25519_dalek::SigningKey;
use etch_engine::dlfs::{self, normalise, DlfsError, DrivePath, StatKind};
use etch_engine::lattice::dlfs::{directory, file, tombstone, update_time, zero};
use etch_engine::lattice::{did_key, signature_valid, value_at_path, Lattice, MergeContext};
use etch_engine::node::{LocalNode, NODE_VERSION};
use etch_engine::query::{eval_text_in, Env, EvalContext, EvalError, Rights};
use etch_engine::store::{CellStore, EtchStore};
use etch_formats::text::print;
use etch_formats::text::read::read_one;
use etch_formats::{Cell, NoResolver, Resolver};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const R: &NoResolver = &NoResolver;

fn v(text: &str) -> Cell {
    read_one(text).unwrap_or_else(|e| panic!("reading {text}: {e}"))
}

fn p(text: &str) -> DrivePath {
    DrivePath::parse(text).unwrap_or_else(|e| panic!("parsing {text}: {e}"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn blob(s: &str) -> Cell {
    Cell::blob(s.as_bytes())
}

fn idx(entries: Vec<(&str, Cell)>) -> Cell {
    Cell::index(
        entries
            .into_iter()
            .map(|(k, v)| (Cell::string(k), v))
            .collect(),
    )
    .expect("index")
}

/// `D({...}, t)` of lattice.md §10.
fn dir(entries: Vec<(&str, Cell)>, t: i64) -> Cell {
    directory(idx(entries), t)
}

/// The message of an error as the REPL shows it.
fn shown(e: DlfsError) -> String {
    let e: EvalError = e.into();
    format!(":{} {}", e.code, e.message)
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn hex_of(c: &Cell) -> String {
    hex::encode(c.encoding())
}

/// A node on a fresh store in `dir`, with key `seed` (if any) and a clock we set.
fn node_in(dir: &Path, seed: Option<u8>) -> (LocalNode, Arc<AtomicI64>) {
    let store: Arc<dyn CellStore> =
        Arc::new(EtchStore::open_or_create(dir.join("n.etch")).expect("store"));
    let clock = Arc::new(AtomicI64::new(1000));
    let c = clock.clone();
    let node = LocalNode::open(store, seed.map(key))
        .expect("node")
        .with_clock(move || c.load(Ordering::SeqCst));
    (node, clock)
}

/// Evaluates `text` on `node` with `rights`: the printed result, or ` Exception: :CODE msg`.
fn eval_as(node: &LocalNode, env: &mut Env, rights: Rights, text: &str) -> String {
    let store = node.store().clone();
    let mut ctx = EvalContext::new(store.as_ref());
    ctx.node = Some(node);
    ctx.rights = rights;
    match eval_text_in(text, env, &ctx) {
        Ok(c) => print(&c, store.as_ref()).expect("print"),
        Err(e) => format!(" Exception: :{} {}", e.code, e.message),
    }
}

fn eval(node: &LocalNode, env: &mut Env, text: &str) -> String {
    eval_as(node, env, Rights::Admin, text)
}

fn pk_hex(seed: u8) -> String {
    format!("0x{}", hex::encode(key(seed).verifying_key().to_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Paths (lattice.md §7.8) and locations (query.md §6.3)
// ---------------------------------------------------------------------------------------------

#[test]
fn path_normalisation_table() {
    let table: &[(&str, bool, &[&str])] = &[
        ("a", false, &["a"]),
        ("a/b", false, &["a", "b"]),
        ("/a/b", true, &["a", "b"]),
        ("//a///b", true, &["a", "b"]),
        ("a/./b", false, &["a", "b"]),
        ("./a", false, &["a"]),
        (".", false, &[]),
        ("/", true, &[]),
        ("/.", true, &[]),
        ("a/b/", false, &["a", "b"]), // trailing `/` is `/.`
        ("a/b/.", false, &["a", "b"]),
        ("a/../b", false, &["b"]),
        ("a/b/..", false, &["a"]),
        ("a/b/../", false, &["a"]),
        ("/..", true, &[]), // `..` at the root is dropped (absolute)
        ("/../a", true, &["a"]),
        ("/a/../../b", true, &["b"]),
        ("..", false, &[".."]), // a leading `..` is kept (relative)
        ("../a", false, &["..", "a"]),
        ("../..", false, &["..", ".."]),
        ("a/../..", false, &[".."]),
        ("a/../../b", false, &["..", "b"]),
        ("../a/..", false, &[".."]),
        ("a b/ü.txt", false, &["a b", "ü.txt"]),
    ];
    for (text, absolute, comps) in table {
        assert_eq!(
            normalise(text).unwrap(),
            (*absolute, strings(comps)),
            "normalise({text:?})"
        );
    }
    assert_eq!(
        normalise("").unwrap_err(),
        DlfsError::InvalidPath(String::new())
    );
}

#[test]
fn locations_name_a_drive_then_a_path() {
    let table: &[(&str, &str, &[&str], &str)] = &[
        // text, drive, path, parent
        ("home", "home", &[], "home"),
        ("/home", "home", &[], "home"),
        ("home/", "home", &[], "home"),
        ("home/a.txt", "home", &["a.txt"], "home"),
        ("/home/a.txt", "home", &["a.txt"], "home"),
        ("home/docs/a.txt", "home", &["docs", "a.txt"], "home/docs"),
        (
            "home/./docs//a.txt/",
            "home",
            &["docs", "a.txt"],
            "home/docs",
        ),
        ("home/docs/../a.txt", "home", &["a.txt"], "home"),
        ("../home/x", "home", &["x"], "home"), // `..` never climbs above the drives
        ("work/../home/x", "home", &["x"], "home"),
    ];
    for (text, drive, path, parent) in table {
        let loc = p(text);
        assert_eq!(loc.drive, *drive, "{text}");
        assert_eq!(loc.path, strings(path), "{text}");
        assert_eq!(loc.parent_text(), *parent, "{text}");
        assert_eq!(loc.text, *text);
    }
    assert_eq!(p("/home/./docs/").normalised(), "home/docs");
    for bad in ["", "/", ".", "//", "home/..", "/home/../.."] {
        assert_eq!(
            DrivePath::parse(bad).unwrap_err(),
            DlfsError::InvalidPath(bad.to_string()),
            "{bad:?}"
        );
    }
    assert!(dlfs::is_valid_name("a.txt"));
    for bad in ["", ".", "..", "a/b"] {
        assert!(!dlfs::is_valid_name(bad), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Operations on drive values
// ---------------------------------------------------------------------------------------------

#[test]
fn the_derived_encodings_of_the_spec_come_from_operations() {
    // lattice.md §7.2: the empty drive.
    let d0 = dlfs::mkdrive(&Cell::nil(), "home").unwrap();
    assert_eq!(d0, zero());
    assert_eq!(hex_of(&d0), "80048400000010");
    assert_eq!(
        d0.id().to_hex(),
        "f47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918"
    );
    // lattice.md §10.4: a put at clock 1000 gives D({"hello.txt" F("Hello",1000)}, 1000).
    let d1 = dlfs::put(&d0, &p("home/hello.txt"), blob("Hello"), 1000, R).unwrap();
    assert_eq!(
        d1,
        dir(vec![("hello.txt", file(blob("Hello"), 1000))], 1000)
    );
    assert_eq!(
        hex_of(&d1),
        "80048401300968656c6c6f2e74787480040031054865\
         6c6c6f001203e8000012 03e8"
            .replace(' ', "")
    );
    assert_eq!(d1.encoding().len(), 34);
    assert_eq!(
        d1.id().to_hex(),
        "f6553b798079c80de9d84b681f2953a829b853ebff3e5600fe5745718d8f9af9"
    );
    let f = dlfs::lookup(&d1, &strings(&["hello.txt"]), R)
        .unwrap()
        .unwrap();
    assert_eq!(
        hex_of(&f),
        "8004003105 48656c6c6f 001203e8".replace(' ', "")
    );
    // rm at 2000 leaves T(2000) under the name.
    let d2 = dlfs::rm(&d1, &p("home/hello.txt"), 2000, R).unwrap();
    let t = dlfs::lookup(&d2, &strings(&["hello.txt"]), R)
        .unwrap()
        .unwrap();
    assert_eq!(t, tombstone(2000));
    assert_eq!(hex_of(&t), "80040000001207d0");
    assert_eq!(d2, dir(vec![("hello.txt", tombstone(2000))], 2000));
}

#[test]
fn mkdir_put_ls_read_stat() {
    let d = zero();
    let d = dlfs::mkdir(&d, &p("home/docs"), 100, R).unwrap();
    assert_eq!(d, dir(vec![("docs", dir(vec![], 100))], 100));
    let d = dlfs::put(&d, &p("home/docs/b.txt"), blob("bee"), 200, R).unwrap();
    let d = dlfs::put(&d, &p("/home/a.txt"), blob("a"), 300, R).unwrap();
    let d = dlfs::put(&d, &p("home/docs/a.txt"), blob(""), 400, R).unwrap();
    // Every ancestor of a write gets its time; untouched siblings keep theirs.
    assert_eq!(
        d,
        dir(
            vec![
                ("a.txt", file(blob("a"), 300)),
                (
                    "docs",
                    dir(
                        vec![
                            ("a.txt", file(blob(""), 400)),
                            ("b.txt", file(blob("bee"), 200)),
                        ],
                        400
                    )
                ),
            ],
            400
        )
    );
    assert_eq!(
        dlfs::ls(&d, &p("home"), R).unwrap(),
        strings(&["a.txt", "docs"])
    );
    assert_eq!(
        dlfs::ls(&d, &p("home/"), R).unwrap(),
        strings(&["a.txt", "docs"])
    );
    assert_eq!(
        dlfs::ls(&d, &p("home/docs"), R).unwrap(),
        strings(&["a.txt", "b.txt"])
    );
    assert_eq!(
        dlfs::read(&d, &p("home/docs/b.txt"), R).unwrap(),
        blob("bee")
    );
    assert_eq!(dlfs::read(&d, &p("home/docs/a.txt"), R).unwrap(), blob(""));

    // Replacing a file sets its data and its own time (lattice.md §7.7, our choice).
    let d2 = dlfs::put(&d, &p("home/docs/b.txt"), blob("BEE!"), 500, R).unwrap();
    assert_eq!(
        dlfs::lookup(&d2, &strings(&["docs", "b.txt"]), R).unwrap(),
        Some(file(blob("BEE!"), 500))
    );

    let st = dlfs::stat(&d, &p("home/docs/b.txt"), R).unwrap();
    assert_eq!(st.kind, StatKind::File);
    assert_eq!((st.size, st.utime), (3, 200));
    assert_eq!(st.hash, *file(blob("bee"), 200).id());
    assert_eq!(st.metadata, Cell::nil());
    let st = dlfs::stat(&d, &p("home/docs"), R).unwrap();
    assert_eq!((st.kind, st.size, st.utime), (StatKind::Directory, 2, 400));
    let st = dlfs::stat(&d, &p("home"), R).unwrap();
    assert_eq!((st.kind, st.size, st.utime), (StatKind::Directory, 2, 400));
    assert_eq!(
        st.hash,
        *d.id(),
        "the drive root's hash is the drive state hash"
    );
    assert_eq!(
        print(&st.to_cell(), R).unwrap(),
        print(
            &v(&format!(
                "{{:type :directory :size 2 :utime 400 :hash 0x{} :metadata nil}}",
                d.id().to_hex()
            )),
            R
        )
        .unwrap()
    );
}

#[test]
fn ls_is_in_index_byte_order() {
    let mut d = zero();
    for (i, name) in ["b", "a", "B", "ab", "é", "a.txt", "_"].iter().enumerate() {
        d = dlfs::put(&d, &p(&format!("x/{name}")), blob("x"), i as i64, R).unwrap();
    }
    assert_eq!(
        dlfs::ls(&d, &p("x"), R).unwrap(),
        strings(&["B", "_", "a", "a.txt", "ab", "b", "é"])
    );
}

#[test]
fn every_error_message() {
    let d = dlfs::put(&zero(), &p("home/f.txt"), blob("f"), 10, R).unwrap();
    let d = dlfs::mkdir(&d, &p("home/dir"), 20, R).unwrap();
    let d = dlfs::put(&d, &p("home/dir/x"), blob("x"), 30, R).unwrap();
    let cases: Vec<(Result<Cell, DlfsError>, &str)> = vec![
        (dlfs::mkdrive(&d, "home"), ":ARGUMENT Already exists: home"),
        (
            dlfs::mkdrive(&Cell::nil(), "a/b"),
            ":ARGUMENT Invalid drive name: a/b",
        ),
        (
            dlfs::mkdrive(&Cell::nil(), ".."),
            ":ARGUMENT Invalid drive name: ..",
        ),
        (
            dlfs::mkdir(&d, &p("home/dir"), 99, R),
            ":ARGUMENT Already exists: home/dir",
        ),
        (
            dlfs::mkdir(&d, &p("home/f.txt"), 99, R),
            ":ARGUMENT Already exists: home/f.txt",
        ),
        (
            dlfs::mkdir(&d, &p("home"), 99, R),
            ":ARGUMENT Already exists: home",
        ),
        (
            dlfs::mkdir(&d, &p("home/no/sub"), 99, R),
            ":ARGUMENT No such directory: home/no",
        ),
        (
            dlfs::mkdir(&d, &p("home/f.txt/sub"), 99, R),
            ":ARGUMENT No such directory: home/f.txt",
        ),
        (
            dlfs::mkdir(&Cell::nil(), &p("nodrive/a"), 99, R),
            ":ARGUMENT No such directory: nodrive",
        ),
        (
            dlfs::put(&d, &p("home/no/a.txt"), blob("a"), 99, R),
            ":ARGUMENT No such directory: home/no",
        ),
        (
            dlfs::put(&d, &p("/home/f.txt/a.txt"), blob("a"), 99, R),
            ":ARGUMENT No such directory: home/f.txt",
        ),
        (
            dlfs::put(&Cell::nil(), &p("nodrive/a.txt"), blob("a"), 99, R),
            ":ARGUMENT No such directory: nodrive",
        ),
        (
            dlfs::put(&d, &p("home/dir"), blob("a"), 99, R),
            ":ARGUMENT Is a directory: home/dir",
        ),
        (
            dlfs::put(&d, &p("home"), blob("a"), 99, R),
            ":ARGUMENT Is a directory: home",
        ),
        (
            dlfs::rm(&d, &p("home/dir"), 99, R),
            ":STATE Directory not empty: home/dir",
        ),
        (
            dlfs::rm(&d, &p("home"), 99, R),
            ":ARGUMENT Cannot delete drive root",
        ),
        (
            dlfs::rm(&d, &p("/home/"), 99, R),
            ":ARGUMENT Cannot delete drive root",
        ),
        (
            dlfs::rm(&d, &p("home/nothing"), 99, R),
            ":ARGUMENT No such file or directory: home/nothing",
        ),
        (
            dlfs::read(&d, &p("home/dir"), R),
            ":ARGUMENT Is a directory: home/dir",
        ),
        (
            dlfs::read(&d, &p("home/nothing"), R),
            ":ARGUMENT No such file or directory: home/nothing",
        ),
        (
            dlfs::read(&d, &p("home/f.txt/x"), R),
            ":ARGUMENT No such file or directory: home/f.txt/x",
        ),
        (
            dlfs::read(&Cell::nil(), &p("nodrive/x"), R),
            ":ARGUMENT No such file or directory: nodrive/x",
        ),
    ];
    for (i, (got, want)) in cases.into_iter().enumerate() {
        assert_eq!(shown(got.expect_err(want)), want, "case {i}");
    }
    assert_eq!(
        shown(dlfs::ls(&d, &p("home/f.txt"), R).unwrap_err()),
        ":ARGUMENT Not a directory: home/f.txt"
    );
    assert_eq!(
        shown(dlfs::ls(&d, &p("/home/none/"), R).unwrap_err()),
        ":ARGUMENT No such file or directory: /home/none/"
    );
    assert_eq!(
        shown(dlfs::stat(&d, &p("home/none"), R).unwrap_err()),
        ":ARGUMENT No such file or directory: home/none"
    );
    assert_eq!(
        shown(DlfsError::InvalidPath(String::new())),
        ":ARGUMENT Invalid path: "
    );
    assert_eq!(
        shown(DlfsError::NotAuthorised("#12".into())),
        ":TRUST Not authorised to write drive of owner #12"
    );
}

#[test]
fn tombstones_are_hidden_and_can_be_written_over() {
    let d = dlfs::put(&zero(), &p("h/a.txt"), blob("a"), 10, R).unwrap();
    let d = dlfs::mkdir(&d, &p("h/sub"), 20, R).unwrap();
    let d = dlfs::put(&d, &p("h/sub/x"), blob("x"), 30, R).unwrap();
    let d = dlfs::rm(&d, &p("h/a.txt"), 40, R).unwrap();
    // The name stays in the Index as a tombstone, invisible to user operations.
    assert_eq!(
        dlfs::lookup(&d, &strings(&["a.txt"]), R).unwrap(),
        Some(tombstone(40))
    );
    assert_eq!(dlfs::find(&d, &strings(&["a.txt"]), R).unwrap(), None);
    assert_eq!(dlfs::ls(&d, &p("h"), R).unwrap(), strings(&["sub"]));
    let gone = ":ARGUMENT No such file or directory: h/a.txt";
    assert_eq!(shown(dlfs::read(&d, &p("h/a.txt"), R).unwrap_err()), gone);
    assert_eq!(shown(dlfs::stat(&d, &p("h/a.txt"), R).unwrap_err()), gone);
    assert_eq!(shown(dlfs::ls(&d, &p("h/a.txt"), R).unwrap_err()), gone);
    assert_eq!(shown(dlfs::rm(&d, &p("h/a.txt"), 99, R).unwrap_err()), gone);
    assert_eq!(dlfs::stat(&d, &p("h"), R).unwrap().size, 1);

    // A directory whose only entries are tombstones is empty: it can be removed.
    assert_eq!(
        shown(dlfs::rm(&d, &p("h/sub"), 50, R).unwrap_err()),
        ":STATE Directory not empty: h/sub"
    );
    let d = dlfs::rm(&d, &p("h/sub/x"), 50, R).unwrap();
    assert_eq!(dlfs::ls(&d, &p("h/sub"), R).unwrap(), Vec::<String>::new());
    let d = dlfs::rm(&d, &p("h/sub"), 60, R).unwrap();
    assert_eq!(dlfs::ls(&d, &p("h"), R).unwrap(), Vec::<String>::new());
    assert_eq!(
        d,
        dir(vec![("a.txt", tombstone(40)), ("sub", tombstone(60))], 60)
    );

    // Re-creating over a tombstone replaces it: a file where a directory was, and back.
    let d = dlfs::put(&d, &p("h/sub"), blob("now a file"), 70, R).unwrap();
    let d = dlfs::mkdir(&d, &p("h/a.txt"), 80, R).unwrap();
    assert_eq!(
        d,
        dir(
            vec![
                ("a.txt", dir(vec![], 80)),
                ("sub", file(blob("now a file"), 70)),
            ],
            80
        )
    );
    assert_eq!(
        dlfs::ls(&d, &p("h"), R).unwrap(),
        strings(&["a.txt", "sub"])
    );
}

#[test]
fn timestamps_never_go_backwards() {
    let d = dlfs::put(&zero(), &p("h/a"), blob("1"), 2000, R).unwrap();
    // A clock behind the drive: the write takes the drive's time.
    assert_eq!(dlfs::write_time(&d, 1500, R).unwrap(), 2000);
    assert_eq!(dlfs::write_time(&d, 2500, R).unwrap(), 2500);
    let d = dlfs::put(&d, &p("h/b"), blob("2"), 1500, R).unwrap();
    assert_eq!(
        d,
        dir(
            vec![("a", file(blob("1"), 2000)), ("b", file(blob("2"), 2000))],
            2000
        )
    );
    let d = dlfs::rm(&d, &p("h/a"), 10, R).unwrap();
    let d = dlfs::mkdir(&d, &p("h/c"), 10, R).unwrap();
    assert_eq!(dlfs::stat(&d, &p("h"), R).unwrap().utime, 2000);
    assert_eq!(dlfs::stat(&d, &p("h/c"), R).unwrap().utime, 2000);
    assert_eq!(
        dlfs::lookup(&d, &strings(&["a"]), R).unwrap(),
        Some(tombstone(2000))
    );
    // A later write moves every ancestor forward.
    let d = dlfs::mkdir(&d, &p("h/c/d"), 3000, R).unwrap();
    assert_eq!(dlfs::stat(&d, &p("h"), R).unwrap().utime, 3000);
    assert_eq!(dlfs::stat(&d, &p("h/c"), R).unwrap().utime, 3000);
    assert_eq!(dlfs::stat(&d, &p("h/b"), R).unwrap().utime, 2000);
}

#[test]
fn local_writes_merge_as_newer_values() {
    // A write at a later time dominates the old drive in the DLFS lattice: peers holding the
    // old drive take the new one unchanged.
    let l = Lattice::Dlfs;
    let ctx = MergeContext::new();
    let d0 = dlfs::put(&zero(), &p("h/a"), blob("1"), 100, R).unwrap();
    let d1 = dlfs::put(&d0, &p("h/a"), blob("2"), 200, R).unwrap();
    let d2 = dlfs::rm(&d1, &p("h/a"), 300, R).unwrap();
    let d3 = dlfs::mkdir(&d2, &p("h/a"), 400, R).unwrap();
    for (old, new) in [(&d0, &d1), (&d1, &d2), (&d2, &d3), (&d0, &d3)] {
        assert_eq!(&l.merge(&ctx, old, new, R).unwrap(), new);
        assert_eq!(&l.merge(&ctx, new, old, R).unwrap(), new);
    }
}

#[test]
fn names_colliding_on_their_first_32_bytes_are_refused() {
    let stem = "n".repeat(32);
    let (a, b) = (format!("{stem}-one"), format!("{stem}-two"));
    let d = dlfs::put(&zero(), &p(&format!("h/{a}")), blob("1"), 1, R).unwrap();
    let want =
        format!(":ARGUMENT Name collides with existing name {a} (same first 32 bytes): h/{b}");
    assert_eq!(
        shown(dlfs::put(&d, &p(&format!("h/{b}")), blob("2"), 2, R).unwrap_err()),
        want
    );
    assert_eq!(
        shown(dlfs::mkdir(&d, &p(&format!("h/{b}")), 2, R).unwrap_err()),
        want
    );
    // The colliding name is not the existing entry.
    assert_eq!(
        shown(dlfs::read(&d, &p(&format!("h/{b}")), R).unwrap_err()),
        format!(":ARGUMENT No such file or directory: h/{b}")
    );
    // The same long name is found and replaced normally; short names never collide.
    let d = dlfs::put(&d, &p(&format!("h/{a}")), blob("3"), 3, R).unwrap();
    assert_eq!(dlfs::read(&d, &p(&format!("h/{a}")), R).unwrap(), blob("3"));
    let d = dlfs::put(&d, &p(&format!("h/{}", &stem[..31])), blob("4"), 4, R).unwrap();
    assert_eq!(dlfs::ls(&d, &p("h"), R).unwrap().len(), 2);
}

#[test]
fn update_keeps_metadata_and_extra_elements() {
    // A file and a directory with metadata and a fifth element (lattice.md §7.7, §7.10).
    let f = v("[nil 0x01 \"meta\" 5]");
    let root = Cell::vector(vec![
        idx(vec![("f", f)]),
        Cell::nil(),
        Cell::string("rootmeta"),
        Cell::long(5),
        v(":extra"),
    ]);
    let d = dlfs::put(&root, &p("h/f"), blob("new"), 9, R).unwrap();
    assert_eq!(
        d,
        Cell::vector(vec![
            idx(vec![("f", v("[nil 0x6e6577 \"meta\" 9]"))]),
            Cell::nil(),
            Cell::string("rootmeta"),
            Cell::long(9),
            v(":extra"),
        ])
    );
    assert_eq!(
        dlfs::stat(&d, &p("h/f"), R).unwrap().metadata,
        Cell::string("meta")
    );
    // `update` itself: the new node at the path, every ancestor at time t.
    let u = dlfs::update(&d, &strings(&["g"]), file(blob("g"), 1), 11, R).unwrap();
    assert_eq!(update_time(&u, R).unwrap(), Some(11));
    // A nil node removes a direct entry physically.
    let u2 = dlfs::update(&u, &strings(&["g"]), Cell::nil(), 12, R).unwrap();
    assert_eq!(dlfs::ls(&u2, &p("h"), R).unwrap(), strings(&["f"]));
    assert_eq!(
        shown(dlfs::update(&u, &strings(&["g", "x"]), blob("x"), 13, R).unwrap_err()),
        ":ARGUMENT Not a directory: g"
    );
    assert_eq!(
        shown(dlfs::update(&u, &strings(&["none", "x"]), blob("x"), 13, R).unwrap_err()),
        ":ARGUMENT Not a directory: none"
    );
    assert_eq!(
        shown(dlfs::update(&blob("x"), &strings(&["x"]), blob("x"), 13, R).unwrap_err()),
        ":ARGUMENT Not a directory: /"
    );
}

// ---------------------------------------------------------------------------------------------
// The shell's DLFS functions on a node (query.md §6.3, §6.5)
// ---------------------------------------------------------------------------------------------

#[test]
fn the_dlfs_functions_on_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, clock) = node_in(tmp.path(), Some(1));
    let mut env = Env::new();
    let mut q = |text: &str| eval(&node, &mut env, text);
    assert_eq!(q("(drives)"), "[]");
    assert_eq!(
        q("(mkdrive \"home\")"),
        "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918"
    );
    assert_eq!(
        q("(mkdrive \"home\")"),
        " Exception: :ARGUMENT Already exists: home"
    );
    assert_eq!(
        q("(mkdrive \"a/b\")"),
        " Exception: :ARGUMENT Invalid drive name: a/b"
    );
    assert_eq!(q("(drives)"), "[\"home\"]");
    assert_eq!(q("(ls \"home\")"), "[]");
    // Clock 1000: the drive of lattice.md §10.4.
    assert_eq!(
        q("(put \"home/hello.txt\" \"Hello\")"),
        "0xf6553b798079c80de9d84b681f2953a829b853ebff3e5600fe5745718d8f9af9"
    );
    assert_eq!(q("(ls \"home\")"), "[\"hello.txt\"]");
    assert_eq!(q("(read-file \"home/hello.txt\")"), "0x48656c6c6f");
    assert_eq!(q("(read-file \"/home/./hello.txt\")"), "0x48656c6c6f");
    assert_eq!(q("(cat \"home/hello.txt\")"), "\"home/hello.txt\"");
    let f = file(blob("Hello"), 1000);
    assert_eq!(
        q("(stat \"home/hello.txt\")"),
        print(
            &v(&format!(
                "{{:type :file :size 5 :utime 1000 :hash 0x{} :metadata nil}}",
                f.id().to_hex()
            )),
            R
        )
        .unwrap()
    );
    assert_eq!(
        q("(stat \"home\")"),
        print(
            &v("{:type :directory :size 1 :utime 1000 :hash 0xf6553b798079c80de9d84b681f2953a829b853ebff3e5600fe5745718d8f9af9 :metadata nil}"),
            R
        )
        .unwrap()
    );
    // The returned hash is the drive's value ID in the committed root.
    clock.store(5000, Ordering::SeqCst);
    let h = q("(put \"home/b.bin\" 0x0102)");
    let key_hex = pk_hex(1);
    assert_eq!(
        q(&format!(
            "(value-id (root [:fs {key_hex} :value \"home\"]))"
        )),
        h
    );
    assert_eq!(q("(read-file \"home/b.bin\")"), "0x0102");
    // Two writes in the same millisecond: the second still takes effect.
    q("(put \"home/b.bin\" 0x03)");
    assert_eq!(q("(read-file \"home/b.bin\")"), "0x03");
    assert_eq!(q("(get (stat \"home/b.bin\") :utime)"), "5000");

    assert_eq!(q("(mkdir \"home/docs\")").len(), 66);
    assert_eq!(
        q("(mkdir \"home/docs\")"),
        " Exception: :ARGUMENT Already exists: home/docs"
    );
    q("(put \"home/docs/a.txt\" \"A\")");
    assert_eq!(q("(ls \"home\")"), "[\"b.bin\" \"docs\" \"hello.txt\"]");
    assert_eq!(q("(ls \"home/docs/\")"), "[\"a.txt\"]");
    assert_eq!(
        q("(rm \"home/docs\")"),
        " Exception: :STATE Directory not empty: home/docs"
    );
    q("(rm \"home/docs/a.txt\")");
    q("(rm \"home/docs\")");
    assert_eq!(q("(ls \"home\")"), "[\"b.bin\" \"hello.txt\"]");
    assert_eq!(
        q("(ls \"home/docs\")"),
        " Exception: :ARGUMENT No such file or directory: home/docs"
    );
    // Every error of query.md §6.3 through the evaluator.
    for (input, want) in [
        (
            "(ls \"home/hello.txt\")",
            ":ARGUMENT Not a directory: home/hello.txt",
        ),
        (
            "(ls \"nodrive\")",
            ":ARGUMENT No such file or directory: nodrive",
        ),
        ("(read-file \"home\")", ":ARGUMENT Is a directory: home"),
        (
            "(read-file \"home/x\")",
            ":ARGUMENT No such file or directory: home/x",
        ),
        (
            "(stat \"home/x\")",
            ":ARGUMENT No such file or directory: home/x",
        ),
        (
            "(put \"home/x/y\" \"z\")",
            ":ARGUMENT No such directory: home/x",
        ),
        (
            "(put \"home/x\" 42)",
            ":CAST Can't convert argument at position 2 (with type Integer) to type Blob",
        ),
        (
            "(put \"home/x\" nil)",
            ":CAST Can't convert argument at position 2 (with type Nil) to type Blob",
        ),
        (
            "(mkdir \"home/hello.txt\")",
            ":ARGUMENT Already exists: home/hello.txt",
        ),
        ("(rm \"home\")", ":ARGUMENT Cannot delete drive root"),
        (
            "(rm \"home/x\")",
            ":ARGUMENT No such file or directory: home/x",
        ),
        ("(ls \"\")", ":ARGUMENT Invalid path: "),
        ("(ls \"home/..\")", ":ARGUMENT Invalid path: home/.."),
        (
            "(ls 42)",
            ":CAST Can't convert argument at position 1 (with type Integer) to type String",
        ),
        ("(ls [1 2 3])", ":ARGUMENT Invalid location: [1 2 3]"),
        (
            "(ls [0x01 \"home\"])",
            ":ARGUMENT Owner must be a 32-byte key Blob, an Address or a DID String",
        ),
        (
            "(set-owner! :me)",
            ":ARGUMENT Owner must be a 32-byte key Blob, an Address or a DID String",
        ),
        ("(ls)", ":ARITY ls requires arity 1 but called with: 0"),
        (
            "(put \"home/a\")",
            ":ARITY put requires arity 2 but called with: 1",
        ),
        (
            "(drives 1 2)",
            ":ARITY drives requires maximum arity 1 but called with: 2",
        ),
    ] {
        assert_eq!(q(input), format!(" Exception: {want}"), "{input}");
    }
    // An explicit owner equal to the node's key is the same drive.
    assert_eq!(
        q(&format!("(ls [{key_hex} \"home\"])")),
        "[\"b.bin\" \"hello.txt\"]"
    );
    assert_eq!(q(&format!("(drives {key_hex})")), "[\"home\"]");
}

#[test]
fn writes_need_the_owners_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, _) = node_in(tmp.path(), Some(1));
    let mut env = Env::new();
    let mut q = |text: &str| eval(&node, &mut env, text);
    let other = pk_hex(2);
    let trust = |o: &str| format!(" Exception: :TRUST Not authorised to write drive of owner {o}");
    assert_eq!(q(&format!("(mkdrive [{other} \"home\"])")), trust(&other));
    assert_eq!(
        q(&format!("(put [{other} \"home/a\"] \"x\")")),
        trust(&other)
    );
    assert_eq!(q(&format!("(set-owner! {other})")), other);
    assert_eq!(q("(mkdrive \"w\")"), trust(&other));
    assert_eq!(q("(mkdir \"w/d\")"), trust(&other));
    assert_eq!(q("(rm \"w/d\")"), trust(&other));
    assert_eq!(q("(drives)"), "[]");
    assert_eq!(q("(set-owner! #12)"), "#12");
    assert_eq!(q("(put \"home/a\" \"x\")"), trust("#12"));
    let other_did = did_key(&key(2).verifying_key().to_bytes());
    assert_eq!(
        q(&format!("(mkdrive [\"{other_did}\" \"d\"])")),
        trust(&format!("\"{other_did}\""))
    );
    // Our own did:key is our identity: writes go to the slot keyed by the DID.
    let did = did_key(&key(1).verifying_key().to_bytes());
    assert_eq!(q(&format!("(set-owner! \"{did}\")")), format!("\"{did}\""));
    assert!(q("(mkdrive \"d\")").starts_with("0x"));
    q("(put \"d/f\" \"F\")");
    assert_eq!(q(&format!("(drives \"{did}\")")), "[\"d\"]");
    assert_eq!(q("(keys (root [:fs]))"), format!("[\"{did}\"]"));
    assert_eq!(q("(read-file \"d/f\")"), "0x46");
    // Nothing was written for anyone else.
    assert_eq!(q(&format!("(drives {other})")), "[]");
}

#[test]
fn rights_of_query_senders() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, _) = node_in(tmp.path(), Some(1));
    let mut env = Env::new();
    eval(&node, &mut env, "(mkdrive \"home\") (put \"home/a\" \"A\")");
    let client = Rights::Client {
        may_write_data: true,
    };
    let denied = " Exception: :TRUST Operation requires admin rights";
    for input in [
        "(mkdrive \"x\")",
        "(put \"home/b\" \"B\")",
        "(mkdir \"home/d\")",
        "(rm \"home/a\")",
        "(set-owner! #1)",
    ] {
        assert_eq!(
            eval_as(&node, &mut Env::new(), client, input),
            denied,
            "{input}"
        );
    }
    for (input, want) in [
        ("(drives)", "[\"home\"]"),
        ("(ls \"home\")", "[\"a\"]"),
        ("(read-file \"home/a\")", "0x41"),
        ("(get (stat \"home/a\") :size)", "1"),
    ] {
        assert_eq!(
            eval_as(&node, &mut Env::new(), client, input),
            want,
            "{input}"
        );
    }
}

#[test]
fn a_node_without_a_key_has_no_default_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, _) = node_in(tmp.path(), None);
    let mut env = Env::new();
    let mut q = |text: &str| eval(&node, &mut env, text);
    let none = " Exception: :STATE No default owner: the node has no key (use set-owner!)";
    assert_eq!(q("(drives)"), none);
    assert_eq!(q("(ls \"home\")"), none);
    let k = pk_hex(1);
    q(&format!("(set-owner! {k})"));
    assert_eq!(q("(drives)"), "[]");
    assert_eq!(
        q("(mkdrive \"home\")"),
        format!(" Exception: :TRUST Not authorised to write drive of owner {k}")
    );
    assert!(!node.publish_node_info(&[]).unwrap());
    assert_eq!(q("(root)"), "#Index {}");
}

#[test]
fn drives_persist_and_replicate() {
    let tmp = tempfile::tempdir().unwrap();
    let k = pk_hex(1);
    let fs = {
        let (node, _) = node_in(tmp.path(), Some(1));
        let mut env = Env::new();
        eval(
            &node,
            &mut env,
            "(mkdrive \"home\") (mkdir \"home/d\") (put \"home/d/a\" \"A\") (mkdrive \"work\")",
        );
        node.root_value()
    };
    // Reopened with its key, and without one (reading an explicit owner needs no key).
    let (node, _) = node_in(tmp.path(), Some(1));
    assert_eq!(node.root_value(), fs);
    let mut env = Env::new();
    assert_eq!(eval(&node, &mut env, "(read-file \"home/d/a\")"), "0x41");
    assert_eq!(eval(&node, &mut env, "(drives)"), "[\"home\" \"work\"]");
    drop(node);
    let (keyless, _) = node_in(tmp.path(), None);
    assert_eq!(
        eval(&keyless, &mut Env::new(), &format!("(ls [{k} \"home/d\"])")),
        "[\"a\"]"
    );
    // The owner slot is SignedData by the owner, so another node accepts it by merge.
    let store = keyless.store().clone();
    let r: &dyn Resolver = store.as_ref();
    let owner = Cell::blob(&key(1).verifying_key().to_bytes());
    let slot = value_at_path(&fs, &[v(":fs"), owner.clone()], r).unwrap();
    assert!(signature_valid(&slot));
    let tmp2 = tempfile::tempdir().unwrap();
    let (peer, _) = node_in(tmp2.path(), Some(3));
    let incoming = value_at_path(&fs, &[v(":fs")], r).unwrap();
    // The peer reads cells from its own store: give it the tree.
    peer.store().put(&incoming).unwrap();
    peer.merge(&[v(":fs")], &incoming).unwrap();
    assert_eq!(
        eval(
            &peer,
            &mut Env::new(),
            &format!("(read-file [{k} \"home/d/a\"])")
        ),
        "0x41"
    );
    assert_eq!(
        value_at_path(&peer.root_value(), &[v(":fs")], peer.store().as_ref()).unwrap(),
        incoming
    );
}

// ---------------------------------------------------------------------------------------------
// NodeInfo (lattice.md §8.1)
// ---------------------------------------------------------------------------------------------

#[test]
fn node_info_is_published_only_when_it_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, clock) = node_in(tmp.path(), Some(1));
    let k = pk_hex(1);
    let mut env = Env::new();
    assert!(node.publish_node_info(&[]).unwrap());
    assert_eq!(eval(&node, &mut env, "(keys (root))"), "[:p2p]");
    assert_eq!(
        eval(&node, &mut env, "(keys (root [:p2p :nodes]))"),
        format!("[{k}]")
    );
    let info = |env: &mut Env| eval(&node, env, &format!("(root [:p2p :nodes {k} :value])"));
    let want = |ts: i64, transports: &str| {
        print(
            &v(&format!(
                "{{:timestamp {ts} :transports {transports} :type \"Convex Lattice Node\" :version \"{NODE_VERSION}\"}}"
            )),
            R,
        )
        .unwrap()
    };
    assert_eq!(info(&mut env), want(1000, "[]"));
    let slot = value_at_path(
        &node.root_value(),
        &[
            v(":p2p"),
            v(":nodes"),
            Cell::blob(&key(1).verifying_key().to_bytes()),
        ],
        node.store().as_ref(),
    )
    .unwrap();
    assert!(signature_valid(&slot));

    // Later, unchanged but for the time: nothing is written.
    let root = node.root_value();
    clock.store(9000, Ordering::SeqCst);
    assert!(!node.publish_node_info(&[]).unwrap());
    assert_eq!(node.root_value(), root);
    // Reopened: still nothing to publish.
    drop(node);
    let (node, clock) = node_in(tmp.path(), Some(1));
    assert!(!node.publish_node_info(&[]).unwrap());
    assert_eq!(node.root_value(), root);
    // New transports are published, with a timestamp past the old one even if the clock is not.
    clock.store(500, Ordering::SeqCst);
    assert!(node
        .publish_node_info(&["tcp://example.com:18888".to_string()])
        .unwrap());
    assert_eq!(
        eval(&node, &mut env, &format!("(root [:p2p :nodes {k} :value])")),
        want(1001, "[\"tcp://example.com:18888\"]")
    );
}

/// Deferred commits (a script's writes): the store's root moves only when a second has passed
/// or on `flush`, which commits the node's root once; reads through the node see every write
/// at once; a crash before `flush` loses only what no caller was told was done.
#[test]
fn deferred_commits_commit_once_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = node_in(dir.path(), Some(7));
    node.defer_commits();
    let before = node.store().root().unwrap();
    for i in 0..50 {
        node.store_values(&[Cell::string(&format!(
            "value {i} long enough to have a record"
        ))])
        .unwrap();
    }
    let committed = |n: &LocalNode| match n.store().root().unwrap() {
        etch_engine::store::Root::Value(c) => Some(*c.id()),
        etch_engine::store::Root::Unset => None,
    };
    let unset = matches!(before, etch_engine::store::Root::Unset);
    assert!(unset || committed(&node).is_some());
    // Fifty merges well within a second: nothing committed yet, all of it visible.
    assert_eq!(node.commits(), 0);
    assert_ne!(committed(&node), Some(*node.root_value().id()));
    assert_eq!(
        value_at_path(
            &node.root_value(),
            &[Cell::keyword("data").unwrap()],
            node.store().as_ref()
        )
        .unwrap()
        .count(),
        50
    );
    node.flush().unwrap();
    assert_eq!(node.commits(), 1);
    assert_eq!(committed(&node), Some(*node.root_value().id()));
    // Nothing waiting: a second flush commits nothing.
    node.flush().unwrap();
    assert_eq!(node.commits(), 1);
}
