//! The parameters of a token: hash algorithm, number of digits, and (for TOTP) the period.

use std::fmt;
use std::str::FromStr;

/// The HMAC hash of a token. RFC 6238 §1.2 allows SHA-1, SHA-256 and SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1, what nearly every authenticator app uses.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in Key URIs and in sshield's files: `SHA1`, `SHA256`, `SHA512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ParamError;

    /// Accepts `sha1`, `SHA-256`, `HmacSHA512`... in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normal: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_uppercase();
        match normal.strip_prefix("HMAC").unwrap_or(&normal) {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(ParamError::Algorithm(s.to_owned())),
        }
    }
}

/// The number of digits in a code: 6, 7 or 8 (RFC 4226 §5.3 requires at least 6; apps stop at 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the default everywhere.
    pub const SIX: Digits = Digits(6);
    /// Eight digits.
    pub const EIGHT: Digits = Digits(8);

    /// Checks that `n` is 6, 7 or 8.
    pub fn new(n: u32) -> Result<Self, ParamError> {
        match n {
            6..=8 => Ok(Self(n as u8)),
            _ => Err(ParamError::Digits(n)),
        }
    }

    /// The count, as a number.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    pub(crate) fn modulus(self) -> u32 {
        10u32.pow(self.get())
    }
}

impl Default for Digits {
    fn default() -> Self {
        Self::SIX
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A TOTP time step in seconds: at least 1, at most one day. 30 s is the norm, 60 s common.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period(u32);

impl Period {
    /// The 30-second period of RFC 6238 §5.2.
    pub const THIRTY: Period = Period(30);
    const MAX: u32 = 86_400;

    /// Checks that `seconds` is between 1 and 86400.
    pub fn new(seconds: u64) -> Result<Self, ParamError> {
        match u32::try_from(seconds) {
            Ok(s @ 1..=Self::MAX) => Ok(Self(s)),
            _ => Err(ParamError::Period(seconds)),
        }
    }

    /// The period in seconds.
    pub fn seconds(self) -> u64 {
        u64::from(self.0)
    }
}

impl Default for Period {
    fn default() -> Self {
        Self::THIRTY
    }
}

/// How an HOTP token computes codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HotpParams {
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: Digits,
}

/// How a TOTP token computes codes. T0 is always 0 (the Unix epoch), as every app assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotpParams {
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: Digits,
    /// Seconds per step.
    pub period: Period,
}

impl TotpParams {
    /// The HOTP parameters each step is computed with (RFC 6238 §4: TOTP = HOTP(K, T)).
    pub fn hotp(&self) -> HotpParams {
        HotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
        }
    }
}

/// A parameter outside what sshield (and the apps) support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// Not SHA1, SHA256 or SHA512.
    Algorithm(String),
    /// Not 6, 7 or 8.
    Digits(u32),
    /// Zero or longer than a day.
    Period(u64),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Algorithm(a) => write!(f, "unknown algorithm {a:?}: use SHA1, SHA256 or SHA512"),
            Self::Digits(d) => write!(f, "{d} digits is not supported: use 6, 7 or 8"),
            Self::Period(p) => write!(
                f,
                "a period of {p} s is not supported: use 1 to 86400 seconds (30 is usual)"
            ),
        }
    }
}

impl std::error::Error for ParamError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        for (s, a) in [
            ("sha1", Algorithm::Sha1),
            ("SHA-256", Algorithm::Sha256),
            ("HmacSHA512", Algorithm::Sha512),
            ("sha_256", Algorithm::Sha256),
        ] {
            assert_eq!(s.parse::<Algorithm>().unwrap(), a);
        }
        assert!("md5".parse::<Algorithm>().is_err());
    }

    #[test]
    fn bounds() {
        assert!(Digits::new(5).is_err());
        assert!(Digits::new(9).is_err());
        assert_eq!(Digits::new(7).unwrap().get(), 7);
        assert!(Period::new(0).is_err());
        assert!(Period::new(86_401).is_err());
        assert_eq!(Period::new(60).unwrap().seconds(), 60);
    }
}
