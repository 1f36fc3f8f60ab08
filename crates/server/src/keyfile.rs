//! The server's own key files (the record key, the VAPID key): made once, exclusively, owner
//! only; refused when others may read them.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// Why a key file could not be used.
#[derive(Debug)]
pub(crate) enum KeyFileError {
    /// It could not be read or written.
    Io(io::Error),
    /// Others may read or write it: its mode.
    Mode(u32),
}

/// Writes `key` to `path` (0600, synced with its directory) unless a file is already there;
/// `Ok(false)` then. Created exclusively, so two servers starting at once cannot both write.
pub(crate) fn create(path: &Path, key: &[u8]) -> io::Result<bool> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(key)?;
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads at most `max + 1` bytes of `path` (so a longer file shows as too long), refusing a
/// file whose mode lets group or others in.
pub(crate) fn read_private(path: &Path, max: usize) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let mut file = fs::File::open(path).map_err(KeyFileError::Io)?;
    let mode = file.metadata().map_err(KeyFileError::Io)?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Mode(mode));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(max + 1));
    Read::by_ref(&mut file)
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(KeyFileError::Io)?;
    Ok(bytes)
}
