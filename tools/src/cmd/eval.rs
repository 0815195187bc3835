//! `etch eval`: evaluate a query expression (or a script from stdin) and print the result.

use etch_engine::query::{eval_text, Env};
use etch_engine::store::EtchStore;
use etch_formats::text::print;
use etch_formats::{NoResolver, Resolver};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `etch eval`.
#[derive(clap::Args)]
#[command(
    long_about = "Evaluates an expression of the query language (a subset of Convex Lisp, \
see the query spec) and prints the result as Convex-Lisp text, exiting 0. On an error it prints \
`Exception: :CODE message` to stderr and exits 1. With EXPR `-`, the script is read from stdin \
(several forms are evaluated in order, as `(do ...)`).\n\n\
With --store, values are read from that Etch file (opened read-only); branch cells load lazily, \
so `(count ...)` of a huge stored value is instant. Without it, only values written in the \
expression exist."
)]
pub struct EvalArgs {
    /// The expression, or `-` to read a script from stdin.
    expr: String,
    /// An Etch store to read values from.
    #[arg(long)]
    store: Option<PathBuf>,
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
    let store = match &args.store {
        Some(p) => match EtchStore::open(p, false) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("etch: {e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let resolver: &dyn Resolver = match &store {
        Some(s) => s,
        None => &NoResolver,
    };
    let mut env = Env::new();
    match eval_text(&text, &mut env, resolver) {
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
