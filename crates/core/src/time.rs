//! Time as the engine sees it: whole Unix seconds, always passed in by the caller.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch. Tests pass any value; front ends pass [`UnixTime::now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The system clock, or the epoch if the clock is before it (TOTP then fails, loudly,
    /// rather than panicking).
    pub fn now() -> Self {
        Self(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
    }

    /// RFC 3339 in UTC, for people.
    pub fn to_rfc3339(self) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(self.0))
            .to_string()
    }
}
