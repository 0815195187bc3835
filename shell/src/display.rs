//! How the shell shows results, errors and notes (query.md §8.2), with optional colour.

use etch_engine::query::EvalError;
use etch_formats::text::print::{print_shortened, PrintError, Shorten, Shortened};
use etch_formats::text::print_limited;
use etch_formats::{Cell, Resolver};
use std::time::Duration;

/// The print limit of the REPL (query.md §7): past it the result shows as
/// `<<Print limit exceeded>>`.
pub const REPL_PRINT_LIMIT_BYTES: usize = 65_536;

/// Queries slower than this get a timing line even with the timer on `auto`.
pub const SLOW_QUERY: Duration = Duration::from_millis(500);

/// Colour on or off; every piece of output goes through here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Whether to emit ANSI colour codes.
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Green: the `=>` of a result.
    pub fn ok(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Red: an exception.
    pub fn err(&self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Dim: notes and timings.
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    /// Bold: headings.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// The display of a successful result: `=> value`, shortened unless `full`, plus a note of
/// what was left out.
pub fn show_value(value: &Cell, resolver: &dyn Resolver, full: bool, style: Style) -> String {
    let printed = if full {
        print_limited(value, resolver, REPL_PRINT_LIMIT_BYTES).map(|t| (t, Shortened::default()))
    } else {
        print_shortened(value, resolver, REPL_PRINT_LIMIT_BYTES, Shorten::default())
    };
    match printed {
        Ok((text, cut)) => {
            let mut out = format!("{}{}", style.ok("=> "), text);
            if cut.any() {
                out.push('\n');
                out.push_str(&style.dim(&shortened_note(cut)));
            }
            out
        }
        Err(PrintError::Limit) => format!("{}<<Print limit exceeded>>", style.ok("=> ")),
        Err(PrintError::Missing(id)) => show_error(
            &EvalError::new("MISSING", format!("Missing data: 0x{}", id.to_hex())),
            style,
        ),
        Err(PrintError::TooDeep) => {
            show_error(&EvalError::new("DEPTH", "Depth limit exceeded"), style)
        }
        Err(PrintError::Resolve(s)) => show_error(&EvalError::new("IO", s), style),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The note under a shortened result.
pub fn shortened_note(cut: Shortened) -> String {
    let mut parts = Vec::new();
    if cut.blobs > 0 {
        parts.push(format!("{} over 1 KiB", plural(cut.blobs, "blob", "blobs")));
    }
    if cut.strings > 0 {
        parts.push(format!(
            "{} over 1 KiB",
            plural(cut.strings, "string", "strings")
        ));
    }
    if cut.collections > 0 {
        parts.push(format!(
            "{} over 100 entries",
            plural(cut.collections, "collection", "collections")
        ));
    }
    format!(
        "   ; shortened: {}; (print-full ...) or .full on shows everything",
        parts.join(", ")
    )
}

/// The display of an error: ` Exception: :CODE message`.
pub fn show_error(e: &EvalError, style: Style) -> String {
    style.err(&format!(" Exception: :{} {}", e.code, e.message))
}

/// The timing line after a query.
pub fn show_timing(elapsed: Duration, style: Style) -> String {
    let secs = elapsed.as_secs_f64();
    let text = if secs >= 1.0 {
        format!("   ; {secs:.2} s")
    } else {
        format!("   ; {:.1} ms", secs * 1000.0)
    };
    style.dim(&text)
}
