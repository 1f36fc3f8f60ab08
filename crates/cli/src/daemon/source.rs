//! Where a caller logged in from, as the kernel knows it: never from the caller's environment.
//!
//! `SSH_CONNECTION` is just a variable in the session; with `PermitUserEnvironment yes` a user
//! sets it in `~/.ssh/environment`, and a helper that trusted it would grant a LAN exemption
//! to anyone. Instead the daemon walks up from the peer's pid (SO_PEERCRED) through
//! `/proc/PID/status` to the sshd process that owns the session, and looks its TCP socket up
//! in that process's `/proc/PID/net/tcp{,6}`. Where any step fails, the answer is "unknown",
//! and no exemption by network applies.
//!
//! Which sshd process: see [`crate::procs`].

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::procs::{self, Proc};

/// The ssh session that process `pid`, owned by `uid`, runs under; `None` if it cannot be
/// established beyond doubt.
pub(crate) fn session_of_peer(pid: u32, uid: u32) -> Option<procs::SshSession> {
    // The pid was the peer's when it connected; if it has since exited and been reused by
    // someone else's process, that process's ancestry says nothing about the peer.
    if Proc::read(pid)?.uid != uid {
        return None;
    }
    procs::ssh_session_of(pid)
}

/// The remote address of the SSH connection of session `ssh`; `None` if it cannot be
/// established beyond doubt.
pub(crate) fn of_session(ssh: &procs::SshSession) -> Option<IpAddr> {
    std::iter::once(&ssh.session)
        .chain(ssh.monitor.as_ref())
        .find_map(|p| tcp_remote(p.pid))
}

/// The one remote address of the established TCP connections process `pid` holds.
fn tcp_remote(pid: u32) -> Option<IpAddr> {
    let inodes = socket_inodes(pid);
    if inodes.is_empty() {
        return None;
    }
    let mut remotes = HashSet::new();
    // The process's own view of the network namespace it lives in.
    for table in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        remotes.extend(established_remotes(&text, &inodes));
    }
    // sshd holds one client connection; anything else is not a session we understand.
    (remotes.len() == 1)
        .then(|| remotes.into_iter().next())
        .flatten()
}

fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Remote addresses of ESTABLISHED rows of a `/proc/net/tcp{,6}` table whose inode is in
/// `inodes`.
fn established_remotes(table: &str, inodes: &HashSet<u64>) -> Vec<IpAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode
            let (rem, state, inode) = (f.get(2)?, f.get(3)?, f.get(9)?);
            if *state != "01" || !inodes.contains(&inode.parse::<u64>().ok()?) {
                return None;
            }
            parse_address(rem.split(':').next()?)
        })
        .collect()
}

/// An address as `/proc/net/tcp` prints it: the bytes of each 32-bit word in host order.
fn parse_address(hex: &str) -> Option<IpAddr> {
    let word = |chunk: &str| u32::from_str_radix(chunk, 16).ok().map(u32::to_ne_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_tcp_rows() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:59D7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 327960 1 0 100 0 0 10 0\n\
   2: 0100007F:59D7 0200007F:88E9 01 00000000:00000000 02:000AFBEA 00000000     0        0 327964 2 0 20 4 13 18 -1\n\
   3: 0100007F:59D7 0300007F:88EA 01 00000000:00000000 02:000AFBEA 00000000     0        0 327965 2 0 20 4 13 18 -1\n";
        let inodes: HashSet<u64> = [327960, 327964].into();
        assert_eq!(
            established_remotes(table, &inodes),
            vec![IpAddr::from([127, 0, 0, 2])]
        );
        assert_eq!(
            parse_address("00000000000000000000000001000000"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            parse_address("0000000000000000FFFF00000200007F"),
            Some("::ffff:127.0.0.2".parse().unwrap())
        );
        assert_eq!(parse_address("zz"), None);
    }

    #[test]
    fn a_process_outside_any_ssh_session_has_no_source() {
        // The test runner is not under sshd (or, if it is, not as a root-checked chain
        // with the same uid shape); an unknown pid has none either.
        let me = std::process::id();
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(session_of_peer(me, uid.wrapping_add(1)), None);
        assert_eq!(session_of_peer(u32::MAX - 1, uid), None);
    }
}
