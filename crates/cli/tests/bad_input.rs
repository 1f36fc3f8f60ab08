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
use sshield_e2e::bad_input::{Row, Table};

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

// ---- docs/bad-input.md: one table per kind of input, written by the tests below ----

/// The section of docs/bad-input.md named `section`, generated by the test `test` of this file.
fn table(section: &'static str, test: &'static str) -> Table {
    Table::new(section, test)
}

/// A sandbox with alice enrolled (SECRET_A, TOTP), so that every table has stored data that a
/// bad input must leave alone.
fn with_alice() -> Sandbox {
    let sb = Sandbox::new();
    sb.enroll_json("alice", &["--no-confirm", "--secret", SECRET_A]);
    sb
}

#[test]
fn table_config_keys() {
    let mut t = table(
        "config",
        "cargo test -p sshield --test bad_input table_config_keys",
    );
    let base = "store = \"users\"\n";
    for (lines, expected) in [
        ("[policy]\nwindw = 3", "sshield.toml:3: unknown field `windw`"),
        (
            "[policy]\nwindow = \"three\"",
            "sshield.toml:3: policy.window: invalid type: string \"three\", expected a whole number",
        ),
        (
            "[policy]\nwindow = 100",
            "sshield.toml:3: policy.window = 100 accepts codes up to 100 steps away; use 0 to 10",
        ),
        (
            "[policy]\nexempt_networks = [\"10.0.0.0/33\"]",
            "sshield.toml:3: policy.exempt_networks: \"10.0.0.0/33\" is not a network; write e.g.",
        ),
        (
            "[policy]\nexempt_users = \"alice\"",
            "sshield.toml:3: policy.exempt_users: invalid type: string \"alice\", expected a list",
        ),
        (
            "failmode = \"maybe\"",
            "sshield.toml:2: failmode: unknown variant `maybe`, expected `secure` or `safe`",
        ),
        (
            "login_tries = 0",
            "sshield.toml:2: login_tries = 0 is out of range; use 1 to 10",
        ),
        (
            "[rate_limit]\ndelay = \"2 parsecs\"",
            "sshield.toml:3: rate_limit.delay: \"2 parsecs\" is not a duration",
        ),
        ("issuer = ", "sshield.toml:2: issuer: invalid string"),
        ("[policy", "sshield.toml:2: invalid table header"),
    ] {
        let sb = with_alice();
        fs::write(sb.config(), format!("{base}{lines}\n")).unwrap();
        let args = ["verify", "alice", "123456"];
        t.push(sb.bad_input_row(lines, &args, None, 2, &format!("$DIR/{expected}")));
        // Every command reads the config the same way.
        sb.run(&["status"], None)
            .expect_err(2, &sb.path().join(expected).display().to_string());
    }
    let sb = Sandbox::with_config("store = 7\n");
    t.push(sb.bad_input_row(
        "store = 7",
        &["status"],
        None,
        2,
        "$DIR/sshield.toml:1: store: invalid type: integer `7`, expected a path in quotes",
    ));
    let sb = with_alice();
    fs::set_permissions(sb.config(), fs::Permissions::from_mode(0o666)).unwrap();
    t.push(sb.bad_input_row(
        "sshield.toml with mode 0666",
        &["verify", "alice", "123456"],
        None,
        2,
        "chmod go-w $DIR/sshield.toml",
    ));
    let sb = with_alice();
    fs::remove_file(sb.config()).unwrap();
    t.push(sb.bad_input_row(
        "sshield.toml removed",
        &["status"],
        None,
        2,
        "config file not found",
    ));
    t.check();
}

#[test]
fn table_record_fields() {
    let mut t = table(
        "record",
        "cargo test -p sshield --test bad_input table_record_fields",
    );
    for (from, to, expected) in [
        (
            "digits = 6",
            "digits = 12",
            "digits = 12 is not supported: set it to 6, 7 or 8",
        ),
        (
            "digits = 6",
            "digits = \"six\"",
            "expected `digits` to be 6, 7 or 8",
        ),
        (
            "period = 30",
            "period = 0",
            "period = 0 is not supported: set it to the seconds",
        ),
        (
            "algorithm = \"SHA1\"",
            "algorithm = \"MD5\"",
            "authenticator.algorithm: unknown algorithm \"MD5\": use SHA1, SHA256 or SHA512",
        ),
        (
            "kind = \"totp\"",
            "kind = \"motp\"",
            "authenticator.kind: unknown variant `motp`",
        ),
        (
            "active = true",
            "active = \"yes\"",
            "authenticator.active: invalid type: string \"yes\", expected true or false",
        ),
        ("period = 30", "perod = 30", "unknown field `perod`"),
        (
            "version = 2",
            "version = 99",
            "record format version 99 is not supported",
        ),
        ("user = \"alice\"", "user = \"bob\"", "bob"),
    ] {
        let sb = with_alice();
        let path = sb.record_path("alice");
        let text = fs::read_to_string(&path).unwrap();
        let line = text.lines().position(|l| l == from).unwrap() + 1;
        fs::write(&path, text.replace(from, to)).unwrap();
        let at = format!(":{line}:");
        t.push(sb.bad_input_row(
            &format!("{to} (line {line} of alice.toml)"),
            &["verify", "alice", "123456"],
            None,
            2,
            &format!("$DIR/users/alice.toml{at}"),
        ));
        let row = sb.bad_input_row(to, &["status", "alice"], None, 2, expected);
        assert!(row.message.contains(&format!("alice.toml{at}")), "{row:?}");
    }
    // The secret: named by its field, never echoed.
    let sb = with_alice();
    let path = sb.record_path("alice");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace(SECRET_A, "NOT-BASE32-0189")).unwrap();
    let row = sb.bad_input_row(
        "secret = \"NOT-BASE32-0189\"",
        &["verify", "alice", "123456"],
        None,
        2,
        "invalid base32 character",
    );
    assert!(!row.message.contains("NOT-BASE32"), "{row:?}");
    t.push(row);
    // The login-state file, and the file modes.
    let sb = with_alice();
    fs::write(sb.store().join(".alice.state"), "garbage").unwrap();
    fs::set_permissions(
        sb.store().join(".alice.state"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    t.push(sb.bad_input_row(
        ".alice.state holding `garbage`",
        &["verify", "alice", "123456"],
        None,
        2,
        "$DIR/users/.alice.state: the login state is damaged",
    ));
    let sb = with_alice();
    fs::set_permissions(sb.record_path("alice"), fs::Permissions::from_mode(0o644)).unwrap();
    t.push(sb.bad_input_row(
        "alice.toml with mode 0644",
        &["verify", "alice", "123456"],
        None,
        2,
        "chmod 600 $DIR/users/alice.toml",
    ));
    let sb = with_alice();
    fs::set_permissions(sb.store(), fs::Permissions::from_mode(0o755)).unwrap();
    t.push(sb.bad_input_row(
        "the store directory with mode 0755",
        &["verify", "alice", "123456"],
        None,
        2,
        "chmod 700 $DIR/users",
    ));
    t.check();
}

#[test]
fn table_users_oath_lines() {
    let mut t = table(
        "users.oath",
        "cargo test -p sshield --test bad_input table_users_oath_lines",
    );
    let hex = "3132333435363738393031323334353637383930";
    for (line, expected) in [
        (
            format!("HOTP/E/5 bob - {hex}"),
            "users.oath:1: token type \"HOTP/E/5\" asks for 5 digits; sshield and the apps support 6, 7 or 8",
        ),
        (
            format!("MOTP bob - {hex}"),
            "users.oath:1: unknown token type \"MOTP\"; expected HOTP",
        ),
        ("HOTP bob - zz".to_owned(), "users.oath:1: the secret cannot be used"),
        (
            format!("HOTP ../root - {hex}"),
            "users.oath:1: user name \"../root\": user name must not start with '.' or '-'",
        ),
        ("HOTP".to_owned(), "users.oath:1: found 1 field; expected TYPE USER PIN SECRET"),
        (
            format!("HOTP/T30 bob - {hex} many"),
            "users.oath:1: field 5 (the counter) must be a whole number",
        ),
        (
            format!("HOTP/T30 bob - {hex} 0 123456 2020-13-45T00:00:00L"),
            "users.oath:1: field 7 (the last login time) must look like 2024-01-31T13:45:00L",
        ),
    ] {
        let sb = with_alice();
        fs::write(sb.path().join("users.oath"), format!("{line}\n")).unwrap();
        t.push(sb.bad_input_row(
            &line,
            &["import", "users-oath", "users.oath"],
            None,
            2,
            expected,
        ));
    }
    t.check();
}

#[test]
fn table_google_authenticator_files() {
    let mut t = table(
        "google_authenticator",
        "cargo test -p sshield --test bad_input table_google_authenticator_files",
    );
    for (text, expected) in [
        (
            "NOT-BASE32!!\n\" TOTP_AUTH",
            "ga:1: the secret cannot be used: invalid base32 character",
        ),
        ("", "ga:1: the first line must be the base32 secret"),
        (
            "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U\n\" STEP_SIZE 0\n\" TOTP_AUTH",
            "ga:2: \" STEP_SIZE takes a number of seconds from 1 to 60",
        ),
        (
            "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U\n\" TOTP_AUTH\n123",
            "ga:3: neither an option (\" NAME ...) nor an 8-digit scratch code; fix or remove the line",
        ),
        (
            "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
            "ga:1: neither \" TOTP_AUTH nor \" HOTP_COUNTER is set",
        ),
        (
            "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U\n\" TOTP_AUTH\n\" TOTP_AUTH",
            "ga:3:",
        ),
    ] {
        let sb = with_alice();
        fs::write(sb.path().join("ga"), format!("{text}\n")).unwrap();
        t.push(sb.bad_input_row(
            if text.is_empty() { "(an empty file)" } else { text },
            &["import", "google-authenticator", "ga", "--user", "bob"],
            None,
            2,
            expected,
        ));
    }
    let sb = with_alice();
    fs::write(sb.path().join("ga"), format!("{SECRET_A}\n\" TOTP_AUTH\n")).unwrap();
    t.push(sb.bad_input_row(
        "alice's own secret again",
        &["import", "google-authenticator", "ga", "--user", "alice"],
        None,
        2,
        "sshield remove alice --name default",
    ));
    t.check();
}

#[test]
fn table_command_line() {
    let mut t = table(
        "command line",
        "cargo test -p sshield --test bad_input table_command_line",
    );
    for (args, expected) in [
        (&["enroll", "bob", "--digits", "9"][..], "--digits"),
        (&["enroll", "bob", "--period", "0"], "--period"),
        (&["enroll", "bob", "--algorithm", "md5"], "--algorithm"),
        (&["enroll", "bob", "--counter", "3"], "--counter"),
        (&["enroll", "bob", "--hotp", "--totp"], "--totp"),
        (
            &["enroll", "bob", "--secret", "S3CR3T-V4LU3-0189!"],
            "--secret",
        ),
        (
            &["enroll", "../root", "--no-confirm"],
            "\"../root\": user name must not start with '.' or '-'",
        ),
        (&["verify", "alice"], "<CODE>"),
        (&["remove", "alice", "--name", "tablet"], "tablet"),
        (&["frobnicate"], "frobnicate"),
    ] {
        let sb = with_alice();
        let row = sb.bad_input_row(&args.join(" "), args, None, 2, expected);
        assert!(!row.message.contains("V4LU3"), "{row:?}");
        t.push(row);
    }
    t.check();
}

/// No command reads an `otpauth://` URI yet (sshield writes them); these rows are the
/// parser's own messages, for the importer that will (the fuzz target `uri` runs the same
/// parser).
#[test]
fn table_otpauth_uris() {
    let mut t = table(
        "otpauth URIs",
        "cargo test -p sshield --test bad_input table_otpauth_uris",
    );
    for uri in [
        "https://example.com/?secret=GEZDGNBV",
        "otpauth://motp/alice?secret=GEZDGNBVGY3TQOJQ",
        "otpauth://totp/alice",
        "otpauth://totp/alice?secret=NOT-BASE32!",
        "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQ&digits=12",
        "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQ&period=0",
        "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQ&algorithm=MD5",
        "otpauth://hotp/alice?secret=GEZDGNBVGY3TQOJQ",
    ] {
        let message = match sshield_otp::KeyUri::parse(uri) {
            Ok(_) => panic!("{uri} parsed"),
            Err(e) => e.to_string(),
        };
        assert!(!message.contains("NOT-BASE32"), "{message}");
        t.push(Row {
            input: uri.to_owned(),
            tried: "sshield_otp::KeyUri::parse".to_owned(),
            outcome: "error".to_owned(),
            message,
            stored: "no store involved".to_owned(),
        });
    }
    t.check();
}
