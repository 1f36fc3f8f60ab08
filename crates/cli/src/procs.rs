//! The process tree as `/proc` shows it: which sshd session a process runs under.
//!
//! Used by the daemon (where did the caller log in from) and by `sshield setup --confirm`
//! (is this a new ssh session, and whose). Never trusts the environment: `SSH_CONNECTION` is
//! just a variable a user can set.
//!
//! Which sshd process: the first ancestor whose executable is `sshd` (or OpenSSH 9.8's
//! `sshd-session`). With privilege separation that is the user's `sshd: user@pts/0`, child
//! of the root-owned `sshd: user [priv]` monitor; both hold the client's connection. One of
//! the two must be root's (as the monitor always is), so a copy of sshd that a user started
//! themselves never counts.

use std::fs;

/// How far up the process tree to look: the shell sshd runs a command through, perhaps
/// sudo and a wrapper, then sshd. Deeper means the caller is not what sshd started.
const MAX_DEPTH: usize = 16;

/// One process, as `/proc/PID/status`, `/proc/PID/stat` and `/proc/PID/exe` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// The executable's file name.
    pub exe: String,
    /// When it started, in clock ticks since boot (`/proc/PID/stat` field 22): comparable
    /// between processes, and unchanged for the process's life.
    pub start_ticks: u64,
}

impl Proc {
    /// Reads process `pid`; `None` if it is gone or cannot be inspected.
    pub(crate) fn read(pid: u32) -> Option<Proc> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u32>().ok())
        };
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Proc {
            pid,
            ppid: field("PPid:")?,
            uid: field("Uid:")?,
            exe: exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            start_ticks: start_ticks(&stat)?,
        })
    }

    /// Whether it is an sshd (or sshd-session) process.
    pub(crate) fn is_sshd(&self) -> bool {
        matches!(self.exe.as_str(), "sshd" | "sshd-session")
    }
}

/// The fields of `/proc/PID/stat` from the third (state) on. The second field is the command
/// name in parentheses, which may itself hold spaces and parentheses, so they start after the
/// last `)`.
pub(crate) fn stat_fields_after_comm(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat.get(stat.rfind(')')? + 1..)?.split_whitespace())
}

/// Field 22 of `/proc/PID/stat`: the 20th from the state field.
fn start_ticks(stat: &str) -> Option<u64> {
    stat_fields_after_comm(stat)?.nth(19)?.parse().ok()
}

/// The sshd processes an ssh session runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SshSession {
    /// The nearest sshd ancestor: the session's own process (`sshd: alice@pts/0`).
    pub session: Proc,
    /// Its parent, if that is sshd too: the root-owned monitor (`sshd: alice [priv]`). For a
    /// root login OpenSSH forks no unprivileged child (`privsep_postauth`), so `session` is the
    /// connection's own process and this is the listener.
    pub monitor: Option<Proc>,
}

/// The ssh session process `pid` runs under, or `None` if it runs under none (or under an
/// sshd that no root process vouches for).
pub(crate) fn ssh_session_of(pid: u32) -> Option<SshSession> {
    let mut last = Proc::read(pid)?;
    for _ in 0..MAX_DEPTH {
        if last.is_sshd() || last.ppid <= 1 {
            break;
        }
        last = Proc::read(last.ppid)?;
    }
    if !last.is_sshd() {
        return None;
    }
    let monitor = Proc::read(last.ppid).filter(Proc::is_sshd);
    let root_owned = last.uid == 0 || monitor.as_ref().is_some_and(|m| m.uid == 0);
    root_owned.then_some(SshSession {
        session: last,
        monitor,
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use super::*;

    #[test]
    fn start_ticks_survive_odd_command_names() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(start_ticks(stat), Some(987654));
        assert_eq!(start_ticks("4242 (x) S 1"), None);
        assert_eq!(start_ticks("no parenthesis"), None);
    }

    #[test]
    fn this_process_reads_and_is_not_sshd() {
        let me = Proc::read(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.is_sshd());
        assert!(me.start_ticks > 0);
        let parent = Proc::read(me.ppid).unwrap();
        assert!(parent.start_ticks <= me.start_ticks);
        assert_eq!(Proc::read(u32::MAX - 1), None);
    }
}
