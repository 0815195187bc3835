//! Signed data and owner-verified merges (lattice.md §6): SignedLattice, OwnerLattice, the
//! owner check, Ed25519 signing and verification, and `did:key` owners.

use super::{Lattice, MergeContext, OwnerPolicy, Res};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use etch_formats::cell::tag;
use etch_formats::coll::{self, MapKind};
use etch_formats::{Cell, Kind, Ref, Resolver};

/// Signs `value`: SignedData (`90`) with the key's public key and an Ed25519 signature over the
/// value's ref encoding (its full encoding if embedded, else `20` + ID).
pub fn sign(key: &SigningKey, value: Cell) -> Cell {
    let mut message = Vec::new();
    Ref::to(value.clone()).write_slot(&mut message);
    let signature = key.sign(&message).to_bytes();
    Cell::signed(&key.verifying_key().to_bytes(), &signature, value)
}

/// Is `s` a SignedData (`90`, with its public key) whose signature verifies over the ref
/// encoding of its value? The short `91` form carries no key and never verifies.
pub fn signature_valid(s: &Cell) -> bool {
    if s.tag() != tag::SIGNED {
        return false;
    }
    let (Some(pk), Some(sig), Some(msg)) = (
        s.signed_public_key(),
        s.signed_signature(),
        s.signed_message(),
    ) else {
        return false;
    };
    let (Ok(pk), Ok(sig)) = (<[u8; 32]>::try_from(pk), <[u8; 64]>::try_from(sig)) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    key.verify(msg, &Signature::from_bytes(&sig)).is_ok()
}

/// The owner check of lattice.md §2/§6.3 with our policy: a 32-byte Blob must equal `signer`;
/// a `did:key:z…` String must decode to `signer` (a malformed one matches nothing); Addresses,
/// other DIDs and other owner types follow `policy`.
pub fn verify_owner(owner: &Cell, signer: &[u8], policy: OwnerPolicy) -> bool {
    let lenient = policy == OwnerPolicy::Lenient;
    match owner.kind() {
        Kind::Blob if owner.count() == 32 => owner.flat_bytes() == Some(signer),
        Kind::String => match owner.flat_bytes().map(std::str::from_utf8) {
            Some(Ok(s)) if s.starts_with("did:key:") => {
                did_key_public_key(s).is_some_and(|pk| pk.as_slice() == signer)
            }
            _ => lenient,
        },
        _ => lenient,
    }
}

/// The `did:key` of an Ed25519 public key: `did:key:z` + base58btc(`ed 01` + key).
pub fn did_key(public_key: &[u8; 32]) -> String {
    let mut bytes = vec![0xed, 0x01];
    bytes.extend_from_slice(public_key);
    format!("did:key:z{}", base58_encode(&bytes))
}

/// The Ed25519 public key of a `did:key:z…` DID (multibase base58btc of `ed 01` + 32 bytes);
/// `None` for anything else.
pub fn did_key_public_key(did: &str) -> Option<[u8; 32]> {
    let text = did.strip_prefix("did:key:z")?;
    let bytes = base58_decode(text)?;
    match bytes.as_slice() {
        [0xed, 0x01, key @ ..] => <[u8; 32]>::try_from(key).ok(),
        _ => None,
    }
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Base58 (Bitcoin alphabet) encoding.
fn base58_encode(data: &[u8]) -> String {
    let zeros = data.iter().take_while(|b| **b == 0).count();
    // Little-endian base-58 digits.
    let mut digits: Vec<u8> = Vec::new();
    for &byte in &data[zeros..] {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits.iter().rev().map(|d| BASE58[*d as usize] as char));
    out
}

/// Base58 (Bitcoin alphabet) decoding; `None` on a character outside the alphabet or an input
/// longer than any DID key needs.
fn base58_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() > 128 {
        return None;
    }
    let zeros = text.bytes().take_while(|c| *c == b'1').count();
    // Little-endian base-256 bytes.
    let mut bytes: Vec<u8> = Vec::new();
    for c in text.bytes().skip(zeros) {
        let mut carry = BASE58.iter().position(|x| *x == c)? as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    Some(out)
}

/// SignedLattice merge (lattice.md §6.2). `owner` is the owner key when the value is an owner
/// slot: then a merged value that equals neither input is re-signed only if the context's key
/// passes the owner check, and own is kept otherwise (our rule). A standalone Signed value is
/// re-signed with the context's key when there is one, else own is kept.
pub(crate) fn signed_merge(
    l: &Lattice,
    ctx: &MergeContext,
    owner: Option<&Cell>,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if other.is_nil() {
        return Ok(own.clone());
    }
    if own.is_nil() {
        return Ok(if signature_valid(other) {
            other.clone()
        } else {
            Cell::nil()
        });
    }
    if own.kind() != Kind::Signed || other.kind() != Kind::Signed {
        return Ok(own.clone());
    }
    let (Some(ra), Some(rb)) = (own.refs().first(), other.refs().first()) else {
        return Ok(own.clone());
    };
    if ra.id() == rb.id() || !signature_valid(other) {
        return Ok(own.clone());
    }
    let (a, b) = (ra.fetch(r)?, rb.fetch(r)?);
    let m = l.merge(ctx, &a, &b, r)?;
    if m == a {
        return Ok(own.clone());
    }
    if m == b {
        return Ok(other.clone());
    }
    match &ctx.signing_key {
        Some(key) if owner.is_none_or(|o| ctx.verify_owner(o, &key.verifying_key().to_bytes())) => {
            Ok(sign(key, m))
        }
        _ => Ok(own.clone()),
    }
}

/// OwnerLattice merge (lattice.md §6.1): per owner, an incoming slot is considered only if it
/// is SignedData whose signer passes the owner check; then the slots merge as SignedLattice.
/// A nil own is treated as `{}` with the same per-entry checks (our rule).
pub(crate) fn owner_merge(
    l: &Lattice,
    ctx: &MergeContext,
    own: &Cell,
    other: &Cell,
    r: &dyn Resolver,
) -> Res<Cell> {
    if other.kind() != Kind::Map {
        return Ok(own.clone());
    }
    let own2 = if own.is_nil() {
        MapKind::Hash.empty()
    } else if own.kind() == Kind::Map {
        own.clone()
    } else {
        return Ok(own.clone());
    };
    coll::map_merge(MapKind::Hash, &own2, other, r, &mut |owner, a, b| {
        let authorised = b
            .signed_public_key()
            .is_some_and(|pk| ctx.verify_owner(owner, pk));
        if !authorised {
            return Ok(a);
        }
        let m = signed_merge(l, ctx, Some(owner), &a.unwrap_or_else(Cell::nil), &b, r)?;
        Ok((!m.is_nil()).then_some(m))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_round_trip() {
        for data in [
            vec![],
            vec![0],
            vec![0, 0, 1],
            vec![0xff; 34],
            b"hello world".to_vec(),
        ] {
            assert_eq!(base58_decode(&base58_encode(&data)), Some(data));
        }
        assert_eq!(base58_encode(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(base58_decode("0OIl"), None);
    }

    #[test]
    fn did_key_shape() {
        let did = did_key(&[7u8; 32]);
        assert!(did.starts_with("did:key:z6Mk"), "{did}");
        assert_eq!(did_key_public_key(&did), Some([7u8; 32]));
        assert_eq!(did_key_public_key("did:key:zQ3s"), None);
        assert_eq!(did_key_public_key("did:web:example.com"), None);
    }
}
