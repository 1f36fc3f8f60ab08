//! What offline logins keep on the server (issue 11): which of a host's reports were counted
//! already, so a report sent twice marks and audits once. Written once for both backends, like
//! `sql.rs`; checked by the conformance suite (tests/storage.rs).
//!
//! A report is stored in one transaction ([`OfflineStorage::commit_report`]): its id, the
//! user's record with the reported code marked used, and its audit entry, all or nothing. (It
//! was three writes: a crash between them could lose the report's audit entry.)

use std::future::Future;

use super::sql::{self, db};
use super::{AuditEntry, PostgresStorage, SqliteStorage, StorageError, UserRow};

pub(super) const RECORD_REPORT: &str =
    "INSERT INTO offline_reports (host, id, time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const PRUNE_REPORTS: &str = "DELETE FROM offline_reports WHERE time < $1";

/// Everything one report stores, together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportWrites {
    /// The host that sent it.
    pub host: String,
    /// The host's id for it: counted once per host.
    pub id: String,
    /// When the server counted it (Unix seconds; pruned with the audit log).
    pub now: i64,
    /// The user's row with the reported counter or backup code marked used, written only at
    /// the version it was read at (`row.version - 1`); `None` when the report changes no
    /// record (a `failmode` decision, a code marked before, a user not on this server).
    pub user: Option<UserRow>,
    /// The report's audit entry.
    pub audit: AuditEntry,
}

/// How [`OfflineStorage::commit_report`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportCommitted {
    /// Id, user and audit entry stored.
    Stored,
    /// The host sent this id before: nothing stored (it was counted then).
    Duplicate,
    /// The user's row changed since it was read: nothing stored; read again and mark anew.
    LostRace,
}

/// The offline reports a server has counted.
pub trait OfflineStorage: Send + Sync {
    /// Stores one report in one transaction: its id first (a resend stores nothing more),
    /// then the user's compare-and-swap, then the audit entry; committed only if all three
    /// are. Of two racing calls with one id (two replicas), one stores it.
    fn commit_report(
        &self,
        writes: &ReportWrites,
    ) -> impl Future<Output = Result<ReportCommitted, StorageError>> + Send;
    /// Remembers `host`'s report `id`: true the first time, false if it was counted before.
    /// Of two racing calls (two replicas), one gets true.
    fn record_report(
        &self,
        host: &str,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Forgets reports recorded before `before`; how many.
    fn prune_reports(&self, before: i64) -> impl Future<Output = Result<u64, StorageError>> + Send;
}

/// Implements [`OfflineStorage`] for a backend whose `pool` field is a `sqlx::Pool`.
macro_rules! offline_storage_impl {
    ($storage:ty, $statements:path) => {
        impl OfflineStorage for $storage {
            async fn commit_report(
                &self,
                writes: &ReportWrites,
            ) -> Result<ReportCommitted, StorageError> {
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db("starting to store an offline report"))?;
                let done = $statements(&mut tx, writes).await?;
                if done == ReportCommitted::Stored {
                    tx.commit()
                        .await
                        .map_err(db("committing an offline report"))?;
                } else {
                    tx.rollback()
                        .await
                        .map_err(db("rolling back an offline report"))?;
                }
                Ok(done)
            }

            async fn record_report(
                &self,
                host: &str,
                id: &str,
                now: i64,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(RECORD_REPORT)
                    .bind(host)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(db("recording an offline report"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_reports(&self, before: i64) -> Result<u64, StorageError> {
                let done = sqlx::query(PRUNE_REPORTS)
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(db("pruning offline reports"))?;
                Ok(done.rows_affected())
            }
        }
    };
}

offline_storage_impl!(SqliteStorage, sql::sqlite_report);
offline_storage_impl!(PostgresStorage, sql::postgres_report);
