//! The real shell driven through a pseudo-terminal, as a person uses it: the line editor,
//! multi-line input, tab completion, errors, history recall across sessions, colour, quitting.

use rexpect::session::PtySession;
use std::process::Command;

const TIMEOUT_MS: u64 = 20_000;
const UP: &str = "\x1b[A";

/// Starts `etch` with `args` on a pseudo-terminal, its Etch directory in `home`.
fn spawn(home: &std::path::Path, args: &[&str], color: bool) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etch"));
    cmd.args(args)
        .env("ETCH_HOME", home)
        .env("TERM", "xterm")
        .env_remove("XDG_DATA_HOME");
    if color {
        cmd.env_remove("NO_COLOR");
    } else {
        cmd.env("NO_COLOR", "1");
    }
    rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawn etch on a pty")
}

/// Types `keys` (the pty writer flushes by itself only at a newline).
fn typ(p: &mut PtySession, keys: &str) {
    p.send(keys).unwrap();
    p.flush().unwrap();
}

#[test]
fn a_session_on_the_default_store() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(home.path(), &[], false);
    p.exp_string("Etch shell on").unwrap();
    p.exp_string("default.etch").unwrap();
    p.exp_string("etch> ").unwrap();

    // A multi-line map literal: the first line leaves a bracket open, so Enter continues.
    p.send_line("(def m {:alpha 1").unwrap();
    p.send_line("        :beta [1 2 3]})").unwrap();
    p.exp_string("=> {:beta [1 2 3],:alpha 1}").unwrap(); // map order: value IDs

    // Tab completes a function name (get-i -> get-in) and a keyword of a session value.
    typ(&mut p, "(get-i\t m [:be\t 2])");
    typ(&mut p, "\r");
    p.exp_string("=> 3").unwrap();

    // An error, shown as the Convex REPL shows it.
    p.send_line("(count 1 2)").unwrap();
    p.exp_string(" Exception: :ARITY count requires arity 1 but called with: 2")
        .unwrap();

    // History: Up recalls the last line.
    typ(&mut p, UP);
    typ(&mut p, "\r");
    p.exp_string(" Exception: :ARITY count requires arity 1 but called with: 2")
        .unwrap();

    // Storing writes the default store; Ctrl-C at the prompt only clears the line.
    p.send_line("(store [1 2 3])").unwrap();
    p.exp_string("=> 0x").unwrap();
    typ(&mut p, "(this is abandoned");
    p.exp_string("(this is abandoned").unwrap();
    p.send_control('c').unwrap();
    // The editor drops unread input when it resets the terminal after Ctrl-C, as a shell does:
    // wait for the fresh prompt before typing on.
    p.exp_string("etch> ").unwrap();
    p.send_line("(= (fetch (value-id [1 2 3])) [1 2 3])")
        .unwrap();
    p.exp_string("=> true").unwrap();
    // The shell published this node's NodeInfo (lattice.md §8.1) with its key from node.key.
    p.send_line("(keys (root))").unwrap();
    p.exp_string("=> [:data :p2p]").unwrap();

    p.send_line(".help get-in").unwrap();
    p.exp_string("(get-in coll ks not-found?)").unwrap();

    // Ctrl-D quits.
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    assert!(home.path().join("default.etch").exists());
    assert!(home.path().join("history").exists());
    assert_eq!(
        std::fs::metadata(home.path().join("node.key"))
            .unwrap()
            .len(),
        32
    );

    // A new session recalls the previous session's history and sees the stored value.
    let mut p = spawn(home.path(), &[], false);
    p.exp_string("etch> ").unwrap();
    typ(&mut p, UP);
    typ(&mut p, "\r");
    p.exp_string("(get-in coll ks not-found?)").unwrap();
    p.send_line("(= (fetch (value-id [1 2 3])) [1 2 3])")
        .unwrap();
    p.exp_string("=> true").unwrap();
    p.send_line(".quit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("c.etch");
    let store = store.to_str().unwrap();
    let mut p = spawn(home.path(), &["shell", "--create", "--store", store], true);
    p.exp_string("etch> ").unwrap();
    p.send_line("(+ 1 2)").unwrap();
    p.exp_string("\x1b[32m=> \x1b[0m3").unwrap();
    p.send_line("(nth [] 0)").unwrap();
    p.exp_string("\x1b[31m Exception: :BOUNDS Index: 0\x1b[0m")
        .unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();

    let mut p = spawn(home.path(), &["shell", "--create", "--store", store], false);
    p.exp_string("etch> ").unwrap();
    p.send_line("(+ 1 2)").unwrap();
    let before = p.exp_string("=> 3").unwrap();
    assert!(
        !before.contains("\x1b[32m"),
        "coloured despite NO_COLOR: {before:?}"
    );
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}
