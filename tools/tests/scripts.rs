//! Scripts (`etch eval -`, a piped shell, `.read`): each top-level form has its own step budget,
//! an error names the line and column of the form that failed and how many completed before
//! it, and the exit code says whether anything failed.

mod common;

use common::{etch, etch_with_input};

/// A script of `n` forms `(store [i])`, with form `bad` (from 1) replaced by an undeclared call.
fn store_script(n: usize, bad: Option<usize>) -> String {
    let mut s = String::with_capacity(n * 16);
    for i in 1..=n {
        if Some(i) == bad {
            s.push_str("(no-such-function 1)\n");
        } else {
            s.push_str(&format!("(store [{i}])\n"));
        }
    }
    s
}

#[test]
fn a_long_script_of_stores_completes_form_by_form() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    let store = dir.path().join("s.etch");
    let store = store.to_str().expect("utf-8");
    // Together these take far more steps than one form may; each form has its own budget.
    let n = 100_000;
    let run = etch_with_input(
        &home,
        &["eval", "--create", "--store", store, "-"],
        &store_script(n, None),
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(run.out.len(), 67, "the last value ID: {}", run.out);
    let count = etch(&home, &["eval", "--store", store, "(count (root [:data]))"]);
    assert_eq!(count.out, format!("{n}\n"));
    // The script's writes were committed together (at most a second apart), not one commit
    // (and one root's worth of new cells) per form: a few commits and a store of a few MB,
    // where a commit per form made 100,001 commits and about 270 MB.
    let info = etch(&home, &["info", "--json", store]);
    let v: serde_json::Value = serde_json::from_str(&info.out).expect("info JSON");
    let commits = v["commits"].as_u64().expect("commits");
    assert!((1..=120).contains(&commits), "{commits} commits");
    let size = v["file_size"].as_u64().expect("file_size");
    assert!(size < 40 << 20, "{size} bytes");
}

#[test]
fn a_failing_form_stops_the_script_and_says_where() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    let store = dir.path().join("s.etch");
    let store = store.to_str().expect("utf-8");
    let run = etch_with_input(
        &home,
        &["eval", "--create", "--store", store, "-"],
        &store_script(10_000, Some(5_000)),
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.out, "");
    assert_eq!(
        run.err,
        "Exception: :UNDECLARED no-such-function\n  in the form at line 5000, column 0 \
         (form 5000 of 10000); the 4999 form(s) before it completed, and what they wrote is \
         committed\n"
    );
    // What the forms before it stored is there; nothing after it ran.
    let count = etch(&home, &["eval", "--store", store, "(count (root [:data]))"]);
    assert_eq!(count.out, "4999\n");
    // The same as JSON, for scripts that drive etch.
    let run = etch_with_input(
        &home,
        &["eval", "--json", "-"],
        "(def a 1)\n  (+ a\n     :x)\n(def b 2)\n",
    );
    assert_eq!(run.code, 1);
    let v: serde_json::Value = serde_json::from_str(&run.out).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["code"], "CAST");
    assert_eq!(
        (v["line"].as_u64(), v["column"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (v["completed"].as_u64(), v["forms"].as_u64()),
        (Some(1), Some(3))
    );
    let ok = etch(&home, &["eval", "--json", "(+ 1 2)"]);
    assert_eq!(
        (ok.code, ok.out.as_str()),
        (0, "{\"ok\":true,\"value\":\"3\"}\n")
    );
}

#[test]
fn max_steps_sets_each_forms_budget() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    let deep = "(+ 1 (+ 1 (+ 1 (+ 1 (+ 1 (+ 1 (+ 1 1)))))))";
    let run = etch(&home, &["eval", deep]);
    assert_eq!((run.code, run.out.as_str()), (0, "8\n"));
    let run = etch(&home, &["eval", "--max-steps", "5", deep]);
    assert_eq!(run.code, 1);
    assert_eq!(run.err, "Exception: :JUICE Query step limit exceeded\n");
    // The budget is per form: each of these fits, all together would not.
    let run = etch_with_input(
        &home,
        &["eval", "--max-steps", "60", "-"],
        &format!("{deep}\n{deep}\n{deep}\n"),
    );
    assert_eq!((run.code, run.out.as_str()), (0, "8\n"), "{}", run.err);
}

#[test]
fn a_piped_shell_exits_1_after_an_error_and_reads_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    let store = dir.path().join("s.etch");
    let store = store.to_str().expect("utf-8");
    let run = etch_with_input(&home, &["shell", "--create", "--store", store], "(+ 1 2)\n");
    assert_eq!((run.code, run.out.as_str()), (0, "=> 3\n"), "{}", run.err);
    let run = etch_with_input(&home, &["shell", "--store", store], "(+ 1 :a)\n(+ 2 2)\n");
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.out.ends_with("=> 4\n"),
        "the shell reads on: {}",
        run.out
    );
    assert_eq!(run.err, "etch: 1 input(s) failed\n");
    // .read FILE: the forms in order, the last value shown; stops at the first error.
    let file = dir.path().join("script.cvx");
    std::fs::write(&file, "(def x 40)\n\n(+ x 2)\n").expect("write");
    let input = format!(".read {}\n", file.display());
    let run = etch_with_input(&home, &["shell", "--store", store], &input);
    assert_eq!((run.code, run.out.as_str()), (0, "=> 42\n"), "{}", run.err);
    std::fs::write(&file, "(def x 40)\n(+ x :y)\n(def z 1)\n").expect("write");
    let run = etch_with_input(&home, &["shell", "--store", store], &input);
    assert_eq!(run.code, 1);
    assert!(
        run.out.contains(&format!(
            "in {} at line 2, column 0 (form 2 of 3); the 1 form(s) before it completed",
            file.display()
        )),
        "{}",
        run.out
    );
}

#[test]
fn a_piped_shell_commits_its_inputs_together_and_prints_only_what_is_committed() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    let store = dir.path().join("s.etch");
    let store = store.to_str().expect("utf-8");
    // A script piped in: one result per input, but a few commits, not one per input.
    let n = 20_000;
    let run = etch_with_input(
        &home,
        &["shell", "--create", "--store", store],
        &store_script(n, None),
    );
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(run.out.lines().count(), n, "one result per input");
    let count = etch(&home, &["eval", "--store", store, "(count (root [:data]))"]);
    assert_eq!(count.out, format!("{n}\n"));
    let info = etch(&home, &["info", "--json", store]);
    let v: serde_json::Value = serde_json::from_str(&info.out).expect("info JSON");
    let commits = v["commits"].as_u64().expect("commits");
    assert!(
        (1..=60).contains(&commits),
        "{commits} commits for {n} inputs"
    );

    // A program that waits for each answer gets it while the pipe stays open, and an answer
    // means the write is committed: another process reading the store sees it.
    let mut shell = std::process::Command::new(common::ETCH)
        .args(["shell", "--store", store])
        .env("ETCH_HOME", &home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("shell");
    let mut input = shell.stdin.take().expect("stdin");
    let mut output = std::io::BufReader::new(shell.stdout.take().expect("stdout"));
    for i in 1..=2 {
        use std::io::{BufRead, Write};
        writeln!(input, "(store [:extra {i}])").expect("write");
        input.flush().expect("flush");
        let mut answer = String::new();
        output
            .read_line(&mut answer)
            .expect("the answer, with stdin still open");
        assert!(
            answer.starts_with("=> 0x"),
            "answer to input {i}: {answer:?}"
        );
        let seen = etch(&home, &["eval", "--store", store, "(count (root [:data]))"]);
        assert_eq!(seen.out, format!("{}\n", n + i), "{}", seen.err);
    }
    drop(input);
    assert!(shell.wait().expect("wait").success());
}
