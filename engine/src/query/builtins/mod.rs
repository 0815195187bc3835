//! Built-in functions as a table (query.md §5; Convex's `core.cvx` and `Core.java` are the
//! reference for names, arities, results and error codes): one [`Builtin`] entry per function,
//! with its documentation, its examples and its implementation, grouped in files by theme
//! (`coll`: collections; `seq`: functions over collections and functions; `text`: text, bytes
//! and identity; `compare`: arithmetic, comparison, logic and type predicates; `num`: integer
//! division and maths; `sets`; `convert`: casts, bits, hashes, split and join; `store`: the
//! store and its root; `dlfs`: drives; `pins`: pins and compaction). `.help`, completion and the
//! example tests read the same entries: adding a function is adding one entry. Argument checks
//! and the collection semantics several functions share are in `query::core`.

mod coll;
mod compare;
mod convert;
pub(crate) mod dlfs;
mod num;
mod pins;
mod seq;
mod sets;
mod store;
mod text;

use super::docs::Doc;
use super::{EvalError, Evaluator, Res, Value};

/// One built-in function.
pub struct Builtin {
    /// Name, arguments, one line of documentation, `.help` group.
    pub doc: Doc,
    /// Examples: an expression and its exact printed result, or `!CODE` for an error.
    pub examples: &'static [(&'static str, &'static str)],
    /// The implementation, on evaluated arguments.
    pub(crate) run: fn(&mut Evaluator, Vec<Value>) -> Res<Value>,
}

/// The tables, in `.help` order within each group.
const TABLES: [&[Builtin]; 10] = [
    coll::TABLE,
    seq::TABLE,
    text::TABLE,
    compare::TABLE,
    num::TABLE,
    sets::TABLE,
    convert::TABLE,
    store::TABLE,
    dlfs::TABLE,
    pins::TABLE,
];

/// Every table entry.
pub fn all() -> impl Iterator<Item = &'static Builtin> {
    TABLES.iter().flat_map(|t| t.iter())
}

/// The entry for `name` (a map built on first use: every call of a built-in looks it up).
pub fn find(name: &str) -> Option<&'static Builtin> {
    static BY_NAME: std::sync::OnceLock<std::collections::HashMap<&'static str, &'static Builtin>> =
        std::sync::OnceLock::new();
    BY_NAME
        .get_or_init(|| all().map(|b| (b.doc.name, b)).collect())
        .get(name)
        .copied()
}

/// Calls the built-in `name` on evaluated arguments (`:UNDECLARED` if there is none).
pub(crate) fn call(ev: &mut Evaluator, name: &str, args: Vec<Value>) -> Res<Value> {
    match find(name) {
        Some(b) => (b.run)(ev, args),
        None => Err(EvalError::new("UNDECLARED", name)),
    }
}

/// `:ARITY` as Convex's multi-arity functions say it.
fn no_arity(n: usize) -> EvalError {
    EvalError::new(
        "ARITY",
        format!("No matching function arity found for arity {n}"),
    )
}

/// `:ARITY` as Convex's single-arity functions with a binding vector say it.
fn binding_arity(n: usize, form: &str) -> EvalError {
    EvalError::new(
        "ARITY",
        format!("Insufficient arguments ({n}) for binding form: {form}"),
    )
}
