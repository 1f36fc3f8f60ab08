//! Who a user is to the system, through NSS (so LDAP, SSSD and winbind accounts count): the
//! account a login name stands for, and its groups.

use std::borrow::Cow;
use std::ffi::CString;
use std::fmt;

use nix::errno::Errno;
use nix::unistd::{getgrouplist, Group, User};

/// The name of the account that `typed` stands for, as the name service spells it; `typed`
/// itself when there is no such account.
///
/// sshd hands PAM the name as the client typed it, but logs in the account `getpwnam`
/// returns. A name service can map several spellings to one account: SSSD with
/// `case_sensitive = false` answers `ALICE` with `alice`, winbind `CORP\alice` or
/// `alice@corp` with its own spelling. Every policy and record lookup must use the account's
/// name, or `ALICE` counts as a user who never enrolled and is let in without a code under
/// `unenrolled = "allow"` or `allow_until` (attack review, issue 9 item 1). A name with no
/// account is kept: sshd refuses such a login whatever PAM says, and it cannot have a record
/// that another spelling would miss.
pub fn account_name(typed: &str) -> Result<Cow<'_, str>, AccountError> {
    match User::from_name(typed) {
        Ok(Some(account)) if account.name == typed => Ok(Cow::Borrowed(typed)),
        Ok(Some(account)) => Ok(Cow::Owned(account.name)),
        Ok(None) => Ok(Cow::Borrowed(typed)),
        Err(errno) => Err(AccountError {
            name: typed.to_owned(),
            errno,
        }),
    }
}

/// A login name as the account it stands for: resolved once per login, by the front end that
/// received the name, and carried from there to every policy, record and log lookup.
///
/// One lookup, not one per question: each `getpwnam` walks nsswitch.conf's sources (files,
/// then systemd, sssd...), and a login asks who the user is for its exemptions, its record and
/// its log lines. Resolving in one place also means no two parts of a login can disagree on
/// whose login it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    name: String,
    /// The name service failed: `name` is as typed, and nothing may exempt this login by
    /// name, group or record (a code is asked for, and only the typed name's record checks it).
    lookup_failed: bool,
}

impl Account {
    /// The account `typed` stands for ([`account_name`]). When the name service fails, the
    /// name as typed, marked so that the engine asks for a code whatever the policy says.
    pub fn resolve(typed: &str) -> Self {
        match account_name(typed) {
            Ok(name) => Self {
                name: name.into_owned(),
                lookup_failed: false,
            },
            Err(_) => Self {
                name: typed.to_owned(),
                lookup_failed: true,
            },
        }
    }

    /// A name the system itself gave for an account, such as `getpwuid` of a peer's uid: it
    /// is the account's own spelling already, so nothing is looked up.
    pub fn from_system(name: String) -> Self {
        Self {
            name,
            lookup_failed: false,
        }
    }

    /// The account's name (or the name as typed, if the name service failed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the name service failed to say which account this is.
    pub fn lookup_failed(&self) -> bool {
        self.lookup_failed
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The name service failed (not "no such user": an error, such as SSSD unreachable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountError {
    name: String,
    errno: Errno,
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot look up the account {:?} in the name service (getpwnam: {}); check \
             nsswitch.conf and the services it names (sssd, winbind, LDAP)",
            self.name,
            self.errno.desc()
        )
    }
}

impl std::error::Error for AccountError {}

/// The names of `user`'s groups (primary and supplementary), or `None` if the system has no
/// such user. A lookup failure is treated like an unknown user: the caller then applies the
/// strictest policy.
pub fn groups_of(user: &str) -> Option<Vec<String>> {
    let account = User::from_name(user).ok()??;
    let name = CString::new(user).ok()?;
    let gids = getgrouplist(&name, account.gid).ok()?;
    Some(
        gids.into_iter()
            .filter_map(|gid| Group::from_gid(gid).ok().flatten())
            .map(|g| g.name)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_as_the_name_service_spells_them() {
        assert_eq!(account_name("root").unwrap(), "root");
        assert!(matches!(account_name("root").unwrap(), Cow::Borrowed(_)));
        // No such account: the name as typed.
        assert_eq!(
            account_name("sshield-no-such-user-4711").unwrap(),
            "sshield-no-such-user-4711"
        );
        assert_eq!(account_name("al\0ice").unwrap(), "al\0ice");
    }

    #[test]
    fn root_is_in_group_root_and_strangers_are_unknown() {
        assert!(groups_of("root").unwrap().iter().any(|g| g == "root"));
        assert_eq!(groups_of("sshield-no-such-user-4711"), None);
    }
}
