//! Stopping sshd and everything it started, by pid.
//!
//! sshd forks a process per connection, which calls `setsid()`, and the user's shell runs
//! below that: killing the listener (or its process group) would leave logged-in sessions
//! running. A session may also start a daemon that double-forks away from it. So the demo
//! makes itself a *child subreaper* (`PR_SET_CHILD_SUBREAPER`): orphans below it are
//! re-parented to it instead of to init, and every process the demo started, however deep,
//! stays a descendant. At the end it walks `/proc` for its descendants, freezes them with
//! SIGSTOP until no new one appears (a stopped process cannot fork), SIGKILLs them, and reaps
//! the orphans it inherited.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal, WaitOptions};

/// Makes this process the reaper of its orphaned descendants. Without it (an old kernel),
/// a daemon started from a session and detached from it could outlive the demo: say so.
pub(super) fn become_subreaper() -> Result<(), String> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("cannot become a child subreaper: {e}"))
}

fn parent_map() -> HashMap<u32, u32> {
    let mut parents = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// The parent pid from `/proc/<pid>/stat`: the fields after the command name, which is in
/// parentheses and may itself contain spaces and parentheses.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    crate::procs::stat_fields_after_comm(&stat)?
        .nth(1)?
        .parse()
        .ok()
}

/// Every process below `root`, not `root` itself.
pub(super) fn descendants(root: u32) -> BTreeSet<u32> {
    let parents = parent_map();
    let mut found = BTreeSet::from([root]);
    loop {
        let before = found.len();
        for (pid, ppid) in &parents {
            if found.contains(ppid) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            found.remove(&root);
            return found;
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, sig);
    }
}

/// Kills every process below `root` (not `root` itself) and returns how many there were.
/// The demo passes its own pid: its children are all sshd's tree by then (ssh-keygen and the
/// checks have been waited for), and as a subreaper it also holds the orphans.
pub(super) fn kill_below(root: u32) -> usize {
    let mut frozen = BTreeSet::new();
    for _ in 0..50 {
        let new: Vec<u32> = descendants(root).difference(&frozen).copied().collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            signal(pid, Signal::Stop);
            frozen.insert(pid);
        }
    }
    // Kill only what is still below `root` now that nothing can fork; a pid that left the
    // tree (its process exited and the number was reused) is not ours: let it go on. A
    // zombie has ended already and is not counted.
    let still = descendants(root);
    frozen.retain(|pid| {
        let ours = still.contains(pid);
        let alive = is_alive(*pid);
        signal(*pid, if ours { Signal::Kill } else { Signal::Cont });
        ours && alive
    });
    // SIGKILL is delivered asynchronously: wait until they are gone (or zombies, reaped by
    // their parent or by us), so that "stopped" means stopped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while frozen.iter().any(|pid| is_alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    frozen.len()
}

/// Reaps the orphans re-parented to us that have ended, but not `keep` (sshd, whose
/// `Child` waits for it itself).
pub(super) fn reap_orphans(keep: u32) {
    let me = std::process::id();
    for (pid, ppid) in parent_map() {
        if ppid != me || pid == keep || is_alive(pid) {
            continue;
        }
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
        }
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub(super) fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat.get(i + 1..))
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_below_a_process_is_killed_and_it_is_not() {
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & read line"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let root = shell.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants(root).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let below = descendants(root);
        assert_eq!(below.len(), 2, "{below:?}");
        assert_eq!(kill_below(root), 2);
        assert!(below.iter().all(|pid| !is_alive(*pid)));
        assert!(is_alive(root));
        let _ = shell.kill();
        let _ = shell.wait();
        assert!(!is_alive(root));
    }
}
