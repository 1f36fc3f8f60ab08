//! `otpauth://` Key URIs, the text inside the QR codes authenticator apps scan.
//!
//! Format (Google's "Key Uri Format", followed by every common app):
//! `otpauth://TYPE/LABEL?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`
//! where TYPE is `totp` or `hotp` (which then needs `counter=`), and LABEL is
//! `Issuer:account` with each part percent-encoded. A literal `:` separates the two parts, so
//! a `:` inside either part is written `%3A` and survives the round trip.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

use crate::params::{Algorithm, Digits, ParamError, Period};
use crate::secret::{Secret, SecretError};

/// Everything but RFC 3986 unreserved characters is encoded, in labels and in values.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Time-based or counter-based, with the parameter only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    /// TOTP with its period.
    Totp {
        /// Seconds per step.
        period: Period,
    },
    /// HOTP with the counter the app should start from.
    Hotp {
        /// The next counter.
        counter: u64,
    },
}

/// A parsed or to-be-printed Key URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    /// TOTP or HOTP.
    pub kind: OtpKind,
    /// Who issues the key, shown by apps above the account (e.g. the host name).
    pub issuer: Option<String>,
    /// The account, e.g. `alice@bastion`.
    pub account: String,
    /// The shared key.
    pub secret: Secret,
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: Digits,
}

impl KeyUri {
    /// The URI text. It contains the secret: treat it as one.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let (kind, extra) = match self.kind {
            OtpKind::Totp { period } => ("totp", format!("&period={}", period.seconds())),
            OtpKind::Hotp { counter } => ("hotp", format!("&counter={counter}")),
        };
        let account = utf8_percent_encode(&self.account, COMPONENT);
        let mut uri = Zeroizing::new(String::with_capacity(128));
        uri.push_str("otpauth://");
        uri.push_str(kind);
        uri.push('/');
        if let Some(issuer) = &self.issuer {
            uri.push_str(&utf8_percent_encode(issuer, COMPONENT).to_string());
            uri.push(':');
        }
        uri.push_str(&account.to_string());
        uri.push_str("?secret=");
        uri.push_str(&self.secret.to_base32());
        if let Some(issuer) = &self.issuer {
            // Both the label prefix and the parameter, as the format recommends, so that old
            // apps (prefix only) and new ones (parameter) agree.
            uri.push_str("&issuer=");
            uri.push_str(&utf8_percent_encode(issuer, COMPONENT).to_string());
        }
        uri.push_str("&algorithm=");
        uri.push_str(self.algorithm.as_str());
        uri.push_str("&digits=");
        uri.push_str(&self.digits.to_string());
        uri.push_str(&extra);
        uri
    }

    /// Parses a Key URI. Unknown parameters (e.g. `image=`) are ignored, as apps do.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let text = text.trim();
        let rest = strip_prefix_ignore_case(text, "otpauth://").ok_or(UriError::Scheme)?;
        let (kind, rest) = rest.split_once('/').ok_or(UriError::Label)?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(decode(issuer, "label")?), decode(account, "label")?),
            None => (None, decode(label, "label")?),
        };
        let account = account.trim_start().to_owned();
        if account.is_empty() {
            return Err(UriError::Label);
        }

        let mut secret = None;
        let mut issuer = None;
        let mut algorithm = Algorithm::default();
        let mut digits = Digits::default();
        let mut period = Period::default();
        let mut counter = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode_query_value(value, key)?;
            match key.to_ascii_lowercase().as_str() {
                "secret" => secret = Some(Secret::from_base32(&value).map_err(UriError::Secret)?),
                "issuer" => issuer = Some(value.into_owned()),
                "algorithm" => algorithm = value.parse().map_err(UriError::Param)?,
                "digits" => {
                    let n = value.parse().map_err(|_| UriError::Number("digits"))?;
                    digits = Digits::new(n).map_err(UriError::Param)?;
                }
                "period" => {
                    let n = value.parse().map_err(|_| UriError::Number("period"))?;
                    period = Period::new(n).map_err(UriError::Param)?;
                }
                "counter" => {
                    counter = Some(value.parse().map_err(|_| UriError::Number("counter"))?)
                }
                _ => {}
            }
        }
        let kind = match kind.to_ascii_lowercase().as_str() {
            "totp" => OtpKind::Totp { period },
            "hotp" => OtpKind::Hotp {
                counter: counter.ok_or(UriError::MissingCounter)?,
            },
            _ => return Err(UriError::Kind(kind.to_owned())),
        };
        if let (Some(from_label), Some(from_param)) = (&label_issuer, &issuer) {
            if from_label != from_param {
                return Err(UriError::IssuerMismatch);
            }
        }
        Ok(Self {
            kind,
            issuer: issuer.or_else(|| label_issuer.map(Cow::into_owned)),
            account,
            secret: secret.ok_or(UriError::MissingSecret)?,
            algorithm,
            digits,
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn decode<'a>(text: &'a str, field: &'static str) -> Result<Cow<'a, str>, UriError> {
    percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| UriError::Encoding(field))
}

/// Query values: `+` means space (HTML form encoding, which some generators use).
fn decode_query_value<'a>(text: &'a str, key: &str) -> Result<Cow<'a, str>, UriError> {
    let field = if key.eq_ignore_ascii_case("secret") {
        "secret"
    } else {
        "query"
    };
    if text.contains('+') {
        let spaced = text.replace('+', " ");
        return Ok(Cow::Owned(decode(&spaced, field)?.into_owned()));
    }
    decode(text, field)
}

/// Why a Key URI was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// Does not start with `otpauth://`.
    Scheme,
    /// Not `totp` or `hotp`.
    Kind(String),
    /// No account name after the type.
    Label,
    /// Not valid percent-encoded UTF-8.
    Encoding(&'static str),
    /// No `secret=` parameter.
    MissingSecret,
    /// An `hotp` URI without `counter=`.
    MissingCounter,
    /// The label's issuer prefix and the `issuer=` parameter differ.
    IssuerMismatch,
    /// A parameter that must be a number is not.
    Number(&'static str),
    /// A parameter out of range.
    Param(ParamError),
    /// A bad secret.
    Secret(SecretError),
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheme => write!(f, "not a Key URI: it must start with otpauth://"),
            Self::Kind(k) => write!(
                f,
                "unknown OTP type {k:?}: use otpauth://totp/... or otpauth://hotp/..."
            ),
            Self::Label => write!(
                f,
                "the URI has no account name (otpauth://totp/Issuer:account?...)"
            ),
            Self::Encoding(field) => {
                write!(f, "the URI's {field} is not valid percent-encoded UTF-8")
            }
            Self::MissingSecret => write!(f, "the URI has no secret= parameter"),
            Self::MissingCounter => write!(f, "an hotp URI needs a counter= parameter"),
            Self::IssuerMismatch => write!(
                f,
                "the issuer in the label and the issuer= parameter differ"
            ),
            Self::Number(field) => write!(f, "the URI's {field}= is not a whole number"),
            Self::Param(e) => write!(f, "{e}"),
            Self::Secret(e) => write!(f, "the URI's secret: {e}"),
        }
    }
}

impl std::error::Error for UriError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, issuer: Option<&str>, kind: OtpKind) -> KeyUri {
        KeyUri {
            kind,
            issuer: issuer.map(str::to_owned),
            account: account.to_owned(),
            secret: Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap(),
            algorithm: Algorithm::Sha256,
            digits: Digits::new(7).unwrap(),
        }
    }

    #[test]
    fn canonical_form() {
        let uri = key(
            "alice@bastion",
            Some("ACME Co"),
            OtpKind::Totp {
                period: Period::THIRTY,
            },
        );
        assert_eq!(
            uri.to_uri().as_str(),
            "otpauth://totp/ACME%20Co:alice%40bastion?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co&algorithm=SHA256&digits=7&period=30"
        );
    }

    #[test]
    fn round_trips_awkward_names() {
        let names = [
            "alice",
            "a b",
            "alice@example.com",
            "x:y",
            "Zoë 日本",
            "100%+sure",
            "&=?#/",
        ];
        for account in names {
            for issuer in [None, Some("My Host"), Some("h:1"), Some("Ünïcødé & co")] {
                for kind in [
                    OtpKind::Totp {
                        period: Period::new(60).unwrap(),
                    },
                    OtpKind::Hotp { counter: 42 },
                ] {
                    let original = key(account, issuer, kind);
                    let text = original.to_uri();
                    let parsed =
                        KeyUri::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", text.as_str()));
                    assert_eq!(parsed, original, "{}", text.as_str());
                }
            }
        }
    }

    #[test]
    fn parses_what_other_tools_write() {
        // Defaults: SHA1, 6 digits, 30 s; issuer from the label; space after the colon; '+'.
        let u =
            KeyUri::parse("otpauth://TOTP/Example:%20alice?secret=jbswy3dpehpk3pxp&issuer=Example")
                .unwrap();
        assert_eq!(u.account, "alice");
        assert_eq!(u.issuer.as_deref(), Some("Example"));
        assert_eq!(
            (u.algorithm, u.digits, u.kind),
            (
                Algorithm::Sha1,
                Digits::SIX,
                OtpKind::Totp {
                    period: Period::THIRTY
                }
            )
        );
        let u = KeyUri::parse(
            "otpauth://totp/Big%20Corp:bob?secret=JBSWY3DPEHPK3PXP&issuer=Big+Corp&image=x",
        )
        .unwrap();
        assert_eq!(u.issuer.as_deref(), Some("Big Corp"));
    }

    #[test]
    fn clear_errors() {
        assert_eq!(KeyUri::parse("http://x"), Err(UriError::Scheme));
        assert_eq!(
            KeyUri::parse("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP"),
            Err(UriError::MissingCounter)
        );
        assert_eq!(
            KeyUri::parse("otpauth://totp/a?digits=6"),
            Err(UriError::MissingSecret)
        );
        assert_eq!(
            KeyUri::parse("otpauth://motp/a?secret=JBSWY3DPEHPK3PXP"),
            Err(UriError::Kind("motp".into()))
        );
        assert_eq!(
            KeyUri::parse("otpauth://totp/A:a?secret=JBSWY3DPEHPK3PXP&issuer=B"),
            Err(UriError::IssuerMismatch)
        );
        assert!(matches!(
            KeyUri::parse("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=9"),
            Err(UriError::Param(ParamError::Digits(9)))
        ));
        let e = KeyUri::parse("otpauth://totp/a?secret=JBSW1111").unwrap_err();
        assert!(!e.to_string().contains("JBSW"));
    }
}
