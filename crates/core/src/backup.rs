//! One-time backup codes, for the day the phone is lost.
//!
//! A code is 10 characters from a 31-letter alphabet without look-alikes (no `0 o 1 l i`),
//! about 49.5 bits of entropy, printed as `k7mq2-xv9hd`. google-authenticator's scratch codes
//! are 8 decimal digits, 26.6 bits (its issue #141). Codes are stored only as salted SHA-256
//! hashes. (The record already holds the TOTP secrets in clear, which verification needs, so a
//! slow password hash would add nothing against someone who can read it; the hash keeps codes
//! out of backups, screen shares and `cat`.) Imported google-authenticator scratch codes keep
//! their 8-digit form and are hashed the same way.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The characters a code is made of.
pub const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Characters per code.
pub const CODE_LENGTH: usize = 10;
/// Codes per set.
pub const SET_SIZE: usize = 10;

/// The hashed set stored in a record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupCodes {
    /// Random salt for this set, hex.
    pub salt: String,
    /// SHA-256(salt || normalized code), hex, one per code.
    pub hashes: Vec<String>,
    /// When the set was issued.
    #[serde(default)]
    pub issued: u64,
}

impl BackupCodes {
    /// No codes at all.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Hashes plain codes into a new set with a fresh salt.
    pub fn from_plain(codes: &[Zeroizing<String>], issued: u64) -> Result<Self, getrandom::Error> {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt)?;
        let salt = data_encoding::HEXLOWER.encode(&salt);
        let hashes = codes.iter().map(|c| hash(&salt, c)).collect();
        Ok(Self {
            salt,
            hashes,
            issued,
        })
    }

    /// The hash of `typed` if it is one of this set's codes and not in `used`.
    /// Compares against every stored hash in constant time.
    pub fn find_unused(&self, typed: &str, used: &[String]) -> Option<String> {
        if self.hashes.is_empty() {
            return None;
        }
        let candidate = hash(&self.salt, typed);
        let mut found = false;
        for stored in &self.hashes {
            found |= bool::from(stored.as_bytes().ct_eq(candidate.as_bytes()));
        }
        let already = used
            .iter()
            .any(|u| u.as_bytes().ct_eq(candidate.as_bytes()).into());
        (found && !already).then_some(candidate)
    }

    /// How many codes of this set are not in `used`.
    pub fn remaining(&self, used: &[String]) -> usize {
        self.hashes.iter().filter(|h| !used.contains(h)).count()
    }
}

/// A fresh set of plain codes, formatted for printing (`xxxxx-xxxxx`).
pub fn generate_set() -> Result<Vec<Zeroizing<String>>, getrandom::Error> {
    (0..SET_SIZE).map(|_| generate_one()).collect()
}

fn generate_one() -> Result<Zeroizing<String>, getrandom::Error> {
    let mut code = Zeroizing::new(String::with_capacity(CODE_LENGTH + 1));
    let mut byte = [0u8; 1];
    while code.len() < CODE_LENGTH + 1 {
        if code.len() == CODE_LENGTH / 2 {
            code.push('-');
            continue;
        }
        getrandom::getrandom(&mut byte)?;
        // Rejection sampling keeps every character equally likely (248 = 8 * 31).
        if usize::from(byte[0]) < ALPHABET.len() * (256 / ALPHABET.len()) {
            code.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    byte.fill(0);
    Ok(code)
}

/// What the user typed, as it is hashed: lower case, without spaces and dashes.
pub fn normalize(typed: &str) -> Zeroizing<String> {
    Zeroizing::new(
        typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_lowercase)
            .collect(),
    )
}

/// The stored hash of `code` (as typed: normalized here) in a set salted with `salt`.
pub fn hash(salt: &str, code: &str) -> String {
    let normal = normalize(code);
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b"\0");
    h.update(normal.as_bytes());
    data_encoding::HEXLOWER.encode(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_well_formed_and_distinct() {
        let set = generate_set().unwrap();
        assert_eq!(set.len(), SET_SIZE);
        for code in &set {
            assert_eq!(code.len(), 11);
            assert_eq!(&code[5..6], "-");
            assert!(code
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b)));
        }
        let mut unique: Vec<&str> = set.iter().map(|c| c.as_str()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), SET_SIZE);
        // ≥ 40 bits each.
        assert!((ALPHABET.len() as f64).log2() * CODE_LENGTH as f64 >= 40.0);
        for look_alike in [b'0', b'o', b'1', b'l', b'i'] {
            assert!(!ALPHABET.contains(&look_alike));
        }
    }

    #[test]
    fn matching_is_forgiving_of_format_and_single_use() {
        let set = generate_set().unwrap();
        let stored = BackupCodes::from_plain(&set, 0).unwrap();
        let typed = set[3].replace('-', " ").to_uppercase();
        let h = stored.find_unused(&typed, &[]).unwrap();
        assert_eq!(stored.find_unused(&set[3], std::slice::from_ref(&h)), None);
        assert_eq!(stored.remaining(&[h]), SET_SIZE - 1);
        assert_eq!(stored.find_unused("aaaaa-aaaaa", &[]), None);
        assert!(!stored.hashes.iter().any(|x| x.contains(set[0].as_str())));
    }
}
