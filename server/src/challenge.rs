//! CHALLENGE / response (protocol.md §9): proving which Ed25519 key the other end holds.

use crate::conn::{Conn, RequestError};
use ed25519_dalek::SigningKey;
use etch_engine::lattice::{sign, signature_valid};
use etch_formats::message::{self, element};
use etch_formats::{Cell, Kind, Message, NoResolver, ResultRecord};
use std::time::Duration;

fn trust(id: i64, text: &str) -> ResultRecord {
    ResultRecord::error(Some(id), "TRUST", text, "PEER")
}

fn format(id: i64, text: &str) -> ResultRecord {
    ResultRecord::error(Some(id), "FORMAT", text, "PEER")
}

/// The value of a SignedData (its `:value`), read from memory.
fn signed_value(s: &Cell) -> Option<Cell> {
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

/// Why a challenge failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// No answer.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The other end answered with an error Result.
    #[error("challenge refused: {0}")]
    Refused(String),
    /// The answer does not prove the key (bad signature, wrong token or key, wrong shape).
    #[error("challenge answer invalid: {0}")]
    Invalid(&'static str),
}

/// Challenges the other end of `conn` with our `key` (protocol.md §9.1, §9.3): a fresh token,
/// `expected` as the target key (nil: any key). Verifies the answer's signature (the check the
/// reference omits) and returns the key the other end proved it holds.
pub async fn challenge(
    conn: &Conn,
    key: &SigningKey,
    expected: Option<[u8; 32]>,
    timeout: Duration,
) -> Result<[u8; 32], ChallengeError> {
    let token = fresh_token();
    let ours = key.verifying_key().to_bytes();
    let target = expected.map_or_else(Cell::nil, |k| Cell::blob(&k));
    let signed = sign(key, Cell::vector(vec![Cell::blob(&token), target]));
    let reply = conn
        .request(
            |id| {
                let (body, _) = message::encode_complete(
                    &message::challenge(id, signed),
                    &NoResolver,
                    usize::MAX,
                );
                body
            },
            timeout,
        )
        .await?;
    let r = ResultRecord::parse(reply.payload()).ok_or(ChallengeError::Invalid("not a Result"))?;
    if let Some(code) = r.error_code() {
        return Err(ChallengeError::Refused(code));
    }
    let s = r.value;
    if s.kind() != Kind::Signed || !signature_valid(&s) {
        return Err(ChallengeError::Invalid("bad signature"));
    }
    let pk: [u8; 32] = s
        .signed_public_key()
        .and_then(|p| p.try_into().ok())
        .ok_or(ChallengeError::Invalid("no public key"))?;
    if expected.is_some_and(|e| e != pk) {
        return Err(ChallengeError::Invalid("wrong key"));
    }
    let v = signed_value(&s)
        .filter(|v| v.kind() == Kind::Vector && v.count() == 2)
        .ok_or(ChallengeError::Invalid("wrong shape"))?;
    let tok = element(&v, 0).ok_or(ChallengeError::Invalid("wrong shape"))?;
    let me = element(&v, 1).ok_or(ChallengeError::Invalid("wrong shape"))?;
    if tok.flat_bytes() != Some(token.as_slice()) {
        return Err(ChallengeError::Invalid("wrong token"));
    }
    if me.flat_bytes() != Some(ours.as_slice()) {
        return Err(ChallengeError::Invalid("not addressed to us"));
    }
    Ok(pk)
}

/// 32 unpredictable bytes: SHA3-256 of 16 bytes from the OS.
fn fresh_token() -> [u8; 32] {
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
