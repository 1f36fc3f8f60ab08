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
//! pool's connect options (TLS and all). A connection idle for longer than [`IDLE_FOR`] is
//! closed rather than used: a firewall or the database may have dropped it meanwhile, and a
//! verification sent on it would fail (as sqlx's pool closes its idle ones after ten minutes).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::StorageError;

/// The most verification connections one server opens.
pub(super) const MAX_LANES: usize = 16;

/// How long a connection may wait idle and still be used.
pub(super) const IDLE_FOR: Duration = Duration::from_secs(60);

/// The idle connections, and the permits to have one open.
#[derive(Debug)]
pub(super) struct Lanes {
    options: PgConnectOptions,
    /// Each with the time it came back, the latest last.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
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
        let (fresh, stale) = self.idle_one();
        if !stale.is_empty() {
            // Closed politely, off the verification's way; one that cannot be is gone anyway.
            tokio::spawn(async move {
                for conn in stale {
                    let _ = conn.close().await;
                }
            });
        }
        let conn = match fresh {
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

    /// The connection that came back last, and the ones idle too long to use.
    fn idle_one(&self) -> (Option<PgConnection>, Vec<PgConnection>) {
        match self.idle.lock() {
            Ok(mut idle) => latest_and_stale(&mut idle, Instant::now()),
            Err(_) => (None, Vec::new()),
        }
    }
}

/// Takes from `idle` (in the order they came back) the latest, and the ones idle for longer
/// than [`IDLE_FOR`] at `now`: those are the first ones.
fn latest_and_stale<T>(idle: &mut Vec<(T, Instant)>, now: Instant) -> (Option<T>, Vec<T>) {
    let stale = idle
        .iter()
        .take_while(|(_, since)| now.saturating_duration_since(*since) > IDLE_FOR)
        .count();
    let stale = idle.drain(..stale).map(|(conn, _)| conn).collect();
    (idle.pop().map(|(conn, _)| conn), stale)
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
                idle.push((self.conn, Instant::now()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_is_lent_and_the_stale_are_taken_out() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut idle = vec![(1, at(0)), (2, at(30)), (3, at(100))];
        // At 100 s: 1 has waited 100 s and 2 has waited 70 s; 3 just came back.
        assert_eq!(latest_and_stale(&mut idle, at(100)), (Some(3), vec![1, 2]));
        assert!(idle.is_empty());
        let mut idle = vec![(1, at(0)), (2, at(50))];
        assert_eq!(latest_and_stale(&mut idle, at(70)), (Some(2), vec![1]));
        let mut idle = vec![(1, at(0)), (2, at(50))];
        assert_eq!(latest_and_stale(&mut idle, at(55)), (Some(2), vec![]));
        assert_eq!(idle, vec![(1, at(0))]);
        // All stale: nothing to lend, all to close.
        let mut idle = vec![(1, at(0)), (2, at(1))];
        assert_eq!(latest_and_stale(&mut idle, at(200)), (None, vec![1, 2]));
        assert_eq!(
            latest_and_stale(&mut Vec::<(u8, Instant)>::new(), at(0)),
            (None, vec![])
        );
    }
}
