//! The host's ed25519 key: made by `sshield join`, kept in a root-only file (0600), read by
//! the daemon. It never leaves the host; the server holds only its public half.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

/// Makes a new key from the OS's random number generator.
pub(crate) fn generate() -> Result<SigningKey, String> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut())
        .map_err(|e| format!("the system's random number generator failed: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public half, base64, as `POST /v1/join` takes it.
pub(crate) fn public_base64(key: &SigningKey) -> String {
    data_encoding::BASE64.encode(key.verifying_key().as_bytes())
}

/// Writes `key` to a new file at `path` (mode 0600); an existing file is never replaced.
pub(crate) fn write_new(path: &Path, key: &SigningKey) -> Result<(), String> {
    let text = Zeroizing::new(format!(
        "{}\n",
        data_encoding::BASE64.encode(key.as_bytes())
    ));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} exists already: this host has a key; to join again (e.g. after `sshield-server \
                 host revoke`), remove it and the config's [server] section first",
                path.display()
            ),
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads the key at `path`, refusing a file others may read or write.
pub(crate) fn read(path: &Path) -> Result<SigningKey, String> {
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|e| format!("cannot read the host key {}: {e}", path.display()))?,
    );
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let euid = rustix::process::geteuid().as_raw();
    if meta.mode() & 0o077 != 0 || (meta.uid() != 0 && meta.uid() != euid) {
        return Err(format!(
            "the host key {} is owned by uid {} with mode {:04o}; it must be root's alone: \
             run chown root: {} && chmod 600 {}",
            path.display(),
            meta.uid(),
            meta.mode() & 0o7777,
            path.display(),
            path.display()
        ));
    }
    let seed = data_encoding::BASE64
        .decode(text.trim().as_bytes())
        .ok()
        .map(Zeroizing::new)
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok().map(Zeroizing::new))
        .ok_or_else(|| {
            format!(
                "the host key {} is not an ed25519 key (32 bytes, base64); join again with a new \
                 token (sshield join)",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}
