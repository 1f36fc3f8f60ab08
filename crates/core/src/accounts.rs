//! Who a user is to the system: their groups, through NSS, so LDAP and SSSD groups count.

use nix::unistd::{getgrouplist, Group, User};
use std::ffi::CString;

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
    fn root_is_in_group_root_and_strangers_are_unknown() {
        assert!(groups_of("root").unwrap().iter().any(|g| g == "root"));
        assert_eq!(groups_of("sshield-no-such-user-4711"), None);
    }
}
