//! What an importer read: per user, the authenticators, their login state and backup codes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::record::{Authenticator, TokenUsage};
use crate::username::UserName;

/// One user as read from an old tool's file, ready for [`apply`](fn@super::apply).
pub struct ImportedUser {
    /// The login name.
    pub user: UserName,
    /// The authenticators, all active: the user's phone already produces their codes.
    pub authenticators: Vec<Authenticator>,
    /// Login state per authenticator name: the last used TOTP step or the next HOTP counter,
    /// so that a code the old tool already accepted is not accepted again.
    pub usage: BTreeMap<String, TokenUsage>,
    /// Unused one-time codes in plain text (google-authenticator's scratch codes); hashed
    /// when applied. Empty if the old tool had none.
    pub backup_codes: Vec<Zeroizing<String>>,
    /// The file the user came from.
    pub source: PathBuf,
    /// The 1-based line of that file where the user first appears.
    pub source_line: usize,
}

impl fmt::Debug for ImportedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Backup codes are secrets until used: show how many, never which.
        f.debug_struct("ImportedUser")
            .field("user", &self.user)
            .field("authenticators", &self.authenticators)
            .field("usage", &self.usage)
            .field(
                "backup_codes",
                &format_args!("[{} redacted]", self.backup_codes.len()),
            )
            .field("source", &self.source)
            .field("source_line", &self.source_line)
            .finish()
    }
}

/// Everything one import will do, read in full before anything is written.
#[derive(Debug, Default)]
pub struct ImportPlan {
    /// The users, in the order the file names them.
    pub users: Vec<ImportedUser>,
    /// Things the admin should know that do not stop the import: settings sshield does not
    /// carry over, lines the old tool ignored. Each names its file (and line, where there is
    /// one); none contains a secret.
    pub notes: Vec<String>,
}

impl ImportPlan {
    /// Appends another plan (e.g. several users' `~/.google_authenticator` files).
    pub fn extend(&mut self, other: ImportPlan) {
        self.users.extend(other.users);
        self.notes.extend(other.notes);
    }
}
