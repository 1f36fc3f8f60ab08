//! The SQL behind [`Storage`], written once for both backends: `$N`
//! placeholders, `CAST` instead of `::`, `ON CONFLICT` and `RETURNING` are common to SQLite
//! (3.35+, bundled by sqlx) and PostgreSQL, and `"user"` is quoted for PostgreSQL's sake.

use sqlx::Row;

use super::lanes::Lanes;
use super::offline::{ReportCommitted, ReportWrites, RECORD_REPORT};
use super::{
    AuditEntry, AuditQuery, Committed, HostRow, PostgresStorage, SourceRow, SqliteStorage, Storage,
    StorageError, UserRow, UserWrite, VerificationReads, VerificationWrites,
};

pub(super) const CREATE_USER: &str =
    "INSERT INTO users (name, sealed, version, state, disabled, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const LOAD_USER: &str =
    "SELECT name, sealed, version, state, disabled, updated_at FROM users WHERE name = $1";
// The compare-and-swap: only the writer that read version N may write N + 1.
pub(super) const UPDATE_USER: &str =
    "UPDATE users SET sealed = $2, version = $3, state = $4, disabled = $5, \
     updated_at = $6 WHERE name = $1 AND version = $7";
const USER_EXISTS: &str = "SELECT version FROM users WHERE name = $1";
pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE name = $1";
const LIST_USERS: &str =
    "SELECT name, version, state, disabled, updated_at FROM users ORDER BY name";
const ADD_HOST: &str =
    "INSERT INTO hosts (name, public_key, created_at, revoked_at) VALUES ($1, $2, $3, $4)";
const LOAD_HOST: &str =
    "SELECT name, public_key, created_at, revoked_at FROM hosts WHERE name = $1";
const LIST_HOSTS: &str = "SELECT name, public_key, created_at, revoked_at FROM hosts ORDER BY name";
const REVOKE_HOST: &str = "UPDATE hosts SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1";
const ADD_JOIN_TOKEN: &str =
    "INSERT INTO join_tokens (hash, host, created_at, expires_at) VALUES ($1, $2, $3, $4)";
// Spent by the one statement that finds it unspent: of two racing joins, one gets the row.
const USE_JOIN_TOKEN: &str = "UPDATE join_tokens SET used_at = $2 \
     WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING host";
pub(super) const REMEMBER_NONCE: &str =
    "INSERT INTO nonces (host, nonce, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const PRUNE_NONCES: &str = "DELETE FROM nonces WHERE ts < $1";
const PRUNE_AUDIT: &str = "DELETE FROM audit WHERE time < $1";
pub(super) const LOAD_SOURCE: &str =
    "SELECT source, state, version, expires_at FROM source_failures WHERE source = $1";
// The first count of a source: of two racing inserts, one writes.
pub(super) const INSERT_SOURCE: &str =
    "INSERT INTO source_failures (source, state, version, expires_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (source) DO NOTHING";
// Every later one: only the writer that read version N may write N + 1.
pub(super) const UPDATE_SOURCE: &str =
    "UPDATE source_failures SET state = $2, version = $3, expires_at = $4 \
     WHERE source = $1 AND version = $5";
// A source's row read in the transaction that writes it: PostgreSQL locks the row till the
// commit, so two verifications from one source never count from the same row (SQLite's one
// writer holds the database's write lock already: `group_commit`).
const LOAD_SOURCE_LOCKED_POSTGRES: &str =
    "SELECT source, state, version, expires_at FROM source_failures WHERE source = $1 FOR UPDATE";
/// Whether a verification's [`Basis`](super::Basis) holds, as a condition on `$1` the host
/// (the nonce's) and `$2` its key, `$3` the user and `$4` their row's version, `$5` the source
/// and `$6` its row's version: `$3` or `$5` NULL when the decision rests on no such row, a
/// version NULL for "no row". Point reads by primary key.
macro_rules! basis_holds {
    () => {
        "EXISTS (SELECT 1 FROM hosts WHERE name = $1 AND public_key = $2 \
         AND revoked_at IS NULL) \
         AND (CAST($3 AS TEXT) IS NULL \
         OR (SELECT version FROM users WHERE name = $3) IS NOT DISTINCT FROM $4) \
         AND (CAST($5 AS TEXT) IS NULL \
         OR (SELECT version FROM source_failures WHERE source = $5) IS NOT DISTINCT FROM $6)"
    };
}
pub(super) const BASIS_HOLDS: &str = concat!("SELECT ", basis_holds!());
// One verification in one statement (`postgres_verification_at_once`), its basis checked in
// it: the nonce and the audit entry, and first the user's compare-and-swap when there is one
// (the nonce and the audit entry are inserted from its returned row, so only if it wrote).
// The nonce's host is `$1`, the basis's. PostgreSQL only: SQLite has no data-modifying WITH.
const VERIFY_KEEPING_USER_POSTGRES: &str = concat!(
    "WITH n AS \
     (INSERT INTO nonces (host, nonce, ts) SELECT $1, $7, $8 WHERE ",
    basis_holds!(),
    " RETURNING 1) \
     INSERT INTO audit (time, host, \"user\", source, service, method, outcome, reason) \
     SELECT $9, $10, $11, $12, $13, $14, $15, $16 FROM n"
);
const VERIFY_UPDATING_USER_POSTGRES: &str = concat!(
    "WITH u AS \
     (UPDATE users SET sealed = $18, version = $19, state = $20, disabled = $21, \
     updated_at = $22 WHERE name = $17 AND version = $23 AND ",
    basis_holds!(),
    " RETURNING 1), \
     n AS (INSERT INTO nonces (host, nonce, ts) SELECT $1, $7, $8 FROM u RETURNING 1) \
     INSERT INTO audit (time, host, \"user\", source, service, method, outcome, reason) \
     SELECT $9, $10, $11, $12, $13, $14, $15, $16 FROM n"
);
// A verification's reads in one round trip (`postgres_verification_reads`): the host, the
// source's count (none when $2 is NULL) and the user, each column NULL where there is no row.
const LOAD_VERIFICATION_POSTGRES: &str = "SELECT \
     h.public_key, h.created_at AS host_created_at, h.revoked_at, \
     s.state AS source_state, s.version AS source_version, s.expires_at AS source_expires_at, \
     u.sealed, u.version, u.state, u.disabled, u.updated_at \
     FROM (SELECT 1) AS one \
     LEFT JOIN hosts h ON h.name = $1 \
     LEFT JOIN source_failures s ON s.source = $2 \
     LEFT JOIN users u ON u.name = $3";
const PRUNE_SOURCES: &str = "DELETE FROM source_failures WHERE expires_at < $1";
pub(super) const APPEND_AUDIT: &str = "INSERT INTO audit \
     (time, host, \"user\", source, service, method, outcome, reason) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const QUERY_AUDIT: &str = "SELECT time, host, \"user\", source, service, method, outcome, reason \
     FROM audit WHERE (CAST($1 AS TEXT) IS NULL OR \"user\" = $1) \
     AND (CAST($2 AS TEXT) IS NULL OR host = $2) \
     AND (CAST($3 AS BIGINT) IS NULL OR time >= $3) \
     AND (CAST($4 AS BIGINT) = 0 OR outcome NOT IN ('allowed', 'offline')) \
     ORDER BY time DESC, id DESC LIMIT $5";

pub(super) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |error| StorageError::Database { doing, error }
}

/// An insert's error: [`StorageError::Exists`] if the name is taken.
fn taken<'a>(
    kind: &'static str,
    name: &'a str,
    doing: &'static str,
) -> impl FnOnce(sqlx::Error) -> StorageError + 'a {
    move |error| match &error {
        sqlx::Error::Database(d) if d.is_unique_violation() => StorageError::Exists {
            kind,
            name: name.to_owned(),
        },
        _ => StorageError::Database { doing, error },
    }
}

/// A [`UserRow`] from a result row of either backend, with `sealed` as given (a listing
/// leaves it out).
macro_rules! user_row {
    ($r:expr, $sealed:expr) => {
        Ok::<_, sqlx::Error>(UserRow {
            name: $r.try_get("name")?,
            sealed: $sealed,
            version: $r.try_get("version")?,
            state: $r.try_get("state")?,
            disabled: $r.try_get("disabled")?,
            updated_at: $r.try_get("updated_at")?,
        })
    };
}

/// A [`HostRow`] from a result row of either backend.
macro_rules! host_row {
    ($r:expr) => {
        Ok::<_, sqlx::Error>(HostRow {
            name: $r.try_get("name")?,
            public_key: $r.try_get("public_key")?,
            created_at: $r.try_get("created_at")?,
            revoked_at: $r.try_get("revoked_at")?,
        })
    };
}

/// `CREATE_USER` with `row`'s columns bound, for either backend.
macro_rules! insert_user {
    ($row:expr) => {
        sqlx::query(CREATE_USER)
            .bind(&$row.name)
            .bind(&$row.sealed)
            .bind($row.version)
            .bind(&$row.state)
            .bind($row.disabled)
            .bind($row.updated_at)
    };
}

/// Runs a `DELETE ... WHERE time < $1` statement; how many rows it deleted.
macro_rules! delete_before {
    ($storage:expr, $sql:expr, $before:expr, $doing:expr) => {
        sqlx::query($sql)
            .bind($before)
            .execute(&$storage.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db($doing))
    };
}

/// A [`SourceRow`] from a result row of either backend.
macro_rules! source_row {
    ($r:expr) => {
        Ok::<_, sqlx::Error>(SourceRow {
            source: $r.try_get("source")?,
            state: $r.try_get("state")?,
            version: $r.try_get("version")?,
            expires_at: $r.try_get("expires_at")?,
        })
    };
}

/// Counts `failure` on `conn` inside a transaction: reads the source's row (locked, see
/// `$load_source`), applies the count and writes it; the source's count. A first failure
/// that meets another's first insert (PostgreSQL, two replicas) counts again on that row.
macro_rules! count_source {
    ($conn:expr, $failure:expr, $load_source:expr, $doing:expr) => {{
        let mut counted = None;
        for _ in 0..2 {
            let row = sqlx::query($load_source)
                .bind(&$failure.source)
                .fetch_optional(&mut *$conn)
                .await
                .map_err(db($doing))?
                .map(|r| source_row!(r))
                .transpose()
                .map_err(db($doing))?;
            let (next, n) = ($failure.count)(row.as_ref());
            let done = save_source!(&next)
                .execute(&mut *$conn)
                .await
                .map_err(db($doing))?;
            if done.rows_affected() == 1 {
                counted = Some(n);
                break;
            }
        }
        // Still not written: another writer of the row in between both reads, which the
        // lock rules out; counted at its worst, as a flood from the source would be.
        counted.unwrap_or(u32::MAX)
    }};
}

/// A source's count written: inserted at version 1 (if no row is there yet), else
/// compare-and-swapped from `version - 1`.
macro_rules! save_source {
    ($row:expr) => {{
        let row = $row;
        let first = row.version <= 1;
        let query = sqlx::query(if first { INSERT_SOURCE } else { UPDATE_SOURCE })
            .bind(&row.source)
            .bind(&row.state)
            .bind(row.version)
            .bind(row.expires_at);
        if first {
            query
        } else {
            query.bind(row.version.saturating_sub(1))
        }
    }};
}

/// `APPEND_AUDIT` with `entry`'s columns bound, for either backend.
macro_rules! append_audit {
    ($e:expr) => {
        sqlx::query(APPEND_AUDIT)
            .bind($e.time)
            .bind(&$e.host)
            .bind(&$e.user)
            .bind(&$e.source)
            .bind(&$e.service)
            .bind(&$e.method)
            .bind(&$e.outcome)
            .bind(&$e.reason)
    };
}

/// `UPDATE_USER` (the compare-and-swap from `row.version - 1`) with `row`'s columns bound.
macro_rules! update_user {
    ($row:expr) => {
        sqlx::query(UPDATE_USER)
            .bind(&$row.name)
            .bind(&$row.sealed)
            .bind($row.version)
            .bind(&$row.state)
            .bind($row.disabled)
            .bind($row.updated_at)
            .bind($row.version.saturating_sub(1))
    };
}

/// `query` with a verification's basis bound as `$1`-`$6` (`basis_holds!`), for either
/// backend.
macro_rules! bind_basis {
    ($query:expr, $writes:expr) => {{
        let b = &$writes.basis;
        $query
            .bind(&$writes.nonce.host)
            .bind(&b.host_key)
            .bind(b.user.as_ref().map(|(name, _)| name))
            .bind(b.user.as_ref().and_then(|(_, version)| *version))
            .bind(b.source.as_ref().map(|(source, _)| source))
            .bind(b.source.as_ref().and_then(|(_, version)| *version))
    }};
}

/// One verification's statements on a PostgreSQL connection inside a transaction the
/// caller opened and commits only on [`Committed::Stored`]; any other answer, or an error,
/// the caller rolls back. The nonce goes first, so a replayed request touches nothing else.
/// (SQLite's writer runs the same statements: `group_commit::verification`.)
pub(super) async fn postgres_verification(
    conn: &mut sqlx::PgConnection,
    w: &VerificationWrites,
) -> Result<Committed, StorageError> {
    let doing = "storing a verification";
    let new = sqlx::query(REMEMBER_NONCE)
        .bind(&w.nonce.host)
        .bind(&w.nonce.nonce)
        .bind(w.nonce.ts)
        .execute(&mut *conn)
        .await
        .map_err(db(doing))?;
    if new.rows_affected() != 1 {
        return Ok(Committed::NonceUsed);
    }
    let holds: bool = bind_basis!(sqlx::query_scalar(BASIS_HOLDS), w)
        .fetch_one(&mut *conn)
        .await
        .map_err(db(doing))?;
    if !holds {
        return Ok(Committed::LostRace);
    }
    let stored = match &w.user {
        None => true,
        Some(UserWrite::Create(row)) => match insert_user!(row).execute(&mut *conn).await {
            Ok(_) => true,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => false,
            Err(e) => return Err(db(doing)(e)),
        },
        Some(UserWrite::Update(row)) => {
            update_user!(row)
                .execute(&mut *conn)
                .await
                .map_err(db(doing))?
                .rows_affected()
                == 1
        }
        Some(UserWrite::Delete(name)) => {
            sqlx::query(DELETE_USER)
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(db(doing))?;
            true
        }
    };
    if !stored {
        return Ok(Committed::LostRace);
    }
    let source_failures = match &w.source {
        None => None,
        Some(failure) => Some(count_source!(
            conn,
            failure,
            LOAD_SOURCE_LOCKED_POSTGRES,
            doing
        )),
    };
    append_audit!(&w.audit)
        .execute(&mut *conn)
        .await
        .map_err(db(doing))?;
    Ok(Committed::Stored { source_failures })
}

/// PostgreSQL: a verification that counts no failure against a source (an allowed login, or
/// a denial with nothing to count) stored by one statement, so one round trip and one commit
/// instead of five round trips in a transaction; `None` for the others, which need the
/// source's row read first (`postgres_verification`). The same writes: the user's
/// compare-and-swap, then the nonce and the audit entry only if it was written; a nonce used
/// before fails the whole statement (the primary key), so nothing of it is stored.
pub(super) async fn postgres_verification_at_once(
    lanes: &Lanes,
    w: &VerificationWrites,
) -> Option<Result<Committed, StorageError>> {
    if w.source.is_some() {
        return None;
    }
    let (n, a) = (&w.nonce, &w.audit);
    let query = match &w.user {
        None => sqlx::query(VERIFY_KEEPING_USER_POSTGRES),
        Some(UserWrite::Update(_)) => sqlx::query(VERIFY_UPDATING_USER_POSTGRES),
        Some(UserWrite::Create(_) | UserWrite::Delete(_)) => return None,
    };
    let mut query = bind_basis!(query, w)
        .bind(&n.nonce)
        .bind(n.ts)
        .bind(a.time)
        .bind(&a.host)
        .bind(&a.user)
        .bind(&a.source)
        .bind(&a.service)
        .bind(&a.method)
        .bind(&a.outcome)
        .bind(&a.reason);
    if let Some(UserWrite::Update(row)) = &w.user {
        query = query
            .bind(&row.name)
            .bind(&row.sealed)
            .bind(row.version)
            .bind(&row.state)
            .bind(row.disabled)
            .bind(row.updated_at)
            .bind(row.version.saturating_sub(1));
    }
    let doing = "storing a verification";
    let mut lane = match lanes.take(doing).await {
        Ok(lane) => lane,
        Err(e) => return Some(Err(e)),
    };
    let done = query.execute(&mut lane.conn).await;
    lane.done(&done);
    Some(match done {
        Ok(done) if done.rows_affected() == 1 => Ok(Committed::Stored {
            source_failures: None,
        }),
        Ok(_) => Ok(Committed::LostRace),
        Err(sqlx::Error::Database(e))
            if e.is_unique_violation() && e.constraint() == Some("nonces_pkey") =>
        {
            Ok(Committed::NonceUsed)
        }
        Err(e) => Err(db(doing)(e)),
    })
}

/// Implements [`Storage`] for a backend whose `pool` field is a `sqlx::Pool`.
macro_rules! storage_impl {
    ($storage:ty) => {
        impl Storage for $storage {
            async fn create_user(&self, row: &UserRow) -> Result<(), StorageError> {
                insert_user!(row).execute(&self.pool).await.map_err(taken(
                    "user",
                    &row.name,
                    "creating a user",
                ))?;
                Ok(())
            }

            async fn create_users(&self, rows: &[UserRow]) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await.map_err(db("starting an import"))?;
                for row in rows {
                    insert_user!(row).execute(&mut *tx).await.map_err(taken(
                        "user",
                        &row.name,
                        "importing users",
                    ))?;
                }
                // Dropped without commit on any error above: the transaction rolls back.
                tx.commit().await.map_err(db("committing an import"))
            }

            async fn load_user(&self, name: &str) -> Result<Option<UserRow>, StorageError> {
                let inline = self.inline_row(LOAD_USER, name, "reading a user", |r| {
                    Ok(UserRow {
                        name: r.get("name")?,
                        sealed: r.get("sealed")?,
                        version: r.get("version")?,
                        state: r.get("state")?,
                        disabled: r.get("disabled")?,
                        updated_at: r.get("updated_at")?,
                    })
                });
                if let Some(done) = inline {
                    return done;
                }
                let row = sqlx::query(LOAD_USER)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("reading a user"))?;
                row.map(|r| user_row!(r, r.try_get("sealed")?))
                    .transpose()
                    .map_err(db("reading a user"))
            }

            async fn update_user(&self, row: &UserRow) -> Result<(), StorageError> {
                let done = update_user!(row)
                    .execute(&self.pool)
                    .await
                    .map_err(db("writing a user"))?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                // Nothing written: either someone wrote first or the user is gone.
                let exists = sqlx::query(USER_EXISTS)
                    .bind(&row.name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("writing a user"))?;
                Err(match exists {
                    Some(_) => StorageError::LostRace {
                        name: row.name.clone(),
                    },
                    None => StorageError::Missing {
                        kind: "user",
                        name: row.name.clone(),
                    },
                })
            }

            async fn delete_user(&self, name: &str) -> Result<bool, StorageError> {
                let done = sqlx::query(DELETE_USER)
                    .bind(name)
                    .execute(&self.pool)
                    .await
                    .map_err(db("removing a user"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_users(&self) -> Result<Vec<UserRow>, StorageError> {
                let rows = sqlx::query(LIST_USERS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("listing users"))?;
                rows.iter()
                    .map(|r| user_row!(r, Vec::new()))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(db("listing users"))
            }

            async fn add_host(&self, row: &HostRow) -> Result<(), StorageError> {
                sqlx::query(ADD_HOST)
                    .bind(&row.name)
                    .bind(&row.public_key)
                    .bind(row.created_at)
                    .bind(row.revoked_at)
                    .execute(&self.pool)
                    .await
                    .map_err(taken("host", &row.name, "adding a host"))?;
                Ok(())
            }

            async fn load_host(&self, name: &str) -> Result<Option<HostRow>, StorageError> {
                let inline = self.inline_row(LOAD_HOST, name, "reading a host", |r| {
                    Ok(HostRow {
                        name: r.get("name")?,
                        public_key: r.get("public_key")?,
                        created_at: r.get("created_at")?,
                        revoked_at: r.get("revoked_at")?,
                    })
                });
                if let Some(done) = inline {
                    return done;
                }
                let row = sqlx::query(LOAD_HOST)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("reading a host"))?;
                row.map(|r| host_row!(r))
                    .transpose()
                    .map_err(db("reading a host"))
            }

            async fn list_hosts(&self) -> Result<Vec<HostRow>, StorageError> {
                let rows = sqlx::query(LIST_HOSTS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("listing hosts"))?;
                rows.iter()
                    .map(|r| host_row!(r))
                    .collect::<Result<_, _>>()
                    .map_err(db("listing hosts"))
            }

            async fn revoke_host(&self, name: &str, now: i64) -> Result<bool, StorageError> {
                let done = sqlx::query(REVOKE_HOST)
                    .bind(name)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(db("revoking a host"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn add_join_token(
                &self,
                hash: &[u8],
                host: &str,
                now: i64,
                expires_at: i64,
            ) -> Result<(), StorageError> {
                sqlx::query(ADD_JOIN_TOKEN)
                    .bind(hash)
                    .bind(host)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(db("storing a join token"))?;
                Ok(())
            }

            async fn use_join_token(
                &self,
                hash: &[u8],
                now: i64,
            ) -> Result<Option<String>, StorageError> {
                let row = sqlx::query(USE_JOIN_TOKEN)
                    .bind(hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("spending a join token"))?;
                row.map(|r| r.try_get("host"))
                    .transpose()
                    .map_err(db("spending a join token"))
            }

            async fn remember_nonce(
                &self,
                host: &str,
                nonce: &str,
                ts: i64,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(REMEMBER_NONCE)
                    .bind(host)
                    .bind(nonce)
                    .bind(ts)
                    .execute(&self.pool)
                    .await
                    .map_err(db("remembering a nonce"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_nonces(&self, before: i64) -> Result<u64, StorageError> {
                delete_before!(self, PRUNE_NONCES, before, "pruning nonces")
            }

            async fn prune_audit(&self, before: i64) -> Result<u64, StorageError> {
                delete_before!(self, PRUNE_AUDIT, before, "pruning the audit log")
            }

            async fn load_source(&self, source: &str) -> Result<Option<SourceRow>, StorageError> {
                let inline =
                    self.inline_row(LOAD_SOURCE, source, "reading a source's failures", |r| {
                        Ok(SourceRow {
                            source: r.get("source")?,
                            state: r.get("state")?,
                            version: r.get("version")?,
                            expires_at: r.get("expires_at")?,
                        })
                    });
                if let Some(done) = inline {
                    return done;
                }
                let row = sqlx::query(LOAD_SOURCE)
                    .bind(source)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("reading a source's failures"))?;
                row.map(|r| source_row!(r))
                    .transpose()
                    .map_err(db("reading a source's failures"))
            }

            async fn save_source(&self, row: &SourceRow) -> Result<bool, StorageError> {
                let done = save_source!(row)
                    .execute(&self.pool)
                    .await
                    .map_err(db("counting a source's failure"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_sources(&self, now: i64) -> Result<u64, StorageError> {
                delete_before!(self, PRUNE_SOURCES, now, "pruning source failures")
            }

            async fn append_audit(&self, e: &AuditEntry) -> Result<(), StorageError> {
                append_audit!(e)
                    .execute(&self.pool)
                    .await
                    .map_err(db("appending to the audit log"))?;
                Ok(())
            }

            async fn load_verification(
                &self,
                host: &str,
                source: Option<&str>,
                user: &str,
            ) -> Result<VerificationReads, StorageError> {
                self.read_verification(host, source, user).await
            }

            async fn commit_verification(
                &self,
                writes: VerificationWrites,
            ) -> Result<Committed, StorageError> {
                self.store_verification(writes).await
            }

            async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StorageError> {
                let rows = sqlx::query(QUERY_AUDIT)
                    .bind(&q.user)
                    .bind(&q.host)
                    .bind(q.since)
                    .bind(i64::from(q.failed_only))
                    .bind(q.limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("reading the audit log"))?;
                rows.iter()
                    .map(|r| {
                        Ok(AuditEntry {
                            time: r.try_get("time")?,
                            host: r.try_get("host")?,
                            user: r.try_get("user")?,
                            source: r.try_get("source")?,
                            service: r.try_get("service")?,
                            method: r.try_get("method")?,
                            outcome: r.try_get("outcome")?,
                            reason: r.try_get("reason")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(db("reading the audit log"))
            }
        }
    };
}

storage_impl!(SqliteStorage);
storage_impl!(PostgresStorage);

/// Defines `$name`, which runs one offline report's statements on a connection inside a
/// transaction that the caller opened and commits only on [`ReportCommitted::Stored`]. The
/// id goes first, so a resend touches nothing else.
macro_rules! report_statements {
    ($name:ident, $conn:ty) => {
        pub(super) async fn $name(
            conn: &mut $conn,
            w: &ReportWrites,
        ) -> Result<ReportCommitted, StorageError> {
            let doing = "storing an offline report";
            let new = sqlx::query(RECORD_REPORT)
                .bind(&w.host)
                .bind(&w.id)
                .bind(w.now)
                .execute(&mut *conn)
                .await
                .map_err(db(doing))?;
            if new.rows_affected() != 1 {
                return Ok(ReportCommitted::Duplicate);
            }
            if let Some(row) = &w.user {
                let done = update_user!(row)
                    .execute(&mut *conn)
                    .await
                    .map_err(db(doing))?;
                if done.rows_affected() != 1 {
                    return Ok(ReportCommitted::LostRace);
                }
            }
            append_audit!(&w.audit)
                .execute(&mut *conn)
                .await
                .map_err(db(doing))?;
            Ok(ReportCommitted::Stored)
        }
    };
}

report_statements!(sqlite_report, sqlx::SqliteConnection);
report_statements!(postgres_report, sqlx::PgConnection);

/// PostgreSQL: a verification's three reads (`LOAD_VERIFICATION_POSTGRES`) in one round trip.
pub(super) async fn postgres_verification_reads(
    lanes: &Lanes,
    host: &str,
    source: Option<&str>,
    user: &str,
) -> Result<VerificationReads, StorageError> {
    let doing = "reading a verification's host, source and user";
    let mut lane = lanes.take(doing).await?;
    let read = sqlx::query(LOAD_VERIFICATION_POSTGRES)
        .bind(host)
        .bind(source)
        .bind(user)
        .fetch_one(&mut lane.conn)
        .await;
    lane.done(&read);
    let r = read.map_err(db(doing))?;
    let read = || -> Result<VerificationReads, sqlx::Error> {
        let public_key: Option<Vec<u8>> = r.try_get("public_key")?;
        let state: Option<String> = r.try_get("source_state")?;
        let sealed: Option<Vec<u8>> = r.try_get("sealed")?;
        Ok(VerificationReads {
            host: match public_key {
                Some(public_key) => Some(HostRow {
                    name: host.to_owned(),
                    public_key,
                    created_at: r.try_get("host_created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                }),
                None => None,
            },
            source: match (source, state) {
                (Some(source), Some(state)) => Some(SourceRow {
                    source: source.to_owned(),
                    state,
                    version: r.try_get("source_version")?,
                    expires_at: r.try_get("source_expires_at")?,
                }),
                _ => None,
            },
            user: match sealed {
                Some(sealed) => Some(UserRow {
                    name: user.to_owned(),
                    sealed,
                    version: r.try_get("version")?,
                    state: r.try_get("state")?,
                    disabled: r.try_get("disabled")?,
                    updated_at: r.try_get("updated_at")?,
                }),
                None => None,
            },
        })
    };
    read().map_err(db(doing))
}
