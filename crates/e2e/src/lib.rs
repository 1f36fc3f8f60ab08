//! End-to-end harness: real OpenSSH logins against a real `sshd`, for sshield's tests.
//!
//! ```no_run
//! use sshield_e2e::{Client, Sshd, SshdOptions, User};
//!
//! if !sshield_e2e::can_run() {
//!     return; // not root, or OpenSSH missing, outside CI
//! }
//! let sshd = Sshd::start(SshdOptions::new().config(["AuthenticationMethods password"]));
//! let user = User::create();
//! let out = Client::ssh(&sshd, &user)
//!     .from("127.0.0.3")
//!     .command("echo ok")
//!     .answers([user.password()])
//!     .run();
//! out.assert_success();
//! assert_eq!(out.stdout, "ok\n");
//! assert!(sshd.log().contains("from 127.0.0.3 port"));
//! ```
//!
//! What it does, and the safety rules it keeps (DESIGN.md, "Safety rules for tests on a shared
//! machine"):
//!
//! - [`Sshd`] runs `/usr/sbin/sshd` through a symlink named `sshield-e2e-<pid>-s<n>` in a temp
//!   dir. OpenSSH uses its program name (`__progname`) as the PAM service, so that sshd reads
//!   `/etc/pam.d/sshield-e2e-<pid>-s<n>`, a file the harness creates (never overwrites) and
//!   removes on drop. Config, host key, pid file and log live in the temp dir; the machine's
//!   `/etc/ssh/sshd_config` and `/etc/pam.d/sshd` are never read or written. It listens only on
//!   loopback addresses, on a free port. What sshd, PAM modules and sessions send to syslog
//!   is captured ([`Sshd::syslog`]) through a private `/dev/log` in a mount namespace of
//!   sshd's own, so nothing reaches the machine's syslog.
//! - [`SshdOptions::case_insensitive_names`] gives sshd a name service that answers for any
//!   spelling of an account name (`ALICE` is `alice`, as with SSSD's `case_sensitive = false`):
//!   a small NSS module built with the C compiler, found through `LD_LIBRARY_PATH` and a
//!   private `/etc/nsswitch.conf` bound over the real one inside sshd's mount namespace only.
//!   [`CaseInsensitiveNamespace`] runs any other program (the CLI, pamtester) the same way.
//! - [`User`] and [`Group`] are throwaway local accounts (`useradd`/`groupadd`), removed on
//!   drop (`userdel -r`, `groupdel`).
//! - [`Client`] runs the real `ssh`, `sftp` and `scp`. Every password and keyboard-interactive
//!   prompt goes to an askpass script (`SSH_ASKPASS_REQUIRE=force`) that records the prompt and
//!   answers from a queue the test gives; [`Outcome::prompts`] lists what was asked.
//!   [`Client::spawn`] with [`Client::tty`] gives an interactive [`Session`] on a remote pty,
//!   for what a program prints and reads after login (Ctrl-C, EOF, ...).
//! - Everything is stopped and removed on drop, also when a test panics. Names carry the test
//!   process's pid; leftovers of a test process that was killed outright (so its drops never
//!   ran) are removed by the next run, once that pid is gone.
//! - [`Postgres`] is a throwaway PostgreSQL cluster (initdb in a temp dir, `postgres` run as
//!   `nobody` on a free loopback port, stopped by its PID), for a fleet server's replicas.
//! - [`bad_input`]: docs/bad-input.md, written by the tests that try each malformed input
//!   (needs no root).
//!
//! Everything else needs root: tests call [`can_run`] first, which skips outside CI and fails in CI.
#![forbid(unsafe_code)]

mod admin;
pub mod bad_input;
mod build;
mod client;
pub mod fleet;
mod guest;
mod nss;
pub mod passkey;
mod postgres;
mod procs;
mod sshd;
mod syslog;
mod users;

use std::path::PathBuf;

pub use build::{artefacts, build_deb, cargo_deb_missing, server_binary, Artefacts};
pub use client::{Client, Outcome, Session};
pub use guest::{cache_dir, guest_requirement, show, Guest, Tree};
pub use nss::CaseInsensitiveNamespace;
pub use postgres::{Postgres, POSTGRES_BIN};
pub use procs::{is_alive, tree as process_tree};
pub use sshd::{pam_unix_stack, Sshd, SshdOptions};
pub use users::{Group, User, UserOptions};

/// Bytes to [`Session::send`] for the keys a user presses at a remote terminal.
pub mod keys {
    /// Ctrl-C: the remote pty sends SIGINT to the foreground process group.
    pub const CTRL_C: &str = "\x03";
    /// Ctrl-D at the start of a line: the remote program reads end of file.
    pub const CTRL_D: &str = "\x04";
    /// Ctrl-Z: SIGTSTP.
    pub const CTRL_Z: &str = "\x1a";
    /// Ctrl-\: SIGQUIT.
    pub const CTRL_BACKSLASH: &str = "\x1c";
}

/// The OpenSSH server binary the harness runs (through a symlink).
pub const SSHD: &str = "/usr/sbin/sshd";

/// Whether end-to-end tests can run here: as root, with OpenSSH's server and client
/// installed. When they can't, this prints why and returns `false` so the test can return
/// early — except under CI (`CI` set), where it panics: CI must never skip them silently.
pub fn can_run() -> bool {
    run_or_skip("end-to-end tests", missing_requirement())
}

/// The rule every root-only test keeps: with nothing `missing` it may run (`true`);
/// otherwise this prints why `what` is skipped and returns `false`, except under CI (`CI`
/// set), where it panics: CI must never skip silently.
pub fn run_or_skip(what: &str, missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("{what} cannot run: {why}"),
        Some(why) => {
            eprintln!("skipping {what}: {why}");
            false
        }
    }
}

fn missing_requirement() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("they need root (they add users and a PAM service file)".into());
    }
    for bin in [
        SSHD,
        "/usr/bin/ssh",
        "/usr/bin/sftp",
        "/usr/bin/scp",
        "/usr/bin/ssh-keygen",
    ] {
        if !std::path::Path::new(bin).exists() {
            return Some(format!(
                "{bin} is missing; run scripts/install-test-deps (openssh-server, openssh-client)"
            ));
        }
    }
    None
}

/// The workspace root (where `Cargo.toml` and `target/` are), for tests that point sshd at
/// a built artefact such as `target/release/libpam_sshield.so`.
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The TOTP code of a base32 `secret` at now + `offset` seconds, from oathtool (the
/// reference implementation every code in the tests is checked against).
pub fn oathtool_totp(secret: &str, offset: i64) -> String {
    let out = std::process::Command::new("oathtool")
        .args([
            "--totp",
            "--base32",
            "--now",
            &format!("now {offset:+} seconds"),
        ])
        .arg(secret)
        .output()
        .expect("run oathtool (scripts/install-test-deps installs oath-toolkit)");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Copies the executable `from` to `to` (mode 0755) and waits until the copy runs: a process
/// another test thread forks while the copy is still open for writing holds that fd until it
/// execs, and running the copy meanwhile fails with ETXTBSY.
pub fn copy_executable(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).expect("copy the executable");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(e) = std::process::Command::new(to).arg("--version").output() {
        assert!(
            e.kind() == std::io::ErrorKind::ExecutableFileBusy
                && std::time::Instant::now() < deadline,
            "cannot run {}: {e}",
            to.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
