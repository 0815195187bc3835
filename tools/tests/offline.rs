//! The offline tools on real stores of both formats: `verify` finds each kind of damage with its
//! offset, `compact` reclaims garbage and survives kill -9 at any point, `export`/`import` round
//! trip byte for byte and refuse damaged files, `convert` keeps roots and cells, `recover`
//! salvages, `stats`/`dump` describe, `bench disk` profiles.

use etch_engine::store::native::NativeOptions;

/// Bytes of a native record before its encoding.
const HEADER: u64 = etch_engine::store::native::format::RECORD_HEADER_BYTES as u64;
use etch_engine::store::{CellStore, EtchStore, NativeStore};
use etch_formats::gen::SplitMix64;
use etch_formats::{Cell, ValueId};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn etch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/etch")
}

/// A value with a few dozen branch cells: a blob tree, a vector tree, a string, a map.
fn value(seed: u64, scale: usize) -> Cell {
    let mut rng = SplitMix64(seed);
    let blob = Cell::blob(&rng.bytes(20_000 * scale));
    let longs = Cell::vector(
        (0..300 * scale as i64)
            .map(|i| Cell::long(i * seed as i64))
            .collect(),
    );
    let text = Cell::string(&"etch ".repeat(200 * scale));
    let map = Cell::map(
        (0..100 * scale as i64)
            .map(|i| (Cell::long(i), Cell::string(&format!("value {i} {seed}"))))
            .collect(),
    );
    Cell::vector(vec![blob, longs, text, map, Cell::long(seed as i64)])
}

fn small_native_options() -> NativeOptions {
    NativeOptions {
        memtable_flush_entries: 10,
        ..NativeOptions::default()
    }
}

/// A native store with three commits and index runs; returns its roots, oldest first.
fn native_store(path: &Path) -> Vec<ValueId> {
    let s = NativeStore::create(path, small_native_options()).unwrap();
    let mut roots = Vec::new();
    for seed in 1..=3 {
        let v = value(seed, 1);
        s.set_root(&v).unwrap();
        roots.push(*v.id());
    }
    roots
}

fn cad_store(path: &Path) -> ValueId {
    let s = EtchStore::create(path).unwrap();
    let v = value(5, 1);
    s.set_root(&v).unwrap();
    *v.id()
}

fn verify(path: &Path) -> (i32, Value) {
    let (code, out, err) = etch(&["verify", p(path), "--json"]);
    assert!(code == 0 || code == 1, "verify exit {code}: {err}");
    (code, json(&out))
}

fn problems(v: &Value) -> Vec<(String, u64, String, Option<String>)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["offset"].as_u64().unwrap(),
                p["kind"].as_str().unwrap().to_string(),
                p["id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn has(v: &Value, file: &str, offset: Option<u64>, kind: &str, id: Option<&str>) -> bool {
    problems(v).iter().any(|(f, o, k, i)| {
        f == file
            && k == kind
            && offset.is_none_or(|x| x == *o)
            && id.is_none_or(|x| i.as_deref() == Some(x))
    })
}

fn root_of(path: &Path) -> Option<String> {
    let (code, out, err) = etch(&["info", p(path), "--json"]);
    assert_eq!(code, 0, "{err}");
    json(&out)["root"].as_str().map(str::to_string)
}

/// Records as `etch dump --json` lists them: (offset, id, length, type).
fn dump(path: &Path) -> Vec<(u64, String, u64, String)> {
    let (code, out, err) = etch(&["dump", p(path), "--json"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(json)
        .filter(|v| v.get("id").is_some())
        .map(|v| {
            (
                v["offset"].as_u64().unwrap(),
                v["id"].as_str().unwrap().to_string(),
                v["length"].as_u64().unwrap(),
                v["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ids(path: &Path) -> BTreeSet<String> {
    dump(path).into_iter().map(|r| r.1).collect()
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn sound_stores_verify() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    native_store(&n);
    let c = dir.path().join("c.etch");
    cad_store(&c);
    for s in [
        n.as_path(),
        c.as_path(),
        &vectors().join("small.etch"),
        &vectors().join("mixed.etch"),
    ] {
        let (code, v) = verify(s);
        assert_eq!(code, 0, "{}: {v}", s.display());
        assert_eq!(v["ok"], true);
        assert!(v["reachable_cells"].as_u64().unwrap() > 10);
    }
    // Text mode says OK.
    let (code, out, _) = etch(&["verify", p(&n)]);
    assert_eq!(code, 0);
    assert!(out.contains("OK: no problems found"), "{out}");
    // Nothing there: failed, as every command says it.
    assert_eq!(etch(&["verify", p(&dir.path().join("nothing"))]).0, 1);
}

#[test]
fn verify_finds_native_damage() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    native_store(&good);
    let recs = dump(&good);
    let runs: Vec<PathBuf> = std::fs::read_dir(&good)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    assert!(!runs.is_empty(), "the test store should have index runs");
    let fresh = |name: &str| {
        let d = dir.path().join(name);
        copy_dir(&good, &d);
        d
    };

    // A flipped byte inside a record's encoding: the frame's CRC and the record's hash.
    let (off, id, len, _) = recs.iter().find(|r| r.2 > 200).unwrap().clone();
    let d = fresh("record");
    flip(&d.join("log"), off + HEADER + len / 2);
    let (code, v) = verify(&d);
    assert_eq!(code, 1);
    assert!(has(&v, "log", Some(off), "hash", Some(&id)), "{v}");
    assert!(has(&v, "log", Some(off + 36), "record", Some(&id)), "{v}");
    assert!(has(&v, "log", None, "frame", None), "{v}");

    // A flipped byte in an index run's entries.
    let d = fresh("index");
    let run = d.join(runs[0].file_name().unwrap());
    flip(&run, 64 + 3);
    let (code, v) = verify(&d);
    assert_eq!(code, 1);
    let run_name = runs[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(has(&v, &run_name, Some(48), "index", None), "{v}");

    // A flipped byte in the FORMAT header.
    let d = fresh("header");
    flip(&d.join("FORMAT"), 3);
    let (code, v) = verify(&d);
    assert_eq!(code, 1);
    assert!(has(&v, "FORMAT", Some(3), "header", None), "{v}");

    // A flipped frame magic.
    let d = fresh("frame");
    flip(&d.join("log"), 1);
    let (code, v) = verify(&d);
    assert_eq!(code, 1);
    assert!(has(&v, "log", Some(0), "frame", None), "{v}");

    // A truncated log.
    let d = fresh("truncated");
    let log = d.join("log");
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (code, v) = verify(&d);
    assert_eq!(code, 1);
    assert!(has(&v, "log", Some(len / 2), "truncated", None), "{v}");

    // A reachable cell whose record was never written.
    let d = dir.path().join("deleted");
    let v0 = value(9, 1);
    let mut all = Vec::new();
    etch_formats::body::branches_preorder(&v0, &etch_formats::NoResolver)
        .unwrap()
        .into_iter()
        .for_each(|c| all.push(c));
    let victim = all[all.len() / 2].clone();
    {
        let s = NativeStore::create(&d, NativeOptions::default()).unwrap();
        for c in all.iter().rev() {
            if c.id() != victim.id() {
                s.put_record(c.id(), c.encoding()).unwrap();
            }
        }
        s.put_record(v0.id(), v0.encoding()).unwrap();
        s.set_root_id(Some(*v0.id())).unwrap();
    }
    let (code, v) = verify(&d);
    assert_eq!(code, 1);
    assert!(
        has(&v, "log", None, "missing", Some(&victim.id().to_hex())),
        "{v}"
    );
}

/// Offsets in small.etch (from its cells.tsv): the record of V and its root slot.
const V_ID: &str = "bc41f9c0c93277bf9f1cfc143dc5df26b4bdfb7ad0a536559b6d907b22dd6b17";

fn small_record_offset(id: &str) -> u64 {
    let tsv = std::fs::read_to_string(vectors().join("small.cells.tsv")).unwrap();
    tsv.lines()
        .find(|l| l.starts_with(id))
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn verify_finds_cad047_damage() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let d = dir.path().join(name);
        std::fs::copy(vectors().join("small.etch"), &d).unwrap();
        d
    };
    let key: Vec<u8> = hex::decode(V_ID).unwrap();
    let slot = 44 + 8 * ((u64::from(key[0]) << 8) | u64::from(key[1]));
    let rec = small_record_offset(V_ID);

    // A flipped byte in a record's encoding.
    let f = fresh("record.etch");
    flip(&f, rec + 43 + 10);
    let (code, v) = verify(&f);
    assert_eq!(code, 1);
    assert!(has(&v, "record.etch", Some(rec), "hash", Some(V_ID)), "{v}");
    assert!(has(&v, "record.etch", None, "missing", Some(V_ID)), "{v}");

    // A slot pointing past the data length.
    let f = fresh("index.etch");
    flip(&f, slot + 1);
    let (code, v) = verify(&f);
    assert_eq!(code, 1);
    assert!(has(&v, "index.etch", Some(slot), "index", None), "{v}");

    // Header: magic, and the root hash.
    let f = fresh("magic.etch");
    flip(&f, 0);
    let (code, v) = verify(&f);
    assert_eq!(code, 1);
    assert!(has(&v, "magic.etch", Some(0), "header", None), "{v}");
    let f = fresh("root.etch");
    flip(&f, 20);
    let (code, v) = verify(&f);
    assert_eq!(code, 1);
    assert!(has(&v, "root.etch", Some(12), "missing", None), "{v}");

    // Truncated below the data length.
    let f = fresh("truncated.etch");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(530_000)
        .unwrap();
    let (code, v) = verify(&f);
    assert_eq!(code, 1);
    assert!(has(&v, "truncated.etch", Some(4), "truncated", None), "{v}");

    // A reachable cell's record deleted (its slot cleared).
    let f = fresh("deleted.etch");
    let mut b = std::fs::read(&f).unwrap();
    b[slot as usize..slot as usize + 8].fill(0);
    std::fs::write(&f, b).unwrap();
    let (code, v) = verify(&f);
    assert_eq!(code, 1);
    let root = "df7c7e21435b0a1804e8f4e952c74fa6519998b33c188915081a6b5cea43fecd";
    let root_off = small_record_offset(root);
    assert!(
        has(&v, "deleted.etch", Some(root_off), "missing", Some(V_ID)),
        "{v}"
    );
}

fn dir_bytes(p: &Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    } else {
        std::fs::metadata(p).unwrap().len()
    }
}

#[test]
fn compact_reclaims_garbage() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["native", "cad047"] {
        let s = dir.path().join(format!("s-{format}"));
        let keep = value(21, 3);
        {
            let store = etch_engine::store::open_store(
                &s,
                &etch_engine::store::OpenOptions::writable(
                    etch_engine::store::StoreFormat::parse(format).unwrap(),
                ),
            )
            .unwrap()
            .cell_store();
            // As much garbage as live data: a tree that was the root once, then replaced.
            store.set_root(&value(22, 3)).unwrap();
            store.set_root(&keep).unwrap();
        }
        let before = dir_bytes(&s);
        // The old root's cells are minutes old: only --prune-now drops them (issue 14).
        let (code, out, err) = etch(&["compact", p(&s), "--json"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["dropped"].as_u64(), Some(0), "{out}");
        let (code, out, err) = etch(&["compact", p(&s), "--json", "--prune-now"]);
        assert_eq!(code, 0, "{err}");
        let v = json(&out);
        let after = dir_bytes(&s);
        assert_eq!(v["bytes_after"].as_u64().unwrap(), after);
        assert_eq!(root_of(&s).as_deref(), Some(keep.id().to_hex().as_str()));
        assert_eq!(verify(&s).0, 0);
        let fixed = if format == "cad047" { 524_332 } else { 0 };
        let reclaimed = (before - after) as f64 / (before - fixed) as f64;
        assert!(
            (0.35..0.65).contains(&reclaimed),
            "{format}: {before} -> {after} bytes reclaims {reclaimed:.2} of the data, not about half"
        );
        assert!(!dir.path().join(format!("s-{format}.compact-tmp")).exists());
    }
    // --keep-snapshots keeps older roots as commits.
    let n = dir.path().join("snaps");
    let roots = native_store(&n);
    let (code, _, err) = etch(&["compact", p(&n), "--keep-snapshots", "1"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = etch(&["snapshots", p(&n), "--json"]);
    let listed: Vec<String> = out
        .lines()
        .map(|l| json(l)["root"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, vec![roots[1].to_hex(), roots[2].to_hex()]);
    assert_eq!(verify(&n).0, 0);
}

#[test]
fn compact_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("store");
    {
        let store = NativeStore::create(&s, small_native_options()).unwrap();
        for seed in 30..36 {
            store.set_root(&value(seed, 4)).unwrap();
        }
    }
    let root = root_of(&s);
    let check = |what: &str| {
        let (code, v) = verify(&s);
        assert_eq!(code, 0, "after {what}: {v}");
        assert_eq!(root_of(&s), root, "after {what}");
    };
    // A crash right after each step of the swap.
    for step in ["copied", "aside", "in", "deleted"] {
        let st = Command::new(env!("CARGO_BIN_EXE_etch"))
            .args(["compact", p(&s)])
            .env("ETCH_COMPACT_CRASH_AT", step)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!st.success(), "the child should have crashed at {step}");
        check(step);
    }
    // How long a compaction takes here, then kill -9 at random moments within it.
    let t = std::time::Instant::now();
    assert_eq!(etch(&["compact", p(&s)]).0, 0);
    let took = t.elapsed().as_micros() as u64;
    let mut rng = SplitMix64(77);
    for i in 0..8 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etch"))
            .args(["compact", p(&s)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(
            rng.next_u64() % (took + 1),
        ));
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        check(&format!("kill {i}"));
    }
    // A CAD047 file too.
    let c = dir.path().join("c.etch");
    cad_store(&c);
    let croot = root_of(&c);
    for step in ["copied", "in"] {
        let st = Command::new(env!("CARGO_BIN_EXE_etch"))
            .args(["compact", p(&c)])
            .env("ETCH_COMPACT_CRASH_AT", step)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!st.success());
        assert_eq!(verify(&c).0, 0, "cad047 after {step}");
        assert_eq!(root_of(&c), croot);
    }
}

#[test]
fn export_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    let roots = native_store(&n);
    let e1 = dir.path().join("a.export");
    let e2 = dir.path().join("b.export");
    assert_eq!(etch(&["export", p(&n), "-o", p(&e1)]).0, 0);
    assert_eq!(etch(&["export", p(&n), "-o", p(&e2)]).0, 0);
    let bytes = std::fs::read(&e1).unwrap();
    assert_eq!(bytes, std::fs::read(&e2).unwrap(), "two exports differ");
    for format in ["native", "cad047"] {
        let t = dir.path().join(format!("t-{format}"));
        let (code, out, err) = etch(&[
            "import",
            p(&e1),
            "--store",
            p(&t),
            "--format",
            format,
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["root"], roots[2].to_hex());
        assert_eq!(root_of(&t).unwrap(), roots[2].to_hex());
        assert_eq!(verify(&t).0, 0);
        // Same cells: the imported store exports the same bytes.
        let e3 = dir.path().join(format!("{format}.export"));
        assert_eq!(etch(&["export", p(&t), "-o", p(&e3)]).0, 0);
        assert_eq!(std::fs::read(&e3).unwrap(), bytes, "{format}");
    }
    // An older root, by --root.
    let e4 = dir.path().join("old.export");
    assert_eq!(
        etch(&["export", p(&n), "--root", &roots[0].to_hex(), "-o", p(&e4)]).0,
        0
    );
    // Damaged copies import nothing and say where.
    let target = dir.path().join("target");
    let (code, _, err) = etch(&["import", p(&e4), "--store", p(&target)]);
    assert_eq!(code, 0, "{err}");
    let mut rng = SplitMix64(5);
    let mut spots: Vec<usize> = vec![
        3,
        20,
        62,
        64,
        66,
        80,
        bytes.len() / 2,
        bytes.len() - 30,
        bytes.len() - 6,
    ];
    for _ in 0..6 {
        spots.push((rng.next_u64() % bytes.len() as u64) as usize);
    }
    for at in spots {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        let f = dir.path().join("damaged.export");
        std::fs::write(&f, &b).unwrap();
        let (code, _, err) = etch(&["import", p(&f), "--store", p(&target)]);
        assert_eq!(code, 1, "flip at {at}: {err}");
        assert!(err.contains("offset"), "{err}");
        assert_eq!(root_of(&target).unwrap(), roots[0].to_hex(), "flip at {at}");
        let fresh = dir.path().join("fresh");
        assert_eq!(etch(&["import", p(&f), "--store", p(&fresh)]).0, 1);
        assert!(!fresh.exists(), "a damaged import created a store");
    }
    // Truncated.
    let f = dir.path().join("short.export");
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let (code, _, err) = etch(&["import", p(&f), "--store", p(&target)]);
    assert_eq!(code, 1);
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(verify(&target).0, 0);
}

#[test]
fn convert_keeps_roots_and_cells() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    let roots = native_store(&n);
    let c = dir.path().join("c.etch");
    let n2 = dir.path().join("n2");
    let (code, _, err) = etch(&["convert", p(&n), p(&c), "--to", "cad047"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = etch(&["convert", p(&c), p(&n2)]);
    assert_eq!(code, 0, "{err}");
    for s in [&c, &n2] {
        assert_eq!(verify(s).0, 0);
        assert_eq!(root_of(s).unwrap(), roots[2].to_hex());
    }
    assert_eq!(ids(&n), ids(&c));
    assert_eq!(ids(&n), ids(&n2));
    // Every snapshot's tree is still whole: it exports the same bytes as from the original.
    for r in &roots {
        let a = dir.path().join("a.x");
        let b = dir.path().join("b.x");
        assert_eq!(
            etch(&[
                "export",
                p(&n),
                "--root",
                &r.to_hex(),
                "-o",
                p(&a),
                "--force"
            ])
            .0,
            0
        );
        assert_eq!(
            etch(&[
                "export",
                p(&n2),
                "--root",
                &r.to_hex(),
                "-o",
                p(&b),
                "--force"
            ])
            .0,
            0
        );
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }
    // Native to native keeps the commits as snapshots.
    let n3 = dir.path().join("n3");
    assert_eq!(etch(&["convert", p(&n), p(&n3), "--to", "native"]).0, 0);
    let (_, out, _) = etch(&["snapshots", p(&n3), "--json"]);
    assert_eq!(out.lines().count(), 3);
    // The reference files convert and verify, both ways.
    for name in ["small", "mixed"] {
        let src = vectors().join(format!("{name}.etch"));
        let nat = dir.path().join(format!("{name}-native"));
        let back = dir.path().join(format!("{name}-back.etch"));
        assert_eq!(etch(&["convert", p(&src), p(&nat)]).0, 0);
        assert_eq!(etch(&["convert", p(&nat), p(&back)]).0, 0);
        for s in [&nat, &back] {
            let (code, v) = verify(s);
            assert_eq!(code, 0, "{name}: {v}");
            assert_eq!(root_of(s), root_of(&src));
            assert_eq!(ids(s), ids(&src));
        }
    }
    // DST must not exist.
    assert_eq!(etch(&["convert", p(&n), p(&c)]).0, 2);
}

#[test]
fn recover_salvages() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    let roots = native_store(&n);
    // Intact: everything comes back, exit 0.
    let out1 = dir.path().join("r1");
    let (code, _, err) = etch(&["recover", p(&n), "-o", p(&out1)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(root_of(&out1).unwrap(), roots[2].to_hex());
    assert_eq!(ids(&out1), ids(&n));
    // Damage a cell that only the newest root reaches.
    let only_new: Vec<_> = {
        let a = ids_of_tree(&n, &roots[2]);
        let b = ids_of_tree(&n, &roots[1]);
        a.difference(&b).cloned().collect()
    };
    let recs = dump(&n);
    let (off, id, len, _) = recs
        .iter()
        .find(|r| only_new.contains(&r.1) && r.1 != roots[2].to_hex())
        .unwrap()
        .clone();
    flip(&n.join("log"), off + HEADER + len / 2);
    let out2 = dir.path().join("r2");
    let (code, out, err) = etch(&["recover", p(&n), "-o", p(&out2), "--json"]);
    assert_eq!(code, 1, "{err}");
    let v = json(&out);
    assert_eq!(v["root"], roots[1].to_hex());
    assert_eq!(v["damaged"][0]["id"], id);
    assert_eq!(v["lost_roots"][0]["root"], roots[2].to_hex());
    assert_eq!(verify(&out2).0, 0);
    assert_eq!(root_of(&out2).unwrap(), roots[1].to_hex());
    let mut want = ids(&n);
    want.remove(&id);
    assert_eq!(ids(&out2), want);
    // A CAD047 file whose root slot is lost: the deep scan finds the records.
    let f = dir.path().join("small.etch");
    std::fs::copy(vectors().join("small.etch"), &f).unwrap();
    let key: Vec<u8> = hex::decode(V_ID).unwrap();
    let slot = 44 + 8 * ((usize::from(key[0]) << 8) | usize::from(key[1]));
    let mut b = std::fs::read(&f).unwrap();
    b[slot..slot + 8].fill(0xff);
    std::fs::write(&f, b).unwrap();
    let out3 = dir.path().join("r3.etch");
    let (code, out, err) = etch(&["recover", p(&f), "-o", p(&out3), "--json"]);
    // Every record was found again: nothing was lost, so exit 0 (issue 14).
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(
        v["root"],
        "df7c7e21435b0a1804e8f4e952c74fa6519998b33c188915081a6b5cea43fecd"
    );
    assert_eq!(verify(&out3).0, 0);
    assert_eq!(ids(&out3), ids(&vectors().join("small.etch")));
}

fn ids_of_tree(store: &Path, root: &ValueId) -> BTreeSet<String> {
    let s = NativeStore::open(store, false, NativeOptions::default()).unwrap();
    let top = s.get(root).unwrap().unwrap();
    let mut out: BTreeSet<String> = etch_formats::body::branches_preorder(&top, &s)
        .unwrap()
        .iter()
        .map(|c| c.id().to_hex())
        .collect();
    out.insert(root.to_hex());
    out
}

#[test]
fn stats_and_dump_describe() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    native_store(&n);
    let (code, out, err) = etch(&["stats", p(&n), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert!(v["types"]["Blob"]["count"].as_u64().unwrap() > 0);
    assert!(v["tree"]["depth"].as_u64().unwrap() >= 2);
    assert!(v["tree"]["dedup_ratio"].as_f64().unwrap() >= 1.0);
    assert_eq!(v["garbage_cells"], 0);
    assert_eq!(v["live_cells"], v["records"]);

    // A cell no commit's root reaches is garbage; every cell of every commit's tree is live.
    let g = dir.path().join("g");
    let s = NativeStore::create(&g, small_native_options()).unwrap();
    let (old, new) = (value(1, 1), value(2, 1));
    s.set_root(&old).unwrap();
    s.set_root(&new).unwrap();
    let stray = Cell::string(&"not reachable ".repeat(20));
    s.put(&stray).unwrap();
    s.commit().unwrap();
    let records = dump(&g).len() as u64;
    drop(s);
    let (code, out, err) = etch(&["stats", p(&g), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["records"].as_u64(), Some(records), "{v}");
    assert_eq!(v["garbage_cells"].as_u64(), Some(1), "{v}");
    assert_eq!(v["garbage_bytes"].as_u64(), Some(stray.len() as u64), "{v}");
    assert_eq!(v["live_cells"].as_u64(), Some(records - 1), "{v}");
    let (code, out, _) = etch(&["stats", p(&vectors().join("mixed.etch"))]);
    assert_eq!(code, 0);
    assert!(out.contains("dedup ratio"), "{out}");
    let (code, out, _) = etch(&["dump", p(&vectors().join("small.etch")), "--limit", "5"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 5);
    let all = dump(&vectors().join("small.etch"));
    assert_eq!(all.len(), 23);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "file order");
    let (_, out, _) = etch(&["dump", p(&n)]);
    assert_eq!(out.lines().filter(|l| l.contains("commit")).count(), 3);
}

/// A minimal well-formedness check: every tag closes in order, attributes are quoted.
fn well_formed_xml(s: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        if text.contains('>') {
            return Err(format!("stray '>' in text {text:?}"));
        }
        let j = rest[i..].find('>').ok_or("unclosed tag")? + i;
        let tag = &rest[i + 1..j];
        rest = &rest[j + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or("close without open")?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            continue;
        }
        elements += 1;
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body
            .split_whitespace()
            .next()
            .ok_or("empty tag")?
            .to_string();
        if !body.matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes in <{body}>"));
        }
        if !self_closing {
            stack.push(name);
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    Ok(elements)
}

#[test]
fn bench_disk_profiles_and_draws() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, stdout, err) = etch(&[
        "bench",
        "disk",
        "--dir",
        p(dir.path()),
        "--size",
        "8",
        "--seconds",
        "0.2",
        "--cells",
        "3000",
        "--out",
        p(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("fdatasync"), "{stdout}");
    let v = json(&std::fs::read_to_string(out.join("disk-profile.json")).unwrap());
    assert!(v["sequential_writes"].as_array().unwrap().len() >= 4);
    assert!(v["fdatasync_4k"]["p50_us"].as_f64().unwrap() > 0.0);
    assert!(v["ingest_w1"]["cells_s"].as_f64().unwrap() > 0.0);
    // Every field of the report (not timed: only that each is there and sane).
    for key in [
        "path",
        "kernel",
        "cpus",
        "mount_point",
        "filesystem",
        "mount_options",
        "source",
        "disk",
        "model",
        "rotational",
        "memory_backed",
    ] {
        assert!(v["system"].get(key).is_some(), "system.{key} missing: {v}");
    }
    assert!(v["system"]["cpus"].as_u64().unwrap() >= 1);
    let qds: Vec<u64> = v["random_reads_4k"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "io_uring")
        .map(|r| r["qd"].as_u64().unwrap())
        .collect();
    // The io_uring sweep, where the kernel allows io_uring at all.
    assert!(qds.is_empty() || qds == [1, 4, 16, 32, 64, 256], "{qds:?}");
    for r in v["random_reads_4k"].as_array().unwrap() {
        for key in [
            "iops", "mb_s", "p50_us", "p99_us", "p999_us", "max_us", "direct",
        ] {
            assert!(r.get(key).is_some(), "random_reads_4k.{key} missing");
        }
    }
    let group: Vec<u64> = v["group_commit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["committers"].as_u64().unwrap())
        .collect();
    assert_eq!(group, [1, 4, 16, 64]);
    for g in v["group_commit"].as_array().unwrap() {
        assert!(g["commits_s"].as_f64().unwrap() > 0.0, "{g}");
        assert!(g["p99_us"].as_f64().unwrap() >= g["p50_us"].as_f64().unwrap());
    }
    assert!(v["sustained_write"].is_null(), "only with --sustained");
    let hashing = v["hashing_sha3"].as_array().unwrap();
    assert_eq!(hashing[0]["threads"], 1);
    assert!(hashing.iter().all(|h| h["mb_s"].as_f64().unwrap() > 0.0));
    // fio side by side where it is installed; otherwise the report says why not.
    if v["fio"].get("skipped").is_some() {
        assert!(v["versus_fio"].is_null());
    } else {
        assert!(v["fio"]["randread_4k_qd32"]["iops"].as_f64().unwrap() > 0.0);
        assert!(v["versus_fio"]["randread_4k_qd32"].as_f64().unwrap() > 0.0);
    }
    // The HTML report holds the table and the charts.
    let html = std::fs::read_to_string(out.join("disk-profile.html")).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<svg") && html.ends_with("</html>\n")
    );
    // Charts: throughput by block size, read latency by queue depth, the engine's commits by
    // committers and the CPU's hashing by threads (what bounds the engine on this machine).
    for chart in [
        "Throughput",
        "Read latency by queue depth",
        "Engine: durable commits by concurrent committers",
        "Engine: commit latency by committers",
        "CPU: SHA3-256 hashing by threads",
    ] {
        assert!(
            html.contains(chart),
            "no chart {chart:?} in the HTML report"
        );
    }
    assert!(html.contains("qd 256 p99") && html.contains("64 committers"));
    // Repeated runs give a median with its range; an earlier run is compared figure by figure.
    let old = dir.path().join("old.json");
    std::fs::copy(out.join("disk-profile.json"), &old).unwrap();
    let (code, stdout, err) = etch(&[
        "bench",
        "disk",
        "--dir",
        p(dir.path()),
        "--size",
        "4",
        "--seconds",
        "0.2",
        "--cells",
        "0",
        "--out",
        p(&out),
        "--repeat",
        "2",
        "--compare",
        p(&old),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("compared with an earlier run"), "{stdout}");
    let v2 = json(&std::fs::read_to_string(out.join("disk-profile.json")).unwrap());
    assert_eq!(v2["repeats"], 2);
    let s0 = &v2["sequential_writes"][0];
    assert!(s0["mb_s_min"].as_f64().unwrap() <= s0["mb_s"].as_f64().unwrap());
    assert!(s0["mb_s"].as_f64().unwrap() <= s0["mb_s_max"].as_f64().unwrap());
    assert!(!v2["compare"]["rows"].as_array().unwrap().is_empty());
    // A folder that is not there is an error, not made.
    let gone = dir.path().join("no-such-folder");
    let (code, _, err) = etch(&["bench", "disk", "--dir", p(&gone), "--size", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such folder"), "{err}");
    assert!(!gone.exists());
    let svg = std::fs::read_to_string(out.join("disk-profile.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"));
    let n = well_formed_xml(&svg).unwrap_or_else(|e| panic!("SVG not well-formed: {e}"));
    assert!(n > 20);
    // Where an SVG renderer is installed, it must render it too.
    if let Ok(st) = Command::new("rsvg-convert")
        .arg(out.join("disk-profile.svg"))
        .arg("-o")
        .arg(out.join("disk-profile.png"))
        .stderr(Stdio::null())
        .status()
    {
        assert!(st.success(), "rsvg-convert refused the SVG");
    }
    // The scratch directory is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("etch-disk-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn random_damage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    native_store(&n);
    let mut rng = SplitMix64(99);
    let targets: Vec<PathBuf> = vec![n.join("log"), vectors().join("mixed.etch")];
    for (t, target) in targets.iter().enumerate() {
        let good = std::fs::read(target).unwrap();
        for round in 0..20 {
            let mut b = good.clone();
            // A few flipped bytes, sometimes a burst, sometimes a cut.
            for _ in 0..1 + rng.next_u64() % 4 {
                let at = (rng.next_u64() % b.len() as u64) as usize;
                let burst = if rng.next_u64().is_multiple_of(3) {
                    64
                } else {
                    1
                };
                for x in b.iter_mut().skip(at).take(burst) {
                    *x = rng.next_u64() as u8;
                }
            }
            if rng.next_u64().is_multiple_of(4) {
                b.truncate((rng.next_u64() % b.len() as u64) as usize);
            }
            let store = if t == 0 {
                let d = dir.path().join(format!("n{round}"));
                copy_dir(&n, &d);
                std::fs::write(d.join("log"), &b).unwrap();
                d
            } else {
                let f = dir.path().join(format!("m{round}.etch"));
                std::fs::write(&f, &b).unwrap();
                f
            };
            for cmd in [&["verify"][..], &["dump"], &["stats"]] {
                let mut args: Vec<&str> = cmd.to_vec();
                args.push(p(&store));
                let (code, _, err) = etch(&args);
                assert!(
                    (0..=2).contains(&code) && !err.contains("panicked"),
                    "{args:?} exit {code}: {err}"
                );
            }
            let out = dir.path().join(format!("r{t}-{round}"));
            let (code, _, err) = etch(&["recover", p(&store), "-o", p(&out)]);
            assert!(code == 0 || code == 1, "recover exit {code}: {err}");
            assert_eq!(
                verify(&out).0,
                0,
                "the recovered store of round {round} verifies"
            );
        }
    }
}

/// `etch export -o -` piped into `etch import -`: the same root; a damaged stream imports
/// nothing, names stdin and the offset, and leaves no temporary file behind.
#[test]
fn export_to_stdout_imports_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    let roots = native_store(&n);
    let out = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["export", p(&n), "-o", "-"])
        .output()
        .expect("export");
    assert!(out.status.success());
    let import = |bytes: &[u8], store: &Path| -> (i32, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etch"))
            .args(["import", "-", "--store", p(store)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("import");
        let mut stdin = child.stdin.take().expect("stdin");
        let bytes = bytes.to_vec();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
        let r = child.wait_with_output().expect("wait");
        writer.join().expect("writer").expect("write");
        (
            r.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    };
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let t = sub.join("t");
    let (code, err) = import(&out.stdout, &t);
    assert_eq!(code, 0, "{err}");
    assert_eq!(root_of(&t).unwrap(), roots[2].to_hex());
    let mut damaged = out.stdout.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 1;
    let fresh = sub.join("fresh");
    let (code, err) = import(&damaged, &fresh);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("etch: stdin: damaged at byte offset "),
        "{err}"
    );
    assert!(!fresh.exists());
    let left: Vec<_> = std::fs::read_dir(&sub)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("t")],
        "temporary files left"
    );
}

/// `tree` with the Value IDs of its first two branch children swapped in its own encoding: a
/// cell sound on its own (stage A) whose children sit under each other's digits.
fn children_swapped(tree: &Cell) -> Cell {
    let ids: Vec<[u8; 32]> = tree
        .refs()
        .iter()
        .filter(|r| r.is_branch())
        .map(|r| r.id().0)
        .take(2)
        .collect();
    let mut enc = tree.encoding().to_vec();
    let at = |id: &[u8; 32]| enc.windows(32).position(|w| w == id).unwrap();
    let (a, b) = (at(&ids[0]), at(&ids[1]));
    enc[a..a + 32].copy_from_slice(&ids[1]);
    enc[b..b + 32].copy_from_slice(&ids[0]);
    etch_formats::decode_cell(enc).unwrap()
}

/// `verify` checks every cell against its children's summaries, the descents beneath them
/// included: a Map whose child trees are swapped (their first keys lie two levels down), an
/// Index of 32-byte keys swapped likewise, an Index whose keys are Blob trees (the key's first
/// bytes are in its first chunk), and a Vector tree with a child of the wrong count. Each is a
/// structure problem at its own record, naming the rule; the same trees read through a
/// resolver (`verify_tree`) break the same rules, and the sound trees beside them pass.
#[test]
fn verify_checks_each_cell_against_its_children() {
    use etch_formats::structure::verify_tree;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let s = NativeStore::create(&path, small_native_options()).unwrap();
    let mut rng = SplitMix64(7);
    let map = Cell::map((0..2000).map(|i| (Cell::long(i), Cell::long(-i))).collect());
    let keys = |n: usize, len: usize, rng: &mut SplitMix64| -> Vec<(Cell, Cell)> {
        (0..n as i64)
            .map(|i| (Cell::blob(&rng.bytes(len)), Cell::long(i)))
            .collect()
    };
    let index = Cell::index(keys(2000, 32, &mut rng)).unwrap();
    let long_keys = Cell::index(keys(40, 5000, &mut rng)).unwrap();
    let strings = |n: usize| -> Vec<Cell> {
        (0..n)
            .map(|i| Cell::string(&format!("element {i:>20}")))
            .collect()
    };
    let vector = Cell::vector(strings(32));
    let short = Cell::vector(strings(15));
    let mut vector_enc = vector.encoding().to_vec();
    let second = vector.refs()[1].id().0;
    let at = vector_enc.windows(32).position(|w| w == second).unwrap();
    vector_enc[at..at + 32].copy_from_slice(&short.id().0);
    let bad_vector = etch_formats::decode_cell(vector_enc).unwrap();

    let mut bad = Vec::new();
    for (sound, broken, rule) in [
        (&map, children_swapped(&map), "H5"),
        (&index, children_swapped(&index), "I5"),
        (&long_keys, children_swapped(&long_keys), "I5"),
        (&vector, bad_vector, "VC3"),
    ] {
        s.set_root(sound).unwrap();
        s.put(&short).unwrap();
        s.put(&broken).unwrap();
        s.set_root_id(Some(*broken.id())).unwrap();
        let e = verify_tree(&broken, &s).unwrap_err();
        assert_eq!(e.rule.name(), rule, "{e}");
        verify_tree(sound, &s).unwrap();
        bad.push((broken.id().to_hex(), rule));
    }
    drop(s);

    let (code, v) = verify(&path);
    assert_eq!(code, 1, "{v}");
    let found: Vec<(String, String)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["kind"], "structure", "{p}");
            let detail = p["detail"].as_str().unwrap();
            let rule = detail
                .trim_start_matches("rule ")
                .split(':')
                .next()
                .unwrap();
            (p["id"].as_str().unwrap().to_string(), rule.to_string())
        })
        .collect();
    let mut want: Vec<(String, String)> = bad
        .iter()
        .map(|(id, r)| (id.clone(), r.to_string()))
        .collect();
    want.sort();
    let mut found = found;
    found.sort();
    assert_eq!(found, want, "{v}");
    let dumped = dump(&path);
    for p in v["problems"].as_array().unwrap() {
        let at = dumped
            .iter()
            .find(|r| Some(r.1.as_str()) == p["id"].as_str())
            .unwrap();
        assert_eq!(p["offset"].as_u64(), Some(at.0), "{p}");
    }
}

/// `map` with its first two inline children swapped in its own encoding: stage A holds, the
/// stage-B rules between the cell and its inline children do not.
fn inline_children_swapped(map: &Cell) -> Vec<u8> {
    let inline: Vec<Vec<u8>> = map
        .refs()
        .iter()
        .filter_map(|r| match r {
            etch_formats::Ref::Embedded(c) => Some(c.encoding().to_vec()),
            etch_formats::Ref::Branch(_) => None,
        })
        .filter(|e| e.len() > 2)
        .take(2)
        .collect();
    let enc = map.encoding();
    let at = |e: &[u8]| enc.windows(e.len()).position(|w| w == e).unwrap();
    let (a, b) = (at(&inline[0]), at(&inline[1]));
    assert!(a + inline[0].len() <= b);
    let mut out = enc[..a].to_vec();
    out.extend_from_slice(&inline[1]);
    out.extend_from_slice(&enc[a + inline[0].len()..b]);
    out.extend_from_slice(&inline[0]);
    out.extend_from_slice(&enc[b + inline[1].len()..]);
    out
}

/// `verify` leaves the stage-B rules out of its first decoding of each record and applies them
/// in the walk, so each must still catch a cell whose inline children break them: a root whose
/// branches are all stored (checked against their summaries), a root with a branch missing
/// (checked against its inline children alone, as decoding does), and a record no root
/// reaches (decoded again with every rule). The first two are structure problems at their
/// records, the last an encoding problem, as before. And a cell inline in a record is checked
/// against its own branch children's summaries, which no decoding can see: before, verify
/// missed a Vector tree inline in a Vector whose branch child had the wrong count.
#[test]
fn verify_applies_stage_b_rules_to_inline_children() {
    use etch_formats::decode_checked_cell;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let s = NativeStore::create(&path, small_native_options()).unwrap();
    let small = |n: i64, big: i64| {
        Cell::map(
            (0..n)
                .map(|i| {
                    let v = if i < big {
                        Cell::string(&format!("{n} {}", "x".repeat(200 + i as usize)))
                    } else {
                        Cell::long(-i)
                    };
                    (Cell::long(i), v)
                })
                .collect(),
        )
    };
    // A Map inline in a Vector, its own inline children swapped: the rule broken is the
    // inline cell's, which the walk reaches only by looking inside the record's cell.
    let inner = small(16, 0);
    assert!(inner.is_embedded());
    let outer = Cell::vector(vec![inner.clone(), Cell::string(&"y".repeat(300))]);
    let mut nested = outer.encoding().to_vec();
    let at = nested
        .windows(inner.len())
        .position(|w| w == inner.encoding())
        .unwrap();
    nested[at..at + inner.len()].copy_from_slice(&inline_children_swapped(&inner));
    let mut cases = Vec::new();
    for (map, store_branches, root) in [
        (small(24, 2), true, true),
        (small(26, 2), false, true),
        (small(22, 0), true, false),
    ] {
        assert!(map.refs().iter().filter(|r| !r.is_branch()).count() >= 2);
        cases.push((inline_children_swapped(&map), map, store_branches, root));
    }
    cases.push((nested, outer, true, true));
    let mut bad = Vec::new();
    for (enc, sound, store_branches, root) in cases {
        let e = etch_formats::decode_cell(enc.clone()).unwrap_err();
        let broken = decode_checked_cell(enc.clone()).unwrap();
        if store_branches {
            s.put(&sound).unwrap();
        }
        assert!(s.put_record(broken.id(), &enc).unwrap());
        if root {
            s.set_root_id(Some(*broken.id())).unwrap();
        }
        bad.push((broken, e, store_branches, root));
    }
    // A Vector tree inline in a Vector, one of its branch children replaced by a Vector of
    // the wrong count: decoding cannot see it (the child is not at hand); the walk checks the
    // inline cell against its branch children's summaries.
    let strings = |n: usize| -> Vec<Cell> {
        (0..n)
            .map(|i| Cell::string(&format!("element {i:>20}")))
            .collect()
    };
    let tree = Cell::vector(strings(32));
    assert!(tree.is_embedded() && tree.refs().iter().all(|r| r.is_branch()));
    let short = Cell::vector(strings(15));
    let outer = Cell::vector(vec![tree.clone(), Cell::string(&"z".repeat(300))]);
    let mut enc = outer.encoding().to_vec();
    let second = tree.refs()[1].id().0;
    let at = enc.windows(32).position(|w| w == second).unwrap();
    enc[at..at + 32].copy_from_slice(&short.id().0);
    let wrong_count = etch_formats::decode_cell(enc.clone()).unwrap();
    s.put(&outer).unwrap();
    s.put(&short).unwrap();
    assert!(s.put_record(wrong_count.id(), &enc).unwrap());
    s.set_root_id(Some(*wrong_count.id())).unwrap();
    s.set_root_id(None).unwrap();
    drop(s);

    let (code, v) = verify(&path);
    assert_eq!(code, 1, "{v}");
    let dumped = dump(&path);
    let problems = v["problems"].as_array().unwrap();
    let id = wrong_count.id().to_hex();
    let record = dumped.iter().find(|r| r.1 == id).unwrap().0;
    let p = problems
        .iter()
        .find(|p| p["id"].as_str() == Some(&id))
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(p["kind"], "structure", "{p}");
    assert_eq!(p["offset"].as_u64(), Some(record), "{p}");
    assert!(
        p["detail"].as_str().unwrap().starts_with("rule VC3: "),
        "{p}"
    );
    let mut counted = bad.len() + 1;
    for (broken, e, store_branches, root) in &bad {
        let id = broken.id().to_hex();
        let record = dumped.iter().find(|r| r.1 == id).unwrap().0;
        let mine: Vec<&Value> = problems
            .iter()
            .filter(|p| p["id"].as_str() == Some(&id))
            .collect();
        assert_eq!(mine.len(), 1, "{id}: {v}");
        let p = mine[0];
        if *root {
            assert_eq!(p["kind"], "structure", "{p}");
            assert_eq!(p["offset"].as_u64(), Some(record), "{p}");
            let detail = format!("rule {}: {}", e.rule.name(), e.detail);
            assert_eq!(p["detail"].as_str(), Some(detail.as_str()), "{p}");
        } else {
            assert_eq!(p["kind"], "encoding", "{p}");
            assert_eq!(
                p["detail"].as_str(),
                Some(format!("not a canonical cell: {e}").as_str()),
                "{p}"
            );
        }
        if !store_branches {
            fn branches(c: &Cell) -> usize {
                c.refs()
                    .iter()
                    .map(|r| match r {
                        etch_formats::Ref::Embedded(c) => branches(c),
                        etch_formats::Ref::Branch(_) => 1,
                    })
                    .sum()
            }
            let branches = branches(broken);
            assert!(branches > 0);
            let missing = problems
                .iter()
                .filter(|p| p["kind"] == "missing" && p["offset"].as_u64() == Some(record))
                .count();
            assert_eq!(missing, branches, "{v}");
            counted += branches;
        }
    }
    assert_eq!(problems.len(), counted, "{v}");
}
