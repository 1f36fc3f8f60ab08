//! A per-user webhook: the notification as JSON, POSTed to a URL the admin set, signed so the
//! receiver can tell it came from this server.
//!
//! Signature: `X-Sshield-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//! with `X-Sshield-Timestamp: <Unix seconds>`. Signing the timestamp with the body lets a
//! receiver refuse a captured request replayed later (the scheme of Stripe's and GitHub's
//! webhooks). The secret is 32 random bytes per webhook, shown once when it is made.

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Request;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::webpush::{Endpoint, WebPushError};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-sshield-signature";
/// The timestamp header, covered by the signature.
pub const TIMESTAMP_HEADER: &str = "x-sshield-timestamp";
const SECRET_LEN: usize = 32;

/// One webhook: where to POST and the key to sign with.
pub struct Webhook {
    /// The URL (http or https; no redirect is followed).
    pub url: Endpoint,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl Webhook {
    /// A webhook to `url` with `secret` as stored.
    pub fn new(url: &str, secret: Vec<u8>) -> Result<Self, WebPushError> {
        Ok(Self {
            url: Endpoint::parse(url, "url")?,
            secret: Zeroizing::new(secret),
        })
    }

    /// A new random secret, and its text form to show the admin once (base64url: what a
    /// receiver's config takes; the HMAC key is the text's bytes, so receivers need not
    /// decode it).
    pub fn new_secret() -> Result<Zeroizing<String>, WebPushError> {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        getrandom::getrandom(bytes.as_mut()).map_err(|e| WebPushError::Random(e.to_string()))?;
        Ok(Zeroizing::new(BASE64URL_NOPAD.encode(bytes.as_ref())))
    }

    /// `sha256=<hex>` over `"<timestamp>.<body>"`.
    pub fn signature(&self, body: &[u8], timestamp: u64) -> String {
        sign(&self.secret, body, timestamp)
    }

    pub(super) fn request(&self, body: &[u8], now: u64) -> Result<Request<Full<Bytes>>, String> {
        Request::post(self.url.as_str())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("sshield-server/", env!("CARGO_PKG_VERSION")),
            )
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, self.signature(body, now))
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| e.to_string())
    }
}

/// The HMAC of `"<timestamp>.<body>"` under `secret`, as the header carries it.
pub fn sign(secret: &[u8], body: &[u8], timestamp: u64) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", HEXLOWER.encode(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against `printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`.
    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        assert_eq!(
            sign(b"secret", b"{}", 1_700_000_000),
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
