//! What the first factor was, from sshd's `SSH_AUTH_INFO_0`.
//!
//! With `ExposeAuthInfo yes`, sshd puts the methods a client has already passed into the PAM
//! environment (and the session's), one per line: `publickey ssh-ed25519 AAAAC3...`,
//! `password`, `keyboard-interactive`. The policy can then exempt logins by method
//! (`exempt_methods`, the wish in authy-ssh #5 and google-authenticator #102), and an
//! authenticator can be bound to given SSH keys: it is only accepted after a login with one of
//! them.
//!
//! The text comes from sshd through PAM, not from the client: a user cannot set it (sshd does
//! not accept it from `~/.ssh/environment` into PAM). Where it is absent, nothing is exempted
//! and key-bound authenticators are not accepted.

use data_encoding::{BASE64, BASE64_NOPAD};
use sha2::{Digest, Sha256};

/// The methods passed so far and the public keys used, as OpenSSH fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstFactor {
    /// Method names, e.g. `publickey`, `password`.
    pub methods: Vec<String>,
    /// `SHA256:...` fingerprints of the public keys used, as `ssh-keygen -l` prints them.
    pub keys: Vec<String>,
}

impl FirstFactor {
    /// Parses `SSH_AUTH_INFO_0`. Lines it does not understand are skipped.
    pub fn parse(text: &str) -> Self {
        let mut first = Self::default();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let Some(method) = fields.next() else {
                continue;
            };
            if !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                continue;
            }
            if method == "publickey" {
                // `publickey TYPE BASE64 [comment]`; certificates also name their key this way.
                if let Some(blob) = fields.nth(1).and_then(|b| BASE64.decode(b.as_bytes()).ok()) {
                    first.keys.push(fingerprint(&blob));
                }
            }
            if !first.methods.iter().any(|m| m == method) {
                first.methods.push(method.to_owned());
            }
        }
        first
    }

    /// Whether a key with this fingerprint was used. Fingerprints are compared as OpenSSH
    /// prints them (`SHA256:` and unpadded base64).
    pub fn used_key(&self, fingerprint: &str) -> bool {
        self.keys.iter().any(|k| k == fingerprint.trim())
    }
}

/// OpenSSH's SHA-256 fingerprint of a public key blob.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", BASE64_NOPAD.encode(&Sha256::digest(blob)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_sshd_exposes() {
        // A real ed25519 key; `ssh-keygen -lf` printed the fingerprint below for it.
        let key = "AAAAC3NzaC1lZDI1NTE5AAAAIADZH9i5q4BpblLoMkH34ykCJ5h9wSugJ4jSFNJ6Cvr5";
        let text = format!("publickey ssh-ed25519 {key}\nkeyboard-interactive\n");
        let f = FirstFactor::parse(&text);
        assert_eq!(f.methods, ["publickey", "keyboard-interactive"]);
        assert_eq!(
            f.keys,
            ["SHA256:52jls/RFRFy+PubI/1au9ilDJEPP1HA5XL7AIZ5aMsA"]
        );
        assert!(f.used_key("SHA256:52jls/RFRFy+PubI/1au9ilDJEPP1HA5XL7AIZ5aMsA"));
        assert_eq!(FirstFactor::parse("password\n").methods, ["password"]);
        assert_eq!(FirstFactor::parse("").methods, Vec::<String>::new());
        assert!(FirstFactor::parse("publickey ssh-ed25519 !!!\n")
            .keys
            .is_empty());
    }
}
