//! `etch`: the one command line of Etch. Each subcommand is a thin layer over the library crates.

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator's settings for a long-running node (`etch serve`): memory a node frees goes
/// back to the system at once, and arenas are committed as they are used, so the node's
/// resident size follows what it holds (its `--memory-budget` and fixed part). With mimalloc's
/// defaults, freed pages stay with the thread that freed them: 200 clients that never read
/// left a node with a 64 MiB budget at 293 MiB instead of 133 MiB (tools/tests/memory.rs).
pub(crate) fn allocator_for_serving() {
    mimalloc_options(Some(0), 0);
}

/// The allocator's settings for an offline check of a whole store (`verify`, `recover`,
/// `stats`): memory freed is kept for the next allocation instead of going back to the system.
/// A check frees one tree level's decoded cells and decodes the next; handing the pages back
/// and faulting them in again (the kernel zeroes each one) cost a fifth of `etch verify` on a
/// store of 100,002 commits. The peak is the same either way.
pub(crate) fn allocator_for_scans() {
    mimalloc_options(None, -1);
}

/// Sets mimalloc's arena eager commit (when given) and purge delay (ms; 0 at once, -1 never).
fn mimalloc_options(eager_commit: Option<std::ffi::c_long>, purge_delay_ms: std::ffi::c_long) {
    // mimalloc.h, `mi_option_e` (mimalloc v3, the version libmimalloc-sys builds by default).
    const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    // SAFETY: mi_option_set (linked in by libmimalloc-sys, the global allocator's crate) only
    // stores an option value; both options are valid indices and may be changed at run time.
    unsafe {
        if let Some(v) = eager_commit {
            mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, v);
        }
        mi_option_set(MI_OPTION_PURGE_DELAY, purge_delay_ms);
    }
}

/// What `etch --version` says: the release and the formats it reads and writes (a test checks
/// these numbers against the engine's constants).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nstores: native (docs/FORMAT.md) version 1, CAD047 Etch file (Convex etch.md) version 1; \
     both read and written\ncells: CAD003 encoding, SHA3-256 Value IDs; exports: \
     docs/EXPORT.md version 1"
);

/// The conventions every subcommand keeps, shown by `etch --help`.
const CONVENTIONS: &str = "Conventions (every subcommand):\n  \
Exit status: 0 done; 1 failed (no store at the path, a store locked by a writer, damage found, an \
I/O error); 2 a usage mistake (an unknown option, a malformed argument, an output that exists).\n  \
Errors go to stderr as `etch: PATH: what is wrong`, with what to do where there is something.\n  \
Stores: a native store is a folder, a CAD047 store a file; the format is detected. Commands that \
only read (info, get, stats, dump, verify, export, snapshots, drive ls/cat/stat) never create or \
change a store and share a native store with a running writer. Commands that write need an \
existing store, except where told to make one: put, import, serve, convert's and recover's \
output, --create, and the default store on first use; none makes the folders above a store.\n  \
The default store and node key live in the Etch directory: $ETCH_HOME, else \
$XDG_DATA_HOME/etch, else ~/.local/share/etch.\n  \
Long work shows progress on a terminal; --json gives machine-readable output where offered.\n  \
Completion: etch completions bash|zsh|fish (see its --help).";

/// Etch: a content-addressed store, server and shell for the Convex Data Lattice.
#[derive(Parser)]
#[command(
    name = "etch",
    version = VERSION,
    about,
    long_about = "Etch: a content-addressed store, server and shell for the Convex Data Lattice.\n\n\
With no subcommand, opens the shell on the default store (see `etch shell --help`).",
    after_long_help = CONVENTIONS
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    #[command(
        about = "Encode Convex-Lisp values (one per line on stdin) to Value ID and CAD003 hex."
    )]
    Encode(cmd::encode::EncodeArgs),
    #[command(
        about = "Decode hex multi-cell bodies (one per line on stdin) and print them as Convex-Lisp text."
    )]
    Decode(cmd::decode::DecodeArgs),
    #[command(
        about = "Open the interactive shell on a store (the default store when run as `etch`)."
    )]
    Shell(cmd::shell::ShellArgs),
    #[command(
        about = "Evaluate a query expression (or a script from stdin) and print the result."
    )]
    Eval(cmd::eval::EvalArgs),
    #[command(
        about = "Run a lattice node on a store: the Convex peer protocol over TCP, replication with peers."
    )]
    Serve(cmd::serve::ServeArgs),
    #[command(about = "Show a running node at a glance: root, store, pins, peers, request rates.")]
    Status(cmd::status::StatusArgs),
    #[command(about = "Pin values a node keeps (by ID, drive path or dlfs: URI): add, rm, ls.")]
    Pin(cmd::pin::PinArgs),
    #[command(about = "Compact a running node's store while it serves (etch serve; admin).")]
    Gc(cmd::gc::GcArgs),
    #[command(
        about = "Serve the MCP tools (drives, queries, values) to an AI agent over stdin/stdout."
    )]
    Mcp(cmd::mcp::McpArgs),
    #[command(about = "Create (`etch key new`) or show (`etch key show`) a node's Ed25519 key.")]
    Key(cmd::key::KeyArgs),
    #[command(about = "Show a store's format, root, record count and length.")]
    Info(cmd::store::InfoArgs),
    #[command(about = "Print a stored value (or one cell's encoding) by Value ID.")]
    Get(cmd::store::GetArgs),
    #[command(
        about = "Measure the engine on this machine: `etch bench ingest` (W1, W2), `etch bench read` (W3)."
    )]
    Bench(cmd::bench::BenchArgs),
    #[command(about = "List the commits (snapshots) of a native store.")]
    Snapshots(cmd::store::SnapshotsArgs),
    #[command(
        about = "Store values (Convex-Lisp text, one per line on stdin) and print their Value IDs."
    )]
    Put(cmd::store::PutArgs),
    #[command(
        about = "Check a store: structure, every record's hash and encoding, every tree (exit 1 if damaged)."
    )]
    Verify(cmd::verify::VerifyArgs),
    #[command(
        about = "Rewrite a store keeping only what is reachable, and swap it in atomically."
    )]
    Compact(cmd::compact::CompactArgs),
    #[command(
        about = "Write a root's tree to a checksummed, streamable snapshot file (docs/EXPORT.md)."
    )]
    Export(cmd::export::ExportArgs),
    #[command(
        about = "Load an export file into a store (nothing is written if the file is damaged)."
    )]
    Import(cmd::export::ImportArgs),
    #[command(
        about = "Copy a store into a new one of the other format: every cell and the roots."
    )]
    Convert(cmd::convert::ConvertArgs),
    #[command(
        about = "Salvage the intact cells of a damaged store into a new one, with the newest whole root."
    )]
    Recover(cmd::recover::RecoverArgs),
    #[command(
        about = "DLFS drives: ls, put, cat, mkdir, rm, mv, stat, meta, import/export folders, private files."
    )]
    Drive(cmd::drive::DriveArgs),
    #[command(about = "Cells by type, sizes, tree depth, dedup ratio, garbage.")]
    Stats(cmd::inspect::StatsArgs),
    #[command(about = "List a store's records in file order: offset, Value ID, length, type.")]
    Dump(cmd::inspect::DumpArgs),
    #[command(about = "Print a tab-completion script for bash, zsh or fish.")]
    Completions(cmd::completions::CompletionsArgs),
}

fn main() -> ExitCode {
    let first = std::env::args_os().nth(1);
    if first.as_ref().is_some_and(|a| a == "serve") {
        // Before anything else allocates: the first arena is made with these settings too.
        allocator_for_serving();
    } else if first.as_ref().is_some_and(|a| {
        ["verify", "recover", "stats", "compact"]
            .iter()
            .any(|c| a == *c)
    }) {
        allocator_for_scans();
    }
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Shell(Default::default())) {
        Command::Shell(args) => cmd::shell::run(args),
        Command::Encode(args) => cmd::encode::run(args),
        Command::Decode(args) => cmd::decode::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Mcp(args) => cmd::mcp::run(args),
        Command::Pin(args) => cmd::pin::run(args),
        Command::Gc(args) => cmd::gc::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Key(args) => cmd::key::run(args),
        Command::Info(args) => cmd::store::info(args),
        Command::Get(args) => cmd::store::get(args),
        Command::Put(args) => cmd::store::put(args),
        Command::Snapshots(args) => cmd::store::snapshots(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Compact(args) => cmd::compact::run(args),
        Command::Export(args) => cmd::export::export(args),
        Command::Import(args) => cmd::export::import(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Recover(args) => cmd::recover::run(args),
        Command::Stats(args) => cmd::inspect::stats(args),
        Command::Dump(args) => cmd::inspect::dump(args),
        Command::Drive(args) => cmd::drive::run(args),
        Command::Completions(args) => cmd::completions::run(args, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etch: {e}");
            ExitCode::FAILURE
        }
    }
}
