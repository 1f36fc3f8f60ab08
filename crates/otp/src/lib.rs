//! One-time passwords for sshield: HOTP ([RFC 4226]) and TOTP ([RFC 6238]), base32 secrets,
//! and the `otpauth://` Key URIs that authenticator apps scan.
//!
//! This crate is pure: it does no I/O and has no clock. The caller passes the time (as Unix
//! seconds) and keeps the replay state; [`verify_totp`] and [`verify_hotp`] say *which* step
//! or counter matched so that the caller can refuse it, and everything before it, next time.
//!
//! ```
//! use sshield_otp::{Secret, TotpParams, totp, verify_totp, Window};
//!
//! let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
//! let params = TotpParams::default(); // SHA-1, 6 digits, 30 s
//! let code = totp(&secret, &params, 1_700_000_000);
//! let hit = verify_totp(&secret, &params, code.as_str(), 1_700_000_000, Window::symmetric(1), 0, None);
//! assert_eq!(hit.unwrap().offset, 0);
//! ```
//!
//! [RFC 4226]: https://www.rfc-editor.org/rfc/rfc4226
//! [RFC 6238]: https://www.rfc-editor.org/rfc/rfc6238
#![forbid(unsafe_code)]

mod base32;
mod code;
mod params;
mod secret;
pub mod uri;

pub use base32::{decode_base32, encode_base32, Base32Error};
pub use code::{hotp, totp, totp_step, verify_hotp, verify_totp, Code, TotpMatch, Window};
pub use params::{Algorithm, Digits, HotpParams, ParamError, Period, TotpParams};
pub use secret::{Secret, SecretError};
pub use uri::{KeyUri, OtpKind, UriError};
