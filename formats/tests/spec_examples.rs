#![allow(clippy::unwrap_used)]
//! The worked examples of encoding.md §11, read from text and compared byte for byte.

use etch_formats::text::read::read_one;
use etch_formats::{decode_cell, Cell};

fn enc(text: &str) -> String {
    hex::encode(
        read_one(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .encoding(),
    )
}

fn h(s: &str) -> String {
    s.replace(' ', "")
}

#[test]
fn worked_examples() {
    let cases = [
        ("nil", "00"),
        ("true", "b1"),
        ("false", "b0"),
        ("0", "10"),
        ("19", "11 13"),
        ("128", "12 00 80"),
        ("-129", "12 ff 7f"),
        ("9223372036854775807", "18 7f ff ff ff ff ff ff ff"),
        ("-9223372036854775808", "18 80 00 00 00 00 00 00 00"),
        ("9223372036854775808", "19 09 00 80 00 00 00 00 00 00 00"),
        ("-9223372036854775809", "19 09 ff 7f ff ff ff ff ff ff ff"),
        ("1.0", "1d 3f f0 00 00 00 00 00 00"),
        ("##NaN", "1d 7f f8 00 00 00 00 00 00"),
        ("\\A", "3c 41"),
        ("\\é", "3c e9"),
        ("\\€", "3d 20 ac"),
        ("\\😀", "3e 01 f6 00"),
        ("\"Hello\"", "30 05 48 65 6c 6c 6f"),
        ("0xcafe", "31 02 ca fe"),
        ("foo", "32 03 66 6f 6f"),
        (":foo", "33 03 66 6f 6f"),
        ("#12", "ea 0c"),
        ("[1 2 3]", "80 03 11 01 11 02 11 03"),
        ("(1 2 3)", "81 03 11 03 11 02 11 01"),
        (
            "[101 \"Hello\" #{}]",
            "80 03 11 65 30 05 48 65 6c 6c 6f 83 00",
        ),
        ("{1 2, 3 4}", "82 02 11 03 11 04 11 01 11 02"),
        ("{:a 1, :b 2}", "82 02 33 01 61 11 01 33 01 62 11 02"),
        ("#{1 3}", "83 02 11 03 11 01"),
        ("#Index {0x01 true}", "84 01 31 01 01 b1"),
        (
            "#Index {0x01 true, 0x02 false}",
            "84 02 00 01 00 06 84 01 31 01 01 b1 84 01 31 01 02 b0",
        ),
        (
            "#Index {0x 1, 0x0a 2}",
            "84 02 80 31 00 11 01 00 00 01 84 01 31 01 0a 11 02",
        ),
        ("^{:a 1} 42", "88 11 2a 82 01 33 01 61 11 01"),
        ("^{} 42", "88 11 2a 00"),
    ];
    for (text, want) in cases {
        assert_eq!(enc(text), h(want), "{text}");
        decode_cell(hex::decode(h(want)).unwrap()).unwrap();
    }
    let e13: String = "[0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16]".into();
    assert_eq!(
        enc(&e13),
        h("80 11 11 10 80 10 10 11 01 11 02 11 03 11 04 11 05 11 06 11 07 11 08 11 09 11 0a 11 0b 11 0c 11 0d 11 0e 11 0f")
    );
    let e14 = read_one(&format!(
        "[{}]",
        (0..32).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
    ))
    .unwrap();
    assert_eq!(e14.len(), 69);
    // E20: 4097 zero bytes, an embedded two-child tree.
    let e20 = Cell::blob(&[0u8; 4097]);
    assert_eq!(
        hex::encode(e20.encoding()),
        h("31 a0 01 20 0768fd81bfdd72c9dab82de2222398e733dc165c52b57c75551e5d13aee22e57 31 01 00")
    );
    // E21: [s] with s a 200-byte String.
    let s = Cell::string(&"a".repeat(200));
    assert_eq!(
        s.id().to_hex(),
        "790d268531f1b47e150cdb16192490cc5f6ef0fb30778958537033e4ef1e9c89"
    );
    let body = etch_formats::encode_full_body(&Cell::vector(vec![s.clone()])).unwrap();
    assert_eq!(body.len(), 240);
    assert_eq!(hex::encode(&body[..35]), format!("800120{}", s.id()));
    assert_eq!(hex::encode(&body[35..38]), "814b30");
}
