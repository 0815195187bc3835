//! Private files: contents encrypted before they enter the store (docs/DLFS.md, "Private
//! files"), so a node that stores or serves the drive holds bytes it cannot read.
//!
//! The stored Blob is `header ‖ segment₀ ‖ … ‖ segmentₙ`:
//!
//! - header (39 bytes): magic `ETCHENC1`, the 8-byte key ID, a 19-byte random nonce prefix,
//!   the plaintext segment size (u32 big-endian, 65536);
//! - every segment is XChaCha20-Poly1305 over 65536 plaintext bytes (the last over 0–65536),
//!   with the 24-byte nonce `prefix ‖ index (u32 BE) ‖ last (1 byte: 1 for the final segment)`
//!   and the header as associated data (the STREAM construction of Hoang, Reyhanitabar,
//!   Rogaway and Vizár): segments cannot be reordered, dropped, truncated or moved between
//!   files without failing authentication.
//!
//! The key is 32 bytes, derived from the owner's Ed25519 seed by SHA3-256 with a domain label
//! ([`ContentKey::from_owner_seed`]) or given directly. Memory is one segment each way.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha3::{Digest, Sha3_256};
use std::io::{self, Read};

/// The first bytes of every encrypted file.
pub const MAGIC: &[u8; 8] = b"ETCHENC1";
/// Plaintext bytes per segment.
pub const SEGMENT_BYTES: usize = 64 << 10;
/// Poly1305 tag bytes per segment.
pub const TAG_BYTES: usize = 16;
/// Header bytes: magic, key ID, nonce prefix, segment size.
pub const HEADER_BYTES: usize = 8 + 8 + 19 + 4;
/// The algorithm name recorded in a file's metadata.
pub const ALGORITHM: &str = "xchacha20poly1305-stream-64k";

/// Why decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// The contents do not start with an Etch encryption header.
    #[error("not an encrypted file (no ETCHENC1 header)")]
    NotEncrypted,
    /// The file was encrypted with another key.
    #[error("wrong key: the file was encrypted with key {file}, this key is {ours}")]
    WrongKey {
        /// Key ID in the file (hex).
        file: String,
        /// Key ID of the key given (hex).
        ours: String,
    },
    /// A segment failed authentication: the stored bytes were altered or truncated.
    #[error("encrypted contents damaged or altered (segment {0} fails authentication)")]
    Tampered(u64),
    /// The header names a segment size this version does not use.
    #[error("unsupported segment size {0}")]
    BadSegmentSize(u32),
}

/// A 32-byte content key.
#[derive(Clone)]
pub struct ContentKey([u8; 32]);

impl ContentKey {
    /// A key given as 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> ContentKey {
        ContentKey(bytes)
    }

    /// The content key of an owner: SHA3-256 of a domain label and the owner's Ed25519 seed.
    /// Whoever holds the owner key can read the owner's private files; the public key reveals
    /// nothing about it.
    pub fn from_owner_seed(seed: &[u8; 32]) -> ContentKey {
        let mut h = Sha3_256::new();
        h.update(b"etch dlfs content key v1\0");
        h.update(seed);
        ContentKey(h.finalize().into())
    }

    /// The key's public 8-byte ID, recorded in each file so a wrong key is reported as such.
    pub fn id(&self) -> [u8; 8] {
        let mut h = Sha3_256::new();
        h.update(b"etch dlfs key id v1\0");
        h.update(self.0);
        let d = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

fn nonce(prefix: &[u8], index: u64, last: bool) -> XNonce {
    let mut n = [0u8; 24];
    n[..19].copy_from_slice(prefix);
    // More than 2^32 segments (256 TiB) cannot be numbered; the writer refuses them.
    n[19..23].copy_from_slice(&(index as u32).to_be_bytes());
    n[23] = u8::from(last);
    n.into()
}

/// Fills `buf` from `r` as far as it goes; returns the bytes read (less only at the end).
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encrypts everything `plain` yields, passing the ciphertext to `out` in order (header first);
/// `nonce_prefix` must be fresh random bytes for every file. Returns the plaintext length.
pub fn encrypt_stream(
    key: &ContentKey,
    nonce_prefix: [u8; 19],
    plain: &mut dyn Read,
    out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&key.id());
    header.extend_from_slice(&nonce_prefix);
    header.extend_from_slice(&(SEGMENT_BYTES as u32).to_be_bytes());
    out(&header)?;
    let cipher = key.cipher();
    let mut current = vec![0u8; SEGMENT_BYTES];
    let mut next = vec![0u8; SEGMENT_BYTES];
    let mut len = fill(plain, &mut current)?;
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        // One segment of lookahead: a full segment is the last one only if nothing follows.
        let next_len = if len == SEGMENT_BYTES {
            fill(plain, &mut next)?
        } else {
            0
        };
        let last = next_len == 0;
        if index > u64::from(u32::MAX) {
            return Err(io::Error::other(
                "file too large to encrypt (over 2^32 segments)",
            ));
        }
        let sealed = cipher
            .encrypt(
                &nonce(&nonce_prefix, index, last),
                Payload {
                    msg: &current[..len],
                    aad: &header,
                },
            )
            .map_err(|_| io::Error::other("encryption failed"))?;
        out(&sealed)?;
        total += len as u64;
        if last {
            return Ok(total);
        }
        std::mem::swap(&mut current, &mut next);
        len = next_len;
        index += 1;
    }
}

/// The key ID recorded in an encrypted file's header.
pub fn header_key_id(header: &[u8]) -> Result<[u8; 8], CryptError> {
    if header.len() < HEADER_BYTES || &header[..8] != MAGIC {
        return Err(CryptError::NotEncrypted);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[8..16]);
    Ok(id)
}

/// The plaintext length of an encrypted file of `stored` bytes (`None`: not a valid length).
pub fn plaintext_len(stored: u64) -> Option<u64> {
    let body = stored.checked_sub(HEADER_BYTES as u64)?;
    let seg = (SEGMENT_BYTES + TAG_BYTES) as u64;
    let segments = body.div_ceil(seg).max(1);
    body.checked_sub(segments * TAG_BYTES as u64)
}

/// A reader of the plaintext of an encrypted file, over its stored bytes (`cipher`, of
/// `stored_len` bytes in all). Errors are [`CryptError`]s wrapped in `io::Error`.
pub struct DecryptReader<R: Read> {
    cipher_text: R,
    aead: XChaCha20Poly1305,
    header: Vec<u8>,
    prefix: [u8; 19],
    /// Stored body bytes not yet read.
    remaining: u64,
    index: u64,
    plain: Vec<u8>,
    pos: usize,
    sealed: Vec<u8>,
    done: bool,
}

impl<R: Read> DecryptReader<R> {
    /// Reads and checks the header: magic, key ID (a wrong key is reported here, before any
    /// plaintext), segment size.
    pub fn new(key: &ContentKey, mut cipher_text: R, stored_len: u64) -> io::Result<Self> {
        let mut header = vec![0u8; HEADER_BYTES];
        let got = fill(&mut cipher_text, &mut header)?;
        if got < HEADER_BYTES {
            return Err(io::Error::other(CryptError::NotEncrypted));
        }
        let file_id = header_key_id(&header).map_err(io::Error::other)?;
        if file_id != key.id() {
            return Err(io::Error::other(CryptError::WrongKey {
                file: hex::encode(file_id),
                ours: hex::encode(key.id()),
            }));
        }
        let seg = u32::from_be_bytes([header[35], header[36], header[37], header[38]]);
        if seg as usize != SEGMENT_BYTES {
            return Err(io::Error::other(CryptError::BadSegmentSize(seg)));
        }
        let mut prefix = [0u8; 19];
        prefix.copy_from_slice(&header[16..35]);
        Ok(DecryptReader {
            cipher_text,
            aead: key.cipher(),
            header,
            prefix,
            remaining: stored_len.saturating_sub(HEADER_BYTES as u64),
            index: 0,
            plain: Vec::new(),
            pos: 0,
            sealed: vec![0u8; SEGMENT_BYTES + TAG_BYTES],
            done: false,
        })
    }

    fn next_segment(&mut self) -> io::Result<()> {
        let seg = (SEGMENT_BYTES + TAG_BYTES) as u64;
        let take = self.remaining.min(seg) as usize;
        let last = self.remaining <= seg;
        let got = fill(&mut self.cipher_text, &mut self.sealed[..take])?;
        if got < take || take < TAG_BYTES {
            return Err(io::Error::other(CryptError::Tampered(self.index)));
        }
        self.remaining -= take as u64;
        self.plain = self
            .aead
            .decrypt(
                &nonce(&self.prefix, self.index, last),
                Payload {
                    msg: &self.sealed[..take],
                    aad: &self.header,
                },
            )
            .map_err(|_| io::Error::other(CryptError::Tampered(self.index)))?;
        self.pos = 0;
        self.index += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_segment()?;
        }
        let n = (self.plain.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// 19 fresh random bytes for a file's nonce prefix, from the operating system.
pub fn random_prefix() -> io::Result<[u8; 19]> {
    let mut p = [0u8; 19];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut p)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(key: &ContentKey, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = encrypt_stream(key, [7; 19], &mut &data[..], &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(n, data.len() as u64);
        out
    }

    fn dec(key: &ContentKey, stored: &[u8]) -> io::Result<Vec<u8>> {
        let mut r = DecryptReader::new(key, stored, stored.len() as u64)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trip_at_segment_boundaries() {
        let key = ContentKey::from_owner_seed(&[1; 32]);
        for n in [
            0,
            1,
            100,
            SEGMENT_BYTES - 1,
            SEGMENT_BYTES,
            SEGMENT_BYTES + 1,
            3 * SEGMENT_BYTES,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let stored = enc(&key, &data);
            let segments = n.div_ceil(SEGMENT_BYTES).max(1);
            assert_eq!(
                stored.len(),
                HEADER_BYTES + n + segments * TAG_BYTES,
                "n = {n}"
            );
            assert_eq!(plaintext_len(stored.len() as u64), Some(n as u64));
            assert_eq!(dec(&key, &stored).unwrap(), data, "n = {n}");
        }
    }

    #[test]
    fn wrong_key_truncation_and_tampering_are_refused() {
        let key = ContentKey::from_owner_seed(&[1; 32]);
        let other = ContentKey::from_owner_seed(&[2; 32]);
        let data = vec![42u8; 2 * SEGMENT_BYTES + 5];
        let stored = enc(&key, &data);
        let e = dec(&other, &stored).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("wrong key: the file was encrypted with key "),
            "{e}"
        );
        let mut bad = stored.clone();
        bad[HEADER_BYTES + 10] ^= 1;
        assert_eq!(
            dec(&key, &bad).unwrap_err().to_string(),
            "encrypted contents damaged or altered (segment 0 fails authentication)"
        );
        // Dropping the final segment makes the previous one claim to be last: refused.
        let cut = &stored[..HEADER_BYTES + 2 * (SEGMENT_BYTES + TAG_BYTES)];
        assert_eq!(
            dec(&key, cut).unwrap_err().to_string(),
            "encrypted contents damaged or altered (segment 1 fails authentication)"
        );
        assert_eq!(
            dec(&key, b"plain text that is long enough for a header, surely")
                .unwrap_err()
                .to_string(),
            "not an encrypted file (no ETCHENC1 header)"
        );
    }
}
