//! The shared key of a token, kept out of logs and wiped from memory.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::base32::{decode_base32, encode_base32, Base32Error};

/// A token's shared key. It has no `Display`, its `Debug` hides the bytes, equality is
/// constant-time, and the bytes are zeroized when it is dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

/// The default key size: 160 bits, the HMAC-SHA-1 output size RFC 4226 §4 recommends.
pub(crate) const DEFAULT_SECRET_BYTES: usize = 20;
/// Keys shorter than 80 bits are refused; RFC 4226 §4 requires at least 128 and recommends 160,
/// but pam_oath users (seed 002) made 120-bit keys with `md5sum | cut -b 1-30`, and those must
/// import.
pub(crate) const MIN_SECRET_BYTES: usize = 10;
/// HMAC accepts longer keys, but nothing real uses more than a SHA-512 block.
pub(crate) const MAX_SECRET_BYTES: usize = 128;

impl Secret {
    /// A new random key of `len` bytes from the operating system's CSPRNG.
    pub fn generate(len: usize) -> Result<Self, SecretError> {
        check_len(len)?;
        let mut bytes = vec![0u8; len];
        getrandom::getrandom(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// A new random 160-bit key.
    pub fn generate_default() -> Result<Self, SecretError> {
        Self::generate(DEFAULT_SECRET_BYTES)
    }

    /// Takes ownership of raw key bytes, checking their length.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let secret = Self(bytes);
        check_len(secret.0.len())?;
        Ok(secret)
    }

    /// Parses a base32 key as apps and users write it (see [`decode_base32`]).
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        let bytes = decode_base32(text).map_err(SecretError::Base32)?;
        Self::from_bytes(bytes.to_vec())
    }

    /// Parses a hex key, as pam_oath's usersfile and oathtool use.
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) {
            return Err(SecretError::Hex);
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 2));
        for pair in text.as_bytes().chunks_exact(2) {
            let hi = hex_value(pair[0]).ok_or(SecretError::Hex)?;
            let lo = hex_value(pair[1]).ok_or(SecretError::Hex)?;
            bytes.push(hi << 4 | lo);
        }
        Self::from_bytes(bytes.to_vec())
    }

    /// The canonical base32 form (upper case, no padding), for Key URIs and records.
    pub fn to_base32(&self) -> Zeroizing<String> {
        encode_base32(&self.0)
    }

    /// The raw key, for the HMAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty key cannot be built.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn check_len(len: usize) -> Result<(), SecretError> {
    if (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&len) {
        Ok(())
    } else {
        Err(SecretError::Length(len))
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([{} bytes redacted])", self.0.len())
    }
}

/// Why a key was refused. Never contains the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// Not valid base32.
    Base32(Base32Error),
    /// Not valid hex.
    Hex,
    /// Too short to be safe or too long to be real.
    Length(usize),
    /// The OS random source failed.
    Random(String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Base32(e) => e.fmt(f),
            Self::Hex => write!(f, "secret is not valid hex (pairs of 0-9, a-f)"),
            Self::Length(n) => write!(
                f,
                "secret is {} bits long; use {} to {} bits (160 is the default)",
                n * 8,
                MIN_SECRET_BYTES * 8,
                MAX_SECRET_BYTES * 8
            ),
            Self::Random(e) => write!(f, "the system random number generator failed: {e}"),
        }
    }
}

impl std::error::Error for SecretError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_differ_and_have_default_length() {
        let a = Secret::generate_default().unwrap();
        let b = Secret::generate_default().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_the_key() {
        let s = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("JBSW"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn hex_and_base32_agree() {
        // The example from seed 002: oathtool prints this base32 form of the hex key.
        let hex = Secret::from_hex("8fa4acca0483c5694096ff9d1cc360").unwrap();
        assert_eq!(hex.to_base32().as_str(), "R6SKZSQEQPCWSQEW76ORZQ3A");
        assert!(Secret::from_hex("8fa").is_err());
        assert!(Secret::from_hex("zz00112233445566778899").is_err());
    }

    #[test]
    fn length_limits() {
        assert_eq!(Secret::from_bytes(vec![1; 9]), Err(SecretError::Length(9)));
        assert!(Secret::from_bytes(vec![1; 10]).is_ok());
        assert!(Secret::generate(129).is_err());
    }
}
