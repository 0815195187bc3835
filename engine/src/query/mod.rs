//! The query evaluator: `query.md` §3 (evaluation model), §4 (special forms), §5 (core
//! functions, a first slice), §8.1 (error values) and §9 (resource limits).
//!
//! Values are [`Cell`]s; functions (built-ins and closures) exist only inside an evaluation and
//! in the session [`Env`]. Child refs are followed with [`Ref::fetch`](etch_formats::Ref::fetch),
//! which never attaches, so evaluating over a store holds only the paths being looked at:
//! `count` reads a header, `nth` descends one path.

mod builtins;
mod core;
mod docs;

pub use builtins::Builtin;
pub use docs::{all_docs, doc, Doc, Group, DOCS};

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use etch_formats::text::read::{read_all, read_all_at};
use etch_formats::{Cell, Kind, ResolveError, Resolver, ValueId};

/// Most evaluation steps one top-level form may take by default (`:JUICE`;
/// `EvalContext::steps_max`); each form evaluated is one step and functions linear in
/// collection size count one step per element. Each top-level form of a script has its own.
pub const EVAL_STEPS_MAX: u64 = 1_000_000;
/// Deepest nesting of evaluation (forms within forms, calls within calls) (`:DEPTH`).
pub const EVAL_DEPTH_MAX: usize = 256;
/// Largest result, in bytes of encoding of the cells an operation builds (`:LIMIT`).
pub const RESULT_SIZE_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Largest printed text `print` may produce, in bytes (`:LIMIT` `Print limit exceeded`).
pub const PRINT_TEXT_MAX_BYTES: usize = 65_536;
/// Stack an evaluation runs on: enough for [`EVAL_DEPTH_MAX`] levels.
const EVAL_STACK_BYTES: usize = 64 * 1024 * 1024;

/// A Convex-style error value: a code (a Keyword name, e.g. `"CAST"`) and a message (§8.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(":{code} {message}")]
pub struct EvalError {
    /// The error code without its colon: `ARITY`, `CAST`, `ARGUMENT`, `BOUNDS`, `UNDECLARED`,
    /// `SYNTAX`, `COMPILE`, `MISSING`, `JUICE`, `DEPTH`, `LIMIT`, `IO`.
    pub code: &'static str,
    /// The message, as the spec gives it.
    pub message: String,
}

impl EvalError {
    /// An error with this code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> EvalError {
        EvalError {
            code,
            message: message.into(),
        }
    }
}

impl From<ResolveError> for EvalError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Missing(id) => {
                EvalError::new("MISSING", format!("Missing data: 0x{}", id.to_hex()))
            }
            other => EvalError::new("IO", other.to_string()),
        }
    }
}

type Res<T> = Result<T, EvalError>;

/// A value during evaluation: data, or a function.
#[derive(Clone, Debug)]
pub enum Value {
    /// A data value.
    Data(Cell),
    /// A built-in function, by name.
    Builtin(&'static str),
    /// A closure made by `fn`.
    Closure(Arc<Closure>),
}

/// A closure: its arities (a parameter vector and a body each) and the local bindings it
/// captured.
#[derive(Debug)]
pub struct Closure {
    arities: Vec<Arity>,
    /// Made with the `(fn ([params] body) ...)` form (printed the same way).
    multi: bool,
    captured: Locals,
}

/// One arity of a closure.
#[derive(Debug)]
struct Arity {
    /// The parameter vector: a binding form (symbols, `_`, nested vectors, `& rest`).
    params: Cell,
    /// Arguments it takes, besides a rest parameter.
    fixed: usize,
    variadic: bool,
    body: Vec<Cell>,
}

impl Value {
    /// The data form of this value: a function becomes its printed form's value (a built-in's
    /// name as a Symbol, a closure as the list `(fn [params] body...)`).
    pub fn to_cell(&self) -> Cell {
        match self {
            Value::Data(c) => c.clone(),
            Value::Builtin(name) => Cell::symbol(name).unwrap_or_else(|_| Cell::nil()),
            Value::Closure(c) => {
                let fn_sym = Cell::symbol("fn").unwrap_or_else(|_| Cell::nil());
                // As Convex prints a compiled function: a body of several forms is one `do`.
                let arity = |a: &Arity| {
                    let mut items = vec![a.params.clone()];
                    if a.body.len() > 1 {
                        let mut body = vec![Cell::symbol("do").unwrap_or_else(|_| Cell::nil())];
                        body.extend(a.body.iter().cloned());
                        items.push(Cell::list(body));
                    } else {
                        items.extend(a.body.iter().cloned());
                    }
                    items
                };
                let mut items = vec![fn_sym];
                if c.multi {
                    items.extend(c.arities.iter().map(|a| Cell::list(arity(a))));
                } else {
                    items.extend(c.arities.iter().flat_map(arity));
                }
                Cell::list(items)
            }
        }
    }

    fn is_fn(&self) -> bool {
        !matches!(self, Value::Data(_))
    }
}

/// Local bindings (innermost last).
type Locals = Vec<(String, Value)>;

/// A session environment: the symbols `def` has bound, and the DLFS default owner
/// `set-owner!` chose.
#[derive(Debug, Default, Clone)]
pub struct Env {
    defs: HashMap<String, Value>,
    print_full: bool,
    owner: Option<Cell>,
}

impl Env {
    /// An empty session environment.
    pub fn new() -> Env {
        Env::default()
    }

    /// The value `def` bound to `name`, as data (functions in their printed form).
    pub fn get(&self, name: &str) -> Option<Cell> {
        self.defs.get(name).map(Value::to_cell)
    }

    /// The names `def` has bound, sorted (for completion).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.defs.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether the last evaluation asked (with `print-full`) to show its result in full;
    /// asking clears the request.
    pub fn take_print_full(&mut self) -> bool {
        std::mem::take(&mut self.print_full)
    }

    /// Binds `name` to a data value, as `def` does.
    pub fn define(&mut self, name: &str, value: Cell) {
        self.defs.insert(name.to_string(), Value::Data(value));
    }

    /// The DLFS default owner `set-owner!` chose (`None`: the node's own key).
    pub fn owner(&self) -> Option<&Cell> {
        self.owner.as_ref()
    }

    /// Sets (or, with `None`, resets to the node's own key) the DLFS default owner.
    pub fn set_owner(&mut self, owner: Option<Cell>) {
        self.owner = owner;
    }
}

/// Who is asking (query.md §6.5): the console and verified admin keys may do everything;
/// other QUERY senders may read, and `store`/`merge!` only if the node allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rights {
    /// The operator console or a verified admin key.
    Admin,
    /// Any other QUERY sender.
    Client {
        /// Whether `store` and `merge!` are allowed (the node's setting; default yes).
        may_write_data: bool,
    },
}

/// What the storage extensions (query.md §6) need from the node an evaluation runs on.
/// Every mutating call commits durably before it returns.
pub trait QueryNode: Sync {
    /// The committed root value (`#Index {}` for a node that has none yet).
    fn root(&self) -> Result<Cell, EvalError>;
    /// `(store v)`: persists `v`, merges `#Index {(value-id v) v}` into `[:data]`, commits.
    fn store(&self, value: &Cell) -> Result<ValueId, EvalError>;
    /// `(merge! path v)`: merges `v` at `path` as an incoming LATTICE_VALUE would, commits,
    /// and returns the new value at `path`.
    fn merge_at(&self, path: &[Cell], value: &Cell) -> Result<Cell, EvalError>;
    /// `(set-root! v)`: replaces the root, commits, returns its value ID.
    fn set_root(&self, value: &Cell) -> Result<ValueId, EvalError>;
    /// The node's own public key: the default owner of DLFS locations (query.md §6.3);
    /// `None` for a node without a key.
    fn public_key(&self) -> Option<[u8; 32]>;
    /// Writes drive `drive` of `owner` (the DLFS writes of query.md §6.3): `edit` gets the
    /// drive's current value (nil when absent), the node's time in ms and a resolver, and
    /// returns the new drive value, which the node signs into the owner's slot and commits.
    /// Returns the new drive value. `:TRUST` when the node does not hold the owner's key.
    fn edit_drive(
        &self,
        owner: &Cell,
        drive: &str,
        edit: &mut DriveEdit<'_>,
    ) -> Result<Cell, EvalError>;
    /// `(pin …)`: keeps `value` on this node under its ID (`crate::pins`), commits.
    fn pin(&self, value: &Cell, label: &str, source: &str) -> Result<ValueId, EvalError>;
    /// `(unpin id)`: drops the pin of `id`, commits; whether there was one.
    fn unpin(&self, id: &ValueId) -> Result<bool, EvalError>;
    /// `(gc)`: compacts the node's store while it serves (`crate::gc`); what it did.
    fn gc(&self) -> Result<crate::gc::GcReport, EvalError> {
        Err(EvalError::new(
            "STATE",
            "This node cannot compact while it serves; use etch compact on the stopped store",
        ))
    }
}

/// The edit of a drive write (see [`QueryNode::edit_drive`]).
pub type DriveEdit<'a> =
    dyn FnMut(&Cell, i64, &dyn Resolver) -> Result<Cell, crate::dlfs::DlfsError> + 'a;

impl From<crate::dlfs::DlfsError> for EvalError {
    fn from(e: crate::dlfs::DlfsError) -> Self {
        match e {
            crate::dlfs::DlfsError::Resolve(r) => r.into(),
            e => EvalError::new(e.code(), e.to_string()),
        }
    }
}

/// Everything an evaluation runs with besides its environment.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    /// Where branch cells come from.
    pub resolver: &'a dyn Resolver,
    /// The node for the storage extensions; without one they fail with `:STATE`.
    pub node: Option<&'a dyn QueryNode>,
    /// The rights of whoever asks.
    pub rights: Rights,
    /// Set from another thread (Ctrl-C) to stop the evaluation with `:CANCELLED`.
    pub cancel: Option<&'a AtomicBool>,
    /// Wall-clock limit; past it the evaluation stops with `:JUICE`.
    pub deadline: Option<Instant>,
    /// Steps each top-level form may take (`:JUICE` past it).
    pub steps_max: u64,
}

impl<'a> EvalContext<'a> {
    /// Full rights, no node, no cancellation, no deadline.
    pub fn new(resolver: &'a dyn Resolver) -> EvalContext<'a> {
        EvalContext {
            resolver,
            node: None,
            rights: Rights::Admin,
            cancel: None,
            deadline: None,
            steps_max: EVAL_STEPS_MAX,
        }
    }
}

/// Reads every form of `text` and evaluates them in order, as `(do ...)`, returning the last
/// value (nil for no forms). Reader errors are `:SYNTAX` with the reader's message.
pub fn eval_text(text: &str, env: &mut Env, resolver: &dyn Resolver) -> Result<Cell, EvalError> {
    eval_text_in(text, env, &EvalContext::new(resolver))
}

/// [`eval_text`] with a full context.
pub fn eval_text_in(text: &str, env: &mut Env, ctx: &EvalContext) -> Result<Cell, EvalError> {
    let forms = read_all(text).map_err(|e| EvalError::new("SYNTAX", e.to_string()))?;
    eval_forms(&forms, env, ctx)
}

/// The form a QUERY carries for `text`: its only form, nil for none, `(do f1 f2 ...)` for
/// several. A reader error is `:SYNTAX`, exactly as a local evaluation reports it.
pub fn query_form(text: &str) -> Result<Cell, EvalError> {
    let mut forms = read_all(text).map_err(|e| EvalError::new("SYNTAX", e.to_string()))?;
    Ok(match forms.len() {
        0 => Cell::nil(),
        1 => forms.remove(0),
        _ => {
            let head = Cell::symbol("do").map_err(|e| EvalError::new("SYNTAX", e.to_string()))?;
            forms.insert(0, head);
            Cell::list(forms)
        }
    })
}

/// Evaluates one form (a QUERY message's `form`: already a value, no text involved).
pub fn eval_form(form: &Cell, env: &mut Env, ctx: &EvalContext) -> Result<Cell, EvalError> {
    eval_forms(std::slice::from_ref(form), env, ctx)
}

/// Why a script stopped: the error, where the form that failed starts, and how many forms
/// before it completed (their writes are committed: each `store`, `merge!` … commits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// The error.
    pub error: EvalError,
    /// The failing form's first line (from 1) and column (from 0); for a reader error, where
    /// the reader stopped.
    pub line: usize,
    /// See `line`.
    pub column: usize,
    /// Top-level forms that completed before it (none ran for a reader error).
    pub completed: usize,
    /// Top-level forms in the script (0 for a reader error: the script was not read whole).
    pub forms: usize,
}

/// Evaluates a script: every top-level form of `text` in order, each with its own step budget
/// (`ctx.steps_max`), returning the last value (nil for none). Nothing runs when the text does
/// not read (`:SYNTAX`); a form that fails stops the script there.
pub fn eval_script(text: &str, env: &mut Env, ctx: &EvalContext) -> Result<Cell, ScriptError> {
    let forms = read_all_at(text).map_err(|e| ScriptError {
        error: EvalError::new("SYNTAX", e.to_string()),
        line: e.line,
        column: e.column,
        completed: 0,
        forms: 0,
    })?;
    let cells: Vec<Cell> = forms.iter().map(|f| f.form.clone()).collect();
    run_forms(&cells, env, ctx).map_err(|(i, error)| ScriptError {
        error,
        line: forms.get(i).map_or(0, |f| f.line),
        column: forms.get(i).map_or(0, |f| f.column),
        completed: i,
        forms: forms.len(),
    })
}

fn eval_forms(forms: &[Cell], env: &mut Env, ctx: &EvalContext) -> Result<Cell, EvalError> {
    run_forms(forms, env, ctx).map_err(|(_, e)| e)
}

/// Evaluates `forms` in order, each with its own step budget; an error comes with the index of
/// the form that failed.
fn run_forms(forms: &[Cell], env: &mut Env, ctx: &EvalContext) -> Result<Cell, (usize, EvalError)> {
    let run = || {
        let mut ev = Evaluator {
            env,
            ctx: *ctx,
            steps: 0,
            next_check: CHECK_EVERY_STEPS,
            depth: 0,
            escape: None,
            sets: Vec::new(),
        };
        let mut last = Value::Data(Cell::nil());
        for (i, f) in forms.iter().enumerate() {
            ev.steps = 0;
            ev.next_check = CHECK_EVERY_STEPS;
            ev.sets.clear();
            last = match ev.eval(f, &Vec::new()) {
                Err(e) if e.code == RETURN_SIGNAL => ev.take_return(),
                other => other.map_err(|e| (i, unhandled_escape(e)))?,
            };
        }
        Ok(last.to_cell())
    };
    // EVAL_DEPTH_MAX levels must always fit: the evaluation runs on a stack of
    // EVAL_STACK_BYTES mapped for this call (stacker; or on the caller's own stack when that
    // many bytes are left), not on a thread of its own: starting a thread cost about 0.1 ms
    // per evaluation (benches/lookup.rs, "evaluation"). A panic stays on that stack and comes
    // back as an error, as a thread's did.
    stacker::maybe_grow(EVAL_STACK_BYTES, EVAL_STACK_BYTES, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
    })
    .unwrap_or_else(|_| Err((0, EvalError::new("IO", "evaluation failed"))))
}

/// Where `&` (before a rest parameter) stands in a binding vector's elements.
fn rest_marker(targets: &[Cell]) -> Option<usize> {
    targets
        .iter()
        .position(|p| p.kind() == Kind::Symbol && name_of(p).as_deref() == Some("&"))
}

/// Checks that `target` can bind: a symbol, or a vector of binding forms (`:COMPILE` as Convex
/// says it otherwise).
fn check_binding_form(target: &Cell, r: &dyn Resolver) -> Result<(), EvalError> {
    match target.kind() {
        Kind::Symbol => Ok(()),
        Kind::Vector => {
            for t in etch_formats::value::elements(target, r)? {
                check_binding_form(&t, r)?;
            }
            Ok(())
        }
        _ => Err(EvalError::new("COMPILE", "Bad binding form")),
    }
}

/// A `recur` or `reduced` that reached the top of an evaluation: `:EXCEPTION`, as in Convex.
fn unhandled_escape(e: EvalError) -> EvalError {
    match e.code {
        RECUR_SIGNAL => EvalError::new("EXCEPTION", "recur used outside of a loop or function"),
        TAILCALL_SIGNAL => EvalError::new("EXCEPTION", "tailcall used outside of a function"),
        REDUCED_SIGNAL => EvalError::new("EXCEPTION", "reduced used outside of a reduce operation"),
        _ => e,
    }
}

/// How often (in steps) an evaluation looks at its cancel flag and deadline.
const CHECK_EVERY_STEPS: u64 = 1024;

/// One evaluation: its environment, context and budgets.
pub(crate) struct Evaluator<'a> {
    env: &'a mut Env,
    ctx: EvalContext<'a>,
    steps: u64,
    next_check: u64,
    depth: usize,
    /// The values of a `recur` or `reduced` unwinding now.
    escape: Option<Escape>,
    /// What `set!` gave local names in the current scope (newest last): seen before the
    /// scope's bindings, carried into the scopes and closures made inside it, and dropped when
    /// the scope ends (a `let`, a loop iteration, a function call, a top-level form), as
    /// Convex restores a scope's locals.
    sets: Vec<(String, Value)>,
}

pub(crate) const SPECIAL_FORMS: &[&str] = &[
    "quote",
    "if",
    "cond",
    "do",
    "let",
    "def",
    "fn",
    "and",
    "or",
    "when",
    "loop",
    "dotimes",
    "if-let",
    "when-let",
    "when-not",
    "defn",
    "assert",
    "switch",
    "for",
    "for-loop",
    "quasiquote",
    "unquote",
    "tailcall",
    "set!",
    "set-in!",
];

/// The error code that carries `recur` to the nearest enclosing loop or function call (never
/// seen outside an evaluation: at the top it becomes `:EXCEPTION`).
pub(crate) const RECUR_SIGNAL: &str = "RECUR";
/// The error code that carries `reduced` to the nearest enclosing `reduce`.
pub(crate) const REDUCED_SIGNAL: &str = "REDUCED";
/// The error code that carries `tailcall` to the enclosing function call, which makes the call
/// in its place (no deeper).
pub(crate) const TAILCALL_SIGNAL: &str = "TAILCALL";
/// The error code that carries `return` to the enclosing function call (at the top, the
/// form's value).
pub(crate) const RETURN_SIGNAL: &str = "RETURN";

/// What `recur` or `reduced` carries while it unwinds.
enum Escape {
    Recur(Vec<Value>),
    Reduced(Value),
    Return(Value),
    TailCall(Value, Vec<Value>),
}

pub(crate) fn juice_error() -> EvalError {
    EvalError::new("JUICE", "Query step limit exceeded")
}

pub(crate) fn limit_error() -> EvalError {
    EvalError::new("LIMIT", "Resource limit exceeded")
}

/// The type name of a value in messages (§3.4).
pub(crate) fn type_name(c: &Cell) -> &'static str {
    // The cell model's names, except that kinds the query language has no type for
    // (SignedData, other byte flags, coded and extension values) are plain "Value".
    match c.kind() {
        Kind::Signed | Kind::Coded(_) => "Value",
        Kind::ByteFlag(_) if c.as_bool().is_none() => "Value",
        Kind::Extension(t) if t != etch_formats::tag::ADDRESS => "Value",
        k => k.name(),
    }
}

pub(crate) fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::Data(c) => type_name(c),
        _ => "Function",
    }
}

pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Data(c) => !(c.is_nil() || c.as_bool() == Some(false)),
        _ => true,
    }
}

pub(crate) fn name_of(c: &Cell) -> Option<String> {
    c.name_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

impl<'a> Evaluator<'a> {
    pub(crate) fn step(&mut self, n: u64) -> Res<()> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.ctx.steps_max {
            return Err(juice_error());
        }
        if self.steps >= self.next_check {
            self.next_check = self.steps + CHECK_EVERY_STEPS;
            if self
                .ctx
                .cancel
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(EvalError::new("CANCELLED", "Query cancelled"));
            }
            if self.ctx.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(EvalError::new("JUICE", "Query time limit exceeded"));
            }
        }
        Ok(())
    }

    pub(crate) fn resolver(&self) -> &'a dyn Resolver {
        self.ctx.resolver
    }

    /// The node, for a storage extension; `:STATE` when evaluating without one.
    pub(crate) fn node(&self, name: &str) -> Res<&'a dyn QueryNode> {
        self.ctx.node.ok_or_else(|| {
            EvalError::new("STATE", format!("{name} needs a store (no store is open)"))
        })
    }

    /// The node, if the evaluation has one.
    pub(crate) fn node_opt(&self) -> Option<&'a dyn QueryNode> {
        self.ctx.node
    }

    /// Checks that the caller may run an operation of this rights class (query.md §6.5).
    pub(crate) fn require(&self, admin_only: bool) -> Res<()> {
        match self.ctx.rights {
            Rights::Admin => Ok(()),
            Rights::Client { may_write_data } if !admin_only && may_write_data => Ok(()),
            Rights::Client { .. } => {
                Err(EvalError::new("TRUST", "Operation requires admin rights"))
            }
        }
    }

    /// Asks the REPL to show this evaluation's result in full.
    pub(crate) fn request_full_print(&mut self) {
        self.env.print_full = true;
    }

    /// Prints a cell (for messages and `str`), resolving through the store.
    pub(crate) fn print(&self, c: &Cell) -> Res<String> {
        print_cell(c, self.ctx.resolver, PRINT_TEXT_MAX_BYTES)
    }

    /// Evaluates `form` (data made by the program) as code, without local bindings.
    pub(crate) fn eval_data(&mut self, form: &Cell) -> Res<Value> {
        self.eval(form, &Vec::new())
    }

    fn eval(&mut self, form: &Cell, locals: &Locals) -> Res<Value> {
        self.step(1)?;
        if self.depth >= EVAL_DEPTH_MAX {
            return Err(EvalError::new("DEPTH", "Depth limit exceeded"));
        }
        self.depth += 1;
        let r = self.eval_inner(form, locals);
        self.depth -= 1;
        r
    }

    fn eval_inner(&mut self, form: &Cell, locals: &Locals) -> Res<Value> {
        match form.kind() {
            Kind::Symbol => {
                let name = name_of(form).unwrap_or_default();
                self.lookup(&name, locals)
            }
            Kind::Vector => {
                let items = self.elements(form)?;
                let mut out = Vec::with_capacity(items.len());
                for it in &items {
                    out.push(self.eval(it, locals)?.to_cell());
                }
                Ok(Value::Data(Cell::vector(out)))
            }
            Kind::Map => {
                let mut entries = Vec::new();
                for (k, v) in self.entries(form)? {
                    let k = self.eval(&k, locals)?.to_cell();
                    let v = self.eval(&v, locals)?.to_cell();
                    entries.push((k, v));
                }
                Ok(Value::Data(Cell::map(entries)))
            }
            Kind::Set => {
                let mut out = Vec::new();
                for (k, _) in self.entries(form)? {
                    out.push(self.eval(&k, locals)?.to_cell());
                }
                Ok(Value::Data(Cell::set(out)))
            }
            Kind::Syntax => {
                let datum = match form.refs().first() {
                    Some(r) => r.fetch(self.ctx.resolver)?,
                    None => Cell::nil(),
                };
                self.eval(&datum, locals)
            }
            Kind::List => {
                if form.count() == 0 {
                    return Ok(Value::Data(form.clone()));
                }
                let items = self.elements(form)?;
                if items[0].kind() == Kind::Symbol {
                    let name = name_of(&items[0]).unwrap_or_default();
                    if SPECIAL_FORMS.contains(&name.as_str()) {
                        return self.special(&name, form, &items[1..], locals);
                    }
                }
                let op = self.eval(&items[0], locals)?;
                let mut args = Vec::with_capacity(items.len() - 1);
                for a in &items[1..] {
                    args.push(self.eval(a, locals)?);
                }
                self.apply(&op, args)
            }
            _ => Ok(Value::Data(form.clone())),
        }
    }

    fn lookup(&self, name: &str, locals: &Locals) -> Res<Value> {
        let set = self.sets.iter().rev().find(|(n, _)| n == name);
        if let Some((_, v)) = set.or_else(|| locals.iter().rev().find(|(n, _)| n == name)) {
            return Ok(v.clone());
        }
        if let Some(v) = self.env.defs.get(name) {
            return Ok(v.clone());
        }
        if let Some(b) = builtins::find(name) {
            return Ok(Value::Builtin(b.doc.name));
        }
        Err(EvalError::new("UNDECLARED", name))
    }

    /// The bindings a scope made here starts from: `locals` and what `set!` gave them.
    fn visible(&self, locals: &Locals) -> Locals {
        let mut v = locals.clone();
        v.extend(self.sets.iter().cloned());
        v
    }

    /// Runs `f` as a new scope: what `set!` does inside it ends with it.
    fn scoped<T>(&mut self, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        let outer = std::mem::take(&mut self.sets);
        let r = f(self);
        self.sets = outer;
        r
    }

    /// `(set! sym value)`: a local name takes the value for the rest of its scope; a name
    /// defined with `def` is defined again; any other name is `:UNDECLARED` (Convex
    /// `Compiler.compileSetBang`).
    fn eval_set(&mut self, args: &[Cell], locals: &Locals) -> Res<Value> {
        if args.len() != 2 {
            return Err(EvalError::new(
                "ARITY",
                "set! requires two arguments, a symbol and an expression",
            ));
        }
        if args[0].kind() != Kind::Symbol {
            return Err(EvalError::new(
                "SYNTAX",
                "set! requires a symbol as first argument",
            ));
        }
        let name = name_of(&args[0]).unwrap_or_default();
        let v = self.eval(&args[1], locals)?;
        let local =
            self.sets.iter().any(|(n, _)| *n == name) || locals.iter().any(|(n, _)| *n == name);
        if local {
            self.sets.push((name, v.clone()));
            return Ok(v);
        }
        match self.env.defs.get_mut(&name) {
            Some(def) => *def = v.clone(),
            None => return Err(EvalError::new("UNDECLARED", name)),
        }
        Ok(v)
    }

    fn eval_body(&mut self, body: &[Cell], locals: &Locals) -> Res<Value> {
        let mut last = Value::Data(Cell::nil());
        for f in body {
            last = self.eval(f, locals)?;
        }
        Ok(last)
    }

    fn special(&mut self, name: &str, form: &Cell, args: &[Cell], locals: &Locals) -> Res<Value> {
        let nil = || Value::Data(Cell::nil());
        match name {
            "quote" => {
                if args.len() != 1 {
                    return Err(EvalError::new("ARITY", "quote requires one argument."));
                }
                Ok(Value::Data(args[0].clone()))
            }
            "if" => {
                let Some(test) = args.first().filter(|_| (2..=3).contains(&args.len())) else {
                    return Err(EvalError::new("ARITY", "`if` requires 2 or 3 arguments"));
                };
                if truthy(&self.eval(test, locals)?) {
                    match args.get(1) {
                        Some(t) => self.eval(t, locals),
                        None => Ok(nil()),
                    }
                } else {
                    match args.get(2) {
                        Some(e) => self.eval(e, locals),
                        None => Ok(nil()),
                    }
                }
            }
            "cond" => self.clauses(args, locals, |_, v| truthy(v)),
            "do" => self.eval_body(args, locals),
            "when" => {
                let Some(test) = args.first() else {
                    return Err(EvalError::new(
                        "ARITY",
                        "Insufficient arguments (0) for binding form: [test & body]",
                    ));
                };
                if truthy(&self.eval(test, locals)?) {
                    self.eval_body(&args[1..], locals)
                } else {
                    Ok(nil())
                }
            }
            "and" => {
                let mut last = Value::Data(Cell::bool(true));
                for a in args {
                    last = self.eval(a, locals)?;
                    if !truthy(&last) {
                        return Ok(last);
                    }
                }
                Ok(last)
            }
            "or" => {
                let mut last = nil();
                for a in args {
                    last = self.eval(a, locals)?;
                    if truthy(&last) {
                        return Ok(last);
                    }
                }
                Ok(last)
            }
            "let" => {
                let pairs = self.binding_pairs("let", args.first())?;
                let mut inner = self.visible(locals);
                self.scoped(|ev| {
                    for (target, init) in &pairs {
                        let v = ev.eval(init, &inner)?;
                        ev.bind(target, v, &mut inner)?;
                    }
                    ev.eval_body(&args[1..], &inner)
                })
            }
            "set!" => self.eval_set(args, locals),
            "set-in!" => {
                // Convex's macro: (set! sym (assoc-in sym path value)).
                if args.len() != 3 {
                    return Err(EvalError::new(
                        "ARITY",
                        format!("set-in! requires arity 3 but called with: {}", args.len()),
                    ));
                }
                let assoc_in = Cell::list(vec![
                    Cell::symbol("assoc-in").map_err(|_| limit_error())?,
                    args[0].clone(),
                    args[1].clone(),
                    args[2].clone(),
                ]);
                self.eval_set(&[args[0].clone(), assoc_in], locals)
            }
            "loop" => self.eval_loop(args, locals),
            "dotimes" => self.eval_dotimes(args, locals),
            "if-let" | "when-let" => self.eval_if_let(name, args, locals),
            "when-not" => {
                let Some(test) = args.first() else {
                    return Err(EvalError::new(
                        "ARITY",
                        "Insufficient arguments (0) for binding form: [test & body]",
                    ));
                };
                if truthy(&self.eval(test, locals)?) {
                    Ok(nil())
                } else {
                    self.eval_body(&args[1..], locals)
                }
            }
            "defn" => self.eval_defn(args, locals),
            "switch" => {
                let Some(exp) = args.first() else {
                    return Err(EvalError::new(
                        "ARITY",
                        "Insufficient arguments (0) for binding form: [exp & cases]",
                    ));
                };
                let v = self.eval(exp, locals)?.to_cell();
                self.clauses(&args[1..], locals, |_, t| t.to_cell() == v)
            }
            "for" => self.eval_for(args, locals),
            "quasiquote" => {
                if args.len() != 1 {
                    return Err(EvalError::new("ARITY", "quasiquote requires one argument."));
                }
                Ok(Value::Data(self.quasi(&args[0], locals)?))
            }
            "unquote" => {
                if args.len() != 1 {
                    return Err(EvalError::new("ARITY", "unquote requires one argument."));
                }
                self.eval(&args[0], locals)
            }
            "tailcall" => {
                let call = match args {
                    [c] if c.kind() == Kind::List && c.count() > 0 => self.elements(c)?,
                    _ => {
                        return Err(EvalError::new(
                            "ARITY",
                            "tailcall requires one function call",
                        ))
                    }
                };
                let op = self.eval(&call[0], locals)?;
                let mut vals = Vec::with_capacity(call.len() - 1);
                for a in &call[1..] {
                    vals.push(self.eval(a, locals)?);
                }
                self.escape = Some(Escape::TailCall(op, vals));
                Err(EvalError::new(TAILCALL_SIGNAL, "tailcall"))
            }
            "for-loop" => self.eval_for_loop(args, locals),
            "assert" => {
                for t in args {
                    if !truthy(&self.eval(t, locals)?) {
                        return Err(EvalError::new(
                            "ASSERT",
                            format!("Assert failed: {}", self.print(t)?),
                        ));
                    }
                }
                Ok(nil())
            }
            "def" => {
                if args.len() > 2 {
                    return Err(EvalError::new("COMPILE", "Too many arguments to def"));
                }
                let target = args.first().cloned().unwrap_or_else(Cell::nil);
                if target.kind() != Kind::Symbol {
                    return Err(EvalError::new(
                        "COMPILE",
                        format!(
                            "def requires a Symbol as first argument but got: {}",
                            type_name(&target)
                        ),
                    ));
                }
                let v = match args.get(1) {
                    Some(e) => self.eval(e, locals)?,
                    None => nil(),
                };
                let name = name_of(&target).unwrap_or_default();
                self.env.defs.insert(name, v.clone());
                Ok(v)
            }
            "fn" => {
                let (multi, arities) = match args.first().map(Cell::kind) {
                    Some(Kind::Vector) => (false, vec![self.arity(&args[0], &args[1..])?]),
                    Some(Kind::List) => {
                        let mut arities = Vec::new();
                        for a in args {
                            let items = match a.kind() {
                                Kind::List => self.elements(a)?,
                                _ => Vec::new(),
                            };
                            match items.first() {
                                Some(p) if p.kind() == Kind::Vector => {
                                    arities.push(self.arity(p, &items[1..])?)
                                }
                                _ => {
                                    return Err(EvalError::new(
                                        "SYNTAX",
                                        format!(
                                            "multi-function requires instances of form: ([args] ...) but got {}",
                                            self.print(a)?
                                        ),
                                    ))
                                }
                            }
                        }
                        (true, arities)
                    }
                    None => {
                        return Err(EvalError::new(
                            "ARITY",
                            format!(
                                "fn requires parameter vector and body in form: {}",
                                self.print(form)?
                            ),
                        ))
                    }
                    Some(_) => {
                        return Err(EvalError::new(
                            "SYNTAX",
                            format!(
                                "fn requires a parameter vector or arity lists but got: {}",
                                self.print(&args[0])?
                            ),
                        ))
                    }
                };
                Ok(Value::Closure(Arc::new(Closure {
                    arities,
                    multi,
                    captured: self.visible(locals),
                })))
            }
            _ => Err(EvalError::new("UNDECLARED", name)),
        }
    }

    /// The `[target init ...]` vector of `let` or `loop` (`what`), checked as Convex does.
    fn binding_pairs(&self, what: &str, bindings: Option<&Cell>) -> Res<Vec<(Cell, Cell)>> {
        let Some(bindings) = bindings else {
            return Err(EvalError::new(
                "SYNTAX",
                format!("{what} requires a binding form vector at minimum"),
            ));
        };
        if bindings.kind() != Kind::Vector {
            return Err(EvalError::new(
                "SYNTAX",
                format!(
                    "{what} requires a vector of binding forms but got: {}",
                    self.print(bindings)?
                ),
            ));
        }
        if !bindings.count().is_multiple_of(2) {
            return Err(EvalError::new(
                "SYNTAX",
                format!(
                    "{what} requires a binding vector with an even number of forms but got: {}",
                    bindings.count()
                ),
            ));
        }
        let items = etch_formats::value::elements(bindings, self.ctx.resolver)?;
        Ok(items
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect())
    }

    /// `(loop [sym init ...] body...)`: `recur` in the body (not in a function it calls)
    /// evaluates the body again with the symbols bound to its values.
    fn eval_loop(&mut self, args: &[Cell], locals: &Locals) -> Res<Value> {
        let pairs = self.binding_pairs("loop", args.first())?;
        let locals = &self.visible(locals);
        let mut inner = locals.clone();
        for (target, init) in &pairs {
            let v = self.eval(init, &inner)?;
            self.bind(target, v, &mut inner)?;
        }
        loop {
            match self.scoped(|ev| ev.eval_body(&args[1..], &inner)) {
                Err(e) if e.code == RECUR_SIGNAL => {
                    let again = self.take_recur();
                    if again.len() != pairs.len() {
                        return Err(EvalError::new(
                            "ARITY",
                            format!(
                                "Expected {} value(s) for recur but got: {}",
                                pairs.len(),
                                again.len()
                            ),
                        ));
                    }
                    inner = locals.clone();
                    for ((target, _), v) in pairs.iter().zip(again) {
                        self.bind(target, v, &mut inner)?;
                    }
                }
                other => return other,
            }
        }
    }

    /// `(dotimes [sym n] body...)`: the body with sym bound to 0 .. n-1; nil. (Convex takes
    /// only a literal n; any expression giving an integer is taken here.)
    fn eval_dotimes(&mut self, args: &[Cell], locals: &Locals) -> Res<Value> {
        let items = self.macro_binding(args, 2, "[sym count]")?;
        let n = self.eval(&items[1], locals)?;
        let count = match &n {
            Value::Data(c) => c.as_long().or_else(|| c.as_double().map(|d| d as i64)),
            _ => None,
        }
        .ok_or_else(|| core::cast_pos(1, &n, "Integer"))?;
        if items[0].kind() != Kind::Symbol {
            return Err(EvalError::new(
                "CAST",
                "`dotimes` requires a symbol for loop binding",
            ));
        }
        let sym = self.binding_name(&items[0])?;
        for i in 0..count.max(0) {
            self.step(1)?;
            let mut inner = self.visible(locals);
            if let Some(s) = &sym {
                inner.push((s.clone(), Value::Data(Cell::long(i))));
            }
            self.scoped(|ev| ev.eval_body(&args[1..], &inner))?;
        }
        Ok(Value::Data(Cell::nil()))
    }

    /// `test expr ... default?` clauses (`cond`, `switch`): the expr of the first test whose
    /// value `hit` accepts, else the default, else nil.
    fn clauses(
        &mut self,
        clauses: &[Cell],
        locals: &Locals,
        hit: impl Fn(&Self, &Value) -> bool,
    ) -> Res<Value> {
        let mut i = 0;
        while i + 1 < clauses.len() {
            let t = self.eval(&clauses[i], locals)?;
            if hit(self, &t) {
                return self.eval(&clauses[i + 1], locals);
            }
            i += 2;
        }
        match clauses.get(i) {
            Some(default) => self.eval(default, locals),
            None => Ok(Value::Data(Cell::nil())),
        }
    }

    /// `(quasiquote x)`: x as data, with each `(unquote y)` in it replaced by y's value.
    fn quasi(&mut self, x: &Cell, locals: &Locals) -> Res<Cell> {
        match x.kind() {
            Kind::List | Kind::Vector => {
                let items = self.elements(x)?;
                let is_unquote = x.kind() == Kind::List
                    && items.first().is_some_and(|h| {
                        h.kind() == Kind::Symbol && name_of(h).as_deref() == Some("unquote")
                    });
                if is_unquote {
                    if items.len() != 2 {
                        return Err(EvalError::new("ARITY", "unquote requires one argument."));
                    }
                    return Ok(self.eval(&items[1], locals)?.to_cell());
                }
                let mut out = Vec::with_capacity(items.len());
                for it in &items {
                    out.push(self.quasi(it, locals)?);
                }
                Ok(if x.kind() == Kind::List {
                    Cell::list(out)
                } else {
                    Cell::vector(out)
                })
            }
            Kind::Map => {
                let mut out = Vec::new();
                for (k, v) in self.entries(x)? {
                    out.push((self.quasi(&k, locals)?, self.quasi(&v, locals)?));
                }
                Ok(Cell::map(out))
            }
            _ => Ok(x.clone()),
        }
    }

    /// The binding vector of `for` or `for-loop` (`[a b ...]` of `n` forms), checked as the
    /// Convex macros' destructuring checks it.
    fn macro_binding(&mut self, args: &[Cell], n: usize, form: &str) -> Res<Vec<Cell>> {
        if args.is_empty() {
            return Err(EvalError::new(
                "ARITY",
                format!("Insufficient arguments (0) for binding form: [{form} & body]"),
            ));
        }
        let binding = args.first().filter(|b| b.kind() == Kind::Vector);
        let Some(binding) = binding else {
            return Err(EvalError::new(
                "CAST",
                "Trying to destructure an argument that is not a sequential collection",
            ));
        };
        let items = self.elements(binding)?;
        if items.len() != n {
            return Err(EvalError::new(
                "ARITY",
                format!(
                    "Expected {n} arguments but got {} for binding form: {form}",
                    items.len()
                ),
            ));
        }
        Ok(items)
    }

    /// `(for [sym coll] body...)`: a vector of the body's values with sym bound to each
    /// element of coll in turn.
    fn eval_for(&mut self, args: &[Cell], locals: &Locals) -> Res<Value> {
        let items = self.macro_binding(args, 2, "[sym sequence]")?;
        let coll = self.eval(&items[1], locals)?;
        let n = builtins::call(self, "count", vec![coll.clone()])?
            .to_cell()
            .as_long()
            .unwrap_or(0);
        let sym = self.binding_name(&items[0])?;
        let mut out = Vec::new();
        for i in 0..n {
            let x = builtins::call(self, "nth", vec![coll.clone(), Value::Data(Cell::long(i))])?;
            let mut inner = self.visible(locals);
            if let Some(s) = &sym {
                inner.push((s.clone(), x));
            }
            out.push(
                self.scoped(|ev| ev.eval_body(&args[1..], &inner))?
                    .to_cell(),
            );
        }
        core::check_size(&out)?;
        Ok(Value::Data(Cell::vector(out)))
    }

    /// `(for-loop [sym init test change] body...)`: while test holds, the body, then sym
    /// bound to change; the body's last value (nil if it never ran).
    fn eval_for_loop(&mut self, args: &[Cell], locals: &Locals) -> Res<Value> {
        let items = self.macro_binding(args, 4, "[sym init condition change]")?;
        if items[0].kind() != Kind::Symbol {
            return Err(EvalError::new("COMPILE", "Bad binding form"));
        }
        let sym = self.binding_name(&items[0])?;
        let mut cur = self.eval(&items[1], locals)?;
        let mut last = Value::Data(Cell::nil());
        loop {
            let mut inner = self.visible(locals);
            if let Some(s) = &sym {
                inner.push((s.clone(), cur.clone()));
            }
            if !truthy(&self.eval(&items[2], &inner)?) {
                return Ok(last);
            }
            let (body, change) = self.scoped(|ev| {
                let body = ev.eval_body(&args[1..], &inner)?;
                Ok((body, ev.eval(&items[3], &inner)?))
            })?;
            last = body;
            cur = change;
        }
    }

    /// `(if-let [sym test] then else?)`, `(when-let [sym test] body...)`.
    fn eval_if_let(&mut self, name: &str, args: &[Cell], locals: &Locals) -> Res<Value> {
        let arity_ok = match name {
            "if-let" => (2..=3).contains(&args.len()),
            _ => !args.is_empty(),
        };
        let binding = args.first().filter(|b| b.kind() == Kind::Vector);
        let (Some(binding), true) = (binding, arity_ok) else {
            return Err(EvalError::new(
                "ARITY",
                format!("No matching function arity found for arity {}", args.len()),
            ));
        };
        let items = self.elements(binding)?;
        if items.len() != 2 {
            return Err(EvalError::new(
                "ARITY",
                format!(
                    "Insufficient arguments ({}) for binding form: [sym exp]",
                    items.len()
                ),
            ));
        }
        check_binding_form(&items[0], self.ctx.resolver)?;
        let v = self.eval(&items[1], locals)?;
        if !truthy(&v) {
            return match (name, args.get(2)) {
                ("if-let", Some(e)) => self.eval(e, locals),
                _ => Ok(Value::Data(Cell::nil())),
            };
        }
        let mut inner = self.visible(locals);
        self.bind(&items[0], v, &mut inner)?;
        self.scoped(|ev| match name {
            "if-let" => ev.eval(&args[1], &inner),
            _ => ev.eval_body(&args[1..], &inner),
        })
    }

    /// `(defn name [params] body...)` or `(defn name ([params] body...) ...)`:
    /// `(def name (fn ...))`.
    fn eval_defn(&mut self, args: &[Cell], locals: &Locals) -> Res<Value> {
        let Some(name) = args.first() else {
            return Err(EvalError::new(
                "ARITY",
                "Insufficient arguments (0) for binding form: [name & decl]",
            ));
        };
        let Some(params) = args.get(1) else {
            return Err(EvalError::new(
                "ARITY",
                "`defn` requires at least one function definition",
            ));
        };
        match params.kind() {
            Kind::Vector | Kind::List => {}
            _ => {
                return Err(EvalError::new(
                    "SYNTAX",
                    format!(
                        "multi-function requires instances of form: ([args] ...) but got {}",
                        self.print(params)?
                    ),
                ))
            }
        }
        let mut fn_form =
            vec![Cell::symbol("fn").map_err(|e| EvalError::new("SYNTAX", e.to_string()))?];
        fn_form.extend(args[1..].iter().cloned());
        let fn_form = Cell::list(fn_form);
        let def = [
            Cell::symbol("def").map_err(|e| EvalError::new("SYNTAX", e.to_string()))?,
            name.clone(),
            fn_form,
        ];
        self.special("def", &Cell::list(def.to_vec()), &def[1..], locals)
    }

    /// A binding target: a symbol (its name), `_` (ignored: `None`); anything else is
    /// destructuring, which is not supported (`:SYNTAX`).
    fn binding_name(&self, target: &Cell) -> Res<Option<String>> {
        if target.kind() != Kind::Symbol {
            return Err(EvalError::new(
                "SYNTAX",
                format!("Unsupported binding form: {}", self.print(target)?),
            ));
        }
        let n = name_of(target).unwrap_or_default();
        Ok(if n == "_" { None } else { Some(n) })
    }

    /// Applies a function or data structure to evaluated arguments (§3.2).
    pub(crate) fn apply(&mut self, op: &Value, args: Vec<Value>) -> Res<Value> {
        match op {
            Value::Builtin(name) => builtins::call(self, name, args),
            Value::Closure(c) => self.call_closure(c, args),
            Value::Data(d) => self.apply_data(d, args),
        }
    }

    fn call_closure(&mut self, c: &Arc<Closure>, args: Vec<Value>) -> Res<Value> {
        let mut current = c.clone();
        let mut args = args;
        loop {
            match self.call_closure_once(&current, args) {
                // `recur` in the body calls the function again, without growing the stack.
                Err(e) if e.code == RECUR_SIGNAL => args = self.take_recur(),
                Err(e) if e.code == RETURN_SIGNAL => return Ok(self.take_return()),
                // `tailcall` makes its call here, in place of this one.
                Err(e) if e.code == TAILCALL_SIGNAL => {
                    let (op, next) = match self.escape.take() {
                        Some(Escape::TailCall(op, next)) => (op, next),
                        _ => return Err(EvalError::new("EXCEPTION", "tailcall lost")),
                    };
                    self.step(1)?;
                    match op {
                        Value::Closure(f) => {
                            current = f;
                            args = next;
                        }
                        other => return self.apply(&other, next),
                    }
                }
                other => return other,
            }
        }
    }

    fn call_closure_once(&mut self, c: &Arc<Closure>, args: Vec<Value>) -> Res<Value> {
        let n = args.len();
        let chosen = if c.multi {
            c.arities
                .iter()
                .find(|a| n == a.fixed || (a.variadic && n >= a.fixed))
                .ok_or_else(|| {
                    EvalError::new(
                        "ARITY",
                        format!("No matching function arity found for arity {n}"),
                    )
                })?
        } else {
            c.arities
                .first()
                .ok_or_else(|| EvalError::new("ARITY", "A function without parameters"))?
        };
        if self.depth >= EVAL_DEPTH_MAX {
            return Err(EvalError::new("DEPTH", "Depth limit exceeded"));
        }
        let mut locals = c.captured.clone();
        // The parameter vector binds the argument list, as a `let` binds a vector.
        self.bind_values(&chosen.params, args, &mut locals)?;
        self.depth += 1;
        let r = self.scoped(|ev| ev.eval_body(&chosen.body, &locals));
        self.depth -= 1;
        r
    }

    /// An arity of a closure from its parameter vector and body.
    fn arity(&self, params: &Cell, body: &[Cell]) -> Res<Arity> {
        let ps = etch_formats::value::elements(params, self.ctx.resolver)?;
        let amp = rest_marker(&ps);
        if let Some(i) = amp {
            if i + 2 != ps.len() {
                return Err(EvalError::new(
                    "SYNTAX",
                    format!("Unsupported binding form: {}", self.print(params)?),
                ));
            }
        }
        for p in ps.iter().filter(|p| name_of(p).as_deref() != Some("&")) {
            check_binding_form(p, self.ctx.resolver)?;
        }
        Ok(Arity {
            params: params.clone(),
            fixed: amp.unwrap_or(ps.len()),
            variadic: amp.is_some(),
            body: body.to_vec(),
        })
    }

    /// Binds a binding form to a value: a symbol (or `_`, ignored), or a vector of binding
    /// forms (with an optional `& rest`) to the elements of a sequence.
    fn bind(&mut self, target: &Cell, v: Value, out: &mut Locals) -> Res<()> {
        match target.kind() {
            Kind::Symbol => {
                if let Some(n) = self.binding_name(target)? {
                    out.push((n, v));
                }
                Ok(())
            }
            Kind::Vector => {
                let c = v.to_cell();
                if !matches!(
                    c.kind(),
                    Kind::Vector | Kind::List | Kind::Nil | Kind::Map | Kind::Set
                ) {
                    return Err(EvalError::new(
                        "CAST",
                        "Trying to destructure an argument that is not a sequential collection",
                    ));
                }
                let items = core::seq_elements(self, &c, 1, "Sequence")?;
                self.bind_values(target, items.into_iter().map(Value::Data).collect(), out)
            }
            _ => Err(EvalError::new("COMPILE", "Bad binding form")),
        }
    }

    /// Binds the vector of binding forms `targets` to `values`, as a function's parameters.
    fn bind_values(&mut self, targets: &Cell, values: Vec<Value>, out: &mut Locals) -> Res<()> {
        let ts = self.elements(targets)?;
        let amp = rest_marker(&ts);
        let fixed = amp.unwrap_or(ts.len());
        let n = values.len();
        let ok = match amp {
            None => n == fixed,
            Some(_) => n >= fixed,
        };
        if !ok {
            let msg = match amp {
                Some(_) => format!(
                    "Insufficient arguments ({n}) for binding form: {}",
                    self.print(targets)?
                ),
                None => format!(
                    "Expected {fixed} arguments but got {n} for binding form: {}",
                    self.print(targets)?
                ),
            };
            return Err(EvalError::new("ARITY", msg));
        }
        let mut values = values.into_iter();
        for t in &ts[..fixed] {
            let v = values.next().unwrap_or(Value::Data(Cell::nil()));
            self.bind(t, v, out)?;
        }
        if let Some(i) = amp {
            let rest: Vec<Cell> = values.map(|v| v.to_cell()).collect();
            match ts.get(i + 1) {
                Some(t) => self.bind(t, Value::Data(Cell::vector(rest)), out)?,
                None => {
                    return Err(EvalError::new(
                        "SYNTAX",
                        format!("Unsupported binding form: {}", self.print(targets)?),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Starts a `recur` unwinding with `args`.
    pub(crate) fn raise_recur(&mut self, args: Vec<Value>) -> EvalError {
        self.escape = Some(Escape::Recur(args));
        EvalError::new(RECUR_SIGNAL, "recur")
    }

    /// Starts a `reduced` unwinding with `v`.
    pub(crate) fn raise_reduced(&mut self, v: Value) -> EvalError {
        self.escape = Some(Escape::Reduced(v));
        EvalError::new(REDUCED_SIGNAL, "reduced")
    }

    fn take_recur(&mut self) -> Vec<Value> {
        match self.escape.take() {
            Some(Escape::Recur(v)) => v,
            _ => Vec::new(),
        }
    }

    /// Starts a `return` unwinding with `v`.
    pub(crate) fn raise_return(&mut self, v: Value) -> EvalError {
        self.escape = Some(Escape::Return(v));
        EvalError::new(RETURN_SIGNAL, "return")
    }

    fn take_return(&mut self) -> Value {
        match self.escape.take() {
            Some(Escape::Return(v)) => v,
            _ => Value::Data(Cell::nil()),
        }
    }

    /// The value `reduced` carried.
    pub(crate) fn take_reduced(&mut self) -> Value {
        match self.escape.take() {
            Some(Escape::Reduced(v)) => v,
            _ => Value::Data(Cell::nil()),
        }
    }

    /// A closure `(fn PARAMS BODY)` from text, with `captured` bindings (for functions that
    /// make functions, e.g. `comp`).
    pub(crate) fn closure(&mut self, params: &str, body: &str, captured: Locals) -> Res<Value> {
        let read = |t: &str| read_all(t).map_err(|e| EvalError::new("SYNTAX", e.to_string()));
        let form = Cell::list(
            [read("fn")?, read(params)?, read(body)?]
                .into_iter()
                .flatten()
                .collect(),
        );
        let items = self.elements(&form)?;
        self.special("fn", &form, &items[1..], &captured)
    }

    fn apply_data(&mut self, d: &Cell, args: Vec<Value>) -> Res<Value> {
        let n = args.len();
        let cells: Vec<Cell> = args.iter().map(Value::to_cell).collect();
        match d.kind() {
            Kind::Keyword => {
                if !(1..=2).contains(&n) {
                    return Err(EvalError::new(
                        "ARITY",
                        format!("Expected arity 1 or 2 for keyword lookup but got: {n}"),
                    ));
                }
                Ok(Value::Data(core::get_or(
                    self,
                    &cells[0],
                    d,
                    cells.get(1).cloned(),
                )?))
            }
            Kind::Map => {
                if !(1..=2).contains(&n) {
                    return Err(EvalError::new(
                        "ARITY",
                        format!("Expected arity 1 or 2 for map lookup but got: {n}"),
                    ));
                }
                let nf = cells.get(1).cloned().unwrap_or_else(Cell::nil);
                Ok(Value::Data(core::get(self, d, &cells[0], nf)?))
            }
            Kind::Set => {
                if n != 1 {
                    return Err(EvalError::new(
                        "ARITY",
                        format!(
                            "Expected arity 1 for set lookup but got: {n} in set: {}",
                            self.print(d)?
                        ),
                    ));
                }
                Ok(Value::Data(core::get(
                    self,
                    d,
                    &cells[0],
                    Cell::bool(false),
                )?))
            }
            Kind::Vector | Kind::List => {
                if !(1..=2).contains(&n) {
                    return Err(EvalError::new(
                        "ARITY",
                        "Expected arity 1 or 2 for sequence lookup",
                    ));
                }
                let i = core::index_arg(&cells[0], 1)?;
                match core::seq_get(self, d, i)? {
                    Some(v) => Ok(Value::Data(v)),
                    None => match cells.get(1) {
                        Some(nf) => Ok(Value::Data(nf.clone())),
                        None => Err(core::bounds(i)),
                    },
                }
            }
            _ => Err(EvalError::new(
                "CAST",
                format!(
                    "Can't convert value of type {} to type Function",
                    type_name(d)
                ),
            )),
        }
    }

    /// The elements of a Vector or List in order, one step each.
    pub(crate) fn elements(&mut self, c: &Cell) -> Res<Vec<Cell>> {
        self.step(c.count())?;
        Ok(etch_formats::value::elements(c, self.ctx.resolver)?)
    }

    /// The entries of a Map (value `Some`) or Set (`None` → the key twice), one step each.
    pub(crate) fn entries(&mut self, c: &Cell) -> Res<Vec<(Cell, Cell)>> {
        self.step(c.count())?;
        let mut out = Vec::new();
        etch_formats::value::for_each_entry(c, self.ctx.resolver, &mut |k, v| {
            let v = v.unwrap_or_else(|| k.clone());
            out.push((k, v));
            Ok(())
        })?;
        Ok(out)
    }
}

/// Prints a cell, failing with `:LIMIT` past `limit` bytes and `:MISSING` for absent cells.
pub(crate) fn print_cell(c: &Cell, r: &dyn Resolver, limit: usize) -> Res<String> {
    use etch_formats::text::print::PrintError;
    etch_formats::text::print::print_limited(c, r, limit).map_err(|e| match e {
        PrintError::Missing(id) => {
            EvalError::new("MISSING", format!("Missing data: 0x{}", id.to_hex()))
        }
        PrintError::Limit => EvalError::new("LIMIT", "Print limit exceeded"),
        PrintError::TooDeep => EvalError::new("DEPTH", "Depth limit exceeded"),
        PrintError::Resolve(s) => EvalError::new("IO", s),
    })
}

#[cfg(test)]
mod tests;
