//! Signed host requests: every request a host makes (but `/v1/join`) carries an ed25519
//! signature over what it asks, made with a key that never leaves the host. The server keeps
//! only public keys, so a stolen server database cannot impersonate a host.
//!
//! The signed message binds the method, the path, the body (by SHA-256), the time and a nonce,
//! so a captured request cannot be re-aimed at another endpoint, given another body, or sent
//! again: a timestamp off by more than the allowed skew is stale ([`Signed::check_time`]), a
//! nonce seen before (the server keeps them for the skew's length) is a replay. Duo's
//! integration keys are shared secrets (HMAC), so a copy of Duo's side could sign for the
//! host; this is the step past that.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
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

/// A fresh nonce: 16 random bytes from the OS, as 32 lowercase hex digits.
pub fn new_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)?;
    Ok(data_encoding::HEXLOWER.encode(&bytes))
}

/// The headers a host sends with a signed request.
pub fn sign(
    key: &SigningKey,
    host: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: i64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
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

/// Why a signed request is refused. Every case is the client's fault (a 401 or 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A signature header is not there (or not text).
    Missing(&'static str),
    /// The timestamp header is not Unix seconds.
    BadTimestamp,
    /// The nonce is not of the shape [`valid_nonce`] takes.
    BadNonce,
    /// The signature header is not a base64 ed25519 signature.
    BadSignatureHeader,
    /// The request's time is this many seconds from the server's, more than `allowed`.
    Stale {
        /// The request's time less the server's.
        off_by: i64,
        /// The skew allowed, in seconds.
        allowed: u64,
    },
    /// The signature does not verify with the host's key (or the key on file is broken).
    BadSignature(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(name) => write!(
                f,
                "unsigned request: header {name} is missing; hosts sign every request \
                 (docs/server.md, \"Signed requests\")"
            ),
            Self::BadTimestamp => write!(f, "header {TIMESTAMP}: not Unix seconds"),
            Self::BadNonce => write!(
                f,
                "header {NONCE}: 16 to 64 characters of A-Z, a-z, 0-9, '-' or '_'"
            ),
            Self::BadSignatureHeader => write!(f, "header {SIGNATURE}: not an ed25519 signature"),
            Self::Stale { off_by, allowed } => write!(
                f,
                "stale request: its time is {off_by}s from the server's (at most {allowed}s \
                 allowed); check the host's clock (NTP)"
            ),
            Self::BadSignature(host) => write!(f, "bad signature from host {host:?}"),
        }
    }
}

impl std::error::Error for Refused {}

/// The signature headers of a request, parsed: what the server checks before it trusts the
/// body.
#[derive(Debug)]
pub struct Signed<'a> {
    /// The host the request says it is from (not yet proven).
    pub host: &'a str,
    /// Its Unix time.
    pub timestamp: i64,
    /// Its nonce, of a valid shape.
    pub nonce: &'a str,
    signature: Signature,
}

impl<'a> Signed<'a> {
    /// Reads the four headers through `header` (a case-insensitive look-up by name).
    pub fn parse(header: impl Fn(&'static str) -> Option<&'a str>) -> Result<Self, Refused> {
        let get = |name| header(name).ok_or(Refused::Missing(name));
        let host = get(HOST)?;
        let timestamp = get(TIMESTAMP)?.parse().map_err(|_| Refused::BadTimestamp)?;
        let nonce = get(NONCE)?;
        if !valid_nonce(nonce) {
            return Err(Refused::BadNonce);
        }
        let signature = data_encoding::BASE64
            .decode(get(SIGNATURE)?.as_bytes())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(Refused::BadSignatureHeader)?;
        Ok(Self {
            host,
            timestamp,
            nonce,
            signature,
        })
    }

    /// The timestamp rule: at most `skew` seconds either side of `now`.
    pub fn check_time(&self, now: i64, skew: u64) -> Result<(), Refused> {
        if self.timestamp.abs_diff(now) > skew {
            return Err(Refused::Stale {
                off_by: self.timestamp.saturating_sub(now),
                allowed: skew,
            });
        }
        Ok(())
    }

    /// Checks the signature over (method, path, body) with the host's 32-byte public key.
    pub fn verify(
        &self,
        public_key: &[u8],
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(), Refused> {
        let bad = || Refused::BadSignature(self.host.to_owned());
        let key = <[u8; 32]>::try_from(public_key)
            .ok()
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(bad)?;
        let message = message(method, path, body, self.timestamp, self.nonce, self.host);
        // Strict: refuses the malleable and small-order cases plain verification lets through.
        key.verify_strict(&message, &self.signature)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn headers<'a>(
        h: &'a [(&'static str, String)],
    ) -> impl Fn(&'static str) -> Option<&'a str> + 'a {
        move |name| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn what_is_signed_verifies_and_nothing_else_does() {
        let nonce = new_nonce().expect("nonce");
        assert!(valid_nonce(&nonce));
        let h = sign(&key(), "web1", "POST", "/v1/verify", b"{}", 1000, &nonce);
        let signed = Signed::parse(headers(&h)).expect("parses");
        let public = key().verifying_key().to_bytes();
        assert_eq!(signed.verify(&public, "POST", "/v1/verify", b"{}"), Ok(()));
        // Another path, body or method: refused.
        for (method, path, body) in [
            ("POST", "/v1/join", &b"{}"[..]),
            ("POST", "/v1/verify", &b"{ }"[..]),
            ("GET", "/v1/verify", &b"{}"[..]),
        ] {
            assert_eq!(
                signed.verify(&public, method, path, body),
                Err(Refused::BadSignature("web1".to_owned()))
            );
        }
        // Another host's key: refused.
        let other = SigningKey::from_bytes(&[8u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(signed.verify(&other, "POST", "/v1/verify", b"{}").is_err());
    }

    #[test]
    fn the_timestamp_rule_is_inclusive_of_the_skew() {
        let h = sign(&key(), "web1", "POST", "/", b"", 1000, "0123456789abcdef");
        let signed = Signed::parse(headers(&h)).expect("parses");
        assert_eq!(signed.check_time(1060, 60), Ok(()));
        assert_eq!(signed.check_time(940, 60), Ok(()));
        assert_eq!(
            signed.check_time(1061, 60),
            Err(Refused::Stale {
                off_by: -61,
                allowed: 60
            })
        );
    }

    #[test]
    fn bad_headers_are_named() {
        let good = sign(&key(), "web1", "POST", "/", b"", 1000, "0123456789abcdef");
        let without = |name| {
            let h: Vec<_> = good.iter().filter(|(n, _)| *n != name).cloned().collect();
            Signed::parse(headers(&h)).map(|_| ()).expect_err("refused")
        };
        assert_eq!(without(HOST), Refused::Missing(HOST));
        assert_eq!(without(SIGNATURE), Refused::Missing(SIGNATURE));
        let with = |name, value: &str| {
            let h: Vec<_> = good
                .iter()
                .map(|(n, v)| {
                    (
                        *n,
                        if *n == name {
                            value.to_owned()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect();
            Signed::parse(headers(&h)).map(|_| ()).expect_err("refused")
        };
        assert_eq!(with(NONCE, "short"), Refused::BadNonce);
        assert_eq!(with(NONCE, "0123456789abcdef\n"), Refused::BadNonce);
        assert_eq!(with(TIMESTAMP, "soon"), Refused::BadTimestamp);
        assert_eq!(with(SIGNATURE, "AAAA"), Refused::BadSignatureHeader);
        assert!(Refused::Missing(HOST)
            .to_string()
            .contains("docs/server.md"));
    }
}
