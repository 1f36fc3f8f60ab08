//! What sshield stores about one user, as one TOML file.
//!
//! A record has two halves, and each writer touches only its own:
//!
//! - **Provisioning** (`[[authenticator]]`, `[backup]`, `disabled`): written by `sshield
//!   enroll`, `import`, `backup-codes`, `disable`, or config management.
//! - **Login state** (`[usage]`): written only by logins: the last accepted TOTP step or HOTP
//!   counter per authenticator, learned clock drift, used backup codes, last use. Logins write
//!   it in place into the user's `.USER.state` file, and the record keeps the copy of its last
//!   rewrite; [`Usage::generation`] tells which is newer (see the store).
//!
//! Re-applying the same provisioning (e.g. a config-management run that calls `enroll --secret`
//! again) therefore never rewinds replay state; google-authenticator keeps both in one list
//! that such a run overwrites (its issue #35).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sshield_otp::{Algorithm, Digits, HotpParams, Period, Secret, TotpParams};

use crate::backup::BackupCodes;
use crate::ratelimit::{FailureCount, UserLimits};

/// The current record format. Version 2 keeps the login state of later logins in the
/// `.USER.state` file next to the record (see `store`); version 1 records, whose `[usage]`
/// is all there is, are read as they are and written back as version 2.
pub const RECORD_VERSION: u32 = 2;
/// The oldest record format this version reads.
pub const OLDEST_RECORD_VERSION: u32 = 1;

/// Everything stored about one user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Format version, for future migrations.
    pub version: u32,
    /// The login name; must match the file name.
    pub user: String,
    /// An admin switched second-factor logins off for this user (`sshield disable`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// When the record was made (Unix seconds).
    pub created: u64,
    /// Authenticators: any *active* one is accepted.
    #[serde(
        default,
        rename = "authenticator",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub authenticators: Vec<Authenticator>,
    /// One-time backup codes, hashed.
    #[serde(default, skip_serializing_if = "BackupCodes::is_empty")]
    pub backup: BackupCodes,
    /// Written by logins only.
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    pub usage: Usage,
}

/// The state a user is in, as `sshield status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    /// Enrolled, but no authenticator has been confirmed with a first code yet.
    Pending,
    /// At least one confirmed authenticator.
    Active,
    /// Switched off by an admin.
    Disabled,
}

impl UserState {
    /// `pending`, `active` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

impl UserRecord {
    /// The user's failure buckets and familiar sources, for counting and checking a try.
    pub fn limits(&mut self) -> UserLimits<'_> {
        UserLimits {
            failures: &mut self.usage.failures,
            familiar: &mut self.usage.familiar,
        }
    }

    /// An empty record for `user`.
    pub fn new(user: &str, now: u64) -> Self {
        Self {
            version: RECORD_VERSION,
            user: user.to_owned(),
            disabled: false,
            created: now,
            authenticators: Vec::new(),
            backup: BackupCodes::default(),
            usage: Usage::default(),
        }
    }

    /// Pending, active or disabled.
    pub fn state(&self) -> UserState {
        if self.disabled {
            UserState::Disabled
        } else if self.authenticators.iter().any(|a| a.active) {
            UserState::Active
        } else {
            UserState::Pending
        }
    }

    /// The authenticator called `name`.
    pub fn authenticator(&self, name: &str) -> Option<&Authenticator> {
        self.authenticators.iter().find(|a| a.name == name)
    }

    /// The login state of the authenticator called `name` (empty if never used).
    pub fn token_usage(&self, name: &str) -> TokenUsage {
        self.usage.tokens.get(name).cloned().unwrap_or_default()
    }

    /// The login state the replay rule applies to `auth`: its own, with the last used TOTP
    /// step and the next HOTP counter moved up to those of every other authenticator of the
    /// same kind and period that makes the same codes ([`Authenticator::same_codes`]).
    ///
    /// Replay is per secret, not per name: a phone re-enrolled under a new name with its old
    /// secret, or one secret imported twice, would otherwise accept each code once per
    /// authenticator (attack review, issue 9 item 6). Enrollment and import refuse a second
    /// authenticator with a secret on file; this covers records that already hold one.
    pub fn replay_usage(&self, auth: &Authenticator) -> TokenUsage {
        let mut usage = self.token_usage(&auth.name);
        for other in &self.authenticators {
            if other.name == auth.name
                || other.kind != auth.kind
                || other.period != auth.period
                || !other.same_codes(auth)
            {
                continue;
            }
            let theirs = self.token_usage(&other.name);
            usage.last_step = usage.last_step.max(theirs.last_step);
            usage.next_counter = usage.next_counter.max(theirs.next_counter);
        }
        usage
    }

    /// Another authenticator that makes the same codes as `auth` ([`Authenticator::same_codes`]),
    /// whatever its name.
    pub fn same_codes_as(&self, auth: &Authenticator) -> Option<&Authenticator> {
        self.authenticators
            .iter()
            .find(|a| a.name != auth.name && a.same_codes(auth))
    }
}

/// TOTP or HOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Time-based.
    Totp,
    /// Counter-based.
    Hotp,
}

impl TokenKind {
    /// `totp` or `hotp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Hotp => "hotp",
        }
    }
}

/// One named token, e.g. `phone` or a spare `yubikey-oath`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authenticator {
    /// A name unique within the record.
    pub name: String,
    /// TOTP or HOTP.
    pub kind: TokenKind,
    /// The shared key, base32 in the file.
    #[serde(with = "secret_base32")]
    pub secret: Secret,
    /// HMAC hash.
    #[serde(with = "algorithm_name")]
    pub algorithm: Algorithm,
    /// Digits per code: checked to be 6-8 when the record is read, so a hand-edited
    /// `digits = 12` is a load error naming the file and line, not a `wrong-code` at every
    /// login.
    #[serde(with = "digits_value")]
    pub digits: Digits,
    /// TOTP seconds per step (30 when absent), checked to be 1-86400 when read.
    #[serde(
        default,
        with = "period_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub period: Option<Period>,
    /// HOTP: the first counter to accept, as provisioned. Logins move the real position in
    /// `[usage]`; provisioning can never move it backwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    /// If not empty, this authenticator is accepted only after a login with one of these SSH
    /// keys (`SHA256:` fingerprints; needs sshd's `ExposeAuthInfo yes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// Confirmed by a first correct code (or activated with `--no-confirm`).
    pub active: bool,
    /// When it was added.
    pub created: u64,
}

impl Authenticator {
    /// Parameters for a TOTP token (the values were checked when the record was read).
    pub fn totp_params(&self) -> TotpParams {
        TotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period.unwrap_or_default(),
        }
    }

    /// Whether `other` makes this authenticator's codes: the same secret (compared in
    /// constant time) and hash. Digits and period do not matter: a shorter code is the tail
    /// of a longer one for the same counter, and one app may show both.
    pub fn same_codes(&self, other: &Authenticator) -> bool {
        self.algorithm == other.algorithm && self.secret == other.secret
    }

    /// Parameters for an HOTP token.
    pub fn hotp_params(&self) -> HotpParams {
        HotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
        }
    }
}

/// Login state; only logins (and confirmation) write it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Counts the writes of this state: the store reads the newest of the copy in the record
    /// and the two in the login-state file (0 in records from before that file existed).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub generation: u64,
    /// Per authenticator name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, TokenUsage>,
    /// Hashes of backup codes already used (with the salt of the current set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_used: Vec<String>,
    /// Last successful second factor (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
    /// How it was passed: `totp`, `hotp` or `backup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_method: Option<String>,
    /// Recent failures per bucket: a familiar source, `unfamiliar` (every other source) or
    /// `local` (docs/ratelimit.md). Bounded: at most `familiar_sources` + 2 entries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, FailureCount>,
    /// Sources this user passed a second factor from, and when last (Unix seconds): each has
    /// a failure budget of its own. The `familiar_sources` most recent are kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub familiar: BTreeMap<String, u64>,
    /// Source addresses that passed recently, and until when they are not asked again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remembered: BTreeMap<String, u64>,
}

impl Usage {
    /// Nothing recorded yet.
    pub fn is_empty(&self) -> bool {
        self.generation == 0
            && self.tokens.is_empty()
            && self.backup_used.is_empty()
            && self.last_success.is_none()
            && self.last_method.is_none()
            && self.failures.is_empty()
            && self.familiar.is_empty()
            && self.remembered.is_empty()
    }
}

/// Login state of one authenticator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenUsage {
    /// TOTP: the last accepted step; it and every earlier step are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// HOTP: the next counter to accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_counter: Option<u64>,
    /// TOTP: the client clock's learned offset, in steps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drift: i64,
    /// Last accepted (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<u64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

mod secret_base32 {
    use serde::{Deserialize, Deserializer, Serializer};
    use sshield_otp::Secret;
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&secret.to_base32())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        Secret::from_base32(&text).map_err(serde::de::Error::custom)
    }
}

mod algorithm_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use sshield_otp::Algorithm;

    pub(super) fn serialize<S: Serializer>(a: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A whole number from the file, whatever its sign or type, so that every bad value (`-1`,
/// `"six"`, `6.5`) gets the same message naming the field and the fix, not serde's bare
/// "expected u32".
struct Whole(&'static str);

impl<'de> serde::de::Visitor<'de> for Whole {
    type Value = i128;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<i128, E> {
        Ok(i128::from(n))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<i128, E> {
        Ok(i128::from(n))
    }
}

/// `digits = N`: read through [`Digits::new`], so the file's line is named by the store
/// (toml's span of the value) together with the range and the fix.
mod digits_value {
    use serde::{Deserializer, Serializer};
    use sshield_otp::Digits;

    const FIX: &str = "set it to 6, 7 or 8, the number of digits the authenticator app shows";

    pub(super) fn serialize<S: Serializer>(d: &Digits, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(d.get())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digits, D::Error> {
        let n = d.deserialize_any(super::Whole("`digits` to be 6, 7 or 8"))?;
        u32::try_from(n)
            .ok()
            .and_then(|n| Digits::new(n).ok())
            .ok_or_else(|| {
                serde::de::Error::custom(format!("digits = {n} is not supported: {FIX}"))
            })
    }
}

/// `period = N`: read through [`Period::new`] (see `digits_value`).
mod period_value {
    use serde::{Deserializer, Serializer};
    use sshield_otp::Period;

    const FIX: &str = "set it to the seconds per code the authenticator app uses, 1 to 86400 \
                       (30 is usual), or remove the line for 30";

    pub(super) fn serialize<S: Serializer>(p: &Option<Period>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_u64(p.seconds()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Period>, D::Error> {
        let n = d.deserialize_any(super::Whole("`period` to be 1 to 86400 seconds"))?;
        u64::try_from(n)
            .ok()
            .and_then(|n| Period::new(n).ok())
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("period = {n} is not supported: {FIX}"))
            })
    }
}
