//! `etch shell` (and `etch` alone): the interactive shell on a store.

use super::{open_any_or_shared, open_any_with, Access, FormatArg, IoArg};
use etch_engine::node::LocalNode;
use etch_engine::store::{CellStore, NativeOptions, NativeStore, StoreFormat};
use etch_shell::{LocalBackend, Shell};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `etch shell`.
#[derive(clap::Args, Default)]
#[command(
    long_about = "Opens the Etch shell: a read-eval-print loop for the query language \
(a subset of Convex Lisp plus storage functions) on a store. `etch` with no arguments does the \
same on the default store.\n\n\
The default store is `default.etch` (a native store) in the Etch directory: $ETCH_HOME if set, else \
$XDG_DATA_HOME/etch, else ~/.local/share/etch. It is created on first use, and the shell's \
history and the node key (node.key: the node's identity, which signs its DLFS drives) are kept \
beside it. A writable open publishes the node's NodeInfo under [:p2p :nodes] when it changed.\n\n\
--store PATH opens the store at PATH, which must exist (--create makes a new one there). When \
another process is writing to a native store, the shell opens it read-only beside that writer \
and says so.\n\n\
With --connect HOST:PORT the shell runs on a server (`etch serve`) instead: each input is one \
QUERY (a `def` lasts for that input only), with client rights, or admin rights when the node key \
of the Etch directory is the server's own key or one it lists with --admin.\n\n\
In the shell: .help lists every function with a one-line description; Tab completes names and \
keys; input continues over several lines until its brackets balance; Ctrl-C cancels a running \
query; Ctrl-D quits. Long values are shown shortened (blobs and strings over 1 KiB, collections \
over 100 entries) with a note; (print-full v) or .full on shows everything. When standard input \
is not a terminal the shell reads it without prompts and prints one result per input."
)]
pub struct ShellArgs {
    /// The store; default: the per-user default store.
    #[command(flatten)]
    target: StoreTarget,
}

/// Where a shell or query runs: a store, how it is opened.
#[derive(clap::Args, Default, Clone)]
pub struct StoreTarget {
    /// The store to open (either format, detected); default: the default store, made on first
    /// use. A store named here must exist unless --create is given.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Make a new, empty store at --store if nothing is there (in --format; the folder it goes
    /// in must exist).
    #[arg(long, requires = "store", conflicts_with_all = ["read_only", "snapshot"])]
    pub create: bool,
    /// Run on the server at HOST:PORT instead (QUERY messages; client rights: no admin
    /// functions such as set-root! or DLFS writes).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["store", "read_only", "snapshot"])]
    pub connect: Option<String>,
    /// Open the store read-only: reading works, functions that write fail.
    #[arg(long)]
    pub read_only: bool,
    /// Open an older commit of a native store, read-only (see `etch snapshots`).
    #[arg(long, value_name = "SEQ")]
    pub snapshot: Option<u64>,
    /// Format of a store created here (the default store, or --create).
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
    /// How a native store writes its log.
    #[arg(long, value_enum, default_value_t)]
    pub io: IoArg,
}

/// An open store, the node on it and a one-line description.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn CellStore>,
    /// The lattice node on it.
    pub node: Arc<LocalNode>,
    /// `PATH (FORMAT store[, read-only])`.
    pub label: String,
    /// Opened read-only (asked for, a snapshot, or beside another writer): nothing is written.
    pub read_only: bool,
}

/// What a command needs from the store [`open_node`] opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Reading only: opened read-only, beside any writer.
    Read,
    /// Writing: the store's write lock.
    Write,
    /// Writing where it can: read-only beside another writer of a native store, with a note.
    WriteOrRead,
}

/// Opens a store and the lattice node on it, with the node key of the Etch directory
/// (`node.key`, created on first use). Only the default store (no --store) and --create make a
/// store where none is, and only for a command that may write. Without an Etch directory (no
/// `ETCH_HOME` or `HOME`) the node runs without a key, with a warning; a key file that cannot
/// be used is an error. Returns the store, the node and a one-line description.
pub fn open_node(path: &Path, target: &StoreTarget, need: Need) -> Result<Opened, String> {
    let need = if target.read_only { Need::Read } else { need };
    let first_use = target.store.is_none() && !path.exists();
    let access = match need {
        // The default store is made on first use, whatever the command.
        Need::Read if first_use && target.snapshot.is_none() => Access::Create(target.format),
        Need::Read => Access::Read,
        _ if target.create || target.store.is_none() => Access::Create(target.format),
        _ => Access::Write,
    };
    let (store, format, read_only) = match target.snapshot {
        Some(seq) => {
            super::check_store_path(path, Access::Read)?;
            let s = NativeStore::open_snapshot(path, seq, NativeOptions::default())
                .map_err(|e| super::with_path(path, &e))?;
            (Arc::new(s) as Arc<dyn CellStore>, StoreFormat::Native, true)
        }
        None => {
            let (any, shared) = match need {
                Need::WriteOrRead => open_any_or_shared(path, access, target.io)?,
                Need::Read | Need::Write => (open_any_with(path, access, target.io)?, false),
            };
            (any.cell_store(), any.format(), shared || need == Need::Read)
        }
    };
    let key = match node_key_announced() {
        Ok(k) => Some(k),
        Err(e) if etch_shell::paths::etch_home().is_none() => {
            eprintln!("etch: {e}; DLFS writes need a node key");
            None
        }
        Err(e) => return Err(format!("node key: {e}")),
    };
    let node = LocalNode::open(store.clone(), key).map_err(|e| super::with_path(path, &e))?;
    let mode = match (target.snapshot, read_only) {
        (Some(seq), _) => format!(", snapshot {seq}, read-only"),
        (None, true) => ", read-only".to_string(),
        (None, false) => String::new(),
    };
    let label = format!("{} ({} store{mode})", path.display(), format.name());
    Ok(Opened {
        store,
        node: Arc::new(node),
        label,
        read_only,
    })
}

/// The node key of the Etch directory, made on first use, with a line on stderr (when it is a
/// terminal: a person is there to read it) that says where it is and what it is.
pub fn node_key_announced() -> io::Result<ed25519_dalek::SigningKey> {
    let file = etch_shell::paths::etch_home().map(|h| h.join(etch_shell::paths::NODE_KEY_NAME));
    let existed = file.as_ref().is_some_and(|f| f.exists());
    let key = etch_shell::paths::node_key()?;
    if let (false, Some(file), true) = (existed, file, io::IsTerminal::is_terminal(&io::stderr())) {
        let pk = key.verifying_key().to_bytes();
        eprintln!(
            "etch: made this node's key {} ({}): its identity, owner of its drives",
            file.display(),
            etch_engine::lattice::did_key(&pk)
        );
    }
    Ok(key)
}

/// The key a client proves to a server when asked (admin rights where the server lists it):
/// the node key of the Etch directory, if there is one (never created for this).
pub fn client_key() -> Option<ed25519_dalek::SigningKey> {
    let home = etch_shell::paths::etch_home()?;
    home.join(etch_shell::paths::NODE_KEY_NAME)
        .exists()
        .then(etch_shell::paths::node_key)
        .and_then(Result::ok)
}

/// Runs `etch shell`.
pub fn run(args: ShellArgs) -> io::Result<ExitCode> {
    if let Some(address) = &args.target.connect {
        let backend = match etch_shell::remote::RemoteBackend::connect(address, client_key()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("etch: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let failed = etch_shell::run(Shell::new(Box::new(backend), etch_shell::color_wanted()))?;
        return Ok(piped_exit(failed));
    }
    let path = match &args.target.store {
        Some(p) => p.clone(),
        None => etch_shell::paths::default_store()?,
    };
    let opened = match open_node(&path, &args.target, Need::WriteOrRead) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("etch: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Opened {
        store,
        node,
        label,
        read_only,
    } = opened;
    if !read_only {
        // Announce this node in its own root (lattice.md §8.1); only a change is committed.
        if let Err(e) = node.publish_node_info(&[]) {
            eprintln!("etch: NodeInfo not published: {e}");
        }
    }
    let mut backend = LocalBackend::new(store, node.clone(), label);
    if !read_only {
        backend = backend.committing(node);
    }
    let failed = etch_shell::run(Shell::new(Box::new(backend), etch_shell::color_wanted()))?;
    Ok(piped_exit(failed))
}

/// A shell reading a script from a pipe exits 1 when any input failed (and says how many).
fn piped_exit(failed: usize) -> ExitCode {
    if failed == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!("etch: {failed} input(s) failed");
    ExitCode::FAILURE
}
