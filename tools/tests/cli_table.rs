//! One voice for the command line: every subcommand that takes a store, against a path with
//! nothing there, a folder that is not a store, an empty folder, a text file and a store locked
//! by a running writer — the exact message on stderr and the exit status of each (`etch
//! --help`, "Conventions": 1 failed, 2 usage; only writing commands told to make a store do).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs `etch ARGS` in `dir` (relative paths, so messages are the same on every machine) with
/// the Etch directory `dir/home`: (exit status, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .current_dir(dir)
        .env("ETCH_HOME", dir.join("home"))
        .stdin(Stdio::null())
        .output()
        .expect("run etch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Value ID: on a path without a store, no command gets as far as looking it up.
const ID: &str = "0xb95de281d42f565cc3551b3ef7070f89c2290789bc63ce28fcc7969ac2fba4ae";

/// Every subcommand that opens a store, with `P` for the path, and whether it only reads.
const COMMANDS: &[(&[&str], bool)] = &[
    (&["info", "P"], true),
    (&["get", "P", ID], true),
    (&["snapshots", "P"], true),
    (&["stats", "P"], true),
    (&["dump", "P"], true),
    (&["export", "P", "-o", "out.x"], true),
    (&["convert", "P", "out.c"], true),
    (&["eval", "--read-only", "--store", "P", "(+ 1 2)"], true),
    (&["drive", "drives", "--store", "P"], true),
    (&["drive", "cat", "home/a.txt", "--store", "P"], true),
    (&["pin", "ls", "--store", "P"], true),
    (&["compact", "P"], false),
    (&["eval", "--store", "P", "(+ 1 2)"], false),
    (&["shell", "--store", "P"], false),
    (&["drive", "mkdrive", "home", "--store", "P"], false),
    (&["pin", "add", ID, "--store", "P"], false),
    (&["mcp", "--store", "P"], false),
];

fn with_path<'a>(args: &[&'a str], p: &'a str) -> Vec<&'a str> {
    args.iter().map(|a| if *a == "P" { p } else { a }).collect()
}

fn fresh() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("folder")).expect("folder");
    std::fs::write(dir.path().join("folder/notes.txt"), "not a store\n").expect("notes");
    std::fs::create_dir(dir.path().join("empty")).expect("empty folder");
    std::fs::write(dir.path().join("text.etch"), "hello\n").expect("text file");
    dir
}

const NO_STORE: &str = "etch: missing.etch: no store here; check the path (commands that read \
or change a store never create one: `etch put missing.etch` or --create makes a new store)\n";
const FOLDER: &str = "etch: folder: a folder that is not an Etch store (a native store's folder \
holds a FORMAT file); name the store itself, or a new path to create one\n";
const EMPTY: &str = "etch: empty: an empty folder, not an Etch store (`etch put empty` or \
--create makes a new store in it)\n";
const TEXT: &str = "etch: text.etch: not an Etch store: a file that does not start with the \
CAD047 magic 0xE7C6 (and a native store is a folder); if it is a damaged store, `etch verify` and \
`etch recover` read what is left\n";

/// Every command that takes a store refuses a path that holds none with the same line, exit 1,
/// and leaves the path as it was (no store made, no folder filled).
#[test]
fn every_command_refuses_what_is_not_a_store_with_one_message() {
    let dir = fresh();
    let mut bad = Vec::new();
    for (args, _) in COMMANDS {
        for (p, want) in [
            ("missing.etch", NO_STORE),
            ("folder", FOLDER),
            ("empty", EMPTY),
            ("text.etch", TEXT),
        ] {
            let argv = with_path(args, p);
            let got = run(dir.path(), &argv);
            if (got.0, got.2.as_str()) != (1, want) {
                bad.push(format!(
                    "{argv:?}\n  want 1 {want:?}\n  got  {} {:?}",
                    got.0, got.2
                ));
            }
        }
        assert!(
            !dir.path().join("missing.etch").exists(),
            "{args:?} made a store"
        );
        let empty = std::fs::read_dir(dir.path().join("empty"))
            .expect("empty")
            .count();
        assert_eq!(empty, 0, "{args:?} wrote into the empty folder");
        assert_eq!(
            std::fs::read(dir.path().join("text.etch")).expect("text"),
            b"hello\n"
        );
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The checks that read a damaged store (`verify`, `recover`) name a path with nothing there
/// as every command does, and read anything else as a possibly damaged store, saying first that
/// it does not look like one; neither passes it.
#[test]
fn verify_and_recover_read_what_does_not_look_like_a_store_and_say_so() {
    let dir = fresh();
    for args in [&["verify", "P"][..], &["recover", "P", "-o", "out.r"][..]] {
        let got = run(dir.path(), &with_path(args, "missing.etch"));
        assert_eq!((got.0, got.2.as_str()), (1, NO_STORE), "{args:?}");
        for (p, first, format) in [("folder", FOLDER, "native"), ("text.etch", TEXT, "cad047")] {
            let _ = std::fs::remove_dir_all(dir.path().join("out.r"));
            let got = run(dir.path(), &with_path(args, p));
            assert_eq!(got.0, 1, "{args:?} {p}: {}{}", got.1, got.2);
            let warning = format!("{first}etch: reading it as a damaged {format} store\n");
            assert!(got.2.starts_with(&warning), "{args:?} {p}: {}", got.2);
        }
    }
}

/// Writing commands that are told to make a store make it at the path they are given, never the
/// folders above it; an output that is there already is a usage mistake (exit 2).
#[test]
fn only_writing_commands_told_to_make_a_store_do_and_never_its_folders() {
    let dir = fresh();
    let no_folder = "etch: nofolder/x.etch: the folder nofolder does not exist; create it first \
(etch makes a store, never the folders above it)\n";
    for args in [
        &["put", "nofolder/x.etch"][..],
        &["eval", "--create", "--store", "nofolder/x.etch", "1"][..],
        &["shell", "--create", "--store", "nofolder/x.etch"][..],
        &[
            "drive",
            "mkdrive",
            "home",
            "--create",
            "--store",
            "nofolder/x.etch",
        ][..],
        &["serve", "--store", "nofolder/x.etch"][..],
    ] {
        let got = run(dir.path(), args);
        assert_eq!((got.0, got.2.as_str()), (1, no_folder), "{args:?}");
        assert!(!dir.path().join("nofolder").exists(), "{args:?}");
    }
    // Told: a store where nothing was, in a folder that is there (an empty folder will do).
    let made = [
        "eval",
        "--create",
        "--store",
        "new.etch",
        "(do (store [1 2]) (+ 1 2))",
    ];
    let got = run(dir.path(), &made);
    assert_eq!((got.0, got.1.as_str()), (0, "3\n"), "{}", got.2);
    let got = run(dir.path(), &["put", "empty"]);
    assert_eq!(got.0, 0, "{}", got.2);
    assert!(dir.path().join("empty/FORMAT").exists());
    // Outputs that are there already.
    let got = run(dir.path(), &["export", "new.etch", "-o", "text.etch"]);
    assert_eq!(
        (got.0, got.2.as_str()),
        (
            2,
            "etch: text.etch: already exists; name a new file, or add --force to replace it\n"
        )
    );
    assert_eq!(
        std::fs::read(dir.path().join("text.etch")).expect("text"),
        b"hello\n"
    );
    let got = run(dir.path(), &["convert", "new.etch", "empty"]);
    assert_eq!(
        (got.0, got.2.as_str()),
        (
            2,
            "etch: empty: already exists; convert writes a new store, so name a path that is \
             free\n"
        )
    );
    let got = run(dir.path(), &["recover", "new.etch", "-o", "folder"]);
    assert_eq!(
        (got.0, got.2.as_str()),
        (
            2,
            "etch: folder: already exists; recover writes a new store, so name a path that is \
             free\n"
        )
    );
    // A malformed argument is a usage mistake too, before any store is opened.
    let got = run(dir.path(), &["get", "missing.etch", "0x12"]);
    assert_eq!(
        (got.0, got.2.as_str()),
        (2, "etch: '0x12' is not a Value ID (64 hex digits)\n")
    );
    // With --force, the old export is replaced only by a complete new one.
    let got = run(
        dir.path(),
        &["export", "new.etch", "-o", "text.etch", "--force"],
    );
    assert_eq!(got.0, 0, "{}", got.2);
    assert_eq!(
        &std::fs::read(dir.path().join("text.etch")).expect("export")[..8],
        b"ETCHEXP1"
    );
    // A folder is not an export file.
    let got = run(dir.path(), &["import", "--store", "new.etch", "folder"]);
    assert_eq!(
        (got.0, got.2.as_str()),
        (
            1,
            "etch: folder: a folder; etch import loads one export file (made by etch export -o \
             FILE); `etch drive import folder DRIVE/PATH` copies a folder into a drive\n"
        )
    );
}

/// A shell holding a native store's write lock: commands that read share the store with it;
/// commands that write are refused with one line, exit 1; `eval` and `shell` read beside it and
/// say so.
#[test]
fn a_store_held_by_a_writer_is_shared_with_readers() {
    let dir = fresh();
    let got = run(dir.path(), &["put", "held.etch"]);
    assert_eq!(got.0, 0, "{}", got.2);
    let mut holder = hold(dir.path(), "held.etch");
    let locked = "etch: held.etch: the store is locked by another writer (an etch shell, serve or \
writing command); close it and retry (commands that only read work meanwhile)\n";
    let shared = "etch: held.etch: another process is writing to this store; opened read-only \
beside it (reading works; writing fails until that process closes the store)\n";
    let mut bad = Vec::new();
    for (args, reads) in COMMANDS {
        let _ = std::fs::remove_file(dir.path().join("out.x"));
        let _ = std::fs::remove_dir_all(dir.path().join("out.c"));
        let argv = with_path(args, "held.etch");
        let got = run(dir.path(), &argv);
        let want: (i32, &str) = match argv[..] {
            // Nothing pinned and no drives yet: a reader's own answers, after no complaint.
            ["get", ..] | ["drive", "cat", ..] => (1, ""),
            ["eval", "--store", ..] => (0, shared),
            ["shell", ..] => (0, shared),
            ["mcp", ..] => (1, shared),
            _ if *reads => (0, ""),
            _ => (1, locked),
        };
        let ok = match want {
            (code, "") => got.0 == code && !got.2.contains("locked"),
            (code, text) => got.0 == code && got.2.starts_with(text),
        };
        if !ok {
            bad.push(format!(
                "{argv:?}\n  want {want:?}\n  got  {} {:?}",
                got.0, got.2
            ));
        }
    }
    let got = run(dir.path(), &["put", "held.etch"]);
    assert_eq!((got.0, got.2.as_str()), (1, locked));
    drop(holder.stdin.take());
    assert!(holder.wait().expect("holder").success());
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A CAD047 file held by a writer cannot be read beside it (its index changes in place): every
/// command says so in one line, exit 1.
#[test]
fn a_cad047_file_held_by_a_writer_is_refused_with_one_line() {
    let dir = fresh();
    let got = run(dir.path(), &["put", "--format", "cad047", "held.etch"]);
    assert_eq!(got.0, 0, "{}", got.2);
    let mut holder = hold(dir.path(), "held.etch");
    let locked = "etch: held.etch: the file is locked by another process (an etch writer or a \
Convex peer); a CAD047 file is read only while no one writes it, so stop that process and retry \
(a native store lets readers share it with a writer)\n";
    for args in [
        &["info", "held.etch"][..],
        &["eval", "--store", "held.etch", "1"][..],
        &["put", "held.etch"][..],
        &["export", "held.etch", "-o", "out.x"][..],
    ] {
        let got = run(dir.path(), args);
        assert_eq!((got.0, got.2.as_str()), (1, locked), "{args:?}");
    }
    drop(holder.stdin.take());
    assert!(holder.wait().expect("holder").success());
}

/// Starts `etch shell --store STORE` in `dir` reading from a pipe that stays open, and returns
/// once it holds the store (it has answered one input).
fn hold(dir: &Path, store: &str) -> Child {
    let mut holder = Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["shell", "--store", store])
        .current_dir(dir)
        .env("ETCH_HOME", dir.join("home"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the holder");
    let stdin = holder.stdin.as_mut().expect("stdin");
    stdin.write_all(b"(+ 1 2)\n").expect("write");
    let mut out = holder.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !seen.contains(&b'\n') {
        let n = out.read(&mut buf).expect("read");
        assert!(n > 0, "the holder ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    holder
}

/// `etch --version` names the formats it reads and writes, with the versions the engine writes.
#[test]
fn version_names_the_store_formats() {
    let dir = fresh();
    let (code, out, _) = run(dir.path(), &["--version"]);
    assert_eq!(code, 0);
    let native = etch_engine::store::native::format::FORMAT_MAGIC[15];
    let cad047 = etch_engine::store::cad047::VERSION;
    assert_eq!(
        out,
        format!(
            "etch {}\nstores: native (docs/FORMAT.md) version {native}, CAD047 Etch file (Convex \
             etch.md) version {cad047}; both read and written\ncells: CAD003 encoding, SHA3-256 \
             Value IDs; exports: docs/EXPORT.md version 1\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// `etch completions SHELL` prints a script that SHELL loads, naming every subcommand.
#[test]
fn completions_for_bash_zsh_and_fish() {
    let dir = fresh();
    for (shell, marker) in [
        ("bash", "complete -F _etch"),
        ("zsh", "#compdef etch"),
        ("fish", "complete -c etch"),
    ] {
        let (code, out, err) = run(dir.path(), &["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(marker), "{shell}");
        for sub in ["shell", "eval", "verify", "drive", "completions"] {
            assert!(out.contains(sub), "{shell}: {sub}");
        }
    }
    let (code, _, err) = run(dir.path(), &["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
}
