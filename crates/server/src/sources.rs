//! Failures per source over all users, as a host counts them in its `.sources` table
//! (core's `ratelimit`, docs/ratelimit.md), kept in the database so every replica sees every
//! failure: one row per source key, counted in the transaction that stores the verification,
//! on the row read under a lock (`Storage::commit_verification`).

use sshield_core::ratelimit::{FailureCount, RateLimit, DAY};

use crate::api::App;
use crate::storage::{SourceFailure, SourceRow, Storage, StorageError};

/// The lock over all users in force at `now` on the source whose `row` was read, if any.
pub fn locked(row: Option<&SourceRow>, now: u64) -> Option<u64> {
    row.and_then(|row| parse(row).locked(now))
}

/// One failure from `source` at `now`, counted with core's rules (`source_max_failures`
/// within `within` lock it for `lockout`) in the transaction that stores the verification
/// (`Storage::commit_verification`), on the row as it is then; the source's count in the
/// window comes back for the delay.
pub fn failure(app: &App, source: &str, now: u64) -> SourceFailure {
    let limits = app.rate_limit.clone();
    let key = source.to_owned();
    SourceFailure {
        source: source.to_owned(),
        count: Box::new(move |row: Option<&SourceRow>| {
            let mut count = row.map(parse).unwrap_or_default();
            let n = count.record(now, limits.source_max_failures, 0, &limits);
            let next = SourceRow {
                source: key.clone(),
                state: serde_json::to_string(&count).unwrap_or_default(),
                version: row.map_or(1, |r| r.version.saturating_add(1)),
                expires_at: expires_at(&count, &limits),
            };
            (next, n)
        }),
    }
}

/// Forgets the sources whose counts no longer matter at `now`.
pub async fn prune(app: &App, now: u64) -> Result<u64, StorageError> {
    app.store.prune_sources(as_i64(now)).await
}

/// A stored count; one that does not parse (it holds no secret, and only a writer of the
/// database could have made it) counts from zero again.
fn parse(row: &SourceRow) -> FailureCount {
    serde_json::from_str(&row.state).unwrap_or_else(|e| {
        tracing::warn!(source = %row.source, error = %e, "an unreadable source count, reset");
        FailureCount::default()
    })
}

/// When nothing in `count` matters any more: its lock and both counting windows are over.
fn expires_at(count: &FailureCount, limits: &RateLimit) -> i64 {
    let window = count.first.saturating_add(limits.within.as_secs());
    let day = if count.day_count > 0 {
        count.day_first.saturating_add(DAY)
    } else {
        0
    };
    as_i64(window.max(day).max(count.locked_until.unwrap_or(0)))
}

fn as_i64(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}
