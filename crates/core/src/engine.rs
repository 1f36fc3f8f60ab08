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

use sshield_otp::{verify_hotp, verify_totp, Window};
use zeroize::Zeroizing;

use crate::config::{Config, Policy};
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

/// Decides logins against one record store under one policy.
#[derive(Debug, Clone)]
pub struct Engine {
    store: RecordStore,
    policy: Policy,
}

impl Engine {
    /// An engine for `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            store: config.record_store(),
            policy: config.policy.clone(),
        }
    }

    /// An engine over an explicit store and policy.
    pub fn with_store(store: RecordStore, policy: Policy) -> Self {
        Self { store, policy }
    }

    /// The store this engine reads and updates.
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Checks a second factor and, when it is good, records it as used.
    pub fn decide(&self, attempt: &Attempt<'_>) -> Decision {
        let user = match UserName::new(attempt.user) {
            Ok(u) => u,
            // A name that cannot have a record is simply not enrolled.
            Err(_) => return Decision::Deny(DenyReason::NotEnrolled),
        };
        // Look before locking: a guessed user name must not leave a lock file behind.
        match self.store.has_record(&user) {
            Ok(false) => return Decision::Deny(DenyReason::NotEnrolled),
            Ok(true) => {}
            Err(e) => return Decision::Deny(DenyReason::Store(e)),
        }
        let result = self.store.update(&user, |slot| {
            let Some(record) = slot.as_mut() else {
                return Ok((Change::Keep, Decision::Deny(DenyReason::NotEnrolled)));
            };
            let decision = check(
                record,
                attempt.response,
                attempt.now,
                &self.policy,
                |a| a.active,
                true,
            );
            let change = if decision.is_allow() {
                Change::Save
            } else {
                Change::Keep
            };
            Ok::<_, StoreError>((change, decision))
        });
        result.unwrap_or_else(|e| Decision::Deny(DenyReason::Store(e)))
    }
}

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
        return Decision::Deny(DenyReason::Pending);
    }
    let typed = response.as_str();
    let mut replayed = false;
    let mut accepted: Option<(String, TokenUsage, Method)> = None;
    for auth in candidates {
        let usage = record.token_usage(&auth.name);
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
