//! Secrets at rest: every user record is sealed with a key kept outside the database.
//!
//! A copy of the database alone (a backup, a replica's disk, a SQL injection) gives no TOTP
//! secret. The key is 32 random bytes in a 0600 file in the state dir, made on first start.
//! Each record is sealed with XChaCha20-Poly1305 (a 192-bit random nonce, safe to draw at
//! random for every write) and the user name as associated data, so a row copied onto another
//! user's name does not open: that user cannot be handed someone else's secrets.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sshield_core::UserRecord;
use zeroize::Zeroizing;

use crate::keyfile::{self, KeyFileError};

/// The key file's name in the state dir.
pub const KEY_FILE: &str = "record.key";
/// A sealed record starts with this byte: the format, so the key or cipher can change later.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// Binds a sealed row to this use (and, below, to its user name).
const CONTEXT: &[u8] = b"sshield-server user record v1\0";

/// The key that seals user records.
pub struct SealKey {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

/// What went wrong with the key or a sealed record.
#[derive(Debug)]
pub enum SealError {
    /// The key file could not be read or made.
    KeyFile {
        /// Its path.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The key file is not 32 bytes.
    KeyLength {
        /// Its path.
        path: PathBuf,
        /// Its length.
        len: usize,
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
    /// A sealed record did not open: a different key, a row moved to another user, or a
    /// damaged row.
    Open {
        /// The user whose row it is.
        user: String,
    },
    /// The record inside is not a valid record.
    Record {
        /// The user.
        user: String,
        /// Why.
        error: String,
    },
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyFile { path, error } => {
                write!(f, "cannot use the record key {}: {error}", path.display())
            }
            Self::KeyLength { path, len } => write!(
                f,
                "the record key {} is {len} bytes, not {KEY_LEN}; restore it from your backup \
                 (without it no stored secret can be read)",
                path.display()
            ),
            Self::KeyMode { path, mode } => write!(
                f,
                "the record key {} has mode {mode:o}: others could read every user's secrets; \
                 run `chmod 600 {}` and make it owned by the server's user",
                path.display(),
                path.display()
            ),
            Self::Random(e) => write!(f, "the system's random number generator failed: {e}"),
            Self::Open { user } => write!(
                f,
                "the stored record of user {user:?} does not open with this server's record key: \
                 the key file is not the one it was sealed with, or the row was altered or \
                 copied from another user"
            ),
            Self::Record { user, error } => {
                write!(
                    f,
                    "the stored record of user {user:?} is not valid: {error}"
                )
            }
        }
    }
}

impl std::error::Error for SealError {}

impl SealKey {
    /// Reads the key at `path`, or makes it (0600, created exclusively so two servers starting
    /// at once cannot write two keys) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::getrandom(key.as_mut()).map_err(|e| SealError::Random(e.to_string()))?;
        match keyfile::create(path, key.as_ref()) {
            Ok(true) => Ok(Self::from_bytes(&key)),
            Ok(false) => Self::load(path),
            Err(error) => Err(SealError::KeyFile {
                path: path.to_owned(),
                error,
            }),
        }
    }

    /// Reads an existing key, refusing one that others may read.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let bytes = keyfile::read_private(path, KEY_LEN).map_err(|e| match e {
            KeyFileError::Io(error) => SealError::KeyFile {
                path: path.to_owned(),
                error,
            },
            KeyFileError::Mode(mode) => SealError::KeyMode {
                path: path.to_owned(),
                mode,
            },
        })?;
        let key: &[u8; KEY_LEN] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| SealError::KeyLength {
                    path: path.to_owned(),
                    len: bytes.len(),
                })?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// Seals `record` for storage under its user name.
    pub fn seal(&self, record: &UserRecord) -> Result<Vec<u8>, SealError> {
        let user = record.user.clone();
        let text = Zeroizing::new(toml::to_string(record).map_err(|e| SealError::Record {
            user: user.clone(),
            error: e.to_string(),
        })?);
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let aad = associated_data(&user);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Record {
                user,
                error: "too large to seal".to_owned(),
            })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens the row stored under `user`.
    pub fn open(&self, user: &str, sealed: &[u8]) -> Result<UserRecord, SealError> {
        let refused = || SealError::Open {
            user: user.to_owned(),
        };
        let (&format, rest) = sealed.split_first().ok_or_else(refused)?;
        if format != FORMAT || rest.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(user);
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| refused())?,
        );
        let record_error = |error: String| SealError::Record {
            user: user.to_owned(),
            error,
        };
        let text = std::str::from_utf8(&plain).map_err(|e| record_error(e.to_string()))?;
        let record: UserRecord = toml::from_str(text).map_err(|e| record_error(e.to_string()))?;
        if record.user != user {
            return Err(refused());
        }
        Ok(record)
    }
}

fn associated_data(user: &str) -> Vec<u8> {
    let mut aad = CONTEXT.to_vec();
    aad.extend_from_slice(user.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn key(dir: &Path) -> SealKey {
        SealKey::load_or_create(&dir.join(KEY_FILE)).expect("key")
    }

    #[test]
    fn a_row_moved_to_another_user_does_not_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key(dir.path());
        let sealed = key.seal(&UserRecord::new("alice", 1)).expect("seal");
        assert_eq!(key.open("alice", &sealed).expect("open").user, "alice");
        assert!(matches!(
            key.open("mallory", &sealed),
            Err(SealError::Open { .. })
        ));
    }

    #[test]
    fn the_key_is_made_once_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = key(dir.path());
        let sealed = first.seal(&UserRecord::new("bob", 1)).expect("seal");
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("meta")
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = key(dir.path());
        assert_eq!(again.open("bob", &sealed).expect("open").user, "bob");
    }

    #[test]
    fn a_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE);
        key(dir.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = SealKey::load(&path).expect_err("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
