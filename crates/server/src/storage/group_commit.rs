//! SQLite's group commit: one writer stores the verifications, taking every one that is
//! waiting into one transaction, so one flush to disk (`synchronous = FULL`) serves them
//! all. SQLite has one write lock; without this, concurrent verifications each took it for
//! their own commits and waited for one another in its busy handler, which sleeps up to
//! 100 ms between tries (the p99 of docs/benchmarks.md before).
//!
//! The writer is a thread of its own with a plain SQLite connection (rusqlite, on the same
//! SQLite that sqlx links): a group's statements are blocking calls of a few microseconds
//! each, one after the other. Through sqlx, every statement was a message to the
//! connection's worker thread and an answer back, two thread wake-ups per statement and
//! seven statements per verification; those wake-ups were half of the server's CPU time at
//! 32 concurrent verifications (a `perf` profile). Now a verification costs one message to
//! the writer and one answer.
//!
//! Each verification runs in a savepoint of its own: one that is refused (a replayed nonce,
//! a lost compare-and-swap) or fails is rolled back alone, and the others are committed. A
//! caller hears its answer only after the group's `COMMIT` has returned, so an accepted code
//! is on disk before the host is told. If the group cannot be committed, none of it is
//! stored and every caller in it gets the error.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{named_params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use rusqlite::{Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::sql::{
    APPEND_AUDIT, BASIS_HOLDS, CREATE_USER, DELETE_USER, INSERT_SOURCE, LOAD_SOURCE,
    REMEMBER_NONCE, UPDATE_SOURCE, UPDATE_USER,
};
use super::{Committed, SourceFailure, SourceRow, StorageError, UserWrite, VerificationWrites};

/// The most verifications in one transaction: enough for every request a server has in
/// flight (hundreds), few enough that the write lock is not held for long.
const MAX_GROUP: usize = 256;

/// Verifications waiting for the writer; senders wait when it is full.
const QUEUE: usize = 1024;

/// How long the writer waits for another process's write lock (the server's CLI changing a
/// user while the server runs) before the group fails; sqlx's pool waits as long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often, at most, the WAL is checkpointed into the database file, by a thread of its own
/// (only after commits: an idle server does not wake for it).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The WAL pages after which the writer checkpoints itself all the same (SQLite's automatic
/// checkpoint, which the checkpoint thread leaves nothing to do while it keeps up).
const AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// What a statement's error is reported as.
const STORING: &str = "storing a group of verifications";

/// One verification and where its answer goes.
#[derive(Debug)]
struct Job {
    writes: VerificationWrites,
    answer: oneshot::Sender<Result<Committed, StorageError>>,
}

/// The writer's address: cloned with the storage, the writer ends when the last is dropped
/// (and the checkpoint thread with it).
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Opens a connection to the SQLite file at `path` (its tables already brought up to
    /// date) and starts the writer thread on it.
    pub(super) fn start(path: &Path) -> Result<Self, StorageError> {
        let opening = |error| StorageError::Sqlite {
            doing: "opening the database for verifications",
            error,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(opening)?;
        // As sqlx's connections (`SqliteStorage::open`): WAL was set on the file by then;
        // `synchronous` and foreign keys are per connection.
        conn.pragma_update(None, "synchronous", "FULL")
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|()| conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES))
            .and_then(|()| conn.busy_timeout(BUSY_TIMEOUT))
            .map_err(opening)?;
        let checkpoints = Connection::open_with_flags(path, flags)
            .and_then(|c| c.busy_timeout(BUSY_TIMEOUT).map(|()| c))
            .map_err(opening)?;
        let thread_failed = |e| StorageError::Open {
            target: path.display().to_string(),
            error: sqlx::Error::Io(e),
        };
        let (jobs, queue) = mpsc::channel(QUEUE);
        // One pending "committed" at most: the checkpoint thread needs to know there is
        // something to copy, not how much.
        let (committed, commits) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || checkpointer(&checkpoints, &commits))
            .map_err(thread_failed)?;
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || writer(conn, queue, &committed))
            .map_err(thread_failed)?;
        Ok(Self { jobs })
    }

    /// Stores `writes` with whatever else is waiting; returns once it is committed (or not).
    pub(super) async fn commit(
        &self,
        writes: VerificationWrites,
    ) -> Result<Committed, StorageError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StorageError::WriterGone;
        self.jobs
            .send(Job { writes, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Takes every job waiting (at most [`MAX_GROUP`]) and stores them as one group, until the
/// storage is dropped.
fn writer(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    committed: &std::sync::mpsc::SyncSender<()>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(job) = queue.blocking_recv() {
        group.push(job);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, std::mem::take(&mut group));
        // Full: the checkpoint thread has been told already.
        let _ = committed.try_send(());
    }
}

/// Copies the WAL into the database file after commits, at most every [`CHECKPOINT_EVERY`],
/// until the writer stops, so no verification waits for a checkpoint: SQLite's automatic one
/// runs inside the commit that crosses its threshold, and that commit's callers waited for it
/// (the slowest answers at one client). PASSIVE: it never blocks the writer or a reader; what
/// it cannot copy now it copies next time. A failure is logged and tried again.
fn checkpointer(conn: &Connection, commits: &std::sync::mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {}
            // Another connection is checkpointing (the writer past its threshold, the CLI).
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {}
            Err(e) => tracing::warn!(error = %e, "checkpointing the database's write-ahead log"),
        }
        std::thread::sleep(CHECKPOINT_EVERY);
    }
}

/// Stores `group` in one transaction and answers each job.
fn commit_group(conn: &mut Connection, group: Vec<Job>) {
    // IMMEDIATE: the write lock is taken now, not at the first write, so nothing read in
    // the transaction can go stale before it is written.
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail(group, writer_error("starting a group of verifications", e)),
    };
    let mut answers = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    while let Some(job) = jobs.next() {
        match one(&mut tx, &job.writes) {
            Ok(result) => answers.push((job, result)),
            Err(e) => {
                // The transaction is gone with the savepoint (SQLite may roll back the whole
                // transaction on a full disk or an I/O error): nothing in the group stays.
                // Dropping `tx` rolls back what is left.
                drop(tx);
                let group = answers.into_iter().map(|(j, _)| j);
                return fail(group.chain([job]).chain(jobs).collect(), e);
            }
        }
    }
    // A failed COMMIT drops the transaction, which rolls it back.
    if let Err(e) = tx.commit() {
        let group = answers.into_iter().map(|(j, _)| j).collect();
        return fail(
            group,
            writer_error("committing a group of verifications", e),
        );
    }
    for (job, result) in answers {
        // A caller that went away (its client hung up) is no reason to stop.
        let _ = job.answer.send(result);
    }
}

/// One verification in its own savepoint: its answer (an error of its own is its answer,
/// rolled back alone), or the error that broke the transaction.
fn one(
    tx: &mut Transaction<'_>,
    writes: &VerificationWrites,
) -> Result<Result<Committed, StorageError>, StorageError> {
    let broken = |e| writer_error(STORING, e);
    let mut savepoint = tx.savepoint().map_err(broken)?;
    let result = verification(&savepoint, writes);
    if !matches!(result, Ok(Committed::Stored { .. })) {
        if let Err(e) = savepoint.rollback() {
            // The statement's own error says why (a full disk), the rollback's does not.
            return Err(match result {
                Err(cause) => cause,
                Ok(_) => broken(e),
            });
        }
    }
    savepoint.commit().map_err(broken)?;
    Ok(result)
}

/// One verification's statements, in the caller's savepoint: the nonce first, so a replayed
/// request touches nothing else; then its basis, checked; then the user's compare-and-swap,
/// the source's count for a denial and the audit entry. The same statements as PostgreSQL's
/// (`sql::postgres_verification`).
fn verification(conn: &Connection, w: &VerificationWrites) -> Result<Committed, StorageError> {
    let run = |sql: &str, params: &[(&str, &dyn rusqlite::ToSql)]| {
        conn.prepare_cached(sql)
            .and_then(|mut statement| statement.execute(params))
            .map_err(|e| writer_error(STORING, e))
    };
    let nonce = &w.nonce;
    let new = run(
        REMEMBER_NONCE,
        named_params! { "$1": nonce.host, "$2": nonce.nonce, "$3": nonce.ts },
    )?;
    if new != 1 {
        return Ok(Committed::NonceUsed);
    }
    let b = &w.basis;
    let holds = conn
        .prepare_cached(BASIS_HOLDS)
        .and_then(|mut statement| {
            statement.query_row(
                named_params! {
                    "$1": nonce.host,
                    "$2": b.host_key,
                    "$3": b.user.as_ref().map(|(name, _)| name),
                    "$4": b.user.as_ref().and_then(|(_, version)| *version),
                    "$5": b.source.as_ref().map(|(source, _)| source),
                    "$6": b.source.as_ref().and_then(|(_, version)| *version),
                },
                |row| row.get::<_, bool>(0),
            )
        })
        .map_err(|e| writer_error(STORING, e))?;
    if !holds {
        return Ok(Committed::LostRace);
    }
    let stored = match &w.user {
        None => true,
        Some(UserWrite::Create(row)) => {
            let params = named_params! {
                "$1": row.name, "$2": row.sealed, "$3": row.version, "$4": row.state,
                "$5": row.disabled, "$6": row.updated_at,
            };
            match run(CREATE_USER, params) {
                Ok(_) => true,
                Err(StorageError::Sqlite {
                    error: rusqlite::Error::SqliteFailure(e, _),
                    ..
                }) if e.code == ErrorCode::ConstraintViolation => false,
                Err(e) => return Err(e),
            }
        }
        Some(UserWrite::Update(row)) => {
            let params = named_params! {
                "$1": row.name, "$2": row.sealed, "$3": row.version, "$4": row.state,
                "$5": row.disabled, "$6": row.updated_at,
                "$7": row.version.saturating_sub(1),
            };
            run(UPDATE_USER, params)? == 1
        }
        Some(UserWrite::Delete(name)) => {
            run(DELETE_USER, named_params! { "$1": name })?;
            true
        }
    };
    if !stored {
        return Ok(Committed::LostRace);
    }
    let source_failures = match &w.source {
        None => None,
        Some(failure) => Some(count_source(conn, failure)?),
    };
    let a = &w.audit;
    run(
        APPEND_AUDIT,
        named_params! {
            "$1": a.time, "$2": a.host, "$3": a.user, "$4": a.source, "$5": a.service,
            "$6": a.method, "$7": a.outcome, "$8": a.reason,
        },
    )?;
    Ok(Committed::Stored { source_failures })
}

/// Counts `failure` on its source's row as it is now (the writer holds the database's write
/// lock, so nothing changes it in between) and writes it; the source's count.
fn count_source(conn: &Connection, failure: &SourceFailure) -> Result<u32, StorageError> {
    let doing = |e| writer_error(STORING, e);
    let row = conn
        .prepare_cached(LOAD_SOURCE)
        .and_then(|mut statement| {
            statement
                .query_row(named_params! { "$1": failure.source }, |r| {
                    Ok(SourceRow {
                        source: r.get("source")?,
                        state: r.get("state")?,
                        version: r.get("version")?,
                        expires_at: r.get("expires_at")?,
                    })
                })
                .optional()
        })
        .map_err(doing)?;
    let (next, n) = (failure.count)(row.as_ref());
    let written = if row.is_none() {
        conn.prepare_cached(INSERT_SOURCE)
            .and_then(|mut statement| {
                statement.execute(named_params! {
                    "$1": next.source, "$2": next.state, "$3": next.version, "$4": next.expires_at,
                })
            })
    } else {
        conn.prepare_cached(UPDATE_SOURCE)
            .and_then(|mut statement| {
                statement.execute(named_params! {
                    "$1": next.source, "$2": next.state, "$3": next.version, "$4": next.expires_at,
                    "$5": next.version.saturating_sub(1),
                })
            })
    }
    .map_err(doing)?;
    // Not written: impossible under the write lock; counted at its worst, as a flood from
    // the source would be.
    Ok(if written == 1 { n } else { u32::MAX })
}

fn writer_error(doing: &'static str, error: rusqlite::Error) -> StorageError {
    StorageError::Sqlite { doing, error }
}

/// Answers every job of a group that was not stored with `error`.
fn fail(group: Vec<Job>, error: StorageError) {
    tracing::error!(error = %error, verifications = group.len(), "a group of verifications, none stored");
    let error = Arc::new(error);
    for job in group {
        let _ = job
            .answer
            .send(Err(StorageError::Batch(Arc::clone(&error))));
    }
}
