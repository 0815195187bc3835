//! The shell's behaviour through `Shell::handle`: exactly what a person sees for each input.

use etch_engine::node::LocalNode;
use etch_engine::store::{CellStore, EtchStore};
use etch_formats::text::{print, read_one};
use etch_formats::NoResolver;
use etch_shell::{LocalBackend, Outcome, Shell, Timer};
use std::path::Path;
use std::sync::Arc;

fn shell_on(path: &Path) -> Shell {
    let store: Arc<dyn CellStore> = Arc::new(EtchStore::open_or_create(path).unwrap());
    let node = Arc::new(LocalNode::open(store.clone(), None).unwrap());
    let mut shell = Shell::new(
        Box::new(LocalBackend::new(store, node, "test store".into())),
        false,
    );
    shell.set_timer(Timer::Off);
    shell
}

/// A shell as `etch shell` opens it: with the node key of the Etch directory `etch_dir`
/// (created there on first use) and the node's NodeInfo published.
fn shell_as_node(path: &Path, etch_dir: &Path) -> Shell {
    let key = etch_shell::paths::node_key_in(etch_dir).unwrap();
    let (store, node) = etch_shell::open_local(path, true, Some(key)).unwrap();
    node.publish_node_info(&[]).unwrap();
    let mut shell = Shell::new(
        Box::new(LocalBackend::new(store, node, "test store".into())),
        false,
    );
    shell.set_timer(Timer::Off);
    shell
}

fn show(shell: &mut Shell, input: &str) -> String {
    match shell.handle(input) {
        Outcome::Show(t) => t,
        Outcome::Quit => panic!("unexpected quit on {input}"),
    }
}

/// The printed form of a value written as text (for map/set orders, which follow value IDs).
fn printed(text: &str) -> String {
    print(&read_one(text).unwrap(), &NoResolver).unwrap()
}

#[test]
fn repl_display_matches_the_spec() {
    // query.md §8.2, line for line.
    let dir = tempfile::tempdir().unwrap();
    let mut sh = shell_on(&dir.path().join("s.etch"));
    let cases = [
        ("(count [1 2 3])", "=> 3"),
        (
            "(count 1 2)",
            " Exception: :ARITY count requires arity 1 but called with: 2",
        ),
        ("foo", " Exception: :UNDECLARED foo"),
        (
            "(1 2 3)",
            " Exception: :CAST Can't convert value of type Integer to type Function",
        ),
        ("(first [])", " Exception: :BOUNDS Index: 0"),
        (
            "(get-in {:a 1} [:a :b])",
            " Exception: :CAST Can't convert value of type Integer to type DataStructure",
        ),
        (
            "(+ 1 :x)",
            " Exception: :CAST Can't convert argument at position 2 (with type Keyword) to type Number",
        ),
        (
            "[1 2",
            " Exception: :SYNTAX Parse error at 1:4: unexpected end of input (unclosed '[' at 1:0)",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(show(&mut sh, input), want, "input {input}");
    }
    // Empty input and comments show nothing.
    assert_eq!(show(&mut sh, "  ; just a comment\n"), "");
}

#[test]
fn the_example_session_of_the_spec() {
    // query.md §10, every line, on a node with its key and NodeInfo, as `etch shell` opens it.
    let dir = tempfile::tempdir().unwrap();
    let mut sh = shell_as_node(&dir.path().join("s.etch"), dir.path());
    let v = "{:name \"report\" :tags #{:a :b}}";
    assert_eq!(
        show(&mut sh, &format!("(def v {v})")),
        format!("=> {}", printed(v))
    );
    let id = read_one(v).unwrap().id().to_hex();
    assert_eq!(show(&mut sh, "(store v)"), format!("=> 0x{id}"));
    assert_eq!(show(&mut sh, "(= v (fetch (value-id v)))"), "=> true");
    assert_eq!(show(&mut sh, "(encoding [1 2 3])"), "=> 0x8003110111021103");
    assert_eq!(
        show(&mut sh, "(hash 0x)"),
        "=> 0xa7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    );
    assert_eq!(
        show(&mut sh, "(value-id 42)"),
        "=> 0xd69a280cb0677a24d92966b1c24d5d0bf1afbcd73e1d949d8f2cb8a966cb86b4"
    );
    assert_eq!(
        show(&mut sh, "(mkdrive \"home\")"),
        "=> 0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918"
    );
    // The new drive state hash depends on the time of the write: it is the drive's value ID.
    let put = show(&mut sh, "(put \"home/hello.txt\" \"Hello\")");
    let key = etch_shell::paths::node_key_in(dir.path()).unwrap();
    let owner = format!("0x{}", hex_of(&key.verifying_key().to_bytes()));
    assert_eq!(
        show(
            &mut sh,
            &format!("(value-id (root [:fs {owner} :value \"home\"]))")
        ),
        put
    );
    assert!(put.starts_with("=> 0x") && put.len() == 3 + 2 + 64, "{put}");
    assert_eq!(show(&mut sh, "(ls \"home\")"), "=> [\"hello.txt\"]");
    assert_eq!(
        show(&mut sh, "(read-file \"home/hello.txt\")"),
        "=> 0x48656c6c6f"
    );
    assert_eq!(
        show(
            &mut sh,
            "(lattice-merge #Index {:data #Index {}} #Index {:zzz 1})"
        ),
        "=> #Index {:data #Index {}}"
    );
    assert_eq!(show(&mut sh, "(keys (root))"), "=> [:data :fs :p2p]");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn dlfs_in_the_shell() {
    // query.md §6.3 as a person sees it; the node key and drives survive reopening.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.etch");
    {
        let mut sh = shell_as_node(&path, dir.path());
        assert_eq!(show(&mut sh, "(drives)"), "=> []");
        show(&mut sh, "(mkdrive \"home\")");
        assert_eq!(
            show(&mut sh, "(mkdrive \"home\")"),
            " Exception: :ARGUMENT Already exists: home"
        );
        assert!(show(&mut sh, "(mkdir \"home/docs\")").starts_with("=> 0x"));
        show(&mut sh, "(put \"home/docs/a.txt\" 0x0102)");
        assert_eq!(
            show(&mut sh, "(put \"home/nodir/a.txt\" \"x\")"),
            " Exception: :ARGUMENT No such directory: home/nodir"
        );
        assert_eq!(
            show(&mut sh, "(rm \"home/docs\")"),
            " Exception: :STATE Directory not empty: home/docs"
        );
        assert_eq!(
            show(&mut sh, "(ls \"home/docs/a.txt\")"),
            " Exception: :ARGUMENT Not a directory: home/docs/a.txt"
        );
        assert_eq!(
            show(&mut sh, "(read-file \"home/docs\")"),
            " Exception: :ARGUMENT Is a directory: home/docs"
        );
        assert_eq!(
            show(&mut sh, "(rm \"home\")"),
            " Exception: :ARGUMENT Cannot delete drive root"
        );
        assert_eq!(show(&mut sh, "(:size (stat \"home/docs/a.txt\"))"), "=> 2");
        let other = format!("0x{}", "11".repeat(32));
        assert_eq!(
            show(&mut sh, &format!("(put [{other} \"home/x\"] \"x\")")),
            format!(" Exception: :TRUST Not authorised to write drive of owner {other}")
        );
        assert_eq!(
            show(&mut sh, &format!("(set-owner! {other})")),
            format!("=> {other}")
        );
        assert_eq!(show(&mut sh, "(drives)"), "=> []");
    }
    // A new session: same key (so the same default owner), the drive is there.
    let mut sh = shell_as_node(&path, dir.path());
    assert_eq!(show(&mut sh, "(drives)"), "=> [\"home\"]");
    assert_eq!(show(&mut sh, "(ls \"/home/docs/\")"), "=> [\"a.txt\"]");
    assert_eq!(
        show(&mut sh, "(read-file \"home/docs/a.txt\")"),
        "=> 0x0102"
    );
    assert!(show(&mut sh, "(rm \"home/docs/a.txt\")").starts_with("=> 0x"));
    assert_eq!(show(&mut sh, "(ls \"home/docs\")"), "=> []");
    assert!(show(&mut sh, ".help").contains("(read-file loc)"));
}

#[test]
fn reopening_does_not_republish_node_info() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.etch");
    let root = {
        let mut sh = shell_as_node(&path, dir.path());
        assert_eq!(show(&mut sh, "(keys (root))"), "=> [:p2p]");
        show(&mut sh, "(value-id (root))")
    };
    let mut sh = shell_as_node(&path, dir.path());
    assert_eq!(show(&mut sh, "(value-id (root))"), root);
}

#[test]
fn stored_values_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.etch");
    let id = {
        let mut sh = shell_on(&path);
        assert_eq!(show(&mut sh, "(root)"), "=> #Index {}");
        let out = show(&mut sh, "(store [1 2 3 \"four\"])");
        out.trim_start_matches("=> ").to_string()
    };
    let mut sh = shell_on(&path);
    assert_eq!(
        show(&mut sh, &format!("(fetch {id})")),
        "=> [1 2 3 \"four\"]"
    );
    assert_eq!(
        show(&mut sh, &format!("(get (root [:data]) {id})")),
        "=> [1 2 3 \"four\"]"
    );
    assert_eq!(show(&mut sh, "(count (root [:data]))"), "=> 1");
    // Storing the same value again changes nothing and returns the same ID.
    assert_eq!(
        show(&mut sh, "(store [1 2 3 \"four\"])"),
        format!("=> {id}")
    );
    assert_eq!(
        show(&mut sh, "(store nil)"),
        " Exception: :ARGUMENT Cannot store nil"
    );
}

#[test]
fn merge_and_set_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = shell_on(&dir.path().join("s.etch"));
    // merge! at [:data] re-keys entries by their real value IDs (lattice.md §5).
    let id_c = read_one("\"c\"").unwrap().id().to_hex();
    assert_eq!(
        show(&mut sh, "(merge! [:data] (index 0x00 \"c\"))"),
        format!("=> #Index {{0x{id_c} \"c\"}}")
    );
    // Keys outside the root lattice are ignored.
    assert_eq!(
        show(&mut sh, "(merge! [] (index :zzz 1))"),
        format!("=> #Index {{:data #Index {{0x{id_c} \"c\"}}}}")
    );
    assert_eq!(
        show(&mut sh, "(set-root! [1 2])"),
        " Exception: :ARGUMENT Invalid root value"
    );
    let empty = read_one("#Index {}").unwrap().id().to_hex();
    assert_eq!(
        show(&mut sh, "(set-root! (index))"),
        format!("=> 0x{empty}")
    );
    assert_eq!(show(&mut sh, "(root)"), "=> #Index {}");
}

#[test]
fn long_values_are_shortened_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = shell_on(&dir.path().join("s.etch"));
    let items: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let vector = format!("[{}]", items.join(" "));
    let shown: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let note = "   ; shortened: 1 collection over 100 entries; (print-full ...) or .full on shows everything";
    assert_eq!(
        show(&mut sh, &format!("(def big {vector})")),
        format!("=> [{} …(+900 more)]\n{note}", shown.join(" "))
    );
    // print-full shows all, once.
    assert_eq!(show(&mut sh, "(print-full big)"), format!("=> {vector}"));
    assert!(show(&mut sh, "big").contains("…(+900 more)"));

    let blob_hex = "ab".repeat(5000);
    let out = show(&mut sh, &format!("(def b 0x{blob_hex})"));
    assert_eq!(
        out,
        format!(
            "=> 0x{}…(+3976 bytes)\n   ; shortened: 1 blob over 1 KiB; (print-full ...) or .full on shows everything",
            "ab".repeat(1024)
        )
    );
    assert_eq!(show(&mut sh, ".full on"), "full printing on");
    assert_eq!(show(&mut sh, "b"), format!("=> 0x{blob_hex}"));
    assert_eq!(show(&mut sh, ".full off"), "full printing off");

    // Short values are never annotated; nested long parts are.
    assert_eq!(show(&mut sh, "[1 2]"), "=> [1 2]");
    let out = show(&mut sh, "{:v big}");
    assert!(out.starts_with("=> {:v [0 1 2 "), "{out}");
    assert!(out.contains("…(+900 more)]}"), "{out}");

    // Past the print limit the REPL says so instead of printing (query.md §7).
    let huge = "cd".repeat(40_000);
    assert_eq!(show(&mut sh, ".full on"), "full printing on");
    assert_eq!(
        show(&mut sh, &format!("0x{huge}")),
        "=> <<Print limit exceeded>>"
    );
}

#[test]
fn dot_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = shell_on(&dir.path().join("s.etch"));
    let help = show(&mut sh, ".help");
    for d in etch_engine::query::all_docs() {
        assert!(
            help.contains(&format!("({} {})", d.name, d.args)),
            "{} missing from .help",
            d.name
        );
    }
    assert_eq!(
        show(&mut sh, ".help assoc-in"),
        "(assoc-in coll ks v)\n  nested assoc along a path, creating maps"
    );
    assert_eq!(
        show(&mut sh, ".help nope"),
        " no function or form named nope"
    );
    assert_eq!(
        show(&mut sh, ".frobnicate"),
        " unknown command .frobnicate; .help lists them"
    );
    assert_eq!(show(&mut sh, ".store"), "test store");
    assert_eq!(show(&mut sh, ".timer on"), "timer on");
    let out = show(&mut sh, "(+ 1 2)");
    assert!(out.starts_with("=> 3\n   ; "), "{out}");
    assert!(out.ends_with(" ms") || out.ends_with(" s"), "{out}");
    assert_eq!(sh.handle(".quit"), Outcome::Quit);
}

#[test]
fn completion_offers_names_keys_and_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = shell_on(&dir.path().join("s.etch"));
    show(&mut sh, "(def my-map {:alpha 1 :beta 2})");
    show(&mut sh, "(store 1)");
    let c = sh.completions();
    let done = |line: &str| etch_shell::editor::complete(&c, line, line.len());
    assert_eq!(done("(get-i"), (1, vec!["get-in".to_string()]));
    assert_eq!(done("(my-"), (1, vec!["my-map".to_string()]));
    assert_eq!(
        done("(get my-map :"),
        (12, vec![":alpha".into(), ":beta".into(), ":data".into()])
    );
    assert_eq!(done(".ti"), (0, vec![".timer".to_string()]));
    assert_eq!(done("(count "), (7, Vec::<String>::new()));
}

#[test]
fn incomplete_input_waits_for_more_lines() {
    use etch_shell::editor::is_incomplete;
    assert!(is_incomplete("(def m {:a 1"));
    assert!(is_incomplete("[1 2\n 3"));
    assert!(is_incomplete("\"an open string"));
    assert!(!is_incomplete("(def m {:a 1})"));
    // A mismatched bracket is an error to show, not a reason to wait.
    assert!(!is_incomplete("(1 2]"));
    assert!(!is_incomplete(")"));
}
