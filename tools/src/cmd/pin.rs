//! `etch pin`: the node's pin set (issue 15, docs/PROVIDER.md; `etch_engine::pins`) on a store
//! or on a running node: add, remove, list. Each is one query-language form (`pin`, `unpin`,
//! `pins`), evaluated on a store opened here or sent to a server as a QUERY.

use super::shell::{client_key, open_node, Need, StoreTarget};
use etch_engine::node::iso_time;
use etch_engine::query::{eval_form, Env, EvalContext, EvalError};
use etch_formats::value::{blob_bytes, elements};
use etch_formats::{Cell, Resolver};
use etch_server::client::{BlockingClient, RemoteResolver};
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `etch pin`.
#[derive(clap::Args)]
#[command(
    long_about = "Manages the node's pins: values it keeps whatever else it lets go of. A pin names \
a value by its Value ID (64 hex digits), or a drive location (`drive/path`, in the node key's \
drives) or `dlfs:` URI (`dlfs:did:key:z…/drive/path`), whose current state is pinned. Pins are \
the node's own state: kept in its store (under `:pins` of its root, so compaction keeps every \
pinned tree), never sent to peers, kept across restarts.\n\n\
With --store the pins of that store are changed here (the Etch directory's node key owns the \
default drives); with --connect HOST:PORT, those of a running node (`etch serve`), which needs \
admin rights for add and rm (this Etch directory's key must be the server's own or one it lists \
with --admin).\n\n\
Examples:\n  etch pin add 0x4f3c… --label invoices --store s\n  etch pin add home/photos \
--connect 127.0.0.1:18888\n  etch pin ls --json --store s\n  etch pin rm 4f3c… --store s"
)]
pub struct PinArgs {
    #[command(subcommand)]
    action: PinAction,
}

#[derive(clap::Subcommand)]
enum PinAction {
    /// Pin a value by ID, or the current state of a drive location or dlfs: URI.
    Add {
        /// A Value ID (64 hex digits, 0x optional), `drive/path` or `dlfs:…`.
        what: String,
        /// A label to tell pins apart.
        #[arg(long, default_value = "")]
        label: String,
        /// The store (or --connect to a server).
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Remove the pin of a Value ID (exit 1 when there was none).
    Rm {
        /// The pinned Value ID.
        id: String,
        /// The store (or --connect to a server).
        #[command(flatten)]
        target: StoreTarget,
    },
    /// List the pins: ID, time, source, label.
    Ls {
        /// One JSON object per pin, one per line.
        #[arg(long)]
        json: bool,
        /// The store (or --connect to a server).
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// A 64-hex-digit Value ID (0x optional) as a Blob.
fn id_cell(text: &str) -> Option<Cell> {
    let h = text.trim().trim_start_matches("0x");
    hex::decode(h)
        .ok()
        .filter(|b| b.len() == 32)
        .map(|b| Cell::blob(&b))
}

fn form(action: &PinAction) -> Result<Cell, String> {
    let sym = |s: &str| Cell::symbol(s).map_err(|e| e.to_string());
    Ok(match action {
        PinAction::Add { what, label, .. } => {
            let target = id_cell(what).unwrap_or_else(|| Cell::string(what));
            let mut items = vec![sym("pin")?, target];
            if !label.is_empty() {
                items.push(Cell::string(label));
            }
            Cell::list(items)
        }
        PinAction::Rm { id, .. } => {
            let id = id_cell(id).ok_or_else(|| format!("not a Value ID (64 hex digits): {id}"))?;
            Cell::list(vec![sym("unpin")?, id])
        }
        PinAction::Ls { .. } => Cell::list(vec![sym("pins")?]),
    })
}

/// Prints the answer of `action`; its exit code.
fn report(action: &PinAction, v: &Cell, r: &dyn Resolver) -> io::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match action {
        PinAction::Add { .. } => writeln!(
            out,
            "0x{}",
            v.flat_bytes().map(hex::encode).unwrap_or_default()
        )?,
        PinAction::Rm { id, .. } => {
            if v.as_bool() != Some(true) {
                eprintln!("etch: no pin {id}");
                return Ok(ExitCode::FAILURE);
            }
            writeln!(out, "unpinned {id}")?
        }
        PinAction::Ls { json, .. } => {
            let field = |p: &Cell, name: &str| -> Cell {
                Cell::keyword(name)
                    .ok()
                    .and_then(|k| etch_engine::lattice::value_at_path(p, &[k], r).ok())
                    .unwrap_or_else(Cell::nil)
            };
            let text = |c: Cell| -> String {
                blob_bytes(&c, r)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            let pins = elements(v, r).map_err(io::Error::other)?;
            for p in &pins {
                let id = field(p, "id")
                    .flat_bytes()
                    .map(hex::encode)
                    .unwrap_or_default();
                let time = field(p, "time").as_long().unwrap_or(0);
                let (source, label) = (text(field(p, "source")), text(field(p, "label")));
                if *json {
                    let line = serde_json::json!({"id": id, "time": iso_time(time),
                                                  "source": source, "label": label});
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(out, "0x{id}  {}  {source}  {label}", iso_time(time))?;
                }
            }
            if !json {
                eprintln!("{} pins", pins.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl PinAction {
    fn target(&self) -> &StoreTarget {
        match self {
            PinAction::Add { target, .. }
            | PinAction::Rm { target, .. }
            | PinAction::Ls { target, .. } => target,
        }
    }
}

/// Runs `etch pin`.
pub fn run(args: PinArgs) -> io::Result<ExitCode> {
    let target = args.action.target();
    let form = match form(&args.action) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("etch: {e}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let fail = |e: EvalError| {
        eprintln!("etch: :{} {}", e.code, e.message);
        Ok(ExitCode::FAILURE)
    };
    if let Some(address) = &target.connect {
        let client = match BlockingClient::connect(address, client_key()) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                eprintln!("etch: cannot connect to {address}: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let resolver = RemoteResolver::new(client.clone());
        return match etch_shell::remote::eval_remote_form(&client, form) {
            Ok(v) => report(&args.action, &v, &resolver),
            Err(e) => fail(e),
        };
    }
    let Some(path) = &target.store else {
        eprintln!("etch: pin needs --store PATH or --connect HOST:PORT");
        return Ok(ExitCode::from(super::EXIT_USAGE));
    };
    let need = match args.action {
        PinAction::Ls { .. } => Need::Read,
        PinAction::Add { .. } | PinAction::Rm { .. } => Need::Write,
    };
    let super::shell::Opened { store, node, .. } = match open_node(path, target, need) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("etch: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut ctx = EvalContext::new(store.as_ref());
    ctx.node = Some(node.as_ref());
    match eval_form(&form, &mut Env::new(), &ctx) {
        Ok(v) => report(&args.action, &v, store.as_ref()),
        Err(e) => fail(e),
    }
}
