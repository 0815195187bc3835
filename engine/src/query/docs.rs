//! One-line documentation of every special form and built-in function, for the shell's
//! `.help` and its completion. A test checks that this table and the evaluator agree.

/// The documentation of one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    /// The name as typed.
    pub name: &'static str,
    /// The argument list, e.g. `coll k not-found?`.
    pub args: &'static str,
    /// What it does, in one line.
    pub doc: &'static str,
    /// Which group `.help` lists it under.
    pub group: Group,
}

/// The groups `.help` lists names under (query.md §4–§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// §4 special forms.
    SpecialForm,
    /// §5.1 access.
    Access,
    /// §5.2 construction.
    Construction,
    /// §5.3 text, bytes and identity.
    Text,
    /// §5.4 numbers and comparison.
    Numbers,
    /// §5.5 predicates.
    Predicates,
    /// §6 storage extensions.
    Storage,
    /// §6.3 DLFS (drives, files and directories).
    Dlfs,
    /// Functions over functions and collections, and control flow (Convex core).
    Functions,
}

impl Group {
    /// The heading `.help` prints.
    pub fn title(self) -> &'static str {
        match self {
            Group::SpecialForm => "Special forms",
            Group::Access => "Access",
            Group::Construction => "Construction",
            Group::Text => "Text, bytes and identity",
            Group::Numbers => "Numbers and comparison",
            Group::Predicates => "Predicates",
            Group::Storage => "Storage",
            Group::Dlfs => "DLFS (locations: \"drive/path\" or [owner \"drive/path\"])",
            Group::Functions => "Functions and control flow",
        }
    }

    /// Every group, in `.help` order.
    pub const ALL: [Group; 9] = [
        Group::SpecialForm,
        Group::Functions,
        Group::Access,
        Group::Construction,
        Group::Text,
        Group::Numbers,
        Group::Predicates,
        Group::Storage,
        Group::Dlfs,
    ];
}

/// A documentation entry.
pub(crate) const fn d(
    name: &'static str,
    args: &'static str,
    doc: &'static str,
    group: Group,
) -> Doc {
    Doc {
        name,
        args,
        doc,
        group,
    }
}

use Group::*;

/// Every special form and built-in function, with its one-line documentation.
pub const DOCS: &[Doc] = &[
    d("quote", "x", "x itself, unevaluated ('x)", SpecialForm),
    d(
        "loop",
        "[sym init ...] body...",
        "like let; recur in body starts it again with new values",
        SpecialForm,
    ),
    d(
        "dotimes",
        "[sym n] body...",
        "body with sym bound to 0 .. n-1; nil",
        SpecialForm,
    ),
    d(
        "if-let",
        "[sym test] then else?",
        "then with sym bound to test's value if truthy, else else",
        SpecialForm,
    ),
    d(
        "when-let",
        "[sym test] body...",
        "body with sym bound to test's value if truthy, else nil",
        SpecialForm,
    ),
    d(
        "when-not",
        "test body...",
        "body if test is falsey, else nil",
        SpecialForm,
    ),
    d(
        "defn",
        "name [params] body...",
        "def name as (fn [params] body...)",
        SpecialForm,
    ),
    d(
        "quasiquote",
        "x",
        "x as data, with each (unquote y) replaced by y's value (`x, ~y)",
        SpecialForm,
    ),
    d(
        "unquote",
        "x",
        "inside quasiquote: x's value (~x)",
        SpecialForm,
    ),
    d(
        "set!",
        "sym value",
        "a local sym takes value for the rest of its scope (a def'd one is redefined); value",
        SpecialForm,
    ),
    d(
        "set-in!",
        "sym path value",
        "(set! sym (assoc-in sym path value))",
        SpecialForm,
    ),
    d(
        "tailcall",
        "(f args...)",
        "calls f in place of the enclosing function call (no deeper)",
        SpecialForm,
    ),
    d(
        "switch",
        "exp test expr ... default?",
        "the expr of the first test equal to exp's value, else default or nil",
        SpecialForm,
    ),
    d(
        "for",
        "[sym coll] body...",
        "a vector of body's values with sym bound to each element",
        SpecialForm,
    ),
    d(
        "for-loop",
        "[sym init test change] body...",
        "while test: body, then sym = change; body's last value",
        SpecialForm,
    ),
    d(
        "assert",
        "test...",
        "nil if every test is truthy, else :ASSERT naming the first that is not",
        SpecialForm,
    ),
    d(
        "if",
        "test then else?",
        "then if test is truthy, else else (or nil)",
        SpecialForm,
    ),
    d(
        "cond",
        "test expr ... default?",
        "the expr of the first truthy test, else default or nil",
        SpecialForm,
    ),
    d(
        "do",
        "expr ...",
        "evaluates in order; the last value",
        SpecialForm,
    ),
    d(
        "let",
        "[sym val ...] body ...",
        "binds symbols in order, then evaluates body",
        SpecialForm,
    ),
    d(
        "def",
        "sym val",
        "binds sym in this session; returns val",
        SpecialForm,
    ),
    d(
        "fn",
        "[params & rest] body ...",
        "a function (closure)",
        SpecialForm,
    ),
    d(
        "and",
        "expr ...",
        "first falsey value, else the last (true when empty)",
        SpecialForm,
    ),
    d(
        "or",
        "expr ...",
        "first truthy value, else the last (nil when empty)",
        SpecialForm,
    ),
    d(
        "when",
        "test body ...",
        "body if test is truthy, else nil",
        SpecialForm,
    ),
];

/// The documentation of `name`, if it is a special form or built-in function.
pub fn doc(name: &str) -> Option<&'static Doc> {
    DOCS.iter()
        .find(|d| d.name == name)
        .or_else(|| super::builtins::find(name).map(|b| &b.doc))
}

/// Every documented name: the special forms and first functions ([`DOCS`]) and the built-in
/// table's entries (`builtins`).
pub fn all_docs() -> Vec<&'static Doc> {
    DOCS.iter()
        .chain(super::builtins::all().map(|b| &b.doc))
        .collect()
}
