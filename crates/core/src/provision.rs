//! Changing who is enrolled: enroll, confirm, new backup codes, disable, enable, remove.
//!
//! These are the admin's operations, used by the `sshield` CLI and (later) the server. They
//! touch only the provisioning half of a record, except where noted: confirming a token uses
//! its first code, so that code is recorded as used.

use std::fmt;

use sshield_otp::{Algorithm, Digits, Period, Secret};
use zeroize::Zeroizing;

use crate::backup::{self, BackupCodes};
use crate::config::Policy;
use crate::engine::{check, Decision, DenyReason, Method, Response};
use crate::record::{Authenticator, TokenKind, UserRecord};
use crate::store::{Change, RecordStore, StoreError};
use crate::time::UnixTime;
use crate::username::UserName;

/// The authenticator name used when none is given.
pub const DEFAULT_AUTHENTICATOR: &str = "default";

/// What to enroll.
#[derive(Debug)]
pub struct Enrollment {
    /// The user.
    pub user: UserName,
    /// The authenticator's name within the record.
    pub name: String,
    /// TOTP or HOTP.
    pub kind: TokenKind,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: Digits,
    /// TOTP period.
    pub period: Period,
    /// HOTP first counter.
    pub counter: u64,
    /// A secret made elsewhere (config management), or `None` to generate one.
    pub secret: Option<Secret>,
    /// Activate at once instead of waiting for a first code.
    pub activate: bool,
    /// Replace an authenticator of the same name that has a different secret.
    pub replace: bool,
}

impl Enrollment {
    /// A TOTP token with the parameters every app supports (SHA-1, 6 digits, 30 s), a new
    /// secret, pending until confirmed. Adjust the fields for anything else.
    pub fn totp(user: UserName, name: &str) -> Self {
        Self {
            user,
            name: name.to_owned(),
            kind: TokenKind::Totp,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            period: Period::THIRTY,
            counter: 0,
            secret: None,
            activate: false,
            replace: false,
        }
    }
}

/// What enrolling did.
pub struct Enrolled {
    /// The authenticator as stored.
    pub authenticator: Authenticator,
    /// Backup codes issued now (empty if the user already had a set).
    pub backup_codes: Vec<Zeroizing<String>>,
    /// The same secret and parameters were already on file; nothing was written.
    pub unchanged: bool,
}

impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Backup codes are secrets: show how many, never which.
        f.debug_struct("Enrolled")
            .field("authenticator", &self.authenticator)
            .field(
                "backup_codes",
                &format_args!("[{} redacted]", self.backup_codes.len()),
            )
            .field("unchanged", &self.unchanged)
            .finish()
    }
}

/// Adds (or re-applies) an authenticator. Re-applying the same secret and parameters changes
/// nothing, not even login state, so config management can run it on every pass.
pub fn enroll(
    store: &RecordStore,
    e: Enrollment,
    now: UnixTime,
) -> Result<Enrolled, ProvisionError> {
    store.create_dir()?;
    let secret = match e.secret {
        Some(s) => s,
        None => {
            Secret::generate_default().map_err(|err| ProvisionError::Random(err.to_string()))?
        }
    };
    let wanted = Authenticator {
        name: e.name.clone(),
        kind: e.kind,
        secret,
        algorithm: e.algorithm,
        digits: e.digits,
        period: (e.kind == TokenKind::Totp).then_some(e.period),
        counter: (e.kind == TokenKind::Hotp).then_some(e.counter),
        ssh_keys: Vec::new(),
        active: e.activate,
        created: now.0,
    };
    store.update(&e.user, |slot| {
        let record = slot.get_or_insert_with(|| UserRecord::new(e.user.as_str(), now.0));
        if let Some(existing) = record.same_codes_as(&wanted) {
            return Err(ProvisionError::SecretOnFile {
                user: e.user.clone(),
                name: e.name.clone(),
                existing: existing.name.clone(),
            });
        }
        let mut unchanged = false;
        match record.authenticators.iter_mut().find(|a| a.name == e.name) {
            Some(existing) if same_token(existing, &wanted) => {
                unchanged = !e.activate || existing.active;
                existing.active |= e.activate;
            }
            Some(_) if !e.replace => {
                return Err(ProvisionError::AuthenticatorExists {
                    user: e.user.clone(),
                    name: e.name.clone(),
                })
            }
            Some(existing) => {
                *existing = wanted.clone();
                // A new secret starts a new history.
                record.usage.tokens.remove(&e.name);
            }
            None => record.authenticators.push(wanted.clone()),
        }
        let mut codes = Vec::new();
        if record.backup.is_empty() {
            codes = new_backup_set(record, now)?;
            unchanged = false;
        }
        let stored = record
            .authenticator(&e.name)
            .cloned()
            .unwrap_or(wanted.clone());
        let change = if unchanged {
            Change::Keep
        } else {
            Change::Save
        };
        Ok((
            change,
            Enrolled {
                authenticator: stored,
                backup_codes: codes,
                unchanged,
            },
        ))
    })
}

fn same_token(a: &Authenticator, b: &Authenticator) -> bool {
    a.secret == b.secret
        && a.kind == b.kind
        && a.algorithm == b.algorithm
        && a.digits == b.digits
        && a.period == b.period
}

fn new_backup_set(
    record: &mut UserRecord,
    now: UnixTime,
) -> Result<Vec<Zeroizing<String>>, ProvisionError> {
    let codes = backup::generate_set().map_err(|e| ProvisionError::Random(e.to_string()))?;
    record.backup = BackupCodes::from_plain(&codes, now.0)
        .map_err(|e| ProvisionError::Random(e.to_string()))?;
    record.usage.backup_used.clear();
    Ok(codes)
}

/// Activates a pending authenticator with its first correct code, which is then used up.
/// `name` picks one when several are pending. Backup codes do not confirm: the point is to
/// prove the app holds the right secret.
pub fn confirm(
    store: &RecordStore,
    user: &UserName,
    name: Option<&str>,
    code: &Response,
    now: UnixTime,
    policy: &Policy,
) -> Result<String, ProvisionError> {
    store.update(user, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| ProvisionError::NotEnrolled(user.clone()))?;
        let pending = |a: &Authenticator| !a.active && name.is_none_or(|n| a.name == n);
        if !record.authenticators.iter().any(pending) {
            return Err(ProvisionError::NothingPending(user.clone()));
        }
        match check(record, code, now, policy, pending, false) {
            Decision::Allow(
                Method::Totp { authenticator, .. } | Method::Hotp { authenticator },
            ) => {
                if let Some(a) = record
                    .authenticators
                    .iter_mut()
                    .find(|a| a.name == authenticator)
                {
                    a.active = true;
                }
                Ok((Change::Save, authenticator))
            }
            Decision::Allow(Method::Backup { .. } | Method::Push) => {
                Err(ProvisionError::Refused(DenyReason::WrongCode))
            }
            Decision::Deny(reason) => Err(ProvisionError::Refused(reason)),
        }
    })
}

/// Binds an authenticator to SSH keys (`SHA256:` fingerprints): from now on it is accepted
/// only after a login with one of them. An empty list unbinds it. Returns the authenticator's
/// name.
pub fn bind_keys(
    store: &RecordStore,
    user: &UserName,
    name: Option<&str>,
    fingerprints: Vec<String>,
) -> Result<String, ProvisionError> {
    store.update(user, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| ProvisionError::NotEnrolled(user.clone()))?;
        let auth = match name {
            Some(n) => record.authenticators.iter_mut().find(|a| a.name == n),
            None => record.authenticators.first_mut(),
        }
        .ok_or_else(|| ProvisionError::NoSuchAuthenticator {
            user: user.clone(),
            name: name.unwrap_or(DEFAULT_AUTHENTICATOR).to_owned(),
        })?;
        let changed = auth.ssh_keys != fingerprints;
        auth.ssh_keys = fingerprints;
        let name = auth.name.clone();
        Ok((if changed { Change::Save } else { Change::Keep }, name))
    })
}

/// Issues a new set of backup codes, voiding the old set (used or not).
pub fn renew_backup_codes(
    store: &RecordStore,
    user: &UserName,
    now: UnixTime,
) -> Result<Vec<Zeroizing<String>>, ProvisionError> {
    store.update(user, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| ProvisionError::NotEnrolled(user.clone()))?;
        Ok((Change::Save, new_backup_set(record, now)?))
    })
}

/// Switches a user's second factor off (`true`) or back on (`false`); their record is kept.
pub fn set_disabled(
    store: &RecordStore,
    user: &UserName,
    disabled: bool,
) -> Result<bool, ProvisionError> {
    store.update(user, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| ProvisionError::NotEnrolled(user.clone()))?;
        let changed = record.disabled != disabled;
        record.disabled = disabled;
        Ok((if changed { Change::Save } else { Change::Keep }, changed))
    })
}

/// Deletes a user's record, or one named authenticator of it.
pub fn remove(
    store: &RecordStore,
    user: &UserName,
    authenticator: Option<&str>,
) -> Result<(), ProvisionError> {
    store.update(user, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| ProvisionError::NotEnrolled(user.clone()))?;
        match authenticator {
            None => *slot = None,
            Some(name) => {
                let before = record.authenticators.len();
                record.authenticators.retain(|a| a.name != name);
                if record.authenticators.len() == before {
                    return Err(ProvisionError::NoSuchAuthenticator {
                        user: user.clone(),
                        name: name.to_owned(),
                    });
                }
                record.usage.tokens.remove(name);
            }
        }
        Ok((Change::Save, ()))
    })
}

/// Why a provisioning operation did nothing.
#[derive(Debug)]
pub enum ProvisionError {
    /// The store failed or refused.
    Store(StoreError),
    /// The user has no record.
    NotEnrolled(UserName),
    /// An authenticator of that name exists with a different secret.
    AuthenticatorExists {
        /// The user.
        user: UserName,
        /// The authenticator's name.
        name: String,
    },
    /// Another authenticator of the user already has this secret: both would accept each
    /// code (issue 9 item 6).
    SecretOnFile {
        /// The user.
        user: UserName,
        /// The authenticator being enrolled.
        name: String,
        /// The one that has the secret.
        existing: String,
    },
    /// No authenticator of that name.
    NoSuchAuthenticator {
        /// The user.
        user: UserName,
        /// The name asked for.
        name: String,
    },
    /// Nothing to confirm.
    NothingPending(UserName),
    /// The confirmation code was refused.
    Refused(DenyReason),
    /// The OS random source failed.
    Random(String),
}

impl From<StoreError> for ProvisionError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::NotEnrolled(u) => write!(f, "{u} is not enrolled (sshield enroll {u})"),
            Self::AuthenticatorExists { user, name } => write!(
                f,
                "{user} already has an authenticator named {name:?} with a different secret; \
                 pass --name NEW to add another, or --replace to replace it"
            ),
            Self::SecretOnFile {
                user,
                name,
                existing,
            } => write!(
                f,
                "{user}'s authenticator {existing:?} already has this secret, so {name:?} would \
                 be the same token under a second name; to rename it, remove the old one first \
                 (sshield remove {user} --name {existing}) and enroll again; for a new phone, \
                 enroll without --secret so it gets a secret of its own"
            ),
            Self::NoSuchAuthenticator { user, name } => {
                write!(
                    f,
                    "{user} has no authenticator named {name:?} (see sshield status {user})"
                )
            }
            Self::NothingPending(u) => {
                write!(f, "{u} has no authenticator waiting for confirmation")
            }
            Self::Refused(reason) => write!(f, "code refused: {reason}"),
            Self::Random(e) => write!(f, "the system random number generator failed: {e}"),
        }
    }
}

impl std::error::Error for ProvisionError {}
