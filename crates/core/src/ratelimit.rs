//! Failure counting and lockout, as plain data the engine keeps in the store: per user, a
//! bucket for each *familiar* source and one shared by every other source; per source, over
//! all users, one bounded table.
//!
//! The design (docs/ratelimit.md has it in full, with the arithmetic) follows Microsoft
//! Entra's smart lockout: failures from where the user usually logs in and failures from
//! anywhere else are counted apart, so a guesser elsewhere cannot lock the owner out of home,
//! and cannot win more guesses by moving: every unfamiliar source, IPv4 or IPv6, shares one
//! budget per user. A source is *familiar* once the user has passed a second factor from it;
//! the user's record keeps the `familiar_sources` most recent. IPv6 sources are counted per
//! prefix (`ipv6_prefix`, /64 by default), since anyone holds a whole /64.
//!
//! Every piece of state is bounded whatever attackers do: a user's buckets are at most the
//! familiar sources plus `local` and `unfamiliar`, and the per-source table keeps at most
//! [`MAX_SOURCES`] entries, pruned on every write. (Before this, each new address added an
//! entry to the user's state until the state was too large to write, and from then on a
//! failure was neither counted nor delayed.)

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::address::canonical;
use crate::de;

/// The bucket of failures from sources the user has never passed a second factor from.
pub const UNFAMILIAR: &str = "unfamiliar";
/// The bucket of failures with no remote source at all (console, `su`, `sudo`,
/// `sshield verify`). A remote source never counts here, even when sshd names it.
pub const LOCAL: &str = "local";
/// The most sources the per-source table keeps; past it, the least severe are forgotten
/// (the per-user budgets still hold, so forgetting costs a guesser's address only its delay).
pub const MAX_SOURCES: usize = 1024;
/// The long counting window of `max_failures_per_day`.
pub const DAY: u64 = 24 * 60 * 60;
/// Host names from `PAM_RHOST` are cut to this many bytes in keys (a DNS name is at most 253).
const MAX_NAME: usize = 253;

/// Failure counting and lockout (docs/ratelimit.md): per user, one budget for each familiar
/// source and one shared by all other sources, so moving between addresses wins a guesser
/// nothing and a guesser elsewhere cannot lock the owner out of home; per source, over all
/// users, so one address cannot try many users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Counting on or off.
    pub enabled: bool,
    /// Failures of one user within `within`, in one bucket (a familiar source, all unfamiliar
    /// sources together, or local logins), that lock that bucket for `lockout`.
    pub max_failures: u32,
    /// Failures of one user in one bucket within a day that lock the bucket until that day's
    /// window ends; 0 turns the daily budget off.
    pub max_failures_per_day: u32,
    /// Failures from one address, over all users, within `within` that lock the address (for
    /// logins from sources the user is not familiar with that have not shown a first factor).
    pub source_max_failures: u32,
    /// The counting window.
    #[serde(deserialize_with = "de::duration")]
    pub within: Duration,
    /// How long a lock lasts.
    #[serde(deserialize_with = "de::duration")]
    pub lockout: Duration,
    /// The delay after the first failure; it doubles with each further one, up to 8 times.
    #[serde(deserialize_with = "de::duration")]
    pub delay: Duration,
    /// How many sources a user passed from recently are *familiar*, each with its own budget.
    pub familiar_sources: u32,
    /// IPv6 sources are counted per network of this many bits (anyone holds a whole /64).
    pub ipv6_prefix: u8,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: 5,
            max_failures_per_day: 20,
            source_max_failures: 20,
            within: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            delay: Duration::from_secs(1),
            familiar_sources: 8,
            ipv6_prefix: 64,
        }
    }
}

/// Where a login comes from, as the rate limit counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// No remote source: a console, `su`, `sudo`, `sshield verify`.
    Local,
    /// A remote source: an IPv4 address, an IPv6 prefix, or a host name when that is all the
    /// front end was told.
    Remote(String),
}

impl Origin {
    /// The origin of a login from `source` (an address) or, failing that, `name` (what sshd
    /// put in `PAM_RHOST` with `UseDNS yes`); local only when there is neither.
    pub fn of(source: Option<IpAddr>, name: Option<&str>, limits: &RateLimit) -> Self {
        match (source, name.map(str::trim).filter(|n| !n.is_empty())) {
            (Some(address), _) => Self::Remote(source_key(address, limits.ipv6_prefix)),
            (None, Some(name)) => {
                let mut end = name.len().min(MAX_NAME);
                while !name.is_char_boundary(end) {
                    end -= 1;
                }
                Self::Remote(format!("name:{}", &name[..end]))
            }
            (None, None) => Self::Local,
        }
    }

    /// The per-source table's key, for a remote origin.
    pub fn remote(&self) -> Option<&str> {
        match self {
            Self::Local => None,
            Self::Remote(key) => Some(key),
        }
    }
}

/// The key of an address: an IPv4 address as is (IPv4-mapped IPv6 counts as IPv4), an IPv6
/// address as its `prefix`-bit network (`2001:db8:1:2::/64`).
pub fn source_key(address: IpAddr, prefix: u8) -> String {
    match canonical(address) {
        IpAddr::V6(v6) if prefix < 128 => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            format!("{}/{prefix}", std::net::Ipv6Addr::from(bits & mask))
        }
        other => other.to_string(),
    }
}

/// Failures in the current counting windows, and a lock if one is in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureCount {
    /// Failures since `first`.
    pub count: u32,
    /// When the short counting window (`within`) began (Unix seconds).
    pub first: u64,
    /// Locked until this time (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<u64>,
    /// Failures since `day_first`, for `max_failures_per_day` (0 where that is off).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub day_count: u32,
    /// When the day's window began (Unix seconds).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub day_first: u64,
}

impl FailureCount {
    /// The end of the lock in force at `now`, if any.
    pub fn locked(&self, now: u64) -> Option<u64> {
        self.locked_until.filter(|until| now < *until)
    }

    /// Whether nothing is left worth keeping at `now` (both windows over, no lock in force).
    pub fn expired(&self, now: u64, limits: &RateLimit) -> bool {
        self.locked(now).is_none()
            && now.saturating_sub(self.first) >= limits.within.as_secs()
            && (self.day_count == 0 || now.saturating_sub(self.day_first) >= DAY)
    }

    /// Counts one failure at `now`. Locks when `max` failures fall within `within`, or
    /// `day_max` within a day (until that day's window ends); 0 turns either off. A failure
    /// during a lock is counted (it lengthens the delay) but does not lengthen the lock.
    /// Returns the count in the short window.
    pub fn record(&mut self, now: u64, max: u32, day_max: u32, limits: &RateLimit) -> u32 {
        let locked = self.locked(now).is_some();
        if !locked
            && (self.locked_until.is_some()
                || now.saturating_sub(self.first) >= limits.within.as_secs())
        {
            self.count = 0;
            self.first = now;
            self.locked_until = None;
        }
        if day_max == 0 {
            self.day_count = 0;
            self.day_first = 0;
        } else if self.day_count == 0 || now.saturating_sub(self.day_first) >= DAY {
            self.day_count = 0;
            self.day_first = now;
        }
        self.count = self.count.saturating_add(1);
        if day_max > 0 {
            self.day_count = self.day_count.saturating_add(1);
        }
        if !locked {
            if max > 0 && self.count >= max {
                self.locked_until = Some(now.saturating_add(limits.lockout.as_secs()));
            }
            if day_max > 0 && self.day_count >= day_max {
                let day_end = self.day_first.saturating_add(DAY);
                self.locked_until = Some(self.locked_until.map_or(day_end, |u| u.max(day_end)));
            }
        }
        self.count
    }

    /// How bad this entry is, for choosing what to forget first: a lock in force, then the
    /// most failures, then the most recent.
    fn severity(&self, now: u64) -> (bool, u32, u32, u64) {
        (
            self.locked(now).is_some(),
            self.day_count,
            self.count,
            self.first,
        )
    }
}

/// A user's failure buckets and familiar sources, as kept in the record's `[usage]`.
#[derive(Debug)]
pub struct UserLimits<'a> {
    /// Failures per bucket: a familiar source's key, [`LOCAL`] or [`UNFAMILIAR`].
    pub failures: &'a mut BTreeMap<String, FailureCount>,
    /// Familiar sources and when the user last passed from each (Unix seconds).
    pub familiar: &'a mut BTreeMap<String, u64>,
}

impl UserLimits<'_> {
    /// The bucket a login from `origin` counts in.
    pub fn bucket(&self, origin: &Origin) -> String {
        match origin {
            Origin::Local => LOCAL.to_owned(),
            Origin::Remote(key) if self.familiar.contains_key(key) => key.clone(),
            Origin::Remote(_) => UNFAMILIAR.to_owned(),
        }
    }

    /// Whether `origin` is a source the user has passed from.
    pub fn is_familiar(&self, origin: &Origin) -> bool {
        origin
            .remote()
            .is_some_and(|k| self.familiar.contains_key(k))
    }

    /// The lock on `origin`'s bucket in force at `now`, if any.
    pub fn locked(&self, origin: &Origin, now: u64) -> Option<u64> {
        self.failures
            .get(&self.bucket(origin))
            .and_then(|f| f.locked(now))
    }

    /// Counts a failure from `origin`; returns the bucket's count.
    pub fn failed(&mut self, origin: &Origin, now: u64, limits: &RateLimit) -> u32 {
        let bucket = self.bucket(origin);
        self.prune(now, limits);
        self.failures.entry(bucket).or_default().record(
            now,
            limits.max_failures,
            limits.max_failures_per_day,
            limits,
        )
    }

    /// A second factor passed from `origin`: its source becomes (or stays) familiar and its
    /// own bucket is cleared. The unfamiliar bucket is left as it is: the owner passing from
    /// a new place must not give a guesser elsewhere a fresh budget.
    pub fn succeeded(&mut self, origin: &Origin, now: u64, limits: &RateLimit) {
        match origin {
            Origin::Local => {
                self.failures.remove(LOCAL);
            }
            Origin::Remote(key) => {
                self.failures.remove(key);
                if limits.familiar_sources > 0 {
                    self.familiar.insert(key.clone(), now);
                }
            }
        }
        self.prune(now, limits);
    }

    /// Keeps the state bounded: the `familiar_sources` most recent familiar sources, and
    /// only the buckets that can still matter (an unexpired one of [`LOCAL`],
    /// [`UNFAMILIAR`] or a familiar source). Entries from older versions, keyed by any
    /// address, go here.
    pub fn prune(&mut self, now: u64, limits: &RateLimit) {
        keep_newest(self.familiar, limits.familiar_sources as usize, |t| *t);
        let familiar = &*self.familiar;
        self.failures.retain(|key, f| {
            (key == LOCAL || key == UNFAMILIAR || familiar.contains_key(key))
                && !f.expired(now, limits)
        });
    }
}

/// Removes entries from `map` until at most `keep` are left, the ones with the smallest
/// `rank` first.
pub fn keep_newest<V, R: Ord>(map: &mut BTreeMap<String, V>, keep: usize, rank: impl Fn(&V) -> R) {
    while map.len() > keep {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| rank(v))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

/// Failures per source over all users: `.sources/table.toml` in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    /// Per source key ([`Origin::Remote`]).
    #[serde(default)]
    pub sources: BTreeMap<String, FailureCount>,
}

impl SourceTable {
    /// The lock on `key` in force at `now`, if any.
    pub fn locked(&self, key: &str, now: u64) -> Option<u64> {
        self.sources.get(key).and_then(|f| f.locked(now))
    }

    /// Counts a failure from `key`, after forgetting what has expired and, past
    /// [`MAX_SOURCES`], the least severe entries. Returns the source's count.
    pub fn failed(&mut self, key: &str, now: u64, limits: &RateLimit) -> u32 {
        self.sources.retain(|_, f| !f.expired(now, limits));
        if !self.sources.contains_key(key) {
            keep_newest(&mut self.sources, MAX_SOURCES - 1, |f| f.severity(now));
        }
        self.sources.entry(key.to_owned()).or_default().record(
            now,
            limits.source_max_failures,
            0,
            limits,
        )
    }
}

/// The pause before answering the `count`th failure: `delay`, doubling each time, at most 8×.
pub fn delay_after(count: u32, limits: &RateLimit) -> Duration {
    if !limits.enabled || count == 0 {
        return Duration::ZERO;
    }
    limits.delay.saturating_mul(1 << (count - 1).min(3))
}

/// The longest delay, for a failure whose counting could not be written: a broken store must
/// never mean "no count and no delay".
pub fn longest_delay(limits: &RateLimit) -> Duration {
    delay_after(u32::MAX, limits)
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimit {
        RateLimit {
            max_failures: 3,
            max_failures_per_day: 0,
            within: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            ..RateLimit::default()
        }
    }

    #[test]
    fn locks_after_max_within_the_window_and_releases_after_lockout() {
        let l = limits();
        let mut f = FailureCount::default();
        assert_eq!(f.record(1000, 3, 0, &l), 1);
        assert_eq!(f.record(1010, 3, 0, &l), 2);
        assert_eq!(f.locked(1010), None);
        assert_eq!(f.record(1020, 3, 0, &l), 3);
        assert_eq!(f.locked(1020), Some(1320));
        // A failure during the lock counts, and does not lengthen it.
        assert_eq!(f.record(1100, 3, 0, &l), 4);
        assert_eq!(f.locked(1319), Some(1320));
        assert_eq!(f.locked(1320), None);
        // After the lock, counting starts again.
        assert_eq!(f.record(1321, 3, 0, &l), 1);
    }

    #[test]
    fn failures_spread_beyond_the_window_never_lock_without_a_daily_budget() {
        let l = limits();
        let mut f = FailureCount::default();
        for i in 0..10 {
            f.record(1000 + i * 61, 3, 0, &l);
            assert_eq!(f.locked(1000 + i * 61), None);
        }
    }

    #[test]
    fn the_daily_budget_catches_a_guesser_who_stays_under_the_short_limit() {
        let l = limits();
        let mut f = FailureCount::default();
        // Two failures a window, never three: 10 of them lock until the day's window ends.
        let mut now = 1000;
        for i in 1..=10u64 {
            f.record(now, 3, 10, &l);
            let expect = (i == 10).then_some(1000 + DAY);
            assert_eq!(f.locked(now), expect, "failure {i}");
            now += if i % 2 == 0 { 61 } else { 1 };
        }
        assert!(!f.expired(1000 + DAY - 1, &l));
        assert!(f.expired(1000 + DAY, &l));
    }

    #[test]
    fn ipv6_counts_per_prefix_and_ipv4_per_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(source_key(a, 64), "2001:db8:1:2::/64");
        assert_eq!(source_key(a, 64), source_key(b, 64));
        assert_eq!(source_key(a, 48), "2001:db8:1::/48");
        assert_eq!(source_key(a, 128), "2001:db8:1:2:aaaa::1");
        assert_eq!(source_key(a, 0), "::/0");
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(source_key(v4, 64), "203.0.113.7");
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(source_key(mapped, 64), "203.0.113.7");
    }

    #[test]
    fn a_named_source_is_remote_never_local() {
        let l = RateLimit::default();
        assert_eq!(Origin::of(None, None, &l), Origin::Local);
        assert_eq!(Origin::of(None, Some(" "), &l), Origin::Local);
        assert_eq!(
            Origin::of(None, Some("evil.example.org"), &l),
            Origin::Remote("name:evil.example.org".into())
        );
        let long = "é".repeat(300);
        let Origin::Remote(key) = Origin::of(None, Some(&long), &l) else {
            panic!()
        };
        assert!(key.len() <= 5 + MAX_NAME);
    }

    #[test]
    fn the_source_table_stays_bounded() {
        let l = RateLimit::default();
        let mut t = SourceTable::default();
        for i in 0..(MAX_SOURCES as u32 + 500) {
            t.failed(
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                1000,
                &l,
            );
        }
        assert_eq!(t.sources.len(), MAX_SOURCES);
        // The newest is kept.
        assert!(t.sources.contains_key("10.0.5.243"));
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let l = limits();
        let secs: Vec<u64> = (0..6).map(|n| delay_after(n, &l).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 8]);
        assert_eq!(longest_delay(&l).as_secs(), 8);
    }
}
