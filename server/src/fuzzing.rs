//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): not an API. Each runs parsers of
//! untrusted input on arbitrary text and asserts what must hold; a panic is a finding.

/// WebDAV bodies (PROPFIND, PROPPATCH, LOCK), the `If` header and drive paths.
pub fn webdav(text: &str) {
    crate::http::fuzz_webdav(text);
}

/// Bearer tokens and UCAN chains on arbitrary text (never a panic), and forgery: the text as
/// the payload of a token signed for another payload must never verify.
pub fn tokens(text: &str) {
    use crate::token::{delegated_owner, ucan, verify_bearer, verify_jwt, CRUD_READ};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let me = etch_engine::lattice::did_key(&key.verifying_key().to_bytes());
    let tokens: Vec<String> = text.split([',', ' ']).map(String::from).collect();
    for t in &tokens {
        let _ = verify_jwt(t, 0, false);
        let _ = verify_bearer(t, &me, 0);
    }
    let _ = delegated_owner(&tokens, &me, "/dlfs/d/x", CRUD_READ, 0);
    let signed = ucan(&key, &me, &format!("{me}/dlfs/d"), "crud", 100, &[]);
    let parts: Vec<&str> = signed.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(text);
    if payload != parts[1] {
        let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert!(
            verify_jwt(&forged, 0, false).is_err(),
            "a forged payload verified: {text:?}"
        );
    }
}
