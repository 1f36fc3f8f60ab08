//! PostgreSQL connections for verifications, kept apart from sqlx's pool.
//!
//! sqlx's pool tests every connection it is given back with a round trip to the database
//! (a `Sync`, on a task it spawns for the purpose), in case the statement that used it was
//! cancelled half-way. A verification is one statement, or two with its reads: that test
//! was a third round trip to the database, a spawned task and two more thread wake-ups per
//! verification, for a case these connections settle otherwise. A connection here is given
//! back only by a [`Lane`] whose statement ran to its end, with an answer or a database's
//! error; a lane dropped before (its request cancelled: the client went away) or after a
//! connection's error closes its connection, and the next verification opens another.
//!
//! At most [`MAX_LANES`] are open at once, on top of the pool's connections, with the
//! pool's connect options (TLS and all).

use std::sync::Mutex;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::StorageError;

/// The most verification connections one server opens.
pub(super) const MAX_LANES: usize = 16;

/// The idle connections, and the permits to have one open.
#[derive(Debug)]
pub(super) struct Lanes {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    open: Semaphore,
}

/// One connection, lent to one verification: dropped, it closes the connection.
#[derive(Debug)]
pub(super) struct Lane<'a> {
    /// The connection, for the verification's statements.
    pub(super) conn: PgConnection,
    lanes: &'a Lanes,
    _permit: SemaphorePermit<'a>,
}

impl Lanes {
    pub(super) fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::with_capacity(MAX_LANES)),
            open: Semaphore::new(MAX_LANES),
        }
    }

    /// An idle connection, or a new one once fewer than [`MAX_LANES`] are open.
    pub(super) async fn take(&self, doing: &'static str) -> Result<Lane<'_>, StorageError> {
        let permit = self
            .open
            .acquire()
            .await
            .map_err(|_| StorageError::Database {
                doing,
                error: sqlx::Error::PoolClosed,
            })?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => PgConnection::connect_with(&self.options)
                .await
                .map_err(|error| StorageError::Database { doing, error })?,
        };
        Ok(Lane {
            conn,
            lanes: self,
            _permit: permit,
        })
    }
}

impl Lane<'_> {
    /// Ends the lane after its statement ran to its end with `result`: the connection goes
    /// back for the next verification, unless the error says it is broken.
    pub(super) fn done<T>(self, result: &Result<T, sqlx::Error>) {
        let reusable = matches!(
            result,
            Ok(_) | Err(sqlx::Error::Database(_) | sqlx::Error::RowNotFound)
        );
        if reusable {
            if let Ok(mut idle) = self.lanes.idle.lock() {
                idle.push(self.conn);
            }
        }
    }
}
