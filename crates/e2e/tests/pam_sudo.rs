//! pam_sshield.so in a PAM service that is not sshd: `sudo`'s stack, driven by `pamtester`
//! (which, like sudo, reads its service from `/etc/pam.d`: the test adds one under a unique
//! name and removes it when it ends); and a name service that fails while PAM runs.
//!
//! Root only (accounts, `/etc/pam.d`); elsewhere it skips, in CI it fails.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod common;

use common::*;
use sshield_e2e::{CaseInsensitiveNamespace, User};

#[test]
fn sudo_asks_for_a_code_after_the_password() {
    if !can_run() {
        return;
    }
    require_tool("pamtester", "apt-get install pamtester");
    // A local command has no source address, so no network is exempt, not even "all".
    let sshield = Sshield::new("[policy]\nexempt_networks = [\"0.0.0.0/0\", \"::/0\"]");
    // docs/pam.md's /etc/pam.d/sudo: `@include common-auth` (Debian's auth lines, below)
    // followed by the module.
    let module = sshield.auth_line("");
    let sudo = PamService::create(
        "sudo",
        [
            "auth [success=1 default=ignore] pam_unix.so nodelay",
            "auth requisite pam_deny.so",
            "auth required pam_permit.so",
            module.as_str(),
            "account required pam_unix.so",
        ],
    );
    let user = User::create();
    let token = sshield.enroll(user.name());
    let service = sudo.name();

    let run = pamtester(
        service,
        user.name(),
        None,
        &[user.password(), &token.code()],
    );
    assert!(run.success, "{}", run.output);
    assert!(
        run.output.contains("successfully authenticated"),
        "{}",
        run.output
    );
    let password_at = run.output.find(PASSWORD_PROMPT);
    let code_at = run.output.find(CODE_PROMPT);
    assert!(
        password_at.is_some() && code_at.is_some() && password_at < code_at,
        "the password, then the code: {}",
        run.output
    );

    let run = pamtester(
        service,
        user.name(),
        None,
        &[user.password(), &token.wrong_code()],
    );
    assert!(!run.success, "{}", run.output);
    assert!(
        run.output.contains("Authentication failure"),
        "{}",
        run.output
    );

    // A wrong password stops the stack before the code is asked (or used up).
    let code = token.code();
    let run = pamtester(service, user.name(), None, &["not the password", &code]);
    assert!(!run.success, "{}", run.output);
    assert!(!run.output.contains(CODE_PROMPT), "{}", run.output);
    let run = pamtester(service, user.name(), None, &[user.password(), &code]);
    assert!(run.success, "{}", run.output);

    let expected = |outcome: &str, method: &str, reason: &str| {
        format!(
            "{outcome} user={} rhost=- service={service} method={method} reason={reason}",
            user.name()
        )
    };
    let lines = sshield.log_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].ends_with(&expected("allow", "totp", "ok")),
        "{lines:#?}"
    );
    assert!(
        lines[1].ends_with(&expected("deny", "code", "wrong-code")),
        "{lines:#?}"
    );
    assert!(
        lines[2].ends_with(&expected("allow", "totp", "ok")),
        "{lines:#?}"
    );
    assert!(!lines.join("\n").contains(user.password()));
}

/// Issue 9 item 1: the policy and the record are the account's, so the name service is asked
/// which account a name stands for. If it fails (SSSD unreachable), nobody is let in by name,
/// group or a missing record: under `unenrolled = "allow"`, a name the name service does not
/// know gets in without a code (sshd would refuse it anyway), one it fails on is asked for a
/// code and refused.
#[test]
fn a_failing_name_service_gives_no_free_pass() {
    if !can_run() {
        return;
    }
    require_tool("pamtester", "apt-get install pamtester");
    let names = CaseInsensitiveNamespace::new();
    let sshield = Sshield::new("[policy]\nunenrolled = \"allow\"");
    let module = sshield.auth_line("");
    let service = PamService::create("nsfail", [module.as_str()]);
    let login = |user: &str, answers: &[&str]| {
        pamtester_as(
            names.command("pamtester"),
            service.name(),
            user,
            None,
            answers,
        )
    };

    let run = login("sshield-nobody-4711", &[]);
    assert!(run.success, "{}", run.output);
    assert!(!run.output.contains(CODE_PROMPT), "{}", run.output);

    let run = login("sshield-nsfail-4711", &["123456"]);
    assert!(!run.success, "{}", run.output);
    assert!(run.output.contains(CODE_PROMPT), "{}", run.output);
    assert_eq!(
        sshield
            .log_lines_with("deny user=sshield-nsfail-4711 rhost=-")
            .len(),
        1,
        "{:#?}",
        sshield.log_lines()
    );
}
