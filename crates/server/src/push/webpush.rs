//! Web Push without a vendor account: RFC 8291 message encryption and RFC 8292 VAPID.
//!
//! The browser's push service (Mozilla's, Google's, Apple's) only relays bytes it cannot read:
//! the payload is encrypted to the subscriber's P-256 key and `auth` secret (RFC 8291, one
//! `aes128gcm` record, RFC 8188), and the request carries a VAPID JWT (ES256) signed with
//! this server's key, so the push service only accepts pushes for subscriptions made with our
//! public key (RFC 8292). No account with the push service is needed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use data_encoding::BASE64URL_NOPAD;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keyfile::{self, KeyFileError};

/// The VAPID key file's name in the state dir, next to the record key.
pub const VAPID_KEY_FILE: &str = "vapid.key";
/// A P-256 private scalar's length.
const SCALAR_LEN: usize = 32;
/// RFC 8291 §4: one record, so its size is the whole body; 4096 is the most a push service
/// must accept (RFC 8030 §7.2), which bounds what we send.
pub const MAX_BODY: usize = 4096;
/// The record size written in the header (RFC 8188 §2.1): the one record may be shorter.
const RECORD_SIZE: u32 = 4096;
/// RFC 8188 §2.1 header: salt (16), record size (4), key id length (1), key id (65).
const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// The AES-GCM tag and the RFC 8188 padding delimiter.
const OVERHEAD: usize = 16 + 1;
/// The longest payload that fits one record of [`MAX_BODY`].
pub const MAX_PAYLOAD: usize = MAX_BODY - HEADER_LEN - OVERHEAD;
/// RFC 8292 §2: `exp` must be no more than 24 hours ahead; 12 h leaves room for clock skew.
pub const JWT_LIFETIME_SECS: u64 = 12 * 60 * 60;

/// What went wrong with the VAPID key, a subscription or a message.
#[derive(Debug)]
pub enum WebPushError {
    /// The key file could not be read or made.
    KeyFile {
        /// Its path.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The key file is not a P-256 private key.
    KeyInvalid {
        /// Its path.
        path: PathBuf,
    },
    /// Others may read or write the key file.
    KeyMode {
        /// Its path.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The random number generator failed.
    Random(String),
    /// A subscription field is not what a browser's `PushSubscription.toJSON()` gives.
    Subscription {
        /// `endpoint`, `p256dh` or `auth`.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The payload does not fit one push message.
    TooLong {
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for WebPushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyFile { path, error } => {
                write!(f, "cannot use the VAPID key {}: {error}", path.display())
            }
            Self::KeyInvalid { path } => write!(
                f,
                "the VAPID key {} is not a 32-byte P-256 private key; restore it from your \
                 backup, or delete it to make a new one (every browser must then subscribe again)",
                path.display()
            ),
            Self::KeyMode { path, mode } => write!(
                f,
                "the VAPID key {} has mode {mode:o}: others could send pushes as this server; \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            Self::Random(e) => write!(f, "the system's random number generator failed: {e}"),
            Self::Subscription { field, why } => {
                write!(f, "the push subscription's `{field}` is not valid: {why}")
            }
            Self::TooLong { len } => write!(
                f,
                "a push payload of {len} bytes does not fit one message (at most {MAX_PAYLOAD})"
            ),
        }
    }
}

impl std::error::Error for WebPushError {}

/// The server's VAPID key pair (RFC 8292): browsers subscribe with its public half.
pub struct VapidKey {
    signing: SigningKey,
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VapidKey(public {})", self.public_key_base64())
    }
}

impl VapidKey {
    /// Reads the key at `path`, or makes it (0600, created exclusively so two servers
    /// starting at once cannot write two keys) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, WebPushError> {
        let secret = random_secret()?;
        match keyfile::create(path, &secret.to_bytes()) {
            Ok(true) => Ok(Self {
                signing: SigningKey::from(secret),
            }),
            Ok(false) => Self::load(path),
            Err(error) => Err(WebPushError::KeyFile {
                path: path.to_owned(),
                error,
            }),
        }
    }

    /// Reads an existing key, refusing one that others may read.
    pub fn load(path: &Path) -> Result<Self, WebPushError> {
        let bytes = keyfile::read_private(path, SCALAR_LEN).map_err(|e| match e {
            KeyFileError::Io(error) => WebPushError::KeyFile {
                path: path.to_owned(),
                error,
            },
            KeyFileError::Mode(mode) => WebPushError::KeyMode {
                path: path.to_owned(),
                mode,
            },
        })?;
        // Exactly 32 bytes: `SecretKey::from_slice` would also take a shorter slice, padded,
        // so a truncated file must be refused before it.
        if bytes.len() != SCALAR_LEN {
            return Err(WebPushError::KeyInvalid {
                path: path.to_owned(),
            });
        }
        let secret = SecretKey::from_slice(&bytes).map_err(|_| WebPushError::KeyInvalid {
            path: path.to_owned(),
        })?;
        Ok(Self {
            signing: SigningKey::from(secret),
        })
    }

    /// The public key as the browser's `applicationServerKey` wants it: the uncompressed
    /// point (65 bytes), base64url without padding.
    pub fn public_key_base64(&self) -> String {
        BASE64URL_NOPAD.encode(
            self.signing
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes(),
        )
    }

    /// The `Authorization` header for a push to `endpoint` (RFC 8292 §3): `vapid t=<JWT>,
    /// k=<public key>`. `aud` is the endpoint's origin, `exp` is `now` + 12 h, `sub` is the
    /// operator's contact (`mailto:` or `https:`), which push services use to reach them.
    pub fn authorization(
        &self,
        endpoint: &Endpoint,
        subject: &str,
        now: u64,
    ) -> Result<String, WebPushError> {
        // RFC 7515: header and claims as base64url JSON, signed over "header.claims"; ES256
        // signatures are r || s (64 bytes), not DER (RFC 7518 §3.4).
        let header = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": endpoint.origin(),
            "exp": now + JWT_LIFETIME_SECS,
            "sub": subject,
        });
        let claims = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.signing.sign(signing_input.as_bytes());
        let signature = BASE64URL_NOPAD.encode(&signature.to_bytes());
        Ok(format!(
            "vapid t={signing_input}.{signature}, k={}",
            self.public_key_base64()
        ))
    }
}

/// A push endpoint URL, checked: http(s), a host, no user info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    scheme: String,
    authority: String,
}

impl Endpoint {
    /// Checks `url`. `field` names it in the error (`endpoint`, `url`).
    pub fn parse(url: &str, field: &'static str) -> Result<Self, WebPushError> {
        let bad = |why: &str| WebPushError::Subscription {
            field,
            why: format!("{url:?}: {why}"),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not a URL (no scheme)"))?;
        let scheme = scheme.to_ascii_lowercase();
        // Only HTTP(S): a `file:` or `gopher:` URL must not make the server read or talk
        // elsewhere (SSRF through an unusual scheme).
        if scheme != "https" && scheme != "http" {
            return Err(bad(
                "only https:// (or http:// for a local receiver) is allowed",
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad("user info (user:password@) is not allowed"));
        }
        let parsed: hyper::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        if parsed.host().is_none() {
            return Err(bad("no host"));
        }
        Ok(Self {
            url: url.to_owned(),
            scheme,
            authority: authority.to_ascii_lowercase(),
        })
    }

    /// True for `https://`: TLS to the push service.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// The whole URL.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL's origin, `scheme://host[:port]`: a JWT's `aud` (RFC 8292 §2). The port
    /// belongs to the origin (RFC 6454 §4): leaving it out, as some senders do, makes a push
    /// service on a non-default port refuse the token.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// One browser's subscription, as `PushSubscription.toJSON()` gives it.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Where to POST.
    pub endpoint: Endpoint,
    /// The browser's P-256 public key (`keys.p256dh`).
    pub p256dh: PublicKey,
    /// The browser's 16-byte authentication secret (`keys.auth`).
    pub auth: [u8; 16],
}

impl Subscription {
    /// Checks the three fields as the browser sends them (base64url keys).
    pub fn parse(endpoint: &str, p256dh: &str, auth: &str) -> Result<Self, WebPushError> {
        let endpoint = Endpoint::parse(endpoint, "endpoint")?;
        let bad = |field, why: &str| WebPushError::Subscription {
            field,
            why: why.to_owned(),
        };
        let key = decode_base64url(p256dh).ok_or_else(|| bad("p256dh", "not base64url"))?;
        let p256dh = PublicKey::from_sec1_bytes(&key)
            .map_err(|_| bad("p256dh", "not a P-256 public key"))?;
        let auth = decode_base64url(auth)
            .ok_or_else(|| bad("auth", "not base64url"))?
            .try_into()
            .map_err(|_| bad("auth", "not 16 bytes"))?;
        Ok(Self {
            endpoint,
            p256dh,
            auth,
        })
    }
}

/// Browsers send base64url without padding; some libraries add it. Accept both.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    BASE64URL_NOPAD
        .decode(text.trim_end_matches('=').as_bytes())
        .ok()
}

fn random_secret() -> Result<SecretKey, WebPushError> {
    // A P-256 scalar drawn from the system's RNG; a draw at or above the curve order (odds
    // about 2^-32) is drawn again.
    loop {
        let mut bytes = Zeroizing::new([0u8; SCALAR_LEN]);
        getrandom::getrandom(bytes.as_mut()).map_err(|e| WebPushError::Random(e.to_string()))?;
        if let Ok(secret) = SecretKey::from_slice(bytes.as_ref()) {
            return Ok(secret);
        }
    }
}

/// Encrypts `payload` for `subscription` (RFC 8291 §3–4) into one `aes128gcm` body.
pub fn encrypt(payload: &[u8], subscription: &Subscription) -> Result<Vec<u8>, WebPushError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| WebPushError::Random(e.to_string()))?;
    encrypt_with(payload, subscription, &random_secret()?, salt)
}

/// [`encrypt`] with the ephemeral key and salt given: RFC 8291 §5's worked example checks it.
fn encrypt_with(
    payload: &[u8],
    subscription: &Subscription,
    ephemeral: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, WebPushError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(WebPushError::TooLong { len: payload.len() });
    }
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let ua_public = subscription.p256dh.to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(
        ephemeral.to_nonzero_scalar(),
        subscription.p256dh.as_affine(),
    );

    // RFC 8291 §3.4: IKM = HKDF(salt = auth, ikm = ECDH, info = "WebPush: info\0" || ua || as).
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&subscription.auth), shared.raw_secret_bytes())
        .expand(&key_info, ikm.as_mut())
        .map_err(|_| WebPushError::Random("HKDF output length".into()))?;

    // RFC 8188 §2.2–2.3: the content key and nonce from the message's salt.
    let prk = Hkdf::<Sha256>::new(Some(&salt), ikm.as_ref());
    let mut cek = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", cek.as_mut())
        .and_then(|()| prk.expand(b"Content-Encoding: nonce\0", &mut nonce))
        .map_err(|_| WebPushError::Random("HKDF output length".into()))?;

    // One record, the last, so its padding delimiter is 2 (RFC 8188 §2).
    let mut plain = Zeroizing::new(Vec::with_capacity(payload.len() + 1));
    plain.extend_from_slice(payload);
    plain.push(2);
    let cipher = Aes128Gcm::new_from_slice(cek.as_ref())
        .map_err(|_| WebPushError::Random("AES key length".into()))?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: b"",
            },
        )
        .map_err(|_| WebPushError::TooLong { len: payload.len() })?;

    let mut body = Vec::with_capacity(HEADER_LEN + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> Vec<u8> {
        BASE64URL_NOPAD
            .decode(text.as_bytes())
            .expect("test vector")
    }

    /// RFC 8291 §5's worked example, byte for byte.
    #[test]
    fn rfc_8291_example_encrypts_to_the_published_body() {
        let subscription = Subscription::parse(
            "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV",
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .expect("RFC subscription");
        let ephemeral = SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
            .expect("RFC key");
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("16 bytes");
        let body = encrypt_with(
            b"When I grow up, I want to be a watermelon",
            &subscription,
            &ephemeral,
            salt,
        )
        .expect("encrypts");
        assert_eq!(
            BASE64URL_NOPAD.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn the_audience_keeps_the_port() {
        let endpoint =
            Endpoint::parse("http://127.0.0.1:8443/push/abc?x=1", "endpoint").expect("valid");
        assert_eq!(endpoint.origin(), "http://127.0.0.1:8443");
    }

    #[test]
    fn other_schemes_and_user_info_are_refused() {
        for url in [
            "file:///etc/shadow",
            "ftp://a/b",
            "https://u:p@push.example/x",
            "https:///x",
        ] {
            assert!(Endpoint::parse(url, "endpoint").is_err(), "{url}");
        }
    }
}
