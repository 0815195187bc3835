//! Arbitrary bytes as a peer's byte stream: split into frames under the client frame limit,
//! each body decoded as a message. Nothing panics; an accepted frame re-frames to the same
//! bytes; every accessor of a decoded message (type, id, arguments, Result fields) answers.
#![no_main]

use etch_formats::message::{frame, next_frame, MessageType, CLIENT_FRAME_BYTES_MAX};
use etch_formats::{Message, ResultRecord};
use libfuzzer_sys::fuzz_target;

fn look_at(body: &[u8]) {
    let Ok(m) = Message::decode(body.to_vec()) else {
        return;
    };
    assert_eq!(MessageType::of(m.payload()), m.kind, "type inferred twice differs");
    let _ = m.id();
    for i in 0..m.arg_count().min(8) {
        let _ = m.arg(i);
    }
    if let Some(r) = ResultRecord::parse(m.payload()) {
        let _ = r.error_code();
        let again = ResultRecord::parse(&r.to_cell()).expect("a rebuilt Result parses");
        assert_eq!(again.error_code(), r.error_code());
    }
}

fuzz_target!(|data: &[u8]| {
    // The whole input as one body, as a server sees a frame's contents.
    look_at(data);
    // The input as a stream of frames.
    let mut rest = data;
    while let Ok(Some(range)) = next_frame(rest, CLIENT_FRAME_BYTES_MAX) {
        let body = &rest[range.clone()];
        assert_eq!(frame(body), rest[..range.end], "re-framing changes the bytes");
        look_at(body);
        rest = &rest[range.end..];
    }
});
