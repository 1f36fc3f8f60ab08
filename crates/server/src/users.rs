//! Users on the server, as `sshield-server user ...` manages them: the same records and rules
//! as a host's `sshield enroll`, `confirm`, `backup-codes`, `disable`, `remove` and `import`,
//! stored sealed in the database instead of one file per user.

use std::fmt;
use std::path::Path;

use sshield_core::backup::{self, BackupCodes};
use sshield_core::import::{self, ImportError, ImportPlan};
use sshield_core::{
    check_record, Authenticator, Decision, Method, Response, TokenKind, UnixTime, UserName,
    UserRecord,
};
use sshield_otp::{Algorithm, Digits, KeyUri, OtpKind, Period, Secret};
use zeroize::Zeroizing;

use crate::api::App;
use crate::records::{self, RecordError, Write};
use crate::storage::{Storage, UserRow};

/// The authenticator `user enroll` makes.
pub const AUTHENTICATOR: &str = "default";
/// The issuer apps show above the account.
pub const ISSUER: &str = "sshield";

/// Why a user command failed.
#[derive(Debug)]
pub enum UserError {
    /// Reading or writing the record.
    Record(RecordError),
    /// The user has no record.
    NotEnrolled(String),
    /// `enroll` on a user who has an authenticator already.
    AlreadyEnrolled(String),
    /// `confirm` with nothing pending.
    NothingPending(String),
    /// `confirm` with a code that is not the pending authenticator's next one.
    Refused {
        /// The user.
        user: String,
        /// The engine's reason.
        reason: &'static str,
    },
    /// The random number generator failed.
    Random(String),
    /// An import file.
    Import(ImportError),
    /// Users of an import file that the server has already.
    ImportConflicts(Vec<String>),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Record(e) => e.fmt(f),
            Self::NotEnrolled(u) => write!(
                f,
                "user {u:?} is not enrolled on this server (sshield-server user enroll {u})"
            ),
            Self::AlreadyEnrolled(u) => write!(
                f,
                "user {u:?} already has an authenticator; remove it first \
                 (sshield-server user remove {u}) to enroll a new one"
            ),
            Self::NothingPending(u) => write!(
                f,
                "user {u:?} has no authenticator waiting for confirmation"
            ),
            Self::Refused { user, reason } => write!(
                f,
                "the code does not confirm {user:?}'s authenticator ({reason}); type the code \
                 the app shows now"
            ),
            Self::Random(e) => write!(f, "the system's random number generator failed: {e}"),
            Self::Import(e) => e.fmt(f),
            Self::ImportConflicts(users) => write!(
                f,
                "nothing imported: the server already has {}; remove them first \
                 (sshield-server user remove NAME) or leave them out of the file",
                users.join(", ")
            ),
        }
    }
}

impl std::error::Error for UserError {}

impl From<RecordError> for UserError {
    fn from(e: RecordError) -> Self {
        Self::Record(e)
    }
}

/// What `enroll` made: the URI for the app, and the backup codes, shown once.
pub struct Enrolled {
    /// The `otpauth://` URI (it holds the secret).
    pub uri: Zeroizing<String>,
    /// Ten one-time codes, in plain text only now.
    pub backup_codes: Vec<Zeroizing<String>>,
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Enrolled([redacted])")
    }
}

fn random(e: impl fmt::Display) -> UserError {
    UserError::Random(e.to_string())
}

/// Adds a TOTP authenticator (SHA-1, 6 digits, 30 s: what every app supports), pending until
/// a first code confirms it, and a set of backup codes.
pub async fn enroll(app: &App, user: &UserName, now: UnixTime) -> Result<Enrolled, UserError> {
    let secret = Secret::generate_default().map_err(random)?;
    let codes = backup::generate_set().map_err(random)?;
    let set = BackupCodes::from_plain(&codes, now.0).map_err(random)?;
    let authenticator = Authenticator {
        name: AUTHENTICATOR.to_owned(),
        kind: TokenKind::Totp,
        secret: secret.clone(),
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        period: Some(Period::THIRTY),
        counter: None,
        ssh_keys: Vec::new(),
        active: false,
        created: now.0,
    };
    records::update(app, user, now, |slot| {
        if slot.as_ref().is_some_and(|r| !r.authenticators.is_empty()) {
            return Err(UserError::AlreadyEnrolled(user.as_str().to_owned()));
        }
        let record = slot.get_or_insert_with(|| UserRecord::new(user.as_str(), now.0));
        record.authenticators.push(authenticator.clone());
        record.backup = set.clone();
        record.usage.backup_used.clear();
        Ok((Write::Save, ()))
    })
    .await??;
    let uri = KeyUri {
        kind: OtpKind::Totp {
            period: Period::THIRTY,
        },
        issuer: Some(ISSUER.to_owned()),
        account: user.as_str().to_owned(),
        secret,
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
    }
    .to_uri();
    Ok(Enrolled {
        uri,
        backup_codes: codes,
    })
}

/// Activates the pending authenticator with its first code, which is then used up. Backup
/// codes do not confirm: the point is to prove the app holds the right secret.
pub async fn confirm(
    app: &App,
    user: &UserName,
    code: &Response,
    now: UnixTime,
) -> Result<String, UserError> {
    let name = user.as_str().to_owned();
    records::update(app, user, now, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| UserError::NotEnrolled(name.clone()))?;
        let pending = record
            .authenticators
            .iter()
            .find(|a| !a.active)
            .cloned()
            .ok_or_else(|| UserError::NothingPending(name.clone()))?;
        // The engine checks active authenticators only: ask it about a copy of the record
        // that holds the pending one alone, activated, without backup codes, so the window
        // and the replay rule are the engine's.
        let mut trial = UserRecord::new(&record.user, record.created);
        trial.usage = record.usage.clone();
        trial.authenticators = vec![Authenticator {
            active: true,
            ..pending.clone()
        }];
        match check_record(&mut trial, code, now, &app.policy, None) {
            Decision::Allow(Method::Totp { .. } | Method::Hotp { .. }) => {
                record.usage.tokens = trial.usage.tokens;
                if let Some(a) = record
                    .authenticators
                    .iter_mut()
                    .find(|a| a.name == pending.name)
                {
                    a.active = true;
                }
                Ok((Write::Save, pending.name))
            }
            Decision::Allow(Method::Backup { .. }) => Err(UserError::Refused {
                user: name.clone(),
                reason: "wrong-code",
            }),
            Decision::Deny(reason) => Err(UserError::Refused {
                user: name.clone(),
                reason: reason.as_str(),
            }),
        }
    })
    .await?
}

/// A new set of backup codes, voiding the old one.
pub async fn renew_backup_codes(
    app: &App,
    user: &UserName,
    now: UnixTime,
) -> Result<Vec<Zeroizing<String>>, UserError> {
    let codes = backup::generate_set().map_err(random)?;
    let set = BackupCodes::from_plain(&codes, now.0).map_err(random)?;
    records::update(app, user, now, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| UserError::NotEnrolled(user.as_str().to_owned()))?;
        record.backup = set.clone();
        record.usage.backup_used.clear();
        Ok::<_, UserError>((Write::Save, ()))
    })
    .await??;
    Ok(codes)
}

/// Switches a user's second factor off (`true`) or on; true if that changed anything.
pub async fn set_disabled(
    app: &App,
    user: &UserName,
    disabled: bool,
    now: UnixTime,
) -> Result<bool, UserError> {
    records::update(app, user, now, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| UserError::NotEnrolled(user.as_str().to_owned()))?;
        let changed = record.disabled != disabled;
        record.disabled = disabled;
        Ok((if changed { Write::Save } else { Write::Keep }, changed))
    })
    .await?
}

/// Removes a user and everything stored about them (the audit log keeps their history).
pub async fn remove(app: &App, user: &UserName, now: UnixTime) -> Result<(), UserError> {
    records::update(app, user, now, |slot| match slot {
        Some(_) => Ok((Write::Delete, ())),
        None => Err(UserError::NotEnrolled(user.as_str().to_owned())),
    })
    .await?
}

/// Every user, without secrets.
pub async fn list(app: &App) -> Result<Vec<UserRow>, UserError> {
    Ok(app.store.list_users().await.map_err(RecordError::Storage)?)
}

/// Reads pam_oath's usersfile.
pub fn read_users_oath(path: &Path, now: UnixTime) -> Result<ImportPlan, UserError> {
    import::users_oath::read(path, now).map_err(UserError::Import)
}

/// Reads `user`'s `~/.google_authenticator`.
pub fn read_google_authenticator(
    path: &Path,
    user: &UserName,
    now: UnixTime,
) -> Result<ImportPlan, UserError> {
    import::google_authenticator::read(path, user, now).map_err(UserError::Import)
}

/// Stores the users of `plan`, active, with their replay state (a code the old tool accepted
/// is not accepted again) and their backup codes. All or nothing: if the server has any of
/// them already, nothing is imported. Returns the names imported.
pub async fn import(app: &App, plan: &ImportPlan, now: UnixTime) -> Result<Vec<String>, UserError> {
    let mut taken = Vec::new();
    for imported in &plan.users {
        if app
            .store
            .load_user(imported.user.as_str())
            .await
            .map_err(RecordError::Storage)?
            .is_some()
        {
            taken.push(imported.user.as_str().to_owned());
        }
    }
    if !taken.is_empty() {
        return Err(UserError::ImportConflicts(taken));
    }
    let mut done = Vec::new();
    for imported in &plan.users {
        let backup = if imported.backup_codes.is_empty() {
            BackupCodes::default()
        } else {
            BackupCodes::from_plain(&imported.backup_codes, now.0).map_err(random)?
        };
        let name = imported.user.as_str().to_owned();
        records::update(app, &imported.user, now, |slot| {
            if slot.is_some() {
                // Enrolled between the check above and now: leave theirs alone.
                return Err(UserError::ImportConflicts(vec![name.clone()]));
            }
            let mut record = UserRecord::new(&name, now.0);
            record.authenticators = imported
                .authenticators
                .iter()
                .map(|a| Authenticator {
                    active: true,
                    ..a.clone()
                })
                .collect();
            record.usage.tokens = imported.usage.clone();
            record.backup = backup.clone();
            *slot = Some(record);
            Ok((Write::Save, ()))
        })
        .await??;
        done.push(name);
    }
    Ok(done)
}
