//! The record store: one TOML file per user in a directory only its owner can enter.
//!
//! Every change is made under an exclusive `flock` on a per-user lock file. A change of
//! provisioning is written to a temporary file that is fsynced, renamed over the record, and
//! followed by an fsync of the directory. A reader therefore sees the old record or the new
//! one, never half of one; two processes updating one user serialize on the lock and neither
//! loses its update; and a login touches only its own user's files, so its cost does not grow
//! with the number of users (pam_oath rewrites one shared file on every login).
//!
//! A login changes only the record's login state (`[usage]`), and writes it in place into one
//! of the two checksummed slots of the user's `.USER.state` file with a single `fdatasync`
//! (`login_state` explains why a crash can never bring back an older state). The record's own
//! `[usage]` is the state as of its last rewrite; each copy carries a generation, and the
//! newest of the three is the user's state.
//!
//! Every file is opened without following symlinks and checked, after opening, to be owned by
//! the store's owner and closed to group and others. Anything else is refused with a message
//! naming the path and the command that fixes it.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::ratelimit::SourceTable;

use crate::login_state;
use crate::record::{Usage, UserRecord, OLDEST_RECORD_VERSION, RECORD_VERSION};
use crate::username::{UserName, UserNameError};

/// The directory of the `.passed` markers, inside the store ([`crate::passed`]).
pub(crate) const PASSED_DIR: &str = ".passed";
/// Records larger than this are refused rather than read: no real record comes near it.
const MAX_RECORD_BYTES: u64 = 1 << 20;
const RECORD_SUFFIX: &str = ".toml";
/// A user's login-state file is `.USER.state`.
const STATE_SUFFIX: &str = ".state";
/// The per-source failure table lives in this subdirectory of the store.
const SOURCES_DIR: &str = ".sources";
/// Made once no temporary file of the old naming (`.USER.tmp.PID`) is left in the store.
const OLD_TEMPS_REMOVED: &str = ".old-temps-removed";

/// The user (`STEM`) whose old-style temporary file `.STEM.tmp.PID` is `name`, if it is one:
/// `.alice.tmp.tmp.7` is user `alice.tmp`'s.
fn old_temp_stem(name: &str) -> Option<&str> {
    let (stem, pid) = name.strip_prefix('.')?.rsplit_once(".tmp.")?;
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (digits && UserName::new(stem).is_ok()).then_some(stem)
}

/// A directory of user records.
#[derive(Debug, Clone)]
pub struct RecordStore {
    dir: PathBuf,
    owner: u32,
}

/// The outcome of an update closure: keep the record as it was, or write the changed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed; the file is not touched.
    Keep,
    /// Write the record back.
    Save,
    /// Only the login state (`[usage]`) changed: written in place into the user's login-state
    /// file, with one `fdatasync`. Any other change to the record is **not** saved.
    SaveUsage,
}

/// A user's login-state file, as read under the user's lock, for the write that may follow.
#[derive(Debug)]
struct StateFile {
    file: File,
    slot_size: usize,
    /// The slot holding the newest valid copy, if any: the next write goes to the other one.
    newest_slot: Option<usize>,
}

impl RecordStore {
    /// A store in `dir` whose files must belong to the current effective user (root, for the
    /// real store; the test user, for tests).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            owner: rustix::process::geteuid().as_raw(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (mode 0700) if it does not exist, then checks it.
    pub fn create_dir(&self) -> Result<(), StoreError> {
        match fs::symlink_metadata(&self.dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.dir)
                    .map_err(|e| StoreError::io("create directory", &self.dir, e))?;
            }
            Err(e) => return Err(StoreError::io("inspect", &self.dir, e)),
        }
        self.check_dir()
    }

    /// Checks that the directory exists, is a real directory, belongs to the owner and is
    /// closed to group and others.
    pub fn check_dir(&self) -> Result<(), StoreError> {
        let meta = match fs::symlink_metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::DirMissing {
                    path: self.dir.clone(),
                })
            }
            Err(e) => return Err(StoreError::io("inspect", &self.dir, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(StoreError::Symlink {
                path: self.dir.clone(),
            });
        }
        if !meta.is_dir() {
            return Err(StoreError::NotADirectory {
                path: self.dir.clone(),
            });
        }
        self.check_owner_and_mode(&self.dir, &meta, true)
    }

    fn check_owner_and_mode(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        is_dir: bool,
    ) -> Result<(), StoreError> {
        if meta.uid() != self.owner {
            return Err(StoreError::WrongOwner {
                path: path.to_owned(),
                owner: meta.uid(),
                expected: self.owner,
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Accessible {
                path: path.to_owned(),
                mode,
                is_dir,
            });
        }
        Ok(())
    }

    /// Where `user`'s `.passed` marker lives ([`crate::passed`]).
    pub fn passed_path(&self, user: &UserName) -> PathBuf {
        self.dir().join(PASSED_DIR).join(user.as_str())
    }

    /// The path of `user`'s record.
    pub fn record_path(&self, user: &UserName) -> PathBuf {
        self.user_slot(user).path()
    }

    fn user_slot<'a>(&'a self, user: &'a UserName) -> Slot<'a> {
        Slot {
            dir: &self.dir,
            stem: user.as_str(),
        }
    }

    /// Whether `user` has a record file (of any kind: reading it may still fail). Creates
    /// nothing, so it is safe to ask about guessed names.
    pub fn has_record(&self, user: &UserName) -> Result<bool, StoreError> {
        self.check_dir()?;
        let path = self.record_path(user);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("inspect", &path, e)),
        }
    }

    /// Reads `user`'s record, or `None` if there is none. Takes no lock: records are only ever
    /// replaced whole, and a login-state file always has a complete copy in one of its slots,
    /// so this sees a complete old or new version of each.
    pub fn load(&self, user: &UserName) -> Result<Option<UserRecord>, StoreError> {
        self.check_dir()?;
        Ok(self.read_user(user, false)?.map(|(record, _)| record))
    }

    /// The record with the newest login state merged in, and (when `for_update`, under the
    /// lock) the open login-state file to write the next state to.
    fn read_user(
        &self,
        user: &UserName,
        for_update: bool,
    ) -> Result<Option<(UserRecord, Option<StateFile>)>, StoreError> {
        let Some(mut record) = self.read_record(user)? else {
            return Ok(None);
        };
        let slot = self.user_slot(user);
        // Without the lock, a reader can meet a slot being written while the other is being
        // overwritten by the login after it: look again rather than report damage.
        let tries = if for_update { 1 } else { 3 };
        let mut state = None;
        for attempt in 1..=tries {
            match self.read_state(&slot, for_update, &mut record.usage) {
                Err(StoreError::StateDamaged { .. }) if attempt < tries => continue,
                Err(e) => return Err(e),
                Ok(s) => {
                    state = s;
                    break;
                }
            }
        }
        Ok(Some((record, state)))
    }

    /// Reads `slot`'s login-state file, if there is one, and puts its newest copy in `usage`
    /// if that is newer than the record's own.
    fn read_state(
        &self,
        slot: &Slot<'_>,
        for_update: bool,
        usage: &mut Usage,
    ) -> Result<Option<StateFile>, StoreError> {
        let path = slot.state_path();
        let Some((file, meta)) =
            self.open_checked(&path, OpenOptions::new().read(true).write(for_update))?
        else {
            return Ok(None);
        };
        let Some(slot_size) = login_state::slot_size_of(meta.len(), MAX_RECORD_BYTES) else {
            return Err(StoreError::StateDamaged { path });
        };
        // Not zeroized: the login state holds no secret (steps, counters, times, addresses,
        // hashes of backup codes already used).
        let mut bytes = vec![0u8; 2 * slot_size];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| StoreError::io("read", &path, e))?;
        let slots = login_state::read(&bytes, slot_size);
        if slots.both_damaged {
            return Err(StoreError::StateDamaged { path });
        }
        let mut newest_slot = None;
        if let Some((index, generation, payload)) = slots.newest {
            newest_slot = Some(index);
            if generation > usage.generation {
                let text = std::str::from_utf8(payload).map_err(|_| StoreError::Invalid {
                    path: path.clone(),
                    line: None,
                    message: "the login state is not text".to_owned(),
                })?;
                *usage = parse_toml(text, &path)?;
                usage.generation = generation;
            }
        }
        Ok(Some(StateFile {
            file,
            slot_size,
            newest_slot,
        }))
    }

    fn read_record(&self, user: &UserName) -> Result<Option<UserRecord>, StoreError> {
        let slot = self.user_slot(user);
        let Some((text, path)) = self.read_text(&slot)? else {
            return Ok(None);
        };
        let record = parse_record(&text, &path)?;
        if record.user != user.as_str() {
            let line = text
                .lines()
                .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == "user"))
                .map(|i| i + 1);
            return Err(StoreError::Invalid {
                path,
                line,
                message: format!(
                    "the record is for user {:?}, not {:?}; rename the file or fix its `user` line",
                    record.user,
                    user.as_str()
                ),
            });
        }
        Ok(Some(record))
    }

    /// Locks `user`, reads the record (or `None`), and lets `change` edit it. If `change`
    /// returns [`Change::Save`] with a record, it is written atomically before the lock is
    /// released; if it returns `None` for a record that existed, the record is deleted. An
    /// error from `change` leaves the file as it was.
    pub fn update<T, E>(
        &self,
        user: &UserName,
        change: impl FnOnce(&mut Option<UserRecord>) -> Result<(Change, T), E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.check_dir()?;
        let slot = self.user_slot(user);
        let _lock = self.lock(&slot)?;
        let (mut record, state) = match self.read_user(user, true)? {
            Some((record, state)) => (Some(record), state),
            None => (None, None),
        };
        let existed = record.is_some();
        let generation = record.as_ref().map_or(0, |r| r.usage.generation);
        let (write, value) = change(&mut record)?;
        match (write, record.as_mut()) {
            (Change::Keep, _) => {}
            (Change::SaveUsage, Some(r)) if existed => {
                r.usage.generation = generation + 1;
                self.write_state(&slot, state, &r.usage)?;
            }
            (Change::Save | Change::SaveUsage, Some(r)) => {
                if !existed {
                    // A state file left by a record removed in a crash belongs to no one now.
                    self.remove_if_present(&slot.state_path())?;
                }
                r.version = RECORD_VERSION;
                r.usage.generation = generation + 1;
                self.write_toml(&slot, r)?;
                if write == Change::Save {
                    // A provisioning write, never a login: it may list the directory.
                    self.remove_old_temps(&slot)?;
                }
            }
            (Change::Save | Change::SaveUsage, None) if existed => self.delete(&slot, user)?,
            (Change::Save | Change::SaveUsage, None) => {}
        }
        Ok(value)
    }

    /// Writes `usage` into the slot of `state` that does not hold the newest copy, and
    /// `fdatasync`s; or, when there is no state file yet or the state outgrew it, makes a new
    /// one and renames it into place.
    fn write_state(
        &self,
        slot: &Slot<'_>,
        state: Option<StateFile>,
        usage: &Usage,
    ) -> Result<(), StoreError> {
        let path = slot.state_path();
        let payload = toml::to_string(usage).map_err(|e| StoreError::Invalid {
            path: path.clone(),
            line: None,
            message: format!("cannot serialize: {e}"),
        })?;
        if let Some(state) = state {
            let index = state.newest_slot.map_or(0, |i| 1 - i);
            if let Some(bytes) =
                login_state::encode(usage.generation, payload.as_bytes(), state.slot_size)
            {
                // The blocks were written (not just allocated) when the file was made, so this
                // overwrite changes no metadata that fdatasync must commit: it flushes the data
                // and the disk's cache, and nothing else.
                return state
                    .file
                    .write_all_at(&bytes, (index * state.slot_size) as u64)
                    .and_then(|()| state.file.sync_data())
                    .map_err(|e| StoreError::io("write", &path, e));
            }
        }
        let slot_size = login_state::slot_size_for(payload.len());
        if (2 * slot_size) as u64 > MAX_RECORD_BYTES {
            return Err(StoreError::TooLarge { path });
        }
        let mut bytes = vec![0u8; 2 * slot_size];
        let first = login_state::encode(usage.generation, payload.as_bytes(), slot_size)
            .ok_or_else(|| StoreError::TooLarge { path: path.clone() })?;
        bytes[..first.len()].copy_from_slice(&first);
        self.replace_file(slot, &path, &bytes)
    }

    /// The per-source failure table (over all users); empty if there is none. Takes no lock:
    /// the table is only ever replaced whole.
    pub fn load_sources(&self) -> Result<SourceTable, StoreError> {
        let dir = self.sources_dir();
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SourceTable::default()),
            _ => self.check_subdir(&dir)?,
        }
        match self.read_text(&sources_slot(&dir))? {
            Some((text, path)) => parse_toml(&text, &path),
            None => Ok(SourceTable::default()),
        }
    }

    /// Locks the per-source table and lets `change` edit it; writes it back if it changed.
    ///
    /// The table is one file of bounded size (see [`crate::ratelimit::MAX_SOURCES`]) under one
    /// lock file. Files an older version kept per address in the same directory (one record
    /// and one lock file per address, never removed: 5 000 guessing addresses left 9 954
    /// files) are removed here.
    pub fn update_sources<T>(
        &self,
        change: impl FnOnce(&mut SourceTable) -> T,
    ) -> Result<T, StoreError> {
        self.check_dir()?;
        let dir = self.sources_dir();
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&dir) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(StoreError::io("create directory", &dir, e));
            }
        }
        self.check_subdir(&dir)?;
        let slot = sources_slot(&dir);
        let _lock = self.lock(&slot)?;
        let mut table: SourceTable = match self.read_text(&slot)? {
            Some((text, path)) => parse_toml(&text, &path)?,
            None => SourceTable::default(),
        };
        let before = table.clone();
        let value = change(&mut table);
        if table != before {
            self.write_toml(&slot, &table)?;
        }
        self.remove_strays(&slot)?;
        Ok(value)
    }

    /// Removes every file in `slot`'s directory but the slot's own record and lock file. We
    /// hold the slot's lock, so a temporary file of the slot is a dead writer's.
    fn remove_strays(&self, slot: &Slot<'_>) -> Result<(), StoreError> {
        let keep = [slot.path(), slot.lock_path()];
        let entries = fs::read_dir(slot.dir).map_err(|e| StoreError::io("list", slot.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", slot.dir, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir && !keep.contains(&path) {
                self.remove_if_present(&path)?;
            }
        }
        Ok(())
    }

    fn sources_dir(&self) -> PathBuf {
        self.dir.join(SOURCES_DIR)
    }

    fn check_subdir(&self, dir: &Path) -> Result<(), StoreError> {
        let meta = fs::symlink_metadata(dir).map_err(|e| StoreError::io("inspect", dir, e))?;
        if meta.file_type().is_symlink() {
            return Err(StoreError::Symlink {
                path: dir.to_owned(),
            });
        }
        if !meta.is_dir() {
            return Err(StoreError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        self.check_owner_and_mode(dir, &meta, true)
    }

    /// Reads a slot's file with every check: no symlink, a regular file, our owner, mode
    /// 0600, a sane size. `None` if it does not exist.
    fn read_text(
        &self,
        slot: &Slot<'_>,
    ) -> Result<Option<(Zeroizing<String>, PathBuf)>, StoreError> {
        let path = slot.path();
        let Some((file, meta)) = self.open_checked(&path, OpenOptions::new().read(true))? else {
            return Ok(None);
        };
        if meta.len() > MAX_RECORD_BYTES {
            return Err(StoreError::TooLarge { path });
        }
        let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize));
        // Through a `Take`: `File::read_to_string` would fstat and lseek again for a size hint
        // the capacity already gives.
        file.take(MAX_RECORD_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| StoreError::io("read", &path, e))?;
        Ok(Some((text, path)))
    }

    /// Opens a store file with every check: no symlink, a regular file, our owner, closed to
    /// group and others. `None` if it does not exist.
    fn open_checked(
        &self,
        path: &Path,
        options: &mut OpenOptions,
    ) -> Result<Option<(File, fs::Metadata)>, StoreError> {
        let file = match open_nofollow(path, options) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if is_symlink_refusal(&e) => {
                return Err(StoreError::Symlink {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(StoreError::io("open", path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| StoreError::io("inspect", path, e))?;
        if !meta.is_file() {
            return Err(StoreError::NotAFile {
                path: path.to_owned(),
            });
        }
        self.check_owner_and_mode(path, &meta, false)?;
        Ok(Some((file, meta)))
    }

    /// Opens and `flock`s `slot`'s lock file.
    ///
    /// `remove` unlinks a user's lock file while it holds it (so that removing a user leaves
    /// nothing of theirs). Unlinking a lock file others may be waiting on is the classic race:
    /// a waiter wakes up holding the lock of the unlinked file while the next process creates
    /// a new file at the name and locks that one, and the two run together. So after taking
    /// the lock, this checks that the name still leads to the file it locked, and if not,
    /// starts again with whatever the name leads to now. A removal happens once per user, so
    /// the loop runs again only just after one; the check costs a login one `lstat`.
    fn lock(&self, slot: &Slot<'_>) -> Result<File, StoreError> {
        loop {
            let (file, meta) = self.open_and_lock(slot)?;
            let path = slot.lock_path();
            match fs::symlink_metadata(&path) {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => return Ok(file),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("inspect", &path, e)),
            }
        }
    }

    fn open_and_lock(&self, slot: &Slot<'_>) -> Result<(File, fs::Metadata), StoreError> {
        let path = slot.lock_path();
        let file = open_nofollow(
            &path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600),
        )
        .map_err(|e| {
            if is_symlink_refusal(&e) {
                StoreError::Symlink { path: path.clone() }
            } else {
                StoreError::io("open lock file", &path, e)
            }
        })?;
        let meta = file
            .metadata()
            .map_err(|e| StoreError::io("inspect", &path, e))?;
        self.check_owner_and_mode(&path, &meta, false)?;
        file.lock().map_err(|e| StoreError::io("lock", &path, e))?;
        Ok((file, meta))
    }

    fn write_toml<T: Serialize>(&self, slot: &Slot<'_>, value: &T) -> Result<(), StoreError> {
        let path = slot.path();
        let text = Zeroizing::new(toml::to_string(value).map_err(|e| StoreError::Invalid {
            path: path.clone(),
            line: None,
            message: format!("cannot serialize: {e}"),
        })?);
        self.replace_file(slot, &path, text.as_bytes())
    }

    /// Replaces `path` (in `slot`'s directory) with `bytes`: a temporary file, fsynced,
    /// renamed over it, and the directory fsynced.
    fn replace_file(&self, slot: &Slot<'_>, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = slot.tmp_path();
        let result = (|| {
            // We hold the slot's lock, so a file already at this name is the leftover of a
            // writer killed before its rename (a copy of the record, secret included): it goes
            // now, and `create_new` below would fail on it.
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file = open_nofollow(
                &tmp,
                OpenOptions::new().write(true).create_new(true).mode(0o600),
            )?;
            // The umask may have narrowed, never widened, 0600; make it exact.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(slot.dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io("write", path, e));
        }
        Ok(())
    }

    /// Removes everything of `user`'s: record, login state, temporary files, the `.passed`
    /// marker, and last the lock file, which we hold (see [`Self::lock`] for why that is safe).
    fn delete(&self, slot: &Slot<'_>, user: &UserName) -> Result<(), StoreError> {
        let path = slot.path();
        fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
        // The record first: without it, a state file left behind by a crash here is never
        // read, and is removed when the name is enrolled again, as are temporary files.
        self.remove_if_present(&slot.state_path())?;
        self.remove_if_present(&slot.tmp_path())?;
        self.remove_old_temps(slot)?;
        self.remove_if_present(&self.passed_path(user))?;
        File::open(slot.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("sync", slot.dir, e))?;
        self.remove_if_present(&slot.lock_path())
    }

    /// Removes the temporary files named the way versions before issue 13 named them,
    /// `.USER.tmp.PID`: a writer killed before its rename left one for good, a full copy of
    /// the record with its secrets (206 of them for 19 users after 1 543 kills), which outlived
    /// `remove` and `enroll --replace`. No writer makes such names any more, so one sweep of
    /// the store finds them all, and the marker `.old-temps-removed` says it was done: listing
    /// 300 000 entries (100 000 users) takes about 150 ms here, which every provisioning write
    /// of a bulk import would otherwise pay. Only provisioning writes and removals call this,
    /// never a login. The caller holds `own`'s lock; another user's file is removed under that
    /// user's lock, taken without waiting (an old writer may still be at work: the file is
    /// then left for the next sweep).
    fn remove_old_temps(&self, own: &Slot<'_>) -> Result<(), StoreError> {
        let marker = self.dir.join(OLD_TEMPS_REMOVED);
        match fs::symlink_metadata(&marker) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("inspect", &marker, e)),
        }
        let mut all_removed = true;
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::io("list", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(old_temp_stem) else {
                continue;
            };
            let slot = Slot {
                dir: &self.dir,
                stem,
            };
            if stem == own.stem {
                self.remove_if_present(&entry.path())?;
                continue;
            }
            let lock = match open_nofollow(&slot.lock_path(), OpenOptions::new().read(true)) {
                Ok(lock) => Some(lock),
                // Never made: no writer can be at work on this name.
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                // Another user's odd lock file is theirs to fix, and fails no write of ours.
                Err(_) => {
                    all_removed = false;
                    continue;
                }
            };
            match lock.as_ref().map(File::try_lock) {
                None | Some(Ok(())) => self.remove_if_present(&entry.path())?,
                Some(Err(_)) => all_removed = false,
            }
        }
        if all_removed {
            open_nofollow(
                &marker,
                OpenOptions::new().write(true).create(true).mode(0o600),
            )
            .map_err(|e| StoreError::io("create", &marker, e))?;
        }
        Ok(())
    }

    fn remove_if_present(&self, path: &Path) -> Result<(), StoreError> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io("remove", path, e)),
            _ => Ok(()),
        }
    }

    /// Every user with a record file, sorted. Files that are not records are skipped.
    pub fn users(&self) -> Result<Vec<UserName>, StoreError> {
        self.check_dir()?;
        let mut users = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| StoreError::io("list", &self.dir, e))? {
            let entry = entry.map_err(|e| StoreError::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(RECORD_SUFFIX) else {
                continue;
            };
            if let Ok(user) = UserName::new(stem) {
                users.push(user);
            }
        }
        users.sort();
        Ok(users)
    }
}

/// Where one locked, atomically replaced file lives: `DIR/STEM.toml`, locked through
/// `DIR/.STEM.lock`, written through `DIR/.STEM.tmp`.
struct Slot<'a> {
    dir: &'a Path,
    stem: &'a str,
}

impl Slot<'_> {
    fn path(&self) -> PathBuf {
        self.dir.join(format!("{}{RECORD_SUFFIX}", self.stem))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(format!(".{}{STATE_SUFFIX}", self.stem))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.lock", self.stem))
    }

    /// One name, not one per process: every writer holds the slot's lock, so there is never
    /// more than one, and a writer killed before its rename leaves its file where the next
    /// write of the slot, of any kind, removes it without listing the directory.
    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.tmp", self.stem))
    }
}

/// The per-source table: `.sources/table.toml`, locked through `.sources/.table.lock`.
fn sources_slot(dir: &Path) -> Slot<'_> {
    Slot { dir, stem: "table" }
}

fn open_nofollow(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    options
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
}

/// `open(O_NOFOLLOW)` on a symlink fails with ELOOP.
fn is_symlink_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Parses TOML text, turning errors into file:line messages.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, StoreError> {
    toml::from_str(text).map_err(|e| StoreError::Invalid {
        path: path.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: toml_message(text, &e),
    })
}

/// toml's message for `e`, made to name the key and to say in words what to write: serde's
/// `invalid type: string "three", expected u64` on `window = "three"` under `[policy]` becomes
/// `policy.window: invalid type: string "three", expected a whole number` (issue 13: every
/// bad input names its file, line, field and fix).
pub fn toml_message(text: &str, e: &toml::de::Error) -> String {
    const WORDS: [(&str, &str); 9] = [
        ("expected u8", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        (
            "expected a sequence",
            "expected a list in brackets, e.g. [\"a\", \"b\"]",
        ),
        ("expected path string", "expected a path in quotes"),
        ("expected a string", "expected a string in quotes"),
    ];
    let mut message = e.message().trim().lines().collect::<Vec<_>>().join("; ");
    for (serde, words) in WORDS {
        message = message.replace(serde, words);
    }
    match e.span().and_then(|s| key_at(text, s.start)) {
        // Unless the message names it already (`unknown field `windw``, `digits = 12 ...`).
        Some((key, bare))
            if !message.contains(&format!("{bare} ="))
                && !message.contains(&format!("`{bare}`")) =>
        {
            format!("{key}: {message}")
        }
        _ => message,
    }
}

/// The dotted key (`policy.window`) and its last part whose `key = value` line holds byte
/// `offset` of `text`, if that line is one.
fn key_at(text: &str, offset: usize) -> Option<(String, String)> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let bare = key.trim().trim_matches(['"', '\'']).to_owned();
    if bare.is_empty() || bare.starts_with('[') || bare.starts_with('#') {
        return None;
    }
    let table = text[..start].lines().rev().find_map(|l| {
        let l = l.trim();
        let name = l.strip_prefix("[[").and_then(|n| n.strip_suffix("]]"));
        name.or_else(|| l.strip_prefix('[').and_then(|n| n.strip_suffix(']')))
            .map(str::trim)
    });
    let key = match table {
        Some(t) => format!("{t}.{bare}"),
        None => bare.clone(),
    };
    Some((key, bare))
}

/// Parses record text, checking the format version.
pub fn parse_record(text: &str, path: &Path) -> Result<UserRecord, StoreError> {
    let record: UserRecord = parse_toml(text, path)?;
    if !(OLDEST_RECORD_VERSION..=RECORD_VERSION).contains(&record.version) {
        return Err(StoreError::Invalid {
            path: path.to_owned(),
            line: Some(line_of(text, text.find("version").unwrap_or(0))),
            message: format!(
                "record format version {} is not supported by this sshield (it reads versions {OLDEST_RECORD_VERSION} to {RECORD_VERSION}); upgrade sshield",
                record.version
            ),
        });
    }
    Ok(record)
}

/// 1-based line number of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Why the store refused or failed. Each message names the path and, where there is one, the fix.
#[derive(Debug)]
pub enum StoreError {
    /// The store directory does not exist.
    DirMissing {
        /// The directory.
        path: PathBuf,
    },
    /// The store path exists but is not a directory.
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A record path is not a regular file.
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A path is a symlink, which the store never follows.
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// Owned by someone other than the store's owner.
    WrongOwner {
        /// The path.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The uid the store expects.
        expected: u32,
    },
    /// Group or others have some access.
    Accessible {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// A directory (fix: 0700) or a file (fix: 0600).
        is_dir: bool,
    },
    /// Larger than any real record.
    TooLarge {
        /// The path.
        path: PathBuf,
    },
    /// A login-state file with no complete copy of the state: not something a crash leaves.
    StateDamaged {
        /// The path.
        path: PathBuf,
    },
    /// The record does not parse or does not make sense.
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, where known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The user name cannot be a record.
    UserName(UserNameError),
    /// An operating-system error.
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl StoreError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

impl From<UserNameError> for StoreError {
    fn from(e: UserNameError) -> Self {
        Self::UserName(e)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DirMissing { path } => write!(
                f,
                "{}: the record store does not exist; enroll a user to create it, or set `store` in the config",
                path.display()
            ),
            Self::NotADirectory { path } => write!(f, "{}: the record store is not a directory", path.display()),
            Self::NotAFile { path } => write!(f, "{}: not a regular file; remove it", path.display()),
            Self::Symlink { path } => write!(
                f,
                "{}: is a symbolic link, which sshield never follows; replace it with the real file or directory",
                path.display()
            ),
            // Root may take its store back. Anyone else is told to use root's rights or a
            // store of their own, never to chown a store to themselves: for a user who ran
            // `sshield status` on the system's store, that "fix" would hand them every
            // secret, or break every login (issue 9, item 9).
            Self::WrongOwner { path, owner, expected: 0 } => write!(
                f,
                "{}: owned by uid {owner}, but the store must belong to root, who runs this; run: chown 0 {}",
                path.display(),
                path.display()
            ),
            Self::WrongOwner { path, owner, expected } => write!(
                f,
                "{}: owned by uid {owner}, not by you (uid {expected}); sshield uses only a store \
                 that belongs to whoever runs it. For the system's store, run the command as \
                 root (sudo sshield ...); to try sshield as yourself, pass --config with a \
                 config whose `store` is a directory of your own",
                path.display()
            ),
            Self::Accessible { path, mode, is_dir } => {
                let want = if *is_dir { "700" } else { "600" };
                write!(
                    f,
                    "{}: mode {mode:04o} lets group or others in; run: chmod {want} {}",
                    path.display(),
                    path.display()
                )
            }
            Self::TooLarge { path } => write!(
                f,
                "{}: larger than {} bytes, which no record is; inspect and remove it",
                path.display(),
                MAX_RECORD_BYTES
            ),
            Self::StateDamaged { path } => write!(
                f,
                "{}: the login state is damaged (neither of its two copies is complete), so \
                 this user's logins are refused; restore it from a backup, or remove it to fall \
                 back to the older state kept in the record (codes used since could then be \
                 accepted once more)",
                path.display()
            ),
            Self::Invalid { path, line: Some(line), message } => {
                write!(f, "{}:{line}: {message}", path.display())
            }
            Self::Invalid { path, line: None, message } => write!(f, "{}: {message}", path.display()),
            Self::UserName(e) => e.fmt(f),
            Self::Io { action, path, source } => {
                write!(f, "cannot {action} {}: {}", path.display(), describe_io(source))
            }
        }
    }
}

/// An OS error in words a person can act on, instead of a bare `os error 13`.
pub fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "permission denied (run as root, or point --config at a store you own)".to_owned()
        }
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::StorageFull => "the disk is full".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_owned(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_owned(),
                None => text,
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
