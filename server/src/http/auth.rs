//! Bearer tokens (gateway.md "Identity and rights", after Convex's DLFS_AUTH.md): an
//! `Authorization: Bearer <JWT>` whose header is `{"alg":"EdDSA",…}` (with `kid`, when given,
//! the signer's multikey `z6Mk…`) and whose payload names the caller `iss` (a did:key; `sub`,
//! when given, the same), the audience `aud` (this node's did:key, or a list holding it) and the
//! expiry `exp` (seconds; `nbf` honoured), signed with the caller's Ed25519 key. A token that
//! is present but not valid in every one of these is refused with 401, whatever the request.
//! Without a token the caller is anonymous. (UCAN delegation chains come later.)

use super::error;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use etch_engine::lattice::did_key_public_key;

/// Bytes a token may take (a header line is bounded by hyper anyway).
const TOKEN_BYTES_MAX: usize = 8 << 10;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// No token.
    Anonymous,
    /// A verified token's issuer: its Ed25519 public key.
    Identity([u8; 32]),
}

/// The caller of a request: anonymous, or the identity of a valid token; 401 for a token that
/// is not valid for this node (`node_did`) at `now_s` (seconds since the epoch).
pub(super) fn caller(headers: &HeaderMap, node_did: &str, now_s: i64) -> Result<Caller, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Caller::Anonymous);
    };
    let refuse = |why: String| {
        let mut r = error(StatusCode::UNAUTHORIZED, format!("invalid token: {why}"));
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| refuse("not `Bearer <token>`".into()))?;
    verify(token, node_did, now_s)
        .map(Caller::Identity)
        .map_err(refuse)
}

fn json_part(part: &str) -> Result<serde_json::Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
}

/// Checks a JWT as the module docs say; the issuer's public key.
fn verify(token: &str, node_did: &str, now_s: i64) -> Result<[u8; 32], String> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(format!("longer than {TOKEN_BYTES_MAX} bytes"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three dot-separated parts".into());
    };
    let head = json_part(h)?;
    if head["alg"] != "EdDSA" {
        return Err(format!("alg {} is not EdDSA", head["alg"]));
    }
    let body = json_part(p)?;
    let iss = body["iss"].as_str().ok_or("no iss")?;
    let key = did_key_public_key(iss).ok_or("iss is not an Ed25519 did:key")?;
    if let Some(kid) = head["kid"].as_str() {
        if iss.strip_prefix("did:key:") != Some(kid) && iss != kid {
            return Err("kid is not the issuer's key".into());
        }
    }
    if let Some(sub) = body["sub"].as_str() {
        if sub != iss {
            return Err("sub is not the issuer".into());
        }
    }
    let aud_ok = match &body["aud"] {
        serde_json::Value::String(a) => a == node_did,
        serde_json::Value::Array(list) => list.iter().any(|a| a == node_did),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("the audience is not this node ({node_did})"));
    }
    let exp = body["exp"].as_i64().ok_or("no exp")?;
    if now_s >= exp {
        return Err("expired".into());
    }
    if body["nbf"].as_i64().is_some_and(|nbf| now_s < nbf) {
        return Err("not valid yet (nbf)".into());
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("signature not base64url: {e}"))?;
    let sig = Signature::from_slice(&sig).map_err(|_| "signature is not 64 bytes")?;
    let vk = VerifyingKey::from_bytes(&key).map_err(|_| "iss is not a valid Ed25519 key")?;
    let signed = &token[..h.len() + 1 + p.len()];
    vk.verify_strict(signed.as_bytes(), &sig)
        .map_err(|_| "bad signature")?;
    Ok(key)
}
