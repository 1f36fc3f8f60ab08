//! The document `sshield export` writes and `sshield-server user import --from-sshield` reads:
//! a host's users as they are stored (authenticators with their secrets, backup-code hashes,
//! login state), so a fleet server can take them over without anyone scanning a QR code again
//! and without accepting a code the host already accepted.
//!
//! It is plain data with serde derives; the CLI writes it as JSON and the server reads it.
//! [`HostExport::check`] is what a reader runs before storing anything.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::record::{UserRecord, OLDEST_RECORD_VERSION, RECORD_VERSION};
use crate::UserName;

/// The `format` field: what the document is.
pub const EXPORT_FORMAT: &str = "sshield-export";
/// The `version` field this sshield writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// A host's store, exported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostExport {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`].
    pub version: u32,
    /// The host it came from (its node name).
    pub host: String,
    /// When it was written (Unix seconds).
    pub exported_at: u64,
    /// The users, each with the newest login state merged in.
    pub users: Vec<UserRecord>,
}

impl HostExport {
    /// A document of `users` from `host` at `now`.
    pub fn new(host: &str, now: u64, users: Vec<UserRecord>) -> Self {
        Self {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
            host: host.to_owned(),
            exported_at: now,
            users,
        }
    }

    /// Checks what serde cannot: the format and version, each user's name and record
    /// version, and that no user appears twice. The message names the field
    /// (`users[2].user`) and says what to do.
    pub fn check(&self) -> Result<(), String> {
        if self.format != EXPORT_FORMAT {
            return Err(format!(
                "field `format` is {:?}, not {EXPORT_FORMAT:?}: this is not a file written by \
                 `sshield export`",
                self.format
            ));
        }
        if self.version != EXPORT_VERSION {
            return Err(format!(
                "field `version` is {}, and this sshield reads version {EXPORT_VERSION}; export \
                 again with an sshield of the same release",
                self.version
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, record) in self.users.iter().enumerate() {
            UserName::new(&record.user)
                .map_err(|e| format!("field `users[{i}].user` ({:?}): {e}", record.user))?;
            if !(OLDEST_RECORD_VERSION..=RECORD_VERSION).contains(&record.version) {
                return Err(format!(
                    "field `users[{i}].version` is {}; this sshield reads record versions \
                     {OLDEST_RECORD_VERSION} to {RECORD_VERSION}",
                    record.version
                ));
            }
            if !seen.insert(record.user.as_str()) {
                return Err(format!(
                    "field `users[{i}].user`: {:?} appears twice; keep one of them",
                    record.user
                ));
            }
        }
        Ok(())
    }
}
