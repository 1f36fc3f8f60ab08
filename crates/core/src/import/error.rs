//! Why an import stopped: each message names the file and line (or record) and the fix, and
//! never contains a secret, a PIN or a code.

use std::fmt;
use std::path::PathBuf;

use sshield_otp::{ParamError, SecretError};

use crate::store::StoreError;
use crate::user_file::UserFileError;
use crate::username::{UserName, UserNameError};

/// Why nothing was imported.
#[derive(Debug)]
pub enum ImportError {
    /// The file could not be read, or is a symlink, not a regular file, too large, or not
    /// text.
    File(UserFileError),
    /// A line that cannot be imported.
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// A plan names the same user twice (e.g. two files merged into one plan).
    DuplicateUser {
        /// The user.
        user: UserName,
        /// Where the user first appears, as `file:line`.
        first: String,
        /// Where the user appears again, as `file:line`.
        again: String,
    },
    /// Users already have different authenticators or backup codes under the same names.
    Conflicts(Vec<Conflict>),
    /// The record store refused or failed; the message names the path.
    Store(StoreError),
    /// The OS random source failed (hashing backup codes needs a salt).
    Random(String),
}

/// What is wrong with one line of an imported file.
#[derive(Debug)]
pub enum LineProblem {
    /// users.oath: fewer than 4 or more than 7 fields.
    FieldCount {
        /// Fields found.
        found: usize,
    },
    /// users.oath: the first field is not a pam_oath token type.
    UnknownType {
        /// The field as shown (quoted if short, else described).
        shown: String,
    },
    /// users.oath: a token type asking for a digit count other than 6, 7 or 8.
    Digits {
        /// The token type as shown (quoted).
        token_type: String,
        /// The digit count asked for.
        digits: String,
    },
    /// users.oath: a `HOTP/T<seconds>` period sshield cannot use.
    Period {
        /// The token type as shown (quoted).
        token_type: String,
        /// Why.
        error: ParamError,
    },
    /// users.oath: the line has a PIN, which sshield has no place for.
    Pin {
        /// The user the line is for.
        user: String,
    },
    /// The user name cannot be a record.
    UserName {
        /// The name as shown (quoted if short, else described).
        shown: String,
        /// Why.
        error: UserNameError,
    },
    /// The secret is not valid hex or base32, or has an unusable length.
    Secret(SecretError),
    /// users.oath: the counter field is not a whole number.
    Counter,
    /// users.oath: the last-OTP field is not 6 to 8 digits.
    LastOtp,
    /// users.oath: the last-login field is not a pam_oath timestamp.
    LastTime,
    /// google-authenticator: the first line is not a secret.
    NoSecret,
    /// google-authenticator: an option with a value google-authenticator itself refuses.
    OptionValue {
        /// The option name.
        option: &'static str,
        /// What it takes.
        expected: &'static str,
    },
    /// google-authenticator: an option given twice.
    DuplicateOption {
        /// The option name.
        option: &'static str,
        /// Where it first appears.
        first_line: usize,
    },
    /// google-authenticator: neither an option nor a scratch code.
    NotAScratchCode,
    /// google-authenticator: neither `TOTP_AUTH` nor `HOTP_COUNTER`.
    NoTokenMode,
}

/// A user whose record already has something different under the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The user.
    pub user: UserName,
    /// What differs.
    pub kind: ConflictKind,
    /// Where the imported user comes from, as `file:line`.
    pub origin: String,
}

/// What differs between the record and the import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictKind {
    /// An authenticator of this name with a different secret or parameters.
    Authenticator(String),
    /// A set of backup codes that does not contain the imported codes.
    BackupCodes,
    /// The imported authenticator `name` has the secret of `existing` (on file, or earlier in
    /// the import): both would accept each code. `--replace` does not override this.
    SameSecret {
        /// The imported authenticator.
        name: String,
        /// The one that already has its secret.
        existing: String,
    },
}

impl ConflictKind {
    /// Whether `--replace` resolves it.
    fn replaceable(&self) -> bool {
        !matches!(self, Self::SameSecret { .. })
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => e.fmt(f),
            Self::Line {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
            Self::DuplicateUser { user, first, again } => write!(
                f,
                "{again}: user {user} is already imported from {first}; import one of the two"
            ),
            Self::Conflicts(conflicts) => {
                write!(
                    f,
                    "nothing was imported: {} already differ from the record store:",
                    plural(conflicts.len(), "entry", "entries")
                )?;
                for c in conflicts {
                    write!(f, "\n  {c}")?;
                }
                if conflicts.iter().any(|c| c.kind.replaceable()) {
                    write!(
                        f,
                        "\npass --replace to overwrite them (a replaced authenticator's login \
                         history starts over), or leave those users out of the import"
                    )?;
                }
                Ok(())
            }
            Self::Store(e) => e.fmt(f),
            Self::Random(e) => write!(f, "the system random number generator failed: {e}"),
        }
    }
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldCount { found } => write!(
                f,
                "found {}; expected TYPE USER PIN SECRET [COUNTER [LAST_OTP [LAST_TIME]]] \
                 separated by spaces or tabs",
                plural(*found, "field", "fields")
            ),
            Self::UnknownType { shown } => write!(
                f,
                "unknown token type {shown}; expected HOTP, HOTP/E[/digits] or \
                 HOTP/T<seconds>[/digits]"
            ),
            Self::Digits { token_type, digits } => write!(
                f,
                "token type {token_type} asks for {digits} digits; sshield and the apps \
                 support 6, 7 or 8"
            ),
            Self::Period { token_type, error } => {
                write!(f, "token type {token_type}: {error}")
            }
            Self::Pin { user } => write!(
                f,
                "the token of {user} has a PIN (field 3), which cannot be carried over: sshield \
                 asks for the code alone and has no PINs; set the field to \"-\" (the account \
                 password, checked by sshd, stays the first factor) and import again"
            ),
            Self::UserName { shown, error } => write!(f, "user name {shown}: {error}"),
            Self::Secret(e) => write!(f, "the secret cannot be used: {e}"),
            Self::Counter => write!(
                f,
                "field 5 (the counter) must be a whole number, as pam_oath writes it"
            ),
            Self::LastOtp => write!(
                f,
                "field 6 (the last one-time password) must be 6 to 8 digits, as pam_oath \
                 writes it"
            ),
            Self::LastTime => write!(
                f,
                "field 7 (the last login time) must look like 2024-01-31T13:45:00L, as pam_oath \
                 writes it"
            ),
            Self::NoSecret => write!(
                f,
                "the first line must be the base32 secret, as google-authenticator writes it"
            ),
            Self::OptionValue { option, expected } => {
                write!(f, "\" {option} takes {expected}")
            }
            Self::DuplicateOption { option, first_line } => write!(
                f,
                "\" {option} appears again (first on line {first_line}); keep one of the two"
            ),
            Self::NotAScratchCode => write!(
                f,
                "neither an option (\" NAME ...) nor an 8-digit scratch code; fix or remove \
                 the line"
            ),
            Self::NoTokenMode => write!(
                f,
                "neither \" TOTP_AUTH nor \" HOTP_COUNTER is set, so google-authenticator \
                 accepted only scratch codes; add the line \" TOTP_AUTH if the app shows \
                 time-based codes"
            ),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConflictKind::Authenticator(name) => write!(
                f,
                "{}: {} already has an authenticator named {name:?} with a different secret \
                 or parameters",
                self.origin, self.user
            ),
            ConflictKind::SameSecret { name, existing } => write!(
                f,
                "{}: {}'s authenticator {existing:?} already has the secret of {name:?}, so both \
                 would accept each code; import each secret once: leave out the duplicate line or \
                 file, or if {existing:?} is on file from before, remove it first (sshield remove \
                 {} --name {existing})",
                self.origin, self.user, self.user
            ),
            ConflictKind::BackupCodes => write!(
                f,
                "{}: {} already has a different set of backup codes",
                self.origin, self.user
            ),
        }
    }
}

impl std::error::Error for ImportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::File(e) => Some(e),
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<UserFileError> for ImportError {
    fn from(e: UserFileError) -> Self {
        Self::File(e)
    }
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A field from the file, for a message: quoted if short, otherwise only its length, so that
/// a secret written into the wrong column never reaches a terminal or a log. (No usable
/// secret is shorter than 16 characters: 80 bits in base32, or 20 in hex.)
pub(crate) fn shown_field(field: &str) -> String {
    const LONGEST_SHOWN: usize = 15;
    if field.chars().count() <= LONGEST_SHOWN {
        format!("{field:?}")
    } else {
        format!("(a {}-character field, not shown)", field.chars().count())
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
