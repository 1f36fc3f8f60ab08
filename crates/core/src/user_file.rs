//! Reading a file from a place another user controls (`~/.google_authenticator`, a public
//! key in `~/.ssh`, a usersfile an admin was handed): a regular file only, never through a
//! symlink, never blocking, of bounded size, as text wiped from memory afterwards.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use zeroize::Zeroizing;

use crate::store::describe_io;

/// Why a file was not read.
#[derive(Debug)]
pub enum UserFileError {
    /// The file could not be opened or read.
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The path is a symbolic link.
    Symlink {
        /// The file.
        path: PathBuf,
    },
    /// The path is a directory, named pipe, socket or device.
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead, in words.
        kind: &'static str,
    },
    /// The file was replaced between looking at it and opening it.
    Replaced {
        /// The file.
        path: PathBuf,
    },
    /// Larger than such a file can be.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The most bytes accepted.
        limit: u64,
    },
    /// Not UTF-8 text.
    NotText {
        /// The file.
        path: PathBuf,
        /// The 1-based offset of the first byte that is not UTF-8.
        byte: usize,
    },
}

impl fmt::Display for UserFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), describe_io(source))
            }
            Self::Symlink { path } => write!(
                f,
                "{}: is a symbolic link, which sshield does not follow; import the file it points \
                 to",
                path.display()
            ),
            Self::NotRegular { path, kind } => write!(
                f,
                "{}: is {kind}, not a regular file; sshield reads only regular files (whoever \
                 controls that directory may have put it there): check it, and give the path \
                 of the real file",
                path.display()
            ),
            Self::Replaced { path } => write!(
                f,
                "{}: was replaced while sshield opened it; check who is changing it, then run \
                 the command again",
                path.display()
            ),
            Self::TooLarge { path, limit } => write!(
                f,
                "{}: is more than the {limit} bytes such a file can be; is it the right file?",
                path.display()
            ),
            Self::NotText { path, byte } => write!(
                f,
                "{}: is not a text file (byte {byte} is not UTF-8)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for UserFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads `path` as text of at most `limit` bytes.
///
/// Refuses a symlink (a user could point `~/.google_authenticator` at a file only root may
/// read) and anything but a regular file. A named pipe planted in the file's place would
/// otherwise block `open` until someone writes to it, i.e. for ever (attack review, issue 9
/// item 8); a device could have effects on open. So the path is looked at first (`lstat`),
/// opened only if it is a regular file, with `O_NONBLOCK | O_NOFOLLOW | O_NOCTTY` in case it
/// was swapped in between, and the open file checked to be the one looked at.
pub fn read_text(path: &Path, limit: u64) -> Result<Zeroizing<String>, UserFileError> {
    let read_error = |source: io::Error| UserFileError::Read {
        path: path.to_owned(),
        source,
    };
    let before = fs::symlink_metadata(path).map_err(read_error)?;
    check_kind(path, before.file_type())?;
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(UserFileError::Symlink {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    check_kind(path, meta.file_type())?;
    if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
        return Err(UserFileError::Replaced {
            path: path.to_owned(),
        });
    }
    let too_large = || UserFileError::TooLarge {
        path: path.to_owned(),
        limit,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    // Read at most one byte past the limit, in case the file grew after the check.
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) => Err(UserFileError::NotText {
            path: path.to_owned(),
            byte: e.valid_up_to() + 1,
        }),
    }
}

fn check_kind(path: &Path, kind: fs::FileType) -> Result<(), UserFileError> {
    let other = |kind| {
        Err(UserFileError::NotRegular {
            path: path.to_owned(),
            kind,
        })
    };
    if kind.is_file() {
        Ok(())
    } else if kind.is_symlink() {
        Err(UserFileError::Symlink {
            path: path.to_owned(),
        })
    } else if kind.is_dir() {
        other("a directory")
    } else if kind.is_fifo() {
        other("a named pipe (FIFO)")
    } else if kind.is_socket() {
        other("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        other("a device")
    } else {
        other("not a file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{mknodat, FileType, Mode, CWD};

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(".google_authenticator");
        mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let message = read_text(&fifo, 1024).unwrap_err().to_string();
        assert!(message.contains("is a named pipe (FIFO)"), "{message}");
        assert!(message.contains(&fifo.display().to_string()), "{message}");
    }

    #[test]
    fn devices_sockets_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (path, kind) in [
            (Path::new("/dev/zero"), "a device"),
            (&socket, "a socket"),
            (dir.path(), "a directory"),
        ] {
            let message = read_text(path, 1024).unwrap_err().to_string();
            assert!(message.contains(kind), "{message}");
        }
    }

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "JBSWY3DPEHPK3PXP\n").unwrap();
        assert_eq!(
            read_text(&file, 1024).unwrap().as_str(),
            "JBSWY3DPEHPK3PXP\n"
        );
    }
}
