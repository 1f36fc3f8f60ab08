//! Offline logins (docs/server.md, "Offline logins"): what a host keeps to accept a user's
//! codes while no server answers, without ever holding the secret, and how it tells the server
//! afterwards what it let in.
//!
//! - `POST /v1/offline` ([`OfflineRequest`] → [`OfflineMaterial`]): right after the server
//!   allowed a user's login from a host, the host asks for salted hashes of that user's coming
//!   codes: TOTP codes for a bounded window, the next HOTP counters, and its unused backup
//!   codes.
//! - `POST /v1/report` ([`ReportRequest`] → [`ReportResponse`]): the offline uses and the
//!   `failmode` decisions, queued by the host, sent when a server answers again; each has an
//!   id so a resend is not counted twice.
//! - `GET /v1/audit` ([`AuditFilter`] → [`AuditLines`]): the server's audit of the asking
//!   host, for `sshield log` on a fleet host.
//!
//! # The hashes, honestly
//!
//! A 6-digit code has a million values: whatever the hash, whoever reads a slot's hash finds
//! its code in a million tries. So the hashes do not hide a slot's code from root on the host;
//! what they bound is what one stolen file gives. Every slot's input holds its counter and the
//! authenticator's name, and every file its own random salt (fresh per host, per user, per
//! issue), so nothing is precomputed across slots, users or hosts, and a file holds only the
//! codes of its window: the secret, and every code after the window, stay on the server.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The path a host fetches a user's offline material at.
pub const OFFLINE_PATH: &str = "/v1/offline";
/// The path a host reports offline uses and `failmode` decisions at.
pub const REPORT_PATH: &str = "/v1/report";
/// The path a host reads its own audit entries at.
pub const AUDIT_PATH: &str = "/v1/audit";

/// Most reports in one request; a host with more sends them in turns.
pub const MAX_REPORTS: usize = 100;

/// The outcome of an offline use in the audit log.
pub const OUTCOME_OFFLINE: &str = "offline";
/// The outcome of a `failmode` decision in the audit log.
pub const OUTCOME_FAILMODE: &str = "failmode";

/// Hex digits kept of each hash: 128 bits.
const HASH_HEX: usize = 32;

/// `POST /v1/offline`: the material to accept `user`'s codes offline.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineRequest {
    /// The login name (the server allowed their login from this host just now).
    pub user: String,
    /// How far ahead, in seconds, the host asks for (its `offline_window`); the server gives
    /// at most its own `offline_max_window`.
    pub window_secs: u64,
}

/// The material: hashes only, never a secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OfflineMaterial {
    /// Whose.
    pub user: String,
    /// This random salt, hex: fresh for each host, user and fetch.
    pub salt: String,
    /// When the server made it (Unix seconds).
    pub issued: i64,
    /// When it stops counting (Unix seconds); the host drops it then.
    pub expires: i64,
    /// One entry per active authenticator.
    pub tokens: Vec<OfflineToken>,
    /// The salt of the user's backup code set (what [`backup_hash`] hashes with first).
    pub backup_salt: String,
    /// The unused backup codes, as [`backup_hash`]es.
    pub backup: Vec<String>,
}

/// The coming codes of one authenticator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OfflineToken {
    /// The authenticator's name on the server.
    pub authenticator: String,
    /// `totp` or `hotp`.
    pub kind: String,
    /// TOTP: the period in seconds (0 for HOTP).
    pub period: u64,
    /// TOTP: the steps either side of now a code is good for (the engine's `window`).
    pub window: u64,
    /// TOTP: the drift the server learned for this authenticator, in steps.
    pub drift: i64,
    /// The slots, by counter (TOTP: the time step), each with [`code_hash`].
    pub slots: Vec<OfflineSlot>,
}

/// One counter's code, hashed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OfflineSlot {
    /// The TOTP step or HOTP counter.
    pub counter: u64,
    /// [`code_hash`] of its code.
    pub hash: String,
}

/// The hash of the code `code` of `authenticator` at `counter`, under `salt`: the counter and
/// the name in the input make each slot its own puzzle.
pub fn code_hash(salt: &str, authenticator: &str, counter: u64, code: &str) -> String {
    digest(&[
        "sshield-offline-code-v1",
        salt,
        authenticator,
        &counter.to_string(),
        code,
    ])
}

/// The hash of a backup code whose stored hash (core's, under the set's salt) is `stored`,
/// under this issue's `salt`.
pub fn backup_hash(salt: &str, stored: &str) -> String {
    digest(&["sshield-offline-backup-v1", salt, stored])
}

fn digest(fields: &[&str]) -> String {
    let mut h = Sha256::new();
    for field in fields {
        h.update(field.as_bytes());
        h.update(b"\n");
    }
    let mut hex = data_encoding::HEXLOWER.encode(&h.finalize());
    hex.truncate(HASH_HEX);
    hex
}

/// `POST /v1/report`: what a host decided while no server answered.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// At most [`MAX_REPORTS`].
    pub reports: Vec<Report>,
}

/// One offline use or `failmode` decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The host's id for it, 16 to 64 characters of `[A-Za-z0-9_-]`: the server counts each
    /// id of a host once, so a resend changes nothing.
    pub id: String,
    /// When it was decided (Unix seconds).
    pub time: i64,
    /// The user.
    pub user: String,
    /// The client's address, as the host saw it.
    #[serde(default)]
    pub source: Option<String>,
    /// The PAM service or front end.
    pub service: String,
    /// [`OUTCOME_OFFLINE`] or [`OUTCOME_FAILMODE`].
    pub outcome: String,
    /// Offline: `totp`, `hotp` or `backup`.
    #[serde(default)]
    pub method: Option<String>,
    /// Failmode: `failmode-safe` (let in) or `unreachable` (denied).
    #[serde(default)]
    pub reason: Option<String>,
    /// Offline TOTP/HOTP: the authenticator whose code was used.
    #[serde(default)]
    pub authenticator: Option<String>,
    /// Offline TOTP/HOTP: its counter, which the server marks used.
    #[serde(default)]
    pub counter: Option<u64>,
    /// Offline backup: the code's stored hash, which the server marks used.
    #[serde(default)]
    pub backup: Option<String>,
}

/// The answer to a report.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportResponse {
    /// Reports counted now.
    pub recorded: u64,
    /// Reports this host sent before (counted then).
    pub duplicate: u64,
}

/// `GET /v1/audit`'s query: the same filters as `sshield-server audit` and `sshield log`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Only this user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only those of the last this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Only those that did not let the user in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// At most this many, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl AuditFilter {
    /// The earliest time to show at `now` (Unix seconds), if `since` is set.
    pub fn cutoff(&self, now: i64) -> Option<i64> {
        self.since
            .map(|span| now.saturating_sub(i64::try_from(span).unwrap_or(i64::MAX)))
    }

    /// The query string (without `?`), as the host sends it: names and values are plain
    /// words, so nothing needs escaping but the user, which [`valid_query_word`] bounds.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(user) = &self.user {
            parts.push(format!("user={user}"));
        }
        if let Some(since) = self.since {
            parts.push(format!("since={since}"));
        }
        if self.failed {
            parts.push("failed=true".to_owned());
        }
        if let Some(limit) = self.limit {
            parts.push(format!("limit={limit}"));
        }
        parts.join("&")
    }
}

/// Whether `word` goes into a query string as it is (a user name does).
pub fn valid_query_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// One audit entry as `GET /v1/audit` answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditLine {
    /// Unix seconds.
    pub time: i64,
    /// The host that asked (always the asking host).
    pub host: String,
    /// The user.
    pub user: String,
    /// The client's address.
    pub source: Option<String>,
    /// The PAM service or front end.
    pub service: String,
    /// How the user passed.
    pub method: Option<String>,
    /// `allowed`, `denied`, `offline` or `failmode`.
    pub outcome: String,
    /// Why.
    pub reason: Option<String>,
}

/// The answer to `GET /v1/audit`, newest first.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditLines {
    /// The entries.
    pub entries: Vec<AuditLine>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slot_and_salt_hashes_apart() {
        let a = code_hash("aa", "phone", 7, "123456");
        assert_eq!(a.len(), HASH_HEX);
        assert_eq!(a, code_hash("aa", "phone", 7, "123456"));
        for other in [
            code_hash("ab", "phone", 7, "123456"),
            code_hash("aa", "phone", 8, "123456"),
            code_hash("aa", "tablet", 7, "123456"),
            code_hash("aa", "phone", 7, "123457"),
            backup_hash("aa", "123456"),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn the_audit_filter_as_a_query() {
        let filter = AuditFilter {
            user: Some("alice".into()),
            since: Some(3600),
            failed: true,
            limit: None,
        };
        assert_eq!(filter.to_query(), "user=alice&since=3600&failed=true");
        assert_eq!(filter.cutoff(10_000), Some(6400));
        assert_eq!(AuditFilter::default().to_query(), "");
        assert!(valid_query_word("alice.b-c_d"));
        assert!(!valid_query_word("a&b") && !valid_query_word(""));
    }
}
