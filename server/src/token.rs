//! Signed tokens (gateway.md "Identity and rights", after Convex's DLFS_AUTH.md): EdDSA JWTs
//! that name an identity (bearer tokens) and UCAN delegations that grant one identity rights
//! over another's drives. Pure: no I/O, no clock (callers pass `now_s`, seconds since the epoch).
//!
//! A JWT is `base64url(header).base64url(payload).base64url(signature)`; the header's `alg` is
//! `EdDSA` and its `kid`, when given, the issuer's multikey (`z6Mk…`); `iss` is a did:key; the
//! signature is Ed25519 over the first two parts, checked strictly.
//!
//! A UCAN is a JWT whose payload also holds `aud` (the delegatee's did), `att` (capabilities
//! `{"with": "<owner-did>/dlfs/<drive>[/<path>]", "can": "crud/read"}`) and `prf` (parent
//! tokens, as JWT strings). A capability is proven when its token's issuer owns the resource
//! (the DID that begins `with`), or when a parent token, itself valid and addressed to this
//! token's issuer, holds a proven capability covering it (attenuation: the same or a narrower
//! resource, the same or a narrower ability). Resources and abilities match by prefix at `/`
//! boundaries; the ability `*` covers every ability.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use etch_engine::lattice::{did_key, did_key_public_key};

/// Bytes a token may take, parents included (a header line is bounded by hyper anyway).
pub const TOKEN_BYTES_MAX: usize = 8 << 10;
/// Bytes all the UCANs of one request may take together.
pub const UCANS_BYTES_MAX: usize = 64 << 10;
/// Links a delegation chain may have (root grant included).
pub const CHAIN_LINKS_MAX: usize = 8;
/// Capabilities one UCAN may carry.
const CAPABILITIES_MAX: usize = 64;

/// The abilities of drive operations (Convex `Capability`): reading (list, read), writing
/// (write, mkdir, copy into), deleting (delete, move away).
pub const CRUD_READ: &str = "crud/read";
/// See [`CRUD_READ`].
pub const CRUD_WRITE: &str = "crud/write";
/// See [`CRUD_READ`].
pub const CRUD_DELETE: &str = "crud/delete";

/// A JWT whose signature and times were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The issuer's Ed25519 public key.
    pub issuer: [u8; 32],
    /// The payload.
    pub claims: serde_json::Value,
}

fn json_part(part: &str) -> Result<serde_json::Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
}

/// Checks a JWT's form, issuer, signature and times (`exp`, when present, and `nbf`); its
/// issuer and claims. `exp_required`: a token without `exp` is refused.
pub fn verify_jwt(token: &str, now_s: i64, exp_required: bool) -> Result<Verified, String> {
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
    let claims = json_part(p)?;
    let iss = claims["iss"].as_str().ok_or("no iss")?;
    let key = did_key_public_key(iss).ok_or("iss is not an Ed25519 did:key")?;
    if let Some(kid) = head["kid"].as_str() {
        if iss.strip_prefix("did:key:") != Some(kid) && iss != kid {
            return Err("kid is not the issuer's key".into());
        }
    }
    match claims["exp"].as_i64() {
        Some(exp) if now_s >= exp => return Err("expired".into()),
        None if exp_required => return Err("no exp".into()),
        _ => {}
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| now_s < nbf) {
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
    Ok(Verified {
        issuer: key,
        claims,
    })
}

/// Checks a bearer token for a node whose did is `node_did`: a valid JWT (with `exp`) whose
/// audience is the node and whose `sub`, when given, is its issuer. The caller's key.
pub fn verify_bearer(token: &str, node_did: &str, now_s: i64) -> Result<[u8; 32], String> {
    if node_did.is_empty() {
        return Err("this node has no key, so no token can name it as audience".into());
    }
    let v = verify_jwt(token, now_s, true)?;
    if let Some(sub) = v.claims["sub"].as_str() {
        if Some(sub) != v.claims["iss"].as_str() {
            return Err("sub is not the issuer".into());
        }
    }
    let aud_ok = match &v.claims["aud"] {
        serde_json::Value::String(a) => a == node_did,
        serde_json::Value::Array(list) => list.iter().any(|a| a == node_did),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("the audience is not this node ({node_did})"));
    }
    Ok(v.issuer)
}

/// Signs a JWT with `key` (header `{"alg":"EdDSA","typ":"JWT","kid":<multikey>}`).
pub fn sign_jwt(key: &SigningKey, claims: &serde_json::Value) -> String {
    let iss = did_key(&key.verifying_key().to_bytes());
    let kid = iss.trim_start_matches("did:key:");
    let head = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let (h, p) = (
        URL_SAFE_NO_PAD.encode(head.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
    );
    let sig = key.sign(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// A bearer token of `key` for the node `node_did`, valid from `now_s` for `ttl_s` seconds.
pub fn bearer(key: &SigningKey, node_did: &str, now_s: i64, ttl_s: i64) -> String {
    let iss = did_key(&key.verifying_key().to_bytes());
    sign_jwt(
        key,
        &serde_json::json!({"iss": iss, "sub": iss, "aud": node_did, "iat": now_s,
                            "exp": now_s.saturating_add(ttl_s)}),
    )
}

/// A UCAN from `key` to `audience` (a did) granting `can` on `with` until `exp_s`, proven by
/// `proofs` (parent UCANs; none when `key` owns `with`).
pub fn ucan(
    key: &SigningKey,
    audience: &str,
    with: &str,
    can: &str,
    exp_s: i64,
    proofs: &[String],
) -> String {
    let iss = did_key(&key.verifying_key().to_bytes());
    let nonce: String = {
        use sha3::Digest;
        let d = sha3::Sha3_256::digest(format!("{iss}{audience}{with}{can}{exp_s}{proofs:?}"));
        hex::encode(&d[..12])
    };
    sign_jwt(
        key,
        &serde_json::json!({"iss": iss, "aud": audience, "exp": exp_s, "nnc": nonce,
                            "att": [{"with": with, "can": can}], "prf": proofs}),
    )
}

/// Whether `outer` covers `inner` as a path prefix at a `/` boundary.
fn prefix_covers(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/');
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether ability `granted` covers `wanted` (`*` covers all; else prefix at `/`).
fn ability_covers(granted: &str, wanted: &str) -> bool {
    granted == "*" || prefix_covers(granted, wanted)
}

/// One capability: a resource and an ability.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Capability {
    with: String,
    can: String,
}

impl Capability {
    fn covers(&self, other: &Capability) -> bool {
        prefix_covers(&self.with, &other.with) && ability_covers(&self.can, &other.can)
    }

    /// The DID that owns the resource: `with` up to its first `/`.
    fn owner(&self) -> &str {
        self.with.split('/').next().unwrap_or("")
    }
}

fn capabilities(claims: &serde_json::Value) -> Vec<Capability> {
    claims["att"]
        .as_array()
        .map(|list| {
            list.iter()
                .take(CAPABILITIES_MAX)
                .filter_map(|c| {
                    Some(Capability {
                        with: c["with"].as_str()?.to_string(),
                        can: c["can"].as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `cap`, claimed by the verified token `v`, is proven (module docs), with at most
/// `links` more links to follow.
fn proven(v: &Verified, cap: &Capability, links: usize, now_s: i64) -> bool {
    let iss = v.claims["iss"].as_str().unwrap_or("");
    if cap.owner() == iss {
        return true;
    }
    if links == 0 {
        return false;
    }
    let Some(parents) = v.claims["prf"].as_array() else {
        return false;
    };
    parents.iter().filter_map(|p| p.as_str()).any(|p| {
        let Ok(parent) = verify_jwt(p, now_s, false) else {
            return false;
        };
        parent.claims["aud"].as_str() == Some(iss)
            && capabilities(&parent.claims)
                .iter()
                .any(|pc| pc.covers(cap) && proven(&parent, pc, links - 1, now_s))
    })
}

/// The owner whose `resource` (`/dlfs/<drive>[/<path>]`) one of `ucans` lets the caller
/// (`caller_did`) use with `ability` at `now_s`: the first token, addressed to the caller, with
/// a proven capability covering `<owner-did>` + `resource`. `None` when none does (the caller
/// is then told only that the drive is not found: no existence oracle).
pub fn delegated_owner(
    ucans: &[String],
    caller_did: &str,
    resource: &str,
    ability: &str,
    now_s: i64,
) -> Option<[u8; 32]> {
    let mut total = 0usize;
    for token in ucans {
        total = total.saturating_add(token.len());
        if total > UCANS_BYTES_MAX {
            return None;
        }
        let Ok(v) = verify_jwt(token, now_s, false) else {
            continue;
        };
        if v.claims["aud"].as_str() != Some(caller_did) {
            continue;
        }
        for cap in capabilities(&v.claims) {
            let Some(owner) = did_key_public_key(cap.owner()) else {
                continue;
            };
            let wanted = Capability {
                with: format!("{}{resource}", cap.owner()),
                can: ability.to_string(),
            };
            if cap.covers(&wanted) && proven(&v, &cap, CHAIN_LINKS_MAX - 1, now_s) {
                return Some(owner);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn did(n: u8) -> String {
        did_key(&key(n).verifying_key().to_bytes())
    }

    #[test]
    fn prefixes_match_at_slashes() {
        assert!(prefix_covers("a/dlfs/docs", "a/dlfs/docs/x"));
        assert!(prefix_covers("a/dlfs/docs/", "a/dlfs/docs"));
        assert!(!prefix_covers("a/dlfs/doc", "a/dlfs/docs"));
        assert!(ability_covers("crud", CRUD_WRITE));
        assert!(ability_covers("*", CRUD_DELETE));
        assert!(!ability_covers(CRUD_READ, CRUD_WRITE));
    }

    #[test]
    fn chains_attenuate_and_link() {
        let (alice, bob, carol) = (did(1), did(2), did(3));
        let root = ucan(
            &key(1),
            &bob,
            &format!("{alice}/dlfs/docs"),
            "crud",
            100,
            &[],
        );
        let sub = ucan(
            &key(2),
            &carol,
            &format!("{alice}/dlfs/docs/public"),
            CRUD_READ,
            100,
            std::slice::from_ref(&root),
        );
        let owner = key(1).verifying_key().to_bytes();
        let ok = |t: &str, who: &str, res: &str, can: &str| {
            delegated_owner(&[t.to_string()], who, res, can, 10)
        };
        assert_eq!(ok(&root, &bob, "/dlfs/docs/a", CRUD_WRITE), Some(owner));
        assert_eq!(
            ok(&sub, &carol, "/dlfs/docs/public/x", CRUD_READ),
            Some(owner)
        );
        // A read grant used to write; a path outside the grant; the wrong audience.
        assert_eq!(ok(&sub, &carol, "/dlfs/docs/public/x", CRUD_WRITE), None);
        assert_eq!(ok(&sub, &carol, "/dlfs/docs/secret", CRUD_READ), None);
        assert_eq!(ok(&sub, &bob, "/dlfs/docs/public/x", CRUD_READ), None);
        // Expired.
        assert_eq!(
            delegated_owner(
                std::slice::from_ref(&root),
                &bob,
                "/dlfs/docs",
                CRUD_READ,
                100
            ),
            None
        );
        // A broken link: Bob's parent addressed to Carol, not Bob.
        let stray = ucan(
            &key(1),
            &carol,
            &format!("{alice}/dlfs/docs"),
            "crud",
            100,
            &[],
        );
        let broken = ucan(
            &key(2),
            &carol,
            &format!("{alice}/dlfs/docs"),
            CRUD_READ,
            100,
            &[stray],
        );
        assert_eq!(ok(&broken, &carol, "/dlfs/docs", CRUD_READ), None);
        // Escalation: Bob widens Alice's read grant to write.
        let read = ucan(
            &key(1),
            &bob,
            &format!("{alice}/dlfs/docs"),
            CRUD_READ,
            100,
            &[],
        );
        let wider = ucan(
            &key(2),
            &carol,
            &format!("{alice}/dlfs/docs"),
            "crud",
            100,
            &[read],
        );
        assert_eq!(ok(&wider, &carol, "/dlfs/docs", CRUD_WRITE), None);
        // Bob cannot grant Alice's drive on his own.
        let forged = ucan(
            &key(2),
            &carol,
            &format!("{alice}/dlfs/docs"),
            "crud",
            100,
            &[],
        );
        assert_eq!(ok(&forged, &carol, "/dlfs/docs", CRUD_READ), None);
        // A tampered payload fails its signature.
        let mut parts: Vec<String> = root.split('.').map(String::from).collect();
        let mut claims = json_part(&parts[1]).unwrap();
        claims["att"][0]["with"] = serde_json::json!(format!("{alice}/dlfs"));
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(ok(&parts.join("."), &bob, "/dlfs/other", CRUD_READ), None);
    }

    #[test]
    fn bearer_tokens_check_audience_and_time() {
        let node = did(9);
        let t = bearer(&key(1), &node, 1000, 60);
        assert_eq!(
            verify_bearer(&t, &node, 1010),
            Ok(key(1).verifying_key().to_bytes())
        );
        assert_eq!(verify_bearer(&t, &node, 1060), Err("expired".into()));
        assert!(verify_bearer(&t, &did(8), 1010)
            .unwrap_err()
            .contains("audience"));
    }
}
