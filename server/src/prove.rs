//! Asking the other end of a connection to prove which Ed25519 key it holds (protocol.md §9.1,
//! §9.3): the requester's side of CHALLENGE; [`crate::challenge`] is the responder's.

use crate::challenge::{fresh_token, signed_value};
use crate::conn::{Conn, RequestError};
use ed25519_dalek::SigningKey;
use etch_engine::lattice::{sign, signature_valid};
use etch_formats::message::{self, element};
use etch_formats::{Cell, Kind, NoResolver, ResultRecord};
use std::time::Duration;

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
