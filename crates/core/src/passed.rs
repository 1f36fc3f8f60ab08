//! Which login last passed a user's second factor: the process that asked, so that
//! `sshield setup --confirm` can tell that its own session passed one (issue 9, item 15).
//!
//! The record's `last_success` says only *when* a factor was passed, and `sshield verify` run
//! as root, or a login through another sshd, moves it as well as the session that should
//! prove the new setup works. So each front end that asks for a code on behalf of an ssh
//! session, after the engine allowed it, writes a marker naming that session's processes:
//! the PAM module its own pid and its parent's (sshd runs PAM in its `[priv]` monitor or in a
//! child it forks for the conversation), the daemon the `sshd` processes of the helper's
//! session. `sshield verify` writes none: it is no login.
//!
//! One small file per user under the store, `DIR/.passed/USER`, so the files are bounded by the
//! number of enrolled users, whatever guessers do. It is written on every pass, so it costs
//! what it must: one `pwrite` of a fixed [`MARKER_BYTES`] in place, no fsync. Not a temp file
//! and rename: ext4 flushes a file renamed over another (`auto_da_alloc`), which took 200-600
//! µs a login here, against 4 µs in place. A crash can tear it; the reader then says it is
//! damaged, and a confirmation asks for a new login, which writes it whole again.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::RecordStore;
use crate::username::UserName;

use crate::store::PASSED_DIR;
/// Every marker is written padded to this size, so each write covers the whole last one.
pub const MARKER_BYTES: usize = 256;
/// No marker comes near this; a bigger file is refused rather than read.
const MAX_BYTES: u64 = 4096;

/// The login that passed a second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passed {
    /// When (Unix seconds).
    pub at: u64,
    /// The PAM service, or the front end's name.
    pub service: String,
    /// The process that asked, and its parent: one of them is the session's sshd monitor.
    pub pid: u32,
    pub parent: u32,
}

/// Where `user`'s marker lives.
pub fn path(store: &RecordStore, user: &UserName) -> PathBuf {
    store.passed_path(user)
}

/// Records that `user` passed. Never part of a decision: a caller logs a failure and goes on.
pub fn record(store: &RecordStore, user: &UserName, passed: &Passed) -> io::Result<()> {
    let mut text = toml::to_string(passed).map_err(io::Error::other)?;
    if text.len() > MARKER_BYTES {
        return Err(io::Error::other(format!(
            "the marker would be {} bytes, more than {MARKER_BYTES}",
            text.len()
        )));
    }
    // Spaces after the last line are nothing to TOML.
    text.extend(std::iter::repeat_n(' ', MARKER_BYTES - text.len()));
    let target = path(store, user);
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&target)
    };
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = store.dir().join(PASSED_DIR);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => open()?,
            }
        }
        other => other?,
    };
    // One write at offset 0: a concurrent login's marker is written whole before or after.
    file.write_all_at(text.as_bytes(), 0)
}

/// Why a marker cannot be believed.
#[derive(Debug)]
pub enum PassedError {
    /// It cannot be read.
    Io { path: PathBuf, error: io::Error },
    /// Someone other than the store's owner could have written it.
    Unsafe { path: PathBuf, uid: u32, mode: u32 },
    /// It is not a marker.
    Damaged { path: PathBuf, error: String },
}

impl std::fmt::Display for PassedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            Self::Unsafe { path, uid, mode } => write!(
                f,
                "{} belongs to uid {uid} with mode {mode:o}, so anyone could have written it; remove it (the next login writes it again)",
                path.display()
            ),
            Self::Damaged { path, error } => write!(
                f,
                "{} is damaged ({error}); remove it (the next login writes it again)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PassedError {}

/// The last login that passed `user`'s second factor, if one wrote a marker.
pub fn load(store: &RecordStore, user: &UserName) -> Result<Option<Passed>, PassedError> {
    let path = path(store, user);
    let io = |error| PassedError::Io {
        path: path.clone(),
        error,
    };
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let owner = rustix::process::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != owner || meta.mode() & 0o022 != 0 {
        return Err(PassedError::Unsafe {
            path,
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| PassedError::Damaged {
            path: path.clone(),
            error: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use super::*;

    #[test]
    fn a_marker_reads_back_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(dir.path());
        let alice = UserName::new("alice").unwrap();
        assert_eq!(load(&store, &alice).unwrap(), None);
        let first = Passed {
            at: 10,
            service: "sshd".into(),
            pid: 100,
            parent: 99,
        };
        record(&store, &alice, &first).unwrap();
        assert_eq!(load(&store, &alice).unwrap(), Some(first));
        let second = Passed {
            at: 20,
            service: "sshield-login".into(),
            pid: 200,
            parent: 199,
        };
        record(&store, &alice, &second).unwrap();
        assert_eq!(load(&store, &alice).unwrap(), Some(second));
        let names: Vec<_> = fs::read_dir(dir.path().join(PASSED_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["alice"]);
        let size = fs::metadata(path(&store, &alice)).unwrap().len();
        assert_eq!(
            size, MARKER_BYTES as u64,
            "each write covers the whole last one"
        );
    }

    #[test]
    fn a_marker_others_could_write_or_a_symlink_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(dir.path());
        let alice = UserName::new("alice").unwrap();
        let passed = Passed {
            at: 10,
            service: "sshd".into(),
            pid: 100,
            parent: 99,
        };
        record(&store, &alice, &passed).unwrap();
        let file = path(&store, &alice);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o622)).unwrap();
        assert!(matches!(
            load(&store, &alice),
            Err(PassedError::Unsafe { .. })
        ));
        fs::remove_file(&file).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, toml::to_string(&passed).unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        assert!(matches!(load(&store, &alice), Err(PassedError::Io { .. })));
        fs::remove_file(&file).unwrap();
        fs::write(&file, "at = \"yesterday\"\n").unwrap();
        assert!(matches!(
            load(&store, &alice),
            Err(PassedError::Damaged { .. })
        ));
    }
}
