//! The auth engine: the one place that decides whether a second factor is good.
//!
//! Every front end (PAM module, `sshield verify`, the login helper through the daemon, the
//! server) builds an [`Attempt`] and calls [`Engine::decide`]. The engine reads the user's
//! record under its lock, tries the response against every active authenticator and then the
//! backup codes, applies the window and the replay rule, writes the new login state, and only
//! then answers [`Decision::Allow`]. If the new state cannot be written, the answer is a denial:
//! accepting a code we could not mark as used would let it be replayed.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use sshield_otp::{verify_hotp, verify_totp, Window};
use zeroize::Zeroizing;

use crate::accounts;
use crate::config::{Config, Policy, RateLimit};
use crate::first_factor::FirstFactor;
use crate::log::Subject;
use crate::policy::{self, Requirement};
use crate::ratelimit::{self, FailureCount};
use crate::record::{Authenticator, TokenKind, TokenUsage, UserRecord};
use crate::store::{Change, RecordStore, StoreError};
use crate::time::UnixTime;
use crate::username::UserName;

/// What the user typed at the prompt. A secret until checked: wiped on drop, never printed.
#[derive(Clone)]
pub struct Response(Zeroizing<String>);

impl Response {
    /// Wraps typed text. Surrounding whitespace (a pasted newline) is ignored.
    pub fn new(typed: &str) -> Self {
        Self(Zeroizing::new(typed.trim().to_owned()))
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Response([redacted])")
    }
}

/// One login attempt.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// Who is logging in.
    pub user: &'a str,
    /// From where, if known (sshd's rhost).
    pub source: Option<IpAddr>,
    /// The PAM service or front end (`sshd`, `sudo`, `cli`).
    pub service: &'a str,
    /// What was typed.
    pub response: &'a Response,
    /// sshd's `SSH_AUTH_INFO_0` (the first factor), where the front end has it.
    pub first_factor: Option<&'a str>,
    /// The time of the attempt.
    pub now: UnixTime,
}

/// How a second factor was passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A TOTP code from the named authenticator.
    Totp {
        /// The authenticator's name.
        authenticator: String,
        /// The client clock's offset, in steps.
        offset: i64,
    },
    /// An HOTP code from the named authenticator.
    Hotp {
        /// The authenticator's name.
        authenticator: String,
    },
    /// A backup code; this many are left.
    Backup {
        /// Unused codes left after this one.
        remaining: usize,
    },
}

impl Method {
    /// `totp`, `hotp` or `backup`, as logged.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Totp { .. } => "totp",
            Self::Hotp { .. } => "hotp",
            Self::Backup { .. } => "backup",
        }
    }
}

/// Why a second factor was refused.
#[derive(Debug)]
pub enum DenyReason {
    /// The user has no record.
    NotEnrolled,
    /// The user's authenticators are all unconfirmed.
    Pending,
    /// An admin disabled the user.
    Disabled,
    /// The response matched nothing.
    WrongCode,
    /// The response is a code that was already used (or older than one that was).
    Replayed,
    /// The user's authenticators are bound to SSH keys this login did not use.
    FirstFactor,
    /// Too many failures: this user from this address, or this address, is locked out until
    /// the given time (Unix seconds). The code was not even checked.
    Locked {
        /// When the lock ends.
        until: u64,
    },
    /// The record could not be read, or the new state could not be written.
    Store(StoreError),
}

impl DenyReason {
    /// A stable word for logs and exit messages (`fail2ban` filters match on these).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotEnrolled => "not-enrolled",
            Self::Pending => "pending",
            Self::Disabled => "disabled",
            Self::WrongCode => "wrong-code",
            Self::Replayed => "replayed",
            Self::FirstFactor => "wrong-first-factor",
            Self::Locked { .. } => "locked",
            Self::Store(_) => "store-error",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnrolled => f.write_str("user is not enrolled"),
            Self::Pending => {
                f.write_str("enrollment not confirmed yet (sshield confirm USER CODE)")
            }
            Self::Disabled => f.write_str("second factor disabled for this user by an admin"),
            Self::WrongCode => f.write_str("wrong code"),
            Self::Replayed => f.write_str("code already used"),
            Self::FirstFactor => f.write_str(
                "the authenticators are bound to SSH keys this login did not use (sshield bind-keys)",
            ),
            Self::Locked { until } => write!(
                f,
                "too many failures; locked until {}",
                UnixTime(*until).to_rfc3339()
            ),
            Self::Store(e) => e.fmt(f),
        }
    }
}

/// The engine's answer.
#[derive(Debug)]
pub enum Decision {
    /// The second factor is good.
    Allow(Method),
    /// It is not.
    Deny(DenyReason),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow(_))
    }
}

/// A decision, and how long the front end should pause before it answers a failure
/// (growing delays slow down guessing; a success never waits).
#[derive(Debug)]
pub struct Outcome {
    /// Allow or deny.
    pub decision: Decision,
    /// Pause this long before reporting a denial.
    pub delay: Duration,
}

/// Decides logins against one record store under one policy.
#[derive(Debug, Clone)]
pub struct Engine {
    store: RecordStore,
    policy: Policy,
    rate_limit: RateLimit,
}

impl Engine {
    /// An engine for `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            store: config.record_store(),
            policy: config.policy.clone(),
            rate_limit: config.rate_limit.clone(),
        }
    }

    /// An engine over an explicit store and policy, with failure counting off (for tools
    /// and tests that exercise codes alone).
    pub fn with_store(store: RecordStore, policy: Policy) -> Self {
        let rate_limit = RateLimit {
            enabled: false,
            ..RateLimit::default()
        };
        Self {
            store,
            policy,
            rate_limit,
        }
    }

    /// The store this engine reads and updates.
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Whether `subject` must pass a second factor now, or why not. Reads, never writes. A
    /// record that cannot be read yields [`Requirement::Prompt`]: the decision that follows
    /// then denies, naming the problem, so a broken record never lets anyone through.
    ///
    /// The user is the account the name stands for ([`accounts::account_name`]): `ALICE` is
    /// `alice` where the name service says so. If the name service fails, nobody can be
    /// exempt by name or record, so a code is asked for.
    pub fn requirement(&self, subject: &Subject<'_>, now: UnixTime) -> Requirement {
        let Ok(user) = accounts::account_name(subject.user) else {
            return Requirement::Prompt;
        };
        let subject = &Subject {
            user: &user,
            ..*subject
        };
        if let Some(e) = policy::by_identity(&self.policy, subject.user, subject.source) {
            return Requirement::Exempt(e);
        }
        let first = subject.first_factor.map(FirstFactor::parse);
        if let Some(e) = policy::by_first_factor(&self.policy, first.as_ref()) {
            return Requirement::Exempt(e);
        }
        if policy::needs_groups(&self.policy) {
            let groups = accounts::groups_of(subject.user);
            if let Some(e) = policy::by_groups(&self.policy, groups.as_deref()) {
                return Requirement::Exempt(e);
            }
        }
        if !policy::needs_record(&self.policy) {
            // No record rule can exempt anyone: skip reading it (the login reads it anyway,
            // under its lock, in `check`).
            return Requirement::Prompt;
        }
        let record = match UserName::new(subject.user).map(|u| self.store.load(&u)) {
            Ok(Ok(record)) => record,
            Ok(Err(_)) => return Requirement::Prompt,
            // A name that cannot have a record is not enrolled.
            Err(_) => None,
        };
        match policy::by_record(&self.policy, record.as_ref(), subject.source, now.0) {
            Some(e) => Requirement::Exempt(e),
            None => Requirement::Prompt,
        }
    }

    /// Checks a second factor and, when it is good, records it as used.
    pub fn decide(&self, attempt: &Attempt<'_>) -> Decision {
        self.check(attempt).decision
    }

    /// [`Engine::decide`], with the delay to apply before answering a failure. Failures are
    /// counted per (user, source) and per source, and locks enforced, when rate limiting is
    /// on.
    ///
    /// The record is that of the account the name stands for ([`accounts::account_name`]). If
    /// the name service fails, the name is taken as typed: a check never lets a name without
    /// a record in, so another spelling can then only be refused.
    pub fn check(&self, attempt: &Attempt<'_>) -> Outcome {
        let account = accounts::account_name(attempt.user);
        let attempt = &Attempt {
            user: account.as_deref().unwrap_or(attempt.user),
            ..attempt.clone()
        };
        let limits = &self.rate_limit;
        let now = attempt.now.0;
        if let Some(until) = self.source_lock(attempt.source, now) {
            return self.denied(attempt, DenyReason::Locked { until }, 0);
        }
        let user = match UserName::new(attempt.user) {
            Ok(u) => u,
            // A name that cannot have a record is simply not enrolled.
            Err(_) => return self.denied(attempt, DenyReason::NotEnrolled, 1),
        };
        // Look before locking: a guessed user name must not leave a lock file behind.
        match self.store.has_record(&user) {
            Ok(false) => return self.denied(attempt, DenyReason::NotEnrolled, 1),
            Ok(true) => {}
            Err(e) => return self.denied(attempt, DenyReason::Store(e), 0),
        }
        let key = attempt
            .source
            .map(policy::source_key)
            .unwrap_or_else(|| NO_SOURCE.to_owned());
        let result = self.store.update(&user, |slot| {
            let Some(record) = slot.as_mut() else {
                return Ok((Change::Keep, (Decision::Deny(DenyReason::NotEnrolled), 1)));
            };
            if limits.enabled {
                if let Some(until) = record.usage.failures.get(&key).and_then(|f| f.locked(now)) {
                    return Ok((
                        Change::Keep,
                        (Decision::Deny(DenyReason::Locked { until }), 0),
                    ));
                }
            }
            let first = attempt
                .first_factor
                .map(FirstFactor::parse)
                .unwrap_or_default();
            // A key-bound authenticator counts only after a login with one of its keys.
            let eligible = |a: &Authenticator| {
                a.active && (a.ssh_keys.is_empty() || a.ssh_keys.iter().any(|k| first.used_key(k)))
            };
            let decision = check(
                record,
                attempt.response,
                attempt.now,
                &self.policy,
                eligible,
                true,
            );
            if decision.is_allow() {
                record.usage.failures.remove(&key);
                if !self.policy.remember.is_zero() {
                    if let Some(source) = attempt.source {
                        let until = now.saturating_add(self.policy.remember.as_secs());
                        record
                            .usage
                            .remembered
                            .insert(policy::source_key(source), until);
                    }
                }
                record.usage.remembered.retain(|_, until| *until > now);
                // Only `[usage]` changed: one in-place write.
                return Ok((Change::SaveUsage, (decision, 0)));
            }
            let counts = matches!(
                &decision,
                Decision::Deny(DenyReason::WrongCode | DenyReason::Replayed)
            );
            if !(limits.enabled && counts) {
                return Ok((Change::Keep, (decision, 0)));
            }
            record.usage.failures.retain(|_, f| !f.expired(now, limits));
            let count = record
                .usage
                .failures
                .entry(key.clone())
                .or_default()
                .record(now, limits.max_failures, limits);
            Ok::<_, StoreError>((Change::SaveUsage, (decision, count)))
        });
        match result {
            Ok((decision @ Decision::Allow(_), _)) => Outcome {
                decision,
                delay: Duration::ZERO,
            },
            Ok((Decision::Deny(reason), pair_count)) => self.denied(attempt, reason, pair_count),
            Err(e) => self.denied(attempt, DenyReason::Store(e), 0),
        }
    }

    /// The lock on a source address in force at `now`, if any.
    fn source_lock(&self, source: Option<IpAddr>, now: u64) -> Option<u64> {
        if !self.rate_limit.enabled {
            return None;
        }
        // An unreadable source file must not lock everyone out from that address, nor hide
        // a lock: the per-pair count in the user's record still applies.
        let state = self.store.load_source(source?).ok()??;
        state.locked(now)
    }

    /// A denial: counts it against the source address (for failures a guesser causes) and
    /// computes the delay from the larger of the pair's and the source's counts.
    fn denied(&self, attempt: &Attempt<'_>, reason: DenyReason, pair_count: u32) -> Outcome {
        let limits = &self.rate_limit;
        let guess = matches!(
            reason,
            DenyReason::WrongCode | DenyReason::Replayed | DenyReason::NotEnrolled
        );
        let mut count = pair_count;
        if let (true, true, Some(source)) = (limits.enabled, guess, attempt.source) {
            let now = attempt.now.0;
            let source_count = self.store.update_source(source, |state| {
                let f = state.get_or_insert_with(FailureCount::default);
                f.record(now, limits.source_max_failures, limits)
            });
            // The per-source count only slows an address that tries many users; the delay
            // still follows the pair's own count when that is higher.
            if let Ok(n) = source_count {
                count = count.max(n / limits.max_failures.max(1));
            }
        }
        Outcome {
            decision: Decision::Deny(reason),
            delay: ratelimit::delay_after(count, limits),
        }
    }
}

/// The key for failures from an unknown source (a local login, `sshield verify`).
const NO_SOURCE: &str = "local";

/// Tries `response` on `record`'s authenticators selected by `eligible`, then (if
/// `backup_codes`) on its backup codes, and records the use in `record` on success. Shared by logins and by confirmation
/// of a pending authenticator, so the replay rule is written once.
pub(crate) fn check(
    record: &mut UserRecord,
    response: &Response,
    now: UnixTime,
    policy: &Policy,
    eligible: impl Fn(&Authenticator) -> bool,
    backup_codes: bool,
) -> Decision {
    if record.disabled {
        return Decision::Deny(DenyReason::Disabled);
    }
    let candidates: Vec<&Authenticator> = record
        .authenticators
        .iter()
        .filter(|a| eligible(a))
        .collect();
    if candidates.is_empty() {
        let bound = record
            .authenticators
            .iter()
            .any(|a| a.active && !a.ssh_keys.is_empty());
        return Decision::Deny(if bound {
            DenyReason::FirstFactor
        } else {
            DenyReason::Pending
        });
    }
    let typed = response.as_str();
    let mut replayed = false;
    let mut accepted: Option<(String, TokenUsage, Method)> = None;
    for auth in candidates {
        // Per secret: another authenticator with this one's secret has used its codes too.
        let usage = record.replay_usage(auth);
        match try_token(auth, &usage, typed, now, policy) {
            TokenOutcome::Accepted(new_usage, method) => {
                accepted = Some((auth.name.clone(), new_usage, method));
                break;
            }
            TokenOutcome::Replayed => replayed = true,
            TokenOutcome::NoMatch => {}
        }
    }
    if let Some((name, new_usage, method)) = accepted {
        record.usage.tokens.insert(name, new_usage);
        return allow(record, method, now);
    }
    // Backup codes are only tried for responses that are not a well-formed replay, so a
    // replayed TOTP code is reported as such.
    if !replayed && backup_codes {
        if let Some(hash) = record.backup.find_unused(typed, &record.usage.backup_used) {
            record.usage.backup_used.push(hash);
            let remaining = record.backup.remaining(&record.usage.backup_used);
            return allow(record, Method::Backup { remaining }, now);
        }
        // In the set but not unused: it was used before.
        replayed = record.backup.find_unused(typed, &[]).is_some();
    }
    Decision::Deny(if replayed {
        DenyReason::Replayed
    } else {
        DenyReason::WrongCode
    })
}

fn allow(record: &mut UserRecord, method: Method, now: UnixTime) -> Decision {
    record.usage.last_success = Some(now.0);
    record.usage.last_method = Some(method.as_str().to_owned());
    Decision::Allow(method)
}

enum TokenOutcome {
    Accepted(TokenUsage, Method),
    Replayed,
    NoMatch,
}

fn try_token(
    auth: &Authenticator,
    usage: &TokenUsage,
    typed: &str,
    now: UnixTime,
    policy: &Policy,
) -> TokenOutcome {
    match auth.kind {
        TokenKind::Totp => {
            let Ok(params) = auth.totp_params() else {
                return TokenOutcome::NoMatch;
            };
            let window = Window::symmetric(policy.window);
            let drift = usage.drift;
            match verify_totp(
                &auth.secret,
                &params,
                typed,
                now.0,
                window,
                drift,
                usage.last_step,
            ) {
                Some(hit) => {
                    let max = i64::try_from(policy.max_drift).unwrap_or(i64::MAX);
                    let new = TokenUsage {
                        last_step: Some(hit.step),
                        drift: hit.offset.clamp(-max, max),
                        last_used: Some(now.0),
                        ..usage.clone()
                    };
                    let method = Method::Totp {
                        authenticator: auth.name.clone(),
                        offset: hit.offset,
                    };
                    TokenOutcome::Accepted(new, method)
                }
                None if usage.last_step.is_some()
                    && verify_totp(&auth.secret, &params, typed, now.0, window, drift, None)
                        .is_some() =>
                {
                    TokenOutcome::Replayed
                }
                None => TokenOutcome::NoMatch,
            }
        }
        TokenKind::Hotp => {
            let Ok(params) = auth.hotp_params() else {
                return TokenOutcome::NoMatch;
            };
            let provisioned = auth.counter.unwrap_or(0);
            let next = usage.next_counter.unwrap_or(0).max(provisioned);
            match verify_hotp(&auth.secret, &params, typed, next, policy.hotp_lookahead) {
                Some(counter) => {
                    let new = TokenUsage {
                        next_counter: Some(counter.saturating_add(1)),
                        last_used: Some(now.0),
                        ..usage.clone()
                    };
                    let method = Method::Hotp {
                        authenticator: auth.name.clone(),
                    };
                    TokenOutcome::Accepted(new, method)
                }
                None if next > provisioned
                    && verify_hotp(
                        &auth.secret,
                        &params,
                        typed,
                        next.saturating_sub(policy.hotp_lookahead + 1),
                        policy.hotp_lookahead,
                    )
                    .is_some() =>
                {
                    TokenOutcome::Replayed
                }
                None => TokenOutcome::NoMatch,
            }
        }
    }
}
