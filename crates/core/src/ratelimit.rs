//! Failure counting and lockout, as plain data the engine keeps in the store.
//!
//! Failures are counted per (user, source address) in the user's record and per source
//! address in its own small file, so the state holds across sshd processes. Locking the pair,
//! not the user, means an attacker who knows a user name cannot lock its owner out from
//! elsewhere (google-authenticator's RATE_LIMIT locks the user itself, and counts successes
//! too). Only failures count; a success clears its pair.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::RateLimit;

/// Failures in the current counting window, and a lock if one is in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureCount {
    /// Failures since `first`.
    pub count: u32,
    /// When the counting window began (Unix seconds).
    pub first: u64,
    /// Locked until this time (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<u64>,
}

impl FailureCount {
    /// The end of the lock in force at `now`, if any.
    pub fn locked(&self, now: u64) -> Option<u64> {
        self.locked_until.filter(|until| now < *until)
    }

    /// Whether nothing is left worth keeping at `now` (window over, no lock in force).
    pub fn expired(&self, now: u64, limits: &RateLimit) -> bool {
        self.locked(now).is_none() && now.saturating_sub(self.first) >= limits.within.as_secs()
    }

    /// Counts one failure at `now`; locks when `max` is reached within the window. Returns
    /// the new count.
    pub fn record(&mut self, now: u64, max: u32, limits: &RateLimit) -> u32 {
        if self.expired(now, limits) || self.locked_until.is_some_and(|u| now >= u) {
            *self = Self {
                count: 0,
                first: now,
                locked_until: None,
            };
        }
        self.count = self.count.saturating_add(1);
        if max > 0 && self.count >= max {
            self.locked_until = Some(now.saturating_add(limits.lockout.as_secs()));
        }
        self.count
    }
}

/// The pause before answering the `count`th failure: `delay`, doubling each time, at most 8×.
pub fn delay_after(count: u32, limits: &RateLimit) -> Duration {
    if !limits.enabled || count == 0 {
        return Duration::ZERO;
    }
    limits.delay.saturating_mul(1 << (count - 1).min(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimit {
        RateLimit {
            max_failures: 3,
            within: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            ..RateLimit::default()
        }
    }

    #[test]
    fn locks_after_max_within_the_window_and_releases_after_lockout() {
        let l = limits();
        let mut f = FailureCount::default();
        assert_eq!(f.record(1000, 3, &l), 1);
        assert_eq!(f.record(1010, 3, &l), 2);
        assert_eq!(f.locked(1010), None);
        assert_eq!(f.record(1020, 3, &l), 3);
        assert_eq!(f.locked(1020), Some(1320));
        assert_eq!(f.locked(1319), Some(1320));
        assert_eq!(f.locked(1320), None);
        // After the lock, counting starts again.
        assert_eq!(f.record(1321, 3, &l), 1);
    }

    #[test]
    fn failures_spread_beyond_the_window_never_lock() {
        let l = limits();
        let mut f = FailureCount::default();
        for i in 0..10 {
            f.record(1000 + i * 61, 3, &l);
            assert_eq!(f.locked(1000 + i * 61), None);
        }
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let l = limits();
        let secs: Vec<u64> = (0..6).map(|n| delay_after(n, &l).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 8]);
    }
}
