//! The line editor's helper: multi-line input until the forms are complete, tab completion of
//! names and keys, bracket matching.

use etch_formats::text::read_all;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter, MatchingBracketHighlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// What completion offers, refreshed by the shell after every evaluation (cheap to read).
#[derive(Debug, Default, Clone)]
pub struct Completions {
    /// Function, special-form and session names.
    pub names: Vec<String>,
    /// Keyword names (without the colon) seen in the root and in session values.
    pub keywords: Vec<String>,
    /// Dot commands.
    pub commands: Vec<String>,
}

/// Whether `text` is an unfinished form: an unclosed bracket or string. Such input keeps
/// reading on the next line instead of being evaluated.
pub fn is_incomplete(text: &str) -> bool {
    match read_all(text) {
        Ok(_) => false,
        Err(e) => {
            e.detail.starts_with("unexpected end of input (unclosed")
                || e.detail == "unterminated string"
        }
    }
}

/// The rustyline helper of the shell.
pub struct ShellHelper {
    /// Shared with the shell, which refreshes it.
    pub completions: Arc<Mutex<Completions>>,
    brackets: MatchingBracketHighlighter,
    color: bool,
}

impl ShellHelper {
    /// A helper reading completions from `completions`.
    pub fn new(completions: Arc<Mutex<Completions>>, color: bool) -> ShellHelper {
        ShellHelper {
            completions,
            brackets: MatchingBracketHighlighter::new(),
            color,
        }
    }
}

fn is_symbol_char(c: char) -> bool {
    c.is_alphanumeric() || ".*+!-_?$%&=<>:#/".contains(c)
}

/// Candidates for the word ending at `pos`: `(start of the word, candidates)`.
pub fn complete(c: &Completions, line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, ch)| !is_symbol_char(*ch))
        .map_or(0, |(i, ch)| i + ch.len_utf8());
    let word = &before[start..];
    let mut out: Vec<String> = if let Some(k) = word.strip_prefix(':') {
        c.keywords
            .iter()
            .filter(|n| n.starts_with(k))
            .map(|n| format!(":{n}"))
            .collect()
    } else if start == 0 && word.starts_with('.') {
        c.commands
            .iter()
            .filter(|n| n.starts_with(word))
            .cloned()
            .collect()
    } else if word.is_empty() {
        Vec::new()
    } else {
        c.names
            .iter()
            .filter(|n| n.starts_with(word))
            .cloned()
            .collect()
    };
    out.sort();
    out.dedup();
    (start, out)
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let c = match self.completions.lock() {
            Ok(c) => c.clone(),
            Err(_) => return Ok((pos, Vec::new())),
        };
        let (start, words) = complete(&c, line, pos);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, pos: usize) -> Cow<'l, str> {
        if self.color {
            self.brackets.highlight(line, pos)
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        if self.color {
            Cow::Owned(format!("\x1b[1;34m{prompt}\x1b[0m"))
        } else {
            Cow::Borrowed(prompt)
        }
    }

    fn highlight_char(&self, line: &str, pos: usize, kind: CmdKind) -> bool {
        self.color && self.brackets.highlight_char(line, pos, kind)
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if !input.trim_start().starts_with('.') && is_incomplete(input) {
            Ok(ValidationResult::Incomplete)
        } else {
            Ok(ValidationResult::Valid(None))
        }
    }
}

impl Helper for ShellHelper {}
