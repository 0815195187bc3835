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
        let Some(branches) = &row.branches else {
            continue;
        };
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
                Ok(t) => failures.push(format!(
                    "{}: printed {:?}\n   expected {:?}",
                    row.name,
                    trunc(&t),
                    trunc(&row.text)
                )),
                Err(e) => failures.push(format!("{}: print failed: {e}", row.name)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let gen_rows = rows.iter().filter(|r| r.text.starts_with("gen:")).count();
    assert_eq!(printed + gen_rows, rows.len(), "every non-gen row printed");
}

fn trunc(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Builds a row's value the way a user would: from its text, its generator, or (records that
/// print as maps) its definition.
fn build_row(row: &etch_tests::EncodingRow) -> Result<etch_formats::Cell, String> {
    if let Some(c) = etch_tests::build_record_row(&row.name) {
        return Ok(c);
    }
    if row.text.starts_with("gen:") {
        return etch_formats::gen::generate(&row.text).map_err(|e| e.to_string());
    }
    etch_formats::text::read::read_one(&row.text).map_err(|e| e.to_string())
}

#[test]
fn encode_every_row() {
    let rows = encoding_rows();
    let mut failures = Vec::new();
    for row in &rows {
        let cell = match build_row(row) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{}: cannot build: {e}", row.name));
                continue;
            }
        };
        if cell.encoding() != &row.encoding[..] {
            failures.push(format!(
                "{}: encoding\n   got  {}\n   want {}",
                row.name,
                trunc(&hex::encode(cell.encoding())),
                trunc(&hex::encode(&row.encoding))
            ));
            continue;
        }
        assert_eq!(cell.id().to_hex(), row.hash, "{}", row.name);
        let branches: Vec<Vec<u8>> = branches_preorder(&cell, &NoResolver)
            .expect("built trees are attached")
            .iter()
            .map(|c| c.encoding().to_vec())
            .collect();
        match &row.branches {
            Some(want) if &branches != want => {
                failures.push(format!("{}: branch list differs", row.name))
            }
            None => {
                // `omitted:N`: the number of distinct branch cells must still match.
                let n = rows_omitted_count(row);
                if branches.len() != n {
                    failures.push(format!(
                        "{}: {} branches, vectors say {n}",
                        row.name,
                        branches.len()
                    ));
                }
            }
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn rows_omitted_count(row: &etch_tests::EncodingRow) -> usize {
    let raw = etch_tests::read_tsv("encoding.tsv");
    let f = raw.iter().find(|f| f[0] == row.name).expect("row");
    f[4].trim_start_matches("omitted:")
        .parse()
        .expect("omitted count")
}

#[test]
fn text_round_trips() {
    // read(print(v)) == v for every printable row.
    for row in encoding_rows() {
        if row.text.starts_with("gen:") || etch_tests::build_record_row(&row.name).is_some() {
            continue;
        }
        let cell = etch_formats::text::read::read_one(&row.text).expect("reads");
        let again = print(&cell, &NoResolver).expect("prints");
        assert_eq!(again, row.text, "{}", row.name);
    }
}
