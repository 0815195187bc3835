//! `etch eval`: evaluate a query expression (or a script from stdin) and print the result.

use super::shell::{open_node, StoreTarget};
use etch_engine::query::{eval_text_in, Env, EvalContext, EvalError};
use etch_formats::text::print;
use etch_formats::{Cell, NoResolver, Resolver};
use std::io::{self, Read, Write};
use std::process::ExitCode;

/// Arguments of `etch eval`.
#[derive(clap::Args)]
#[command(
    long_about = "Evaluates an expression of the query language (a subset of Convex Lisp, \
see the query spec) and prints the result as Convex-Lisp text, exiting 0. On an error it prints \
`Exception: :CODE message` to stderr and exits 1. With EXPR `-`, the script is read from stdin \
(several forms are evaluated in order, as `(do ...)`).\n\n\
With --store, the query runs on that store with the shell's full rights: stored values are read \
lazily (so `(count ...)` of a huge stored value is instant) and `store`, `merge!`, \
`set-root!` and the DLFS writes commit to it (use --read-only to forbid writes). The node key is \
the shell's (node.key in the Etch directory), so DLFS locations name the same drives. Without --store no store is opened: \
only values written in the expression exist and storage functions fail with :STATE.\n\n\
With --connect HOST:PORT, the expression runs on that server (`etch serve`) as a QUERY message \
and prints exactly what a local run prints. The server grants client rights (reads, `store` and \
`merge!` unless it runs with --read-only-clients; no set-root! or DLFS writes), or admin rights \
when the node key of the Etch directory is the server's own key or one it lists with --admin \
(it asks the client to prove it by CHALLENGE)."
)]
pub struct EvalArgs {
    /// The expression, or `-` to read a script from stdin.
    expr: String,
    /// The store to run on (none: no store).
    #[command(flatten)]
    target: StoreTarget,
}

/// Runs `etch eval`.
pub fn run(args: EvalArgs) -> io::Result<ExitCode> {
    let text = if args.expr == "-" {
        let mut s = String::new();
        io::stdin().read_to_string(&mut s)?;
        s
    } else {
        args.expr
    };
    if let Some(address) = &args.target.connect {
        return run_remote(address, &text);
    }
    let opened = match &args.target.store {
        Some(p) => match open_node(p, &args.target) {
            Ok(x) => Some(x),
            Err(e) => {
                eprintln!("etch: {e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let mut ctx = EvalContext::new(&NoResolver);
    if let Some((store, node, _)) = &opened {
        ctx.resolver = store.as_ref();
        ctx.node = Some(node.as_ref());
    }
    let resolver: &dyn Resolver = ctx.resolver;
    let mut env = Env::new();
    report(eval_text_in(&text, &mut env, &ctx), resolver)
}

/// Prints a result (stdout, exit 0) or its error (stderr, exit 1), the same for a local and a
/// remote evaluation.
fn report(result: Result<Cell, EvalError>, resolver: &dyn Resolver) -> io::Result<ExitCode> {
    match result {
        Ok(value) => match print(&value, resolver) {
            Ok(t) => {
                writeln!(io::stdout().lock(), "{t}")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("Exception: :MISSING {e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Err(e) => {
            eprintln!("Exception: :{} {}", e.code, e.message);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `etch eval --connect`: one QUERY; the output and exit code are those of a local run.
fn run_remote(address: &str, text: &str) -> io::Result<ExitCode> {
    use etch_server::client::{BlockingClient, RemoteResolver};
    use std::sync::Arc;
    // A reader error is reported before connecting, as a local run reports it.
    if let Err(e) = etch_shell::remote::query_form(text) {
        eprintln!("Exception: :{} {}", e.code, e.message);
        return Ok(ExitCode::FAILURE);
    }
    let client = match BlockingClient::connect(address, super::shell::client_key()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("etch: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let result = etch_shell::remote::eval_remote(&client, text);
    let resolver = RemoteResolver::new(client.clone());
    report(result, &resolver)
}
