//! sshield's own config and store, the users who must enroll, the clock, the daemon socket,
//! a fleet host's offline reports.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sshield_core::config::Policy;
use sshield_core::{Config, RecordStore, UserName, UserState};

use super::{Finding, Severity};

/// Reads the config, adding its findings; the config if it could be used.
pub(crate) fn check_config(path: &Path, out: &mut Vec<Finding>) -> Option<Config> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            out.push(config_unreadable(path, &e));
            return None;
        }
    };
    let euid = rustix::process::geteuid().as_raw();
    out.push(check_config_permissions(
        path,
        meta.mode(),
        meta.uid(),
        euid,
    ));
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            out.push(config_unreadable(path, &e));
            return None;
        }
    };
    match Config::parse(&text, path) {
        Ok(config) => {
            out.push(Finding::ok(
                "config",
                format!("{} is valid", path.display()),
            ));
            Some(config)
        }
        Err(e) => {
            out.push(Finding::new(
                Severity::Error,
                "config",
                format!("{e}; every login through sshield is refused"),
                "fix that line (see docs/config.md), then run sshield doctor again",
            ));
            None
        }
    }
}

fn config_unreadable(path: &Path, e: &io::Error) -> Finding {
    let (message, fix) = if e.kind() == io::ErrorKind::NotFound {
        (
            format!(
                "{}: config file not found; every login through sshield is refused",
                path.display()
            ),
            "create it (see examples/sshield.toml), or pass --config PATH",
        )
    } else {
        (
            format!("cannot read {}: {e}", path.display()),
            "make it readable by root, or pass --config PATH",
        )
    };
    Finding::new(Severity::Error, "config", message, fix)
}

/// The front ends may read another config than the one checked.
pub(crate) fn check_config_path(checked: &Path, used: &[(String, PathBuf)]) -> Vec<Finding> {
    let same = |p: &Path| {
        p == checked
            || matches!((fs::canonicalize(p), fs::canonicalize(checked)), (Ok(a), Ok(b)) if a == b)
    };
    used.iter()
        .filter(|(_, path)| !same(path))
        .map(|(origin, path)| {
            Finding::new(
                Severity::Info,
                "config-path",
                format!(
                    "{origin} reads {}, but this run checked {}",
                    path.display(),
                    checked.display()
                ),
                format!(
                    "run sshield --config {} doctor to check that one",
                    path.display()
                ),
            )
        })
        .collect()
}

/// Whoever can write the config decides who needs a second factor.
pub(crate) fn check_config_permissions(path: &Path, mode: u32, uid: u32, euid: u32) -> Finding {
    let p = path.display();
    if mode & 0o022 != 0 {
        return Finding::new(
            Severity::Error,
            "config-permissions",
            format!(
                "{p}: mode {:04o} lets others change the policy (and sshield refuses it)",
                mode & 0o7777
            ),
            format!("chmod go-w {p}"),
        );
    }
    if uid != 0 && uid != euid {
        return Finding::new(
            Severity::Error,
            "config-permissions",
            format!("{p}: owned by uid {uid}, not root (and sshield refuses it)"),
            format!("chown root {p}"),
        );
    }
    Finding::ok(
        "config-permissions",
        format!("{p} is writable only by its owner"),
    )
}

/// The store directory must exist, be ours, and be closed to others.
pub(crate) fn check_store(store: &RecordStore) -> Finding {
    match store.check_dir() {
        Ok(()) => Finding::ok(
            "store",
            format!("{} is a private directory", store.dir().display()),
        ),
        Err(e) => Finding::new(
            Severity::Error,
            "store",
            format!("{e}"),
            "until it is fixed, every login that needs a record is refused",
        ),
    }
}

/// An exempt network shorter than /8 exempts (a large part of) the internet.
pub(crate) fn check_exempt_networks(policy: &Policy) -> Vec<Finding> {
    policy
        .exempt_networks
        .iter()
        .filter(|net| net.prefix_len() < 8)
        .map(|net| {
            Finding::new(
                Severity::Error,
                "exempt-networks",
                format!(
                    "policy.exempt_networks has {net}, which exempts the whole internet from the second factor"
                ),
                "list only your LAN or VPN, e.g. \"192.168.0.0/16\" or \"fd00::/8\"",
            )
        })
        .collect()
}

/// A local account that can log in: from `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// The login name.
    pub name: String,
    /// Its primary group id.
    pub gid: u32,
}

/// Accounts with uid >= 1000 (but not nobody) and a login shell.
pub(crate) fn login_accounts(passwd: &str) -> Vec<Account> {
    passwd
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || line.starts_with('#') {
                return None;
            }
            let uid: u32 = f[2].parse().ok()?;
            let gid: u32 = f[3].parse().ok()?;
            let shell = f[6].trim();
            let no_login = ["nologin", "false", "sync", "shutdown", "halt"]
                .iter()
                .any(|s| shell.rsplit('/').next() == Some(s));
            (uid >= 1000 && uid != 65534 && !no_login).then(|| Account {
                name: f[0].to_owned(),
                gid,
            })
        })
        .collect()
}

/// The groups `account` is in, from `/etc/group` text (primary and listed memberships).
pub(crate) fn groups_of(account: &Account, group: &str) -> Vec<String> {
    group
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let primary = f[2].parse::<u32>().ok() == Some(account.gid);
            let listed = f[3].split(',').any(|m| m.trim() == account.name);
            (primary || listed).then(|| f[0].to_owned())
        })
        .collect()
}

/// Whether the policy makes `account` use a second factor (from anywhere not exempt).
pub(crate) fn must_use_2fa(policy: &Policy, account: &Account, groups: &[String]) -> bool {
    let member = |list: &[String]| groups.iter().any(|g| list.contains(g));
    !policy.exempt_users.contains(&account.name)
        && !member(&policy.exempt_groups)
        && (policy.require_groups.is_empty() || member(&policy.require_groups))
}

/// Users who must use a second factor but have no active record.
pub(crate) fn check_unenrolled(
    config: &Config,
    store: &RecordStore,
    passwd: Result<String, (&Path, io::Error)>,
    group: Option<&str>,
) -> Finding {
    let passwd = match passwd {
        Ok(t) => t,
        Err((path, e)) => {
            return Finding::new(
                Severity::Info,
                "unenrolled-users",
                format!(
                    "cannot read {}: {e}; unenrolled users not checked",
                    path.display()
                ),
                "pass the user list with --passwd PATH",
            )
        }
    };
    let mut missing = Vec::new();
    let mut checked = 0;
    for account in login_accounts(&passwd) {
        let groups = groups_of(&account, group.unwrap_or(""));
        if !must_use_2fa(&config.policy, &account, &groups) {
            continue;
        }
        checked += 1;
        let state = match UserName::new(&account.name) {
            Ok(user) => match store.load(&user) {
                Ok(Some(record)) if record.state() == UserState::Active => continue,
                Ok(Some(record)) => record.state().as_str().to_owned(),
                Ok(None) => "not enrolled".to_owned(),
                Err(_) => "unreadable record".to_owned(),
            },
            Err(_) => "name sshield cannot store".to_owned(),
        };
        missing.push(format!("{} ({state})", account.name));
    }
    if missing.is_empty() {
        return Finding::ok(
            "unenrolled-users",
            format!("every user who must use a second factor is enrolled ({checked} checked)"),
        );
    }
    let what = match config.policy.unenrolled {
        sshield_core::config::Unenrolled::Deny => "are refused",
        sshield_core::config::Unenrolled::Allow => "get in without one",
    };
    Finding::new(
        Severity::Warn,
        "unenrolled-users",
        format!(
            "users who must use a second factor have no active record, so they {what}: {}",
            missing.join(", ")
        ),
        "sshield enroll USER for each (or exempt them in the config's policy)",
    )
}

/// What `chronyc -c tracking` says: the system clock's offset from true time, in seconds
/// (positive: slow), and the leap status (`Normal`, or `Not synchronised`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chrony {
    /// Seconds the system clock is off.
    pub offset: f64,
    /// Whether chrony considers the clock synchronized.
    pub synchronized: bool,
}

/// Parses `chronyc -c tracking` (CSV: ref id, name, stratum, ref time, system time offset,
/// last offset, rms offset, frequency, residual freq, skew, root delay, root dispersion,
/// update interval, leap status).
pub(crate) fn parse_chrony(csv: &str) -> Option<Chrony> {
    let fields: Vec<&str> = csv.lines().next()?.split(',').collect();
    if fields.len() < 14 {
        return None;
    }
    Some(Chrony {
        offset: fields[4].trim().parse().ok()?,
        synchronized: fields[13].trim() != "Not synchronised",
    })
}

/// Offsets from this many seconds on are a warning: with 30 s steps and `window = 1`, codes
/// start failing at 30 s, and a drifting clock gets there.
const OFFSET_WARN: f64 = 10.0;

/// The clock check, from `timedatectl show -p NTPSynchronized --value` (`Err`: it could not be
/// run) and `chronyc -c tracking` (`None`: not available).
pub(crate) fn check_clock(timedatectl: Result<String, String>, chrony: Option<&str>) -> Finding {
    let chrony = chrony.and_then(parse_chrony);
    let offset = chrony
        .as_ref()
        .map(|c| format!(" (chrony: off by {:.3} s)", c.offset))
        .unwrap_or_default();
    let unsynced = |why: String| {
        Finding::new(
            Severity::Warn,
            "clock",
            format!("{why}: TOTP codes are refused once it drifts more than policy.window steps"),
            "enable time sync: timedatectl set-ntp true (or run chrony/ntpd)",
        )
    };
    if let Some(c) = &chrony {
        if c.offset.abs() >= OFFSET_WARN {
            return unsynced(format!(
                "the clock is off by {:.1} s (chronyc tracking)",
                c.offset
            ));
        }
    }
    match timedatectl.as_deref().map(str::trim) {
        Ok("yes") => Finding::ok("clock", format!("the clock is synchronized (NTP){offset}")),
        Ok("no") => unsynced(format!("the clock is not synchronized{offset}")),
        _ if chrony.as_ref().is_some_and(|c| c.synchronized) => {
            Finding::ok("clock", format!("the clock is synchronized{offset}"))
        }
        _ if chrony.is_some() => {
            unsynced(format!("chrony says the clock is not synchronised{offset}"))
        }
        Ok(other) => Finding::new(
            Severity::Info,
            "clock",
            format!("timedatectl says NTPSynchronized={other:?}; clock sync unknown"),
            "check that chrony, ntpd or systemd-timesyncd keeps the clock right",
        ),
        Err(e) => Finding::new(
            Severity::Info,
            "clock",
            format!("cannot ask timedatectl ({e}) or chronyc; clock sync unknown"),
            "check that chrony, ntpd or systemd-timesyncd keeps the clock right",
        ),
    }
}

/// `sshield login` asks the daemon on this socket.
pub(crate) fn check_socket(path: &Path, meta: io::Result<fs::Metadata>) -> Finding {
    let p = path.display();
    let fix = "start the daemon: systemctl enable --now sshield.socket (see docs/daemon.md)";
    match meta {
        Ok(m) if m.file_type().is_socket() => {
            Finding::ok("daemon-socket", format!("{p} is a socket"))
        }
        Ok(_) => Finding::new(
            Severity::Warn,
            "daemon-socket",
            format!("{p} is not a socket; sshield login cannot reach the daemon, and failmode decides every login"),
            fix,
        ),
        Err(e) => Finding::new(
            Severity::Warn,
            "daemon-socket",
            format!("{p}: {e}; sshield login cannot reach the daemon, and failmode decides every login"),
            fix,
        ),
    }
}

/// A fleet host's offline reports, in its state dir (`reports/` waiting to be sent,
/// `rejected/` refused by the server for good; docs/daemon.md): the refused ones are logins
/// the server's audit does not have, kept for the admin to read.
pub(crate) fn check_reports(state_dir: &Path) -> Finding {
    let count = |dir: &str| {
        fs::read_dir(state_dir.join(dir)).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
    };
    let (queued, rejected) = (count("reports"), count("rejected"));
    let dir = state_dir.display();
    if rejected > 0 {
        return Finding::new(
            Severity::Warn,
            "fleet-reports",
            format!(
                "{rejected} offline report(s) in {dir}/rejected were refused by the server for \
                 good: the server's audit does not have those logins"
            ),
            format!(
                "read them (each names the user, the outcome and the server's reason), then \
                 remove them: rm {dir}/rejected/*.json (see docs/daemon.md)"
            ),
        );
    }
    if queued > 0 {
        return Finding::new(
            Severity::Info,
            "fleet-reports",
            format!(
                "{queued} offline report(s) in {dir}/reports wait for the server; the daemon \
                 sends them when it answers"
            ),
            "if the server is up, see the daemon's log for why they are kept (docs/daemon.md)",
        );
    }
    Finding::ok(
        "fleet-reports",
        format!("no offline report waits or was refused ({dir})"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]
    use super::*;

    #[test]
    fn accounts_and_groups() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\n\
                      alice:x:1000:1000::/home/alice:/bin/bash\nsvc:x:1001:1001::/:/usr/sbin/nologin\n\
                      bob:x:1002:1002::/home/bob:/bin/zsh\n";
        let accounts = login_accounts(passwd);
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        let group = "alice:x:1000:\nbob:x:1002:\nssh2fa:x:2000:bob,carol\n";
        assert_eq!(groups_of(&accounts[1], group), ["bob", "ssh2fa"]);
        let mut policy = Policy {
            require_groups: vec!["ssh2fa".into()],
            ..Policy::default()
        };
        assert!(!must_use_2fa(
            &policy,
            &accounts[0],
            &groups_of(&accounts[0], group)
        ));
        assert!(must_use_2fa(
            &policy,
            &accounts[1],
            &groups_of(&accounts[1], group)
        ));
        policy.exempt_users = vec!["bob".into()];
        assert!(!must_use_2fa(&policy, &accounts[1], &[]));
    }

    #[test]
    fn clock_states() {
        let good = "A29FC87B,ntp.example,3,1795440000.1,0.000012345,0.0001,0.0002,-1.2,0,0.01,0.02,0.001,64.0,Normal\n";
        let off = good.replace("0.000012345", "-42.5");
        let unsync = good.replace("Normal", "Not synchronised");
        assert_eq!(parse_chrony(good).unwrap().offset, 0.000012345);
        assert_eq!(check_clock(Ok("yes\n".into()), None).severity, Severity::Ok);
        assert_eq!(
            check_clock(Ok("no\n".into()), None).severity,
            Severity::Warn
        );
        assert_eq!(
            check_clock(Err("missing".into()), None).severity,
            Severity::Info
        );
        assert_eq!(
            check_clock(Err("x".into()), Some(good)).severity,
            Severity::Ok
        );
        assert_eq!(
            check_clock(Err("x".into()), Some(&unsync)).severity,
            Severity::Warn
        );
        let f = check_clock(Ok("yes".into()), Some(&off));
        assert!(
            f.severity == Severity::Warn && f.message.contains("-42.5 s"),
            "{f:?}"
        );
        assert_eq!(
            check_clock(Err("x".into()), Some("garbage")).severity,
            Severity::Info
        );
    }

    #[test]
    fn permissions() {
        let p = Path::new("/c.toml");
        assert_eq!(
            check_config_permissions(p, 0o100644, 0, 0).severity,
            Severity::Ok
        );
        assert_eq!(
            check_config_permissions(p, 0o100664, 0, 0).severity,
            Severity::Error
        );
        assert_eq!(
            check_config_permissions(p, 0o100644, 1234, 0).severity,
            Severity::Error
        );
    }

    #[test]
    fn offline_reports_refused_warn_and_waiting_ones_inform() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_reports(dir.path()).severity, Severity::Ok);
        fs::create_dir(dir.path().join("reports")).unwrap();
        fs::write(dir.path().join("reports/a1.json"), "{}").unwrap();
        fs::write(dir.path().join("reports/a1.json.tmp"), "{}").unwrap();
        let waiting = check_reports(dir.path());
        assert_eq!(waiting.severity, Severity::Info);
        assert!(
            waiting.message.starts_with("1 offline report(s)"),
            "{}",
            waiting.message
        );
        fs::create_dir(dir.path().join("rejected")).unwrap();
        fs::write(dir.path().join("rejected/b2.json"), "{}").unwrap();
        fs::write(dir.path().join("rejected/b3.json"), "{}").unwrap();
        let refused = check_reports(dir.path());
        assert_eq!(refused.severity, Severity::Warn);
        assert!(
            refused.message.starts_with("2 offline report(s)"),
            "{}",
            refused.message
        );
        assert!(refused.fix.contains("rejected/*.json"), "{}", refused.fix);
    }
}
