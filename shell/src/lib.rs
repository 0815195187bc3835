//! # etch-shell
//!
//! The Etch shell: a read-eval-print loop for the query language (query.md) over a local store
//! or a server. The loop itself ([`run`]) is a thin layer over [`Shell::handle`], which takes
//! one complete input (forms or a dot command) and returns the text to show, so everything the
//! shell prints is testable without a terminal.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod display;
pub mod editor;
pub mod paths;
pub mod remote;

use display::{show_error, show_timing, show_value, Style, SLOW_QUERY};
use editor::{is_incomplete, Completions, ShellHelper};
use etch_engine::node::LocalNode;
use etch_engine::query::{all_docs, eval_text_in, Env, EvalContext, EvalError, Group, QueryNode};
use etch_engine::store::{CellStore, StoreFormat};
use etch_formats::{Cell, Kind, Resolver};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where the shell's queries run.
pub trait Backend {
    /// Evaluates `text` (one or more forms), stopping with `:CANCELLED` once `cancel` is set.
    fn eval(&mut self, text: &str, cancel: &AtomicBool) -> Result<Cell, EvalError>;
    /// Where the cells of results come from, for printing.
    fn resolver(&self) -> &dyn Resolver;
    /// Whether the last evaluation asked for its result in full (`print-full`).
    fn take_print_full(&mut self) -> bool;
    /// Names bound in the session (for completion).
    fn session_names(&self) -> Vec<String>;
    /// Keyword names worth completing: keys of the root and of session values, where cheap.
    fn keywords(&self) -> Vec<String>;
    /// One line saying what the shell is connected to.
    fn describe(&self) -> String;
    /// From now on, holds root changes back until [`Backend::commit_held`] (a piped script's
    /// writes are committed together). Does nothing where the backend commits elsewhere.
    fn hold_commits(&mut self) {}
    /// Commits the changes [`Backend::hold_commits`] held back; after `Ok`, every write so far
    /// is durable.
    fn commit_held(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Most entries of a map whose keys completion looks at.
const COMPLETION_ENTRIES_MAX: u64 = 1000;

/// Keyword keys of a Map or Index value with few enough entries to list cheaply.
fn keyword_keys(v: &Cell, r: &dyn Resolver, out: &mut Vec<String>) {
    if !matches!(v.kind(), Kind::Map | Kind::Index) || v.count() > COMPLETION_ENTRIES_MAX {
        return;
    }
    let mut add = |k: Cell| {
        if k.kind() == Kind::Keyword {
            if let Some(n) = k.name_bytes() {
                out.push(String::from_utf8_lossy(n).into_owned());
            }
        }
    };
    let _ = if v.kind() == Kind::Map {
        etch_formats::value::for_each_entry(v, r, &mut |k, _| {
            add(k);
            Ok(())
        })
    } else {
        etch_formats::value::for_each_index_entry(v, r, &mut |k, _| {
            add(k);
            Ok(())
        })
    };
}

/// Opens a store file and the lattice node on it, with the node key `key` (the node's identity:
/// default DLFS owner, signer of its slots). A writable open creates a native store if needed;
/// an existing store of either format is detected.
/// Publishing the node's NodeInfo is the caller's choice
/// ([`LocalNode::publish_node_info`]).
pub fn open_local(
    path: &std::path::Path,
    writable: bool,
    key: Option<ed25519_dalek::SigningKey>,
) -> Result<(Arc<dyn CellStore>, Arc<LocalNode>), String> {
    let mut options = etch_engine::store::OpenOptions::writable(StoreFormat::Native);
    options.writable = writable;
    let store = etch_engine::store::open_store(path, &options)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .cell_store();
    let node =
        LocalNode::open(store.clone(), key).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((store, Arc::new(node)))
}

/// A shell on a store in this process: full (console) rights, a persistent session.
pub struct LocalBackend {
    store: Arc<dyn CellStore>,
    node: Arc<dyn QueryNode + Send + Sync>,
    env: Env,
    label: String,
    /// The node whose commits [`Backend::hold_commits`] holds back (a writable local node).
    committer: Option<Arc<LocalNode>>,
}

impl LocalBackend {
    /// A session over `store` whose storage functions go to `node`; `label` describes it.
    pub fn new(
        store: Arc<dyn CellStore>,
        node: Arc<dyn QueryNode + Send + Sync>,
        label: String,
    ) -> LocalBackend {
        LocalBackend {
            store,
            node,
            env: Env::new(),
            label,
            committer: None,
        }
    }

    /// The same, able to hold `node`'s commits back while a piped script runs.
    pub fn committing(mut self, node: Arc<LocalNode>) -> LocalBackend {
        self.committer = Some(node);
        self
    }
}

impl Backend for LocalBackend {
    fn eval(&mut self, text: &str, cancel: &AtomicBool) -> Result<Cell, EvalError> {
        let mut ctx = EvalContext::new(self.store.as_ref());
        ctx.node = Some(self.node.as_ref());
        ctx.cancel = Some(cancel);
        eval_text_in(text, &mut self.env, &ctx)
    }

    fn resolver(&self) -> &dyn Resolver {
        self.store.as_ref()
    }

    fn take_print_full(&mut self) -> bool {
        self.env.take_print_full()
    }

    fn session_names(&self) -> Vec<String> {
        self.env.names()
    }

    fn keywords(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(root) = self.node.root() {
            keyword_keys(&root, self.store.as_ref(), &mut out);
        }
        for name in self.env.names() {
            if let Some(v) = self.env.get(&name) {
                keyword_keys(&v, self.store.as_ref(), &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    fn hold_commits(&mut self) {
        if let Some(n) = &self.committer {
            n.defer_commits();
        }
    }

    fn commit_held(&mut self) -> Result<(), String> {
        match &self.committer {
            Some(n) => n.flush().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// When to print the time a query took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// After queries slower than [`SLOW_QUERY`].
    Auto,
    /// After every query.
    On,
    /// Never.
    Off,
}

/// The dot commands, for completion and `.help`.
pub const COMMANDS: &[(&str, &str)] = &[
    (".help", "list functions; .help NAME shows one"),
    (
        ".full",
        "on|off: show long values in full instead of shortened",
    ),
    (
        ".timer",
        "on|off|auto: time every query / never / only slow ones (default)",
    ),
    (".store", "what this shell is connected to"),
    (
        ".read FILE",
        "evaluate the forms of FILE in order (stops at the first error)",
    ),
    (".quit", "leave the shell (also Ctrl-D)"),
];

/// What the shell does with an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Show this text and read on.
    Show(String),
    /// Leave the shell.
    Quit,
}

/// The shell: a backend, settings and the cancel flag Ctrl-C sets.
pub struct Shell {
    backend: Box<dyn Backend>,
    style: Style,
    full: bool,
    timer: Timer,
    cancel: Arc<AtomicBool>,
    /// Inputs that ended in an error (a piped shell exits 1 when there were any).
    errors: usize,
}

impl Shell {
    /// A shell over `backend`, with colour if `color`.
    pub fn new(backend: Box<dyn Backend>, color: bool) -> Shell {
        Shell {
            backend,
            style: Style { color },
            full: false,
            timer: Timer::Auto,
            cancel: Arc::new(AtomicBool::new(false)),
            errors: 0,
        }
    }

    /// Inputs so far that ended in an error.
    pub fn errors(&self) -> usize {
        self.errors
    }

    /// Commits the writes held back, then prints the results waiting for them. A failed commit
    /// is said on stderr before those results and counts as a failed input.
    fn flush_piped(&mut self, pending: &mut String, out: &mut impl Write) -> std::io::Result<()> {
        if let Err(e) = self.backend.commit_held() {
            self.errors += 1;
            eprintln!(
                "etch: the writes of the results below were NOT committed ({e}); they are lost"
            );
        }
        if !pending.is_empty() {
            out.write_all(pending.as_bytes())?;
            pending.clear();
        }
        out.flush()
    }

    /// The flag that cancels the running query when set.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Sets the timer mode (tests use `Off` for stable output).
    pub fn set_timer(&mut self, timer: Timer) {
        self.timer = timer;
    }

    /// What completion offers now.
    pub fn completions(&self) -> Completions {
        let mut names: Vec<String> = all_docs().iter().map(|d| d.name.to_string()).collect();
        names.extend(self.backend.session_names());
        Completions {
            names,
            keywords: self.backend.keywords(),
            commands: COMMANDS.iter().map(|(c, _)| c.to_string()).collect(),
        }
    }

    /// Handles one complete input: a dot command, or forms to evaluate. Empty input (only
    /// whitespace and comments) shows nothing.
    pub fn handle(&mut self, input: &str) -> Outcome {
        let trimmed = input.trim();
        if trimmed.starts_with('.') {
            return self.command(trimmed);
        }
        if matches!(etch_formats::text::read_all(input), Ok(f) if f.is_empty()) {
            return Outcome::Show(String::new());
        }
        self.cancel.store(false, Ordering::SeqCst);
        let started = Instant::now();
        let result = self.backend.eval(input, &self.cancel);
        let elapsed = started.elapsed();
        let full = self.backend.take_print_full() || self.full;
        let mut out = match result {
            Ok(v) => show_value(&v, self.backend.resolver(), full, self.style),
            Err(e) => {
                self.errors += 1;
                show_error(&e, self.style)
            }
        };
        let timed = match self.timer {
            Timer::On => true,
            Timer::Off => false,
            Timer::Auto => elapsed >= SLOW_QUERY,
        };
        if timed {
            out.push('\n');
            out.push_str(&show_timing(elapsed, self.style));
        }
        Outcome::Show(out)
    }

    fn command(&mut self, line: &str) -> Outcome {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        let arg = words.next();
        let on_off = |arg: Option<&str>| match arg {
            Some("on") => Some(true),
            Some("off") => Some(false),
            _ => None,
        };
        let text = match cmd {
            ".quit" | ".exit" => return Outcome::Quit,
            ".help" => match arg {
                None => self.help(),
                Some(name) => match etch_engine::query::doc(name) {
                    Some(d) => format!("({} {})\n  {}", d.name, d.args, d.doc),
                    None => self
                        .style
                        .err(&format!(" no function or form named {name}")),
                },
            },
            ".full" => match on_off(arg) {
                Some(b) => {
                    self.full = b;
                    format!("full printing {}", if b { "on" } else { "off" })
                }
                None => self.style.err(" usage: .full on|off"),
            },
            ".timer" => {
                let t = match arg {
                    Some("on") => Some(Timer::On),
                    Some("off") => Some(Timer::Off),
                    Some("auto") => Some(Timer::Auto),
                    _ => None,
                };
                match t {
                    Some(t) => {
                        self.timer = t;
                        format!("timer {}", arg.unwrap_or_default())
                    }
                    None => self.style.err(" usage: .timer on|off|auto"),
                }
            }
            ".store" => self.backend.describe(),
            ".read" => match line.strip_prefix(".read").map(str::trim) {
                Some(path) if !path.is_empty() => return self.read_file(path),
                _ => self.style.err(" usage: .read FILE"),
            },
            other => self
                .style
                .err(&format!(" unknown command {other}; .help lists them")),
        };
        Outcome::Show(text)
    }

    /// `.read FILE`: evaluates the file's forms in order, as if typed, showing the last value;
    /// stops at the first that fails and says where it is and how many completed.
    fn read_file(&mut self, path: &str) -> Outcome {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.errors += 1;
                return Outcome::Show(self.style.err(&format!(" cannot read {path}: {e}")));
            }
        };
        let forms = match etch_formats::text::read_all_at(&text) {
            Ok(f) => f,
            Err(e) => {
                self.errors += 1;
                return Outcome::Show(self.style.err(&format!(
                    " {path}:{}:{}: {}; nothing was evaluated",
                    e.line, e.column, e.detail
                )));
            }
        };
        let mut last = Outcome::Show(String::new());
        for (i, f) in forms.iter().enumerate() {
            let end = forms.get(i + 1).map_or(text.len(), |n| n.offset);
            let before = self.errors;
            last = self.handle(text.get(f.offset..end).unwrap_or_default());
            if self.errors > before {
                let Outcome::Show(shown) = last else {
                    return last;
                };
                let at = format!(
                    " in {path} at line {}, column {} (form {} of {}); the {} form(s) before it completed",
                    f.line,
                    f.column,
                    i + 1,
                    forms.len(),
                    i
                );
                return Outcome::Show(format!("{shown}\n{}", self.style.err(&at)));
            }
        }
        last
    }

    fn help(&self) -> String {
        let mut out = String::new();
        out.push_str("Type an expression to evaluate it, e.g. (count [1 2 3]).\n");
        out.push_str("Tab completes names and keys; input continues until brackets balance;\n");
        out.push_str("Ctrl-C cancels a running query; Ctrl-D quits.\n");
        for g in Group::ALL {
            out.push('\n');
            out.push_str(&self.style.bold(g.title()));
            out.push('\n');
            for d in all_docs().into_iter().filter(|d| d.group == g) {
                let sig = format!("({} {})", d.name, d.args);
                out.push_str(&format!("  {sig:<34} {}\n", d.doc));
            }
        }
        out.push('\n');
        out.push_str(&self.style.bold("Commands"));
        out.push('\n');
        for (c, doc) in COMMANDS {
            out.push_str(&format!("  {c:<34} {doc}\n"));
        }
        out.trim_end().to_string()
    }
}

/// Whether output should be coloured: standard output is a terminal and `NO_COLOR` is unset.
pub fn color_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs the shell until `.quit`, Ctrl-D or the end of input. On a terminal it is an
/// interactive line editor with history (`paths::history_file`); otherwise it reads
/// standard input, evaluating each complete input as it arrives, without prompts. Returns the
/// number of inputs that failed when reading standard input (a script's caller exits 1 then),
/// 0 on a terminal.
pub fn run(shell: Shell) -> std::io::Result<usize> {
    let cancel = shell.cancel_flag();
    // Ctrl-C while a query runs: the editor is not reading, so the signal arrives here. While
    // the editor reads, the terminal is raw and Ctrl-C is a key that clears the line.
    let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::SeqCst));
    if std::io::stdin().is_terminal() {
        run_editor(shell).map(|()| 0)
    } else {
        run_piped(shell)
    }
}

/// Results a piped shell holds back at most before committing and printing them.
const PIPED_PENDING_BYTES_MAX: usize = 1 << 20;
/// Longest a piped shell holds results back while input keeps coming.
const PIPED_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Lines read ahead of the evaluation (they wait in memory).
const PIPED_LINES_AHEAD: usize = 1024;

fn run_piped(mut shell: Shell) -> std::io::Result<usize> {
    // A script's writes are committed together, not one commit per input: results wait until
    // their writes are committed, and printing a result still means its writes are durable.
    // The commit comes when the input pauses (a program that waits for an answer gets it at
    // once), at least every PIPED_FLUSH_EVERY, and at the end.
    shell.backend.hold_commits();
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<String>>(PIPED_LINES_AHEAD);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let stop = line.is_err();
            if tx.send(line).is_err() || stop {
                return;
            }
        }
    });
    let mut out = std::io::stdout().lock();
    let mut pending = String::new();
    let mut last_flush = Instant::now();
    let mut buffer = String::new();
    loop {
        let next = match rx.try_recv() {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                shell.flush_piped(&mut pending, &mut out)?;
                last_flush = Instant::now();
                rx.recv().ok()
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
        };
        let Some(line) = next else { break };
        buffer.push_str(&line?);
        buffer.push('\n');
        if buffer.trim_start().starts_with('.') || !is_incomplete(&buffer) {
            match shell.handle(&buffer) {
                Outcome::Quit => {
                    shell.flush_piped(&mut pending, &mut out)?;
                    return Ok(shell.errors());
                }
                Outcome::Show(t) if t.is_empty() => {}
                Outcome::Show(t) => {
                    pending.push_str(&t);
                    pending.push('\n');
                }
            }
            buffer.clear();
            if pending.len() >= PIPED_PENDING_BYTES_MAX || last_flush.elapsed() >= PIPED_FLUSH_EVERY
            {
                shell.flush_piped(&mut pending, &mut out)?;
                last_flush = Instant::now();
            }
        }
    }
    if !buffer.trim().is_empty() {
        if let Outcome::Show(t) = shell.handle(&buffer) {
            pending.push_str(&t);
            pending.push('\n');
        }
    }
    shell.flush_piped(&mut pending, &mut out)?;
    Ok(shell.errors())
}

fn run_editor(mut shell: Shell) -> std::io::Result<()> {
    use rustyline::error::ReadlineError;
    use rustyline::history::FileHistory;
    use rustyline::{Config, Editor};

    let io_err = |e: ReadlineError| std::io::Error::other(e.to_string());
    let config = Config::builder()
        .auto_add_history(false)
        .max_history_size(10_000)
        .map_err(io_err)?
        .history_ignore_dups(true)
        .map_err(io_err)?
        .completion_type(rustyline::CompletionType::List)
        .build();
    let completions = Arc::new(Mutex::new(shell.completions()));
    let mut editor: Editor<ShellHelper, FileHistory> =
        Editor::with_config(config).map_err(io_err)?;
    editor.set_helper(Some(ShellHelper::new(
        completions.clone(),
        shell.style.color,
    )));
    let history = paths::history_file();
    if let Some(h) = &history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(h);
    }
    println!(
        "Etch shell on {}. .help lists functions, Ctrl-D quits.",
        shell.backend.describe()
    );
    let prompt = "etch> ";
    loop {
        match editor.readline(prompt) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                if let Some(h) = &history {
                    // History is a convenience: failing to save it must not stop the shell.
                    let _ = editor.save_history(h);
                }
                match shell.handle(&line) {
                    Outcome::Quit => break,
                    Outcome::Show(t) if t.is_empty() => {}
                    Outcome::Show(t) => println!("{t}"),
                }
                if let Ok(mut c) = completions.lock() {
                    *c = shell.completions();
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}
