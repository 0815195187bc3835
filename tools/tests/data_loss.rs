//! Issue 14, "no silent data loss": each path on which Etch once lost or misplaced data without
//! a word, tried as a user would, through the `etch` binary. Every test here failed before the
//! fix it names.

mod common;

use etch_engine::store::native::format::{frame_at, records, FRAME_HEADER_BYTES};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `etch` with its Etch directory in `home`, feeding `input`: (exit code, stdout, stderr).
fn etch_in(home: &std::path::Path, args: &[&str], input: &str) -> (i32, String, String) {
    let r = common::etch_with_input(home, args, input);
    (r.code, r.out, r.err)
}

fn etch(home: &Path, args: &[&str]) -> (i32, String, String) {
    etch_in(home, args, "")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let (code, out, err) = etch(home, args);
    assert_eq!(code, 0, "etch {args:?}: {err}");
    out
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Lines of distinct values, half small enough to embed, half not.
fn values(n: usize) -> String {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("[{i} \"small\"]\n")
            } else {
                format!("[{i} \"{}\"]\n", format!("{i:05}").repeat(40))
            }
        })
        .collect()
}

/// `etch put` of `input` into `store`: the printed IDs.
fn put(home: &Path, store: &Path, extra: &[&str], input: &str) -> Vec<String> {
    let mut args = vec!["put", p(store)];
    args.extend_from_slice(extra);
    let (code, out, err) = etch_in(home, &args, input);
    assert_eq!(code, 0, "etch put: {err}");
    out.lines().map(str::to_string).collect()
}

/// `etch put STORE EXTRA…` running, its stdin and stdout piped (stderr dropped).
fn spawn_put(home: &Path, store: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["put", p(store)])
        .args(extra)
        .env("ETCH_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etch put")
}

/// Every ID that `etch get` reads back from `store`.
fn readable(home: &Path, store: &Path, ids: &[String]) -> usize {
    ids.iter()
        .filter(|id| etch(home, &["get", p(store), id]).0 == 0)
        .count()
}

// 1. Drive import merged two names sharing their first 32 bytes, exit 0.
#[test]
fn drive_import_refuses_names_sharing_their_first_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store, src) = (
        dir.path().join("home"),
        dir.path().join("s"),
        dir.path().join("src"),
    );
    let a = "a".repeat(32);
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join(format!("{a}x")), "one").unwrap();
    std::fs::write(src.join(format!("{a}y")), "two").unwrap();
    std::fs::create_dir_all(src.join(format!("{a}z"))).unwrap();
    std::fs::write(src.join(format!("{a}z/inner")), "three").unwrap();
    std::fs::write(src.join("sub/ok.txt"), "fine").unwrap();
    ok(
        &home,
        &["drive", "mkdrive", "home", "--create", "--store", p(&store)],
    );
    let (code, out, err) = etch(
        &home,
        &["drive", "import", p(&src), "home", "--store", p(&store)],
    );
    assert_eq!(code, 1, "{out}{err}");
    for refused in [format!("{a}y"), format!("{a}z")] {
        let path = src.join(&refused);
        let line = format!(
            "etch: not imported: {}: Name collides with existing name {a}x (same first 32 bytes): {}",
            path.display(),
            path.display()
        );
        assert!(err.contains(&line), "missing {line:?} in {err}");
    }
    assert!(
        err.contains("2 files or folders were not imported"),
        "{err}"
    );
    assert!(
        out.starts_with("imported 2 files, 2 directories into home"),
        "{out}"
    );
    let ls = ok(&home, &["drive", "ls", "home", "--store", p(&store)]);
    let names: Vec<&str> = ls
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names, [format!("{a}x").as_str(), "sub/"]);
    let cat = ok(
        &home,
        &["drive", "cat", &format!("home/{a}x"), "--store", p(&store)],
    );
    assert_eq!(cat, "one");
    // The same name against what the drive holds: refused by name, the rest imported.
    let src2 = dir.path().join("src2");
    std::fs::create_dir_all(&src2).unwrap();
    std::fs::write(src2.join(format!("{a}w")), "four").unwrap();
    std::fs::write(src2.join("new.txt"), "five").unwrap();
    let (code, _, err) = etch(
        &home,
        &["drive", "import", p(&src2), "home", "--store", p(&store)],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "etch: not imported: home/{a}w: Name collides with existing name {a}x (same first 32 bytes): home/{a}w"
        )),
        "{err}"
    );
    let cat = ok(
        &home,
        &["drive", "cat", "home/new.txt", "--store", p(&store)],
    );
    assert_eq!(cat, "five");
}

// 2. `etch put` + `etch compact` deleted everything put.
#[test]
fn put_values_survive_compaction_and_unrooted_records_get_a_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    let ids = put(&home, &store, &[], &values(40));
    assert_eq!(ids.len(), 40);
    let raw = put(&home, &store, &["--no-root"], "[\"raw\" 1]\n[\"raw\" 2]\n");
    ok(&home, &["compact", p(&store)]);
    assert_eq!(
        readable(&home, &store, &ids),
        40,
        "compact kept every put value"
    );
    // Unrooted records are young: kept by default, listed by a dry run with --prune-now.
    assert_eq!(readable(&home, &store, &raw), 2);
    let dry = ok(&home, &["compact", p(&store), "--prune-now", "--dry-run"]);
    let mut listed: Vec<&str> = dry
        .lines()
        .filter_map(|l| l.strip_prefix("would drop "))
        .collect();
    listed.sort_unstable();
    let mut want: Vec<&str> = raw.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(listed, want);
    assert!(
        dry.contains("would drop 2 records; nothing changed"),
        "{dry}"
    );
    assert_eq!(
        readable(&home, &store, &raw),
        2,
        "a dry run changes nothing"
    );
    let (code, _, err) = etch(&home, &["compact", p(&store), "--prune-now"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("dropping 2 records"),
        "counts stated first: {err}"
    );
    assert_eq!(readable(&home, &store, &raw), 0);
    assert_eq!(readable(&home, &store, &ids), 40);
}

// 2b. `etch put` committed once at the end after printing every ID.
#[test]
fn put_commits_in_batches_and_prints_only_durable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    let ids = put(&home, &store, &["--batch", "1000"], &values(2500));
    assert_eq!(ids.len(), 2500);
    let snaps = ok(&home, &["snapshots", p(&store), "--json"]);
    assert_eq!(snaps.lines().count(), 3, "1,000 values per commit: {snaps}");
    // A value sent alone is committed, and its ID printed, before more input arrives.
    let mut child = spawn_put(&home, &store, &[]);
    let mut input = child.stdin.take().unwrap();
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    input.write_all(b"[\"alone\" 1]\n").unwrap();
    input.flush().unwrap();
    std::io::BufRead::read_line(&mut output, &mut first).unwrap();
    assert_eq!(first.trim().len(), 64, "{first:?}");
    let snaps = ok(&home, &["snapshots", p(&store), "--json"]);
    assert_eq!(
        snaps.lines().count(),
        4,
        "committed before the next line: {snaps}"
    );
    input.write_all(b"[\"alone\" 2]\n").unwrap();
    drop(input);
    assert!(child.wait().unwrap().success());
    // A line that cannot be read is reported in its place; the rest are stored.
    let (code, out, _) = etch_in(&home, &["put", p(&store)], "[1 2]\n[1 2\nnil\n[3 4]\n");
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("error: syntax: "), "{out}");
    assert!(
        lines[2].starts_with("error: argument: nil cannot be stored"),
        "{out}"
    );
    assert_eq!(
        readable(&home, &store, &[lines[0].into(), lines[3].into()]),
        2
    );
}

/// A native store with one commit holding many records in one DATA frame: its log bytes and
/// the records (offset past which the record ends, id) of that frame.
fn one_commit_store(home: &Path, store: &Path) -> (Vec<u8>, Vec<(usize, [u8; 32])>) {
    let big: String = (0..3000)
        .map(|i| format!("\"item {i} {}\" ", "pad".repeat(60)))
        .collect();
    put(home, store, &[], &format!("[{big}]\n"));
    let log = std::fs::read(store.join("log")).unwrap();
    let (h, payload) = frame_at(&log, 0).expect("a first frame");
    assert_eq!(h.kind, 1, "a DATA frame first");
    let recs = records(payload)
        .unwrap()
        .into_iter()
        .map(|(off, id, enc)| (FRAME_HEADER_BYTES + off + 40 + enc.len(), id))
        .collect();
    (log, recs)
}

// 3. A writable open of a truncated one-commit log printed `#Index {}`, exit 0, and cut the
// log to 0 bytes.
#[test]
fn writable_open_of_a_damaged_log_refuses_and_destroys_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    let (log, _) = one_commit_store(&home, &store);
    let cut = log.len() / 2;
    std::fs::write(store.join("log"), &log[..cut]).unwrap();
    let (code, out, err) = etch(&home, &["eval", "--store", p(&store), "(root)"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("the log is damaged"), "{err}");
    assert!(
        err.contains(&format!("etch recover {}", store.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(store.join("log")).unwrap().len(),
        cut as u64
    );
    let (code, _, _) = etch_in(&home, &["put", p(&store)], "[1 2 3]\n");
    assert_eq!(code, 1);
    assert_eq!(std::fs::read(store.join("log")).unwrap(), log[..cut]);
}

// 4. `recover` salvaged 0 of the intact records of that log.
#[test]
fn recover_salvages_every_intact_record_of_a_truncated_log() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    let (log, recs) = one_commit_store(&home, &store);
    let cut = log.len() / 2;
    std::fs::write(store.join("log"), &log[..cut]).unwrap();
    let intact: Vec<[u8; 32]> = recs
        .iter()
        .filter(|(end, _)| *end <= cut)
        .map(|(_, id)| *id)
        .collect();
    assert!(
        intact.len() > 1000,
        "{} records before the cut",
        intact.len()
    );
    let out_store = dir.path().join("r");
    let (code, out, err) = etch(
        &home,
        &["recover", p(&store), "-o", p(&out_store), "--json"],
    );
    assert_eq!(code, 1, "bytes were lost: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["cells"].as_u64(), Some(intact.len() as u64), "{out}");
    for id in intact.iter().step_by(97) {
        let hex = hex::encode(id);
        assert_eq!(etch(&home, &["get", p(&out_store), &hex]).0, 0, "{hex}");
    }
    ok(&home, &["verify", p(&out_store)]);
}

// 5. `etch get` could not read an embedded value that `(store v)` returned the ID of.
#[test]
fn get_reads_an_embedded_stored_value() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    for format in ["native", "cad047"] {
        let store = store.with_extension(format);
        let id = ok(
            &home,
            &[
                "eval",
                "--create",
                "--store",
                p(&store),
                "--format",
                format,
                "(store {:title \"Q3\" :scores [90 85 77]})",
            ],
        );
        let id = id.trim().trim_start_matches("0x");
        let got = ok(&home, &["get", p(&store), id]);
        assert_eq!(got, "{:scores [90 85 77],:title \"Q3\"}\n", "{format}");
    }
}

// 6. One flipped byte early in a native log, and `put` / `import` acknowledged writes the
// store could never return.
#[test]
fn a_damaged_store_acknowledges_no_writes_and_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(put(&home, &store, &[], &values(300)));
    }
    let info = ok(&home, &["info", p(&store), "--json"]);
    let mut log = std::fs::read(store.join("log")).unwrap();
    log[200] ^= 0xff;
    std::fs::write(store.join("log"), &log).unwrap();
    let (code, out, err) = etch_in(&home, &["put", p(&store)], "[9 9 9]\n");
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("the log is damaged at offset 0"), "{err}");
    assert!(err.contains("etch recover"), "{err}");
    let export = dir.path().join("x.etchx");
    let other = dir.path().join("o");
    put(&home, &other, &[], "[1 2 3]\n");
    ok(&home, &["export", p(&other), "-o", p(&export)]);
    let (code, _, err) = etch(&home, &["import", "--store", p(&store), p(&export)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the log is damaged"), "{err}");
    assert_eq!(
        std::fs::read(store.join("log")).unwrap(),
        log,
        "nothing written"
    );
    // Read-only commands read what is intact: the root and all but the damaged record.
    assert_eq!(ok(&home, &["info", p(&store), "--json"]), info);
    let n = readable(&home, &store, &ids);
    assert!(n >= ids.len() - 16, "{n} of {} readable", ids.len());
}

// 7. CAD047 `recover` set no root when the record area was damaged, losing every embedded
// value stored with (store v); and `recover` exited 1 when nothing was lost.
#[test]
fn recover_keeps_the_surviving_data_of_a_damaged_root() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("c.etch"));
    let ids = put(&home, &store, &["--format", "cad047"], &values(653));
    let mut bytes = std::fs::read(&store).unwrap();
    let data_start = etch_engine::store::cad047::DATA_START as usize;
    let n = bytes.len();
    for k in 1..=3 {
        bytes[data_start + (n - data_start) * k / 4] ^= 0xff;
    }
    std::fs::write(&store, &bytes).unwrap();
    let out_store = dir.path().join("r.etch");
    let (code, out, err) = etch(&home, &["recover", p(&store), "-o", p(&out_store)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("salvaged from the header's root"), "{out}");
    ok(&home, &["verify", p(&out_store)]);
    let kept = readable(&home, &out_store, &ids);
    // Three damaged records hold at most a few entries each; before, only the values with
    // records of their own (about half) could be read.
    assert!(kept >= 640, "{kept} of 653 values readable");
}

#[test]
fn recover_exits_0_when_nothing_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    for _ in 0..3 {
        put(&home, &store, &[], &values(20));
    }
    let mut snaps = std::fs::read(store.join("snapshots")).unwrap();
    snaps[5] ^= 0x01;
    std::fs::write(store.join("snapshots"), &snaps).unwrap();
    let out_store = dir.path().join("r");
    let (code, out, err) = etch(&home, &["recover", p(&store), "-o", p(&out_store)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        ok(&home, &["info", p(&out_store), "--json"])
            .split("\"cells\"")
            .nth(1),
        ok(&home, &["info", p(&store), "--json"])
            .split("\"cells\"")
            .nth(1)
    );
}

// A crash's torn tail is set aside, never destroyed, and said so.
#[test]
fn a_torn_tail_is_moved_aside_not_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (dir.path().join("home"), dir.path().join("s"));
    put(&home, &store, &[], &values(10));
    let log = std::fs::read(store.join("log")).unwrap();
    let tail = b"EFRM\x01\0\0\0torn frame bytes";
    let mut torn = log.clone();
    torn.extend_from_slice(tail);
    std::fs::write(store.join("log"), &torn).unwrap();
    let (code, _, err) = etch_in(&home, &["put", p(&store)], "[5 5]\n");
    assert_eq!(code, 0, "{err}");
    let aside = store.join(format!("log.aside-{}", log.len()));
    assert!(
        err.contains(&format!(
            "{} bytes after the last commit (1 at offset {}) set aside in {}",
            tail.len(),
            log.len(),
            aside.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&aside).unwrap(), tail);
    // verify mentions it.
    let (_, out, _) = etch(&home, &["verify", p(&store)]);
    assert!(
        out.contains(&format!(
            "note: log.aside-{}: {} bytes",
            log.len(),
            tail.len()
        )),
        "{out}"
    );
    // Compaction keeps it too.
    let (code, _, err) = etch(&home, &["compact", p(&store), "--prune-now"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 set-aside log tail file(s) (log.aside-*) kept"),
        "{err}"
    );
    assert_eq!(std::fs::read(&aside).unwrap(), tail);
}

// `etch import` replaced the store's root with the file's: everything the store held became
// unreachable, and compaction then deleted it.
#[test]
fn import_merges_into_the_root_it_finds() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let ids_a = put(&home, &a, &[], &values(10));
    let ids_b = put(&home, &b, &[], "[\"b\" 1]\n[\"b\" 2]\n");
    let file = dir.path().join("b.etchx");
    ok(&home, &["export", p(&b), "-o", p(&file)]);
    let out = ok(&home, &["import", "--store", p(&a), p(&file)]);
    assert!(out.contains("the store's root now "), "{out}");
    ok(&home, &["compact", p(&a), "--prune-now"]);
    assert_eq!(readable(&home, &a, &ids_a), ids_a.len());
    assert_eq!(readable(&home, &a, &ids_b), ids_b.len());
    // A root that is not a lattice root cannot be merged: refused, root unchanged.
    let e = dir.path().join("e");
    let x = put(&home, &e, &[], "[1 2 3 \"not a lattice root\"]\n");
    let vfile = dir.path().join("v.etchx");
    ok(&home, &["export", p(&e), "--root", &x[0], "-o", p(&vfile)]);
    ok(&home, &["import", "--store", p(&c), p(&vfile)]);
    let before = ok(&home, &["eval", "--store", p(&c), "(root)"]);
    let (code, _, err) = etch(&home, &["import", "--store", p(&c), p(&file)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot be merged"), "{err}");
    assert_eq!(ok(&home, &["eval", "--store", p(&c), "(root)"]), before);
    // --no-set-root keeps the store's root and the file's root value in its :data.
    let d = dir.path().join("d");
    let ids_d = put(&home, &d, &[], "[\"d\"]\n");
    ok(
        &home,
        &["import", "--store", p(&d), "--no-set-root", p(&file)],
    );
    ok(&home, &["compact", p(&d), "--prune-now"]);
    assert_eq!(readable(&home, &d, &ids_d), 1);
    let info: serde_json::Value =
        serde_json::from_str(ok(&home, &["info", p(&b), "--json"]).trim()).unwrap();
    let b_root = info["root"].as_str().unwrap().to_string();
    assert_eq!(
        readable(&home, &d, &[b_root]),
        1,
        "the file's root kept in :data"
    );
}

/// `etch put` killed with SIGKILL at a random moment, `rounds` times over one store of
/// `format`, while a writer feeds it values in bursts: every ID it printed must be readable
/// afterwards (it prints an ID only once its batch is durable), and the store must open every
/// time. Returns the number of IDs checked.
fn killed_puts_keep_every_printed_id(format: &str, rounds: u64) -> usize {
    use etch_engine::store::{open_store, OpenOptions, Root, StoreFormat};
    use etch_formats::Cell;
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let (home, store) = (
        dir.path().join("home"),
        dir.path().join(format!("s-{format}")),
    );
    let mut rng = etch_formats::gen::SplitMix64(77);
    let mut printed_all: Vec<String> = Vec::new();
    let mut killed = 0;
    for round in 0..rounds {
        let mut child = spawn_put(&home, &store, &["--format", format]);
        let mut input = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            for burst in 0u64.. {
                let lines: String = (0..40)
                    .map(|i| {
                        format!(
                            "[{round} {burst} {i} \"{}\"]\n",
                            "v".repeat((i * 7) as usize)
                        )
                    })
                    .collect();
                if input.write_all(lines.as_bytes()).is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20 + rng.next_u64() % 120));
        child.kill().unwrap(); // SIGKILL
        let out = child.stdout.take().unwrap();
        if !child.wait().unwrap().success() {
            killed += 1;
        }
        feeder.join().unwrap();
        let printed: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
        printed_all.extend(printed.iter().filter(|l| l.len() == 64).cloned());
        if !store.exists() {
            assert!(printed.is_empty(), "round {round}: IDs printed, no store");
            continue;
        }
        // Writable: recovery runs (and sets a torn tail aside) as the next `put` would.
        let opened = open_store(&store, &OpenOptions::writable(StoreFormat::Native))
            .unwrap_or_else(|e| panic!("{format} round {round}: reopen failed: {e}"))
            .cell_store();
        let root = match opened.root().unwrap() {
            Root::Value(r) => r,
            Root::Unset => Cell::nil(),
        };
        for id in &printed_all {
            let vid = etch_formats::ValueId::from_hex(id).unwrap();
            let got = etch_engine::lattice::stored_value(&root, &vid, opened.as_ref()).unwrap();
            assert!(
                got.is_some(),
                "{format} round {round}: printed ID {id} is gone"
            );
        }
    }
    assert!(
        killed >= rounds * 9 / 10,
        "{format}: killed {killed} of {rounds} mid-run"
    );
    assert!(
        printed_all.len() >= 1000,
        "{format}: only {} IDs printed",
        printed_all.len()
    );
    eprintln!(
        "{format}: {killed} kills of etch put, {} printed IDs all readable",
        printed_all.len()
    );
    printed_all.len()
}

#[test]
fn put_killed_100_times_keeps_every_printed_id_native() {
    killed_puts_keep_every_printed_id("native", 100);
}

#[test]
fn put_killed_100_times_keeps_every_printed_id_cad047() {
    killed_puts_keep_every_printed_id("cad047", 100);
}
