//! The rows verifications read, kept for the next verification of the same user from the
//! same source: one whose rows are here is decided without reading them, and their versions
//! go with its writes as their [`Basis`](crate::storage::Basis), so the database stores the
//! decision only if the rows are still so; if not (another replica, the CLI or the admin
//! pages changed one), nothing is stored, the rows are forgotten, and the verification is
//! decided again on rows read afresh. On PostgreSQL a verification is then one round trip,
//! not two.
//!
//! The rows hold nothing a database reader would not see: user records stay sealed. The
//! cache is bounded ([`MAX_ROWS`] users and as many sources); a full one forgets a row to
//! take another.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::storage::{SourceRow, UserRow};

/// The most users, and the most sources, kept: a few MiB of sealed records at most.
pub const MAX_ROWS: usize = 4096;

/// A user's row and the source's, as a verification read or stored them (`None`: no row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    /// The user's.
    pub user: Option<UserRow>,
    /// The source's failure count, when the verification has a counted source.
    pub source: Option<SourceRow>,
}

/// Rows by user name and by source key.
#[derive(Debug, Default)]
pub struct ReadCache(Mutex<Maps>);

#[derive(Debug, Default)]
struct Maps {
    users: HashMap<String, Option<UserRow>>,
    sources: HashMap<String, Option<SourceRow>>,
}

impl ReadCache {
    /// `user`'s row and `source`'s (none asked for when `None`), if both are kept.
    pub fn get(&self, user: &str, source: Option<&str>) -> Option<Rows> {
        let maps = self.0.lock().ok()?;
        let user = maps.users.get(user)?.clone();
        let source = match source {
            Some(key) => maps.sources.get(key)?.clone(),
            None => None,
        };
        Some(Rows { user, source })
    }

    /// Keeps `user`'s row as it is now in the database (`None`: no row).
    pub fn put_user(&self, user: &str, row: Option<UserRow>) {
        if let Ok(mut maps) = self.0.lock() {
            put(&mut maps.users, user, row);
        }
    }

    /// Keeps `source`'s row as it is now in the database (`None`: no row).
    pub fn put_source(&self, source: &str, row: Option<SourceRow>) {
        if let Ok(mut maps) = self.0.lock() {
            put(&mut maps.sources, source, row);
        }
    }

    /// Forgets `source`'s row: a failure was counted on it.
    pub fn forget_source(&self, source: &str) {
        if let Ok(mut maps) = self.0.lock() {
            maps.sources.remove(source);
        }
    }

    /// Forgets `user`'s row and `source`'s: one of them changed, or may have.
    pub fn forget(&self, user: &str, source: Option<&str>) {
        if let Ok(mut maps) = self.0.lock() {
            maps.users.remove(user);
            if let Some(source) = source {
                maps.sources.remove(source);
            }
        }
    }
}

/// Inserts `key`, first forgetting some other key if the map is full.
fn put<V>(map: &mut HashMap<String, V>, key: &str, value: V) {
    if map.len() >= MAX_ROWS && !map.contains_key(key) {
        if let Some(other) = map.keys().next().cloned() {
            map.remove(&other);
        }
    }
    map.insert(key.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, version: i64) -> UserRow {
        UserRow {
            name: name.to_owned(),
            sealed: vec![1, 2, 3],
            version,
            state: "enrolled".to_owned(),
            disabled: false,
            updated_at: 0,
        }
    }

    #[test]
    fn both_rows_are_needed_and_no_row_is_a_row() {
        let cache = ReadCache::default();
        assert_eq!(cache.get("alice", None), None);
        cache.put_user("alice", Some(row("alice", 3)));
        let alice = cache.get("alice", None).expect("kept");
        assert_eq!(alice.user.map(|r| r.version), Some(3));
        // The source was never read: not enough for a verification from it.
        assert_eq!(cache.get("alice", Some("192.0.2.1")), None);
        cache.put_source("192.0.2.1", None);
        let both = cache.get("alice", Some("192.0.2.1")).expect("both kept");
        assert_eq!(both.source, None);
        // Nobody of that name: kept as such.
        cache.put_user("mallory", None);
        assert_eq!(
            cache.get("mallory", None),
            Some(Rows {
                user: None,
                source: None
            })
        );
        cache.forget("alice", Some("192.0.2.1"));
        assert_eq!(cache.get("alice", None), None);
        assert!(cache.get("mallory", Some("192.0.2.1")).is_none());
        assert!(cache.get("mallory", None).is_some());
    }

    #[test]
    fn a_full_cache_forgets_one_row_for_each_new_one() {
        let cache = ReadCache::default();
        for i in 0..MAX_ROWS + 10 {
            cache.put_user(&format!("u{i}"), Some(row("u", 1)));
        }
        let newest = format!("u{}", MAX_ROWS + 9);
        let kept = |cache: &ReadCache| cache.0.lock().expect("lock").users.len();
        assert_eq!(kept(&cache), MAX_ROWS);
        assert!(cache.get(&newest, None).is_some());
        // A row replaced forgets nothing else.
        cache.put_user(&newest, Some(row("u", 2)));
        assert_eq!(kept(&cache), MAX_ROWS);
        assert_eq!(
            cache
                .get(&newest, None)
                .and_then(|r| r.user)
                .map(|r| r.version),
            Some(2)
        );
    }
}
