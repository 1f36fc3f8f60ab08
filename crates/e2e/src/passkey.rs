//! A software passkey for the server's API tests and the fleet's end-to-end tests: an ES256
//! credential that answers WebAuthn registrations (attestation `none`) and assertions exactly
//! as an authenticator with user verification does, so the server's checks (challenge,
//! origin, RP ID hash, flags, signature, counter) are met — or, on purpose, not. The browser
//! tests use Chromium's own virtual authenticator instead.
#![allow(
    clippy::expect_used,
    reason = "a test harness: a failed step panics with the reason, failing the test"
)]

use data_encoding::BASE64URL_NOPAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// User present and user verified (WebAuthn §6.1 flags).
const UP_UV: u8 = 0x01 | 0x04;
/// ...and attested credential data included.
const AT: u8 = 0x40;

/// One credential.
pub struct SoftPasskey {
    key: SigningKey,
    pub id: Vec<u8>,
    pub counter: u32,
    /// The origin its "browser" reports in client data.
    pub origin: String,
    /// Whether it claims user verification.
    pub verified: bool,
}

impl std::fmt::Debug for SoftPasskey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftPasskey")
            .field("id", &BASE64URL_NOPAD.encode(&self.id))
            .field("counter", &self.counter)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SoftPasskey {
    /// A new credential, made from `seed`, used from `origin` (`http://localhost:PORT`).
    pub fn new(seed: u8, origin: &str) -> Self {
        let key = SigningKey::from_slice(&[seed.max(1); 32]).expect("a P-256 key");
        Self {
            key,
            id: Sha256::digest([seed, 0x5a]).to_vec(),
            counter: 0,
            origin: origin.to_owned(),
            verified: true,
        }
    }

    fn rp_id(&self) -> String {
        let host = self.origin.split("://").nth(1).expect("an origin");
        host.split(':').next().expect("a host").to_owned()
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options["publicKey"]["challenge"]
            .as_str()
            .unwrap_or_else(|| panic!("no challenge in {options}"));
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn auth_data(&mut self, flags: u8) -> Vec<u8> {
        self.counter += 1;
        let mut data = Sha256::digest(self.rp_id().as_bytes()).to_vec();
        let uv = if self.verified { UP_UV } else { 0x01 };
        data.push(flags | uv);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data
    }

    /// The COSE_Key of the public key (RFC 9053 §7.1.1: kty EC2, alg ES256, crv P-256, x, y),
    /// CBOR-encoded: a fixed five-entry map, so its bytes are written out.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut cbor = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        cbor.extend_from_slice(point.x().expect("x"));
        cbor.extend_from_slice(&[0x22, 0x58, 0x20]);
        cbor.extend_from_slice(point.y().expect("y"));
        cbor
    }

    /// The answer to `options` (the server's CreationChallengeResponse), as a browser sends it.
    pub fn register(&mut self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.create", options);
        let mut auth = self.auth_data(AT);
        auth.extend_from_slice(&[0u8; 16]); // AAGUID
        let len = u16::try_from(self.id.len()).expect("short id");
        auth.extend_from_slice(&len.to_be_bytes());
        auth.extend_from_slice(&self.id);
        auth.extend_from_slice(&self.cose_key());
        // {"fmt": "none", "attStmt": {}, "authData": bytes}
        let mut object = vec![0xa3, 0x63];
        object.extend_from_slice(b"fmt");
        object.push(0x64);
        object.extend_from_slice(b"none");
        object.push(0x67);
        object.extend_from_slice(b"attStmt");
        object.push(0xa0);
        object.push(0x68);
        object.extend_from_slice(b"authData");
        object.push(0x59);
        object.extend_from_slice(&u16::try_from(auth.len()).expect("short").to_be_bytes());
        object.extend_from_slice(&auth);
        let id = BASE64URL_NOPAD.encode(&self.id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "attestationObject": BASE64URL_NOPAD.encode(&object),
                "clientDataJSON": BASE64URL_NOPAD.encode(&client_data),
            },
            "extensions": {}
        })
    }

    /// The answer to `options` (the server's RequestChallengeResponse), signed.
    pub fn assert(&mut self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.get", options);
        let auth = self.auth_data(0);
        let mut signed = auth.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        let id = BASE64URL_NOPAD.encode(&self.id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "authenticatorData": BASE64URL_NOPAD.encode(&auth),
                "clientDataJSON": BASE64URL_NOPAD.encode(&client_data),
                "signature": BASE64URL_NOPAD.encode(signature.to_der().as_bytes()),
                "userHandle": null,
            },
            "extensions": {}
        })
    }
}
