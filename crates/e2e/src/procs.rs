//! Stopping a process together with everything it started, by pid.
//!
//! sshd forks a child per connection and that child calls `setsid()`, so a connection's
//! processes (and the user's shell under them) are in other process groups than the
//! listener: killing the listener, or its group, would leave them running. So the harness
//! walks the tree through `/proc/<pid>/stat`, freezes it with SIGSTOP until no new process
//! appears (a stopped process cannot fork), then SIGKILLs every pid it found.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

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
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and every process below it, from `/proc`.
pub fn tree(root: u32) -> BTreeSet<u32> {
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
            return found;
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, sig);
    }
}

/// Kills `root` and all its descendants. `root` must be a child of this process (the caller
/// reaps it with `wait`), so its pid cannot have been reused meanwhile.
pub(crate) fn kill_tree(root: u32) {
    let mut frozen = BTreeSet::new();
    for _ in 0..50 {
        let new: Vec<u32> = tree(root).difference(&frozen).copied().collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            signal(pid, Signal::Stop);
            frozen.insert(pid);
        }
    }
    // Kill only what is still below `root` now that nothing can fork; a pid that left the
    // tree (its process exited and the number was reused) is not ours: let it go on.
    let still = tree(root);
    frozen.retain(|pid| {
        let ours = still.contains(pid);
        signal(*pid, if ours { Signal::Kill } else { Signal::Cont });
        ours
    });
    // SIGKILL is delivered asynchronously: wait until they are gone (or zombies, which
    // init reaps), so that "stopped" means stopped when this returns.
    let deadline = Instant::now() + Duration::from_secs(5);
    while frozen.iter().any(|pid| *pid != root && is_alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
