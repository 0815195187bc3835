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
    d("unquote", "x", "inside quasiquote: x's value (~x)", SpecialForm),
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
    d(
        "count",
        "x",
        "elements of a collection, bytes of a Blob or String; nil is 0",
        Access,
    ),
    d(
        "get",
        "coll k not-found?",
        "the value at a key or index (sets: membership)",
        Access,
    ),
    d(
        "get-in",
        "coll ks not-found?",
        "get along a path of keys",
        Access,
    ),
    d(
        "contains-key?",
        "coll k",
        "whether a key or index is present",
        Access,
    ),
    d("empty?", "x", "nil or count 0", Predicates),
    d("keys", "m", "vector of a map's keys", Access),
    d("values", "m", "vector of a map's values", Access),
    d("vals", "m", "alias of values", Access),
    d("first", "s", "element 0", Access),
    d("second", "s", "element 1", Access),
    d("last", "s", "the last element", Access),
    d("nth", "s i", "element i", Access),
    d(
        "next",
        "s",
        "all but the first element; nil if none left",
        Access,
    ),
    d(
        "rest",
        "s",
        "all but the first element; empty if none left",
        Access,
    ),
    d(
        "slice",
        "s start end?",
        "elements, bytes or characters [start, end)",
        Access,
    ),
    d("empty", "x", "an empty collection of the same kind", Access),
    d("vector", "x ...", "a vector of the arguments", Construction),
    d("list", "x ...", "a list of the arguments", Construction),
    d("hash-set", "x ...", "a set of the arguments", Construction),
    d(
        "hash-map",
        "k v ...",
        "a map of the key/value arguments",
        Construction,
    ),
    d(
        "index",
        "k v ...",
        "an Index (Blob-like keys, kept in byte order)",
        Construction,
    ),
    d(
        "vec",
        "coll",
        "the elements of coll as a vector",
        Construction,
    ),
    d("set", "coll", "the elements of coll as a set", Construction),
    d(
        "assoc",
        "coll k v ...",
        "coll with keys set to values",
        Construction,
    ),
    d(
        "assoc-in",
        "coll ks v",
        "nested assoc along a path, creating maps",
        Construction,
    ),
    d("dissoc", "m k ...", "m without the keys", Construction),
    d(
        "conj",
        "coll x ...",
        "adds elements (vectors: end, lists: front)",
        Construction,
    ),
    d(
        "disj",
        "set x ...",
        "the set without the members",
        Construction,
    ),
    d(
        "cons",
        "x ... seq",
        "a list with leading elements",
        Construction,
    ),
    d(
        "concat",
        "s ...",
        "the sequences one after another",
        Construction,
    ),
    d(
        "into",
        "to from",
        "conj every element of from into to",
        Construction,
    ),
    d(
        "merge",
        "m ...",
        "map merge, later maps win (not a lattice merge)",
        Construction,
    ),
    d("reverse", "s", "the sequence reversed", Construction),
    d(
        "str",
        "x ...",
        "concatenated text (Strings raw, Blobs as hex)",
        Text,
    ),
    d("print", "x", "the printed form of x as a String", Text),
    d(
        "print-full",
        "x",
        "x, shown in full by the shell (no shortening)",
        Text,
    ),
    d(
        "name",
        "x",
        "the name of a Keyword or Symbol as a String",
        Text,
    ),
    d(
        "keyword",
        "x",
        "a Keyword named by a String, Keyword or Symbol",
        Text,
    ),
    d(
        "symbol",
        "x",
        "a Symbol named by a String, Keyword or Symbol",
        Text,
    ),
    d("blob", "x", "bytes of x (a String is read as hex)", Text),
    d(
        "cat",
        "x ...",
        "raw byte concatenation of Blobs, Strings and Characters",
        Text,
    ),
    d(
        "encoding",
        "x",
        "the CAD3 encoding of x's top cell as a Blob",
        Text,
    ),
    d("hash", "b", "SHA3-256 of the bytes of Blob b", Text),
    d(
        "value-id",
        "x",
        "the 32-byte value ID of x: (hash (encoding x))",
        Storage,
    ),
    d("+", "n ...", "sum", Numbers),
    d("-", "n ...", "negation or difference", Numbers),
    d("*", "n ...", "product", Numbers),
    d("/", "n d ...", "quotient, always a Double", Numbers),
    d("inc", "i", "i + 1", Numbers),
    d("dec", "i", "i - 1", Numbers),
    d("min", "n ...", "the least", Numbers),
    d("max", "n ...", "the greatest", Numbers),
    d(
        "=",
        "x ...",
        "structural equality (identical encodings)",
        Numbers,
    ),
    d("==", "n ...", "numeric equality", Numbers),
    d("<", "n ...", "strictly increasing", Numbers),
    d(">", "n ...", "strictly decreasing", Numbers),
    d("<=", "n ...", "non-decreasing", Numbers),
    d(">=", "n ...", "non-increasing", Numbers),
    d("!=", "n ...", "numeric inequality", Numbers),
    d("not", "x", "true for nil and false, else false", Numbers),
    d("boolean", "x", "x's truth as a Boolean", Numbers),
    d("nil?", "x", "is x nil", Predicates),
    d("boolean?", "x", "is x a Boolean", Predicates),
    d("number?", "x", "is x a number", Predicates),
    d("long?", "x", "is x a 64-bit Integer", Predicates),
    d("int?", "x", "is x an Integer", Predicates),
    d("double?", "x", "is x a Double", Predicates),
    d("str?", "x", "is x a String", Predicates),
    d("blob?", "x", "is x a Blob", Predicates),
    d("keyword?", "x", "is x a Keyword", Predicates),
    d("symbol?", "x", "is x a Symbol", Predicates),
    d("address?", "x", "is x an Address", Predicates),
    d("vector?", "x", "is x a Vector", Predicates),
    d("list?", "x", "is x a List", Predicates),
    d("map?", "x", "is x a Map", Predicates),
    d("set?", "x", "is x a Set", Predicates),
    d("coll?", "x", "is x a collection", Predicates),
    d("countable?", "x", "does count work on x", Predicates),
    d("fn?", "x", "is x a function", Predicates),
    d("zero?", "x", "is x numerically zero", Predicates),
    d(
        "store",
        "v",
        "persists v under :data, commits; its value ID",
        Storage,
    ),
    d(
        "fetch",
        "id",
        "the stored value with this value ID, or nil",
        Storage,
    ),
    d(
        "root",
        "path?",
        "the committed root value (or the value at path)",
        Storage,
    ),
    d(
        "merge!",
        "path v",
        "lattice-merges v into the root at path, commits",
        Storage,
    ),
    d(
        "lattice-merge",
        "a b path?",
        "pure lattice merge by the root lattice (or the one at path)",
        Storage,
    ),
    d(
        "set-root!",
        "v",
        "replaces the root (admin), commits; its value ID",
        Storage,
    ),
    d(
        "set-owner!",
        "owner",
        "sets the session's default DLFS owner (key Blob, Address or DID)",
        Dlfs,
    ),
    d(
        "drives",
        "owner?",
        "drive names of the default (or given) owner",
        Dlfs,
    ),
    d(
        "mkdrive",
        "name",
        "creates an empty drive, commits; its drive state hash",
        Dlfs,
    ),
    d(
        "pin",
        "target [label]",
        "keeps a value here whatever else the node drops: a Value ID, a drive location or dlfs: URI (its current state); admin; commits; the pinned ID",
        Dlfs,
    ),
    d(
        "unpin",
        "id",
        "drops the pin of a Value ID; admin; commits; whether there was one",
        Dlfs,
    ),
    d("pins", "", "the node's pins: [{:id :label :source :time} ...]", Dlfs),
    d("gc", "", "compact the serving node's store, keeping the root's tree and the pins (admin): {:bytes-before :bytes-after :cells :seconds}", Dlfs),
    d(
        "rmdrive",
        "name",
        "deletes a whole drive (a tombstone that replicates), commits; the tombstone's hash",
        Dlfs,
    ),
    d(
        "ls",
        "loc",
        "live entry names of a directory, in byte order",
        Dlfs,
    ),
    d("read-file", "loc", "contents of a file as a Blob", Dlfs),
    d(
        "put",
        "loc data",
        "creates or replaces a file (Blob or String), commits; new drive state hash",
        Dlfs,
    ),
    d(
        "mkdir",
        "loc",
        "creates a directory, commits; new drive state hash",
        Dlfs,
    ),
    d(
        "rm",
        "loc",
        "deletes a file or empty directory (tombstone), commits; new drive state hash",
        Dlfs,
    ),
    d(
        "stat",
        "loc",
        "{:type :size :utime :hash :metadata} of a file or directory",
        Dlfs,
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
