//! Reading an old tool's file: a regular file, not through a symlink, of bounded size, as text
//! that is wiped from memory afterwards (it holds secrets).

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::error::ImportError;

/// Reads `path`, refusing symlinks (a user could point `~/.google_authenticator` at a file
/// only root may read), anything but a regular file, files over `limit` bytes, and non-UTF-8.
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<Zeroizing<String>, ImportError> {
    let read_error = |source: io::Error| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let unreadable = |reason: String| ImportError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(unreadable(
                "is a symbolic link, which sshield does not follow; import the file it points to"
                    .to_owned(),
            ))
        }
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(unreadable("is not a regular file".to_owned()));
    }
    if meta.len() > limit {
        return Err(unreadable(format!(
            "is {} bytes, more than the {limit} bytes such a file can be; is it the right file?",
            meta.len()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    // Read at most one byte past the limit, in case the file grew after the check.
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(unreadable(format!(
            "is more than the {limit} bytes such a file can be; is it the right file?"
        )));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) => Err(unreadable(format!(
            "is not a text file (byte {} is not UTF-8)",
            e.valid_up_to() + 1
        ))),
    }
}
