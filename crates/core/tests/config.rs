//! The config file as an admin meets it: mistakes are reported as `file:line: what`, and a file
//! others could change is refused with the command that fixes it.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{decide, is_root, outcome, T};
use sshield_core::provision;
use sshield_core::{Config, ConfigError, Engine, UnixTime};

/// A commented config like the one an admin would write from the docs.
const SAMPLE: &str = r#"# sshield.toml
# `store` holds one record per user.
store = "users"
issuer = "bastion.example"

[policy]
# window: TOTP steps accepted either side of now.
window = 1
hotp_lookahead = 10
max_drift = 20
"#;

/// SAMPLE with the line starting with `key` replaced by `line`; returns the text and the line
/// number of the change.
fn with_line(key: &str, line: &str) -> (String, usize) {
    let mut at = 0;
    let text: Vec<&str> = SAMPLE
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if l.starts_with(key) {
                at = i + 1;
                line
            } else {
                l
            }
        })
        .collect();
    assert!(at > 0, "no line starts with {key:?}");
    (text.join("\n") + "\n", at)
}

#[track_caller]
fn assert_error_at(text: &str, line: usize, what: &str) {
    let path = Path::new("/etc/sshield/sshield.toml");
    let e = Config::parse(text, path).unwrap_err();
    let message = e.to_string();
    let at = format!("/etc/sshield/sshield.toml:{line}:");
    assert!(message.starts_with(&at), "expected {at}, got: {message}");
    assert!(message.contains(what), "expected {what:?} in: {message}");
}

#[test]
fn the_sample_parses_with_the_store_beside_it() {
    let config = Config::parse(SAMPLE, Path::new("/etc/sshield/sshield.toml")).unwrap();
    assert_eq!(config.store, PathBuf::from("/etc/sshield/users"));
    assert_eq!(config.issuer.as_deref(), Some("bastion.example"));
    assert_eq!(config.policy.window, 1);
    assert_eq!(config.policy.hotp_lookahead, 10);
}

#[test]
fn unknown_keys_are_reported_with_file_and_line() {
    let (text, line) = with_line("window", "windw = 1");
    assert_error_at(&text, line, "unknown field `windw`");
    let (text, line) = with_line("issuer", "isuer = \"x\"");
    assert_error_at(&text, line, "unknown field `isuer`");
    let text = format!("{SAMPLE}\n[polcy]\nwindow = 2\n");
    let line = text.lines().position(|l| l == "[polcy]").unwrap() + 1;
    assert_error_at(&text, line, "unknown field `polcy`");
}

#[test]
fn bad_values_are_reported_with_file_and_line() {
    // Each names the key, with its table, and says in words what to write (not serde's `u64`).
    for (key, bad, what) in [
        (
            "window",
            "window = \"three\"",
            "policy.window: invalid type: string \"three\", expected a whole number",
        ),
        (
            "max_drift",
            "max_drift = -1",
            "policy.max_drift: invalid value: integer `-1`, expected a whole number",
        ),
        (
            "hotp_lookahead",
            "hotp_lookahead = 1.5",
            "policy.hotp_lookahead: invalid type: floating point `1.5`, expected a whole number",
        ),
        (
            "store",
            "store = 7",
            "store: invalid type: integer `7`, expected a path in quotes",
        ),
        ("store", "store = ", "store: invalid string"),
    ] {
        let (text, line) = with_line(key, bad);
        let e = Config::parse(&text, Path::new("/etc/sshield/sshield.toml")).unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("/etc/sshield/sshield.toml:{line}:")),
            "{bad:?} should be reported at line {line}: {message}"
        );
        assert!(message.contains(what), "{what:?} missing from: {message}");
    }
}

#[test]
fn a_window_too_wide_is_reported_at_its_own_line() {
    // The comment above it also says "window"; the error must point at the setting.
    let (text, line) = with_line("window", "window = 50");
    assert_error_at(&text, line, "use 0 to 10");
    // Dotted keys and inline tables say the same.
    assert_error_at("# window\npolicy.window = 11\n", 2, "use 0 to 10");
    assert_error_at("# window\npolicy = { window = 11 }\n", 2, "use 0 to 10");
}

/// Writes `text` as `<dir>/sshield.toml` with `mode`.
fn write_config(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let path = dir.join("sshield.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn a_config_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o664, 0o646, 0o666, 0o620] {
        let path = write_config(dir.path(), SAMPLE, mode);
        let e = Config::load(&path).unwrap_err();
        assert!(matches!(e, ConfigError::Writable { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains(&format!("chmod go-w {}", path.display())),
            "{message}"
        );
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
    }
    // Readable by all is fine: the file holds policy, not secrets.
    for mode in [0o644, 0o600, 0o400] {
        let path = write_config(dir.path(), SAMPLE, mode);
        Config::load(&path).unwrap();
    }
}

#[test]
fn a_missing_config_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let message = Config::load(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("--config"), "{message}");
}

#[test]
fn a_config_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("note: not root, so the config owner refusal is not exercised (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), SAMPLE, 0o644);
    std::os::unix::fs::chown(&path, Some(12345), None).unwrap();
    let e = Config::load(&path).unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(e, ConfigError::Owner { owner: 12345, .. }),
        "{e:?}"
    );
    assert!(
        message.contains(&format!("chown root {}", path.display())),
        "{message}"
    );
}

#[test]
fn a_loaded_config_drives_enrollment_and_login_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), SAMPLE, 0o644);
    let config = Config::load(&path).unwrap();
    assert_eq!(config.store, dir.path().join("users"));

    let store = config.record_store();
    let enrolled = provision::enroll(&store, common::totp("alice", "phone"), UnixTime(T)).unwrap();
    let params = enrolled.authenticator.totp_params();
    let code = sshield_otp::totp(&enrolled.authenticator.secret, &params, T);

    let engine = Engine::new(&config);
    assert_eq!(
        outcome(&decide(&engine, "alice", code.as_str(), T)),
        "allow"
    );
    assert_eq!(
        outcome(&decide(&engine, "alice", code.as_str(), T)),
        "replayed"
    );
    assert!(dir.path().join("users/alice.toml").is_file());
}

/// The example config shipped to admins parses, and says what the defaults are.
#[test]
fn the_example_config_parses_and_matches_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sshield.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let example = sshield_core::Config::parse(&text, &path).unwrap();
    let defaults = sshield_core::Config::default();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
}

/// Issue 9, item 5: `sshield login` runs as the user, so its config must be root's alone:
/// the file, and every directory above it once symlinks are resolved.
#[test]
fn the_login_helper_takes_only_a_config_root_alone_can_change() {
    if !is_root() {
        eprintln!("note: not root, so root-owned configs cannot be made here (CI runs as root)");
        return;
    }
    use std::os::unix::fs::{chown, symlink};
    let not_root_only = |path: &Path, culprit: &Path| {
        let e = Config::load_root_owned(path).unwrap_err();
        match &e {
            ConfigError::NotRootOnly { culprit: c, .. } => assert_eq!(c, culprit, "{e}"),
            other => panic!("{path:?}: {other:?}"),
        }
        let message = e.to_string();
        assert!(
            message.contains(&format!("chown root: {}", culprit.display())),
            "{message}"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let good = write_config(dir.path(), SAMPLE, 0o644);
    Config::load_root_owned(&good).unwrap();

    // The file: another owner, writable by others, not a regular file.
    chown(&good, Some(12345), None).unwrap();
    not_root_only(&good, &good);
    chown(&good, Some(0), None).unwrap();
    fs::set_permissions(&good, fs::Permissions::from_mode(0o664)).unwrap();
    not_root_only(&good, &good);
    fs::set_permissions(&good, fs::Permissions::from_mode(0o644)).unwrap();
    let fifo = dir.path().join("fifo.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    not_root_only(&fifo, &fifo);

    // A directory above it: another owner; writable by others (not sticky); sticky is fine.
    let sub = dir.path().join("etc");
    fs::create_dir(&sub).unwrap();
    let inner = write_config(&sub, SAMPLE, 0o644);
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    Config::load_root_owned(&inner).unwrap();
    chown(&sub, Some(12345), None).unwrap();
    not_root_only(&inner, &sub);
    chown(&sub, Some(0), None).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o777)).unwrap();
    not_root_only(&inner, &sub);
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o1777)).unwrap();
    Config::load_root_owned(&inner).unwrap();

    // A symlink in a root directory to a config in someone else's directory: the directory
    // the link leads to is the one checked.
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    chown(&sub, Some(12345), None).unwrap();
    let link = dir.path().join("link.toml");
    symlink(&inner, &link).unwrap();
    not_root_only(&link, &sub);

    // The ordinary loader still takes a test config its caller owns.
    Config::load(&good).unwrap();
}
