//! Users on the server, as `sshield-server user ...` manages them: the same records and rules
//! as a host's `sshield enroll`, `confirm`, `backup-codes`, `disable`, `remove` and `import`,
//! stored sealed in the database instead of one file per user.

use std::fmt;
use std::path::Path;

use sshield_core::backup::{self, BackupCodes};
use sshield_core::export::HostExport;
use sshield_core::import::{self, ImportError, ImportPlan};
use sshield_core::ratelimit::Origin;
use sshield_core::{
    check_record, Authenticator, Decision, DenyReason, Method, Response, TokenKind, UnixTime,
    UserName, UserRecord,
};
use sshield_otp::{Algorithm, Digits, KeyUri, OtpKind, Period, Secret};
use zeroize::Zeroizing;

use crate::api::App;
use crate::records::{self, RecordError, Write};
use crate::storage::{Storage, StorageError, UserRow};

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
    /// A document from `sshield export` that cannot be read or is not valid.
    Export {
        /// The file.
        path: String,
        /// What is wrong, with line and column or field.
        message: String,
    },
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
            Self::Export { path, message } => {
                write!(f, "{path}: {message}; nothing was imported")
            }
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

/// A new TOTP authenticator named `name` with the defaults every app supports (SHA-1,
/// 6 digits, 30 s), pending until a first code confirms it, and its `otpauth://` URI for
/// `user`. `user enroll` and the phone's authenticator-app step both make theirs here.
fn new_totp(
    user: &UserName,
    name: &str,
    now: UnixTime,
) -> Result<(Authenticator, Zeroizing<String>), UserError> {
    let secret = Secret::generate_default().map_err(random)?;
    let uri = KeyUri {
        kind: OtpKind::Totp {
            period: Period::THIRTY,
        },
        issuer: Some(ISSUER.to_owned()),
        account: user.as_str().to_owned(),
        secret: secret.clone(),
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
    }
    .to_uri();
    let authenticator = Authenticator {
        name: name.to_owned(),
        kind: TokenKind::Totp,
        secret,
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        period: Some(Period::THIRTY),
        counter: None,
        ssh_keys: Vec::new(),
        active: false,
        created: now.0,
    };
    Ok((authenticator, uri))
}

/// Adds a TOTP authenticator (SHA-1, 6 digits, 30 s: what every app supports), pending until a
/// first code confirms it, and a set of backup codes.
pub async fn enroll(app: &App, user: &UserName, now: UnixTime) -> Result<Enrolled, UserError> {
    let (authenticator, uri) = new_totp(user, AUTHENTICATOR, now)?;
    let codes = backup::generate_set().map_err(random)?;
    let set = BackupCodes::from_plain(&codes, now.0).map_err(random)?;
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
    Ok(Enrolled {
        uri,
        backup_codes: codes,
    })
}

/// What [`add_app`] made: the app's authenticator, pending, and how to put it into an app.
pub struct AppAdded {
    /// The authenticator's name in the user's record.
    pub name: String,
    /// The `otpauth://` URI (it holds the secret), for the QR code.
    pub uri: Zeroizing<String>,
    /// The secret in base32, for typing into an app by hand.
    pub secret: Zeroizing<String>,
}

impl fmt::Debug for AppAdded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppAdded({:?}, [redacted])", self.name)
    }
}

/// Adds an authenticator app to an enrolled user: a TOTP authenticator named `name`, made by
/// the same code and with the same defaults as [`enroll`]'s, pending until [`confirm`].
/// Whatever pending authenticator the user had is replaced (a user has at most one, so a code
/// confirms the one just shown); a confirmed one is never touched, and a confirmed one named
/// `name` is refused. The backup codes stay as they are.
pub async fn add_app(
    app: &App,
    user: &UserName,
    name: &str,
    now: UnixTime,
) -> Result<AppAdded, UserError> {
    let (authenticator, uri) = new_totp(user, name, now)?;
    let secret = authenticator.secret.to_base32();
    records::update(app, user, now, |slot| {
        let record = slot
            .as_mut()
            .ok_or_else(|| UserError::NotEnrolled(user.as_str().to_owned()))?;
        if record
            .authenticators
            .iter()
            .any(|a| a.name == name && a.active)
        {
            return Err(UserError::AlreadyEnrolled(user.as_str().to_owned()));
        }
        let dropped: Vec<String> = record
            .authenticators
            .iter()
            .filter(|a| !a.active)
            .map(|a| a.name.clone())
            .collect();
        record.authenticators.retain(|a| a.active);
        for gone in &dropped {
            record.usage.tokens.remove(gone);
        }
        record.authenticators.push(authenticator.clone());
        Ok((Write::Save, ()))
    })
    .await??;
    Ok(AppAdded {
        name: name.to_owned(),
        uri,
        secret,
    })
}

/// Activates the pending authenticator with its first code, which is then used up. Backup
/// codes do not confirm: the point is to prove the app holds the right secret.
///
/// `from` is where a code typed by the user came from (a phone's page): there a wrong or
/// replayed code counts as a failure against the user from that origin, and a locked origin
/// is refused without trying the code, as for a login (`[rate_limit]`), so six digits cannot
/// be guessed. The admin's `user confirm` passes `None`.
pub async fn confirm(
    app: &App,
    user: &UserName,
    code: &Response,
    from: Option<&Origin>,
    now: UnixTime,
) -> Result<String, UserError> {
    let name = user.as_str().to_owned();
    let limits = &app.rate_limit;
    let counted = from.filter(|_| limits.enabled);
    let refused = |reason: &'static str| UserError::Refused {
        user: name.clone(),
        reason,
    };
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
        if let Some(origin) = counted {
            if record.limits().locked(origin, now.0).is_some() {
                return Ok::<_, UserError>((Write::Keep, Err(refused("locked"))));
            }
        }
        // The engine checks active authenticators only: ask it about a copy of the record
        // that holds the pending one alone, activated, without backup codes, so the window
        // and the replay rule are the engine's.
        let mut trial = UserRecord::new(&record.user, record.created);
        trial.usage = record.usage.clone();
        trial.authenticators = vec![Authenticator {
            active: true,
            ..pending.clone()
        }];
        Ok::<_, UserError>(
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
                    if let Some(origin) = counted {
                        record.limits().succeeded(origin, now.0, limits);
                    }
                    (Write::Save, Ok(pending.name))
                }
                Decision::Allow(Method::Backup { .. } | Method::Push) => {
                    (Write::Keep, Err(refused("wrong-code")))
                }
                Decision::Deny(reason @ (DenyReason::WrongCode | DenyReason::Replayed)) => {
                    match counted {
                        Some(origin) => {
                            record.limits().failed(origin, now.0, limits);
                            (Write::Save, Err(refused(reason.as_str())))
                        }
                        None => (Write::Keep, Err(refused(reason.as_str()))),
                    }
                }
                Decision::Deny(reason) => (Write::Keep, Err(refused(reason.as_str()))),
            },
        )
    })
    .await??
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
/// is not accepted again) and their backup codes. All or nothing (see [`import_records`]).
/// Returns the names imported.
pub async fn import(app: &App, plan: &ImportPlan, now: UnixTime) -> Result<Vec<String>, UserError> {
    let mut records = Vec::with_capacity(plan.users.len());
    for imported in &plan.users {
        let mut record = UserRecord::new(imported.user.as_str(), now.0);
        record.authenticators = imported
            .authenticators
            .iter()
            .map(|a| Authenticator {
                active: true,
                ..a.clone()
            })
            .collect();
        record.usage.tokens = imported.usage.clone();
        if !imported.backup_codes.is_empty() {
            record.backup =
                BackupCodes::from_plain(&imported.backup_codes, now.0).map_err(random)?;
        }
        records.push(record);
    }
    import_records(app, &records, now).await
}

/// Reads a document written by a host's `sshield export` (`-`: standard input), checked whole before anything is
/// stored: a syntax error or unknown field names its line and column, a bad value its field.
pub fn read_sshield_export(path: &Path) -> Result<HostExport, UserError> {
    let bad = |message: String| UserError::Export {
        path: path.display().to_string(),
        message,
    };
    let read = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    let text = Zeroizing::new(read.map_err(|e| {
        bad(format!(
            "cannot read it: {e}; give the file `sshield export --output FILE` wrote on the host \
             (or `-` and pipe `sshield export` in)"
        ))
    })?);
    let document: HostExport = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "line {}, column {}: {}; the file must be exactly as `sshield export` wrote it",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ))
    })?;
    document.check().map_err(bad)?;
    Ok(document)
}

/// serde_json's message without its trailing " at line L column C" (said once, in front).
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i])
}

/// Stores `records` as they are (authenticators, backup-code hashes and login state, so a code
/// used before is refused here too), sealed, in one transaction: if the server has any of
/// them already, or the database fails, none is stored. Returns the names imported.
pub async fn import_records(
    app: &App,
    records: &[UserRecord],
    now: UnixTime,
) -> Result<Vec<String>, UserError> {
    let mut taken = Vec::new();
    for record in records {
        if app
            .store
            .load_user(&record.user)
            .await
            .map_err(RecordError::Storage)?
            .is_some()
        {
            taken.push(record.user.clone());
        }
    }
    if !taken.is_empty() {
        return Err(UserError::ImportConflicts(taken));
    }
    let rows = records
        .iter()
        .map(|record| records::row_for(app, record, 1, now))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RecordError::Seal)?;
    match app.store.create_users(&rows).await {
        Ok(()) => Ok(records.iter().map(|r| r.user.clone()).collect()),
        // Enrolled between the check above and now: theirs is kept, nothing is imported.
        Err(StorageError::Exists { name, .. }) => Err(UserError::ImportConflicts(vec![name])),
        Err(e) => Err(RecordError::Storage(e).into()),
    }
}
