//! Who must pass a second factor: exempt users, groups and networks, required groups, what
//! happens to users who are not enrolled, and remembered sources.
//!
//! One config line replaces what the seed posts do with `Match Address` blocks in sshd_config
//! and `pam_access` rules, and Duo's `groups`.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

pub use crate::address::canonical;
use crate::de;
use crate::first_factor::FirstFactor;
use crate::record::{UserRecord, UserState};

/// Who must use a second factor, and how codes are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Source networks that never need a second factor (the LAN, a VPN).
    #[serde(deserialize_with = "de::networks")]
    pub exempt_networks: Vec<IpNet>,
    /// If not empty, only members of these groups must use a second factor.
    pub require_groups: Vec<String>,
    /// Members of these groups never need one.
    pub exempt_groups: Vec<String>,
    /// These users never need one.
    pub exempt_users: Vec<String>,
    /// Logins whose first factor used one of these SSH methods (`publickey`, `password`,
    /// `keyboard-interactive`...) need none. Needs sshd's `ExposeAuthInfo yes`; without it
    /// nothing is exempted.
    pub exempt_methods: Vec<String>,
    /// Users who must use a second factor but are not enrolled.
    pub unenrolled: Unenrolled,
    /// With `unenrolled = "deny"`: let unenrolled users in anyway until the end of this day
    /// (UTC), a grace period while people enroll.
    #[serde(deserialize_with = "de::optional_date")]
    pub allow_until: Option<u64>,
    /// TOTP steps accepted either side of the current one (1 = ±30 s for 30 s tokens).
    pub window: u64,
    /// HOTP counters accepted beyond the next expected one (the token was pressed unused).
    pub hotp_lookahead: u64,
    /// The most clock drift, in steps, sshield will learn and follow for one token (codes are
    /// checked around the learned drift and around real time).
    pub max_drift: u64,
    /// After a good second factor, don't ask the same user from the same address again for
    /// this long. Zero (the default) asks every time.
    #[serde(deserialize_with = "de::duration")]
    pub remember: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            exempt_networks: Vec::new(),
            require_groups: Vec::new(),
            exempt_groups: Vec::new(),
            exempt_users: Vec::new(),
            exempt_methods: Vec::new(),
            unenrolled: Unenrolled::Deny,
            allow_until: None,
            window: 1,
            hotp_lookahead: 10,
            max_drift: 20,
            remember: Duration::ZERO,
        }
    }
}

/// What happens to a user who must use a second factor but has no active record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unenrolled {
    /// Refuse them (after a prompt, so the prompt never tells who is enrolled).
    Deny,
    /// Let them in without a second factor, logged.
    Allow,
}

/// Whether a login must pass a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Let it through without asking, for this reason (logged).
    Exempt(Exemption),
    /// Ask for a code, and let the engine check it.
    Prompt,
}

/// Why a login needs no code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exemption {
    /// Listed in `exempt_users`.
    User,
    /// From a network in `exempt_networks`.
    Network,
    /// The first factor used a method in `exempt_methods`.
    Method,
    /// In one of `exempt_groups`.
    Group,
    /// `require_groups` is set and the user is in none of them.
    NotRequired,
    /// Passed a second factor from this address within `remember`.
    Remembered,
    /// Not enrolled, and `unenrolled = "allow"`.
    Unenrolled,
    /// Not enrolled, within the `allow_until` grace period.
    UnenrolledGrace,
    /// No fleet server could be reached and `failmode = "safe"`: let through, logged loudly.
    Failmode,
}

impl Exemption {
    /// The stable word used in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Network => "network",
            Self::Method => "first-factor",
            Self::Group => "group",
            Self::NotRequired => "not-in-required-group",
            Self::Remembered => "remembered",
            Self::Unenrolled => "unenrolled-allowed",
            Self::UnenrolledGrace => "unenrolled-grace",
            Self::Failmode => "failmode-safe",
        }
    }
}

/// The exemptions that need only the user name and source address, checked first.
pub(crate) fn by_identity(
    policy: &Policy,
    user: &str,
    source: Option<IpAddr>,
) -> Option<Exemption> {
    if policy.exempt_users.iter().any(|u| u == user) {
        return Some(Exemption::User);
    }
    let source = source.map(canonical)?;
    policy
        .exempt_networks
        .iter()
        .any(|net| net.contains(&source))
        .then_some(Exemption::Network)
}

/// The first-factor rule: exempt if sshd says an `exempt_methods` method was passed.
pub(crate) fn by_first_factor(policy: &Policy, first: Option<&FirstFactor>) -> Option<Exemption> {
    let first = first?;
    first
        .methods
        .iter()
        .any(|m| policy.exempt_methods.contains(m))
        .then_some(Exemption::Method)
}

/// Whether group rules need the user's groups at all (an NSS lookup is skipped if not).
pub(crate) fn needs_groups(policy: &Policy) -> bool {
    !policy.exempt_groups.is_empty() || !policy.require_groups.is_empty()
}

/// The group rules, given the user's groups (`None`: no such user, who gets no exemption, so a
/// made-up name is prompted exactly like a real one).
pub(crate) fn by_groups(policy: &Policy, groups: Option<&[String]>) -> Option<Exemption> {
    let groups = groups?;
    let member = |list: &[String]| groups.iter().any(|g| list.contains(g));
    if member(&policy.exempt_groups) {
        return Some(Exemption::Group);
    }
    if !policy.require_groups.is_empty() && !member(&policy.require_groups) {
        return Some(Exemption::NotRequired);
    }
    None
}

/// Whether [`by_record`] can exempt anyone under `policy`: only when unenrolled users may be
/// let in, or successes are remembered. Otherwise the record need not be read to decide
/// whether to prompt.
pub(crate) fn needs_record(policy: &Policy) -> bool {
    policy.unenrolled == Unenrolled::Allow
        || policy.allow_until.is_some()
        || !policy.remember.is_zero()
}

/// The rules that need the user's record: unenrolled users and remembered sources.
/// `record` is `None` when there is none.
pub(crate) fn by_record(
    policy: &Policy,
    record: Option<&UserRecord>,
    source: Option<IpAddr>,
    now: u64,
) -> Option<Exemption> {
    let enrolled = record.filter(|r| r.state() != UserState::Pending);
    let Some(record) = enrolled else {
        return match (policy.unenrolled, policy.allow_until) {
            (Unenrolled::Allow, _) => Some(Exemption::Unenrolled),
            (Unenrolled::Deny, Some(until)) if now <= until => Some(Exemption::UnenrolledGrace),
            (Unenrolled::Deny, _) => None,
        };
    };
    if record.state() == UserState::Disabled || policy.remember.is_zero() {
        return None;
    }
    let key = source_key(source?);
    record
        .usage
        .remembered
        .get(&key)
        .is_some_and(|until| now < *until)
        .then_some(Exemption::Remembered)
}

/// The key under which per-address state is kept: the canonical address as text.
pub(crate) fn source_key(source: IpAddr) -> String {
    canonical(source).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        crate::Config::parse(text, std::path::Path::new("/t.toml"))
            .unwrap()
            .policy
    }

    #[test]
    fn networks_match_v4_v6_and_mapped_addresses() {
        let p = policy(
            "[policy]\nexempt_networks = [\"192.168.0.0/16\", \"fd00::/8\", \"10.0.0.7\"]\n",
        );
        for (addr, exempt) in [
            ("192.168.3.4", true),
            ("::ffff:192.168.3.4", true),
            ("192.169.0.1", false),
            ("fd12::1", true),
            ("fe80::1", false),
            ("10.0.0.7", true),
            ("10.0.0.8", false),
        ] {
            let got = by_identity(&p, "alice", Some(addr.parse().unwrap()));
            assert_eq!(got.is_some(), exempt, "{addr}");
        }
        assert_eq!(
            by_identity(&p, "alice", None),
            None,
            "an unknown source is never exempt"
        );
    }

    #[test]
    fn groups() {
        let p = policy("[policy]\nrequire_groups = [\"admins\"]\nexempt_groups = [\"robots\"]\n");
        let g = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(by_groups(&p, Some(&g(&["admins"]))), None);
        assert_eq!(
            by_groups(&p, Some(&g(&["admins", "robots"]))),
            Some(Exemption::Group)
        );
        assert_eq!(
            by_groups(&p, Some(&g(&["users"]))),
            Some(Exemption::NotRequired)
        );
        assert_eq!(by_groups(&p, None), None, "unknown users are prompted");
    }

    #[test]
    fn the_record_is_read_only_when_a_record_rule_can_exempt() {
        assert!(!needs_record(&policy("")));
        assert!(needs_record(&policy("[policy]\nunenrolled = \"allow\"\n")));
        assert!(needs_record(&policy(
            "[policy]\nallow_until = 2026-12-31\n"
        )));
        assert!(needs_record(&policy("[policy]\nremember = \"1h\"\n")));
    }

    #[test]
    fn unenrolled_policies() {
        let deny = policy("");
        assert_eq!(by_record(&deny, None, None, 0), None);
        let allow = policy("[policy]\nunenrolled = \"allow\"\n");
        assert_eq!(
            by_record(&allow, None, None, 0),
            Some(Exemption::Unenrolled)
        );
        let grace = policy("[policy]\nallow_until = 2026-12-31\n");
        let end = 1798761599; // 2026-12-31T23:59:59Z
        assert_eq!(
            by_record(&grace, None, None, end),
            Some(Exemption::UnenrolledGrace)
        );
        assert_eq!(by_record(&grace, None, None, end + 1), None);
        let pending = UserRecord::new("alice", 0);
        assert_eq!(by_record(&deny, Some(&pending), None, 0), None);
    }
}
