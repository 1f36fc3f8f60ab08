//! What offline logins keep on the server (issue 11): which of a host's reports were counted
//! already, so a report sent twice marks and audits once. Written once for both backends, like
//! `sql.rs`; checked by the conformance suite (tests/storage.rs).

use std::future::Future;

use super::sql::db;
use super::{PostgresStorage, SqliteStorage, StorageError};

const RECORD_REPORT: &str =
    "INSERT INTO offline_reports (host, id, time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const PRUNE_REPORTS: &str = "DELETE FROM offline_reports WHERE time < $1";

/// The offline reports a server has counted.
pub trait OfflineStorage: Send + Sync {
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
    ($storage:ty) => {
        impl OfflineStorage for $storage {
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

offline_storage_impl!(SqliteStorage);
offline_storage_impl!(PostgresStorage);
