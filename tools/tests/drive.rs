//! `etch drive`: the commands as users call them, and the whole-tree round trip — a generated
//! folder tree (in release builds ≥ 10,000 files, ≥ 1 GiB, nested, with empty files and
//! duplicates) imported and exported byte for byte, and imported again writing nothing new.

use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `etch drive ARGS --store STORE` with the Etch directory `home`: (exit code, stdout,
/// stderr). A command that writes makes the store where none is yet (--create).
fn drive(home: &Path, store: &Path, args: &[&str], stdin: Option<&Path>) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etch"));
    c.arg("drive").args(args);
    if !store.exists() {
        c.arg("--create");
    }
    c.arg("--store")
        .arg(store)
        .env("ETCH_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match stdin {
        Some(p) => c.stdin(std::fs::File::open(p).expect("stdin file")),
        None => c.stdin(Stdio::null()),
    };
    let out = c.output().expect("run etch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(home: &Path, store: &Path, args: &[&str]) -> String {
    let (code, out, err) = drive(home, store, args, None);
    assert_eq!(code, 0, "etch drive {args:?}: {err}");
    out
}

fn fails(home: &Path, store: &Path, args: &[&str]) -> String {
    let (code, _, err) = drive(home, store, args, None);
    assert_eq!(code, 1, "etch drive {args:?} should fail");
    err
}

/// Deterministic bytes (splitmix64 of `seed`).
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

#[test]
fn commands_with_exact_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, store) = (tmp.path().join("home"), tmp.path().join("s"));
    let (h, s) = (home.as_path(), store.as_path());
    assert_eq!(
        ok(h, s, &["mkdrive", "docs"]).trim(),
        "f47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918"
    );
    assert_eq!(ok(h, s, &["drives"]), "docs\n");
    ok(h, s, &["mkdir", "docs/notes"]);
    let file = tmp.path().join("a.txt");
    std::fs::write(&file, b"Hello").unwrap();
    ok(h, s, &["put", file.to_str().unwrap(), "docs/notes/a.txt"]);
    assert_eq!(ok(h, s, &["cat", "docs/notes/a.txt"]), "Hello");
    let ls = ok(h, s, &["ls", "docs/notes"]);
    assert!(ls.starts_with("-              5 "), "{ls}");
    assert!(ls.ends_with(" a.txt\n"), "{ls}");
    // The shell sees the same drive.
    let shell = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["eval", "(read-file \"docs/notes/a.txt\")", "--store"])
        .arg(s)
        .env("ETCH_HOME", h)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&shell.stdout), "0x48656c6c6f\n");

    ok(
        h,
        s,
        &["meta", "docs/notes/a.txt", "mime", "\"text/plain\""],
    );
    assert_eq!(
        ok(h, s, &["meta", "docs/notes/a.txt"]),
        "{:mime \"text/plain\"}\n"
    );
    ok(h, s, &["mv", "docs/notes/a.txt", "docs/b.txt"]);
    assert_eq!(ok(h, s, &["cat", "docs/b.txt"]), "Hello");
    assert_eq!(
        ok(h, s, &["meta", "docs/b.txt"]),
        "{:mime \"text/plain\"}\n"
    );
    assert_eq!(
        fails(h, s, &["cat", "docs/notes/a.txt"]),
        "etch: No such file or directory: docs/notes/a.txt\n"
    );
    ok(h, s, &["rm", "docs/b.txt"]);
    assert_eq!(
        fails(h, s, &["rm", "docs/b.txt"]),
        "etch: No such file or directory: docs/b.txt\n"
    );
    assert_eq!(
        fails(h, s, &["rm", "docs"]),
        "etch: Cannot delete drive root\n"
    );
    assert_eq!(
        ok(h, s, &["purge", "docs", "--older-than", "0"]),
        "removed 2 tombstones older than 0 days from docs\n"
    );
    // From stdin, encrypted; the stored bytes are not the plaintext; a wrong key is refused.
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, b"the secret formula ".repeat(1000)).unwrap();
    let (code, _, err) = drive(
        h,
        s,
        &["put", "--encrypt", "-", "docs/secret"],
        Some(&secret),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        ok(h, s, &["cat", "docs/secret"]).as_bytes(),
        std::fs::read(&secret).unwrap()
    );
    let ls = ok(h, s, &["ls", "docs"]);
    assert!(
        ls.contains("          19000 ") && ls.ends_with(" secret  (encrypted)\n"),
        "{ls}"
    );
    let log = std::fs::read(store.join("log")).unwrap_or_default();
    assert!(!log.windows(18).any(|w| w == b"the secret formula"));
    let other = tmp.path().join("other.key");
    std::fs::write(&other, [9u8; 32]).unwrap();
    let err = fails(
        h,
        s,
        &["cat", "docs/secret", "--key-file", other.to_str().unwrap()],
    );
    assert!(
        err.starts_with("etch: docs/secret: wrong key: the file was encrypted with key "),
        "{err}"
    );
    // Another owner's drive cannot be written; a URI names the same drive.
    let err = fails(
        h,
        s,
        &["mkdir", &format!("dlfs:{}/docs/x", "11".repeat(32))],
    );
    assert!(
        err.starts_with("etch: Not authorised to write drive of owner 0x1111"),
        "{err}"
    );
    assert_eq!(ok(h, s, &["ls", "docs"]), ls);
}

/// Writes the generated tree; returns (files, bytes, bytes of distinct contents). The patched
/// copy counts as wholly duplicate (it shares all but one path of its tree).
fn generate(
    root: &Path,
    small_files: usize,
    big_files: usize,
    big_bytes: usize,
) -> (usize, u64, u64) {
    // Small files: nested three deep, every 10th empty, every 7th a copy of an earlier one.
    let jobs: Vec<(PathBuf, u64, usize)> = (0..small_files)
        .map(|i| {
            let dir = root.join(format!(
                "d{:02}/e{}/f{}",
                i % 20,
                (i / 20) % 10,
                (i / 200) % 3
            ));
            let path = dir.join(format!("file-{i:05}.dat"));
            let size = if i % 10 == 0 { 0 } else { (i * 7919) % 40_000 };
            let seed = if i % 7 == 3 { (i - 3) as u64 } else { i as u64 };
            let size = if i % 7 == 3 {
                ((i - 3) * 7919) % 40_000 * usize::from((i - 3) % 10 != 0)
            } else {
                size
            };
            (path, seed, size)
        })
        .collect();
    // Large files: pairs of identical ones, and a last one equal to the first but for one
    // changed byte in its middle (shares all chunks but one path).
    let mut big: Vec<(PathBuf, u64, usize)> = (0..big_files)
        .map(|j| {
            (
                root.join(format!("big/{j:02}.bin")),
                1_000_000 + (j / 2) as u64,
                big_bytes,
            )
        })
        .collect();
    big.push((root.join("big/patched.bin"), 1_000_000, big_bytes));
    std::fs::create_dir_all(root.join("big")).unwrap();
    std::fs::create_dir_all(root.join("empty/dir/inside")).unwrap();
    let all: Vec<_> = jobs.iter().chain(big.iter()).collect();
    all.par_iter().for_each(|(path, seed, size)| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut data = bytes(*seed, *size);
        if path.ends_with("patched.bin") {
            data[big_bytes / 2] ^= 1;
        }
        std::fs::write(path, data).unwrap();
    });
    let total: u64 = all.iter().map(|(_, _, s)| *s as u64).sum();
    let mut seen = std::collections::HashSet::new();
    let distinct: u64 = all
        .iter()
        .filter(|(_, seed, _)| seen.insert(*seed))
        .map(|(_, _, s)| *s as u64)
        .sum();
    (all.len(), total, distinct)
}

/// Compares two trees byte for byte: names, kinds, contents.
fn assert_same_tree(a: &Path, b: &Path) -> usize {
    fn list(d: &Path, rel: &Path, out: &mut Vec<(PathBuf, bool)>) {
        let mut entries: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            let is_dir = e.file_type().unwrap().is_dir();
            out.push((r.clone(), is_dir));
            if is_dir {
                list(&e.path(), &r, out);
            }
        }
    }
    let (mut la, mut lb) = (Vec::new(), Vec::new());
    list(a, Path::new(""), &mut la);
    list(b, Path::new(""), &mut lb);
    assert!(la == lb, "the trees list different entries");
    la.par_iter().filter(|(_, d)| !d).for_each(|(rel, _)| {
        let (mut fa, mut fb) = (
            std::fs::File::open(a.join(rel)).unwrap(),
            std::fs::File::open(b.join(rel)).unwrap(),
        );
        let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        loop {
            let n = fa.read(&mut ba).unwrap();
            let mut m = 0;
            while m < n {
                let k = fb.read(&mut bb[m..n]).unwrap();
                assert!(k > 0, "{} is shorter", rel.display());
                m += k;
            }
            assert!(ba[..n] == bb[..n], "{} differs", rel.display());
            if n == 0 {
                assert_eq!(fb.read(&mut bb).unwrap(), 0, "{} is longer", rel.display());
                break;
            }
        }
    });
    la.len()
}

/// The figure after `label` in an import report line.
fn figure(line: &str, label: &str) -> u64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {line}"));
    line[..at]
        .trim_end()
        .rsplit([' ', ','])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{label:?} in {line}"))
}

#[test]
fn a_large_tree_round_trips_byte_for_byte_and_a_second_import_stores_nothing() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (home, store) = (tmp.path().join("home"), tmp.path().join("s"));
    let (h, s) = (home.as_path(), store.as_path());
    let host = tmp.path().join("host");
    // Release builds run the full size; debug builds (10x slower hashing) a smaller tree.
    let (small, big, big_bytes) = if cfg!(debug_assertions) {
        (2_000, 4, 4 << 20)
    } else {
        (10_000, 14, 64 << 20)
    };
    let (files, total, distinct) = generate(&host, small, big, big_bytes);
    if !cfg!(debug_assertions) {
        assert!(
            files >= 10_000 && total >= 1 << 30,
            "{files} files, {total} bytes"
        );
    }
    let generated = started.elapsed();

    let t = Instant::now();
    let out = ok(h, s, &["import", host.to_str().unwrap(), "tree"]);
    let import_time = t.elapsed();
    assert_eq!(figure(&out, "files,"), files as u64, "{out}");
    assert_eq!(figure(&out, "bytes read"), total, "{out}");
    assert_eq!(figure(&out, "files unchanged"), 0, "{out}");
    let stored = figure(&out, "bytes newly stored");
    // Duplicates are stored once (the big files are pairs of copies plus one patched copy, a
    // seventh of the small ones are copies): what is stored is the distinct contents plus the
    // tree cells (under 1 % for big files, a few hundred bytes per small file), no more.
    let overhead = distinct / 100 + files as u64 * 400 + 2 * big_bytes as u64 / 64;
    assert!(stored >= distinct, "{out}: {distinct} distinct bytes");
    assert!(
        stored <= distinct + overhead,
        "{out}: {distinct} distinct bytes"
    );
    assert!(stored < total * 6 / 10 || cfg!(debug_assertions), "{out}");

    let t = Instant::now();
    let exported = tmp.path().join("out");
    let out = ok(h, s, &["export", "tree", exported.to_str().unwrap()]);
    let export_time = t.elapsed();
    assert!(
        out.starts_with(&format!("exported {files} files, ")),
        "{out}"
    );
    assert!(out.contains(&format!(" {total} bytes to ")), "{out}");
    let entries = assert_same_tree(&host, &exported);
    assert!(entries > files, "{entries}");

    let t = Instant::now();
    let out = ok(h, s, &["import", host.to_str().unwrap(), "tree"]);
    let again_time = t.elapsed();
    assert_eq!(figure(&out, "files unchanged"), files as u64, "{out}");
    assert_eq!(figure(&out, "bytes newly stored"), 0, "{out}");
    eprintln!(
        "{files} files, {total} bytes, {stored} stored: generate {:.1} s, import {:.1} s, \
export {:.1} s, re-import {:.1} s, total {:.1} s",
        generated.as_secs_f64(),
        import_time.as_secs_f64(),
        export_time.as_secs_f64(),
        again_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    drop(tmp);
    eprintln!(
        "removed the temporary files in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn an_encrypted_import_exports_with_the_key_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, store) = (tmp.path().join("home"), tmp.path().join("s"));
    let (h, s) = (home.as_path(), store.as_path());
    let host = tmp.path().join("host");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("sub/a"), b"alpha beta gamma delta ".repeat(5000)).unwrap();
    std::fs::write(host.join("empty"), b"").unwrap();
    std::fs::write(host.join("b"), bytes(3, 200_000)).unwrap();
    let out = ok(
        h,
        s,
        &["import", "--encrypt", host.to_str().unwrap(), "vault"],
    );
    assert!(
        out.starts_with("imported 3 files, 2 directories into vault: 315000 bytes read, "),
        "{out}"
    );
    let log = std::fs::read(store.join("log")).unwrap();
    assert!(!log.windows(16).any(|w| w == b"alpha beta gamma"));
    let ls = ok(h, s, &["ls", "vault"]);
    assert_eq!(
        ls.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}", f[0], f[1], f[3..].join(" "))
            })
            .collect::<Vec<_>>(),
        [
            "- 200000 b (encrypted)",
            "- 0 empty (encrypted)",
            "d 1 sub/"
        ]
    );
    let other = tmp.path().join("other.key");
    std::fs::write(&other, [5u8; 32]).unwrap();
    let err = fails(
        h,
        s,
        &[
            "export",
            "vault",
            tmp.path().join("bad").to_str().unwrap(),
            "--key-file",
            other.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains(": wrong key: the file was encrypted with key "),
        "{err}"
    );
    let back = tmp.path().join("back");
    ok(h, s, &["export", "vault", back.to_str().unwrap()]);
    assert_same_tree(&host, &back);
}

/// Issue 19: `etch drive … --connect` does not open the local default store behind the user's
/// back: every subcommand refuses it (exit 2), names the address and says what works instead,
/// and creates nothing.
#[test]
fn drive_commands_refuse_connect() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    for args in [
        vec!["drives"],
        vec!["ls", "home"],
        vec!["cat", "home/a.txt"],
        vec!["mkdrive", "home"],
        vec!["put", "-", "home/a.txt"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_etch"))
            .arg("drive")
            .args(&args)
            .args(["--connect", "127.0.0.1:9"])
            .env("ETCH_HOME", &home)
            .stdin(Stdio::null())
            .output()
            .expect("run etch");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--connect 127.0.0.1:9: etch drive works on a store"),
            "{err}"
        );
        assert!(err.contains("WebDAV"), "{err}");
    }
    let made = std::fs::read_dir(&home).map_or(0, |d| d.count());
    assert_eq!(made, 0, "a local store was created");
}
