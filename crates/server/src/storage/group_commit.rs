//! SQLite's group commit: one writer task stores the verifications, taking every one that is
//! waiting into one transaction, so one flush to disk (`synchronous = FULL`) serves them
//! all. SQLite has one write lock; without this, concurrent verifications each took it for
//! their own commits and waited for one another in its busy handler, which sleeps up to
//! 100 ms between tries (the p99 of docs/benchmarks.md before).
//!
//! Each verification runs in a savepoint of its own: one that is refused (a replayed nonce,
//! a lost compare-and-swap) or fails is rolled back alone, and the others are committed. A
//! caller hears its answer only after the group's `COMMIT` has returned, so an accepted code
//! is on disk before the host is told. If the group cannot be committed, none of it is
//! stored and every caller in it gets the error.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::sql::{db, sqlite_verification};
use super::{Committed, StorageError, VerificationWrites};

/// The most verifications in one transaction: enough for every request a server has in
/// flight (hundreds), few enough that the write lock is not held for long.
const MAX_GROUP: usize = 256;

/// Verifications waiting for the writer; senders wait when it is full.
const QUEUE: usize = 1024;

/// One verification and where its answer goes.
#[derive(Debug)]
struct Job {
    writes: VerificationWrites,
    answer: oneshot::Sender<Result<Committed, StorageError>>,
}

/// The writer's address: cloned with the storage, the writer ends when the last is dropped.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on the current tokio runtime, writing through `pool`.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(writer(pool, queue));
        Self { jobs }
    }

    /// Stores `writes` with whatever else is waiting; returns once it is committed (or not).
    pub(super) async fn commit(
        &self,
        writes: VerificationWrites,
    ) -> Result<Committed, StorageError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || {
            StorageError::Batch(Arc::new(db(
                "handing a verification to the database writer",
            )(sqlx::Error::PoolClosed)))
        };
        self.jobs
            .send(Job { writes, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn writer(pool: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        commit_group(&pool, std::mem::take(&mut group)).await;
    }
}

/// Stores `group` in one transaction and answers each job.
async fn commit_group(pool: &SqlitePool, group: Vec<Job>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return fail(group, db("opening a connection for verifications")(e)),
    };
    // IMMEDIATE: the write lock is taken now, not at the first write, so nothing read in
    // the transaction can go stale before it is written.
    if let Err(e) = execute(&mut conn, "BEGIN IMMEDIATE").await {
        return fail(group, db("starting a group of verifications")(e));
    }
    let mut answers = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    while let Some(job) = jobs.next() {
        match one(&mut conn, &job.writes).await {
            Ok(result) => answers.push((job, result)),
            Err(e) => {
                // The transaction is gone with the savepoint (SQLite may roll back the whole
                // transaction on a full disk or an I/O error): nothing in the group stays.
                abandon(conn).await;
                let group = answers.into_iter().map(|(j, _)| j);
                return fail(group.chain([job]).chain(jobs).collect(), e);
            }
        }
    }
    if let Err(e) = execute(&mut conn, "COMMIT").await {
        abandon(conn).await;
        let group = answers.into_iter().map(|(j, _)| j).collect();
        return fail(group, db("committing a group of verifications")(e));
    }
    for (job, result) in answers {
        // A caller that went away (its client hung up) is no reason to stop.
        let _ = job.answer.send(result);
    }
}

/// One verification in its own savepoint: its answer (an error of its own is its answer,
/// rolled back alone), or the error that broke the transaction.
async fn one(
    conn: &mut SqliteConnection,
    writes: &VerificationWrites,
) -> Result<Result<Committed, StorageError>, StorageError> {
    let broken = db("storing a group of verifications");
    execute(conn, "SAVEPOINT verification")
        .await
        .map_err(broken)?;
    let result = sqlite_verification(conn, writes).await;
    if !matches!(result, Ok(Committed::Stored { .. })) {
        if let Err(e) = execute(conn, "ROLLBACK TO verification").await {
            // The statement's own error says why (a full disk), the rollback's does not.
            return Err(match result {
                Err(cause) => cause,
                Ok(_) => db("storing a group of verifications")(e),
            });
        }
    }
    execute(conn, "RELEASE verification")
        .await
        .map_err(db("storing a group of verifications"))?;
    Ok(result)
}

/// `sqlx::query`, not `raw_sql`: with `raw_sql` rustc cannot show the writer task `Send`
/// (sqlx's executor bound over every lifetime), which `tokio::spawn` needs.
async fn execute(conn: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(&mut *conn).await.map(|_| ())
}

/// Rolls back what is left of a broken transaction; a connection that cannot is closed
/// rather than handed back to the pool inside a transaction.
async fn abandon(mut conn: PoolConnection<Sqlite>) {
    if execute(&mut conn, "ROLLBACK").await.is_err() {
        conn.close_on_drop();
    }
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
