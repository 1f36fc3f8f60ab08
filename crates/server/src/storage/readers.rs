//! SQLite: the reads on a verification's way (the host, the source's count, the user) on
//! connections of the server's own, run on the caller's thread. Through sqlx each read was a
//! message to a connection's worker thread and an answer back; at one client those hops were
//! most of a verification's time that was not the flush to disk, and on a fleet login every
//! hop wakes a thread on an idle core. A read by primary key from SQLite's cache takes a few
//! microseconds, short enough to make on the async runtime's thread (WAL: readers never wait
//! for the writer). Every other query stays with sqlx.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{named_params, Connection, OpenFlags, OptionalExtension, Row};

use super::StorageError;

/// Connections kept for the next reads: one per thread that reads at once (the runtime's
/// workers), and a few more.
const MAX_IDLE: usize = 8;

/// How long a read waits for SQLite's lock (only while a WAL file is recovered).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only connections to one SQLite file, opened as needed.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The one row `sql` finds for `key` (its `$1`), as `map` makes it.
    pub(super) fn row<T>(
        &self,
        sql: &str,
        key: &str,
        doing: &'static str,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StorageError> {
        let failed = |error| StorageError::Sqlite { doing, error };
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().map_err(failed)?,
        };
        let found = conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.query_row(named_params! { "$1": key }, map))
            .optional();
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        found.map_err(failed)
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        // Reads only: a statement that would write is refused.
        conn.pragma_update(None, "query_only", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }
}
