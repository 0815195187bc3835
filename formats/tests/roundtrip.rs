//! Property tests: random values of every type round-trip bytes → value → bytes and
//! text → value → text, and different encodings never decode to equal values.

use etch_formats::structure::verify_tree;
use etch_formats::text::print;
use etch_formats::text::read::read_one;
use etch_formats::{decode_cell, encode_full_body, Body, Cell, NoResolver};
use num_bigint::BigInt;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9?!*+-]{0,20}"
}

fn leaf() -> impl Strategy<Value = Cell> {
    prop_oneof![
        Just(Cell::nil()),
        any::<bool>().prop_map(Cell::bool),
        any::<i64>().prop_map(Cell::long),
        (-200i64..200).prop_map(Cell::long),
        proptest::collection::vec(any::<u8>(), 9..300).prop_map(|b| {
            Cell::integer(&BigInt::from_signed_bytes_be(&b)).expect("≤ 4096 bytes")
        }),
        any::<u64>().prop_map(|bits| Cell::double(f64::from_bits(bits))),
        any::<f64>().prop_map(Cell::double),
        any::<char>().prop_map(|c| Cell::char(c as u32).expect("valid char")),
        ".{0,60}".prop_map(|s: String| Cell::string(&s)),
        "[a-z]{130,200}".prop_map(|s: String| Cell::string(&s)),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|b| Cell::blob(&b)),
        (4090usize..9000, any::<u8>()).prop_map(|(n, x)| Cell::blob(&vec![x; n])),
        name().prop_map(|s| Cell::symbol(&s).expect("short name")),
        name().prop_map(|s| Cell::keyword(&s).expect("short name")),
        (0u64..(1 << 62)).prop_map(Cell::address),
        (0xb2u8..=0xbf).prop_map(Cell::byte_flag),
        (0xe0u8..=0xef, 0u64..1000)
            .prop_filter("addresses covered above", |(t, _)| *t != 0xea)
            .prop_map(|(t, n)| Cell::extension(t, n)),
    ]
}

fn value() -> impl Strategy<Value = Cell> {
    leaf().prop_recursive(4, 200, 40, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..40).prop_map(Cell::vector),
            proptest::collection::vec(inner.clone(), 0..40).prop_map(Cell::list),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..24).prop_map(Cell::map),
            proptest::collection::vec(inner.clone(), 0..24).prop_map(Cell::set),
            proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..6), inner.clone()),
                0..24
            )
            .prop_map(|kv| Cell::index(
                kv.into_iter().map(|(k, v)| (Cell::blob(&k), v)).collect()
            )
            .expect("blob keys")),
            proptest::collection::vec(("[a-z]{1,4}", inner.clone()), 0..20).prop_map(|kv| {
                Cell::index(kv.into_iter().map(|(k, v)| (Cell::string(&k), v)).collect())
                    .expect("string keys")
            }),
            (
                inner.clone(),
                proptest::collection::vec((name(), inner.clone()), 0..4)
            )
                .prop_map(|(d, meta)| {
                    let meta = Cell::map(
                        meta.into_iter()
                            .map(|(k, v)| (Cell::keyword(&k).expect("kw"), v))
                            .collect(),
                    );
                    Cell::syntax(d, meta).expect("map metadata")
                }),
            (any::<[u8; 32]>(), inner.clone()).prop_map(|(k, v)| Cell::signed(&k, &[7u8; 64], v)),
            (0xc0u8..=0xcf, inner.clone(), inner.clone())
                .prop_map(|(t, a, b)| Cell::coded(t, a, b)),
            (
                0xd8u8..=0xdc,
                proptest::collection::vec(inner.clone(), 0..20)
            )
                .prop_map(|(t, f)| Cell::record(t, f)),
            proptest::collection::vec(inner, 5).prop_map(|f| {
                let mut f = f.into_iter();
                let mut next = || f.next().unwrap_or_else(Cell::nil);
                Cell::result_record(next(), next(), next(), next(), next())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn bytes_round_trip(v in value()) {
        let body = encode_full_body(&v).expect("built trees are attached");
        let decoded = Body::decode(body.clone()).expect("own encodings decode");
        prop_assert_eq!(decoded.top.encoding(), v.encoding());
        prop_assert!(decoded.missing().is_empty());
        verify_tree(&decoded.top, &decoded).expect("stage-B valid");
        prop_assert_eq!(encode_full_body(&decoded.top).expect("attached"), body);
        let single = decode_cell(v.encoding().to_vec()).expect("top cell alone decodes");
        prop_assert_eq!(single.id(), v.id());
    }

    #[test]
    fn text_round_trip(v in value()) {
        // Records other than Result print as raw top cells, which need the store for refs.
        let text = print(&v, &NoResolver).expect("prints");
        let back = read_one(&text);
        match back {
            Ok(c) => {
                prop_assert_eq!(print(&c, &NoResolver).expect("prints"), text.clone());
            }
            Err(e) => {
                // Raw `#[..]` forms of cells with branch refs cannot be read without a store.
                prop_assert!(text.contains("#["), "{} failed to read: {}", text, e);
            }
        }
    }

    #[test]
    fn different_encodings_differ(a in value(), b in value()) {
        let da = decode_cell(a.encoding().to_vec()).expect("decodes");
        let db = decode_cell(b.encoding().to_vec()).expect("decodes");
        prop_assert_eq!(a.encoding() == b.encoding(), da == db);
        prop_assert_eq!(a.encoding() == b.encoding(), da.id() == db.id());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(c) = decode_cell(bytes.clone()) {
            // Anything accepted is canonical: its bytes are exactly what was given.
            prop_assert_eq!(c.encoding(), &bytes[..]);
        }
        let _ = Body::decode(bytes);
    }
}
