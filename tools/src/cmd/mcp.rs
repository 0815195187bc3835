//! `etch mcp`: the MCP tools (gateway.md "MCP tools"; `etch_server::mcp`) over stdin/stdout,
//! for an AI agent on this machine: on a store opened here (`--store`) or on a running node
//! (`--connect`, over the peer protocol).

use super::shell::{client_key, open_node, Need, StoreTarget};
use etch_engine::query::{EvalError, Rights};
use etch_formats::{Cell, Resolver};
use etch_server::client::{BlockingClient, RemoteResolver};
use etch_server::mcp::{serve_stdio, McpBackend, NodeBackend, Tools};
use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long one tool's evaluation may run on a store opened here.
const EVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `etch mcp`.
#[derive(clap::Args)]
#[command(
    long_about = "Serves Etch's MCP tools over stdin and stdout (the MCP stdio transport) until the \
client closes stdin: the Convex DLFS tools (dlfs_list_drives, dlfs_create_drive, \
dlfs_delete_drive, dlfs_list, dlfs_read, dlfs_write, dlfs_mkdir, dlfs_delete) and Etch's own \
(etch_query, a read-only query; etch_fetch, a value by ID; etch_store, store a value).\n\n\
With --store, the tools work on that store with the operator's rights and the node key of the \
Etch directory (the drives `etch drive` and the shell see); writes are signed and durable when a \
tool returns. With --connect HOST:PORT, they run on that server (`etch serve`) as QUERY messages: \
writes with the rights it grants this Etch directory's key (admin when it is the server's own key \
or one it lists with --admin), etch_query over a second connection without a key, so with client \
rights only (no drive writes or set-root!; `store` and `merge!` where the server allows them).\n\n\
Give an agent the tools with, for example: {\"command\": \"etch\", \"args\": [\"mcp\", \
\"--store\", \"/path/to/store\"]}. A node serving HTTP (`etch serve --http`) offers the same \
tools at /mcp (streamable HTTP). Logs go to stderr; stdout is the protocol."
)]
pub struct McpArgs {
    /// The store to serve (or --connect to a server).
    #[command(flatten)]
    target: StoreTarget,
}

/// The tools on a node over the peer protocol: every form is a QUERY. The server decides the
/// rights of a connection: the one with this Etch directory's key gets admin rights where the
/// server grants them (writes); reads go over a second connection without a key, so they get
/// only client rights whatever the key (`etch_query` stays a read there).
struct RemoteBackend {
    address: String,
    client: Arc<BlockingClient>,
    reader: std::sync::OnceLock<Result<Arc<BlockingClient>, String>>,
    resolver: RemoteResolver,
}

impl RemoteBackend {
    fn reader(&self) -> Result<&Arc<BlockingClient>, EvalError> {
        self.reader
            .get_or_init(|| {
                BlockingClient::connect(&self.address, None)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| EvalError::new("CONNECT", e.clone()))
    }
}

impl McpBackend for RemoteBackend {
    fn eval(&self, form: &Cell, rights: Rights) -> Result<Cell, EvalError> {
        let client = match rights {
            Rights::Admin => &self.client,
            Rights::Client { .. } => self.reader()?,
        };
        etch_shell::remote::eval_remote_form(client, form.clone())
    }

    fn resolver(&self) -> &dyn Resolver {
        &self.resolver
    }

    fn now_s(&self) -> i64 {
        etch_engine::node::wall_clock_ms().div_euclid(1000)
    }
}

/// Runs `etch mcp`.
pub fn run(args: McpArgs) -> io::Result<ExitCode> {
    let backend: Arc<dyn McpBackend> = if let Some(address) = &args.target.connect {
        let client = match BlockingClient::connect(address, client_key()) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                eprintln!("etch: cannot connect to {address}: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        Arc::new(RemoteBackend {
            address: address.clone(),
            resolver: RemoteResolver::new(client.clone()),
            client,
            reader: std::sync::OnceLock::new(),
        })
    } else {
        let Some(path) = &args.target.store else {
            eprintln!("etch: mcp needs --store PATH or --connect HOST:PORT");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        };
        match open_node(path, &args.target, Need::WriteOrRead) {
            Ok(o) => {
                eprintln!("etch mcp: serving {} over stdio", o.label);
                Arc::new(NodeBackend::new(o.node, EVAL_TIMEOUT))
            }
            Err(e) => {
                eprintln!("etch: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve_stdio(Tools::operator(backend.clone())));
    // The last reference to the backend goes here, outside the runtime: a remote backend's
    // client has a runtime of its own, which must not be dropped inside another.
    drop(runtime);
    drop(backend);
    match served {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("etch mcp: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
