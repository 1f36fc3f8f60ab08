//! The server's storage: one trait, [`Storage`], with a SQLite and a PostgreSQL implementation
//! that share their SQL (`sql.rs`) and pass one conformance suite (tests/storage.rs).
//!
//! Everything that must hold under a race is decided by the database in one statement: a
//! user row is written only at the version it was read at (compare-and-swap), a join token is
//! spent by the `UPDATE` that finds it unspent, a nonce is remembered by the `INSERT` that
//! finds it new. Several replicas on one PostgreSQL therefore need no lock of their own.
//!
//! A verification stores all it writes (nonce, user, a source's failure, audit entry) in one
//! transaction ([`Storage::commit_verification`]): one commit, one flush to disk. On SQLite
//! one writer groups the verifications waiting into one transaction (`group_commit`).

mod group_commit;
mod lanes;
mod offline;
mod passkeys;
mod push;
mod readers;
mod sql;

pub use offline::{OfflineStorage, ReportCommitted, ReportWrites};
pub use passkeys::{PasskeyAdded, PasskeyRow, PasskeyStorage};
pub use push::{
    Admission, ApprovalRow, DeviceRow, PushStorage, Verdict, WebhookRow, APPROVAL_CHANNEL,
};

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// One user's row: the sealed record and the plaintext columns for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The login name.
    pub name: String,
    /// The record, encrypted (see `seal`).
    pub sealed: Vec<u8>,
    /// Grows by one on every write; a write names the version it read.
    pub version: i64,
    /// `enrolled`, `pending`... as `UserRecord::state` says, for `user list`.
    pub state: String,
    /// The admin switched the user's second factor off.
    pub disabled: bool,
    /// Last write (Unix seconds).
    pub updated_at: i64,
}

/// One host that joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    /// The host's name, as given to `host add`.
    pub name: String,
    /// Its ed25519 public key (32 bytes).
    pub public_key: Vec<u8>,
    /// When it joined.
    pub created_at: i64,
    /// When an admin revoked it, if they did.
    pub revoked_at: Option<i64>,
}

/// What a verification reads before its decision ([`Storage::load_verification`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerificationReads {
    /// The signing host's row.
    pub host: Option<HostRow>,
    /// The source's failure count, when one was asked for.
    pub source: Option<SourceRow>,
    /// The user's row.
    pub user: Option<UserRow>,
}

/// Failures from one source over all users: core's `FailureCount` as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    /// The source key (an IPv4 address, an IPv6 network, `name:HOST`).
    pub source: String,
    /// The count, as JSON.
    pub state: String,
    /// Grows by one on every write; a write names the version it read.
    pub version: i64,
    /// When nothing in the row matters any more (Unix seconds): pruned after.
    pub expires_at: i64,
}

/// One decision, as stored in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When (Unix seconds).
    pub time: i64,
    /// The host that asked (`-` for the server's own CLI).
    pub host: String,
    /// The user.
    pub user: String,
    /// The client's address, if the host knew it.
    pub source: Option<String>,
    /// The PAM service or front end (`sshd`, `sudo`...).
    pub service: String,
    /// How the user passed (`totp`, `backup`...), if they did.
    pub method: Option<String>,
    /// `allowed` or `denied`.
    pub outcome: String,
    /// Why, for a denial.
    pub reason: Option<String>,
}

impl AuditEntry {
    /// The outcome stored for an allowed login; every other outcome counts as failed.
    pub const ALLOWED: &'static str = "allowed";
    /// The outcome stored for a denied login.
    pub const DENIED: &'static str = "denied";

    /// [`Self::ALLOWED`] or [`Self::DENIED`].
    pub fn outcome(allowed: bool) -> String {
        if allowed { Self::ALLOWED } else { Self::DENIED }.to_owned()
    }
}

/// A signed host request's nonce, remembered with what the request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceRow {
    /// The host that signed the request.
    pub host: String,
    /// The request's nonce.
    pub nonce: String,
    /// The request's timestamp (Unix seconds): nonces older than the accepted skew are pruned.
    pub ts: i64,
}

/// What a change of a user stores: decided on one read of the user, written only if the row
/// is still as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserWrite {
    /// A new user: lost the race if one of that name was created meanwhile.
    Create(UserRow),
    /// The row at `version - 1` replaced (compare-and-swap): lost the race if it changed.
    Update(UserRow),
    /// The user removed (whatever its version: a removal is not undone by a later read).
    Delete(String),
}

/// Counts one failure on a source's row as stored (`None`: none yet): the row to store and
/// the source's count in its window.
pub type CountFailure = dyn Fn(Option<&SourceRow>) -> (SourceRow, u32) + Send + Sync;

/// One more failure from a source, counted in the transaction that stores the verification:
/// `count` is given the source's row as it is then (read under the write lock, so two
/// verifications never count from the same row) and returns the row to store and the
/// source's count in its window.
pub struct SourceFailure {
    /// The source key.
    pub source: String,
    /// The count: core's `ratelimit` rules, applied by `sources`.
    pub count: Box<CountFailure>,
}

impl fmt::Debug for SourceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFailure")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Everything one verification stores, committed together or not at all: one commit (one
/// flush to disk) per verification instead of one per write, with synchronous commit kept,
/// so an accepted code is on disk before the host hears of it.
#[derive(Debug)]
pub struct VerificationWrites {
    /// The signed request's nonce: a replayed request stores nothing.
    pub nonce: NonceRow,
    /// The user's new login state, if the decision changed it.
    pub user: Option<UserWrite>,
    /// A failure counted against the request's source, for a denial.
    pub source: Option<SourceFailure>,
    /// The decision, for the audit log.
    pub audit: AuditEntry,
    /// What the decision was made on: nothing is stored unless the database still holds it.
    pub basis: Basis,
}

/// The rows a verification was decided on, as its reads found them: its writes are stored
/// only if, in the transaction that stores them, the database still holds them
/// ([`Committed::LostRace`] if not, and nothing stored). So a decision made on a row read a
/// moment before, or kept from an earlier request (`crate::verify`'s cache), is never stored
/// after the row changed: a host revoked or joined again, a user enrolled, disabled or
/// removed, or a source that failed meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basis {
    /// The key the signing host's row holds (the host is the nonce's), unrevoked.
    pub host_key: Vec<u8>,
    /// The user and the version of their row (`None`: no row), when the decision rests on it.
    pub user: Option<(String, Option<i64>)>,
    /// The source and the version of its failure count (`None`: no row), when the decision
    /// rests on it: an allowed login from a counted source (a denial's reason may lag behind
    /// the count; it is a denial all the same).
    pub source: Option<(String, Option<i64>)>,
}

/// How [`Storage::commit_verification`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// All of it stored; the source's count in its window if a failure was counted.
    Stored {
        /// The source's count after this failure.
        source_failures: Option<u32>,
    },
    /// The host used this nonce before: nothing stored.
    NonceUsed,
    /// A row the decision rests on changed since it was read ([`Basis`]), or the user's row
    /// since the write was planned: nothing stored; read again and decide anew.
    LostRace,
}

/// Which audit entries to read. Every set field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this user's.
    pub user: Option<String>,
    /// Only this host's.
    pub host: Option<String>,
    /// Only at or after this time.
    pub since: Option<i64>,
    /// Only those not allowed.
    pub failed_only: bool,
    /// At most this many, newest first.
    pub limit: i64,
}

/// What went wrong in the database.
#[derive(Debug)]
pub enum StorageError {
    /// A user or host of that name exists already.
    Exists {
        /// `user` or `host`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The row changed since it was read (another request or replica wrote it first): read it
    /// again and redo the change.
    LostRace {
        /// The user.
        name: String,
    },
    /// No such row.
    Missing {
        /// `user` or `host`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The database refused or failed (unreachable, disk full, a broken file).
    Database {
        /// What we were doing.
        doing: &'static str,
        /// The driver's error.
        error: sqlx::Error,
    },
    /// SQLite refused or failed on the server's own connections (`group_commit`'s writer,
    /// `readers`).
    Sqlite {
        /// What we were doing.
        doing: &'static str,
        /// SQLite's error.
        error: rusqlite::Error,
    },
    /// SQLite's writer of verifications has stopped (it never does unless it crashed).
    WriterGone,
    /// A group commit of several verifications failed: none of them was stored. One
    /// database error shared by every request in the group.
    Batch(Arc<StorageError>),
    /// Bringing the tables up to date failed.
    Migrate(sqlx::migrate::MigrateError),
    /// The database URL or file could not be used.
    Open {
        /// The URL or path, without a password.
        target: String,
        /// Why.
        error: sqlx::Error,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists { kind, name } => write!(f, "{kind} {name:?} exists already"),
            Self::LostRace { name } => write!(
                f,
                "user {name:?} was changed by another request meanwhile; try again"
            ),
            Self::Missing { kind, name } => write!(f, "no {kind} named {name:?}"),
            Self::Database { doing, error } => write!(f, "database error while {doing}: {error}"),
            Self::Sqlite { doing, error } => write!(f, "database error while {doing}: {error}"),
            Self::WriterGone => {
                f.write_str("the database writer has stopped; restart the server (and see its log)")
            }
            Self::Batch(e) => e.fmt(f),
            Self::Migrate(e) => write!(f, "could not bring the database's tables up to date: {e}"),
            Self::Open { target, error } => write!(
                f,
                "cannot open the database {target}: {error}; check `database` in the config \
                 (or --database) and that the server can reach it"
            ),
        }
    }
}

impl std::error::Error for StorageError {}

/// Everything the server keeps. Implemented by [`SqliteStorage`] and [`PostgresStorage`].
pub trait Storage: Send + Sync {
    /// Stores a new user at `row.version`; [`StorageError::Exists`] if the name is taken.
    fn create_user(&self, row: &UserRow) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Stores several new users in one transaction: all of them, or (if any name is taken,
    /// [`StorageError::Exists`] naming it, or the database fails) none.
    fn create_users(
        &self,
        rows: &[UserRow],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// One user's row, if any.
    fn load_user(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<UserRow>, StorageError>> + Send;
    /// Replaces a user's row if it is still at `row.version - 1`: the compare-and-swap every
    /// change of a user goes through. [`StorageError::LostRace`] if someone wrote first,
    /// [`StorageError::Missing`] if the user is gone.
    fn update_user(&self, row: &UserRow) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Deletes a user; false if there was none.
    fn delete_user(&self, name: &str) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Every user, by name, without their sealed record.
    fn list_users(&self) -> impl Future<Output = Result<Vec<UserRow>, StorageError>> + Send;

    /// Registers a host; [`StorageError::Exists`] if the name is taken.
    fn add_host(&self, row: &HostRow) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// One host, if any.
    fn load_host(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<HostRow>, StorageError>> + Send;
    /// Every host, by name.
    fn list_hosts(&self) -> impl Future<Output = Result<Vec<HostRow>, StorageError>> + Send;
    /// Marks a host revoked at `now` (kept if it was revoked before); false if no such host.
    fn revoke_host(
        &self,
        name: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Stores a join token's hash for `host`, valid until `expires_at`.
    fn add_join_token(
        &self,
        hash: &[u8],
        host: &str,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Spends the token with this hash if it is unspent and unexpired at `now`: the host it
    /// was made for, or `None`. Of two racing calls, one gets the host.
    fn use_join_token(
        &self,
        hash: &[u8],
        now: i64,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;

    /// Remembers a request's nonce: true the first time, false if `host` used it before.
    fn remember_nonce(
        &self,
        host: &str,
        nonce: &str,
        ts: i64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Forgets nonces older than `before` (their requests are refused as stale anyway).
    fn prune_nonces(&self, before: i64) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// One source's failure count, if any.
    fn load_source(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<SourceRow>, StorageError>> + Send;
    /// Writes a source's count if it is still at `row.version - 1` (or, at version 1, if there
    /// is none yet): false if another request wrote first (read again and redo).
    fn save_source(
        &self,
        row: &SourceRow,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Forgets the sources whose counts expired before `now`.
    fn prune_sources(&self, now: i64) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// A verification's reads, as they are now: the signing `host`'s row, `source`'s failure
    /// count (none asked for when `None`) and `user`'s row. PostgreSQL: one round trip;
    /// SQLite: three reads in place.
    fn load_verification(
        &self,
        host: &str,
        source: Option<&str>,
        user: &str,
    ) -> impl Future<Output = Result<VerificationReads, StorageError>> + Send;

    /// Stores one verification in one transaction: the nonce, the user's write, the source's
    /// failure and the audit entry, all or nothing ([`VerificationWrites`]), and only if the
    /// rows it was decided on are still as they were read ([`Basis`]). On SQLite the
    /// verifications waiting are committed together by one writer, each in a savepoint of
    /// its own, and each answered only once the group is on disk.
    fn commit_verification(
        &self,
        writes: VerificationWrites,
    ) -> impl Future<Output = Result<Committed, StorageError>> + Send;

    /// Appends one decision to the audit log.
    fn append_audit(
        &self,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Deletes audit entries older than `before` (Unix seconds); how many.
    fn prune_audit(&self, before: i64) -> impl Future<Output = Result<u64, StorageError>> + Send;
    /// Reads the audit log, newest first.
    fn query_audit(
        &self,
        query: &AuditQuery,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StorageError>> + Send;
}

/// The SQLite file of a lone server (the default).
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    /// The one writer of verifications (`group_commit`).
    verifications: group_commit::GroupCommit,
    /// The reads on a verification's way (`readers`).
    readers: Arc<readers::Readers>,
}

/// A PostgreSQL database, shared by a fleet's replicas.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    /// The connections of verifications (`lanes`).
    lanes: Arc<lanes::Lanes>,
}

impl SqliteStorage {
    /// Opens (creating it if missing) the SQLite file at `path` and brings its tables up to
    /// date. WAL lets readers run beside the one writer; `synchronous = FULL` makes a
    /// committed code survive a power cut (a code accepted but forgotten could be replayed).
    pub async fn open(path: &Path) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // No ping before each statement (sqlx's default): a file of our own does not
            // break behind our back, and each ping was another hop to the connection's
            // worker thread, three per verification (`group_commit` says what those cost).
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|error| StorageError::Open {
                target: path.display().to_string(),
                error,
            })?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(StorageError::Migrate)?;
        let verifications = group_commit::GroupCommit::start(path)?;
        Ok(Self {
            pool,
            verifications,
            readers: Arc::new(readers::Readers::new(path)),
        })
    }

    /// A one-row read on a verification's way, made here and now (`readers`).
    fn inline_row<T>(
        &self,
        sql: &str,
        key: &str,
        doing: &'static str,
        map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Result<Option<T>, StorageError>> {
        Some(self.readers.row(sql, key, doing, map))
    }

    /// A verification's reads, one after the other in place (microseconds each).
    async fn read_verification(
        &self,
        host: &str,
        source: Option<&str>,
        user: &str,
    ) -> Result<VerificationReads, StorageError> {
        Ok(VerificationReads {
            host: self.load_host(host).await?,
            source: match source {
                Some(source) => self.load_source(source).await?,
                None => None,
            },
            user: self.load_user(user).await?,
        })
    }

    /// A verification, stored with the others waiting by the one writer.
    async fn store_verification(
        &self,
        writes: VerificationWrites,
    ) -> Result<Committed, StorageError> {
        self.verifications.commit(writes).await
    }
}

impl PostgresStorage {
    /// None: every read is a round trip to the database anyway, made through sqlx.
    #[allow(
        clippy::unused_self,
        reason = "the same call as SQLite's in the code both backends share (sql::storage_impl)"
    )]
    fn inline_row<T>(
        &self,
        _sql: &str,
        _key: &str,
        _doing: &'static str,
        _map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Result<Option<T>, StorageError>> {
        None
    }

    /// Connects to `url` (`postgres://user@host:port/db`) and brings its tables up to date.
    /// Several servers may do this at once: sqlx takes an advisory lock around migrations.
    pub async fn open(url: &str) -> Result<Self, StorageError> {
        let target = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|error| StorageError::Open {
            target: target.clone(),
            error,
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // No ping before each statement (sqlx's default): it is a round trip to the
            // database, five per verification; without it 15-25 % more verifications per
            // second at 32 concurrent (docs/benchmarks.md, "sshield-server against
            // privacyIDEA"). A connection broken meanwhile (the database restarted) fails its
            // one statement instead, answered 503 as when the database is down, and the pool
            // drops it.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|error| StorageError::Open { target, error })?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(StorageError::Migrate)?;
        Ok(Self {
            pool,
            lanes: Arc::new(lanes::Lanes::new(options)),
        })
    }

    /// A verification's reads in one round trip.
    async fn read_verification(
        &self,
        host: &str,
        source: Option<&str>,
        user: &str,
    ) -> Result<VerificationReads, StorageError> {
        sql::postgres_verification_reads(&self.lanes, host, source, user).await
    }

    /// A verification in a transaction of its own. PostgreSQL flushes the commits that
    /// wait at the same moment together (no `commit_delay` needed, so none assumed), and
    /// replicas share nothing else: each verification is its own transaction.
    async fn store_verification(
        &self,
        writes: VerificationWrites,
    ) -> Result<Committed, StorageError> {
        if let Some(done) = sql::postgres_verification_at_once(&self.lanes, &writes).await {
            return done;
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql::db("starting a verification"))?;
        let done = sql::postgres_verification(&mut tx, &writes).await?;
        if matches!(done, Committed::Stored { .. }) {
            tx.commit()
                .await
                .map_err(sql::db("committing a verification"))?;
        } else {
            tx.rollback()
                .await
                .map_err(sql::db("rolling back a verification"))?;
        }
        Ok(done)
    }
}

/// A database URL fit for an error message: the password, if any, replaced.
fn redact_url(url: &str) -> String {
    // postgres://user:password@host/db: everything between the first ':' after the scheme
    // and the '@' is the password.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Where the server's data lives: the configured backend behind one type.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file.
    Sqlite(SqliteStorage),
    /// A PostgreSQL database.
    Postgres(PostgresStorage),
}

/// Which database the config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Backend {
    /// Opens the database `target` names.
    pub async fn open(target: &DatabaseTarget) -> Result<Self, StorageError> {
        Ok(match target {
            DatabaseTarget::Sqlite(path) => Self::Sqlite(SqliteStorage::open(path).await?),
            DatabaseTarget::Postgres(url) => Self::Postgres(PostgresStorage::open(url).await?),
        })
    }
}

/// Forwards every call of a storage trait (`Storage`, `PushStorage`) of [`Backend`] to the
/// backend it holds.
macro_rules! forward {
    ($trait:ident { $( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )* }) => {
        impl $trait for Backend {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StorageError> {
                    match self {
                        Self::Sqlite(s) => s.$name($($arg),*).await,
                        Self::Postgres(s) => s.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

forward! { Storage {
    fn create_user(&self, row: &UserRow) -> ();
    fn create_users(&self, rows: &[UserRow]) -> ();
    fn load_user(&self, name: &str) -> Option<UserRow>;
    fn update_user(&self, row: &UserRow) -> ();
    fn delete_user(&self, name: &str) -> bool;
    fn list_users(&self) -> Vec<UserRow>;
    fn add_host(&self, row: &HostRow) -> ();
    fn load_host(&self, name: &str) -> Option<HostRow>;
    fn list_hosts(&self) -> Vec<HostRow>;
    fn revoke_host(&self, name: &str, now: i64) -> bool;
    fn add_join_token(&self, hash: &[u8], host: &str, now: i64, expires_at: i64) -> ();
    fn use_join_token(&self, hash: &[u8], now: i64) -> Option<String>;
    fn remember_nonce(&self, host: &str, nonce: &str, ts: i64) -> bool;
    fn prune_nonces(&self, before: i64) -> u64;
    fn load_source(&self, source: &str) -> Option<SourceRow>;
    fn save_source(&self, row: &SourceRow) -> bool;
    fn prune_sources(&self, now: i64) -> u64;
    fn load_verification(&self, host: &str, source: Option<&str>, user: &str) -> VerificationReads;
    fn commit_verification(&self, writes: VerificationWrites) -> Committed;
    fn append_audit(&self, entry: &AuditEntry) -> ();
    fn prune_audit(&self, before: i64) -> u64;
    fn query_audit(&self, query: &AuditQuery) -> Vec<AuditEntry>;
} }

forward! { PushStorage {
    fn add_device(&self, row: &DeviceRow) -> ();
    fn list_devices(&self, user: &str) -> Vec<DeviceRow>;
    fn device_by_token(&self, hash: &[u8]) -> Option<DeviceRow>;
    fn revoke_device(&self, user: &str, id: &str, now: i64) -> bool;
    fn set_device_data(&self, user: &str, id: &str, data: &str) -> bool;
    fn add_enroll_link(&self, hash: &[u8], user: &str, now: i64, expires_at: i64) -> ();
    fn use_enroll_link(&self, hash: &[u8], now: i64) -> Option<String>;
    fn set_webhook(&self, user: &str, hook: &WebhookRow) -> ();
    fn load_webhook(&self, user: &str) -> Option<WebhookRow>;
    fn delete_webhook(&self, user: &str) -> bool;
    fn admit_approval(&self, row: &ApprovalRow, per_hour: i64, now: i64) -> Admission;
    fn load_approval(&self, id: &str) -> Option<ApprovalRow>;
    fn pending_approvals(&self, user: &str, now: i64) -> Vec<ApprovalRow>;
    fn decide_approval(&self, id: &str, user: &str, verdict: Verdict, device: &str, now: i64) -> Option<ApprovalRow>;
    fn expire_approvals(&self, now: i64) -> Vec<ApprovalRow>;
    fn push_block(&self, user: &str) -> Option<i64>;
    fn clear_push_block(&self, user: &str) -> bool;
    fn announce_approval(&self, id: &str) -> ();
} }

forward! { OfflineStorage {
    fn commit_report(&self, writes: &ReportWrites) -> ReportCommitted;
    fn record_report(&self, host: &str, id: &str, now: i64) -> bool;
    fn prune_reports(&self, before: i64) -> u64;
} }

forward! { PasskeyStorage {
    fn add_device_with_passkey(&self, device: &DeviceRow, passkey: &PasskeyRow) -> PasskeyAdded;
    fn load_passkey(&self, device: &str) -> Option<PasskeyRow>;
    fn passkeys_of(&self, user: &str) -> Vec<PasskeyRow>;
    fn update_passkey(&self, device: &str, passkey: &str, now: i64) -> bool;
    fn peek_enroll_link(&self, hash: &[u8], now: i64) -> Option<(String, i64)>;
    fn put_ceremony(&self, key: &str, user: &str, state: &str, expires_at: i64, now: i64) -> ();
    fn take_ceremony(&self, key: &str, now: i64) -> Option<(String, String)>;
    fn peek_ceremony(&self, key: &str, now: i64) -> Option<(String, i64)>;
} }

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_password_never_reaches_an_error_message() {
        assert_eq!(
            redact_url("postgres://sshield:s3cret@db.example:5432/sshield"),
            "postgres://sshield:***@db.example:5432/sshield"
        );
        assert_eq!(
            redact_url("postgres://sshield@db/sshield"),
            "postgres://sshield@db/sshield"
        );
    }
}
