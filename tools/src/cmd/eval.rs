//! `etch eval`: evaluate a query expression (or a script from stdin) and print the result.

use super::shell::{open_node, Need, StoreTarget};
use etch_engine::query::{eval_script, Env, EvalContext, EvalError, ScriptError};
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
(several forms are evaluated in order and the last value is printed).\n\n\
Each top-level form has its own budget of evaluation steps (--max-steps, :JUICE past it). A \
script stops at the first form that fails: the error names the line and column of that form and \
how many forms before it completed (what they wrote is committed), and the exit code is 1.\n\n\
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
    /// Evaluation steps each top-level form may take (a local run; a server sets its own).
    #[arg(long, value_name = "N", default_value_t = etch_engine::query::EVAL_STEPS_MAX)]
    max_steps: u64,
    /// Print one JSON object instead: {"ok": true, "value": TEXT} or {"ok": false, "code",
    /// "message", and for a script "line", "column", "completed", "forms"}.
    #[arg(long)]
    json: bool,
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
        return run_remote(address, &text, args.json);
    }
    let opened = match &args.target.store {
        Some(p) => match open_node(p, &args.target, Need::WriteOrRead) {
            Ok(x) => Some(x),
            Err(e) => {
                eprintln!("etch: {e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let mut ctx = EvalContext::new(&NoResolver);
    ctx.steps_max = args.max_steps.max(1);
    if let Some(o) = &opened {
        ctx.resolver = o.store.as_ref();
        ctx.node = Some(o.node.as_ref());
    }
    let resolver: &dyn Resolver = ctx.resolver;
    let mut env = Env::new();
    // A script's writes are committed together (at most a second apart), and all of them
    // before anything is reported: its result, or where it stopped.
    if let Some(o) = opened.as_ref().filter(|o| !o.read_only) {
        o.node.defer_commits();
    }
    let result = eval_script(&text, &mut env, &ctx);
    if let Some(o) = &opened {
        if let Err(e) = o.node.flush() {
            eprintln!(
                "etch: {}: the script's writes could not be committed: {e}",
                o.label
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let out = match result {
        Ok(v) => Ok(v),
        // One form, or text that does not read (its message says where): as before.
        Err(e) if e.forms <= 1 => Err(Failure::plain(e.error)),
        Err(e) => Err(Failure {
            at: Some(e.clone()),
            error: e.error,
        }),
    };
    report(out, resolver, args.json)
}

/// Why an evaluation failed, and where in a script.
struct Failure {
    error: EvalError,
    /// For a script of several forms (or text that did not read): where it stopped.
    at: Option<ScriptError>,
}

impl Failure {
    fn plain(error: EvalError) -> Failure {
        Failure { error, at: None }
    }

    /// The line under the error that says where the script stopped.
    fn position(&self) -> Option<String> {
        let at = self.at.as_ref()?;
        Some(format!(
                "  in the form at line {}, column {} (form {} of {}); the {} form(s) before it completed, and what they wrote is committed",
                at.line,
                at.column,
                at.completed + 1,
                at.forms,
                at.completed
            ))
    }
}

/// Prints a result (stdout, exit 0) or its error (stderr, exit 1), the same for a local and a
/// remote evaluation; with `json`, one JSON object on stdout either way.
fn report(
    result: Result<Cell, Failure>,
    resolver: &dyn Resolver,
    json: bool,
) -> io::Result<ExitCode> {
    let result = result.and_then(|v| {
        print(&v, resolver).map_err(|e| Failure::plain(EvalError::new("MISSING", e.to_string())))
    });
    if json {
        let obj = match &result {
            Ok(text) => serde_json::json!({"ok": true, "value": text}),
            Err(f) => {
                let mut o = serde_json::json!({
                    "ok": false,
                    "code": f.error.code,
                    "message": f.error.message,
                });
                if let Some(at) = &f.at {
                    o["line"] = at.line.into();
                    o["column"] = at.column.into();
                    o["completed"] = at.completed.into();
                    o["forms"] = at.forms.into();
                }
                o
            }
        };
        writeln!(io::stdout().lock(), "{obj}")?;
    } else {
        match &result {
            Ok(t) => writeln!(io::stdout().lock(), "{t}")?,
            Err(f) => {
                eprintln!("Exception: :{} {}", f.error.code, f.error.message);
                if let Some(p) = f.position() {
                    eprintln!("{p}");
                }
            }
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `etch eval --connect`: one QUERY; the output and exit code are those of a local run.
fn run_remote(address: &str, text: &str, json: bool) -> io::Result<ExitCode> {
    use etch_server::client::{BlockingClient, RemoteResolver};
    use std::sync::Arc;
    // A reader error is reported before connecting, as a local run reports it.
    if let Err(e) = etch_shell::remote::query_form(text) {
        return report(Err(Failure::plain(e)), &etch_formats::NoResolver, json);
    }
    let client = match BlockingClient::connect(address, super::shell::client_key()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("etch: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let result = etch_shell::remote::eval_remote(&client, text).map_err(Failure::plain);
    let resolver = RemoteResolver::new(client.clone());
    report(result, &resolver, json)
}
