//! Setup's own state: the last change it made, with its backups, whether that change is still
//! a trial, and the earlier changes still in force beneath it. Kept in the state dir (default
//! /var/lib/sshield/setup, root-only):
//!
//! ```text
//! lock                 flock'd by whoever reads or changes the state
//! current.toml         the last change: files, backups, trial deadline, status; and under
//!                      [[earlier]], the changes before it that are still in force
//! setup.log            one line per apply, confirm, rollback and undo
//! <id>/<n>.old|.new    each file before and after that change
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::Saved;
use super::host::Reload;

/// Where the last change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// Applied; undone by the watcher at the deadline unless confirmed.
    Trial,
    /// Confirmed from a new session: it stays.
    Confirmed,
    /// The deadline passed unconfirmed: the old files were put back.
    RolledBack,
    /// `sshield setup --undo` put the old files back.
    Undone,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Trial => "trial",
            Status::Confirmed => "confirmed",
            Status::RolledBack => "rolled-back",
            Status::Undone => "undone",
        }
    }

    /// Whether the change's files are (meant to be) in place.
    pub(crate) fn is_applied(self) -> bool {
        matches!(self, Status::Trial | Status::Confirmed)
    }
}

/// An sshd session, as the process that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionMark {
    pub pid: u32,
    pub start_ticks: u64,
}

/// A unit file and the link that enables it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct BootGuard {
    pub unit: PathBuf,
    pub link: PathBuf,
}

/// The last change setup made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Change {
    /// Also the name of its backup directory.
    pub id: String,
    pub status: Status,
    /// What it set up, in words.
    pub summary: String,
    /// When it was applied (Unix seconds), and when setup started, in the clock ticks
    /// `/proc/PID/stat` counts, to tell sessions that began later.
    pub applied_at: u64,
    pub setup_started_ticks: u64,
    /// The trial's end (Unix seconds).
    pub deadline: u64,
    /// The admin who must be able to log in.
    pub admin: String,
    /// The ssh session setup ran in, if any: confirming from it proves nothing.
    pub setup_session: Option<SessionMark>,
    /// The watcher process that undoes the trial at the deadline, and when it started (a pid
    /// alone may be another process's after a reboot).
    pub watcher_pid: Option<u32>,
    #[serde(default)]
    pub watcher_start_ticks: Option<u64>,
    /// The systemd unit that starts a watcher again at boot, while the trial lasts: the unit
    /// file and its `multi-user.target.wants` link.
    #[serde(default)]
    pub boot_guard: Option<BootGuard>,
    /// The sshield config, whose store says who passed a second factor.
    pub config: PathBuf,
    pub sshd_binary: PathBuf,
    pub sshd_config: PathBuf,
    /// Where that sshd's listener writes its pid (`PidFile` from `sshd -T`): a confirming
    /// session must be its child, not a login through another sshd.
    #[serde(default)]
    pub sshd_pid_file: Option<PathBuf>,
    /// How sshd is reloaded: `None` for the default, else the admin's command.
    pub reload_command: Option<String>,
    pub reload_hup_pid_file: Option<PathBuf>,
    /// The files, in the order they were written.
    pub files: Vec<Saved>,
    /// The changes made before this one whose files are still in force, oldest first (each
    /// confirmed; their own `earlier` is empty). A setup applied over a confirmed one writes
    /// over that one's files, so undoing only the last change would leave the earlier one in
    /// place: after a trial over a confirmed setup rolled back, `--undo` once found "nothing
    /// to undo" while the confirmed setup was still in /etc (issue 9, item 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Change>,
}

impl Change {
    /// What a new change applied after this one keeps beneath it: the changes still in force.
    pub(crate) fn into_earlier(mut self) -> Vec<Change> {
        let mut earlier = std::mem::take(&mut self.earlier);
        if self.status.is_applied() {
            earlier.push(self);
        }
        earlier
    }

    /// Every change whose files are in force (or meant to be), newest first: the order to
    /// put them back in.
    pub(crate) fn in_force(&self) -> Vec<&Change> {
        let this = self.status.is_applied().then_some(self);
        this.into_iter().chain(self.earlier.iter().rev()).collect()
    }

    pub(crate) fn reload(&self) -> Reload {
        match (&self.reload_command, &self.reload_hup_pid_file) {
            (Some(c), _) => Reload::Command(c.clone()),
            (None, Some(p)) => Reload::Hup(p.clone()),
            (None, None) => Reload::Systemd,
        }
    }

    pub(crate) fn set_reload(&mut self, reload: &Reload) {
        (self.reload_command, self.reload_hup_pid_file) = match reload {
            Reload::Command(c) => (Some(c.clone()), None),
            Reload::Hup(p) => (None, Some(p.clone())),
            Reload::Systemd => (None, None),
        };
    }
}

/// The state dir, locked for the life of this value.
#[derive(Debug)]
pub(crate) struct State {
    dir: PathBuf,
    _lock: File,
}

impl State {
    /// Opens (creating it 0700 if needed) and locks the state dir. Refuses a dir that is a
    /// symlink, or that others can write or read: it holds copies of PAM and sshd files and
    /// decides what is put back into /etc.
    pub(crate) fn open(dir: &Path) -> Result<State, String> {
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
            Ok(meta) => {
                let euid = rustix::process::geteuid().as_raw();
                if !meta.is_dir() {
                    return Err(format!(
                        "{} is not a directory; remove it or pass --state-dir DIR",
                        dir.display()
                    ));
                }
                if meta.uid() != euid || meta.mode() & 0o077 != 0 {
                    return Err(format!(
                        "{} must belong to uid {euid} and be closed to others; run: chown {euid} {0} && chmod 700 {0}",
                        dir.display()
                    ));
                }
            }
        }
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        Ok(State {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    /// The directory of a change's backups.
    pub(crate) fn backups(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join("current.toml")
    }

    /// The last change, if setup ever made one.
    pub(crate) fn load(&self) -> Result<Option<Change>, String> {
        let path = self.current_path();
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map(Some).map_err(|e| {
                format!(
                    "{} is damaged ({e}); the backups are in {}",
                    path.display(),
                    self.dir.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Records `change` as the last one (atomically).
    pub(crate) fn save(&self, change: &Change) -> Result<(), String> {
        let path = self.current_path();
        let text = toml::to_string(change).map_err(|e| e.to_string())?;
        let tmp = self.dir.join(".current.toml.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Appends a line to setup.log (best effort: the log never stops a rollback).
    pub(crate) fn log(&self, line: &str) {
        let path = self.dir.join("setup.log");
        if let Ok(mut f) = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
        {
            let _ = writeln!(f, "{} {line}", now());
        }
    }

    /// The last lines of setup.log.
    pub(crate) fn log_tail(&self, n: usize) -> Vec<String> {
        let text = fs::read_to_string(self.dir.join("setup.log")).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

/// Unix seconds now.
pub(crate) fn now() -> u64 {
    sshield_core::UnixTime::now().0
}
