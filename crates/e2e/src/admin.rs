//! Unique names, the commands that change the machine's accounts, and removal of leftovers.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

/// Every user, group and PAM service the harness creates is named
/// `sshield-e2e-<pid>-<kind><n>`: `u` user, `g` group, `s` sshd / PAM service, `c` client
/// run (temp dirs are that name, a dot, and a random suffix).
/// No real package or account uses this prefix; with the pid and a counter two test
/// processes or threads never pick the same name, and at most 25 characters it fits
/// useradd's 32.
pub(crate) const PREFIX: &str = "sshield-e2e-";

/// Where Linux-PAM looks for service files (sshd does not use `pam_start_confdir`).
pub(crate) const PAM_DIR: &str = "/etc/pam.d";

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) fn unique_name(kind: char) -> String {
    reap_leftovers_once();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{kind}{n}", std::process::id())
}

/// useradd, userdel, groupadd and friends lock /etc/passwd and /etc/group and fail rather
/// than wait when another one holds the lock, so the harness runs them one at a time
/// (tests run on parallel threads), and retries when another process holds the lock.
static ACCOUNTS: Mutex<()> = Mutex::new(());

pub(crate) fn accounts_lock() -> MutexGuard<'static, ()> {
    ACCOUNTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs an account command (the caller holds [`accounts_lock`]); `Err` has its output.
pub(crate) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..50 {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .map_err(|e| format!("writing to {program}: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for {program}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        last = format!(
            "{program} {}: {}: {stderr}{stdout}",
            args.join(" "),
            out.status
        );
        // "cannot lock /etc/passwd; try again later." — another process is at it.
        if !stderr.contains("lock") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// Removes a user and its home; `-f` also when a process of it survived. Logs, never panics
/// (it runs in `Drop`).
pub(crate) fn remove_user(name: &str) {
    if let Err(e) = run("userdel", &["-r", "-f", name], None) {
        // userdel -r exits 12 after removing the account when only the mail spool or home
        // was already gone; anything else is worth a line in the test output.
        if account_exists("/etc/passwd", name) {
            eprintln!("sshield-e2e: could not remove user {name}: {e}");
        }
    }
}

pub(crate) fn remove_group(name: &str) {
    if let Err(e) = run("groupdel", &[name], None) {
        if account_exists("/etc/group", name) {
            eprintln!("sshield-e2e: could not remove group {name}: {e}");
        }
    }
}

pub(crate) fn account_exists(db: &str, name: &str) -> bool {
    account_names(db).iter().any(|n| n == name)
}

fn account_names(db: &str) -> Vec<String> {
    std::fs::read_to_string(db)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

/// The pid in a harness name, when the name is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, tail) = rest.split_once('-')?;
    let mut chars = tail.chars();
    let kind = chars.next()?;
    let n = chars.as_str();
    let ours = matches!(kind, 'u' | 'g' | 's' | 'c')
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit());
    if !ours || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// A name left behind by a harness process that no longer runs (killed before its drops ran).
fn is_leftover(name: &str) -> bool {
    match owner_pid(name) {
        Some(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Once per test process: stop the sshd and remove the PAM service files, users, groups
/// and temp dirs that a dead harness process left (killed before its drops ran). Only exact
/// harness names whose pid is gone are touched, so a harness running in parallel in
/// another process keeps its own.
fn reap_leftovers_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some((stem, _)) = name.split_once('.') else {
                    continue;
                };
                if is_leftover(stem) && entry.path().is_dir() {
                    stop_leftover_sshd(&entry.path(), stem);
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(PAM_DIR) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_leftover(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _lock = accounts_lock();
        for user in account_names("/etc/passwd") {
            if is_leftover(&user) {
                remove_user(&user);
            }
        }
        for group in account_names("/etc/group") {
            if is_leftover(&group) {
                remove_group(&group);
            }
        }
    });
}

/// Stops the sshd a dead harness process started in `dir`, by the pid in its pid file, once
/// sure that pid is still that sshd: its executable is sshd and its command line names this
/// dir's `bin/<service>` symlink (sshd rewrites its argv for `ps`, so not exactly `argv[0]`).
fn stop_leftover_sshd(dir: &Path, service: &str) {
    let Ok(pid) = std::fs::read_to_string(dir.join("sshd.pid")) else {
        return;
    };
    let Ok(pid) = pid.trim().parse::<u32>() else {
        return;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    let program = dir.join("bin").join(service);
    let program = program.as_os_str().as_encoded_bytes();
    let names_it = cmdline.windows(program.len()).any(|w| w == program);
    let is_sshd = std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|exe| exe == Path::new(crate::SSHD));
    if names_it && is_sshd {
        crate::procs::kill_tree(pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_recognised_exactly() {
        assert_eq!(owner_pid("sshield-e2e-123-u4"), Some(123));
        assert_eq!(owner_pid("sshield-e2e-123-s0"), Some(123));
        assert_eq!(owner_pid("sshield-e2e-123-g17"), Some(123));
        assert_eq!(owner_pid("sshield-e2e-123-c2"), Some(123));
        assert_eq!(owner_pid("sshield-e2e-123-x4"), None);
        assert_eq!(owner_pid("sshield-e2e-123-u"), None);
        assert_eq!(owner_pid("sshield-e2e-12a-u1"), None);
        assert_eq!(owner_pid("sshd"), None);
        assert_eq!(owner_pid("sshield-e2e-123-u4.bak"), None);
        let mine = unique_name('u');
        assert!(mine.len() <= 32, "{mine}");
        assert_eq!(owner_pid(&mine), Some(std::process::id()));
        assert!(!is_leftover(&mine));
    }
}
