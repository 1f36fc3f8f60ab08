//! A user's life through the `sshield` binary: pending until confirmed, idempotent
//! provisioning, several authenticators, status, new backup codes, disable/enable, remove.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::{
    code_now, totp_codes_around, wrong_totp, Sandbox, SECRET_A, SECRET_B, SECRET_C, SECRET_D,
};

#[test]
fn enrollment_stays_pending_until_a_first_code_confirms_it() {
    let sb = Sandbox::new();
    // Not a terminal and no --confirm: no prompt, the record waits.
    sb.run(&["enroll", "bob", "--secret", SECRET_A], None)
        .expect_err(0, "sshield confirm bob CODE");
    assert_eq!(sb.state("bob"), "pending");

    let code = code_now(SECRET_A, &["--totp"]);
    sb.run(&["verify", "bob", &code], None)
        .expect_err(1, "not confirmed");

    let wrong = wrong_totp(SECRET_A, &["--totp"], 30);
    sb.run(&["confirm", "bob", &wrong], None)
        .expect_err(1, "wrong code");
    assert_eq!(sb.state("bob"), "pending");
    // A backup code proves nothing about the app, so it does not confirm.
    let backup = sb.run(&["backup-codes", "bob", "--json"], None);
    backup.expect(0);
    let first_backup = backup.json()["backup_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    sb.run(&["confirm", "bob", &first_backup], None).expect(1);
    assert_eq!(sb.state("bob"), "pending");

    sb.run(&["confirm", "bob", &code], None)
        .expect_err(0, "confirmed and active");
    assert_eq!(sb.state("bob"), "active");
    // Confirming used the code up.
    sb.run(&["verify", "bob", &code], None)
        .expect_err(1, "already used");
    sb.run(&["verify", "bob", &first_backup], None).expect(0);
    sb.run(&["confirm", "bob", &code], None)
        .expect_err(2, "no authenticator waiting");
}

#[test]
fn enroll_and_confirm_in_one_step() {
    let sb = Sandbox::new();
    let code = code_now(SECRET_B, &["--totp"]);
    sb.run(
        &["enroll", "erin", "--secret", SECRET_B, "--confirm", &code],
        None,
    )
    .expect(0)
    .expect_out("Confirmed: erin's authenticator \"default\" is active.");
    assert_eq!(sb.state("erin"), "active");
    sb.run(&["verify", "erin", &code], None)
        .expect_err(1, "already used");

    // A wrong code at enrollment: refused, and the user stays pending (nothing is lost).
    let wrong = wrong_totp(SECRET_C, &["--totp"], 30);
    sb.run(
        &["enroll", "frank", "--secret", SECRET_C, "--confirm", &wrong],
        None,
    )
    .expect_err(1, "wrong code");
    assert_eq!(sb.state("frank"), "pending");
    let code = code_now(SECRET_C, &["--totp"]);
    sb.run(&["confirm", "frank", &code], None).expect(0);
    assert_eq!(sb.state("frank"), "active");

    // --confirm and --no-confirm contradict each other.
    sb.run(
        &[
            "enroll",
            "gina",
            "--secret",
            SECRET_C,
            "--confirm",
            "123456",
            "--no-confirm",
        ],
        None,
    )
    .expect_err(2, "cannot be used with");
}

#[test]
fn re_running_the_same_enroll_changes_nothing() {
    let sb = Sandbox::new();
    let enroll = ["enroll", "carol", "--secret", SECRET_C, "--no-confirm"];
    sb.run(&enroll, None).expect(0).expect_out("is active");
    let code = code_now(SECRET_C, &["--totp"]);
    sb.run(&["verify", "carol", &code], None).expect(0);
    let before = sb.record_bytes("carol");

    let again = sb.run(&enroll, None);
    again.expect(0).expect_out("nothing changed");
    assert!(
        !again.stdout.contains(SECRET_C) && !again.stdout.contains("Backup codes"),
        "{}",
        again.stdout
    );
    assert_eq!(sb.record_bytes("carol"), before, "the record was rewritten");
    // The same again as JSON: still nothing written.
    sb.run(
        &[
            "enroll",
            "carol",
            "--secret",
            SECRET_C,
            "--no-confirm",
            "--json",
        ],
        None,
    )
    .expect(0);
    assert_eq!(sb.record_bytes("carol"), before);
    // Replay state survived the re-run.
    sb.run(&["verify", "carol", &code], None)
        .expect_err(1, "already used");
    // That failure was counted (rate limiting), so the record changed; from here on it must not.
    let before = sb.record_bytes("carol");

    // A different secret under the same name is refused, naming the way out.
    sb.run(
        &["enroll", "carol", "--secret", SECRET_D, "--no-confirm"],
        None,
    )
    .expect_err(2, "--replace");
    assert_eq!(sb.record_bytes("carol"), before);

    sb.run(
        &[
            "enroll",
            "carol",
            "--secret",
            SECRET_D,
            "--no-confirm",
            "--replace",
        ],
        None,
    )
    .expect(0);
    let new_code = code_now(SECRET_D, &["--totp"]);
    sb.run(&["verify", "carol", &new_code], None).expect(0);
    // The old secret no longer opens anything.
    let old = code_now(SECRET_C, &["--totp"]);
    if !totp_codes_around(SECRET_D, &["--totp"], 30).contains(&old) {
        sb.run(&["verify", "carol", &old], None)
            .expect_err(1, "wrong code");
    }
}

#[test]
fn several_authenticators_and_removing_one() {
    let sb = Sandbox::new();
    sb.run(
        &[
            "enroll",
            "dan",
            "--name",
            "phone",
            "--secret",
            SECRET_A,
            "--no-confirm",
        ],
        None,
    )
    .expect(0);
    let second = sb.run(
        &[
            "enroll",
            "dan",
            "--name",
            "yubikey-oath",
            "--secret",
            SECRET_B,
            "--no-confirm",
        ],
        None,
    );
    second
        .expect(0)
        .expect_out("Existing backup codes were kept");

    let status = sb.run(&["status", "dan", "--json"], None);
    status.expect(0);
    let names: Vec<String> = status.json()[0]["authenticators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["phone", "yubikey-oath"]);

    let phone = code_now(SECRET_A, &["--totp"]);
    let yubikey = code_now(SECRET_B, &["--totp"]);
    sb.run(&["verify", "dan", &phone], None)
        .expect_err(0, "from \"phone\"");
    sb.run(&["verify", "dan", &yubikey], None)
        .expect_err(0, "from \"yubikey-oath\"");
    // `code --name` picks one.
    sb.run(&["code", "dan", "--name", "yubikey-oath"], None)
        .expect(0);
    sb.run(&["code", "dan", "--name", "nope"], None)
        .expect_err(2, "no authenticator named \"nope\"");

    sb.run(&["remove", "dan", "--name", "phone"], None)
        .expect_err(0, "removed authenticator \"phone\"");
    sb.run(&["remove", "dan", "--name", "phone"], None)
        .expect_err(2, "no authenticator named \"phone\"");
    assert_eq!(sb.state("dan"), "active");
    // Fresh codes: the phone's is now just wrong, the yubikey's (a new step, or a replay)
    // is judged by its own history.
    let phone_again = code_now(SECRET_A, &["--totp"]);
    if !totp_codes_around(SECRET_B, &["--totp"], 30).contains(&phone_again) {
        sb.run(&["verify", "dan", &phone_again], None)
            .expect_err(1, "wrong code");
    }
    sb.run(&["verify", "dan", &yubikey], None)
        .expect_err(1, "already used");
    let out = sb.run(&["status", "dan", "--json"], None);
    let auths = out.json()[0]["authenticators"].clone();
    assert_eq!(auths.as_array().unwrap().len(), 1);
    assert_eq!(auths[0]["name"], "yubikey-oath");
}

#[test]
fn status_shows_state_and_last_use() {
    let sb = Sandbox::new();
    sb.run(&["status"], None)
        .expect(0)
        .expect_out("No users are enrolled");
    let alice = sb.enroll_json("alice", &["--no-confirm", "--secret", SECRET_A]);
    sb.run(&["enroll", "bob", "--secret", SECRET_B], None)
        .expect(0);

    let table = sb.run(&["status"], None);
    table.expect(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("USER"), "{}", table.stdout);
    assert!(lines[0].contains("LAST LOGIN"), "{}", table.stdout);
    let row = |name: &str, text: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{text}"))
            .to_owned()
    };
    let a = row("alice", &table.stdout);
    assert!(a.contains("active") && a.contains("default (totp)"), "{a}");
    assert!(a.contains(" 10 ") && a.ends_with("never"), "{a}");
    let b = row("bob", &table.stdout);
    assert!(
        b.contains("pending") && b.contains("default (totp, pending)"),
        "{b}"
    );

    let code = code_now(SECRET_A, &["--totp"]);
    sb.run(&["verify", "alice", &code], None).expect(0);
    sb.run(&["verify", "alice", &alice.backup_codes[0]], None)
        .expect(0);
    let a = row("alice", &sb.run(&["status"], None).stdout);
    assert!(a.contains(" 9 ") && a.ends_with("(backup)"), "{a}");
    assert!(
        a.contains('T') && a.contains(':'),
        "no time of the login in {a}"
    );

    let json = sb.run(&["status", "--json"], None);
    json.expect(0);
    let rows = json.json();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let a = &rows[0];
    assert_eq!(a["user"], "alice");
    assert_eq!(a["state"], "active");
    assert_eq!(a["backup_codes_left"], 9);
    assert_eq!(a["last_method"], "backup");
    assert!(a["last_success"].as_str().unwrap().len() >= 20, "{a}");
    assert!(a["authenticators"][0]["last_used"].is_string(), "{a}");
    assert_eq!(a["authenticators"][0]["active"], true);
    assert!(a.get("error").is_none(), "{a}");
    let b = &rows[1];
    assert_eq!(b["state"], "pending");
    assert!(b["last_success"].is_null(), "{b}");

    sb.run(&["status", "nobody"], None)
        .expect_err(2, "nobody is not enrolled");
}

#[test]
fn new_backup_codes_void_the_old_set() {
    let sb = Sandbox::new();
    let e = sb.enroll_json("alice", &["--no-confirm"]);
    sb.run(&["verify", "alice", &e.backup_codes[0]], None)
        .expect(0);

    let out = sb.run(&["backup-codes", "alice", "--json"], None);
    out.expect(0);
    let json = out.json();
    assert_eq!(json["user"], "alice");
    let fresh: Vec<String> = json["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| common::is_backup_code(c)));
    assert!(fresh.iter().all(|c| !e.backup_codes.contains(c)));

    for old in &e.backup_codes[..3] {
        sb.run(&["verify", "alice", old], None)
            .expect_err(1, "wrong code");
    }
    sb.run(&["verify", "alice", &fresh[9]], None)
        .expect_err(0, "backup code (9 left)");

    let human = sb.run(&["backup-codes", "alice"], None);
    human.expect(0).expect_out("the old ones no longer work");
    let printed: Vec<&str> = human
        .stdout
        .split_whitespace()
        .filter(|w| common::is_backup_code(w))
        .collect();
    assert_eq!(printed.len(), 10, "{}", human.stdout);
    sb.run(&["verify", "alice", &fresh[0]], None).expect(1);
    sb.run(&["verify", "alice", printed[4]], None).expect(0);

    sb.run(&["backup-codes", "nobody"], None)
        .expect_err(2, "nobody is not enrolled");
}

#[test]
fn disable_enable_remove() {
    let sb = Sandbox::new();
    let e = sb.enroll_json("alice", &["--no-confirm", "--secret", SECRET_A]);
    let code = code_now(SECRET_A, &["--totp"]);

    sb.run(&["disable", "alice"], None)
        .expect_err(0, "alice's second factor is disabled");
    sb.run(&["disable", "alice"], None)
        .expect_err(0, "already disabled");
    assert_eq!(sb.state("alice"), "disabled");
    sb.run(&["verify", "alice", &code], None)
        .expect_err(1, "disabled");
    sb.run(&["verify", "alice", &e.backup_codes[0]], None)
        .expect_err(1, "disabled");

    sb.run(&["enable", "alice"], None)
        .expect_err(0, "alice's second factor is enabled");
    assert_eq!(sb.state("alice"), "active");
    // The refusals while disabled used nothing up.
    sb.run(&["verify", "alice", &code], None).expect(0);
    sb.run(&["verify", "alice", &e.backup_codes[0]], None)
        .expect_err(0, "9 left");

    sb.run(&["remove", "alice"], None)
        .expect_err(0, "removed alice's record");
    assert!(!sb.record_path("alice").exists());
    sb.run(&["verify", "alice", &e.backup_codes[1]], None)
        .expect_err(1, "not enrolled");
    sb.run(&["remove", "alice"], None)
        .expect_err(2, "alice is not enrolled");
    sb.run(&["enable", "alice"], None)
        .expect_err(2, "alice is not enrolled");
    sb.run(&["code", "alice"], None)
        .expect_err(2, "alice is not enrolled");
}

#[test]
fn code_prints_what_oathtool_prints() {
    let sb = Sandbox::new();
    for (user, secret, args, flags) in [
        ("alice", SECRET_A, &[][..], &["--totp"][..]),
        (
            "bob",
            SECRET_B,
            &["--algorithm", "sha512", "--digits", "8", "--period", "45"][..],
            &["--totp=sha512", "--digits=8", "--time-step-size=45s"][..],
        ),
    ] {
        let mut enroll = vec!["enroll", user, "--no-confirm", "--secret", secret];
        enroll.extend_from_slice(args);
        sb.run(&enroll, None).expect(0);
        // Bracket the run with two oathtool calls, in case it straddles a step boundary.
        let before = code_now(secret, flags);
        let out = sb.run(&["code", user], None);
        let after = code_now(secret, flags);
        out.expect(0);
        let printed = out.stdout.trim_end();
        assert!(
            printed == before || printed == after,
            "{user}: sshield code {printed}, oathtool {before}/{after}"
        );
        assert_eq!(out.stdout, format!("{printed}\n"));
    }
    // `code` does not use the code up.
    let code = code_now(SECRET_A, &["--totp"]);
    sb.run(&["code", "alice"], None).expect(0);
    sb.run(&["verify", "alice", &code], None).expect(0);
}

#[test]
fn bind_keys_takes_public_key_files_and_fingerprints() {
    let sb = Sandbox::new();
    sb.enroll_json("erin", &["--no-confirm"]);
    let key = sb.path().join("id");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (apt-get install openssh-client)");
    assert!(status.success());
    let printed = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8(printed.stdout).unwrap();
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap().to_owned();

    let pubkey = key.with_extension("pub");
    sb.run(&["bind-keys", "erin", pubkey.to_str().unwrap()], None)
        .expect_err(0, &fingerprint);
    let record = String::from_utf8(sb.record_bytes("erin")).unwrap();
    assert!(record.contains(&fingerprint), "{record}");
    // Without sshd's account of the first factor, the bound code is refused.
    let code = common::code_now(&secret_of(&record), &["--totp"]);
    sb.run(&["verify", "erin", &code], None)
        .expect_err(1, "bind-keys");
    sb.run(&["bind-keys", "erin", "--clear"], None).expect(0);
    sb.run(&["bind-keys", "erin", "SHA256:short"], None)
        .expect_err(2, "fingerprint");
    sb.run(&["bind-keys", "erin", "/nonexistent.pub"], None)
        .expect_err(2, "/nonexistent.pub");
}

fn secret_of(record: &str) -> String {
    let line = record.lines().find(|l| l.starts_with("secret = ")).unwrap();
    line.trim_start_matches("secret = ")
        .trim_matches('"')
        .to_owned()
}
