//! The files setup touches: read them, back them up, replace them atomically, put them back.
//!
//! A change is a list of [`Change`]s. Before the first write every file's old text (or its
//! absence) is saved in the transaction's directory under the state dir, with its owner and
//! mode; each write is temp file + fsync + rename + fsync of the directory, so a crash leaves
//! either the old or the new file, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One file as setup found it and as it wants it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub path: PathBuf,
    /// `None`: the file does not exist.
    pub before: Option<String>,
    /// `None`: the file should not exist.
    pub after: Option<String>,
}

impl Change {
    pub(crate) fn is_noop(&self) -> bool {
        self.before == self.after
    }
}

/// A saved file, as recorded in the trial's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Saved {
    /// The file setup changed.
    pub path: PathBuf,
    /// Whether it existed before (its old text is then `<n>.old` in the transaction dir).
    pub existed: bool,
    /// Its mode, owner and group before (or those setup gave a new file).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The backup's file name in the transaction dir (`<n>.old`, and `<n>.new` for what
    /// setup wrote).
    pub slot: String,
}

/// Reads a text file; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Saves every change's old and new text into `dir` (created 0700) and returns the records.
/// New files get mode 0644 and the caller's uid and gid.
pub(crate) fn back_up(changes: &[Change], dir: &Path) -> Result<Vec<Saved>, String> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut saved = Vec::new();
    for (n, change) in changes.iter().enumerate() {
        let slot = n.to_string();
        let (mode, uid, gid) = match fs::metadata(&change.path) {
            Ok(meta) => (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            Err(_) => (
                0o644,
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
        };
        if let Some(before) = &change.before {
            write_new(&dir.join(format!("{slot}.old")), before)?;
        }
        if let Some(after) = &change.after {
            write_new(&dir.join(format!("{slot}.new")), after)?;
        }
        saved.push(Saved {
            path: change.path.clone(),
            existed: change.before.is_some(),
            mode,
            uid,
            gid,
            slot,
        });
    }
    sync_dir(dir)?;
    Ok(saved)
}

fn write_new(path: &Path, text: &str) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create backup {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write backup {}: {e}", path.display()))
}

/// Applies one change: writes `after` (or removes the file when it is `None`).
pub(crate) fn apply(change: &Change, saved: &Saved) -> Result<(), String> {
    match &change.after {
        Some(text) => replace(&change.path, text, saved),
        None => remove(&change.path),
    }
}

/// Puts a saved file back as it was (or removes it if it did not exist).
pub(crate) fn restore(saved: &Saved, dir: &Path) -> Result<(), String> {
    if saved.existed {
        let old = dir.join(format!("{}.old", saved.slot));
        let text = fs::read_to_string(&old)
            .map_err(|e| format!("cannot read backup {}: {e}", old.display()))?;
        replace(&saved.path, &text, saved)
    } else {
        remove(&saved.path)
    }
}

/// Whether the file still holds what setup wrote (`false` if someone changed it since).
pub(crate) fn unchanged_since(saved: &Saved, dir: &Path) -> bool {
    let written = read_optional(&dir.join(format!("{}.new", saved.slot)))
        .ok()
        .flatten();
    read_optional(&saved.path).ok().flatten() == written
}

/// Replaces `path` with `text` atomically, with the owner and mode in `saved`.
fn replace(path: &Path, text: &str, saved: &Saved) -> Result<(), String> {
    write_atomically(path, text, saved.mode, saved.uid, saved.gid)
}

/// Replaces (or creates) `path` with `text` atomically: temp file, fsync, rename, fsync of
/// the directory, with this mode, and (as root) this owner and group.
pub(crate) fn write_atomically(
    path: &Path,
    text: &str,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), String> {
    let dir = parent(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.sshield-setup.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    sync_dir(dir)
}

fn remove(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

fn parent(path: &Path) -> Result<&Path, String> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(format!("{} has no directory", path.display())),
    }
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// A unified diff of one change, headed by its path; empty when nothing changes.
pub(crate) fn diff(change: &Change) -> String {
    if change.is_noop() {
        return String::new();
    }
    let before = change.before.as_deref().unwrap_or("");
    let after = change.after.as_deref().unwrap_or("");
    let path = change.path.display().to_string();
    let old_name = if change.before.is_some() {
        path.clone()
    } else {
        "/dev/null".to_owned()
    };
    let new_name = if change.after.is_some() {
        path
    } else {
        "/dev/null".to_owned()
    };
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use super::*;

    #[test]
    fn back_up_apply_restore_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let existing = tmp.path().join("sshd");
        fs::write(&existing, "old\n").unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o640)).unwrap();
        let fresh = tmp.path().join("50-sshield.conf");
        let changes = vec![
            Change {
                path: existing.clone(),
                before: Some("old\n".into()),
                after: Some("new\n".into()),
            },
            Change {
                path: fresh.clone(),
                before: None,
                after: Some("drop-in\n".into()),
            },
        ];
        let backups = tmp.path().join("backup");
        let saved = back_up(&changes, &backups).unwrap();
        for (c, s) in changes.iter().zip(&saved) {
            apply(c, s).unwrap();
        }
        assert_eq!(fs::read_to_string(&existing).unwrap(), "new\n");
        assert_eq!(fs::metadata(&existing).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read_to_string(&fresh).unwrap(), "drop-in\n");
        assert!(saved.iter().all(|s| unchanged_since(s, &backups)));
        fs::write(&existing, "edited by hand\n").unwrap();
        assert!(!unchanged_since(&saved[0], &backups));
        for s in &saved {
            restore(s, &backups).unwrap();
        }
        assert_eq!(fs::read_to_string(&existing).unwrap(), "old\n");
        assert_eq!(fs::metadata(&existing).unwrap().mode() & 0o777, 0o640);
        assert!(!fresh.exists());
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn diffs_name_the_file_and_show_the_lines() {
        let c = Change {
            path: "/etc/pam.d/sshd".into(),
            before: Some("a\nb\n".into()),
            after: Some("a\nx\nb\n".into()),
        };
        let d = diff(&c);
        assert!(
            d.starts_with("--- /etc/pam.d/sshd\n+++ /etc/pam.d/sshd\n"),
            "{d}"
        );
        assert!(d.contains("\n+x\n"));
        let new = Change {
            path: "/etc/ssh/sshd_config.d/50-sshield.conf".into(),
            before: None,
            after: Some("UsePAM yes\n".into()),
        };
        assert!(diff(&new).starts_with("--- /dev/null\n+++ /etc/ssh/sshd_config.d/50-sshield.conf"));
        let same = Change {
            path: "x".into(),
            before: Some("a".into()),
            after: Some("a".into()),
        };
        assert_eq!(diff(&same), "");
    }
}
