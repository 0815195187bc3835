//! Bearer tokens (gateway.md "Identity and rights", after Convex's DLFS_AUTH.md): an
//! `Authorization: Bearer <JWT>` whose header is `{"alg":"EdDSA",…}` (with `kid`, when given,
//! the signer's multikey `z6Mk…`) and whose payload names the caller `iss` (a did:key; `sub`,
//! when given, the same), the audience `aud` (this node's did:key, or a list holding it) and the
//! expiry `exp` (seconds; `nbf` honoured), signed with the caller's Ed25519 key. A token that
//! is present but not valid in every one of these is refused with 401, whatever the request.
//! Without a token the caller is anonymous.
//!
//! UCAN delegations (`crate::token`) travel in `ucans` headers (the UCAN HTTP bearer-token
//! form; Convex takes them only as MCP arguments): a caller whose own namespace has no drive of
//! the name asked for uses the drive of an owner whose grant it holds.

use super::error;
use crate::token::{verify_bearer, UCANS_BYTES_MAX};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

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
    verify_bearer(token, node_did, now_s)
        .map(Caller::Identity)
        .map_err(refuse)
}

/// The UCANs a request presents: every `ucans` header, each a comma- or space-separated list
/// of JWTs, within [`UCANS_BYTES_MAX`] in all.
pub(super) fn ucans(headers: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for v in headers.get_all("ucans") {
        let Ok(text) = v.to_str() else { continue };
        for t in text.split([',', ' ']).filter(|t| !t.is_empty()) {
            total += t.len();
            if total > UCANS_BYTES_MAX {
                return out;
            }
            out.push(t.to_string());
        }
    }
    out
}
