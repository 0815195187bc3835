//! What the process tests of `etch` share: running the binary in an Etch directory of the test's
//! own, and starting `etch serve`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub const ETCH: &str = env!("CARGO_BIN_EXE_etch");

/// What a run of `etch` gave.
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `etch args` with `ETCH_HOME=home` and no input.
pub fn etch(home: &Path, args: &[&str]) -> Run {
    etch_with_input(home, args, "")
}

/// Runs `etch args` with `ETCH_HOME=home`, `stdin` as its input.
pub fn etch_with_input(home: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(ETCH)
        .args(args)
        .env("ETCH_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etch");
    let mut input = child.stdin.take().expect("stdin");
    // Written from a thread while the output is read here: a command that answers as it reads
    // (a piped shell) fills its output pipe long before a big input is all written.
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        // A command that refuses at once may exit before it reads its input.
        if let Err(e) = input.write_all(stdin.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    });
    let o = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `etch serve --http 127.0.0.1:0` on `store`: the process and the HTTP address it printed on
/// its second line (after `listening on ADDR`).
pub fn serve_with_http(home: &Path, store: &Path) -> (Child, String) {
    let (child, http, _) = serve_both(home, store);
    (child, http)
}

/// `etch serve --http` on `store`: the process, the HTTP address and the peer-protocol address.
pub fn serve_both(home: &Path, store: &Path) -> (Child, String, String) {
    let mut child = Command::new(ETCH)
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--log", "warn", "--store"])
        .arg(store)
        .env("ETCH_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn etch serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("read");
    assert!(first.starts_with("listening on "), "{first}");
    let second = lines.next().expect("a line").expect("read");
    let http = second
        .strip_prefix("http on ")
        .expect("http on ADDR")
        .to_string();
    let peer = first.trim_start_matches("listening on ").to_string();
    (child, http, peer)
}

/// A running `etch serve` and the address it printed.
pub struct Served {
    pub child: Child,
    pub addr: String,
    /// The HTTP address, when started with --http.
    pub http: Option<String>,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Served {
    /// `etch serve --listen 127.0.0.1:0 --store STORE` in the Etch directory `home`.
    pub fn start(home: &Path, store: &Path) -> Served {
        Served::start_with(home, store, &[])
    }

    /// [`Served::start`] with more arguments (peers, a key file, a sync interval; a
    /// `--listen` of their own replaces `127.0.0.1:0`).
    pub fn start_with(home: &Path, store: &Path, extra: &[&std::ffi::OsStr]) -> Served {
        let listen: &[&str] = if extra.iter().any(|a| *a == "--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(ETCH)
            .arg("serve")
            .args(listen)
            .args(["--log", "warn", "--store"])
            .arg(store)
            .args(extra)
            .env("ETCH_HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn etch serve");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("read");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        // With --http the node prints a second line; the pipe is kept open (a closed one
        // would fail the node's next write to stdout).
        let http = extra.iter().any(|a| *a == "--http").then(|| {
            let mut line = String::new();
            out.read_line(&mut line).expect("read");
            line.trim()
                .strip_prefix("http on ")
                .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
                .to_string()
        });
        Served {
            child,
            addr,
            http,
            _stdout: out,
        }
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> i32 {
        // SAFETY: kill() with a pid of a child we spawned and still own.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        self.child.wait().expect("wait").code().unwrap_or(-1)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program` is missing (it does not run with `version_arg`); says so, naming the test
/// that skips, when it is.
pub fn missing(program: &str, version_arg: &str, skipped: &str) -> bool {
    if Command::new(program).arg(version_arg).output().is_ok() {
        return false;
    }
    eprintln!("{program} is not installed (apt-get install {program}): skipping {skipped}");
    true
}

/// `n` bytes of deterministic noise from `seed` (xorshift64): values that share no 4 KiB
/// chunk with another seed's, so stored bytes are not deduplicated between them.
#[allow(dead_code)]
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
