//! Who is logging in, from where, through which service, with what first factor: one value
//! per login, built once by the front end and read by the policy, the rate limit, the checks
//! and the log lines alike.
//!
//! One type, so no two parts of a login can disagree on whose login it is (the PAM module once
//! built the identity twice, and parsed `SSH_AUTH_INFO_0` up to three times per login).

use std::net::IpAddr;

use crate::accounts::Account;
use crate::first_factor::FirstFactor;

/// Who is logging in, and how far they got.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account the login name stands for, resolved once by the front end
    /// ([`Account::resolve`]).
    pub user: Account,
    /// The source address, if known (sshd's `PAM_RHOST`, or the daemon's `/proc` lookup).
    pub source: Option<IpAddr>,
    /// What the front end was told of the source when it is no address (sshd with
    /// `UseDNS yes` puts a host name in `PAM_RHOST`): a remote login all the same, counted
    /// under that name and never with local logins.
    pub source_name: Option<String>,
    /// The PAM service or front end (`sshd`, `sudo`, `sshield-login`).
    pub service: String,
    /// sshd's `SSH_AUTH_INFO_0`, parsed once ([`Caller::with_ssh_auth_info`]); `None` where the
    /// front end has none.
    pub first_factor: Option<FirstFactor>,
    /// The front end knows a first factor passed before this code was asked, without
    /// `first_factor` to show it: the login helper runs after sshd's authentication ended.
    pub first_factor_passed: bool,
}

impl Caller {
    /// `user` through `service`, from nowhere known, with no first factor shown.
    pub fn new(user: Account, service: impl Into<String>) -> Self {
        Self {
            user,
            source: None,
            source_name: None,
            service: service.into(),
            first_factor: None,
            first_factor_passed: false,
        }
    }

    /// From `source`.
    pub fn from_source(self, source: Option<IpAddr>) -> Self {
        Self { source, ..self }
    }

    /// With sshd's `SSH_AUTH_INFO_0` text, parsed here once for the whole login.
    pub fn with_ssh_auth_info(self, text: Option<&str>) -> Self {
        Self {
            first_factor: text.map(FirstFactor::parse),
            ..self
        }
    }

    /// Whether the login showed a first factor: sshd named one, or the front end runs after
    /// sshd's authentication ended.
    pub fn shown_first_factor(&self) -> bool {
        self.first_factor_passed
            || self
                .first_factor
                .as_ref()
                .is_some_and(|f| !f.methods.is_empty())
    }

    /// Whether sshd says a public key was accepted before this step: the rule of PAM's
    /// `after_publickey`, which the module applies before it reads anything else (a login that
    /// is not its line's gets `PAM_IGNORE` whatever the config holds).
    pub fn passed_publickey(&self) -> bool {
        self.first_factor
            .as_ref()
            .is_some_and(|f| f.methods.iter().any(|m| m == "publickey"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_public_key_counts_for_after_publickey() {
        let key = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n";
        let after = |info: Option<&str>| {
            Caller::new(Account::from_system("alice".to_owned()), "sshd")
                .with_ssh_auth_info(info)
                .passed_publickey()
        };
        assert!(after(Some(key)));
        assert!(after(Some(&format!("password\n{key}"))));
        assert!(!after(Some("password\n")));
        assert!(!after(Some("keyboard-interactive\n")));
        assert!(!after(Some("")));
        assert!(!after(None));
    }
}
