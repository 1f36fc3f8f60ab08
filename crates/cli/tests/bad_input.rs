//! Bad input gets exit 2 and a message naming the file, line and fix; nothing stored is lost,
//! and one broken record never affects another user. Also: the config named by
//! `SSHIELD_CONFIG`.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{code_now, Sandbox, SECRET_A, SECRET_B};

#[test]
fn unknown_config_key_names_file_and_line() {
    let sb = Sandbox::with_config("store = \"users\"\n\n[policy]\nwindw = 3\n");
    let path = sb.config().display().to_string();
    for args in [
        &["status"][..],
        &["verify", "alice", "123456"],
        &["code", "x"],
    ] {
        let out = sb.run(args, None);
        out.expect_err(2, &format!("{path}:4: unknown field `windw`"));
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
}

#[test]
fn config_that_is_not_toml_names_file_and_line() {
    let sb = Sandbox::with_config("store = \"users\"\nissuer = \n");
    sb.run(&["status"], None)
        .expect_err(2, &format!("{}:2:", sb.config().display()));
}

#[test]
fn missing_config_given_explicitly_is_an_error() {
    let sb = Sandbox::new();
    let missing = sb.path().join("nope.toml");
    let mut cmd = sb.command();
    cmd.arg("--config").arg(&missing).arg("status");
    common::run_command(cmd, None).expect_err(2, "config file not found");
}

#[test]
fn writable_config_is_refused_with_the_fix() {
    for mode in [0o666, 0o664, 0o646] {
        let sb = Sandbox::new();
        fs::set_permissions(sb.config(), fs::Permissions::from_mode(mode)).unwrap();
        let out = sb.run(&["enroll", "alice", "--no-confirm"], None);
        out.expect_err(2, &format!("chmod go-w {}", sb.config().display()));
        assert!(
            !sb.store().exists(),
            "nothing may be created under a bad config"
        );
    }
}

#[test]
fn open_store_directory_is_refused_with_the_fix() {
    let sb = Sandbox::new();
    let e = sb.enroll_json("alice", &["--no-confirm", "--secret", SECRET_A]);
    let before = sb.record_bytes("alice");
    fs::set_permissions(sb.store(), fs::Permissions::from_mode(0o755)).unwrap();
    let fix = format!("chmod 700 {}", sb.store().display());

    let code = code_now(SECRET_A, &["--totp"]);
    sb.run(&["verify", "alice", &code], None)
        .expect_err(2, &fix);
    sb.run(&["verify", "alice", &e.backup_codes[0]], None)
        .expect_err(2, &fix);
    sb.run(&["status"], None).expect_err(2, &fix);
    sb.run(&["enroll", "bob", "--no-confirm"], None)
        .expect_err(2, &fix);
    sb.run(&["code", "alice"], None).expect_err(2, &fix);
    assert_eq!(sb.record_bytes("alice"), before);

    // Fixed as told, everything works again, and nothing was used up meanwhile.
    fs::set_permissions(sb.store(), fs::Permissions::from_mode(0o700)).unwrap();
    sb.run(&["verify", "alice", &code], None).expect(0);
    sb.run(&["verify", "alice", &e.backup_codes[0]], None)
        .expect(0);
}

#[test]
fn readable_record_is_refused_with_the_fix() {
    let sb = Sandbox::new();
    sb.enroll_json("alice", &["--no-confirm", "--secret", SECRET_A]);
    let record = sb.record_path("alice");
    fs::set_permissions(&record, fs::Permissions::from_mode(0o644)).unwrap();
    let code = code_now(SECRET_A, &["--totp"]);
    sb.run(&["verify", "alice", &code], None)
        .expect_err(2, &format!("chmod 600 {}", record.display()));
}

#[test]
fn corrupt_record_affects_only_its_user() {
    let sb = Sandbox::new();
    sb.enroll_json("alice", &["--no-confirm", "--secret", SECRET_A]);
    sb.enroll_json("dave", &["--no-confirm", "--secret", SECRET_B]);
    let garbage = "version = 1\nuser = \"dave\"\n%%% not toml at all %%%\n[[authenticator]\n";
    // Writing over the file keeps its mode (0600), so only the content is wrong.
    fs::write(sb.record_path("dave"), garbage).unwrap();
    let where_ = format!("{}:3", sb.record_path("dave").display());

    let dave = code_now(SECRET_B, &["--totp"]);
    sb.run(&["verify", "dave", &dave], None)
        .expect_err(2, &where_);
    // Re-enrolling does not overwrite what it cannot read.
    sb.run(
        &["enroll", "dave", "--secret", SECRET_B, "--no-confirm"],
        None,
    )
    .expect_err(2, &where_);
    sb.run(&["enroll", "dave", "--no-confirm", "--replace"], None)
        .expect_err(2, &where_);
    sb.run(&["backup-codes", "dave"], None)
        .expect_err(2, &where_);
    sb.run(&["disable", "dave"], None).expect_err(2, &where_);
    assert_eq!(sb.record_bytes("dave"), garbage.as_bytes());

    let alice = code_now(SECRET_A, &["--totp"]);
    sb.run(&["verify", "alice", &alice], None).expect(0);
    sb.run(&["verify", "alice", &alice], None)
        .expect_err(1, "already used");

    // status still lists alice, reports dave's row, and exits 2 so scripts notice.
    let table = sb.run(&["status"], None);
    table.expect_err(2, "dave.toml:3");
    assert!(
        table.stdout.lines().any(|l| l.starts_with("alice ")),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("dave ") && l.contains("error")),
        "{}",
        table.stdout
    );
    let json = sb.run(&["status", "--json"], None);
    json.expect(2);
    let rows = json.json();
    assert_eq!(rows[0]["state"], "active");
    assert_eq!(rows[1]["state"], "error");
    assert!(
        rows[1]["error"].as_str().unwrap().contains("dave.toml:3"),
        "{rows}"
    );
    assert_eq!(sb.record_bytes("dave"), garbage.as_bytes());
}

#[test]
fn invalid_base32_secret_is_not_echoed() {
    let sb = Sandbox::new();
    let bad = "S3CR3T-V4LU3-0189!";
    let out = sb.run(
        &["enroll", "mallory", "--secret", bad, "--no-confirm"],
        None,
    );
    out.expect_err(2, "--secret");
    for shown in [&out.stdout, &out.stderr] {
        assert!(!shown.contains(bad), "{shown}");
        assert!(!shown.contains("V4LU3"), "{shown}");
    }
    assert!(!sb.record_path("mallory").exists());

    // From stdin, likewise; and a too-short key is refused too.
    let out = sb.run(
        &["enroll", "mallory", "--secret", "-", "--no-confirm"],
        Some(&format!("{bad}\n")),
    );
    out.expect(2);
    assert!(!out.stderr.contains("V4LU3"), "{}", out.stderr);
    sb.run(
        &["enroll", "mallory", "--secret", "MZXW6", "--no-confirm"],
        None,
    )
    .expect(2);
    assert!(!sb.record_path("mallory").exists());
}

#[test]
fn out_of_range_options_are_usage_errors() {
    let sb = Sandbox::new();
    for args in [
        &["enroll", "alice", "--digits", "9"][..],
        &["enroll", "alice", "--digits", "5"],
        &["enroll", "alice", "--period", "0"],
        &["enroll", "alice", "--algorithm", "md5"],
        &["enroll", "alice", "--counter", "3"],
        &["enroll", "alice", "--hotp", "--totp"],
        &["verify", "alice"],
        &["frobnicate"],
    ] {
        let out = sb.run(args, None);
        out.expect_err(2, "error:");
        assert!(
            out.stderr.contains("try '--help'"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!sb.store().exists(), "{args:?} created the store");
    }
    sb.run(&["enroll", "alice", "--digits", "9"], None)
        .expect_err(2, "--digits");
}

#[test]
fn config_from_the_environment_works_the_same() {
    let sb = Sandbox::new();
    let out = sb.run_env(
        &[
            "enroll",
            "alice",
            "--json",
            "--no-confirm",
            "--secret",
            SECRET_A,
        ],
        None,
    );
    out.expect(0);
    let e = common::parse_enrolled(&out);
    assert!(
        sb.record_path("alice").exists(),
        "stored where the config says"
    );

    let code = code_now(SECRET_A, &["--totp"]);
    sb.run_env(&["verify", "alice", &code], None).expect(0);
    // The same store through --config: the code is used up there too.
    sb.run(&["verify", "alice", &code], None)
        .expect_err(1, "already used");
    sb.run_env(&["verify", "alice", &e.backup_codes[0]], None)
        .expect(0);
    assert_eq!(sb.state("alice"), "active");

    // A bad config named by the environment is reported like one named by --config.
    fs::write(sb.config(), "stor = \"users\"\n").unwrap();
    sb.run_env(&["status"], None)
        .expect_err(2, &format!("{}:1:", sb.config().display()));

    // --config wins over the environment.
    let good = Sandbox::new();
    good.enroll_json("bob", &["--no-confirm"]);
    let mut cmd = good.command();
    cmd.env("SSHIELD_CONFIG", sb.config())
        .arg("--config")
        .arg(good.config())
        .args(["status", "--json"]);
    let out = common::run_command(cmd, None);
    out.expect(0);
    assert_eq!(out.json()[0]["user"], "bob");
}

/// A named pipe planted where a file is read from a user's directory: each command that reads
/// such a file refuses it at once, naming it, instead of waiting for ever for a writer (attack
/// review, issue 9 item 8).
#[test]
fn a_named_pipe_in_place_of_a_file_is_refused_without_blocking() {
    let sb = Sandbox::new();
    sb.enroll_json("erin", &["--no-confirm"]);
    let fifo = |name: &str| {
        let path = sb.path().join(name);
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path.display().to_string()
    };
    let ga = fifo(".google_authenticator");
    let oath = fifo("users.oath");
    let key = fifo("id_ed25519.pub");
    let expected = |path: &str| format!("{path}: is a named pipe (FIFO), not a regular file");
    sb.run(
        &["import", "google-authenticator", &ga, "--user", "alice"],
        None,
    )
    .expect_err(2, &expected(&ga));
    sb.run(&["import", "users-oath", &oath], None)
        .expect_err(2, &expected(&oath));
    sb.run(&["bind-keys", "erin", &key], None)
        .expect_err(2, &expected(&key));
    assert!(!sb.record_path("alice").exists());
}

/// A phone re-enrolled under a new name with its old secret is refused (each code would be
/// good twice), naming the authenticator that has the secret and the fix; nothing changes.
#[test]
fn a_secret_on_file_under_another_name_is_refused() {
    let sb = Sandbox::new();
    sb.enroll_json(
        "alice",
        &["--no-confirm", "--secret", SECRET_A, "--name", "phone"],
    );
    let before = sb.record_bytes("alice");
    sb.run(
        &[
            "enroll",
            "alice",
            "--no-confirm",
            "--secret",
            SECRET_A,
            "--name",
            "new-phone",
        ],
        None,
    )
    .expect_err(2, "sshield remove alice --name phone");
    assert_eq!(sb.record_bytes("alice"), before);
}

/// Issue 9, item 9: a user who is not root, running a command on root's store, was told to
/// chown the store to themselves. They are told to use sudo, or a config of their own.
#[test]
fn a_non_root_caller_on_roots_store_is_told_to_use_sudo_not_chown() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("note: not root, so root's store cannot be made here (CI runs as root)");
        return;
    }
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new();
    sb.run(
        &["enroll", "alice", "--secret", SECRET_A, "--no-confirm"],
        None,
    )
    .expect(0);
    // nobody may reach the config and see the store, as on a real host.
    fs::set_permissions(sb.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let before = sb.record_bytes("alice");
    // A copy that uid 65534 can run: the build's own target dir may sit under a directory only root
    // can enter (a CI clone in a 0700 temp dir).
    let binary = sb.path().join("sshield-for-nobody");
    fs::copy(env!("CARGO_BIN_EXE_sshield"), &binary).unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new(&binary);
    cmd.arg("--config")
        .arg(sb.config())
        .args(["status", "alice"])
        .uid(65534)
        .gid(65534);
    let out = common::run_command(cmd, None);
    out.expect(2);
    let store = sb.store().display().to_string();
    assert!(
        out.stderr
            .contains(&format!("{store}: owned by uid 0, not by you (uid 65534)")),
        "{out:?}"
    );
    assert!(out.stderr.contains("sudo sshield"), "{out:?}");
    assert!(out.stderr.contains("--config"), "{out:?}");
    assert!(!out.stderr.contains("chown"), "{out:?}");
    assert_eq!(sb.record_bytes("alice"), before);
}

/// A hand-edited record whose token parameters are out of range is a load error naming the
/// file, the line, the field and the fix, for every command that reads it, a login included;
/// before, `digits = 12` loaded and every login ended in `wrong-code` (issue 10).
#[test]
fn out_of_range_token_parameters_are_load_errors_with_file_line_and_fix() {
    let digits_fix = "set it to 6, 7 or 8, the number of digits the authenticator app shows";
    let period_fix = "set it to the seconds per code the authenticator app uses, 1 to 86400 \
                      (30 is usual), or remove the line for 30";
    for (from, to, message) in [
        (
            "digits = 6",
            "digits = 12",
            format!("digits = 12 is not supported: {digits_fix}"),
        ),
        (
            "digits = 6",
            "digits = 5",
            format!("digits = 5 is not supported: {digits_fix}"),
        ),
        (
            "digits = 6",
            "digits = -1",
            format!("digits = -1 is not supported: {digits_fix}"),
        ),
        (
            "digits = 6",
            "digits = \"six\"",
            "invalid type: string \"six\", expected `digits` to be 6, 7 or 8".to_owned(),
        ),
        (
            "period = 30",
            "period = 0",
            format!("period = 0 is not supported: {period_fix}"),
        ),
        (
            "period = 30",
            "period = 86401",
            format!("period = 86401 is not supported: {period_fix}"),
        ),
    ] {
        let sb = Sandbox::new();
        sb.enroll_json("alice", &["--no-confirm", "--secret", SECRET_A]);
        let path = sb.record_path("alice");
        let text = fs::read_to_string(&path).unwrap();
        let line = text.lines().position(|l| l == from).unwrap() + 1;
        let edited = text.replace(from, to);
        fs::write(&path, &edited).unwrap();
        let expected = format!("{}:{line}: {message}", path.display());

        let code = code_now(SECRET_A, &["--totp"]);
        for args in [
            &["verify", "alice", &code][..],
            &["status", "alice"],
            &["code", "alice"],
            &["qr", "alice"],
        ] {
            sb.run(args, None).expect_err(2, &expected);
        }
        let table = sb.run(&["status"], None);
        table.expect_err(2, &expected);
        assert_eq!(sb.record_bytes("alice"), edited.as_bytes(), "{to}");
    }
}
