//! One or more hand-written inputs for every rule of the rejection table (encoding.md §9),
//! each asserting the exact rule (and, where it is unambiguous, the byte offset).

use etch_formats::cell::ResolveError;
use etch_formats::structure::verify_tree;
use etch_formats::{decode_cell, Body, Cell, NoResolver, Resolver, Rule, ValueId};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("test hex")
}

fn rule(s: &str) -> Rule {
    decode_cell(h(s)).expect_err(s).rule
}

fn body_rule(s: &str) -> Rule {
    Body::decode(h(s)).expect_err(s).rule
}

fn id_hex(enc: &str) -> String {
    ValueId::of(&h(enc)).to_hex()
}

#[test]
fn g_rules() {
    assert_eq!(decode_cell(Vec::new()).unwrap_err().rule, Rule::G1);
    let e = decode_cell(h("31 05 01 02")).unwrap_err();
    assert_eq!((e.rule, e.offset), (Rule::G2, 4));
    assert_eq!(rule("11"), Rule::G2);
    assert_eq!(rule("80 01 20 00"), Rule::G2);
    let e = decode_cell(h("10 ff")).unwrap_err();
    assert_eq!((e.rule, e.offset), (Rule::G3, 1));
    assert_eq!(rule("11 ff ff"), Rule::G3);
    assert_eq!(decode_cell(vec![0x31; 16384]).unwrap_err().rule, Rule::G4);
}

#[test]
fn t_rules() {
    for t in [
        "20",
        "01",
        "0f",
        "1a",
        "1e",
        "21",
        "34",
        "3f 00 00 00 41",
        "40",
        "7f",
        "85",
        "89",
        "92",
        "a0 00",
        "af",
        "f0",
        "ff",
    ] {
        assert_eq!(rule(t), Rule::T1, "{t}");
    }
    let ref_top = format!("20{}", "00".repeat(32));
    assert_eq!(rule(&ref_top), Rule::T1);
}

#[test]
fn v_rules() {
    assert_eq!(rule("31 80 01"), Rule::V1);
    assert_eq!(rule("31 ff ff ff ff ff ff ff ff ff 7f"), Rule::V2);
    assert_eq!(rule("31 81"), Rule::V3);
    assert_eq!(rule("ea 80 00"), Rule::V1);
}

#[test]
fn n_rules() {
    assert_eq!(rule("11 00"), Rule::N1);
    assert_eq!(rule("12 00 7f"), Rule::N2);
    assert_eq!(rule("12 ff 80"), Rule::N2);
    assert_eq!(rule("19 08 7f ff ff ff ff ff ff ff"), Rule::N3);
    assert_eq!(rule(&format!("19 a0 01 01{}", "00".repeat(4096))), Rule::N3);
    assert_eq!(rule("19 09 00 00 80 00 00 00 00 00 00"), Rule::N2);
}

#[test]
fn c_and_y_rules() {
    assert_eq!(rule("3d 00 41"), Rule::C1);
    assert_eq!(rule("3e 00 10 00"), Rule::C1);
    assert_eq!(rule("3e 11 00 00"), Rule::C1);
    assert_eq!(rule("32 00"), Rule::Y1);
    assert_eq!(rule(&format!("33 81 {}", "61".repeat(129))), Rule::Y1);
}

#[test]
fn b_rules() {
    assert_eq!(rule("31 a0 01 00 31 01 00"), Rule::B1);
    assert_eq!(rule("30 88 80 80 80 00"), Rule::B2);
    // Tree child 1 is an inline String, not a Blob.
    let four_k = Cell::blob(&[0u8; 4096]);
    let bad_type = format!("31 a0 01 20{} 30 01 00", four_k.id());
    assert_eq!(rule(&bad_type), Rule::B3);
    // Tree child 1 holds 2 bytes where 1 is due.
    let bad_size = format!("31 a0 01 20{} 31 02 00 00", four_k.id());
    assert_eq!(rule(&bad_size), Rule::B3);
    // Child 0 supplied as a 4095-byte Blob (a body, so the stage-B rule sees it).
    let short = Cell::blob(&[0u8; 4095]);
    let body = format!("31 a0 01 20{} 31 01 00", short.id());
    let mut bytes = h(&body);
    etch_formats::vlq::write_vlq(&mut bytes, short.len() as u64);
    bytes.extend_from_slice(short.encoding());
    assert_eq!(Body::decode(bytes).unwrap_err().rule, Rule::B3);
}

struct Fixed(Vec<(ValueId, Cell)>);

impl Resolver for Fixed {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        Ok(self.0.iter().find(|(k, _)| k == id).map(|(_, c)| c.clone()))
    }
}

#[test]
fn s_rules() {
    let s203 = format!("30 81 48 {}", "61".repeat(200));
    let e = decode_cell(h(&format!("80 01 {s203}"))).unwrap_err();
    assert_eq!((e.rule, e.offset), (Rule::S1, 2));
    // S2: a ref naming a small (embeddable) cell.
    let small = Cell::long(1);
    let top = decode_cell(h(&format!("80 01 20{}", small.id()))).expect("stage A ok");
    let err = verify_tree(&top, &Fixed(vec![(*small.id(), small.clone())])).unwrap_err();
    assert_eq!(err.rule, Rule::S2);
    // S4: the target is missing.
    let top = decode_cell(h(&format!("80 01 20{}", id_hex(&s203)))).expect("stage A ok");
    assert_eq!(verify_tree(&top, &NoResolver).unwrap_err().rule, Rule::S4);
    // S5: the store hands back a cell that does not hash to the ref.
    let other = Cell::string(&"b".repeat(200));
    let target = ValueId::from_hex(&id_hex(&s203)).expect("hex");
    assert_eq!(
        verify_tree(&top, &Fixed(vec![(target, other)]))
            .unwrap_err()
            .rule,
        Rule::S5
    );
    // And with the right cell the tree verifies.
    let right = decode_cell(h(&s203)).expect("string");
    verify_tree(&top, &Fixed(vec![(target, right)])).expect("complete tree");
}

#[test]
fn vc_rules() {
    // 17 elements: one item then a nil prefix.
    assert_eq!(rule("80 11 11 10 00"), Rule::VC1);
    assert_eq!(rule("d0 11 11 10 00"), Rule::VC1);
    // 32 elements: tree with nil children.
    assert_eq!(rule("80 20 00 00"), Rule::VC2);
    // Prefix of 1 element where 16 are due.
    assert_eq!(rule("80 11 11 10 80 01 11 01"), Rule::VC3);
    // Tree child that is a List.
    let sixteen: String = (0..16)
        .map(|i| {
            if i == 0 {
                "10".to_string()
            } else {
                format!("11{:02x}", i)
            }
        })
        .collect();
    let bad = format!("80 20 80 10 {sixteen} 81 10 {sixteen}");
    assert_eq!(rule(&bad), Rule::VC3);
    let good = format!("80 20 80 10 {sixteen} 80 10 {sixteen}");
    decode_cell(h(&good)).expect("valid tree");
}

#[test]
fn h_rules() {
    assert_eq!(rule("82 02 11 01 11 02 11 03 11 04"), Rule::H1);
    assert_eq!(rule("83 02 11 01 11 01"), Rule::H1);
    assert_eq!(rule("82 10 40 00 03 00 00"), Rule::H2);
    assert_eq!(rule("82 10 00 00 01 82 00"), Rule::H3);
    assert_eq!(rule("83 10 00 00 00"), Rule::H3);
    assert_eq!(rule("82 10 00 00 03 00 00"), Rule::H4);
    // Children of the wrong type.
    assert_eq!(rule("82 10 00 00 03 83 01 11 01 83 01 11 02"), Rule::H5);
    let good = Cell::set((0..16).map(Cell::long).collect());
    decode_cell(good.encoding().to_vec()).expect("valid set tree");
    let (shift, mask) = good.hash_tree_header().expect("tree");
    assert_eq!(shift, 0);
    // Swap the digits of the two lowest children: keys now sit under the wrong digit.
    let low = mask.trailing_zeros();
    let free = (0..low).next();
    if let Some(f) = free {
        let new_mask = (mask & !(1 << low)) | (1 << f);
        let mut enc = good.encoding().to_vec();
        enc[3..5].copy_from_slice(&new_mask.to_be_bytes());
        assert_eq!(decode_cell(enc).unwrap_err().rule, Rule::H5);
    }
    // Count that does not match the children.
    let mut enc = good.encoding().to_vec();
    enc[1] = 0x11;
    assert_eq!(decode_cell(enc).unwrap_err().rule, Rule::H5);
}

#[test]
fn i_rules() {
    assert_eq!(
        rule("84 02 01 01 00 06 84 01 31 01 01 b1 84 01 31 01 02 b0"),
        Rule::I1
    );
    assert_eq!(
        rule("84 02 00 40 00 06 84 01 31 01 01 b1 84 01 31 01 02 b0"),
        Rule::I2
    );
    assert_eq!(rule("84 02 00 01 00 02 84 01 31 01 01 b1"), Rule::I3);
    assert_eq!(rule("84 02 80 31 00 11 01 00 00 00"), Rule::I3);
    assert_eq!(rule("84 01 11 01 b1"), Rule::I4);
    // Entry key of 1 byte (2 digits) at depth 0.
    assert_eq!(
        rule("84 02 80 31 01 0a 11 01 00 00 01 84 01 31 01 0a 11 02"),
        Rule::I4
    );
    // Children that are not Index cells.
    assert_eq!(rule("84 02 00 01 00 06 80 01 11 01 80 01 11 02"), Rule::I5);
    // A child under the wrong digit (0x02 filed under digit 3).
    assert_eq!(
        rule("84 02 00 01 00 0a 84 01 31 01 01 b1 84 01 31 01 02 b0"),
        Rule::I5
    );
    // The spec's valid examples pass.
    for ok in [
        "84 01 31 01 01 b1",
        "84 02 00 01 00 06 84 01 31 01 01 b1 84 01 31 01 02 b0",
        "84 02 80 31 00 11 01 00 00 01 84 01 31 01 0a 11 02",
    ] {
        decode_cell(h(ok)).expect(ok);
    }
}

#[test]
fn x_rules() {
    assert_eq!(rule("88 11 2a 82 00"), Rule::X1);
    assert_eq!(rule("88 11 2a 11 01"), Rule::X1);
    decode_cell(h("88 11 2a 82 01 33 01 61 11 01")).expect("valid syntax");
}

#[test]
fn m_rules() {
    assert_eq!(body_rule("80 01 11 01 85"), Rule::M1);
    assert_eq!(body_rule("80 01 11 01 05 30"), Rule::M1);
    // Declared 205 bytes for a 203-byte cell (2 junk bytes inside the span).
    let s203 = format!("30 81 48 {}", "61".repeat(200));
    let top = format!("80 01 20{}", id_hex(&s203));
    assert_eq!(body_rule(&format!("{top} 81 4d {s203} 00 00")), Rule::M2);
    assert_eq!(body_rule(&format!("{top} 00")), Rule::M3);
    assert_eq!(body_rule(&format!("{top} 01 00")), Rule::M3);
    assert_eq!(body_rule(&format!("{top} 02 11 01")), Rule::M4);
    assert_eq!(body_rule("00 00"), Rule::G3);
    // The valid message of E21.
    let b = Body::decode(h(&format!("{top} 81 4b {s203}"))).expect("E21");
    assert!(b.missing().is_empty());
}

/// `decode_checked_cell` parses as `decode_cell` does and keeps every stage-A rule, but leaves
/// out the stage-B rules between a cell and its inline children (for bytes that passed
/// `decode_cell` before).
#[test]
fn decode_checked_cell_leaves_out_stage_b_only() {
    use etch_formats::decode_checked_cell;
    let vc3 = "80 11 11 10 80 01 11 01";
    assert_eq!(rule(vc3), Rule::VC3);
    let cell = decode_checked_cell(h(vc3)).expect("stage A only");
    assert_eq!(cell.count(), 17);
    assert_eq!(
        decode_checked_cell(h("80 11 11 10 00")).unwrap_err().rule,
        Rule::VC1
    );
    assert_eq!(decode_checked_cell(Vec::new()).unwrap_err().rule, Rule::G1);
    let e = decode_checked_cell(h("10 ff")).unwrap_err();
    assert_eq!((e.rule, e.offset), (Rule::G3, 1));
    let good = h("80 03 11 01 11 02 30 03 61 62 63");
    let (a, b) = (
        decode_cell(good.clone()).unwrap(),
        decode_checked_cell(good).unwrap(),
    );
    assert_eq!((a.id(), a.encoding()), (b.id(), b.encoding()));
}
