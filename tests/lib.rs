//! Shared helpers for the integration tests: loading the reference vectors (tests/vectors, a
//! byte-identical copy of ../shared/vectors) and building the rows that text cannot express.

use etch_formats::vlq::write_vlq;
use etch_formats::Cell;
use std::path::PathBuf;

/// The folder holding the reference vectors inside the repository.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// One row of `encoding.tsv`.
#[derive(Debug, Clone)]
pub struct EncodingRow {
    /// Unique name; the part before the first dot is the family.
    pub name: String,
    /// Printed form, or a `gen:` spec.
    pub text: String,
    /// Top-cell encoding.
    pub encoding: Vec<u8>,
    /// Value ID (hex).
    pub hash: String,
    /// Branch cells in depth-first pre-order; `None` when the row says `omitted:N`.
    pub branches: Option<Vec<Vec<u8>>>,
}

/// Reads a TSV file of the vectors folder: header skipped, rows split on tabs.
pub fn read_tsv(name: &str) -> Vec<Vec<String>> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// All rows of `encoding.tsv`.
pub fn encoding_rows() -> Vec<EncodingRow> {
    read_tsv("encoding.tsv")
        .into_iter()
        .map(|f| {
            assert_eq!(f.len(), 5, "row {:?} has {} columns", f.first(), f.len());
            let branches = if f[4].starts_with("omitted:") {
                None
            } else if f[4].is_empty() {
                Some(Vec::new())
            } else {
                Some(
                    f[4].split(';')
                        .map(|h| hex::decode(h).expect("branch hex"))
                        .collect(),
                )
            };
            EncodingRow {
                name: f[0].clone(),
                text: f[1].clone(),
                encoding: hex::decode(&f[2]).expect("encoding hex"),
                hash: f[3].clone(),
                branches,
            }
        })
        .collect()
}

/// The multi-cell body of a row: top cell then each branch with its VLQ length.
pub fn row_body(row: &EncodingRow) -> Vec<u8> {
    let mut out = row.encoding.clone();
    for b in row.branches.iter().flatten() {
        write_vlq(&mut out, b.len() as u64);
        out.extend_from_slice(b);
    }
    out
}

fn kw(name: &str) -> Cell {
    Cell::keyword(name).expect("keyword")
}

fn sym(name: &str) -> Cell {
    Cell::symbol(name).expect("symbol")
}

fn list(items: Vec<Cell>) -> Cell {
    Cell::list(items)
}

/// Rows whose printed text reads back as another type (CVM records print as maps): built here
/// from their definitions in the vectors README.
pub fn build_record_row(name: &str) -> Option<Cell> {
    let l = Cell::long;
    let a = Cell::address;
    Some(match name {
        "tx.invoke" => Cell::record(0xd0, vec![a(12), l(1), list(vec![sym("+"), l(1), l(2)])]),
        "tx.transfer" => Cell::record(0xd1, vec![a(12), l(2), a(13), l(1000)]),
        "tx.multi" => {
            let inv = Cell::record(
                0xd0,
                vec![a(12), l(5), list(vec![sym("def"), sym("x"), l(1)])],
            );
            let tr = Cell::record(0xd1, vec![a(12), l(6), a(14), l(5)]);
            Cell::record(0xd3, vec![a(12), l(4), l(0), Cell::vector(vec![inv, tr])])
        }
        "signed.seq32.invoke" => {
            let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
            sign(&seed, build_record_row("tx.invoke")?)
        }
        "coded.c5.mime" => Cell::coded(0xc5, kw("mime"), Cell::string("text/plain")),
        "extension.e0.5" => Cell::extension(0xe0, 5),
        _ => return None,
    })
}

/// Signs `value` with the Ed25519 key of this 32-byte seed, as the reference does: the signed
/// message is the value's slot bytes (its encoding when embedded, `20` + ID otherwise).
pub fn sign(seed: &[u8; 32], value: Cell) -> Cell {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let mut message = Vec::new();
    etch_formats::Ref::to(value.clone()).write_slot(&mut message);
    let signature = key.sign(&message).to_bytes();
    Cell::signed(&key.verifying_key().to_bytes(), &signature, value)
}
