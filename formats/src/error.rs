//! Typed decode errors. Every rejection names the rule of encoding.md §9 and a byte offset.

use std::fmt;

/// The rule of encoding.md §9 (or §3.1 / §8) that rejected an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Rule {
    G1,
    G2,
    G3,
    G4,
    T1,
    V1,
    V2,
    V3,
    N1,
    N2,
    N3,
    C1,
    Y1,
    B1,
    B2,
    B3,
    S1,
    S2,
    S4,
    S5,
    VC1,
    VC2,
    VC3,
    H1,
    H2,
    H3,
    H4,
    H5,
    I1,
    I2,
    I3,
    I4,
    I5,
    X1,
    M1,
    M2,
    M3,
    M4,
    /// A limit of this implementation (nesting depth, body size), not a format rule.
    Limit,
}

impl Rule {
    /// The rule's identifier as written in the spec (`"H1"`, `"VC3"`, …).
    pub fn name(self) -> &'static str {
        use Rule::*;
        match self {
            G1 => "G1",
            G2 => "G2",
            G3 => "G3",
            G4 => "G4",
            T1 => "T1",
            V1 => "V1",
            V2 => "V2",
            V3 => "V3",
            N1 => "N1",
            N2 => "N2",
            N3 => "N3",
            C1 => "C1",
            Y1 => "Y1",
            B1 => "B1",
            B2 => "B2",
            B3 => "B3",
            S1 => "S1",
            S2 => "S2",
            S4 => "S4",
            S5 => "S5",
            VC1 => "VC1",
            VC2 => "VC2",
            VC3 => "VC3",
            H1 => "H1",
            H2 => "H2",
            H3 => "H3",
            H4 => "H4",
            H5 => "H5",
            I1 => "I1",
            I2 => "I2",
            I3 => "I3",
            I4 => "I4",
            I5 => "I5",
            X1 => "X1",
            M1 => "M1",
            M2 => "M2",
            M3 => "M3",
            M4 => "M4",
            Limit => "LIMIT",
        }
    }

    /// True when the rule reports a missing cell (a partial value) rather than malformed bytes.
    pub fn is_missing(self) -> bool {
        self == Rule::S4
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rejected encoding: which rule, where, and a human explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad format at byte {offset}: {detail} ({rule})")]
pub struct DecodeError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// The spec rule that rejects the input.
    pub rule: Rule,
    /// What was wrong, for a person.
    pub detail: String,
}

impl DecodeError {
    /// Makes an error.
    pub fn new(offset: usize, rule: Rule, detail: impl Into<String>) -> Self {
        DecodeError {
            offset,
            rule,
            detail: detail.into(),
        }
    }

    /// The same error, moved by `delta` bytes (when a cell is decoded inside a larger buffer).
    pub fn shifted(mut self, delta: usize) -> Self {
        self.offset += delta;
        self
    }
}
