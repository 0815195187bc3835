//! Every row of the reference vectors `encoding.tsv`, both ways: decoding the row's bytes gives
//! the printed text and the same branch list; building the value (from text, a generator or the
//! record definitions) gives the exact encoding, Value ID and branch list.

use etch_formats::text::print;
use etch_formats::{branches_preorder, Body, NoResolver, ValueId};
use etch_tests::{encoding_rows, row_body};

#[test]
fn decode_every_row() {
    let rows = encoding_rows();
    assert_eq!(rows.len(), 249, "the README promises 249 values");
    let mut failures = Vec::new();
    let mut printed = 0;
    for row in &rows {
        let Some(branches) = &row.branches else { continue };
        let body = match Body::decode(row_body(row)) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{}: decode failed: {e}", row.name));
                continue;
            }
        };
        assert!(body.missing().is_empty(), "{}: missing cells", row.name);
        assert_eq!(body.top.encoding(), &row.encoding[..], "{}", row.name);
        assert_eq!(body.top.id().to_hex(), row.hash, "{}: value id", row.name);
        let walked: Vec<Vec<u8>> = branches_preorder(&body.top, &NoResolver)
            .expect("attached")
            .iter()
            .map(|c| c.encoding().to_vec())
            .collect();
        if &walked != branches {
            failures.push(format!("{}: branch order/content differs", row.name));
        }
        for b in branches {
            assert!(b.len() > 140, "{}: branch of {} bytes", row.name, b.len());
            assert!(ValueId::of(b) != ValueId::default());
        }
        if !row.text.starts_with("gen:") {
            match print(&body.top, &NoResolver) {
                Ok(t) if t == row.text => printed += 1,
                Ok(t) => failures.push(format!("{}: printed {:?}\n   expected {:?}", row.name, trunc(&t), trunc(&row.text))),
                Err(e) => failures.push(format!("{}: print failed: {e}", row.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    let gen_rows = rows.iter().filter(|r| r.text.starts_with("gen:")).count();
    assert_eq!(printed + gen_rows, rows.len(), "every non-gen row printed");
}

fn trunc(s: &str) -> String {
    s.chars().take(300).collect()
}
