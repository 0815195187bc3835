//! CHALLENGE / response (protocol.md §9): answering a challenge with proof of the key we hold;
//! `prove.rs` is the side that asks.

use ed25519_dalek::SigningKey;
use etch_engine::lattice::sign;
use etch_formats::message::element;
use etch_formats::{Cell, Kind, Message, ResultRecord};

fn trust(id: i64, text: &str) -> ResultRecord {
    ResultRecord::error(Some(id), "TRUST", text, "PEER")
}

fn format(id: i64, text: &str) -> ResultRecord {
    ResultRecord::error(Some(id), "FORMAT", text, "PEER")
}

/// The value of a SignedData (its `:value`), read from memory.
pub(crate) fn signed_value(s: &Cell) -> Option<Cell> {
    s.refs().first().and_then(|r| r.cell().cloned())
}

/// The responder's answer to `[:CH id S]` (protocol.md §9.2).
pub fn answer(key: Option<&SigningKey>, id: i64, msg: &Message) -> ResultRecord {
    let Some(key) = key else {
        return trust(id, "No signing key");
    };
    if msg.arg_count() < 3 {
        return format(id, "Invalid challenge format");
    }
    let Some(s) = msg.arg(2).filter(|s| s.kind() == Kind::Signed) else {
        return format(id, "Missing signed data");
    };
    let Some(v) = signed_value(&s).filter(|v| v.kind() == Kind::Vector) else {
        return format(id, "Invalid challenge data");
    };
    if !(2..=3).contains(&v.count()) {
        return format(id, "Wrong element count");
    }
    let (Some(token), Some(target)) = (element(&v, 0), element(&v, 1)) else {
        return format(id, "Invalid challenge data");
    };
    let ours = key.verifying_key().to_bytes();
    if !target.is_nil() && target.flat_bytes() != Some(ours.as_slice()) {
        return trust(id, "Wrong target key");
    }
    let Some(challenger) = s.signed_public_key() else {
        return format(id, "Missing signed data");
    };
    let mut reply = vec![token, Cell::blob(challenger)];
    if v.count() == 3 {
        // Lattice nodes accept any context and echo it.
        match element(&v, 2) {
            Some(c) => reply.push(c),
            None => return format(id, "Invalid challenge data"),
        }
    }
    ResultRecord::ok(id, sign(key, Cell::vector(reply)))
}

/// 32 unpredictable bytes: SHA3-256 of 16 bytes from the OS.
pub(crate) fn fresh_token() -> [u8; 32] {
    use sha3::Digest;
    let mut seed = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed));
    if read.is_err() {
        // Without /dev/urandom, the time and a counter still never repeat a token.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        seed[..8].copy_from_slice(&n.to_le_bytes());
        seed[8..].copy_from_slice(&(t as u64).to_le_bytes());
    }
    sha3::Sha3_256::digest(seed).into()
}
