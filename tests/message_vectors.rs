//! The bodies of `messages.tsv`: decode, check the payload, print it, and re-encode (extra
//! cells compared as a set, since the reference orders them by a salted hash set).

use etch_formats::text::print;
use etch_formats::vlq::{read_vlq, write_vlq};
use etch_formats::{encode_body, Body, NoResolver};
use etch_tests::read_tsv;
use std::collections::BTreeSet;

fn split_body(body: &[u8], top_len: usize) -> (Vec<u8>, BTreeSet<Vec<u8>>) {
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

#[test]
fn every_message() {
    let rows = read_tsv("messages.tsv");
    assert_eq!(rows.len(), 20);
    for f in rows {
        let (name, text, hash, body_hex, frame_hex, extra) =
            (&f[0], &f[3], &f[4], &f[5], &f[6], &f[7]);
        let bytes = hex::decode(body_hex).expect("hex");
        let body = Body::decode(bytes.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(body.missing().is_empty(), "{name}: partial");
        assert_eq!(&body.top.id().to_hex(), hash, "{name}: payload hash");
        assert_eq!(
            body.cells.len(),
            extra.parse::<usize>().expect("count"),
            "{name}: extra cells"
        );
        assert_eq!(
            &print(&body.top, &NoResolver).expect("print"),
            text,
            "{name}: printed payload"
        );
        // Frame = VLQ(body length) + body.
        let mut frame = Vec::new();
        write_vlq(&mut frame, bytes.len() as u64);
        frame.extend_from_slice(&bytes);
        assert_eq!(hex::encode(&frame), *frame_hex, "{name}: frame");
        // Re-encode: same top cell, same set of extra cells.
        let re = encode_body(&body.top, body.cells.values());
        let (top_a, cells_a) = split_body(&re, body.top.len());
        let (top_b, cells_b) = split_body(&bytes, body.top.len());
        assert_eq!(top_a, top_b, "{name}: top cell");
        assert_eq!(cells_a, cells_b, "{name}: extra cells");
        // And the text reads back to the same payload (except CVM records shown as maps).
        if !text.contains(":origin") && !text.contains(":timestamp") {
            let read =
                etch_formats::text::read::read_one(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                read.id(),
                body.top.id(),
                "{name}: text reads back to the payload"
            );
        }
    }
}
