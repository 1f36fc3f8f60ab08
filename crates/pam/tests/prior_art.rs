//! The peers' known holes, tried against pam_sshield.so in real libpam: one test per hole,
//! named after it (docs/prior-art.md, "Prior art as tests", lists them with the peer's story).
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod harness;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{pam, Fixture, Login};
use sshield_core::provision::{self, Enrollment};
use sshield_core::{UnixTime, UserName};
use sshield_otp::{Secret, TotpParams};

/// The child-process side of every login in this file (see `harness/driver.rs`).
#[test]
fn pam_driver_process() {
    harness::driver::main_if_requested();
}

const OUTSIDE: &str = "203.0.113.9";

fn store_file(f: &Fixture, name: &str) -> PathBuf {
    f.path().join("users").join(name)
}

/// Logs alice in with `code`; panics unless the module says it was used before.
#[track_caller]
fn assert_replayed(f: &Fixture, code: &str) {
    let out = f.login(&Login::new("alice", OUTSIDE, &[code]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
    assert!(out.lines()[0].ends_with("reason=replayed"), "{out:#?}");
}

/// Logs alice in with `code` twice: accepted (`why` says what that proves), then refused as
/// a replay.
#[track_caller]
fn assert_accepted_once(f: &Fixture, code: &str, why: &str) {
    let out = f.login(&Login::new("alice", OUTSIDE, &[code]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{why}: {out:#?}");
    assert_replayed(f, code);
}

/// oath-toolkit 2.6.7 to 2.6.11 (CVE-2024-47191): pam_oath, running as root, rewrote a
/// usersfile under the user's `${HOME}` through a path the user controls, so a symlink there
/// made root overwrite any file. sshield reads nothing from a home directory; here the attack
/// is tried inside the store itself: each of the user's files (state, lock, record) replaced
/// by a symlink to a file root must not touch. Every login is refused, the target keeps its
/// bytes (or is never created), and the code stays unused for the login after the repair.
#[test]
fn oath_toolkit_cve_2024_47191_a_symlink_never_redirects_roots_write() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("");
    let code = token.code();
    let victim = f.path().join("shadow-stand-in");
    fs::write(&victim, "root:precious:19000::::::\n").unwrap();
    let record = store_file(&f, "alice.toml");
    let record_bytes = fs::read(&record).unwrap();

    for name in [".alice.state", ".alice.lock", "alice.toml"] {
        let path = store_file(&f, name);
        let _ = fs::remove_file(&path);
        symlink(&victim, &path).unwrap();
        let out = f.login(&Login::new("alice", OUTSIDE, &[&code]));
        assert_ne!(out.authenticate, pam::PAM_SUCCESS, "{name}: {out:#?}");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "root:precious:19000::::::\n",
            "{name}: root wrote through the symlink"
        );
        fs::remove_file(&path).unwrap();

        // A symlink to a path that does not exist yet: nothing may create it.
        let absent = f.path().join(format!("created-through-{name}"));
        symlink(&absent, &path).unwrap();
        let out = f.login(&Login::new("alice", OUTSIDE, &[&code]));
        assert_ne!(out.authenticate, pam::PAM_SUCCESS, "{name}: {out:#?}");
        assert!(
            !absent.exists(),
            "{name}: root created {}",
            absent.display()
        );
        fs::remove_file(&path).unwrap();
    }

    // The store repaired (the record put back; lock and state are made afresh): the refused
    // logins used nothing up.
    fs::write(&record, &record_bytes).unwrap();
    fs::set_permissions(&record, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert_accepted_once(&f, &code, "a refused login used the code up");
}

/// oath-toolkit before 2.4.1 (CVE-2013-7322): when an admin replaced a user's key and left
/// the old line commented out in the usersfile, pam_oath recorded the use of the new key's code
/// on the old, commented line, so the new key's code could be replayed. sshield replaces a
/// key as one record change (`enroll --replace`): the old key's codes are refused, and a code
/// of the new key is recorded against the new key and refused the second time.
#[test]
fn oath_toolkit_cve_2013_7322_a_replaced_key_records_its_use_and_refuses_a_replay() {
    let f = Fixture::new("");
    f.module_service("");
    let old = enroll_key(&f, b"the-old-key-of-alice", false);
    assert_accepted_once(&f, &old.at(0), "the old key before the change");

    // The admin replaces the key (a lost phone), as `sshield enroll --replace` does.
    let new = enroll_key(&f, b"a-new-key-for-alice!", true);
    // The old key's next code, never used and inside the window, is now wrong, not replayed.
    let stale = f.login(&Login::new("alice", OUTSIDE, &[&old.at(30)]));
    assert_eq!(
        stale.authenticate,
        pam::PAM_AUTH_ERR,
        "the old key still works"
    );
    assert!(
        stale.lines()[0].ends_with("reason=wrong-code"),
        "{stale:#?}"
    );
    assert_accepted_once(&f, &new.at(0), "the new key's code");
}

/// A key of alice's whose secret the test knows.
struct Key {
    secret: Secret,
    params: TotpParams,
}

impl Key {
    /// The code `offset` seconds from now.
    fn at(&self, offset: u64) -> String {
        sshield_otp::totp(&self.secret, &self.params, UnixTime::now().0 + offset)
            .as_str()
            .to_owned()
    }
}

/// Enrolls (or, with `replace`, re-enrolls) alice's "phone" with the secret `bytes`.
fn enroll_key(f: &Fixture, bytes: &[u8], replace: bool) -> Key {
    let secret = Secret::from_bytes(bytes.to_vec()).unwrap();
    let enrollment = Enrollment {
        secret: Some(secret.clone()),
        activate: true,
        replace,
        ..Enrollment::totp(UserName::new("alice").unwrap(), "phone")
    };
    let enrolled = provision::enroll(&f.store, enrollment, UnixTime::now()).unwrap();
    Key {
        secret,
        params: enrolled.authenticator.totp_params(),
    }
}

/// A tmpfs mounted over a directory for one test, unmounted (by path) when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|r| r.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// Fills the file system holding `dir` with one file until a write fails for want of space.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let block = [0u8; 1024];
    loop {
        match file.write_all(&block).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return filler, // ENOSPC
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
}

/// authy-ssh let users in when the disk was full (its issue #40: the script could not write
/// its here-document and fell through to a shell), and google-authenticator's module could
/// not record a used code on a full disk (its issue #543). On a full store sshield cannot
/// record the code's use, so it refuses the login; the record keeps its bytes, and once
/// there is room the same code is accepted once, then refused as a replay. A real full file
/// system: a small tmpfs mounted over the store (root only; elsewhere the test skips, in CI
/// it fails).
#[test]
fn authy_ssh_40_a_full_disk_refuses_the_code_and_keeps_it_unused() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the full-disk test needs root to mount a tmpfs"
        );
        eprintln!("skipping the full-disk test: not root");
        return;
    }
    let f = Fixture::new("");
    let users = f.path().join("users");
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k,mode=0700,uid=0,gid=0",
            "sshield-test",
        ])
        .arg(&users)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs on {}", users.display());
    let _mounted = Mounted(users.clone());
    let token = f.enroll("alice");
    f.module_service("");
    let record = store_file(&f, "alice.toml");
    let before = fs::read(&record).unwrap();
    let code = token.code();

    let filler = fill(&users);
    let out = f.login(&Login::new("alice", OUTSIDE, &[&code]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
    assert!(
        out.lines()[0].contains("reason=store-error")
            && out.lines()[0].contains("the disk is full"),
        "{out:#?}"
    );
    assert_eq!(fs::read(&record).unwrap(), before, "the record changed");

    fs::remove_file(&filler).unwrap();
    assert_accepted_once(&f, &code, "the refused login used the code up");
}

/// google-authenticator keeps the replay state (the last codes used) in the same file config
/// management provisions (its issue #35), so re-provisioning, or restoring that file from
/// the copy config management holds, brings used codes back. Here config management puts
/// back alice's record as it was before her logins: the TOTP code and the backup code she
/// used stay used, because the login state lives beside the record and the newest wins.
#[test]
fn google_authenticator_35_restoring_an_old_record_brings_no_used_code_back() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("");
    let record = store_file(&f, "alice.toml");
    let provisioned = fs::read(&record).unwrap();
    let code = token.code();
    let backup = &token.backup_codes[0];
    for used in [&code, backup] {
        let out = f.login(&Login::new("alice", OUTSIDE, &[used]));
        assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    }

    // What `install -m 0600 -o root` of the provisioned copy does: the old bytes, in place.
    fs::write(&record, &provisioned).unwrap();
    assert_eq!(fs::read(&record).unwrap(), provisioned);
    assert_replayed(&f, &code);
    let again = f.login(&Login::new("alice", OUTSIDE, &[backup]));
    assert_eq!(again.authenticate, pam::PAM_AUTH_ERR, "{again:#?}");
    // The record was not rewritten to get there: restoring it changed nothing.
    assert_eq!(fs::read(&record).unwrap(), provisioned);
}
