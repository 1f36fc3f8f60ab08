//! pam_sshield.so in a real OpenSSH `sshd`, logged into with the real `ssh`, `sftp` and `scp`:
//! the setups of docs/pam.md and the policies of docs/config.md, proven end to end (issue 3,
//! "Proven against the real thing", items 1-8, and the fail2ban filter against lines the
//! module really logged).
//!
//! Every test has its own sshd (under its own PAM service name), its own throwaway accounts,
//! and its own sshield config and record store in a temp dir; users are enrolled with the real
//! `sshield enroll`, and codes come from `oathtool`. The module is the built
//! `target/<profile>/libpam_sshield.so`, named in the PAM service file by absolute path
//! (through a `pam_sshield.so` symlink, so that its log lines carry the installed name).
//!
//! Clients connect from 127.0.0.3 ("the internet") unless a test says otherwise. Root only
//! (accounts, PAM service files); elsewhere they skip, in CI they fail.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sshield_e2e::{CaseInsensitiveNamespace, Client, Group, Sshd, User, UserOptions};

/// Panics if `secret` appears in sshd's log, the module's syslog lines or the log file.
#[track_caller]
fn assert_never_logged(sshd: &Sshd, sshield: &Sshield, secret: &str) {
    assert!(!sshd.log().contains(secret), "{secret:?} is in sshd's log");
    assert!(!sshd.syslog().contains(secret), "{secret:?} is in syslog");
    let file = sshield.log_lines().join("\n");
    assert!(!file.contains(secret), "{secret:?} is in the log file");
}

/// Panics if the 6-digit `code` is a field or word of a message in the captured syslog or the
/// log file. (Not sshd's debug log, full of longer numbers that may hold any six digits; nor
/// the lines' time stamps and pids.)
#[track_caller]
fn assert_code_never_logged(sshd: &Sshd, sshield: &Sshield, code: &str) {
    let text = sshd.syslog() + &sshield.log_lines().join("\n");
    for line in text.lines() {
        // `<PRI>Mmm dd hh:mm:ss TAG: MESSAGE` or `TIME HOST sshield[PID]: MESSAGE`
        let message = line.split_once(": ").map_or(line, |(_, m)| m);
        let mut words = message.split(|c: char| c.is_whitespace() || "=\"',;:()".contains(c));
        assert!(!words.any(|w| w == code), "a code was logged: {line}");
    }
}

// 1. Password, then a code (seed 002's setup); and both in one field.

#[test]
fn password_then_code() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());
    let code = token.code();

    let out = login(&sshd, &user, [user.password(), &code]).run();
    out.assert_success();
    assert_eq!(out.stdout, "ok\n");
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert!(sshd.log().contains(&format!(
        "Accepted keyboard-interactive/pam for {} from 127.0.0.3 port",
        user.name()
    )));
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.3", &sshd, "totp", "ok"),
    );

    // The password alone is not enough: the code prompt gets no answer.
    let out = login(&sshd, &user, [user.password()]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);

    assert_never_logged(&sshd, &sshield, user.password());
    assert_never_logged(&sshd, &sshield, &token.secret);
    assert_code_never_logged(&sshd, &sshield, &code);
}

#[test]
fn password_and_code_in_one_field() {
    if !can_run() {
        return;
    }
    // docs/pam.md: the module first, with forward_pass; pam_unix after it takes the password
    // the module split off (try_first_pass: without one it would ask itself).
    let sshield = Sshield::new("");
    let sshd = Sshd::start(password_then_code_options(&sshield).pam(sshd_stack([
        sshield.auth_line("forward_pass"),
        "auth required pam_unix.so try_first_pass nodelay".to_owned(),
    ])));
    let user = User::create();
    let token = sshield.enroll(user.name());

    let code = token.code();
    let out = login(&sshd, &user, [format!("{}{code}", user.password())]).run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [FORWARD_PASS_PROMPT], "one prompt only");
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.3", &sshd, "totp", "ok"),
    );

    // The right password with a wrong code, and a wrong password with a good code: refused,
    // each after the one prompt.
    let wrong = token.wrong_code();
    let out = login(&sshd, &user, [format!("{}{wrong}", user.password())]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [FORWARD_PASS_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "deny",
            user.name(),
            "127.0.0.3",
            &sshd,
            "code",
            "wrong-code",
        ),
    );
    let out = login(&sshd, &user, [format!("not-the-password{}", token.code())]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [FORWARD_PASS_PROMPT]);
    let pam_unix = format!(
        "pam_unix({}:auth): authentication failure",
        sshd.service_name()
    );
    assert!(
        sshd.wait_for_syslog(&pam_unix, LOG_WAIT),
        "pam_unix did not check the password part:\n{}",
        sshd.syslog()
    );

    assert_never_logged(&sshd, &sshield, user.password());
    assert_code_never_logged(&sshd, &sshield, &code);
}

// 2. Public key, then a code.

#[test]
fn public_key_then_code() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    // After the key, only the code is asked: the module alone.
    let sshd = Sshd::start(key_then_code_options(&sshield));
    let user = User::create();
    let token = sshield.enroll(user.name());
    let with_key = |answers: Vec<String>| {
        Client::ssh(&sshd, &user)
            .from("127.0.0.3")
            .key(user.key())
            .methods("publickey,keyboard-interactive")
            .command("echo ok")
            .answers(answers)
    };

    let out = with_key(vec![token.code()]).run();
    out.assert_success();
    assert_eq!(out.stdout, "ok\n");
    assert_eq!(out.prompt_texts(), [CODE_PROMPT]);
    let log = sshd.log();
    assert!(
        log.contains(&format!("Partial publickey for {}", user.name())),
        "{log}"
    );
    assert!(log.contains(&format!(
        "Accepted keyboard-interactive/pam for {}",
        user.name()
    )));
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.3", &sshd, "totp", "ok"),
    );

    // The key with a wrong code, or with none: refused.
    let out = with_key(vec![token.wrong_code()]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [CODE_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "deny",
            user.name(),
            "127.0.0.3",
            &sshd,
            "code",
            "wrong-code",
        ),
    );
    with_key(vec![]).run().assert_denied();

    // Without the key the code is never asked: the key comes first.
    let out = Client::ssh(&sshd, &user)
        .from("127.0.0.3")
        .methods("keyboard-interactive")
        .command("echo ok")
        .answers([token.code()])
        .run();
    out.assert_denied();
    assert!(out.prompts.is_empty(), "{out:?}");
}

// 3. sftp and scp.

#[test]
fn sftp_and_scp_with_a_second_factor() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());
    let local = tempfile::tempdir().unwrap();
    let up = local.path().join("up.txt");
    let down = local.path().join("down.txt");
    fs::write(&up, "sent over sftp\n").unwrap();

    // Every transfer is a login of its own, and each takes a second factor: the current
    // code, the next one (the window accepts one step ahead), then a backup code.
    let out = Client::sftp(
        &sshd,
        &user,
        format!(
            "put {} uploaded.txt\nget uploaded.txt {}",
            up.display(),
            down.display()
        ),
    )
    .from("127.0.0.3")
    .answers([user.password().to_owned(), token.code()])
    .run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_eq!(fs::read_to_string(&down).unwrap(), "sent over sftp\n");
    assert_eq!(
        fs::read_to_string(user.home().join("uploaded.txt")).unwrap(),
        "sent over sftp\n"
    );

    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let up = local.path().join("up.bin");
    fs::write(&up, &data).unwrap();
    let out = Client::scp(&sshd, &user)
        .from("127.0.0.3")
        .upload(&up, "copy.bin")
        .answers([user.password().to_owned(), token.code()])
        .run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_eq!(fs::read(user.home().join("copy.bin")).unwrap(), data);

    let down = local.path().join("down.bin");
    let out = Client::scp(&sshd, &user)
        .from("127.0.0.3")
        .download("copy.bin", &down)
        .answers([user.password(), &token.backup_codes[0]])
        .run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_eq!(fs::read(&down).unwrap(), data);

    let allowed = sshield.log_lines_with(&format!("allow user={} ", user.name()));
    assert_eq!(allowed.len(), 3, "{allowed:#?}");
    assert!(
        allowed[0].ends_with("method=totp reason=ok"),
        "{allowed:#?}"
    );
    assert!(
        allowed[1].ends_with("method=totp reason=ok"),
        "{allowed:#?}"
    );
    assert!(
        allowed[2].ends_with("method=backup reason=ok"),
        "{allowed:#?}"
    );

    // Without the code, no transfer.
    let out = Client::sftp(&sshd, &user, "ls")
        .from("127.0.0.3")
        .answers([user.password()])
        .run();
    assert!(!out.success(), "{out:?}");
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
}

// 4. Exempt networks.

#[test]
fn no_code_from_an_exempt_network() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("[policy]\nexempt_networks = [\"127.0.0.2/32\"]");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());

    // From the LAN: the password only.
    let out = login(&sshd, &user, [user.password()])
        .from("127.0.0.2")
        .run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "allow",
            user.name(),
            "127.0.0.2",
            &sshd,
            "exempt",
            "network",
        ),
    );

    // From anywhere else: the code too.
    let out = login(&sshd, &user, [user.password().to_owned(), token.code()]).run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.3", &sshd, "totp", "ok"),
    );
    let out = login(&sshd, &user, [user.password()]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
}

// 5. Group policy; unenrolled users under each policy.

#[test]
fn only_members_of_a_required_group_are_asked() {
    if !can_run() {
        return;
    }
    let admins = Group::create();
    let sshield = Sshield::new(&format!(
        "[policy]\nrequire_groups = [\"{}\"]",
        admins.name()
    ));
    let sshd = start_password_then_code(&sshield);
    let member = User::with(UserOptions::new().group(&admins));
    let outsider = User::create();
    let token = sshield.enroll(member.name());
    // Enrolled too: what spares the outsider is the policy, not a missing record.
    sshield.enroll(outsider.name());

    let out = login(&sshd, &member, [member.password().to_owned(), token.code()]).run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", member.name(), "127.0.0.3", &sshd, "totp", "ok"),
    );
    let out = login(&sshd, &member, [member.password()]).run();
    out.assert_denied();

    let out = login(&sshd, &outsider, [outsider.password()]).run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "allow",
            outsider.name(),
            "127.0.0.3",
            &sshd,
            "exempt",
            "not-in-required-group",
        ),
    );

    // Membership is looked up at each login: the outsider who joins is asked from then on.
    outsider.join(&admins);
    let out = login(&sshd, &outsider, [outsider.password()]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
}

/// `YYYY-MM-DD` of the UTC day `days` days from today.
fn utc_date(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = (unix_now() / 86_400) as i64 + days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[test]
fn unenrolled_users_under_each_policy() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new(""); // unenrolled = "deny", the default
    let sshd = start_password_then_code(&sshield);
    let enrolled = User::create();
    let token = sshield.enroll(enrolled.name());
    let newcomer = User::create();

    // deny: asked exactly like an enrolled user, whatever they type, and refused.
    let out = login(
        &sshd,
        &enrolled,
        [enrolled.password().to_owned(), token.code()],
    )
    .run();
    out.assert_success();
    let enrolled_prompts = out.prompt_texts();
    let out = login(
        &sshd,
        &newcomer,
        [newcomer.password().to_owned(), token.code()],
    )
    .run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), enrolled_prompts);
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "deny",
            newcomer.name(),
            "127.0.0.3",
            &sshd,
            "unenrolled",
            "not-enrolled",
        ),
    );

    // allow: let in without a code, and logged. (The module reads the config at each login.)
    sshield.write_config("[policy]\nunenrolled = \"allow\"");
    let out = login(&sshd, &newcomer, [newcomer.password()]).run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "allow",
            newcomer.name(),
            "127.0.0.3",
            &sshd,
            "unenrolled",
            "unenrolled-allowed",
        ),
    );
    // ... while an enrolled user is still asked.
    let out = login(&sshd, &enrolled, [enrolled.password()]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);

    // allow_until: a grace period while it runs (tomorrow, so that midnight cannot end it
    // during the test), a denial once it is over.
    sshield.write_config(&format!(
        "[policy]\nunenrolled = \"deny\"\nallow_until = {}",
        utc_date(1)
    ));
    let out = login(&sshd, &newcomer, [newcomer.password()]).run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "allow",
            newcomer.name(),
            "127.0.0.3",
            &sshd,
            "unenrolled",
            "unenrolled-grace",
        ),
    );
    sshield.write_config(&format!(
        "[policy]\nunenrolled = \"deny\"\nallow_until = {}",
        utc_date(-2)
    ));
    let out = login(&sshd, &newcomer, [newcomer.password(), "123456"]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), enrolled_prompts);
    let refusals = sshield.log_lines_with(&format!(
        "deny user={} rhost=127.0.0.3 service={} method=unenrolled reason=not-enrolled",
        newcomer.name(),
        sshd.service_name()
    ));
    assert_eq!(refusals.len(), 2, "{:#?}", sshield.log_lines());
}

/// Attack review, issue 9 item 1: with a name service that maps several spellings to one
/// account (SSSD `case_sensitive = false`, winbind), sshd logs `ALICE` in as `alice` but hands
/// PAM the name as typed. A stolen key with the name in capitals must still meet alice's
/// record, under the rollout policies that let unenrolled users in.
#[test]
fn another_spelling_of_an_enrolled_name_is_asked_for_the_code() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = Sshd::start(key_then_code_options(&sshield).case_insensitive_names(true));
    let admins = Group::create();
    let user = User::with(UserOptions::new().group(&admins));
    let token = sshield.enroll(user.name());
    let spelled = user.name().to_uppercase();
    let with_stolen_key = |answers: Vec<String>| {
        Client::ssh(&sshd, &spelled)
            .from("127.0.0.3")
            .key(user.key())
            .methods("publickey,keyboard-interactive")
            .command("id -un")
            .answers(answers)
    };
    for policy in [
        "unenrolled = \"allow\"".to_owned(),
        format!("unenrolled = \"deny\"\nallow_until = {}", utc_date(1)),
    ] {
        sshield.write_config(&format!("[policy]\n{policy}"));
        let out = with_stolen_key(vec![]).run();
        out.assert_denied();
        assert_eq!(out.prompt_texts(), [CODE_PROMPT], "{policy}");

        // With the code it is alice's login, and her code is used up.
        let code = token.code();
        let out = with_stolen_key(vec![code.clone()]).run();
        out.assert_success();
        assert_eq!(out.stdout, format!("{}\n", user.name()), "{policy}");
        assert_logged(
            &sshd,
            &sshield,
            &decision("allow", user.name(), "127.0.0.3", &sshd, "totp", "ok"),
        );
        let out = with_stolen_key(vec![code]).run();
        out.assert_denied();
        assert_logged(
            &sshd,
            &sshield,
            &decision("deny", user.name(), "127.0.0.3", &sshd, "code", "replayed"),
        );
    }
    // Groups are the account's too: a member of a required group is asked under any spelling
    // (the group file lists `alice`, not `ALICE`).
    sshield.write_config(&format!(
        "[policy]\nrequire_groups = [\"{}\"]",
        admins.name()
    ));
    let out = with_stolen_key(vec![]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [CODE_PROMPT]);
}

/// Issue 9 item 1 in the admin's commands: where the name service says `ALICE` is `alice`,
/// `sshield verify ALICE` checks (and uses up) alice's code, and `status` and `enroll` mean
/// alice's record, not a second one that no login would ever read.
#[test]
fn the_cli_takes_another_spelling_as_the_account() {
    if !can_run() {
        return;
    }
    let names = CaseInsensitiveNamespace::new();
    let sshield = Sshield::new("");
    let user = User::create();
    let token = sshield.enroll(user.name());
    let spelled = user.name().to_uppercase();
    let cli = |args: &[&str]| {
        let out = names
            .command(&sshield_e2e::artefacts().cli)
            .arg("--config")
            .arg(&sshield.config)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let code = token.code();
    let (status, text) = cli(&["verify", &spelled, &code]);
    assert_eq!(status, Some(0), "{text}");
    let (status, text) = cli(&["verify", user.name(), &code]);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("code already used"), "{text}");

    let (status, text) = cli(&["status", &spelled]);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains(user.name()), "{text}");
    let (status, text) = cli(&["enroll", &spelled, "--no-confirm", "--name", "spare"]);
    assert_eq!(status, Some(0), "{text}");
    assert!(sshield.record(user.name()).contains("name = \"spare\""));
    assert!(!sshield.record_path(&spelled).exists());
}

// 6. Wrong, replayed and backup codes.

/// Seed 001's phisher, or a thief with the phone: a good code that arrives with a key other
/// than the one `sshield bind-keys` named (an old key left in `authorized_keys`, or a stolen
/// one) is refused, through sshd's own account of the key (`ExposeAuthInfo yes`), and does
/// not use the code up: the same code then passes with the bound key.
#[test]
fn a_code_after_another_key_than_the_bound_one_is_refused() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = Sshd::start(key_then_code_options(&sshield).config(["ExposeAuthInfo yes"]));
    let user = User::create();
    let token = sshield.enroll(user.name());
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "old-laptop", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(made.success(), "ssh-keygen");
    user.append_authorized_key(&fs::read_to_string(other.with_extension("pub")).unwrap());
    let bound = Command::new(&artefacts().cli)
        .arg("--config")
        .arg(&sshield.config)
        .args(["bind-keys", user.name()])
        .arg(user.key().with_extension("pub"))
        .output()
        .unwrap();
    assert!(bound.status.success(), "bind-keys: {bound:?}");
    let with_key = |key: &Path, code: &str| {
        Client::ssh(&sshd, &user)
            .from("127.0.0.3")
            .key(key)
            .methods("publickey,keyboard-interactive")
            .command("echo ok")
            .answers([code.to_owned()])
    };

    let code = token.code();
    let out = with_key(&other, &code).run();
    out.assert_denied();
    assert!(
        sshd.log()
            .contains(&format!("Partial publickey for {}", user.name())),
        "the other key was accepted as the first factor: {}",
        sshd.log()
    );
    assert!(
        !sshield
            .log_lines_with("reason=wrong-first-factor")
            .is_empty(),
        "{:?}",
        sshield.log_lines()
    );
    let out = with_key(user.key(), &code).run();
    out.assert_success();
    assert_eq!(out.stdout, "ok\n");
}

#[test]
fn a_wrong_code_is_refused_and_logged() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());
    let wrong = token.wrong_code();

    let out = login(&sshd, &user, [user.password(), &wrong]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert!(!out.stdout.contains("ok"));
    let line = decision(
        "deny",
        user.name(),
        "127.0.0.3",
        &sshd,
        "code",
        "wrong-code",
    );
    assert_logged(&sshd, &sshield, &line);
    // To authpriv (facility 10) at notice: <10 * 8 + 5>.
    let syslog = sshd.syslog();
    let logged = syslog.lines().find(|l| l.contains(&line)).unwrap();
    assert!(logged.starts_with("<85>"), "{logged}");
    let file_line = sshield.log_lines_with(&line);
    assert_eq!(file_line.len(), 1, "{file_line:?}");
    assert!(
        file_line[0].contains(" sshield[") && file_line[0].ends_with(&line),
        "{file_line:?}"
    );
    assert!(!sshd.log().contains(&format!(
        "Accepted keyboard-interactive/pam for {}",
        user.name()
    )));
    assert_code_never_logged(&sshd, &sshield, &wrong);
}

#[test]
fn a_replayed_code_is_refused() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());

    // One string, twice: still inside the window the second time (even if a step began in
    // between), so the only reason to refuse it is that it was used.
    let code = token.code();
    login(&sshd, &user, [user.password(), &code])
        .run()
        .assert_success();
    let out = login(&sshd, &user, [user.password(), &code]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", user.name(), "127.0.0.3", &sshd, "code", "replayed"),
    );
    // Also from another address.
    login(&sshd, &user, [user.password(), &code])
        .from("127.0.0.4")
        .run()
        .assert_denied();
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", user.name(), "127.0.0.4", &sshd, "code", "replayed"),
    );
    // A later code still works.
    login(&sshd, &user, [user.password().to_owned(), token.code()])
        .run()
        .assert_success();
}

/// Attack review, issue 9 item 6: a record holding one secret under two names (a phone
/// re-enrolled under a new name before `enroll` refused that) accepts each code once through
/// sshd, not once per authenticator; and `enroll` refuses to make such a record.
#[test]
fn one_secret_under_two_names_accepts_each_code_once() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());
    let record = sshield.record(user.name());
    let start = record.find("[[authenticator]]").unwrap();
    let end = record[start..]
        .find("\n\n")
        .map_or(record.len(), |i| start + i + 1);
    let copy = record[start..end].replace("name = \"default\"", "name = \"new-phone\"");
    assert_ne!(copy, record[start..end], "{record}");
    fs::write(
        sshield.record_path(user.name()),
        format!("{record}\n{copy}"),
    )
    .unwrap();

    let code = token.code();
    login(&sshd, &user, [user.password(), &code])
        .run()
        .assert_success();
    let out = login(&sshd, &user, [user.password(), &code]).run();
    out.assert_denied();
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", user.name(), "127.0.0.3", &sshd, "code", "replayed"),
    );

    let out = Command::new(&sshield_e2e::artefacts().cli)
        .arg("--config")
        .arg(&sshield.config)
        .args([
            "enroll",
            user.name(),
            "--name",
            "third",
            "--no-confirm",
            "--secret",
        ])
        .arg(&token.secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already has this secret"),
        "{out:?}"
    );
}

#[test]
fn a_backup_code_works_exactly_once() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());
    let backup = &token.backup_codes[0];

    let out = login(&sshd, &user, [user.password(), backup]).run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.3", &sshd, "backup", "ok"),
    );

    let out = login(&sshd, &user, [user.password(), backup]).run();
    out.assert_denied();
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", user.name(), "127.0.0.3", &sshd, "code", "replayed"),
    );

    // Another one of the set still works, once.
    login(&sshd, &user, [user.password(), &token.backup_codes[1]])
        .run()
        .assert_success();
    login(&sshd, &user, [user.password(), &token.backup_codes[1]])
        .run()
        .assert_denied();
    for code in &token.backup_codes[..2] {
        assert_never_logged(&sshd, &sshield, code);
    }
}

// 7. Lockout.

#[test]
fn lockout_after_failures_and_its_release() {
    if !can_run() {
        return;
    }
    // The engine counts whole seconds, so a lock of L seconds holds for at least L - 1 s after
    // the failure that set it: 4 s leaves the refused login below 3 s to arrive, plenty even on
    // a loaded machine (each login takes a fraction of a second).
    let sshield = Sshield::new("[rate_limit]\nmax_failures = 3\nlockout = \"4s\"\ndelay = \"0s\"");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());
    // The owner logs in from 127.0.0.4: a familiar source from now on, with its own budget.
    login(&sshd, &user, [user.password().to_owned(), token.code()])
        .from("127.0.0.4")
        .run()
        .assert_success();

    for _ in 0..3 {
        login(
            &sshd,
            &user,
            [user.password().to_owned(), token.wrong_code()],
        )
        .run()
        .assert_denied();
    }
    // The lock began before now.
    let locked_at = Instant::now();
    let wrong = sshield.log_lines_with("reason=wrong-code");
    assert_eq!(wrong.len(), 3, "{wrong:#?}");

    // The right code, from the same address: refused, without being used up.
    let code = token.code();
    let out = login(&sshd, &user, [user.password(), &code]).run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", user.name(), "127.0.0.3", &sshd, "code", "locked"),
    );
    assert!(
        locked_at.elapsed() < Duration::from_secs(3),
        "too slow to tell a lock from its end"
    );

    // The same code from the owner's familiar address: a guesser elsewhere cannot lock the
    // owner out of it (docs/ratelimit.md).
    login(&sshd, &user, [user.password(), &code])
        .from("127.0.0.4")
        .run()
        .assert_success();
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.4", &sshd, "totp", "ok"),
    );

    // Once the lockout is over, the first address is let in again.
    let release = Duration::from_millis(4_200);
    if let Some(left) = release.checked_sub(locked_at.elapsed()) {
        std::thread::sleep(left);
    }
    login(&sshd, &user, [user.password().to_owned(), token.code()])
        .run()
        .assert_success();
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.3", &sshd, "totp", "ok"),
    );
    assert_eq!(sshield.log_lines_with("reason=locked").len(), 1);
}

/// Issue 9 item 3: 20 guessing addresses, each with the right password, share one budget:
/// the lock comes after `max_failures` of them, holds for any new address, and leaves the
/// owner's familiar address open.
#[test]
fn rotating_source_addresses_share_one_budget() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("[rate_limit]\nmax_failures = 3\ndelay = \"0s\"");
    let sshd = start_password_then_code(&sshield);
    let user = User::create();
    let token = sshield.enroll(user.name());
    login(&sshd, &user, [user.password().to_owned(), token.code()])
        .from("127.0.0.2")
        .run()
        .assert_success();

    for n in 10..30 {
        login(
            &sshd,
            &user,
            [user.password().to_owned(), token.wrong_code()],
        )
        .from(&format!("127.0.0.{n}"))
        .run()
        .assert_denied();
    }
    assert_eq!(sshield.log_lines_with("reason=wrong-code").len(), 3);
    assert_eq!(sshield.log_lines_with("reason=locked").len(), 17);
    // The right code from yet another address: refused unchecked.
    login(&sshd, &user, [user.password().to_owned(), token.code()])
        .from("127.0.0.40")
        .run()
        .assert_denied();
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", user.name(), "127.0.0.40", &sshd, "code", "locked"),
    );
    // From the owner's address: let in.
    login(&sshd, &user, [user.password().to_owned(), token.code()])
        .from("127.0.0.2")
        .run()
        .assert_success();
}

/// Issue 9 item 4: with `UseDNS yes` sshd puts a host name in PAM_RHOST (here `localhost`,
/// from /etc/hosts). The module takes the address sshd also gives (SSH_CONNECTION), so the
/// line names it for fail2ban, and the guesses never lock the owner's local logins.
#[test]
fn a_named_source_is_logged_by_address_and_never_locks_local_logins() {
    if !can_run() {
        return;
    }
    require_tool("pamtester", "apt-get install pamtester");
    let sshield = Sshield::new("[rate_limit]\nmax_failures = 3\ndelay = \"0s\"");
    let sshd = Sshd::start(password_then_code_options(&sshield).config(["UseDNS yes"]));
    let local = sshield.auth_line("");
    let sudo = PamService::create(
        "sudo",
        [
            "auth required pam_permit.so",
            local.as_str(),
            "account required pam_permit.so",
        ],
    );
    let user = User::create();
    let token = sshield.enroll(user.name());

    for _ in 0..3 {
        login(
            &sshd,
            &user,
            [user.password().to_owned(), token.wrong_code()],
        )
        .from("127.0.0.1")
        .run()
        .assert_denied();
    }
    assert_logged(
        &sshd,
        &sshield,
        &decision(
            "deny",
            user.name(),
            "127.0.0.1",
            &sshd,
            "code",
            "wrong-code",
        ),
    );
    assert!(
        sshield.log_lines_with("rhost=-").is_empty(),
        "{:#?}",
        sshield.log_lines()
    );
    login(&sshd, &user, [user.password().to_owned(), token.code()])
        .from("127.0.0.1")
        .run()
        .assert_denied();
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", user.name(), "127.0.0.1", &sshd, "code", "locked"),
    );
    // The console and sudo (no rhost): not locked by any of it.
    let run = pamtester(sudo.name(), user.name(), None, &[&token.code()]);
    assert!(run.success, "{}", run.output);
}

/// Issue 10: a good `forward_pass` login of a user with a 6-digit and an 8-digit
/// authenticator. The entry is split once per code length; the 6-digit split of an 8-digit
/// code is no code, but it was checked, logged (`deny ... reason=wrong-code`, which the
/// shipped fail2ban filter counts) and counted as a failure on its own before the 8-digit
/// split passed. All splits are now tried under one lock: one line, no failure.
#[test]
fn a_good_forward_pass_login_with_mixed_code_lengths_leaves_no_denial() {
    if !can_run() {
        return;
    }
    require_tool("fail2ban-regex", "apt-get install fail2ban");
    let sshield = Sshield::new("");
    let sshd = Sshd::start(password_then_code_options(&sshield).pam(sshd_stack([
        sshield.auth_line("forward_pass"),
        "auth required pam_unix.so try_first_pass nodelay".to_owned(),
    ])));
    let user = User::create();
    let phone = sshield.enroll(user.name());
    let yubikey = sshield.enroll_with(user.name(), &["--name", "yubikey"], 8);

    for token in [&yubikey, &phone] {
        let code = token.code();
        let out = login(&sshd, &user, [format!("{}{code}", user.password())]).run();
        out.assert_success();
        assert_eq!(out.prompt_texts(), [FORWARD_PASS_PROMPT], "one prompt only");
    }
    let lines = sshield.log_lines();
    assert_eq!(lines.len(), 2, "one line per login: {lines:#?}");
    assert!(
        sshield.log_lines_with("deny").is_empty(),
        "a good login logged a denial: {lines:#?}"
    );
    assert_logged(
        &sshd,
        &sshield,
        &decision("allow", user.name(), "127.0.0.3", &sshd, "totp", "ok"),
    );
    let record = sshield.record(user.name());
    assert!(
        !record.contains("[failures") && !record.contains("failures."),
        "a good login counted a failure:\n{record}"
    );
    assert!(
        fail2ban_regex(&sshield.log_file, "ip").is_empty(),
        "fail2ban would count a good login:\n{lines:#?}"
    );
}

/// Issue 9 item 10: with `forward_pass` the code is checked before the password, so anyone
/// behind a shared address (a NAT, a bastion) can fill that address's count without any
/// credentials. The lock that follows must not hurt the users who log in from there.
#[test]
fn a_shared_address_locked_by_credential_less_guesses_still_lets_its_users_in() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("[rate_limit]\nsource_max_failures = 4\ndelay = \"0s\"");
    let sshd = Sshd::start(password_then_code_options(&sshield).pam(sshd_stack([
        sshield.auth_line("forward_pass"),
        "auth required pam_unix.so try_first_pass nodelay".to_owned(),
    ])));
    let user = User::create();
    let token = sshield.enroll(user.name());
    let nat = "127.0.0.5";
    // The user logs in from behind the NAT.
    login(
        &sshd,
        &user,
        [format!("{}{}", user.password(), token.code())],
    )
    .from(nat)
    .run()
    .assert_success();
    // Someone else there tries names with no password at all.
    let stranger = User::create();
    for _ in 0..4 {
        login(&sshd, &stranger, ["guess123456"])
            .from(nat)
            .run()
            .assert_denied();
    }
    assert_eq!(
        sshield.log_lines_with("reason=not-enrolled").len(),
        4,
        "{:#?}",
        sshield.log_lines()
    );
    // The address is locked for strangers...
    login(&sshd, &stranger, ["guess654321"])
        .from(nat)
        .run()
        .assert_denied();
    assert_logged(
        &sshd,
        &sshield,
        &decision("deny", stranger.name(), nat, &sshd, "code", "locked"),
    );
    // ...and not for the user who logs in from there.
    login(
        &sshd,
        &user,
        [format!("{}{}", user.password(), token.code())],
    )
    .from(nat)
    .run()
    .assert_success();
}

// 8. A corrupt record.

#[test]
fn a_corrupt_record_refuses_its_user_only() {
    if !can_run() {
        return;
    }
    let sshield = Sshield::new("");
    let sshd = start_password_then_code(&sshield);
    let broken = User::create();
    let other = User::create();
    let broken_token = sshield.enroll(broken.name());
    let token = sshield.enroll(other.name());

    let record = sshield.record_path(broken.name());
    let garbage = format!(
        "version = 1\nuser = \"{}\"\n[[authenticator]\nname = \"default\"\n",
        broken.name()
    );
    fs::write(&record, &garbage).unwrap();
    let pid = sshd.pid();

    // Refused (asked like anyone, so the prompt reveals nothing), with a line that names the
    // file and the line to fix.
    let out = login(
        &sshd,
        &broken,
        [broken.password().to_owned(), broken_token.code()],
    )
    .run();
    out.assert_denied();
    assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    let line = format!(
        "{} detail=\"{}:3:",
        decision(
            "deny",
            broken.name(),
            "127.0.0.3",
            &sshd,
            "code",
            "store-error"
        ),
        record.display()
    );
    assert_logged(&sshd, &sshield, &line);

    // Everyone else logs in as usual, through the same sshd, which still runs.
    assert!(sshd.is_running() && sshd.pid() == pid);
    login(&sshd, &other, [other.password().to_owned(), token.code()])
        .run()
        .assert_success();
    login(
        &sshd,
        &broken,
        [broken.password().to_owned(), broken_token.code()],
    )
    .run()
    .assert_denied();
    assert!(sshd.is_running() && sshd.pid() == pid);
    login(&sshd, &other, [other.password(), &token.backup_codes[0]])
        .run()
        .assert_success();

    // Nothing was written over the broken record: the admin's evidence is intact.
    assert_eq!(fs::read_to_string(&record).unwrap(), garbage);
}

// The fail2ban filter, on lines the module really logged.

/// Runs `fail2ban-regex -o TOKEN LOG FILTER` with the shipped filter; one output line per
/// matched log line.
fn fail2ban_regex(log: &std::path::Path, token: &str) -> Vec<String> {
    let filter = sshield_e2e::workspace_root().join("packaging/fail2ban/filter.d/sshield.conf");
    let out = Command::new("fail2ban-regex")
        .args(["-o", token])
        .arg(log)
        .arg(&filter)
        .output()
        .unwrap_or_else(|e| panic!("cannot run fail2ban-regex ({e}); apt-get install fail2ban"));
    assert!(
        out.status.success(),
        "fail2ban-regex {} {}: {}\n{}",
        log.display(),
        filter.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// What fail2ban-regex matched in `log` (the lines, as fail2ban printed them, and the host it
/// took from each), checked against the decision lines that should count.
#[track_caller]
fn assert_fail2ban_matches(log: &std::path::Path, expected: &[(String, String)]) {
    let lines = fail2ban_regex(log, "msg");
    let hosts = fail2ban_regex(log, "ip");
    // (A journal source is no file: its lines are the matched ones.)
    let text = fs::read_to_string(log).unwrap_or_else(|e| format!("({e})"));
    assert_eq!(
        lines.len(),
        expected.len(),
        "matched:\n{}\n--- {} ---\n{text}",
        lines.join("\n"),
        log.display()
    );
    let expected_hosts: Vec<&str> = expected.iter().map(|(_, host)| host.as_str()).collect();
    assert_eq!(hosts, expected_hosts, "--- {} ---\n{text}", log.display());
    for (line, (decision, _)) in lines.iter().zip(expected) {
        // (A store error's line goes on with its detail.)
        assert!(
            line.ends_with(decision.as_str()) || line.contains(&format!("{decision} detail=")),
            "{line}\n  is not\n{decision}"
        );
    }
}

#[test]
fn the_fail2ban_filter_matches_what_the_module_logs() {
    if !can_run() {
        return;
    }
    require_tool("fail2ban-regex", "apt-get install fail2ban");
    let sshield = Sshield::new(
        "[policy]\nexempt_networks = [\"127.0.0.2\"]\n\
         [rate_limit]\nmax_failures = 2\ndelay = \"0s\"",
    );
    let sshd = start_password_then_code(&sshield);
    let alice = User::create();
    let newcomer = User::create();
    let broken = User::create();
    let token = sshield.enroll(alice.name());
    sshield.enroll(broken.name());
    fs::write(sshield.record_path(broken.name()), "not a record\n").unwrap();

    // Each login, the line it must log, and (for fail2ban) where it came from.
    // `logs` is "OUTCOME METHOD REASON".
    let try_login = |user: &User, from: &str, typed: Option<&str>, logs: &str| {
        let mut answers = vec![user.password().to_owned()];
        answers.extend(typed.map(str::to_owned));
        let out = login(&sshd, user, answers).from(from).run();
        let [outcome, method, reason]: [&str; 3] =
            logs.split(' ').collect::<Vec<_>>().try_into().unwrap();
        assert_eq!(out.success(), outcome == "allow", "{out:?}");
        let line = decision(outcome, user.name(), from, &sshd, method, reason);
        assert_logged(&sshd, &sshield, &line);
        (line, from.to_owned())
    };
    // What a guesser causes must match; logins that pass, and a broken record, must not.
    let code = token.code();
    try_login(&alice, "127.0.0.1", Some(&code), "allow totp ok");
    let wrong = token.wrong_code();
    let expected = vec![
        // From the address alice just passed from: its own bucket (docs/ratelimit.md).
        try_login(&alice, "127.0.0.1", Some(&code), "deny code replayed"),
        try_login(&alice, "127.0.0.3", Some(&wrong), "deny code wrong-code"),
        try_login(&alice, "127.0.0.3", Some(&wrong), "deny code wrong-code"),
        // max_failures = 2: alice's unfamiliar sources are locked now, even for a good code.
        try_login(&alice, "127.0.0.3", Some(&token.code()), "deny code locked"),
        try_login(
            &newcomer,
            "127.0.0.5",
            Some("123456"),
            "deny unenrolled not-enrolled",
        ),
    ];
    let mut expected = expected;
    // A store error counts too: a guesser can cause one (by filling the user's state), and
    // each is a code typed from that address and refused.
    expected.push(try_login(
        &broken,
        "127.0.0.6",
        Some("123456"),
        "deny code store-error",
    ));
    try_login(&alice, "127.0.0.2", None, "allow exempt network");

    // The log file, as written.
    assert_eq!(sshield.log_lines().len(), 8, "{:#?}", sshield.log_lines());
    assert_fail2ban_matches(&sshield.log_file, &expected);

    // Syslog, as a syslog daemon writes it on a real host: the captured messages without their
    // <PRI>, and with the test sshd's unique program name (its tag, and its PAM service) back
    // to `sshd`, which the filter requires. Among them are pam_unix's and the sessions' lines,
    // which must not match.
    let on_a_host = |text: &str| text.replace(sshd.service_name(), "sshd");
    let syslog: String = sshd
        .syslog()
        .lines()
        .map(|l| match (l.starts_with('<'), l.find('>')) {
            (true, Some(end)) => format!("{}\n", on_a_host(&l[end + 1..])),
            _ => format!("{}\n", on_a_host(l)),
        })
        .collect();
    assert!(syslog.contains("pam_unix("), "{syslog}");
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(line, host)| (on_a_host(line), host.clone()))
        .collect();
    let stamp = syslog.lines().next().unwrap().get(..15).unwrap().to_owned();
    // What a local user writes with `logger` under another tag, or sshd's own lines with text
    // a client chose (a user name), or another PAM service's: none counts. (`logger -t sshd`
    // with the whole line is indistinguishable in a text file: the journal test below.)
    let deny = "deny user=alice rhost=198.51.100.7 service=sshd method=code reason=wrong-code";
    let forged = [
        format!("{stamp} mallory[4242]: pam_sshield(sshd:auth): {deny}"),
        format!("{stamp} mallory: {deny}"),
        format!("{stamp} sshd-evil[4242]: pam_sshield(sshd:auth): {deny}"),
        format!("{stamp} sshd[4242]: pam_sshield(su:auth): {deny}"),
        format!("{stamp} sshd[4242]: Invalid user pam_sshield(sshd:auth): {deny} from 127.0.0.9 port 22"),
        format!("{stamp} sshd[4242]: Connection closed by invalid user sshield[1]: {deny} 127.0.0.9 port 22 [preauth]"),
        format!("{stamp} su[4242]: {deny}"),
    ];
    let syslog_file = sshield.dir().join("auth.log");
    fs::write(&syslog_file, format!("{syslog}{}\n", forged.join("\n"))).unwrap();
    assert_fail2ban_matches(&syslog_file, &expected);

    // The journal: the same lines as journald records them from root's sshd, and the exact
    // line (tag `sshd` and all) from a local user's `logger -t sshd`, and from that user's copy
    // of logger renamed to sshd. Only _UID, which the kernel vouches for, tells them apart.
    let mut entries: Vec<Vec<(&str, String)>> = Vec::new();
    for line in syslog.lines() {
        let Some((tag, message)) = line.get(16..).and_then(|l| l.split_once(": ")) else {
            continue;
        };
        // (The module's lines come without a pid: see the filter.)
        let (ident, pid) = tag
            .strip_suffix(']')
            .and_then(|t| t.split_once('['))
            .unwrap_or((tag, "4000"));
        entries.push(journal_fields(ident, pid, "0", ident, message));
    }
    let forged_deny = format!("pam_sshield(sshd:auth): {deny}");
    entries.push(journal_fields(
        "sshd",
        "4242",
        "1000",
        "logger",
        &forged_deny,
    ));
    entries.push(journal_fields("sshd", "4243", "1000", "sshd", &forged_deny));
    entries.push(journal_fields("sshield", "4244", "1000", "sshield", deny));
    let journal = write_journal(&sshield.dir().join("journal"), &entries);
    let source = format!("systemd-journal[journalfiles=\"{}\"]", journal.display());
    assert_fail2ban_matches(Path::new(&source), &expected);
}

/// A journal entry's fields as journald records a syslog message: the sender's identifier and
/// pid as it wrote them, and the trusted fields (`_UID`, `_COMM`, ...) as the kernel gave them.
fn journal_fields<'a>(
    ident: &str,
    pid: &str,
    uid: &str,
    comm: &str,
    message: &str,
) -> Vec<(&'a str, String)> {
    let unit = if uid == "0" {
        "ssh.service"
    } else {
        "session-7.scope"
    };
    vec![
        ("SYSLOG_FACILITY", "10".to_owned()),
        ("SYSLOG_IDENTIFIER", ident.to_owned()),
        ("SYSLOG_PID", pid.to_owned()),
        ("MESSAGE", message.to_owned()),
        ("_PID", pid.to_owned()),
        ("_UID", uid.to_owned()),
        ("_GID", uid.to_owned()),
        ("_COMM", comm.to_owned()),
        ("_SYSTEMD_UNIT", unit.to_owned()),
        ("_HOSTNAME", "host".to_owned()),
        ("_TRANSPORT", "syslog".to_owned()),
    ]
}

/// Writes `entries` into a journal file under `dir` with systemd-journal-remote, from journal
/// export format (which carries the trusted fields as they are).
fn write_journal(dir: &Path, entries: &[Vec<(&str, String)>]) -> PathBuf {
    const REMOTE: &str = "/lib/systemd/systemd-journal-remote";
    assert!(
        Path::new(REMOTE).exists(),
        "{REMOTE} is missing; apt-get install systemd-journal-remote python3-systemd"
    );
    fs::create_dir_all(dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let mut export = String::new();
    for (n, fields) in entries.iter().enumerate() {
        export.push_str(&format!(
            "__CURSOR=s=0;i={n}\n__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={n}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n",
            now + n as u128
        ));
        for (key, value) in fields {
            assert!(!value.contains('\n'), "{value}");
            export.push_str(&format!("{key}={value}\n"));
        }
        export.push('\n');
    }
    let journal = dir.join("sshield.journal");
    let mut child = Command::new(REMOTE)
        .arg(format!("--output={}", journal.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && journal.exists(),
        "{REMOTE}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    journal
}
