//! Push approval on a fleet host: who is pushed to, what the host asks the server, and what
//! the phone's answer means for the login (docs/push.md, "The host side").
//!
//! The login conversation ([`Login`](crate::Login)) decides when to push and what an answer
//! means; a [`Remote`](crate::Remote) carries the two requests (ask for a push, wait for its
//! outcome) to the server, the daemon's over HTTP and the PAM module's through the daemon.
//!
//! The `[push]` section of the host's config:
//!
//! ```toml
//! [push]
//! enabled = true                 # Enter (or `push`) at the code prompt sends a push
//! autopush_users = ["alice"]     # push at once, before any prompt
//! autopush_groups = ["admins"]
//! without_number = false         # scp, sftp, git, rsync (no terminal): approve without a number
//! wait = "60s"                   # the longest a login waits for the phone
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::accounts;
use crate::de;

/// The longest [`PushPolicy::wait`] may be: a login must end.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// Who may be pushed to, and when (the host config's `[push]` section). Off unless set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushPolicy {
    /// A fleet user may ask for a push by pressing Enter (or typing `push`) at the code prompt.
    pub enabled: bool,
    /// These users are pushed to at once, before a code prompt.
    pub autopush_users: Vec<String>,
    /// Members of these groups are pushed to at once.
    pub autopush_groups: Vec<String>,
    /// `sshield login` with no terminal (scp, sftp, git, rsync) may be approved by a push that
    /// shows no number, only the host, source and command. Off by default: without a number to
    /// match, resistance to push bombing rests on the user reading the command.
    pub without_number: bool,
    /// The longest a login waits for the phone's answer after the push was sent.
    #[serde(deserialize_with = "de::duration")]
    pub wait: Duration,
}

impl Default for PushPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            autopush_users: Vec::new(),
            autopush_groups: Vec::new(),
            without_number: false,
            wait: Duration::from_secs(60),
        }
    }
}

impl PushPolicy {
    /// Whether `user` is pushed to before any prompt (`autopush_users`, `autopush_groups`).
    pub(crate) fn autopush(&self, user: &str) -> bool {
        if self.autopush_users.iter().any(|u| u == user) {
            return true;
        }
        if self.autopush_groups.is_empty() {
            return false;
        }
        accounts::groups_of(user)
            .is_some_and(|groups| groups.iter().any(|g| self.autopush_groups.contains(g)))
    }

    /// Whether `user` may ask for a push at all.
    pub(crate) fn allows(&self, user: &str) -> bool {
        self.enabled || self.autopush(user)
    }
}

/// How the client logs in, as the front end knows it: whether a person sits at a terminal
/// that shows the prompt, and the command asked for (`SSH_ORIGINAL_COMMAND`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The command, for a ForceCommand or non-interactive login.
    pub command: Option<String>,
    /// No terminal shows a prompt (scp, sftp, git, rsync through `sshield login`).
    pub no_terminal: bool,
}

/// What a host asks the server to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAsk {
    /// The command, shown on the approval page.
    pub command: Option<String>,
    /// No number to match: approved by reading the host, source and command.
    pub without_number: bool,
}

/// A push the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSent {
    /// The request's id, to wait on.
    pub id: String,
    /// The number the user picks on the phone (`None` for a push without one).
    pub number: Option<u8>,
    /// When it stops being approvable (Unix seconds).
    pub expires_at: u64,
}

/// Why the server sent no push, in Duo's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushLimit {
    /// One is pending already for this user (409).
    Pending,
    /// The user had `per_hour` pushes in the last hour (429).
    TooMany,
    /// The user said "This wasn't me"; pushes are blocked until an admin clears it (403).
    Blocked,
    /// The server knows no such user, or has no device for them (404).
    NoSuchUser,
}

impl PushLimit {
    /// What the user is told, before the code prompt that replaces the push.
    pub fn user_message(self) -> &'static str {
        match self {
            Self::Pending => {
                "a push for you is already waiting on your phone (one at a time); answer it or \
                 type a code"
            }
            Self::TooMany => "too many pushes in the last hour; type a code instead",
            Self::Blocked => {
                "pushes to you are blocked since you answered \"This wasn't me\"; an admin can \
                 clear it; type a code instead"
            }
            Self::NoSuchUser => "no push can be sent to you; type a code instead",
        }
    }

    /// The word in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "push-pending",
            Self::TooMany => "push-too-many",
            Self::Blocked => "push-blocked",
            Self::NoSuchUser => "push-no-user",
        }
    }
}

/// The server's answer to a push request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAnswer {
    /// Sent.
    Sent(PushSent),
    /// Not sent, by one of the limits; the text is the server's.
    Limited(PushLimit, String),
    /// No server could be reached.
    Unreachable(String),
    /// A server refused this host, or the front end cannot push.
    Refused(String),
}

/// Where a push stands, as the server says after a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Still pending: the server's wait ended first.
    Pending,
    /// Approved on the phone (with the right number).
    Approved,
    /// Denied on the phone, or approved with a wrong number.
    Denied,
    /// "This wasn't me".
    Reported,
    /// Nobody answered in time.
    Expired,
    /// No server could be reached.
    Unreachable(String),
    /// A server refused this host's wait, or answered nonsense.
    Refused(String),
}

impl Approval {
    /// The server's `state` word as an answer.
    pub fn of_state(state: &str) -> Self {
        match state {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "reported" => Self::Reported,
            "expired" => Self::Expired,
            other => Self::Refused(format!("the server answered push state {other:?}")),
        }
    }

    /// The word of a daemon's `approval` reply (the state words, and `unreachable`,
    /// `refused`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Reported => "reported",
            Self::Expired => "expired",
            Self::Unreachable(_) => "unreachable",
            Self::Refused(_) => "refused",
        }
    }
}

/// Waits on push `id` through `wait` (one round each: the server holds a wait up to its
/// `max_wait`) until it is decided, or `deadline` (Unix seconds) passes: then it is taken as
/// expired. Bounded: a login never waits beyond its deadline by more than one round.
pub fn wait_until(
    mut wait: impl FnMut() -> Approval,
    deadline: u64,
    now: impl Fn() -> u64,
) -> Approval {
    loop {
        match wait() {
            Approval::Pending if now() < deadline => {}
            Approval::Pending => return Approval::Expired,
            decided => return decided,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_the_first_decision_or_at_the_deadline() {
        let mut answers = vec![Approval::Approved, Approval::Pending, Approval::Pending];
        let got = wait_until(|| answers.pop().unwrap_or(Approval::Pending), 100, || 50);
        assert_eq!(got, Approval::Approved);
        assert!(answers.is_empty());
        let mut rounds = 0;
        let got = wait_until(
            || {
                rounds += 1;
                Approval::Pending
            },
            100,
            || 100,
        );
        assert_eq!((got, rounds), (Approval::Expired, 1));
    }

    #[test]
    fn the_policy_is_off_unless_set() {
        let p = PushPolicy::default();
        assert!(!p.allows("alice") && !p.autopush("alice"));
        let p = PushPolicy {
            autopush_users: vec!["alice".into()],
            ..PushPolicy::default()
        };
        assert!(p.allows("alice") && p.autopush("alice") && !p.allows("bob"));
        let p = PushPolicy {
            enabled: true,
            ..PushPolicy::default()
        };
        assert!(p.allows("bob") && !p.autopush("bob"));
        // A group nobody is in: no autopush, and no error.
        let p = PushPolicy {
            autopush_groups: vec!["sshield-no-such-group".into()],
            ..PushPolicy::default()
        };
        assert!(!p.autopush("root"));
    }
}
