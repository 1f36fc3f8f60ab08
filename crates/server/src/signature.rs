//! Signed host requests: every request a host makes (but `/v1/join`) carries an ed25519
//! signature over what it asks, made with a key that never leaves the host. The server keeps
//! only public keys, so a stolen server database cannot impersonate a host.
//!
//! The signed message binds the method, the path, the body (by SHA-256), the time and a nonce,
//! so a captured request cannot be re-aimed at another endpoint, given another body, or sent
//! again: a timestamp off by more than the allowed skew is stale, a nonce seen before (kept
//! for the skew's length) is a replay. Duo's integration keys are shared secrets (HMAC), so a
//! copy of Duo's side could sign for the host; this is the step past that.

use sha2::{Digest, Sha256};

/// The header naming the host.
pub const HOST: &str = "x-sshield-host";
/// The header with the request's Unix time, in seconds.
pub const TIMESTAMP: &str = "x-sshield-timestamp";
/// The header with the request's nonce: 16 to 64 characters of `[A-Za-z0-9_-]`.
pub const NONCE: &str = "x-sshield-nonce";
/// The header with the signature, base64 (standard alphabet, padded).
pub const SIGNATURE: &str = "x-sshield-signature";

/// The exact bytes a host signs: a domain string, then one field per line.
pub fn message(
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: i64,
    nonce: &str,
    host: &str,
) -> Vec<u8> {
    let digest = Sha256::digest(body);
    format!(
        "sshield-host-request-v1\n{method}\n{path}\n{}\n{timestamp}\n{nonce}\n{host}",
        data_encoding::HEXLOWER.encode(&digest)
    )
    .into_bytes()
}

/// A nonce is short, printable and unambiguous in a header and a log line.
pub fn valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The headers a host sends with a signed request (used by the host side and the tests).
pub fn sign(
    key: &ed25519_dalek::SigningKey,
    host: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: i64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    use ed25519_dalek::Signer;
    let signature = key.sign(&message(method, path, body, timestamp, nonce, host));
    vec![
        (HOST, host.to_owned()),
        (TIMESTAMP, timestamp.to_string()),
        (NONCE, nonce.to_owned()),
        (
            SIGNATURE,
            data_encoding::BASE64.encode(&signature.to_bytes()),
        ),
    ]
}
