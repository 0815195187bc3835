//! Built-in functions as a table (query.md §5; Convex's `core.cvx` and `Core.java` are the
//! reference for names, arities, results and error codes): one [`Builtin`] entry per function,
//! with its documentation, its examples and its implementation, grouped in files by theme
//! (`seq`: functions over collections and functions; `num`: integer division and maths;
//! `sets`; `convert`: casts, bits, hashes, split and join). `.help`, completion and the example tests read the same entries. The first slice
//! of functions still lives in `core::call`; new ones are added here.

mod convert;
mod num;
mod seq;
mod sets;

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

/// Every table entry.
pub fn all() -> impl Iterator<Item = &'static Builtin> {
    seq::TABLE
        .iter()
        .chain(num::TABLE.iter())
        .chain(sets::TABLE.iter())
        .chain(convert::TABLE.iter())
}

/// The entry for `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    all().find(|b| b.doc.name == name)
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
