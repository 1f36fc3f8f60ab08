//! Base32 ([RFC 4648 §6]) as people and apps actually write secrets.
//!
//! Authenticator apps show secrets in lower case, in groups of four with spaces, and usually
//! without `=` padding; pam_oath users type them by hand (seed 002). Decoding accepts all of
//! that; encoding always produces the canonical upper-case, unpadded form used in Key URIs.
//!
//! [RFC 4648 §6]: https://www.rfc-editor.org/rfc/rfc4648#section-6

use std::fmt;

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroizing;

/// Why a base32 string could not be decoded. Never contains the input (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base32Error {
    /// A character outside `A-Z2-7` (after removing spaces, dashes and padding).
    InvalidCharacter { position: usize },
    /// The length cannot come from whole bytes (e.g. 1, 3 or 6 characters mod 8).
    InvalidLength { length: usize },
    /// Nothing left after removing spaces and padding.
    Empty,
}

impl fmt::Display for Base32Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCharacter { position } => write!(
                f,
                "invalid base32 character at position {} (allowed: A-Z and 2-7; 0, 1, 8 and 9 are not base32)",
                position + 1
            ),
            Self::InvalidLength { length } => write!(
                f,
                "base32 secret has {length} characters, which is not a whole number of bytes; was a character lost?"
            ),
            Self::Empty => write!(f, "base32 secret is empty"),
        }
    }
}

impl std::error::Error for Base32Error {}

/// Decodes base32, ignoring case, spaces, dashes and trailing `=` padding.
pub fn decode_base32(input: &str) -> Result<Zeroizing<Vec<u8>>, Base32Error> {
    let mut clean = Zeroizing::new(Vec::with_capacity(input.len()));
    let trimmed = input.trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace());
    for (position, c) in trimmed.chars().enumerate() {
        match c {
            ' ' | '\t' | '-' => {}
            'a'..='z' | 'A'..='Z' | '2'..='7' => clean.push(c.to_ascii_uppercase() as u8),
            _ => return Err(Base32Error::InvalidCharacter { position }),
        }
    }
    if clean.is_empty() {
        return Err(Base32Error::Empty);
    }
    let length = clean.len();
    let decoded_len = BASE32_NOPAD
        .decode_len(length)
        .map_err(|_| Base32Error::InvalidLength { length })?;
    let mut out = Zeroizing::new(vec![0u8; decoded_len]);
    let written = BASE32_NOPAD
        .decode_mut(&clean, &mut out)
        .map_err(|e| match e.error.kind {
            data_encoding::DecodeKind::Symbol => Base32Error::InvalidCharacter {
                position: e.error.position,
            },
            _ => Base32Error::InvalidLength { length },
        })?;
    out.truncate(written);
    Ok(out)
}

/// Encodes bytes as canonical base32: upper case, no padding, no spaces.
pub fn encode_base32(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(BASE32_NOPAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_round_trip() {
        // RFC 4648 §10, without padding.
        let vectors: &[(&str, &str)] = &[
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode_base32(plain.as_bytes()).as_str(), *encoded);
            assert_eq!(decode_base32(encoded).unwrap().as_slice(), plain.as_bytes());
        }
    }

    #[test]
    fn tolerant_input() {
        let want = decode_base32("JBSWY3DPEHPK3PXP").unwrap();
        for form in [
            "jbsw y3dp ehpk 3pxp",
            "JBSW-Y3DP-EHPK-3PXP",
            "jbswy3dpehpk3pxp",
            "JBSWY3DPEHPK3PXP======",
        ] {
            assert_eq!(decode_base32(form).unwrap(), want, "{form}");
        }
    }

    #[test]
    fn rejects_bad_input_without_echoing_it() {
        assert_eq!(
            decode_base32("JBSW1"),
            Err(Base32Error::InvalidCharacter { position: 4 })
        );
        assert_eq!(
            decode_base32("ABC"),
            Err(Base32Error::InvalidLength { length: 3 })
        );
        assert_eq!(decode_base32(" = "), Err(Base32Error::Empty));
        assert!(!decode_base32("JBSW1")
            .unwrap_err()
            .to_string()
            .contains("JBSW"));
    }
}
