//! Conformance with the Convex reference: expressions from Convex's own core tests
//! (`conformance/core.tsv`, taken from convex-core `CoreTest.java` and `NumericsTest.java`,
//! with the result the reference gives: its printed value, or `!CODE` for an error), each
//! evaluated in a fresh environment. Prints every difference; fails if fewer are identical
//! than the floor below (raised as the language grows: it may never fall).

use etch_engine::query::{eval_text, Env};
use etch_formats::NoResolver;

/// Share of cases that must give the reference's exact result (printed value or error code).
const IDENTICAL_FLOOR: f64 = 0.995;

struct Case {
    expr: String,
    want: String,
    source: String,
}

fn cases() -> Vec<Case> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/core.tsv");
    let text = std::fs::read_to_string(&path).expect("conformance/core.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let (expr, want, source) = (f.next(), f.next(), f.next());
            Case {
                expr: expr.expect("expression").to_string(),
                want: want.expect("expected result").to_string(),
                source: source.unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// What Etch gives: the printed value, or `!CODE message`.
fn etch(expr: &str) -> String {
    match eval_text(expr, &mut Env::new(), &NoResolver) {
        Ok(v) => {
            etch_formats::text::print(&v, &NoResolver).unwrap_or_else(|e| format!("!PRINT {e}"))
        }
        Err(e) => format!("!{} {}", e.code, e.message),
    }
}

fn same(want: &str, got: &str) -> bool {
    match want.strip_prefix('!') {
        Some(code) => got
            .strip_prefix('!')
            .and_then(|g| g.split(' ').next())
            .is_some_and(|g| g == code),
        None => got == want,
    }
}

#[test]
fn convex_core_tests_give_the_reference_results() {
    let cases = cases();
    assert!(cases.len() >= 300, "{} cases", cases.len());
    let mut differ = Vec::new();
    for c in &cases {
        let got = etch(&c.expr);
        if !same(&c.want, &got) {
            differ.push(format!(
                "{}\t{}\n    reference {}\n    etch      {}",
                c.source, c.expr, c.want, got
            ));
        }
    }
    let identical = cases.len() - differ.len();
    let share = identical as f64 / cases.len() as f64;
    println!("{}", differ.join("\n"));
    println!(
        "{identical} of {} identical ({:.1} %)",
        cases.len(),
        share * 100.0
    );
    assert!(
        share >= IDENTICAL_FLOOR,
        "{:.1} % identical, below the floor of {:.1} %",
        share * 100.0,
        IDENTICAL_FLOOR * 100.0
    );
}
