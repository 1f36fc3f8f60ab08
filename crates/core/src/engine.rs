//! The auth engine: the one place that decides whether a second factor is good.
//!
//! Front ends reach it through a login conversation ([`crate::Login`]), tools such as
//! `sshield verify` through [`Engine::decide`], and the approval server through
//! [`check_record`] on a record it holds. The engine reads the user's record under its lock,
//! tries the response (each split of a password-and-code entry) against every active
//! authenticator and then the backup codes, applies the window and the replay rule, writes the
//! new login state, and only then answers [`Decision::Allow`]. If the new state cannot be written, the answer is a denial:
//! accepting a code we could not mark as used would let it be replayed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sshield_otp::{verify_hotp, verify_totp, Window};
use zeroize::Zeroizing;

use crate::accounts;
use crate::caller::Caller;
use crate::config::{Config, Failmode};
use crate::first_factor::FirstFactor;
use crate::policy::{self, Policy, Requirement};
use crate::push::PushPolicy;
use crate::ratelimit::{self, Origin, RateLimit};
use crate::record::{Authenticator, TokenKind, TokenUsage, UserRecord};
use crate::remote::{NotHere, Remote};
use crate::shape;
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

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, for a [`Remote`] to send to the fleet server over
    /// its signed, encrypted request; never for a log line.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Response([redacted])")
    }
}

/// One code to check, for tools and tests that decide a single code ([`Engine::decide`]);
/// front ends hold a [`Login`](crate::Login) instead, which asks, counts tries and logs.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// Who is logging in, from where, with what first factor.
    pub caller: &'a Caller,
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
    /// A push approved on the user's phone (docs/push.md).
    Push,
}

impl Method {
    /// `totp`, `hotp` or `backup`, as logged.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Totp { .. } => "totp",
            Self::Hotp { .. } => "hotp",
            Self::Backup { .. } => "backup",
            Self::Push => "push",
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
    /// Too many failures: this user's bucket for this source (its own if familiar, else the
    /// one every unfamiliar source shares), or this source over all users, is locked until the
    /// given time (Unix seconds); docs/ratelimit.md. The code was not even checked.
    Locked {
        /// When the lock ends.
        until: u64,
    },
    /// The record could not be read, or the new state could not be written.
    Store(StoreError),
    /// The front end could not get an answer ([`Entry::Unanswered`](crate::Entry)): nothing
    /// was checked or counted.
    NoCode,
    /// The login had already ended (its last denial, or its decision) when another answer
    /// came: nothing was checked, counted or logged.
    NoTriesLeft,
    /// No fleet server could be reached and `failmode = "secure"`.
    Unreachable,
    /// The fleet server refused this host's request (a bad signature, a revoked host), or
    /// the host's side of the fleet is broken: what is wrong, for the admin's log.
    ServerRefused(String),
    /// The push was denied on the phone, or approved with a wrong number.
    PushDenied,
    /// The user answered the push "This wasn't me".
    PushNotMe,
    /// Nobody answered the push in time.
    PushExpired,
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
            Self::NoCode => "no-code",
            Self::NoTriesLeft => "no-tries-left",
            Self::Unreachable => "unreachable",
            Self::ServerRefused(_) => "server-refused",
            Self::PushDenied => "push-denied",
            Self::PushNotMe => "push-not-me",
            Self::PushExpired => "push-expired",
        }
    }

    /// What the user is told: the reason, except for a store error, whose path and fix are
    /// for the admin's log, not for whoever is logging in.
    pub fn user_message(&self) -> String {
        match self {
            Self::Store(_) | Self::ServerRefused(_) => {
                "this server cannot check codes right now; the admin will find why in the system \
                 log"
                .to_owned()
            }
            other => other.to_string(),
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
            Self::NoCode => f.write_str("no code was given"),
            Self::NoTriesLeft => f.write_str("this login has ended"),
            Self::Unreachable => {
                f.write_str("the authentication server cannot be reached; try again later")
            }
            Self::ServerRefused(what) => write!(f, "the authentication server refused: {what}"),
            Self::PushDenied => f.write_str(
                "the login request was denied on your phone (or the wrong number was picked)",
            ),
            Self::PushNotMe => f.write_str(
                "you answered \"This wasn't me\" on your phone; further pushes are blocked",
            ),
            Self::PushExpired => f.write_str("the login request on your phone expired"),
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

/// What a login says to the user, from the config: the prompt, the tries per login, the
/// banner after a good code.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    pub(crate) prompt: String,
    pub(crate) tries: u32,
    pub(crate) banner: Option<String>,
}

impl Conversation {
    fn of(config: &Config) -> Self {
        Self {
            prompt: config.prompt.clone(),
            tries: config.login_tries,
            banner: config.banner.clone(),
        }
    }
}

/// Decides logins against one record store under one policy.
#[derive(Debug, Clone)]
pub struct Engine {
    store: RecordStore,
    policy: Policy,
    rate_limit: RateLimit,
    conversation: Conversation,
    /// The fleet server, asked about users with no local record ([`Engine::with_remote`]).
    remote: Option<Arc<dyn Remote>>,
    /// What to do when the remote cannot be reached.
    failmode: Failmode,
    /// Who is pushed to, and when.
    push: PushPolicy,
}

/// What a login offers to check: a code alone, or a password with the code at its end
/// (`forward_pass`), split inside the engine by the lengths of the user's codes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Offer<'a> {
    Code(&'a Response),
    PasswordAndCode(&'a str),
}

/// An [`Outcome`], and for [`Offer::PasswordAndCode`] how many bytes at the start of the entry
/// are the password (the split that passed, else the most likely one).
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) outcome: Outcome,
    pub(crate) password_len: Option<usize>,
}

impl Engine {
    /// An engine for `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            store: config.record_store(),
            policy: config.policy.clone(),
            rate_limit: config.rate_limit.clone(),
            conversation: Conversation::of(config),
            // A fleet host's users are the server's; until a front end that can ask it says
            // so (`with_remote`), they are denied, never judged by the local rules.
            remote: config
                .server
                .as_ref()
                .map(|_| Arc::new(NotHere) as Arc<dyn Remote>),
            failmode: config.failmode,
            push: config.push.clone(),
        }
    }

    /// This engine, asking `remote` (the fleet server) about every user who has no record in
    /// the local store; users with one (root, a break-glass account) stay local.
    pub fn with_remote(self, remote: Arc<dyn Remote>) -> Self {
        Self {
            remote: Some(remote),
            ..self
        }
    }

    /// The remote to ask about `user`, if any: none when the local store has their record.
    /// A store that cannot say is left to the local check, which denies with its error.
    pub(crate) fn remote_for(&self, user: &str) -> Option<&dyn Remote> {
        let remote = self.remote.as_deref()?;
        match UserName::new(user).map(|u| self.store.has_record(&u)) {
            Ok(Ok(false)) => Some(remote),
            Ok(Ok(true) | Err(_)) => None,
            // A name that cannot have a local record can only be the server's to judge.
            Err(_) => Some(remote),
        }
    }

    /// Who is pushed to, and when.
    pub(crate) fn push_policy(&self) -> &PushPolicy {
        &self.push
    }

    /// What to do when the remote cannot be reached.
    pub(crate) fn failmode(&self) -> Failmode {
        self.failmode
    }

    /// The rate limit's settings (the remote's denials wait its first delay).
    pub(crate) fn rate_limit(&self) -> &RateLimit {
        &self.rate_limit
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
            conversation: Conversation::of(&Config::default()),
            remote: None,
            failmode: Failmode::Secure,
            push: PushPolicy::default(),
        }
    }

    /// The store this engine reads and updates.
    pub(crate) fn store(&self) -> &RecordStore {
        &self.store
    }

    pub(crate) fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// Whether `caller` must pass a second factor now, or why not. Reads, never writes. A
    /// record that cannot be read yields [`Requirement::Prompt`]: the decision that follows
    /// then denies, naming the problem, so a broken record never lets anyone through.
    ///
    /// The user is the account the name stands for ([`Account`](crate::Account)): `ALICE` is
    /// `alice` where the name service says so. If the name service failed, nobody can be
    /// exempt by name, group or record, so a code is asked for.
    pub fn requirement(&self, caller: &Caller, now: UnixTime) -> Requirement {
        if caller.user.lookup_failed() {
            return Requirement::Prompt;
        }
        let user = caller.user.name();
        if let Some(e) = policy::by_identity(&self.policy, user, caller.source) {
            return Requirement::Exempt(e);
        }
        if let Some(e) = policy::by_first_factor(&self.policy, caller.first_factor.as_ref()) {
            return Requirement::Exempt(e);
        }
        if policy::needs_groups(&self.policy) {
            let groups = accounts::groups_of(user);
            if let Some(e) = policy::by_groups(&self.policy, groups.as_deref()) {
                return Requirement::Exempt(e);
            }
        }
        if self.remote_for(user).is_some() {
            // The server holds this user's record: the local "unenrolled" rules do not apply,
            // and a code is asked for.
            return Requirement::Prompt;
        }
        if !policy::needs_record(&self.policy) {
            // No record rule can exempt anyone: skip reading it (the login reads it anyway,
            // under its lock, in `check`).
            return Requirement::Prompt;
        }
        let record = match UserName::new(user).map(|u| self.store.load(&u)) {
            Ok(Ok(record)) => record,
            Ok(Err(_)) => return Requirement::Prompt,
            // A name that cannot have a record is not enrolled.
            Err(_) => None,
        };
        match policy::by_record(&self.policy, record.as_ref(), caller.source, now.0) {
            Some(e) => Requirement::Exempt(e),
            None => Requirement::Prompt,
        }
    }

    /// Checks a second factor and, when it is good, records it as used.
    pub fn decide(&self, attempt: &Attempt<'_>) -> Decision {
        self.check(attempt).decision
    }

    /// [`Engine::decide`], with the delay to apply before answering a failure. When rate
    /// limiting is on, failures are counted and locks enforced per user (one bucket per
    /// familiar source, one for every other source, one for local logins) and per source
    /// over all users (docs/ratelimit.md).
    ///
    /// The record is that of the account the name stands for. If the name service failed,
    /// the name is as typed: a check never lets a name without a record in, so another
    /// spelling can then only be refused.
    pub fn check(&self, attempt: &Attempt<'_>) -> Outcome {
        self.check_offer(attempt.caller, Offer::Code(attempt.response), attempt.now)
            .outcome
    }

    /// Checks `offer` for `caller` under one lock of the user's record: every way to read it
    /// (each split of a password-and-code entry) is tried there, and at most one failure is
    /// counted, so a good `forward_pass` login of a user whose codes differ in length never
    /// leaves a failure behind (issue 10).
    pub(crate) fn check_offer(&self, caller: &Caller, offer: Offer<'_>, now: UnixTime) -> Checked {
        let limits = &self.rate_limit;
        let origin = Origin::of(caller.source, caller.source_name.as_deref(), limits);
        // The lock on a source over all users is for logins that show nothing better than
        // the address (docs/ratelimit.md, "Shared addresses"): one address can be a NAT, a
        // bastion or an `ssh -J` jump host, and with `forward_pass` the code is checked before
        // any password, so anyone can fill the address's count.
        let shown_first_factor = caller.shown_first_factor();
        // Without a record the entry is split as for 6-digit codes, as for every user without
        // one, so the password handed on does not tell who is enrolled.
        let unenrolled_split = || password_len(offer, &[6]);
        let unenrolled = || match self.source_lock(&origin, shown_first_factor, now.0) {
            Some(until) => DenyReason::Locked { until },
            None => DenyReason::NotEnrolled,
        };
        let user = match UserName::new(caller.user.name()) {
            Ok(u) => u,
            // A name that cannot have a record is simply not enrolled.
            Err(_) => return self.denied(&origin, now, unenrolled(), unenrolled_split()),
        };
        // Look before locking: a guessed user name must not leave a lock file behind.
        match self.store.has_record(&user) {
            Ok(false) => return self.denied(&origin, now, unenrolled(), unenrolled_split()),
            Ok(true) => {}
            Err(e) => {
                return self.denied(&origin, now, DenyReason::Store(e), unenrolled_split());
            }
        }
        let mut split = unenrolled_split();
        let result = self.store.update(&user, |slot| {
            let Some(record) = slot.as_mut() else {
                return Ok((Change::Keep, Decision::Deny(DenyReason::NotEnrolled)));
            };
            let codes = candidates(offer, record);
            split = codes.first().and_then(|c| c.1);
            if limits.enabled {
                let buckets = record.limits();
                let lock = buckets.locked(&origin, now.0).or_else(|| {
                    let familiar = buckets.is_familiar(&origin);
                    self.source_lock(&origin, shown_first_factor || familiar, now.0)
                });
                if let Some(until) = lock {
                    let locked = Decision::Deny(DenyReason::Locked { until });
                    return Ok((Change::Keep, locked));
                }
            }
            let (decision, which) = check_each(
                record,
                codes.iter().map(|(code, _)| code),
                now,
                &self.policy,
                caller.first_factor.as_ref(),
            );
            if decision.is_allow() {
                split = which.and_then(|i| codes.get(i)).and_then(|c| c.1);
            }
            if decision.is_allow() {
                record.limits().succeeded(&origin, now.0, limits);
                if !self.policy.remember.is_zero() {
                    if let Some(source) = caller.source {
                        let until = now.0.saturating_add(self.policy.remember.as_secs());
                        record
                            .usage
                            .remembered
                            .insert(policy::source_key(source), until);
                    }
                }
                record.usage.remembered.retain(|_, until| *until > now.0);
                // Only `[usage]` changed: one in-place write.
                return Ok((Change::SaveUsage, decision));
            }
            let counts = matches!(
                &decision,
                Decision::Deny(DenyReason::WrongCode | DenyReason::Replayed)
            );
            if !(limits.enabled && counts) {
                return Ok((Change::Keep, decision));
            }
            record.limits().failed(&origin, now.0, limits);
            Ok::<_, StoreError>((Change::SaveUsage, decision))
        });
        match result {
            Ok(decision @ Decision::Allow(_)) => Checked {
                outcome: Outcome {
                    decision,
                    delay: Duration::ZERO,
                },
                password_len: split,
            },
            Ok(Decision::Deny(reason)) => self.denied(&origin, now, reason, split),
            Err(e) => self.denied(&origin, now, DenyReason::Store(e), split),
        }
    }

    /// The lock on `origin` over all users in force at `now`, unless `exempt` (the login
    /// showed a first factor, or comes from a source familiar to its user).
    fn source_lock(&self, origin: &Origin, exempt: bool, now: u64) -> Option<u64> {
        if !self.rate_limit.enabled || exempt {
            return None;
        }
        let key = origin.remote()?;
        // An unreadable table must not lock everyone out from every address, nor hide a
        // lock: the user's own buckets still apply.
        self.store.load_sources().ok()?.locked(key, now)
    }

    /// A denial, and its delay. Every denial counts against its source, and the delay grows
    /// with the source's count alone, so an enrolled and an unenrolled name, a wrong code and
    /// a lock, all answer alike. A local login (no source) waits `delay`. A store error, or a
    /// count that could not be written, waits the longest delay: a broken store must never
    /// mean "no count and no delay".
    fn denied(
        &self,
        origin: &Origin,
        now: UnixTime,
        reason: DenyReason,
        password_len: Option<usize>,
    ) -> Checked {
        let limits = &self.rate_limit;
        let store_error = matches!(reason, DenyReason::Store(_));
        let count = match origin.remote() {
            _ if !limits.enabled => 0,
            None => 1,
            Some(key) => self
                .store
                .update_sources(|t| t.failed(key, now.0, limits))
                .unwrap_or(u32::MAX),
        };
        let delay = if store_error {
            ratelimit::longest_delay(limits)
        } else {
            ratelimit::delay_after(count, limits)
        };
        Checked {
            outcome: Outcome {
                decision: Decision::Deny(reason),
                delay,
            },
            password_len,
        }
    }
}

/// The codes to try for `offer` on `record`, each with the length of the password before it
/// (`None` for a code alone). A password-and-code entry is split once per length of the
/// user's active codes, longest-used first; with no code at its end, the whole entry is the
/// password and an empty code is checked, which fails as a wrong code.
fn candidates(offer: Offer<'_>, record: &UserRecord) -> Vec<(Response, Option<usize>)> {
    match offer {
        Offer::Code(response) => vec![(response.clone(), None)],
        Offer::PasswordAndCode(typed) => {
            let lengths = code_lengths(record);
            let splits = shape::splits(typed, &lengths);
            if splits.is_empty() {
                return vec![(Response::new(""), Some(typed.len()))];
            }
            splits
                .iter()
                .map(|s| (Response::new(s.code), Some(s.password.len())))
                .collect()
        }
    }
}

/// The password's length in a password-and-code entry split as for codes of `lengths` digits.
fn password_len(offer: Offer<'_>, lengths: &[usize]) -> Option<usize> {
    match offer {
        Offer::Code(_) => None,
        Offer::PasswordAndCode(typed) => Some(
            shape::splits(typed, lengths)
                .first()
                .map_or(typed.len(), |s| s.password.len()),
        ),
    }
}

/// The digit counts of `record`'s active tokens, in the record's order; 6 when there are none,
/// so every user is handled alike and the denial names the real problem.
fn code_lengths(record: &UserRecord) -> Vec<usize> {
    let mut lengths: Vec<usize> = Vec::new();
    for auth in &record.authenticators {
        let digits = usize::try_from(auth.digits.get()).unwrap_or(0);
        if auth.active && !lengths.contains(&digits) {
            lengths.push(digits);
        }
    }
    if lengths.is_empty() {
        lengths.push(6);
    }
    lengths
}

/// Tries each of `codes` (the ways to read one entry) on `record`: the first that passes, and
/// its index; else the first denial, unless a later one is a replay, which says more (no
/// index). No codes: a wrong code.
fn check_each<'c>(
    record: &mut UserRecord,
    codes: impl IntoIterator<Item = &'c Response>,
    now: UnixTime,
    policy: &Policy,
    first_factor: Option<&FirstFactor>,
) -> (Decision, Option<usize>) {
    let mut decision = None;
    for (i, code) in codes.into_iter().enumerate() {
        let this = check_record(record, code, now, policy, first_factor);
        if this.is_allow() {
            return (this, Some(i));
        }
        let replayed = matches!(this, Decision::Deny(DenyReason::Replayed));
        if decision.is_none() || replayed {
            decision = Some(this);
        }
    }
    (
        decision.unwrap_or(Decision::Deny(DenyReason::WrongCode)),
        None,
    )
}

/// [`check_record`] for the end of a password typed with the code after it (`forward_pass` on
/// a fleet host, which sends the entry's trailing digits, at most 8, and keeps the password):
/// the code is taken off the end of `trailing` by the lengths of `record`'s active codes, each
/// split is tried, and the decision is one, as for a code alone. With it, how many of
/// `trailing`'s last characters were the code: the split that passed, else the likeliest (the
/// record's first length, or 6).
pub fn check_record_trailing(
    record: &mut UserRecord,
    trailing: &str,
    now: UnixTime,
    policy: &Policy,
    first_factor: Option<&FirstFactor>,
) -> (Decision, usize) {
    let lengths = code_lengths(record);
    let codes: Vec<Response> = shape::splits(trailing, &lengths)
        .iter()
        .map(|s| Response::new(s.code))
        .collect();
    let likeliest = lengths.first().copied().unwrap_or(6);
    let (decision, which) = check_each(record, &codes, now, policy, first_factor);
    let digits = which
        .and_then(|i| codes.get(i))
        .map_or(likeliest, |code| code.expose_secret().len());
    (decision, digits)
}

/// Decides `response` against a record held elsewhere (the fleet server's database), with the
/// same rules as a login on a host: active authenticators only, a key-bound one only after a
/// login with one of its keys, then the backup codes; windows, drift and replay as
/// [`Engine::check`]. On [`Decision::Allow`] the record's login state is updated in place and
/// the caller must store it before answering: a code accepted but not marked used could be
/// replayed. Rate limits are the caller's (they need the source's history too).
pub fn check_record(
    record: &mut UserRecord,
    response: &Response,
    now: UnixTime,
    policy: &Policy,
    first_factor: Option<&FirstFactor>,
) -> Decision {
    let used_key = |k: &String| first_factor.is_some_and(|f| f.used_key(k));
    // A key-bound authenticator counts only after a login with one of its keys.
    let eligible =
        |a: &Authenticator| a.active && (a.ssh_keys.is_empty() || a.ssh_keys.iter().any(used_key));
    check(record, response, now, policy, eligible, true)
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
            let params = auth.totp_params();
            let window = Window::symmetric(policy.window);
            // The learned drift is kept within `max_drift` when it is learned, but the state
            // file is only as good as whoever last wrote it (a hand edit, a restore from another
            // host): a drift beyond the bound would move the window away from every code.
            let max = i64::try_from(policy.max_drift).unwrap_or(i64::MAX);
            let drift = usage.drift.clamp(-max, max);
            // The window around the learned drift, and always the one around real time too: a
            // code typed as its step ended teaches a drift of -1, and the window must not then
            // lose the step ahead that a phone running a little fast shows.
            let find = |last_used: Option<u64>| {
                let around = |centre| {
                    verify_totp(
                        &auth.secret,
                        &params,
                        typed,
                        now.0,
                        window,
                        centre,
                        last_used,
                    )
                };
                around(drift).or_else(|| if drift == 0 { None } else { around(0) })
            };
            match find(usage.last_step) {
                Some(hit) => {
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
                None if usage.last_step.is_some() && find(None).is_some() => TokenOutcome::Replayed,
                None => TokenOutcome::NoMatch,
            }
        }
        TokenKind::Hotp => {
            let params = auth.hotp_params();
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
