//! The `etch` binary as users and scripts call it: `encode`, `decode`, errors, exit codes, help.

mod common;

use etch_tests::{encoding_rows, row_body};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `etch` with `args`, feeding `input` on stdin; returns (exit code, stdout).
fn etch(args: &[&str], input: &str) -> (i32, String) {
    let home = tempfile::tempdir().expect("temp Etch directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .env("ETCH_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etch");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 output"),
    )
}

#[test]
fn encode_cells_matches_every_vector() {
    // Every row whose text reads as the value (records print as maps) or is a generator.
    let rows: Vec<_> = encoding_rows()
        .into_iter()
        .filter(|r| etch_tests::build_record_row(&r.name).is_none() && r.branches.is_some())
        .collect();
    let input: String = rows.iter().map(|r| format!("{}\n", r.text)).collect();
    let (code, out) = etch(&["encode", "--cells"], &input);
    assert_eq!(code, 0, "{out}");
    let mut expected = String::new();
    for r in &rows {
        expected.push_str(&format!("{} {}\n", r.hash, hex::encode(&r.encoding)));
        for b in r.branches.iter().flatten() {
            expected.push_str(&format!(
                "  {} {}\n",
                etch_formats::ValueId::of(b),
                hex::encode(b)
            ));
        }
    }
    assert!(
        out == expected,
        "etch encode --cells output differs from the vectors"
    );
}

#[test]
fn decode_prints_every_vector() {
    let rows: Vec<_> = encoding_rows()
        .into_iter()
        .filter(|r| !r.text.starts_with("gen:"))
        .collect();
    let input: String = rows
        .iter()
        .map(|r| format!("{}\n", hex::encode(row_body(r))))
        .collect();
    let (code, out) = etch(&["decode"], &input);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), rows.len());
    for (line, r) in lines.iter().zip(&rows) {
        assert_eq!(*line, r.text, "{}", r.name);
    }
}

#[test]
fn bad_lines_report_and_continue() {
    let (code, out) = etch(&["encode"], "1\n{:a\n\"x\"\n");
    assert_eq!(code, 1);
    let one = etch_formats::ValueId::of(&[0x11, 0x01]);
    let x = etch_formats::ValueId::of(&[0x30, 0x01, 0x78]);
    assert_eq!(
        out,
        format!(
            "{one} 1101\nerror: syntax: Parse error at 1:3: unexpected end of input (unclosed '{{' at 1:0)\n{x} 300178\n"
        )
    );
    let (code, out) = etch(
        &["decode"],
        "1101\nzz\n82021101110211031104\n80012011\n10\n",
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(lines[1].starts_with("error: hex: "), "{}", lines[1]);
    assert_eq!(
        lines[2],
        "error: format: bad format at byte 6: keys not in strictly increasing Value ID order (H1)"
    );
    assert_eq!(
        lines[3],
        "error: format: bad format at byte 4: input ends inside a ref (G2)"
    );
    assert_eq!(lines[4], "0");
    // A body whose branch was not supplied decodes but cannot print.
    let s = etch_formats::Cell::string(&"a".repeat(200));
    let partial = format!("800120{}\n", s.id());
    let (code, out) = etch(&["decode"], &partial);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!("error: missing: cell {} was not supplied\n", s.id())
    );
}

#[test]
fn help_lists_subcommands() {
    let (code, out) = etch(&["--help"], "");
    assert_eq!(code, 0);
    for sub in ["encode", "decode"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub} missing from:\n{out}"
        );
    }
}

#[test]
fn store_commands() {
    let small = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/etch/small.etch");
    let small = small.to_str().expect("utf-8 path");
    let (code, out) = etch(&["info", "--json", small], "");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "{\"format\":\"cad047\",\"version\":1,\"root\":\"df7c7e21435b0a1804e8f4e952c74fa6519998b33c188915081a6b5cea43fecd\",\"cells\":23,\"length\":538413,\"file_size\":1114112}\n"
    );
    let root = "df7c7e21435b0a1804e8f4e952c74fa6519998b33c188915081a6b5cea43fecd";
    let (code, out) = etch(&["get", "--encoding", small, root], "");
    assert_eq!(code, 0);
    assert_eq!(out, format!("{root} 800220bc41f9c0c93277bf9f1cfc143dc5df26b4bdfb7ad0a536559b6d907b22dd6b172016d83be976dc03a0991c8354655db3919d9ab07b007877fad3dd04fe91632e32\n"));
    let (code, out) = etch(&["get", small, root], "");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("[[0 1 2 3 ") && out.contains(":k999 999"),
        "{}",
        &out[..100]
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.etch");
    let path = path.to_str().expect("utf-8 path");
    let (code, out) = etch(&["put", path], "[1 2 3]\n{:a\n\"hello\"\n");
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "b95de281d42f565cc3551b3ef7070f89c2290789bc63ce28fcc7969ac2fba4ae"
    );
    assert!(lines[1].starts_with("error: syntax: "));
    let (code, out) = etch(&["get", path, lines[0]], "");
    assert_eq!((code, out.as_str()), (0, "[1 2 3]\n"));
    let (code, out) = etch(&["info", "--json", path], "");
    assert_eq!(code, 0);
    // `etch put` keeps what it stores in the root's :data (issue 14): a root is set.
    assert!(!out.contains("\"root\":null"), "{out}");
    let (code, _) = etch(&["get", path, &"00".repeat(32)], "");
    assert_eq!(code, 1);
}

/// Runs `etch` and returns (exit code, stdout, stderr).
fn etch_err(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("temp Etch directory");
    etch_in(home.path(), args, "")
}

/// Runs `etch` with its Etch directory in `home`, feeding `input`: (exit code, stdout, stderr).
fn etch_in(home: &std::path::Path, args: &[&str], input: &str) -> (i32, String, String) {
    let r = common::etch_with_input(home, args, input);
    (r.code, r.out, r.err)
}

#[test]
fn eval_expressions_and_stored_values() {
    assert_eq!(etch(&["eval", "(+ 1 2)"], ""), (0, "3\n".to_string()));
    assert_eq!(
        etch(&["eval", "-"], "(def x [1 2 3])\n(count x)\n"),
        (0, "3\n".to_string())
    );
    // The spec's example hash.
    assert_eq!(
        etch(&["eval", "(value-id 42)"], ""),
        (
            0,
            "0xd69a280cb0677a24d92966b1c24d5d0bf1afbcd73e1d949d8f2cb8a966cb86b4\n".to_string()
        )
    );
    let (code, out, err) = etch_err(&["eval", "(count 1 2)"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "",
            "Exception: :ARITY count requires arity 1 but called with: 2\n"
        )
    );
    let (code, _, err) = etch_err(&["eval", "[1 2"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Exception: :SYNTAX Parse error at 1:4: unexpected end of input (unclosed '[' at 1:0)\n"
    );
    let small = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/etch/small.etch");
    let small = small.to_str().expect("utf-8 path");
    let root = "0xdf7c7e21435b0a1804e8f4e952c74fa6519998b33c188915081a6b5cea43fecd";
    let q = |e: &str| etch(&["eval", "--read-only", "--store", small, e], "");
    assert_eq!(
        q(&format!("(count (fetch {root}))")),
        (0, "2\n".to_string())
    );
    assert_eq!(
        q(&format!("(count (first (fetch {root})))")),
        (0, "1000\n".to_string())
    );
    assert_eq!(
        q(&format!("(nth (first (fetch {root})) 777)")),
        (0, "777\n".to_string())
    );
    assert_eq!(
        q(&format!("(get (second (fetch {root})) :k42)")),
        (0, "42\n".to_string())
    );
    assert_eq!(
        q(&format!("(fetch 0x{})", "00".repeat(32))),
        (0, "nil\n".to_string())
    );
    let (code, _, err) = etch_err(&["eval", "--read-only", "--store", small, "(fetch 0x01)"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "Exception: :ARGUMENT Value ID must be a 32-byte Blob\n")
    );
}

#[test]
fn native_store_commands_and_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("n.etch");
    let path = path.to_str().expect("utf-8 path");
    let (code, out) = etch(&["put", path], "[1 2 3]\n\"hello\"\n");
    assert_eq!(code, 0, "{out}");
    assert!(
        std::path::Path::new(path).join("FORMAT").exists(),
        "new stores are native"
    );
    assert_eq!(etch(&["eval", "--store", path, "(store [1 2])"], "").0, 0);
    assert_eq!(etch(&["eval", "--store", path, "(store [3 4])"], "").0, 0);
    let (code, out) = etch(&["snapshots", "--json", path], "");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("{\"seq\":1,") && !lines[0].contains("\"root\":null"));
    let at = |seq: &str, e: &str| etch(&["eval", "--store", path, "--snapshot", seq, e], "");
    // The put's two values are in :data from commit 1 on.
    assert_eq!(at("1", "(count (root [:data]))"), (0, "2\n".to_string()));
    assert_eq!(at("2", "(count (root [:data]))"), (0, "3\n".to_string()));
    assert_eq!(at("3", "(count (root [:data]))"), (0, "4\n".to_string()));
    let (code, _, err) = etch_err(&["eval", "--store", path, "--snapshot", "2", "(store 5)"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("Exception: :IO "), "{err}");
    let (code, out) = etch(&["info", path], "");
    assert_eq!(code, 0);
    assert!(out.starts_with("format:      Etch native"), "{out}");
    assert!(out.contains("commits:     3, the last at 20"), "{out}");
    let (code, out) = etch(&["info", "--json", path], "");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("{\"format\":\"native\",\"version\":1,"),
        "{out}"
    );
    assert!(out.contains("\"cells\":"), "{out}");
    // A CAD047 store on request, and no snapshots there.
    let old = dir.path().join("c.etch");
    let old = old.to_str().expect("utf-8 path");
    assert_eq!(etch(&["put", "--format", "cad047", old], "[1]\n").0, 0);
    let (code, out) = etch(&["info", "--json", old], "");
    assert_eq!(code, 0);
    assert!(out.starts_with("{\"format\":\"cad047\","), "{out}");
    let (code, _, err) = etch_err(&["snapshots", old]);
    assert_eq!(code, 1);
    assert!(err.contains("no snapshots"), "{err}");
}

#[test]
fn eval_on_a_store_uses_the_node_key_of_the_etch_directory() {
    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("s.etch");
    let store = store.to_str().unwrap();
    let run = |e: &str| etch_in(home.path(), &["eval", "--create", "--store", store, e], "");
    let (code, out, err) = run("(mkdrive \"h\")");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            "0xf47736700fba922b0894042814813507028da348458782a2c0d1e4b215e30918\n",
            ""
        )
    );
    let key_file = home.path().join("node.key");
    assert_eq!(std::fs::metadata(&key_file).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The next run has the same key, so the same default owner and the same drive; a script
    // from stdin (no terminal) too.
    assert_eq!(run("(drives)").1, "[\"h\"]\n");
    let (code, out, _) = etch_in(
        home.path(),
        &["eval", "--store", store, "-"],
        "(put \"h/a.txt\" \"A\")\n(read-file \"h/a.txt\")\n",
    );
    assert_eq!((code, out.as_str()), (0, "0x41\n"));
    // `etch eval` does not publish NodeInfo; only the drive's owner slot is in the root.
    assert_eq!(run("(keys (root))").1, "[:fs]\n");
    // A key file of the wrong size is an error, and is left as it is.
    std::fs::write(&key_file, b"short").unwrap();
    let (code, out, err) = run("(drives)");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.starts_with("etch: node key: "), "{err}");
    assert!(
        err.contains("a node key is 32 bytes, this file has 5"),
        "{err}"
    );
    assert_eq!(std::fs::read(&key_file).unwrap(), b"short");
}

/// A store held by a running writer (here a shell reading a script from a pipe that stays
/// open) cannot be opened for writing by another process: a one-line error naming the store
/// once, exit 1. A command that can work read-only reads beside the writer, and says so.
#[test]
fn a_locked_store_is_refused_with_one_clear_line() {
    let home = tempfile::tempdir().expect("temp Etch directory");
    let store = home.path().join("locked");
    let store_arg = store.to_str().expect("utf-8 path");
    let mut holder = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["shell", "--create", "--store", store_arg])
        .env("ETCH_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the holder");
    let mut holder_in = holder.stdin.take().expect("stdin");
    holder_in.write_all(b"(store 1)\n").expect("write");
    // The holder has the lock once it has answered.
    let mut out = holder.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !seen.contains(&b'\n') {
        let n = std::io::Read::read(&mut out, &mut buf).expect("read");
        assert!(n > 0, "the holder ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    let (code, stdout, stderr) = etch_in(home.path(), &["put", store_arg], "2\n");
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        format!(
            "etch: {store_arg}: the store is locked by another writer (an etch shell, serve or \
             writing command); close it and retry (commands that only read work meanwhile)\n"
        )
    );
    let (code, stdout, stderr) = etch_in(
        home.path(),
        &[
            "eval",
            "--store",
            store_arg,
            "(store \"a string too long to embed\")",
        ],
        "",
    );
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        format!(
            "etch: {store_arg}: another process is writing to this store; opened read-only \
             beside it (reading works; writing fails until that process closes the store)\n\
             Exception: :IO the store is open read-only\n"
        )
    );
    let (code, stdout, _) = etch_in(home.path(), &["eval", "--store", store_arg, "(+ 1 2)"], "");
    assert_eq!((code, stdout.as_str()), (0, "3\n"));
    drop(holder_in);
    assert!(holder.wait().expect("wait").success());
}
