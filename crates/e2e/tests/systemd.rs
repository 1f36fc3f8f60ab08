//! The admin's whole path on a real systemd (issue 9, items 19 and 21-23): a throwaway Debian
//! 12 booted with `systemd-nspawn -b` (crates/e2e/src/guest.rs), the package built by
//! scripts/build-deb, and from there what an admin does:
//!
//! 1. `apt install ./sshield_*.deb`, `systemctl enable --now sshield.socket`, enroll the admin.
//! 2. A ForceCommand setup whose trial runs out while the machine is off: at boot the guard
//!    undoes it before sshd starts (21), and systemd is told the guard came and went (22).
//! 3. A trial across a reboot: the boot is not held up, and the trial ends rolled back.
//! 4. A confirmed setup: the admin logs in with the real `ssh` from the host, key then a code
//!    typed at `sshield login`, and confirms from that session; the daemon behind it was
//!    started by socket activation under the shipped unit's system-call filter (19).
//! 5. `sshield setup --undo`, `apt remove` (no socket file, no enable link left: 22), and
//!    `apt purge`, after which the guest's files are as before the install.
//!
//! The guest's sshd listens on a free 127.0.0.1 port (a drop-in written before the first
//! boot); the host's sshd and its files are never touched. Root only, with
//! systemd-container and debootstrap (scripts/install-test-deps); elsewhere it skips, in CI it
//! fails. The first run debootstraps the guest (a minute or more) and caches it as a tarball
//! (`sshield_e2e::cache_dir`); later runs unpack it in seconds.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{random_base32_secret, unix_now, Token, CODE_PROMPT};
use sshield_e2e::{guest_requirement, show, Client, Guest, Tree};
use tempfile::TempDir;

const ADMIN: &str = "alice";
const GUARD: &str = "sshield-setup-trial.service";
const GUARD_FILE: &str = "/etc/systemd/system/sshield-setup-trial.service";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn the_admin_path_on_a_real_systemd() {
    if !can_run() {
        return;
    }
    let started = Instant::now();
    let work = TempDir::new().unwrap();
    let deb = sshield_e2e::build_deb(work.path());
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();

    let tree = Tree::unpack();
    let port = free_port();
    // Before the first boot: the guest shares the host's network, and its sshd must not
    // take the host's port 22.
    tree.write(
        "/etc/ssh/sshd_config.d/00-e2e-port.conf",
        &format!("Port {port}\nListenAddress 127.0.0.1\n"),
    );
    // The admin may run sshield as root (to confirm from their own session).
    tree.write(
        "/etc/sudoers.d/sshield-admin",
        &format!("{ADMIN} ALL=(root) NOPASSWD: /usr/bin/sshield\n"),
    );
    let key = work.path().join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", show(&keygen));
    let host_key = fs::read_to_string(tree.path("/etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
    let known_hosts = work.path().join("known_hosts");
    fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_key}")).unwrap();
    tree.copy_in(&key.with_extension("pub"), "/root/admin.pub");
    tree.copy_in(&deb, &format!("/root/{deb_name}"));

    let log = work.path().join("guest.log");
    let guest = Guest::boot(&tree, &log);
    eprintln!("guest booted ({:?} so far)", started.elapsed());
    guest.sh(&format!(
        "useradd -m -s /bin/bash {ADMIN}
         install -d -m 700 -o {ADMIN} -g {ADMIN} /home/{ADMIN}/.ssh
         install -m 600 -o {ADMIN} -g {ADMIN} /root/admin.pub /home/{ADMIN}/.ssh/authorized_keys
         rm /root/admin.pub
         chmod 0440 /etc/sudoers.d/sshield-admin"
    ));
    let before = guest_files(&guest);

    // 1. Install, enable the socket, enroll the admin.
    guest.sh(&format!(
        "cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./{deb_name}"
    ));
    guest.ok(&["systemctl", "enable", "--now", "sshield.socket"]);
    let secret = random_base32_secret();
    guest.ok(&[
        "sshield",
        "enroll",
        ADMIN,
        "--secret",
        &secret,
        "--no-confirm",
        "--json",
    ]);
    let token = Token::from_secret(secret);

    // 2. A trial that runs out while the machine is off.
    let guest = expired_trial_is_undone_before_sshd_starts(guest, &tree, &log, port);
    eprintln!("expired trial checked ({:?} so far)", started.elapsed());

    // 3. A trial across a reboot: the boot goes on, and the trial ends rolled back.
    let guest = trial_across_a_reboot_ends_rolled_back(guest, &tree, &log);
    eprintln!(
        "trial across a reboot checked ({:?} so far)",
        started.elapsed()
    );

    // 4. A confirmed setup, with a login through the real ssh from the host.
    setup(&guest, 300);
    let mut session = Client::ssh_to(LOOPBACK, port, &known_hosts, ADMIN)
        .key(&key)
        .tty()
        .command("sudo -n /usr/bin/sshield setup --confirm")
        .spawn();
    session.expect(CODE_PROMPT);
    session.send_line(&token.code());
    session.expect("Confirmed: the new setup stays");
    let out = session.wait();
    assert!(out.success(), "{out:?}");
    assert_eq!(setup_status(&guest), "confirmed");
    socket_activation_under_the_units_filter(&guest);

    // 5. Undo, remove, purge.
    guest.ok(&["sshield", "setup", "--undo"]);
    guest.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y -q sshield");
    for gone in [
        "/run/sshield/sshield.sock",
        "/etc/systemd/system/sockets.target.wants/sshield.socket",
    ] {
        assert!(
            !exists(&guest, gone),
            "{gone} is left after apt remove\n{}",
            guest.sh("ls -la /run/sshield /etc/systemd/system/*.wants || true")
        );
    }
    assert_eq!(
        guest.unit_property("sshield.socket", "LoadState"),
        "not-found"
    );
    guest.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q sshield");
    let after = guest_files(&guest);
    let left: Vec<_> = after.difference(&before).collect();
    let taken: Vec<_> = before.difference(&after).collect();
    assert!(
        left.is_empty() && taken.is_empty(),
        "apt purge left {left:?} and took {taken:?}"
    );
    guest.poweroff();
    eprintln!("the admin's path took {:?}", started.elapsed());
}

/// Item 21: a trial whose deadline passed while the machine was off is undone by the boot
/// guard before sshd starts, so sshd never serves the trial's files; and systemd was told of
/// the guard when setup wrote it and when it went (22).
fn expired_trial_is_undone_before_sshd_starts(
    guest: Guest,
    tree: &Tree,
    log: &Path,
    port: u16,
) -> Guest {
    setup(&guest, 15);
    assert_guard_known(&guest, true);
    let deadline = setup_deadline(&guest);
    // Still a trial when the machine goes off (else the watcher, not the guard, undid it).
    assert_eq!(setup_status(&guest), "trial");
    guest.poweroff();
    while unix_now() <= deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let guest = Guest::boot(tree, log);
    assert_eq!(setup_status(&guest), "rolled-back");
    let journal = guest.journal();
    let undone = journal
        .find("setup: rolled back")
        .unwrap_or_else(|| panic!("no rollback in the journal:\n{journal}"));
    let listening = journal
        .find(&format!("Server listening on 127.0.0.1 port {port}"))
        .unwrap_or_else(|| panic!("sshd did not start:\n{journal}"));
    assert!(
        undone < listening,
        "sshd started with the expired trial's files before the guard undid them:\n{journal}"
    );
    assert_guard_known(&guest, false);
    assert_no_forcecommand(&guest);
    guest
}

/// Item 23's reboot in the middle of a trial: the boot does not wait for the trial, the
/// guard's watcher takes it over, and it ends rolled back at its deadline.
fn trial_across_a_reboot_ends_rolled_back(guest: Guest, tree: &Tree, log: &Path) -> Guest {
    setup(&guest, 40);
    let deadline = setup_deadline(&guest);
    guest.poweroff();
    let guest = Guest::boot(tree, log);
    // The boot is over (Guest::boot waited for it) and the trial still runs.
    assert_eq!(setup_status(&guest), "trial");
    assert!(unix_now() < deadline);
    assert_eq!(guest.unit_property(GUARD, "ActiveState"), "active");
    let limit = Instant::now() + Duration::from_secs(deadline.saturating_sub(unix_now()) + 60);
    while setup_status(&guest) == "trial" {
        assert!(Instant::now() < limit, "the trial did not end");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(setup_status(&guest), "rolled-back");
    assert_guard_known(&guest, false);
    assert_no_forcecommand(&guest);
    guest
}

/// Item 19: the daemon serving the login was started by socket activation, under the unit's
/// system-call filter, and never failed.
fn socket_activation_under_the_units_filter(guest: &Guest) {
    assert_eq!(
        guest.unit_property("sshield.socket", "ActiveState"),
        "active"
    );
    assert_eq!(
        guest.unit_property("sshield.service", "ActiveState"),
        "active"
    );
    assert_eq!(guest.unit_property("sshield.service", "NRestarts"), "0");
    assert_eq!(
        guest.unit_property("sshield.service", "TriggeredBy"),
        "sshield.socket"
    );
    let filter = guest.unit_property("sshield.service", "SystemCallFilter");
    assert!(
        !filter.is_empty(),
        "the shipped unit has no system-call filter"
    );
    // The daemon runs under one more seccomp filter than the guest's init (nspawn's): the
    // unit's.
    let pid = guest.unit_property("sshield.service", "MainPID");
    let filters = |pid: &str| -> u32 {
        let status = guest.ok(&["cat", &format!("/proc/{pid}/status")]);
        status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp_filters:"))
            .unwrap_or_else(|| panic!("no Seccomp_filters in {status}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        filters(&pid) > filters("1"),
        "the daemon runs without the unit's filter"
    );
}

/// `sshield setup --mode forcecommand` for the admin, with a trial of `try_seconds`.
fn setup(guest: &Guest, try_seconds: u64) {
    guest.ok(&[
        "sshield",
        "setup",
        "--mode",
        "forcecommand",
        "--admin",
        ADMIN,
        "--try",
        &try_seconds.to_string(),
    ]);
    assert_eq!(setup_status(guest), "trial");
}

fn setup_status(guest: &Guest) -> String {
    json_field(
        &guest.ok(&["sshield", "setup", "--status", "--json"]),
        "status",
    )
}

fn setup_deadline(guest: &Guest) -> u64 {
    json_field(
        &guest.ok(&["sshield", "setup", "--status", "--json"]),
        "deadline",
    )
    .parse()
    .unwrap()
}

/// A top-level string or number field of setup's pretty JSON (`  "name": value,`).
fn json_field(json: &str, name: &str) -> String {
    json.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("\"{name}\": ")))
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        .trim_end_matches(',')
        .trim_matches('"')
        .to_owned()
}

/// Whether the running systemd knows of the boot guard as it is on disk: multi-user.target
/// wants it exactly while its unit file exists, and no unit file changed unseen.
fn assert_guard_known(guest: &Guest, present: bool) {
    assert_eq!(exists(guest, GUARD_FILE), present, "{GUARD_FILE}");
    let wants = guest.unit_property("multi-user.target", "Wants");
    assert_eq!(
        wants.split_whitespace().any(|u| u == GUARD),
        present,
        "systemd's multi-user.target wants: {wants} (no daemon-reload?)"
    );
    assert_eq!(
        guest.unit_property(GUARD, "NeedDaemonReload"),
        "no",
        "systemd has an old idea of {GUARD}"
    );
}

/// sshd's effective config has no ForceCommand: the trial's files are gone.
fn assert_no_forcecommand(guest: &Guest) {
    let effective = guest.ok(&["sshd", "-T"]);
    assert!(
        effective
            .lines()
            .all(|l| !l.starts_with("forcecommand ") || l == "forcecommand none"),
        "sshd still runs the trial's config:\n{effective}"
    );
}

fn exists(guest: &Guest, path: &str) -> bool {
    guest.run(&["test", "-e", path]).status.success()
}

/// Every path on the guest's root file system, less what apt, dpkg, systemd and logs change
/// by themselves; and /run/sshield, which is on a tmpfs of its own.
fn guest_files(guest: &Guest) -> BTreeSet<String> {
    let list = guest.sh(
        "find / -xdev \\( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache \
         -o -path /var/log -o -path /var/lib/systemd -o -path /var/tmp -o -path /tmp \\) -prune \
         -o -print; find /run/sshield 2>/dev/null || true",
    );
    list.lines().map(str::to_owned).collect()
}

fn free_port() -> u16 {
    TcpListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Root, the guest's tools, OpenSSH's client, oathtool and cargo-deb; without them this
/// prints why and returns `false`, or panics under CI, which must never skip.
fn can_run() -> bool {
    common::can_run()
        && sshield_e2e::run_or_skip(
            "the systemd test",
            guest_requirement().or_else(sshield_e2e::cargo_deb_missing),
        )
}
