//! What setup asks of the host: sshd's verdict on the new config, reloading it, finding the
//! PAM module.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::commands::doctor::sshd::{parse_effective, Settings};

/// Runs `sshd -t -f CONFIG`: sshd's own syntax and sanity check.
pub(crate) fn sshd_test(sshd: &Path, config: &Path) -> Result<(), String> {
    let out = Command::new(sshd)
        .arg("-t")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "cannot run {} -t: {e} (pass --sshd-binary PATH)",
                sshd.display()
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} -t -f {} refused the new config: {}",
            sshd.display(),
            config.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// sshd's effective global settings (`sshd -T`), or why they could not be read.
pub(crate) fn sshd_effective(sshd: &Path, config: &Path) -> Result<Settings, String> {
    let out = Command::new(sshd)
        .arg("-T")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} -T: {e}", sshd.display()))?;
    if out.status.success() {
        Ok(parse_effective(&String::from_utf8_lossy(&out.stdout)))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The wanted lines sshd does not take as written, because something it reads earlier sets
/// the same keyword: `(line, what sshd uses instead)`.
pub(crate) fn overridden(wanted: &[String], effective: &Settings) -> Vec<(String, String)> {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    wanted
        .iter()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            let key = key.to_ascii_lowercase();
            let actual = effective.get(&key).map(String::as_str).unwrap_or("(unset)");
            (norm(actual) != norm(value)).then(|| (line.clone(), format!("{key} {actual}")))
        })
        .collect()
}

/// How sshd is told to reread its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reload {
    /// A command of the admin's, run with `/bin/sh -c`.
    Command(String),
    /// `systemctl reload ssh` (Debian's unit; `sshd.service` is its alias).
    Systemd,
    /// SIGHUP to the pid in this file: sshd re-executes itself and rereads its config.
    Hup(PathBuf),
}

impl Reload {
    /// The admin's command, else systemd where it runs, else SIGHUP to /run/sshd.pid.
    pub(crate) fn choose(command: Option<&str>) -> Reload {
        match command {
            Some(c) => Reload::Command(c.to_owned()),
            None if Path::new("/run/systemd/system").is_dir() => Reload::Systemd,
            None => Reload::Hup(PathBuf::from("/run/sshd.pid")),
        }
    }

    /// What it does, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Reload::Command(c) => c.clone(),
            Reload::Systemd => "systemctl reload ssh".to_owned(),
            Reload::Hup(pid) => format!("kill -HUP $(cat {})", pid.display()),
        }
    }

    /// Does it.
    pub(crate) fn run(&self) -> Result<(), String> {
        let failed = |what: String| format!("reloading sshd ({}) failed: {what}", self.describe());
        match self {
            Reload::Command(c) => {
                run_status(Command::new("/bin/sh").arg("-c").arg(c)).map_err(failed)
            }
            Reload::Systemd => {
                run_status(Command::new("systemctl").args(["reload", "ssh"])).map_err(failed)
            }
            Reload::Hup(pid_file) => {
                let text = std::fs::read_to_string(pid_file).map_err(|e| {
                    failed(format!(
                        "{e}; is sshd running? Pass --reload-command to say how to reload it"
                    ))
                })?;
                let pid = text
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                    .ok_or_else(|| failed(format!("{} holds no pid", pid_file.display())))?;
                rustix::process::kill_process(pid, rustix::process::Signal::Hup)
                    .map_err(|e| failed(e.to_string()))
            }
        }
    }
}

fn run_status(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!("{} {}", out.status, stderr.trim()))
    }
}

/// Where libpam looks for a module named without a directory: the multiarch security dir
/// first (Debian), then the plain ones.
pub(crate) fn module_path(module: &str) -> Option<PathBuf> {
    let named = Path::new(module);
    if named.is_absolute() {
        return named.is_file().then(|| named.to_owned());
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for lib in ["/lib", "/usr/lib", "/lib64", "/usr/lib64"] {
        if let Ok(entries) = std::fs::read_dir(lib) {
            let mut triplets: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("security"))
                .filter(|p| p.is_dir())
                .collect();
            triplets.sort();
            dirs.extend(triplets);
        }
        dirs.push(Path::new(lib).join("security"));
    }
    dirs.into_iter()
        .map(|d| d.join(named))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use super::*;

    #[test]
    fn overridden_lines_say_what_sshd_uses_instead() {
        let effective = parse_effective(
            "usepam yes\nkbdinteractiveauthentication no\nauthenticationmethods any\n",
        );
        let wanted = [
            "UsePAM yes".to_owned(),
            "KbdInteractiveAuthentication yes".to_owned(),
            "AuthenticationMethods keyboard-interactive:pam".to_owned(),
            "DisableForwarding yes".to_owned(),
        ];
        let got = overridden(&wanted, &effective);
        assert_eq!(
            got,
            vec![
                (
                    "KbdInteractiveAuthentication yes".to_owned(),
                    "kbdinteractiveauthentication no".to_owned()
                ),
                (
                    "AuthenticationMethods keyboard-interactive:pam".to_owned(),
                    "authenticationmethods any".to_owned()
                ),
                (
                    "DisableForwarding yes".to_owned(),
                    "disableforwarding (unset)".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn modules_are_found_by_full_path_only_if_they_exist() {
        assert_eq!(module_path("/nonexistent/pam_sshield.so"), None);
        assert_eq!(module_path("pam_no_such_module_here.so"), None);
        let tmp = tempfile::tempdir().unwrap();
        let m = tmp.path().join("m.so");
        std::fs::write(&m, "").unwrap();
        assert_eq!(module_path(m.to_str().unwrap()), Some(m));
    }
}
