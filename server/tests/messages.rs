//! The message codec (etch_formats::message) against every row of messages.tsv and the worked
//! examples of protocol.md §11: frames byte for byte, inferred types, request IDs, and bodies
//! rebuilt from their parts with our builders and encoders (extra cells compared as a set, as
//! the vectors README asks: the reference orders them by a salted hash set).

use ed25519_dalek::SigningKey;
use etch_engine::lattice::sign;
use etch_formats::message::{
    self, encode_complete, encode_data_result, frame, frame_header, next_frame, FrameError,
    CLIENT_FRAME_BYTES_MAX, FRAME_BYTES_MAX,
};
use etch_formats::text::read::read_one;
use etch_formats::vlq::read_vlq;
use etch_formats::{Cell, Message, MessageType, NoResolver, ResultRecord, ValueId};
use etch_tests::read_tsv;
use std::collections::BTreeSet;

/// A body split into its top cell and the set of its extra cells.
fn split_body(body: &[u8]) -> (Vec<u8>, BTreeSet<Vec<u8>>) {
    let top_len = Message::decode(body.to_vec())
        .expect("decode")
        .payload()
        .len();
    let mut cells = BTreeSet::new();
    let mut p = top_len;
    while p < body.len() {
        let (len, l) = read_vlq(body, p, 0).expect("vlq");
        let start = p + l;
        cells.insert(body[start..start + len as usize].to_vec());
        p = start + len as usize;
    }
    (body[..top_len].to_vec(), cells)
}

fn assert_same_body(ours: &[u8], theirs: &[u8], what: &str) {
    let (top_a, cells_a) = split_body(ours);
    let (top_b, cells_b) = split_body(theirs);
    assert_eq!(hex::encode(top_a), hex::encode(top_b), "{what}: top cell");
    assert_eq!(cells_a, cells_b, "{what}: extra cells (as a set)");
    assert_eq!(ours.len(), theirs.len(), "{what}: body length");
}

fn complete(top: &Cell) -> Vec<u8> {
    let (body, omitted) = encode_complete(top, &NoResolver, FRAME_BYTES_MAX);
    assert!(!omitted);
    body
}

fn alpha(n: usize) -> Cell {
    Cell::string(
        &(0..n)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect::<String>(),
    )
}

fn form(text: &str) -> Cell {
    read_one(text).expect("form")
}

fn seq32() -> SigningKey {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    SigningKey::from_bytes(&seed)
}

/// The body our builders produce for a row, from the row's documented parts (README §2).
fn rebuild(name: &str, decoded: &Message) -> Vec<u8> {
    match name {
        "query.id1.plus-1-2.addr12" => complete(&message::query(1, form("(+ 1 2)"), Some(12))),
        "query.id2.no-address" => complete(&message::query(2, form("(* 3 4)"), None)),
        "result.id1.value3" => complete(&ResultRecord::ok(1, Cell::long(3)).to_cell()),
        "result.id2.error" => complete(
            &ResultRecord {
                id: Some(2),
                value: Cell::string("boom"),
                error: Some(Cell::keyword("ASSERT").expect("kw")),
                log: Cell::nil(),
                info: Cell::nil(),
            }
            .to_cell(),
        ),
        "result.id9.big-string" => complete(&ResultRecord::ok(9, alpha(300)).to_cell()),
        "result.id21.three-branches" => complete(
            &ResultRecord::ok(21, Cell::vector(vec![alpha(150), alpha(160), alpha(170)])).to_cell(),
        ),
        "data-request.id10.two-hashes" => complete(&message::data_request(
            10,
            &[*alpha(200).id(), *Cell::blob(&[0u8; 1000]).id()],
        )),
        "data-request.id12.empty" => complete(&message::data_request(12, &[])),
        "data-response.id10.cell-and-missing" => encode_data_result(10, &[Some(alpha(200)), None]),
        "data-response.id14.small-cells" => encode_data_result(
            14,
            &[Some(Cell::long(1)), Some(form(":x")), Some(form("[1 2]"))],
        ),
        "status.id15" => complete(&message::status(15)),
        "ping.id16" => complete(&message::ping(16)),
        "goodbye" => complete(&message::goodbye(None)),
        "challenge.id17" => {
            let token = Cell::blob(&std::array::from_fn::<u8, 32, _>(|i| i as u8));
            let target = Cell::blob(
                &hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                    .expect("hex"),
            );
            let signed = sign(&seq32(), Cell::vector(vec![token, target]));
            complete(&message::challenge(17, signed))
        }
        "request-belief" => complete(&Cell::nil()),
        "lattice-value.empty-path" => complete(&message::lattice_value(&[], form("{:a 1}"), None)),
        "lattice-query.id19" => complete(&message::lattice_query(19, &[])),
        // Consensus messages we never build: re-encode the decoded payload completely.
        "transact.id4.invoke" | "transact.id6.invoke-branch" | "belief.order-1-block" => {
            complete(decoded.payload())
        }
        other => panic!("row {other} has no rebuild rule"),
    }
}

/// The request ID a row's name announces (`...idN...`), if any.
fn id_in_name(name: &str) -> Option<i64> {
    name.split('.')
        .find_map(|p| p.strip_prefix("id").and_then(|n| n.parse().ok()))
}

#[test]
fn every_row_of_messages_tsv() {
    let rows = read_tsv("messages.tsv");
    assert_eq!(rows.len(), 20);
    for f in rows {
        let (name, inferred, hash, body_hex, frame_hex, extra) =
            (&f[0], &f[2], &f[4], &f[5], &f[6], &f[7]);
        let body = hex::decode(body_hex).expect("hex");
        let frame_bytes = hex::decode(frame_hex).expect("hex");
        // Frame: our framing of the body is the row's frame, and the frame reader splits it
        // back, whether it arrives whole or one byte at a time.
        assert_eq!(hex::encode(frame(&body)), *frame_hex, "{name}: frame");
        let range = next_frame(&frame_bytes, FRAME_BYTES_MAX)
            .expect("frame ok")
            .expect("complete");
        assert_eq!(&frame_bytes[range.clone()], body.as_slice(), "{name}: body");
        assert_eq!(range.end, frame_bytes.len());
        for cut in 0..frame_bytes.len() {
            assert_eq!(
                next_frame(&frame_bytes[..cut], FRAME_BYTES_MAX),
                Ok(None),
                "{name}: incomplete at {cut}"
            );
        }
        // Message: type, payload hash, ID, extra cells.
        let m = Message::decode(body.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.kind.name(), inferred, "{name}: inferred type");
        assert_eq!(MessageType::of(m.payload()), m.kind);
        assert_eq!(&m.payload().id().to_hex(), hash, "{name}: payload hash");
        assert_eq!(
            m.body.cells.len(),
            extra.parse::<usize>().expect("n"),
            "{name}"
        );
        assert!(m.body.missing().is_empty(), "{name}: complete");
        let expected_id = match m.kind {
            MessageType::Belief | MessageType::Goodbye | MessageType::LatticeValue => None,
            MessageType::Unknown => None,
            _ => id_in_name(name),
        };
        assert_eq!(m.id(), expected_id, "{name}: request id");
        if m.kind == MessageType::Result {
            let r = ResultRecord::parse(m.payload()).expect("result record");
            assert_eq!(
                r.to_cell().id(),
                m.payload().id(),
                "{name}: result round trip"
            );
            assert_eq!(
                r.error_code().as_deref(),
                (name == "result.id2.error").then_some("ASSERT")
            );
        }
        // Rebuilt from parts: same top cell, same set of extra cells.
        let ours = rebuild(name, &m);
        assert_same_body(&ours, &body, name);
        if extra == "0" || extra == "1" {
            // With at most one extra cell the order is fixed: bytes must match exactly.
            assert_eq!(hex::encode(&ours), *body_hex, "{name}: exact bytes");
        }
    }
}

#[test]
fn belief_cells_come_parents_first() {
    // README §2: a belief body lists parents before children. Check the row does, so that a
    // decoder reading it in one pass is exercised on that order.
    let rows = read_tsv("messages.tsv");
    let row = rows
        .iter()
        .find(|r| r[0] == "belief.order-1-block")
        .expect("row");
    let m = Message::decode(hex::decode(&row[5]).expect("hex")).expect("decode");
    assert_eq!(m.kind, MessageType::Belief);
    assert_eq!(m.body.cells.len(), row[7].parse::<usize>().expect("n"));
}

fn h(text: &str) -> String {
    text.split_whitespace().collect()
}

#[test]
fn worked_example_ping() {
    let req = frame(&complete(&message::ping(1)));
    assert_eq!(hex::encode(&req), h("0a 8002 33 04 50 49 4e 47 11 01"));
    let res = frame(&complete(
        &ResultRecord::ok(1, Cell::long(1_750_000_000_000)).to_cell(),
    ));
    assert_eq!(
        hex::encode(&res),
        h("0e dd05 1101 16 01 97 74 20 dc 00 00 00 00")
    );
    let m = Message::decode(res[1..].to_vec()).expect("decode");
    assert_eq!((m.kind, m.id()), (MessageType::Result, Some(1)));
}

#[test]
fn worked_example_query() {
    let req = frame(&complete(&message::query(2, form("(count [1 2 3])"), None)));
    assert_eq!(
        hex::encode(&req),
        h("19 8004 33 01 51 1102 8102 80 03 11 01 11 02 11 03 32 05 63 6f 75 6e 74 00")
    );
    let ok = frame(&complete(&ResultRecord::ok(2, Cell::long(3)).to_cell()));
    assert_eq!(hex::encode(&ok), h("09 dd05 1102 1103 00 00 00"));
    let msg = "Can't convert value of type Integer to type Function";
    let err = frame(&complete(
        &ResultRecord::error(Some(2), "CAST", msg, "PEER").to_cell(),
    ));
    let expected = format!(
        "51dd051102 3034{} 330443415354 00 8201 3306736f75726365 330450454552",
        hex::encode(msg)
    );
    assert_eq!(hex::encode(&err), h(&expected));
    let parsed = ResultRecord::parse(Message::decode(err[1..].to_vec()).expect("d").payload())
        .expect("result");
    assert_eq!(parsed.error_code().as_deref(), Some("CAST"));
}

const H_B: &str = "1f3609e6d67633d215f4be075347f0bc42535299aaea6073c47fdefd537e5b50";

#[test]
fn worked_example_data_request() {
    let b = Cell::blob(&[0u8; 200]);
    assert_eq!(b.id().to_hex(), H_B);
    let req = frame(&complete(&message::data_request(3, &[*b.id()])));
    assert_eq!(
        hex::encode(&req),
        format!("2a800333024452110331 20{H_B}").replace(' ', "")
    );
    let res = frame(&encode_data_result(3, &[Some(b.clone())]));
    let expected = format!(
        "8177dd051103800120{H_B}000000814b318148{}",
        "00".repeat(200)
    );
    assert_eq!(hex::encode(&res), expected);
    let missing = frame(&encode_data_result(3, &[None]));
    assert_eq!(hex::encode(&missing), h("0a dd05 1103 8001 00 00 00 00"));
}

#[test]
fn worked_example_lattice_query_and_value() {
    let data = form(":data");
    let req = frame(&complete(&message::lattice_query(
        4,
        std::slice::from_ref(&data),
    )));
    assert_eq!(
        hex::encode(&req),
        h("10 8003 33 02 4c 51 1104 8001 3304 64617461")
    );
    let hello = Cell::string("hello");
    let index =
        Cell::index(vec![(Cell::blob(hello.id().as_bytes()), hello.clone())]).expect("index");
    let res = frame(&complete(&ResultRecord::ok(4, index).to_cell()));
    assert_eq!(
        hex::encode(&res),
        h("32 dd05 1104 8401 3120 f86ef8d3aa1c99b7aeaeda7d755775a64290ad0d0dc46f403c5aa9ed9fa0ec60 3005 68656c6c6f 000000")
    );
    // LATTICE_VALUE {h(B) → B} at [:data], complete and partial.
    let b = Cell::blob(&[0u8; 200]);
    let value = Cell::index(vec![(Cell::blob(b.id().as_bytes()), b.clone())]).expect("index");
    let lv = message::lattice_value(&[data], value, None);
    assert_eq!(lv.len(), 83);
    let top = format!("8003 33024c56 8001 330464617461 8401 3120{H_B} 20{H_B}");
    assert_eq!(hex::encode(lv.encoding()), h(&top));
    let full = frame(&complete(&lv));
    assert_eq!(
        hex::encode(&full),
        format!("8220{}814b318148{}", h(&top), "00".repeat(200))
    );
    let (partial, sent) =
        message::encode_delta(&lv, &NoResolver, &|id: &ValueId| id == b.id(), usize::MAX);
    assert!(sent.is_empty());
    assert_eq!(hex::encode(frame(&partial)), format!("53{}", h(&top)));
    let m = Message::decode(partial).expect("decode");
    assert_eq!(m.kind, MessageType::LatticeValue);
    assert_eq!(m.body.missing(), vec![*b.id()]);
}

#[test]
fn worked_example_challenge() {
    let challenger = seq32();
    let responder = SigningKey::from_bytes(&std::array::from_fn(|i| 0x20 + i as u8));
    assert_eq!(
        hex::encode(responder.verifying_key().to_bytes()),
        "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
    );
    let token = Cell::blob(&sha3_16_zero());
    let s = sign(&challenger, Cell::vector(vec![token.clone(), Cell::nil()]));
    let req = frame(&complete(&message::challenge(5, s)));
    assert_eq!(req.len(), 144);
    assert_eq!(hex::encode(&req[..10]), "810e8003330243481105");
    let sig = "64ec653c13cc886563e7ee55e7f0ec7a0db322f182d26af4a40f2b53d03516695526c7012994a354eb953cd5644269c0e62e393b6a4529d11ed3c88b7499dd07";
    assert!(hex::encode(&req).contains(sig));
    let r = sign(
        &responder,
        Cell::vector(vec![
            token,
            Cell::blob(&challenger.verifying_key().to_bytes()),
        ]),
    );
    assert_eq!(
        r.id().to_hex(),
        "36477d6c3821a01c81456e3c4e5fa9f1fe8a4a1079f7c169105267354eb7da41"
    );
    let res = frame(&complete(&ResultRecord::ok(5, r).to_cell()));
    assert_eq!(res.len(), 2 + 209);
    assert_eq!(
        hex::encode(&res[..42]),
        h("8151 dd05 1105 20 36477d6c3821a01c81456e3c4e5fa9f1fe8a4a1079f7c169105267354eb7da41 000000")
    );
    assert!(hex::encode(&res).contains("9e46be2eeec7f49c09d428d4b0600573c9735f671100ef40e6c5f2fc070973ac1bb4c5573aace8ebb30d17ef9022a86100a4139855ef16e236073c1d3a4f5702"));
}

fn sha3_16_zero() -> [u8; 32] {
    use sha3::Digest;
    sha3::Sha3_256::digest([0u8; 16]).into()
}

#[test]
fn worked_example_misc() {
    assert_eq!(
        hex::encode(frame(&complete(&message::goodbye(None)))),
        "0780013303425945"
    );
    assert_eq!(
        hex::encode(frame(&complete(&message::status(6)))),
        "08800233025352 1106".replace(' ', "")
    );
    assert_eq!(hex::encode(frame(&complete(&Cell::nil()))), "0100");
    let m = Message::decode(vec![0u8]).expect("nil");
    assert_eq!((m.kind, m.id()), (MessageType::Unknown, None));
}

#[test]
fn frame_header_limits() {
    // protocol.md §2.2 table.
    for (len, prefix) in [
        (1usize, "01"),
        (127, "7f"),
        (128, "8100"),
        (300, "822c"),
        (16383, "ff7f"),
        (50_000_000, "97ebe100"),
    ] {
        let p = hex::decode(prefix).expect("hex");
        assert_eq!(
            frame_header(&p, FRAME_BYTES_MAX),
            Ok(Some((p.len(), len))),
            "{len}"
        );
    }
    assert_eq!(
        frame_header(&[0x80, 0x01], FRAME_BYTES_MAX),
        Err(FrameError::LeadingZero)
    );
    assert_eq!(
        frame_header(&[0x00], FRAME_BYTES_MAX),
        Err(FrameError::Empty)
    );
    // 50,000,001 is over the limit.
    assert!(matches!(
        frame_header(&hex::decode("97ebe101").expect("hex"), FRAME_BYTES_MAX),
        Err(FrameError::TooLong {
            declared: 50_000_001,
            ..
        })
    ));
    // 2^40 is refused from its first bytes, before the prefix is complete.
    let mut big = Vec::new();
    etch_formats::vlq::write_vlq(&mut big, 1u64 << 40);
    assert!(matches!(
        frame_header(&big[..3], FRAME_BYTES_MAX),
        Err(FrameError::TooLong { .. })
    ));
    // The client limit: 8 MiB passes, one byte more does not.
    let mut p = Vec::new();
    etch_formats::vlq::write_vlq(&mut p, CLIENT_FRAME_BYTES_MAX as u64);
    assert_eq!(
        frame_header(&p, CLIENT_FRAME_BYTES_MAX),
        Ok(Some((p.len(), CLIENT_FRAME_BYTES_MAX)))
    );
    let mut p = Vec::new();
    etch_formats::vlq::write_vlq(&mut p, CLIENT_FRAME_BYTES_MAX as u64 + 1);
    assert!(frame_header(&p, CLIENT_FRAME_BYTES_MAX).is_err());
    // Incomplete prefixes wait for more bytes.
    assert_eq!(frame_header(&[], FRAME_BYTES_MAX), Ok(None));
    assert_eq!(frame_header(&[0x81], FRAME_BYTES_MAX), Ok(None));
}

#[test]
fn malformed_bodies_are_typed_errors() {
    for bad in [
        "",                       // empty
        "0001",                   // bytes after a nil top
        "80",                     // truncated vector
        "8002330450494e471101ff", // trailing garbage as a cell length past the end
        "800133034259450100",     // a trailing cell that is nil
        "80013303425945021101",   // a trailing cell that would be embedded
    ] {
        let bytes = hex::decode(bad).expect("hex");
        assert!(Message::decode(bytes).is_err(), "{bad} must fail");
    }
}

#[test]
fn ids_must_be_longs() {
    // A request whose element 1 is not a Long has no ID (protocol.md §5).
    let m = Message::decode(complete(&Cell::vector(vec![
        form(":PING"),
        Cell::string("x"),
    ])))
    .expect("decode");
    assert_eq!((m.kind, m.id()), (MessageType::Ping, None));
    let m = Message::decode(complete(&Cell::vector(vec![form(":PING")]))).expect("decode");
    assert_eq!(m.id(), None);
    // Keyword matching is exact.
    let m = Message::decode(complete(&Cell::vector(vec![form(":ping"), Cell::long(1)])))
        .expect("decode");
    assert_eq!(m.kind, MessageType::Unknown);
}

/// xorshift64: deterministic noise for the mutation test.
fn noise(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn mutated_and_random_input_never_panics() {
    // Every vectors row with bytes flipped, cut short or extended, through the frame reader,
    // the body decoder, type inference, ID and Result parsing: errors, never a panic.
    let rows = read_tsv("messages.tsv");
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for row in &rows {
        let frame_bytes = hex::decode(&row[6]).expect("hex");
        for _ in 0..300 {
            let mut m = frame_bytes.clone();
            match noise(&mut x) % 4 {
                0 => {
                    let i = (noise(&mut x) as usize) % m.len();
                    m[i] ^= 1 << (noise(&mut x) % 8);
                }
                1 => m.truncate((noise(&mut x) as usize) % m.len()),
                2 => m.push(noise(&mut x) as u8),
                _ => {
                    let i = (noise(&mut x) as usize) % m.len();
                    m[i] = noise(&mut x) as u8;
                }
            }
            if let Ok(Some(range)) = next_frame(&m, FRAME_BYTES_MAX) {
                if let Ok(msg) = Message::decode(m[range].to_vec()) {
                    let _ = (msg.kind, msg.id(), msg.arg_count(), msg.body.missing());
                    let _ = ResultRecord::parse(msg.payload());
                }
            }
        }
    }
    for _ in 0..20_000 {
        let len = (noise(&mut x) % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| noise(&mut x) as u8).collect();
        let _ = frame_header(&bytes, CLIENT_FRAME_BYTES_MAX);
        if let Ok(msg) = Message::decode(bytes) {
            let _ = (msg.kind, msg.id(), ResultRecord::parse(msg.payload()));
        }
    }
}
