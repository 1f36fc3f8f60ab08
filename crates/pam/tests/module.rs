//! pam_sshield.so loaded by real libpam, without sshd: every module argument, config errors,
//! and what each of the engine's answers becomes. Each login runs in a child process with the
//! test's own PAM config dir (see `harness/`).
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod harness;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use harness::{pam, Fixture, Login, Outcome};
use sshield_otp::Digits;

/// The child-process side of every login in this file (see `harness/driver.rs`). Does nothing
/// when the test harness runs it as a test.
#[test]
fn pam_driver_process() {
    harness::driver::main_if_requested();
}

const OUTSIDE: &str = "203.0.113.9";
const CODE_PROMPT: &str = "Verification code: ";
const FORWARD_PROMPT: &str = "Password & verification code: ";

/// `pam_unix` first, which asks "Password: " and leaves the answer in `PAM_AUTHTOK` (it then
/// fails, for users that don't exist here, which `optional` ignores), then pam_sshield.
fn after_pam_unix(f: &Fixture, args: &str) {
    f.service(
        harness::fixture::SERVICE,
        &format!("auth optional pam_unix.so\nauth required {{module}} {{config}} {args}\n"),
    );
}

/// pam_sshield with `args`, then `pam_exec` writing the `PAM_AUTHTOK` it receives to the file
/// `authtok` in the fixture, as pam_unix would receive it. pam_exec asks "Password: " itself
/// if no module before it set `PAM_AUTHTOK`.
fn before_pam_exec(f: &Fixture, control: &str, args: &str) -> std::path::PathBuf {
    let file = f.path().join("authtok");
    f.service(
        harness::fixture::SERVICE,
        &format!(
            "auth {control} {{module}} {{config}} {args}\n\
             auth required pam_exec.so expose_authtok quiet /usr/bin/tee {}\n",
            file.display()
        ),
    );
    file
}

/// What pam_exec passed on (it writes the token and its NUL).
fn forwarded(file: &std::path::Path) -> Option<String> {
    let bytes = fs::read(file).ok()?;
    Some(
        String::from_utf8(bytes)
            .unwrap()
            .trim_end_matches('\0')
            .to_owned(),
    )
}

fn assert_secret_not_logged(f: &Fixture, out: &Outcome, secret: &str) {
    assert!(
        !out.stderr.contains(secret),
        "{secret} in syslog:\n{}",
        out.stderr
    );
    let file = f.log_lines().join("\n");
    assert!(!file.contains(secret), "{secret} in the log file:\n{file}");
}

fn echo_off(texts: &[&str]) -> Vec<harness::driver::Prompt> {
    texts
        .iter()
        .map(|t| harness::driver::Prompt {
            style: pam::PAM_PROMPT_ECHO_OFF,
            text: (*t).to_owned(),
        })
        .collect()
}

// ---- codes at the prompt ----

#[test]
fn a_correct_code_is_allowed_and_logged_to_syslog_and_the_log_file() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("");
    let code = token.code();
    let out = f.login(&Login::new("alice", OUTSIDE, &[&code]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(
        out.setcred,
        Some(pam::PAM_SUCCESS),
        "pam_sm_setcred succeeds"
    );
    assert_eq!(out.prompts, echo_off(&[CODE_PROMPT]));
    let line = "allow user=alice rhost=203.0.113.9 service=sshield-test method=totp reason=ok";
    assert_eq!(
        out.syslog,
        [format!("pam_sshield(sshield-test:auth): {line}")]
    );
    let file = f.log_lines();
    assert_eq!(file.len(), 1, "{file:?}");
    assert!(file[0].ends_with(&format!("]: {line}")), "{file:?}");
    assert_secret_not_logged(&f, &out, &code);
}

#[test]
fn a_wrong_code_is_refused_and_logged() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("");
    let wrong = token.wrong_code();
    let out = f.login(&Login::new("alice", OUTSIDE, &[&wrong]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
    assert_eq!(
        out.lines(),
        ["deny user=alice rhost=203.0.113.9 service=sshield-test method=code reason=wrong-code"]
    );
    assert_secret_not_logged(&f, &out, &wrong);
}

#[test]
fn a_code_is_accepted_once() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("");
    let code = token.code();
    let first = f.login(&Login::new("alice", OUTSIDE, &[&code]));
    assert_eq!(first.authenticate, pam::PAM_SUCCESS, "{first:#?}");
    let again = f.login(&Login::new("alice", OUTSIDE, &[&code]));
    assert_eq!(again.authenticate, pam::PAM_AUTH_ERR);
    assert!(again.lines()[0].ends_with("reason=replayed"), "{again:#?}");
}

#[test]
fn a_backup_code_works_at_the_same_prompt_exactly_once() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("");
    let backup = &token.backup_codes[0];
    let out = f.login(&Login::new("alice", OUTSIDE, &[backup]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(out.prompts, echo_off(&[CODE_PROMPT]));
    assert!(
        out.lines()[0].contains("method=backup reason=ok"),
        "{out:#?}"
    );
    let again = f.login(&Login::new("alice", OUTSIDE, &[backup]));
    assert_eq!(again.authenticate, pam::PAM_AUTH_ERR);
    assert_secret_not_logged(&f, &again, backup);
}

#[test]
fn the_prompt_text_comes_from_the_config() {
    let f = Fixture::new("prompt = \"Code from your phone (or a backup code): \"\n");
    let token = f.enroll("alice");
    f.module_service("");
    let out = f.login(&Login::new("alice", OUTSIDE, &[&token.code()]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(
        out.prompt_texts(),
        ["Code from your phone (or a backup code): "]
    );
}

#[test]
fn an_unknown_user_is_prompted_like_an_enrolled_one_and_refused() {
    let f = Fixture::new("");
    f.enroll("alice");
    f.module_service("");
    let enrolled = f.login(&Login::new("alice", OUTSIDE, &["000000"]));
    let unknown = f.login(&Login::new("mallory", OUTSIDE, &["000000"]));
    assert_eq!(unknown.prompts, enrolled.prompts);
    assert_eq!(unknown.authenticate, pam::PAM_AUTH_ERR);
    assert_eq!(
        unknown.lines(),
        ["deny user=mallory rhost=203.0.113.9 service=sshield-test method=unenrolled reason=not-enrolled"]
    );
}

#[test]
fn a_corrupt_record_refuses_its_user_only_and_names_the_file() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.enroll("bob");
    fs::write(f.store.dir().join("bob.toml"), "this is not toml [").unwrap();
    f.module_service("");
    let bob = f.login(&Login::new("bob", OUTSIDE, &["123456"]));
    assert_eq!(bob.authenticate, pam::PAM_AUTH_ERR, "{bob:#?}");
    let line = bob.lines()[0];
    assert!(line.contains("reason=store-error detail="), "{line}");
    assert!(line.contains("bob.toml"), "{line}");
    let alice = f.login(&Login::new("alice", OUTSIDE, &[&token.code()]));
    assert_eq!(alice.authenticate, pam::PAM_SUCCESS, "{alice:#?}");
}

#[test]
fn a_log_file_that_cannot_be_written_never_changes_the_decision() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    let missing = f.path().join("no-such-dir/sshield.log");
    f.write_config(&format!(
        "store = \"users\"\nlog_file = \"{}\"\n",
        missing.display()
    ));
    f.module_service("");
    let out = f.login(&Login::new("alice", OUTSIDE, &[&token.code()]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    let lines = out.lines();
    assert!(lines[0].starts_with("allow user=alice "), "{lines:?}");
    let expected = format!("cannot append to log_file {}: ", missing.display());
    assert!(lines[1].starts_with(&expected), "{lines:?}");
}

#[test]
fn a_failure_waits_the_delay_the_engine_asks_for() {
    // Only a lower bound: the point is that the module sleeps, not how precisely.
    let f = Fixture::new("[rate_limit]\ndelay = \"1s\"\n");
    let token = f.enroll("alice");
    f.module_service("");
    let out = f.login(&Login::new("alice", OUTSIDE, &[&token.wrong_code()]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR);
    assert!(out.elapsed >= Duration::from_secs(1), "{:?}", out.elapsed);
}

#[test]
fn the_user_name_is_asked_for_when_the_application_has_none() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("");
    let mut login = Login::new("alice", OUTSIDE, &["alice", &token.code()]);
    login.user = None;
    let out = f.login(&login);
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(
        out.prompts[0].style,
        pam::PAM_PROMPT_ECHO_ON,
        "libpam's login: prompt"
    );
    assert_eq!(out.prompts[1].text, CODE_PROMPT);
}

#[test]
fn a_client_that_cannot_answer_is_refused() {
    let f = Fixture::new("");
    f.enroll("alice");
    f.module_service("");
    let out = f.login(&Login::new("alice", OUTSIDE, &[]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
    // libpam's pam_prompt logs "conversation failed" itself; the module says what it means.
    let ours = out
        .lines()
        .into_iter()
        .find(|l| l.starts_with("the conversation failed ("));
    assert!(
        ours.is_some_and(|l| l.ends_with("could not be asked for a code; login denied")),
        "{out:#?}"
    );
}

// ---- who needs no code ----

#[test]
fn an_exempt_network_passes_without_a_prompt_and_others_are_asked() {
    let f = Fixture::new("[policy]\nexempt_networks = [\"127.0.0.2/32\"]\n");
    let token = f.enroll("alice");
    f.module_service("");
    for lan in ["127.0.0.2", "::ffff:127.0.0.2"] {
        let out = f.login(&Login::new("alice", lan, &[]));
        assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{lan}: {out:#?}");
        assert!(out.prompts.is_empty(), "{lan}: {out:#?}");
        assert_eq!(
            out.lines(),
            ["allow user=alice rhost=127.0.0.2 service=sshield-test method=exempt reason=network"]
        );
    }
    let out = f.login(&Login::new("alice", "127.0.0.3", &[&token.code()]));
    assert_eq!(out.prompt_texts(), [CODE_PROMPT]);
    assert_eq!(out.authenticate, pam::PAM_SUCCESS);
}

#[test]
fn a_host_name_in_rhost_is_never_an_exempt_address() {
    let f = Fixture::new("[policy]\nexempt_networks = [\"0.0.0.0/0\", \"::/0\"]\n");
    f.enroll("alice");
    f.module_service("");
    let out = f.login(&Login::new("alice", "lan.example.org", &["000000"]));
    assert_eq!(out.prompt_texts(), [CODE_PROMPT]);
    assert!(out.lines()[0].contains(" rhost=- "), "{out:#?}");
}

/// Issue 9 item 4: with `UseDNS yes` sshd puts a host name in PAM_RHOST and the address in
/// SSH_CONNECTION. Guesses from a named source are logged by that address and never lock the
/// user's local logins (no PAM_RHOST), with or without SSH_CONNECTION.
#[test]
fn a_host_name_in_rhost_is_a_remote_source_never_a_local_one() {
    for connection in [Some("SSH_CONNECTION=203.0.113.66 50022 192.0.2.1 22"), None] {
        let f = Fixture::new("[rate_limit]\nmax_failures = 3\ndelay = \"0s\"\n");
        let token = f.enroll("alice");
        f.module_service("");
        let named = |answer: &str| {
            let mut login = Login::new("alice", "attacker.example.org", &[answer]);
            login.env.extend(connection.map(str::to_owned));
            f.login(&login)
        };
        let rhost = if connection.is_some() {
            "203.0.113.66"
        } else {
            "-"
        };
        for _ in 0..3 {
            let out = named(&token.wrong_code());
            assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
            assert_eq!(
                out.lines(),
                [format!("deny user=alice rhost={rhost} service=sshield-test method=code reason=wrong-code")]
            );
        }
        let out = named(&token.code());
        assert!(out.lines()[0].ends_with(" reason=locked"), "{out:#?}");
        let local = Login {
            rhost: None,
            ..Login::new("alice", "", &[&token.code()])
        };
        let out = f.login(&local);
        assert_eq!(
            out.authenticate,
            pam::PAM_SUCCESS,
            "{connection:?}: {out:#?}"
        );
    }
}

#[test]
fn an_exempt_user_passes_without_a_prompt() {
    let f = Fixture::new("[policy]\nexempt_users = [\"deploy\"]\n");
    f.module_service("");
    let out = f.login(&Login::new("deploy", OUTSIDE, &[]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert!(out.prompts.is_empty());
    assert!(
        out.lines()[0].ends_with("method=exempt reason=user"),
        "{out:#?}"
    );
}

// ---- broken set-ups fail closed ----

#[test]
fn a_missing_config_fails_closed_and_says_so() {
    let f = Fixture::new("");
    f.service(
        harness::fixture::SERVICE,
        "auth required {module} config=/nonexistent/sshield.toml\n",
    );
    let out = f.login(&Login::new("alice", OUTSIDE, &["123456"]));
    let detail = out.setup_error();
    assert!(
        detail.starts_with("/nonexistent/sshield.toml: config file not found"),
        "{detail}"
    );
    assert!(out.lines()[0].starts_with("deny user=alice rhost=203.0.113.9 service=sshield-test "));
}

#[test]
fn without_config_argument_the_default_path_is_read() {
    if std::path::Path::new("/etc/sshield/sshield.toml").exists() {
        eprintln!("skipped: this machine has /etc/sshield/sshield.toml");
        return;
    }
    let f = Fixture::new("");
    f.service(harness::fixture::SERVICE, "auth required {module}\n");
    let detail = f.login(&Login::new("alice", OUTSIDE, &[])).setup_error();
    assert!(
        detail.starts_with("/etc/sshield/sshield.toml: config file not found"),
        "{detail}"
    );
}

#[test]
fn a_config_with_a_typo_fails_closed_naming_file_and_line() {
    let f = Fixture::new("");
    f.write_config("store = \"users\"\n[policy]\nwindw = 3\n");
    f.module_service("");
    let detail = f.login(&Login::new("alice", OUTSIDE, &[])).setup_error();
    let expected = format!("{}:3: unknown field `windw`", f.config.display());
    assert!(detail.starts_with(&expected), "{detail}");
}

#[test]
fn a_config_others_can_write_fails_closed() {
    let f = Fixture::new("");
    fs::set_permissions(&f.config, fs::Permissions::from_mode(0o666)).unwrap();
    f.module_service("");
    let detail = f.login(&Login::new("alice", OUTSIDE, &[])).setup_error();
    assert!(detail.contains("chmod go-w"), "{detail}");
}

#[test]
fn a_wrong_module_argument_fails_closed_and_says_which() {
    let cases = [
        (
            "use_frist_pass",
            "unknown module argument \"use_frist_pass\"; the arguments are",
        ),
        ("prompt=Code:", "prompt= is not a module argument"),
        (
            "use_first_pass forward_pass",
            "use_first_pass and forward_pass cannot be combined",
        ),
        (
            "config=relative.toml",
            "config=\"relative.toml\" must be an absolute path",
        ),
    ];
    let f = Fixture::new("");
    f.enroll("alice");
    for (args, expected) in cases {
        // `{config}` comes first, so a relative config= is the second one given.
        let line = if args.starts_with("config=") {
            format!("auth required {{module}} {args}\n")
        } else {
            format!("auth required {{module}} {{config}} {args}\n")
        };
        f.service(harness::fixture::SERVICE, &line);
        let detail = f
            .login(&Login::new("alice", OUTSIDE, &["123456"]))
            .setup_error();
        assert!(detail.starts_with(expected), "{args}: {detail}");
    }
}

// ---- debug ----

#[test]
fn debug_logs_each_step_but_never_a_code_or_a_key() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("debug");
    let code = token.code();
    let key = "AAAAC3NzaC1lZDI1NTE5AAAAIHvTestKeyBlobThatMustNotBeLogged";
    let mut login = Login::new("alice", OUTSIDE, &[&code]);
    login.env = vec![format!("SSH_AUTH_INFO_0=publickey ssh-ed25519 {key}")];
    let out = f.login(&login);
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    let lines = out.lines();
    let config = f.config.display();
    assert_eq!(
        lines,
        [
            format!("debug: config={config} code from prompt").as_str(),
            "debug: first factor: publickey",
            "debug: a code is required",
            "allow user=alice rhost=203.0.113.9 service=sshield-test method=totp reason=ok",
        ]
    );
    assert_secret_not_logged(&f, &out, &code);
    assert_secret_not_logged(&f, &out, key);
    // Without `debug`, only the decision.
    f.module_service("");
    let out = f.login(&login);
    assert_eq!(out.lines().len(), 1, "{out:#?}");
}

// ---- use_first_pass / try_first_pass ----

#[test]
fn use_first_pass_takes_the_code_from_an_earlier_module_and_never_asks() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    after_pam_unix(&f, "use_first_pass");
    let out = f.login(&Login::new("alice", OUTSIDE, &[&token.code()]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(
        out.prompts,
        echo_off(&["Password: "]),
        "only pam_unix asked"
    );

    let out = f.login(&Login::new("alice", OUTSIDE, &[&token.wrong_code()]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR);
    assert_eq!(out.prompt_texts(), ["Password: "]);
}

#[test]
fn use_first_pass_without_an_earlier_module_fails_closed() {
    let f = Fixture::new("");
    f.enroll("alice");
    f.module_service("use_first_pass");
    let out = f.login(&Login::new("alice", OUTSIDE, &["123456"]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
    assert!(out.prompts.is_empty());
    let line = out.lines()[0];
    assert!(line.contains("reason=config-error"), "{line}");
    assert!(line.contains("no earlier module set PAM_AUTHTOK"), "{line}");
}

#[test]
fn try_first_pass_takes_a_code_from_an_earlier_module() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    after_pam_unix(&f, "try_first_pass");
    let out = f.login(&Login::new("alice", OUTSIDE, &[&token.code()]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(out.prompt_texts(), ["Password: "]);
}

#[test]
fn try_first_pass_asks_when_the_token_is_a_password_without_counting_a_failure() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    after_pam_unix(&f, "try_first_pass");
    let out = f.login(&Login::new("alice", OUTSIDE, &["hunter2", &token.code()]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(out.prompt_texts(), ["Password: ", CODE_PROMPT]);
    assert_eq!(out.lines().len(), 1, "one decision, no denial: {out:#?}");
    assert_secret_not_logged(&f, &out, "hunter2");
}

#[test]
fn try_first_pass_asks_again_after_a_wrong_code() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    after_pam_unix(&f, "try_first_pass");
    let out = f.login(&Login::new(
        "alice",
        OUTSIDE,
        &[&token.wrong_code(), &token.code()],
    ));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(out.prompt_texts(), ["Password: ", CODE_PROMPT]);
    let lines = out.lines();
    assert!(lines[0].ends_with("reason=wrong-code"), "{lines:?}");
    assert!(lines[1].ends_with("reason=ok"), "{lines:?}");
}

#[test]
fn try_first_pass_alone_asks() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    f.module_service("try_first_pass");
    let out = f.login(&Login::new("alice", OUTSIDE, &[&token.code()]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(out.prompt_texts(), [CODE_PROMPT]);
}

// ---- forward_pass ----

#[test]
fn forward_pass_splits_off_the_code_and_hands_the_password_on() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    let file = before_pam_exec(&f, "requisite", "forward_pass");
    // A password that ends in digits itself: only the token's 6 are the code.
    let password = "s3cret pass 99";
    let code = token.code();
    let out = f.login(&Login::new(
        "alice",
        OUTSIDE,
        &[&format!("{password}{code}")],
    ));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(out.prompts, echo_off(&[FORWARD_PROMPT]), "one prompt only");
    assert_eq!(forwarded(&file).as_deref(), Some(password));
    assert_secret_not_logged(&f, &out, password);
    assert_secret_not_logged(&f, &out, &code);
}

#[test]
fn forward_pass_knows_the_length_of_the_users_codes() {
    let f = Fixture::new("");
    let token = f.enroll_digits("alice", Digits::EIGHT);
    let file = before_pam_exec(&f, "requisite", "forward_pass");
    let out = f.login(&Login::new(
        "alice",
        OUTSIDE,
        &[&format!("pw12{}", token.code())],
    ));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(forwarded(&file).as_deref(), Some("pw12"));
    assert_eq!(
        out.lines().len(),
        1,
        "no failed split was tried first: {out:#?}"
    );
}

#[test]
fn forward_pass_with_a_wrong_code_is_refused() {
    let f = Fixture::new("");
    let token = f.enroll("alice");
    let file = before_pam_exec(&f, "requisite", "forward_pass");
    let entry = format!("hunter2{}", token.wrong_code());
    let out = f.login(&Login::new("alice", OUTSIDE, &[&entry]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
    assert!(out.lines()[0].ends_with("reason=wrong-code"), "{out:#?}");
    assert_eq!(forwarded(&file), None, "requisite stops the stack");
}

#[test]
fn forward_pass_without_a_code_refuses_and_hands_on_the_whole_entry() {
    let f = Fixture::new("");
    f.enroll("alice");
    let file = before_pam_exec(&f, "required", "forward_pass");
    let out = f.login(&Login::new("alice", OUTSIDE, &["just-a-password"]));
    assert_eq!(out.authenticate, pam::PAM_AUTH_ERR, "{out:#?}");
    assert_eq!(
        out.prompt_texts(),
        [FORWARD_PROMPT],
        "the next module asks nothing"
    );
    assert_eq!(forwarded(&file).as_deref(), Some("just-a-password"));
    assert!(out.lines()[0].ends_with("reason=wrong-code"), "{out:#?}");
}

#[test]
fn forward_pass_from_an_exempt_network_leaves_the_password_to_the_next_module() {
    let f = Fixture::new("[policy]\nexempt_networks = [\"127.0.0.2\"]\n");
    f.enroll("alice");
    let file = before_pam_exec(&f, "requisite", "forward_pass");
    let out = f.login(&Login::new("alice", "127.0.0.2", &["hunter2"]));
    assert_eq!(out.authenticate, pam::PAM_SUCCESS, "{out:#?}");
    assert_eq!(
        out.prompts,
        echo_off(&["Password: "]),
        "pam_exec's own prompt"
    );
    assert_eq!(forwarded(&file).as_deref(), Some("hunter2"));
}

// ---- the other entry points ----

#[test]
fn the_account_stack_ignores_the_module() {
    let f = Fixture::new("[policy]\nexempt_users = [\"alice\"]\n");
    let account = |stack: &str| {
        f.service(
            harness::fixture::SERVICE,
            &format!("auth required {{module}} {{config}}\n{stack}"),
        );
        let mut login = Login::new("alice", OUTSIDE, &[]);
        login.account = true;
        f.login(&login).account
    };
    let permit = "account required pam_permit.so\n";
    assert_eq!(
        account(&format!("account required {{module}}\n{permit}")),
        Some(pam::PAM_SUCCESS)
    );
    // PAM_IGNORE, not a success: alone, it leaves nothing to succeed, and libpam denies.
    assert_eq!(account("account required {module}\n"), Some(6)); // PAM_PERM_DENIED
}
