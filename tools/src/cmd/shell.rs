//! `etch shell` (and `etch` alone): the interactive shell on a store.

use etch_engine::node::LocalNode;
use etch_engine::store::CellStore;
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
The default store is `default.etch` in the Etch directory: $ETCH_HOME if set, else \
$XDG_DATA_HOME/etch, else ~/.local/share/etch. It is created on first use, and the shell's \
history and the node key (node.key: the node's identity, which signs its DLFS drives) are kept \
beside it. A writable open publishes the node's NodeInfo under [:p2p :nodes] when it changed.\n\n\
In the shell: .help lists every function with a one-line description; Tab completes names and \
keys; input continues over several lines until its brackets balance; Ctrl-C cancels a running \
query; Ctrl-D quits. Long values are shown shortened (blobs and strings over 1 KiB, collections \
over 100 entries) with a note; (print-full v) or .full on shows everything. When standard input \
is not a terminal the shell reads it without prompts and prints one result per input."
)]
pub struct ShellArgs {
    /// The store to open (created if missing); default: the per-user default store.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Open the store read-only: reading works, functions that write fail.
    #[arg(long)]
    read_only: bool,
}

/// Opens a store file and the lattice node on it, with the node key of the Etch directory
/// (`node.key`, created on first use). A writable open creates the store file if needed.
/// Without an Etch directory (no `ETCH_HOME` or `HOME`) the node runs without a key, with a
/// warning; a key file that cannot be used is an error.
pub fn open_node(
    path: &Path,
    writable: bool,
) -> Result<(Arc<dyn CellStore>, Arc<LocalNode>), String> {
    let key = match etch_shell::paths::node_key() {
        Ok(k) => Some(k),
        Err(e) if etch_shell::paths::etch_home().is_none() => {
            eprintln!("etch: {e}; DLFS writes need a node key");
            None
        }
        Err(e) => return Err(format!("node key: {e}")),
    };
    etch_shell::open_local(path, writable, key)
}

/// Runs `etch shell`.
pub fn run(args: ShellArgs) -> io::Result<ExitCode> {
    let path = match args.store {
        Some(p) => p,
        None => etch_shell::paths::default_store()?,
    };
    let (store, node) = match open_node(&path, !args.read_only) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("etch: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if !args.read_only {
        // Announce this node in its own root (lattice.md §8.1); only a change is committed.
        if let Err(e) = node.publish_node_info(&[]) {
            eprintln!("etch: NodeInfo not published: {e}");
        }
    }
    let label = format!(
        "{} (Etch CAD047{})",
        path.display(),
        if args.read_only { ", read-only" } else { "" }
    );
    let backend = LocalBackend::new(store, node, label);
    etch_shell::run(Shell::new(Box::new(backend), etch_shell::color_wanted()))?;
    Ok(ExitCode::SUCCESS)
}
