//! Every change to a user goes through [`update`]: read the row, open the record, apply the
//! change, seal it, and write it at the version read (compare-and-swap), reading again when
//! another request or replica wrote first. Verification, enrollment, confirmation, backup
//! codes, disabling and removal all take this one path, so none can undo another's write
//! (a code marked used by a login is never rewound by an admin's change made meanwhile).
//! A verification takes [`plan`], the same read and decision, and stores the write in one
//! transaction with its nonce and audit entry.

use std::fmt;

use sshield_core::{UnixTime, UserName, UserRecord};

use crate::api::App;
use crate::seal::SealError;
use crate::storage::{Storage, StorageError, UserRow, UserWrite};

/// Attempts at one change before giving up under contention. Each lost race means another
/// change of the same user was written first, so every round some request progresses; a
/// verification writes only on success or on a counted failure (at most `max_failures`
/// before the bucket locks and writes stop), so sixteen is a flood, not a login.
pub const MAX_TRIES: usize = 16;

/// What a change does to the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Nothing to store.
    Keep,
    /// Store the record as changed.
    Save,
    /// Remove the user.
    Delete,
}

/// Why a change of a user failed.
#[derive(Debug)]
pub enum RecordError {
    /// The database.
    Storage(StorageError),
    /// The record key, or a row that does not open.
    Seal(SealError),
    /// Eight changes of this user in a row were beaten by others.
    Busy(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Storage(e) => e.fmt(f),
            Self::Seal(e) => e.fmt(f),
            Self::Busy(user) => write!(
                f,
                "user {user:?} is being changed by many requests at once; try again"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

impl From<StorageError> for RecordError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

impl From<SealError> for RecordError {
    fn from(e: SealError) -> Self {
        Self::Seal(e)
    }
}

/// Applies `change` to `user`'s record (`None` if there is none) and stores the result as it
/// says. `change` may run several times (once per lost race), each time on a fresh read, so
/// it must decide from its argument alone. An error of `change` (`E`) stores nothing.
pub async fn update<T, E>(
    app: &App,
    user: &UserName,
    now: UnixTime,
    mut change: impl FnMut(&mut Option<UserRecord>) -> Result<(Write, T), E>,
) -> Result<Result<T, E>, RecordError> {
    let name = user.as_str();
    for _ in 0..MAX_TRIES {
        let (write, value) = match plan(app, user, now, &mut change).await? {
            Ok(planned) => planned,
            Err(e) => return Ok(Err(e)),
        };
        let result = match write {
            None => return Ok(Ok(value)),
            Some(UserWrite::Delete(name)) => app.store.delete_user(&name).await.map(|_| ()),
            Some(UserWrite::Update(row)) => app.store.update_user(&row).await,
            Some(UserWrite::Create(row)) => match app.store.create_user(&row).await {
                // Created meanwhile by another request: redo the change on its record.
                Err(StorageError::Exists { .. }) => Err(StorageError::LostRace {
                    name: name.to_owned(),
                }),
                other => other,
            },
        };
        match result {
            Ok(()) => return Ok(Ok(value)),
            // Gone meanwhile: the change is redone on no record.
            Err(StorageError::LostRace { .. } | StorageError::Missing { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RecordError::Busy(name.to_owned()))
}

/// One round of [`update`] without the write: reads `user`, applies `change` and returns
/// what to store (`None`: nothing) with `change`'s value. The write is made only if the row
/// is still as read ([`UserWrite`]); a verification stores it in one transaction with the
/// rest of what it writes (`Storage::commit_verification`), and decides again on a lost race.
pub async fn plan<T, E>(
    app: &App,
    user: &UserName,
    now: UnixTime,
    change: impl FnOnce(&mut Option<UserRecord>) -> Result<(Write, T), E>,
) -> Result<Result<(Option<UserWrite>, T), E>, RecordError> {
    let row = app.store.load_user(user.as_str()).await?;
    plan_on(app, user, row, now, change)
}

/// [`plan`] on `row`, `user`'s row as the caller read it.
pub fn plan_on<T, E>(
    app: &App,
    user: &UserName,
    row: Option<UserRow>,
    now: UnixTime,
    change: impl FnOnce(&mut Option<UserRecord>) -> Result<(Write, T), E>,
) -> Result<Result<(Option<UserWrite>, T), E>, RecordError> {
    let name = user.as_str();
    let mut record = match &row {
        Some(r) => Some(app.key.open(name, &r.sealed)?),
        None => None,
    };
    let (write, value) = match change(&mut record) {
        Ok(done) => done,
        Err(e) => return Ok(Err(e)),
    };
    let write = match (write, row, record) {
        (Write::Keep, _, _) | (Write::Delete, None, _) | (Write::Save, None, None) => None,
        (Write::Delete, Some(_), _) | (Write::Save, Some(_), None) => {
            Some(UserWrite::Delete(name.to_owned()))
        }
        (Write::Save, Some(old), Some(record)) => Some(UserWrite::Update(row_for(
            app,
            &record,
            old.version.saturating_add(1),
            now,
        )?)),
        (Write::Save, None, Some(record)) => {
            Some(UserWrite::Create(row_for(app, &record, 1, now)?))
        }
    };
    Ok(Ok((write, value)))
}

/// The row that stores `record` at `version`, sealed.
pub fn row_for(
    app: &App,
    record: &UserRecord,
    version: i64,
    now: UnixTime,
) -> Result<UserRow, SealError> {
    Ok(UserRow {
        name: record.user.clone(),
        sealed: app.key.seal(record)?,
        version,
        state: record.state().as_str().to_owned(),
        disabled: record.disabled,
        updated_at: unix(now),
    })
}

/// Unix seconds as the database stores them.
pub fn unix(now: UnixTime) -> i64 {
    i64::try_from(now.0).unwrap_or(i64::MAX)
}
