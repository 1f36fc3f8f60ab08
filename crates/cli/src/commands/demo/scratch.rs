//! The demo's temporary directory: made fresh and private, removed when the demo ends.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// A directory `$TMPDIR/sshield-demo-<pid>-<n>`, mode 0700, removed on drop (also when the demo
/// fails or panics) unless [`Scratch::remove`] already did.
#[derive(Debug)]
pub(super) struct Scratch {
    path: PathBuf,
    removed: bool,
}

impl Scratch {
    /// Makes the directory. `create_dir` fails on anything already there, so another user's
    /// directory or symlink of the same name in a shared /tmp is never used.
    pub(super) fn create() -> Result<Scratch, Failure> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let path = base.join(format!("sshield-demo-{}-{attempt}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => {
                    let scratch = Scratch {
                        path,
                        removed: false,
                    };
                    scratch.set_mode(0o700)?;
                    return Ok(scratch);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Failure::Error(format!(
                        "cannot create a directory in {}: {e} (set TMPDIR to a writable directory)",
                        base.display()
                    )))
                }
            }
        }
        Err(Failure::Error(format!(
            "cannot create a fresh directory in {}: 100 names taken (remove old sshield-demo-* \
             directories there)",
            base.display()
        )))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the directory's mode, e.g. 0711 so that a user who is not root can reach a
    /// subdirectory of their own without being able to list the rest.
    pub(super) fn set_mode(&self, mode: u32) -> Result<(), Failure> {
        fs::set_permissions(&self.path, fs::Permissions::from_mode(mode)).map_err(|e| {
            Failure::Error(format!(
                "cannot set the mode of {}: {e}",
                self.path.display()
            ))
        })
    }

    /// Removes the directory now, saying so if it can't.
    pub(super) fn remove(mut self) -> Result<PathBuf, Failure> {
        self.removed = true;
        fs::remove_dir_all(&self.path).map_err(|e| {
            Failure::Error(format!(
                "cannot remove {}: {e} (remove it by hand: it holds a throwaway store and keys)",
                self.path.display()
            ))
        })?;
        Ok(self.path.clone())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.removed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
